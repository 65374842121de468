//! The region API service: the region actor (the only writer of the region's objects), the
//! allocator behind it, and the gRPC services in front of it.
//!
//! ```text
//!  RegionApi / NodeSync (gRPC, mutual TLS: identity -> role, access.rs)
//!    | writes: RegionMsg (call)                    | reads: Get / List / Watch / WatchPlaced
//!    v                                             v        straight from the store (any replica)
//!  RegionActor -- AllocatorMsg (call) --> AllocatorActor --fenced txn--> Store
//!    | owns the Inventory (every object), the realized node objects per network
//!    | one message at a time: validate, allocate, realize (pure), write the difference
//!    +--------------------------- txn: objects + placed node objects ---------> Store
//!    +-- records --> DnsHandle (embedded DNS server)
//!  Tick task (1 s) --RegionMsg::Tick--> leases, peering TTLs, load-balancer re-placement
//!  follower: writes --forward.rs (gRPC, replica certificate)--> the leader's services
//! ```
//!
//! A write is answered only once everything it changed is in the store: the object, the
//! objects whose status follows from it (targets, peerings, NAT usage), the node objects placed
//! because of it and its allocations. Writes are group-committed: each message changes memory
//! and queues a Flush; the messages already in the mailbox are handled before that Flush, which
//! realizes once, writes once, waits for the allocator's writes and answers them all. The actor keeps in memory exactly what the store holds; when a write
//! fails it reloads from the store, and allocations that no object owns any more (a crash
//! between allocating and writing) are released at start.

pub mod access;
mod actor;
mod allocate;
mod batch;
mod commit;
pub mod error;
pub mod forward;
pub mod grpc;
mod inventory;
pub mod keys;
mod nodes;
mod public_prefix;
pub mod tls;
pub mod watch;

use std::time::Duration;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;
use ractor::{ActorRef, RpcReplyPort};

pub use actor::{RegionActor, RegionArgs};
pub use error::ApiError;

use crate::dns::{DnsHandle, Zone};

/// How the region behaves (from the configuration file).
#[derive(Debug, Clone)]
pub struct RegionSettings {
    /// How long an unmatched peering item lives before it is dropped.
    pub peering_ttl: Duration,
    /// How long a node's registration holds without a heartbeat.
    pub lease_ttl: Duration,
    /// Nodes that carry each load balancer unless its spec says otherwise.
    pub lb_replicas: u32,
    /// The DNS zone of interface names, with the server's record handle.
    pub dns: Option<(Zone, DnsHandle)>,
}

impl Default for RegionSettings {
    fn default() -> Self {
        Self {
            peering_ttl: Duration::from_secs(24 * 3600),
            lease_ttl: Duration::from_secs(10),
            lb_replicas: 2,
            dns: None,
        }
    }
}

type Reply<T> = RpcReplyPort<Result<T, ApiError>>;

/// Messages of the region actor: every write of the region API.
#[derive(Debug)]
pub enum RegionMsg {
    /// Create an object (validated here).
    Create(pb::Object, Reply<pb::Object>),
    /// Replace an object's spec and labels.
    Update(pb::Object, Reply<pb::Object>),
    /// Delete an object (if the `u64` is non-zero, only at that resource version).
    Delete(pb::Kind, crate::resources::ObjKey, u64, Reply<pb::Object>),
    /// A node registers (or registers again).
    Register(pb::RegisterRequest, Reply<pb::RegisterResponse>),
    /// A node renews its lease.
    Heartbeat(String, Reply<pb::HeartbeatResponse>),
    /// A node reports the status of objects placed on it.
    Report(String, Vec<node_pb::Object>, Reply<()>),
    /// Timer: leases, peering TTLs, re-placement.
    Tick,
    /// Write what the messages before it changed, then answer them (group commit).
    Flush,
}

/// Calls the region actor and waits for its answer.
pub async fn call<T: Send + 'static>(
    region: &ActorRef<RegionMsg>,
    msg: impl FnOnce(Reply<T>) -> RegionMsg,
) -> Result<T, ApiError> {
    match region.call(msg, None).await {
        Ok(ractor::rpc::CallResult::Success(r)) => r,
        _ => Err(ApiError::Unavailable { leader: None }),
    }
}
