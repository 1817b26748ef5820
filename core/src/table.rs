//! The unit table and the task table: rows by name in name order, selected by name patterns.
//! A task added under a taken name gets the next free `NAME@N`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::pattern::Patterns;

/// Rows of `T` by name, in name order.
///
/// A vector kept sorted, searched by bisection: the daemon's lookups are as quick as a
/// B-tree's and its walks in order quicker, and a board carries no B-tree code for it. Units
/// are added at boot and reload, where a thousand cost a few milliseconds at worst.
#[derive(Debug, Clone)]
pub struct Table<T> {
    rows: Vec<(String, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table { rows: Vec::new() }
    }
}

impl<T> Table<T> {
    /// An empty table.
    pub fn new() -> Table<T> {
        Table::default()
    }

    /// Where the row named `name` is, or where it would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.rows.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The row named `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.find(name).ok().map(|at| &self.rows[at].1)
    }

    /// Puts `row` under `name`; returns the row it replaced.
    pub fn insert(&mut self, name: String, row: T) -> Option<T> {
        match self.find(&name) {
            Ok(at) => Some(core::mem::replace(&mut self.rows[at].1, row)),
            Err(at) => {
                self.rows.insert(at, (name, row));
                None
            }
        }
    }

    /// Takes the row named `name` out.
    pub fn remove(&mut self, name: &str) -> Option<T> {
        self.find(name).ok().map(|at| self.rows.remove(at).1)
    }

    /// Whether a row is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.rows.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The rows, in name order.
    pub fn rows(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().map(|(_, row)| row)
    }

    /// `name` if it is free, else the first free `name@1`, `name@2`...
    pub fn free_name(&self, name: &str) -> String {
        let mut unique = String::from(name);
        let mut n = 0u32;
        while self.contains(&unique) {
            n += 1;
            unique = format!("{name}@{n}");
        }
        unique
    }

    /// The rows matching `patterns` (all when empty), in name order, and the patterns that
    /// matched none; an error names a bad pattern.
    pub fn select(&self, patterns: &[String]) -> Result<(Vec<&T>, Vec<String>), String> {
        let names: Vec<&str> = self.rows.iter().map(|(n, _)| n.as_str()).collect();
        let (hits, missing) = Patterns::new(patterns)?.split(&names);
        Ok((hits.iter().filter_map(|n| self.get(n)).collect(), missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn names_are_made_unique_with_at_n() {
        let mut t = Table::new();
        for _ in 0..3 {
            let name = t.free_name("blink");
            t.insert(name, ());
        }
        assert_eq!(t.names(), ["blink", "blink@1", "blink@2"]);
        t.remove("blink@1");
        assert_eq!(t.free_name("blink"), "blink@1");
    }

    #[test]
    fn rows_stay_in_name_order_whatever_order_they_come_in() {
        let mut t = Table::new();
        // 300 names in a scrambled order (a multiplier coprime to 300).
        for i in 0..300 {
            let n = i * 7 % 300;
            assert_eq!(t.insert(alloc::format!("u{n:03}"), n), None);
        }
        assert_eq!(t.insert("u007".into(), 1000), Some(7));
        assert_eq!(t.remove("u100"), Some(100));
        assert_eq!(t.remove("u100"), None);
        let names = t.names();
        assert_eq!(names.len(), 299);
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        assert_eq!(t.get("u007"), Some(&1000));
        assert_eq!(t.get("u299"), Some(&299));
        assert!(!t.contains("u100") && !t.contains("u") && t.contains("u000"));
        assert_eq!(t.rows().count(), 299);
    }

    #[test]
    fn select_names_what_matched_nothing_and_refuses_bad_patterns() {
        let mut t = Table::new();
        t.insert("a.service".into(), 1);
        t.insert("b.service".into(), 2);
        let p = |v: &[&str]| v.iter().map(|s| String::from(*s)).collect::<Vec<_>>();
        let (hits, missing) = t.select(&p(&["a", "z*"])).unwrap();
        assert_eq!((hits, missing), (vec![&1], p(&["z*"])));
        assert_eq!(t.select(&[]).unwrap().0, vec![&1, &2]);
        assert!(t.select(&p(&["a["])).unwrap_err().contains("a["));
    }
}
