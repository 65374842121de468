//! The route server's TOML configuration (`config/region.toml` documents every key).
//!
//! [`Config`] is the file as written (every key has a default, unknown keys are errors);
//! [`Config::validate`] turns it into [`Settings`], checking every value and naming the key of
//! the first bad one. Relative paths are resolved against the config file's directory, so a
//! config and its certificates can move together.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

pub use crate::server::CompatMode;
use crate::server::authz::{Authz, Permission, Unlisted};
use crate::server::{ServerConfig, ServerError};
use crate::tls;

/// Default TLS listener: loopback, so a development server is not reachable from outside.
pub const DEFAULT_LISTEN: &str = "[::1]:4711";
/// Default HTTP listener (status page, JSON, metrics).
pub const DEFAULT_HTTP: &str = "127.0.0.1:4712";

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
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml found (it names the line and key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value has the right type but is not acceptable.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, with its table (`server.max_sessions`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The configuration file as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: TLS listener and session limits.
    pub server: ServerSection,
    /// `[tls]`: certificate files.
    pub tls: TlsSection,
    /// `[compat]`: the plaintext listener for metalbond v1 peers.
    pub compat: CompatSection,
    /// `[http]`: status page, JSON and metrics.
    pub http: HttpSection,
    /// `[log]`: log format and level.
    pub log: LogSection,
    /// `[authorization]`: which next hops each client identity may announce.
    pub authorization: AuthorizationSection,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// TLS listener address; empty turns the TLS listener off.
    pub listen: String,
    /// Largest keepalive interval the server accepts, seconds (it answers the lower of this and
    /// the client's).
    pub keepalive_secs: u64,
    /// Sessions over all listeners; connections beyond it are closed at once.
    pub max_sessions: usize,
    /// Items in each session's send queue; a subscriber whose queue overflows is disconnected.
    pub queue_len: usize,
    /// Time a TLS handshake may take.
    pub handshake_timeout_secs: u64,
    /// On shutdown, time sessions get to flush before the process exits.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSection {
    /// The server's own defaults, in the file's units.
    fn default() -> Self {
        let d = ServerConfig::default();
        Self {
            listen: DEFAULT_LISTEN.into(),
            keepalive_secs: d.keepalive.as_secs(),
            max_sessions: d.max_sessions,
            queue_len: d.queue_len,
            handshake_timeout_secs: d.handshake_timeout.as_secs(),
            shutdown_grace_secs: d.shutdown_grace.as_secs(),
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) a client certificate must chain to.
    pub client_ca: Option<PathBuf>,
}

/// `[compat]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatSection {
    /// Plaintext listener address; empty (the default) turns it off.
    pub listen: String,
    /// What plaintext peers may do.
    pub mode: CompatMode,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// HTTP listener address; empty turns it off.
    pub listen: String,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: DEFAULT_HTTP.into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Output format.
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax (`info`, `ferrinet_region=debug`); `RUST_LOG` overrides it.
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

/// `[authorization]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationSection {
    /// What a TLS client whose identity has no `[[authorization.node]]` entry may do.
    pub unlisted: Unlisted,
    /// One entry per node identity.
    pub node: Vec<NodeEntry>,
}

/// `[[authorization.node]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The identity: first DNS or URI SAN of the client certificate.
    pub identity: String,
    /// Underlay IPv6 prefixes this node may use as next hops (`::/0` for any).
    pub next_hops: Vec<String>,
}

/// Listener addresses after validation; `None` means off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// TLS route listener.
    pub tls: Option<SocketAddr>,
    /// Plaintext route listener.
    pub compat: Option<SocketAddr>,
    /// HTTP listener.
    pub http: Option<SocketAddr>,
}

/// Certificate file paths, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// Client CA bundle.
    pub client_ca: PathBuf,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub addresses: Addresses,
    /// Certificate files; `None` when none are configured (then the TLS listener cannot run).
    pub tls: Option<TlsPaths>,
    /// The server's settings, without TLS loaded yet (see [`Settings::server_config`]).
    pub server: ServerConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
}

/// Parses a listen address; empty means off.
pub fn parse_listen(key: &str, s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    SocketAddr::from_str(s).map(Some).map_err(|_| {
        invalid(
            key,
            format!("{s:?} is not an address with port, like \"127.0.0.1:4711\" or \"[::]:4711\""),
        )
    })
}

