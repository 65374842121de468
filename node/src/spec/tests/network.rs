use std::collections::BTreeMap;

use ferrinet_proto::node::v1 as pb;

use super::{Case, V4, V6, check_cases, network_pb};
use crate::spec::{NetworkSpec, validate_network};

fn spec(n: &mut pb::Network) -> &mut pb::NetworkSpec {
    n.spec.as_mut().expect("spec")
}

#[test]
fn good_network_validates_with_sorted_filters() {
    let (name, s) = validate_network(&network_pb(), &V4).unwrap();
    assert_eq!(name, "net-1");
    let expected = NetworkSpec {
        vni: 23,
        peerings: BTreeMap::from([
            (24, None),
            (
                25,
                Some(vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "10.25.0.0/16".parse().unwrap(),
                    "fd00:25::/64".parse().unwrap(),
                ]),
            ),
        ]),
    };
    assert_eq!(s, expected);
    assert_eq!(validate_network(&network_pb(), &V6).unwrap().1, expected);
}

#[test]
fn peering_with_empty_prefix_list_exports_nothing() {
    let mut n = network_pb();
    spec(&mut n).peered_prefixes[0].prefixes.clear();
    let (_, s) = validate_network(&n, &V4).unwrap();
    assert_eq!(s.peerings.get(&25), Some(&Some(vec![])));
}

#[test]
fn largest_vni_is_accepted() {
    let mut n = network_pb();
    spec(&mut n).id = 16_777_215;
    assert_eq!(validate_network(&n, &V4).unwrap().1.vni, 16_777_215);
}

#[test]
fn bad_networks_name_the_field() {
    let cases: &[Case<pb::Network>] = &[
        ("metadata.name", V4, |n| n.metadata = None),
        ("metadata.name", V4, |n| {
            n.metadata.as_mut().unwrap().name = String::new()
        }),
        ("metadata.name", V4, |n| {
            n.metadata.as_mut().unwrap().name = "a b".into()
        }),
        ("metadata.name", V4, |n| {
            n.metadata.as_mut().unwrap().name = "é".into()
        }),
        ("metadata.name", V4, |n| {
            n.metadata.as_mut().unwrap().name = "a".repeat(64)
        }),
        ("metadata.labels[\"\"]", V4, |n| {
            n.metadata
                .as_mut()
                .unwrap()
                .labels
                .insert(String::new(), "x".into());
        }),
        ("metadata.labels[\"a b\"]", V4, |n| {
            n.metadata
                .as_mut()
                .unwrap()
                .labels
                .insert("a b".into(), "x".into());
        }),
        ("metadata.labels[\"k\"]", V4, |n| {
            n.metadata
                .as_mut()
                .unwrap()
                .labels
                .insert("k".into(), "x\ny".into());
        }),
        ("metadata.labels[\"k\"]", V4, |n| {
            n.metadata
                .as_mut()
                .unwrap()
                .labels
                .insert("k".into(), "v".repeat(254));
        }),
        ("spec", V4, |n| n.spec = None),
        ("spec.id", V4, |n| spec(n).id = 0),
        ("spec.id", V4, |n| spec(n).id = 1 << 24),
        ("spec.peered_ids[1]", V4, |n| spec(n).peered_ids[1] = 0),
        ("spec.peered_ids[0]", V4, |n| {
            spec(n).peered_ids[0] = 1 << 24
        }),
        ("spec.peered_ids[1]", V4, |n| spec(n).peered_ids[1] = 24),
        ("spec.peered_ids[0]", V4, |n| spec(n).peered_ids[0] = 23),
        ("spec.peered_prefixes[0].id", V4, |n| {
            spec(n).peered_prefixes[0].id = 26
        }),
        ("spec.peered_prefixes[1].id", V4, |n| {
            let dup = spec(n).peered_prefixes[0].clone();
            spec(n).peered_prefixes.push(dup);
        }),
        ("spec.peered_prefixes[0].prefixes[1]", V4, |n| {
            spec(n).peered_prefixes[0].prefixes[1] = "10.0.0.1/8".into()
        }),
        ("spec.peered_prefixes[0].prefixes[0]", V4, |n| {
            spec(n).peered_prefixes[0].prefixes[0] = "garbage".into()
        }),
        ("spec.peered_prefixes[0].prefixes[0]", V4, |n| {
            spec(n).peered_prefixes[0].prefixes[0] = "10.0.0.0".into()
        }),
        ("spec.peered_prefixes[0].prefixes[3]", V4, |n| {
            spec(n).peered_prefixes[0]
                .prefixes
                .push("10.0.0.0/8".into())
        }),
    ];
    check_cases(&network_pb(), validate_network, cases);
}

#[test]
fn label_errors_do_not_depend_on_map_order() {
    let mut n = network_pb();
    let md = n.metadata.as_mut().unwrap();
    for k in ["z z", "a a", "m m"] {
        md.labels.insert(k.into(), String::new());
    }
    let e = validate_network(&n, &V4).unwrap_err();
    assert_eq!(e.field, "metadata.labels[\"a a\"]");
}
