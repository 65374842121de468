//! The region API's storage: a small key-value store with revisions, compare-and-swap,
//! transactions, watches and leader election, with two backends behind one handle, [`Store`]:
//!
//! - **embedded** ([`Store::open_embedded`]): one redb file, for a single `ferrinet-api`
//!   process. Writes are durable when confirmed.
//! - **etcd** ([`Store::connect_etcd`]): etcd's v3 API, for several `ferrinet-api` replicas over
//!   one etcd cluster, one of them elected leader.
//!
//! Both follow etcd's model, and one conformance suite (`api/tests/store_conformance`) runs
//! against both, so code written against [`Store`] does not care which it has:
//!
//! - Keys are `/`-separated absolute paths (`/ferrinet/v1/networks/<ns>/<name>`); prefixes end
//!   with `/`. Values are bytes (the API stores prost-encoded messages).
//! - A store-wide [`Revision`] grows with every write; a key carries the revision that created
//!   it and the one that last changed it. Writes take an [`Expect`] on the key's mod revision
//!   (compare-and-swap: [`Expect::Absent`] to create, [`Expect::ModRevision`] to update what was
//!   read) and fail with [`StoreError::Conflict`] when it does not hold.
//! - A [`Txn`] applies several puts, deletes and checks atomically at one revision: the
//!   allocator persists a decision and everything it touches at once, before acknowledging it.
//! - [`Store::list`] returns a snapshot with its revision; a [`Store::watch`] from the revision
//!   after it sees every later change exactly once, across reconnections. History is bounded:
//!   a watch from a compacted revision fails with [`StoreError::Compacted`] (list again).
//! - [`Store::campaign`] enters a named election and returns a [`Campaign`] whose
//!   [`LeaderState`] says whether this replica leads and who does (to forward writes to).
//!   Dropping it resigns. The leader [fences](Txn::fenced) its transactions, so that they
//!   apply only while it still leads.
//!
//! Every operation is async; the embedded store's blocking redb calls run on a writer thread
//! (writes, group-committed) and the blocking pool (reads), never on the runtime's workers.

mod campaign;
mod embedded;
mod error;
mod etcd;
mod types;
mod watch;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use campaign::{Campaign, LeaderState};
pub use embedded::EmbeddedOptions;
pub use error::{BackendError, StoreError};
pub use etcd::{EtcdConfig, EtcdTls};
pub use types::{
    EventKind, Expect, Fence, KeyValue, Listing, MAX_FENCED_TXN_OPS, MAX_KEY_LEN, MAX_TXN_OPS,
    MAX_VALUE_LEN, Revision, Txn, WatchEvent, validate_key, validate_prefix,
};
pub use watch::Watch;

use types::{validate_campaign, validate_value};

/// A transaction handed to a backend, whose result is still to come.
enum Submitted {
    Embedded(tokio::sync::oneshot::Receiver<Result<types::Outcome, StoreError>>),
    Etcd(tokio::task::JoinHandle<Result<types::Outcome, StoreError>>),
}

/// A handle on the store; cheap to clone, shared by every task of the process.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

