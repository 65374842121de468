//! What a NetworkActor reports after a pass, and the Network status built from the reports:
//! the route counts of a VNI's table, and the state of each peering on this node.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use ferrinet_proto::node::v1 as pb;

/// Where the initial route set of a VNI stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subscription {
    /// Subscribed; not every server has sent its set yet.
    #[default]
    Waiting,
    /// Every established server has sent its set.
    Complete,
    /// No route servers configured: nothing will arrive.
    NoRouteServers,
}

impl Subscription {
    /// The status text.
    pub fn name(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Complete => "Complete",
            Self::NoRouteServers => "NoRouteServers",
        }
    }
}

/// Routes of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Received (or exported into the VNI).
    pub learned: usize,
    /// Held by dpservice.
    pub installed: usize,
    /// Writes that failed in the last pass.
    pub failed: usize,
}

impl Counts {
    fn to_pb(self) -> pb::RouteCounts {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        pb::RouteCounts {
            learned: n(self.learned),
            installed: n(self.installed),
            failed: n(self.failed),
        }
    }
}

/// State of the routes one peered VNI exports into a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerPhase {
    /// Its initial route set is not complete yet.
    Pending,
    /// Every exported route is installed.
    Ready,
    /// Some could not be installed.
    Error,
}

impl PeerPhase {
    fn name(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Error => "Error",
        }
    }

    /// The worse of two: Error, then Pending, then Ready.
    fn worst(self, other: Self) -> Self {
        let rank = |p: Self| match p {
            Self::Ready => 0,
            Self::Pending => 1,
            Self::Error => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// The routes one peered VNI exports into a table on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    /// Where they stand.
    pub phase: PeerPhase,
    /// How many are installed.
    pub installed: usize,
    /// The last failure, if any.
    pub error: Option<String>,
}

/// A NetworkActor's account of its VNI's table after a pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkReport {
    /// The VNI's own subscription.
    pub subscription: Subscription,
    /// STANDARD routes of other nodes.
    pub standard: Counts,
    /// Neighbour NATs.
    pub nat: Counts,
    /// Targets of this node's load balancers in the VNI.
    pub lb_targets: Counts,
    /// Routes of peered VNIs.
    pub peered: Counts,
    /// Next hop of the default routes.
    pub router: Option<Ipv6Addr>,
    /// The last failure of the pass.
    pub last_error: Option<String>,
    /// Peered VNIs exporting into this one.
    pub exports: BTreeMap<u32, PeerReport>,
}

impl NetworkReport {
    /// Whether the table is complete and fully installed.
    pub fn ok(&self) -> bool {
        self.subscription != Subscription::Waiting && self.last_error.is_none()
    }

    /// The status part.
    pub fn to_pb(&self) -> pb::NetworkRoutes {
        pb::NetworkRoutes {
            subscription: self.subscription.name().into(),
            standard: Some(self.standard.to_pb()),
            nat: Some(self.nat.to_pb()),
            load_balancer_targets: Some(self.lb_targets.to_pb()),
            peered: Some(self.peered.to_pb()),
            router: self.router.map(|r| r.to_string()).unwrap_or_default(),
            last_error: self.last_error.clone().unwrap_or_default(),
        }
    }
}

/// The routes part of a network not in use on this node.
pub fn not_in_use() -> pb::NetworkRoutes {
    pb::NetworkRoutes {
        subscription: "NotInUse".into(),
        ..Default::default()
    }
}

/// The state of the peering between `own` and `peer` on this node, from the reports of the
/// VNIs in use here. Both directions count: `peer`'s routes into `own`'s table and `own`'s
/// routes into `peer`'s. A direction whose table is in use here but into which the other side
/// exports nothing is Pending: the other network is missing here or does not list this one.
pub fn peering(own: u32, peer: u32, reports: &BTreeMap<u32, NetworkReport>) -> pb::PeeringStatus {
    let mut phase = PeerPhase::Ready;
    let mut parts = Vec::new();
    for (from, into) in [(peer, own), (own, peer)] {
        let Some(table) = reports.get(&into) else {
            continue;
        };
        match table.exports.get(&from) {
            Some(p) => {
                phase = phase.worst(p.phase);
                let mut part =
                    format!("VNI {from} into {into}: {} route(s) installed", p.installed);
                match (&p.error, p.phase) {
                    (Some(e), _) => part.push_str(&format!(", {e}")),
                    (None, PeerPhase::Pending) => part.push_str(", waiting for its route set"),
                    (None, _) => {}
                }
                parts.push(part);
            }
            None => {
                phase = phase.worst(PeerPhase::Pending);
                parts.push(format!(
                    "VNI {from} exports nothing into {into} here: its Network is missing on \
                     this node or does not list {into}"
                ));
            }
        }
    }
    if parts.is_empty() {
        parts.push(format!(
            "neither VNI {own} nor {peer} is in use on this node"
        ));
    }
    pb::PeeringStatus {
        id: peer,
        state: phase.name().into(),
        message: parts.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(exports: &[(u32, PeerPhase)]) -> NetworkReport {
        NetworkReport {
            exports: exports
                .iter()
                .map(|&(v, phase)| {
                    (
                        v,
                        PeerReport {
                            phase,
                            installed: 2,
                            error: (phase == PeerPhase::Error).then(|| "boom".to_string()),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_peering_is_ready_when_both_directions_in_use_here_are() {
        let reports: BTreeMap<u32, NetworkReport> = [
            (7, report(&[(8, PeerPhase::Ready)])),
            (8, report(&[(7, PeerPhase::Ready)])),
        ]
        .into();
        let s = peering(7, 8, &reports);
        assert_eq!(s.state, "Ready", "{}", s.message);
        assert_eq!(s.id, 8);
    }

    #[test]
    fn the_worst_direction_decides() {
        let reports: BTreeMap<u32, NetworkReport> = [
            (7, report(&[(8, PeerPhase::Pending)])),
            (8, report(&[(7, PeerPhase::Error)])),
        ]
        .into();
        let s = peering(7, 8, &reports);
        assert_eq!(s.state, "Error");
        assert!(s.message.contains("boom"), "{}", s.message);
    }

    #[test]
    fn a_one_sided_peering_is_pending_and_says_why() {
        let reports: BTreeMap<u32, NetworkReport> = [(7, report(&[]))].into();
        let s = peering(7, 8, &reports);
        assert_eq!(s.state, "Pending");
        assert!(s.message.contains("does not list 7"), "{}", s.message);
        // Only the peer's table here, fed by this side: ready.
        let reports: BTreeMap<u32, NetworkReport> = [(8, report(&[(7, PeerPhase::Ready)]))].into();
        assert_eq!(peering(7, 8, &reports).state, "Ready");
        assert_eq!(peering(7, 8, &BTreeMap::new()).state, "Ready");
    }
}
