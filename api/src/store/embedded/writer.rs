//! The embedded store's writer thread: it owns every write, so compares and revisions need no
//! locks. It drains what is queued, applies each request in order inside one redb transaction,
//! commits it durably, publishes the new revision to the watchers and only then answers each
//! request (group commit: a burst of writes costs one fsync per batch, and nothing is
//! confirmed before it is on disk).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableTable as _, Table};
use tokio::sync::{oneshot, watch};

use super::election::Registry;
use super::{COMPACT_REVISION, EVENTS, KV, META, REVISION};
use crate::store::types::{Action, Outcome, TxnOp};
use crate::store::{BackendError, Revision, StoreError, Txn};

/// Event kinds as stored in the log.
pub(super) const PUT: u8 = 0;
pub(super) const DELETE: u8 = 1;

/// Most requests committed in one transaction: bounds the latency of the first of a burst.
const MAX_BATCH: usize = 1024;

pub(super) enum Request {
    Txn {
        txn: Txn,
        done: oneshot::Sender<Result<Outcome, StoreError>>,
    },
    Compact {
        revision: Revision,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Commit what came before, then stop (and close the file once readers let go).
    Shutdown,
}

/// A request's own result, decided while applying it; a failed commit overrides it.
enum Applied {
    Txn(Result<Outcome, StoreError>),
    Compact(Result<(), StoreError>),
}

/// What the writer thread works with.
pub(super) struct Writer<'p> {
    pub db: Arc<Database>,
    pub path: &'p Path,
    /// Revisions of the log kept (0: all).
    pub history: u64,
    /// For fences: who leads which election.
    pub elections: Registry,
    /// Where watchers learn of new revisions.
    pub revision: watch::Sender<Revision>,
}

pub(super) fn run(w: Writer<'_>, rx: mpsc::Receiver<Request>) {
    let Writer {
        db,
        path,
        history,
        elections,
        revision: revision_tx,
    } = w;
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        for request in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            if matches!(request, Request::Shutdown) {
                stop = true;
                break;
            }
            batch.push(request);
            if batch.len() >= MAX_BATCH {
                break;
            }
        }
        if batch.is_empty() {
            continue;
        }
        match commit(&db, &batch, history, &elections) {
            Ok((applied, revision)) => {
                // Watchers learn of the revision before any writer is answered, so a watch
                // started after a confirmed write always covers it.
                revision_tx.send_if_modified(|r| {
                    let newer = revision > *r;
                    *r = revision.max(*r);
                    newer
                });
                for (request, result) in batch.into_iter().zip(applied) {
                    match (request, result) {
                        (Request::Txn { done, .. }, Applied::Txn(r)) => {
                            let _ = done.send(r);
                        }
                        (Request::Compact { done, .. }, Applied::Compact(r)) => {
                            let _ = done.send(r);
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                tracing::error!(path = %path.display(), error = %e, "store commit failed");
                let fail = || {
                    StoreError::backend(
                        format!("commit to {}", path.display()),
                        BackendError::Redb(e.clone()),
                    )
                };
                for request in batch {
                    match request {
                        Request::Txn { done, .. } => {
                            let _ = done.send(Err(fail()));
                        }
                        Request::Compact { done, .. } => {
                            let _ = done.send(Err(fail()));
                        }
                        Request::Shutdown => {}
                    }
                }
            }
        }
    }
    tracing::debug!(path = %path.display(), "store writer stopped");
}

fn commit(
    db: &Database,
    batch: &[Request],
    history: u64,
    elections: &Registry,
) -> Result<(Vec<Applied>, Revision), redb::Error> {
    let w = db.begin_write()?;
    let mut applied = Vec::with_capacity(batch.len());
    let revision;
    {
        let mut kv = w.open_table(KV)?;
        let mut events = w.open_table(EVENTS)?;
        let mut meta = w.open_table(META)?;
        let mut rev = meta.get(REVISION)?.map_or(0, |g| g.value());
        let mut compacted = meta.get(COMPACT_REVISION)?.map_or(0, |g| g.value());
        for request in batch {
            applied.push(match request {
                Request::Txn { txn, .. } => match &txn.fence {
                    // Checked here, in the writer, so that no write of a successor can come
                    // between the check and this transaction.
                    Some(fence) if !elections.holds(fence) => {
                        Applied::Txn(Err(StoreError::Fenced {
                            election: fence.election.clone(),
                        }))
                    }
                    _ => Applied::Txn(apply(&mut kv, &mut events, &mut rev, &txn.ops)?),
                },
                Request::Compact { revision, .. } => {
                    Applied::Compact(compact(&mut events, rev, &mut compacted, *revision)?)
                }
                Request::Shutdown => Applied::Compact(Ok(())),
            });
        }
        // Keep the last `history` revisions of the log.
        if history > 0 && rev > history && rev - history + 1 > compacted {
            let _ = compact(&mut events, rev, &mut compacted, rev - history + 1)?;
        }
        meta.insert(REVISION, rev)?;
        meta.insert(COMPACT_REVISION, compacted)?;
        revision = rev;
    }
    w.commit()?;
    Ok((applied, revision))
}

type KvTable<'t> = Table<'t, &'static str, (u64, u64, &'static [u8])>;
type EventTable<'t> = Table<'t, (u64, u32), (u8, &'static str, &'static [u8])>;

/// Applies one transaction at the next revision if all its compares hold. A conflict changes
/// nothing, since every compare is checked before the first change.
fn apply(
    kv: &mut KvTable<'_>,
    events: &mut EventTable<'_>,
    rev: &mut Revision,
    ops: &[TxnOp],
) -> Result<Result<Outcome, StoreError>, redb::Error> {
    for op in ops {
        let actual = kv.get(op.key.as_str())?.map_or(0, |g| g.value().1);
        if !op.expect.matches(actual) {
            return Ok(Err(StoreError::Conflict {
                key: op.key.clone(),
                expected: op.expect,
                actual,
            }));
        }
    }
    let next = *rev + 1;
    let mut index = 0u32;
    for op in ops {
        let key = op.key.as_str();
        match &op.action {
            Action::Put(value) => {
                let create = kv.get(key)?.map_or(next, |g| g.value().0);
                kv.insert(key, (create, next, value.as_slice()))?;
                events.insert((next, index), (PUT, key, value.as_slice()))?;
                index += 1;
            }
            Action::Delete => {
                if kv.remove(key)?.is_some() {
                    events.insert((next, index), (DELETE, key, [].as_slice()))?;
                    index += 1;
                }
            }
            Action::Check => {}
        }
    }
    let changed = index > 0;
    if changed {
        *rev = next;
    }
    Ok(Ok(Outcome {
        revision: *rev,
        changed,
    }))
}

/// Drops the log below `revision`, as etcd's compaction does: watching from `revision` on still
/// works, from earlier is [`StoreError::Compacted`].
fn compact(
    events: &mut EventTable<'_>,
    current: Revision,
    compacted: &mut Revision,
    revision: Revision,
) -> Result<Result<(), StoreError>, redb::Error> {
    if revision > current {
        return Ok(Err(StoreError::Invalid(format!(
            "compaction to revision {revision}, beyond the current revision {current}"
        ))));
    }
    if revision <= *compacted {
        return Ok(Err(StoreError::Compacted {
            requested: revision,
            compact_revision: *compacted,
        }));
    }
    events.retain_in(..(revision, 0), |_, _| false)?;
    *compacted = revision;
    Ok(Ok(()))
}
