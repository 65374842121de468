//! Writes that reach a follower go to the leader: a follower has no region actor, so it
//! forwards the call (already authorized here) over gRPC to the replica that leads, as named by
//! the election, and answers what the leader answers.
//!
//! ```text
//!  client --Create--> follower (authorize) --Create (replica identity)--> leader --> RegionActor
//! ```
//!
//! Over TLS the follower presents its replica certificate (`api.replica_cert`/`replica_key`),
//! whose identity must be an admin of the region; without one it does not forward and the call
//! is UNAVAILABLE naming the leader. One channel to the current leader is kept and replaced when
//! the leader changes.

use std::sync::{Arc, Mutex, PoisonError};

use hyper_util::rt::TokioIo;
use tonic::Status;
use tonic::transport::{Channel, Endpoint, Uri};

/// How a follower reaches the leader.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// This replica's own address (never forwarded to).
    own: String,
    /// TLS client configuration with the replica certificate; `None` for plaintext.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether forwarding is possible at all (plaintext, or TLS with a replica certificate).
    enabled: bool,
    channel: Arc<Mutex<Option<(String, Channel)>>>,
}

impl Forwarder {
    /// A forwarder of the replica advertised as `own`: plaintext when `tls` is `None` and
    /// `api_tls` is false; over TLS with `tls`; disabled with `api_tls` but no `tls`.
    pub fn new(own: String, api_tls: bool, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            own,
            enabled: !api_tls || tls.is_some(),
            tls,
            channel: Arc::new(Mutex::new(None)),
        }
    }

    /// A channel to `leader`, or why there is none.
    pub fn channel(&self, leader: Option<String>) -> Result<Channel, Status> {
        let unavailable = |why: &str| {
            Status::unavailable(format!(
                "the region API is not serving writes here ({why}){}",
                leader
                    .as_ref()
                    .map(|l| format!(": the leader is {l}"))
                    .unwrap_or_default()
            ))
        };
        let Some(url) = leader.clone() else {
            return Err(unavailable("no leader elected yet"));
        };
        if url == self.own {
            return Err(unavailable("this replica is taking the lead"));
        }
        if !self.enabled {
            return Err(unavailable("no replica certificate to forward with"));
        }
        let mut cached = self.channel.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((u, ch)) = cached.as_ref()
            && *u == url
        {
            return Ok(ch.clone());
        }
        let ch = self.connect(&url).map_err(|e| unavailable(&e))?;
        *cached = Some((url, ch.clone()));
        Ok(ch)
    }

    /// A lazily connecting channel to `url` (`http://HOST:PORT` or `https://HOST:PORT`).
    fn connect(&self, url: &str) -> Result<Channel, String> {
        let (scheme, authority) = url
            .split_once("://")
            .ok_or_else(|| format!("leader address {url:?} has no scheme"))?;
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| format!("leader address {url:?}: {e}"))?;
        match (scheme, &self.tls) {
            ("http", _) => Ok(endpoint.connect_lazy()),
            ("https", Some(config)) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let name = ferrinet_route_client::tls::server_name(&host)
                    .map_err(|e| format!("leader address {url:?}: {e}"))?;
                let (config, authority) = (config.clone(), authority.to_owned());
                Ok(
                    endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                        let (config, name, authority) =
                            (config.clone(), name.clone(), authority.clone());
                        async move {
                            let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
                            let tls = tokio_rustls::TlsConnector::from(config)
                                .connect(name, tcp)
                                .await?;
                            Ok::<_, std::io::Error>(TokioIo::new(tls))
                        }
                    })),
                )
            }
            ("https", None) => Err("no replica certificate for https".into()),
            (other, _) => Err(format!("leader address {url:?}: unknown scheme {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_only_to_another_leader_it_can_reach() {
        let f = Forwarder::new("http://127.0.0.1:1".into(), false, None);
        let e = f.channel(None).expect_err("no leader");
        assert!(
            e.message().contains("no leader elected yet"),
            "{}",
            e.message()
        );
        let e = f
            .channel(Some("http://127.0.0.1:1".into()))
            .expect_err("itself");
        assert!(e.message().contains("taking the lead"), "{}", e.message());
        assert!(f.channel(Some("http://127.0.0.1:2".into())).is_ok());
        let e = f.channel(Some("ftp://x:1".into())).expect_err("scheme");
        assert!(e.message().contains("unknown scheme"), "{}", e.message());
        let tls = Forwarder::new("https://a:1".into(), true, None);
        let e = tls
            .channel(Some("https://b:1".into()))
            .expect_err("no certificate");
        assert!(
            e.message().contains("no replica certificate"),
            "{}",
            e.message()
        );
        assert!(
            e.message().ends_with("the leader is https://b:1"),
            "{}",
            e.message()
        );
    }
}
