//! Per-VNI route tables: one next hop per prefix, exact-match maps for the API and a
//! longest-prefix-match lookup for the packet path and tests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Where a prefix leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Delivered to a local interface (its own address or an alias prefix).
    Local(Arc<str>),
    /// Sent to another hypervisor: target VNI and underlay address.
    External {
        /// VNI on the far side.
        vni: u32,
        /// Underlay IPv6 address of the far side.
        underlay: Ipv6Addr,
    },
}

impl NextHop {
    /// Whether the next hop is a local interface.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }
}

/// Why a route operation failed, mapped to service errors by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// Prefix length longer than the family allows.
    BadLength,
    /// Prefix already present.
    Exists,
    /// Prefix not present.
    NotFound,
}

/// The IPv4 and IPv6 route tables of one VNI.
#[derive(Debug, Default)]
pub struct RouteTable {
    v4: HashMap<(u32, u8), NextHop>,
    v6: HashMap<(u128, u8), NextHop>,
    // Counts per prefix length, so longest-prefix match only probes lengths that exist.
    v4_lens: Vec<u32>,
    v6_lens: Vec<u32>,
    external: usize,
}

/// Normalizes a prefix: host bits cleared, as an LPM table stores it.
pub fn normalize(addr: IpAddr, len: u8) -> Result<IpNet, RouteError> {
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .map_err(|_| RouteError::BadLength)
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            v4: HashMap::new(),
            v6: HashMap::new(),
            v4_lens: vec![0; 33],
            v6_lens: vec![0; 129],
            external: 0,
        }
    }

    /// Adds `prefix -> hop`; the prefix must be normalized.
    pub fn insert(&mut self, prefix: IpNet, hop: NextHop) -> Result<(), RouteError> {
        let external = !hop.is_local();
        match prefix {
            IpNet::V4(n) => {
                let key = (u32::from(n.network()), n.prefix_len());
                if self.v4.contains_key(&key) {
                    return Err(RouteError::Exists);
                }
                self.v4.insert(key, hop);
                self.v4_lens[usize::from(key.1)] += 1;
            }
            IpNet::V6(n) => {
                let key = (u128::from(n.network()), n.prefix_len());
                if self.v6.contains_key(&key) {
                    return Err(RouteError::Exists);
                }
                self.v6.insert(key, hop);
                self.v6_lens[usize::from(key.1)] += 1;
            }
        }
        if external {
            self.external += 1;
        }
        Ok(())
    }

    /// The next hop stored for exactly `prefix`.
    pub fn get(&self, prefix: IpNet) -> Option<&NextHop> {
        match prefix {
            IpNet::V4(n) => self.v4.get(&(u32::from(n.network()), n.prefix_len())),
            IpNet::V6(n) => self.v6.get(&(u128::from(n.network()), n.prefix_len())),
        }
    }

    /// Removes exactly `prefix`.
    pub fn remove(&mut self, prefix: IpNet) -> Result<NextHop, RouteError> {
        let hop = match prefix {
            IpNet::V4(n) => {
                let key = (u32::from(n.network()), n.prefix_len());
                let hop = self.v4.remove(&key).ok_or(RouteError::NotFound)?;
                self.v4_lens[usize::from(key.1)] -= 1;
                hop
            }
            IpNet::V6(n) => {
                let key = (u128::from(n.network()), n.prefix_len());
                let hop = self.v6.remove(&key).ok_or(RouteError::NotFound)?;
                self.v6_lens[usize::from(key.1)] -= 1;
                hop
            }
        };
        if !hop.is_local() {
            self.external -= 1;
        }
        Ok(hop)
    }

    /// Drops every external route, keeping the local ones (ResetVni).
    pub fn clear_external(&mut self) {
        let mut v4_lens = vec![0u32; 33];
        let mut v6_lens = vec![0u32; 129];
        self.v4.retain(|k, h| {
            let keep = h.is_local();
            if keep {
                v4_lens[usize::from(k.1)] += 1;
            }
            keep
        });
        self.v6.retain(|k, h| {
            let keep = h.is_local();
            if keep {
                v6_lens[usize::from(k.1)] += 1;
            }
            keep
        });
        self.v4_lens = v4_lens;
        self.v6_lens = v6_lens;
        self.external = 0;
    }

    /// Longest-prefix match for `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNet, &NextHop)> {
        match addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                (0..=32u8).rev().find_map(|len| {
                    if self.v4_lens[usize::from(len)] == 0 {
                        return None;
                    }
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    let masked = bits & mask;
                    self.v4.get(&(masked, len)).map(|h| {
                        let net = Ipv4Net::new(Ipv4Addr::from(masked), len)
                            .map(IpNet::V4)
                            .unwrap_or_default();
                        (net, h)
                    })
                })
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                (0..=128u8).rev().find_map(|len| {
                    if self.v6_lens[usize::from(len)] == 0 {
                        return None;
                    }
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    let masked = bits & mask;
                    self.v6.get(&(masked, len)).map(|h| {
                        let net = Ipv6Net::new(Ipv6Addr::from(masked), len)
                            .map(IpNet::V6)
                            .unwrap_or_default();
                        (net, h)
                    })
                })
            }
        }
    }

    /// External routes, sorted: IPv4 before IPv6, then by address and length.
    pub fn external_routes(&self) -> Vec<(IpNet, u32, Ipv6Addr)> {
        let mut out: Vec<(IpNet, u32, Ipv6Addr)> = Vec::with_capacity(self.external);
        for (&(addr, len), hop) in &self.v4 {
            if let (NextHop::External { vni, underlay }, Ok(n)) =
                (hop, Ipv4Net::new(Ipv4Addr::from(addr), len))
            {
                out.push((IpNet::V4(n), *vni, *underlay));
            }
        }
        for (&(addr, len), hop) in &self.v6 {
            if let (NextHop::External { vni, underlay }, Ok(n)) =
                (hop, Ipv6Net::new(Ipv6Addr::from(addr), len))
            {
                out.push((IpNet::V6(n), *vni, *underlay));
            }
        }
        out.sort_by_key(|a| a.0);
        out
    }

    /// Number of external routes.
    pub fn external_len(&self) -> usize {
        self.external
    }

    /// Number of routes, local and external.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    fn ext(n: u32) -> NextHop {
        NextHop::External {
            vni: n,
            underlay: Ipv6Addr::LOCALHOST,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::new();
        t.insert(net("0.0.0.0/0"), ext(1)).expect("insert");
        t.insert(net("10.0.0.0/8"), ext(2)).expect("insert");
        t.insert(net("10.1.0.0/16"), ext(3)).expect("insert");
        t.insert(net("10.1.2.3/32"), NextHop::Local("vm1".into()))
            .expect("insert");
        let hop = |t: &RouteTable, a: &str| {
            t.lookup(a.parse().expect("ip"))
                .map(|(n, h)| (n, h.clone()))
        };
        assert_eq!(
            hop(&t, "10.1.2.3"),
            Some((net("10.1.2.3/32"), NextHop::Local("vm1".into())))
        );
        assert_eq!(hop(&t, "10.1.9.9"), Some((net("10.1.0.0/16"), ext(3))));
        assert_eq!(hop(&t, "10.2.0.1"), Some((net("10.0.0.0/8"), ext(2))));
        assert_eq!(hop(&t, "192.168.0.1"), Some((net("0.0.0.0/0"), ext(1))));
        assert_eq!(hop(&t, "::1"), None);
        assert_eq!(t.external_routes().len(), 3);
        assert_eq!(t.insert(net("10.0.0.0/8"), ext(9)), Err(RouteError::Exists));
        t.clear_external();
        assert_eq!(hop(&t, "10.2.0.1"), None);
        assert_eq!(
            hop(&t, "10.1.2.3").map(|x| x.1),
            Some(NextHop::Local("vm1".into()))
        );
    }

    #[test]
    fn ipv6_lpm_and_remove() {
        let mut t = RouteTable::new();
        t.insert(net("::/0"), ext(1)).expect("insert");
        t.insert(net("2001:db8::/32"), ext(2)).expect("insert");
        t.insert(net("2001:db8::1/128"), ext(3)).expect("insert");
        let hop = |t: &RouteTable, a: &str| t.lookup(a.parse().expect("ip")).map(|(n, _)| n);
        assert_eq!(hop(&t, "2001:db8::1"), Some(net("2001:db8::1/128")));
        assert_eq!(hop(&t, "2001:db8::2"), Some(net("2001:db8::/32")));
        assert_eq!(hop(&t, "fe80::1"), Some(net("::/0")));
        assert_eq!(t.remove(net("2001:db8::1/128")), Ok(ext(3)));
        assert_eq!(t.remove(net("2001:db8::1/128")), Err(RouteError::NotFound));
        assert_eq!(hop(&t, "2001:db8::1"), Some(net("2001:db8::/32")));
    }

    #[test]
    fn normalize_clears_host_bits() {
        assert_eq!(
            normalize("10.1.2.3".parse().expect("ip"), 8),
            Ok(net("10.0.0.0/8"))
        );
        assert_eq!(
            normalize("10.1.2.3".parse().expect("ip"), 33),
            Err(RouteError::BadLength)
        );
    }

    proptest::proptest! {
        // A brute-force scan over all stored prefixes must agree with the LPM lookup.
        #[test]
        fn lpm_matches_brute_force(
            prefixes in proptest::collection::vec((proptest::num::u32::ANY, 0u8..=32), 0..40),
            probes in proptest::collection::vec(proptest::num::u32::ANY, 1..20),
        ) {
            let mut t = RouteTable::new();
            let mut stored = Vec::new();
            for (i, (a, l)) in prefixes.iter().enumerate() {
                let n = normalize(IpAddr::V4(Ipv4Addr::from(*a)), *l).expect("len ok");
                if t.insert(n, ext(i as u32)).is_ok() {
                    stored.push(n);
                }
            }
            for p in probes {
                let ip = IpAddr::V4(Ipv4Addr::from(p));
                let want = stored.iter().filter(|n| n.contains(&ip)).max_by_key(|n| n.prefix_len()).copied();
                let got = t.lookup(ip).map(|(n, _)| n);
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
