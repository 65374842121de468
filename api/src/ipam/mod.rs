//! IP address management: the pure allocation logic behind the region's allocator actor.
//!
//! Every value that must be unique in a region is handed out here: addresses inside a network's
//! subnets ([`IpAllocator`]), VNIs ([`VniAllocator`]), public IPs ([`PublicIpPool`]) and NAT
//! source-port slices on a NAT gateway's public IPs ([`NatPorts`]). The allocators share one
//! shape, so the actor can treat them alike:
//!
//! - values go to *owners* (any `Ord + Clone + Display` key the caller chooses, e.g. a resource
//!   name); a value is never held by two owners;
//! - dynamic allocation is deterministic: the lowest free value wins, so an allocator rebuilt
//!   from its assignments decides exactly as the original would have;
//! - a fixed request for a value the same owner already holds succeeds again (the actor may
//!   retry after a crash between persisting and answering);
//! - `assignments()` lists what must be persisted and `restore(config, assignments)` rebuilds
//!   the state after a restart or a configuration change, returning the assignments that no
//!   longer fit as [`Rejected`] instead of failing as a whole.
//!
//! Nothing here does I/O or reads a clock, and no input makes it panic.

mod addresses;
mod family;
mod field;
mod ledger;
mod nat;
mod public;
mod subnet;
mod vni;

pub use addresses::{AddressError, IpAllocator, SubnetUsage};
pub use family::IpFamily;
pub use field::{FieldError, SpecErrors, SpecProblem};
pub use nat::{
    NAT_PORT_END, NAT_PORT_START, NatConfigError, NatError, NatPorts, NatSlice, NatStatus,
    PortsPerInterface,
};
pub use public::{
    PoolEntry, PublicIpError, PublicIpPool, PublicPoolSpec, PublicPoolUsage, PublicRanges,
};
pub use subnet::{AddressRange, NetworkSubnets, Reservation, Subnet, SubnetRoute, SubnetSpec};
pub use vni::{MAX_VNI, VniAllocator, VniError, VniRange, VniRangeError};

/// An assignment that [`restore`](IpAllocator::restore) could not take back, and why: the
/// configuration changed under it, or the stored assignments contradict each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<O, V, E> {
    /// The owner the value was stored for.
    pub owner: O,
    /// The stored value.
    pub value: V,
    /// Why it cannot be held; the same error a fixed request for it would get.
    pub error: E,
}
