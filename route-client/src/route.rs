//! Routes as the region stores and forwards them, validated at the edge.
//!
//! A [`Route`] is `(VNI, destination prefix, next hop)`; its identity is every field, so one
//! address with two NAT port ranges is two routes. The type is `Copy` and compact (it is the key
//! of the region's route table, stored once per route), and converts losslessly to and from the
//! wire [`Update`] so a v1 peer gets back exactly the bytes it announced.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ferrinet_proto::route::{self as pb, Update};
use ipnet::IpNet;

/// Largest VNI: VNIs are 24 bits.
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// ADD or REMOVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The route is (still) provided.
    Add,
    /// The route is withdrawn.
    Remove,
}

/// What kind of object the next hop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHopType {
    /// A plain interface or prefix.
    Standard,
    /// A NAT IP with a port range.
    Nat,
    /// A load-balancer target.
    LoadBalancerTarget,
}

impl NextHopType {
    /// The short name used by the announce syntax: `STD`, `NAT`, `LB`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Standard => "STD",
            Self::Nat => "NAT",
            Self::LoadBalancerTarget => "LB",
        }
    }
}

/// The next hop of a route: where the overlay prefix lives in the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// Underlay IPv6 address of the hypervisor object.
    pub address: Ipv6Addr,
    /// 0 normally; the source VNI for routes leaked by peering.
    pub target_vni: u32,
    /// What the next hop is.
    pub kind: NextHopType,
    /// NAT port range start (0 unless `kind` is NAT).
    pub port_from: u16,
    /// NAT port range end (0 unless `kind` is NAT).
    pub port_to: u16,
}

/// A route: VNI, overlay destination prefix, next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// 24-bit VNI.
    pub vni: u32,
    /// Overlay prefix; host bits are kept as announced, because they are part of the identity.
    pub destination: IpNet,
    /// Where it lives.
    pub next_hop: NextHop,
}

