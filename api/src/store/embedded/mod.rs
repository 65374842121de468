//! The embedded store: one redb file, for a single `ferrinet-api` process (development, small
//! regions, tests).
//!
//! It keeps etcd's model so that the two backends are interchangeable: a store-wide revision,
//! per-key create and mod revisions, and a log of changes (bounded: the last
//! [`EmbeddedOptions::history`] revisions, older ones are compacted) from which watches read.
//!
//! ```text
//!  Store::put/delete/txn/compact --Request (unbounded)--> writer thread --one durable txn per batch--> store.redb
//!              answer (oneshot) <-- after commit, after the revision was published
//!  Store::get/list ------------- spawn_blocking, read transaction (MVCC: never waits for the writer)
//!  Watch task <-- revision (tokio watch) -- writer; reads the log from its next revision
//! ```
//!
//! Elections are in-process (the process is the only replica, and its own lease): the oldest
//! campaign leads, the next takes over when it is dropped.

mod election;
mod log;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use tokio::sync::{oneshot, watch};

pub(crate) use election::Ticket;
use writer::Request;

use super::types::Outcome;
use super::{Campaign, KeyValue, Listing, Revision, StoreError, Txn, Watch};

/// key -> (create revision, mod revision, value).
const KV: TableDefinition<&str, (u64, u64, &[u8])> = TableDefinition::new("kv");
/// (revision, index in the revision) -> (kind, key, value).
const EVENTS: TableDefinition<(u64, u32), (u8, &str, &[u8])> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// The oldest revision the log still holds (0: nothing compacted yet).
const COMPACT_REVISION: &str = "compact_revision";

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Revisions of history kept for watches; a watch from an older revision gets
    /// [`StoreError::Compacted`]. 0 keeps everything (until [`Store::compact`](super::Store::compact)).
    pub history: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self { history: 10_000 }
    }
}

pub(crate) struct Embedded {
    path: PathBuf,
    db: Arc<Database>,
    requests: mpsc::Sender<Request>,
    revision: watch::Receiver<Revision>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    elections: election::Registry,
}

