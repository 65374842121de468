//! The peering state machine: the OEP example, one-sided requests, collisions, TTL expiry,
//! deletion, namespaces, validation, and symmetry as a property.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;

const TTL: Duration = Duration::from_secs(3600);

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn key(namespace: &str, name: &str) -> NetworkKey {
    NetworkKey::new(namespace, name)
}

fn network(prefixes: &[&str], peerings: Vec<PeeringItem>) -> PeeringNetwork {
    PeeringNetwork {
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        peerings,
    }
}

fn item(name: &str, target: PeeringRef) -> PeeringItem {
    PeeringItem::new(name, target, t(0))
}

type World = BTreeMap<NetworkKey, PeeringNetwork>;

fn states(out: &BTreeMap<NetworkKey, NetworkPeerings>, k: &NetworkKey) -> Vec<PeeringState> {
    out[k].peerings.iter().map(|s| s.state.clone()).collect()
}

fn ready(peer_peering: &str) -> PeeringState {
    PeeringState::Ready {
        peer_peering: peer_peering.to_string(),
    }
}

fn pending(reason: PendingReason, since: u64) -> PeeringState {
    PeeringState::Pending {
        reason,
        expires_at: Some(t(since) + TTL),
    }
}

fn failed(reason: FailureReason, since: u64) -> PeeringState {
    PeeringState::Failed {
        reason,
        expires_at: Some(t(since) + TTL),
    }
}

/// The OEP example: two namespaces, each network naming the other.
fn oep_world() -> World {
    BTreeMap::from([
        (
            key("customer-manuel", "manuels-network"),
            network(
                &["10.0.0.0/24"],
                vec![item(
                    "peer-with-andre",
                    PeeringRef::in_namespace("customer-andre", "mysupernetwork"),
                )],
            ),
        ),
        (
            key("customer-andre", "mysupernetwork"),
            network(
                &["10.1.0.0/24", "fd00:1::/64"],
                vec![item(
                    "peer-with-manuel",
                    PeeringRef::in_namespace("customer-manuel", "manuels-network"),
                )],
            ),
        ),
    ])
}

#[test]
fn mutual_items_across_namespaces_are_ready_on_both_sides() {
    let manuel = key("customer-manuel", "manuels-network");
    let andre = key("customer-andre", "mysupernetwork");
    let out = compute_peerings(&oep_world(), t(60), TTL);
    assert_eq!(states(&out, &manuel), [ready("peer-with-manuel")]);
    assert_eq!(states(&out, &andre), [ready("peer-with-andre")]);
    let status = &out[&manuel].peerings[0];
    assert_eq!(
        (status.peer.clone(), status.unready_since),
        (andre.clone(), None)
    );
    assert_eq!(
        out[&manuel].peered,
        [PeeredNetwork {
            network: andre.clone(),
            peering: "peer-with-andre".to_string(),
            peer_peering: "peer-with-manuel".to_string(),
            prefixes: vec![net("10.1.0.0/24"), net("fd00:1::/64")],
        }]
    );
    assert_eq!(out[&andre].peered[0].prefixes, [net("10.0.0.0/24")]);
    assert_eq!(
        out[&andre].incoming,
        [IncomingPeering {
            from: manuel.clone(),
            peering: "peer-with-andre".to_string(),
            state: ready("peer-with-manuel"),
        }]
    );
    assert_eq!(out[&manuel].peerings[0].state.phase().to_string(), "Ready");
}

