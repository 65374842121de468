//! NAT port slices: a NAT gateway shares its public IPv4 addresses among the interfaces of its
//! network, each interface getting one source-port slice `[port, end_port)` on one address.
//!
//! Slices are aligned: slice `k` of an address is
//! `[NAT_PORT_START + k * ports_per_interface, NAT_PORT_START + (k + 1) * ports_per_interface)`,
//! and every slice ends at or below [`NAT_PORT_END`]. Alignment makes a stored slice checkable
//! on its own and keeps slices from overlapping by construction.

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::net::Ipv4Addr;

use super::Rejected;

/// The first port of the first slice: ports below are the well-known ones, which a NAT must not
/// take as source ports.
pub const NAT_PORT_START: u16 = 1024;
/// The bound no slice goes beyond (`end_port <= NAT_PORT_END`). The node holds `end_port` in 16
/// bits, so the half-open slice cannot include port 65535 itself; dpservice has the same bound.
pub const NAT_PORT_END: u16 = 65535;
/// The smallest slice: fewer ports would run out under ordinary connection churn.
const MIN_PORTS_PER_INTERFACE: u32 = 64;
/// The largest slice that still fits once into `NAT_PORT_START..NAT_PORT_END`.
const MAX_PORTS_PER_INTERFACE: u32 = 32768;

/// The size of a NAT gateway's slices: a power of two in `64..=32768`, so that the slices of an
/// address tile the port range with at most one partial slice left unused. The default, 2048,
/// gives 31 interfaces per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortsPerInterface(u16);

impl PortsPerInterface {
    /// 2048 ports per interface.
    pub const DEFAULT: Self = Self(2048);

    /// The size `ports`, if valid.
    pub fn new(ports: u32) -> Result<Self, NatConfigError> {
        let valid = ports.is_power_of_two()
            && (MIN_PORTS_PER_INTERFACE..=MAX_PORTS_PER_INTERFACE).contains(&ports);
        u16::try_from(ports)
            .ok()
            .filter(|_| valid)
            .map(Self)
            .ok_or(NatConfigError::PortsPerInterface { value: ports })
    }

    /// The number of ports.
    pub fn get(self) -> u16 {
        self.0
    }

    /// How many slices fit on one address.
    pub fn slices_per_ip(self) -> u16 {
        (NAT_PORT_END - NAT_PORT_START) / self.0
    }
}

impl Default for PortsPerInterface {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A source-port slice `[port, end_port)` on a public IPv4 address, as the node's NAT spec
/// takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatSlice {
    /// The public address.
    pub ip: Ipv4Addr,
    /// The first port of the slice.
    pub port: u16,
    /// One past the last port.
    pub end_port: u16,
}

impl Display for NatSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}-{}", self.ip, self.port, self.end_port)
    }
}

/// An invalid NAT gateway configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NatConfigError {
    /// A slice size that is not a power of two in `64..=32768`.
    #[error(
        "portsPerInterface: {value} is not a power of two between {MIN_PORTS_PER_INTERFACE} \
         and {MAX_PORTS_PER_INTERFACE}"
    )]
    PortsPerInterface {
        /// The configured size.
        value: u32,
    },
}

/// Why a slice cannot be allocated, or an address not added or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatError {
    /// Every slice of every address is taken: the caller takes another public IP from the pool,
    /// [adds](NatPorts::add_ip) it and asks again.
    #[error("every slice of the NAT gateway's {ips} public IPs is taken: it needs another one")]
    NeedsPublicIp {
        /// How many addresses the gateway has.
        ips: usize,
    },
    /// An address the gateway does not have.
    #[error("{ip} is not a public IP of the NAT gateway")]
    UnknownIp {
        /// The address.
        ip: Ipv4Addr,
    },
    /// An address the gateway has already.
    #[error("{ip} is a public IP of the NAT gateway already")]
    DuplicateIp {
        /// The address.
        ip: Ipv4Addr,
    },
    /// Removing an address that still has slices.
    #[error("{ip} still has {slices} slices in use")]
    IpInUse {
        /// The address.
        ip: Ipv4Addr,
        /// How many slices it has in use.
        slices: usize,
    },
    /// A fixed slice that is not one of the aligned slices of the configured size.
    #[error("{slice} is not a slice of {ports_per_interface} ports starting at {NAT_PORT_START}")]
    Misaligned {
        /// The requested slice.
        slice: NatSlice,
        /// The configured slice size.
        ports_per_interface: u16,
    },
    /// A slice held by another owner.
    #[error("{slice} is held by {holder}")]
    Taken {
        /// The slice.
        slice: NatSlice,
        /// Its holder, as text.
        holder: String,
    },
    /// A fixed request by an owner holding a different slice.
    #[error("{owner} holds {slice} already")]
    OwnerHasSlice {
        /// The owner, as text.
        owner: String,
        /// The slice it holds.
        slice: NatSlice,
    },
}

