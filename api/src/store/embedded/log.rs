//! Watches of the embedded store: each is a task that reads the change log from its next
//! revision whenever the writer publishes a newer one. Reading the log rather than receiving
//! broadcast events means a slow watcher never makes the writer wait or drop anything: it only
//! falls behind, and once its next revision is compacted it gets [`StoreError::Compacted`],
//! exactly as an etcd watcher would.

use std::path::PathBuf;
use std::sync::Weak;

use redb::{Database, ReadableDatabase as _};
use tokio::sync::{mpsc, watch};

use super::writer::{DELETE, PUT};
use super::{COMPACT_REVISION, EVENTS, META, REVISION, blocking};
use crate::store::watch::WATCH_BUFFER;
use crate::store::{EventKind, Revision, StoreError, Watch, WatchEvent};

/// Log entries read per page: bounds a page's memory; a revision is never split.
const PAGE: usize = 1024;

pub(super) fn spawn_watch(
    db: Weak<Database>,
    path: PathBuf,
    prefix: String,
    from: Revision,
    revision: watch::Receiver<Revision>,
) -> Watch {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let task = tokio::spawn(run(db, path, prefix, from, revision, tx));
    Watch::new(rx, task.abort_handle())
}

async fn run(
    db: Weak<Database>,
    path: PathBuf,
    prefix: String,
    mut from: Revision,
    mut revision: watch::Receiver<Revision>,
    tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
) {
    loop {
        let current = *revision.borrow_and_update();
        if from <= current {
            // Holding the database only while reading lets `close` release the file.
            let Some(db) = db.upgrade() else {
                let _ = tx.send(Err(StoreError::Closed)).await;
                return;
            };
            let (prefix, path) = (prefix.clone(), path.clone());
            match blocking(move || read(&db, &path, &prefix, from)).await {
                Ok((events, next)) => {
                    for event in events {
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    from = next;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            continue;
        }
        if revision.changed().await.is_err() {
            let _ = tx.send(Err(StoreError::Closed)).await;
            return;
        }
    }
}

/// The events under `prefix` from revision `from` on (at most about a page of the log), and
/// the revision to read from next.
fn read(
    db: &Database,
    path: &std::path::Path,
    prefix: &str,
    from: Revision,
) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
    let ctx = format!("watch {}", path.display());
    let err = |e: redb::Error| StoreError::redb(&ctx, e);
    let r = db.begin_read().map_err(|e| err(e.into()))?;
    let meta = r.open_table(META).map_err(|e| err(e.into()))?;
    let get = |name| -> Result<Revision, StoreError> {
        Ok(meta
            .get(name)
            .map_err(|e| err(e.into()))?
            .map_or(0, |g| g.value()))
    };
    let (current, compacted) = (get(REVISION)?, get(COMPACT_REVISION)?);
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compact_revision: compacted,
        });
    }
    let log = r.open_table(EVENTS).map_err(|e| err(e.into()))?;
    let mut events = Vec::new();
    let (mut scanned, mut last) = (0usize, None);
    for entry in log.range((from, 0)..).map_err(|e| err(e.into()))? {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let (rev, _) = k.value();
        if scanned >= PAGE && last != Some(rev) {
            break;
        }
        scanned += 1;
        last = Some(rev);
        let (kind, key, value) = v.value();
        if !key.starts_with(prefix) {
            continue;
        }
        let kind = match kind {
            PUT => EventKind::Put,
            DELETE => EventKind::Delete,
            other => {
                return Err(StoreError::protocol(
                    ctx.clone(),
                    format!("log entry of revision {rev} has unknown kind {other}"),
                ));
            }
        };
        events.push(WatchEvent {
            revision: rev,
            kind,
            key: key.to_owned(),
            value: value.to_vec(),
        });
    }
    let next = match last {
        Some(rev) if scanned >= PAGE => rev + 1,
        _ => from.max(current + 1),
    };
    Ok((events, next))
}
