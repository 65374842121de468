//! Driving a route server from the outside: what `ferrinet-region bench` needs at run time, kept
//! here once so that the tests (the server's own and the `ferrinet-integration` kit) use the
//! same tools instead of copies.
//!
//! - [`raw`]: a route-protocol connection that controls every byte and can count UPDATEs
//!   without decoding them;
//! - [`http`]: a minimal HTTP/1.1 GET and the metric parser for the status listener;
//! - generated routes and pre-encoded UPDATE frames ([`routes`], [`encode_updates`]);
//! - the file `serve --ready-file` writes ([`Ready`]) and a process's resident memory
//!   ([`rss_bytes`]).

pub mod http;
pub mod raw;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use ferrinet_proto::frame::EncodeError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::conn::encode_route;
use crate::route::{Action, NextHop, NextHopType, Route};

/// How long a test or tool waits for something that should happen: generous, for a loaded
/// 2-core machine running debug builds. Only ever a bound against hanging, never a measurement.
pub const WAIT: Duration = Duration::from_secs(30);

/// Next hops of a generated route set cycle through this many addresses after the underlay
/// base, so that they stay inside one /64 that a node may be authorized for.
const NEXT_HOPS: u32 = 4096;

/// Route `i` of a generated set in `vni`: destination the `i`-th IPv4 address from 10.0.0.0 as
/// a /32, next hop one of [`NEXT_HOPS`] addresses after `underlay`.
pub fn route(vni: u32, i: u32, underlay: Ipv6Addr) -> Route {
    let destination = Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(i));
    Route {
        vni,
        destination: IpNet::from(IpAddr::V4(destination)),
        next_hop: NextHop {
            address: Ipv6Addr::from(u128::from(underlay) + u128::from(i % NEXT_HOPS) + 1),
            target_vni: 0,
            kind: NextHopType::Standard,
            port_from: 0,
            port_to: 0,
        },
    }
}

/// Routes 0 to `n - 1` of [`route`].
pub fn routes(vni: u32, n: u32, underlay: Ipv6Addr) -> Vec<Route> {
    (0..n).map(|i| route(vni, i, underlay)).collect()
}

/// Every route as an UPDATE frame with `action`, in one buffer, so that a load can be written
/// unpaced and without encoding work while it is measured.
pub fn encode_updates(action: Action, routes: &[Route]) -> Result<BytesMut, EncodeError> {
    let mut b = BytesMut::with_capacity(routes.len() * 48);
    for r in routes {
        encode_route(action, r, &mut b)?;
    }
    Ok(b)
}

/// What `serve --ready-file` writes once every listener is bound: the bound addresses (`null`
/// for a listener that is off) and the process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// TLS route listener.
    pub tls: Option<SocketAddr>,
    /// Plaintext route listener.
    pub compat: Option<SocketAddr>,
    /// HTTP status listener.
    pub http: Option<SocketAddr>,
    /// The server's process id.
    pub pid: u32,
}

impl Ready {
    /// Writes the file whole and renames it into place, so that a reader never sees half of it.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, format!("{json}\n"))?;
        std::fs::rename(&tmp, path)
    }

    /// The file's content, `None` while it is not there.
    pub fn read(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until `child`, a starting `serve --ready-file path`, has written the file, at most
    /// `limit`. Fails if the process exits first or the file names another process.
    pub fn wait(path: &Path, child: &mut Child, limit: Duration) -> anyhow::Result<Self> {
        let start = Instant::now();
        loop {
            if let Some(r) = Self::read(path) {
                if r.pid != child.id() {
                    bail!(
                        "the ready file names pid {}, not the server's {}",
                        r.pid,
                        child.id()
                    );
                }
                return Ok(r);
            }
            if let Some(status) = child.try_wait().context("waiting on the server")? {
                bail!("server exited with {status}");
            }
            if start.elapsed() > limit {
                bail!("server not ready within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Resident set size of process `pid` in bytes, from `/proc` (Linux only).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS in {path}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn generated_routes_are_distinct_and_inside_the_underlay() {
        let underlay: Ipv6Addr = "fd00:a::".parse().unwrap();
        let rs = routes(7, 10_000, underlay);
        let distinct: std::collections::HashSet<_> = rs.iter().collect();
        assert_eq!(distinct.len(), rs.len());
        let net: ipnet::Ipv6Net = "fd00:a::/64".parse().unwrap();
        assert!(
            rs.iter()
                .all(|r| r.vni == 7 && net.contains(&r.next_hop.address))
        );
        assert_eq!(rs[1].to_string(), "7#10.0.0.1/32#fd00:a::2#STD");
    }

    #[test]
    fn ready_file_round_trips_in_the_documented_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        assert_eq!(Ready::read(&path), None);
        let r = Ready {
            tls: Some("127.0.0.1:4711".parse().unwrap()),
            compat: None,
            http: Some("127.0.0.1:4712".parse().unwrap()),
            pid: 123,
        };
        r.write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"tls\":\"127.0.0.1:4711\",\"compat\":null,\"http\":\"127.0.0.1:4712\",\"pid\":123}\n"
        );
        assert_eq!(Ready::read(&path), Some(r));
    }

    #[test]
    fn rss_of_this_process_is_read() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(rss_bytes(u32::MAX).is_err());
    }
}
