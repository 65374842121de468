//! `ferrinet-api`'s TOML configuration (`config/api.toml` documents every key).
//!
//! [`Config`] is the file as written (every key has a default, unknown keys are errors);
//! [`Config::validate`] turns it into [`Settings`], checking every value and naming the key of
//! the first bad one. Relative paths are resolved against the config file's directory.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dns::Zone;
use crate::ipam::{AddressRange, PoolEntry, PublicPoolSpec, PublicRanges, VniRange};
use crate::service::access::{Access, Pattern};
use crate::store::{EtcdConfig, EtcdTls};

/// Default gRPC listener: loopback, so a development API is not reachable from outside.
pub const DEFAULT_LISTEN: &str = "[::1]:4730";

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
    /// Not TOML, an unknown key or a value of the wrong type (toml names line and key).
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml found.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value of the right type that is not acceptable.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key with its table (`allocation.vni_first`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

/// The file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[api]`.
    pub api: ApiSection,
    /// `[store]`.
    pub store: StoreSection,
    /// `[allocation]`.
    pub allocation: AllocationSection,
    /// `[region]`.
    pub region: RegionSection,
    /// `[dns]`.
    pub dns: DnsSection,
    /// `[access]`.
    pub access: AccessSection,
    /// `[log]`.
    pub log: LogSection,
}

/// `[api]`: the gRPC listener and its TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// `HOST:PORT`.
    pub listen: String,
    /// The region CA, this server's certificate and key (PEM); all empty: plaintext.
    pub ca: String,
    /// See `ca`.
    pub cert: String,
    /// See `ca`.
    pub key: String,
    /// How other replicas and nodes reach this one (`https://HOST:PORT`); default: from
    /// `listen`.
    pub advertise: String,
    /// The client certificate and key a follower forwards writes to the leader with (its
    /// identity must be an admin); empty with TLS: followers do not forward.
    pub replica_cert: String,
    /// See `replica_cert`.
    pub replica_key: String,
    /// HTTP listener for /metrics, /healthz, /readyz; "" turns it off.
    pub http: String,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            ca: String::new(),
            cert: String::new(),
            key: String::new(),
            advertise: String::new(),
            replica_cert: String::new(),
            replica_key: String::new(),
            http: String::new(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `"embedded"` or `"etcd"`.
    pub backend: String,
    /// Embedded: the redb file.
    pub path: String,
    /// Embedded: revisions of history kept for watches.
    pub history: u64,
    /// etcd: client URLs.
    pub endpoints: Vec<String>,
    /// etcd TLS: CA, client certificate and key (PEM); empty: plaintext.
    pub etcd_ca: String,
    /// See `etcd_ca`.
    pub etcd_cert: String,
    /// See `etcd_ca`.
    pub etcd_key: String,
    /// etcd: the leader's lease in seconds (how long a dead leader blocks writes).
    pub lease_s: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: "embedded".into(),
            path: "/var/lib/ferrinet-api/state.redb".into(),
            history: 10_000,
            endpoints: vec!["http://127.0.0.1:2379".into()],
            etcd_ca: String::new(),
            etcd_cert: String::new(),
            etcd_key: String::new(),
            lease_s: 3,
        }
    }
}

/// `[allocation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllocationSection {
    /// First VNI handed to networks.
    pub vni_first: u32,
    /// Last VNI handed to networks.
    pub vni_last: u32,
    /// Public pools: CIDRs ("203.0.113.0/24") or ranges ("198.51.100.10-198.51.100.20").
    pub public_pools: Vec<String>,
    /// Addresses of the pools never handed out.
    pub public_excluded: Vec<String>,
}

impl Default for AllocationSection {
    fn default() -> Self {
        Self {
            vni_first: 100,
            vni_last: 16_777_215,
            public_pools: vec!["203.0.113.0/24".into()],
            public_excluded: Vec::new(),
        }
    }
}

