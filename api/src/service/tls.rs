//! The region API over TCP with mutual TLS: connections are accepted and handshaken here (a
//! client certificate of the region CA is required), and each carries its certificate
//! identity into every request it makes (`request.extensions().get::<Identity>()`).
//!
//! ```text
//!  TcpListener --accept--> handshake task per connection (bounded in time)
//!                              --TlsConn (mpsc)--> tonic serve_with_incoming
//! ```

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a client may take for its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The certificate identity of a caller: the first DNS or URI SAN of its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(pub String);

/// Why a verified certificate names no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No certificate (cannot happen with client authentication required).
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate does not parse.
    #[error("cannot parse the client certificate")]
    BadCertificate(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// Its extensions do not parse.
    #[error("cannot parse the client certificate's extensions")]
    BadExtension(#[source] x509_parser::error::X509Error),
    /// It has no DNS or URI subject alternative name.
    #[error("the client certificate has no DNS or URI subject alternative name")]
    NoName,
}

/// The identity in a peer's certificate chain.
pub fn identity_of(certs: Option<&[CertificateDer<'_>]>) -> Result<Identity, IdentityError> {
    use x509_parser::extensions::GeneralName;
    let der = certs
        .and_then(|c| c.first())
        .ok_or(IdentityError::NoCertificate)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(IdentityError::BadCertificate)?;
    let san = cert
        .subject_alternative_name()
        .map_err(IdentityError::BadExtension)?
        .ok_or(IdentityError::NoName)?;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::URI(s) => Some(Identity((*s).to_owned())),
            _ => None,
        })
        .ok_or(IdentityError::NoName)
}

/// One authenticated connection and who made it.
#[derive(Debug)]
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    identity: Identity,
}

/// What each request of a TLS connection carries.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    /// The caller's identity.
    pub identity: Identity,
    /// Addresses of the connection.
    pub tcp: TcpConnectInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = TlsConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        TlsConnectInfo {
            identity: self.identity.clone(),
            tcp: self.stream.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` and yields those whose handshake succeeds and whose
/// certificate names an identity; a failed one is logged and affects nobody else. Ends when the
/// receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> mpsc::Receiver<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                () = tx.closed() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "region API accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "region API TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "region API TLS handshake timed out");
                        return;
                    }
                };
                match identity_of(stream.get_ref().1.peer_certificates()) {
                    Ok(identity) => {
                        let _ = tx.send(Ok(TlsConn { stream, identity })).await;
                    }
                    Err(e) => {
                        tracing::info!(%peer, error = %super::error::error_chain(&e), "region API connection refused")
                    }
                }
            });
        }
    });
    rx
}
