//! The region API of ferrinet: the user-facing network resources of a region (networks with
//! subnets, interfaces, virtual IPs, NAT gateways, load balancers, policies, peerings), the
//! allocation of every value that must be unique in the region, and the compilation of intent
//! into node objects.
//!
//! The pieces here are pure (no I/O, no clock: time is an argument), so they are unit- and
//! property-tested on their own; the allocator actor, the store and the gRPC service build on
//! them.

pub mod allocator;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod http;
pub mod ipam;
pub mod peering;
pub mod policy;
pub mod realize;
pub mod resources;
pub mod selector;
pub mod service;
pub mod store;
