//! Unit name patterns as users type them: exact names, globs (`*.service`, `blink*`,
//! `{hello,world}`), and bare names without the suffix (`hello` for `hello.service`), as
//! systemctl accepts.
//!
//! The matcher is written here because the glob crates need std. Names are short, so a plain
//! backtracking match over bytes is enough; braces are expanded when the pattern is compiled.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use asyncmd_proto::unit::{is_glob, SUFFIX};

/// A pattern has at most this many brace groups and expands to at most this many alternatives,
/// so a hostile pattern can neither recurse deep nor make the daemon allocate without end.
const MAX_BRACE_GROUPS: usize = 32;
const MAX_ALTERNATIVES: usize = 256;
/// Patterns one request may give.
pub const MAX_PATTERNS: usize = 256;
/// Globs all the patterns of one request may expand to: what a match of one name costs.
const MAX_GLOBS: usize = 1024;

/// One compiled pattern: as typed, and the brace-free globs it expands to (none for a name
/// without wildcards, which is compared as it is).
#[derive(Debug, Clone)]
struct Pattern {
    raw: String,
    globs: Vec<String>,
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        if self.globs.is_empty() {
            return name == self.raw
                || (!self.raw.ends_with(SUFFIX) && name.strip_suffix(SUFFIX) == Some(&self.raw));
        }
        self.globs
            .iter()
            .any(|g| glob_match(g.as_bytes(), name.as_bytes()))
    }
}

/// A compiled set of patterns; an empty set matches every name.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    each: Vec<Pattern>,
}

impl Patterns {
    /// Compiles `patterns`; an invalid glob is an error naming it.
    pub fn new(patterns: &[String]) -> Result<Patterns, String> {
        // Bounded as a whole too, so one request cannot make every match cost the earth.
        if patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "{} patterns, more than the limit of {MAX_PATTERNS}",
                patterns.len()
            ));
        }
        let each: Vec<Pattern> = patterns
            .iter()
            .map(|p| compile(p).map_err(|e| format!("invalid pattern '{p}': {e}")))
            .collect::<Result<_, _>>()?;
        let globs: usize = each.iter().map(|p| p.globs.len()).sum();
        if globs > MAX_GLOBS {
            return Err(format!(
                "the patterns expand to {globs} globs, more than the limit of {MAX_GLOBS}"
            ));
        }
        Ok(Patterns { each })
    }

    /// Whether `name` matches any pattern (or there are none).
    pub fn matches(&self, name: &str) -> bool {
        self.each.is_empty() || self.each.iter().any(|p| p.matches(name))
    }

    /// The patterns that match none of `names`.
    pub fn unmatched<'a>(&'a self, names: &[&str]) -> Vec<&'a str> {
        self.each
            .iter()
            .filter(|p| !names.iter().any(|n| p.matches(n)))
            .map(|p| p.raw.as_str())
            .collect()
    }

    /// Which of `names` match (all when there are no patterns), in their order, and the
    /// patterns that matched none.
    pub fn split<'n>(&self, names: &[&'n str]) -> (Vec<&'n str>, Vec<String>) {
        let hits = names.iter().copied().filter(|n| self.matches(n)).collect();
        let missing = self
            .unmatched(names)
            .into_iter()
            .map(String::from)
            .collect();
        (hits, missing)
    }
}

fn compile(p: &str) -> Result<Pattern, String> {
    if !is_glob(p) {
        return Ok(Pattern {
            raw: p.to_string(),
            globs: Vec::new(),
        });
    }
    let groups = p.matches('{').count();
    if groups > MAX_BRACE_GROUPS {
        return Err(format!("more than {MAX_BRACE_GROUPS} brace groups"));
    }
    let globs = expand_braces(p)?;
    for g in &globs {
        check_classes(g)?;
    }
    Ok(Pattern {
        raw: p.to_string(),
        globs,
    })
}

