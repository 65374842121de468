//! The region actor: owns the inventory of every object, validates and applies each write, and
//! keeps the store's objects and placed node objects equal to what follows from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrinet_proto::api::v1 as pb;
use prost::Message as _;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::allocator::AllocatorMsg;
use crate::realize::{Inventory, NetworkDerived, NetworkRealized, PlacedKey};
use crate::resources::{self, ObjKey, kind_of, meta, meta_mut};
use crate::store::{Fence, Revision, Store};

use super::keys;
use super::{ApiError, RegionMsg, RegionSettings};

/// Start arguments.
#[derive(Debug)]
pub struct RegionArgs {
    /// Where objects live.
    pub store: Store,
    /// The allocator (already running).
    pub allocator: ActorRef<AllocatorMsg>,
    /// Writes apply only while this campaign leads (replicas over etcd).
    pub fence: Option<Fence>,
    /// Behaviour.
    pub settings: RegionSettings,
}

/// A placed node object's place: the node and the object.
pub(super) type Place = (String, PlacedKey);

/// The region actor's state.
pub struct RegionState {
    pub(super) store: Store,
    pub(super) allocator: ActorRef<AllocatorMsg>,
    pub(super) fence: Option<Fence>,
    pub(super) settings: RegionSettings,
    /// Every object, as the store holds it (resource versions in `revisions`).
    pub(super) inv: Inventory,
    /// Store key -> mod revision of the objects this actor wrote or loaded.
    pub(super) revisions: HashMap<String, Revision>,
    /// What realize gave for each network last time.
    pub(super) realized: BTreeMap<ObjKey, NetworkRealized>,
    /// The networks whose realization places each node object (a peer's Network object is
    /// placed by both sides).
    pub(super) contributors: BTreeMap<Place, BTreeSet<ObjKey>>,
    /// The placed node objects the store holds.
    pub(super) placed: BTreeMap<Place, ferrinet_proto::node::v1::Object>,
    /// Peering states of every network, last computed.
    pub(super) peerings: BTreeMap<ObjKey, NetworkDerived>,
    /// Lease expiry of registered nodes, by name.
    pub(super) leases: BTreeMap<String, SystemTime>,
    /// Objects changed in memory and not written yet.
    pub(super) dirty: BTreeSet<(pb::Kind, ObjKey)>,
    /// Objects deleted in memory and not removed from the store yet.
    pub(super) deleted: BTreeSet<(pb::Kind, ObjKey)>,
    /// Networks to realize again before the next write.
    pub(super) affected: BTreeSet<ObjKey>,
    /// Placed node object writes queued by realization.
    pub(super) placed_ops: Vec<super::commit::Op>,
    /// Why an object's allocations are incomplete (part of its status message).
    pub(super) alloc_messages: BTreeMap<(pb::Kind, ObjKey), String>,
    /// The next realization covers every network: remove placed objects none places.
    pub(super) full_sweep: bool,
    /// Answers waiting for the next flush.
    pub(super) deferred: Vec<super::batch::Deferred>,
    /// A Flush message is in the mailbox.
    pub(super) flush_queued: bool,
}

/// The region actor.
#[derive(Debug)]
pub struct RegionActor;

