//! The addresses of one network: dynamic (lowest free of a family or a subnet) and fixed
//! allocation inside the network's subnets, release, and rebuilding from stored assignments.

use std::fmt::Display;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Rejected;
use super::family::{IpFamily, from_int, net_bounds, span, to_int};
use super::ledger::Ledger;
use super::subnet::{NetworkSubnets, Reservation, Subnet};

/// Why an address cannot be allocated or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// A dynamic request for a family the network has no subnet of.
    #[error("the network has no {family} subnet")]
    NoSubnet {
        /// The requested family.
        family: IpFamily,
    },
    /// Every allocation range of every subnet of the family is taken.
    #[error("every {family} subnet of the network is full")]
    Exhausted {
        /// The requested family.
        family: IpFamily,
    },
    /// A request naming a subnet the network does not have.
    #[error("the network has no subnet {cidr}")]
    UnknownSubnet {
        /// The requested subnet.
        cidr: IpNet,
    },
    /// Every allocation range of the named subnet is taken.
    #[error("subnet {cidr} is full")]
    SubnetExhausted {
        /// The requested subnet.
        cidr: IpNet,
    },
    /// A fixed address inside none of the network's subnets.
    #[error("{address} is in none of the network's subnets")]
    OutsideSubnets {
        /// The requested address.
        address: IpAddr,
    },
    /// A fixed address the subnet never hands out.
    #[error("{address} is {reservation} of subnet {cidr}")]
    Reserved {
        /// The requested address.
        address: IpAddr,
        /// Why it is reserved.
        reservation: Reservation,
        /// The subnet reserving it.
        cidr: IpNet,
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

/// How full one subnet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetUsage {
    /// The subnet.
    pub cidr: IpNet,
    /// Addresses held in the subnet, fixed ones outside the allocation ranges included.
    pub assigned: usize,
    /// Addresses the allocation ranges can hand out ([`Subnet::capacity`]).
    pub capacity: u128,
    /// Addresses of the allocation ranges still free.
    pub free: u128,
}

/// The address allocator of one network. An owner may hold several addresses (e.g. one per
/// family); an address is held by at most one owner.
#[derive(Debug, Clone)]
pub struct IpAllocator<O> {
    subnets: NetworkSubnets,
    v4: Ledger<O>,
    v6: Ledger<O>,
}

impl<O: Ord + Clone + Display> IpAllocator<O> {
    /// An allocator with nothing handed out.
    pub fn new(subnets: NetworkSubnets) -> Self {
        let reserved = |family| {
            subnets
                .of_family(family)
                .flat_map(Subnet::reserved)
                .collect::<Vec<_>>()
        };
        let v4 = Ledger::new(reserved(IpFamily::V4));
        let v6 = Ledger::new(reserved(IpFamily::V6));
        Self { subnets, v4, v6 }
    }

    /// Rebuilds the state from stored assignments (after a restart, or with changed subnets):
    /// each is taken back as a fixed request would be; those that fail are returned, e.g. an
    /// address whose subnet was removed or that became excluded.
    pub fn restore(
        subnets: NetworkSubnets,
        assignments: impl IntoIterator<Item = (O, IpAddr)>,
    ) -> (Self, Vec<Rejected<O, IpAddr, AddressError>>) {
        let mut allocator = Self::new(subnets);
        let mut rejected = Vec::new();
        for (owner, address) in assignments {
            if let Err(error) = allocator.allocate_fixed(owner.clone(), address) {
                rejected.push(Rejected {
                    owner,
                    value: address,
                    error,
                });
            }
        }
        (allocator, rejected)
    }

