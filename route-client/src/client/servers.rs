//! A set of server indexes: one bit per server, growing as needed, so the number of servers a
//! client may use is not capped while the common case (a few servers) stays one inline word.

use smallvec::SmallVec;

/// Index of a server in the client's configuration.
pub type ServerId = usize;

/// A set of [`ServerId`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSet(SmallVec<[u64; 1]>);

impl ServerSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set holding only `s`.
    pub fn one(s: ServerId) -> Self {
        let mut set = Self::new();
        set.insert(s);
        set
    }

    /// Adds `s`; true if it was not there.
    pub fn insert(&mut self, s: ServerId) -> bool {
        let (w, b) = (s / 64, 1u64 << (s % 64));
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        let new = self.0[w] & b == 0;
        self.0[w] |= b;
        new
    }

    /// Removes `s`; true if it was there.
    pub fn remove(&mut self, s: ServerId) -> bool {
        let (w, b) = (s / 64, 1u64 << (s % 64));
        let Some(word) = self.0.get_mut(w) else {
            return false;
        };
        let had = *word & b != 0;
        *word &= !b;
        // Trailing zero words would make equal sets compare unequal.
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        had
    }

    /// Whether `s` is in the set.
    pub fn contains(&self, s: ServerId) -> bool {
        self.0
            .get(s / 64)
            .is_some_and(|w| w & (1u64 << (s % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in prop::collection::vec((any::<bool>(), 0usize..200), 0..100)) {
            let mut set = ServerSet::new();
            let mut model = BTreeSet::new();
            for (add, s) in ops {
                if add {
                    prop_assert_eq!(set.insert(s), model.insert(s));
                } else {
                    prop_assert_eq!(set.remove(s), model.remove(&s));
                }
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(set.is_empty(), model.is_empty());
                let rebuilt = model.iter().fold(ServerSet::new(), |mut acc, &s| { acc.insert(s); acc });
                prop_assert_eq!(&set, &rebuilt);
            }
        }
    }
}
