//! The pure spec layer of the node: no I/O, only values and functions.
//!
//! The node stores the admin API's protobuf objects as they were accepted; everything else
//! works on the validated internal types made from them here:
//!
//! 1. **Validation** ([`validate_network`], [`validate_interface`], [`validate_load_balancer`],
//!    [`validate_object`]): `ferrinet_proto::node::v1` messages become [`NetworkSpec`],
//!    [`InterfaceSpec`] and [`LoadBalancerSpec`], or a [`SpecError`] naming the field by its path
//!    (answered as INVALID_ARGUMENT). Everything dpservice would refuse is refused here, so a
//!    stored object can always be programmed; sets are `BTreeSet`/`BTreeMap` so equality and
//!    differences are deterministic.
//! 2. **Differences** ([`needs_recreate`], [`diff`], [`firewall_diff`]): what the reconcilers
//!    change. Interface identity (VNI, IPs, metering, hostname) needs a re-create, the rest is
//!    changed in place by set difference; firewall rules by id, a changed body being delete plus
//!    create.
//! 3. **dpservice** ([`dpservice`]): the requests that program a spec, and the readers of
//!    dpservice's answers back into the internal types, so desired and actual compare directly.
//! 4. **Announcements** ([`interface_routes`], [`load_balancer_routes`]): the exact set of routes
//!    an object announces to the route servers, given the underlays dpservice answered.
//!
//! Nothing here panics on any input; unit tests cover every rule with the exact field path it
//! reports, property tests the differences, the firewall round trip and the announcements.

mod diff;
pub mod dpservice;
mod error;
mod fields;
mod firewall;
mod interface;
mod load_balancer;
mod network;
mod routes;

#[cfg(test)]
mod tests;

use ferrinet_proto::node::v1 as pb;

pub use diff::{Diff, diff, diff_keys};
pub use error::{ReplyError, SpecError};
pub use fields::{
    MAX_HOSTNAME_LEN, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN, MAX_NAME_LEN, validate_hostname,
    validate_labels, validate_metadata, validate_name,
};
pub use firewall::{
    Direction, FirewallDiff, FirewallRule, PortRange, Ports, ProtocolFilter, any_of_family,
    firewall_diff, validate_firewall_rule, validate_firewall_rules,
};
pub use interface::{InterfaceSpec, Metering, Nat, needs_recreate, validate_interface};
pub use load_balancer::{
    LbKind, LbProtocol, LoadBalancerSpec, MAX_LB_PORTS, validate_load_balancer,
};
pub use network::{NetworkSpec, validate_network};
pub use routes::{InterfaceUnderlays, interface_routes, load_balancer_routes};

/// Node settings that change what validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Accept IPv6 interface addresses, prefixes, firewall prefixes and load-balancer IPs (as
    /// metalnet's `--enable-ipv6`).
    pub ipv6_enabled: bool,
}

/// A validated object of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectSpec {
    /// A Network.
    Network(NetworkSpec),
    /// A NetworkInterface.
    Interface(InterfaceSpec),
    /// A LoadBalancer.
    LoadBalancer(LoadBalancerSpec),
}

/// Validates whichever object `object` holds and returns its name and spec. Field paths are
/// relative to the object (`metadata.name`), as for the per-kind functions; an empty `Object` is
/// `object: missing`.
pub fn validate_object(
    object: &pb::Object,
    options: &Options,
) -> Result<(String, ObjectSpec), SpecError> {
    use pb::object::Object;
    match &object.object {
        None => Err(SpecError::new("object", "missing")),
        Some(Object::Network(n)) => {
            validate_network(n, options).map(|(name, s)| (name, ObjectSpec::Network(s)))
        }
        Some(Object::NetworkInterface(i)) => {
            validate_interface(i, options).map(|(name, s)| (name, ObjectSpec::Interface(s)))
        }
        Some(Object::LoadBalancer(l)) => {
            validate_load_balancer(l, options).map(|(name, s)| (name, ObjectSpec::LoadBalancer(s)))
        }
    }
}
