//! A development PKI for the route server: region CA, server certificate, node certificates.
//!
//! `ferrinet-region certs` uses this so a newcomer has mutual TLS running in minutes. The CA
//! signs a server certificate (SANs `localhost`, `127.0.0.1`, `::1` and any given names) and one
//! client certificate per node whose first SAN is the node's identity (a DNS name, or a URI when
//! the name contains `://`), which is what the server's authorization matches.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// File names inside the output directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The server certificate.
pub const SERVER_CERT: &str = "server.pem";
/// The server key.
pub const SERVER_KEY: &str = "server.key";

/// Certificates that cannot be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// rcgen failed (bad name, key generation).
    #[error("cannot generate {what}")]
    Generate {
        /// Which certificate.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A name given for a certificate is not usable.
    #[error("invalid {field} {name:?}: {reason}")]
    Name {
        /// `node` or `server-name`.
        field: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The existing CA cannot be read back.
    #[error("cannot load the existing CA from {path}")]
    LoadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A file cannot be read or written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One issued certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Identity or file stem.
    pub name: String,
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
}

/// A whole development PKI in memory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// CA certificate PEM.
    pub ca_cert_pem: String,
    /// CA key PEM.
    pub ca_key_pem: String,
    /// Server certificate.
    pub server: Issued,
    /// Node certificates, in the order asked for.
    pub nodes: Vec<Issued>,
}

fn gen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CertsError {
    let what = what.into();
    move |source| CertsError::Generate { what, source }
}

