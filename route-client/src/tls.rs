//! TLS 1.3 setup (rustls, ring provider) from PEM files: the client configuration (trust the
//! region CA, present this node's certificate) and the server configuration that requires a
//! client certificate of the region CA (route servers, and the node's admin API over TCP).
//! Reading a verified peer's identity lives with the route server, which needs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A TLS setup that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds nothing of the wanted kind.
    #[error("cannot read {what} from {path}")]
    Pem {
        /// "certificates" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The PEM text given in memory is not valid.
    #[error("invalid {what} PEM")]
    PemText {
        /// What it should hold.
        what: &'static str,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A CA certificate is not a usable trust anchor.
    #[error("CA certificate is not a usable trust anchor")]
    TrustAnchor(#[source] rustls::Error),
    /// rustls refused the certificate/key pair or the protocol setup.
    #[error("rustls refused the configuration")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier cannot be built (no trust anchors).
    #[error("cannot build the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The server name for a client connection is not a DNS name or an IP address.
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// The ring crypto provider, installed explicitly rather than process-wide.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |source| TlsError::Pem {
        what: "certificates",
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    if certs.is_empty() {
        return Err(err(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        what: "private key",
        path: path.to_owned(),
        source,
    })
}

/// Certificates from PEM text.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |source| TlsError::PemText {
        what: "certificate",
        source,
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    if certs.is_empty() {
        return Err(err(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// A private key from PEM text.
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| TlsError::PemText {
        what: "private key",
        source,
    })
}

/// A root store holding `ca`.
pub fn roots(ca: Vec<CertificateDer<'static>>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(TlsError::TrustAnchor)?;
    }
    Ok(Arc::new(roots))
}

/// Server configuration: TLS 1.3 only, client certificate required and verified against
/// `client_ca` (mutual authentication).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(client_ca)?,
        provider.clone(),
    )
    .build()?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// Server configuration from PEM files.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config(load_certs(cert)?, load_key(key)?, load_certs(client_ca)?)
}

/// Client configuration: TLS 1.3 only, the server verified against `ca`, and this node's
/// certificate presented when `identity` is given (ferrinet servers require it).
pub fn client_config(
    ca: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?);
    let cfg = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Client configuration from PEM files.
pub fn client_config_from_files(
    ca: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((load_certs(c)?, load_key(k)?)),
        _ => None,
    };
    client_config(load_certs(ca)?, identity)
}

/// The TLS server name for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn client_config_builds_from_pem_text() {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let certs = certs_from_pem(&ca.pem()).unwrap();
        let own = key_from_pem(&key.serialize_pem()).unwrap();
        client_config(certs.clone(), Some((certs, own))).unwrap();
        assert!(certs_from_pem("nothing").is_err());
        assert!(key_from_pem("nothing").is_err());
        assert!(matches!(
            load_certs(Path::new("/nonexistent/x.pem")),
            Err(TlsError::Pem { .. })
        ));
        assert!(server_name("127.0.0.1").is_ok());
        assert!(matches!(server_name("a b"), Err(TlsError::ServerName(_))));
    }
}
