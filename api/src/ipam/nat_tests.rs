//! NAT slice sizes, the slice rules, and a state-machine property against a map.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::ipam::Rejected;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

fn o(name: &str) -> String {
    name.to_string()
}

fn slice(ip: Ipv4Addr, port: u16, end_port: u16) -> NatSlice {
    NatSlice { ip, port, end_port }
}

fn gateway(size: u32, ips: &[u8]) -> NatPorts<String> {
    let mut ports = NatPorts::new(PortsPerInterface::new(size).unwrap());
    for &i in ips {
        ports.add_ip(ip(i)).unwrap();
    }
    ports
}

#[test]
fn slice_sizes_are_powers_of_two_from_64_to_32768() {
    for bad in [0, 1, 32, 63, 100, 3000, 32769, 65536, u32::MAX] {
        assert_eq!(
            PortsPerInterface::new(bad),
            Err(NatConfigError::PortsPerInterface { value: bad })
        );
    }
    assert_eq!(
        PortsPerInterface::new(100).unwrap_err().to_string(),
        "portsPerInterface: 100 is not a power of two between 64 and 32768"
    );
    let cases = [(64, 1007), (1024, 62), (2048, 31), (32768, 1)];
    for (size, slices) in cases {
        assert_eq!(
            PortsPerInterface::new(size).unwrap().slices_per_ip(),
            slices
        );
    }
    assert_eq!(PortsPerInterface::default().get(), 2048);
}

#[test]
fn every_size_tiles_the_port_range_within_the_nodes_bounds() {
    for shift in 6..=15 {
        let mut ports = gateway(1 << shift, &[1]);
        let mut previous_end = NAT_PORT_START;
        while let Ok(s) = ports.allocate(format!("if-{}", ports.status().slices_used)) {
            assert_eq!(s.port, previous_end, "size {}", 1 << shift);
            assert_eq!(u32::from(s.end_port - s.port), 1 << shift);
            previous_end = s.end_port;
        }
        // `end_port <= NAT_PORT_END` holds by its type: the node's bound is u16::MAX.
        assert!(
            u32::from(NAT_PORT_END - previous_end) < 1 << shift,
            "a whole slice left over"
        );
    }
}

#[test]
fn slices_fill_the_lowest_address_first_and_then_ask_for_another() {
    let mut ports: NatPorts<String> = NatPorts::new(PortsPerInterface::DEFAULT);
    assert_eq!(
        ports.allocate(o("a")).unwrap_err().to_string(),
        "every slice of the NAT gateway's 0 public IPs is taken: it needs another one"
    );
    ports.add_ip(ip(9)).unwrap();
    assert_eq!(ports.allocate(o("a")), Ok(slice(ip(9), 1024, 3072)));
    assert_eq!(
        ports.allocate(o("a")),
        Ok(slice(ip(9), 1024, 3072)),
        "asking again"
    );
    for i in 1..31 {
        ports.allocate(format!("if-{i}")).unwrap();
    }
    assert_eq!(
        ports.slice_of(&o("if-30")),
        Some(slice(ip(9), 62464, 64512))
    );
    assert_eq!(
        ports.allocate(o("b")),
        Err(NatError::NeedsPublicIp { ips: 1 })
    );
    ports.add_ip(ip(10)).unwrap();
    assert_eq!(ports.allocate(o("b")), Ok(slice(ip(10), 1024, 3072)));
    // A lower address added later is filled first.
    ports.add_ip(ip(1)).unwrap();
    assert_eq!(ports.allocate(o("c")), Ok(slice(ip(1), 1024, 3072)));
    let status = ports.status();
    assert_eq!(
        (
            status.public_ips,
            status.slices_per_ip,
            status.slices_total,
            status.slices_used
        ),
        (3, 31, 93, 33)
    );
    assert_eq!(status.idle_ips, 0);
}

#[test]
fn release_frees_the_slice_and_reports_idle_addresses() {
    let mut ports = gateway(16384, &[1, 2]);
    for name in ["a", "b", "c", "d"] {
        ports.allocate(o(name)).unwrap();
    }
    assert_eq!(ports.slice_of(&o("d")), Some(slice(ip(2), 1024, 17408)));
    assert_eq!(ports.idle_ips(), Vec::<Ipv4Addr>::new());
    assert_eq!(ports.release(&o("d")), Some(slice(ip(2), 1024, 17408)));
    assert_eq!(ports.release(&o("d")), None);
    assert_eq!(ports.idle_ips(), [ip(2)]);
    assert_eq!(ports.status().idle_ips, 1);
    assert_eq!(ports.release(&o("b")), Some(slice(ip(1), 17408, 33792)));
    assert_eq!(ports.allocate(o("e")), Ok(slice(ip(1), 17408, 33792)));
}

