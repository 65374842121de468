//! Subnets as IPAM sees them (after OpenStack's subnet model): a CIDR, the ranges addresses are
//! handed out from, addresses never handed out, a gateway and host routes; their validation; and
//! a network's validated set of subnets.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::family::{IpFamily, net_bounds, span, to_int};
use super::field::{FieldError, SpecErrors, SpecProblem};

/// The longest IPv4 prefix with an address left besides network and broadcast.
const MAX_V4_PREFIX: u8 = 30;
/// The longest IPv6 prefix with an address left besides the network (subnet-router anycast)
/// address.
const MAX_V6_PREFIX: u8 = 127;

/// A subnet as the user writes it. Field paths in errors use the API's camelCase names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    /// The subnet (`cidr`), without host bits; IPv4 at most /30, IPv6 at most /127.
    pub cidr: IpNet,
    /// Where dynamic addresses come from (`allocationRanges`): inside the CIDR, not
    /// overlapping. Empty means the whole CIDR.
    pub allocation_ranges: Vec<AddressRange>,
    /// Addresses inside the CIDR that are never handed out, dynamically or as fixed IPs
    /// (`excludedAddresses`), e.g. ones used by machines outside the cloud.
    pub excluded_addresses: Vec<IpAddr>,
    /// The gateway (`gateway`): inside the CIDR, neither its network nor its broadcast address;
    /// never handed out. It may lie inside an allocation range (it is skipped).
    pub gateway: Option<IpAddr>,
    /// Host routes (`routes`), each to a distinct destination.
    pub routes: Vec<SubnetRoute>,
}

impl SubnetSpec {
    /// A spec of the whole `cidr`: no ranges, exclusions, gateway or routes.
    pub fn new(cidr: IpNet) -> Self {
        Self {
            cidr,
            allocation_ranges: Vec::new(),
            excluded_addresses: Vec::new(),
            gateway: None,
            routes: Vec::new(),
        }
    }
}

/// The addresses `start..=end` (fields `start`, `end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressRange {
    /// The first address.
    pub start: IpAddr,
    /// The last address, included.
    pub end: IpAddr,
}

impl AddressRange {
    /// The range `start..=end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Self {
        Self { start, end }
    }

    /// Whether `address` is in the range (same family, `start <= address <= end`).
    pub fn contains(&self, address: IpAddr) -> bool {
        IpFamily::of(address) == IpFamily::of(self.start)
            && IpFamily::of(address) == IpFamily::of(self.end)
            && self.start <= address
            && address <= self.end
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A host route handed to the subnet's interfaces (fields `destination`, `nextHop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetRoute {
    /// Where the route leads: a CIDR of the subnet's family, without host bits.
    pub destination: IpNet,
    /// The next hop: inside the subnet, neither its network nor its broadcast address.
    pub next_hop: IpAddr,
}

/// Why a subnet never hands out an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reservation {
    /// The subnet's first address.
    Network,
    /// The last address of an IPv4 subnet.
    Broadcast,
    /// The subnet's gateway.
    Gateway,
    /// One of the subnet's excluded addresses.
    Excluded,
}

impl fmt::Display for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Network => "the network address",
            Self::Broadcast => "the broadcast address",
            Self::Gateway => "the gateway",
            Self::Excluded => "an excluded address",
        })
    }
}

/// A validated subnet: everything [`SubnetSpec`] promises holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    cidr: IpNet,
    allocation_ranges: Vec<AddressRange>,
    excluded: BTreeSet<IpAddr>,
    gateway: Option<IpAddr>,
    routes: Vec<SubnetRoute>,
    /// The effective allocation ranges as integers, ascending.
    pool: Vec<(u128, u128)>,
}

