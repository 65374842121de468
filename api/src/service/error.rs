//! Why a region API call failed, by origin: the caller's input, the state of the region, the
//! allocator, the store. Each maps to one gRPC code, with the message a caller can act on.

use ferrinet_proto::api::v1 as pb;

use crate::allocator::AllocError;
use crate::resources::{ObjKey, ValidationErrors, kind_word};
use crate::store::StoreError;

use super::access::Denied;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object is invalid (every field named).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The request itself is malformed (a missing object or key).
    #[error("{0}")]
    BadRequest(String),
    /// No such object.
    #[error("{} {key} not found", kind_word(*kind))]
    NotFound {
        /// Its kind.
        kind: pb::Kind,
        /// Its key.
        key: ObjKey,
    },
    /// Create of an object that exists.
    #[error("{} {key} exists already", kind_word(*kind))]
    AlreadyExists {
        /// Its kind.
        kind: pb::Kind,
        /// Its key.
        key: ObjKey,
    },
    /// The resource version named is not the current one.
    #[error("{} {key}: resource version {given} is not the current one ({current}): read it again", kind_word(*kind))]
    Conflict {
        /// Its kind.
        kind: pb::Kind,
        /// Its key.
        key: ObjKey,
        /// What the caller named.
        given: u64,
        /// What the object has.
        current: u64,
    },
    /// The change is refused in the region's current state (an object still in use, an
    /// immutable field changed).
    #[error("{0}")]
    Refused(String),
    /// An allocation the object asks for cannot be made (a fixed value taken, a pool empty).
    #[error("{what}")]
    Allocation {
        /// What was asked for.
        what: String,
        /// Why it failed.
        #[source]
        source: AllocError,
    },
    /// The caller may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The store failed: nothing of the call was applied.
    #[error("region store")]
    Store(#[from] StoreError),
    /// The batch this call was written in did not commit (shared by every call of the batch).
    #[error("not committed")]
    NotCommitted(#[source] std::sync::Arc<ApiError>),
    /// The region actor is not running (shutting down, or this replica does not lead).
    #[error("the region API is not serving writes here{}", leader.as_ref().map(|l| format!(": the leader is {l}")).unwrap_or_default())]
    Unavailable {
        /// The leader, when known.
        leader: Option<String>,
    },
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let message = error_chain(&e);
        match &e {
            ApiError::Invalid(_) | ApiError::BadRequest(_) => {
                tonic::Status::invalid_argument(message)
            }
            ApiError::NotFound { .. } => tonic::Status::not_found(message),
            ApiError::AlreadyExists { .. } => tonic::Status::already_exists(message),
            ApiError::Conflict { .. } | ApiError::Refused(_) => {
                tonic::Status::failed_precondition(message)
            }
            ApiError::Allocation { source, .. } => match source {
                AllocError::Store(_) => tonic::Status::unavailable(message),
                _ => tonic::Status::resource_exhausted(message),
            },
            ApiError::Denied(_) => tonic::Status::permission_denied(message),
            ApiError::Store(StoreError::Conflict { .. }) => tonic::Status::aborted(message),
            ApiError::Store(_) | ApiError::Unavailable { .. } | ApiError::NotCommitted(_) => {
                tonic::Status::unavailable(message)
            }
        }
    }
}

/// `outer: inner: innermost`, so one log field or error message tells the whole story.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