/// `[region]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionSection {
    /// Seconds an unmatched peering item lives.
    pub peering_ttl_s: u64,
    /// Milliseconds a node's registration holds without a heartbeat.
    pub node_lease_ms: u64,
    /// Nodes per load balancer unless its spec says otherwise.
    pub lb_replicas: u32,
}

impl Default for RegionSection {
    fn default() -> Self {
        Self {
            peering_ttl_s: 86_400,
            node_lease_ms: 10_000,
            lb_replicas: 2,
        }
    }
}

/// `[dns]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// UDP and TCP `HOST:PORT`; "" turns the DNS server off.
    pub listen: String,
    /// The zone interface names live under.
    pub zone: String,
    /// Record TTL in seconds.
    pub ttl_s: u64,
}

impl Default for DnsSection {
    fn default() -> Self {
        Self {
            listen: String::new(),
            zone: "region.ferrinet.internal".into(),
            ttl_s: 30,
        }
    }
}

/// `[access]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSection {
    /// Admin identities (`*` at the end matches a prefix).
    pub admins: Vec<String>,
    /// Node identities (a node's identity is its name).
    pub nodes: Vec<String>,
    /// `[[access.tenants]]`.
    pub tenants: Vec<TenantEntry>,
}

/// `[[access.tenants]]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TenantEntry {
    /// The identity.
    pub identity: String,
    /// Its namespaces.
    pub namespaces: Vec<String>,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `"text"` or `"json"`.
    pub format: String,
    /// A tracing filter (`RUST_LOG` wins).
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info,hickory_server=warn".into(),
        }
    }
}

