#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use ferrinet_proto::node::v1 as pb;
use proptest::prelude::*;

use super::*;

fn meta(name: &str, managed: bool, version: u64) -> Option<pb::Metadata> {
    let mut labels = std::collections::HashMap::new();
    if managed {
        labels.insert(MANAGED_BY.to_string(), REGION.to_string());
    }
    Some(pb::Metadata {
        name: name.into(),
        labels,
        resource_version: version,
        ..Default::default()
    })
}

fn net(name: &str, vni: u32, managed: bool) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::Network(pb::Network {
            metadata: meta(name, managed, 7),
            spec: Some(pb::NetworkSpec {
                id: vni,
                ..Default::default()
            }),
            status: None,
        })),
    }
}

fn iface(name: &str, network: &str, ip: &str, managed: bool) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::NetworkInterface(pb::NetworkInterface {
            metadata: meta(name, managed, 9),
            spec: Some(pb::NetworkInterfaceSpec {
                network: network.into(),
                ips: vec![ip.into()],
                ..Default::default()
            }),
            status: None,
        })),
    }
}

fn lb(name: &str, network: &str, managed: bool) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::LoadBalancer(pb::LoadBalancer {
            metadata: meta(name, managed, 11),
            spec: Some(pb::LoadBalancerSpec {
                network: network.into(),
                ip: "10.0.0.100".into(),
                ..Default::default()
            }),
            status: None,
        })),
    }
}

fn deleting(mut o: pb::Object) -> pb::Object {
    if let Some(pb::object::Object::NetworkInterface(i)) = &mut o.object {
        i.status = Some(pb::NetworkInterfaceStatus {
            phase: pb::Phase::Deleting.into(),
            ..Default::default()
        });
    }
    o
}

fn placed(objects: &[pb::Object]) -> BTreeMap<Key, pb::Object> {
    objects.iter().filter_map(desired).collect()
}

fn key(kind: pb::Kind, name: &str) -> Key {
    Key {
        kind,
        name: name.into(),
    }
}

fn summary(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| match s {
            Step::Create(o) => format!("create {}", Key::of(o).unwrap()),
            Step::Update(o) => format!("update {}@{}", Key::of(o).unwrap(), version(o)),
            Step::Delete(k, v) => format!("delete {k}@{v}"),
        })
        .collect()
}

#[test]
fn desired_keeps_name_labels_and_spec_only() {
    let mut o = iface("web", "blue", "10.0.0.5", false);
    if let Some(pb::object::Object::NetworkInterface(i)) = &mut o.object {
        i.status = Some(pb::NetworkInterfaceStatus::default());
        let m = i.metadata.as_mut().unwrap();
        m.generation = 3;
        m.labels.insert("ferrinet.dev/source".into(), "x".into());
    }
    let (k, d) = desired(&o).unwrap();
    assert_eq!(k, key(pb::Kind::NetworkInterface, "web"));
    assert!(is_managed(&d));
    let m = metadata(&d).unwrap();
    assert_eq!((m.resource_version, m.generation), (0, 0));
    assert_eq!(m.labels.len(), 2);
    assert!(
        matches!(&d.object, Some(pb::object::Object::NetworkInterface(i)) if i.status.is_none())
    );
    assert!(desired(&pb::Object::default()).is_none());
    assert!(desired(&net("", 1, true)).is_none());
}

#[test]
fn networks_first_on_create_last_on_delete() {
    let want = placed(&[
        iface("web", "blue", "10.0.0.5", true),
        net("blue", 1, true),
        lb("lb", "blue", true),
    ]);
    let p = plan(&want, &[], true, &BTreeSet::new());
    assert_eq!(
        summary(&p),
        [
            "create network/blue",
            "create networkinterface/web",
            "create loadbalancer/lb"
        ]
    );
    let current = [
        net("red", 2, true),
        iface("db", "red", "10.0.0.6", true),
        net("blue", 1, true),
    ];
    let p = plan(&want, &current, true, &BTreeSet::new());
    // red is still used by db, whose deletion finishes asynchronously: plan again later.
    assert_eq!(
        summary(&p),
        [
            "delete networkinterface/db@9",
            "create networkinterface/web",
            "create loadbalancer/lb"
        ]
    );
    assert_eq!(p.waiting, [key(pb::Kind::Network, "red")]);
    let p = plan(&want, &[net("red", 2, true)], true, &BTreeSet::new());
    assert_eq!(summary(&p)[3], "delete network/red@7");
}

#[test]
fn equal_objects_are_left_alone_changed_ones_updated_at_their_version() {
    let want = placed(&[net("blue", 1, true), iface("web", "blue", "10.0.0.5", true)]);
    let current: Vec<pb::Object> = want.values().cloned().collect();
    assert_eq!(
        plan(&want, &current, true, &BTreeSet::new()),
        Plan::default()
    );
    let changed = [net("blue", 1, true), iface("web", "blue", "10.0.0.9", true)];
    let p = plan(&want, &changed, true, &BTreeSet::new());
    assert_eq!(summary(&p), ["update networkinterface/web@9"]);
}

#[test]
fn local_objects_are_never_touched() {
    let want = placed(&[net("blue", 1, true)]);
    let current = [
        net("blue", 5, false),
        iface("mine", "blue", "10.0.0.7", false),
    ];
    let p = plan(&want, &current, true, &BTreeSet::new());
    assert!(p.steps.is_empty());
    assert_eq!(p.foreign, [key(pb::Kind::Network, "blue")]);
}

