//! The node daemon's TOML configuration (`config/node.toml` documents every key).
//!
//! [`Config`] is the file as written (every key has a default, unknown keys are errors);
//! [`Config::validate`] checks every value, naming the key of the first bad one, and produces
//! [`Settings`], what the daemon runs with. Relative paths are resolved against the config file's
//! directory.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv6Net;
use serde::Deserialize;

use crate::vf::{PciAddress, VfConfig, VfMode};

/// Default admin socket.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/ferrinet/node.sock";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferrinet-node";
/// Default dpservice address.
pub const DEFAULT_DATAPLANE: &str = "127.0.0.1:1337";

/// A configuration that cannot be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key or a value of the wrong type.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml found (it names the line and key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value of the right type that is not acceptable.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key with its table (`dataplane.address`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

mod dataplane;

pub use dataplane::{DataplaneSection, DataplaneTarget};

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's name (objects naming another node are refused); default: the host name.
    pub node_name: String,
    /// Directory of the state file (`state.redb`).
    pub state_dir: PathBuf,
    /// Allow IPv6 overlay addresses, and announce interface IPv6 addresses in the public VNI.
    pub ipv6: bool,
    /// VNI of public announcements (VIPs, NAT IPs, public load balancers, IPv6 addresses).
    pub public_vni: u32,
    /// `[admin]`.
    pub admin: AdminSection,
    /// `[dataplane]`.
    pub dataplane: DataplaneSection,
    /// `[vf]`.
    pub vf: VfSection,
    /// `[routes]`.
    pub routes: RoutesSection,
    /// `[reconcile]`.
    pub reconcile: ReconcileSection,
    /// `[http]`.
    pub http: HttpSection,
    /// `[region_api]`.
    pub region_api: RegionApiSection,
    /// `[log]`.
    pub log: LogSection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: String::new(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            ipv6: false,
            public_vni: 100,
            admin: AdminSection::default(),
            dataplane: DataplaneSection::default(),
            vf: VfSection::default(),
            routes: RoutesSection::default(),
            reconcile: ReconcileSection::default(),
            http: HttpSection::default(),
            region_api: RegionApiSection::default(),
            log: LogSection::default(),
        }
    }
}

/// `[admin]`: where the admin API is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Unix socket path; empty turns it off.
    pub socket: String,
    /// TCP listen address (e.g. `127.0.0.1:4720`); empty (default) turns it off.
    pub listen: String,
    /// TCP: CA (PEM) a client certificate must chain to; with `cert` and `key`, the TCP
    /// listener requires mutual TLS. Without them it is plaintext.
    pub ca: Option<PathBuf>,
    /// TCP: this node's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// TCP: this node's key (PEM).
    pub key: Option<PathBuf>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            socket: DEFAULT_ADMIN_SOCKET.into(),
            listen: String::new(),
            ca: None,
            cert: None,
            key: None,
        }
    }
}

/// `[vf]`: where interfaces get their virtual function.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VfSection {
    /// `sysfs` (SR-IOV VFs of Mellanox PFs) or `tap` (dpservice in TAP mode, the software
    /// dataplane). Default: `tap` with the embedded dataplane, else `sysfs`.
    pub mode: String,
    /// sysfs root.
    pub sysfs_root: PathBuf,
    /// PF PCI address used to synthesize the VF list when sysfs discovery finds none.
    pub pf_base: String,
    /// Representor names of a multiport e-switch (`..._representor_c0pf0vfN`).
    pub multiport_eswitch: bool,
    /// TAP mode: number of `dtapvf_N` devices.
    pub tap_count: u32,
}

impl Default for VfSection {
    fn default() -> Self {
        Self {
            mode: String::new(),
            sysfs_root: PathBuf::from("/sys"),
            pf_base: "0000:03:00.0".into(),
            multiport_eswitch: false,
            tap_count: 126,
        }
    }
}

/// `[routes]`: the region route servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesSection {
    /// `HOST:PORT` of every route server; empty: routes are kept locally (and announced once
    /// servers are configured and the node restarted).
    pub servers: Vec<String>,
    /// Speak metalbond v1 without TLS (to join an existing metalbond region).
    pub plaintext: bool,
    /// Region CA (PEM).
    pub ca: Option<PathBuf>,
    /// This node's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// This node's key (PEM).
    pub key: Option<PathBuf>,
    /// The name the servers' certificates carry; default: the host part of each address.
    pub server_name: String,
    /// Keepalive interval proposed, seconds.
    pub keepalive_secs: u64,
    /// Fallback default router (underlay IPv6) when none is learned from the public VNI.
    pub router_address: String,
    /// Underlay IPv6 prefix: load-balancer targets announced outside it are not installed.
    pub prefer_network: String,
}

