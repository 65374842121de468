//! ICMP echo over a raw socket, with the don't-fragment bit (IPv4) or no local fragmentation
//! (IPv6), so that a too-big echo comes back as an ICMP error naming the path MTU instead of
//! being split by the sender.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustix::net::sockopt::{
    Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery, set_ip_mtu_discover, set_ipv6_mtu_discover,
};
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PROTO_ICMPV4: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// What to ping and how.
#[derive(Debug)]
pub struct Opts {
    pub to: IpAddr,
    pub count: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub size: usize,
}

/// What one received ICMP packet means for this ping.
#[derive(Debug, PartialEq)]
enum Seen {
    Reply { seq: u16, payload_ok: bool },
    Error(IcmpError),
    Other,
}

/// An ICMP error that quotes one of our echo requests.
#[derive(Debug, PartialEq)]
struct IcmpError {
    seq: u16,
    kind: u8,
    code: u8,
    /// Next-hop MTU of "fragmentation needed" / "packet too big".
    mtu: Option<u32>,
    from: IpAddr,
}

/// Sends the echoes and collects what comes back.
pub fn run(o: &Opts) -> anyhow::Result<Value> {
    let sock = open(o.to)?;
    let id = identifier();
    let payload: Vec<u8> = (0..o.size).map(|i| (i % 251) as u8).collect();
    let dest = SocketAddr::new(o.to, 0);

    let mut sent_at: Vec<Option<Instant>> = vec![None; usize::from(o.count)];
    let mut answered = vec![false; usize::from(o.count)];
    let mut rtts_us: Vec<u64> = Vec::new();
    let (mut duplicates, mut corrupted) = (0u64, 0u64);
    let mut errors: Vec<Value> = Vec::new();
    let mut local_errors: Vec<Value> = Vec::new();
    let mut buf = vec![0u8; 65_536];

    let mut next_seq: u16 = 0;
    let mut next_send = Instant::now();
    let mut deadline = None;
    loop {
        let now = Instant::now();
        if next_seq < o.count && now >= next_send {
            let packet = echo_request(o.to, id, next_seq, &payload);
            // Stamped before sending: on veths the kernel can carry the request (and even
            // the reply) within `send_to`, which would hide that time from the RTT.
            let stamp = Instant::now();
            match sock.send_to(&packet, dest) {
                Ok(_) => sent_at[usize::from(next_seq)] = Some(stamp),
                Err(e) => local_errors
                    .push(json!({"op": "send", "seq": next_seq, "error": e.to_string()})),
            }
            next_seq += 1;
            next_send += o.interval;
            if next_seq == o.count {
                deadline = Some(Instant::now() + o.timeout);
            }
            continue;
        }
        let outstanding = sent_at
            .iter()
            .zip(&answered)
            .any(|(s, a)| s.is_some() && !a);
        if let Some(d) = deadline
            && (!outstanding || now >= d)
        {
            break;
        }
        let wake = deadline.unwrap_or(next_send);
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait))
            .context("setting the receive timeout")?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            // A raw socket reports some ICMP errors (EMSGSIZE, EHOSTUNREACH) once as a receive
            // error as well; the packet itself is parsed when it is read.
            Err(e) => {
                local_errors.push(json!({"op": "recv", "error": e.to_string()}));
                continue;
            }
        };
        let seen = match o.to {
            IpAddr::V4(_) => parse_v4(&buf[..n], id, &payload),
            IpAddr::V6(_) => parse_v6(&buf[..n], from.ip(), id, &payload),
        };
        match seen {
            Seen::Reply { seq, payload_ok } => {
                let i = usize::from(seq);
                let Some(Some(at)) = sent_at.get(i) else {
                    continue;
                };
                if answered[i] {
                    duplicates += 1;
                    continue;
                }
                answered[i] = true;
                if !payload_ok {
                    corrupted += 1;
                }
                rtts_us.push(u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Seen::Error(e) => {
                if let Some(a) = answered.get_mut(usize::from(e.seq)) {
                    // An error is the answer to that echo: stop waiting for it.
                    *a = true;
                }
                errors.push(json!({
                    "type": e.kind, "code": e.code, "mtu": e.mtu,
                    "from": e.from.to_string(), "seq": e.seq,
                }));
            }
            Seen::Other => {}
        }
    }

    let sent = sent_at.iter().filter(|s| s.is_some()).count();
    Ok(json!({
        "to": o.to.to_string(),
        "sent": sent,
        "received": rtts_us.len(),
        "duplicates": duplicates,
        "corrupted": corrupted,
        "rtt_us": rtt_summary(&mut rtts_us),
        "errors": errors,
        "local_errors": local_errors,
    }))
}

