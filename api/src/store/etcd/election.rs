//! Leader election on etcd with a lease and a key per candidate, as etcd's own `concurrency`
//! package does it (and so `etcdctl elect` shows the same leader): each candidate holds a
//! lease and puts `ELECTION/<lease id in hex>` = identity under it; the candidate whose key is
//! oldest (lowest create revision) leads, and everyone watches the election's prefix to learn
//! the leader. This uses only KV, Watch and Lease, which the store needs anyway, rather than
//! etcd's separate `v3election` service, and keeps the stepping-down logic here, where it can be
//! conservative:
//!
//! - A candidate leads only while its lease is known alive: until the send time of the last
//!   answered keep-alive plus the TTL etcd granted. That moment is never later than the lease's
//!   expiry on the server, so a leader that cannot reach etcd steps down before anyone else can
//!   take over.
//! - A lost connection does not end the candidacy: the task reconnects and keeps the same lease
//!   (and so its place) if etcd still has it, else grants a new one and queues again.
//! - Resigning steps down first, then revokes the lease, so the next candidate takes over at
//!   once instead of after the TTL.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_stream::wrappers::ReceiverStream;

use super::pb::mvccpb::event::EventType;
use super::{Backoff, Etcd, prefix_end, rpc, to_revision, utf8};
use crate::store::campaign::Resign;
use crate::store::types::FenceKind;
use crate::store::{Campaign, Fence, LeaderState, StoreError};

/// How long resigning waits for etcd to revoke the lease; past it the lease just expires.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn spawn(etcd: Etcd, election: &str, identity: &str, ttl: Duration) -> Campaign {
    let (state, rx) = watch::channel(LeaderState::default());
    let (stop_tx, stop_rx) = oneshot::channel();
    // etcd counts TTLs in whole seconds: round up, never below what was asked.
    let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let candidate = Candidate {
        etcd,
        election: election.to_owned(),
        prefix: format!("{election}/"),
        identity: identity.to_owned(),
        ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        state,
    };
    tokio::spawn(candidate.run(stop_rx));
    Campaign::new(
        election.to_owned(),
        identity.to_owned(),
        rx,
        Resign::Task(stop_tx),
    )
}

struct Candidate {
    etcd: Etcd,
    election: String,
    /// `ELECTION/`.
    prefix: String,
    identity: String,
    ttl_secs: i64,
    state: watch::Sender<LeaderState>,
}

/// The candidate's lease, kept across sessions (connections) while etcd still has it.
struct Lease {
    id: i64,
    ttl: Duration,
    /// Until when the lease is known alive.
    deadline: Instant,
}

/// One candidate key of the election.
struct Entry {
    create_revision: i64,
    key: String,
    identity: String,
}

