//! NAT gateways in the allocator: each gateway's port slices ([`NatPorts`]) over public IPv4
//! addresses that the gateway takes from the region's public pool when its slices run out.
//!
//! A gateway's slice size is part of its spec, which the allocator does not read: the caller
//! defines the gateway ([`AllocatorMsg::NatGateway`](super::AllocatorMsg::NatGateway)) before
//! asking for slices, as it defines a network's subnets before asking for addresses. Slices read
//! from the store before that are kept aside (still taken) and taken back when it happens.

use std::net::{IpAddr, Ipv4Addr};

use crate::ipam::{IpFamily, NatError, NatPorts, NatSlice, NatStatus, PortsPerInterface};
use crate::store::Expect;

use super::records;
use super::{AllocError, AllocatorState};

/// The owner of a gateway's public addresses in the public pool (`natgateways/<ns>/<name>`, as
/// the region names owners by kind).
pub fn gateway_owner(gateway: &str) -> String {
    format!("natgateways/{gateway}")
}

/// A slice read from the store: (owner, address, first port).
pub(super) type StoredSlice = (String, Ipv4Addr, u16);

impl AllocatorState {
    /// Defines (or resizes) `gateway`: takes back its stored slices that fit the size; those
    /// that do not are released.
    pub(super) async fn nat_gateway(
        &mut self,
        gateway: String,
        size: PortsPerInterface,
    ) -> Result<NatStatus, AllocError> {
        let mut stored: Vec<StoredSlice> = match self.nat.remove(&gateway) {
            Some(p) => p
                .assignments()
                .map(|(o, s)| (o.clone(), s.ip, s.port))
                .collect(),
            None => Vec::new(),
        };
        stored.extend(self.pending_nat.remove(&gateway).unwrap_or_default());
        let ips: Vec<Ipv4Addr> = self
            .public
            .addresses_of(&gateway_owner(&gateway))
            .into_iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        let slices = stored.iter().map(|(o, ip, port)| {
            let end = u32::from(*port) + u32::from(size.get());
            let slice = NatSlice {
                ip: *ip,
                port: *port,
                end_port: u16::try_from(end).unwrap_or(u16::MAX),
            };
            (o.clone(), slice)
        });
        let (ports, rejected) = NatPorts::restore(size, ips, slices);
        if !rejected.is_empty() {
            // A slice of another size (the gateway was resized): its owner gets a new one.
            let txn = rejected.iter().fold(self.txn(), |t, r| {
                t.delete(
                    records::nat_key(&gateway, r.value.ip, r.value.port),
                    Expect::Any,
                )
            });
            self.persist(txn);
            tracing::warn!(%gateway, released = rejected.len(), "NAT slices of another size released");
        }
        let status = ports.status();
        self.nat.insert(gateway, ports);
        Ok(status)
    }

    /// The slice of `owner` on `gateway`: the one it holds, else the lowest free one, taking
    /// another public IPv4 address for the gateway when every slice is taken.
    pub(super) async fn nat_slice(
        &mut self,
        gateway: &str,
        owner: String,
    ) -> Result<NatSlice, AllocError> {
        let ports = self
            .nat
            .get_mut(gateway)
            .ok_or_else(|| AllocError::UnknownNatGateway(gateway.to_owned()))?;
        if let Some(s) = ports.slice_of(&owner) {
            return Ok(s);
        }
        let mut new_ip = None;
        let slice = match ports.allocate(owner.clone()) {
            Ok(s) => s,
            Err(NatError::NeedsPublicIp { .. }) => {
                let ip = match self.public.allocate(gateway_owner(gateway), IpFamily::V4)? {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => {
                        return Err(AllocError::Nat(NatError::NeedsPublicIp { ips: 0 }));
                    }
                };
                let ports = self
                    .nat
                    .get_mut(gateway)
                    .ok_or_else(|| AllocError::UnknownNatGateway(gateway.to_owned()))?;
                ports.add_ip(ip)?;
                new_ip = Some(ip);
                ports.allocate(owner.clone())?
            }
            Err(e) => return Err(e.into()),
        };
        let mut txn = self.txn().put(
            records::nat_key(gateway, slice.ip, slice.port),
            records::value(&owner),
            Expect::Absent,
        );
        if let Some(ip) = new_ip {
            txn = txn.put(
                records::public_key(IpAddr::V4(ip)),
                records::value(&gateway_owner(gateway)),
                Expect::Absent,
            );
        }
        self.persist(txn);
        if let Some(ip) = new_ip {
            tracing::info!(%gateway, %ip, "NAT gateway took a public address");
        }
        tracing::debug!(%gateway, %owner, %slice, "NAT slice allocated");
        Ok(slice)
    }

    /// Releases `owner`'s slice on `gateway` (stored or pending).
    pub(super) async fn release_nat_slice(
        &mut self,
        gateway: &str,
        owner: &str,
    ) -> Result<Option<NatSlice>, AllocError> {
        let owner = owner.to_owned();
        if let Some(slice) = self.nat.get(gateway).and_then(|p| p.slice_of(&owner)) {
            let txn = self
                .txn()
                .delete(records::nat_key(gateway, slice.ip, slice.port), Expect::Any);
            self.persist(txn);
            if let Some(p) = self.nat.get_mut(gateway) {
                p.release(&owner);
            }
            return Ok(Some(slice));
        }
        let pending: Vec<StoredSlice> = self
            .pending_nat
            .get(gateway)
            .into_iter()
            .flatten()
            .filter(|(o, _, _)| *o == owner)
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let txn = pending.iter().fold(self.txn(), |t, (_, ip, port)| {
            t.delete(records::nat_key(gateway, *ip, *port), Expect::Any)
        });
        self.persist(txn);
        if let Some(p) = self.pending_nat.get_mut(gateway) {
            p.retain(|(o, _, _)| *o != owner);
        }
        Ok(None)
    }

    /// Removes `gateway`: every slice and every public address it took. Answers the addresses.
    pub(super) async fn release_nat_gateway(
        &mut self,
        gateway: &str,
    ) -> Result<Vec<IpAddr>, AllocError> {
        let mut keys: Vec<String> = self
            .nat
            .get(gateway)
            .into_iter()
            .flat_map(|p| {
                p.assignments()
                    .map(|(_, s)| (s.ip, s.port))
                    .collect::<Vec<_>>()
            })
            .chain(
                self.pending_nat
                    .get(gateway)
                    .into_iter()
                    .flatten()
                    .map(|(_, ip, port)| (*ip, *port)),
            )
            .map(|(ip, port)| records::nat_key(gateway, ip, port))
            .collect();
        let owner = gateway_owner(gateway);
        let ips = self.public.addresses_of(&owner);
        keys.extend(ips.iter().map(|ip| records::public_key(*ip)));
        // A gateway with many interfaces needs more than one transaction; each removes only
        // what no one can be handed twice (slices, then the addresses that carried them).
        for chunk in keys.chunks(crate::store::MAX_FENCED_TXN_OPS) {
            let txn = chunk
                .iter()
                .fold(self.txn(), |t, k| t.delete(k.clone(), Expect::Any));
            self.persist(txn);
        }
        self.nat.remove(gateway);
        self.pending_nat.remove(gateway);
        self.public.release_owner(&owner);
        Ok(ips)
    }

    /// How full `gateway` is (`None`: not defined).
    pub(super) fn nat_status(&self, gateway: &str) -> Option<NatStatus> {
        self.nat.get(gateway).map(NatPorts::status)
    }
}
