//! Field validators shared by every object: names, labels, addresses, prefixes, hostnames.
//!
//! Each takes the field's path and returns a [`SpecError`] naming it, so the object validators
//! read as a list of fields. Addresses and prefixes are text in the admin API (`node.proto`);
//! they are parsed by the standard library and `ipnet`, which accept only canonical forms
//! (no leading zeros in IPv4 octets, no zone ids).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrinet_proto::node::v1 as pb;
use ipnet::IpNet;

use super::{Options, SpecError};

/// Longest name (`metadata.name`, a firewall rule id, a network reference): dpservice stores ids
/// of at most 63 characters.
pub const MAX_NAME_LEN: usize = 63;
/// Longest label key.
pub const MAX_LABEL_KEY_LEN: usize = 63;
/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 253;
/// Longest hostname (DNS name length).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest label of a hostname.
const MAX_HOSTNAME_LABEL_LEN: usize = 63;

/// A name as dpservice takes an id: 1 to 63 characters of `[A-Za-z0-9_-]`. Interfaces and load
/// balancers are created in dpservice under their name, firewall rules under their id, so the
/// admin API refuses what dpservice would refuse.
pub fn validate_name(field: &str, name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            "must be 1 to 63 characters of [A-Za-z0-9_-]",
        ))
    }
}

/// Labels are free-form tags for the caller; the node only keeps them. Kept simple: a key is 1 to
/// 63 characters of `[A-Za-z0-9._/-]`, a value at most 253 bytes without control
/// characters. Keys are checked in sorted order, so the reported error does not depend on the
/// map's iteration order.
pub fn validate_labels(field: &str, labels: &HashMap<String, String>) -> Result<(), SpecError> {
    let mut entries: Vec<(&String, &String)> = labels.iter().collect();
    entries.sort();
    for (key, value) in entries {
        let path = format!("{field}[{key:?}]");
        let key_ok = !key.is_empty()
            && key.len() <= MAX_LABEL_KEY_LEN
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
        if !key_ok {
            return Err(SpecError::new(
                path,
                "key must be 1 to 63 characters of [A-Za-z0-9._/-]",
            ));
        }
        if value.len() > MAX_LABEL_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(SpecError::new(
                path,
                "value must be at most 253 bytes without control characters",
            ));
        }
    }
    Ok(())
}

/// `metadata`: a valid name and labels; returns the name. A missing `metadata` is validated as
/// an empty one, so the error names `metadata.name`. The other fields are set by the node.
pub fn validate_metadata(metadata: Option<&pb::Metadata>) -> Result<String, SpecError> {
    let empty = pb::Metadata::default();
    let md = metadata.unwrap_or(&empty);
    validate_name("metadata.name", &md.name)?;
    validate_labels("metadata.labels", &md.labels)?;
    Ok(md.name.clone())
}

/// IPv6 is accepted only where the node enables it.
fn family_allowed(field: &str, ip: IpAddr, options: &Options) -> Result<(), SpecError> {
    if ip.is_ipv6() && !options.ipv6_enabled {
        Err(SpecError::new(field, "IPv6 is not enabled on this node"))
    } else {
        Ok(())
    }
}

/// An address, neither unspecified (`0.0.0.0`, `::`: dpservice's "none") nor IPv6 when IPv6 is
/// off.
pub(crate) fn address(field: &str, text: &str, options: &Options) -> Result<IpAddr, SpecError> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| SpecError::new(field, format!("{text:?} is not an IP address")))?;
    if ip.is_unspecified() {
        return Err(SpecError::new(
            field,
            format!("{ip} is the unspecified address"),
        ));
    }
    family_allowed(field, ip, options)?;
    Ok(ip)
}

/// A prefix `address/length` without host bits (`10.0.0.1/24` is refused: the intent is
/// ambiguous and dpservice would silently clear them), and not IPv6 when IPv6 is off.
pub(crate) fn prefix(field: &str, text: &str, options: &Options) -> Result<IpNet, SpecError> {
    let net = strict_prefix(field, text)?;
    family_allowed(field, net.addr(), options)?;
    Ok(net)
}

/// A prefix without host bits, of either family.
pub(crate) fn strict_prefix(field: &str, text: &str) -> Result<IpNet, SpecError> {
    let net: IpNet = text
        .parse()
        .map_err(|_| SpecError::new(field, format!("{text:?} is not a prefix (address/length)")))?;
    if net.trunc() != net {
        return Err(SpecError::new(
            field,
            format!("{net} has host bits set (did you mean {}?)", net.trunc()),
        ));
    }
    Ok(net)
}

/// A list of prefixes without duplicates (the error names the second occurrence).
pub(crate) fn prefix_list(
    field: &str,
    texts: &[String],
    options: &Options,
) -> Result<BTreeSet<IpNet>, SpecError> {
    let mut seen = BTreeMap::new();
    for (i, text) in texts.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let net = prefix(&path, text, options)?;
        if let Some(first) = seen.insert(net, i) {
            return Err(SpecError::new(
                path,
                format!("{net} duplicates {field}[{first}]"),
            ));
        }
    }
    Ok(seen.into_keys().collect())
}

/// A hostname for DHCPv4 option 12: empty for none, else at most 253 characters, dot-separated
/// labels of 1 to 63 characters of `[A-Za-z0-9-]` that neither start nor end with `-`.
pub fn validate_hostname(field: &str, text: &str) -> Result<Option<String>, SpecError> {
    if text.is_empty() {
        return Ok(None);
    }
    let problem = if text.len() > MAX_HOSTNAME_LEN {
        Some("must be at most 253 characters")
    } else if !text.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_HOSTNAME_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) {
        Some(
            "must be dot-separated labels of 1 to 63 characters of [A-Za-z0-9-], \
             not starting or ending with '-'",
        )
    } else {
        None
    };
    match problem {
        Some(p) => Err(SpecError::new(field, p)),
        None => Ok(Some(text.to_string())),
    }
}
