//! Unit name patterns as users type them: exact names, globs (`*.service`, `blink*`), and bare
//! names without the suffix (`hello` for `hello.service`), as systemctl accepts.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::unit::SUFFIX;

/// A compiled set of patterns; an empty set matches every name.
#[derive(Debug, Clone)]
pub struct Patterns {
    set: GlobSet,
    empty: bool,
    each: Vec<GlobSet>,
    raw: Vec<String>,
}

impl Patterns {
    /// Compiles `patterns`; an invalid glob is an error naming it.
    pub fn new(patterns: &[String]) -> Result<Patterns, String> {
        let mut all = GlobSetBuilder::new();
        let mut each = Vec::with_capacity(patterns.len());
        for p in patterns {
            let mut one = GlobSetBuilder::new();
            for g in expand(p) {
                let glob = Glob::new(&g).map_err(|e| format!("invalid pattern '{p}': {e}"))?;
                all.add(glob.clone());
                one.add(glob);
            }
            each.push(
                one.build()
                    .map_err(|e| format!("invalid pattern '{p}': {e}"))?,
            );
        }
        Ok(Patterns {
            set: all.build().map_err(|e| e.to_string())?,
            empty: patterns.is_empty(),
            each,
            raw: patterns.to_vec(),
        })
    }

    /// Whether `name` matches any pattern (or there are none).
    pub fn matches(&self, name: &str) -> bool {
        self.empty || self.set.is_match(name)
    }

    /// The patterns that match none of `names`.
    pub fn unmatched<'a>(&'a self, names: &[&str]) -> Vec<&'a str> {
        self.each
            .iter()
            .zip(&self.raw)
            .filter(|(set, _)| !names.iter().any(|n| set.is_match(n)))
            .map(|(_, raw)| raw.as_str())
            .collect()
    }

    /// Whether these patterns name exactly one unit without wildcards.
    pub fn is_single_name(&self) -> bool {
        self.raw.len() == 1 && !has_meta(&self.raw[0])
    }
}

fn has_meta(p: &str) -> bool {
    p.contains(['*', '?', '[', '{'])
}

fn expand(p: &str) -> Vec<String> {
    if !has_meta(p) && !p.ends_with(SUFFIX) {
        vec![p.to_string(), format!("{p}{SUFFIX}")]
    } else {
        vec![p.to_string()]
    }
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
        assert!(pats(&["hello"]).is_single_name());
        assert!(!pats(&["h*"]).is_single_name());
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
    fn invalid_glob_is_an_error() {
        let e = Patterns::new(&["a[".to_string()]).unwrap_err();
        assert!(e.contains("'a['"), "{e}");
    }
}
