//! Pure request parsing: every function turns wire values into typed values or an
//! [`InvalidArgument`] naming the field, so bad input never reaches the state.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrinet_proto::dpservice::v1 as pb;

use crate::error::InvalidArgument;

/// Longest id the real service stores (its buffers hold 63 characters and a NUL).
pub const MAX_ID_LEN: usize = 63;
/// Upper bound for free-text fields such as the device name and client version strings.
pub const MAX_TEXT_LEN: usize = 255;

type Result<T> = std::result::Result<T, InvalidArgument>;

/// An object id (`interface_id`, `loadbalancer_id`, `rule_id`): 1 to 63 of `[A-Za-z0-9_-]`.
pub fn id(field: &str, raw: &[u8]) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_ID_LEN
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if !ok {
        return Err(InvalidArgument::new(
            field,
            "must be 1 to 63 characters of [A-Za-z0-9_-]",
        ));
    }
    // Only ASCII bytes passed the check above, so this cannot lose anything.
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// An id where empty means "all" (list calls).
pub fn id_or_all(field: &str, raw: &[u8]) -> Result<Option<String>> {
    if raw.is_empty() {
        Ok(None)
    } else {
        id(field, raw).map(Some)
    }
}

fn text<'a>(field: &str, raw: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(raw).map_err(|_| InvalidArgument::new(field, "not valid utf-8 text"))
}

/// IPv4 address text.
pub fn ipv4_text(field: &str, raw: &[u8]) -> Result<Ipv4Addr> {
    text(field, raw)?
        .parse()
        .map_err(|_| InvalidArgument::new(field, "not an IPv4 address"))
}

/// IPv6 address text.
pub fn ipv6_text(field: &str, raw: &[u8]) -> Result<Ipv6Addr> {
    text(field, raw)?
        .parse()
        .map_err(|_| InvalidArgument::new(field, "not an IPv6 address"))
}

/// A message field that must be present.
pub fn present<T>(field: &str, msg: Option<T>) -> Result<T> {
    msg.ok_or_else(|| InvalidArgument::new(field, "missing"))
}

/// An `IpAddress` message: the address text must match `ipver`. A missing message is treated
/// like the real service treats it, as an IPv4 address with empty text, which is invalid.
pub fn ip_address(field: &str, msg: Option<&pb::IpAddress>) -> Result<IpAddr> {
    let msg = present(field, msg)?;
    match pb::IpVersion::try_from(msg.ipver) {
        Ok(pb::IpVersion::Ipv4) => {
            ipv4_text(&format!("{field}.address"), &msg.address).map(IpAddr::V4)
        }
        Ok(pb::IpVersion::Ipv6) => {
            ipv6_text(&format!("{field}.address"), &msg.address).map(IpAddr::V6)
        }
        Err(_) => Err(InvalidArgument::new(
            format!("{field}.ipver"),
            "unknown ip version",
        )),
    }
}

/// A prefix as the route calls take it: address and a length up to 255. Lengths past the
/// family's width are a service error (ROUTE_INSERT), as on the real service, so they pass here.
pub fn route_prefix(field: &str, msg: Option<&pb::Prefix>) -> Result<(IpAddr, u8)> {
    let msg = present(field, msg)?;
    let addr = ip_address(&format!("{field}.ip"), msg.ip.as_ref())?;
    let len = u8::try_from(msg.length)
        .map_err(|_| InvalidArgument::new(format!("{field}.length"), "must be at most 255"))?;
    Ok((addr, len))
}

/// A prefix whose length must fit its family (firewall rules).
pub fn strict_prefix(field: &str, msg: Option<&pb::Prefix>) -> Result<ipnet::IpNet> {
    let (addr, len) = route_prefix(field, msg)?;
    ipnet::IpNet::new(addr, len).map_err(|_| {
        InvalidArgument::new(
            format!("{field}.length"),
            match addr {
                IpAddr::V4(_) => "must be 0 to 32 for IPv4",
                IpAddr::V6(_) => "must be 0 to 128 for IPv6",
            },
        )
    })
}

/// A 16-bit port carried in a uint32.
pub fn port(field: &str, value: u32) -> Result<u16> {
    u16::try_from(value).map_err(|_| InvalidArgument::new(field, "must be at most 65535"))
}

/// A NAT port slice `[min_port, max_port)`.
pub fn port_slice(min: u32, max: u32) -> Result<(u16, u16)> {
    let lo = port("min_port", min)?;
    let hi = port("max_port", max)?;
    if lo >= hi {
        return Err(InvalidArgument::new(
            "max_port",
            "must be greater than min_port (the slice is [min_port, max_port))",
        ));
    }
    Ok((lo, hi))
}

