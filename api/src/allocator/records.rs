//! How allocation decisions are kept in the store: one key per allocated value, so that the
//! store itself refuses a second owner (every new key is written with "must not exist"), and a
//! restart rebuilds the allocators from one listing.
//!
//! ```text
//! /ferrinet/v1/alloc/vni/<vni>                   -> owner (a network)
//! /ferrinet/v1/alloc/ip/<namespace>/<network>/<ip> -> owner (an interface, a load balancer)
//! /ferrinet/v1/alloc/public/<ip>                 -> owner (a virtual IP, a NAT gateway ...)
//! /ferrinet/v1/alloc/nat/<namespace>/<gateway>/<ip>/<port> -> owner (an interface)
//! ```
//!
//! A NAT slice's key names its address and first port; its end follows from the gateway's
//! slice size, which the gateway's spec holds (slices are aligned, so a key checks on its own).
//!
//! Values are prost-encoded [`AllocationRecord`]s.

use std::net::IpAddr;

use prost::Message as _;

/// Prefix of every allocation key.
pub const PREFIX: &str = "/ferrinet/v1/alloc/";

/// The stored value of one allocation.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AllocationRecord {
    /// Who holds the value (`namespace/name` of the object, or a kind-qualified id).
    #[prost(string, tag = "1")]
    pub owner: String,
}

/// One stored allocation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// A network's VNI.
    Vni { vni: u32, owner: String },
    /// An address of a network (`namespace/name`).
    Ip {
        network: String,
        address: IpAddr,
        owner: String,
    },
    /// A public address.
    Public { address: IpAddr, owner: String },
    /// A NAT port slice of gateway `namespace/name` starting at `port` on `address`.
    Nat {
        gateway: String,
        address: std::net::Ipv4Addr,
        port: u16,
        owner: String,
    },
}

/// A stored key or value that is not an allocation record: named, so an operator can remove it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored allocation {key}: {reason}")]
pub struct RecordError {
    /// The key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The key of a VNI.
pub fn vni_key(vni: u32) -> String {
    format!("{PREFIX}vni/{vni}")
}

/// The key of an address of `network` (`namespace/name`).
pub fn ip_key(network: &str, address: IpAddr) -> String {
    format!("{PREFIX}ip/{network}/{address}")
}

/// The key of a public address.
pub fn public_key(address: IpAddr) -> String {
    format!("{PREFIX}public/{address}")
}

/// The key of the NAT slice of gateway `gateway` (`namespace/name`) starting at `port` on `ip`.
pub fn nat_key(gateway: &str, ip: std::net::Ipv4Addr, port: u16) -> String {
    format!("{PREFIX}nat/{gateway}/{ip}/{port}")
}

/// The value of an allocation held by `owner`.
pub fn value(owner: &str) -> Vec<u8> {
    AllocationRecord {
        owner: owner.to_owned(),
    }
    .encode_to_vec()
}

/// Parses one stored key and value.
pub fn parse(key: &str, value: &[u8]) -> Result<Allocation, RecordError> {
    let bad = |reason: &str| RecordError {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let owner = AllocationRecord::decode(value)
        .map_err(|e| bad(&format!("value is not an allocation record: {e}")))?
        .owner;
    if owner.is_empty() {
        return Err(bad("owner is empty"));
    }
    let rest = key
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("not under the allocation prefix"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let address = |s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| bad(&format!("{s:?} is not an IP address")))
    };
    match parts.as_slice() {
        ["vni", v] => Ok(Allocation::Vni {
            vni: v.parse().map_err(|_| bad(&format!("{v:?} is not a VNI")))?,
            owner,
        }),
        ["ip", ns, name, a] => Ok(Allocation::Ip {
            network: format!("{ns}/{name}"),
            address: address(a)?,
            owner,
        }),
        ["public", a] => Ok(Allocation::Public {
            address: address(a)?,
            owner,
        }),
        ["nat", ns, name, a, port] => Ok(Allocation::Nat {
            gateway: format!("{ns}/{name}"),
            address: a
                .parse()
                .map_err(|_| bad(&format!("{a:?} is not an IPv4 address")))?,
            port: port
                .parse()
                .map_err(|_| bad(&format!("{port:?} is not a port")))?,
            owner,
        }),
        _ => Err(bad("unknown kind of allocation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let a: IpAddr = "fd00::5".parse().expect("address");
        let cases = [
            (
                vni_key(4711),
                Allocation::Vni {
                    vni: 4711,
                    owner: "t1/blue".into(),
                },
            ),
            (
                ip_key("t1/blue", a),
                Allocation::Ip {
                    network: "t1/blue".into(),
                    address: a,
                    owner: "t1/web-1".into(),
                },
            ),
            (
                public_key(a),
                Allocation::Public {
                    address: a,
                    owner: "t1/vip".into(),
                },
            ),
            (
                nat_key("t1/gw", "203.0.113.1".parse().expect("v4"), 3072),
                Allocation::Nat {
                    gateway: "t1/gw".into(),
                    address: "203.0.113.1".parse().expect("v4"),
                    port: 3072,
                    owner: "t1/web-1".into(),
                },
            ),
        ];
        for (key, want) in cases {
            let owner = match &want {
                Allocation::Vni { owner, .. }
                | Allocation::Ip { owner, .. }
                | Allocation::Public { owner, .. }
                | Allocation::Nat { owner, .. } => owner.clone(),
            };
            assert_eq!(parse(&key, &value(&owner)), Ok(want));
        }
    }

    #[test]
    fn bad_records_are_named() {
        let e = parse("/ferrinet/v1/alloc/vni/x", &value("o")).expect_err("bad vni");
        assert_eq!(
            e.to_string(),
            "stored allocation /ferrinet/v1/alloc/vni/x: \"x\" is not a VNI"
        );
        assert!(parse(&vni_key(1), &[0xff, 0xff]).is_err());
        assert!(parse(&vni_key(1), &value("")).is_err());
        assert!(parse("/ferrinet/v1/alloc/nat/1", &value("o")).is_err());
        assert!(parse("/ferrinet/v1/alloc/nat/t/gw/fd00::1/1024", &value("o")).is_err());
    }
}
