//! `asyncmctl list-dependencies`: the units a unit requires (or starts after), and theirs, as
//! systemctl draws them:
//!
//! ```text
//! hello.service
//! ● └─hello_core.service
//! ```

use std::collections::{BTreeMap, BTreeSet};

use asyncmd_proto::text::ansi;
use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::UnitState;

/// Which edges the tree follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edges {
    /// `after` instead of `requires`.
    pub after: bool,
    /// Who depends on the unit, rather than what it depends on.
    pub reverse: bool,
}

/// Draws the tree of `root` (every unit nothing depends on, when None) over `rows` into `out`.
pub fn render(
    out: &mut String,
    rows: &[UnitSummary],
    root: Option<&str>,
    edges: Edges,
    color: bool,
) {
    let state: BTreeMap<&str, UnitState> =
        rows.iter().map(|r| (r.name.as_str(), r.state)).collect();
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in rows {
        let deps = if edges.after { &r.after } else { &r.requires };
        for d in deps {
            let (from, to) = if edges.reverse {
                (d.as_str(), r.name.as_str())
            } else {
                (r.name.as_str(), d.as_str())
            };
            next.entry(from).or_default().insert(to);
        }
    }
    let roots: Vec<&str> = match root {
        Some(r) => vec![r],
        None => {
            let pointed: BTreeSet<&str> = next.values().flatten().copied().collect();
            rows.iter()
                .map(|r| r.name.as_str())
                .filter(|n| !pointed.contains(n))
                .collect()
        }
    };
    for r in roots {
        out.push_str(r);
        out.push('\n');
        let mut path = vec![r];
        branch(out, &next, &state, r, "", &mut path, color);
    }
}

fn branch<'a>(
    out: &mut String,
    next: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    state: &BTreeMap<&str, UnitState>,
    node: &'a str,
    indent: &str,
    path: &mut Vec<&'a str>,
    color: bool,
) {
    let Some(children) = next.get(node) else {
        return;
    };
    let n = children.len();
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == n;
        out.push_str(&dot(state.get(child).copied(), color));
        out.push(' ');
        out.push_str(indent);
        out.push_str(if last { "└─" } else { "├─" });
        out.push_str(child);
        // A cycle is drawn once round, not forever.
        if path.contains(child) {
            out.push_str(" (cycle)\n");
            continue;
        }
        out.push('\n');
        path.push(child);
        let deeper = format!("{indent}{}", if last { "  " } else { "│ " });
        branch(out, next, state, child, &deeper, path, color);
        path.pop();
    }
}

/// `●` green for a running unit, red for a failed or missing one, plain otherwise.
fn dot(state: Option<UnitState>, color: bool) -> String {
    let c = match state {
        _ if !color => "",
        Some(UnitState::Running) => ansi::BRIGHT_GREEN,
        Some(UnitState::Failed) | None => ansi::RED,
        Some(_) => "",
    };
    if c.is_empty() {
        "●".into()
    } else {
        format!("{c}●{}", ansi::RESET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asyncmd_proto::UnitType;

    fn row(name: &str, requires: &[&str], after: &[&str]) -> UnitSummary {
        UnitSummary {
            name: name.into(),
            enabled: true,
            loaded: true,
            state: UnitState::Running,
            description: String::new(),
            masked: false,
            kind: UnitType::Runtime,
            requires: requires.iter().map(|s| s.to_string()).collect(),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_diamond_drawn_each_way() {
        let rows = [
            row("top.service", &["left.service", "right.service"], &[]),
            row("left.service", &["base.service"], &[]),
            row("right.service", &["base.service"], &["left.service"]),
            row("base.service", &[], &[]),
        ];
        let fwd = Edges {
            after: false,
            reverse: false,
        };
        let mut out = String::new();
        render(&mut out, &rows, Some("top.service"), fwd, false);
        assert_eq!(
            out,
            "top.service\n\
             ● ├─left.service\n\
             ● │ └─base.service\n\
             ● └─right.service\n\
             ●   └─base.service\n"
        );
        let mut out = String::new();
        let rev = Edges {
            after: false,
            reverse: true,
        };
        render(&mut out, &rows, Some("base.service"), rev, false);
        assert_eq!(
            out,
            "base.service\n\
             ● ├─left.service\n\
             ● │ └─top.service\n\
             ● └─right.service\n\
             ●   └─top.service\n"
        );
        // Without a root: every unit nothing requires.
        let mut out = String::new();
        render(&mut out, &rows, None, fwd, false);
        assert!(out.starts_with("top.service\n"), "{out}");
        assert_eq!(out.lines().filter(|l| !l.starts_with('●')).count(), 1);
    }

    #[test]
    fn a_cycle_is_drawn_once_round() {
        let rows = [
            row("a.service", &["b.service"], &[]),
            row("b.service", &["a.service"], &[]),
        ];
        let mut out = String::new();
        let e = Edges {
            after: false,
            reverse: false,
        };
        render(&mut out, &rows, Some("a.service"), e, false);
        assert_eq!(out, "a.service\n● └─b.service\n●   └─a.service (cycle)\n");
    }
}