#[test]
fn addresses_are_added_once_and_removed_only_when_idle() {
    let mut ports = gateway(2048, &[1]);
    assert_eq!(
        ports.add_ip(ip(1)).unwrap_err().to_string(),
        "192.0.2.1 is a public IP of the NAT gateway already"
    );
    ports.allocate(o("a")).unwrap();
    assert_eq!(
        ports.remove_ip(ip(1)).unwrap_err().to_string(),
        "192.0.2.1 still has 1 slices in use"
    );
    assert_eq!(
        ports.remove_ip(ip(2)).unwrap_err().to_string(),
        "192.0.2.2 is not a public IP of the NAT gateway"
    );
    ports.release(&o("a"));
    ports.remove_ip(ip(1)).unwrap();
    assert_eq!(ports.ips().count(), 0);
}

#[test]
fn fixed_slices_must_be_aligned_on_a_known_address_and_free() {
    let mut ports = gateway(2048, &[1]);
    let misaligned = [
        slice(ip(1), 1000, 3048),
        slice(ip(1), 1025, 3073),
        slice(ip(1), 1024, 2048),
        slice(ip(1), 64512, 65535),
        slice(ip(1), 3072, 3072),
    ];
    for s in misaligned {
        let err = ports.allocate_fixed(o("a"), s).unwrap_err();
        assert_eq!(
            err,
            NatError::Misaligned {
                slice: s,
                ports_per_interface: 2048
            }
        );
    }
    assert_eq!(
        ports
            .allocate_fixed(o("a"), slice(ip(1), 1025, 3073))
            .unwrap_err()
            .to_string(),
        "192.0.2.1:1025-3073 is not a slice of 2048 ports starting at 1024"
    );
    assert_eq!(
        ports.allocate_fixed(o("a"), slice(ip(2), 1024, 3072)),
        Err(NatError::UnknownIp { ip: ip(2) })
    );
    let s = slice(ip(1), 3072, 5120);
    ports.allocate_fixed(o("a"), s).unwrap();
    ports.allocate_fixed(o("a"), s).unwrap();
    assert_eq!(
        ports.allocate_fixed(o("b"), s).unwrap_err().to_string(),
        "192.0.2.1:3072-5120 is held by a"
    );
    assert_eq!(
        ports
            .allocate_fixed(o("a"), slice(ip(1), 1024, 3072))
            .unwrap_err()
            .to_string(),
        "a holds 192.0.2.1:3072-5120 already"
    );
    assert_eq!(ports.allocate(o("b")), Ok(slice(ip(1), 1024, 3072)));
}

#[test]
fn the_holder_of_a_port_is_the_owner_of_its_slice() {
    let mut ports = gateway(2048, &[1]);
    ports.allocate(o("a")).unwrap();
    ports.allocate(o("b")).unwrap();
    assert_eq!(ports.holder(ip(1), 1024), Some(&o("a")));
    assert_eq!(ports.holder(ip(1), 3071), Some(&o("a")));
    assert_eq!(ports.holder(ip(1), 3072), Some(&o("b")));
    assert_eq!(ports.holder(ip(1), 5120), None);
    assert_eq!(ports.holder(ip(1), 80), None);
    assert_eq!(ports.holder(ip(1), 65000), None, "beyond the last slice");
    assert_eq!(ports.holder(ip(2), 1024), None);
}

#[test]
fn restore_rebuilds_and_returns_slices_that_no_longer_fit() {
    let mut ports = gateway(2048, &[1, 2]);
    for i in 0..40 {
        ports.allocate(format!("if-{i:02}")).unwrap();
    }
    let stored: Vec<(String, NatSlice)> =
        ports.assignments().map(|(o, s)| (o.clone(), s)).collect();
    let ips: Vec<Ipv4Addr> = ports.ips().chain([ip(1)]).collect();
    let (mut again, rejected) = NatPorts::restore(PortsPerInterface::DEFAULT, ips, stored.clone());
    assert!(rejected.is_empty());
    assert_eq!(again.status(), ports.status());
    assert_eq!(again.allocate(o("new")), ports.allocate(o("new")));

    // Another size: every slice has the wrong length, so every interface needs a new one;
    // slices on an address that is gone say so first.
    let size = PortsPerInterface::new(4096).unwrap();
    let (resized, rejected) = NatPorts::restore(size, [ip(1)], stored);
    assert_eq!(resized.status().slices_used, 0);
    let unknown = rejected
        .iter()
        .filter(|r| r.error == NatError::UnknownIp { ip: ip(2) })
        .count();
    let misaligned = rejected
        .iter()
        .filter(|r| matches!(r.error, NatError::Misaligned { .. }))
        .count();
    assert_eq!((unknown, misaligned), (9, 31));
}

