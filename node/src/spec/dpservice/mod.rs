//! The dpservice side of the spec layer: the requests that program a spec, and the readers of
//! what dpservice's Get/List calls answer, so a reconciler can compare desired with actual.
//!
//! Wire conventions (from the dpservice API fact sheet, as `ferrinet-dataplane` enforces them):
//! every address travels as **text** inside a `bytes` field (`"10.0.0.1"`, `"fc00:1::b:0:13"`),
//! in `IpAddress.address`, `IpConfig.primary_address`, `Interface.primary_ipv4/6` and every
//! `underlay_route`; an `IpAddress`'s `ipver` must match its text; a disabled interface family is
//! `"0.0.0.0"` / `"::"`; ids are `bytes` holding 1 to 63 characters of `[A-Za-z0-9_-]`; firewall
//! ports and ICMP values use -1 for "any".
//!
//! Builders take validated spec types, so they cannot fail. Readers return a [`ReplyError`]
//! naming the reply field when dpservice answers something that does not read back.

mod firewall;
mod reply;
mod request;

use std::net::{IpAddr, Ipv6Addr};

use ferrinet_proto::dpservice::v1 as pb;
use ipnet::IpNet;

use super::ReplyError;

pub use firewall::{
    ListedRules, firewall_rule_from_dpservice, firewall_rule_to_dpservice, parse_firewall_rules,
};
pub use reply::{
    DataplaneInterface, DataplaneLoadBalancer, parse_interface, parse_listed_load_balancer,
    parse_load_balancer, parse_nat, parse_prefixes, parse_vip,
};
pub use request::{
    create_firewall_rule_request, create_interface_request, create_lb_prefix_request,
    create_load_balancer_request, create_nat_request, create_prefix_request, create_vip_request,
    delete_firewall_rule_request, delete_lb_prefix_request, delete_prefix_request,
};

/// An address as dpservice's `bytes` fields carry it: its text.
pub fn address_text(ip: impl Into<IpAddr>) -> Vec<u8> {
    ip.into().to_string().into_bytes()
}

/// An `IpAddress` message.
pub fn ip_address(ip: impl Into<IpAddr>) -> pb::IpAddress {
    let ip = ip.into();
    pb::IpAddress {
        ipver: match ip {
            IpAddr::V4(_) => pb::IpVersion::Ipv4,
            IpAddr::V6(_) => pb::IpVersion::Ipv6,
        } as i32,
        address: address_text(ip),
    }
}

/// A `Prefix` message without underlay (requests).
pub fn prefix(net: IpNet) -> pb::Prefix {
    pb::Prefix {
        ip: Some(ip_address(net.addr())),
        length: u32::from(net.prefix_len()),
        underlay_route: Vec::new(),
    }
}

fn text<'a>(field: &str, raw: &'a [u8]) -> Result<&'a str, ReplyError> {
    std::str::from_utf8(raw).map_err(|_| ReplyError::new(field, "not utf-8 text"))
}

/// Address text from a `bytes` field.
pub fn parse_address(field: &str, raw: &[u8]) -> Result<IpAddr, ReplyError> {
    let t = text(field, raw)?;
    t.parse()
        .map_err(|_| ReplyError::new(field, format!("{t:?} is not an IP address")))
}

/// An underlay address (IPv6 text) from a `bytes` field.
pub fn parse_underlay(field: &str, raw: &[u8]) -> Result<Ipv6Addr, ReplyError> {
    match parse_address(field, raw)? {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(a) => Err(ReplyError::new(
            field,
            format!("{a} is not an IPv6 underlay address"),
        )),
    }
}

/// An `IpAddress` message whose text must match its `ipver`.
pub fn parse_ip_address(field: &str, msg: Option<&pb::IpAddress>) -> Result<IpAddr, ReplyError> {
    let msg = msg.ok_or_else(|| ReplyError::new(field, "missing"))?;
    let addr_field = format!("{field}.address");
    let ip = parse_address(&addr_field, &msg.address)?;
    let matches = match pb::IpVersion::try_from(msg.ipver) {
        Ok(pb::IpVersion::Ipv4) => ip.is_ipv4(),
        Ok(pb::IpVersion::Ipv6) => ip.is_ipv6(),
        Err(_) => {
            return Err(ReplyError::new(
                format!("{field}.ipver"),
                format!("unknown value {}", msg.ipver),
            ));
        }
    };
    if matches {
        Ok(ip)
    } else {
        Err(ReplyError::new(
            addr_field,
            format!("{ip} does not match ipver {}", msg.ipver),
        ))
    }
}

/// A `Prefix` message's address and length (host bits kept as answered).
pub fn parse_prefix(field: &str, msg: Option<&pb::Prefix>) -> Result<IpNet, ReplyError> {
    let msg = msg.ok_or_else(|| ReplyError::new(field, "missing"))?;
    let ip = parse_ip_address(&format!("{field}.ip"), msg.ip.as_ref())?;
    u8::try_from(msg.length)
        .ok()
        .and_then(|len| IpNet::new(ip, len).ok())
        .ok_or_else(|| {
            ReplyError::new(
                format!("{field}.length"),
                format!("{} is too long for {ip}", msg.length),
            )
        })
}
