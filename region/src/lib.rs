//! ferrinet region: route distribution between nodes, wire-compatible with metalbond v1.
//!
//! Protocol logic is free of I/O: [`route`] (validated routes), [`session`] (the session state
//! machine). The daemon and the client are thin layers of tasks around them.

pub mod certs;
pub mod client;
pub mod config;
pub mod conn;
pub mod route;
pub mod server;
pub mod session;
pub mod table;
pub mod tls;
