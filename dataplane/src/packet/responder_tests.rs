//! Tests of the gateway responders: golden ARP, NS/NA, RS/RA, DHCP dispatch, garbage.

#![allow(clippy::unwrap_used)]

use super::super::checksum::transport_checksum_v6;
use super::super::ipv4::Ipv4Header;
use super::super::udp::write_ipv4_udp;
use super::*;
use proptest::prelude::*;

const PORT: MacAddr = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x11, 0x22, 0x33]);
const VM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn cfg() -> InterfaceConfig {
    InterfaceConfig {
        port_mac: PORT,
        ipv4: Some(VM_IP),
        ipv6_overlay: true,
        dhcp: DhcpConfig::new(Some(VM_IP), 1500, vec![], None).unwrap(),
        dhcpv6: Dhcpv6Config {
            ipv6: Some("fd00::5".parse().unwrap()),
            dns: vec![],
        },
    }
}

fn arp_request(sender_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6]; // dst broadcast
    f.extend_from_slice(&VM_MAC.0); // src
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]); // ARP, Ethernet/IPv4, request
    f.extend_from_slice(&VM_MAC.0);
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip);
    f
}

#[test]
fn arp_for_the_gateway() {
    let mut out = Vec::new();
    let a = respond(
        &arp_request([10, 0, 0, 5], [169, 254, 0, 1]),
        &cfg(),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        a,
        Some(Answer::Arp {
            learned: Some(VM_MAC)
        })
    );
    let mut expected = VM_MAC.0.to_vec(); // Ethernet dst: the requester
    expected.extend_from_slice(&PORT.0); // Ethernet src: the port MAC
    expected.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]); // reply
    expected.extend_from_slice(&PORT.0); // sender MAC
    expected.extend_from_slice(&[169, 254, 0, 1]); // sender IP: the gateway
    expected.extend_from_slice(&VM_MAC.0); // target MAC
    expected.extend_from_slice(&[10, 0, 0, 5]); // target IP
    assert_eq!(out, expected);

    // Any sender IP gets an answer (0.0.0.0 too) but only the VM's own teaches its MAC.
    let mut out = Vec::new();
    let a = respond(
        &arp_request([0, 0, 0, 0], [169, 254, 0, 1]),
        &cfg(),
        &mut out,
    )
    .unwrap();
    assert_eq!(a, Some(Answer::Arp { learned: None }));
    // Other targets are dropped.
    let mut out = Vec::new();
    assert_eq!(
        respond(&arp_request([10, 0, 0, 5], [10, 0, 0, 1]), &cfg(), &mut out),
        Ok(None)
    );
    assert!(out.is_empty());
}

fn icmpv6_frame(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    ether::write_header(
        &mut f,
        MacAddr::ipv6_multicast(&dst),
        VM_MAC,
        ether::ETHERTYPE_IPV6,
    );
    let mut m = msg.to_vec();
    let sum = transport_checksum_v6(&src, &dst, 58, &m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    Ipv6Header::new(src, dst, 58, hop_limit).write(&mut f, m.len() as u16);
    f.extend_from_slice(&m);
    f
}

fn ns(target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&VM_MAC.0);
    m
}

fn vm_ll() -> Ipv6Addr {
    "fe80::5054:ff:fe11:2233".parse().unwrap()
}

