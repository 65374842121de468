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
mod router;
pub mod status;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_route_client::client::{ClientHandle, VniEvent};
use ferrinet_route_client::route::Route;
use ipnet::IpNet;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

pub use install::list_routes;
pub use router::watch_router;
use status::{Counts, NetworkReport, PeerPhase, PeerReport, Subscription};
use table::{Export, Learned, Origin, Sources, Table};

use crate::api::ApiMsg;
use crate::reconcile::{Ctx, Schedule};

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
                if st.peers.is_empty() {
                    return Ok(());
                }
                return st.queue_apply(&myself);
            }
            NetworkMsg::Exports(exports) => {
                if st.set_exports(&myself, exports)? {
                    st.queue_apply(&myself)?;
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
        let (delay, token) = st.schedule.next(ok);
        myself.send_after(delay, move || NetworkMsg::Reconcile(token));
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

    /// One pass; true if dpservice holds exactly what it should.
    async fn reconcile(&mut self) -> bool {
        let vni = self.args.vni;
        let ctx = self.args.ctx.clone();
        let local: BTreeMap<u32, Vec<Route>> = self
            .peers
            .keys()
            .map(|&v| (v, ctx.announcer.local_routes(v)))
            .collect();
        let desired = table::desired(&Sources {
            vni,
            own: &self.own,
            router: self.args.router,
            ipv6: self.args.ipv6,
            exports: self
                .peers
                .iter()
                .map(|(&v, p)| Export {
                    vni: v,
                    filter: p.filter.as_deref(),
                    learned: &p.learned,
                    local: local.get(&v).map_or(&[], Vec::as_slice),
                })
                .collect(),
        });
        let want = table::table(&desired);
        let listed = self.held.is_none();
        let mut held = match self.held.take() {
            Some(t) => t,
            None => match install::list_routes(&ctx.dp, vni).await {
                Ok(t) => t,
                // The VNI's first interface is not created yet: nothing to report, try again.
                Err(e) if e.is(Se::NoVni) => return false,
                Err(e) => {
                    tracing::debug!(error = %crate::error_chain(&e), "cannot list routes");
                    let mut report = self.report.clone().unwrap_or_default();
                    report.last_error = Some(crate::error_chain(&e));
                    self.send_report(report);
                    return false;
                }
            },
        };
        let peers = &self.peers;
        let own_complete = self.own.complete;
        let plan = table::plan(&want, &held, |hop| {
            own_complete && peers.get(&hop.0).is_none_or(|p| p.learned.complete)
        });
        for (p, hop) in plan.delete.iter().filter(|(p, _)| !want.contains_key(p)) {
            // Listed: what dpservice held that nobody provides (a previous life's route), worth
            // an operator's eye; otherwise an ordinary withdrawal.
            if listed {
                tracing::info!(prefix = %p, next_hop = %hop.1, next_hop_vni = hop.0, "removing stale route");
            } else {
                tracing::debug!(prefix = %p, next_hop = %hop.1, next_hop_vni = hop.0, "removing withdrawn route");
            }
        }
        if !plan.is_empty() {
            tracing::debug!(
                create = plan.create.len(),
                delete = plan.delete.len(),
                kept = plan.kept,
                "route table pass"
            );
        }
        let failed = install::apply_plan(&ctx.dp, &ctx.metrics, vni, &plan, &mut held).await;
        for (p, e) in &failed {
            tracing::warn!(prefix = %p, error = %crate::error_chain(e), "cannot write route");
        }
        if listed {
            // What dpservice really holds: stale neighbour NATs of a previous life go too.
            match install::list_neighbor_nats(&ctx.dp, vni).await {
                Ok(n) => self.nats_installed = n,
                Err(e) => {
                    tracing::debug!(error = %crate::error_chain(&e), "cannot list neighbour NATs")
                }
            }
        }
        let nats = install::sync_nats(
            &ctx.dp,
            &ctx.metrics,
            vni,
            &self.own.nats,
            &mut self.nats_installed,
            own_complete,
        )
        .await;
        if let Some(e) = &nats.last {
            tracing::warn!(error = %crate::error_chain(e), "cannot write neighbour NAT");
        }
        let mut lb = install::Failures::default();
        let mut lb_installed = 0;
        for (vip, id) in &self.local_lbs {
            let (n, f) = install::sync_lb_targets(
                &ctx.dp,
                &ctx.metrics,
                id,
                self.own.lb_targets.get(vip),
                ctx.prefer_network,
                own_complete,
            )
            .await;
            lb_installed += n;
            lb.merge(f);
        }
        let report = self.build_report(&desired, &held, &failed, &nats, &lb, lb_installed);
        let ok = failed.is_empty() && nats.count == 0 && lb.count == 0;
        // After a failure the table is listed again: a write that timed out may have happened.
        self.held = ok.then_some(held);
        self.send_report(report);
        ok
    }

    fn build_report(
        &self,
        desired: &table::Desired,
        held: &Table,
        failed: &BTreeMap<IpNet, crate::dataplane::client::DpError>,
        nats: &install::Failures,
        lb: &install::Failures,
        lb_installed: usize,
    ) -> NetworkReport {
        let mut standard = Counts {
            learned: self
                .own
                .standard
                .keys()
                .filter(|p| p.prefix_len() > 0)
                .count(),
            ..Default::default()
        };
        let mut peered = Counts::default();
        let mut per_peer: BTreeMap<u32, (usize, usize, Option<String>)> = BTreeMap::new();
        for (p, (hop, origin)) in desired {
            let installed = held.get(p) == Some(hop);
            let failure = failed.get(p).map(|e| crate::error_chain(e));
            match origin {
                Origin::Own => {
                    standard.installed += usize::from(installed);
                    standard.failed += usize::from(failure.is_some());
                }
                Origin::Default => {}
                Origin::Peer(v) => {
                    peered.learned += 1;
                    peered.installed += usize::from(installed);
                    peered.failed += usize::from(failure.is_some());
                    let e = per_peer.entry(*v).or_default();
                    e.0 += usize::from(installed);
                    e.1 += usize::from(failure.is_some());
                    if failure.is_some() {
                        e.2 = failure;
                    }
                }
            }
        }
        let exports = self
            .peers
            .iter()
            .map(|(v, p)| {
                let (installed, failures, error) = per_peer.remove(v).unwrap_or_default();
                let phase = if failures > 0 {
                    PeerPhase::Error
                } else if !p.learned.complete {
                    PeerPhase::Pending
                } else {
                    PeerPhase::Ready
                };
                (
                    *v,
                    PeerReport {
                        phase,
                        installed,
                        error,
                    },
                )
            })
            .collect();
        let subscription = if self.args.ctx.announcer.client().is_none() {
            Subscription::NoRouteServers
        } else if self.own.complete {
            Subscription::Complete
        } else {
            Subscription::Waiting
        };
        let last_error = failed
            .values()
            .next_back()
            .or(nats.last.as_ref())
            .or(lb.last.as_ref())
            .map(|e| crate::error_chain(e));
        NetworkReport {
            subscription,
            standard,
            nat: Counts {
                learned: self.own.nats.len(),
                installed: self.nats_installed.len(),
                failed: nats.count,
            },
            lb_targets: Counts {
                learned: self.own.lb_target_count(),
                installed: lb_installed,
                failed: lb.count,
            },
            peered,
            router: self.args.router,
            last_error,
            exports,
        }
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
