//! Route generator shared by the table bench and the `table_memory` example, so both measure
//! the same table shape.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrinet_region::route::{NextHop, NextHopType, Route};
use ipnet::IpNet;

/// VNIs the generated routes spread over.
const VNIS: u32 = 1_000;

/// The `i`-th route: a distinct IPv4 /32 in VNI `i % VNIS` with its own next hop.
pub fn route(i: u32) -> Route {
    Route {
        vni: i % VNIS,
        destination: IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
        next_hop: NextHop {
            address: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16),
            target_vni: 0,
            kind: NextHopType::Standard,
            port_from: 0,
            port_to: 0,
        },
    }
}