#[test]
fn a_one_sided_item_is_pending_until_the_other_side_answers() {
    let a = key("ns", "a");
    let b = key("ns", "b");
    let mut world = BTreeMap::from([
        (
            a.clone(),
            network(
                &["10.0.0.0/24"],
                vec![
                    item("to-b", PeeringRef::local("b")),
                    item("to-c", PeeringRef::local("c")),
                ],
            ),
        ),
        (b.clone(), network(&["10.1.0.0/24"], vec![])),
    ]);
    let out = compute_peerings(&world, t(10), TTL);
    assert_eq!(
        states(&out, &a),
        [
            pending(PendingReason::NotReciprocated, 0),
            pending(PendingReason::NetworkNotFound, 0),
        ]
    );
    assert_eq!(out[&a].peerings[1].peer, key("ns", "c"));
    assert_eq!(out[&a].peerings[0].unready_since, Some(t(0)));
    assert!(out[&a].peered.is_empty() && out[&b].peered.is_empty());
    // b sees the request it has not answered.
    assert_eq!(out[&b].incoming.len(), 1);
    assert_eq!(out[&b].incoming[0].state.phase(), PeeringPhase::Pending);

    // b answers: both Ready.
    if let Some(n) = world.get_mut(&b) {
        n.peerings.push(item("to-a", PeeringRef::local("a")));
    }
    let out = compute_peerings(&world, t(20), TTL);
    assert_eq!(states(&out, &a)[0], ready("to-a"));
    assert_eq!(states(&out, &b), [ready("to-b")]);
    assert_eq!(out[&a].peered.len(), 1);
}

#[test]
fn overlapping_prefixes_fail_both_sides_naming_the_pair() {
    let a = key("ns", "a");
    let b = key("other", "b");
    let world = BTreeMap::from([
        (
            a.clone(),
            network(
                &["192.168.0.0/24", "10.0.0.0/16"],
                vec![item("to-b", PeeringRef::in_namespace("other", "b"))],
            ),
        ),
        (
            b.clone(),
            network(
                &["10.0.128.0/17"],
                vec![item("to-a", PeeringRef::in_namespace("ns", "a"))],
            ),
        ),
    ]);
    let out = compute_peerings(&world, t(5), TTL);
    let pair = |ours: &str, theirs: &str| FailureReason::Overlap {
        ours: net(ours),
        theirs: net(theirs),
    };
    assert_eq!(
        states(&out, &a),
        [failed(pair("10.0.0.0/16", "10.0.128.0/17"), 0)]
    );
    assert_eq!(
        states(&out, &b),
        [failed(pair("10.0.128.0/17", "10.0.0.0/16"), 0)]
    );
    assert_eq!(
        pair("10.0.0.0/16", "10.0.128.0/17").to_string(),
        "prefix 10.0.0.0/16 overlaps the peer's prefix 10.0.128.0/17"
    );
    assert!(out[&a].peered.is_empty());
}

#[test]
fn prefix_filters_expose_only_part_of_a_network() {
    // Both networks use 10.0.0.0/16 internally and expose only a distinct range.
    let a = key("ns", "a");
    let b = key("ns", "b");
    let mut to_b = item("to-b", PeeringRef::local("b"));
    to_b.prefixes = vec![net("172.16.0.0/24")];
    let mut to_a = item("to-a", PeeringRef::local("a"));
    to_a.prefixes = vec![net("172.17.0.0/25"), net("172.18.0.0/16")];
    let mut world = BTreeMap::from([
        (
            a.clone(),
            network(&["10.0.0.0/16", "172.16.0.0/24"], vec![to_b]),
        ),
        (
            b.clone(),
            network(&["10.0.0.0/16", "172.17.0.0/24"], vec![to_a]),
        ),
    ]);
    let out = compute_peerings(&world, t(5), TTL);
    assert_eq!(states(&out, &a), [ready("to-a")]);
    // a routes the part of b's subnets b exposes; b's filter entry outside them adds nothing.
    assert_eq!(out[&a].peered[0].prefixes, [net("172.17.0.0/25")]);
    assert_eq!(out[&b].peered[0].prefixes, [net("172.16.0.0/24")]);

    // Without a's filter, a exposes its 10.0.0.0/16, which b owns too.
    if let Some(n) = world.get_mut(&a) {
        n.peerings[0].prefixes.clear();
    }
    let out = compute_peerings(&world, t(5), TTL);
    assert_eq!(
        states(&out, &a),
        [failed(
            FailureReason::Overlap {
                ours: net("10.0.0.0/16"),
                theirs: net("10.0.0.0/16")
            },
            0
        )]
    );
    assert_eq!(out[&b].peerings[0].state.phase(), PeeringPhase::Failed);
}

