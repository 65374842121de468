//! The NetworkActor: one per VNI in use on this node (an interface or load balancer of a network
//! with that VNI). It owns the VNI's route table in dpservice: the routes other nodes announce
//! in the VNI, the default routes, the routes peered VNIs export into it; plus the neighbour NATs
//! and the targets of this node's load balancers in the VNI. Once a source's initial route set is
//! complete, what dpservice holds from that source but nobody provides any more (stale routes of
//! a previous life of this node or of the dataplane) is removed.
//!
//! ```text
//!  route client Subscription(VNI)   --(forward task)--> NetworkMsg::Event(VNI, ..) --+
//!  route client Subscription(peer)  --(forward task)--> NetworkMsg::Event(peer, ..) -+-> NetworkActor
//!  Announcer::local_changes (watch) --(local task)---> NetworkMsg::LocalChanged -----+      |
//!  ApiActor --Exports / LoadBalancers / Router / Resync--> NetworkActor                    |
//!  NetworkActor --ListRoutes / CreateRoute / DeleteRoute / *NeighborNat / *LbTarget--> dpservice
//!  NetworkActor --ApiMsg::NetworkReport (when it changed)--> ApiActor
//!  NetworkActor --Reconcile(token) (send_after)--> itself          (retry, periodic re-check)
//! ```
//!
//! Events only update what is learned and queue one `Apply`, so a burst of route changes costs
//! one pass. A pass diffs the desired table against what dpservice holds as far as the actor
//! knows; it lists dpservice's table again at start, after a dataplane restart, when a source
//! completes, after a failure and on the periodic re-check.

mod install;
mod pass;
mod router;
pub mod status;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_route_client::client::{ClientHandle, VniEvent};
use ferrinet_route_client::route::Route;
use ipnet::IpNet;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

pub use install::list_routes;
pub use router::watch_router;
use status::NetworkReport;
use table::{Learned, Table};

use crate::api::ApiMsg;
use crate::reconcile::{Ctx, Schedule};

/// Retry delay while the VNI has no table in dpservice yet, for the first polls.
const NO_VNI_POLL: std::time::Duration = std::time::Duration::from_millis(10);
const NO_VNI_FAST_POLLS: u32 = 200;

/// VNIs exporting into a table, with their export filters (`None`: everything).
pub type Exports = BTreeMap<u32, Option<Vec<IpNet>>>;

/// Messages of a NetworkActor.
#[derive(Debug)]
pub enum NetworkMsg {
    /// A change of a VNI's routes at the route servers: the table's own VNI or a peered one.
    Event(u32, VniEvent),
    /// This node's own announcements changed (peered tables hold them too).
    LocalChanged,
    /// dpservice restarted: install everything again.
    Resync,
    /// Timer: run a full pass (listing dpservice) if the token is current.
    Reconcile(u64),
    /// Run a pass now: queued behind the events that asked for it.
    Apply,
    /// The load balancers of this node in the VNI: VIP -> load balancer id.
    LoadBalancers(BTreeMap<IpAddr, String>),
    /// The default router changed (learned from the public VNI, or the configured fallback).
    Router(Option<Ipv6Addr>),
    /// The VNIs that export into this one (peering).
    Exports(Exports),
    /// Timer: send the report a recent one held back.
    ReportDue,
}

/// Start arguments.
#[derive(Debug)]
pub struct NetworkArgs {
    /// The VNI.
    pub vni: u32,
    /// Next hop of the default route: learned from the public VNI, else `routes.router_address`.
    pub router: Option<Ipv6Addr>,
    /// Install `::/0` too.
    pub ipv6: bool,
    /// Shared context.
    pub ctx: Ctx,
}

/// A peered VNI exporting into the table.
struct Peer {
    filter: Option<Vec<IpNet>>,
    learned: Learned,
    forward: Option<JoinHandle<()>>,
}

