//! The region's public IP pool: the addresses virtual IPs, NAT gateways and load balancers get,
//! configured as CIDRs and ranges of both families.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Rejected;
use super::family::{IpFamily, from_int, net_bounds, span, to_int};
use super::field::{FieldError, SpecErrors, SpecProblem};
use super::ledger::Ledger;
use super::subnet::AddressRange;

/// One piece of the pool (an element of `ranges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolEntry {
    /// Every address of a CIDR (without host bits). Unlike a subnet's, its first and last
    /// addresses are handed out too: public IPs are announced as host routes, so no address of
    /// the prefix is special on the wire. Leave them out with `excluded` or use a range.
    Cidr(IpNet),
    /// The addresses `start..=end`, both of one family.
    Range(AddressRange),
}

/// The public pool as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicPoolSpec {
    /// The pieces of the pool (`ranges`), none overlapping another.
    pub ranges: Vec<PoolEntry>,
    /// Addresses of the pool that are never handed out (`excluded`), each inside a range.
    pub excluded: Vec<IpAddr>,
}

/// A validated [`PublicPoolSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicRanges {
    spec: PublicPoolSpec,
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
    excluded: BTreeSet<IpAddr>,
}

impl PublicRanges {
    /// Validates `spec`, naming bad fields as `ranges[i]`, `ranges[i].end`, `excluded[i]`.
    pub fn new(spec: &PublicPoolSpec) -> Result<Self, SpecErrors> {
        let mut errors = Vec::new();
        // (family, first, last, index) of the valid entries so far.
        let mut valid: Vec<(IpFamily, u128, u128, usize)> = Vec::new();
        for (i, entry) in spec.ranges.iter().enumerate() {
            let Some((family, first, last)) = entry_bounds(i, entry, &mut errors) else {
                continue;
            };
            if let Some(&(.., j)) = valid
                .iter()
                .find(|&&(fam, f, l, _)| fam == family && first <= l && f <= last)
            {
                errors.push(FieldError::new(
                    format!("ranges[{i}]"),
                    SpecProblem::Overlaps {
                        other: format!("ranges[{j}]"),
                    },
                ));
                continue;
            }
            valid.push((family, first, last, i));
        }
        let ranges_of = |family| {
            let mut ranges: Vec<(u128, u128)> = valid
                .iter()
                .filter(|v| v.0 == family)
                .map(|&(_, f, l, _)| (f, l))
                .collect();
            ranges.sort_unstable();
            ranges
        };
        let (v4, v6) = (ranges_of(IpFamily::V4), ranges_of(IpFamily::V6));

        let mut excluded = BTreeSet::new();
        for (i, &address) in spec.excluded.iter().enumerate() {
            let field = format!("excluded[{i}]");
            let ranges = match IpFamily::of(address) {
                IpFamily::V4 => &v4,
                IpFamily::V6 => &v6,
            };
            let value = to_int(address);
            if !ranges.iter().any(|&(f, l)| f <= value && value <= l) {
                errors.push(FieldError::new(field, SpecProblem::OutsidePool { address }));
            } else if !excluded.insert(address) {
                let j = spec
                    .excluded
                    .iter()
                    .position(|&a| a == address)
                    .unwrap_or(i);
                errors.push(FieldError::new(
                    field,
                    SpecProblem::Duplicate {
                        value: address.to_string(),
                        other: format!("excluded[{j}]"),
                    },
                ));
            }
        }
        SpecErrors(errors).or_ok(Self {
            spec: spec.clone(),
            v4,
            v6,
            excluded,
        })
    }

    /// The spec as given.
    pub fn spec(&self) -> &PublicPoolSpec {
        &self.spec
    }

