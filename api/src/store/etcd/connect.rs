//! The channel to etcd: one lazily (re)connecting HTTP/2 channel whose connector tries the
//! configured endpoints in turn, over plain TCP or TLS (rustls with ring, as the rest of
//! ferrinet; a client certificate makes it mutual TLS).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::store::StoreError;

/// Where etcd is and how to reach it.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the cluster's members: `http://HOST:PORT`, `https://HOST:PORT` (with
    /// [`EtcdConfig::tls`]) or `HOST:PORT`. Connections go to the first that answers, in turn.
    pub endpoints: Vec<String>,
    /// TLS towards etcd; `None` for plaintext.
    pub tls: Option<EtcdTls>,
    /// Bound on connecting, and on the first request that checks etcd answers.
    pub connect_timeout: Duration,
    /// Bound on every unary request (a watch's or keep-alive's stream is not bounded).
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// Plaintext to `endpoints`, with default timeouts (5 s to connect, 10 s per request).
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// TLS towards etcd: the CA its serving certificate chains to and, for mutual TLS
/// (`--client-cert-auth`), this client's certificate and key. PEM files.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// CA certificate(s) to verify etcd's certificate with.
    pub ca: PathBuf,
    /// Client certificate chain and its key, for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name to verify etcd's certificate for; default: the endpoint's host.
    pub server_name: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Conn = TokioIo<Pin<Box<dyn Io>>>;

#[derive(Clone)]
struct Connector {
    /// `host:port` of each member.
    endpoints: Arc<[String]>,
    next: Arc<AtomicUsize>,
    tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
}

impl Connector {
    async fn connect(self) -> std::io::Result<Conn> {
        let n = self.endpoints.len();
        // Start one further each time, so that a member that is gone is not the only one
        // tried first after every lost connection.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let addr = &self.endpoints[(start + i) % n];
            match self.connect_one(addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(std::io::Error::new(e.kind(), format!("{addr}: {e}"))),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no etcd endpoint")))
    }

    async fn connect_one(&self, addr: &str) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let Some((tls, name)) = &self.tls else {
            return Ok(TokioIo::new(Box::pin(tcp)));
        };
        let host = name.clone().unwrap_or_else(|| host_of(addr).to_owned());
        let name = ServerName::try_from(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let stream = tls.connect(name, tcp).await?;
        Ok(TokioIo::new(Box::pin(stream)))
    }
}

/// The host of `host:port` (IPv6 without brackets).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// `host:port` of an endpoint URL, checked against whether TLS is configured.
fn authority(endpoint: &str, tls: bool) -> Result<String, StoreError> {
    let bad = |why: &str| {
        Err(StoreError::Invalid(format!(
            "etcd endpoint {endpoint:?}: {why}"
        )))
    };
    let rest = match endpoint.split_once("://") {
        Some(("http", rest)) if !tls => rest,
        Some(("https", rest)) if tls => rest,
        Some(("http", _)) => return bad("http:// but TLS is configured"),
        Some(("https", _)) => return bad("https:// needs TLS settings (CA)"),
        Some(_) => return bad("scheme must be http or https"),
        None => endpoint,
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(rest.to_owned())
        }
        _ => bad("expected HOST:PORT"),
    }
}

fn tls_connector(tls: &EtcdTls) -> Result<tokio_rustls::TlsConnector, StoreError> {
    let read = |what: &str, path: &PathBuf, e: rustls_pki_types::pem::Error| StoreError::Io {
        context: format!("etcd TLS {what} {}", path.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    };
    let certs = |path: &PathBuf, what: &str| -> Result<Vec<CertificateDer<'static>>, StoreError> {
        CertificateDer::pem_file_iter(path)
            .map_err(|e| read(what, path, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read(what, path, e))
    };
    let invalid =
        |what: &str, e: rustls::Error| StoreError::Invalid(format!("etcd TLS {what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs(&tls.ca, "CA")? {
        roots.add(ca).map_err(|e| invalid("CA", e))?;
    }
    if roots.is_empty() {
        return Err(StoreError::Invalid(format!(
            "etcd TLS CA {}: no certificate",
            tls.ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("protocol versions", e))?
        .with_root_certificates(roots);
    let mut config = match &tls.identity {
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read("key", key, e))?;
            builder
                .with_client_auth_cert(certs(cert, "certificate")?, key)
                .map_err(|e| invalid("client certificate", e))?
        }
        None => builder.with_no_client_auth(),
    };
    // gRPC servers (etcd's among them) require HTTP/2 to be negotiated.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The channel; connects on first use.
pub(super) fn channel(config: &EtcdConfig) -> Result<Channel, StoreError> {
    if config.endpoints.is_empty() {
        return Err(StoreError::Invalid("no etcd endpoint".into()));
    }
    let endpoints = config
        .endpoints
        .iter()
        .map(|e| authority(e, config.tls.is_some()))
        .collect::<Result<Vec<_>, _>>()?;
    let tls = match &config.tls {
        Some(t) => Some((tls_connector(t)?, t.server_name.clone())),
        None => None,
    };
    let connector = Connector {
        endpoints: endpoints.into(),
        next: Arc::new(AtomicUsize::new(0)),
        tls,
    };
    // The URI only names the channel: the connector picks the member.
    Ok(Endpoint::from_static("http://etcd")
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        // Pings find a dead connection (a member gone without a reset) while a watch or a
        // keep-alive stream waits on it; 10 s is above etcd's 5 s minimum ping interval.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| connector.clone().connect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            authority("http://127.0.0.1:2379", false).ok().as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(
            authority("127.0.0.1:2379/", false).ok().as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(
            authority("https://[::1]:2379", true).ok().as_deref(),
            Some("[::1]:2379")
        );
        for (bad, tls) in [
            ("https://a:1", false),
            ("http://a:1", true),
            ("ftp://a:1", false),
            ("a", false),
            ("a:b", false),
            (":1", false),
        ] {
            assert!(authority(bad, tls).is_err(), "{bad}");
        }
        assert_eq!(host_of("[::1]:2379"), "::1");
        assert_eq!(host_of("etcd-1:2379"), "etcd-1");
    }
}
