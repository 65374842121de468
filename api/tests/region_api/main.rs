//! The region API service in-process, over real gRPC on loopback with the embedded store:
//! objects are validated, allocated, realized into node objects and placed; nodes register,
//! watch what is placed on them and report status; everything survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod kit;
mod objects;
mod placement;
