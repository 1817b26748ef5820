//! The names records are logged under: each unit or task name gets a small id once, so a record
//! stores four bytes instead of its name.

use alloc::string::String;
use alloc::vec::Vec;

use super::ring::UnitId;

/// The name table: ids handed out from 0 upwards, never reused.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// The names, by id.
    list: Vec<String>,
    /// The ids in their names' order, to find a name by binary search: each name is kept
    /// once, and a board carries no map for it.
    by_name: Vec<UnitId>,
}

impl Names {
    /// Where `name` is in `by_name`, or where it would go.
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.by_name
            .binary_search_by(|id| self.list[id.index()].as_str().cmp(name))
    }

    /// The id of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<UnitId> {
        self.find(name).ok().map(|at| self.by_name[at])
    }

    /// The id of `name`, registering it on first use.
    pub fn id(&mut self, name: &str) -> UnitId {
        match self.find(name) {
            Ok(at) => self.by_name[at],
            Err(at) => {
                let id = UnitId(self.list.len() as u32);
                self.list.push(name.into());
                self.by_name.insert(at, id);
                id
            }
        }
    }

    /// The name of `id`; `None` for an id this table never handed out.
    pub fn name(&self, id: UnitId) -> Option<&str> {
        self.list.get(id.index()).map(String::as_str)
    }

    /// Every name registered, in the order they were.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(String::as_str)
    }

    /// How many names are registered.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no name is registered.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Where a reader looks names up: the table itself, or one shared behind a lock.
pub trait UnitNames {
    /// Calls `f` with each registered id and name, in id order.
    fn for_each_name(&self, f: &mut dyn FnMut(UnitId, &str));
}

impl UnitNames for Names {
    fn for_each_name(&self, f: &mut dyn FnMut(UnitId, &str)) {
        for (i, n) in self.list.iter().enumerate() {
            f(UnitId(i as u32), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn ids_are_stable_and_dense() {
        let mut n = Names::default();
        let a = n.id("a.service");
        let b = n.id("@1");
        assert_eq!((a.index(), b.index()), (0, 1));
        assert_eq!(n.id("a.service"), a);
        assert_eq!(n.name(b), Some("@1"));
        assert_eq!(n.name(UnitId(9)), None);
        assert_eq!(n.len(), 2);
    }

    #[test]
    fn every_name_is_found_whatever_the_order_they_came_in() {
        let mut n = Names::default();
        // 500 names in a scrambled order (a multiplier coprime to 500), each asked twice.
        let names: Vec<String> = (0..500).map(|i| format!("u{}", i * 7 % 500)).collect();
        let ids: Vec<UnitId> = names.iter().map(|name| n.id(name)).collect();
        for (name, id) in names.iter().zip(&ids) {
            assert_eq!(n.id(name), *id);
            assert_eq!(n.get(name), Some(*id));
            assert_eq!(n.name(*id), Some(name.as_str()));
        }
        assert_eq!(
            ids.iter().map(|id| id.index()).collect::<Vec<_>>(),
            (0..500).collect::<Vec<_>>()
        );
        for missing in ["", "u", "u500", "u01", "v1"] {
            assert_eq!(n.get(missing), None, "{missing}");
        }
        assert_eq!(n.len(), 500);
    }
}
