//! Replays frames and underlay packets through a [`Forwarder`] over a [`State`] built with API
//! calls, and compares the actions.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ferrinet_proto::dpservice::v1 as pb;
use proptest::prelude::*;

use super::*;
use crate::config::DataplaneConfig;
use crate::flow::Mode;
use crate::packet::ipv4::{self, Ipv4Header};
use crate::packet::ipv6::{self, Ipv6Header};
use crate::packet::{checksum, icmp};

const PORT_MAC: [MacAddr; 3] = [
    MacAddr([2, 0xfe, 0, 0, 0, 0]),
    MacAddr([2, 0xfe, 0, 0, 0, 1]),
    MacAddr([2, 0xfe, 0, 0, 0, 2]),
];
const VM_MAC: [MacAddr; 3] = [
    MacAddr([0xaa, 0, 0, 0, 0, 0]),
    MacAddr([0xaa, 0, 0, 0, 0, 1]),
    MacAddr([0xaa, 0, 0, 0, 0, 2]),
];
const REMOTE: &str = "fc00:2::d0:0:0:1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ipmsg(s: &str) -> pb::IpAddress {
    let a = ip(s);
    pb::IpAddress {
        ipver: if a.is_ipv4() {
            pb::IpVersion::Ipv4 as i32
        } else {
            pb::IpVersion::Ipv6 as i32
        },
        address: s.as_bytes().to_vec(),
    }
}

fn prefix(s: &str, len: u32) -> pb::Prefix {
    pb::Prefix {
        ip: Some(ipmsg(s)),
        length: len,
        underlay_route: Vec::new(),
    }
}

/// A dataplane with vm0 (10.0.0.1, fd00::1) and vm1 (10.0.0.2) in VNI 100 on net_tap2 and
/// net_tap3, vm2 (10.0.0.1 too) in VNI 200 on net_tap4, and a route 10.0.1.0/24 in VNI 100 to
/// a remote node.
struct Bed {
    state: State,
    fw: Forwarder,
    now: Instant,
}

impl Bed {
    fn new(mode: Mode) -> Self {
        let mut state = State::new(&DataplaneConfig::tap("fc00:1::1".parse().unwrap(), 4));
        state.initialize(pb::InitializeRequest::default()).unwrap();
        let ifaces = [
            ("vm0", 100, "10.0.0.1", "fd00::1", "net_tap2"),
            ("vm1", 100, "10.0.0.2", "fd00::2", "net_tap3"),
            ("vm2", 200, "10.0.0.1", "fd00::1", "net_tap4"),
        ];
        for (id, vni, v4, v6, dev) in ifaces {
            state
                .create_interface(pb::CreateInterfaceRequest {
                    interface_id: id.as_bytes().to_vec(),
                    vni,
                    ipv4_config: Some(pb::IpConfig {
                        primary_address: v4.as_bytes().to_vec(),
                    }),
                    ipv6_config: Some(pb::IpConfig {
                        primary_address: v6.as_bytes().to_vec(),
                    }),
                    device_name: dev.to_string(),
                    hostname: format!("{id}-host"),
                    ..Default::default()
                })
                .unwrap();
        }
        state
            .create_route(pb::CreateRouteRequest {
                vni: 100,
                route: Some(pb::Route {
                    prefix: Some(prefix("10.0.1.0", 24)),
                    nexthop_vni: 100,
                    nexthop_address: Some(ipmsg(REMOTE)),
                    weight: 100,
                }),
            })
            .unwrap();
        let mut fw = Forwarder::new(Settings {
            firewall: mode,
            underlay_mtu: 1500,
            ..Settings::default()
        });
        fw.sync(&state);
        for (i, dev) in ["net_tap2", "net_tap3", "net_tap4"].iter().enumerate() {
            fw.attach(
                dev,
                Attachment {
                    port_mac: PORT_MAC[i],
                    vm_mac: VM_MAC[i],
                },
            );
        }
        Self {
            state,
            fw,
            now: Instant::now(),
        }
    }

    fn allow_ingress(&mut self, iface: &str, id: &str, filter: Option<pb::ProtocolFilter>) {
        self.state
            .create_firewall_rule(pb::CreateFirewallRuleRequest {
                interface_id: iface.as_bytes().to_vec(),
                rule: Some(pb::FirewallRule {
                    id: id.as_bytes().to_vec(),
                    direction: pb::TrafficDirection::Ingress as i32,
                    action: pb::FirewallAction::Accept as i32,
                    priority: 1000,
                    source_prefix: Some(prefix("0.0.0.0", 0)),
                    destination_prefix: Some(prefix("0.0.0.0", 0)),
                    protocol_filter: filter,
                }),
            })
            .unwrap();
    }

