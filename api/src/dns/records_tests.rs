//! The record computation: names, reverse names of both families, invalid labels and
//! addresses, duplicates, and properties over random entries (PTRs lead back, order is
//! irrelevant).

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use hickory_server::proto::rr::{Name, RData, Record};
use proptest::prelude::*;

use super::*;

fn zone() -> Zone {
    Zone::new("region1.ferrinet.internal").unwrap()
}

fn entry(ns: &str, net: &str, host: &str, addrs: &[&str]) -> DnsEntry {
    DnsEntry {
        namespace: ns.into(),
        network: net.into(),
        hostname: host.into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// `"<owner> <TYPE> <data>"`, for readable assertions.
fn show(r: &Record) -> String {
    format!("{} {} {}", r.name, r.record_type(), r.data)
}

fn shown(set: &RecordSet, owner: &str) -> Option<Vec<String>> {
    set.node(&name(owner))
        .map(|rs| rs.iter().map(show).collect())
}

#[test]
fn zone_accepts_a_trailing_dot_and_folds_case() {
    let a = Zone::new("Region1.Ferrinet.Internal.").unwrap();
    assert_eq!(a, zone());
    assert_eq!(a.to_string(), "region1.ferrinet.internal.");
    assert_eq!(a.name(), &name("region1.ferrinet.internal."));
    assert_eq!(a.ttl(), DEFAULT_TTL);
}

#[test]
fn zone_errors_name_the_key() {
    let cases = [
        ("", "dns.zone: must name a zone below the root"),
        (".", "dns.zone: must name a zone below the root"),
        ("a..b", "dns.zone: must not be empty"),
        ("-a.b", "dns.zone: must not start or end with '-'"),
        ("a_b.internal", "dns.zone: '_' is not allowed"),
        ("10.in-addr.arpa", "dns.zone: must not lie in arpa."),
        (&"x".repeat(64), "dns.zone: 64 characters, more than 63"),
    ];
    for (value, want) in cases {
        let e = Zone::new(value).unwrap_err().to_string();
        assert!(e.starts_with(want), "{value:?}: {e}");
    }
    let long = vec!["a".repeat(60); 5].join(".");
    let e = Zone::new(&long).unwrap_err();
    assert!(matches!(
        e,
        DnsConfigError::Zone {
            problem: FieldProblem::NameTooLong { len: 304, .. },
            ..
        }
    ));
}

#[test]
fn ttl_is_configurable_and_bounded() {
    let z = zone().with_ttl(Duration::from_secs(300)).unwrap();
    let set = records(&z, &[entry("ns", "net", "web", &["10.0.0.5"])]);
    assert!(set.records().all(|r| r.ttl == 300));
    assert_eq!(zone().with_ttl(MAX_TTL).unwrap().ttl(), MAX_TTL);
    let e = zone()
        .with_ttl(MAX_TTL + Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "dns.ttl: 2147483648 s is more than the largest TTL, 2147483647 s"
    );
}

#[test]
fn dns_name_is_lowercase_and_absolute() {
    let e = entry("Team-A", "Backend", "Web-1", &[]);
    assert_eq!(
        dns_name(&zone(), &e).unwrap(),
        "web-1.backend.team-a.region1.ferrinet.internal."
    );
}

#[test]
fn forward_and_reverse_records_of_both_families() {
    let set = records(
        &zone(),
        &[entry("ns", "net", "web-1", &["10.0.0.5", "fd00:a::5"])],
    );
    assert!(set.problems().is_empty());
    assert_eq!(set.len(), 4);
    let host = "web-1.net.ns.region1.ferrinet.internal.";
    assert_eq!(
        shown(&set, host).unwrap(),
        [
            format!("{host} A 10.0.0.5"),
            format!("{host} AAAA fd00:a::5")
        ]
    );
    assert_eq!(
        shown(&set, "5.0.0.10.in-addr.arpa.").unwrap(),
        [format!("5.0.0.10.in-addr.arpa. PTR {host}")]
    );
    let v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.a.0.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(shown(&set, v6).unwrap(), [format!("{v6} PTR {host}")]);
}

#[test]
fn names_in_between_exist_without_records() {
    let set = records(&zone(), &[entry("ns", "net", "web", &["10.0.0.5"])]);
    for owner in [
        "region1.ferrinet.internal.",
        "ns.region1.ferrinet.internal.",
        "net.ns.region1.ferrinet.internal.",
    ] {
        assert_eq!(shown(&set, owner), Some(vec![]), "{owner}");
    }
    assert_eq!(shown(&set, "other.ns.region1.ferrinet.internal."), None);
    assert_eq!(shown(&set, "0.0.10.in-addr.arpa."), None);
    // Lookups ignore case, as resolvers do.
    assert!(
        set.node(&name("WEB.Net.NS.region1.ferrinet.internal."))
            .is_some()
    );
}

#[test]
fn invalid_labels_skip_the_entry_and_name_the_field() {
    let set = records(
        &zone(),
        &[
            entry("ns", "net", "ok", &["10.0.0.1"]),
            entry("ns", "net", "web_1", &["10.0.0.2"]),
            entry("ns", "", "web", &["10.0.0.3"]),
            entry("ns", "my.net", "web", &["10.0.0.4"]),
            entry("-ns", "net", "web", &["10.0.0.5"]),
            entry("ns", "net", &"h".repeat(64), &["10.0.0.6"]),
            entry("ns", "net", "wéb", &["10.0.0.7"]),
        ],
    );
    let problems: Vec<String> = set.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "entries[1].hostname: '_' is not allowed: a DNS label has only letters, digits and '-'",
            "entries[2].network: must not be empty",
            "entries[3].network: '.' is not allowed: a DNS label has only letters, digits and '-'",
            "entries[4].namespace: must not start or end with '-'",
            "entries[5].hostname: 64 characters, more than 63",
            "entries[6].hostname: 'é' is not allowed: a DNS label has only letters, digits and '-'",
        ]
    );
    // Only the valid entry is served: its A and its PTR.
    assert_eq!(set.len(), 2);
    assert!(shown(&set, "2.0.0.10.in-addr.arpa.").is_none());
}

