//! The allocator: one actor that hands out every value that must be unique in the region (VNIs,
//! network addresses, public addresses, NAT port slices) and persists each decision before the
//! caller acknowledges anything that depends on it.
//!
//! ```text
//!  region actor --AllocatorMsg (call)--> AllocatorActor --Txn (fenced, "must not exist")--> Store
//!               --Sync (call)---------->   (waits for every queued write)
//!                                        | owns VniAllocator, IpAllocator per network,
//!                                        | PublicIpPool, NatPorts (the pure ipam module)
//! ```
//!
//! One message at a time: a decision is made in memory and its write queued to the store at
//! once (in order), then answered; [`AllocatorMsg::Sync`] waits until every queued write is
//! committed, and the region actor calls it before it answers a user, so nothing is confirmed
//! that is not on disk while a burst of allocations shares its commits. When a write fails, Sync
//! says so and the caller makes the allocator [reload](AllocatorMsg::Reload) from the store, so
//! memory never keeps what the store does not. Every new key is written with "must not exist",
//! so even two allocators that both believe they lead cannot hand out one value twice; with a
//! leader campaign the writes are also fenced. At start the actor builds its state from one
//! listing of the store.

mod nat;
pub mod records;

pub use nat::gateway_owner;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::ipam::{
    AddressError, IpAllocator, IpFamily, NatError, NatPorts, NatSlice, NatStatus, NetworkSubnets,
    PortsPerInterface, PublicIpError, PublicIpPool, PublicRanges, SpecErrors, SubnetSpec,
    VniAllocator, VniError, VniRange,
};
use crate::store::{Expect, Fence, Store, StoreError, Txn};
use records::Allocation;

