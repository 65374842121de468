//! Starting and stopping a region API replica: store, leader campaign, allocator and region
//! actor (while leading), gRPC services, DNS server. Used by the `ferrinet-api` binary, the dev
//! mode and the tests.
//!
//! ```text
//!  Store (redb | etcd) --campaign--> leader task: while leading, AllocatorActor + RegionActor
//!                                     (fenced), published on a watch channel; on losing the
//!                                     lead both stop and writes answer UNAVAILABLE (leader named)
//!  gRPC (TLS incoming with identities | plain TCP) --> RegionApi, NodeSync (reads: store;
//!                                                      writes: the published RegionActor)
//!  DNS (UDP + TCP) <-- DnsHandle <-- RegionActor
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use ferrinet_proto::api::v1::node_sync_server::NodeSyncServer;
use ferrinet_proto::api::v1::region_api_server::RegionApiServer;
use ractor::{Actor, ActorRef};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::allocator::{AllocatorActor, AllocatorArgs};
use crate::config::{Settings, StoreSettings};
use crate::dns::{self, DnsHandle, DnsListeners, RecordSet};
use crate::http::Metrics;
use crate::service::forward::Forwarder;
use crate::service::grpc::{NodeSyncService, RegionApiService, Shared};
use crate::service::{RegionActor, RegionArgs, RegionMsg, RegionSettings, tls};
use crate::store::{EmbeddedOptions, Store, StoreError};

/// The election the replicas run for the allocator and region actor.
pub const ELECTION: &str = "/ferrinet/v1/elections/region";

/// A replica that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store.
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    /// TLS files.
    #[error("TLS")]
    Tls(#[from] ferrinet_route_client::tls::TlsError),
    /// A listener.
    #[error("cannot listen on {what} {addr}")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running replica.
#[derive(Debug)]
pub struct Running {
    /// The gRPC address bound.
    pub addr: SocketAddr,
    /// The DNS address bound, if any.
    pub dns_addr: Option<SocketAddr>,
    /// The HTTP address bound, if any.
    pub http_addr: Option<SocketAddr>,
    /// The store (for tests and status).
    pub store: Store,
    writer: watch::Receiver<Option<ActorRef<RegionMsg>>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until this replica leads (the region actor runs here).
    pub async fn leading(&self) {
        let mut w = self.writer.clone();
        let _ = w.wait_for(Option::is_some).await;
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.writer.borrow().is_some()
    }

    /// Stops serving, stops the actors and closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.store.close().await;
    }
}