#[test]
fn too_long_a_name_is_a_problem_of_the_hostname() {
    let z = Zone::new(&vec!["z".repeat(60); 3].join(".")).unwrap();
    let e = entry("namespace", "network", &"h".repeat(63), &["10.0.0.1"]);
    let set = records(&z, std::slice::from_ref(&e));
    assert!(set.is_empty());
    let p = &set.problems()[0];
    assert_eq!((p.index, p.error.field.as_str()), (0, "hostname"));
    assert!(matches!(
        p.error.problem,
        FieldProblem::NameTooLong { len: 264, .. }
    ));
    assert_eq!(dns_name(&z, &e).unwrap_err(), p.error);
}

#[test]
fn unservable_addresses_are_left_out_alone() {
    let set = records(
        &zone(),
        &[
            entry(
                "ns",
                "net",
                "web",
                &["0.0.0.0", "10.0.0.5", "::", "127.0.0.1", "ff02::1"],
            ),
            entry("ns", "net", "none", &["0.0.0.0"]),
        ],
    );
    let problems: Vec<String> = set.problems().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 5);
    assert_eq!(
        problems[0],
        "entries[0].addresses[0]: 0.0.0.0 is not an interface address (unspecified, loopback, multicast or broadcast)"
    );
    assert!(problems[4].starts_with("entries[1].addresses[0]: 0.0.0.0"));
    assert_eq!(set.len(), 2);
    assert!(shown(&set, "none.net.ns.region1.ferrinet.internal.").is_none());
}