fn check_name(field: &'static str, name: &str) -> Result<(), CertsError> {
    let bad = |reason| {
        Err(CertsError::Name {
            field,
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if !name.is_ascii()
        || name
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return bad("must be printable ASCII without spaces");
    }
    if field == "node" && matches!(file_stem(name).as_str(), "ca" | "server") {
        return bad("its files would clash with the CA or server files");
    }
    Ok(())
}

/// The file stem of a node's files: the name with everything but `[A-Za-z0-9._-]` as `_`.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn san(name: &str) -> Result<SanType, rcgen::Error> {
    if let Ok(ip) = name.parse() {
        return Ok(SanType::IpAddress(ip));
    }
    let s = name.to_owned().try_into()?;
    Ok(if name.contains("://") {
        SanType::URI(s)
    } else {
        SanType::DnsName(s)
    })
}

fn new_ca() -> Result<(String, String), CertsError> {
    let key = KeyPair::generate().map_err(gen_err("CA key"))?;
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "ferrinet region CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).map_err(gen_err("CA certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    sans: &[String],
    eku: ExtendedKeyUsagePurpose,
) -> Result<Issued, CertsError> {
    let what = format!("certificate for {name}");
    let key = KeyPair::generate().map_err(gen_err(what.clone()))?;
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.subject_alt_names = sans
        .iter()
        .map(|s| san(s))
        .collect::<Result<_, _>>()
        .map_err(gen_err(what.clone()))?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![eku];
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&key, issuer).map_err(gen_err(what))?;
    Ok(Issued {
        name: name.to_owned(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issue_all(
    ca_cert_pem: String,
    ca_key_pem: String,
    server_names: &[String],
    nodes: &[String],
) -> Result<Pki, CertsError> {
    for n in server_names {
        check_name("server-name", n)?;
    }
    for n in nodes {
        check_name("node", n)?;
    }
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(gen_err("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(gen_err("CA issuer"))?;
    let mut sans: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    sans.extend(server_names.iter().cloned());
    let server = issue(
        &issuer,
        "ferrinet region server",
        &sans,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let nodes = nodes
        .iter()
        .map(|n| {
            issue(
                &issuer,
                n,
                std::slice::from_ref(n),
                ExtendedKeyUsagePurpose::ClientAuth,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Pki {
        ca_cert_pem,
        ca_key_pem,
        server,
        nodes,
    })
}

impl Pki {
    /// A fresh CA, a server certificate for `localhost`, `127.0.0.1`, `::1` and `server_names`,
    /// and one client certificate per node identity.
    pub fn generate(server_names: &[String], nodes: &[String]) -> Result<Self, CertsError> {
        let (cert, key) = new_ca()?;
        issue_all(cert, key, server_names, nodes)
    }
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), CertsError> {
    let io = |source| CertsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

/// Writes a PKI into `out`: `ca.pem`, `ca.key`, `server.pem`, `server.key`, and `NAME.pem`,
/// `NAME.key` per node (the name's [`file_stem`]). An existing CA in `out` is reused to sign the
/// new certificates (so nodes can be added later) unless `force`, which replaces it; with an
/// existing CA the server certificate is only rewritten when `server_names` are given. Keys are
/// written mode 0600. Returns the files written.
pub fn write_pki(
    out: &Path,
    server_names: &[String],
    nodes: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, CertsError> {
    fs::create_dir_all(out).map_err(|source| CertsError::Io {
        path: out.to_owned(),
        source,
    })?;
    let ca_cert = out.join(CA_CERT);
    let ca_key = out.join(CA_KEY);
    let existing = ca_cert.exists() && !force;
    let pki = if existing {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|source| CertsError::Io {
                path: p.to_owned(),
                source,
            })
        };
        let (cert, key) = (read(&ca_cert)?, read(&ca_key)?);
        issue_all(cert, key, server_names, nodes).map_err(|e| match e {
            CertsError::Generate { source, what } if what.starts_with("CA") => CertsError::LoadCa {
                path: ca_key.clone(),
                source,
            },
            e => e,
        })?
    } else {
        Pki::generate(server_names, nodes)?
    };
    let mut written = Vec::new();
    let mut put = |name: String, text: &str, secret: bool| -> Result<(), CertsError> {
        let p = out.join(name);
        write_file(&p, text, secret)?;
        written.push(p);
        Ok(())
    };
    if !existing {
        put(CA_CERT.into(), &pki.ca_cert_pem, false)?;
        put(CA_KEY.into(), &pki.ca_key_pem, true)?;
    }
    // Adding a node to an existing PKI keeps the server's certificate (a running server needs
    // no restart); new server names or a new CA replace it.
    let keep_server = existing && server_names.is_empty() && out.join(SERVER_CERT).exists();
    if !keep_server {
        put(SERVER_CERT.into(), &pki.server.cert_pem, false)?;
        put(SERVER_KEY.into(), &pki.server.key_pem, true)?;
    }
    for n in &pki.nodes {
        let stem = file_stem(&n.name);
        put(format!("{stem}.pem"), &n.cert_pem, false)?;
        put(format!("{stem}.key"), &n.key_pem, true)?;
    }
    Ok(written)
}

/// Whether `out` already holds a CA.
pub fn ca_exists(out: &Path) -> bool {
    out.join(CA_CERT).exists()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writes_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pki(
            dir.path(),
            &["r1.example".into()],
            &["node-a".into()],
            false,
        )
        .unwrap();
        assert_eq!(files.len(), 6);
        let ca = fs::read_to_string(dir.path().join(CA_CERT)).unwrap();
        // A second run adds a node and keeps the CA.
        let files = write_pki(dir.path(), &[], &["node-b".into()], false).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(fs::read_to_string(dir.path().join(CA_CERT)).unwrap(), ca);
        assert!(dir.path().join("node-b.key").exists());
        // The new node certificate chains to the old CA.
        let roots = crate::tls::certs_from_pem(&ca).unwrap();
        crate::tls::server_config_from_files(
            &dir.path().join(SERVER_CERT),
            &dir.path().join(SERVER_KEY),
            &dir.path().join(CA_CERT),
        )
        .unwrap();
        assert_eq!(roots.len(), 1);
        write_pki(dir.path(), &[], &[], true).unwrap();
        assert_ne!(fs::read_to_string(dir.path().join(CA_CERT)).unwrap(), ca);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_bad_names() {
        assert!(matches!(
            Pki::generate(&[], &["ca".into()]),
            Err(CertsError::Name { .. })
        ));
        assert!(matches!(
            Pki::generate(&[], &["a b".into()]),
            Err(CertsError::Name { .. })
        ));
        assert!(matches!(
            Pki::generate(&["".into()], &[]),
            Err(CertsError::Name { .. })
        ));
        assert_eq!(file_stem("spiffe://r/n-1"), "spiffe___r_n-1");
    }
}
