//! Boot: the order units start in, and the report asyncmd prints for each.

use asyncmd_proto::text::ansi;
use asyncmd_proto::UnitType;

/// What the boot order needs to know of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// Unit name.
    pub name: String,
    /// Its type, when it loaded.
    pub kind: Option<UnitType>,
    /// Its priority (lower first).
    pub priority: i32,
}

/// The start order: `core` units first, then by priority (lower first), then by name.
pub fn plan(mut items: Vec<PlanItem>) -> Vec<String> {
    items.sort_by(|a, b| {
        let core = |i: &PlanItem| i.kind != Some(UnitType::Core);
        (core(a), a.priority, &a.name).cmp(&(core(b), b.priority, &b.name))
    });
    items.into_iter().map(|i| i.name).collect()
}

/// `[ OK ] Service: hello.service from units/hello.service loaded`, or the `[ ERROR ]` line
/// with the reason.
pub fn report_line(name: &str, source: &str, error: Option<&str>, color: bool) -> String {
    let (g, r, z) = if color {
        (ansi::BRIGHT_GREEN, ansi::RED, ansi::RESET)
    } else {
        ("", "", "")
    };
    match error {
        None => format!("[ {g}OK{z} ] Service: {name} from {source} loaded"),
        Some(e) => format!("[ {r}ERROR{z} ] Service: {name} from {source} not loaded: Error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, kind: Option<UnitType>, priority: i32) -> PlanItem {
        PlanItem {
            name: name.into(),
            kind,
            priority,
        }
    }

    #[test]
    fn core_then_priority_then_name() {
        let order = plan(vec![
            item("b.service", Some(UnitType::Runtime), 0),
            item("a.service", Some(UnitType::Runtime), 5),
            item("z.service", Some(UnitType::Core), 9),
            item("c.service", None, 0),
            item("d.service", Some(UnitType::Oneshot), -1),
        ]);
        assert_eq!(
            order,
            [
                "z.service",
                "d.service",
                "b.service",
                "c.service",
                "a.service"
            ]
        );
    }

    #[test]
    fn report_lines_match_asyncmd() {
        assert_eq!(
            report_line("hello.service", "units/hello.service", None, false),
            "[ OK ] Service: hello.service from units/hello.service loaded"
        );
        assert_eq!(
            report_line("dofail.service", "units/dofail.service", Some("exit status 1"), false),
            "[ ERROR ] Service: dofail.service from units/dofail.service not loaded: Error: exit status 1"
        );
        assert!(report_line("a", "b", None, true).contains("\x1b[92mOK\x1b[0m"));
    }
}
