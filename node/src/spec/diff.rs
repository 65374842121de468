//! Set differences: what a reconciler adds and removes to turn the actual set into the desired
//! one. Used for prefixes and load-balancer targets against dpservice's lists, and for route
//! announcements between two specs (withdraw exactly what went away, announce what is new,
//! leave the rest alone: no withdraw-and-re-announce churn as metalnet did for LB targets).

use std::collections::{BTreeMap, BTreeSet};

/// What to add to and remove from a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff<T> {
    /// In the desired set, not in the actual one.
    pub add: BTreeSet<T>,
    /// In the actual set, not in the desired one.
    pub remove: BTreeSet<T>,
}

impl<T> Default for Diff<T> {
    fn default() -> Self {
        Self {
            add: BTreeSet::new(),
            remove: BTreeSet::new(),
        }
    }
}

impl<T> Diff<T> {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// `desired - actual` to add, `actual - desired` to remove.
pub fn diff<T: Ord + Clone>(desired: &BTreeSet<T>, actual: &BTreeSet<T>) -> Diff<T> {
    Diff {
        add: desired.difference(actual).cloned().collect(),
        remove: actual.difference(desired).cloned().collect(),
    }
}

/// [`diff`] against the keys of a map, e.g. dpservice's prefixes with their underlays.
pub fn diff_keys<T: Ord + Clone, V>(desired: &BTreeSet<T>, actual: &BTreeMap<T, V>) -> Diff<T> {
    Diff {
        add: desired
            .iter()
            .filter(|k| !actual.contains_key(*k))
            .cloned()
            .collect(),
        remove: actual
            .keys()
            .filter(|k| !desired.contains(*k))
            .cloned()
            .collect(),
    }
}