#[test]
fn neighbor_solicit_for_the_gateway() {
    let solicited_node: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    let frame = icmpv6_frame(vm_ll(), solicited_node, 255, &ns(GATEWAY_IPV6));
    let mut out = Vec::new();
    let a = respond(&frame, &cfg(), &mut out).unwrap();
    assert_eq!(a, Some(Answer::NeighborAdvert { learned: VM_MAC }));
    let eth = EtherView::parse(&out).unwrap();
    assert_eq!((eth.dst(), eth.src()), (VM_MAC, PORT));
    let ip = Ipv6View::parse(eth.payload()).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (GATEWAY_IPV6, vm_ll(), 255)
    );
    let msg = Icmpv6View::parse(ip.payload()).unwrap();
    msg.verify_checksum(&ip.src(), &ip.dst()).unwrap();
    let na = NeighborAdvert::parse(&msg).unwrap();
    assert_eq!(na.flags, 0xe0); // R, S, O
    assert_eq!((na.target, na.target_ll), (GATEWAY_IPV6, Some(PORT)));

    // DAD probe from :: gets an NA to all nodes without S.
    let frame = icmpv6_frame(
        Ipv6Addr::UNSPECIFIED,
        solicited_node,
        255,
        &ns(GATEWAY_IPV6),
    );
    let mut out = Vec::new();
    respond(&frame, &cfg(), &mut out).unwrap().unwrap();
    let ip = Ipv6View::parse(&out[14..]).unwrap();
    assert_eq!(ip.dst(), ALL_NODES);
    assert_eq!(
        NeighborAdvert::parse(&Icmpv6View::parse(ip.payload()).unwrap())
            .unwrap()
            .flags,
        0xa0
    );

    // Other targets, overlay off, wrong hop limit, bad checksum: no answer.
    let other = icmpv6_frame(
        vm_ll(),
        solicited_node,
        255,
        &ns("fd00::9".parse().unwrap()),
    );
    assert_eq!(respond(&other, &cfg(), &mut Vec::new()), Ok(None));
    let frame = icmpv6_frame(vm_ll(), solicited_node, 255, &ns(GATEWAY_IPV6));
    let off = InterfaceConfig {
        ipv6_overlay: false,
        ..cfg()
    };
    assert_eq!(respond(&frame, &off, &mut Vec::new()), Ok(None));
    let low = icmpv6_frame(vm_ll(), solicited_node, 64, &ns(GATEWAY_IPV6));
    assert!(respond(&low, &cfg(), &mut Vec::new()).is_err());
    let mut bad = frame.clone();
    *bad.last_mut().unwrap() ^= 1;
    let mut out = Vec::new();
    assert_eq!(
        respond(&bad, &cfg(), &mut out),
        Err(PacketError::BadChecksum {
            field: "icmpv6.checksum"
        })
    );
    assert!(out.is_empty());
}

#[test]
fn router_solicit_gets_router_advert() {
    let mut rs = vec![133, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    rs.extend_from_slice(&VM_MAC.0);
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    let frame = icmpv6_frame(vm_ll(), all_routers, 255, &rs);
    let mut out = Vec::new();
    assert_eq!(
        respond(&frame, &cfg(), &mut out),
        Ok(Some(Answer::RouterAdvert))
    );
    let eth = EtherView::parse(&out).unwrap();
    assert_eq!((eth.dst(), eth.src()), (VM_MAC, PORT));
    let ip = Ipv6View::parse(eth.payload()).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.hop_limit()),
        (GATEWAY_IPV6, vm_ll(), 255)
    );
    let msg = Icmpv6View::parse(ip.payload()).unwrap();
    msg.verify_checksum(&ip.src(), &ip.dst()).unwrap();
    let ra = RouterAdvert::parse(&msg).unwrap();
    assert!(ra.managed && ra.other);
    assert_eq!((ra.cur_hop_limit, ra.router_lifetime), (255, 65535));
    assert_eq!((ra.reachable_time, ra.retrans_timer), (0, 0));
    assert_eq!(
        (ra.source_ll, ra.mtu, ra.prefix_options),
        (Some(PORT), None, 0)
    );
}