/// A raw ICMP socket for `to`'s family with path-MTU discovery "do": DF on IPv4, and on IPv6
/// no local fragmentation beyond the known path MTU.
fn open(to: IpAddr) -> anyhow::Result<UdpSocket> {
    let (domain, proto) = match to {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let sock = Socket::new(domain, Type::RAW, Some(proto))
        .context("opening a raw ICMP socket (needs root or CAP_NET_RAW)")?;
    match to {
        IpAddr::V4(_) => set_ip_mtu_discover(&sock, Ipv4PathMtuDiscovery::DO)
            .context("setting IP_MTU_DISCOVER")?,
        IpAddr::V6(_) => set_ipv6_mtu_discover(&sock, Ipv6PathMtuDiscovery::DO)
            .context("setting IPV6_MTU_DISCOVER")?,
    }
    // std's datagram calls are plain sendto/recvfrom, which suit a raw socket, and read into
    // an initialised buffer (socket2's recv_from wants MaybeUninit, readable only unsafely).
    Ok(UdpSocket::from(sock))
}

/// An identifier unlikely to be shared with another ping in the same namespace: raw sockets
/// see every ICMP packet, so replies are told apart by it.
fn identifier() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = std::process::id() ^ nanos.rotate_left(16) ^ nanos;
    (mixed & 0xffff) as u16 ^ (mixed >> 16) as u16
}

/// An echo request: for IPv6 the kernel fills in the checksum (it covers a pseudo-header).
fn echo_request(to: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let kind = match to {
        IpAddr::V4(_) => ECHO_REQUEST_V4,
        IpAddr::V6(_) => ECHO_REQUEST_V6,
    };
    let mut p = Vec::with_capacity(8 + payload.len());
    p.extend_from_slice(&[kind, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if to.is_ipv4() {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Whether an ICMP echo header (and what follows) is ours: `(seq, payload intact)`.
fn our_echo(icmp: &[u8], kind: u8, id: u16, payload: &[u8]) -> Option<(u16, bool)> {
    if *icmp.first()? != kind || be16(icmp, 4)? != id {
        return None;
    }
    Some((be16(icmp, 6)?, icmp.get(8..) == Some(payload)))
}

/// A packet read from a raw IPv4 ICMP socket (the IP header included).
fn parse_v4(pkt: &[u8], id: u16, payload: &[u8]) -> Seen {
    let Some(first) = pkt.first() else {
        return Seen::Other;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || pkt.len() < ihl + 8 {
        return Seen::Other;
    }
    let from = IpAddr::V4(Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]));
    let icmp = &pkt[ihl..];
    match icmp[0] {
        ECHO_REPLY_V4 => match our_echo(icmp, ECHO_REPLY_V4, id, payload) {
            Some((seq, payload_ok)) => Seen::Reply { seq, payload_ok },
            None => Seen::Other,
        },
        // Destination unreachable, time exceeded, parameter problem: they quote our packet.
        kind @ (3 | 11 | 12) => {
            let quoted = &icmp[8..];
            let Some(q0) = quoted.first() else {
                return Seen::Other;
            };
            let qihl = usize::from(q0 & 0x0f) * 4;
            if quoted.get(9) != Some(&PROTO_ICMPV4) || quoted.len() < qihl + 8 {
                return Seen::Other;
            }
            // Only the first 8 bytes of our ICMP header are sure to be quoted: skip the payload.
            match our_echo(&quoted[qihl..qihl + 8], ECHO_REQUEST_V4, id, &[]) {
                Some((seq, _)) => Seen::Error(IcmpError {
                    seq,
                    kind,
                    code: icmp[1],
                    mtu: (kind == 3 && icmp[1] == 4).then(|| u32::from(be16(icmp, 6).unwrap_or(0))),
                    from,
                }),
                None => Seen::Other,
            }
        }
        _ => Seen::Other,
    }
}

/// A packet read from a raw ICMPv6 socket (no IP header; the source comes from recvfrom).
fn parse_v6(icmp: &[u8], from: IpAddr, id: u16, payload: &[u8]) -> Seen {
    if icmp.len() < 8 {
        return Seen::Other;
    }
    match icmp[0] {
        ECHO_REPLY_V6 => match our_echo(icmp, ECHO_REPLY_V6, id, payload) {
            Some((seq, payload_ok)) => Seen::Reply { seq, payload_ok },
            None => Seen::Other,
        },
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        kind @ 1..=4 => {
            let quoted = &icmp[8..];
            // Our requests carry no extension headers: ICMPv6 follows the fixed header.
            if quoted.get(6) != Some(&PROTO_ICMPV6) || quoted.len() < 48 {
                return Seen::Other;
            }
            match our_echo(&quoted[40..48], ECHO_REQUEST_V6, id, &[]) {
                Some((seq, _)) => Seen::Error(IcmpError {
                    seq,
                    kind,
                    code: icmp[1],
                    mtu: (kind == 2)
                        .then(|| u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]])),
                    from,
                }),
                None => Seen::Other,
            }
        }
        _ => Seen::Other,
    }
}

