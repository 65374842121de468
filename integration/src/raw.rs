//! Raw route-protocol connections for tests that need to misbehave or to control every byte:
//! the region's own (`ferrinet_region::loadgen::raw`, which the `bench` command uses too), and
//! the route generator in the form these tests write it.

use ferrinet_region::route::Route;

pub use ferrinet_region::loadgen::encode_updates as encode_all;
pub use ferrinet_region::loadgen::raw::{Io, RawConn, Recv};

/// `n` distinct routes in `vni` with next hops in `underlay` (an IPv6 /64 prefix written like
/// "fd00:a::"), pre-encodable in bulk.
pub fn routes(vni: u32, n: u32, underlay: &str) -> Vec<Route> {
    let base = underlay
        .parse()
        .unwrap_or_else(|e| panic!("underlay {underlay:?} of a test: {e}"));
    ferrinet_region::loadgen::routes(vni, n, base)
}
