//! One reconcile pass of a NetworkActor, and the report it leaves.
//!
//! A full pass lists what dpservice holds and computes the whole desired table; it runs at
//! start, after a dataplane restart, when a source completes, after a failure, on the periodic
//! re-check and when the router, the peerings or this node's own routes change. Between full
//! passes, route events only mark their prefixes dirty, and a pass recomputes and writes just
//! those: a route arriving in a table of thousands costs one prefix, not the table.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_route_client::route::Route;
use ipnet::IpNet;

use super::NetworkState;
use super::install;
use super::status::{Counts, NetworkReport, PeerPhase, PeerReport, Subscription};
use super::table::{self, Desired, Export, Origin, Sources, Table};

/// Reports whose only news are counts go out at most this often: each one is a status
/// revision of the Network, and routes arriving one by one would otherwise write one each.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// What the last pass could not write, for the report.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Routes that failed, with the error.
    pub routes: BTreeMap<IpNet, String>,
    /// Neighbour NAT writes that failed, and the last error.
    pub nats: (usize, Option<String>),
    /// Load-balancer target writes that failed, and the last error.
    pub lb: (usize, Option<String>),
    /// Targets the local load balancers hold.
    pub lb_installed: usize,
}

impl NetworkState {
    /// One pass; true if dpservice holds exactly what it should.
    pub(super) async fn reconcile(&mut self) -> bool {
        let vni = self.args.vni;
        let ctx = self.args.ctx.clone();
        let listed = self.held.is_none();
        self.no_vni = false;
        let mut held = match self.held.take() {
            Some(t) => t,
            None => match install::list_routes(&ctx.dp, vni).await {
                Ok(t) => t,
                // The VNI's first interface is not created yet: nothing to report, try again.
                Err(e) if e.is(Se::NoVni) => {
                    self.no_vni = true;
                    return false;
                }
                Err(e) => {
                    tracing::debug!(error = %crate::error_chain(&e), "cannot list routes");
                    let mut report = self.report.clone().unwrap_or_default();
                    report.last_error = Some(crate::error_chain(&e));
                    self.send_report(report);
                    return false;
                }
            },
        };
        let local: BTreeMap<u32, Vec<Route>> = self
            .peers
            .keys()
            .map(|&v| (v, ctx.announcer.local_routes(v)))
            .collect();
        let sources = Sources {
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
        };
        let full = listed || self.cache.is_none();
        let (want, have) = match (&mut self.cache, full) {
            (Some(cache), false) => {
                let mut want = Table::new();
                let mut have = Table::new();
                for p in &self.dirty {
                    match table::desired_one(&sources, p) {
                        Some(e) => {
                            cache.insert(*p, e);
                            want.insert(*p, e.0);
                        }
                        None => {
                            cache.remove(p);
                        }
                    }
                    if let Some(h) = held.get(p) {
                        have.insert(*p, *h);
                    }
                }
                (want, have)
            }
            _ => {
                let d = table::desired(&sources);
                let want = table::table(&d);
                self.cache = Some(d);
                (want, held.clone())
            }
        };
        self.dirty.clear();
        let peers = &self.peers;
        let own_complete = self.own.complete;
        let plan = table::plan(&want, &have, |hop| {
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
                full,
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
        // The route servers do not send this node its own targets: add them.
        let local_targets = if self.local_lbs.is_empty() {
            BTreeMap::new()
        } else {
            ctx.announcer.local_lb_targets(vni)
        };
        for (vip, id) in &self.local_lbs {
            let targets: Option<BTreeSet<std::net::Ipv6Addr>> =
                match (self.own.lb_targets.get(vip), local_targets.get(vip)) {
                    (None, None) => None,
                    (a, b) => Some(a.into_iter().chain(b).flatten().copied().collect()),
                };
            let (n, f) = install::sync_lb_targets(
                &ctx.dp,
                &ctx.metrics,
                id,
                targets.as_ref(),
                ctx.prefer_network,
                own_complete,
            )
            .await;
            lb_installed += n;
            lb.merge(f);
        }
        let ok = failed.is_empty() && nats.count == 0 && lb.count == 0;
        let chain = |e: &Option<crate::dataplane::client::DpError>| {
            e.as_ref().map(|e| crate::error_chain(e))
        };
        self.outcome = Outcome {
            routes: failed
                .iter()
                .map(|(p, e)| (*p, crate::error_chain(e)))
                .collect(),
            nats: (nats.count, chain(&nats.last)),
            lb: (lb.count, chain(&lb.last)),
            lb_installed,
        };
        // After a failure the table is listed again: a write that timed out may have happened.
        self.held = Some(held);
        self.report_now(full || !ok);
        if !ok {
            self.held = None;
            self.cache = None;
        }
        ok
    }

    /// Sends the report if `urgent`, or if the last one is old enough; otherwise leaves it due
    /// (the actor sends it when the interval has passed).
    pub(super) fn report_now(&mut self, urgent: bool) {
        let recent = self
            .reported_at
            .is_some_and(|t| t.elapsed() < REPORT_INTERVAL);
        if recent && !urgent {
            self.report_due = true;
            return;
        }
        if let Some(report) = self.build_report() {
            self.reported_at = Some(Instant::now());
            self.report_due = false;
            self.send_report(report);
        }
    }

    /// The report of the last pass; `None` before the first one.
    fn build_report(&self) -> Option<NetworkReport> {
        let desired: &Desired = self.cache.as_ref()?;
        let held = self.held.as_ref()?;
        let failed = &self.outcome.routes;
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
            let failure = failed.get(p).cloned();
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
            .cloned()
            .or_else(|| self.outcome.nats.1.clone())
            .or_else(|| self.outcome.lb.1.clone());
        Some(NetworkReport {
            subscription,
            standard,
            nat: Counts {
                learned: self.own.nats.len(),
                installed: self.nats_installed.len(),
                failed: self.outcome.nats.0,
            },
            lb_targets: Counts {
                learned: self.own.lb_target_count(),
                installed: self.outcome.lb_installed,
                failed: self.outcome.lb.0,
            },
            peered,
            router: self.args.router,
            last_error,
            exports,
        })
    }
}