// ---- state machine ----

#[derive(Debug, Clone)]
enum Op {
    AddIp(u8),
    RemoveIp(u8),
    Allocate(u8),
    Fixed(u8, u8, u16, bool),
    Release(u8),
    Rebuild,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u8..4).prop_map(Op::AddIp),
        1 => (1u8..4).prop_map(Op::RemoveIp),
        4 => (0u8..12).prop_map(Op::Allocate),
        2 => (0u8..12, 1u8..5, 0u16..8, any::<bool>()).prop_map(|(o, i, s, skew)| Op::Fixed(o, i, s, skew)),
        3 => (0u8..12).prop_map(Op::Release),
        1 => Just(Op::Rebuild),
    ]
}

struct Model {
    size: u16,
    per_ip: u16,
    ips: BTreeSet<Ipv4Addr>,
    held: BTreeMap<u8, (Ipv4Addr, u16)>,
}

impl Model {
    fn slice(&self, ip: Ipv4Addr, slot: u16) -> NatSlice {
        let port = NAT_PORT_START + slot * self.size;
        NatSlice {
            ip,
            port,
            end_port: port + self.size,
        }
    }

    fn used(&self, ip: Ipv4Addr) -> usize {
        self.held.values().filter(|(i, _)| *i == ip).count()
    }

    fn holder(&self, ip: Ipv4Addr, slot: u16) -> Option<u8> {
        self.held
            .iter()
            .find(|(_, v)| **v == (ip, slot))
            .map(|(&o, _)| o)
    }

    fn fixed(&mut self, owner: u8, s: NatSlice) -> Result<(), NatError> {
        if !self.ips.contains(&s.ip) {
            return Err(NatError::UnknownIp { ip: s.ip });
        }
        let slot =
            (0..self.per_ip)
                .find(|&k| self.slice(s.ip, k) == s)
                .ok_or(NatError::Misaligned {
                    slice: s,
                    ports_per_interface: self.size,
                })?;
        if let Some(&(ip, k)) = self.held.get(&owner) {
            let held = self.slice(ip, k);
            return if held == s {
                Ok(())
            } else {
                Err(NatError::OwnerHasSlice {
                    owner: owner.to_string(),
                    slice: held,
                })
            };
        }
        if let Some(h) = self.holder(s.ip, slot) {
            return Err(NatError::Taken {
                slice: s,
                holder: h.to_string(),
            });
        }
        self.held.insert(owner, (s.ip, slot));
        Ok(())
    }
}

