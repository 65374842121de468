//! The ApiActor: the one owner of the node's objects, the only writer of the state store, and
//! the supervisor of one object actor per interface and load balancer.
//!
//! ```text
//!  admin gRPC --ApiMsg (call)--> ApiActor --StoreOp batch--> store writer thread --commit--> reply
//!                                   |  spawns, links, supervises
//!                                   +--InterfaceMsg--> InterfaceActor x N --dpservice calls, routes-->
//!                                   +--LoadBalancerMsg--> LoadBalancerActor x N
//!  object actors --ApiMsg::Status / Gone--> ApiActor --WatchEvent--> watchers
//!  DataplaneActor state --forwarder--> ApiMsg::Dataplane(Ready | Restarted)
//! ```
//!
//! A request is validated, applied to the in-memory objects, handed to the store, and answered
//! once the store has committed it (so a confirmed change survives `kill -9`). Object actors get
//! the new desired state right away; if the process dies before the commit, the restarted node
//! removes what they programmed as an orphan.

pub mod error;
mod networks;
mod objects;
mod requests;
mod resync;
pub mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use ferrinet_proto::node::v1 as pb;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::{mpsc, watch as tokio_watch};

use crate::dataplane::DataplaneState;
use crate::interface::{InterfaceActor, InterfaceArgs, InterfaceMsg};
use crate::load_balancer::{LoadBalancerActor, LoadBalancerArgs, LoadBalancerMsg};
use crate::network::NetworkMsg;
use crate::network::status::NetworkReport;
use crate::reconcile::{Ctx, Shared};
use crate::spec;
use crate::store::{Store, StoreOp};
use crate::vf::VfPool;
pub use error::ApiError;
use objects::{Entry, Key, ObjectActor};
use watch::WatchLog;

/// How often the object gauges are recounted.
const METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A reply port for requests that end in an object.
pub type ObjectReply = RpcReplyPort<Result<pb::Object, ApiError>>;

/// Messages of the ApiActor.
pub enum ApiMsg {
    /// Create an object.
    Create(pb::Object, ObjectReply),
    /// Read one object.
    Get(pb::Kind, String, ObjectReply),
    /// Every object of a kind (or all), and the revision.
    List(pb::Kind, RpcReplyPort<(Vec<pb::Object>, u64)>),
    /// Replace an object's spec (labels too).
    Update(pb::Object, ObjectReply),
    /// Delete an object (if `u64` is non-zero, only at that resource_version).
    Delete(pb::Kind, String, u64, ObjectReply),
    /// Watch a kind from a revision (0: snapshot first).
    Watch(
        pb::Kind,
        u64,
        RpcReplyPort<Result<mpsc::Receiver<pb::WatchEvent>, ApiError>>,
    ),
    /// Node status.
    NodeStatus(RpcReplyPort<pb::NodeStatusResponse>),
    /// An object actor's new status.
    Status(StatusReport),
    /// An object actor finished deleting its object from the dataplane.
    Gone(pb::Kind, String),
    /// The dataplane became ready or restarted.
    Dataplane(DataplaneEvent),
    /// Timer: refresh the object gauges.
    Tick,
    /// Start and stop NetworkActors so that there is one per VNI in use.
    SyncNetworks,
    /// The default router learned from the public VNI changed (`None`: withdrawn).
    Router(Option<std::net::Ipv6Addr>),
    /// A NetworkActor's account of its VNI's table changed.
    NetworkReport(u32, Box<NetworkReport>),
}

impl std::fmt::Debug for ApiMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Create(..) => "create",
            Self::Get(..) => "get",
            Self::List(..) => "list",
            Self::Update(..) => "update",
            Self::Delete(..) => "delete",
            Self::Watch(..) => "watch",
            Self::NodeStatus(..) => "node-status",
            Self::Status(..) => "status",
            Self::Gone(..) => "gone",
            Self::Dataplane(..) => "dataplane",
            Self::Tick => "tick",
            Self::SyncNetworks => "sync-networks",
            Self::Router(_) => "router",
            Self::NetworkReport(..) => "network-report",
        };
        f.write_str(s)
    }
}

