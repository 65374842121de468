//! ferrinet-node: the node daemon that programs one hypervisor's dataplane (dpservice, or the
//! embedded software dataplane) from its admin API, and announces the routes of what it programs
//! to the region route servers. Also the library behind `ferrinetctl`.
//!
//! Pure parts ([`spec`]: validation, diffs, dpservice requests, announcements; [`vf`]: the VF
//! pool) are free of I/O; the daemon is actors around them: [`api`] (the ApiActor, owner of the
//! objects and the store), [`interface`] and [`load_balancer`] (one actor per object),
//! [`dataplane`] (dpservice client and restart detection); [`daemon`] wires them.

pub mod announce;
pub mod api;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod http;
pub mod interface;
pub mod load_balancer;
pub mod metrics;
pub mod network;
pub mod reconcile;
pub mod region;
pub mod server;
pub mod spec;
pub mod store;
pub mod vf;

/// `outer: inner: innermost`, so one log field or error message tells the whole story.
pub use ferrinet_route_client::client::error_chain;