impl Config {
    /// The configuration as a TOML file, for tools and tests that start a server process from
    /// typed values. Fails only for a path that is not UTF-8.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Parses TOML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Reads and parses a file, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text, path)?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        Ok(cfg)
    }

    /// Makes relative certificate paths relative to `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.tls.client_ca,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let s = &self.server;
        let addresses = Addresses {
            tls: parse_listen("server.listen", &s.listen)?,
            compat: parse_listen("compat.listen", &self.compat.listen)?,
            http: parse_listen("http.listen", &self.http.listen)?,
        };
        if addresses.tls.is_none() && addresses.compat.is_none() {
            return Err(invalid(
                "server.listen",
                "both route listeners are off (server.listen and compat.listen are empty)",
            ));
        }
        if !(1..=3600).contains(&s.keepalive_secs) {
            return Err(invalid(
                "server.keepalive_secs",
                format!("{} is outside 1..=3600", s.keepalive_secs),
            ));
        }
        if !(1..=1_000_000).contains(&s.max_sessions) {
            return Err(invalid(
                "server.max_sessions",
                format!("{} is outside 1..=1000000", s.max_sessions),
            ));
        }
        if !(16..=1_000_000).contains(&s.queue_len) {
            return Err(invalid(
                "server.queue_len",
                format!("{} is outside 16..=1000000", s.queue_len),
            ));
        }
        if !(1..=300).contains(&s.handshake_timeout_secs) {
            return Err(invalid(
                "server.handshake_timeout_secs",
                format!("{} is outside 1..=300", s.handshake_timeout_secs),
            ));
        }
        if s.shutdown_grace_secs > 300 {
            return Err(invalid(
                "server.shutdown_grace_secs",
                format!("{} exceeds 300", s.shutdown_grace_secs),
            ));
        }
        let tls = match (&self.tls.cert, &self.tls.key, &self.tls.client_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => Some(TlsPaths {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: ca.clone(),
            }),
            _ => {
                let missing = [
                    ("tls.cert", self.tls.cert.is_none()),
                    ("tls.key", self.tls.key.is_none()),
                    ("tls.client_ca", self.tls.client_ca.is_none()),
                ]
                .into_iter()
                .find(|(_, m)| *m)
                .map_or("tls", |(k, _)| k);
                return Err(invalid(
                    missing,
                    "missing: tls.cert, tls.key and tls.client_ca go together",
                ));
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a log filter (try \"info\" or \"ferrinet_region=debug\")",
                    self.log.level
                ),
            ));
        }
        Ok(Settings {
            addresses,
            tls,
            server: ServerConfig {
                tls: None,
                keepalive: Duration::from_secs(s.keepalive_secs),
                max_sessions: s.max_sessions,
                queue_len: s.queue_len,
                handshake_timeout: Duration::from_secs(s.handshake_timeout_secs),
                shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
                compat_mode: self.compat.mode,
                authz: self.authorization.validate()?,
            },
            log_format: self.log.format,
            log_level: self.log.level.clone(),
        })
    }
}

impl Settings {
    /// The server's configuration with the TLS files (if any) loaded.
    pub fn server_config(&self) -> Result<ServerConfig, ServerError> {
        let tls = match &self.tls {
            Some(p) => Some(tls::server_config_from_files(
                &p.cert,
                &p.key,
                &p.client_ca,
            )?),
            None => None,
        };
        Ok(ServerConfig {
            tls,
            ..self.server.clone()
        })
    }
}

