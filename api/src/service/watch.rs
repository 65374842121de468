//! Watches served straight from the store, so that every replica serves them and a watch
//! resumes by revision across reconnections and replicas:
//!
//! ```text
//!  from 0:  Store::list(prefix) --ADDED per key, then SYNCED(revision)--> client
//!           Store::watch(prefix, revision + 1) --ADDED / MODIFIED / DELETED--> client
//!  from r:  Store::watch(prefix, r) --...--> client      (compacted r: OUT_OF_RANGE, list again)
//! ```
//!
//! One task per watch pumps store events into a bounded channel; a slow client slows only its
//! own watch, and the task ends when the client goes.

use std::collections::HashSet;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::store::{EventKind, Revision, Store, StoreError};

/// Events buffered per watch.
const BUFFER: usize = 256;

/// What happened to a key, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The key appeared (or is part of the initial listing).
    Added,
    /// The key's value changed.
    Modified,
    /// The key went.
    Deleted,
}

/// One change of a key under the watched prefix.
#[derive(Debug)]
pub struct KeyChange<'a> {
    /// What happened.
    pub change: Change,
    /// The key.
    pub key: &'a str,
    /// Its new value (empty when deleted).
    pub value: &'a [u8],
    /// The store revision of the change.
    pub revision: Revision,
}

/// How a watch turns store changes into the events of its API.
pub trait WatchShape: Send + Sync + 'static {
    /// The API's event.
    type Event: Send + 'static;
    /// The event of one change, `None` to leave it out (another kind, a namespace the caller
    /// does not see, an undecodable value).
    fn event(&self, change: KeyChange<'_>) -> Option<Self::Event>;
    /// The event that ends the initial listing.
    fn synced(&self, revision: Revision) -> Self::Event;
}

/// Starts a watch of `prefix` from `from` (0: list first).
pub fn serve<S: WatchShape>(
    store: Store,
    prefix: String,
    from: Revision,
    shape: S,
) -> ReceiverStream<Result<S::Event, tonic::Status>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let r = pump(&store, &prefix, from, &shape, &tx).await;
        if let Err(e) = r {
            let status = match e {
                StoreError::Compacted { .. } => tonic::Status::out_of_range(
                    super::error::error_chain(&e) + ": watch from 0 (a new listing)",
                ),
                _ => tonic::Status::unavailable(super::error::error_chain(&e)),
            };
            let _ = tx.send(Err(status)).await;
        }
    });
    ReceiverStream::new(rx)
}

type Tx<E> = mpsc::Sender<Result<E, tonic::Status>>;

/// Sends `event`; `false` when the client is gone.
async fn send<E>(tx: &Tx<E>, event: Option<E>) -> bool {
    match event {
        Some(e) => tx.send(Ok(e)).await.is_ok(),
        None => !tx.is_closed(),
    }
}

async fn pump<S: WatchShape>(
    store: &Store,
    prefix: &str,
    from: Revision,
    shape: &S,
    tx: &Tx<S::Event>,
) -> Result<(), StoreError> {
    // Keys known to the client: a put of one of them is MODIFIED, of another ADDED.
    let mut known: HashSet<String> = HashSet::new();
    let from = if from == 0 {
        let listing = store.list(prefix).await?;
        for kv in &listing.items {
            let change = KeyChange {
                change: Change::Added,
                key: &kv.key,
                value: &kv.value,
                revision: kv.mod_revision,
            };
            if !send(tx, shape.event(change)).await {
                return Ok(());
            }
            known.insert(kv.key.clone());
        }
        if tx.send(Ok(shape.synced(listing.revision))).await.is_err() {
            return Ok(());
        }
        listing.revision + 1
    } else {
        from
    };
    let mut watch = store.watch(prefix, from).await?;
    loop {
        let event = tokio::select! {
            () = tx.closed() => return Ok(()),
            e = watch.next() => e?,
        };
        let change = match event.kind {
            EventKind::Delete => {
                known.remove(&event.key);
                Change::Deleted
            }
            EventKind::Put if known.insert(event.key.clone()) => Change::Added,
            EventKind::Put => Change::Modified,
        };
        let change = KeyChange {
            change,
            key: &event.key,
            value: &event.value,
            revision: event.revision,
        };
        if !send(tx, shape.event(change)).await {
            return Ok(());
        }
    }
}
