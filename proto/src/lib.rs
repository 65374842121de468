//! ferrinet's wire protocols.
//!
//! - [`route`]: the route exchange messages (metalbond protocol v1, package `metalbond`);
//! - [`frame`]: the sans-IO frame codec of the route protocol;
//! - with the `grpc` feature (default): `dpservice` (the dpservice gRPC API, package
//!   `dpdkironcore.v1`, client and server) with `dpservice_status` (its status codes and reply
//!   accessor), `dataplane_status` (ferrinet-dataplane's status service), `node` (the node
//!   admin API, package `ferrinet.node.v1`) and `api` (the region API and the node sync service,
//!   package `ferrinet.api.v1`).

#[cfg(feature = "grpc")]
pub mod dpservice_status;
pub mod frame;

/// Route exchange messages (metalbond protocol v1).
pub mod route {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/metalbond.rs"));
}

/// The dpservice gRPC API (package `dpdkironcore.v1`): messages, client and server.
#[cfg(feature = "grpc")]
pub mod dpservice {
    /// Version 1 of the API.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/dpdkironcore.v1.rs"));
    }
}

/// ferrinet-dataplane's own status service (package `ferrinet.dataplane.v1`).
#[cfg(feature = "grpc")]
pub mod dataplane_status {
    /// Version 1 of the status service.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/ferrinet.dataplane.v1.rs"));
    }
}

/// `dataplane_status` under the path that code generated for an importing package expects:
/// prost refers to `ferrinet.dataplane.v1` from `ferrinet.node.v1` as `super::..::dataplane::v1`
/// (node.proto's GetPacketCounters returns its PacketCountersResponse).
#[cfg(feature = "grpc")]
#[doc(hidden)]
pub mod dataplane {
    pub use super::dataplane_status::v1;
}

/// The node daemon's admin API (package `ferrinet.node.v1`).
#[cfg(feature = "grpc")]
pub mod node {
    /// Version 1 of the admin API.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/ferrinet.node.v1.rs"));
    }
}

/// The region API and the node sync service (package `ferrinet.api.v1`).
#[cfg(feature = "grpc")]
pub mod api {
    /// Version 1 of the region API.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/ferrinet.api.v1.rs"));
    }
}
