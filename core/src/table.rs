//! The unit table and the task table: rows by name in name order, selected by name patterns.
//! A task added under a taken name gets the next free `NAME@N`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::pattern::Patterns;

/// Rows of `T` by name, in name order.
#[derive(Debug, Clone)]
pub struct Table<T> {
    rows: BTreeMap<String, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table {
            rows: BTreeMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// An empty table.
    pub fn new() -> Table<T> {
        Table::default()
    }

    /// The row named `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.rows.get(name)
    }

    /// Puts `row` under `name`; returns the row it replaced.
    pub fn insert(&mut self, name: String, row: T) -> Option<T> {
        self.rows.insert(name, row)
    }

    /// Takes the row named `name` out.
    pub fn remove(&mut self, name: &str) -> Option<T> {
        self.rows.remove(name)
    }

    /// Whether a row is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.rows.contains_key(name)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.rows.keys().cloned().collect()
    }

    /// The rows, in name order.
    pub fn rows(&self) -> impl Iterator<Item = &T> {
        self.rows.values()
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
        let names: Vec<&str> = self.rows.keys().map(String::as_str).collect();
        let (hits, missing) = Patterns::new(patterns)?.split(&names);
        Ok((
            hits.iter().filter_map(|n| self.rows.get(*n)).collect(),
            missing,
        ))
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