#[test]
fn no_deletes_before_the_snapshot_is_complete() {
    let current = [net("red", 2, true), iface("db", "red", "10.0.0.6", true)];
    let p = plan(&BTreeMap::new(), &current, false, &BTreeSet::new());
    assert_eq!(p, Plan::default());
}

#[test]
fn held_objects_are_neither_applied_nor_pruned() {
    let want = placed(&[iface("web", "blue", "bad", true)]);
    let hold = BTreeSet::from([key(pb::Kind::NetworkInterface, "web")]);
    let current = [iface("web", "blue", "10.0.0.5", true)];
    assert_eq!(plan(&want, &current, true, &hold), Plan::default());
}

#[test]
fn objects_being_deleted_wait() {
    let want = placed(&[iface("web", "blue", "10.0.0.5", true)]);
    let current = [deleting(iface("web", "blue", "10.0.0.5", true))];
    let p = plan(&want, &current, true, &BTreeSet::new());
    assert!(p.steps.is_empty());
    assert_eq!(p.waiting, [key(pb::Kind::NetworkInterface, "web")]);
    // Not desired and already going: nothing to do.
    assert_eq!(
        plan(&BTreeMap::new(), &current, true, &BTreeSet::new()),
        Plan::default()
    );
}

/// Applies a plan the way the ApiActor would, deletions finishing at once; panics where the
/// node would refuse or the plan breaks a rule.
fn apply(
    current: &mut BTreeMap<Key, pb::Object>,
    p: &Plan,
    want: &BTreeMap<Key, pb::Object>,
    hold: &BTreeSet<Key>,
) {
    for s in &p.steps {
        match s {
            Step::Create(o) | Step::Update(o) => {
                let k = Key::of(o).unwrap();
                if let Some(have) = current.get(&k) {
                    assert!(is_managed(have), "{k}: a local object was changed");
                    assert!(matches!(s, Step::Update(_)), "{k}: created twice");
                    assert_eq!(version(o), version(have));
                }
                // A placed network an interface uses exists, as placed, before the interface.
                if let Some(n) = network_of(o) {
                    let nk = key(pb::Kind::Network, n);
                    if let Some(wn) = want.get(&nk)
                        && !hold.contains(&nk)
                        && current.get(&nk).is_none_or(is_managed)
                    {
                        assert!(
                            current.get(&nk).is_some_and(|c| same(c, wn)),
                            "{k} before {nk}"
                        );
                    }
                }
                current.insert(k, with_version(o, version(o) + 1));
            }
            Step::Delete(k, v) => {
                let have = current.get(k).unwrap();
                assert!(is_managed(have), "{k}: a local object was deleted");
                assert_eq!(*v, version(have));
                if k.kind == pb::Kind::Network {
                    assert!(
                        !current
                            .values()
                            .any(|o| network_of(o) == Some(k.name.as_str())),
                        "{k} deleted while in use"
                    );
                }
                current.remove(k);
            }
        }
    }
}

fn object() -> impl Strategy<Value = pb::Object> {
    let name = prop::sample::select(vec!["a", "b", "c"]);
    let network = prop::sample::select(vec!["n1", "n2", "n3"]);
    prop_oneof![
        (network.clone(), 1u32..3, any::<bool>()).prop_map(|(n, v, m)| net(n, v, m)),
        (name.clone(), network.clone(), 0u8..2, any::<bool>()).prop_map(|(i, n, ip, m)| iface(
            i,
            n,
            &format!("10.0.0.{ip}"),
            m
        )),
        (prop::sample::select(vec!["x", "y"]), network, any::<bool>())
            .prop_map(|(l, n, m)| lb(l, n, m)),
    ]
}

proptest! {
    #[test]
    fn plans_converge_and_keep_their_rules(
        want in prop::collection::vec(object(), 0..8),
        have in prop::collection::vec(object(), 0..8),
        prune in any::<bool>(),
        hold in prop::collection::btree_set(prop::sample::select(vec!["a", "n1", "x"]), 0..2),
    ) {
        let want = placed(&want);
        let hold: BTreeSet<Key> = want
            .keys()
            .filter(|k| hold.contains(k.name.as_str()))
            .cloned()
            .collect();
        let mut current: BTreeMap<Key, pb::Object> =
            have.into_iter().filter_map(|o| Key::of(&o).map(|k| (k, o))).collect();
        let locals: BTreeMap<Key, pb::Object> =
            current.iter().filter(|(_, o)| !is_managed(o)).map(|(k, o)| (k.clone(), o.clone())).collect();
        let before = current.clone();
        let mut last = Plan::default();
        for _ in 0..3 {
            last = plan(&want, &current.values().cloned().collect::<Vec<_>>(), prune, &hold);
            if !prune {
                prop_assert!(!last.steps.iter().any(|s| matches!(s, Step::Delete(..))));
            }
            apply(&mut current, &last, &want, &hold);
        }
        // Converged: nothing left to do.
        prop_assert!(last.steps.is_empty(), "{:?}", summary(&last));
        for (k, o) in &locals {
            prop_assert_eq!(current.get(k), Some(o));
        }
        for (k, w) in &want {
            match current.get(k) {
                _ if hold.contains(k) => prop_assert_eq!(current.get(k), before.get(k)),
                Some(c) if is_managed(c) => prop_assert!(same(c, w)),
                Some(_) => prop_assert!(last.foreign.contains(k)),
                None => prop_assert!(false, "{} missing", k),
            }
        }
        if prune {
            for (k, c) in &current {
                // A managed network that stays is one a local object still uses.
                prop_assert!(
                    !is_managed(c) || want.contains_key(k) || last.waiting.contains(k),
                    "{} not pruned", k
                );
            }
        }
    }
}
