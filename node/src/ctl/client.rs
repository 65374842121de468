//! The node's address (`--node`) and connecting to it.
//!
//! `unix:PATH` (also `unix://PATH`) or an absolute path is the node's Unix socket; `HOST:PORT` or
//! `http://HOST:PORT` is TCP: plaintext with [`connect`], mutual TLS with [`connect_tls`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ferrinet_proto::node::v1::node_admin_client::NodeAdminClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::CtlError;

/// The default `--node`: the daemon's Unix socket.
pub const DEFAULT_NODE: &str = "unix:/run/ferrinet/node.sock";
/// The environment variable that replaces [`DEFAULT_NODE`].
pub const NODE_ENV: &str = "FERRINET_NODE";

/// Where the node daemon's admin API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddr {
    /// A Unix socket.
    Unix(PathBuf),
    /// TCP: `http://HOST:PORT` (plaintext, or mutual TLS with [`connect_tls`]).
    Tcp(String),
}

impl FromStr for NodeAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            // `unix:///run/x.sock` (gRPC's form) and `unix:/run/x.sock` name the same path.
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("unix: needs a socket path (unix:/run/ferrinet/node.sock)".into());
            }
            return Ok(NodeAddr::Unix(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(NodeAddr::Unix(PathBuf::from(s)));
        }
        if s.starts_with("https://") {
            return Err(format!(
                "{s:?}: give HOST:PORT and --ca/--cert/--key for TLS, or unix:PATH"
            ));
        }
        let authority = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        let uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|e| format!("{s:?}: not an address ({e})"))?;
        match (uri.host(), uri.port_u16(), uri.path()) {
            (Some(h), Some(_), "/") if !h.is_empty() => {
                Ok(NodeAddr::Tcp(format!("http://{authority}")))
            }
            _ => Err(format!(
                "{s:?}: expected unix:PATH, /PATH, HOST:PORT or http://HOST:PORT"
            )),
        }
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            NodeAddr::Tcp(uri) => f.write_str(uri.strip_prefix("http://").unwrap_or(uri)),
        }
    }
}

/// Connects to the node; `timeout` bounds the connection and every unary request (a watch's
/// stream is not bounded).
///
/// A failure is [`CtlError::Unreachable`] (exit 3).
pub async fn connect(
    addr: &NodeAddr,
    timeout: Duration,
) -> Result<NodeAdminClient<Channel>, CtlError> {
    let node = addr.to_string();
    let channel = match addr {
        NodeAddr::Unix(path) => {
            let path = path.clone();
            // The URI is not used: the connector ignores it.
            Endpoint::from_static("http://localhost")
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        NodeAddr::Tcp(uri) => {
            let endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|e| CtlError::Input(format!("--node {node}: {e}")))?;
            endpoint
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect()
                .await
        }
    };
    let channel = channel.map_err(|e| CtlError::unreachable(&node, &e))?;
    Ok(NodeAdminClient::new(channel))
}

/// Mutual TLS towards a node's TCP admin listener: the region CA and this client's
/// certificate and key (PEM files), and the name the node's certificate carries (default: the
/// host of the address).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// CA the node's certificate must chain to.
    pub ca: PathBuf,
    /// This client's certificate.
    pub cert: PathBuf,
    /// This client's key.
    pub key: PathBuf,
    /// Server name override.
    pub server_name: Option<String>,
}

/// As [`connect`], over TCP with mutual TLS.
pub async fn connect_tls(
    addr: &NodeAddr,
    timeout: Duration,
    tls: &TlsFiles,
) -> Result<NodeAdminClient<Channel>, CtlError> {
    let node = addr.to_string();
    let NodeAddr::Tcp(uri) = addr else {
        return Err(CtlError::Input(format!(
            "--node {node}: TLS (--ca/--cert/--key) is for a TCP address, not a Unix socket"
        )));
    };
    Ok(NodeAdminClient::new(
        tls_channel(uri, &node, timeout, tls).await?,
    ))
}

/// A mutual-TLS channel to `uri` (`http://HOST:PORT`; the scheme only names the authority), for
/// any gRPC client (the node's admin API, the region API). A failure to connect is
/// [`CtlError::Unreachable`] naming `target`.
pub async fn tls_channel(
    uri: &str,
    target: &str,
    timeout: Duration,
    tls: &TlsFiles,
) -> Result<Channel, CtlError> {
    let config = ferrinet_route_client::tls::client_config_from_files(
        &tls.ca,
        Some(&tls.cert),
        Some(&tls.key),
    )
    .map_err(|e| CtlError::Input(format!("--ca/--cert/--key: {}", crate::error_chain(&e))))?;
    let authority = uri.strip_prefix("http://").unwrap_or(uri).to_string();
    let host = authority
        .rsplit_once(':')
        .map_or(authority.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = tls.server_name.clone().unwrap_or(host);
    let server_name = ferrinet_route_client::tls::server_name(&name)
        .map_err(|e| CtlError::Input(format!("--server-name: {e}")))?;
    Endpoint::from_static("http://localhost")
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (authority, config, server_name) =
                (authority.clone(), config.clone(), server_name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(authority).await?;
                tcp.set_nodelay(true)?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server_name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| CtlError::unreachable(target, &e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_addresses() {
        let unix = |p: &str| NodeAddr::Unix(PathBuf::from(p));
        assert_eq!(DEFAULT_NODE.parse(), Ok(unix("/run/ferrinet/node.sock")));
        assert_eq!("unix:///run/x.sock".parse(), Ok(unix("/run/x.sock")));
        assert_eq!("unix:rel/x.sock".parse(), Ok(unix("rel/x.sock")));
        assert_eq!("/tmp/n.sock".parse(), Ok(unix("/tmp/n.sock")));
        let tcp = |u: &str| NodeAddr::Tcp(u.to_owned());
        assert_eq!("127.0.0.1:5000".parse(), Ok(tcp("http://127.0.0.1:5000")));
        assert_eq!("http://node-a:5000/".parse(), Ok(tcp("http://node-a:5000")));
        assert_eq!("[::1]:5000".parse(), Ok(tcp("http://[::1]:5000")));
        for bad in [
            "unix:",
            "node.sock",
            "node-a",
            "https://a:1",
            "a:b",
            "http://a:1/x",
            "",
        ] {
            assert!(bad.parse::<NodeAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_addresses_as_given() {
        for s in [
            "unix:/run/ferrinet/node.sock",
            "127.0.0.1:5000",
            "[::1]:5000",
        ] {
            assert_eq!(s.parse::<NodeAddr>().unwrap().to_string(), s);
        }
        assert_eq!(
            "/x.sock".parse::<NodeAddr>().unwrap().to_string(),
            "unix:/x.sock"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let addr = NodeAddr::Unix(dir.path().join("none.sock"));
        let err = connect(&addr, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::ctl::error::exit::UNREACHABLE);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach the node at {addr}: ")),
            "{text}"
        );
        assert!(text.contains("No such file or directory"), "{text}");
    }

    #[tokio::test]
    async fn refused_tcp_is_unreachable() {
        // Bind and drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: NodeAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let err = connect(&addr, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            err.exit_code(),
            crate::ctl::error::exit::UNREACHABLE,
            "{err}"
        );
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