impl Subnet {
    /// Validates `spec`, naming every bad field by its path inside the subnet
    /// (`allocationRanges[0].end`, `routes[2].nextHop`, ...).
    pub fn new(spec: &SubnetSpec) -> Result<Self, SpecErrors> {
        let mut errors = Vec::new();
        // Later checks use the CIDR without host bits so that one typo yields one error.
        let cidr = spec.cidr.trunc();
        if cidr != spec.cidr {
            errors.push(FieldError::new(
                "cidr",
                SpecProblem::HostBitsSet {
                    cidr: spec.cidr,
                    network: cidr,
                },
            ));
        }
        let max = match IpFamily::of_net(&cidr) {
            IpFamily::V4 => MAX_V4_PREFIX,
            IpFamily::V6 => MAX_V6_PREFIX,
        };
        if cidr.prefix_len() > max {
            errors.push(FieldError::new(
                "cidr",
                SpecProblem::PrefixTooLong { cidr, max },
            ));
        }
        let ranges = validate_ranges(&cidr, &spec.allocation_ranges, &mut errors);
        let excluded = validate_excluded(&cidr, &spec.excluded_addresses, &mut errors);
        if let Some(gateway) = spec.gateway
            && inside(&cidr, "gateway", gateway, &mut errors)
            && let Some(reservation) = edge_reservation(&cidr, gateway)
        {
            errors.push(FieldError::new(
                "gateway",
                SpecProblem::Reserved {
                    address: gateway,
                    reservation,
                },
            ));
        }
        validate_routes(&cidr, &spec.routes, &mut errors);

        let mut allocation_ranges = spec.allocation_ranges.clone();
        allocation_ranges.sort();
        let pool = if ranges.is_empty() {
            vec![net_bounds(&cidr)]
        } else {
            ranges
        };
        SpecErrors(errors).or_ok(Self {
            cidr,
            allocation_ranges,
            excluded,
            gateway: spec.gateway,
            routes: spec.routes.clone(),
            pool,
        })
    }

    /// The subnet.
    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    /// The subnet's family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of_net(&self.cidr)
    }

    /// The allocation ranges as given, ascending; empty means the whole CIDR.
    pub fn allocation_ranges(&self) -> &[AddressRange] {
        &self.allocation_ranges
    }

    /// The excluded addresses, ascending.
    pub fn excluded_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.excluded.iter().copied()
    }

    /// The gateway.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }

    /// The host routes, in the spec's order.
    pub fn routes(&self) -> &[SubnetRoute] {
        &self.routes
    }

    /// The spec this subnet was validated from (with ranges sorted and exclusions
    /// deduplicated), e.g. to store it.
    pub fn to_spec(&self) -> SubnetSpec {
        SubnetSpec {
            cidr: self.cidr,
            allocation_ranges: self.allocation_ranges.clone(),
            excluded_addresses: self.excluded.iter().copied().collect(),
            gateway: self.gateway,
            routes: self.routes.clone(),
        }
    }

    /// Whether `address` is inside the CIDR.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.cidr.contains(&address)
    }

    /// Why the subnet never hands out `address`, if it is one of its reserved addresses.
    pub fn reservation(&self, address: IpAddr) -> Option<Reservation> {
        if !self.contains(address) {
            return None;
        }
        edge_reservation(&self.cidr, address).or_else(|| {
            if self.gateway == Some(address) {
                Some(Reservation::Gateway)
            } else if self.excluded.contains(&address) {
                Some(Reservation::Excluded)
            } else {
                None
            }
        })
    }

    /// Whether `address` may be handed out dynamically: inside an allocation range (or the CIDR
    /// without ranges) and not reserved. Whether it is free is the allocator's business.
    pub fn is_allocatable(&self, address: IpAddr) -> bool {
        let value = to_int(address);
        self.contains(address)
            && self.reservation(address).is_none()
            && self
                .pool
                .iter()
                .any(|&(first, last)| first <= value && value <= last)
    }

    /// How many addresses may be handed out dynamically (saturating at `u128::MAX`).
    pub fn capacity(&self) -> u128 {
        let reserved: BTreeSet<u128> = self.reserved().collect();
        self.pool.iter().fold(0u128, |sum, &(first, last)| {
            let taken = reserved.range(first..=last).count() as u128;
            // `taken <= last - first + 1`, which may not fit in u128 itself: subtract first.
            let free = match taken.checked_sub(1) {
                Some(beyond_one) => last - first - beyond_one,
                None => span(first, last),
            };
            sum.saturating_add(free)
        })
    }

    /// The effective allocation ranges as integers, ascending and disjoint.
    pub(crate) fn pool(&self) -> &[(u128, u128)] {
        &self.pool
    }

    /// The reserved addresses as integers (may repeat).
    pub(crate) fn reserved(&self) -> impl Iterator<Item = u128> + '_ {
        let (network, last) = net_bounds(&self.cidr);
        let broadcast = (self.family() == IpFamily::V4).then_some(last);
        [Some(network), broadcast, self.gateway.map(to_int)]
            .into_iter()
            .flatten()
            .chain(self.excluded.iter().map(|&a| to_int(a)))
    }
}

