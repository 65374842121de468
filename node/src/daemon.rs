//! Starting and stopping a node: the wiring of store, dataplane, VF pool, route client, actors,
//! admin API and HTTP. Used by the `ferrinet-node` binary, the dev mode and the tests (which run
//! several nodes in one process).
//!
//! ```text
//!  Store::open --loaded objects, claims, revision--> ApiActor
//!  Embedded dataplane (optional) --address--> Dp --> DataplaneActor --watch--> forwarder --> ApiActor
//!                                             Dp --> packet counter poller (every 5 s) --> metrics
//!  vf::discover + claims --> VfPool --> ApiActor
//!  route client (optional) --> Announcer --> object actors
//!  admin gRPC (unix, tcp) --> ApiActor;  HTTP --> metrics, dataplane state, synced
//!  region sync (optional, once synced) --> ApiActor;  NodeSync (gRPC) --> region API
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ferrinet_route_client::client::{self, ClientConfig, ClientHandle, ServerConfig, TlsClient};
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::announce::Announcer;
use crate::api::{ApiActor, ApiArgs, ApiMsg, DataplaneEvent};
use crate::config::{DataplaneTarget, Settings};
use crate::dataplane::client::Dp;
use crate::dataplane::embedded::{self, Embedded};
use crate::dataplane::{DataplaneActor, DataplaneArgs, DataplaneMsg, DataplaneState, Health};
use crate::metrics::Metrics;
use crate::reconcile::Shared;
use crate::region::{Region, RegionArgs, RegionError};
use crate::server::{self, AdminListeners};
use crate::spec;
use crate::store::Store;
use crate::vf::{self, VfMode, VfPool};

