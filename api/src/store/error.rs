//! What can go wrong with the store, by origin: the caller's input, a lost compare, history that
//! is gone, the local system, or the backend (redb or etcd).

use std::sync::Arc;

use super::{Expect, Revision};

/// An error of a [`Store`](super::Store) operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A key, prefix, value, transaction or parameter the store does not accept; nothing was
    /// sent to the backend.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A compare failed: `key` was not at the expected revision, so nothing was written (a
    /// transaction is all or nothing). Re-read and retry.
    #[error("conflict on {key}: expected {expected}, found {}", found(*actual))]
    Conflict {
        /// The first key of the request whose compare failed.
        key: String,
        /// What the request expected.
        expected: Expect,
        /// The key's mod revision at the time of the write, 0 when it did not exist.
        actual: Revision,
    },
    /// A [fenced](super::Txn::fenced) transaction's campaign does not lead any more, so
    /// nothing was written. Stop acting as the leader.
    #[error("not the leader of {election} any more: nothing was written")]
    Fenced {
        /// The election.
        election: String,
    },
    /// A watch (or compaction) asked for history older than what the store still keeps.
    /// Re-list and watch from the listing's revision + 1.
    #[error(
        "revision {requested} is compacted: the oldest revision still available is {compact_revision}"
    )]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        compact_revision: Revision,
    },
    /// The local system failed: a directory, a thread, a file, a socket.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The backend failed or answered something unexpected.
    #[error("{context}")]
    Backend {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: BackendError,
    },
    /// The store was closed, or the task serving this watch or campaign is gone.
    #[error("the store is closed")]
    Closed,
}

/// The backend's own error, kept as its type so that callers can inspect it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// redb (open, transaction, table, commit, storage). Shared: a failed group commit fails
    /// every write of its batch with the same error.
    #[error(transparent)]
    Redb(Arc<redb::Error>),
    /// etcd answered a request with an error status (or the channel failed while sending it).
    #[error("etcd: {}: {}", .0.code(), .0.message())]
    Grpc(tonic::Status),
    /// The connection to etcd could not be set up.
    #[error(transparent)]
    Transport(tonic::transport::Error),
    /// A stored record or an etcd answer that does not have the expected shape.
    #[error("{0}")]
    Protocol(String),
}

impl StoreError {
    pub(crate) fn backend(context: impl Into<String>, source: BackendError) -> Self {
        Self::Backend {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn redb(context: impl Into<String>, e: impl Into<redb::Error>) -> Self {
        Self::backend(context, BackendError::Redb(Arc::new(e.into())))
    }

    pub(crate) fn grpc(context: impl Into<String>, status: tonic::Status) -> Self {
        Self::backend(context, BackendError::Grpc(status))
    }

    pub(crate) fn protocol(context: impl Into<String>, what: impl Into<String>) -> Self {
        Self::backend(context, BackendError::Protocol(what.into()))
    }

    /// Whether the same request may succeed later without changing it: the backend is
    /// unreachable or failed transiently. Conflicts, compaction and invalid input are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Backend {
                source: BackendError::Grpc(s),
                ..
            } => matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unknown
            ),
            Self::Backend {
                source: BackendError::Transport(_),
                ..
            } => true,
            _ => false,
        }
    }
}

fn found(actual: Revision) -> String {
    if actual == 0 {
        "no such key".into()
    } else {
        format!("mod revision {actual}")
    }
}