/// `a{b,c{d,e}}` -> `ab`, `acd`, `ace`.
/// Each call takes out one group, so it recurses at most [`MAX_BRACE_GROUPS`] deep.
fn expand_braces(p: &str) -> Result<Vec<String>, String> {
    let b = p.as_bytes();
    let Some(open) = find_unescaped(b, 0, b'{') else {
        if find_unescaped(b, 0, b'}').is_some() {
            return Err("'}' without '{'".into());
        }
        return Ok(vec![p.to_string()]);
    };
    // The matching close and the top-level commas between.
    let (mut level, mut i, mut commas) = (0usize, open, Vec::new());
    let close = loop {
        match b.get(i) {
            None => return Err("unclosed '{'".into()),
            Some(b'\\') => i += 1,
            Some(b'{') => level += 1,
            Some(b'}') => {
                level -= 1;
                if level == 0 {
                    break i;
                }
            }
            Some(b',') if level == 1 => commas.push(i),
            _ => {}
        }
        i += 1;
    };
    let (head, tail) = (&p[..open], &p[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = format!("{head}{}{tail}", &p[w[0] + 1..w[1]]);
        for g in expand_braces(&alt)? {
            if out.len() == MAX_ALTERNATIVES {
                return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
            }
            out.push(g);
        }
    }
    Ok(out)
}

fn find_unescaped(b: &[u8], from: usize, want: u8) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            c if c == want => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn check_classes(g: &str) -> Result<(), String> {
    let b = g.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 == b.len() => return Err("trailing '\\'".into()),
            b'\\' => i += 1,
            b'[' => match class_end(b, i) {
                Some(end) => i = end,
                None => return Err("unclosed '['".into()),
            },
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the `]` closing the class that opens at `open`. A `]` first in the class (after
/// an optional `!` or `^`) is a member, as in shells.
fn class_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(b.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    if b.get(i) == Some(&b']') {
        i += 1;
    }
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b']' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the byte `c` is in the class `b[open..=end]`.
fn class_has(b: &[u8], open: usize, end: usize, c: u8) -> bool {
    let mut i = open + 1;
    let negated = matches!(b[i], b'!' | b'^');
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < end && (first || b[i] != b']') {
        first = false;
        let mut lo = b[i];
        if lo == b'\\' && i + 1 < end {
            i += 1;
            lo = b[i];
        }
        let mut hi = lo;
        if i + 2 < end && b[i + 1] == b'-' {
            hi = b[i + 2];
            if hi == b'\\' && i + 3 < end {
                i += 1;
                hi = b[i + 2];
            }
            i += 2;
        }
        found |= lo <= c && c <= hi;
        i += 1;
    }
    found != negated
}

/// Matches a brace-free glob against a name: `*` any run, `?` any byte, `[...]` a class, `\x`
/// the byte x. Backtracks only to the last `*`, so it is linear in practice and quadratic at
/// worst on these short names.
fn glob_match(g: &[u8], name: &[u8]) -> bool {
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < name.len() {
        let step = match g.get(gi) {
            Some(b'*') => {
                star = Some((gi, ni));
                gi += 1;
                continue;
            }
            Some(b'?') => Some(gi + 1),
            Some(b'[') => class_end(g, gi)
                .filter(|&end| class_has(g, gi, end, name[ni]))
                .map(|end| end + 1),
            Some(b'\\') if g.get(gi + 1) == Some(&name[ni]) => Some(gi + 2),
            Some(&c) if c != b'\\' && c == name[ni] => Some(gi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                gi = next;
                ni += 1;
            }
            (None, Some((sg, sn))) => {
                gi = sg + 1;
                ni = sn + 1;
                star = Some((sg, sn + 1));
            }
            (None, None) => return false,
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Patterns {
        Patterns::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs_bare_names_and_empty() {
        assert!(pats(&[]).matches("anything"));
        let p = pats(&["*.service"]);
        assert!(p.matches("hello.service") && !p.matches("blink"));
        let p = pats(&["hello"]);
        assert!(p.matches("hello.service") && p.matches("hello") && !p.matches("hello2.service"));
        let p = pats(&["blink*"]);
        assert!(p.matches("blink@1") && p.matches("blink") && !p.matches("hello.service"));
    }

    #[test]
    fn classes_braces_and_escapes() {
        let p = pats(&["w[aeo]rld.service", "{hello,sensor}.service"]);
        assert!(p.matches("world.service") && p.matches("hello.service"));
        assert!(p.matches("sensor.service") && !p.matches("wurld.service"));
        let p = pats(&["[!h]*"]);
        assert!(p.matches("world") && !p.matches("hello"));
        let p = pats(&["[a-c]?"]);
        assert!(p.matches("b1") && !p.matches("d1") && !p.matches("b"));
        let p = pats(&["@[0-9]"]);
        assert!(p.matches("@7") && !p.matches("@x"));
        let p = pats(&["a\\*"]);
        assert!(p.matches("a*") && !p.matches("ab"));
        let p = pats(&["[]]x"]);
        assert!(p.matches("]x"));
        let p = pats(&["x{a,b{c,d}}y"]);
        assert!(p.matches("xay") && p.matches("xbdy") && !p.matches("xby"));
        assert!(pats(&["*a*b*c*"]).matches("xxaxxbxxc"));
        assert!(!pats(&["*a*b*c*"]).matches("xxaxxcxxb"));
    }

    #[test]
    fn reports_patterns_that_match_nothing() {
        let p = pats(&["hello", "nope*", "world.service"]);
        assert_eq!(
            p.unmatched(&["hello.service", "world.service"]),
            vec!["nope*"]
        );
    }

    #[test]
    fn invalid_globs_are_errors_naming_them() {
        for (bad, why) in [
            ("a[", "unclosed '['"),
            ("{a,b", "unclosed '{'"),
            ("a}*", "'}' without '{'"),
            ("a*\\", "trailing"),
        ] {
            let e = Patterns::new(&[bad.to_string()]).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")) && e.contains(why), "{e}");
        }
        let deep = "{".repeat(40) + &"}".repeat(40);
        let e = Patterns::new(&[deep]).unwrap_err();
        assert!(e.contains("brace groups"), "{e}");
        let wide = "{a,b}".repeat(12);
        let e = Patterns::new(&[wide]).unwrap_err();
        assert!(e.contains("alternatives"), "{e}");
    }

    #[test]
    fn a_bare_name_is_literal() {
        assert!(pats(&["a]b"]).matches("a]b.service"));
    }

    #[test]
    fn a_request_is_bounded_as_a_whole() {
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("u{i}")).collect();
        let e = Patterns::new(&many).err().unwrap_or_default();
        assert!(
            e.contains("257 patterns, more than the limit of 256"),
            "{e}"
        );
        // 128 globs each: 8 are the limit, 9 are over it.
        let braces: Vec<String> = (0..9)
            .map(|i| format!("{{a,b,c,d}}{{e,f,g,h}}{{i,j,k,l,m,n,o,p}}{i}"))
            .collect();
        let e = Patterns::new(&braces).err().unwrap_or_default();
        assert!(
            e.contains("expand to 1152 globs, more than the limit of 1024"),
            "{e}"
        );
        assert!(Patterns::new(&braces[..8]).is_ok());
    }
}