fn check(ports: &NatPorts<u8>, model: &Model) -> Result<(), TestCaseError> {
    let got: Vec<(u8, NatSlice)> = ports.assignments().map(|(&o, s)| (o, s)).collect();
    let mut expected: Vec<(u8, NatSlice)> = model
        .held
        .iter()
        .map(|(&o, &(ip, k))| (o, model.slice(ip, k)))
        .collect();
    expected.sort_by_key(|&(_, s)| s);
    prop_assert_eq!(&got, &expected);
    for pair in got.windows(2) {
        let (a, b) = (pair[0].1, pair[1].1);
        prop_assert!(a.ip != b.ip || a.end_port <= b.port, "{} overlaps {}", a, b);
    }
    for &(owner, s) in &got {
        prop_assert!(s.port >= NAT_PORT_START && s.port < s.end_port);
        prop_assert_eq!(ports.slice_of(&owner), Some(s));
        prop_assert_eq!(ports.holder(s.ip, s.end_port - 1), Some(&owner));
    }
    prop_assert_eq!(ports.ips().collect::<BTreeSet<_>>(), model.ips.clone());
    let idle: Vec<Ipv4Addr> = model
        .ips
        .iter()
        .copied()
        .filter(|&i| model.used(i) == 0)
        .collect();
    prop_assert_eq!(ports.idle_ips(), idle.clone());
    let status = ports.status();
    prop_assert_eq!(status.public_ips, model.ips.len());
    prop_assert_eq!(
        status.slices_total,
        model.ips.len() * usize::from(model.per_ip)
    );
    prop_assert_eq!(status.slices_used, model.held.len());
    prop_assert_eq!(status.idle_ips, idle.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_gateway_follows_the_model(
        shift in 13u32..=15,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let size = PortsPerInterface::new(1 << shift).unwrap();
        let mut ports: NatPorts<u8> = NatPorts::new(size);
        let mut model = Model { size: size.get(), per_ip: size.slices_per_ip(), ips: BTreeSet::new(), held: BTreeMap::new() };
        for op in ops {
            match op {
                Op::AddIp(i) => {
                    let expected = if model.ips.insert(ip(i)) { Ok(()) } else { Err(NatError::DuplicateIp { ip: ip(i) }) };
                    prop_assert_eq!(ports.add_ip(ip(i)), expected);
                }
                Op::RemoveIp(i) => {
                    let used = model.used(ip(i));
                    let expected = if !model.ips.contains(&ip(i)) {
                        Err(NatError::UnknownIp { ip: ip(i) })
                    } else if used > 0 {
                        Err(NatError::IpInUse { ip: ip(i), slices: used })
                    } else {
                        model.ips.remove(&ip(i));
                        Ok(())
                    };
                    prop_assert_eq!(ports.remove_ip(ip(i)), expected);
                }
                Op::Allocate(owner) => {
                    let expected = if let Some(&(i, k)) = model.held.get(&owner) {
                        Ok(model.slice(i, k))
                    } else {
                        let free = model.ips.iter().find_map(|&i| {
                            (0..model.per_ip).find(|&k| model.holder(i, k).is_none()).map(|k| (i, k))
                        });
                        match free {
                            Some((i, k)) => {
                                model.held.insert(owner, (i, k));
                                Ok(model.slice(i, k))
                            }
                            None => Err(NatError::NeedsPublicIp { ips: model.ips.len() }),
                        }
                    };
                    prop_assert_eq!(ports.allocate(owner), expected);
                }
                Op::Fixed(owner, i, slot, skew) => {
                    let port = u32::from(NAT_PORT_START) + u32::from(slot) * u32::from(model.size) + u32::from(skew);
                    let s = NatSlice {
                        ip: ip(i),
                        port: u16::try_from(port).unwrap_or(u16::MAX),
                        end_port: u16::try_from(port + u32::from(model.size)).unwrap_or(u16::MAX),
                    };
                    let expected = model.fixed(owner, s);
                    prop_assert_eq!(ports.allocate_fixed(owner, s), expected);
                }
                Op::Release(owner) => {
                    let expected = model.held.remove(&owner).map(|(i, k)| model.slice(i, k));
                    prop_assert_eq!(ports.release(&owner), expected);
                }
                Op::Rebuild => {
                    let stored: Vec<(u8, NatSlice)> = ports.assignments().map(|(&o, s)| (o, s)).collect();
                    let (rebuilt, rejected) = NatPorts::restore(size, ports.ips().collect::<Vec<_>>(), stored);
                    prop_assert!(rejected.is_empty());
                    ports = rebuilt;
                }
            }
            check(&ports, &model)?;
        }
    }

    #[test]
    fn restore_keeps_exactly_what_fixed_requests_would(
        ips in proptest::collection::vec(1u8..4, 0..4),
        stored in proptest::collection::vec((0u8..6, 1u8..4, 0u16..8, any::<bool>()), 0..16),
    ) {
        let size = PortsPerInterface::new(8192).unwrap();
        let mut model = Model { size: 8192, per_ip: size.slices_per_ip(), ips: ips.iter().map(|&i| ip(i)).collect(), held: BTreeMap::new() };
        let stored: Vec<(u8, NatSlice)> = stored
            .into_iter()
            .map(|(o, i, slot, skew)| {
                let port = NAT_PORT_START + slot * 8192 + u16::from(skew);
                (o, NatSlice { ip: ip(i), port, end_port: port.saturating_add(8192) })
            })
            .collect();
        let (ports, rejected) = NatPorts::restore(size, ips.iter().map(|&i| ip(i)), stored.clone());
        let mut expected = Vec::new();
        for (owner, s) in stored {
            if let Err(error) = model.fixed(owner, s) {
                expected.push(Rejected { owner, value: s, error });
            }
        }
        prop_assert_eq!(rejected, expected);
        check(&ports, &model)?;
    }
}
