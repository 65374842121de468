//! The NetworkActor: one per VNI in use on this node (an interface or load balancer of a network
//! with that VNI). It subscribes to the VNI at the route servers, installs the routes other
//! nodes announce into dpservice, keeps the VNI's default route, and once the initial route set
//! is complete removes what dpservice holds but nobody provides (stale routes of a previous
//! life of this node or of the dataplane).
//!
//! ```text
//!  route client Subscription --(forwarding task)--> NetworkMsg::Event --> NetworkActor
//!  NetworkActor --CreateRoute / DeleteRoute / CreateNeighborNat ...--> dpservice
//!  NetworkActor --Reconcile(token) (send_after)--> itself      (retry, periodic re-check)
//! ```
//!
//! dpservice holds one next hop per prefix, so of several next hops announced for one prefix
//! the lowest (by address, then type and ports) is installed, and the next one takes over when
//! it is withdrawn: every node picks the same one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_route_client::client::VniEvent;
use ferrinet_route_client::route::{NextHop, NextHopType, Route};
use ipnet::IpNet;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::dataplane::client::DpError;
use crate::reconcile::{Ctx, Schedule};
use crate::spec::dpservice as req;

/// Messages of a NetworkActor.
#[derive(Debug)]
pub enum NetworkMsg {
    /// A change of the VNI's routes at the route servers.
    Event(VniEvent),
    /// dpservice restarted: install everything again.
    Resync,
    /// Timer: run a pass if the token is current.
    Reconcile(u64),
    /// Run a pass now: queued behind the events that asked for it, so a burst of route changes
    /// costs one pass.
    Apply,
    /// The load balancers of this node in the VNI: VIP -> load balancer id.
    LoadBalancers(BTreeMap<IpAddr, String>),
    /// The default router changed (learned from the public VNI, or the configured fallback).
    Router(Option<Ipv6Addr>),
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

/// The actor's state.
pub struct NetworkState {
    args: NetworkArgs,
    /// STANDARD routes received: prefix -> every next hop announced for it.
    learned: BTreeMap<IpNet, BTreeSet<NextHop>>,
    /// NAT routes received (neighbour NATs).
    nats: BTreeSet<Route>,
    /// Neighbour NATs installed.
    nats_installed: BTreeSet<Route>,
    /// LOADBALANCER_TARGET routes received: VIP -> target underlays. Kept whether or not the
    /// load balancer exists here yet, and applied when it appears.
    lb_targets: BTreeMap<IpAddr, BTreeSet<Ipv6Addr>>,
    /// This node's load balancers in the VNI: VIP -> id.
    local_lbs: BTreeMap<IpAddr, String>,
    /// The servers have sent the initial set: stale routes may be removed.
    complete: bool,
    subscription: Option<JoinHandle<()>>,
    schedule: Schedule,
    failed: usize,
    /// An Apply is queued.
    apply_queued: bool,
}

/// The NetworkActor.
#[derive(Debug)]
pub struct NetworkActor;

/// What dpservice should hold in the VNI's table: prefix -> (next-hop VNI, next hop).
type Table = BTreeMap<IpNet, (u32, Ipv6Addr)>;

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
        let subscription = match args.ctx.announcer.client() {
            Some(client) => {
                let mut sub = client.subscribe(args.vni)?;
                let me = myself.clone();
                Some(tokio::spawn(async move {
                    while let Some(e) = sub.next().await {
                        if me.send_message(NetworkMsg::Event(e)).is_err() {
                            return;
                        }
                    }
                }))
            }
            None => None,
        };
        // Without route servers nothing will arrive: what this node knows is complete.
        let complete = subscription.is_none();
        myself.send_message(NetworkMsg::Reconcile(0))?;
        Ok(NetworkState {
            args,
            learned: BTreeMap::new(),
            nats: BTreeSet::new(),
            nats_installed: BTreeSet::new(),
            lb_targets: BTreeMap::new(),
            local_lbs: BTreeMap::new(),
            complete,
            subscription,
            schedule,
            failed: 0,
            apply_queued: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<NetworkMsg>,
        msg: NetworkMsg,
        st: &mut NetworkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NetworkMsg::Event(e) => {
                st.learn(e);
                if !st.apply_queued {
                    st.apply_queued = true;
                    myself.send_message(NetworkMsg::Apply)?;
                }
                return Ok(());
            }
            NetworkMsg::Apply => {
                st.apply_queued = false;
                st.schedule.reset();
            }
            NetworkMsg::Router(r) => {
                if r == st.args.router {
                    return Ok(());
                }
                st.args.router = r;
                st.schedule.reset();
            }
            NetworkMsg::LoadBalancers(lbs) => {
                if lbs == st.local_lbs {
                    return Ok(());
                }
                st.local_lbs = lbs;
                st.schedule.reset();
            }
            NetworkMsg::Resync => {
                st.nats_installed.clear();
                st.schedule.reset();
            }
            NetworkMsg::Reconcile(token) => {
                if token != 0 && !st.schedule.is_current(token) {
                    return Ok(());
                }
            }
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
        // Dropping the subscription unsubscribes the VNI.
        if let Some(t) = st.subscription.take() {
            t.abort();
        }
        Ok(())
    }
}

fn is_default(p: &IpNet) -> bool {
    p.prefix_len() == 0
}

impl NetworkState {
    fn learn(&mut self, e: VniEvent) {
        match e {
            VniEvent::Added(r) => self.add(r),
            VniEvent::Removed(r) => self.remove(&r),
            VniEvent::Complete => self.complete = true,
            VniEvent::Snapshot { routes, complete } => {
                self.learned.clear();
                self.nats.clear();
                self.lb_targets.clear();
                for r in routes {
                    self.add(r);
                }
                self.complete |= complete;
            }
        }
    }