    fn vm_frame(&mut self, dev: &str, frame: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        self.fw
            .vm_frame(&self.state, dev, frame, self.now, &mut out);
        out
    }

    fn underlay_packet(&mut self, dst: Ipv6Addr, inner: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        self.fw
            .underlay_packet(&self.state, dst, inner, self.now, &mut out);
        out
    }

    fn underlay_of(&mut self, id: &str) -> Ipv6Addr {
        let dev = self.fw.by_id.get(id).unwrap().clone();
        self.fw.port_info(&dev).unwrap().underlay
    }

    fn drops(&self, id: &str, reason: DropReason) -> u64 {
        let dev = self.fw.by_id.get(id).unwrap();
        let index = self.fw.port_info(dev).unwrap().index;
        self.fw
            .counters()
            .interfaces
            .get(&index)
            .map_or(0, |t| t.drops(reason))
    }
}

fn tcp_packet(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let (s, d) = (ip(src), ip(dst));
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let mut out = Vec::new();
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let sum = checksum::transport_checksum_v4(s, d, ipv4::PROTO_TCP, &seg);
            seg[16..18].copy_from_slice(&sum.to_be_bytes());
            let mut h = Ipv4Header::new(s, d, ipv4::PROTO_TCP);
            h.dont_fragment = true;
            h.write(&mut out, seg.len() as u16);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let sum = checksum::transport_checksum_v6(&s, &d, ipv6::NEXT_TCP, &seg);
            seg[16..18].copy_from_slice(&sum.to_be_bytes());
            Ipv6Header::new(s, d, ipv6::NEXT_TCP, 64).write(&mut out, seg.len() as u16);
        }
        _ => unreachable!("mixed families"),
    }
    out.extend_from_slice(&seg);
    out
}

fn echo(src: &str, dst: &str, kind: u8, payload: usize) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src), ip(dst)) else {
        unreachable!("v4 only");
    };
    let mut body = Vec::new();
    icmp::write_message(&mut body, kind, 0, [0, 7, 0, 1], &vec![0x5a; payload]);
    let mut out = Vec::new();
    let mut h = Ipv4Header::new(s, d, ipv4::PROTO_ICMP);
    h.dont_fragment = true;
    h.write(&mut out, body.len() as u16);
    out.extend_from_slice(&body);
    out
}

fn frame(from: MacAddr, to: MacAddr, packet: &[u8]) -> Vec<u8> {
    let ethertype = if packet[0] >> 4 == 4 {
        ether::ETHERTYPE_IPV4
    } else {
        ether::ETHERTYPE_IPV6
    };
    let mut f = Vec::new();
    ether::write_header(&mut f, to, from, ethertype);
    f.extend_from_slice(packet);
    f
}

fn vm_frame(i: usize, packet: &[u8]) -> Vec<u8> {
    frame(VM_MAC[i], PORT_MAC[i], packet)
}

#[test]
fn local_delivery_needs_an_ingress_rule_and_replies_follow_the_flow() {
    let mut b = Bed::new(Mode::Enforce);
    let syn = tcp_packet("10.0.0.1", "10.0.0.2", 40000, 80, 0x02);
    assert!(b.vm_frame("net_tap2", &vm_frame(0, &syn)).is_empty());
    assert_eq!(b.drops("vm1", DropReason::Firewall), 1);

    b.allow_ingress(
        "vm1",
        "http",
        Some(pb::ProtocolFilter {
            filter: Some(pb::protocol_filter::Filter::Tcp(pb::TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: 80,
                dst_port_upper: 80,
            })),
        }),
    );
    let out = b.vm_frame("net_tap2", &vm_frame(0, &syn));
    assert_eq!(
        out,
        vec![Action::ToPort {
            device: Arc::from("net_tap3"),
            frame: frame(PORT_MAC[1], VM_MAC[1], &syn),
        }]
    );
    // vm0 has no ingress rule, but the SYN-ACK answers a flow vm0 started.
    let synack = tcp_packet("10.0.0.2", "10.0.0.1", 80, 40000, 0x12);
    let out = b.vm_frame("net_tap3", &vm_frame(1, &synack));
    assert_eq!(out.len(), 1, "{out:?}");
    // Another port is still closed.
    let other = tcp_packet("10.0.0.1", "10.0.0.2", 40001, 22, 0x02);
    assert!(b.vm_frame("net_tap2", &vm_frame(0, &other)).is_empty());
    assert_eq!(b.drops("vm1", DropReason::Firewall), 2);
}