#[test]
fn self_references_and_repeated_items_fail() {
    let a = key("ns", "a");
    let b = key("ns", "b");
    let world = BTreeMap::from([
        (
            a.clone(),
            network(
                &["10.0.0.0/24"],
                vec![
                    item("me", PeeringRef::in_namespace("ns", "a")),
                    item("to-b", PeeringRef::local("b")),
                    item("to-b", PeeringRef::local("c")),
                    item("again", PeeringRef::in_namespace("", "b")),
                ],
            ),
        ),
        (
            b.clone(),
            network(&["10.1.0.0/24"], vec![item("to-a", PeeringRef::local("a"))]),
        ),
    ]);
    let out = compute_peerings(&world, t(5), TTL);
    assert_eq!(
        states(&out, &a),
        [
            failed(FailureReason::SelfReference, 0),
            ready("to-a"),
            failed(FailureReason::DuplicateName { first: 1 }, 0),
            failed(
                FailureReason::DuplicateReference {
                    first: "to-b".to_string()
                },
                0
            ),
        ]
    );
    // A network does not list itself as incoming; b sees both of a's items naming it.
    assert!(out[&a].incoming.iter().all(|i| i.from != a));
    let incoming: Vec<(&str, PeeringPhase)> = out[&b]
        .incoming
        .iter()
        .map(|i| (i.peering.as_str(), i.state.phase()))
        .collect();
    assert_eq!(
        incoming,
        [
            ("again", PeeringPhase::Failed),
            ("to-b", PeeringPhase::Ready)
        ]
    );
}

#[test]
fn the_ttl_expires_pending_and_failed_items_only() {
    let a = key("ns", "a");
    let b = key("ns", "b");
    let c = key("ns", "c");
    let world = BTreeMap::from([
        (
            a.clone(),
            network(
                &["10.0.0.0/24"],
                vec![
                    item("lonely", PeeringRef::local("x")),
                    item("clash", PeeringRef::local("b")),
                    item("good", PeeringRef::local("c")),
                ],
            ),
        ),
        (
            b.clone(),
            network(
                &["10.0.0.0/25"],
                vec![item("clash", PeeringRef::local("a"))],
            ),
        ),
        (
            c.clone(),
            network(&["10.2.0.0/24"], vec![item("good", PeeringRef::local("a"))]),
        ),
    ]);
    let deadline = t(0) + TTL;
    let at_deadline = compute_peerings(&world, deadline, TTL);
    assert_eq!(
        states(&at_deadline, &a)
            .iter()
            .map(PeeringState::phase)
            .collect::<Vec<_>>(),
        [
            PeeringPhase::Pending,
            PeeringPhase::Failed,
            PeeringPhase::Ready
        ]
    );
    let later = compute_peerings(&world, deadline + Duration::from_secs(1), TTL);
    assert_eq!(
        states(&later, &a),
        [
            PeeringState::Expired {
                last: Unready::Pending(PendingReason::NetworkNotFound),
                expired_at: deadline
            },
            PeeringState::Expired {
                last: Unready::Failed(FailureReason::Overlap {
                    ours: net("10.0.0.0/24"),
                    theirs: net("10.0.0.0/25")
                }),
                expired_at: deadline
            },
            ready("good"),
        ]
    );
    // Ready is unaffected by the age of the item.
    let much_later = compute_peerings(&world, t(1_000_000), TTL);
    assert_eq!(states(&much_later, &c), [ready("good")]);
    assert_eq!(much_later[&c].peerings[0].unready_since, None);
    // b's view of the expired request.
    assert_eq!(later[&b].incoming[0].state.phase(), PeeringPhase::Expired);
}

#[test]
fn losing_the_peer_turns_a_ready_item_back_to_pending_with_a_fresh_ttl() {
    let mut world = oep_world();
    let manuel = key("customer-manuel", "manuels-network");
    let andre = key("customer-andre", "mysupernetwork");
    let out = compute_peerings(&world, t(100), TTL);
    // The caller stores each status' unready_since and passes it back.
    for (k, n) in world.iter_mut() {
        for (item, status) in n.peerings.iter_mut().zip(&out[k].peerings) {
            item.unready_since = status.unready_since;
        }
    }
    world.remove(&andre);
    let now = t(100_000);
    let out = compute_peerings(&world, now, TTL);
    assert_eq!(
        states(&out, &manuel),
        [PeeringState::Pending {
            reason: PendingReason::NetworkNotFound,
            expires_at: Some(now + TTL)
        }]
    );
    assert_eq!(out[&manuel].peerings[0].unready_since, Some(now));
    assert!(out[&manuel].peered.is_empty() && !out.contains_key(&andre));

    // Fed back again, the clock keeps running from that moment and runs out one TTL later.
    world.get_mut(&manuel).unwrap().peerings[0].unready_since = Some(now);
    let out = compute_peerings(&world, now + TTL + Duration::from_secs(1), TTL);
    assert_eq!(
        out[&manuel].peerings[0].state.phase(),
        PeeringPhase::Expired
    );
}

