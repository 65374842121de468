//! Tests of the flow table: stateful replies, expiry with a fake clock, rule-change
//! invalidation, eviction and the size bound.

use std::time::{Duration, Instant};

use ferrinet_proto::dpservice::v1 as pb;
use proptest::prelude::*;

use super::*;
use crate::flow::rules::tests::{rule, tcp};
use crate::flow::{RuleSets, TcpFlags};

const A: IfaceIndex = IfaceIndex(1);
const IN: Direction = Direction::Ingress;
const OUT: Direction = Direction::Egress;

fn tcp_key(src: &str, dst: &str, sp: u16, dp: u16) -> FlowKey {
    FlowKey {
        iface: A,
        vni: 100,
        src: src.parse().expect("test value"),
        dst: dst.parse().expect("test value"),
        l4: L4::Tcp {
            src_port: sp,
            dst_port: dp,
        },
    }
}

/// A client talking to the VM's port 80.
fn inbound() -> FlowKey {
    tcp_key("10.0.0.9", "10.0.0.1", 40000, 80)
}

fn web_rule() -> pb::FirewallRule {
    rule(
        "web",
        pb::TrafficDirection::Ingress,
        "0.0.0.0/0",
        "0.0.0.0/0",
        tcp(-1, -1, 80, 80),
    )
}

fn web_rules() -> RuleSets {
    let mut sets = RuleSets::new();
    sets.update(A, &[web_rule()]).expect("test value");
    sets
}

/// Egress limited to one destination, so that the VM's replies would be denied on their own.
fn strict_egress(sets: &mut RuleSets) {
    let rules = [
        rule(
            "web",
            pb::TrafficDirection::Ingress,
            "0.0.0.0/0",
            "0.0.0.0/0",
            tcp(-1, -1, 80, 80),
        ),
        rule(
            "dns-only",
            pb::TrafficDirection::Egress,
            "0.0.0.0/0",
            "10.0.0.53/32",
            None,
        ),
    ];
    sets.update(A, &rules).expect("test value");
}

fn table() -> FlowTable {
    FlowTable::new(TableConfig::default())
}

#[test]
fn reply_passes_because_the_request_was_accepted() {
    let mut sets = RuleSets::new();
    strict_egress(&mut sets);
    let mut t = table();
    let now = Instant::now();
    let reply_key = inbound().reverse();
    // On its own the VM's packet to the client is denied by the egress rules...
    assert_eq!(sets.get(A).evaluate(OUT, &reply_key), Verdict::Deny);
    let d = t.process(IN, &inbound(), TcpFlags::SYN, sets.get(A), now);
    assert_eq!(d.action, FlowAction::Forward);
    assert_eq!(d.seen, Seen::New);
    // ...but as the reply of an accepted request it passes.
    let r = t.process(
        OUT,
        &reply_key,
        TcpFlags::SYN | TcpFlags::ACK,
        sets.get(A),
        now,
    );
    assert_eq!(r.action, FlowAction::Forward);
    assert_eq!(r.seen, Seen::Reply);
    assert_eq!(t.len(), 1);
    let s = t.stats();
    assert_eq!((s.hits, s.misses), (1, 1));
}

#[test]
fn reply_of_a_denied_request_is_judged_on_its_own() {
    let sets = web_rules();
    let mut t = table();
    let now = Instant::now();
    // Port 22 is not allowed in.
    let ssh = tcp_key("10.0.0.9", "10.0.0.1", 40000, 22);
    let d = t.process(IN, &ssh, TcpFlags::SYN, sets.get(A), now);
    assert_eq!(d.action, FlowAction::Drop);
    // A denied flow does not open the other way: the reverse packet is a new flow, judged
    // by the (open) egress rules, not blocked by the denied request.
    let r = t.process(OUT, &ssh.reverse(), TcpFlags::NONE, sets.get(A), now);
    assert_eq!(r.seen, Seen::New);
    assert_eq!(r.action, FlowAction::Forward);
    // That accepted egress flow supersedes the cached denial of its reply key, so its
    // replies get in although no ingress rule allows them.
    let back = t.process(IN, &ssh, TcpFlags::NONE, sets.get(A), now);
    assert_eq!((back.seen, back.action), (Seen::Reply, FlowAction::Forward));
    assert_eq!(t.len(), 1);
    // A packet that is a reply of nothing, ingress, without a rule: denied.
    let stray = tcp_key("10.0.0.8", "10.0.0.1", 1, 22);
    assert_eq!(
        t.process(IN, &stray, TcpFlags::NONE, sets.get(A), now)
            .action,
        FlowAction::Drop
    );
}