/// Starts a replica.
pub async fn start(s: &Settings) -> Result<Running, StartError> {
    let store = match &s.store {
        StoreSettings::Embedded { path, history } => {
            Store::open_embedded(path, EmbeddedOptions { history: *history }).await?
        }
        StoreSettings::Etcd { config, .. } => Store::connect_etcd(config.clone()).await?,
    };
    let lease = match &s.store {
        StoreSettings::Etcd { lease, .. } => *lease,
        StoreSettings::Embedded { .. } => Duration::from_secs(3),
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let metrics = Metrics::default();
    let (writer_tx, writer) = watch::channel(None);
    let (leader_tx, leader) = watch::channel(None);
    let mut tasks = Vec::new();

    let dns_handle = s
        .dns
        .as_ref()
        .map(|(_, zone)| DnsHandle::new(RecordSet::empty(zone.clone())));
    let mut dns_addr = None;
    if let (Some((addr, _)), Some(handle)) = (&s.dns, &dns_handle) {
        let listen = |source| StartError::Listen {
            what: "dns",
            addr: *addr,
            source,
        };
        let udp = UdpSocket::bind(addr).await.map_err(listen)?;
        let bound = udp.local_addr().map_err(listen)?;
        let tcp = TcpListener::bind(bound).await.map_err(listen)?;
        dns_addr = Some(bound);
        let handle = handle.clone();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let listeners = DnsListeners { udp: Some(udp), tcp: Some(tcp) };
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = dns::serve(listeners, handle, done).await {
                tracing::error!(error = %crate::service::error::error_chain(&e), "DNS server stopped");
            }
        }));
        tracing::info!(%bound, "DNS listening");
    }

    let region_settings = RegionSettings {
        peering_ttl: s.peering_ttl,
        lease_ttl: s.node_lease,
        lb_replicas: s.lb_replicas,
        dns: s.dns.as_ref().map(|(_, z)| z.clone()).zip(dns_handle),
    };
    let listener = TcpListener::bind(s.listen)
        .await
        .map_err(|source| StartError::Listen {
            what: "api",
            addr: s.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        what: "api",
        addr: s.listen,
        source,
    })?;
    // A listener on port 0 is advertised with the port it got.
    let advertise = match s.advertise.strip_suffix(":0") {
        Some(base) if s.listen.port() == 0 => format!("{base}:{}", addr.port()),
        _ => s.advertise.clone(),
    };
    let campaign = store.campaign(ELECTION, &advertise, lease).await?;
    let mut http_addr = None;
    if let Some(http) = s.http {
        let listen = |source| StartError::Listen {
            what: "http",
            addr: http,
            source,
        };
        let l = TcpListener::bind(http).await.map_err(listen)?;
        let bound = l.local_addr().map_err(listen)?;
        http_addr = Some(bound);
        let (m, st, ld) = (metrics.clone(), store.clone(), leader.clone());
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::http::serve(l, m, st, ld, done).await {
                tracing::error!(error = %e, "HTTP endpoint stopped");
            }
        }));
        tracing::info!(%bound, "HTTP listening (/metrics, /healthz, /readyz)");
    }
    tasks.push(tokio::spawn(lead(
        campaign,
        store.clone(),
        s.clone(),
        region_settings,
        Publish {
            writer: writer_tx,
            leader: leader_tx,
            metrics: metrics.clone(),
            advertise: advertise.clone(),
            lease,
        },
        shutdown_rx.clone(),
    )));

    let replica_tls = match (&s.tls, &s.replica) {
        (Some((ca, _, _)), Some((cert, key))) => Some(
            ferrinet_route_client::tls::client_config_from_files(ca, Some(cert), Some(key))?,
        ),
        _ => None,
    };
    let forward = Forwarder::new(advertise.clone(), s.tls.is_some(), replica_tls);
    let shared = Shared::new(
        store.clone(),
        writer.clone(),
        leader,
        s.access.clone(),
        s.tls.is_some(),
        forward,
        metrics.clone(),
    );
    let router = tonic::transport::Server::builder()
        .add_service(RegionApiServer::new(RegionApiService(shared.clone())))
        .add_service(NodeSyncServer::new(NodeSyncService(shared)));
    let mut stop = shutdown_rx.clone();
    let done = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    match &s.tls {
        Some((ca, cert, key)) => {
            let config = ferrinet_route_client::tls::server_config_from_files(cert, key, ca)?;
            let incoming =
                tokio_stream::wrappers::ReceiverStream::new(tls::incoming(listener, config));
            tasks.push(tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, done).await {
                    tracing::error!(error = %crate::service::error::error_chain(&e), "region API server stopped");
                }
            }));
        }
        None => {
            tracing::warn!(%addr, "region API without TLS: every caller is an admin (tests and development only)");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, done).await {
                    tracing::error!(error = %crate::service::error::error_chain(&e), "region API server stopped");
                }
            }));
        }
    }
    tracing::info!(%addr, store = store.backend_name(), %advertise, "region API listening");
    Ok(Running {
        addr,
        dns_addr,
        http_addr,
        store,
        writer,
        shutdown,
        tasks,
    })
}

/// Where the leader task says what it knows: the region actor while leading, who leads, and
/// the leadership gauge.
struct Publish {
    writer: watch::Sender<Option<ActorRef<RegionMsg>>>,
    leader: watch::Sender<Option<String>>,
    metrics: Metrics,
    /// To campaign again after giving the lead up.
    advertise: String,
    lease: Duration,
}