#[test]
fn references_without_a_namespace_stay_in_their_own() {
    // ns1/a names "b" meaning ns1/b, which does not exist; ns2/b names ns1/a.
    let a = key("ns1", "a");
    let b = key("ns2", "b");
    let world = BTreeMap::from([
        (
            a.clone(),
            network(&[], vec![item("to-b", PeeringRef::local("b"))]),
        ),
        (
            b.clone(),
            network(
                &[],
                vec![item("to-a", PeeringRef::in_namespace("ns1", "a"))],
            ),
        ),
    ]);
    let out = compute_peerings(&world, t(1), TTL);
    assert_eq!(
        states(&out, &a),
        [pending(PendingReason::NetworkNotFound, 0)]
    );
    assert_eq!(
        states(&out, &b),
        [pending(PendingReason::NotReciprocated, 0)]
    );
    assert_eq!(out[&a].incoming[0].from, b);
    assert_eq!(
        PeeringRef::in_namespace("", "b").resolve("ns1"),
        key("ns1", "b")
    );
}

#[test]
fn exposed_prefixes_are_the_filtered_parts_of_the_network() {
    let own = [net("10.0.0.0/16"), net("10.1.0.0/16")];
    assert_eq!(exposed(&own, &[]), own);
    assert_eq!(
        exposed(
            &own,
            &[net("10.0.5.0/24"), net("10.0.0.0/8"), net("11.0.0.0/8")]
        ),
        [net("10.0.0.0/16"), net("10.0.5.0/24"), net("10.1.0.0/16")]
    );
}

#[test]
fn validation_names_each_bad_field() {
    let mut bad_prefix = item("Bad_Name", PeeringRef::in_namespace("Other NS", "net..x"));
    bad_prefix.prefixes = vec![net("10.0.0.1/24")];
    let n = network(
        &[],
        vec![
            item("ok", PeeringRef::local("b")),
            bad_prefix,
            item("ok", PeeringRef::in_namespace("", "c")),
        ],
    );
    let errors: Vec<String> = n
        .validate()
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "spec.peerings[1].name: \"Bad_Name\" is not a DNS label (1 to 63 of lowercase \
             letters, digits and '-')",
            "spec.peerings[1].networkRef.name: \"net..x\" is not a valid network name (a DNS \
             subdomain)",
            "spec.peerings[1].networkRef.namespace: \"Other NS\" is not a valid namespace (a \
             DNS label)",
            "spec.peerings[1].prefixes[0]: 10.0.0.1/24 has host bits set (the network is \
             10.0.0.0/24)",
            "spec.peerings[2].name: \"ok\" is used already by spec.peerings[0]",
        ]
    );
    assert_eq!(
        oep_world()
            .values()
            .map(PeeringNetwork::validate)
            .collect::<Vec<_>>(),
        [Ok(()), Ok(())]
    );
}

