#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::packet::checksum::{internet_checksum, transport_checksum_v4, transport_checksum_v6};
use crate::packet::ipv4::Ipv4Header;
use crate::packet::ipv6::{self, Ipv6Header};
use crate::packet::{MacAddr, ether};

const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// A TCP frame with correct checksums; `options` are appended to the 20-byte header.
pub(crate) fn tcp_frame(
    v4: bool,
    sport: u16,
    seq: u32,
    id: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let options = [1u8, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]; // NOP NOP timestamps
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&80u16.to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&1000u32.to_be_bytes());
    seg.extend_from_slice(&[0x80, flags, 0x10, 0x00, 0, 0, 0, 0]);
    seg.extend_from_slice(&options);
    seg.extend_from_slice(payload);
    let mut f = Vec::new();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    if v4 {
        ether::write_header(&mut f, mac, mac, ether::ETHERTYPE_IPV4);
        let sum = transport_checksum_v4(A4, B4, ipv4::PROTO_TCP, &seg);
        seg[16..18].copy_from_slice(&sum.to_be_bytes());
        let mut h = Ipv4Header::new(A4, B4, ipv4::PROTO_TCP);
        h.dont_fragment = true;
        h.write(&mut f, seg.len() as u16);
        put16(&mut f, ETHER_LEN + 4, id);
        ipv4::finish_header(&mut f, ETHER_LEN, seg.len() as u16);
    } else {
        ether::write_header(&mut f, mac, mac, ether::ETHERTYPE_IPV6);
        let sum = transport_checksum_v6(&A6, &B6, ipv6::NEXT_TCP, &seg);
        seg[16..18].copy_from_slice(&sum.to_be_bytes());
        Ipv6Header::new(A6, B6, ipv6::NEXT_TCP, 64).write(&mut f, seg.len() as u16);
    }
    f.extend_from_slice(&seg);
    f
}

/// What a VM's kernel hands the TAP for `payload` sent at once: one frame, partial checksum.
fn super_frame(v4: bool, seq: u32, flags: u8, payload: &[u8], mss: u16) -> (VnetHdr, Vec<u8>) {
    let mut f = tcp_frame(v4, 4000, seq, 7, flags, payload);
    let l = tcp_layout(&f).unwrap().unwrap();
    let partial = pseudo(&f, &l, l.end - l.tcp).fold();
    put16(&mut f, l.tcp + 16, partial);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v4 { GSO_TCPV4 } else { GSO_TCPV6 },
        hdr_len: l.payload as u16,
        gso_size: mss,
        csum_start: l.tcp as u16,
        csum_offset: 16,
    };
    (hdr, f)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

fn check_valid(f: &[u8]) -> TcpLayout {
    let l = tcp_layout(f).unwrap().unwrap();
    assert!(tcp_checksum_ok(f, &l), "TCP checksum");
    if l.v4 {
        assert_eq!(
            internet_checksum(&f[ETHER_LEN..l.tcp]),
            0,
            "IPv4 header checksum"
        );
    }
    l
}

fn segments(hdr: &VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Segments::new();
    segment(hdr, f, &mut out).unwrap();
    out.iter().map(<[u8]>::to_vec).collect()
}

#[test]
fn header_round_trips() {
    let h = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV6 | GSO_ECN,
        hdr_len: 86,
        gso_size: 1428,
        csum_start: 54,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::parse(&h.to_bytes()).unwrap(), h);
    assert!(VnetHdr::parse(&[0; 9]).is_err());
}

#[test]
fn a_partial_checksum_is_completed() {
    for v4 in [true, false] {
        let want = tcp_frame(v4, 4000, 5, 7, tcp::ACK | tcp::PSH, &payload(333));
        let (hdr, f) = super_frame(v4, 5, tcp::ACK | tcp::PSH, &payload(333), 1448);
        assert_ne!(f, want);
        let hdr = VnetHdr {
            gso_type: GSO_NONE,
            ..hdr
        };
        assert_eq!(segments(&hdr, &f), vec![want]);
    }
}

