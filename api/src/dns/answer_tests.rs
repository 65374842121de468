//! The pure answers: every response code, the SOA, case, and what is refused.

#![allow(clippy::unwrap_used)]

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::answer::{Answer, answer, soa_record};
use super::*;

const HOST: &str = "web.net.ns.region1.ferrinet.internal.";

fn set() -> (RecordSet, Record) {
    let zone = Zone::new("region1.ferrinet.internal").unwrap();
    let entries = [DnsEntry {
        namespace: "ns".into(),
        network: "net".into(),
        hostname: "web".into(),
        addresses: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
    }];
    let soa = soa_record(&zone, 7);
    (records(&zone, &entries), soa)
}

fn ask(name: &str, qtype: RecordType) -> (ResponseCode, bool, Vec<String>, bool) {
    ask_class(name, qtype, DNSClass::IN)
}

/// (code, AA, answers as `TYPE data`, SOA in authority)
fn ask_class(
    name: &str,
    qtype: RecordType,
    class: DNSClass,
) -> (ResponseCode, bool, Vec<String>, bool) {
    let (set, soa) = set();
    let a: Answer<'_> = answer(&set, &soa, &Name::from_ascii(name).unwrap(), qtype, class);
    let answers = a
        .answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect();
    (a.code, a.authoritative, answers, a.soa.is_some())
}

#[test]
fn a_aaaa_and_ptr() {
    assert_eq!(
        ask(HOST, RecordType::A),
        (
            ResponseCode::NoError,
            true,
            vec!["A 10.0.0.5".into()],
            false
        )
    );
    assert_eq!(
        ask(HOST, RecordType::AAAA),
        (
            ResponseCode::NoError,
            true,
            vec!["AAAA fd00::5".into()],
            false
        )
    );
    assert_eq!(
        ask("5.0.0.10.in-addr.arpa.", RecordType::PTR),
        (
            ResponseCode::NoError,
            true,
            vec![format!("PTR {HOST}")],
            false
        )
    );
    let (code, _, answers, _) = ask(HOST, RecordType::ANY);
    assert_eq!((code, answers.len()), (ResponseCode::NoError, 2));
}

#[test]
fn names_are_matched_without_case() {
    let (code, aa, answers, _) = ask("WEB.Net.Ns.REGION1.ferrinet.internal.", RecordType::A);
    assert_eq!((code, aa, answers.len()), (ResponseCode::NoError, true, 1));
}

#[test]
fn missing_names_in_the_zone_are_nxdomain_with_the_soa() {
    for name in [
        "db.net.ns.region1.ferrinet.internal.",
        "x.web.net.ns.region1.ferrinet.internal.",
        "other.region1.ferrinet.internal.",
    ] {
        assert_eq!(
            ask(name, RecordType::A),
            (ResponseCode::NXDomain, true, vec![], true),
            "{name}"
        );
    }
}

#[test]
fn existing_names_without_the_type_are_nodata() {
    for name in [
        HOST,
        "net.ns.region1.ferrinet.internal.",
        "ns.region1.ferrinet.internal.",
        "region1.ferrinet.internal.",
    ] {
        assert_eq!(
            ask(name, RecordType::MX),
            (ResponseCode::NoError, true, vec![], true),
            "{name}"
        );
    }
    // The reverse names are not a zone of ours: no SOA to hand out for them.
    assert_eq!(
        ask("5.0.0.10.in-addr.arpa.", RecordType::A),
        (ResponseCode::NoError, true, vec![], false)
    );
}

#[test]
fn the_apex_has_the_soa() {
    let (set, soa) = set();
    let apex = set.zone().name().clone();
    let a = answer(&set, &soa, &apex, RecordType::SOA, DNSClass::IN);
    assert_eq!(a.answers, [&soa]);
    let RData::SOA(s) = &soa.data else {
        panic!("not a SOA: {soa:?}")
    };
    assert_eq!(s.serial, 7);
    assert_eq!(s.minimum, 30);
    assert_eq!(s.mname, apex);
    assert_eq!(s.rname.to_string(), "hostmaster.region1.ferrinet.internal.");
}

#[test]
fn everything_else_is_refused() {
    let refused = (ResponseCode::Refused, false, vec![], false);
    for name in [
        "example.com.",
        "ferrinet.internal.",
        "xregion1.ferrinet.internal.",
        "6.0.0.10.in-addr.arpa.",
        "0.0.10.in-addr.arpa.",
        "in-addr.arpa.",
        ".",
    ] {
        assert_eq!(ask(name, RecordType::A), refused, "{name}");
        assert_eq!(ask(name, RecordType::PTR), refused, "{name}");
    }
    assert_eq!(ask_class(HOST, RecordType::A, DNSClass::CH), refused);
    assert_eq!(ask("region1.ferrinet.internal.", RecordType::AXFR), refused);
    assert_eq!(ask("region1.ferrinet.internal.", RecordType::IXFR), refused);
}
