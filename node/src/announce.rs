//! Route announcements of this node: through the route client when route servers are
//! configured; otherwise the routes are only known locally (shown in status) and go out after a
//! restart with servers configured, since every object re-announces its routes when its actor
//! starts.
//!
//! The announcer also keeps this node's own STANDARD and LOADBALANCER_TARGET routes per VNI:
//! the route servers do not send a node its own routes back, yet a peered VNI's table on this
//! node needs them (peering fan-out of local routes), and so does a load balancer of this node
//! whose targets include an interface of this node. NetworkActors follow
//! [`Announcer::local_changes`] and read [`Announcer::local_routes`] and
//! [`Announcer::local_lb_targets`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use ferrinet_route_client::client::ClientHandle;
use ferrinet_route_client::route::{NextHopType, Route};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Own STANDARD and LOADBALANCER_TARGET routes: VNI -> route -> how many objects announce it.
type Local = HashMap<u32, BTreeMap<Route, usize>>;

/// Announces and withdraws routes. Cheap to clone. Announcements are counted by the route
/// client, so two objects announcing the same route need two withdrawals.
#[derive(Debug, Clone)]
pub struct Announcer {
    client: Option<ClientHandle>,
    metrics: Metrics,
    local: Arc<Mutex<Local>>,
    /// Bumped on every change of `local`; receivers only need to know that something changed.
    changes: Arc<watch::Sender<u64>>,
}

impl Announcer {
    /// Through `client`, or locally only when `None`.
    pub fn new(client: Option<ClientHandle>, metrics: Metrics) -> Self {
        Self {
            client,
            metrics,
            local: Arc::default(),
            changes: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Whether routes reach route servers.
    pub fn has_servers(&self) -> bool {
        self.client.is_some()
    }

    /// The route client, if any.
    pub fn client(&self) -> Option<&ClientHandle> {
        self.client.as_ref()
    }

    /// Announces `r`.
    pub fn announce(&self, r: Route) {
        self.metrics.routes_announced.inc();
        self.track(r, true);
        if let Some(c) = &self.client
            && let Err(e) = c.announce(r)
        {
            // Only when the client has shut down, i.e. the node is stopping.
            tracing::debug!(route = %r, error = %e, "announcement not sent");
        }
    }

    /// Withdraws one announcement of `r`.
    pub fn withdraw(&self, r: Route) {
        self.metrics.routes_announced.dec();
        self.track(r, false);
        if let Some(c) = &self.client
            && let Err(e) = c.withdraw(r)
        {
            tracing::debug!(route = %r, error = %e, "withdrawal not sent");
        }
    }

    fn track(&self, r: Route, add: bool) {
        if !matches!(
            r.next_hop.kind,
            NextHopType::Standard | NextHopType::LoadBalancerTarget
        ) {
            return;
        }
        let changed = {
            // A panic elsewhere while holding the lock cannot leave the map half-updated (every
            // update is one insert or remove), so a poisoned lock is still usable.
            let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
            let routes = local.entry(r.vni).or_default();
            let changed = if add {
                let n = routes.entry(r).or_insert(0);
                *n += 1;
                *n == 1
            } else {
                match routes.get_mut(&r) {
                    Some(n) if *n > 1 => {
                        *n -= 1;
                        false
                    }
                    Some(_) => {
                        routes.remove(&r);
                        true
                    }
                    None => false,
                }
            };
            if routes.is_empty() {
                local.remove(&r.vni);
            }
            changed
        };
        if changed {
            self.changes.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// This node's own STANDARD routes in `vni`.
    pub fn local_routes(&self, vni: u32) -> Vec<Route> {
        self.local_of(vni, NextHopType::Standard)
            .into_iter()
            .collect()
    }

    /// The targets this node announces in `vni`: load balancer VIP -> target underlays.
    pub fn local_lb_targets(&self, vni: u32) -> BTreeMap<IpAddr, BTreeSet<Ipv6Addr>> {
        let mut out: BTreeMap<IpAddr, BTreeSet<Ipv6Addr>> = BTreeMap::new();
        for r in self.local_of(vni, NextHopType::LoadBalancerTarget) {
            out.entry(r.destination.addr())
                .or_default()
                .insert(r.next_hop.address);
        }
        out
    }

    fn local_of(&self, vni: u32, kind: NextHopType) -> Vec<Route> {
        let local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        local
            .get(&vni)
            .map(|m| {
                m.keys()
                    .filter(|r| r.next_hop.kind == kind)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Changes when the own STANDARD or LOADBALANCER_TARGET routes of any VNI change.
    pub fn local_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str) -> Route {
        s.parse().expect("test route")
    }

    #[test]
    fn local_routes_are_counted_and_only_standard() {
        let a = Announcer::new(None, Metrics::new());
        let mut changes = a.local_changes();
        let r = route("7#10.0.0.1/32#fc00::1");
        a.announce(r);
        a.announce(r);
        a.announce(route("7#10.0.0.9/32#fc00::1#NAT#0#1024"));
        assert!(changes.has_changed().unwrap_or(false));
        changes.mark_unchanged();
        assert_eq!(a.local_routes(7), vec![r]);
        a.withdraw(r);
        assert_eq!(a.local_routes(7), vec![r], "one announcement left");
        assert!(!changes.has_changed().unwrap_or(true));
        a.withdraw(r);
        assert!(a.local_routes(7).is_empty());
        assert!(changes.has_changed().unwrap_or(false));
        // A withdrawal of something never announced changes nothing.
        a.withdraw(r);
        assert!(a.local_routes(7).is_empty());
    }
}