#[test]
fn monitor_mode_forwards_and_counts_what_it_would_drop() {
    let mut b = Bed::new(Mode::Monitor);
    let syn = tcp_packet("10.0.0.1", "10.0.0.2", 40000, 22, 0x02);
    assert_eq!(b.vm_frame("net_tap2", &vm_frame(0, &syn)).len(), 1);
    let index = b.fw.port_info("net_tap3").unwrap().index;
    let c = b.fw.enforcement().counters(index, Direction::Ingress);
    assert_eq!((c.accepted, c.would_drop, c.dropped), (0, 1, 0));
}

#[test]
fn remote_destinations_are_encapsulated_as_dpservice_does() {
    let mut b = Bed::new(Mode::Enforce);
    let syn = tcp_packet("10.0.0.1", "10.0.1.5", 40000, 80, 0x02);
    let out = b.vm_frame("net_tap2", &vm_frame(0, &syn));
    let src = b.underlay_of("vm0");
    let remote: Ipv6Addr = REMOTE.parse().unwrap();
    let mut expected = Vec::new();
    Ipv6Header::new(src, remote, ipv6::NEXT_IPV4, 64).write(&mut expected, syn.len() as u16);
    expected.extend_from_slice(&syn);
    assert_eq!(
        out,
        vec![Action::ToUnderlay {
            dst: remote,
            packet: expected
        }]
    );
    // The reply from the far side comes back to vm0's underlay address; no ingress rule is
    // needed for it.
    let synack = tcp_packet("10.0.1.5", "10.0.0.1", 80, 40000, 0x12);
    let out = b.underlay_packet(src, &synack);
    assert_eq!(
        out,
        vec![Action::ToPort {
            device: Arc::from("net_tap2"),
            frame: frame(PORT_MAC[0], VM_MAC[0], &synack),
        }]
    );
}

#[test]
fn the_outer_destination_selects_the_vni() {
    let mut b = Bed::new(Mode::Enforce);
    b.allow_ingress("vm2", "all", None);
    // vm0 and vm2 both have 10.0.0.1; the underlay address decides.
    let to_vm2 = b.underlay_of("vm2");
    let ping = echo("10.0.1.9", "10.0.0.1", icmp::ECHO_REQUEST, 8);
    let out = b.underlay_packet(to_vm2, &ping);
    assert!(matches!(&out[..], [Action::ToPort { device, .. }] if &**device == "net_tap4"));
    // vm0 has no ingress rule: nothing reaches it.
    let to_vm0 = b.underlay_of("vm0");
    assert!(b.underlay_packet(to_vm0, &ping).is_empty());
    // An unknown underlay address is dropped and counted.
    assert!(
        b.underlay_packet("fc00:1::dead".parse().unwrap(), &ping)
            .is_empty()
    );
    assert_eq!(
        b.fw.counters().underlay.drops(DropReason::UnknownUnderlay),
        1
    );
}

#[test]
fn no_route_between_vnis() {
    let mut b = Bed::new(Mode::Monitor);
    // vm2 (VNI 200) sends to vm1's address: VNI 200 has no such route.
    let p = echo("10.0.0.1", "10.0.0.2", icmp::ECHO_REQUEST, 8);
    assert!(b.vm_frame("net_tap4", &vm_frame(2, &p)).is_empty());
    assert_eq!(b.drops("vm2", DropReason::NoRoute), 1);
}