impl Actor for RegionActor {
    type Msg = RegionMsg;
    type State = RegionState;
    type Arguments = RegionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegionMsg>,
        args: RegionArgs,
    ) -> Result<RegionState, ActorProcessingErr> {
        let mut st = RegionState {
            store: args.store,
            allocator: args.allocator,
            fence: args.fence,
            settings: args.settings,
            inv: Inventory::default(),
            revisions: HashMap::new(),
            realized: BTreeMap::new(),
            contributors: BTreeMap::new(),
            placed: BTreeMap::new(),
            peerings: BTreeMap::new(),
            leases: BTreeMap::new(),
            dirty: BTreeSet::new(),
            deleted: BTreeSet::new(),
            affected: BTreeSet::new(),
            placed_ops: Vec::new(),
            alloc_messages: BTreeMap::new(),
            full_sweep: false,
            deferred: Vec::new(),
            flush_queued: false,
        };
        st.load().await?;
        st.start_up().await?;
        let tick = myself.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if tick.cast(RegionMsg::Tick).is_err() {
                    return;
                }
            }
        });
        Ok(st)
    }

    async fn handle(
        &self,
        myself: ActorRef<RegionMsg>,
        msg: RegionMsg,
        st: &mut RegionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegionMsg::Create(obj, reply) => {
                let r = st.create(obj).await;
                st.defer(r, move |st, r| {
                    let r = r.and_then(|(kind, key)| {
                        st.get(kind, &key).ok_or(ApiError::NotFound { kind, key })
                    });
                    let _ = reply.send(r);
                });
            }
            RegionMsg::Update(obj, reply) => {
                let r = st.update(obj).await;
                st.defer(r, move |st, r| {
                    let r = r.and_then(|(kind, key)| {
                        st.get(kind, &key).ok_or(ApiError::NotFound { kind, key })
                    });
                    let _ = reply.send(r);
                });
            }
            RegionMsg::Delete(kind, key, version, reply) => {
                let r = st.delete(kind, key, version).await;
                st.defer(r, move |_, r| {
                    let _ = reply.send(r);
                });
            }
            RegionMsg::Register(req, reply) => {
                let r = st.register(req).await;
                st.defer(r, move |_, r| {
                    let _ = reply.send(r);
                });
            }
            RegionMsg::Heartbeat(name, reply) => {
                let r = st.heartbeat(&name).await;
                st.defer(r, move |_, r| {
                    let _ = reply.send(r);
                });
            }
            RegionMsg::Report(node, objects, reply) => {
                let r = st.report(&node, objects);
                st.defer(r, move |_, r| {
                    let _ = reply.send(r);
                });
            }
            RegionMsg::Tick => st.tick().await,
            RegionMsg::Flush => {
                st.flush_queued = false;
                st.flush().await;
                return Ok(());
            }
        }
        st.queue_flush(&myself);
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl RegionState {
    /// Reads every object and placed node object from the store.
    pub(super) async fn load(&mut self) -> Result<(), ApiError> {
        self.inv = Inventory::default();
        self.revisions.clear();
        self.placed.clear();
        self.dirty.clear();
        self.deleted.clear();
        let listing = self.store.list(keys::OBJECTS).await?;
        for kv in &listing.items {
            let Some((kind, key)) = keys::parse_object_key(&kv.key) else {
                tracing::error!(key = %kv.key, "ignoring a stored object with a foreign key");
                continue;
            };
            let obj = match pb::Object::decode(kv.value.as_slice()) {
                Ok(o) if kind_of(&o) == Some(kind) => o,
                Ok(_) => {
                    tracing::error!(key = %kv.key, "ignoring a stored object of another kind");
                    continue;
                }
                Err(e) => {
                    tracing::error!(key = %kv.key, error = %e, "ignoring an undecodable stored object");
                    continue;
                }
            };
            self.revisions.insert(kv.key.clone(), kv.mod_revision);
            self.insert(kind, key, obj);
        }
        let listing = self.store.list(keys::PLACED).await?;
        for kv in &listing.items {
            let Some((node, kind, name)) = keys::parse_placed_key(&kv.key) else {
                continue;
            };
            if let Ok(o) = ferrinet_proto::node::v1::Object::decode(kv.value.as_slice()) {
                self.placed.insert((node, PlacedKey { kind, name }), o);
            }
            self.revisions.insert(kv.key.clone(), kv.mod_revision);
        }
        tracing::info!(
            objects = self.revisions.len(),
            revision = listing.revision,
            "region state loaded"
        );
        Ok(())
    }

    /// After loading: every object's allocations made, every network realized, so a crash in
    /// the middle of a write converges; allocations nobody owns are released.
    async fn start_up(&mut self) -> Result<(), ApiError> {
        self.define_allocator_state().await;
        self.release_orphan_allocations().await;
        let now = SystemTime::now();
        for name in self.inv.nodes.keys() {
            // Nodes get a full lease after a restart of the API: they were not able to renew.
            self.leases
                .insert(name.clone(), now + self.settings.lease_ttl);
        }
        self.ensure_all_allocations().await;
        self.affected = self.inv.networks.keys().cloned().collect();
        self.full_sweep = true;
        self.write().await?;
        self.sync_allocator().await
    }

    pub(super) async fn reload(&mut self) {
        if let Err(e) = self.load().await {
            tracing::error!(error = %super::error::error_chain(&e), "cannot reload the region state");
        }
        self.realized.clear();
        self.contributors.clear();
        self.placed_ops.clear();
        self.affected = self.inv.networks.keys().cloned().collect();
        self.full_sweep = true;
        self.reload_allocator().await;
    }

    /// The stored object of `kind` at `key`, with its resource version.
    pub(super) fn get(&self, kind: pb::Kind, key: &ObjKey) -> Option<pb::Object> {
        let mut obj = self.object(kind, key)?;
        let rv = self
            .revisions
            .get(&keys::object_key(kind, key))
            .copied()
            .unwrap_or(0);
        if let Some(m) = meta_mut(&mut obj) {
            m.resource_version = rv;
        }
        Some(obj)
    }

    async fn create(&mut self, obj: pb::Object) -> Result<(pb::Kind, ObjKey), ApiError> {
        let mut obj = resources::validate(&obj)?;
        let (kind, key) = kind_and_key(&obj)?;
        if kind == pb::Kind::Node {
            return Err(ApiError::Refused(
                "nodes register themselves through the node sync service".into(),
            ));
        }
        if self.object(kind, &key).is_some() {
            return Err(ApiError::AlreadyExists { kind, key });
        }
        clear_status(&mut obj);
        if let Some(m) = meta_mut(&mut obj) {
            m.uid = new_uid();
            m.generation = 1;
            m.created_unix_ms = unix_ms(SystemTime::now());
            m.resource_version = 0;
        }
        self.insert(kind, key.clone(), obj);
        if let Err(e) = self.allocate(kind, &key, true).await {
            // Nothing is stored yet: undo what was allocated and forget the object.
            self.release(kind, &key).await;
            self.remove(kind, &key);
            self.dirty.remove(&(kind, key));
            return Err(e);
        }
        tracing::info!(kind = resources::kind_word(kind), %key, "created");
        self.touch(kind, &key);
        self.follow_selectors(kind, &key).await;
        Ok((kind, key))
    }

    async fn update(&mut self, obj: pb::Object) -> Result<(pb::Kind, ObjKey), ApiError> {
        let new = resources::validate(&obj)?;
        let (kind, key) = kind_and_key(&new)?;
        let old = self.current(kind, &key, meta(&obj).map_or(0, |m| m.resource_version))?;
        if kind == pb::Kind::Node {
            return Err(ApiError::Refused(
                "nodes register themselves through the node sync service".into(),
            ));
        }
        let mut merged = new.clone();
        carry_over(&old, &mut merged);
        if merged == old {
            return Ok((kind, key));
        }
        let realloc = allocation_inputs_changed(&old, &merged);
        super::allocate::check_immutable(&old, &merged)?;
        self.insert(kind, key.clone(), merged);
        if realloc {
            self.release(kind, &key).await;
            self.clear_allocations(kind, &key);
            if let Err(e) = self.allocate(kind, &key, true).await {
                // Back to the old object and what it held.
                self.release(kind, &key).await;
                self.insert(kind, key.clone(), old);
                let _ = self.allocate(kind, &key, false).await;
                self.touch(kind, &key);
                return Err(e);
            }
        }
        tracing::info!(kind = resources::kind_word(kind), %key, "updated");
        self.touch(kind, &key);
        self.follow_selectors(kind, &key).await;
        Ok((kind, key))
    }

    async fn delete(
        &mut self,
        kind: pb::Kind,
        key: ObjKey,
        version: u64,
    ) -> Result<pb::Object, ApiError> {
        let old = self.current(kind, &key, version)?;
        self.check_unused(kind, &key)?;
        self.touch(kind, &key);
        self.release(kind, &key).await;
        self.remove(kind, &key);
        self.dirty.remove(&(kind, key.clone()));
        self.deleted.insert((kind, key.clone()));
        self.follow_selectors(kind, &key).await;
        tracing::info!(kind = resources::kind_word(kind), %key, "deleted");
        Ok(old)
    }

    /// The object at `key`, if `version` (when non-zero) is its current resource version.
    fn current(&self, kind: pb::Kind, key: &ObjKey, version: u64) -> Result<pb::Object, ApiError> {
        let obj = self.get(kind, key).ok_or_else(|| ApiError::NotFound {
            kind,
            key: key.clone(),
        })?;
        let current = meta(&obj).map_or(0, |m| m.resource_version);
        if version != 0 && version != current {
            return Err(ApiError::Conflict {
                kind,
                key: key.clone(),
                given: version,
                current,
            });
        }
        Ok(obj)
    }

    /// Selections that may have changed with an object: PublicPrefixes select interfaces.
    async fn follow_selectors(&mut self, kind: pb::Kind, key: &ObjKey) {
        if matches!(kind, pb::Kind::NetworkInterface | pb::Kind::PublicPrefix) {
            self.reconcile_public_prefixes(&key.namespace).await;
        }
    }

    /// Marks an object changed and its network (and the networks peered with it) to be
    /// realized again.
    pub(super) fn touch(&mut self, kind: pb::Kind, key: &ObjKey) {
        self.dirty.insert((kind, key.clone()));
        if let Some(n) = self.network_of(kind, key) {
            self.affected.insert(n);
        }
    }
}

