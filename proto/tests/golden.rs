//! Golden byte vectors of UPDATE frames, derived by hand from the protobuf wire format and the
//! metalbond v1 framing (see the comments in `tests/golden/*.hex`), so that a change of the
//! generated code, of prost or of the codec that alters a single byte on the wire fails here
//! instead of at a metalbond peer. Each vector is checked both ways: the message encodes to
//! exactly these bytes, and these bytes decode to exactly this message and nothing more.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use bytes::BytesMut;
use ferrinet_proto::frame::{Decoder, Message, encode_to_vec};
use ferrinet_proto::route::{Action, Destination, IpVersion, NextHop, NextHopType, Update};

/// Reads `tests/golden/NAME.hex`: hex byte pairs separated by white space, `#` to the end of a
/// line is a comment.
fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").split_whitespace())
        .map(|b| {
            assert_eq!(b.len(), 2, "{name}: {b:?} is not one hex byte");
            u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("{name}: {b:?}: {e}"))
        })
        .collect()
}

fn update(
    action: Action,
    vni: u32,
    prefix: &str,
    hop: &str,
    kind: NextHopType,
    target_vni: u32,
    ports: (u32, u32),
) -> Message {
    let (addr, len) = prefix.split_once('/').unwrap();
    let (ip_version, prefix) = match addr.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => (IpVersion::IPv4, a.octets().to_vec()),
        IpAddr::V6(a) => (IpVersion::IPv6, a.octets().to_vec()),
    };
    Message::Update(Update {
        action: action as i32,
        vni,
        destination: Some(Destination {
            ip_version: ip_version as i32,
            prefix,
            prefix_length: len.parse().unwrap(),
        }),
        next_hop: Some(NextHop {
            target_address: hop.parse::<Ipv6Addr>().unwrap().octets().to_vec(),
            target_vni,
            r#type: kind as i32,
            nat_port_range_from: ports.0,
            nat_port_range_to: ports.1,
        }),
    })
}

/// Every vector: its file under `tests/golden/` and the message it holds.
fn cases() -> Vec<(&'static str, Message)> {
    use NextHopType::{LoadbalancerTarget, Nat, Standard};
    vec![
        (
            "update_add_ipv4_standard",
            update(
                Action::Add,
                23,
                "10.0.23.0/24",
                "fd00:a::1",
                Standard,
                0,
                (0, 0),
            ),
        ),
        (
            "update_remove_ipv4_standard",
            update(
                Action::Remove,
                23,
                "10.0.23.0/24",
                "fd00:a::1",
                Standard,
                0,
                (0, 0),
            ),
        ),
        (
            "update_add_ipv4_nat",
            update(
                Action::Add,
                23,
                "10.0.23.5/32",
                "fd00:a::2",
                Nat,
                0,
                (1024, 2048),
            ),
        ),
        (
            "update_remove_ipv6_loadbalancer",
            update(
                Action::Remove,
                100,
                "2001:db8:1::/48",
                "fd00:b::2",
                LoadbalancerTarget,
                0,
                (0, 0),
            ),
        ),
        (
            "update_add_ipv6_target_vni",
            update(
                Action::Add,
                0xff_ffff,
                "2001:db8:2::5/128",
                "fd00:a::3",
                Standard,
                300,
                (0, 0),
            ),
        ),
        (
            "update_remove_ipv4_default_nat",
            update(
                Action::Remove,
                1,
                "0.0.0.0/0",
                "fd00:a::ffff",
                Nat,
                0,
                (49152, 65535),
            ),
        ),
    ]
}

/// Each message encodes to exactly its golden bytes, and the golden bytes decode to exactly the
/// message, consuming the whole frame.
#[test]
fn golden_update_vectors_encode_and_decode_exactly() {
    for (name, msg) in cases() {
        let bytes = golden(name);
        assert_eq!(
            encode_to_vec(&msg).unwrap(),
            bytes,
            "{name}: encoding differs"
        );
        let mut buf = BytesMut::from(&bytes[..]);
        let decoded = Decoder::new().decode(&mut buf).unwrap();
        assert_eq!(decoded, Some(msg), "{name}: decoding differs");
        assert!(buf.is_empty(), "{name}: {} bytes left over", buf.len());
    }
}

/// Every file under `tests/golden/` is one of the cases: a vector added without its message
/// would otherwise prove nothing.
#[test]
fn golden_every_vector_has_a_case() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = cases().iter().map(|(n, _)| format!("{n}.hex")).collect();
    names.sort();
    assert_eq!(files, names);
}
