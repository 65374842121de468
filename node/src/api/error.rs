//! Why the admin API refused a request; each maps to one gRPC code.

use std::sync::Arc;

use crate::spec::SpecError;
use crate::store::StoreError;

/// A refused admin request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The object is not valid (names the field).
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// A request field outside the object is missing or bad.
    #[error("{0}")]
    BadRequest(String),
    /// No such object.
    #[error("{kind}/{name} not found")]
    NotFound {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
    },
    /// The object exists already.
    #[error("{kind}/{name} already exists")]
    AlreadyExists {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
    },
    /// The request's resource_version is not the current one.
    #[error("{kind}/{name}: resource_version {sent} is not the current {current}: read it again")]
    Conflict {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// What the request named.
        sent: u64,
        /// What is current.
        current: u64,
    },
    /// The object is in use or being deleted.
    #[error("{0}")]
    FailedPrecondition(String),
    /// No free VF for a new interface.
    #[error("no free virtual function: all {0} are claimed")]
    NoVf(u32),
    /// A watch from a revision the node no longer remembers.
    #[error("revision {asked} is not available (oldest {oldest}, current {current}): list again")]
    TooOld {
        /// Asked for.
        asked: u64,
        /// Oldest remembered.
        oldest: u64,
        /// Current.
        current: u64,
    },
    /// The change could not be stored.
    #[error("cannot store the change")]
    Store(#[source] Arc<StoreError>),
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let msg = crate::error_chain(&e);
        match e {
            ApiError::Invalid(_) | ApiError::BadRequest(_) => Self::invalid_argument(msg),
            ApiError::NotFound { .. } => Self::not_found(msg),
            ApiError::AlreadyExists { .. } => Self::already_exists(msg),
            ApiError::Conflict { .. } | ApiError::FailedPrecondition(_) => {
                Self::failed_precondition(msg)
            }
            ApiError::NoVf(_) => Self::resource_exhausted(msg),
            ApiError::TooOld { .. } => Self::out_of_range(msg),
            ApiError::Store(_) => Self::unavailable(msg),
        }
    }
}
