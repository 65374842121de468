//! The region sync's I/O: the gRPC channel to the region API (mutual TLS or plaintext) and the
//! child tasks of one session. Each task makes its calls and tells the RegionSync actor what
//! happened, tagged with the session it belongs to, so that messages of a session the actor
//! has already given up are recognised and dropped.

use std::sync::Arc;
use std::time::Duration;

use ferrinet_proto::api::v1 as api;
use ferrinet_proto::api::v1::node_sync_client::NodeSyncClient;
use hyper_util::rt::TokioIo;
use ractor::ActorRef;
use rustls::pki_types::ServerName;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{RegionError, RegionMsg};
use crate::config::RegionApi;

/// Bound of connecting (TCP and TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one unary call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A NodeSync client.
pub type Client = NodeSyncClient<Channel>;

/// How to reach the region API: built once from the configuration, used for every session.
#[derive(Clone)]
pub struct Connector {
    address: String,
    endpoint: Endpoint,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// Reads the TLS files (the same setup as the route client's: TLS 1.3, ring provider, the
    /// region CA, this node's certificate).
    pub fn new(cfg: &RegionApi) -> Result<Self, RegionError> {
        let endpoint = Endpoint::from_shared(format!("http://{}", cfg.address))
            .map_err(|source| RegionError::Address {
                address: cfg.address.clone(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        let tls = match &cfg.tls {
            None => None,
            Some((ca, cert, key)) => {
                let base = ferrinet_route_client::tls::client_config_from_files(
                    ca,
                    Some(cert),
                    Some(key),
                )?;
                // gRPC servers may insist on negotiating HTTP/2.
                let mut config = (*base).clone();
                config.alpn_protocols = vec![b"h2".to_vec()];
                let name = ferrinet_route_client::tls::server_name(&cfg.server_name)?;
                Some((Arc::new(config), name))
            }
        };
        Ok(Self {
            address: cfg.address.clone(),
            endpoint,
            tls,
        })
    }

    /// A new connection.
    pub async fn connect(&self) -> Result<Client, RegionError> {
        let err = |source| RegionError::Connect {
            address: self.address.clone(),
            source,
        };
        let channel = match &self.tls {
            None => self.endpoint.connect().await.map_err(err)?,
            Some((config, name)) => {
                let (authority, config, name) =
                    (self.address.clone(), Arc::clone(config), name.clone());
                self.endpoint
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let (authority, config, name) =
                            (authority.clone(), Arc::clone(&config), name.clone());
                        async move {
                            let tcp = tokio::net::TcpStream::connect(authority).await?;
                            tcp.set_nodelay(true)?;
                            let tls = tokio_rustls::TlsConnector::from(config)
                                .connect(name, tcp)
                                .await?;
                            Ok::<_, std::io::Error>(TokioIo::new(tls))
                        }
                    }))
                    .await
                    .map_err(err)?
            }
        };
        Ok(NodeSyncClient::new(channel))
    }
}

/// A unary call bounded by [`CALL_TIMEOUT`].
async fn unary<T>(
    rpc: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, RegionError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(source)) => Err(RegionError::Rpc { rpc, source }),
        Err(_) => Err(RegionError::Timeout {
            rpc,
            after: CALL_TIMEOUT,
        }),
    }
}

/// Session task: connects and registers; `Connected`, then `Registered` or `Lost`.
pub async fn open(
    connector: Connector,
    request: api::RegisterRequest,
    me: ActorRef<RegionMsg>,
    session: u64,
) {
    let mut client = match connector.connect().await {
        Ok(c) => c,
        Err(e) => {
            let _ = me.send_message(RegionMsg::Lost(session, e));
            return;
        }
    };
    if me.send_message(RegionMsg::Connected(session)).is_err() {
        return;
    }
    let msg = match unary("Register", client.register(request)).await {
        Ok(r) => RegionMsg::Registered(session, client, Duration::from_millis(r.lease_ttl_ms)),
        Err(e) => RegionMsg::Lost(session, e),
    };
    let _ = me.send_message(msg);
}

/// Session task: renews the lease every `interval` until a heartbeat fails.
pub async fn heartbeat(
    mut client: Client,
    name: String,
    interval: Duration,
    me: ActorRef<RegionMsg>,
    session: u64,
) {
    loop {
        tokio::time::sleep(interval).await;
        let request = api::HeartbeatRequest { name: name.clone() };
        let msg = match unary("Heartbeat", client.heartbeat(request)).await {
            Ok(_) => RegionMsg::HeartbeatOk(session),
            Err(e) => {
                let _ = me.send_message(RegionMsg::Lost(session, e));
                return;
            }
        };
        if me.send_message(msg).is_err() {
            return;
        }
    }
}

/// Session task: forwards the placed objects' events from `from_revision` until the stream
/// ends, which is always a loss (the stream is endless while the session is good).
pub async fn watch(
    mut client: Client,
    name: String,
    from_revision: u64,
    me: ActorRef<RegionMsg>,
    session: u64,
) {
    let request = api::WatchPlacedRequest {
        name,
        from_revision,
    };
    let rpc = "WatchPlaced";
    let mut stream = match client.watch_placed(request).await {
        Ok(r) => r.into_inner(),
        Err(source) => {
            let _ = me.send_message(RegionMsg::Lost(session, RegionError::Rpc { rpc, source }));
            return;
        }
    };
    let end = loop {
        match stream.message().await {
            Ok(Some(ev)) => {
                if me.send_message(RegionMsg::Placed(session, ev)).is_err() {
                    return;
                }
            }
            Ok(None) => break RegionError::StreamEnded,
            Err(source) => break RegionError::Rpc { rpc, source },
        }
    };
    let _ = me.send_message(RegionMsg::Lost(session, end));
}

/// Sends one batch of statuses; `Reported` with the outcome.
pub async fn report(
    mut client: Client,
    request: api::ReportStatusRequest,
    sent: Vec<(super::apply::Key, u64)>,
    me: ActorRef<RegionMsg>,
) {
    let result = unary("ReportStatus", client.report_status(request))
        .await
        .map(|_| ());
    let _ = me.send_message(RegionMsg::Reported(sent, result));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cfg(tls: Option<(&str, &str, &str)>) -> RegionApi {
        RegionApi {
            address: "127.0.0.1:4730".into(),
            tls: tls.map(|(a, b, c)| (a.into(), b.into(), c.into())),
            server_name: "127.0.0.1".into(),
            underlay_prefix: "fc00:1::/64".parse().unwrap(),
            labels: Default::default(),
            heartbeat: Duration::from_secs(2),
            status_interval: Duration::from_millis(200),
        }
    }

    #[test]
    fn tls_files_are_read_up_front() {
        assert!(Connector::new(&cfg(None)).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let m = missing.to_str().unwrap();
        let e = Connector::new(&cfg(Some((m, m, m)))).unwrap_err();
        assert!(matches!(e, RegionError::Tls(_)), "{e:?}");
        assert!(crate::error_chain(&e).contains("none.pem"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_region_is_a_connect_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = cfg(None);
        c.address = format!("127.0.0.1:{port}");
        let e = Connector::new(&c).unwrap().connect().await.unwrap_err();
        assert!(matches!(e, RegionError::Connect { .. }), "{e:?}");
    }
}