/// A status change of one object.
#[derive(Debug)]
pub enum StatusReport {
    /// An interface's.
    Interface(String, pb::NetworkInterfaceStatus),
    /// A load balancer's.
    LoadBalancer(String, pb::LoadBalancerStatus),
}

/// What the DataplaneActor's state change means for the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataplaneEvent {
    /// Initialized for the first time: remove orphans, then reconcile.
    Ready,
    /// Restarted (new UUID): every object actor re-applies its state.
    Restarted,
}

/// Start arguments of the ApiActor.
pub struct ApiArgs {
    /// This node's name.
    pub node_name: String,
    /// Validation options.
    pub options: spec::Options,
    /// The state store and what it held.
    pub store: Store,
    /// Objects loaded from the store.
    pub objects: Vec<pb::Object>,
    /// The revision loaded from the store.
    pub revision: u64,
    /// The VF pool, claims restored.
    pub pool: VfPool,
    /// Restored claims whose VF vanished: `(owner, vf id)`.
    pub lost_claims: Vec<(String, String)>,
    /// What object actors share.
    pub shared: Shared,
    /// The DataplaneActor's state.
    pub dataplane: tokio_watch::Receiver<DataplaneState>,
    /// Set to true once the first full resync is done.
    pub synced: tokio_watch::Sender<bool>,
}

/// The ApiActor's state.
pub struct ApiState {
    node_name: String,
    options: spec::Options,
    store: Store,
    pool: VfPool,
    lost_claims: HashMap<String, String>,
    ctx: Ctx,
    dataplane: tokio_watch::Receiver<DataplaneState>,
    synced: tokio_watch::Sender<bool>,
    objects: BTreeMap<Key, Entry>,
    /// Which object each linked actor runs.
    actors: HashMap<ractor::ActorId, Key>,
    revision: u64,
    log: WatchLog,
    /// Objects that have not reported since start; ready once empty and orphans are gone.
    unreported: HashSet<Key>,
    orphans_removed: bool,
    metrics_stale: bool,
    /// One NetworkActor per VNI in use.
    networks: BTreeMap<u32, ActorRef<NetworkMsg>>,
    /// The default router learned from the public VNI, if any.
    learned_router: Option<std::net::Ipv6Addr>,
    /// The last report of each NetworkActor.
    reports: BTreeMap<u32, NetworkReport>,
}

