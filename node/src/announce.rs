//! Route announcements of this node: through the route client when route servers are
//! configured; otherwise the routes are only known locally (shown in status) and go out after a
//! restart with servers configured, since every object re-announces its routes when its actor
//! starts.

use ferrinet_route_client::client::ClientHandle;
use ferrinet_route_client::route::Route;

use crate::metrics::Metrics;

/// Announces and withdraws routes. Cheap to clone. Announcements are counted by the route
/// client, so two objects announcing the same route need two withdrawals.
#[derive(Debug, Clone)]
pub struct Announcer {
    client: Option<ClientHandle>,
    metrics: Metrics,
}

impl Announcer {
    /// Through `client`, or locally only when `None`.
    pub fn new(client: Option<ClientHandle>, metrics: Metrics) -> Self {
        Self { client, metrics }
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
        if let Some(c) = &self.client
            && let Err(e) = c.withdraw(r)
        {
            tracing::debug!(route = %r, error = %e, "withdrawal not sent");
        }
    }
}