/// Why an allocation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// VNI range rules.
    #[error(transparent)]
    Vni(#[from] VniError),
    /// Network address rules.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// Public pool rules.
    #[error(transparent)]
    Public(#[from] PublicIpError),
    /// NAT slice rules.
    #[error(transparent)]
    Nat(#[from] NatError),
    /// A NAT gateway not defined here yet.
    #[error("NAT gateway {0}: not defined")]
    UnknownNatGateway(String),
    /// A network's subnets are invalid.
    #[error("subnets: {0}")]
    Subnets(SpecErrors),
    /// The network has no subnets defined here yet.
    #[error("network {0}: no subnets defined")]
    UnknownNetwork(String),
    /// The store did not take the decision: nothing was allocated.
    #[error("allocation not persisted")]
    Store(#[from] StoreError),
}

/// What address to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRequest {
    /// The lowest free one of a family.
    Family(IpFamily),
    /// This one.
    Fixed(IpAddr),
}

type Reply<T> = RpcReplyPort<Result<T, AllocError>>;

/// Messages of the allocator.
#[derive(Debug)]
pub enum AllocatorMsg {
    /// A VNI for `owner` (a network): its own if it has one, else `fixed` or the lowest free.
    Vni(String, Option<u32>, Reply<u32>),
    /// Releases `owner`'s VNI; answers it, if there was one.
    ReleaseVni(String, Reply<Option<u32>>),
    /// Defines or changes the subnets of network `namespace/name`; answers the stored addresses
    /// that no longer fit (kept in the store until their owners release them).
    Subnets(String, Vec<SubnetSpec>, Reply<Vec<(String, IpAddr)>>),
    /// An address of `network` for `owner`.
    Ip(String, String, IpRequest, Reply<IpAddr>),
    /// Releases every address `owner` holds in `network`.
    ReleaseIps(String, String, Reply<Vec<IpAddr>>),
    /// A public address for `owner`.
    PublicIp(String, IpRequest, Reply<IpAddr>),
    /// Releases every public address of `owner`.
    ReleasePublicIps(String, Reply<Vec<IpAddr>>),
    /// Releases one public address of `owner`; answers whether it held it.
    ReleasePublicIp(String, IpAddr, Reply<bool>),
    /// Defines (or resizes) NAT gateway `namespace/name` with its slice size.
    NatGateway(String, PortsPerInterface, Reply<NatStatus>),
    /// A NAT slice of a gateway for `owner` (an interface).
    NatSlice(String, String, Reply<NatSlice>),
    /// Releases `owner`'s slice of a gateway.
    ReleaseNatSlice(String, String, Reply<Option<NatSlice>>),
    /// Removes a gateway: its slices and public addresses.
    ReleaseNatGateway(String, Reply<Vec<IpAddr>>),
    /// How full a gateway is.
    NatStatus(String, RpcReplyPort<Option<NatStatus>>),
    /// Every stored allocation, for status and tests.
    List(RpcReplyPort<Vec<Allocation>>),
    /// Waits until every write queued so far is committed; the first failure, if any.
    Sync(Reply<()>),
    /// Forgets the state and builds it again from the store (after a failed write).
    Reload(Reply<()>),
}

/// Start arguments.
#[derive(Debug)]
pub struct AllocatorArgs {
    /// Where decisions are kept.
    pub store: Store,
    /// VNIs of networks.
    pub vnis: VniRange,
    /// Public addresses.
    pub public: PublicRanges,
    /// Writes are applied only while this campaign leads (replicas over etcd).
    pub fence: Option<Fence>,
}

/// The allocator's state.
pub struct AllocatorState {
    store: Store,
    fence: Option<Fence>,
    vnis: VniAllocator<String>,
    public: PublicIpPool<String>,
    /// Networks with subnets: `namespace/name` -> addresses.
    networks: BTreeMap<String, IpAllocator<String>>,
    /// Stored addresses of networks whose subnets are not defined (yet): taken back when they are.
    pending: BTreeMap<String, Vec<(String, IpAddr)>>,
    /// NAT gateways: `namespace/name` -> slices.
    nat: BTreeMap<String, NatPorts<String>>,
    /// Stored slices of gateways not defined (yet).
    pending_nat: BTreeMap<String, Vec<nat::StoredSlice>>,
    /// Writes queued and not yet confirmed.
    queued: Vec<Pending>,
    vni_range: VniRange,
    public_ranges: PublicRanges,
}

/// A queued write's result.
type Pending = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<crate::store::Revision, StoreError>> + Send>,
>;

/// The allocator actor.
#[derive(Debug)]
pub struct AllocatorActor;

impl Actor for AllocatorActor {
    type Msg = AllocatorMsg;
    type State = AllocatorState;
    type Arguments = AllocatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<AllocatorMsg>,
        args: AllocatorArgs,
    ) -> Result<AllocatorState, ActorProcessingErr> {
        Ok(AllocatorState::load(args.store, args.vnis, args.public, args.fence).await?)
    }

    async fn handle(
        &self,
        _myself: ActorRef<AllocatorMsg>,
        msg: AllocatorMsg,
        st: &mut AllocatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AllocatorMsg::Vni(owner, fixed, reply) => {
                let _ = reply.send(st.vni(owner, fixed).await);
            }
            AllocatorMsg::ReleaseVni(owner, reply) => {
                let _ = reply.send(st.release_vni(&owner).await);
            }
            AllocatorMsg::Subnets(network, subnets, reply) => {
                let _ = reply.send(st.subnets(network, &subnets));
            }
            AllocatorMsg::Ip(network, owner, req, reply) => {
                let _ = reply.send(st.ip(&network, owner, req).await);
            }
            AllocatorMsg::ReleaseIps(network, owner, reply) => {
                let _ = reply.send(st.release_ips(&network, &owner).await);
            }
            AllocatorMsg::PublicIp(owner, req, reply) => {
                let _ = reply.send(st.public_ip(owner, req).await);
            }
            AllocatorMsg::ReleasePublicIp(owner, address, reply) => {
                let _ = reply.send(st.release_public_one(&owner, address).await);
            }
            AllocatorMsg::ReleasePublicIps(owner, reply) => {
                let _ = reply.send(st.release_public(&owner).await);
            }
            AllocatorMsg::NatGateway(gateway, size, reply) => {
                let _ = reply.send(st.nat_gateway(gateway, size).await);
            }
            AllocatorMsg::NatSlice(gateway, owner, reply) => {
                let _ = reply.send(st.nat_slice(&gateway, owner).await);
            }
            AllocatorMsg::ReleaseNatSlice(gateway, owner, reply) => {
                let _ = reply.send(st.release_nat_slice(&gateway, &owner).await);
            }
            AllocatorMsg::ReleaseNatGateway(gateway, reply) => {
                let _ = reply.send(st.release_nat_gateway(&gateway).await);
            }
            AllocatorMsg::NatStatus(gateway, reply) => {
                let _ = reply.send(st.nat_status(&gateway));
            }
            AllocatorMsg::List(reply) => {
                let _ = reply.send(st.list());
            }
            AllocatorMsg::Sync(reply) => {
                let _ = reply.send(st.sync().await);
            }
            AllocatorMsg::Reload(reply) => {
                let _ = st.sync().await;
                let r = AllocatorState::load(
                    st.store.clone(),
                    st.vni_range,
                    st.public_ranges.clone(),
                    st.fence.clone(),
                )
                .await;
                match r {
                    Ok(fresh) => {
                        *st = fresh;
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
        }
        Ok(())
    }
}

impl AllocatorState {
    /// The state stored allocations give, from one listing.
    async fn load(
        store: Store,
        vni_range: VniRange,
        public_ranges: PublicRanges,
        fence: Option<Fence>,
    ) -> Result<Self, StoreError> {
        let listing = store.list(records::PREFIX).await?;
        let (mut vnis, mut ips, mut public) = (Vec::new(), BTreeMap::new(), Vec::new());
        let mut pending_nat: BTreeMap<String, Vec<nat::StoredSlice>> = BTreeMap::new();
        for kv in &listing.items {
            match records::parse(&kv.key, &kv.value) {
                Ok(Allocation::Vni { vni, owner }) => vnis.push((owner, vni)),
                Ok(Allocation::Ip {
                    network,
                    address,
                    owner,
                }) => ips
                    .entry(network)
                    .or_insert_with(Vec::new)
                    .push((owner, address)),
                Ok(Allocation::Public { address, owner }) => public.push((owner, address)),
                Ok(Allocation::Nat {
                    gateway,
                    address,
                    port,
                    owner,
                }) => pending_nat
                    .entry(gateway)
                    .or_default()
                    .push((owner, address, port)),
                // Kept in the store (the key stays taken), shown to the operator.
                Err(e) => tracing::error!(error = %e, "ignoring a stored allocation"),
            }
        }
        let (vnis, rejected) = VniAllocator::restore(vni_range, vnis);
        for r in rejected {
            tracing::warn!(owner = %r.owner, vni = r.value, error = %r.error, "stored VNI outside the configured range: kept for its owner, not reusable");
        }
        let (public, rejected) = PublicIpPool::restore(public_ranges.clone(), public);
        for r in rejected {
            tracing::warn!(owner = %r.owner, address = %r.value, error = %r.error, "stored public address outside the configured pool");
        }
        tracing::info!(
            allocations = listing.items.len(),
            revision = listing.revision,
            "allocator state loaded"
        );
        Ok(AllocatorState {
            queued: Vec::new(),
            vni_range,
            public_ranges,
            store,
            fence,
            vnis,
            public,
            networks: BTreeMap::new(),
            pending: ips,
            nat: BTreeMap::new(),
            pending_nat,
        })
    }

    /// Queues a write; its result is collected by the next Sync.
    fn persist(&mut self, txn: Txn) {
        self.queued.push(Box::pin(self.store.submit(txn)));
    }

    async fn sync(&mut self) -> Result<(), AllocError> {
        let mut first = None;
        for p in std::mem::take(&mut self.queued) {
            if let Err(e) = p.await
                && first.is_none()
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), |e| Err(AllocError::Store(e)))
    }

    fn txn(&self) -> Txn {
        match &self.fence {
            Some(f) => Txn::new().fenced(f),
            None => Txn::new(),
        }
    }

    async fn vni(&mut self, owner: String, fixed: Option<u32>) -> Result<u32, AllocError> {
        if let Some(v) = self.vnis.vni_of(&owner) {
            return Ok(v);
        }
        let vni = match fixed {
            Some(v) => {
                self.vnis.allocate_fixed(owner.clone(), v)?;
                v
            }
            None => self.vnis.allocate(owner.clone())?,
        };
        let txn = self.txn().put(
            records::vni_key(vni),
            records::value(&owner),
            Expect::Absent,
        );
        self.persist(txn);
        tracing::info!(%owner, vni, "VNI allocated");
        Ok(vni)
    }

    async fn release_vni(&mut self, owner: &str) -> Result<Option<u32>, AllocError> {
        let owner = owner.to_owned();
        let Some(vni) = self.vnis.vni_of(&owner) else {
            return Ok(None);
        };
        let txn = self.txn().delete(records::vni_key(vni), Expect::Any);
        self.persist(txn);
        self.vnis.release(&owner, vni)?;
        tracing::info!(%owner, vni, "VNI released");
        Ok(Some(vni))
    }

    fn subnets(
        &mut self,
        network: String,
        specs: &[SubnetSpec],
    ) -> Result<Vec<(String, IpAddr)>, AllocError> {
        let subnets = NetworkSubnets::new(specs).map_err(AllocError::Subnets)?;
        let stored: Vec<(String, IpAddr)> = match self.networks.remove(&network) {
            Some(a) => a.assignments().map(|(o, ip)| (o.clone(), ip)).collect(),
            None => self.pending.remove(&network).unwrap_or_default(),
        };
        let (allocator, rejected) = IpAllocator::restore(subnets, stored);
        let misfits: Vec<(String, IpAddr)> =
            rejected.into_iter().map(|r| (r.owner, r.value)).collect();
        if !misfits.is_empty() {
            tracing::warn!(%network, count = misfits.len(), "stored addresses outside the new subnets: kept until released");
            // Still taken in the store: remembered so that a later subnet change can take
            // them back, and never handed out while stored.
            self.pending.insert(network.clone(), misfits.clone());
        }
        self.networks.insert(network, allocator);
        Ok(misfits)
    }

    async fn ip(
        &mut self,
        network: &str,
        owner: String,
        req: IpRequest,
    ) -> Result<IpAddr, AllocError> {
        let a = self
            .networks
            .get_mut(network)
            .ok_or_else(|| AllocError::UnknownNetwork(network.to_owned()))?;
        let address = match req {
            IpRequest::Family(f) => a.allocate(owner.clone(), f)?,
            IpRequest::Fixed(ip) => {
                if a.holder(ip) == Some(&owner) {
                    return Ok(ip);
                }
                a.allocate_fixed(owner.clone(), ip)?;
                ip
            }
        };
        let key = records::ip_key(network, address);
        let txn = self.txn().put(key, records::value(&owner), Expect::Absent);
        self.persist(txn);
        tracing::debug!(%network, %owner, %address, "address allocated");
        Ok(address)
    }

    async fn release_ips(&mut self, network: &str, owner: &str) -> Result<Vec<IpAddr>, AllocError> {
        let owner = owner.to_owned();
        let held = self
            .networks
            .get(network)
            .map(|a| a.addresses_of(&owner))
            .unwrap_or_default();
        let mut misfit: Vec<IpAddr> = self
            .pending
            .get(network)
            .into_iter()
            .flatten()
            .filter(|(o, _)| *o == owner)
            .map(|(_, ip)| *ip)
            .collect();
        let mut all = held.clone();
        all.append(&mut misfit);
        if all.is_empty() {
            return Ok(all);
        }
        let txn = all.iter().fold(self.txn(), |t, ip| {
            t.delete(records::ip_key(network, *ip), Expect::Any)
        });
        self.persist(txn);
        if let Some(a) = self.networks.get_mut(network) {
            a.release_owner(&owner);
        }
        if let Some(p) = self.pending.get_mut(network) {
            p.retain(|(o, _)| *o != owner);
        }
        Ok(all)
    }

    async fn public_ip(&mut self, owner: String, req: IpRequest) -> Result<IpAddr, AllocError> {
        let address = match req {
            IpRequest::Family(f) => self.public.allocate(owner.clone(), f)?,
            IpRequest::Fixed(ip) => {
                if self.public.holder(ip) == Some(&owner) {
                    return Ok(ip);
                }
                self.public.allocate_fixed(owner.clone(), ip)?;
                ip
            }
        };
        let txn = self.txn().put(
            records::public_key(address),
            records::value(&owner),
            Expect::Absent,
        );
        self.persist(txn);
        tracing::info!(%owner, %address, "public address allocated");
        Ok(address)
    }

    async fn release_public(&mut self, owner: &str) -> Result<Vec<IpAddr>, AllocError> {
        let owner = owner.to_owned();
        let held = self.public.addresses_of(&owner);
        if held.is_empty() {
            return Ok(held);
        }
        let txn = held.iter().fold(self.txn(), |t, ip| {
            t.delete(records::public_key(*ip), Expect::Any)
        });
        self.persist(txn);
        self.public.release_owner(&owner);
        Ok(held)
    }

    async fn release_public_one(
        &mut self,
        owner: &str,
        address: IpAddr,
    ) -> Result<bool, AllocError> {
        let owner = owner.to_owned();
        if self.public.holder(address) != Some(&owner) {
            return Ok(false);
        }
        let txn = self.txn().delete(records::public_key(address), Expect::Any);
        self.persist(txn);
        self.public.release(&owner, address)?;
        Ok(true)
    }

    fn list(&self) -> Vec<Allocation> {
        let mut v: Vec<Allocation> = self
            .vnis
            .assignments()
            .map(|(o, vni)| Allocation::Vni {
                vni,
                owner: o.clone(),
            })
            .collect();
        for (network, a) in &self.networks {
            v.extend(a.assignments().map(|(o, ip)| Allocation::Ip {
                network: network.clone(),
                address: ip,
                owner: o.clone(),
            }));
        }
        for (network, p) in &self.pending {
            v.extend(p.iter().map(|(o, ip)| Allocation::Ip {
                network: network.clone(),
                address: *ip,
                owner: o.clone(),
            }));
        }
        v.extend(self.public.assignments().map(|(o, ip)| Allocation::Public {
            address: ip,
            owner: o.clone(),
        }));
        for (gateway, p) in &self.nat {
            v.extend(p.assignments().map(|(o, s)| Allocation::Nat {
                gateway: gateway.clone(),
                address: s.ip,
                port: s.port,
                owner: o.clone(),
            }));
        }
        for (gateway, p) in &self.pending_nat {
            v.extend(p.iter().map(|(o, ip, port)| Allocation::Nat {
                gateway: gateway.clone(),
                address: *ip,
                port: *port,
                owner: o.clone(),
            }));
        }
        v
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