/// Where the store is.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// A redb file.
    Embedded {
        /// The file.
        path: PathBuf,
        /// History kept for watches.
        history: u64,
    },
    /// etcd.
    Etcd {
        /// How to reach it.
        config: EtcdConfig,
        /// The leader's lease.
        lease: Duration,
    },
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listener.
    pub listen: SocketAddr,
    /// TLS files (CA, certificate, key), `None` for plaintext.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
    /// This replica's address for the others.
    pub advertise: String,
    /// The certificate and key followers forward writes with.
    pub replica: Option<(PathBuf, PathBuf)>,
    /// HTTP listener.
    pub http: Option<SocketAddr>,
    /// The store.
    pub store: StoreSettings,
    /// VNIs.
    pub vnis: VniRange,
    /// Public addresses.
    pub public: PublicRanges,
    /// Peering TTL.
    pub peering_ttl: Duration,
    /// Node lease.
    pub node_lease: Duration,
    /// Default nodes per load balancer.
    pub lb_replicas: u32,
    /// DNS listener and zone.
    pub dns: Option<(SocketAddr, Zone)>,
    /// Roles.
    pub access: Access,
    /// Log format is JSON.
    pub log_json: bool,
    /// Log filter.
    pub log_level: String,
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Checks every value; relative paths are taken from `base` (the config file's directory).
    pub fn validate(&self, base: &Path) -> Result<Settings, ConfigError> {
        let path = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        let listen: SocketAddr = self
            .api
            .listen
            .parse()
            .map_err(|e| invalid("api.listen", format!("{:?}: {e}", self.api.listen)))?;
        let a = &self.api;
        let tls = match (a.ca.is_empty(), a.cert.is_empty(), a.key.is_empty()) {
            (true, true, true) => None,
            (false, false, false) => Some((path(&a.ca), path(&a.cert), path(&a.key))),
            _ => {
                return Err(invalid(
                    "api.ca",
                    "ca, cert and key go together (or none of them, for plaintext)",
                ));
            }
        };
        let replica = match (a.replica_cert.is_empty(), a.replica_key.is_empty()) {
            (true, true) => None,
            (false, false) if tls.is_some() => Some((path(&a.replica_cert), path(&a.replica_key))),
            (false, false) => {
                return Err(invalid("api.replica_cert", "needs ca, cert and key (TLS)"));
            }
            _ => {
                return Err(invalid(
                    "api.replica_cert",
                    "replica_cert and replica_key go together",
                ));
            }
        };
        let http = if a.http.is_empty() {
            None
        } else {
            Some(
                a.http
                    .parse()
                    .map_err(|e| invalid("api.http", format!("{:?}: {e}", a.http)))?,
            )
        };
        let advertise = if a.advertise.is_empty() {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{listen}")
        } else {
            a.advertise.clone()
        };
        let s = &self.store;
        let store = match s.backend.as_str() {
            "embedded" => StoreSettings::Embedded {
                path: path(&s.path),
                history: s.history,
            },
            "etcd" => {
                if s.endpoints.is_empty() {
                    return Err(invalid(
                        "store.endpoints",
                        "etcd needs at least one endpoint",
                    ));
                }
                if s.lease_s == 0 || s.lease_s > 3600 {
                    return Err(invalid("store.lease_s", "must be 1 to 3600"));
                }
                let mut config = EtcdConfig::new(s.endpoints.clone());
                config.tls = match (
                    s.etcd_ca.is_empty(),
                    s.etcd_cert.is_empty(),
                    s.etcd_key.is_empty(),
                ) {
                    (true, true, true) => None,
                    (false, true, true) => Some(EtcdTls {
                        ca: path(&s.etcd_ca),
                        identity: None,
                        server_name: None,
                    }),
                    (false, false, false) => Some(EtcdTls {
                        ca: path(&s.etcd_ca),
                        identity: Some((path(&s.etcd_cert), path(&s.etcd_key))),
                        server_name: None,
                    }),
                    _ => {
                        return Err(invalid(
                            "store.etcd_ca",
                            "etcd_cert and etcd_key need etcd_ca, and go together",
                        ));
                    }
                };
                StoreSettings::Etcd {
                    config,
                    lease: Duration::from_secs(s.lease_s),
                }
            }
            other => {
                return Err(invalid(
                    "store.backend",
                    format!("{other:?}: must be \"embedded\" or \"etcd\""),
                ));
            }
        };
        let al = &self.allocation;
        let vnis = VniRange::new(al.vni_first, al.vni_last)
            .map_err(|e| invalid("allocation.vni_first", e))?;
        let public = public_pools(al)?;
        let r = &self.region;
        if r.node_lease_ms < 500 {
            return Err(invalid("region.node_lease_ms", "must be at least 500"));
        }
        if r.lb_replicas == 0 {
            return Err(invalid("region.lb_replicas", "must be at least 1"));
        }
        let dns = if self.dns.listen.is_empty() {
            None
        } else {
            let addr: SocketAddr = self
                .dns
                .listen
                .parse()
                .map_err(|e| invalid("dns.listen", format!("{:?}: {e}", self.dns.listen)))?;
            let zone = Zone::new(&self.dns.zone)
                .and_then(|z| z.with_ttl(Duration::from_secs(self.dns.ttl_s)))
                .map_err(|e| invalid("dns.zone", e))?;
            Some((addr, zone))
        };
        let access = access(&self.access)?;
        let log_json = match self.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?}: must be \"text\" or \"json\""),
                ));
            }
        };
        Ok(Settings {
            listen,
            tls,
            advertise,
            replica,
            http,
            store,
            vnis,
            public,
            peering_ttl: Duration::from_secs(r.peering_ttl_s),
            node_lease: Duration::from_millis(r.node_lease_ms),
            lb_replicas: r.lb_replicas,
            dns,
            access,
            log_json,
            log_level: self.log.level.clone(),
        })
    }
}