#[test]
fn a_udp_checksum_that_computes_to_zero_is_sent_as_ffff() {
    // A UDP datagram between unspecified addresses whose 2-byte payload makes the sum 0xffff.
    let mut f = Vec::new();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    ether::write_header(&mut f, mac, mac, ether::ETHERTYPE_IPV4);
    let h = Ipv4Header::new(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, 17);
    h.write(&mut f, 10);
    // Ports 0, length 10, and in the checksum field the pseudo-header sum (17 + 10).
    let pseudo = 17u16 + 10;
    let fill = 0xffff - (10 + pseudo);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 10]);
    f.extend_from_slice(&pseudo.to_be_bytes());
    f.extend_from_slice(&fill.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let got = segments(&hdr, &f);
    assert_eq!(&got[0][40..42], &[0xff, 0xff]);
}

#[test]
fn a_super_segment_is_cut_into_wire_segments() {
    for v4 in [true, false] {
        let data = payload(3 * 1000 + 123);
        let (hdr, f) = super_frame(v4, u32::MAX - 1500, tcp::ACK | tcp::PSH, &data, 1000);
        let got = segments(&hdr, &f);
        assert_eq!(got.len(), 4);
        let mut joined = Vec::new();
        for (i, s) in got.iter().enumerate() {
            let l = check_valid(s);
            joined.extend_from_slice(&s[l.payload..]);
            let seq = be32(s, l.tcp + 4);
            assert_eq!(seq, (u32::MAX - 1500).wrapping_add(1000 * i as u32));
            let psh = byte(s, l.tcp + 13) & tcp::PSH != 0;
            assert_eq!(psh, i == 3, "PSH only on the last segment");
            if v4 {
                assert_eq!(be16(s, ETHER_LEN + 4), 7 + i as u16);
            }
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn inconsistent_offload_headers_are_errors() {
    let (hdr, f) = super_frame(true, 1, tcp::ACK, &payload(3000), 1000);
    let mut out = Segments::new();
    for bad in [
        VnetHdr { gso_size: 0, ..hdr },
        VnetHdr { gso_type: 3, ..hdr },
        VnetHdr {
            gso_type: GSO_TCPV6,
            ..hdr
        },
        VnetHdr {
            gso_type: GSO_NONE,
            csum_start: 4000,
            ..hdr
        },
        VnetHdr {
            gso_type: GSO_NONE,
            csum_offset: 4000,
            ..hdr
        },
    ] {
        assert!(segment(&bad, &f, &mut out).is_err(), "{bad:?}");
        assert!(out.is_empty());
    }
    assert!(segment(&hdr, &f[..40], &mut out).is_err());
    let mut short = f.clone();
    put16(&mut short, ETHER_LEN + 2, 9000);
    assert!(segment(&hdr, &short, &mut out).is_err());
}

fn coalesce(frames: Vec<Vec<u8>>) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut c = Coalescer::new();
    for f in frames {
        c.push(f);
    }
    c.drain().collect()
}

#[test]
fn consecutive_segments_merge_and_split_back_to_the_same_frames() {
    for v4 in [true, false] {
        let data = payload(5 * 1200 + 17);
        let (hdr, f) = super_frame(v4, 42, tcp::ACK | tcp::PSH, &data, 1200);
        let wire = segments(&hdr, &f);
        let merged = coalesce(wire.clone());
        assert_eq!(merged.len(), 1);
        let (mh, mf) = &merged[0];
        assert_eq!(mh.gso_size, 1200);
        assert_eq!(mh.flags, F_NEEDS_CSUM);
        assert_eq!(segments(mh, mf), wire);
    }
}

#[test]
fn only_the_next_segment_of_a_flow_merges() {
    let seg = |sport, seq, id, flags, n| tcp_frame(true, sport, seq, id, flags, &payload(n));
    let mut bad = seg(1, 2000, 3, tcp::ACK, 1000);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let frames = vec![
        seg(1, 0, 1, tcp::ACK, 1000),
        seg(2, 0, 1, tcp::ACK, 1000), // another flow, interleaved
        seg(1, 1000, 2, tcp::ACK, 1000),
        seg(2, 1000, 2, tcp::ACK, 1000),
        bad,                             // bad checksum: alone, and ends flow 1's merge
        seg(1, 3000, 4, tcp::ACK, 1000), // a new merge
        seg(1, 5000, 5, tcp::ACK, 1000), // a gap
        seg(2, 2000, 3, tcp::ACK | tcp::SYN, 0),
        seg(3, 0, 1, tcp::ACK, 500),
        seg(3, 500, 2, tcp::ACK, 1000), // larger than the first: not mergeable
    ];
    let got = coalesce(frames.clone());
    let sizes: Vec<(u16, usize)> = got.iter().map(|(h, f)| (h.gso_size, f.len())).collect();
    let one = frames[0].len();
    assert_eq!(
        sizes,
        vec![
            (1000, one + 1000),
            (1000, one + 1000),
            (0, one),
            (0, one),
            (0, one),
            (0, frames[7].len()),
            (0, frames[8].len()),
            (0, frames[9].len()),
        ]
    );
    // Unmerged frames are untouched.
    assert_eq!(got[2].1, frames[4]);
    // Merged ones are valid once split.
    for (h, f) in &got[..2] {
        for s in segments(h, f) {
            check_valid(&s);
        }
    }
}

#[test]
fn a_flow_is_growing_until_a_short_or_psh_segment() {
    let seg = |seq: u32, flags, n| tcp_frame(true, 1, seq, (seq / 1000) as u16, flags, &payload(n));
    let mut c = Coalescer::new();
    assert!(!c.growing());
    c.push(seg(0, tcp::ACK, 1000));
    assert!(c.growing(), "a full segment may have more behind it");
    c.push(seg(1000, tcp::ACK, 1000));
    assert!(c.growing());
    c.push(seg(2000, tcp::ACK, 400));
    assert!(!c.growing(), "a short segment ends what the sender had");
    assert_eq!(c.drain().count(), 1);
    assert!(!c.growing());
    c.push(seg(3000, tcp::ACK | tcp::PSH, 1000));
    assert!(!c.growing(), "PSH: the sender has nothing more queued");
    let mut udp = seg(0, tcp::ACK, 1000);
    udp[ETHER_LEN + 9] = 17;
    let mut c = Coalescer::new();
    c.push(udp);
    assert!(!c.growing());
}

#[test]
fn other_frames_pass_through() {
    let mut udp = tcp_frame(true, 1, 0, 1, tcp::ACK, &payload(10));
    udp[ETHER_LEN + 9] = 17;
    let arp = vec![0u8; 42];
    let got = coalesce(vec![udp.clone(), arp.clone(), vec![1, 2, 3]]);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(h, _)| *h == VnetHdr::default()));
    assert_eq!(got[0].1, udp);
    assert_eq!(got[1].1, arp);
}

proptest! {
    #[test]
    fn segmenting_then_merging_loses_nothing(
        v4 in any::<bool>(),
        n in 0usize..20_000,
        mss in 500u16..1500,
        seq in any::<u32>(),
        psh in any::<bool>(),
    ) {
        let flags = tcp::ACK | if psh { tcp::PSH } else { 0 };
        let data = payload(n);
        let (hdr, f) = super_frame(v4, seq, flags, &data, mss);
        let wire = segments(&hdr, &f);
        prop_assert_eq!(wire.len(), n.div_ceil(usize::from(mss)).max(1));
        for s in &wire {
            check_valid(s);
        }
        let mut again = Vec::new();
        for (h, m) in coalesce(wire.clone()) {
            again.extend(segments(&h, &m));
        }
        prop_assert_eq!(again, wire);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        hdr in any::<[u8; VNET_HDR_LEN]>(),
        frame in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let hdr = VnetHdr::parse(&hdr).unwrap();
        let mut out = Segments::new();
        let _ = segment(&hdr, &frame, &mut out);
        let _ = coalesce(vec![frame]);
    }
}