    fn ranges(&self, family: IpFamily) -> &[(u128, u128)] {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    /// Whether `address` is in one of the ranges (excluded or not).
    pub fn contains(&self, address: IpAddr) -> bool {
        let value = to_int(address);
        self.ranges(IpFamily::of(address))
            .iter()
            .any(|&(f, l)| f <= value && value <= l)
    }

    /// Whether `address` is excluded.
    pub fn is_excluded(&self, address: IpAddr) -> bool {
        self.excluded.contains(&address)
    }

    /// How many addresses of `family` can be handed out (saturating).
    pub fn capacity(&self, family: IpFamily) -> u128 {
        let total = self
            .ranges(family)
            .iter()
            .fold(0u128, |sum, &(f, l)| sum.saturating_add(span(f, l)));
        let excluded = self
            .excluded
            .iter()
            .filter(|&&a| IpFamily::of(a) == family)
            .count() as u128;
        total.saturating_sub(excluded)
    }
}

/// The integer bounds of entry `i`, or its errors.
fn entry_bounds(
    i: usize,
    entry: &PoolEntry,
    errors: &mut Vec<FieldError>,
) -> Option<(IpFamily, u128, u128)> {
    match *entry {
        PoolEntry::Cidr(cidr) => {
            if cidr.trunc() != cidr {
                errors.push(FieldError::new(
                    format!("ranges[{i}]"),
                    SpecProblem::HostBitsSet {
                        cidr,
                        network: cidr.trunc(),
                    },
                ));
                return None;
            }
            let (first, last) = net_bounds(&cidr);
            Some((IpFamily::of_net(&cidr), first, last))
        }
        PoolEntry::Range(AddressRange { start, end }) => {
            let family = IpFamily::of(start);
            let problem = if IpFamily::of(end) != family {
                SpecProblem::WrongFamily {
                    value: end.to_string(),
                    expected: family,
                }
            } else if end < start {
                SpecProblem::EndBeforeStart { start, end }
            } else {
                return Some((family, to_int(start), to_int(end)));
            };
            errors.push(FieldError::new(format!("ranges[{i}].end"), problem));
            None
        }
    }
}

/// Why a public IP cannot be allocated or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicIpError {
    /// A dynamic request for a family the pool has no range of.
    #[error("the public pool has no {family} range")]
    NoPool {
        /// The requested family.
        family: IpFamily,
    },
    /// Every address of the family is taken.
    #[error("every {family} public IP is taken")]
    Exhausted {
        /// The requested family.
        family: IpFamily,
    },
    /// A fixed request outside the pool.
    #[error("{address} is in none of the public pool's ranges")]
    OutsidePool {
        /// The requested address.
        address: IpAddr,
    },
    /// A fixed request for an excluded address.
    #[error("{address} is excluded from the public pool")]
    Excluded {
        /// The requested address.
        address: IpAddr,
    },
    /// An address held by another owner (on allocation or release).
    #[error("{address} is held by {holder}")]
    Taken {
        /// The address.
        address: IpAddr,
        /// Its holder, as text.
        holder: String,
    },
}

/// How full one family of the pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicPoolUsage {
    /// The family.
    pub family: IpFamily,
    /// Addresses that can be handed out ([`PublicRanges::capacity`]).
    pub capacity: u128,
    /// Addresses held.
    pub used: usize,
    /// Addresses free.
    pub free: u128,
}

/// The public IP allocator. An owner may hold several addresses (a NAT gateway does); an
/// address is held by at most one owner.
#[derive(Debug, Clone)]
pub struct PublicIpPool<O> {
    ranges: PublicRanges,
    v4: Ledger<O>,
    v6: Ledger<O>,
}

impl<O: Ord + Clone + Display> PublicIpPool<O> {
    /// A pool with nothing handed out.
    pub fn new(ranges: PublicRanges) -> Self {
        let excluded = |family| {
            ranges
                .excluded
                .iter()
                .filter(move |&&a| IpFamily::of(a) == family)
                .map(|&a| to_int(a))
                .collect::<Vec<_>>()
        };
        let v4 = Ledger::new(excluded(IpFamily::V4));
        let v6 = Ledger::new(excluded(IpFamily::V6));
        Self { ranges, v4, v6 }
    }

    /// Rebuilds the state from stored assignments (after a restart, or with changed ranges):
    /// each is taken back as a fixed request would be; those that fail are returned.
    pub fn restore(
        ranges: PublicRanges,
        assignments: impl IntoIterator<Item = (O, IpAddr)>,
    ) -> (Self, Vec<Rejected<O, IpAddr, PublicIpError>>) {
        let mut pool = Self::new(ranges);
        let mut rejected = Vec::new();
        for (owner, address) in assignments {
            if let Err(error) = pool.allocate_fixed(owner.clone(), address) {
                rejected.push(Rejected {
                    owner,
                    value: address,
                    error,
                });
            }
        }
        (pool, rejected)
    }