/// An UPDATE or an announce string that does not describe a valid route. Names the bad field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A field is missing.
    #[error("{0}: missing")]
    Missing(&'static str),
    /// A field has a value outside its range or of the wrong shape.
    #[error("{field}: {reason}")]
    Invalid {
        /// Which field, as named in the protocol.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RouteError {
    RouteError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Route {
    /// Validates a wire UPDATE and returns its action and route.
    pub fn from_update(u: &Update) -> Result<(Action, Route), RouteError> {
        let action = match pb::Action::try_from(u.action) {
            Ok(pb::Action::Add) => Action::Add,
            Ok(pb::Action::Remove) => Action::Remove,
            Err(_) => return Err(invalid("action", format!("unknown value {}", u.action))),
        };
        if u.vni > MAX_VNI {
            return Err(invalid("vni", format!("{} exceeds 24 bits", u.vni)));
        }
        let d = u
            .destination
            .as_ref()
            .ok_or(RouteError::Missing("destination"))?;
        let addr: IpAddr = match pb::IpVersion::try_from(d.ip_version) {
            Ok(pb::IpVersion::IPv4) => <[u8; 4]>::try_from(d.prefix.as_slice())
                .map(|b| IpAddr::V4(Ipv4Addr::from(b)))
                .map_err(|_| {
                    invalid(
                        "destination.prefix",
                        format!("IPv4 needs 4 bytes, got {}", d.prefix.len()),
                    )
                })?,
            Ok(pb::IpVersion::IPv6) => <[u8; 16]>::try_from(d.prefix.as_slice())
                .map(|b| IpAddr::V6(Ipv6Addr::from(b)))
                .map_err(|_| {
                    invalid(
                        "destination.prefix",
                        format!("IPv6 needs 16 bytes, got {}", d.prefix.len()),
                    )
                })?,
            Err(_) => {
                return Err(invalid(
                    "destination.ipVersion",
                    format!("unknown value {}", d.ip_version),
                ));
            }
        };
        let len = u8::try_from(d.prefix_length)
            .ok()
            .and_then(|l| IpNet::new(addr, l).ok())
            .ok_or_else(|| {
                invalid(
                    "destination.prefixLength",
                    format!("{} is too long for {addr}", d.prefix_length),
                )
            })?;
        let nh = u.next_hop.as_ref().ok_or(RouteError::Missing("nextHop"))?;
        let address = <[u8; 16]>::try_from(nh.target_address.as_slice())
            .map(Ipv6Addr::from)
            .map_err(|_| {
                invalid(
                    "nextHop.targetAddress",
                    format!("needs 16 bytes, got {}", nh.target_address.len()),
                )
            })?;
        let kind = match pb::NextHopType::try_from(nh.r#type) {
            Ok(pb::NextHopType::Standard) => NextHopType::Standard,
            Ok(pb::NextHopType::Nat) => NextHopType::Nat,
            Ok(pb::NextHopType::LoadbalancerTarget) => NextHopType::LoadBalancerTarget,
            Err(_) => {
                return Err(invalid(
                    "nextHop.type",
                    format!("unknown value {}", nh.r#type),
                ));
            }
        };
        let port = |field, v: u32| {
            u16::try_from(v).map_err(|_| invalid(field, format!("{v} is not a port")))
        };
        let next_hop = NextHop {
            address,
            target_vni: nh.target_vni,
            kind,
            port_from: port("nextHop.natPortRangeFrom", nh.nat_port_range_from)?,
            port_to: port("nextHop.natPortRangeTo", nh.nat_port_range_to)?,
        };
        let route = Route {
            vni: u.vni,
            destination: len,
            next_hop,
        };
        route.check_ports()?;
        Ok((action, route))
    }

    fn check_ports(&self) -> Result<(), RouteError> {
        let nh = &self.next_hop;
        match nh.kind {
            NextHopType::Nat if nh.port_from >= nh.port_to => Err(invalid(
                "nextHop.natPortRangeTo",
                format!(
                    "NAT port range {}..{} is empty (ranges are half-open, from < to)",
                    nh.port_from, nh.port_to
                ),
            )),
            NextHopType::Standard | NextHopType::LoadBalancerTarget
                if nh.port_from != 0 || nh.port_to != 0 =>
            {
                Err(invalid(
                    "nextHop.natPortRangeFrom",
                    "port ranges are only for NAT next hops",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The wire UPDATE for this route.
    pub fn to_update(&self, action: Action) -> Update {
        let (ip_version, prefix) = match self.destination.addr() {
            IpAddr::V4(a) => (pb::IpVersion::IPv4, a.octets().to_vec()),
            IpAddr::V6(a) => (pb::IpVersion::IPv6, a.octets().to_vec()),
        };
        Update {
            action: match action {
                Action::Add => pb::Action::Add,
                Action::Remove => pb::Action::Remove,
            } as i32,
            vni: self.vni,
            destination: Some(pb::Destination {
                ip_version: ip_version as i32,
                prefix,
                prefix_length: u32::from(self.destination.prefix_len()),
            }),
            next_hop: Some(pb::NextHop {
                target_address: self.next_hop.address.octets().to_vec(),
                target_vni: self.next_hop.target_vni,
                r#type: match self.next_hop.kind {
                    NextHopType::Standard => pb::NextHopType::Standard,
                    NextHopType::Nat => pb::NextHopType::Nat,
                    NextHopType::LoadBalancerTarget => pb::NextHopType::LoadbalancerTarget,
                } as i32,
                nat_port_range_from: u32::from(self.next_hop.port_from),
                nat_port_range_to: u32::from(self.next_hop.port_to),
            }),
        }
    }
}

/// The announce syntax of metalbond's CLI: `VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]`.
impl FromStr for Route {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('#').collect();
        if !(3..=6).contains(&parts.len()) || parts.len() == 5 {
            return Err(invalid(
                "announce",
                format!("{s:?} is not VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]"),
            ));
        }
        let vni: u32 = parts[0]
            .parse()
            .map_err(|_| invalid("vni", format!("{:?} is not a number", parts[0])))?;
        if vni > MAX_VNI {
            return Err(invalid("vni", format!("{vni} exceeds 24 bits")));
        }
        let destination: IpNet = match parts[1].parse() {
            Ok(n) => n,
            // A bare address means a host route, as in metalbond.
            Err(_) => parts[1]
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| invalid("prefix", format!("{:?} is not a prefix", parts[1])))?,
        };
        let address: Ipv6Addr = parts[2].parse().map_err(|_| {
            invalid(
                "nexthop",
                format!("{:?} is not an IPv6 underlay address", parts[2]),
            )
        })?;
        let kind = match parts.get(3).map(|k| k.to_ascii_uppercase()) {
            None => NextHopType::Standard,
            Some(k) if k == "STD" || k == "STANDARD" => NextHopType::Standard,
            Some(k) if k == "NAT" => NextHopType::Nat,
            Some(k) if k == "LB" || k == "LOADBALANCER_TARGET" => NextHopType::LoadBalancerTarget,
            Some(k) => return Err(invalid("type", format!("{k:?} is not STD, LB or NAT"))),
        };
        let port = |field, s: Option<&&str>| -> Result<u16, RouteError> {
            s.map_or(Ok(0), |p| {
                p.parse()
                    .map_err(|_| invalid(field, format!("{p:?} is not a port")))
            })
        };
        let route = Route {
            vni,
            destination,
            next_hop: NextHop {
                address,
                target_vni: 0,
                kind,
                port_from: port("from", parts.get(4))?,
                port_to: port("to", parts.get(5))?,
            },
        };
        route.check_ports()?;
        Ok(route)
    }
}

/// Prints the announce syntax, so that `r.to_string().parse() == Ok(r)` for routes without a
/// target VNI.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nh = &self.next_hop;
        write!(
            f,
            "{}#{}#{}#{}",
            self.vni,
            self.destination,
            nh.address,
            nh.kind.short_name()
        )?;
        if nh.kind == NextHopType::Nat {
            write!(f, "#{}#{}", nh.port_from, nh.port_to)?;
        }
        if nh.target_vni != 0 {
            write!(f, " (target vni {})", nh.target_vni)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_announce_syntax() {
        let r: Route = "23#10.0.23.0/24#2001:db8::1".parse().unwrap();
        assert_eq!(r.vni, 23);
        assert_eq!(r.next_hop.kind, NextHopType::Standard);
        let r: Route = "7#10.1.0.1/32#2001:db8::2#NAT#1024#2048".parse().unwrap();
        assert_eq!(
            (r.next_hop.kind, r.next_hop.port_from, r.next_hop.port_to),
            (NextHopType::Nat, 1024, 2048)
        );
        let r: Route = "7#fd00::/64#2001:db8::2#LB".parse().unwrap();
        assert_eq!(r.next_hop.kind, NextHopType::LoadBalancerTarget);
        assert_eq!(r.to_string(), "7#fd00::/64#2001:db8::2#LB");
    }

    #[test]
    fn rejects_bad_announce_naming_the_field() {
        let cases = [
            ("x#10.0.0.0/8#::1", "vni"),
            ("16777216#10.0.0.0/8#::1", "vni"),
            ("1#10.0.0.0/33#::1", "prefix"),
            ("1#10.0.0.0/8#10.0.0.1", "nexthop"),
            ("1#10.0.0.0/8#::1#FOO", "type"),
            ("1#10.0.0.0/8#::1#NAT#5#3", "nextHop.natPortRangeTo"),
            ("1#10.0.0.0/8#::1#NAT#1#99999", "to"),
            ("1#10.0.0.0/8#::1#STD#1#2", "nextHop.natPortRangeFrom"),
            ("1#10.0.0.0/8", "announce"),
        ];
        for (s, field) in cases {
            match s.parse::<Route>() {
                Err(RouteError::Invalid { field: f, .. }) => assert_eq!(f, field, "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_bad_updates_naming_the_field() {
        let good = "5#10.0.0.0/8#2001:db8::1"
            .parse::<Route>()
            .unwrap()
            .to_update(Action::Add);
        let mut u = good.clone();
        u.destination.as_mut().unwrap().prefix = vec![1, 2, 3];
        assert!(matches!(
            Route::from_update(&u),
            Err(RouteError::Invalid {
                field: "destination.prefix",
                ..
            })
        ));
        let mut u = good.clone();
        u.destination.as_mut().unwrap().prefix_length = 300;
        assert!(matches!(
            Route::from_update(&u),
            Err(RouteError::Invalid {
                field: "destination.prefixLength",
                ..
            })
        ));
        let mut u = good.clone();
        u.next_hop = None;
        assert_eq!(Route::from_update(&u), Err(RouteError::Missing("nextHop")));
        let mut u = good.clone();
        u.action = 9;
        assert!(matches!(
            Route::from_update(&u),
            Err(RouteError::Invalid {
                field: "action",
                ..
            })
        ));
        let mut u = good;
        u.vni = 1 << 24;
        assert!(matches!(
            Route::from_update(&u),
            Err(RouteError::Invalid { field: "vni", .. })
        ));
    }

    pub(crate) fn arb_route() -> impl Strategy<Value = Route> {
        (
            0..=MAX_VNI,
            any::<bool>(),
            any::<[u8; 16]>(),
            0u8..=128,
            any::<[u8; 16]>(),
            any::<u32>(),
            0u8..3,
            any::<u16>(),
        )
            .prop_map(|(vni, v6, a, len, nh, tv, kind, p)| {
                let destination = if v6 {
                    IpNet::new(IpAddr::V6(a.into()), len).unwrap()
                } else {
                    let b = [a[0], a[1], a[2], a[3]];
                    IpNet::new(IpAddr::V4(b.into()), len % 33).unwrap()
                };
                let (kind, port_from, port_to) = match kind {
                    0 => (NextHopType::Standard, 0, 0),
                    1 => (NextHopType::Nat, p.min(65534), p.min(65534) + 1),
                    _ => (NextHopType::LoadBalancerTarget, 0, 0),
                };
                Route {
                    vni,
                    destination,
                    next_hop: NextHop {
                        address: nh.into(),
                        target_vni: tv,
                        kind,
                        port_from,
                        port_to,
                    },
                }
            })
    }

    proptest! {
        #[test]
        fn update_round_trip(r in arb_route(), add in any::<bool>()) {
            let action = if add { Action::Add } else { Action::Remove };
            prop_assert_eq!(Route::from_update(&r.to_update(action)), Ok((action, r)));
        }

        #[test]
        fn announce_round_trip(mut r in arb_route()) {
            r.next_hop.target_vni = 0;
            prop_assert_eq!(r.to_string().parse::<Route>(), Ok(r));
        }
    }
}
