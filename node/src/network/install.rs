//! The dpservice writes of a NetworkActor: routes of a VNI's table, neighbour NATs and the
//! targets of local load balancers. Each write treats the fact sheet's "already there" / "already
//! gone" codes as success, so repeating a pass is harmless, and is counted in the metrics by kind,
//! operation and dpservice code.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_route_client::route::{NextHop, NextHopType, Route};
use futures::StreamExt as _;
use ipnet::{IpNet, Ipv6Net};

use super::table::{Hop, Plan, Table};
use crate::dataplane::client::{Dp, DpError};
use crate::metrics::Metrics;
use crate::spec::dpservice as req;

/// Route writes in flight at once: dpservice answers each in microseconds, so a 10,000-route
/// table is written in a fraction of the time one-by-one round trips take, while a dataplane
/// that slows down still sees a bounded load.
const IN_FLIGHT: usize = 32;

/// Failures of one pass of one kind: how many, and the last error.
#[derive(Debug, Default)]
pub struct Failures {
    /// Failed writes.
    pub count: usize,
    /// The last one.
    pub last: Option<DpError>,
}

impl Failures {
    fn add(&mut self, e: DpError) {
        self.count += 1;
        self.last = Some(e);
    }

    /// Adds `other`'s failures.
    pub fn merge(&mut self, other: Failures) {
        self.count += other.count;
        if other.last.is_some() {
            self.last = other.last;
        }
    }
}