    fn add(&mut self, r: Route) {
        match r.next_hop.kind {
            NextHopType::Standard => {
                self.learned
                    .entry(r.destination)
                    .or_default()
                    .insert(r.next_hop);
            }
            NextHopType::Nat => {
                self.nats.insert(r);
            }
            NextHopType::LoadBalancerTarget => {
                self.lb_targets
                    .entry(r.destination.addr())
                    .or_default()
                    .insert(r.next_hop.address);
            }
        }
    }

    fn remove(&mut self, r: &Route) {
        match r.next_hop.kind {
            NextHopType::Standard => {
                if let Some(hops) = self.learned.get_mut(&r.destination) {
                    hops.remove(&r.next_hop);
                    if hops.is_empty() {
                        self.learned.remove(&r.destination);
                    }
                }
            }
            NextHopType::Nat => {
                self.nats.remove(r);
            }
            NextHopType::LoadBalancerTarget => {
                let vip = r.destination.addr();
                if let Some(t) = self.lb_targets.get_mut(&vip) {
                    t.remove(&r.next_hop.address);
                    if t.is_empty() {
                        self.lb_targets.remove(&vip);
                    }
                }
            }
        }
    }

    /// The table dpservice should hold: the lowest next hop of each learned prefix, and the
    /// default routes.
    fn desired(&self) -> Table {
        let vni = self.args.vni;
        let mut t: Table = self
            .learned
            .iter()
            .filter(|(p, _)| !is_default(p))
            .filter_map(|(p, hops)| {
                let nh = hops.first()?;
                let nh_vni = if nh.target_vni == 0 {
                    vni
                } else {
                    nh.target_vni
                };
                Some((*p, (nh_vni, nh.address)))
            })
            .collect();
        if let Some(router) = self.args.router {
            t.insert(IpNet::V4(ipnet::Ipv4Net::default()), (vni, router));
            if self.args.ipv6 {
                t.insert(IpNet::V6(ipnet::Ipv6Net::default()), (vni, router));
            }
        }
        t
    }

    /// One pass; true if dpservice holds exactly what it should.
    async fn reconcile(&mut self) -> bool {
        let desired = self.desired();
        let actual = match self.list_routes().await {
            Ok(a) => a,
            Err(e) => {
                // NO_VNI: the VNI's first interface is not created yet; try again soon.
                tracing::debug!(error = %crate::error_chain(&e), "cannot list routes");
                return false;
            }
        };
        let mut failed = 0;
        for (p, hop) in &actual {
            let wanted = desired.get(p);
            let stale = wanted.is_none() && self.complete;
            if stale || wanted.is_some_and(|w| w != hop) {
                if let Err(e) = self.delete_route(*p, *hop).await {
                    tracing::warn!(prefix = %p, error = %crate::error_chain(&e), "cannot remove route");
                    failed += 1;
                } else if stale {
                    tracing::info!(prefix = %p, next_hop = %hop.1, "removed stale route");
                }
            }
        }
        for (p, hop) in &desired {
            if actual.get(p) == Some(hop) {
                continue;
            }
            if let Err(e) = self.create_route(*p, *hop).await {
                tracing::warn!(prefix = %p, error = %crate::error_chain(&e), "cannot install route");
                failed += 1;
            }
        }
        failed += self.sync_nats().await;
        failed += self.sync_lb_targets().await;
        self.failed = failed;
        failed == 0
    }