#[test]
fn outbound_flow_replies_get_in_without_ingress_rules() {
    let sets = RuleSets::new();
    let mut t = table();
    let now = Instant::now();
    let out = tcp_key("10.0.0.1", "192.0.2.1", 50000, 443);
    let o = t.process(OUT, &out, TcpFlags::SYN, sets.get(A), now);
    assert_eq!(o.action, FlowAction::Forward);
    let r = t.process(IN, &out.reverse(), TcpFlags::NONE, sets.get(A), now);
    assert_eq!((r.action, r.seen), (FlowAction::Forward, Seen::Reply));
    // The same packet in the wrong direction is not a reply.
    let wrong = t.process(OUT, &out.reverse(), TcpFlags::NONE, sets.get(A), now);
    assert_eq!(wrong.seen, Seen::New);
}

#[test]
fn icmp_echo_reply_joins_its_request() {
    let mut sets = RuleSets::new();
    strict_egress(&mut sets);
    let mut t = table();
    let now = Instant::now();
    let ping = FlowKey {
        l4: L4::Icmp {
            icmp_type: 8,
            code: 0,
            id: 77,
        },
        ..tcp_key("10.0.0.1", "10.0.0.53", 0, 0)
    };
    assert_eq!(
        t.process(OUT, &ping, TcpFlags::NONE, sets.get(A), now)
            .action,
        FlowAction::Forward
    );
    let pong = ping.reverse();
    // No ingress rule allows ICMP; the echo reply passes as the reply.
    assert_eq!(sets.get(A).evaluate(IN, &pong), Verdict::Deny);
    let r = t.process(IN, &pong, TcpFlags::NONE, sets.get(A), now);
    assert_eq!((r.action, r.seen), (FlowAction::Forward, Seen::Reply));
}

#[test]
fn udp_expires_after_its_timeout() {
    let sets = RuleSets::new();
    let mut t = table();
    let t0 = Instant::now();
    let k = FlowKey {
        l4: L4::Udp {
            src_port: 5000,
            dst_port: 53,
        },
        ..tcp_key("10.0.0.1", "10.0.0.53", 0, 0)
    };
    t.process(OUT, &k, TcpFlags::NONE, sets.get(A), t0);
    // Each packet renews the flow.
    let t1 = t0 + Duration::from_secs(20);
    let r = t.process(IN, &k.reverse(), TcpFlags::NONE, sets.get(A), t1);
    assert_eq!(r.seen, Seen::Reply);
    assert_eq!(t.expire(t1 + Duration::from_secs(29)), 0);
    assert_eq!(t.expire(t1 + Duration::from_secs(30)), 1);
    assert!(t.is_empty());
    // After expiry the reply is no longer part of a flow: ingress without a rule.
    let late = t.process(
        IN,
        &k.reverse(),
        TcpFlags::NONE,
        sets.get(A),
        t1 + Duration::from_secs(31),
    );
    assert_eq!((late.seen, late.action), (Seen::New, FlowAction::Drop));
    assert_eq!(t.stats().expired, 1);
}

#[test]
fn expired_flow_is_dropped_on_lookup() {
    let sets = RuleSets::new();
    let mut t = table();
    let t0 = Instant::now();
    let out = tcp_key("10.0.0.1", "192.0.2.1", 50000, 443);
    t.process(OUT, &out, TcpFlags::SYN, sets.get(A), t0);
    let r = t.process(
        IN,
        &out.reverse(),
        TcpFlags::SYN | TcpFlags::ACK,
        sets.get(A),
        t0 + Duration::from_secs(31),
    );
    assert_eq!((r.seen, r.action), (Seen::New, FlowAction::Drop));
    assert_eq!(t.stats().expired, 1);
}