impl Embedded {
    /// Opens (or creates) the file; blocking.
    pub(crate) fn open(path: &Path, options: &EmbeddedOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                context: format!("create {}", dir.display()),
                source,
            })?;
        }
        let ctx = || format!("open {}", path.display());
        let db = Database::create(path).map_err(|e| StoreError::redb(ctx(), e))?;
        // Create the tables, so that reading a fresh file finds them.
        let w = db.begin_write().map_err(|e| StoreError::redb(ctx(), e))?;
        let revision = {
            w.open_table(KV).map_err(|e| StoreError::redb(ctx(), e))?;
            w.open_table(EVENTS)
                .map_err(|e| StoreError::redb(ctx(), e))?;
            let meta = w.open_table(META).map_err(|e| StoreError::redb(ctx(), e))?;
            let revision = meta.get(REVISION).map_err(|e| StoreError::redb(ctx(), e))?;
            revision.map_or(0, |g| g.value())
        };
        w.commit().map_err(|e| StoreError::redb(ctx(), e))?;
        let db = Arc::new(db);
        let (requests, rx) = mpsc::channel();
        let (revision_tx, revision_rx) = watch::channel(revision);
        let elections = election::Registry::default();
        let (thread_db, thread_path) = (db.clone(), path.to_owned());
        let (history, thread_elections) = (options.history, elections.clone());
        let writer = std::thread::Builder::new()
            .name("ferrinet-api-store".into())
            .spawn(move || {
                writer::run(
                    writer::Writer {
                        db: thread_db,
                        path: &thread_path,
                        history,
                        elections: thread_elections,
                        revision: revision_tx,
                    },
                    rx,
                )
            })
            .map_err(|source| StoreError::Io {
                context: "start the store writer thread".into(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            db,
            requests,
            revision: revision_rx,
            writer: Mutex::new(Some(writer)),
            elections,
        })
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<Outcome, StoreError> {
        self.submit(txn)?.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues `txn` for the writer now (it is applied in the order of submission) and returns
    /// the receiver of its result.
    pub(crate) fn submit(
        &self,
        txn: Txn,
    ) -> Result<oneshot::Receiver<Result<Outcome, StoreError>>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.requests
            .send(Request::Txn { txn, done })
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    pub(crate) async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.requests
            .send(Request::Compact { revision, done })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let (db, key, ctx) = (self.db.clone(), key.to_owned(), self.context("read"));
        blocking(move || {
            let r = db.begin_read().map_err(|e| StoreError::redb(&ctx, e))?;
            let kv = r.open_table(KV).map_err(|e| StoreError::redb(&ctx, e))?;
            let found = kv
                .get(key.as_str())
                .map_err(|e| StoreError::redb(&ctx, e))?;
            Ok(found.map(|g| {
                let (create_revision, mod_revision, value) = g.value();
                KeyValue {
                    key,
                    value: value.to_vec(),
                    create_revision,
                    mod_revision,
                }
            }))
        })
        .await
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let (db, prefix, ctx) = (self.db.clone(), prefix.to_owned(), self.context("list"));
        blocking(move || {
            let err = |e: redb::Error| StoreError::redb(&ctx, e);
            let r = db.begin_read().map_err(|e| err(e.into()))?;
            let meta = r.open_table(META).map_err(|e| err(e.into()))?;
            let revision = meta
                .get(REVISION)
                .map_err(|e| err(e.into()))?
                .map_or(0, |g| g.value());
            let kv = r.open_table(KV).map_err(|e| err(e.into()))?;
            let mut items = Vec::new();
            for entry in kv.range(prefix.as_str()..).map_err(|e| err(e.into()))? {
                let (k, v) = entry.map_err(|e| err(e.into()))?;
                let key = k.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                let (create_revision, mod_revision, value) = v.value();
                items.push(KeyValue {
                    key: key.to_owned(),
                    value: value.to_vec(),
                    create_revision,
                    mod_revision,
                });
            }
            Ok(Listing { revision, items })
        })
        .await
    }

    pub(crate) fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    pub(crate) fn watch(&self, prefix: &str, from: Revision) -> Watch {
        let mut revision = self.revision.clone();
        // "From now" is fixed here, not when the task first runs: a write confirmed after
        // `watch` returned is always seen.
        let from = if from == 0 {
            *revision.borrow_and_update() + 1
        } else {
            from
        };
        log::spawn_watch(
            Arc::downgrade(&self.db),
            self.path.clone(),
            prefix.to_owned(),
            from,
            revision,
        )
    }

    pub(crate) fn campaign(&self, election: &str, identity: &str) -> Campaign {
        self.elections.campaign(election, identity)
    }

    pub(crate) fn leader(&self, election: &str) -> Option<String> {
        self.elections.leader(election)
    }

    /// Commits what is queued and stops the writer; the file closes once the last reader
    /// (a clone of the store, a watch) lets go of it.
    pub(crate) async fn close(&self) -> Result<(), StoreError> {
        let _ = self.requests.send(Request::Shutdown);
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            blocking(move || {
                writer
                    .join()
                    .map_err(|_| StoreError::protocol("close the store", "writer thread panicked"))
            })
            .await?;
        }
        // Reads and watch pages in flight hold the database for a moment; waiting for them
        // lets a caller that held the last handle reopen the file at once.
        let deadline = tokio::time::Instant::now() + CLOSE_PATIENCE;
        while Arc::strong_count(&self.db) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn context(&self, what: &str) -> String {
        format!("{what} {}", self.path.display())
    }
}

/// Runs blocking redb work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io {
            context: "store read".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// How long [`Embedded::close`] waits for in-flight reads to let go of the file, at most.
const CLOSE_PATIENCE: Duration = Duration::from_secs(10);