/// A firewall port bound: -1 (any) or 0..=65535.
pub fn fw_port(field: &str, value: i32) -> Result<i32> {
    if value == -1 || (0..=65535).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidArgument::new(
            field,
            "must be -1 (any) or 0 to 65535",
        ))
    }
}

/// A firewall port range: when the lower bound is not "any", the upper must not be below it.
pub fn fw_port_range(prefix: &str, kind: &str, lower: i32, upper: i32) -> Result<()> {
    let lo = fw_port(&format!("{prefix}.{kind}_port_lower"), lower)?;
    let hi = fw_port(&format!("{prefix}.{kind}_port_upper"), upper)?;
    if lo != -1 && hi < lo {
        return Err(InvalidArgument::new(
            format!("{prefix}.{kind}_port_upper"),
            format!("must not be below {kind}_port_lower"),
        ));
    }
    Ok(())
}

/// An ICMP type or code: -1 (any) or 0..=255.
pub fn icmp_value(field: &str, value: i32) -> Result<i32> {
    if value == -1 || (0..=255).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidArgument::new(field, "must be -1 (any) or 0 to 255"))
    }
}

/// Free text that must be present and bounded (device name, version strings).
pub fn required_text(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_TEXT_LEN {
        Err(InvalidArgument::new(
            field,
            format!("must be 1 to {MAX_TEXT_LEN} bytes"),
        ))
    } else {
        Ok(())
    }
}

/// A proto3 enum value that must be one of the known values.
pub fn known_enum<E: TryFrom<i32>>(field: &str, value: i32) -> Result<E> {
    E::try_from(value).map_err(|_| InvalidArgument::new(field, format!("unknown value {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipa(ver: pb::IpVersion, s: &str) -> pb::IpAddress {
        pb::IpAddress {
            ipver: ver as i32,
            address: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn ids() {
        assert!(id("interface_id", b"vm-1_A").is_ok());
        assert!(id("interface_id", &[b'a'; 63]).is_ok());
        assert!(id("interface_id", &[b'a'; 64]).is_err());
        assert!(id("interface_id", b"").is_err());
        assert!(id("interface_id", b"a b").is_err());
        assert!(id("interface_id", b"a\0").is_err());
        assert!(id("interface_id", "é".as_bytes()).is_err());
        let err = id("interface_id", b"").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("interface_id: must be 1 to 63 characters of [A-Za-z0-9_-]")
        );
        assert_eq!(id_or_all("interface_id", b""), Ok(None));
    }

    #[test]
    fn addresses_follow_ipver() {
        assert_eq!(
            ip_address("vip_ip", Some(&ipa(pb::IpVersion::Ipv4, "10.0.0.1"))),
            Ok("10.0.0.1".parse().expect("ip"))
        );
        assert!(ip_address("vip_ip", Some(&ipa(pb::IpVersion::Ipv4, "::1"))).is_err());
        assert!(ip_address("vip_ip", Some(&ipa(pb::IpVersion::Ipv6, "10.0.0.1"))).is_err());
        assert!(ip_address("vip_ip", Some(&ipa(pb::IpVersion::Ipv4, ""))).is_err());
        assert!(ip_address("vip_ip", None).is_err());
        let bad = pb::IpAddress {
            ipver: 7,
            address: b"10.0.0.1".to_vec(),
        };
        assert_eq!(
            ip_address("vip_ip", Some(&bad)).err().map(|e| e.field),
            Some("vip_ip.ipver".to_string())
        );
    }

    #[test]
    fn ports_and_slices() {
        assert_eq!(port_slice(0, 1), Ok((0, 1)));
        assert!(port_slice(5, 5).is_err());
        assert!(port_slice(6, 5).is_err());
        assert_eq!(
            port_slice(70000, 80000).err().map(|e| e.field),
            Some("min_port".to_string())
        );
        assert!(fw_port_range("tcp", "src", -1, -1).is_ok());
        assert!(fw_port_range("tcp", "src", -1, 80).is_ok());
        assert!(fw_port_range("tcp", "src", 80, 79).is_err());
        assert!(fw_port_range("tcp", "src", 80, 65536).is_err());
        assert!(fw_port_range("tcp", "src", -2, 5).is_err());
        assert!(icmp_value("icmp.icmp_type", 256).is_err());
        assert!(icmp_value("icmp.icmp_type", -1).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn id_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = id("interface_id", &raw);
        }

        #[test]
        fn address_text_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..60)) {
            let _ = ipv4_text("a", &raw);
            let _ = ipv6_text("a", &raw);
        }
    }
}