fn kind_and_key(obj: &pb::Object) -> Result<(pb::Kind, ObjKey), ApiError> {
    match (kind_of(obj), resources::key_of(obj)) {
        (Some(k), Some(key)) => Ok((k, key)),
        _ => Err(ApiError::BadRequest(
            "object: must hold one object with metadata".into(),
        )),
    }
}

/// Empties the status of a newly created object: the API sets all of it.
fn clear_status(obj: &mut pb::Object) {
    use pb::object::Object as O;
    match &mut obj.object {
        Some(O::Network(o)) => o.status = None,
        Some(O::NetworkInterface(o)) => o.status = None,
        Some(O::VirtualIp(o)) => o.status = None,
        Some(O::PublicPrefix(o)) => o.status = None,
        Some(O::NatGateway(o)) => o.status = None,
        Some(O::LoadBalancer(o)) => o.status = None,
        Some(O::NetworkPolicy(o)) => o.status = None,
        Some(O::Node(o)) => o.status = None,
        None => {}
    }
}

/// Keeps what the API owns (metadata it sets, the status) from `old` in an update of spec and
/// labels; the generation grows when the spec changed.
fn carry_over(old: &pb::Object, new: &mut pb::Object) {
    use pb::object::Object as O;
    let spec_changed = !same_spec(old, new);
    if let (Some(o), Some(n)) = (meta(old), meta_mut(new)) {
        n.uid = o.uid.clone();
        n.created_unix_ms = o.created_unix_ms;
        n.generation = o.generation + u64::from(spec_changed);
        n.resource_version = o.resource_version;
    }
    match (&old.object, &mut new.object) {
        (Some(O::Network(o)), Some(O::Network(n))) => n.status = o.status.clone(),
        (Some(O::NetworkInterface(o)), Some(O::NetworkInterface(n))) => n.status = o.status.clone(),
        (Some(O::VirtualIp(o)), Some(O::VirtualIp(n))) => n.status = o.status.clone(),
        (Some(O::PublicPrefix(o)), Some(O::PublicPrefix(n))) => n.status = o.status.clone(),
        (Some(O::NatGateway(o)), Some(O::NatGateway(n))) => n.status = o.status.clone(),
        (Some(O::LoadBalancer(o)), Some(O::LoadBalancer(n))) => n.status = o.status.clone(),
        (Some(O::NetworkPolicy(o)), Some(O::NetworkPolicy(n))) => n.status = o.status.clone(),
        (Some(O::Node(o)), Some(O::Node(n))) => n.status = o.status.clone(),
        _ => {}
    }
}

