//! Placed names and source labels.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use ferrinet_proto::api::v1 as pb;
use proptest::prelude::*;

use super::names::placed_name_with_suffix;
use super::*;

fn node_valid(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[test]
fn short_names_join_namespace_and_name() {
    assert_eq!(placed_name("tenant-a", "web"), "tenant-a_web");
    assert_eq!(
        placed_name_with_suffix("tenant-a", "lb", "_6"),
        "tenant-a_lb_6"
    );
}

#[test]
fn long_names_are_shortened_with_a_stable_hash() {
    let ns = "n".repeat(40);
    let name = "x".repeat(40);
    let placed = placed_name(&ns, &name);
    assert_eq!(placed.len(), 63);
    assert!(node_valid(&placed));
    assert!(placed.starts_with(&format!("{ns}_")));
    // The hash is FNV-1a 64 of "namespace/name": fixed, whatever the toolchain.
    assert_eq!(placed, placed_name(&ns, &name));
    let suffixed = placed_name_with_suffix(&ns, &name, "_6");
    assert_eq!(suffixed.len(), 63);
    assert!(suffixed.ends_with("_6"));
    assert_ne!(&suffixed[..suffixed.len() - 2], &placed[..placed.len() - 2]);
}

#[test]
fn a_name_that_looks_shortened_is_shortened() {
    // 63 characters ending in "-" and 16 hex digits: it could equal another's shortened name.
    let name = format!("{}-0123456789abcdef", "a".repeat(63 - 2 - 17));
    let placed = placed_name("n", &name);
    assert_eq!(placed.len(), 63);
    assert_ne!(placed, format!("n_{name}"));
}

#[test]
fn source_labels_round_trip() {
    let key = ObjKey::new("tenant-a", "web-1");
    let label = source_label(pb::Kind::NetworkInterface, &key);
    assert_eq!(label, "networkinterfaces.tenant-a.web-1");
    assert_eq!(
        parse_source(&label),
        Some((pb::Kind::NetworkInterface, key))
    );
    assert_eq!(parse_source("networks.a"), None);
    assert_eq!(parse_source("gadgets.a.b"), None);
    assert_eq!(parse_source("networks.a.b.c"), None);
    assert_eq!(parse_source("networks.a."), None);
}

fn dns_label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]",
        "[a-z0-9][a-z0-9-]{0,61}[a-z0-9]",
        // Long labels with a hash-like tail, the case the shortening must keep apart.
        "[a-z]{20,44}-[0-9a-f]{16}",
    ]
}

proptest! {
    #[test]
    fn placed_names_are_valid_and_injective(
        keys in prop::collection::btree_set((dns_label(), dns_label()), 1..40),
    ) {
        let mut seen = BTreeSet::new();
        for (ns, name) in &keys {
            for suffix in ["", "_6"] {
                let placed = placed_name_with_suffix(ns, name, suffix);
                prop_assert!(node_valid(&placed), "{placed:?}");
                prop_assert_eq!(&placed, &placed_name_with_suffix(ns, name, suffix));
                prop_assert!(seen.insert(placed.clone()), "{} collides", placed);
            }
        }
    }

    #[test]
    fn shortening_keeps_hash_like_names_apart(
        ns in "[a-z]{1,10}",
        head in "[a-z]{1,30}",
    ) {
        // A long name and the 63-character name that spells its shortened form.
        let long = format!("{head}{}", "z".repeat(64));
        let shortened = placed_name(&ns, &long);
        let (prefix, _) = shortened.split_once('_').unwrap();
        prop_assert_eq!(prefix, ns.as_str());
        let spelled = &shortened[ns.len() + 1..];
        prop_assert_ne!(placed_name(&ns, spelled), shortened);
    }

    #[test]
    fn sources_round_trip(ns in dns_label(), name in dns_label(), k in 0usize..8) {
        let kinds = [
            pb::Kind::Network,
            pb::Kind::NetworkInterface,
            pb::Kind::VirtualIp,
            pb::Kind::PublicPrefix,
            pb::Kind::NatGateway,
            pb::Kind::LoadBalancer,
            pb::Kind::NetworkPolicy,
            pb::Kind::Node,
        ];
        let key = ObjKey::new(ns, name);
        let label = source_label(kinds[k], &key);
        prop_assert!(label.len() <= 253);
        prop_assert_eq!(parse_source(&label), Some((kinds[k], key)));
    }
}