#[test]
fn periodic_messages() {
    let mut out = Vec::new();
    write_periodic_arp(&mut out, PORT, None);
    let arp = ArpView::parse(&out[14..]).unwrap();
    assert_eq!(out[..6], [0xff; 6]);
    assert_eq!(
        (arp.sender_ip(), arp.target_ip()),
        (GATEWAY_IPV4, GATEWAY_IPV4)
    );
    let mut out = Vec::new();
    write_periodic_arp(&mut out, PORT, Some(VM_IP));
    assert_eq!(ArpView::parse(&out[14..]).unwrap().target_ip(), VM_IP);

    for (write, kind) in [
        (
            write_periodic_ra as fn(&mut Vec<u8>, MacAddr),
            icmpv6::ROUTER_ADVERT,
        ),
        (write_periodic_na, icmpv6::NEIGHBOR_ADVERT),
    ] {
        let mut out = Vec::new();
        write(&mut out, PORT);
        assert_eq!(out[..6], [0x33, 0x33, 0, 0, 0, 1]);
        let ip = Ipv6View::parse(&out[14..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit()),
            (GATEWAY_IPV6, ALL_NODES, 255)
        );
        let msg = Icmpv6View::parse(ip.payload()).unwrap();
        msg.verify_checksum(&ip.src(), &ip.dst()).unwrap();
        assert_eq!(msg.kind(), kind);
        if kind == icmpv6::NEIGHBOR_ADVERT {
            assert_eq!(NeighborAdvert::parse(&msg).unwrap().flags, 0xa0);
        }
    }
}

#[test]
fn dhcp_is_dispatched() {
    let mut m = vec![1, 1, 6, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    m.extend_from_slice(&[0; 16]);
    m.extend_from_slice(&VM_MAC.0);
    m.extend_from_slice(&[0; 202]);
    m.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
    let mut frame = Vec::new();
    ether::write_header(
        &mut frame,
        MacAddr::BROADCAST,
        VM_MAC,
        ether::ETHERTYPE_IPV4,
    );
    let ip = Ipv4Header::new(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, ipv4::PROTO_UDP);
    write_ipv4_udp(&mut frame, &ip, 68, 67, |o| o.extend_from_slice(&m));
    let mut out = Vec::new();
    let a = respond(&frame, &cfg(), &mut out).unwrap();
    assert!(matches!(a, Some(Answer::Dhcp(r)) if r.kind == dhcp::MessageType::Offer));
    assert_eq!(out[..6], VM_MAC.0);

    // Ordinary UDP is not for the responders.
    let mut frame = Vec::new();
    ether::write_header(&mut frame, PORT, VM_MAC, ether::ETHERTYPE_IPV4);
    write_ipv4_udp(&mut frame, &ip, 68, 53, |o| o.extend_from_slice(&m));
    assert_eq!(respond(&frame, &cfg(), &mut Vec::new()), Ok(None));

    // DHCPv6 Solicit.
    let mut frame = Vec::new();
    let dst: Ipv6Addr = "ff02::1:2".parse().unwrap();
    ether::write_header(
        &mut frame,
        MacAddr::ipv6_multicast(&dst),
        VM_MAC,
        ether::ETHERTYPE_IPV6,
    );
    let ip6 = Ipv6Header::new(vm_ll(), dst, ipv6::NEXT_UDP, 1);
    super::super::udp::write_ipv6_udp(&mut frame, &ip6, 546, 547, |o| {
        o.extend_from_slice(&[1, 0, 0, 1])
    });
    let a = respond(&frame, &cfg(), &mut Vec::new()).unwrap();
    assert!(matches!(a, Some(Answer::Dhcpv6(r)) if r.kind == dhcpv6::ADVERTISE));
}

proptest! {
    #[test]
    fn garbage_gets_no_reply(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut out = Vec::new();
        let r = respond(&data, &cfg(), &mut out);
        prop_assert!(!matches!(r, Ok(Some(_))));
        prop_assert!(out.is_empty());
    }

    #[test]
    fn mutated_frames_never_panic(at in 0usize..200, value in any::<u8>(), cut in 0usize..200) {
        let solicited_node: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
        for mut f in [
            arp_request([10, 0, 0, 5], [169, 254, 0, 1]),
            icmpv6_frame(vm_ll(), solicited_node, 255, &ns(GATEWAY_IPV6)),
        ] {
            let i = at % f.len();
            f[i] = value;
            f.truncate(cut.max(1));
            let mut out = Vec::new();
            if respond(&f, &cfg(), &mut out).ok().flatten().is_none() {
                prop_assert!(out.is_empty());
            }
        }
    }
}