#[test]
fn duplicates_merge() {
    let host = "web.net.ns.region1.ferrinet.internal.";
    let set = records(
        &zone(),
        &[
            entry("ns", "net", "web", &["10.0.0.5", "10.0.0.5"]),
            entry("NS", "Net", "Web", &["10.0.0.6", "10.0.0.5"]),
            // Another network reusing the address: the reverse name points at both.
            entry("ns", "other", "db", &["10.0.0.5"]),
        ],
    );
    assert!(set.problems().is_empty());
    assert_eq!(
        shown(&set, host).unwrap(),
        [format!("{host} A 10.0.0.5"), format!("{host} A 10.0.0.6")]
    );
    assert_eq!(
        shown(&set, "5.0.0.10.in-addr.arpa.").unwrap(),
        [
            format!("5.0.0.10.in-addr.arpa. PTR {host}"),
            "5.0.0.10.in-addr.arpa. PTR db.other.ns.region1.ferrinet.internal.".to_owned(),
        ]
    );
    // web: 2 A, db: 1 A; PTRs: .5 -> web and db, .6 -> web.
    assert_eq!(set.len(), 6);
}

#[test]
fn empty_set_has_only_the_apex() {
    let set = RecordSet::empty(zone());
    assert!(set.is_empty());
    assert_eq!(set.records().count(), 0);
    assert_eq!(shown(&set, "region1.ferrinet.internal."), Some(vec![]));
}

fn label_strategy() -> impl Strategy<Value = String> {
    // Few distinct labels, so that names and addresses collide often.
    prop_oneof![
        4 => "[a-c][a-c0-9-]{0,2}[a-c0-9]",
        1 => "[A-C]",
        1 => ".{0,5}",
    ]
}

fn address_strategy() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..3, 0u8..3).prop_map(|(a, b)| IpAddr::from([10, 0, a, b])),
        (0u16..3).prop_map(|a| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, a])),
        any::<IpAddr>(),
    ]
}

fn entries_strategy() -> impl Strategy<Value = Vec<DnsEntry>> {
    prop::collection::vec(
        (
            label_strategy(),
            label_strategy(),
            label_strategy(),
            prop::collection::vec(address_strategy(), 0..4),
        )
            .prop_map(|(namespace, network, hostname, addresses)| DnsEntry {
                namespace,
                network,
                hostname,
                addresses,
            }),
        0..12,
    )
}

proptest! {
    #[test]
    fn every_address_resolves_back_through_its_ptr(entries in entries_strategy()) {
        let z = zone();
        let set = records(&z, &entries);
        for (i, e) in entries.iter().enumerate() {
            let Ok(text) = dns_name(&z, e) else {
                prop_assert!(set.problems().iter().any(|p| p.index == i));
                continue;
            };
            let host = name(&text);
            for (j, &a) in e.addresses.iter().enumerate() {
                let field = format!("addresses[{j}]");
                if set.problems().iter().any(|p| p.index == i && p.error.field == field) {
                    continue;
                }
                let forward = set.node(&host).unwrap_or_default();
                prop_assert!(forward.iter().any(|r| r.data.ip_addr() == Some(a)));
                let reverse = set.node(&Name::from(a)).unwrap_or_default();
                let ptr_to_host = reverse
                    .iter()
                    .any(|r| matches!(&r.data, RData::PTR(p) if p.0 == host));
                prop_assert!(ptr_to_host, "{a} has no PTR to {host}");
            }
        }
        // And the other way round: every PTR target holds the address.
        for r in set.records() {
            if let RData::PTR(p) = &r.data {
                let held = set.node(&p.0).unwrap_or_default();
                prop_assert!(held.iter().any(|f| Name::from(f.data.ip_addr().unwrap()) == r.name));
            }
        }
    }

    #[test]
    fn order_of_entries_does_not_matter(entries in entries_strategy()) {
        let z = zone();
        let a = records(&z, &entries);
        let mut reversed = entries.clone();
        reversed.reverse();
        let b = records(&z, &reversed);
        prop_assert_eq!(a.records().collect::<Vec<_>>(), b.records().collect::<Vec<_>>());
        prop_assert_eq!(a.problems().len(), b.problems().len());
    }
}
