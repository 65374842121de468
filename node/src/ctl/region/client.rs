//! The region API's address (`--api`, env `FERRINET_API`) and connecting to it.
//!
//! `HOST:PORT` is plaintext, or mutual TLS with `--ca/--cert/--key`; `http://HOST:PORT` is
//! plaintext only and `https://HOST:PORT` TLS only, so that a scheme never silently disagrees
//! with the flags.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::ctl::CtlError;
use crate::ctl::client::{TlsFiles, tls_channel};

/// The environment variable that gives `--api`.
pub const API_ENV: &str = "FERRINET_API";

/// What the address's scheme asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `HOST:PORT`: the TLS flags decide.
    Any,
    /// `http://`.
    Plaintext,
    /// `https://`.
    Tls,
}

/// Where the region API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiAddr {
    /// `http://HOST:PORT` (the scheme only names the authority).
    pub uri: String,
    /// The scheme as given.
    pub scheme: Scheme,
    /// As given, for messages.
    pub text: String,
}

impl FromStr for ApiAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let (scheme, rest) = if let Some(r) = text.strip_prefix("https://") {
            (Scheme::Tls, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (Scheme::Plaintext, r)
        } else {
            (Scheme::Any, text)
        };
        let authority = rest.trim_end_matches('/');
        let uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|e| format!("{text:?}: not an address ({e})"))?;
        match (uri.host(), uri.port_u16(), uri.path()) {
            (Some(h), Some(_), "/") if !h.is_empty() && !authority.contains('@') => Ok(ApiAddr {
                uri: format!("http://{authority}"),
                scheme,
                text: text.to_owned(),
            }),
            _ => Err(format!(
                "{text:?}: expected HOST:PORT, http://HOST:PORT or https://HOST:PORT"
            )),
        }
    }
}

impl fmt::Display for ApiAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// [`CtlError::Unreachable`] (made by the node CLI's helpers) as
/// [`CtlError::ApiUnreachable`]; anything else unchanged.
pub fn as_api_error(e: CtlError) -> CtlError {
    match e {
        CtlError::Unreachable { node, cause } => CtlError::ApiUnreachable { api: node, cause },
        e => e,
    }
}

/// Connects to the region API; `timeout` bounds the connection and every unary request (a
/// watch's stream is not bounded). Over mutual TLS with `tls`, else plaintext.
///
/// Failing to connect is [`CtlError::ApiUnreachable`] (exit 3); a scheme that contradicts the
/// TLS flags is [`CtlError::Input`] (exit 1).
pub async fn connect(
    addr: &ApiAddr,
    timeout: Duration,
    tls: Option<&TlsFiles>,
) -> Result<RegionApiClient<Channel>, CtlError> {
    let channel = match (addr.scheme, tls) {
        (Scheme::Tls, None) => {
            return Err(CtlError::Input(format!(
                "--api {addr}: https:// needs --ca, --cert and --key (mutual TLS)"
            )));
        }
        (Scheme::Plaintext, Some(_)) => {
            return Err(CtlError::Input(format!(
                "--api {addr}: http:// is plaintext; use https:// or HOST:PORT with --ca/--cert/--key"
            )));
        }
        (_, Some(tls)) => tls_channel(&addr.uri, &addr.text, timeout, tls)
            .await
            .map_err(as_api_error)?,
        (_, None) => Endpoint::from_shared(addr.uri.clone())
            .map_err(|e| CtlError::Input(format!("--api {addr}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| as_api_error(CtlError::unreachable(&addr.text, &e)))?,
    };
    Ok(RegionApiClient::new(channel))
}