/// Failed starts of the region actor after which a leader gives the lead up, so that another
/// replica (which may not share the failure) can take over.
const STARTS_BEFORE_RESIGNING: u32 = 5;

/// Follows the campaign: while this replica leads, the allocator and the region actor run
/// (their writes fenced) and are published; when it stops leading, they stop.
async fn lead(
    mut campaign: crate::store::Campaign,
    store: Store,
    s: Settings,
    region: RegionSettings,
    publish: Publish,
    mut shutdown: watch::Receiver<bool>,
) {
    let Publish {
        writer,
        leader,
        metrics,
        advertise,
        lease,
    } = publish;
    let mut failures = 0;
    let mut running: Option<(
        ActorRef<crate::allocator::AllocatorMsg>,
        ActorRef<RegionMsg>,
    )> = None;
    let mut state = campaign.state();
    loop {
        let _ = leader.send(state.leader.clone());
        metrics.leader.set(i64::from(state.is_leader));
        match (state.is_leader, running.is_some()) {
            (true, false) => {
                tracing::info!("leading: starting the allocator and the region actor");
                match start_actors(&store, &s, region.clone(), state.fence.clone()).await {
                    Ok(pair) => {
                        failures = 0;
                        let _ = writer.send(Some(pair.1.clone()));
                        running = Some(pair);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::error!(error = %crate::service::error::error_chain(&e), failures, "cannot start the region actor");
                        if failures >= STARTS_BEFORE_RESIGNING {
                            tracing::error!(
                                "giving the lead up so that another replica can take over"
                            );
                            let old = std::mem::replace(
                                &mut campaign,
                                match store.campaign(ELECTION, &advertise, lease).await {
                                    Ok(c) => c,
                                    Err(e) => {
                                        tracing::error!(error = %crate::service::error::error_chain(&e), "cannot campaign again");
                                        break;
                                    }
                                },
                            );
                            // The new candidacy is younger than the others': resigning the old
                            // one hands the lead to them.
                            old.resign().await;
                            tokio::time::sleep(lease).await;
                            failures = 0;
                        } else {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        state = campaign.state();
                        continue;
                    }
                }
            }
            (false, true) => {
                tracing::warn!(leader = ?state.leader, "not leading any more: region actor stopped");
                let _ = writer.send(None);
                if let Some(pair) = running.take() {
                    stop_actors(pair).await;
                }
            }
            _ => {}
        }
        tokio::select! {
            r = campaign.changed() => match r {
                Ok(st) => state = st,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    let _ = writer.send(None);
    if let Some(pair) = running.take() {
        stop_actors(pair).await;
    }
    let _ = campaign.resign().await;
}

/// Stops the region actor, then the allocator, each waited for: they hold the store, which is
/// closed (and, embedded, reopened by a restart in the same process) after them.
async fn stop_actors(
    (allocator, region): (
        ActorRef<crate::allocator::AllocatorMsg>,
        ActorRef<RegionMsg>,
    ),
) {
    let wait = Some(Duration::from_secs(10));
    let _ = region.stop_and_wait(None, wait).await;
    let _ = allocator.stop_and_wait(None, wait).await;
}

async fn start_actors(
    store: &Store,
    s: &Settings,
    region: RegionSettings,
    fence: Option<crate::store::Fence>,
) -> Result<
    (
        ActorRef<crate::allocator::AllocatorMsg>,
        ActorRef<RegionMsg>,
    ),
    ractor::SpawnErr,
> {
    let args = AllocatorArgs {
        store: store.clone(),
        vnis: s.vnis,
        public: s.public.clone(),
        fence: fence.clone(),
    };
    let (allocator, _) = Actor::spawn(None, AllocatorActor, args).await?;
    let args = RegionArgs {
        store: store.clone(),
        allocator: allocator.clone(),
        fence,
        settings: region,
    };
    match Actor::spawn(None, RegionActor, args).await {
        Ok((r, _)) => Ok((allocator, r)),
        Err(e) => {
            allocator.stop(None);
            Err(e)
        }
    }
}
