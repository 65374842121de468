//! Route client library for the node daemon (being written).

pub mod aggregate;
pub mod backoff;