/// The ApiActor.
#[derive(Debug)]
pub struct ApiActor;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Actor for ApiActor {
    type Msg = ApiMsg;
    type State = ApiState;
    type Arguments = ApiArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ApiMsg>,
        a: ApiArgs,
    ) -> Result<ApiState, ActorProcessingErr> {
        let mut st = ApiState {
            node_name: a.node_name,
            options: a.options,
            store: a.store,
            pool: a.pool,
            lost_claims: a.lost_claims.into_iter().collect(),
            ctx: Ctx {
                shared: a.shared,
                api: myself.clone(),
            },
            dataplane: a.dataplane,
            synced: a.synced,
            objects: BTreeMap::new(),
            actors: HashMap::new(),
            revision: a.revision,
            log: WatchLog::starting_at(a.revision),
            unreported: HashSet::new(),
            orphans_removed: false,
            metrics_stale: true,
            networks: BTreeMap::new(),
            learned_router: None,
            reports: BTreeMap::new(),
        };
        st.load(a.objects);
        // Networks first: the object actors need their VNIs.
        let keys: Vec<Key> = st.objects.keys().cloned().collect();
        for key in keys {
            st.start_actor(&myself, &key).await;
        }
        st.unreported = st
            .objects
            .iter()
            .filter(|(_, e)| e.actor.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let released = st.release_orphan_claims();
        if released > 0 {
            tracing::info!(
                released,
                "released VF claims of objects that no longer exist"
            );
        }
        tracing::info!(
            objects = st.objects.len(),
            revision = st.revision,
            "state loaded"
        );
        myself.send_message(ApiMsg::Tick)?;
        myself.send_message(ApiMsg::SyncNetworks)?;
        Ok(st)
    }

    async fn handle(
        &self,
        myself: ActorRef<ApiMsg>,
        msg: ApiMsg,
        st: &mut ApiState,
    ) -> Result<(), ActorProcessingErr> {
        // The VNIs in use may change with these; the check is cheap next to the request.
        if matches!(
            msg,
            ApiMsg::Create(..) | ApiMsg::Update(..) | ApiMsg::Delete(..) | ApiMsg::Gone(..)
        ) {
            myself.send_message(ApiMsg::SyncNetworks)?;
        }
        match msg {
            ApiMsg::Create(o, reply) => {
                if let Err(e) = st.create(&myself, o, reply).await {
                    tracing::debug!(error = %e, "create refused");
                }
            }
            ApiMsg::Get(kind, name, reply) => {
                let r = st
                    .objects
                    .get(&Key::new(kind, &name))
                    .map(|e| e.object.clone())
                    .ok_or_else(|| ApiError::NotFound {
                        kind: objects::kind_name(kind),
                        name,
                    });
                let _ = reply.send(r);
            }
            ApiMsg::List(kind, reply) => {
                let v = st
                    .objects
                    .iter()
                    .filter(|(k, _)| kind == pb::Kind::Unspecified || k.kind == kind)
                    .map(|(_, e)| e.object.clone())
                    .collect();
                let _ = reply.send((v, st.revision));
            }
            ApiMsg::Update(o, reply) => st.update(o, reply),
            ApiMsg::Delete(kind, name, version, reply) => st.delete(kind, name, version, reply),
            ApiMsg::Watch(kind, from, reply) => {
                let current = st.objects.values().map(|e| e.object.clone());
                let r = st.log.watch(kind, from, st.revision, current);
                let _ = reply.send(r);
            }
            ApiMsg::NodeStatus(reply) => {
                let _ = reply.send(st.node_status());
            }
            ApiMsg::Status(report) => st.status(report),
            ApiMsg::SyncNetworks => st.sync_networks(&myself).await,
            ApiMsg::NetworkReport(vni, report) => st.network_report(vni, *report),
            ApiMsg::Router(r) => {
                st.learned_router = r;
                let effective = st.router();
                for a in st.networks.values() {
                    let _ = a.send_message(NetworkMsg::Router(effective));
                }
            }
            ApiMsg::Tick => {
                st.refresh_metrics();
                myself.send_after(METRICS_INTERVAL, || ApiMsg::Tick);
            }
            ApiMsg::Gone(kind, name) => st.gone(kind, &name),
            ApiMsg::Dataplane(DataplaneEvent::Ready) => {
                if !st.orphans_removed {
                    let keep: HashSet<String> = st.names(pb::Kind::NetworkInterface);
                    let keep_lbs: HashSet<String> = st.names(pb::Kind::LoadBalancer);
                    match resync::remove_orphans(&st.ctx.dp, &keep, &keep_lbs).await {
                        Ok(n) => {
                            if n > 0 {
                                tracing::info!(
                                    removed = n,
                                    "removed dataplane objects the node does not know"
                                );
                            }
                            st.orphans_removed = true;
                            st.check_synced();
                        }
                        // The next readiness signal (or restart) tries again.
                        Err(e) => {
                            tracing::warn!(error = %crate::error_chain(&e), "orphan removal failed")
                        }
                    }
                }
            }
            ApiMsg::Dataplane(DataplaneEvent::Restarted) => {
                for a in st.networks.values() {
                    let _ = a.send_message(NetworkMsg::Resync);
                }
                for e in st.objects.values() {
                    match &e.actor {
                        Some(ObjectActor::Interface(a)) => {
                            let _ = a.send_message(InterfaceMsg::Resync);
                        }
                        Some(ObjectActor::LoadBalancer(a)) => {
                            let _ = a.send_message(LoadBalancerMsg::Resync);
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ApiMsg>,
        ev: SupervisionEvent,
        st: &mut ApiState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match ev {
            SupervisionEvent::ActorFailed(cell, e) => (cell, format!("failed: {e}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {reason:?}"))
            }
            _ => return Ok(()),
        };
        if let Some((&vni, _)) = st
            .networks
            .iter()
            .find(|(_, a)| a.get_id() == cell.get_id())
        {
            st.networks.remove(&vni);
            tracing::error!(vni, %why, "network actor ended: restarting it");
            myself.send_message(ApiMsg::SyncNetworks)?;
            return Ok(());
        }
        let Some(key) = st.actors.remove(&cell.get_id()) else {
            return Ok(());
        };
        let Some(entry) = st.objects.get_mut(&key) else {
            return Ok(());
        };
        // Only a failure ends an object actor while its object exists: start it again.
        entry.actor = None;
        tracing::error!(object = %key, %why, "object actor ended: restarting it");
        st.start_actor(&myself, &key).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ApiMsg>,
        st: &mut ApiState,
    ) -> Result<(), ActorProcessingErr> {
        for a in st.networks.values() {
            a.stop(None);
        }
        for e in st.objects.values() {
            match &e.actor {
                Some(ObjectActor::Interface(a)) => a.stop(None),
                Some(ObjectActor::LoadBalancer(a)) => a.stop(None),
                None => {}
            }
        }
        Ok(())
    }
}

impl ApiState {
    fn load(&mut self, objects: Vec<pb::Object>) {
        for o in objects {
            let key = match Key::of(&o) {
                Some(k) => k,
                None => continue,
            };
            match self.parse(&o) {
                Ok(parsed) => {
                    let mut o = o;
                    objects::reset_status(&mut o);
                    self.objects.insert(key, Entry::new(o, parsed));
                }
                // The rules may have become stricter since it was stored: keep it, unprogrammed.
                Err(e) => {
                    tracing::error!(object = %key, error = %e, "stored object is no longer valid: kept but not programmed")
                }
            }
        }
    }

    fn names(&self, kind: pb::Kind) -> HashSet<String> {
        self.objects
            .keys()
            .filter(|k| k.kind == kind)
            .map(|k| k.name.clone())
            .collect()
    }

    fn parse(&self, o: &pb::Object) -> Result<objects::Parsed, ApiError> {
        objects::parse(o, &self.options, &self.node_name)
    }

    fn vni_of(&self, network: &str) -> Option<u32> {
        match self.objects.get(&Key::new(pb::Kind::Network, network)) {
            Some(Entry {
                parsed: objects::Parsed::Network(n),
                deleting: false,
                ..
            }) => Some(n.vni),
            _ => None,
        }
    }

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn publish(&mut self, ty: pb::EventType, object: pb::Object) {
        let revision = self.revision;
        self.log.publish(pb::WatchEvent {
            r#type: ty.into(),
            object: Some(object),
            revision,
        });
        self.metrics_stale = true;
    }

    /// Recounts objects by kind and phase for the gauges: on a timer rather than per event, so
    /// a burst of changes costs one count, not one per change.
    fn refresh_metrics(&mut self) {
        if !std::mem::take(&mut self.metrics_stale) {
            return;
        }
        let mut counts: HashMap<(&'static str, i32), i64> = HashMap::new();
        for (k, e) in &self.objects {
            *counts
                .entry((objects::kind_name(k.kind), objects::phase(&e.object)))
                .or_default() += 1;
        }
        self.ctx.metrics.objects.clear();
        for ((kind, phase), n) in counts {
            let phase = pb::Phase::try_from(phase)
                .map_or("unspecified", |p| p.as_str_name())
                .to_lowercase();
            self.ctx
                .metrics
                .objects
                .get_or_create(&vec![("kind", kind.to_string()), ("phase", phase)])
                .set(n);
        }
    }

    async fn start_actor(&mut self, myself: &ActorRef<ApiMsg>, key: &Key) {
        let Some(entry) = self.objects.get(key) else {
            return;
        };
        if entry.deleting && entry.actor.is_none() {
            // Nothing runs to finish the deletion: finish it here.
            myself
                .send_message(ApiMsg::Gone(key.kind, key.name.clone()))
                .ok();
            return;
        }
        let actor = match &entry.parsed {
            objects::Parsed::Network(_) => None,
            objects::Parsed::Interface(spec) => {
                let vf = self.pool.get(&key.name).cloned();
                let args = InterfaceArgs {
                    name: key.name.clone(),
                    spec: spec.clone(),
                    generation: objects::generation(&entry.object),
                    vni: self.vni_of(&spec.network),
                    vf,
                    lost_vf: self.lost_claims.get(&key.name).cloned(),
                    deleting: entry.deleting,
                    ctx: self.ctx.clone(),
                };
                match Actor::spawn_linked(None, InterfaceActor, args, myself.get_cell()).await {
                    Ok((a, _)) => Some(ObjectActor::Interface(a)),
                    Err(e) => {
                        tracing::error!(object = %key, error = %e, "cannot start interface actor");
                        None
                    }
                }
            }
            objects::Parsed::LoadBalancer(spec) => {
                let args = LoadBalancerArgs {
                    name: key.name.clone(),
                    spec: spec.clone(),
                    generation: objects::generation(&entry.object),
                    vni: self.vni_of(&spec.network),
                    deleting: entry.deleting,
                    ctx: self.ctx.clone(),
                };
                match Actor::spawn_linked(None, LoadBalancerActor, args, myself.get_cell()).await {
                    Ok((a, _)) => Some(ObjectActor::LoadBalancer(a)),
                    Err(e) => {
                        tracing::error!(object = %key, error = %e, "cannot start load balancer actor");
                        None
                    }
                }
            }
        };
        if let Some(a) = &actor {
            self.actors.insert(a.id(), key.clone());
        }
        if let Some(e) = self.objects.get_mut(key) {
            e.actor = actor;
        }
    }

    /// A status-only change: new revision, event, revision persisted (no reply waits).
    fn bump_status(&mut self, key: &Key) {
        let rev = self.next_revision();
        let Some(e) = self.objects.get_mut(key) else {
            return;
        };
        objects::set_version(&mut e.object, rev);
        let o = e.object.clone();
        self.store.write(Vec::new(), rev, None);
        self.publish(pb::EventType::Modified, o);
    }

    fn release_orphan_claims(&mut self) -> usize {
        let owners: Vec<String> = self
            .pool
            .claims()
            .map(|(owner, _)| owner.to_string())
            .filter(|o| {
                !self
                    .objects
                    .contains_key(&Key::new(pb::Kind::NetworkInterface, o))
            })
            .collect();
        let mut ops = Vec::new();
        for owner in owners {
            self.pool.release(&owner);
            ops.push(StoreOp::Release { owner });
        }
        let n = ops.len();
        if n > 0 {
            self.store.write(ops, self.revision, None);
        }
        n
    }

    fn check_synced(&mut self) {
        if self.orphans_removed && self.unreported.is_empty() && !*self.synced.borrow() {
            tracing::info!(objects = self.objects.len(), "initial resync done: ready");
            let _ = self.synced.send(true);
        }
    }

    fn node_status(&self) -> pb::NodeStatusResponse {
        let dp = self.dataplane.borrow().clone();
        let count = |k| {
            u32::try_from(self.objects.keys().filter(|key| key.kind == k).count())
                .unwrap_or(u32::MAX)
        };
        let route_servers = self
            .ctx
            .announcer
            .client()
            .map(|c| {
                c.status()
                    .servers
                    .iter()
                    .map(|s| pb::RouteServerStatus {
                        address: s.addr.clone(),
                        state: format!("{:?}", s.state).to_lowercase(),
                        last_error: s
                            .last_error
                            .as_deref()
                            .map(|e| crate::error_chain(e))
                            .unwrap_or_default(),
                        sessions: s.sessions,
                    })
                    .collect()
            })
            .unwrap_or_default();
        pb::NodeStatusResponse {
            node_name: self.node_name.clone(),
            dataplane_address: self.ctx.dp.address().to_string(),
            dataplane_uuid: dp.uuid.unwrap_or_default(),
            dataplane_state: dp.health.name().to_string(),
            dataplane_restarts: dp.restarts,
            route_servers,
            vf_total: u32::try_from(self.pool.total()).unwrap_or(u32::MAX),
            vf_claimed: u32::try_from(self.pool.claimed()).unwrap_or(u32::MAX),
            networks: count(pb::Kind::Network),
            network_interfaces: count(pb::Kind::NetworkInterface),
            load_balancers: count(pb::Kind::LoadBalancer),
            ready: u32::try_from(
                self.objects
                    .values()
                    .filter(|e| objects::phase(&e.object) == pb::Phase::Ready as i32)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            revision: self.revision,
            synced: *self.synced.borrow(),
        }
    }
}