/// The actor's state.
pub struct NetworkState {
    args: NetworkArgs,
    /// What other nodes announce in the VNI.
    own: Learned,
    own_forward: Option<JoinHandle<()>>,
    peers: BTreeMap<u32, Peer>,
    local_task: Option<JoinHandle<()>>,
    /// What dpservice holds in the table as far as this actor knows; `None`: list it.
    held: Option<Table>,
    /// The desired table as of the last pass; `None`: compute it whole.
    cache: Option<table::Desired>,
    /// Prefixes whose routes changed since the last pass.
    dirty: BTreeSet<IpNet>,
    /// What the last pass could not write.
    outcome: pass::Outcome,
    reported_at: Option<std::time::Instant>,
    /// A report was held back; `report_timer`: its timer runs.
    report_due: bool,
    report_timer: bool,
    /// The last pass found no table for the VNI (NO_VNI); how many passes in a row.
    no_vni: bool,
    no_vni_polls: u32,
    nats_installed: BTreeSet<Route>,
    /// This node's load balancers in the VNI: VIP -> id.
    local_lbs: BTreeMap<IpAddr, String>,
    schedule: Schedule,
    /// An Apply is queued.
    apply_queued: bool,
    /// The last report sent.
    report: Option<NetworkReport>,
}

/// The NetworkActor.
#[derive(Debug)]
pub struct NetworkActor;

/// Subscribes to `vni` and forwards its events to `me` until either side ends.
fn forward(
    client: &ClientHandle,
    vni: u32,
    me: ActorRef<NetworkMsg>,
) -> Result<JoinHandle<()>, ActorProcessingErr> {
    let mut sub = client.subscribe(vni)?;
    Ok(tokio::spawn(async move {
        while let Some(e) = sub.next().await {
            if me.send_message(NetworkMsg::Event(vni, e)).is_err() {
                return;
            }
        }
    }))
}

/// A Learned that is complete when there are no route servers: nothing will arrive.
fn learned_for(client: Option<&ClientHandle>) -> Learned {
    Learned {
        complete: client.is_none(),
        ..Default::default()
    }
}

