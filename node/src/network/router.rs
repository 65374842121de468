//! The default router of the region: the next hop of the zero-length prefixes announced in the
//! public VNI.

use std::collections::BTreeSet;

use ferrinet_route_client::client::{Subscription, VniEvent};
use ferrinet_route_client::route::Route;
use ractor::ActorRef;

use crate::api::ApiMsg;

/// Follows the default router announced in the public VNI (a zero-length prefix): reports the
/// lowest next hop of the default routes present, `None` when there are none. Runs until the
/// subscription or the receiver ends.
pub async fn watch_router(mut sub: Subscription, api: ActorRef<ApiMsg>) {
    let mut hops: BTreeSet<Route> = BTreeSet::new();
    let mut current = None;
    while let Some(e) = sub.next().await {
        let is_default = |r: &Route| r.destination.prefix_len() == 0;
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
            if api.send_message(ApiMsg::Router(current)).is_err() {
                return;
            }
        }
    }
}
