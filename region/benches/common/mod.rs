//! The table shape the table bench and the `table_memory` example both measure: the generated
//! routes of `ferrinet_region::loadgen`, spread over 1,000 VNIs.

use std::net::Ipv6Addr;

use ferrinet_region::loadgen;
use ferrinet_region::route::Route;

/// VNIs the routes spread over.
const VNIS: u32 = 1_000;

/// The `i`-th route: a distinct IPv4 /32 in VNI `i % VNIS`.
pub fn route(i: u32) -> Route {
    loadgen::route(i % VNIS, i, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0))
}