impl Default for RoutesSection {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            plaintext: false,
            ca: None,
            cert: None,
            key: None,
            server_name: String::new(),
            keepalive_secs: 5,
            router_address: String::new(),
            prefer_network: String::new(),
        }
    }
}

/// `[reconcile]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSection {
    /// Every object is compared with the dataplane this often, seconds.
    pub recheck_secs: u64,
    /// First retry delay after a failure, milliseconds (then doubling, jittered).
    pub backoff_min_ms: u64,
    /// Largest retry delay, milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for ReconcileSection {
    fn default() -> Self {
        Self {
            recheck_secs: 60,
            backoff_min_ms: 200,
            backoff_max_ms: 30_000,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// `/metrics`, `/healthz`, `/readyz`; empty turns it off.
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4721".into(),
        }
    }
}

/// `[region_api]`: the region API's NodeSync service, which places objects on this node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionApiSection {
    /// `HOST:PORT`; empty (default) turns the region sync off.
    pub address: String,
    /// Region CA (PEM); with `cert` and `key`: mutual TLS. All three unset: plaintext.
    pub ca: Option<PathBuf>,
    /// This node's certificate (PEM); its identity must be the node name.
    pub cert: Option<PathBuf>,
    /// This node's key (PEM).
    pub key: Option<PathBuf>,
    /// The name the region API's certificate carries; default: the host part of `address`.
    pub server_name: String,
    /// This node's underlay IPv6 prefix; default: the embedded dataplane's underlay.
    pub underlay_prefix: String,
    /// Labels the region schedules by.
    pub labels: BTreeMap<String, String>,
    /// Lease renewal interval, milliseconds.
    pub heartbeat_ms: u64,
    /// How often changed statuses are sent (batched), milliseconds.
    pub status_interval_ms: u64,
}