fn same_spec(a: &pb::Object, b: &pb::Object) -> bool {
    use pb::object::Object as O;
    match (&a.object, &b.object) {
        (Some(O::Network(x)), Some(O::Network(y))) => x.spec == y.spec,
        (Some(O::NetworkInterface(x)), Some(O::NetworkInterface(y))) => x.spec == y.spec,
        (Some(O::VirtualIp(x)), Some(O::VirtualIp(y))) => x.spec == y.spec,
        (Some(O::PublicPrefix(x)), Some(O::PublicPrefix(y))) => x.spec == y.spec,
        (Some(O::NatGateway(x)), Some(O::NatGateway(y))) => x.spec == y.spec,
        (Some(O::LoadBalancer(x)), Some(O::LoadBalancer(y))) => x.spec == y.spec,
        (Some(O::NetworkPolicy(x)), Some(O::NetworkPolicy(y))) => x.spec == y.spec,
        (Some(O::Node(x)), Some(O::Node(y))) => x.spec == y.spec,
        _ => false,
    }
}

/// Whether an update changes what the object's allocations were made from, so that they are
/// released and made again.
fn allocation_inputs_changed(old: &pb::Object, new: &pb::Object) -> bool {
    use pb::object::Object as O;
    match (&old.object, &new.object) {
        (Some(O::NetworkInterface(o)), Some(O::NetworkInterface(n))) => {
            let (o, n) = (
                o.spec.clone().unwrap_or_default(),
                n.spec.clone().unwrap_or_default(),
            );
            o.network_ref != n.network_ref
                || o.ips != n.ips
                || o.ip_families != n.ip_families
                || o.virtual_ip != n.virtual_ip
        }
        (Some(O::LoadBalancer(o)), Some(O::LoadBalancer(n))) => {
            let (o, n) = (
                o.spec.clone().unwrap_or_default(),
                n.spec.clone().unwrap_or_default(),
            );
            o.r#type != n.r#type
                || o.network_ref != n.network_ref
                || o.ips != n.ips
                || o.ip_families != n.ip_families
        }
        (Some(O::VirtualIp(o)), Some(O::VirtualIp(n))) => o.spec != n.spec,
        (Some(O::NatGateway(o)), Some(O::NatGateway(n))) => o.spec != n.spec,
        _ => false,
    }
}