impl Candidate {
    async fn run(self, mut stop: oneshot::Receiver<oneshot::Sender<()>>) {
        let mut lease = None;
        let mut backoff = Backoff::new();
        let done = 'campaign: loop {
            let result = tokio::select! {
                biased;
                s = &mut stop => break 'campaign s.ok(),
                r = self.session(&mut lease) => r,
            };
            match result {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::debug!(election = %self.prefix, error = %e, "etcd campaign interrupted")
                }
            }
            let wake = Instant::now() + backoff.next_delay();
            loop {
                let deadline = lease.as_ref().map(|l: &Lease| l.deadline);
                let pending = deadline.filter(|d| *d > Instant::now());
                if pending.is_none() {
                    self.step_down();
                }
                tokio::select! {
                    biased;
                    s = &mut stop => break 'campaign s.ok(),
                    () = sleep_until(wake) => break,
                    () = sleep_until(pending.unwrap_or(wake)), if pending.is_some() => {}
                }
            }
        };
        // No moment with two leaders: step down before the lease (and key) go.
        self.step_down();
        if let Some(lease) = lease {
            let mut client = self.etcd.lease.clone();
            let revoke = client.lease_revoke(rpc::LeaseRevokeRequest { id: lease.id });
            let _ = tokio::time::timeout(REVOKE_TIMEOUT, revoke).await;
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Loses leadership locally (the lease can no longer be vouched for).
    fn step_down(&self) {
        self.state.send_if_modified(|s| {
            let was = s.is_leader;
            if was {
                *s = LeaderState::default();
            }
            was
        });
    }

    fn publish(&self, candidates: &[Entry], key: &str, deadline: Instant) {
        let first = candidates.first();
        let ours = first.filter(|e| e.key == key);
        let next = match ours {
            Some(e) if Instant::now() < deadline => LeaderState {
                is_leader: true,
                leader: Some(self.identity.clone()),
                // The key is never changed: its mod revision is its create revision for as
                // long as it (and so the lease, and so the leadership) lasts.
                fence: Some(Fence {
                    election: self.election.clone(),
                    kind: FenceKind::Key {
                        key: e.key.clone(),
                        revision: to_revision(e.create_revision),
                    },
                }),
            },
            Some(_) => LeaderState::default(),
            None => LeaderState {
                is_leader: false,
                leader: first.map(|e| e.identity.clone()),
                fence: None,
            },
        };
        self.state.send_if_modified(|s| {
            let changed = *s != next;
            *s = next;
            changed
        });
    }

    /// One connection's worth of campaigning. `Ok` when the candidacy must start over (key or
    /// lease gone), `Err` when the connection failed.
    async fn session(&self, slot: &mut Option<Lease>) -> Result<(), StoreError> {
        let ctx = self.etcd.context(&format!("campaign in {}", self.prefix));
        let grpc = |s| StoreError::grpc(&ctx, s);
        let mut lease_client = self.etcd.lease.clone();
        let lease = match slot {
            Some(lease) => lease,
            None => {
                let at = Instant::now();
                let granted = lease_client
                    .lease_grant(rpc::LeaseGrantRequest {
                        ttl: self.ttl_secs,
                        id: 0,
                    })
                    .await
                    .map_err(grpc)?
                    .into_inner();
                if !granted.error.is_empty() || granted.ttl <= 0 {
                    return Err(StoreError::protocol(
                        &ctx,
                        format!("lease not granted: {:?}", granted.error),
                    ));
                }
                slot.insert(Lease {
                    id: granted.id,
                    ttl: secs(granted.ttl),
                    deadline: at + secs(granted.ttl),
                })
            }
        };
        // etcd sends the keep-alive stream's response headers with its first answer, so the
        // first keep-alive must be queued before the stream is opened. It also tells whether a
        // lease kept from an earlier connection (and so its place in the queue) is still alive.
        let closed = || StoreError::protocol(&ctx, "etcd closed the keep-alive stream");
        let (keepalive, rx) = mpsc::channel(4);
        let at = Instant::now();
        keepalive
            .send(rpc::LeaseKeepAliveRequest { id: lease.id })
            .await
            .map_err(|_| closed())?;
        let mut answers = lease_client
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(grpc)?
            .into_inner();
        let answer = answers.message().await.map_err(grpc)?.ok_or_else(closed)?;
        if answer.ttl <= 0 {
            *slot = None;
            self.step_down();
            return Ok(());
        }
        lease.deadline = lease.deadline.max(at + secs(answer.ttl));
        let mut sent = VecDeque::new();
        let key = format!("{}{:x}", self.prefix, lease.id);
        let mut kv = self.etcd.kv.clone();
        kv.txn(rpc::TxnRequest {
            compare: vec![rpc::Compare {
                result: rpc::compare::CompareResult::Equal.into(),
                target: rpc::compare::CompareTarget::Create.into(),
                key: key.as_bytes().to_vec(),
                target_union: Some(rpc::compare::TargetUnion::CreateRevision(0)),
                range_end: Vec::new(),
            }],
            success: vec![rpc::RequestOp {
                request: Some(rpc::request_op::Request::RequestPut(rpc::PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: self.identity.as_bytes().to_vec(),
                    lease: lease.id,
                    prev_kv: false,
                })),
            }],
            failure: Vec::new(),
        })
        .await
        .map_err(grpc)?;
        let listed = kv
            .range(rpc::RangeRequest {
                key: self.prefix.as_bytes().to_vec(),
                range_end: prefix_end(&self.prefix),
                ..Default::default()
            })
            .await
            .map_err(grpc)?
            .into_inner();
        let mut candidates = Vec::with_capacity(listed.kvs.len());
        for kv in listed.kvs {
            candidates.push(Entry {
                create_revision: kv.create_revision,
                key: utf8(kv.key, &ctx)?,
                identity: utf8(kv.value, &ctx)?,
            });
        }
        candidates.sort_by_key(|e| e.create_revision);
        if !candidates.iter().any(|e| e.key == key) {
            return Ok(());
        }
        let from = listed.header.map_or(0, |h| h.revision) + 1;
        let (watch_requests, rx) = mpsc::channel(1);
        watch_requests
            .send(rpc::WatchRequest {
                request_union: Some(rpc::watch_request::RequestUnion::CreateRequest(
                    rpc::WatchCreateRequest {
                        key: self.prefix.as_bytes().to_vec(),
                        range_end: prefix_end(&self.prefix),
                        start_revision: from,
                        ..Default::default()
                    },
                )),
            })
            .await
            .map_err(|_| StoreError::protocol(&ctx, "watch request stream closed"))?;
        let mut changes = self
            .etcd
            .watch
            .clone()
            .watch(ReceiverStream::new(rx))
            .await
            .map_err(grpc)?
            .into_inner();
        self.publish(&candidates, &key, lease.deadline);
        let mut tick = tokio::time::interval(lease.ttl / 3);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.reset();
        loop {
            let pending = Some(lease.deadline).filter(|d| *d > Instant::now());
            tokio::select! {
                _ = tick.tick() => {
                    sent.push_back(Instant::now());
                    keepalive
                        .send(rpc::LeaseKeepAliveRequest { id: lease.id })
                        .await
                        .map_err(|_| closed())?;
                }
                answer = answers.message() => {
                    let answer = answer.map_err(grpc)?.ok_or_else(closed)?;
                    let at = sent.pop_front();
                    if answer.ttl <= 0 {
                        *slot = None;
                        self.step_down();
                        return Ok(());
                    }
                    if let Some(at) = at {
                        lease.deadline = lease.deadline.max(at + secs(answer.ttl));
                    }
                }
                change = changes.message() => {
                    let change = change
                        .map_err(grpc)?
                        .ok_or_else(|| StoreError::protocol(&ctx, "etcd closed the watch"))?;
                    if change.canceled || change.compact_revision > 0 {
                        return Err(StoreError::protocol(&ctx, "etcd cancelled the election watch"));
                    }
                    for event in change.events {
                        let Some(kv) = event.kv else { continue };
                        let changed = utf8(kv.key, &ctx)?;
                        candidates.retain(|e| e.key != changed);
                        if event.r#type == EventType::Delete as i32 {
                            if changed == key {
                                // Deleted (by an operator, say): queue again under the lease.
                                self.step_down();
                                return Ok(());
                            }
                        } else {
                            candidates.push(Entry {
                                create_revision: kv.create_revision,
                                key: changed,
                                identity: utf8(kv.value, &ctx)?,
                            });
                            candidates.sort_by_key(|e| e.create_revision);
                        }
                    }
                }
                () = sleep_until(pending.unwrap_or_else(Instant::now)), if pending.is_some() => {}
            }
            self.publish(&candidates, &key, lease.deadline);
        }
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}