    async fn list_routes(&self) -> Result<Table, DpError> {
        let vni = self.args.vni;
        let r = self
            .args
            .ctx
            .dp
            .call("ListRoutes", |mut c| async move {
                c.list_routes(dp::ListRoutesRequest { vni }).await
            })
            .await?;
        let mut t = Table::new();
        for route in r.routes {
            let Ok(p) = req::parse_prefix("prefix", route.prefix.as_ref()) else {
                continue;
            };
            let Ok(IpAddr::V6(nh)) =
                req::parse_ip_address("nexthop_address", route.nexthop_address.as_ref())
            else {
                continue;
            };
            t.insert(p, (route.nexthop_vni, nh));
        }
        Ok(t)
    }

    fn route_msg(p: IpNet, (nh_vni, nh): (u32, Ipv6Addr)) -> dp::Route {
        dp::Route {
            prefix: Some(req::prefix(p)),
            nexthop_vni: nh_vni,
            nexthop_address: Some(req::ip_address(nh)),
            weight: 100,
        }
    }

    async fn create_route(&self, p: IpNet, hop: (u32, Ipv6Addr)) -> Result<(), DpError> {
        let vni = self.args.vni;
        let route = Self::route_msg(p, hop);
        let r = self
            .args
            .ctx
            .dp
            .call("CreateRoute", |mut c| async move {
                c.create_route(dp::CreateRouteRequest {
                    vni,
                    route: Some(route),
                })
                .await
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is(Se::RouteExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_route(&self, p: IpNet, hop: (u32, Ipv6Addr)) -> Result<(), DpError> {
        let vni = self.args.vni;
        let route = Self::route_msg(p, hop);
        let r = self
            .args
            .ctx
            .dp
            .call("DeleteRoute", |mut c| async move {
                c.delete_route(dp::DeleteRouteRequest {
                    vni,
                    route: Some(route),
                })
                .await
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_any(&[Se::RouteNotFound, Se::NoVni]) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Installs received NAT routes as neighbour NATs and removes withdrawn ones; returns the
    /// number of failures.
    async fn sync_nats(&mut self) -> usize {
        let vni = self.args.vni;
        let mut failed = 0;
        let gone: Vec<Route> = self
            .nats_installed
            .difference(&self.nats)
            .copied()
            .collect();
        for r in gone {
            let (ip, nh) = (r.destination.addr(), r.next_hop);
            let res = self
                .args
                .ctx
                .dp
                .call("DeleteNeighborNat", |mut c| async move {
                    c.delete_neighbor_nat(dp::DeleteNeighborNatRequest {
                        nat_ip: Some(req::ip_address(ip)),
                        vni,
                        min_port: u32::from(nh.port_from),
                        max_port: u32::from(nh.port_to),
                    })
                    .await
                })
                .await;
            match res {
                Ok(_) => {
                    self.nats_installed.remove(&r);
                }
                Err(e) if e.is(Se::NotFound) => {
                    self.nats_installed.remove(&r);
                }
                Err(_) => failed += 1,
            }
        }
        let new: Vec<Route> = self
            .nats
            .difference(&self.nats_installed)
            .copied()
            .collect();
        for r in new {
            let (ip, nh) = (r.destination.addr(), r.next_hop);
            let res = self
                .args
                .ctx
                .dp
                .call("CreateNeighborNat", |mut c| async move {
                    c.create_neighbor_nat(dp::CreateNeighborNatRequest {
                        nat_ip: Some(req::ip_address(ip)),
                        vni,
                        min_port: u32::from(nh.port_from),
                        max_port: u32::from(nh.port_to),
                        underlay_route: req::address_text(nh.address),
                    })
                    .await
                })
                .await;
            match res {
                Ok(_) => {
                    self.nats_installed.insert(r);
                }
                Err(e) if e.is(Se::AlreadyExists) => {
                    self.nats_installed.insert(r);
                }
                Err(_) => failed += 1,
            }
        }
        failed
    }

    /// Makes every local load balancer's targets the underlays announced for its VIP (inside
    /// `routes.prefer_network`, if set); returns the number of failures.
    async fn sync_lb_targets(&mut self) -> usize {
        let mut failed = 0;
        let prefer = self.args.ctx.prefer_network;
        let lbs: Vec<(IpAddr, String)> = self
            .local_lbs
            .iter()
            .map(|(ip, id)| (*ip, id.clone()))
            .collect();
        for (vip, lb) in lbs {
            let desired: BTreeSet<Ipv6Addr> = self
                .lb_targets
                .get(&vip)
                .into_iter()
                .flatten()
                .filter(|t| prefer.is_none_or(|p| p.contains(*t)))
                .copied()
                .collect();
            let id = lb.clone();
            let listed = self
                .args
                .ctx
                .dp
                .call("ListLoadBalancerTargets", |mut c| async move {
                    c.list_load_balancer_targets(dp::ListLoadBalancerTargetsRequest {
                        loadbalancer_id: id.into_bytes(),
                    })
                    .await
                })
                .await;
            let actual: BTreeSet<Ipv6Addr> = match listed {
                Ok(r) => r
                    .target_ips
                    .iter()
                    .filter_map(|a| match req::parse_ip_address("target_ips", Some(a)) {
                        Ok(IpAddr::V6(v)) => Some(v),
                        _ => None,
                    })
                    .collect(),
                // Not created yet (its actor is on it): the next pass installs the targets.
                Err(_) => {
                    failed += 1;
                    continue;
                }
            };
            for t in actual.difference(&desired) {
                let (id, t) = (lb.clone(), *t);
                let r = self
                    .args
                    .ctx
                    .dp
                    .call("DeleteLoadBalancerTarget", |mut c| async move {
                        c.delete_load_balancer_target(dp::DeleteLoadBalancerTargetRequest {
                            loadbalancer_id: id.into_bytes(),
                            target_ip: Some(req::ip_address(t)),
                        })
                        .await
                    })
                    .await;
                if let Err(e) = r
                    && !e.is_any(&[Se::NotFound, Se::NoBackip, Se::NoLb])
                {
                    failed += 1;
                }
            }
            for t in desired.difference(&actual) {
                let (id, t) = (lb.clone(), *t);
                let r = self
                    .args
                    .ctx
                    .dp
                    .call("CreateLoadBalancerTarget", |mut c| async move {
                        c.create_load_balancer_target(dp::CreateLoadBalancerTargetRequest {
                            loadbalancer_id: id.into_bytes(),
                            target_ip: Some(req::ip_address(t)),
                        })
                        .await
                    })
                    .await;
                if let Err(e) = r
                    && !e.is(Se::AlreadyExists)
                {
                    failed += 1;
                }
            }
        }
        failed
    }
}

/// Follows the default router announced in the public VNI (a zero-length prefix): reports the
/// lowest next hop of the default routes present, `None` when there are none. Runs until the
/// subscription or the receiver ends.
pub async fn watch_router(
    mut sub: ferrinet_route_client::client::Subscription,
    api: ActorRef<crate::api::ApiMsg>,
) {
    let mut hops: BTreeSet<Route> = BTreeSet::new();
    let mut current = None;
    while let Some(e) = sub.next().await {
        let is_default = |r: &Route| is_default(&r.destination);
        match e {
            VniEvent::Added(r) if is_default(&r) => {
                hops.insert(r);
            }
            VniEvent::Removed(r) => {
                hops.remove(&r);
            }
            VniEvent::Snapshot { routes, .. } => {
                hops = routes.into_iter().filter(|r| is_default(r)).collect();
            }
            _ => continue,
        }
        let router = hops.iter().map(|r| r.next_hop.address).min();
        if router != current {
            current = router;
            tracing::info!(router = ?current, "default router from the public VNI");
            if api
                .send_message(crate::api::ApiMsg::Router(current))
                .is_err()
            {
                return;
            }
        }
    }
}