    /// The network's subnets.
    pub fn subnets(&self) -> &NetworkSubnets {
        &self.subnets
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

    /// The lowest free address of `subnet`'s allocation ranges.
    fn lowest_free_in(&self, subnet: &Subnet) -> Option<IpAddr> {
        let family = subnet.family();
        let ledger = self.ledger(family);
        subnet
            .pool()
            .iter()
            .find_map(|&(first, last)| ledger.first_free_in(first, last))
            .map(|value| from_int(family, value))
    }

    fn take(&mut self, owner: O, address: IpAddr) -> IpAddr {
        let taken = self
            .ledger_mut(IpFamily::of(address))
            .take(to_int(address), owner);
        debug_assert!(taken, "{address} was found free");
        address
    }

    /// Gives `owner` the lowest free address of `family` from the allocation ranges of the
    /// network's subnets.
    pub fn allocate(&mut self, owner: O, family: IpFamily) -> Result<IpAddr, AddressError> {
        let mut any = false;
        let mut found = None;
        for subnet in self.subnets.of_family(family) {
            any = true;
            found = self.lowest_free_in(subnet);
            if found.is_some() {
                break;
            }
        }
        match found {
            Some(address) => Ok(self.take(owner, address)),
            None if any => Err(AddressError::Exhausted { family }),
            None => Err(AddressError::NoSubnet { family }),
        }
    }

    /// Gives `owner` the lowest free address of the allocation ranges of subnet `cidr`.
    pub fn allocate_in(&mut self, owner: O, cidr: IpNet) -> Result<IpAddr, AddressError> {
        let subnet = self
            .subnets
            .get(cidr)
            .ok_or(AddressError::UnknownSubnet { cidr })?;
        let address = self
            .lowest_free_in(subnet)
            .ok_or(AddressError::SubnetExhausted { cidr })?;
        Ok(self.take(owner, address))
    }

    /// Gives `owner` exactly `address`: inside one of the subnets (not necessarily inside an
    /// allocation range), not reserved and not held by another owner. Succeeds again if `owner`
    /// holds it already.
    pub fn allocate_fixed(&mut self, owner: O, address: IpAddr) -> Result<(), AddressError> {
        let subnet = self
            .subnets
            .containing(address)
            .ok_or(AddressError::OutsideSubnets { address })?;
        if let Some(reservation) = subnet.reservation(address) {
            return Err(AddressError::Reserved {
                address,
                reservation,
                cidr: subnet.cidr(),
            });
        }
        match self.holder(address) {
            Some(holder) if *holder == owner => Ok(()),
            Some(holder) => Err(AddressError::Taken {
                address,
                holder: holder.to_string(),
            }),
            None => {
                self.take(owner, address);
                Ok(())
            }
        }
    }

    /// Frees `address` held by `owner`: `Ok(true)` when released, `Ok(false)` when nobody held
    /// it (a retried release), an error when another owner holds it.
    pub fn release(&mut self, owner: &O, address: IpAddr) -> Result<bool, AddressError> {
        match self.holder(address) {
            None => Ok(false),
            Some(holder) if holder == owner => {
                self.ledger_mut(IpFamily::of(address))
                    .release(to_int(address));
                Ok(true)
            }
            Some(holder) => Err(AddressError::Taken {
                address,
                holder: holder.to_string(),
            }),
        }
    }

    /// Frees every address `owner` holds, returning them ascending.
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

    /// How many addresses are held.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether no address is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How full each subnet is, in the order of [`NetworkSubnets::subnets`]. Costs time
    /// linear in the held addresses; meant for status, not for every request.
    pub fn usage(&self) -> Vec<SubnetUsage> {
        self.subnets
            .subnets()
            .iter()
            .map(|subnet| {
                let ledger = self.ledger(subnet.family());
                let (first, last) = net_bounds(&subnet.cidr());
                let assigned = ledger.held_in(first, last);
                // Held and reserved addresses are disjoint, so what the ranges lack in free
                // values beyond the reserved ones is held.
                let free = subnet.pool().iter().fold(0u128, |sum, &(f, l)| {
                    sum.saturating_add(span(f, l).saturating_sub(ledger.blocked_in(f, l)))
                });
                SubnetUsage {
                    cidr: subnet.cidr(),
                    assigned,
                    capacity: subnet.capacity(),
                    free,
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "addresses_tests.rs"]
mod tests;