/// min / p50 / p99 / max / avg in microseconds (nearest rank), or null without replies.
fn rtt_summary(rtts: &mut [u64]) -> Value {
    if rtts.is_empty() {
        return Value::Null;
    }
    rtts.sort_unstable();
    let rank = |p: usize| rtts[(rtts.len() * p).div_ceil(100).saturating_sub(1)];
    let avg = rtts.iter().map(|&r| r as f64).sum::<f64>() / rtts.len() as f64;
    json!({
        "min": rtts[0],
        "p50": rank(50),
        "p99": rank(99),
        "max": rtts[rtts.len() - 1],
        "avg": avg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn ipv4_header(src: [u8; 4], proto: u8) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&[10, 0, 0, 1]);
        h
    }

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let p = echo_request(IpAddr::V4(Ipv4Addr::LOCALHOST), 0x1234, 7, b"abc");
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn v4_reply_and_frag_needed_are_matched_by_id_and_seq() {
        let payload = b"hello".to_vec();
        let mut reply = ipv4_header([10, 0, 0, 2], PROTO_ICMPV4);
        let mut echo = echo_request(IpAddr::V4(Ipv4Addr::LOCALHOST), 9, 3, &payload);
        echo[0] = ECHO_REPLY_V4;
        reply.extend_from_slice(&echo);
        assert_eq!(
            parse_v4(&reply, 9, &payload),
            Seen::Reply {
                seq: 3,
                payload_ok: true
            }
        );
        assert_eq!(parse_v4(&reply, 10, &payload), Seen::Other);

        let mut err = ipv4_header([169, 254, 0, 1], PROTO_ICMPV4);
        err.extend_from_slice(&[3, 4, 0, 0, 0, 0, 0x05, 0x78]);
        err.extend_from_slice(&ipv4_header([10, 0, 0, 1], PROTO_ICMPV4));
        err.extend_from_slice(&echo_request(IpAddr::V4(Ipv4Addr::LOCALHOST), 9, 4, &[])[..8]);
        assert_eq!(
            parse_v4(&err, 9, &payload),
            Seen::Error(IcmpError {
                seq: 4,
                kind: 3,
                code: 4,
                mtu: Some(1400),
                from: IpAddr::V4(Ipv4Addr::new(169, 254, 0, 1)),
            })
        );
    }

    #[test]
    fn v6_packet_too_big_quotes_our_request() {
        let from = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut ptb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 16, PROTO_ICMPV6, 64];
        ip6.extend_from_slice(&[0; 32]);
        ptb.extend_from_slice(&ip6);
        ptb.extend_from_slice(&echo_request(from, 77, 1, &[1, 2, 3]));
        match parse_v6(&ptb, from, 77, &[1, 2, 3]) {
            Seen::Error(e) => assert_eq!((e.kind, e.seq, e.mtu), (2, 1, Some(1280))),
            other => panic!("not an error: {other:?}"),
        }
        // Another ping's echo, and neighbour discovery, are not ours.
        assert_eq!(parse_v6(&ptb, from, 78, &[]), Seen::Other);
        assert_eq!(
            parse_v6(&[135, 0, 0, 0, 0, 0, 0, 0], from, 77, &[]),
            Seen::Other
        );
    }

    #[test]
    fn summary_uses_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = rtt_summary(&mut v);
        assert_eq!((s["min"].as_u64(), s["p50"].as_u64()), (Some(1), Some(50)));
        assert_eq!(
            (s["p99"].as_u64(), s["max"].as_u64()),
            (Some(99), Some(100))
        );
        assert_eq!(rtt_summary(&mut []), Value::Null);
    }
}
