//! What the object actors share: the context they run in, their conditions, and the retry
//! schedule.
//!
//! Object actors reconcile level-triggered: each pass compares the desired spec with what
//! dpservice reports and applies the difference. A pass that fails somewhere is retried after a
//! jittered, doubling delay; a pass that succeeds is repeated after the re-check interval, so
//! drift (someone else changing dpservice) is repaired too. Timers carry a token: a newer
//! schedule makes older timers no-ops.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::Duration;

use ferrinet_proto::node::v1 as pb;
use ferrinet_route_client::client::backoff::Backoff;
use ractor::ActorRef;

use crate::announce::Announcer;
use crate::api::ApiMsg;
use crate::dataplane::client::Dp;
use crate::metrics::Metrics;

/// What every object actor needs, apart from the ApiActor's reference.
#[derive(Debug, Clone)]
pub struct Shared {
    /// dpservice.
    pub dp: Dp,
    /// Route announcements.
    pub announcer: Announcer,
    /// VNI of public announcements.
    pub public_vni: u32,
    /// Periodic re-check.
    pub recheck: Duration,
    /// Retry delays.
    pub backoff: (Duration, Duration),
    /// Default route next hop while none is learned.
    pub router: Option<std::net::Ipv6Addr>,
    /// IPv6 overlay on.
    pub ipv6: bool,
    /// Load-balancer targets outside this underlay prefix are ignored.
    pub prefer_network: Option<ipnet::Ipv6Net>,
    /// Metrics.
    pub metrics: Metrics,
}

/// [`Shared`] plus the ApiActor to report to.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The shared part.
    pub shared: Shared,
    /// Where status and deletions are reported.
    pub api: ActorRef<ApiMsg>,
}

impl Deref for Ctx {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// When the next pass runs.
#[derive(Debug)]
pub struct Schedule {
    backoff: Backoff,
    recheck: Duration,
    token: u64,
}

impl Schedule {
    pub fn new(shared: &Shared) -> Self {
        Self {
            backoff: Backoff::new(shared.backoff.0, shared.backoff.1),
            recheck: shared.recheck,
            token: 0,
        }
    }

    /// After a pass: the delay to the next one and its token.
    pub fn next(&mut self, ok: bool) -> (Duration, u64) {
        self.token += 1;
        let delay = if ok {
            self.backoff.reset();
            self.recheck
        } else {
            self.backoff.next_delay()
        };
        (delay, self.token)
    }

    /// Whether a timer with `token` is the current one.
    pub fn is_current(&self, token: u64) -> bool {
        token == self.token
    }

    /// A new desired state: retry delays start over.
    pub fn reset(&mut self) {
        self.backoff.reset();
    }
}

/// A digest of a message, to tell whether a status changed without keeping a copy of it.
pub fn digest(m: &impl prost::Message) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.encode_to_vec().hash(&mut h);
    h.finish()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One condition per feature, in a fixed order, keeping transition times.
#[derive(Debug, Clone, Default)]
pub struct Conditions(BTreeMap<&'static str, pb::Condition>);

impl Conditions {
    /// Sets one condition; its transition time changes only when `ok` does.
    pub fn set(&mut self, kind: &'static str, ok: bool, reason: &str, message: impl Into<String>) {
        let message = message.into();
        match self.0.get_mut(kind) {
            Some(c) => {
                if c.ok != ok {
                    c.last_transition_unix_ms = now_ms();
                }
                c.ok = ok;
                c.reason = reason.to_string();
                c.message = message;
            }
            None => {
                self.0.insert(
                    kind,
                    pb::Condition {
                        r#type: kind.to_string(),
                        ok,
                        reason: reason.to_string(),
                        message,
                        last_transition_unix_ms: now_ms(),
                    },
                );
            }
        }
    }

    /// Sets a condition from a step's outcome.
    pub fn outcome<E: std::error::Error>(&mut self, kind: &'static str, r: &Result<(), E>) {
        match r {
            Ok(()) => self.set(kind, true, "Programmed", ""),
            Err(e) => self.set(kind, false, "DataplaneError", crate::error_chain(e)),
        }
    }

    /// Whether every condition is true.
    pub fn all_ok(&self) -> bool {
        self.0.values().all(|c| c.ok)
    }

    /// The conditions, for the status.
    pub fn to_vec(&self) -> Vec<pb::Condition> {
        self.0.values().cloned().collect()
    }

    /// Forgets every condition.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}