/// The routes dpservice holds in `vni` (unparsable entries are skipped: they are not ours).
pub async fn list_routes(dp: &Dp, vni: u32) -> Result<Table, DpError> {
    let r = dp
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

fn route_msg(p: IpNet, (nh_vni, nh): Hop) -> dp::Route {
    dp::Route {
        prefix: Some(req::prefix(p)),
        nexthop_vni: nh_vni,
        nexthop_address: Some(req::ip_address(nh)),
        weight: 100,
    }
}

async fn create_route(dp: &Dp, vni: u32, p: IpNet, hop: Hop) -> Result<(), DpError> {
    let route = route_msg(p, hop);
    let r = dp
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

async fn delete_route(dp: &Dp, vni: u32, p: IpNet, hop: Hop) -> Result<(), DpError> {
    let route = route_msg(p, hop);
    let r = dp
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
        Err(e) if e.is_any(&[Se::RouteNotFound, Se::RouteBadPort, Se::NoVni]) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Carries out `plan` on `vni`'s table, deletions first, and updates `held` (what dpservice
/// holds) with every write that succeeded. Returns the failures, by origin-independent prefix.
pub async fn apply_plan(
    dp: &Dp,
    metrics: &Metrics,
    vni: u32,
    plan: &Plan,
    held: &mut Table,
) -> BTreeMap<IpNet, DpError> {
    let mut failed = BTreeMap::new();
    let deleted: Vec<_> = futures::stream::iter(plan.delete.iter().copied())
        .map(|(p, hop)| async move { (p, delete_route(dp, vni, p, hop).await) })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (p, r) in deleted {
        metrics.route_write("route", "delete", r.as_ref().err());
        match r {
            Ok(()) => {
                held.remove(&p);
            }
            Err(e) => {
                failed.insert(p, e);
            }
        }
    }
    let creates = plan
        .create
        .iter()
        .copied()
        // A route whose old next hop could not be removed cannot get its new one.
        .filter(|(p, _)| !failed.contains_key(p));
    let created: Vec<_> = futures::stream::iter(creates)
        .map(|(p, hop)| async move { (p, hop, create_route(dp, vni, p, hop).await) })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (p, hop, r) in created {
        metrics.route_write("route", "create", r.as_ref().err());
        match r {
            Ok(()) => {
                held.insert(p, hop);
            }
            Err(e) => {
                failed.insert(p, e);
            }
        }
    }
    failed
}

/// The neighbour NATs dpservice holds in `vni`, as the NAT routes they came from.
pub async fn list_neighbor_nats(dp: &Dp, vni: u32) -> Result<BTreeSet<Route>, DpError> {
    // "0.0.0.0" is dpservice's "every NAT IP".
    let any = req::ip_address(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let r = dp
        .call("ListNeighborNats", |mut c| async move {
            c.list_neighbor_nats(dp::ListNeighborNatsRequest { nat_ip: Some(any) })
                .await
        })
        .await?;
    let mut out = BTreeSet::new();
    for e in r.nat_entries.into_iter().filter(|e| e.vni == vni) {
        let ip = req::parse_ip_address("actual_nat_ip", e.actual_nat_ip.as_ref())
            .or_else(|_| req::parse_ip_address("nat_ip", e.nat_ip.as_ref()));
        let underlay = std::str::from_utf8(&e.underlay_route)
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok());
        let (Ok(ip), Some(underlay), Ok(from), Ok(to)) = (
            ip,
            underlay,
            u16::try_from(e.min_port),
            u16::try_from(e.max_port),
        ) else {
            continue;
        };
        out.insert(Route {
            vni,
            destination: IpNet::from(ip),
            next_hop: NextHop {
                address: underlay,
                target_vni: 0,
                kind: NextHopType::Nat,
                port_from: from,
                port_to: to,
            },
        });
    }
    Ok(out)
}

/// Makes the neighbour NATs of `vni` the received NAT routes: removes those no longer received
/// from `installed` (only if `may_remove`: the VNI's set is complete, unless a wanted entry of
/// the same IP and ports replaces it), creates the new ones.
pub async fn sync_nats(
    dp: &Dp,
    metrics: &Metrics,
    vni: u32,
    wanted: &BTreeSet<Route>,
    installed: &mut BTreeSet<Route>,
    may_remove: bool,
) -> Failures {
    let mut failures = Failures::default();
    let same_slot = |a: &Route, b: &Route| {
        a.destination == b.destination
            && a.next_hop.port_from == b.next_hop.port_from
            && a.next_hop.port_to == b.next_hop.port_to
    };
    let gone: Vec<Route> = installed
        .difference(wanted)
        .filter(|r| may_remove || wanted.iter().any(|w| same_slot(w, r)))
        .copied()
        .collect();
    for r in gone {
        let (ip, nh) = (r.destination.addr(), r.next_hop);
        let res = dp
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
        let res = match res {
            Err(e) if e.is(Se::NotFound) => Ok(()),
            other => other.map(|_| ()),
        };
        metrics.route_write("neighbor_nat", "delete", res.as_ref().err());
        match res {
            Ok(()) => {
                installed.remove(&r);
            }
            Err(e) => failures.add(e),
        }
    }
    let new: Vec<Route> = wanted.difference(installed).copied().collect();
    for r in new {
        let (ip, nh) = (r.destination.addr(), r.next_hop);
        let res = dp
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
        let res = match res {
            Err(e) if e.is(Se::AlreadyExists) => Ok(()),
            other => other.map(|_| ()),
        };
        metrics.route_write("neighbor_nat", "create", res.as_ref().err());
        match res {
            Ok(()) => {
                installed.insert(r);
            }
            Err(e) => failures.add(e),
        }
    }
    failures
}

/// Makes load balancer `lb`'s targets the announced underlays of its VIP (inside `prefer`, if
/// set); targets no longer announced go only if `may_remove` (the VNI's set is complete).
/// Returns how many targets it holds afterwards, and the failures.
pub async fn sync_lb_targets(
    dp: &Dp,
    metrics: &Metrics,
    lb: &str,
    announced: Option<&BTreeSet<Ipv6Addr>>,
    prefer: Option<Ipv6Net>,
    may_remove: bool,
) -> (usize, Failures) {
    let mut failures = Failures::default();
    let desired: BTreeSet<Ipv6Addr> = announced
        .into_iter()
        .flatten()
        .filter(|t| prefer.is_none_or(|p| p.contains(*t)))
        .copied()
        .collect();
    let id = lb.to_string();
    let listed = dp
        .call("ListLoadBalancerTargets", |mut c| async move {
            c.list_load_balancer_targets(dp::ListLoadBalancerTargetsRequest {
                loadbalancer_id: id.into_bytes(),
            })
            .await
        })
        .await;
    let mut actual: BTreeSet<Ipv6Addr> = match listed {
        Ok(r) => r
            .target_ips
            .iter()
            .filter_map(|a| match req::parse_ip_address("target_ips", Some(a)) {
                Ok(IpAddr::V6(v)) => Some(v),
                _ => None,
            })
            .collect(),
        // Not created yet (its actor is on it): the next pass installs the targets.
        Err(e) => {
            failures.add(e);
            return (0, failures);
        }
    };
    let gone: Vec<Ipv6Addr> = if may_remove {
        actual.difference(&desired).copied().collect()
    } else {
        Vec::new()
    };
    for t in &gone {
        let (id, t) = (lb.to_string(), *t);
        let r = dp
            .call("DeleteLoadBalancerTarget", |mut c| async move {
                c.delete_load_balancer_target(dp::DeleteLoadBalancerTargetRequest {
                    loadbalancer_id: id.into_bytes(),
                    target_ip: Some(req::ip_address(t)),
                })
                .await
            })
            .await;
        let r = match r {
            Err(e) if e.is_any(&[Se::NotFound, Se::NoBackip, Se::NoLb]) => Ok(()),
            other => other.map(|_| ()),
        };
        metrics.route_write("lb_target", "delete", r.as_ref().err());
        match r {
            Ok(()) => {
                actual.remove(&t);
            }
            Err(e) => failures.add(e),
        }
    }
    for t in desired.difference(&actual.clone()) {
        let (id, t) = (lb.to_string(), *t);
        let r = dp
            .call("CreateLoadBalancerTarget", |mut c| async move {
                c.create_load_balancer_target(dp::CreateLoadBalancerTargetRequest {
                    loadbalancer_id: id.into_bytes(),
                    target_ip: Some(req::ip_address(t)),
                })
                .await
            })
            .await;
        let r = match r {
            Err(e) if e.is(Se::AlreadyExists) => Ok(()),
            other => other.map(|_| ()),
        };
        metrics.route_write("lb_target", "create", r.as_ref().err());
        match r {
            Ok(()) => {
                actual.insert(t);
            }
            Err(e) => failures.add(e),
        }
    }
    (actual.len(), failures)
}