#[test]
fn spoofed_and_malformed_frames_are_dropped_and_counted() {
    let mut b = Bed::new(Mode::Monitor);
    let spoof = echo("10.0.0.9", "10.0.0.2", icmp::ECHO_REQUEST, 8);
    assert!(b.vm_frame("net_tap2", &vm_frame(0, &spoof)).is_empty());
    assert_eq!(b.drops("vm0", DropReason::SpoofedSource), 1);

    let good = echo("10.0.0.1", "10.0.0.2", icmp::ECHO_REQUEST, 8);
    let mut truncated = vm_frame(0, &good);
    truncated.truncate(ether::HEADER_LEN + 12);
    assert!(b.vm_frame("net_tap2", &truncated).is_empty());
    let mut bad_len = vm_frame(0, &good);
    bad_len[ether::HEADER_LEN + 2] = 0xff;
    assert!(b.vm_frame("net_tap2", &bad_len).is_empty());
    assert_eq!(b.drops("vm0", DropReason::Malformed), 2);

    let mut vlan = vm_frame(0, &good);
    vlan[12..14].copy_from_slice(&ether::ETHERTYPE_VLAN.to_be_bytes());
    assert!(b.vm_frame("net_tap2", &vlan).is_empty());
    assert_eq!(b.drops("vm0", DropReason::UnsupportedEthertype), 1);
}

#[test]
fn too_big_for_the_underlay_gets_frag_needed_back() {
    let mut b = Bed::new(Mode::Enforce);
    let big = echo("10.0.0.1", "10.0.1.5", icmp::ECHO_REQUEST, 1472);
    assert_eq!(big.len(), 1500);
    let out = b.vm_frame("net_tap2", &vm_frame(0, &big));
    let [Action::ToPort { device, frame }] = &out[..] else {
        panic!("expected one ICMP error, got {out:?}");
    };
    assert_eq!(&**device, "net_tap2");
    let ip = &frame[ether::HEADER_LEN..];
    assert_eq!(ip[9], ipv4::PROTO_ICMP);
    let msg = &ip[20..];
    assert_eq!(
        (msg[0], msg[1]),
        (icmp::DEST_UNREACHABLE, icmp::CODE_FRAG_NEEDED)
    );
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 1460);
    assert_eq!(b.drops("vm0", DropReason::TooBig), 1);
}

#[test]
fn the_gateway_answers_arp_and_learns_the_mac() {
    let mut b = Bed::new(Mode::Enforce);
    let new_mac = MacAddr([0xaa, 0xbb, 0, 0, 0, 9]);
    let mut f = Vec::new();
    ether::write_header(&mut f, MacAddr::BROADCAST, new_mac, ether::ETHERTYPE_ARP);
    crate::packet::arp::ArpPacket {
        operation: crate::packet::arp::OP_REQUEST,
        sender_mac: new_mac,
        sender_ip: "10.0.0.1".parse().unwrap(),
        target_mac: MacAddr::ZERO,
        target_ip: crate::packet::GATEWAY_IPV4,
    }
    .write(&mut f);
    let out = b.vm_frame("net_tap2", &f);
    assert!(matches!(&out[..], [Action::ToPort { device, .. }] if &**device == "net_tap2"));
    assert_eq!(b.fw.attachment("net_tap2").unwrap().vm_mac, new_mac);
}

#[test]
fn dhcp_is_never_forwarded() {
    let mut b = Bed::new(Mode::Monitor);
    let mut p = Vec::new();
    crate::packet::udp::write_ipv4_udp(
        &mut p,
        &Ipv4Header::new("10.0.0.1".parse().unwrap(), Ipv4Addr::BROADCAST, 17),
        68,
        67,
        |o| o.extend_from_slice(&[1, 2, 3]),
    );
    assert!(b.vm_frame("net_tap2", &vm_frame(0, &p)).is_empty());
}

proptest! {
    /// Whatever a VM sends, nothing panics and nothing reaches a port of another VNI.
    #[test]
    fn arbitrary_frames_never_cross_vnis(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), any::<u16>()],
        vm in 0usize..3,
    ) {
        let mut b = Bed::new(Mode::Monitor);
        let mut f = Vec::new();
        ether::write_header(&mut f, PORT_MAC[vm], VM_MAC[vm], ethertype);
        f.extend_from_slice(&body);
        let dev = ["net_tap2", "net_tap3", "net_tap4"][vm];
        let vni = if vm == 2 { 200 } else { 100 };
        for a in b.vm_frame(dev, &f) {
            if let Action::ToPort { device, .. } = a {
                let other = b.fw.port_info(&device).unwrap().vni;
                prop_assert_eq!(other, vni);
            }
        }
        // The same bytes as an underlay packet to each interface.
        for id in ["vm0", "vm1", "vm2"] {
            let dst = b.underlay_of(id);
            let _ = b.underlay_packet(dst, &body);
        }
    }
}
