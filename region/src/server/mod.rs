//! The route server (being written).

pub mod authz;
