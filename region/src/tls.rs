//! The peer identity taken from a verified client certificate; the TLS configurations (server
//! with client-certificate verification, client) live in [`ferrinet_route_client::tls`],
//! re-exported here, because nodes need them without the route server. A client's identity is the first DNS or URI
//! subject alternative name of its certificate: that is what `[[authorization.node]] identity`
//! matches.

use rustls_pki_types::CertificateDer;

pub use ferrinet_route_client::tls::*;

/// A peer certificate without a usable identity.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// The peer sent no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    /// The peer certificate cannot be parsed.
    #[error("cannot parse peer certificate")]
    BadCertificate(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// The peer certificate's extensions cannot be parsed.
    #[error("cannot parse peer certificate extensions")]
    BadExtension(#[source] x509_parser::error::X509Error),
    /// The peer certificate has no DNS or URI subject alternative name.
    #[error("peer certificate has no DNS or URI subject alternative name to identify it")]
    NoIdentity,
}

/// The identity of a verified peer: the first DNS or URI SAN of its end-entity certificate.
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Result<String, ServerTlsError> {
    use x509_parser::extensions::GeneralName;

    let der = certs
        .and_then(|c| c.first())
        .ok_or(ServerTlsError::NoPeerCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(ServerTlsError::BadCertificate)?;
    let san = cert
        .subject_alternative_name()
        .map_err(ServerTlsError::BadExtension)?
        .ok_or(ServerTlsError::NoIdentity)?;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::URI(s) => Some((*s).to_owned()),
            _ => None,
        })
        .ok_or(ServerTlsError::NoIdentity)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::certs;
    use std::path::Path;

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
            Err(ServerTlsError::NoPeerCertificate)
        ));
        assert!(matches!(
            peer_identity(Some(&[CertificateDer::from(vec![1u8, 2, 3])])),
            Err(ServerTlsError::BadCertificate(_))
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
            Err(ServerTlsError::NoIdentity)
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