    /// The configured ranges.
    pub fn ranges(&self) -> &PublicRanges {
        &self.ranges
    }

    fn ledger(&self, family: IpFamily) -> &Ledger<O> {
        match family {
            IpFamily::V4 => &self.v4,
            IpFamily::V6 => &self.v6,
        }
    }

    fn ledger_mut(&mut self, family: IpFamily) -> &mut Ledger<O> {
        match family {
            IpFamily::V4 => &mut self.v4,
            IpFamily::V6 => &mut self.v6,
        }
    }

    /// Gives `owner` the lowest free address of `family`.
    pub fn allocate(&mut self, owner: O, family: IpFamily) -> Result<IpAddr, PublicIpError> {
        let ranges = self.ranges.ranges(family);
        if ranges.is_empty() {
            return Err(PublicIpError::NoPool { family });
        }
        let ledger = self.ledger(family);
        let value = ranges
            .iter()
            .find_map(|&(f, l)| ledger.first_free_in(f, l))
            .ok_or(PublicIpError::Exhausted { family })?;
        self.ledger_mut(family).take(value, owner);
        Ok(from_int(family, value))
    }

    /// Gives `owner` exactly `address`: in the pool, not excluded, not held by another owner.
    /// Succeeds again if `owner` holds it already.
    pub fn allocate_fixed(&mut self, owner: O, address: IpAddr) -> Result<(), PublicIpError> {
        if !self.ranges.contains(address) {
            return Err(PublicIpError::OutsidePool { address });
        }
        if self.ranges.is_excluded(address) {
            return Err(PublicIpError::Excluded { address });
        }
        match self.holder(address) {
            Some(holder) if *holder == owner => Ok(()),
            Some(holder) => Err(PublicIpError::Taken {
                address,
                holder: holder.to_string(),
            }),
            None => {
                self.ledger_mut(IpFamily::of(address))
                    .take(to_int(address), owner);
                Ok(())
            }
        }
    }

    /// Frees `address` held by `owner`: `Ok(true)` when released, `Ok(false)` when nobody held
    /// it, an error when another owner holds it.
    pub fn release(&mut self, owner: &O, address: IpAddr) -> Result<bool, PublicIpError> {
        match self.holder(address) {
            None => Ok(false),
            Some(holder) if holder == owner => {
                self.ledger_mut(IpFamily::of(address))
                    .release(to_int(address));
                Ok(true)
            }
            Some(holder) => Err(PublicIpError::Taken {
                address,
                holder: holder.to_string(),
            }),
        }
    }

    /// Frees every address `owner` holds, returning them ascending (IPv4 first).
    pub fn release_owner(&mut self, owner: &O) -> Vec<IpAddr> {
        let addresses = self.addresses_of(owner);
        for &address in &addresses {
            self.ledger_mut(IpFamily::of(address))
                .release(to_int(address));
        }
        addresses
    }

    /// The holder of `address`.
    pub fn holder(&self, address: IpAddr) -> Option<&O> {
        self.ledger(IpFamily::of(address)).holder(to_int(address))
    }

    /// The addresses `owner` holds, ascending (IPv4 first).
    pub fn addresses_of(&self, owner: &O) -> Vec<IpAddr> {
        [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .flat_map(|family| {
                self.ledger(family)
                    .values_of(owner)
                    .map(move |v| from_int(family, v))
            })
            .collect()
    }

    /// Every held address with its owner, ascending by address (IPv4 first): what to persist.
    pub fn assignments(&self) -> impl Iterator<Item = (&O, IpAddr)> + '_ {
        [IpFamily::V4, IpFamily::V6]
            .into_iter()
            .flat_map(move |family| {
                self.ledger(family)
                    .iter()
                    .map(move |(v, owner)| (owner, from_int(family, v)))
            })
    }

    /// How full `family` is.
    pub fn usage(&self, family: IpFamily) -> PublicPoolUsage {
        let capacity = self.ranges.capacity(family);
        let used = self.ledger(family).len();
        PublicPoolUsage {
            family,
            capacity,
            used,
            free: capacity.saturating_sub(used as u128),
        }
    }
}

#[cfg(test)]
#[path = "public_tests.rs"]
mod tests;
