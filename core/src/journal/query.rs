//! The filter of a journal query: unit patterns, a least level, a start time and a message
//! match, with the per-unit answer cached by id so a flood is filtered without a lookup per
//! record.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use asyncmd_proto::{JournalQuery, Level};

use super::names::UnitNames;
use super::ring::{Record, UnitId};
use crate::pattern::Patterns;

/// What matches a message for `grep`: the host uses a regular expression; a board may only have
/// a substring search.
pub trait Grep {
    /// Whether the message bytes match.
    fn is_match(&self, msg: &[u8]) -> bool;
}

/// A journal query's filters, compiled.
pub struct Filter<G> {
    units: Patterns,
    level: Option<Level>,
    level_max: Option<Level>,
    since_us: Option<i64>,
    until_us: Option<i64>,
    grep: Option<G>,
    /// Per unit id: its name and whether it matches `units`.
    names: Vec<(String, bool)>,
}

impl<G: Grep> Filter<G> {
    /// The filter of `q`, with its `grep` already compiled by the caller; a bad unit pattern is
    /// an error naming it.
    pub fn new(q: &JournalQuery, grep: Option<G>) -> Result<Filter<G>, String> {
        Ok(Filter {
            units: Patterns::new(&q.units)?,
            level: q.level,
            level_max: q.level_max,
            since_us: q.since_us,
            until_us: q.until_us,
            grep,
            names: Vec::new(),
        })
    }

    /// The cached name and match of `id`, refreshed from `names` when the id is new to it;
    /// `None` for an id no table has handed out.
    fn unit(&mut self, names: &(impl UnitNames + ?Sized), id: UnitId) -> Option<&(String, bool)> {
        if id.index() >= self.names.len() {
            self.names.clear();
            let (units, cache) = (&self.units, &mut self.names);
            names.for_each_name(&mut |_, n| cache.push((n.to_string(), units.matches(n))));
        }
        self.names.get(id.index())
    }

    /// The name a record of `id` was logged under (empty for an unknown id).
    pub fn name(&mut self, names: &(impl UnitNames + ?Sized), id: UnitId) -> &str {
        self.unit(names, id).map_or("", |(n, _)| n.as_str())
    }

    /// Whether record `r` passes every filter. A record of an unknown id matches no unit.
    pub fn matches(&mut self, names: &(impl UnitNames + ?Sized), r: &Record<'_>) -> bool {
        self.level.is_none_or(|l| r.level >= l)
            && self.level_max.is_none_or(|l| r.level <= l)
            && self.since_us.is_none_or(|s| r.wall_us >= s)
            && self.until_us.is_none_or(|u| r.wall_us <= u)
            && self.unit(names, r.unit).is_some_and(|(_, m)| *m)
            && self.grep.as_ref().is_none_or(|g| g.is_match(r.msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Names;
    use alloc::string::ToString;
    use alloc::vec;

    struct Contains(&'static [u8]);

    impl Grep for Contains {
        fn is_match(&self, msg: &[u8]) -> bool {
            msg.windows(self.0.len()).any(|w| w == self.0)
        }
    }

    fn rec(unit: UnitId, level: Level, wall_us: i64, msg: &[u8]) -> Record<'_> {
        Record {
            seq: 0,
            wall_us,
            mono_us: 0,
            unit,
            level,
            msg,
        }
    }

    #[test]
    fn every_filter_applies_and_unknown_ids_match_nothing() {
        let mut names = Names::default();
        let a = names.id("a.service");
        let b = names.id("b.service");
        let q = JournalQuery {
            units: vec!["a".to_string()],
            level: Some(Level::Warning),
            since_us: Some(10),
            ..Default::default()
        };
        let mut f = Filter::new(&q, Some(Contains(b"disk"))).unwrap();
        assert!(f.matches(&names, &rec(a, Level::Error, 10, b"disk full")));
        assert!(!f.matches(&names, &rec(b, Level::Error, 10, b"disk full")));
        assert!(!f.matches(&names, &rec(a, Level::Info, 10, b"disk full")));
        assert!(!f.matches(&names, &rec(a, Level::Error, 9, b"disk full")));
        assert!(!f.matches(&names, &rec(a, Level::Error, 10, b"cpu hot")));
        // A range of levels, and an end time.
        let q = JournalQuery {
            level: Some(Level::Warning),
            level_max: Some(Level::Error),
            until_us: Some(20),
            ..Default::default()
        };
        let mut f: Filter<Contains> = Filter::new(&q, None).unwrap();
        assert!(f.matches(&names, &rec(a, Level::Warning, 20, b"x")));
        assert!(!f.matches(&names, &rec(a, Level::Critical, 20, b"x")));
        assert!(!f.matches(&names, &rec(a, Level::Info, 20, b"x")));
        assert!(!f.matches(&names, &rec(a, Level::Error, 21, b"x")));
        // An id the table never handed out is not the last name, and has no name.
        let ghost = UnitId(7);
        let q = JournalQuery::default();
        let mut all: Filter<Contains> = Filter::new(&q, None).unwrap();
        assert!(!all.matches(&names, &rec(ghost, Level::Error, 10, b"x")));
        assert_eq!(all.name(&names, ghost), "");
        assert_eq!(all.name(&names, b), "b.service");
        // A name registered later is found.
        let c = names.id("c.service");
        assert!(all.matches(&names, &rec(c, Level::Info, 0, b"x")));
    }

    #[test]
    fn a_bad_unit_pattern_is_named() {
        let q = JournalQuery {
            units: vec!["a[".to_string()],
            ..Default::default()
        };
        let e = Filter::<Contains>::new(&q, None).err().unwrap();
        assert!(e.contains("'a['"), "{e}");
    }
}