impl Actor for NetworkActor {
    type Msg = NetworkMsg;
    type State = NetworkState;
    type Arguments = NetworkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NetworkMsg>,
        args: NetworkArgs,
    ) -> Result<NetworkState, ActorProcessingErr> {
        let schedule = Schedule::new(&args.ctx);
        let client = args.ctx.announcer.client().cloned();
        let own_forward = match &client {
            Some(c) => Some(forward(c, args.vni, myself.clone())?),
            None => None,
        };
        let mut local = args.ctx.announcer.local_changes();
        let me = myself.clone();
        let local_task = tokio::spawn(async move {
            while local.changed().await.is_ok() {
                if me.send_message(NetworkMsg::LocalChanged).is_err() {
                    return;
                }
            }
        });
        myself.send_message(NetworkMsg::Reconcile(0))?;
        Ok(NetworkState {
            own: learned_for(client.as_ref()),
            args,
            own_forward,
            peers: BTreeMap::new(),
            local_task: Some(local_task),
            held: None,
            cache: None,
            dirty: BTreeSet::new(),
            outcome: pass::Outcome::default(),
            reported_at: None,
            report_due: false,
            report_timer: false,
            no_vni: false,
            no_vni_polls: 0,
            nats_installed: BTreeSet::new(),
            local_lbs: BTreeMap::new(),
            schedule,
            apply_queued: false,
            report: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<NetworkMsg>,
        msg: NetworkMsg,
        st: &mut NetworkState,
    ) -> Result<(), ActorProcessingErr> {
        let full = match msg {
            NetworkMsg::Event(vni, e) => {
                st.learn(vni, e);
                return st.queue_apply(&myself);
            }
            NetworkMsg::LocalChanged => {
                // Peered tables hold local routes; local load balancers, local targets.
                if st.peers.is_empty() && st.local_lbs.is_empty() {
                    return Ok(());
                }
                st.cache = None;
                return st.queue_apply(&myself);
            }
            NetworkMsg::Exports(exports) => {
                if st.set_exports(&myself, exports)? {
                    st.cache = None;
                    st.queue_apply(&myself)?;
                }
                return Ok(());
            }
            NetworkMsg::ReportDue => {
                st.report_timer = false;
                if st.report_due {
                    st.report_now(true);
                }
                return Ok(());
            }
            NetworkMsg::Apply => {
                st.apply_queued = false;
                false
            }
            NetworkMsg::Router(r) => {
                if r == st.args.router {
                    return Ok(());
                }
                st.args.router = r;
                st.cache = None;
                false
            }
            NetworkMsg::LoadBalancers(lbs) => {
                if lbs == st.local_lbs {
                    return Ok(());
                }
                st.local_lbs = lbs;
                false
            }
            NetworkMsg::Resync => {
                st.nats_installed.clear();
                true
            }
            NetworkMsg::Reconcile(token) => {
                if token != 0 && !st.schedule.is_current(token) {
                    return Ok(());
                }
                true
            }
        };
        if full {
            st.held = None;
        } else {
            st.schedule.reset();
        }
        let span = tracing::info_span!("network", vni = st.args.vni);
        let ok = Box::pin(st.reconcile().instrument(span)).await;
        let (mut delay, token) = st.schedule.next(ok);
        if st.no_vni {
            // The VNI's first interface is being created right now (start, restart): its table
            // appears within milliseconds, and every learned route waits for it. Poll quickly
            // for a while, then fall back to the back-off.
            st.no_vni_polls += 1;
            if st.no_vni_polls <= NO_VNI_FAST_POLLS {
                delay = delay.min(NO_VNI_POLL);
            }
        } else {
            st.no_vni_polls = 0;
        }
        myself.send_after(delay, move || NetworkMsg::Reconcile(token));
        if st.report_due && !st.report_timer {
            st.report_timer = true;
            myself.send_after(pass::REPORT_INTERVAL, || NetworkMsg::ReportDue);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NetworkMsg>,
        st: &mut NetworkState,
    ) -> Result<(), ActorProcessingErr> {
        // Ending the forward tasks drops the subscriptions: the VNIs are unsubscribed unless
        // another table still needs them.
        let tasks = st
            .own_forward
            .take()
            .into_iter()
            .chain(st.local_task.take())
            .chain(st.peers.values_mut().filter_map(|p| p.forward.take()));
        for t in tasks {
            t.abort();
        }
        Ok(())
    }
}

impl NetworkState {
    fn queue_apply(&mut self, myself: &ActorRef<NetworkMsg>) -> Result<(), ActorProcessingErr> {
        if !self.apply_queued {
            self.apply_queued = true;
            myself.send_message(NetworkMsg::Apply)?;
        }
        Ok(())
    }

    fn learn(&mut self, vni: u32, e: VniEvent) {
        let learned = if vni == self.args.vni {
            &mut self.own
        } else {
            match self.peers.get_mut(&vni) {
                Some(p) => &mut p.learned,
                // A late event of a peering just removed.
                None => return,
            }
        };
        let was_complete = learned.complete;
        match &e {
            VniEvent::Added(r) | VniEvent::Removed(r) => {
                self.dirty.insert(r.destination);
            }
            VniEvent::Snapshot { .. } | VniEvent::Complete | VniEvent::Incomplete => {
                self.cache = None;
            }
        }
        learned.learn(e);
        if learned.complete && !was_complete {
            tracing::info!(
                vni = self.args.vni,
                from = vni,
                "initial route set complete"
            );
            // Exactness: the next pass compares with what dpservice really holds.
            self.held = None;
        }
    }

    /// Follows the peerings that export into this VNI; true if they changed.
    fn set_exports(
        &mut self,
        myself: &ActorRef<NetworkMsg>,
        exports: Exports,
    ) -> Result<bool, ActorProcessingErr> {
        let vni = self.args.vni;
        let mut changed = false;
        let gone: Vec<u32> = self
            .peers
            .keys()
            .filter(|v| !exports.contains_key(v))
            .copied()
            .collect();
        for from in gone {
            if let Some(mut p) = self.peers.remove(&from) {
                changed = true;
                tracing::info!(vni, from, "peering removed: its routes go");
                if let Some(t) = p.forward.take() {
                    t.abort();
                }
            }
        }
        let client = self.args.ctx.announcer.client().cloned();
        for (from, filter) in exports {
            if from == vni {
                continue;
            }
            if let Some(p) = self.peers.get_mut(&from) {
                if p.filter != filter {
                    tracing::info!(vni, from, ?filter, "peering filter changed");
                    p.filter = filter;
                    changed = true;
                }
                continue;
            }
            changed = true;
            tracing::info!(vni, from, ?filter, "peering added: importing its routes");
            let forward = match &client {
                Some(c) => Some(forward(c, from, myself.clone())?),
                None => None,
            };
            self.peers.insert(
                from,
                Peer {
                    filter,
                    learned: learned_for(client.as_ref()),
                    forward,
                },
            );
        }
        Ok(changed)
    }

    fn send_report(&mut self, report: NetworkReport) {
        if self.report.as_ref() == Some(&report) {
            return;
        }
        self.report = Some(report.clone());
        let _ = self
            .args
            .ctx
            .api
            .send_message(ApiMsg::NetworkReport(self.args.vni, Box::new(report)));
    }
}