/// How full a NAT gateway is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatStatus {
    /// Its public IPs.
    pub public_ips: usize,
    /// Slices each address holds.
    pub slices_per_ip: u16,
    /// Slices over all addresses.
    pub slices_total: usize,
    /// Slices held.
    pub slices_used: usize,
    /// Addresses without a slice in use.
    pub idle_ips: usize,
}

/// The slices of one address: slot `k` is slice `k`.
#[derive(Debug, Clone)]
struct Slots<O> {
    holders: Vec<Option<O>>,
    used: usize,
}

/// The port slices of one NAT gateway: at most one slice per owner (an interface), slices on
/// one address never overlapping. Allocation takes the lowest free slot of the lowest address.
#[derive(Debug, Clone)]
pub struct NatPorts<O> {
    ports_per_interface: u16,
    slices_per_ip: u16,
    ips: BTreeMap<Ipv4Addr, Slots<O>>,
    owners: BTreeMap<O, (Ipv4Addr, u16)>,
}

impl<O: Ord + Clone + Display> NatPorts<O> {
    /// A gateway without addresses whose slices have `size` ports.
    pub fn new(size: PortsPerInterface) -> Self {
        Self {
            ports_per_interface: size.get(),
            slices_per_ip: size.slices_per_ip(),
            ips: BTreeMap::new(),
            owners: BTreeMap::new(),
        }
    }

    /// Rebuilds the state from stored addresses and slices (after a restart, or with a changed
    /// slice size): duplicate addresses count once; each slice is taken back as a fixed request
    /// would be, and those that fail are returned.
    pub fn restore(
        size: PortsPerInterface,
        ips: impl IntoIterator<Item = Ipv4Addr>,
        assignments: impl IntoIterator<Item = (O, NatSlice)>,
    ) -> (Self, Vec<Rejected<O, NatSlice, NatError>>) {
        let mut ports = Self::new(size);
        for ip in ips {
            // A repeated address is the same address; nothing to reject.
            let _ = ports.add_ip(ip);
        }
        let mut rejected = Vec::new();
        for (owner, slice) in assignments {
            if let Err(error) = ports.allocate_fixed(owner.clone(), slice) {
                rejected.push(Rejected {
                    owner,
                    value: slice,
                    error,
                });
            }
        }
        (ports, rejected)
    }

    /// The slice size.
    pub fn ports_per_interface(&self) -> u16 {
        self.ports_per_interface
    }

    /// How many slices each address holds.
    pub fn slices_per_ip(&self) -> u16 {
        self.slices_per_ip
    }

    /// Slice `slot` of `ip`. `slot < slices_per_ip`, so the ports fit in 16 bits.
    fn slice_at(&self, ip: Ipv4Addr, slot: u16) -> NatSlice {
        let size = u32::from(self.ports_per_interface);
        let port = u32::from(NAT_PORT_START) + u32::from(slot) * size;
        NatSlice {
            ip,
            port: u16::try_from(port).unwrap_or(NAT_PORT_END),
            end_port: u16::try_from(port + size).unwrap_or(NAT_PORT_END),
        }
    }

    /// The slot of `slice`, if it is an aligned slice of the configured size.
    fn slot_of(&self, slice: &NatSlice) -> Option<u16> {
        let offset = slice.port.checked_sub(NAT_PORT_START)?;
        let size = self.ports_per_interface;
        let slot = offset / size;
        (offset % size == 0
            && slot < self.slices_per_ip
            && u32::from(slice.end_port) == u32::from(slice.port) + u32::from(size))
        .then_some(slot)
    }

    /// Adds a public address to share.
    pub fn add_ip(&mut self, ip: Ipv4Addr) -> Result<(), NatError> {
        if self.ips.contains_key(&ip) {
            return Err(NatError::DuplicateIp { ip });
        }
        let holders = (0..self.slices_per_ip).map(|_| None).collect();
        self.ips.insert(ip, Slots { holders, used: 0 });
        Ok(())
    }

    /// Removes a public address without slices in use (see [`NatPorts::idle_ips`]).
    pub fn remove_ip(&mut self, ip: Ipv4Addr) -> Result<(), NatError> {
        match self.ips.get(&ip) {
            None => Err(NatError::UnknownIp { ip }),
            Some(slots) if slots.used > 0 => Err(NatError::IpInUse {
                ip,
                slices: slots.used,
            }),
            Some(_) => {
                self.ips.remove(&ip);
                Ok(())
            }
        }
    }

