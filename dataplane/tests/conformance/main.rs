//! Conformance suite: the dpservice API contract over real gRPC on loopback.
#![allow(clippy::unwrap_used)]

//! One test binary, one file per part of the API.

#[path = "../common/mod.rs"]
mod common;

mod firewall;
mod lifecycle;
mod load_balancers;
mod misc;
mod nat;
mod routes;
