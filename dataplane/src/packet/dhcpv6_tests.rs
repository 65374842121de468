//! Tests of the DHCPv6 server: SOLICIT/ADVERTISE/REQUEST/REPLY.

#![allow(clippy::unwrap_used)]

use super::super::ipv6::Ipv6View;
use super::super::udp::UdpView;
use super::*;
use proptest::prelude::*;

const SERVER: MacAddr = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0, 1, 2, 3]);

fn vm() -> Ipv6Addr {
    "fd00:1::5".parse().unwrap()
}

fn cfg() -> Dhcpv6Config {
    Dhcpv6Config {
        ipv6: Some(vm()),
        dns: vec!["fd00::53".parse().unwrap()],
    }
}

const CLIENT_ID: [u8; 14] = [0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 0x52, 0x54, 0, 1, 2, 3];

fn message(kind: u8, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0x12, 0x34, 0x56]; // type, transaction id
    m.extend_from_slice(&[0, 1, 0, 14]); // client ID option
    m.extend_from_slice(&CLIENT_ID);
    m.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]); // IA_NA IAID 7
    m.extend_from_slice(extra);
    m
}

fn server_duid() -> Vec<u8> {
    vec![0, 3, 0xab, 0xcd, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]
}

fn expected(kind: u8, rapid: bool) -> Vec<u8> {
    let mut e = vec![kind, 0x12, 0x34, 0x56];
    e.extend_from_slice(&[0, 2, 0, 10]); // server ID: DUID-LL, hw type 0xabcd, port MAC
    e.extend_from_slice(&server_duid());
    e.extend_from_slice(&[0, 1, 0, 14]);
    e.extend_from_slice(&CLIENT_ID);
    if rapid {
        e.extend_from_slice(&[0, 14, 0, 0]);
    }
    e.extend_from_slice(&[0, 3, 0, 46, 0, 0, 0, 7]); // IA_NA, IAID 7
    e.extend_from_slice(&[0xff; 8]); // T1, T2 infinite
    e.extend_from_slice(&[0, 5, 0, 30]); // IAADDR
    e.extend_from_slice(&vm().octets());
    e.extend_from_slice(&[0xff; 8]); // preferred, valid infinite
    e.extend_from_slice(&[0, 13, 0, 2, 0, 0]); // status Success
    e.extend_from_slice(&[0, 23, 0, 16]); // DNS
    e.extend_from_slice(&"fd00::53".parse::<Ipv6Addr>().unwrap().octets());
    e
}

#[test]
fn solicit_advertise_request_reply() {
    let mut out = Vec::new();
    let r = reply(&message(SOLICIT, &[0, 14, 0, 0]), &cfg(), SERVER, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(
        r,
        Dhcpv6Reply {
            kind: ADVERTISE,
            address: Some(vm())
        }
    );
    assert_eq!(out, expected(ADVERTISE, true));

    let mut server_id = vec![0, 2, 0, 10];
    server_id.extend_from_slice(&server_duid());
    let mut out = Vec::new();
    let r = reply(&message(REQUEST, &server_id), &cfg(), SERVER, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(r.kind, REPLY);
    assert_eq!(out, expected(REPLY, false));
    let v = Dhcpv6View::parse(&out).unwrap();
    assert_eq!((v.kind(), v.transaction_id()), (REPLY, 0x123456));
}

#[test]
fn other_messages() {
    let mut out = Vec::new();
    reply(&message(CONFIRM, &[]), &cfg(), SERVER, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(out, [REPLY, 0x12, 0x34, 0x56]);
    for kind in [5, 6, 2, 7, 11] {
        assert_eq!(
            reply(&message(kind, &[]), &cfg(), SERVER, &mut Vec::new()),
            Ok(None)
        );
    }
    // A Request for another server.
    let other = [0, 2, 0, 4, 1, 2, 3, 4];
    assert_eq!(
        reply(&message(REQUEST, &other), &cfg(), SERVER, &mut Vec::new()),
        Ok(None)
    );
    let no_ip = Dhcpv6Config {
        ipv6: None,
        dns: vec![],
    };
    let mut out = Vec::new();
    let r = reply(&message(SOLICIT, &[]), &no_ip, SERVER, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(
        r,
        Dhcpv6Reply {
            kind: REPLY,
            address: None
        }
    );
    assert_eq!(out, [REPLY, 0x12, 0x34, 0x56, 0, 13, 0, 2, 0, 2]);
    let bad = [1, 0, 0, 0, 0, 1, 0, 9, 1];
    assert_eq!(
        reply(&bad, &cfg(), SERVER, &mut Vec::new()),
        Err(PacketError::BadLength {
            field: "dhcpv6.options.length",
            value: 9
        })
    );
}

#[test]
fn full_reply_frame() {
    let client_ip: Ipv6Addr = "fe80::5054:ff:fe01:203".parse().unwrap();
    let mut out = Vec::new();
    write_reply_frame(
        &mut out,
        SERVER,
        CLIENT,
        client_ip,
        &message(SOLICIT, &[]),
        &cfg(),
    )
    .unwrap()
    .unwrap();
    let eth = ether::EtherView::parse(&out).unwrap();
    assert_eq!((eth.dst(), eth.src()), (CLIENT, SERVER));
    let ip = Ipv6View::parse(eth.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst()), (GATEWAY_IPV6, client_ip));
    let udp = UdpView::parse(ip.payload()).unwrap();
    udp.verify_v6(&ip.src(), &ip.dst()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (547, 546));
    assert_eq!(udp.payload(), expected(ADVERTISE, false));
}

proptest! {
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut out = Vec::new();
        match reply(&data, &cfg(), SERVER, &mut out) {
            Ok(Some(_)) => prop_assert!(matches!(data[0], SOLICIT | REQUEST | RELEASE | CONFIRM)),
            _ => prop_assert!(out.is_empty()),
        }
    }
}
