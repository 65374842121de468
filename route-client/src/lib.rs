//! ferrinet route exchange for nodes: what a route-server *client* needs, with lean
//! dependencies (no HTTP, metrics, PKI generation, config files or CLI).
//!
//! Protocol logic is free of I/O: [`route`] (validated routes), [`session`] (the session state
//! machine, both roles). [`conn`] is the framed I/O over any byte stream, [`tls`] the TLS client
//! setup, and [`client`] the multi-server route client a node daemon embeds. The route server
//! (`ferrinet-region`) builds on the same modules.

pub mod client;
pub mod conn;
pub mod route;
pub mod session;
pub mod tls;
