//! The run-length set against a plain `BTreeSet`, and the ledger's owner index.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{Ledger, RangeSet};

#[test]
fn runs_merge_and_split() {
    let mut set = RangeSet::default();
    for v in [5, 7, 6, 1] {
        assert!(set.insert(v));
    }
    assert!(!set.insert(6));
    assert_eq!(set.runs().collect::<Vec<_>>(), vec![(1, 1), (5, 7)]);
    assert!(set.remove(6));
    assert!(!set.remove(6));
    assert_eq!(set.runs().collect::<Vec<_>>(), vec![(1, 1), (5, 5), (7, 7)]);
    assert_eq!(set.first_absent_in(5, 7), Some(6));
    assert_eq!(set.first_absent_in(7, 7), None);
    assert_eq!(set.first_absent_in(8, 7), None);
    assert_eq!(set.count_in(0, 10), 3);
}

#[test]
fn extremes_do_not_overflow() {
    let mut set = RangeSet::default();
    assert!(set.insert(u128::MAX));
    assert!(set.insert(0));
    assert_eq!(set.first_absent_in(u128::MAX, u128::MAX), None);
    assert_eq!(set.first_absent_in(0, u128::MAX), Some(1));
    assert!(set.insert(u128::MAX - 1));
    assert_eq!(
        set.runs().collect::<Vec<_>>(),
        vec![(0, 0), (u128::MAX - 1, u128::MAX)]
    );
    assert!(set.remove(u128::MAX));
    assert_eq!(set.count_in(0, u128::MAX), 2);
}

#[test]
fn a_full_block_is_skipped_without_walking_it() {
    let mut set = RangeSet::default();
    for v in 0..100_000u128 {
        set.insert(v);
    }
    assert_eq!(set.runs().count(), 1);
    assert_eq!(set.first_absent_in(0, u128::MAX), Some(100_000));
}

#[test]
fn the_ledger_indexes_owners_and_keeps_reserved_values_blocked() {
    let mut ledger: Ledger<&str> = Ledger::new([3]);
    assert!(!ledger.take(3, "a"));
    assert!(ledger.take(1, "a"));
    assert!(ledger.take(2, "a"));
    assert!(!ledger.take(2, "b"));
    assert_eq!(ledger.values_of(&"a").collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(ledger.release(3), None);
    assert_eq!(ledger.first_free_in(3, 3), None);
    assert_eq!(ledger.release(1), Some("a"));
    assert_eq!(ledger.release(2), Some("a"));
    assert_eq!(ledger.values_of(&"a").count(), 0);
    assert_eq!(ledger.first_free_in(0, 10), Some(0));
    assert_eq!(ledger.first_free_in(3, 10), Some(4));
    assert_eq!(ledger.len(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn range_set_matches_a_plain_set(
        ops in proptest::collection::vec((any::<bool>(), 0u128..40), 0..80),
        first in 0u128..45,
        len in 0u128..45,
    ) {
        let mut set = RangeSet::default();
        let mut model = BTreeSet::new();
        for (add, v) in ops {
            if add {
                prop_assert_eq!(set.insert(v), model.insert(v));
            } else {
                prop_assert_eq!(set.remove(v), model.remove(&v));
            }
            let runs: Vec<_> = set.runs().collect();
            for pair in runs.windows(2) {
                prop_assert!(pair[0].1 + 1 < pair[1].0, "runs {:?} not merged", runs);
            }
        }
        let last = first + len;
        let expected_free = (first..=last).find(|v| !model.contains(v));
        prop_assert_eq!(set.first_absent_in(first, last), expected_free);
        let expected_count = model.range(first..=last).count() as u128;
        prop_assert_eq!(set.count_in(first, last), expected_count);
        for v in 0..45 {
            prop_assert_eq!(set.contains(v), model.contains(&v));
        }
    }
}