impl Default for RegionApiSection {
    fn default() -> Self {
        Self {
            address: String::new(),
            ca: None,
            cert: None,
            key: None,
            server_name: String::new(),
            underlay_prefix: String::new(),
            labels: BTreeMap::new(),
            heartbeat_ms: 2000,
            status_interval_ms: 200,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Output format.
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// TLS files of the route client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTls {
    /// Region CA.
    pub ca: PathBuf,
    /// Node certificate.
    pub cert: PathBuf,
    /// Node key.
    pub key: PathBuf,
    /// Server name override.
    pub server_name: Option<String>,
}

/// The validated `[region_api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionApi {
    /// `HOST:PORT`.
    pub address: String,
    /// `(ca, cert, key)`; `None`: plaintext.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// The name the server's certificate carries.
    pub server_name: String,
    /// This node's underlay prefix, registered with the region.
    pub underlay_prefix: Ipv6Net,
    /// Registered labels.
    pub labels: BTreeMap<String, String>,
    /// Lease renewal interval.
    pub heartbeat: Duration,
    /// Status batching interval.
    pub status_interval: Duration,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Node name.
    pub node_name: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// IPv6 overlay allowed.
    pub ipv6: bool,
    /// Public VNI.
    pub public_vni: u32,
    /// Admin Unix socket.
    pub admin_socket: Option<PathBuf>,
    /// Admin TCP listener.
    pub admin_listen: Option<SocketAddr>,
    /// Mutual TLS on the admin TCP listener: (ca, cert, key).
    pub admin_tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// The dataplane.
    pub dataplane: DataplaneTarget,
    /// Restart check interval.
    pub check_interval: Duration,
    /// dpservice call bound.
    pub call_timeout: Duration,
    /// VF pool.
    pub vf: VfConfig,
    /// Route servers.
    pub route_servers: Vec<String>,
    /// `None`: plaintext.
    pub route_tls: Option<RouteTls>,
    /// Keepalive proposed.
    pub keepalive: Duration,
    /// Fallback default router.
    pub router_address: Option<Ipv6Addr>,
    /// Load-balancer targets must be inside this prefix.
    pub prefer_network: Option<Ipv6Net>,
    /// Periodic re-check.
    pub recheck: Duration,
    /// Retry back-off bounds.
    pub backoff: (Duration, Duration),
    /// HTTP listener.
    pub http: Option<SocketAddr>,
    /// The region API; `None`: objects come only through the admin API.
    pub region_api: Option<RegionApi>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
}

fn listen(key: &str, s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        invalid(
            key,
            format!("{s:?} is not an address with port, like \"127.0.0.1:4721\""),
        )
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Config {
    /// Parses TOML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Reads a file, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text, path)?;
        if let Some(dir) = path.parent() {
            for p in [
                Some(&mut cfg.state_dir),
                cfg.admin.ca.as_mut(),
                cfg.admin.cert.as_mut(),
                cfg.admin.key.as_mut(),
                cfg.routes.ca.as_mut(),
                cfg.routes.cert.as_mut(),
                cfg.routes.key.as_mut(),
                cfg.region_api.ca.as_mut(),
                cfg.region_api.cert.as_mut(),
                cfg.region_api.key.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(cfg)
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let node_name = if self.node_name.trim().is_empty() {
            host_name()
        } else {
            self.node_name.trim().to_string()
        };
        if node_name.len() > 253 {
            return Err(invalid("node_name", "longer than 253 characters"));
        }
        if !(1..=0xff_ffff).contains(&self.public_vni) {
            return Err(invalid(
                "public_vni",
                format!("{} is outside 1..=16777215", self.public_vni),
            ));
        }
        let admin_socket = match self.admin.socket.trim() {
            "" => None,
            s => Some(PathBuf::from(s)),
        };
        let admin_listen = listen("admin.listen", &self.admin.listen)?;
        if admin_socket.is_none() && admin_listen.is_none() {
            return Err(invalid(
                "admin.socket",
                "both admin listeners are off (admin.socket and admin.listen are empty)",
            ));
        }
        let a = &self.admin;
        let admin_tls = match (&a.ca, &a.cert, &a.key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some((ca.clone(), cert.clone(), key.clone())),
            _ => {
                return Err(invalid(
                    "admin.ca",
                    "admin.ca, admin.cert and admin.key go together",
                ));
            }
        };
        let dataplane = self.dataplane.target()?;
        let embedded = matches!(dataplane, DataplaneTarget::Embedded { .. });
        let v = &self.vf;
        let mode = match (v.mode.trim(), embedded) {
            ("tap", _) | ("", true) => {
                if !(1..=4096).contains(&v.tap_count) {
                    return Err(invalid(
                        "vf.tap_count",
                        format!("{} is outside 1..=4096", v.tap_count),
                    ));
                }
                VfMode::Tap { count: v.tap_count }
            }
            ("sysfs", _) | ("", false) => VfMode::Sysfs {
                root: v.sysfs_root.clone(),
                pf_base: v
                    .pf_base
                    .trim()
                    .parse::<PciAddress>()
                    .map_err(|e| invalid("vf.pf_base", e.to_string()))?,
                multiport_eswitch: v.multiport_eswitch,
            },
            (m, _) => {
                return Err(invalid(
                    "vf.mode",
                    format!("{m:?} is neither \"sysfs\" nor \"tap\""),
                ));
            }
        };
        let r = &self.routes;
        for (i, s) in r.servers.iter().enumerate() {
            if s.trim().is_empty() || !s.contains(':') {
                return Err(invalid(
                    &format!("routes.servers[{i}]"),
                    format!("{s:?} is not HOST:PORT"),
                ));
            }
        }
        let route_tls = if r.plaintext || r.servers.is_empty() {
            None
        } else {
            match (&r.ca, &r.cert, &r.key) {
                (Some(ca), Some(cert), Some(key)) => Some(RouteTls {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                    server_name: Some(r.server_name.trim().to_string()).filter(|s| !s.is_empty()),
                }),
                _ => {
                    let missing = [("routes.ca", &r.ca), ("routes.cert", &r.cert)]
                        .into_iter()
                        .find(|(_, v)| v.is_none())
                        .map_or("routes.key", |(k, _)| k);
                    return Err(invalid(
                        missing,
                        "route servers over TLS need routes.ca, routes.cert and routes.key (or routes.plaintext = true)",
                    ));
                }
            }
        };
        if !(1..=3600).contains(&r.keepalive_secs) {
            return Err(invalid(
                "routes.keepalive_secs",
                format!("{} is outside 1..=3600", r.keepalive_secs),
            ));
        }
        let router_address = match r.router_address.trim() {
            "" => None,
            a => Some(a.parse::<Ipv6Addr>().map_err(|_| {
                invalid(
                    "routes.router_address",
                    format!("{a:?} is not an IPv6 address"),
                )
            })?),
        };
        let prefer_network = match r.prefer_network.trim() {
            "" => None,
            p => Some(
                p.parse::<Ipv6Net>()
                    .map_err(|_| {
                        invalid(
                            "routes.prefer_network",
                            format!("{p:?} is not an IPv6 prefix like \"fc00:1::/48\""),
                        )
                    })?
                    .trunc(),
            ),
        };
        let c = &self.reconcile;
        if !(1..=86_400).contains(&c.recheck_secs) {
            return Err(invalid(
                "reconcile.recheck_secs",
                format!("{} is outside 1..=86400", c.recheck_secs),
            ));
        }
        if c.backoff_min_ms == 0 || c.backoff_max_ms < c.backoff_min_ms {
            return Err(invalid(
                "reconcile.backoff_min_ms",
                "need 0 < backoff_min_ms <= backoff_max_ms",
            ));
        }
        let region_api = self.region_api.validate(&dataplane)?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a log filter (try \"info\")", self.log.level),
            ));
        }
        Ok(Settings {
            node_name,
            state_dir: self.state_dir.clone(),
            ipv6: self.ipv6,
            public_vni: self.public_vni,
            admin_socket,
            admin_listen,
            admin_tls,
            dataplane,
            check_interval: Duration::from_millis(self.dataplane.check_interval_ms),
            call_timeout: Duration::from_millis(self.dataplane.call_timeout_ms),
            vf: VfConfig { mode },
            route_servers: r.servers.iter().map(|s| s.trim().to_string()).collect(),
            route_tls,
            keepalive: Duration::from_secs(r.keepalive_secs),
            router_address,
            prefer_network,
            recheck: Duration::from_secs(c.recheck_secs),
            backoff: (
                Duration::from_millis(c.backoff_min_ms),
                Duration::from_millis(c.backoff_max_ms),
            ),
            http: listen("http.listen", &self.http.listen)?,
            region_api,
            log_format: self.log.format,
            log_level: self.log.level.clone(),
        })
    }
}

