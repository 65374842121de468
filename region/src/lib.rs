//! ferrinet region: the route server that distributes routes between nodes, wire-compatible
//! with metalbond v1.
//!
//! Layering, imports pointing one way only: the `ferrinet-region` binary's commands ->
//! [`config`] (the TOML file, validated into the server's own types) -> [`server`] (tasks,
//! HTTP, metrics) -> [`table`] and the protocol modules of `ferrinet-route-client`
//! ([`route`], [`session`], [`conn`]), which nodes use without the server. [`loadgen`] drives a
//! server from the outside, for the `bench` command and the tests.

pub mod certs;
pub mod config;
pub mod loadgen;
pub mod server;
pub mod table;
pub mod tls;

pub use ferrinet_route_client::{conn, route, session};
