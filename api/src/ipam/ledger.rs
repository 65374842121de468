//! The bookkeeping every allocator shares: who holds which value, and a run-length set of the
//! values that cannot be handed out, so the lowest free value is found in logarithmic time even
//! in a /8 or an IPv6 /64 that is mostly taken.

use std::collections::{BTreeMap, BTreeSet};

/// A set of integers stored as disjoint, non-adjacent inclusive runs `start -> end`. Keeping runs
/// merged is what makes [`RangeSet::first_absent_in`] O(log n): the value after a run is never in
/// the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    runs: BTreeMap<u128, u128>,
}

impl RangeSet {
    /// The run holding `value`, as `(start, end)`.
    fn run_at(&self, value: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=value)
            .next_back()
            .filter(|&(_, &end)| value <= end)
            .map(|(&start, &end)| (start, end))
    }

    /// Whether `value` is in the set.
    pub(crate) fn contains(&self, value: u128) -> bool {
        self.run_at(value).is_some()
    }

    /// Adds `value`; false if it was there already.
    pub(crate) fn insert(&mut self, value: u128) -> bool {
        if self.contains(value) {
            return false;
        }
        let left_start = value.checked_sub(1).and_then(|before| {
            self.run_at(before)
                .filter(|&(_, end)| end == before)
                .map(|(start, _)| start)
        });
        let right_end = value
            .checked_add(1)
            .and_then(|after| self.runs.remove(&after));
        self.runs
            .insert(left_start.unwrap_or(value), right_end.unwrap_or(value));
        true
    }

    /// Removes `value`; false if it was not there.
    pub(crate) fn remove(&mut self, value: u128) -> bool {
        let Some((start, end)) = self.run_at(value) else {
            return false;
        };
        self.runs.remove(&start);
        if start < value {
            self.runs.insert(start, value - 1);
        }
        if value < end {
            self.runs.insert(value + 1, end);
        }
        true
    }

    /// The lowest value in `first..=last` that is not in the set.
    pub(crate) fn first_absent_in(&self, first: u128, last: u128) -> Option<u128> {
        if first > last {
            return None;
        }
        match self.run_at(first) {
            None => Some(first),
            Some((_, end)) if end < last => Some(end + 1),
            Some(_) => None,
        }
    }

    /// How many values of `first..=last` are in the set (saturating).
    pub(crate) fn count_in(&self, first: u128, last: u128) -> u128 {
        if first > last {
            return 0;
        }
        // Runs are disjoint and sorted, so their ends ascend too: walking down from `last`, the
        // first run ending before `first` ends the overlap.
        self.runs
            .range(..=last)
            .rev()
            .take_while(|&(_, &end)| end >= first)
            .fold(0u128, |sum, (&start, &end)| {
                sum.saturating_add(super::family::span(start.max(first), end.min(last)))
            })
    }

    /// The runs, ascending.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }
}

/// Who holds which value. `blocked` is the union of the held values and the reserved ones
/// (given at creation, never released), so a single gap search skips both.
#[derive(Debug, Clone)]
pub(crate) struct Ledger<O> {
    holders: BTreeMap<u128, O>,
    owned: BTreeMap<O, BTreeSet<u128>>,
    blocked: RangeSet,
}

impl<O: Ord + Clone> Ledger<O> {
    /// An empty ledger where `reserved` can never be taken.
    pub(crate) fn new(reserved: impl IntoIterator<Item = u128>) -> Self {
        let mut blocked = RangeSet::default();
        for value in reserved {
            blocked.insert(value);
        }
        Self {
            holders: BTreeMap::new(),
            owned: BTreeMap::new(),
            blocked,
        }
    }

    /// The holder of `value`.
    pub(crate) fn holder(&self, value: u128) -> Option<&O> {
        self.holders.get(&value)
    }

    /// The lowest free value in `first..=last`.
    pub(crate) fn first_free_in(&self, first: u128, last: u128) -> Option<u128> {
        self.blocked.first_absent_in(first, last)
    }

    /// How many values of `first..=last` are held or reserved.
    pub(crate) fn blocked_in(&self, first: u128, last: u128) -> u128 {
        self.blocked.count_in(first, last)
    }

    /// How many values of `first..=last` are held.
    pub(crate) fn held_in(&self, first: u128, last: u128) -> usize {
        if first > last {
            return 0;
        }
        self.holders.range(first..=last).count()
    }

    /// Gives `value` to `owner`; false (and nothing changes) unless it was free.
    pub(crate) fn take(&mut self, value: u128, owner: O) -> bool {
        if !self.blocked.insert(value) {
            return false;
        }
        self.owned.entry(owner.clone()).or_default().insert(value);
        self.holders.insert(value, owner);
        true
    }

    /// Frees `value`, returning its former holder; reserved values stay blocked.
    pub(crate) fn release(&mut self, value: u128) -> Option<O> {
        let owner = self.holders.remove(&value)?;
        self.blocked.remove(value);
        if let Some(values) = self.owned.get_mut(&owner) {
            values.remove(&value);
            if values.is_empty() {
                self.owned.remove(&owner);
            }
        }
        Some(owner)
    }

    /// The values `owner` holds, ascending.
    pub(crate) fn values_of(&self, owner: &O) -> impl Iterator<Item = u128> + '_ {
        self.owned.get(owner).into_iter().flatten().copied()
    }

    /// Every held value with its holder, ascending by value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u128, &O)> + '_ {
        self.holders.iter().map(|(&v, o)| (v, o))
    }

    /// How many values are held.
    pub(crate) fn len(&self) -> usize {
        self.holders.len()
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