// Random worlds over a few names, namespaces and prefixes, so that references, matches and
// collisions are all common.
fn world_strategy() -> impl Strategy<Value = (World, u64)> {
    let names = ["a", "b", "c"];
    let namespaces = ["x", "y"];
    let prefixes = [
        "10.0.0.0/16",
        "10.0.1.0/24",
        "10.1.0.0/16",
        "192.168.0.0/24",
        "fd00::/64",
    ];
    let reference = (
        prop::sample::select(names.to_vec()),
        prop::option::of(prop::sample::select(namespaces.to_vec())),
    )
        .prop_map(|(name, namespace)| PeeringRef {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
        });
    let peering = (
        prop::sample::select(vec!["p1", "p2", "p3"]),
        reference,
        prop::sample::subsequence(prefixes.to_vec(), 0..=2),
        prop::option::of(0u64..200),
    )
        .prop_map(|(name, network_ref, filter, since)| PeeringItem {
            name: name.to_string(),
            network_ref,
            prefixes: filter.iter().map(|p| net(p)).collect(),
            unready_since: since.map(t),
        });
    let network = (
        prop::sample::subsequence(prefixes.to_vec(), 0..=2),
        prop::collection::vec(peering, 0..4),
    )
        .prop_map(|(p, peerings)| PeeringNetwork {
            prefixes: p.iter().map(|s| net(s)).collect(),
            peerings,
        });
    let keys: Vec<NetworkKey> = namespaces
        .iter()
        .flat_map(|ns| names.iter().map(move |n| key(ns, n)))
        .collect();
    (
        prop::collection::vec(prop::option::of(network), keys.len()),
        0u64..400,
    )
        .prop_map(move |(networks, now)| {
            let world = keys
                .iter()
                .cloned()
                .zip(networks)
                .filter_map(|(k, n)| n.map(|n| (k, n)))
                .collect();
            (world, now)
        })
}

/// Pending or Failed with its reason, also when expired.
fn unready(state: &PeeringState) -> Option<Unready> {
    match state {
        PeeringState::Ready { .. } => None,
        PeeringState::Pending { reason, .. } => Some(Unready::Pending(reason.clone())),
        PeeringState::Failed { reason, .. } => Some(Unready::Failed(reason.clone())),
        PeeringState::Expired { last, .. } => Some(last.clone()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ready_is_symmetric_and_the_ttl_only_ends_unready_items((world, now) in world_strategy()) {
        let ttl = Duration::from_secs(100);
        let now = t(now);
        let out = compute_peerings(&world, now, ttl);
        prop_assert_eq!(out.keys().collect::<Vec<_>>(), world.keys().collect::<Vec<_>>());
        for (k, n) in &world {
            let result = &out[k];
            prop_assert_eq!(result.peerings.len(), n.peerings.len());
            for (item, status) in n.peerings.iter().zip(&result.peerings) {
                prop_assert_eq!(&status.name, &item.name);
                match &status.state {
                    PeeringState::Ready { peer_peering } => {
                        // The peer has the named item, Ready and naming us back.
                        let theirs = &out[&status.peer];
                        let back = theirs.peerings.iter().find(|s| s.name == *peer_peering);
                        prop_assert!(back.is_some());
                        let back = back.unwrap();
                        prop_assert_eq!(&back.peer, k);
                        prop_assert_eq!(&back.state, &ready(&status.name));
                        prop_assert!(theirs.peered.iter().any(|p| p.network == *k));
                        prop_assert!(result.peered.iter().any(|p| p.network == status.peer));
                        prop_assert_eq!(status.unready_since, None);
                    }
                    other => {
                        let since = item.unready_since.unwrap_or(now);
                        prop_assert_eq!(status.unready_since, Some(since));
                        let expired = now > since + ttl;
                        prop_assert_eq!(other.phase() == PeeringPhase::Expired, expired);
                    }
                }
                // A collision is reported on both sides with the pair swapped.
                if let Some(Unready::Failed(FailureReason::Overlap { ours, theirs })) = unready(&status.state)
                    && let Some(peer) = out.get(&status.peer)
                {
                    let mirrored = peer.peerings.iter().any(|s| {
                        s.peer == *k
                            && unready(&s.state)
                                == Some(Unready::Failed(FailureReason::Overlap { ours: theirs, theirs: ours }))
                    });
                    prop_assert!(mirrored, "{} {:?}", k, status);
                }
            }
            // Peered lists hold Ready items only, one per peer, sorted.
            let ready_count = result.peerings.iter().filter(|s| s.state.is_ready()).count();
            prop_assert_eq!(result.peered.len(), ready_count);
            prop_assert!(result.peered.windows(2).all(|w| w[0].network < w[1].network));
            // Incoming: every other network's item that names this one.
            let naming = world
                .iter()
                .filter(|(other, _)| *other != k)
                .flat_map(|(other, m)| m.peerings.iter().map(move |p| p.network_ref.resolve(&other.namespace)))
                .filter(|target| target == k)
                .count();
            prop_assert_eq!(result.incoming.len(), naming);
        }
    }
}
