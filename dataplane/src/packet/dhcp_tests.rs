//! Tests of the DHCPv4 server: the DISCOVER/OFFER/REQUEST/ACK conversation with every option.

#![allow(clippy::unwrap_used)]

use super::super::ipv4::Ipv4View;
use super::super::udp::UdpView;
use super::*;
use proptest::prelude::*;

const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x11, 0x22, 0x33]);
const SERVER: MacAddr = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
const VM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn client_message(kind: MessageType, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![
        1, 1, 6, 0, // op BOOTREQUEST, htype Ethernet, hlen 6, hops 0
        0xde, 0xad, 0xbe, 0xef, // xid
        0, 3, // secs
        0x80, 0x00, // flags: broadcast
    ];
    m.extend_from_slice(&[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
    m.extend_from_slice(&CLIENT.0);
    m.extend_from_slice(&[0; 10 + 64 + 128]); // chaddr padding, sname, file
    m.extend_from_slice(&[99, 130, 83, 99]); // magic cookie
    m.extend_from_slice(&[53, 1, kind as u8]);
    m.extend_from_slice(&[55, 3, 1, 3, 121]); // parameter request list
    m.extend_from_slice(extra);
    m.push(255);
    m
}

fn config() -> DhcpConfig {
    DhcpConfig::new(
        Some(VM),
        1450,
        vec![Ipv4Addr::new(10, 0, 0, 53), Ipv4Addr::new(1, 1, 1, 1)],
        Some("web-1".into()),
    )
    .unwrap()
}

fn expected_options(kind: u8) -> Vec<u8> {
    let mut o = vec![
        53, 1, kind, // message type
        51, 4, 0xff, 0xff, 0xff, 0xff, // lease time: infinite
        54, 4, 169, 254, 0, 1, // server id
        121, 12, 16, 169, 254, 0, 0, 0, 0, // 169.254.0.0/16 on-link
        0, 169, 254, 0, 1, // default via the gateway
        1, 4, 255, 255, 255, 255, // subnet mask /32
        3, 4, 169, 254, 0, 1, // router
        26, 2, 0x05, 0xaa, // MTU 1450
        6, 8, 10, 0, 0, 53, 1, 1, 1, 1, // DNS servers
        12, 5, b'w', b'e', b'b', b'-', b'1', // hostname
    ];
    o.push(255);
    o
}

fn check_reply(reply: &[u8], kind: MessageType) {
    let v = DhcpView::parse(reply).unwrap();
    assert_eq!(v.op(), 2);
    assert_eq!(reply[1..4], [1, 6, 0]);
    assert_eq!(v.xid(), 0xdeadbeef);
    assert_eq!(v.flags(), 0x8000);
    assert_eq!(v.yiaddr(), VM);
    assert_eq!(v.siaddr(), GATEWAY_IPV4);
    assert_eq!(v.giaddr(), GATEWAY_IPV4);
    assert_eq!(v.client_mac(), CLIENT);
    assert_eq!(v.message_type(), Some(kind));
    assert!(reply[44..236].iter().all(|b| *b == 0));
    assert_eq!(reply[240..], expected_options(kind as u8)[..]);
}

#[test]
fn discover_offer_request_ack() {
    let cfg = config();
    let mut out = Vec::new();
    let r = reply(&client_message(MessageType::Discover, &[]), &cfg, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(r.kind, MessageType::Offer);
    assert_eq!((r.client_mac, r.xid, r.yiaddr), (CLIENT, 0xdeadbeef, VM));
    check_reply(&out, MessageType::Offer);

    let request = client_message(
        MessageType::Request,
        &[50, 4, 10, 0, 0, 5, 54, 4, 169, 254, 0, 1],
    );
    let mut out = Vec::new();
    let r = reply(&request, &cfg, &mut out).unwrap().unwrap();
    assert_eq!(r.kind, MessageType::Ack);
    check_reply(&out, MessageType::Ack);
}

#[test]
fn request_for_another_address_is_naked() {
    let request = client_message(MessageType::Request, &[50, 4, 10, 0, 0, 9]);
    let mut out = Vec::new();
    let r = reply(&request, &config(), &mut out).unwrap().unwrap();
    assert_eq!(
        (r.kind, r.yiaddr),
        (MessageType::Nak, Ipv4Addr::UNSPECIFIED)
    );
    let v = DhcpView::parse(&out).unwrap();
    assert_eq!(v.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(v.siaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(out[240..], [53, 1, 6, 54, 4, 169, 254, 0, 1, 255]);

    // A REQUEST answering another server's offer is not ours to answer.
    let request = client_message(MessageType::Request, &[54, 4, 10, 9, 9, 9]);
    assert_eq!(reply(&request, &config(), &mut Vec::new()), Ok(None));
}

#[test]
fn unanswered_messages() {
    let cfg = config();
    for kind in [
        MessageType::Decline,
        MessageType::Release,
        MessageType::Inform,
    ] {
        let mut out = Vec::new();
        assert_eq!(reply(&client_message(kind, &[]), &cfg, &mut out), Ok(None));
        assert!(out.is_empty());
    }
    let mut m = client_message(MessageType::Discover, &[]);
    m[0] = 2; // BOOTREPLY
    assert_eq!(reply(&m, &cfg, &mut Vec::new()), Ok(None));
    let no_ip = DhcpConfig::new(None, 1500, vec![], None).unwrap();
    let m = client_message(MessageType::Discover, &[]);
    assert_eq!(reply(&m, &no_ip, &mut Vec::new()), Ok(None));
}

#[test]
fn minimal_config_omits_dns_and_hostname() {
    let cfg = DhcpConfig::new(Some(VM), 1500, vec![], None).unwrap();
    let mut out = Vec::new();
    reply(&client_message(MessageType::Discover, &[]), &cfg, &mut out).unwrap();
    let v = DhcpView::parse(&out).unwrap();
    assert_eq!(v.option(6), None);
    assert_eq!(v.option(12), None);
    assert_eq!(v.option(26), Some(&[0x05, 0xdc][..]));
}

#[test]
fn malformed_messages_are_errors() {
    let mut m = client_message(MessageType::Discover, &[]);
    m[236] = 98;
    assert!(matches!(
        reply(&m, &config(), &mut Vec::new()),
        Err(PacketError::Unsupported {
            field: "dhcp.magic_cookie",
            ..
        })
    ));
    let mut m = client_message(MessageType::Discover, &[]);
    m.pop();
    m.extend_from_slice(&[12, 40, b'x']);
    assert_eq!(
        reply(&m, &config(), &mut Vec::new()),
        Err(PacketError::BadLength {
            field: "dhcp.options.length",
            value: 40
        })
    );
    assert!(matches!(
        reply(&m[..100], &config(), &mut Vec::new()),
        Err(PacketError::Truncated { .. })
    ));
}

#[test]
fn config_is_validated() {
    assert_eq!(
        DhcpConfig::new(Some(VM), 67, vec![], None),
        Err(ConfigError::Mtu(67))
    );
    assert_eq!(
        DhcpConfig::new(Some(VM), 1500, vec![], Some("x".repeat(64))),
        Err(ConfigError::Hostname(64))
    );
    assert_eq!(
        DhcpConfig::new(Some(VM), 1500, vec![VM; 64], None),
        Err(ConfigError::Dns(64))
    );
    assert_eq!(
        ConfigError::Mtu(67).to_string(),
        "dhcp.mtu: must be 68 to 1500, got 67"
    );
}

#[test]
fn full_reply_frame() {
    let request = client_message(MessageType::Discover, &[]);
    let mut out = Vec::new();
    let r = write_reply_frame(&mut out, SERVER, CLIENT, &request, &config())
        .unwrap()
        .unwrap();
    assert_eq!(r.kind, MessageType::Offer);
    let eth = ether::EtherView::parse(&out).unwrap();
    assert_eq!((eth.dst(), eth.src()), (CLIENT, SERVER));
    let ip = Ipv4View::parse(eth.payload()).unwrap();
    ip.verify_checksum().unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.protocol()), (GATEWAY_IPV4, VM, 17));
    let udp = UdpView::parse(ip.payload()).unwrap();
    udp.verify_v4(ip.src(), ip.dst()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
    check_reply(udp.payload(), MessageType::Offer);

    let mut out = vec![7];
    let decline = client_message(MessageType::Decline, &[]);
    assert_eq!(
        write_reply_frame(&mut out, SERVER, CLIENT, &decline, &config()),
        Ok(None)
    );
    assert_eq!(out, [7]);

    let nak_req = client_message(MessageType::Request, &[50, 4, 10, 0, 0, 9]);
    let mut out = Vec::new();
    write_reply_frame(&mut out, SERVER, CLIENT, &nak_req, &config()).unwrap();
    let ip = Ipv4View::parse(&out[14..]).unwrap();
    ip.verify_checksum().unwrap();
    assert_eq!(ip.dst(), Ipv4Addr::BROADCAST);
    UdpView::parse(ip.payload())
        .unwrap()
        .verify_v4(ip.src(), ip.dst())
        .unwrap();
}

proptest! {
    #[test]
    fn garbage_gets_no_reply(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut out = Vec::new();
        if let Ok(Some(_)) = reply(&data, &config(), &mut out) {
            // Only a well-formed BOOTREQUEST with a DISCOVER or REQUEST can get here.
            let v = DhcpView::parse(&data).unwrap();
            prop_assert_eq!(v.op(), 1);
        } else {
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn options_after_header_never_panic(opts in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut m = client_message(MessageType::Discover, &[]);
        m.truncate(240);
        m.extend_from_slice(&opts);
        let _ = reply(&m, &config(), &mut Vec::new());
    }
}
