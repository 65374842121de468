//! Route changes as they happen, for in-process observers (load tools, tests) that need the
//! moment a route lands or goes without polling ListRoutes: polling hard enough to time a
//! change to the millisecond would itself load the dataplane being measured.
//!
//! Nothing is allocated or sent until the first [`crate::DataplaneService::route_changes`]
//! call, so a dataplane nobody observes pays one `Option` check per route change.

use std::net::Ipv6Addr;
use std::time::Instant;

use ipnet::IpNet;
use tokio::sync::broadcast;

/// Changes an observer may fall behind by before it misses some (`RecvError::Lagged`, after
/// which it should re-read the tables it cares about).
pub const CAPACITY: usize = 1 << 14;

/// One external route installed or removed. Reported for CreateRoute, DeleteRoute, ResetVni
/// and a VNI's table going away with its last user; not for [`crate::DataplaneService::restart`],
/// which replaces the whole state at once (its new UUID tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteChange {
    /// The VNI whose table changed.
    pub vni: u32,
    /// The prefix (normalized, as the table stores it).
    pub prefix: IpNet,
    /// The underlay next hop installed; `None` when the route was removed.
    pub next_hop: Option<Ipv6Addr>,
    /// When the change was applied. Taken under the state lock, so changes arrive in the order
    /// calls saw them, and an observer woken late still knows when each one happened.
    pub at: Instant,
}

/// The sending side a [`crate::State`] carries.
pub(crate) type Sender = broadcast::Sender<RouteChange>;

/// A new channel of [`CAPACITY`].
pub(crate) fn channel() -> Sender {
    broadcast::channel(CAPACITY).0
}

/// Reports a change to `tx`, if anyone observes.
pub(crate) fn report(tx: Option<&Sender>, vni: u32, prefix: IpNet, next_hop: Option<Ipv6Addr>) {
    if let Some(tx) = tx {
        // No receiver left is fine: observers come and go.
        let _ = tx.send(RouteChange {
            vni,
            prefix,
            next_hop,
            at: Instant::now(),
        });
    }
}