// One per process, behind an Arc: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Embedded(embedded::Embedded),
    Etcd(etcd::Etcd),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the embedded store in the redb file `path`, creating its directory.
    pub async fn open_embedded(
        path: impl AsRef<Path>,
        options: EmbeddedOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let embedded =
            embedded::blocking(move || embedded::Embedded::open(&path, &options)).await?;
        Ok(Self {
            backend: Arc::new(Backend::Embedded(embedded)),
        })
    }

    /// Connects to etcd and checks that it answers (within `config.connect_timeout`). Later
    /// losses of the connection are repaired on the next request.
    pub async fn connect_etcd(config: EtcdConfig) -> Result<Self, StoreError> {
        let etcd = etcd::Etcd::connect(&config).await?;
        Ok(Self {
            backend: Arc::new(Backend::Etcd(etcd)),
        })
    }

    /// `"embedded"` or `"etcd"`, for logs.
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Etcd(_) => "etcd",
        }
    }

    /// The key's value and revisions, `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        validate_key(key)?;
        match &*self.backend {
            Backend::Embedded(s) => s.get(key).await,
            Backend::Etcd(s) => s.get(key).await,
        }
    }

    /// Every key under `prefix`, in key order, as one snapshot with its revision.
    pub async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        validate_prefix(prefix)?;
        match &*self.backend {
            Backend::Embedded(s) => s.list(prefix).await,
            Backend::Etcd(s) => s.list(prefix).await,
        }
    }

    /// The store's current revision.
    pub async fn revision(&self) -> Result<Revision, StoreError> {
        match &*self.backend {
            Backend::Embedded(s) => Ok(s.revision()),
            Backend::Etcd(s) => s.revision().await,
        }
    }

    /// Stores `value` under `key` if `expect` holds; returns the write's revision (the key's new
    /// mod revision).
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        expect: Expect,
    ) -> Result<Revision, StoreError> {
        let value = value.into();
        validate_key(key)?;
        validate_value(key, &value)?;
        let txn = Txn::new().put(key, value, expect);
        Ok(self.apply(txn).await?.revision)
    }

    /// Removes `key` if `expect` holds; returns the revision of the removal, `None` when the
    /// key did not exist (nothing changed).
    pub async fn delete(&self, key: &str, expect: Expect) -> Result<Option<Revision>, StoreError> {
        validate_key(key)?;
        let outcome = self.apply(Txn::new().delete(key, expect)).await?;
        Ok(outcome.changed.then_some(outcome.revision))
    }

    /// Applies `txn` atomically; returns the store's revision after it (the revision of its
    /// changes, or the unchanged revision when it changed nothing).
    pub async fn txn(&self, txn: Txn) -> Result<Revision, StoreError> {
        txn.validate()?;
        Ok(self.apply(txn).await?.revision)
    }

    /// Queues `txn` now and returns a future of its revision: a writer that must not wait for
    /// each write (the allocator inside a batch of the region actor) submits several and awaits
    /// them together, so that they share commits. On the embedded store transactions apply in
    /// the order they were submitted; on etcd they are independent requests, in flight at once.
    pub fn submit(
        &self,
        txn: Txn,
    ) -> impl std::future::Future<Output = Result<Revision, StoreError>> + Send + 'static {
        let queued: Result<Submitted, StoreError> =
            txn.validate().and_then(|()| match &*self.backend {
                Backend::Embedded(s) => s.submit(txn).map(Submitted::Embedded),
                Backend::Etcd(_) => {
                    let store = self.clone();
                    Ok(Submitted::Etcd(tokio::spawn(async move {
                        store.apply(txn).await
                    })))
                }
            });
        async move {
            let outcome = match queued? {
                Submitted::Embedded(rx) => rx.await.map_err(|_| StoreError::Closed)??,
                Submitted::Etcd(task) => task.await.map_err(|_| StoreError::Closed)??,
            };
            Ok(outcome.revision)
        }
    }

    async fn apply(&self, txn: Txn) -> Result<types::Outcome, StoreError> {
        match &*self.backend {
            Backend::Embedded(s) => s.txn(txn).await,
            Backend::Etcd(s) => s.txn(txn).await,
        }
    }

    /// Drops history older than `revision`: watches from before it fail with
    /// [`StoreError::Compacted`] from then on. Keys and values are not affected.
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        if revision == 0 {
            return Err(StoreError::Invalid("compaction to revision 0".into()));
        }
        match &*self.backend {
            Backend::Embedded(s) => s.compact(revision).await,
            Backend::Etcd(s) => s.compact(revision).await,
        }
    }

    /// Watches every key under `prefix` from revision `from` on (`0`: from the next write).
    /// Typically `from` is the revision after a [`Listing::revision`], or after the last
    /// handled event's revision to resume. A compacted `from` is reported by the watch's
    /// first [`next`](Watch::next).
    pub async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch, StoreError> {
        validate_prefix(prefix)?;
        match &*self.backend {
            Backend::Embedded(s) => Ok(s.watch(prefix, from)),
            Backend::Etcd(s) => s.watch(prefix, from).await,
        }
    }

    /// Enters the election named `election` (a key, e.g. `/ferrinet/v1/elections/allocator`)
    /// as `identity` (how followers reach this replica, e.g. its API URL). Returns at once; the
    /// campaign's state tells when this replica leads. `ttl` is the lease: how long a leader
    /// that lost etcd may have been leading before another takes over (whole seconds, 1 s to
    /// 1 h; etcd may raise it to its minimum). The embedded store has no lease to lose: its
    /// oldest campaign leads until dropped.
    pub async fn campaign(
        &self,
        election: &str,
        identity: &str,
        ttl: Duration,
    ) -> Result<Campaign, StoreError> {
        validate_campaign(election, identity, ttl)?;
        match &*self.backend {
            Backend::Embedded(s) => Ok(s.campaign(election, identity)),
            Backend::Etcd(s) => Ok(s.campaign(election, identity, ttl)),
        }
    }

    /// The identity of the current leader of `election`, for a process that does not campaign.
    pub async fn leader(&self, election: &str) -> Result<Option<String>, StoreError> {
        validate_key(election)?;
        match &*self.backend {
            Backend::Embedded(s) => Ok(s.leader(election)),
            Backend::Etcd(s) => s.leader(election).await,
        }
    }

    /// Closes the store: for the embedded store, commits what is queued, stops the writer and
    /// waits for reads in flight, so that the file can be reopened once every clone of this
    /// handle (and every watch and campaign) is dropped. Nothing to do for etcd.
    pub async fn close(self) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Embedded(s) => s.close().await,
            Backend::Etcd(_) => Ok(()),
        }
    }
}