/// A network's subnets, validated together: each valid, none overlapping another. Kept
/// ascending by address (IPv4 first), which is the order dynamic allocation tries them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSubnets {
    subnets: Vec<Subnet>,
}

impl NetworkSubnets {
    /// Validates `specs`, naming bad fields as `subnets[i].<path>`.
    pub fn new(specs: &[SubnetSpec]) -> Result<Self, SpecErrors> {
        let mut errors = Vec::new();
        let mut subnets = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            match Subnet::new(spec) {
                Ok(subnet) => subnets.push(subnet),
                Err(e) => errors.extend(e.prefixed(&format!("subnets[{i}].")).0),
            }
            let cidr = spec.cidr.trunc();
            // Prefixes overlap exactly when one contains the other.
            if let Some(j) = specs[..i].iter().position(|earlier| {
                let earlier = earlier.cidr.trunc();
                earlier.contains(&cidr) || cidr.contains(&earlier)
            }) {
                errors.push(FieldError::new(
                    format!("subnets[{i}].cidr"),
                    SpecProblem::Overlaps {
                        other: format!("subnets[{j}].cidr"),
                    },
                ));
            }
        }
        subnets.sort_by_key(|s| (s.family(), to_int(s.cidr.network())));
        SpecErrors(errors).or_ok(Self { subnets })
    }

    /// The subnets, ascending by address.
    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    /// The subnets of `family`, ascending.
    pub fn of_family(&self, family: IpFamily) -> impl Iterator<Item = &Subnet> + '_ {
        self.subnets.iter().filter(move |s| s.family() == family)
    }

    /// The subnet containing `address`.
    pub fn containing(&self, address: IpAddr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.contains(address))
    }

    /// The subnet with exactly this CIDR.
    pub fn get(&self, cidr: IpNet) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.cidr == cidr)
    }
}

/// The network and (IPv4) broadcast address of `cidr`, which no subnet hands out.
fn edge_reservation(cidr: &IpNet, address: IpAddr) -> Option<Reservation> {
    if address == cidr.network() {
        Some(Reservation::Network)
    } else if IpFamily::of_net(cidr) == IpFamily::V4 && address == cidr.broadcast() {
        Some(Reservation::Broadcast)
    } else {
        None
    }
}

/// Records an error at `field` unless `address` is of `cidr`'s family and inside it.
fn inside(cidr: &IpNet, field: &str, address: IpAddr, errors: &mut Vec<FieldError>) -> bool {
    let expected = IpFamily::of_net(cidr);
    let problem = if IpFamily::of(address) != expected {
        SpecProblem::WrongFamily {
            value: address.to_string(),
            expected,
        }
    } else if !cidr.contains(&address) {
        SpecProblem::OutsideCidr {
            address,
            cidr: *cidr,
        }
    } else {
        return true;
    };
    errors.push(FieldError::new(field, problem));
    false
}