impl RegionApiSection {
    fn validate(&self, dataplane: &DataplaneTarget) -> Result<Option<RegionApi>, ConfigError> {
        let address = self.address.trim();
        if address.is_empty() {
            return Ok(None);
        }
        let host = match address.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                h.trim_start_matches('[').trim_end_matches(']')
            }
            _ => {
                return Err(invalid(
                    "region_api.address",
                    format!("{address:?} is not HOST:PORT"),
                ));
            }
        };
        let tls = match (&self.ca, &self.cert, &self.key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some((ca.clone(), cert.clone(), key.clone())),
            (ca, cert, _) => {
                let missing = [("region_api.ca", ca), ("region_api.cert", cert)]
                    .into_iter()
                    .find(|(_, v)| v.is_none())
                    .map_or("region_api.key", |(k, _)| k);
                return Err(invalid(
                    missing,
                    "region_api.ca, region_api.cert and region_api.key go together",
                ));
            }
        };
        let underlay_prefix = match (self.underlay_prefix.trim(), dataplane) {
            ("", DataplaneTarget::Embedded { underlay, .. }) => *underlay,
            ("", DataplaneTarget::Remote(_)) => {
                return Err(invalid(
                    "region_api.underlay_prefix",
                    "required with a remote dataplane (this node's underlay IPv6 prefix)",
                ));
            }
            (p, _) => p
                .parse::<Ipv6Net>()
                .map_err(|_| {
                    invalid(
                        "region_api.underlay_prefix",
                        format!("{p:?} is not an IPv6 prefix like \"fc00:1::/64\""),
                    )
                })?
                .trunc(),
        };
        if let Some(k) = self.labels.keys().find(|k| k.trim().is_empty()) {
            return Err(invalid(
                &format!("region_api.labels.{k:?}"),
                "label keys must not be empty",
            ));
        }
        if !(100..=600_000).contains(&self.heartbeat_ms) {
            return Err(invalid(
                "region_api.heartbeat_ms",
                format!("{} is outside 100..=600000", self.heartbeat_ms),
            ));
        }
        if !(10..=60_000).contains(&self.status_interval_ms) {
            return Err(invalid(
                "region_api.status_interval_ms",
                format!("{} is outside 10..=60000", self.status_interval_ms),
            ));
        }
        let server_name = match self.server_name.trim() {
            "" => host.to_string(),
            n => n.to_string(),
        };
        Ok(Some(RegionApi {
            address: address.to_string(),
            tls,
            server_name,
            underlay_prefix,
            labels: self.labels.clone(),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            status_interval: Duration::from_millis(self.status_interval_ms),
        }))
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub(super) fn parse(s: &str) -> Result<Settings, ConfigError> {
        Config::parse(s, Path::new("node.toml"))?.validate()
    }

    pub(super) fn bad_key(s: &str) -> String {
        match parse(s) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_the_shipped_example() {
        let s = parse("").unwrap();
        assert_eq!(
            s.dataplane,
            DataplaneTarget::Remote("127.0.0.1:1337".into())
        );
        assert!(matches!(s.vf.mode, VfMode::Sysfs { .. }));
        assert_eq!(s.public_vni, 100);
        let s = parse("[dataplane]\naddress = \"embedded\"").unwrap();
        assert!(matches!(s.vf.mode, VfMode::Tap { count: 126 }));
        parse(include_str!("../../../config/node.toml")).unwrap();
        assert_eq!(parse("").unwrap().region_api, None);
        let s =
            parse("[dataplane]\naddress = \"embedded\"\n[region_api]\naddress = \"[::1]:4730\"")
                .unwrap();
        let r = s.region_api.unwrap();
        assert_eq!((r.server_name.as_str(), r.tls), ("::1", None));
        assert_eq!(r.underlay_prefix, "fc00:1::/64".parse().unwrap());
        assert_eq!(r.heartbeat, Duration::from_millis(2000));
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(bad_key("public_vni = 0"), "public_vni");
        assert_eq!(bad_key("[dataplane]\naddress = \"x\""), "dataplane.address");
        assert_eq!(
            bad_key("[dataplane]\naddress = \"embedded\"\nembedded_underlay = \"fc00::/48\""),
            "dataplane.embedded_underlay"
        );
        assert_eq!(bad_key("[vf]\nmode = \"pci\""), "vf.mode");
        assert_eq!(bad_key("[vf]\npf_base = \"03:00\""), "vf.pf_base");
        assert_eq!(bad_key("[routes]\nservers = [\"[::1]:4711\"]"), "routes.ca");
        assert_eq!(
            bad_key("[routes]\nservers = [\"nohost\"]"),
            "routes.servers[0]"
        );
        assert_eq!(
            bad_key("[routes]\nrouter_address = \"10.0.0.1\""),
            "routes.router_address"
        );
        assert_eq!(
            bad_key("[admin]\nsocket = \"\"\nlisten = \"\""),
            "admin.socket"
        );
        assert_eq!(bad_key("[http]\nlisten = \"x\""), "http.listen");
        assert_eq!(
            bad_key("[routes]\nprefer_network = \"10.0.0.0/8\""),
            "routes.prefer_network"
        );
        assert_eq!(bad_key("[admin]\nca = \"ca.pem\""), "admin.ca");
        assert_eq!(bad_key("[log]\nlevel = \"=[\""), "log.level");
        let region = |extra: &str| bad_key(&format!("[region_api]\naddress = \"r:4730\"\n{extra}"));
        assert_eq!(region(""), "region_api.underlay_prefix");
        assert_eq!(
            region("underlay_prefix = \"x\""),
            "region_api.underlay_prefix"
        );
        assert_eq!(region("cert = \"n.pem\""), "region_api.ca");
        assert_eq!(
            region("underlay_prefix = \"fc00::/64\"\nheartbeat_ms = 1"),
            "region_api.heartbeat_ms"
        );
        assert_eq!(
            bad_key("[region_api]\naddress = \"r\""),
            "region_api.address"
        );
        assert!(matches!(parse("bogus = 1"), Err(ConfigError::Parse { .. })));
        assert!(matches!(
            parse("[dataplane]\nadress = \"x\""),
            Err(ConfigError::Parse { .. })
        ));
    }
}