#[test]
fn tcp_timeouts_follow_the_connection() {
    let sets = web_rules();
    let mut t = table();
    let t0 = Instant::now();
    let k = inbound();
    let rules = sets.get(A);
    t.process(IN, &k, TcpFlags::SYN, rules, t0);
    assert_eq!(t.get(IN, &k).map(|f| f.tcp), Some(TcpState::SynSent));
    t.process(OUT, &k.reverse(), TcpFlags::SYN | TcpFlags::ACK, rules, t0);
    assert_eq!(t.get(IN, &k).map(|f| f.tcp), Some(TcpState::SynAckSeen));
    t.process(IN, &k, TcpFlags::ACK, rules, t0);
    assert_eq!(t.get(IN, &k).map(|f| f.tcp), Some(TcpState::Established));
    // Established: an hour of silence is fine.
    let t1 = t0 + Duration::from_secs(3600);
    assert_eq!(t.expire(t1), 0);
    assert_eq!(
        t.process(OUT, &k.reverse(), TcpFlags::ACK, rules, t1).seen,
        Seen::Reply
    );
    // FIN makes the timeout short again.
    t.process(OUT, &k.reverse(), TcpFlags::FIN | TcpFlags::ACK, rules, t1);
    assert_eq!(t.get(IN, &k).map(|f| f.tcp), Some(TcpState::Closing));
    t.process(IN, &k, TcpFlags::ACK, rules, t1);
    assert_eq!(t.get(IN, &k).map(|f| f.tcp), Some(TcpState::Closing));
    assert_eq!(t.expire(t1 + Duration::from_secs(29)), 0);
    assert_eq!(t.expire(t1 + Duration::from_secs(30)), 1);
}

#[test]
fn rst_closes_and_unfinished_handshake_is_short() {
    let sets = web_rules();
    let mut t = table();
    let t0 = Instant::now();
    let k = inbound();
    t.process(IN, &k, TcpFlags::SYN, sets.get(A), t0);
    t.process(OUT, &k.reverse(), TcpFlags::RST, sets.get(A), t0);
    assert_eq!(t.get(IN, &k).map(|f| f.tcp), Some(TcpState::Closing));
    let k2 = tcp_key("10.0.0.8", "10.0.0.1", 1234, 80);
    t.process(IN, &k2, TcpFlags::SYN, sets.get(A), t0);
    assert_eq!(t.expire(t0 + Duration::from_secs(30)), 2);
}

#[test]
fn rule_removal_stops_an_accepted_flow_and_its_replies() {
    let mut sets = web_rules();
    let mut t = table();
    let now = Instant::now();
    let k = inbound();
    t.process(IN, &k, TcpFlags::SYN, sets.get(A), now);
    sets.update(A, &[]).expect("test value");
    let r = t.process(OUT, &k.reverse(), TcpFlags::NONE, sets.get(A), now);
    // The flow is now denied; the VM's packet is an egress flow of its own (open egress).
    assert_eq!(r.seen, Seen::New);
    assert_eq!(t.stats().reevaluated, 1);
    let again = t.process(IN, &k, TcpFlags::ACK, sets.get(A), now);
    assert_eq!(
        again.action,
        FlowAction::Forward,
        "now a reply of the egress flow"
    );
    let other = tcp_key("10.0.0.7", "10.0.0.1", 1, 80);
    let d = t.process(IN, &other, TcpFlags::SYN, sets.get(A), now);
    assert_eq!(d.action, FlowAction::Drop);
}

#[test]
fn rule_removal_denies_an_ingress_flow() {
    let mut sets = web_rules();
    let mut t = table();
    let now = Instant::now();
    let k = inbound();
    t.process(IN, &k, TcpFlags::SYN, sets.get(A), now);
    sets.remove(A);
    let d = t.process(IN, &k, TcpFlags::ACK, sets.get(A), now);
    assert_eq!((d.seen, d.action), (Seen::Original, FlowAction::Drop));
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(t.get(OUT, &k.reverse()).is_none(), "replies closed");
}

#[test]
fn new_rule_opens_a_denied_flow() {
    let mut sets = RuleSets::new();
    let mut t = table();
    let now = Instant::now();
    let k = inbound();
    assert_eq!(
        t.process(IN, &k, TcpFlags::SYN, sets.get(A), now).action,
        FlowAction::Drop
    );
    let g = sets
        .update(
            A,
            &[rule(
                "all",
                pb::TrafficDirection::Ingress,
                "0.0.0.0/0",
                "0.0.0.0/0",
                None,
            )],
        )
        .expect("test value");
    let d = t.process(IN, &k, TcpFlags::SYN, sets.get(A), now);
    assert_eq!((d.seen, d.action), (Seen::Original, FlowAction::Forward));
    assert_eq!(t.get(IN, &k).map(|f| f.generation), Some(g));
    let r = t.process(OUT, &k.reverse(), TcpFlags::NONE, sets.get(A), now);
    assert_eq!(r.seen, Seen::Reply);
}

