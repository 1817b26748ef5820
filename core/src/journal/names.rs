//! The names records are logged under: each unit or task name gets a small id once, so a record
//! stores four bytes instead of its name.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::ring::UnitId;

/// The name table: ids handed out from 0 upwards, never reused.
#[derive(Debug, Clone, Default)]
pub struct Names {
    list: Vec<String>,
    ids: BTreeMap<String, UnitId>,
}

impl Names {
    /// The id of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<UnitId> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, registering it on first use.
    pub fn id(&mut self, name: &str) -> UnitId {
        if let Some(id) = self.get(name) {
            return id;
        }
        let id = UnitId(self.list.len() as u32);
        self.list.push(name.into());
        self.ids.insert(name.into(), id);
        id
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
}