/// A node that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state store.
    #[error("cannot open the state store")]
    Store(#[from] crate::store::StoreError),
    /// The embedded dataplane.
    #[error("cannot start the embedded dataplane")]
    Embedded(#[from] embedded::EmbeddedError),
    /// The dpservice address.
    #[error("invalid dataplane address")]
    Dataplane(#[from] tonic::transport::Error),
    /// VF discovery.
    #[error("cannot discover virtual functions")]
    Vf(#[from] vf::VfError),
    /// Route client TLS files.
    #[error("route server TLS")]
    Tls(#[from] ferrinet_route_client::tls::TlsError),
    /// The route client.
    #[error("route client")]
    RouteClient(#[from] client::ClientError),
    /// A listener.
    #[error("cannot listen on {what}")]
    Listen {
        /// Which listener.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The region sync.
    #[error("region API")]
    Region(#[from] RegionError),
    /// An actor.
    #[error("cannot start the {0} actor")]
    Actor(&'static str, #[source] ractor::SpawnErr),
}

/// A running node.
pub struct Node {
    /// The ApiActor.
    pub api: ActorRef<ApiMsg>,
    /// The embedded dataplane, if configured.
    pub embedded: Option<Embedded>,
    /// True once the first full resync is done.
    pub synced: watch::Receiver<bool>,
    /// The dataplane's state.
    pub dataplane: watch::Receiver<DataplaneState>,
    /// The admin socket path.
    pub admin_socket: Option<PathBuf>,
    /// The admin TCP address.
    pub admin_tcp: Option<SocketAddr>,
    /// The HTTP address.
    pub http: Option<SocketAddr>,
    /// The route client.
    pub route_client: Option<ClientHandle>,
    /// The dataplane's gRPC address.
    pub dataplane_address: String,
    /// The region sync, if `[region_api]` is configured.
    pub region: Option<Region>,
    dataplane_actor: ActorRef<DataplaneMsg>,
    writer: crate::store::Writer,
    stop: broadcast::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("admin_socket", &self.admin_socket)
            .field("admin_tcp", &self.admin_tcp)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

fn route_client(s: &Settings) -> Result<Option<ClientHandle>, StartError> {
    if s.route_servers.is_empty() {
        return Ok(None);
    }
    let tls = match &s.route_tls {
        Some(t) => Some(ferrinet_route_client::tls::client_config_from_files(
            &t.ca,
            Some(&t.cert),
            Some(&t.key),
        )?),
        None => None,
    };
    let mut servers = Vec::new();
    for addr in &s.route_servers {
        servers.push(match &tls {
            None => ServerConfig::plaintext(addr.clone()),
            Some(config) => {
                let name = s
                    .route_tls
                    .as_ref()
                    .and_then(|t| t.server_name.clone())
                    .unwrap_or_else(|| host_of(addr).to_string());
                ServerConfig::tls(
                    addr.clone(),
                    TlsClient {
                        config: Arc::clone(config),
                        server_name: ferrinet_route_client::tls::server_name(&name)?,
                    },
                )
            }
        });
    }
    let mut cfg = ClientConfig::new(servers);
    cfg.keepalive = s.keepalive;
    Ok(Some(client::start(cfg)?))
}

async fn bind_tcp(what: &str, addr: Option<SocketAddr>) -> Result<Option<TcpListener>, StartError> {
    match addr {
        None => Ok(None),
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|source| StartError::Listen {
                what: format!("{what} {a}"),
                source,
            }),
    }
}

impl Node {
    /// Starts a node with `s` on the current runtime. Returns once every listener is bound; the
    /// node becomes ready (`synced`) after its first full resync.
    pub async fn start(s: &Settings) -> Result<Self, StartError> {
        let metrics = Metrics::new();
        let (store, loaded, writer) = Store::open(&s.state_dir)?;
        let (embedded, address) = match &s.dataplane {
            DataplaneTarget::Embedded { underlay, packets } => {
                let count = match s.vf.mode {
                    VfMode::Tap { count } => count as usize,
                    VfMode::Sysfs { .. } => vf::DEFAULT_TAP_COUNT as usize,
                };
                let e = embedded::start(*underlay, count, packets.as_deref().cloned()).await?;
                let a = e.address.to_string();
                (Some(e), a)
            }
            DataplaneTarget::Remote(a) => (None, a.clone()),
        };
        let dp = Dp::new(&address, s.call_timeout, metrics.clone())?;
        let vfs = vf::discover(&s.vf)?;
        let (pool, unrestored) = VfPool::new(vfs, loaded.claims);
        let vf_capacity = u32::try_from(pool.total()).unwrap_or(u32::MAX);
        for u in &unrestored {
            tracing::warn!(owner = %u.owner, vf = %u.vf_id, reason = %u.reason, "VF claim not restored");
        }
        let lost_claims = unrestored.into_iter().map(|u| (u.owner, u.vf_id)).collect();
        let route_client = route_client(s)?;
        let announcer = Announcer::new(route_client.clone(), metrics.clone());
        let (dp_state_tx, dp_state) = watch::channel(DataplaneState::default());
        let (synced_tx, synced) = watch::channel(false);
        let (api, _) = Actor::spawn(
            None,
            ApiActor,
            ApiArgs {
                node_name: s.node_name.clone(),
                options: spec::Options {
                    ipv6_enabled: s.ipv6,
                },
                store,
                objects: loaded.objects,
                revision: loaded.revision,
                pool,
                lost_claims,
                shared: Shared {
                    dp: dp.clone(),
                    announcer,
                    public_vni: s.public_vni,
                    recheck: s.recheck,
                    backoff: s.backoff,
                    router: s.router_address,
                    ipv6: s.ipv6,
                    prefer_network: s.prefer_network,
                    metrics: metrics.clone(),
                },
                dataplane: dp_state.clone(),
                synced: synced_tx,
            },
        )
        .await
        .map_err(|e| StartError::Actor("api", e))?;
        let (dataplane_actor, _) = Actor::spawn(
            None,
            DataplaneActor,
            DataplaneArgs {
                dp: dp.clone(),
                interval: s.check_interval,
                state: dp_state_tx,
                metrics: metrics.clone(),
            },
        )
        .await
        .map_err(|e| StartError::Actor("dataplane", e))?;

        let (stop, _) = broadcast::channel::<()>(1);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(forward_dataplane(
            dp_state.clone(),
            api.clone(),
        )));
        {
            let mut rx = stop.subscribe();
            tasks.push(tokio::spawn(crate::dataplane::counters::poll(
                dp.clone(),
                metrics.clone(),
                crate::dataplane::counters::POLL_INTERVAL,
                async move {
                    let _ = rx.recv().await;
                },
            )));
        }
        // The default router is what the public VNI announces as its zero-length prefix.
        if let Some(c) = &route_client {
            let sub = c.subscribe(s.public_vni)?;
            tasks.push(tokio::spawn(crate::network::watch_router(sub, api.clone())));
        }

        let unix = match &s.admin_socket {
            Some(p) => Some((
                server::bind_unix(p).map_err(|source| StartError::Listen {
                    what: format!("admin socket {}", p.display()),
                    source,
                })?,
                p.clone(),
            )),
            None => None,
        };
        let tcp = bind_tcp("admin", s.admin_listen).await?;
        let admin_tcp = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let admin_tls = match &s.admin_tls {
            Some((ca, cert, key)) => Some(ferrinet_route_client::tls::server_config_from_files(
                cert, key, ca,
            )?),
            None => {
                if let Some(a) = admin_tcp {
                    tracing::warn!(address = %a, "admin API on TCP without TLS: anyone who reaches it can change this node (set admin.ca/cert/key)");
                }
                None
            }
        };
        let tcp = tcp.map(|l| (l, admin_tls));
        let mut rx = stop.subscribe();
        let api2 = api.clone();
        let dp2 = dp.clone();
        tasks.push(tokio::spawn(async move {
            let listeners = AdminListeners { unix, tcp };
            if let Err(e) = server::serve(listeners, api2, dp2, async move {
                let _ = rx.recv().await;
            })
            .await
            {
                tracing::error!(error = %crate::error_chain(&e), "admin server failed");
            }
        }));
        let http_l = bind_tcp("http", s.http).await?;
        let http = http_l.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = http_l {
            let mut rx = stop.subscribe();
            let (m, d, sy, a) = (
                metrics.clone(),
                dp_state.clone(),
                synced.clone(),
                api.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::http::serve(l, m, d, sy, a, async move {
                    let _ = rx.recv().await;
                })
                .await
                {
                    tracing::error!(error = %e, "http server failed");
                }
            }));
        }
        // Started now, it talks to the region only once the node is synced.
        let region = match &s.region_api {
            Some(config) => Some(
                Region::start(RegionArgs {
                    config: config.clone(),
                    node_name: s.node_name.clone(),
                    vf_capacity,
                    api: api.clone(),
                    node_synced: synced.clone(),
                    backoff: s.backoff,
                })
                .await?,
            ),
            None => None,
        };
        tracing::info!(
            node = %s.node_name,
            dataplane = %address,
            admin_socket = ?s.admin_socket,
            admin_tcp = ?admin_tcp,
            http = ?http,
            route_servers = s.route_servers.len(),
            region_api = s.region_api.as_ref().map(|r| r.address.as_str()),
            "node started"
        );
        Ok(Self {
            api,
            embedded,
            synced,
            dataplane: dp_state,
            admin_socket: s.admin_socket.clone(),
            admin_tcp,
            http,
            route_client,
            dataplane_address: address,
            region,
            dataplane_actor,
            writer,
            stop,
            tasks,
        })
    }

    /// Waits until the first full resync is done.
    pub async fn ready(&self) {
        let mut s = self.synced.clone();
        let _ = s.wait_for(|v| *v).await;
    }

    /// Stops the listeners, the actors and the route client (whose servers then withdraw this
    /// node's routes).
    pub async fn shutdown(self) {
        // First, so that nothing placed is applied while the rest stops.
        if let Some(r) = self.region {
            r.stop().await;
        }
        let _ = self.stop.send(());
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        let _ = self
            .dataplane_actor
            .stop_and_wait(None, Some(std::time::Duration::from_secs(5)))
            .await;
        let _ = self
            .api
            .stop_and_wait(None, Some(std::time::Duration::from_secs(10)))
            .await;
        // Everything confirmed is committed once the writer has drained its queue.
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        if let Some(c) = &self.route_client {
            c.shutdown().await;
        }
        if let Some(p) = &self.admin_socket {
            let _ = std::fs::remove_file(p);
        }
        drop(self.embedded);
    }
}

/// Turns the DataplaneActor's state changes into ApiActor events.
async fn forward_dataplane(mut state: watch::Receiver<DataplaneState>, api: ActorRef<ApiMsg>) {
    let mut seen_ready = false;
    let mut restarts = 0;
    loop {
        let (health, r) = {
            let s = state.borrow_and_update();
            (s.health, s.restarts)
        };
        if health == Health::Ready {
            let ev = if r > restarts {
                restarts = r;
                Some(DataplaneEvent::Restarted)
            } else if !seen_ready {
                Some(DataplaneEvent::Ready)
            } else {
                None
            };
            seen_ready = true;
            if let Some(ev) = ev {
                if api.send_message(ApiMsg::Dataplane(ev)).is_err() {
                    return;
                }
                // After a restart the start-up resync may still be pending.
                if ev == DataplaneEvent::Restarted {
                    let _ = api.send_message(ApiMsg::Dataplane(DataplaneEvent::Ready));
                }
            }
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
