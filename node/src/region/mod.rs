//! The region sync: with `[region_api]` configured, the node registers with the region API's
//! `NodeSync` service, keeps its lease, applies the node objects the region places on it
//! through its own ApiActor (as an operator would), and reports their status back.
//!
//! ```text
//!                        RegionSync actor (one message at a time; owns the placed set, the
//!                        last revision applied, refusals, what was reported)
//!  session tasks, one set per session (tagged with its number):
//!   open:      connect, Register     --Connected / Registered(client) / Lost--> actor
//!   heartbeat: Heartbeat every heartbeat_ms            --HeartbeatOk / Lost--> actor
//!   watch:     WatchPlaced(from revision)                  --Placed / Lost--> actor
//!   report:    ReportStatus(batch)                            --Reported--> actor
//!  local task: ApiMsg::Watch (the node's objects)   --Local / LocalReset / LocalEnded--> actor
//!  timers:     Flush (every status_interval_ms), Connect (back-off), Retry (back-off)
//!  actor --ApiMsg::List / Create / Update / Delete--> ApiActor
//! ```
//!
//! - Sessions: any failure (the region unreachable, a heartbeat refused because the region
//!   forgot the node, the watch stream ending) ends the session; a new one connects, registers
//!   and watches again after a jittered, doubling delay. The watch resumes from the revision
//!   after the last one applied, so nothing is lost or applied twice; OUT_OF_RANGE (the region
//!   compacted that far) starts from 0, and the snapshot's SYNCED then removes what it lacks.
//! - Applying is level-triggered: events only change the placed set and queue one `Apply`,
//!   which lists the node's objects and makes the difference ([`apply::plan`], pure). An object
//!   the node refuses is reported and does not stop anything; objects still being deleted or
//!   networks still in use are planned again after a back-off.
//! - Status: the node's own watch feeds the managed objects' statuses; every
//!   `status_interval_ms` the changed ones go out in one ReportStatus, and after each new
//!   session all of them once.

pub mod apply;
pub mod report;
mod session;
mod sync;

use std::time::Duration;

use ferrinet_proto::api::v1 as api;
use ferrinet_proto::node::v1 as pb;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

use crate::api::ApiMsg;
use crate::config::RegionApi;
use session::{Client, Connector};
pub use sync::RegionSync;

/// Why the region sync cannot start, or why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// `region_api.ca/cert/key` cannot be used.
    #[error("region API TLS")]
    Tls(#[from] ferrinet_route_client::tls::TlsError),
    /// `region_api.address` does not make a URI.
    #[error("invalid region API address {address:?}")]
    Address {
        /// As configured.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// Connecting failed (TCP, TLS, HTTP/2).
    #[error("cannot connect to the region API at {address}")]
    Connect {
        /// As configured.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The region API refused or failed a call.
    #[error("{rpc} failed")]
    Rpc {
        /// The call.
        rpc: &'static str,
        /// Its status.
        #[source]
        source: tonic::Status,
    },
    /// The region API did not answer in time.
    #[error("{rpc}: no answer within {after:?}")]
    Timeout {
        /// The call.
        rpc: &'static str,
        /// The bound.
        after: Duration,
    },
    /// The region API ended the WatchPlaced stream.
    #[error("the region API ended the WatchPlaced stream")]
    StreamEnded,
    /// The actor cannot start.
    #[error("cannot start the region sync actor")]
    Spawn(#[source] ractor::SpawnErr),
}

impl RegionError {
    /// The gRPC code of a failed call.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Rpc { source, .. } => Some(source.code()),
            _ => None,
        }
    }
}

/// Where the sync with the region stands; every change is logged in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting for the node's first full resync.
    Idle,
    /// Connecting.
    Connecting,
    /// Connected, registering.
    Connected,
    /// Registered, the watch is catching up.
    Registered,
    /// The placed set is complete (the snapshot's SYNCED, or a watch resumed after it); the
    /// revision is logged.
    Synced,
    /// The session ended (the error); a new one follows after a back-off.
    Lost(String),
}

/// Messages of the RegionSync actor.
pub enum RegionMsg {
    /// The node finished its first full resync: start talking to the region.
    NodeReady,
    /// Timer: open session `u64` (stale if another one started meanwhile).
    Connect(u64),
    /// The session's connection is up.
    Connected(u64),
    /// The session registered; the lease's TTL.
    Registered(u64, Client, Duration),
    /// A heartbeat of the session succeeded.
    HeartbeatOk(u64),
    /// An event of the session's watch.
    Placed(u64, api::PlacedEvent),
    /// The session ended.
    Lost(u64, RegionError),
    /// Plan and apply now: queued behind the events that asked for it.
    Apply,
    /// Timer: plan again if the token is current.
    Retry(u64),
    /// A change of the node's own objects.
    Local(pb::WatchEvent),
    /// The node forgot the revision the local watch resumed from: its snapshot follows.
    LocalReset,
    /// The local watch ended (cut off for lagging): watch again.
    LocalEnded,
    /// Timer: send the statuses that changed.
    Flush,
    /// A ReportStatus finished: what it carried (key, digest) and how it went.
    Reported(Vec<(apply::Key, u64)>, Result<(), RegionError>),
}

impl std::fmt::Debug for RegionMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::NodeReady => "node-ready",
            Self::Connect(_) => "connect",
            Self::Connected(_) => "connected",
            Self::Registered(..) => "registered",
            Self::HeartbeatOk(_) => "heartbeat-ok",
            Self::Placed(..) => "placed",
            Self::Lost(..) => "lost",
            Self::Apply => "apply",
            Self::Retry(_) => "retry",
            Self::Local(_) => "local",
            Self::LocalReset => "local-reset",
            Self::LocalEnded => "local-ended",
            Self::Flush => "flush",
            Self::Reported(..) => "reported",
        };
        f.write_str(s)
    }
}

/// What the region sync needs from the node.
#[derive(Debug)]
pub struct RegionArgs {
    /// `[region_api]`.
    pub config: RegionApi,
    /// This node's name (its certificate's identity).
    pub node_name: String,
    /// The VF pool's total.
    pub vf_capacity: u32,
    /// The node's ApiActor.
    pub api: ActorRef<ApiMsg>,
    /// True once the node's first full resync is done.
    pub node_synced: watch::Receiver<bool>,
    /// Reconnect and retry delays (min, max).
    pub backoff: (Duration, Duration),
}

/// A running region sync.
#[derive(Debug)]
pub struct Region {
    /// The actor.
    pub actor: ActorRef<RegionMsg>,
    /// Where the sync stands.
    pub state: watch::Receiver<LinkState>,
}

impl Region {
    /// Starts the actor; it connects once the node is ready.
    pub async fn start(args: RegionArgs) -> Result<Self, RegionError> {
        let connector = Connector::new(&args.config)?;
        if args.config.tls.is_none() {
            tracing::warn!(address = %args.config.address, "region API without TLS: for tests and development only (set region_api.ca/cert/key)");
        }
        let (tx, state) = watch::channel(LinkState::Idle);
        let (actor, _) = Actor::spawn(None, RegionSync, sync::Start::new(args, connector, tx))
            .await
            .map_err(RegionError::Spawn)?;
        Ok(Self { actor, state })
    }

    /// Stops the actor and its tasks (the region notices when the lease runs out).
    pub async fn stop(self) {
        let _ = self
            .actor
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
    }
}