#[test]
fn rule_change_leaves_other_interfaces_alone() {
    let mut sets = web_rules();
    let b = IfaceIndex(2);
    sets.update(b, &[]).expect("test value");
    let mut t = table();
    let now = Instant::now();
    let kb = FlowKey {
        iface: b,
        ..tcp_key("10.0.0.2", "192.0.2.1", 1, 2)
    };
    t.process(OUT, &kb, TcpFlags::SYN, sets.get(b), now);
    sets.update(A, &[]).expect("test value");
    t.process(IN, &kb.reverse(), TcpFlags::NONE, sets.get(b), now);
    assert_eq!(t.stats().reevaluated, 0);
    assert_eq!(t.remove_interface(b), 1);
    assert!(t.is_empty());
}

#[test]
fn full_table_evicts_the_oldest() {
    let sets = RuleSets::new();
    let mut t = FlowTable::new(TableConfig {
        max_flows: 2,
        ..TableConfig::default()
    });
    let t0 = Instant::now();
    let k = |p| tcp_key("10.0.0.1", "192.0.2.1", p, 443);
    t.process(OUT, &k(1), TcpFlags::SYN, sets.get(A), t0);
    t.process(
        OUT,
        &k(2),
        TcpFlags::SYN,
        sets.get(A),
        t0 + Duration::from_secs(1),
    );
    // Flow 1 is used again, so flow 2 is now the oldest.
    t.process(
        IN,
        &k(1).reverse(),
        TcpFlags::NONE,
        sets.get(A),
        t0 + Duration::from_secs(2),
    );
    t.process(
        OUT,
        &k(3),
        TcpFlags::SYN,
        sets.get(A),
        t0 + Duration::from_secs(3),
    );
    assert_eq!(t.len(), 2);
    assert!(t.get(OUT, &k(1)).is_some());
    assert!(t.get(OUT, &k(2)).is_none());
    assert!(t.get(IN, &k(2).reverse()).is_none(), "both keys go");
    assert!(t.get(OUT, &k(3)).is_some());
    assert_eq!(t.stats().evictions, 1);
    let order: Vec<_> = t.iter_oldest_first().map(|f| f.key).collect();
    assert_eq!(order, [k(1), k(3)]);
}

#[test]
fn zero_bound_is_one() {
    let t = FlowTable::new(TableConfig {
        max_flows: 0,
        ..TableConfig::default()
    });
    assert_eq!(t.config().max_flows, 1);
}

#[derive(Debug, Clone)]
enum Op {
    Packet {
        out: bool,
        reverse: bool,
        port: u16,
        flags: u8,
        advance: u8,
    },
    Expire {
        advance: u8,
    },
    Rules {
        open: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<bool>(), any::<bool>(), 0u16..12, any::<u8>(), 0u8..20).prop_map(
            |(out, reverse, port, flags, advance)| Op::Packet { out, reverse, port, flags, advance }
        ),
        1 => (0u8..40).prop_map(|advance| Op::Expire { advance }),
        1 => any::<bool>().prop_map(|open| Op::Rules { open }),
    ]
}

proptest! {
    #[test]
    fn table_stays_within_its_bound_and_consistent(
        max in 1usize..6,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut sets = web_rules();
        let mut t = FlowTable::new(TableConfig { max_flows: max, ..TableConfig::default() });
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Packet { out, reverse, port, flags, advance } => {
                    now += Duration::from_secs(u64::from(advance));
                    let base = tcp_key("10.0.0.9", "10.0.0.1", 1000 + port, 80 + port % 3);
                    let key = if reverse { base.reverse() } else { base };
                    let dir = if out { OUT } else { IN };
                    let d = t.process(dir, &key, TcpFlags(flags), sets.get(A), now);
                    // Whatever happened, the packet now belongs to a flow holding that decision.
                    let flow = t.get(dir, &key);
                    prop_assert!(flow.is_some());
                    prop_assert_eq!(flow.map(|f| f.action), Some(d.action));
                    if d.seen == Seen::Reply {
                        prop_assert_eq!(d.action, FlowAction::Forward);
                    }
                }
                Op::Expire { advance } => {
                    now += Duration::from_secs(u64::from(advance));
                    t.expire(now);
                }
                Op::Rules { open } => {
                    let web = [web_rule()];
                    let rules: &[pb::FirewallRule] = if open { &web } else { &[] };
                    sets.update(A, rules).expect("test value");
                }
            }
            prop_assert!(t.len() <= max);
            prop_assert_eq!(t.iter_oldest_first().count(), t.len());
            prop_assert!(t.index.len() <= 2 * t.len());
            prop_assert!(t.index.values().all(|&slot| t.flow(slot).is_some()));
        }
    }
}
