//! TLS 1.3 configurations (rustls, ring provider) from PEM files, and the peer identity.
//!
//! The server requires a client certificate chaining to the configured CA (mutual
//! authentication). A client's identity is the first DNS or URI subject alternative name of its
//! certificate: that is what `[[authorization.node]] identity` matches.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A TLS setup that cannot be built, or a peer certificate without identity.
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
    /// The client verifier cannot be built (no trust anchors).
    #[error("cannot build the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the certificate/key pair or the protocol setup.
    #[error("rustls refused the configuration")]
    Rustls(#[from] rustls::Error),
    /// The server name for a client connection is not a DNS name or an IP address.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// The peer sent no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    /// The peer certificate cannot be parsed.
    #[error("cannot parse peer certificate: {0}")]
    BadCertificate(String),
    /// The peer certificate has no DNS or URI subject alternative name.
    #[error("peer certificate has no DNS or URI subject alternative name to identify it")]
    NoIdentity,
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

fn roots(ca: Vec<CertificateDer<'static>>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(TlsError::TrustAnchor)?;
    }
    Ok(Arc::new(roots))
}

/// Server configuration from in-memory certificates: TLS 1.3 only, client certificate required
/// and verified against `client_ca`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(client_ca)?, provider.clone()).build()?;
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

/// The identity of a verified peer: the first DNS or URI SAN of its end-entity certificate.
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Result<String, TlsError> {
    use x509_parser::extensions::GeneralName;

    let der = certs
        .and_then(|c| c.first())
        .ok_or(TlsError::NoPeerCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?
        .ok_or(TlsError::NoIdentity)?;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::URI(s) => Some((*s).to_owned()),
            _ => None,
        })
        .ok_or(TlsError::NoIdentity)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::certs;

    #[test]
    fn identity_is_first_dns_or_uri_san() {
        let pki = certs::Pki::generate(&[], &["node-a".into()]).unwrap();
        let node = &pki.nodes[0];
        let c = certs_from_pem(&node.cert_pem).unwrap();
        assert_eq!(peer_identity(Some(&c)).unwrap(), "node-a");
        let uri = certs::Pki::generate(&[], &["spiffe://region/node-b".into()]).unwrap();
        let c = certs_from_pem(&uri.nodes[0].cert_pem).unwrap();
        assert_eq!(peer_identity(Some(&c)).unwrap(), "spiffe://region/node-b");
        assert!(matches!(
            peer_identity(None),
            Err(TlsError::NoPeerCertificate)
        ));
        assert!(matches!(
            peer_identity(Some(&[CertificateDer::from(vec![1u8, 2, 3])])),
            Err(TlsError::BadCertificate(_))
        ));
    }

    #[test]
    fn certificate_with_only_ip_san_has_no_identity() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["10.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(matches!(
            peer_identity(Some(&[cert.der().clone()])),
            Err(TlsError::NoIdentity)
        ));
    }

    #[test]
    fn configs_build_from_generated_pki() {
        let pki = certs::Pki::generate(&["region-1".into()], &["node-a".into()]).unwrap();
        let ca = certs_from_pem(&pki.ca_cert_pem).unwrap();
        server_config(
            certs_from_pem(&pki.server.cert_pem).unwrap(),
            key_from_pem(&pki.server.key_pem).unwrap(),
            ca.clone(),
        )
        .unwrap();
        let n = &pki.nodes[0];
        client_config(
            ca,
            Some((
                certs_from_pem(&n.cert_pem).unwrap(),
                key_from_pem(&n.key_pem).unwrap(),
            )),
        )
        .unwrap();
        assert!(certs_from_pem("nothing").is_err());
        assert!(matches!(
            load_certs(Path::new("/nonexistent/x.pem")),
            Err(TlsError::Pem { .. })
        ));
    }
}