fn public_pools(al: &AllocationSection) -> Result<PublicRanges, ConfigError> {
    let mut ranges = Vec::new();
    for (i, p) in al.public_pools.iter().enumerate() {
        let key = format!("allocation.public_pools[{i}]");
        let entry = match p.split_once('-') {
            Some((a, b)) => {
                let start: IpAddr = a
                    .trim()
                    .parse()
                    .map_err(|e| invalid(&key, format!("{a:?}: {e}")))?;
                let end: IpAddr = b
                    .trim()
                    .parse()
                    .map_err(|e| invalid(&key, format!("{b:?}: {e}")))?;
                PoolEntry::Range(AddressRange::new(start, end))
            }
            None => PoolEntry::Cidr(
                p.parse()
                    .map_err(|e| invalid(&key, format!("{p:?}: {e}")))?,
            ),
        };
        ranges.push(entry);
    }
    let mut excluded = Vec::new();
    for (i, a) in al.public_excluded.iter().enumerate() {
        excluded.push(a.parse().map_err(|e| {
            invalid(
                &format!("allocation.public_excluded[{i}]"),
                format!("{a:?}: {e}"),
            )
        })?);
    }
    PublicRanges::new(&PublicPoolSpec { ranges, excluded })
        .map_err(|e| invalid("allocation.public_pools", e))
}

fn access(a: &AccessSection) -> Result<Access, ConfigError> {
    let patterns = |key: &str, list: &[String]| -> Result<Vec<Pattern>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                Pattern::new(s).ok_or_else(|| invalid(&format!("{key}[{i}]"), "must not be empty"))
            })
            .collect()
    };
    let mut tenants = Vec::new();
    for (i, t) in a.tenants.iter().enumerate() {
        let key = format!("access.tenants[{i}]");
        let p = Pattern::new(&t.identity)
            .ok_or_else(|| invalid(&format!("{key}.identity"), "must not be empty"))?;
        let mut ns = BTreeSet::new();
        for (j, n) in t.namespaces.iter().enumerate() {
            if !crate::selector::is_dns_label(n) {
                return Err(invalid(
                    &format!("{key}.namespaces[{j}]"),
                    format!("{n:?} is not a DNS label"),
                ));
            }
            ns.insert(n.clone());
        }
        tenants.push((p, ns));
    }
    Ok(Access {
        admins: patterns("access.admins", &a.admins)?,
        tenants,
        nodes: patterns("access.nodes", &a.nodes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        let s = Config::default()
            .validate(Path::new("/etc"))
            .expect("defaults");
        assert!(s.tls.is_none());
        assert_eq!(s.advertise, "http://[::1]:4730");
        let bad = |toml: &str| {
            let c: Config = toml::from_str(toml).expect("parses");
            c.validate(Path::new("/etc"))
                .expect_err("invalid")
                .to_string()
        };
        assert!(bad("[api]\nlisten = \"nope\"").starts_with("api.listen:"));
        assert!(bad("[api]\nca = \"ca.pem\"").starts_with("api.ca:"));
        assert!(bad("[store]\nbackend = \"zk\"").starts_with("store.backend:"));
        assert!(bad("[allocation]\nvni_first = 0").starts_with("allocation.vni_first:"));
        assert!(
            bad("[allocation]\npublic_pools = [\"x\"]").starts_with("allocation.public_pools[0]:")
        );
        assert!(bad("[dns]\nlisten = \"127.0.0.1:53\"\nzone = \"a..b\"").starts_with("dns.zone:"));
        assert!(
            bad("[[access.tenants]]\nidentity = \"a\"\nnamespaces = [\"Bad_NS\"]")
                .starts_with("access.tenants[0].namespaces[0]:")
        );
        assert!(
            toml::from_str::<Config>("[api]\nlisten2 = \"x\"").is_err(),
            "unknown keys are errors"
        );
    }

    #[test]
    fn the_documented_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/api.toml");
        let c = Config::load(&path).expect("config/api.toml parses");
        c.validate(Path::new("/etc/ferrinet"))
            .expect("config/api.toml is valid");
    }
}
