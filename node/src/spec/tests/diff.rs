use std::collections::BTreeSet;

use proptest::collection::{btree_map, btree_set};
use proptest::prelude::*;

use crate::spec::{Diff, diff, diff_keys};

#[test]
fn diff_of_small_sets() {
    let desired = BTreeSet::from([1, 2, 3]);
    let actual = BTreeSet::from([3, 4]);
    assert_eq!(
        diff(&desired, &actual),
        Diff {
            add: BTreeSet::from([1, 2]),
            remove: BTreeSet::from([4]),
        }
    );
    assert!(diff(&desired, &desired).is_empty());
    assert!(Diff::<u8>::default().is_empty());
}

proptest! {
    #[test]
    fn applying_a_diff_reaches_desired(
        desired in btree_set(0u8..16, 0..10),
        actual in btree_set(0u8..16, 0..10),
    ) {
        let d = diff(&desired, &actual);
        prop_assert!(d.add.is_disjoint(&actual));
        prop_assert!(d.remove.is_subset(&actual));
        prop_assert!(d.remove.is_disjoint(&desired));
        prop_assert!(d.add.is_disjoint(&d.remove));
        let mut state = actual.clone();
        for x in &d.remove { state.remove(x); }
        state.extend(d.add.iter().copied());
        prop_assert_eq!(&state, &desired);
        prop_assert_eq!(d.is_empty(), desired == actual);
    }

    #[test]
    fn diff_keys_is_diff_of_the_key_set(
        desired in btree_set(0u8..16, 0..10),
        actual in btree_map(0u8..16, any::<u16>(), 0..10),
    ) {
        let keys: BTreeSet<u8> = actual.keys().copied().collect();
        prop_assert_eq!(diff_keys(&desired, &actual), diff(&desired, &keys));
    }
}