/// Checks `allocationRanges`; returns the valid ones as integers, ascending.
fn validate_ranges(
    cidr: &IpNet,
    ranges: &[AddressRange],
    errors: &mut Vec<FieldError>,
) -> Vec<(u128, u128)> {
    // (first, last, index) of the valid ranges so far, to name the one a later range overlaps.
    let mut valid: Vec<(u128, u128, usize)> = Vec::new();
    for (i, range) in ranges.iter().enumerate() {
        let start_ok = inside(
            cidr,
            &format!("allocationRanges[{i}].start"),
            range.start,
            errors,
        );
        let end_ok = inside(
            cidr,
            &format!("allocationRanges[{i}].end"),
            range.end,
            errors,
        );
        if !(start_ok && end_ok) {
            continue;
        }
        if range.end < range.start {
            errors.push(FieldError::new(
                format!("allocationRanges[{i}].end"),
                SpecProblem::EndBeforeStart {
                    start: range.start,
                    end: range.end,
                },
            ));
            continue;
        }
        let (first, last) = (to_int(range.start), to_int(range.end));
        if let Some(&(_, _, j)) = valid.iter().find(|&&(f, l, _)| first <= l && f <= last) {
            errors.push(FieldError::new(
                format!("allocationRanges[{i}]"),
                SpecProblem::Overlaps {
                    other: format!("allocationRanges[{j}]"),
                },
            ));
            continue;
        }
        valid.push((first, last, i));
    }
    let mut pool: Vec<(u128, u128)> = valid.into_iter().map(|(f, l, _)| (f, l)).collect();
    pool.sort_unstable();
    pool
}

/// Checks `excludedAddresses`; returns the valid ones.
fn validate_excluded(
    cidr: &IpNet,
    excluded: &[IpAddr],
    errors: &mut Vec<FieldError>,
) -> BTreeSet<IpAddr> {
    let mut valid = BTreeSet::new();
    for (i, &address) in excluded.iter().enumerate() {
        let field = format!("excludedAddresses[{i}]");
        if !inside(cidr, &field, address, errors) {
            continue;
        }
        if !valid.insert(address) {
            let j = excluded.iter().position(|&a| a == address).unwrap_or(i);
            errors.push(FieldError::new(
                field,
                SpecProblem::Duplicate {
                    value: address.to_string(),
                    other: format!("excludedAddresses[{j}]"),
                },
            ));
        }
    }
    valid
}

/// Checks `routes`.
fn validate_routes(cidr: &IpNet, routes: &[SubnetRoute], errors: &mut Vec<FieldError>) {
    let family = IpFamily::of_net(cidr);
    for (i, route) in routes.iter().enumerate() {
        let field = format!("routes[{i}].destination");
        let destination = route.destination;
        if IpFamily::of_net(&destination) != family {
            errors.push(FieldError::new(
                field,
                SpecProblem::WrongFamily {
                    value: destination.to_string(),
                    expected: family,
                },
            ));
        } else if destination.trunc() != destination {
            errors.push(FieldError::new(
                field,
                SpecProblem::HostBitsSet {
                    cidr: destination,
                    network: destination.trunc(),
                },
            ));
        } else if let Some(j) = routes[..i]
            .iter()
            .position(|r| r.destination == destination)
        {
            errors.push(FieldError::new(
                field,
                SpecProblem::Duplicate {
                    value: destination.to_string(),
                    other: format!("routes[{j}].destination"),
                },
            ));
        }
        let field = format!("routes[{i}].nextHop");
        // An excluded address is a fine next hop: it may well be a router outside the cloud.
        if inside(cidr, &field, route.next_hop, errors)
            && let Some(reservation) = edge_reservation(cidr, route.next_hop)
        {
            errors.push(FieldError::new(
                field,
                SpecProblem::Reserved {
                    address: route.next_hop,
                    reservation,
                },
            ));
        }
    }
}

#[cfg(test)]
#[path = "subnet_tests.rs"]
mod tests;