impl AuthorizationSection {
    fn validate(&self) -> Result<Authz, ConfigError> {
        let mut nodes = HashMap::new();
        for (i, n) in self.node.iter().enumerate() {
            let key = |field: &str| format!("authorization.node[{i}].{field}");
            if n.identity.trim().is_empty() {
                return Err(invalid(key("identity"), "must not be empty"));
            }
            let mut nets = Vec::with_capacity(n.next_hops.len());
            for p in &n.next_hops {
                let net = Ipv6Net::from_str(p.trim()).map_err(|_| {
                    invalid(
                        key("next_hops"),
                        format!("{p:?} is not an IPv6 prefix like \"fd00:1::/64\""),
                    )
                })?;
                nets.push(net.trunc());
            }
            if nodes
                .insert(n.identity.clone(), Permission::NextHops(nets))
                .is_some()
            {
                return Err(invalid(
                    key("identity"),
                    format!("{:?} is listed twice", n.identity),
                ));
            }
        }
        Ok(Authz::new(nodes, self.unlisted))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(s: &str) -> Result<Settings, ConfigError> {
        Config::parse(s, Path::new("test.toml"))?.validate()
    }

    fn bad_key(s: &str) -> String {
        match parse(s) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let s = parse("").unwrap();
        assert_eq!(s.addresses.tls, Some("[::1]:4711".parse().unwrap()));
        assert_eq!(s.addresses.compat, None);
        assert_eq!(s.addresses.http, Some("127.0.0.1:4712".parse().unwrap()));
        assert_eq!(s.server.keepalive, Duration::from_secs(5));
        assert_eq!(s.server.compat_mode, CompatMode::ReadOnly);
        assert!(s.tls.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../config/region.toml");
        let s = parse(text).unwrap();
        assert!(s.tls.is_some());
    }

    #[test]
    fn full_config_parses() {
        let s = parse(
            r#"
            [server]
            listen = "127.0.0.1:0"
            max_sessions = 3
            [tls]
            cert = "s.pem"
            key = "s.key"
            client_ca = "ca.pem"
            [compat]
            listen = "[::1]:0"
            mode = "trusted"
            [http]
            listen = ""
            [log]
            format = "json"
            level = "debug"
            [authorization]
            unlisted = "reject"
            [[authorization.node]]
            identity = "node-a"
            next_hops = ["fd00:1::/64", "fd00:2::1/128"]
            "#,
        )
        .unwrap();
        assert_eq!(s.addresses.http, None);
        assert_eq!(s.server.compat_mode, CompatMode::Trusted);
        assert_eq!(s.server.max_sessions, 3);
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(
            s.server
                .authz
                .permission("node-a")
                .unwrap()
                .allows("fd00:1::5".parse().unwrap())
        );
        assert!(s.server.authz.permission("node-b").is_none());
    }

    #[test]
    fn unknown_keys_are_errors() {
        for s in [
            "bogus = 1",
            "[server]\nlisten_addr = \"[::1]:1\"",
            "[tls]\ncertificate = \"x\"",
            "[compat]\nmode = \"open\"",
            "[[authorization.node]]\nidentity = \"a\"\nnext_hops = []\nextra = 1",
        ] {
            assert!(
                matches!(parse(s), Err(ConfigError::Parse { .. })),
                "{s} should fail"
            );
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(bad_key("[server]\nlisten = \"localhost\""), "server.listen");
        assert_eq!(bad_key("[compat]\nlisten = \"1.2.3.4\""), "compat.listen");
        assert_eq!(bad_key("[http]\nlisten = \"x:y\""), "http.listen");
        assert_eq!(bad_key("[server]\nlisten = \"\""), "server.listen");
        assert_eq!(
            bad_key("[server]\nkeepalive_secs = 0"),
            "server.keepalive_secs"
        );
        assert_eq!(bad_key("[server]\nmax_sessions = 0"), "server.max_sessions");
        assert_eq!(bad_key("[server]\nqueue_len = 1"), "server.queue_len");
        assert_eq!(bad_key("[tls]\ncert = \"a\"\nkey = \"b\""), "tls.client_ca");
        assert_eq!(bad_key("[log]\nlevel = \"=[\""), "log.level");
        assert_eq!(
            bad_key("[[authorization.node]]\nidentity = \"a\"\nnext_hops = [\"10.0.0.0/8\"]"),
            "authorization.node[0].next_hops"
        );
        assert_eq!(
            bad_key(
                "[[authorization.node]]\nidentity = \"a\"\nnext_hops = []\n[[authorization.node]]\nidentity = \"a\"\nnext_hops = []"
            ),
            "authorization.node[1].identity"
        );
    }

    #[test]
    fn typed_config_round_trips_through_toml() {
        let mut c = Config::default();
        c.server.listen = "127.0.0.1:0".into();
        c.server.queue_len = 16;
        c.tls.cert = Some("/pki/server.pem".into());
        c.tls.key = Some("/pki/server.key".into());
        c.tls.client_ca = Some("/pki/ca.pem".into());
        c.compat.listen = "127.0.0.1:0".into();
        c.compat.mode = CompatMode::Trusted;
        c.log.format = LogFormat::Json;
        c.authorization.unlisted = Unlisted::Reject;
        c.authorization.node.push(NodeEntry {
            identity: "node-a".into(),
            next_hops: vec!["fd00:a::/64".into()],
        });
        let text = c.to_toml().unwrap();
        let s = parse(&text).unwrap();
        assert_eq!(s.addresses.tls, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(s.addresses.compat, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(s.server.queue_len, 16);
        assert_eq!(s.server.compat_mode, CompatMode::Trusted);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.tls.unwrap().client_ca, Path::new("/pki/ca.pem"));
        assert!(s.server.authz.permission("node-b").is_none());
        assert!(
            s.server
                .authz
                .permission("node-a")
                .unwrap()
                .allows("fd00:a::1".parse().unwrap())
        );
        // The defaults survive the trip too.
        let d = parse(&Config::default().to_toml().unwrap()).unwrap();
        assert_eq!(d.addresses, parse("").unwrap().addresses);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut c = Config::parse(
            "[tls]\ncert = \"s.pem\"\nkey = \"/abs/s.key\"\nclient_ca = \"ca.pem\"",
            Path::new("x"),
        )
        .unwrap();
        c.resolve_paths(Path::new("/etc/ferrinet"));
        let t = c.validate().unwrap().tls.unwrap();
        assert_eq!(t.cert, Path::new("/etc/ferrinet/s.pem"));
        assert_eq!(t.key, Path::new("/abs/s.key"));
    }
}
