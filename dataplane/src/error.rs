//! The two error layers of the dpservice API: request validation (gRPC INVALID_ARGUMENT) and
//! service errors (gRPC OK with a non-zero `status.code`).

use std::fmt;

/// Service errors are part of the API, so they live in [`ferrinet_proto::dpservice_status`]
/// where clients of the real dpservice find them too; re-exported here for existing users.
pub use ferrinet_proto::dpservice_status::ServiceError;

/// A request that does not parse: answered with gRPC INVALID_ARGUMENT, the message naming the
/// field so a client can tell which part of its request is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArgument {
    /// Field path in the request, e.g. `route.prefix.length`.
    pub field: String,
    /// What is wrong with it, lowercase.
    pub reason: String,
}

impl InvalidArgument {
    /// An invalid-argument error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidArgument {}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The dataplane has not been initialized (gRPC ABORTED).
    #[error("not initialized")]
    NotInitialized,
    /// The request does not parse (gRPC INVALID_ARGUMENT).
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    /// The request parses but cannot be carried out (gRPC OK, non-zero status code).
    #[error(transparent)]
    Service(#[from] ServiceError),
}