    /// The public addresses, ascending.
    pub fn ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.ips.keys().copied()
    }

    /// The addresses without a slice in use, ascending: the caller may give them back to the
    /// public pool (keeping some if it expects new interfaces soon).
    pub fn idle_ips(&self) -> Vec<Ipv4Addr> {
        self.ips
            .iter()
            .filter(|(_, slots)| slots.used == 0)
            .map(|(&ip, _)| ip)
            .collect()
    }

    fn take(&mut self, owner: O, ip: Ipv4Addr, slot: u16) {
        if let Some(slots) = self.ips.get_mut(&ip)
            && let Some(entry) = slots.holders.get_mut(usize::from(slot))
            && entry.is_none()
        {
            *entry = Some(owner.clone());
            slots.used += 1;
            self.owners.insert(owner, (ip, slot));
        }
    }

    /// Gives `owner` the lowest free slice (lowest address first), or the slice it holds
    /// already.
    pub fn allocate(&mut self, owner: O) -> Result<NatSlice, NatError> {
        if let Some(slice) = self.slice_of(&owner) {
            return Ok(slice);
        }
        let free = self
            .ips
            .iter()
            .filter(|(_, slots)| slots.used < slots.holders.len())
            .find_map(|(&ip, slots)| {
                let slot = slots.holders.iter().position(Option::is_none)?;
                Some((ip, u16::try_from(slot).ok()?))
            });
        let Some((ip, slot)) = free else {
            return Err(NatError::NeedsPublicIp {
                ips: self.ips.len(),
            });
        };
        self.take(owner, ip, slot);
        Ok(self.slice_at(ip, slot))
    }

    /// Gives `owner` exactly `slice`: an aligned slice of the configured size on one of the
    /// gateway's addresses, not held by another owner, and `owner` holds no other slice.
    /// Succeeds again if `owner` holds `slice` already.
    pub fn allocate_fixed(&mut self, owner: O, slice: NatSlice) -> Result<(), NatError> {
        let Some(slots) = self.ips.get(&slice.ip) else {
            return Err(NatError::UnknownIp { ip: slice.ip });
        };
        let Some(slot) = self.slot_of(&slice) else {
            return Err(NatError::Misaligned {
                slice,
                ports_per_interface: self.ports_per_interface,
            });
        };
        if let Some(held) = self.slice_of(&owner) {
            return if held == slice {
                Ok(())
            } else {
                Err(NatError::OwnerHasSlice {
                    owner: owner.to_string(),
                    slice: held,
                })
            };
        }
        if let Some(Some(holder)) = slots.holders.get(usize::from(slot)) {
            return Err(NatError::Taken {
                slice,
                holder: holder.to_string(),
            });
        }
        self.take(owner, slice.ip, slot);
        Ok(())
    }

    /// Frees the slice `owner` holds, returning it. Its address may now be idle.
    pub fn release(&mut self, owner: &O) -> Option<NatSlice> {
        let (ip, slot) = self.owners.remove(owner)?;
        if let Some(slots) = self.ips.get_mut(&ip)
            && let Some(entry) = slots.holders.get_mut(usize::from(slot))
            && entry.take().is_some()
        {
            slots.used -= 1;
        }
        Some(self.slice_at(ip, slot))
    }

    /// The slice `owner` holds.
    pub fn slice_of(&self, owner: &O) -> Option<NatSlice> {
        self.owners
            .get(owner)
            .map(|&(ip, slot)| self.slice_at(ip, slot))
    }

    /// The holder of the slice of `ip` that contains `port`.
    pub fn holder(&self, ip: Ipv4Addr, port: u16) -> Option<&O> {
        let slot = port.checked_sub(NAT_PORT_START)? / self.ports_per_interface;
        self.ips.get(&ip)?.holders.get(usize::from(slot))?.as_ref()
    }

    /// Every held slice with its owner, ascending by address and port: what to persist.
    pub fn assignments(&self) -> impl Iterator<Item = (&O, NatSlice)> + '_ {
        self.ips.iter().flat_map(move |(&ip, slots)| {
            slots
                .holders
                .iter()
                .zip(0u16..)
                .filter_map(move |(holder, slot)| {
                    holder
                        .as_ref()
                        .map(|owner| (owner, self.slice_at(ip, slot)))
                })
        })
    }

    /// How full the gateway is.
    pub fn status(&self) -> NatStatus {
        let per_ip = usize::from(self.slices_per_ip);
        NatStatus {
            public_ips: self.ips.len(),
            slices_per_ip: self.slices_per_ip,
            slices_total: self.ips.len() * per_ip,
            slices_used: self.owners.len(),
            idle_ips: self.ips.values().filter(|s| s.used == 0).count(),
        }
    }
}

#[cfg(test)]
#[path = "nat_tests.rs"]
mod tests;
