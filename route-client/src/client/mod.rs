//! Route client library: what a node uses to talk to the region route servers.
//!
//! [`start`] connects to every configured server, keeps each session alive (keepalives, hold
//! timer), reconnects with jittered exponential back-off and, after every (re)connect, re-sends
//! all SUBSCRIBEs and announced routes. The routes received from all servers are merged
//! ([`aggregate::Aggregator`]): a route is present while any server provides it, so losing one
//! server withdraws nothing the others still have.
//!
//! - [`ClientHandle::subscribe`] returns an owned [`Subscription`] per VNI that yields that
//!   VNI's changes in order and says when the initial set is complete ([`VniEvent`]). Several
//!   subscriptions of one VNI share one wire subscription, which ends with the last of them.
//! - [`ClientHandle::announce`] / [`ClientHandle::withdraw`] are counted: a route announced
//!   twice needs two withdrawals before the servers are told.
//! - "Initial set complete" comes from the END_OF_SNAPSHOT extension when a server negotiated
//!   it, and otherwise from a quiet period ([`ClientConfig::snapshot_quiet`]): the VNI is
//!   complete once every server that was established has finished its snapshot.
//!
//! ```text
//!   application                      actor task (owns all state)            one task per server
//!  -------------                    -----------------------------           --------------------
//!  ClientHandle --Command (unbounded)--> desired subscriptions     --PeerCmd (unbounded)--> peer 0 --TLS/TCP--> server 0
//!  Subscription --Unsubscribe/Resync-->  announcements (counted)  <--PeerEvent (bounded)-- peer 1 --TLS/TCP--> server 1
//!                                        Aggregator (route -> servers)                     (session state machine,
//!  Subscription <--SubItem (bounded,---- per-VNI subscribers                                conn reader + writer task,
//!   (one per VNI    try_send: never        completion tracking                              snapshot tracking)
//!    and consumer)  waits; lag => resync)
//!  watch::Receiver<Status> <------------ status after each message
//! ```
//!
//! Channels towards the actor and the peers are unbounded so that neither the actor nor a
//! consumer ever waits to hand over a request; they carry only what the application asked for.
//! The channel from the servers to the actor is bounded (TCP back-pressure on a burst), and the
//! actor never waits on anyone: see [`subscription`] for what happens to a slow consumer.

pub(crate) mod actor;
pub mod aggregate;
pub mod backoff;
mod error;
mod peer;
pub mod servers;
pub mod subscription;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

pub use aggregate::{Aggregator, RouteEvent};
pub use error::{ClientError, ErrorOrigin, SessionError, chain as error_chain};
pub use servers::{ServerId, ServerSet};
pub use subscription::{Subscription, VniEvent};

use crate::route::{MAX_VNI, Route};
use crate::session::Extensions;
use actor::{Actor, Command, Peer};
use peer::PeerSettings;

/// TLS settings for one server.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// The client configuration: trusted CA and this node's certificate and key.
    pub config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry.
    pub server_name: ServerName<'static>,
}

/// One route server to connect to.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `host:port`; resolved again on every connection attempt.
    pub addr: String,
    /// `None` for the plaintext (metalbond-compatible) listener.
    pub tls: Option<TlsClient>,
}

impl ServerConfig {
    /// A plaintext server.
    pub fn plaintext(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            tls: None,
        }
    }

    /// A TLS server.
    pub fn tls(addr: impl Into<String>, tls: TlsClient) -> Self {
        Self {
            addr: addr.into(),
            tls: Some(tls),
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The servers; the client connects to all of them.
    pub servers: Vec<ServerConfig>,
    /// Keepalive interval proposed in HELLO (the server may lower it); at least 1 s.
    pub keepalive: Duration,
    /// Bound of one connection attempt (TCP connect plus TLS handshake).
    pub connect_timeout: Duration,
    /// First reconnect delay ceiling.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Items each [`Subscription`] buffers before its consumer counts as lagging; at least 2.
    pub subscription_buffer: usize,
    /// With a server that does not send END_OF_SNAPSHOT (metalbond v1): a VNI's snapshot from
    /// that server counts as finished once no UPDATE of the VNI arrived for this long after the
    /// SUBSCRIBE.
    pub snapshot_quiet: Duration,
}

impl ClientConfig {
    /// Defaults for `servers`: keepalive 5 s, connect timeout 10 s, back-off 0.5 s to 30 s,
    /// 4096 items per subscription, quiet period 1 s.
    pub fn new(servers: Vec<ServerConfig>) -> Self {
        Self {
            servers,
            keepalive: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            subscription_buffer: 4096,
            snapshot_quiet: Duration::from_secs(1),
        }
    }

    fn validate(&self) -> Result<(), ClientError> {
        let invalid = |field, problem| Err(ClientError::Invalid { field, problem });
        if self.servers.is_empty() {
            return invalid("servers", "at least one server is needed");
        }
        if self.keepalive < Duration::from_secs(1) {
            return invalid("keepalive", "must be at least 1 s");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be positive");
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return invalid("backoff", "need 0 < backoff_min <= backoff_max");
        }
        if self.subscription_buffer < 2 {
            return invalid("subscription_buffer", "must be at least 2");
        }
        if self.snapshot_quiet.is_zero() {
            return invalid("snapshot_quiet", "must be positive");
        }
        Ok(())
    }
}

/// Where a server's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Connecting or exchanging HELLOs.
    Connecting,
    /// Routes flow.
    Established,
    /// Waiting before the next attempt.
    Backoff,
}

/// One server in [`Status`].
#[derive(Debug, Clone)]
pub struct ServerStatus {
    /// Its address.
    pub addr: String,
    /// Where the connection stands.
    pub state: ServerState,
    /// Why the last session or attempt ended, if one did.
    pub last_error: Option<Arc<SessionError>>,
    /// Sessions that reached ESTABLISHED so far.
    pub sessions: u64,
    /// Extensions agreed with the server in the current session (none while not established).
    pub extensions: Extensions,
}

/// One subscribed VNI in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// The VNI.
    pub vni: u32,
    /// Live [`Subscription`]s of it in this client.
    pub consumers: usize,
    /// Of those, how many fell behind and wait for a resync.
    pub lagged: usize,
    /// Whether the initial set is complete.
    pub complete: bool,
}

/// A snapshot of the client.
#[derive(Debug, Clone)]
pub struct Status {
    /// Per server, in configuration order.
    pub servers: Vec<ServerStatus>,
    /// Subscribed VNIs, ascending.
    pub subscriptions: Vec<SubscriptionStatus>,
    /// Distinct routes this client announces.
    pub announced: usize,
    /// Received routes held, including those hidden because this client announces their
    /// (VNI, prefix) itself.
    pub routes: usize,
}

impl Status {
    /// How many servers are established.
    pub fn established(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.state == ServerState::Established)
            .count()
    }
}

/// Controls a running client. Cheap to clone; the client shuts down on
/// [`ClientHandle::shutdown`] or when every handle and subscription is gone.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    next_sub: Arc<AtomicU64>,
    subscription_buffer: usize,
}

fn check_vni(vni: u32) -> Result<(), ClientError> {
    if vni > MAX_VNI {
        return Err(ClientError::VniOutOfRange(vni));
    }
    Ok(())
}

impl ClientHandle {
    fn send(&self, c: Command) -> Result<(), ClientError> {
        self.tx.send(c).map_err(|_| ClientError::Closed)
    }

    /// Receives the routes of `vni` from now on, as an owned stream (see [`VniEvent`]).
    pub fn subscribe(&self, vni: u32) -> Result<Subscription, ClientError> {
        check_vni(vni)?;
        let id = self.next_sub.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.subscription_buffer);
        self.send(Command::Subscribe { id, vni, tx })?;
        Ok(Subscription {
            vni,
            id,
            rx,
            cmds: self.tx.clone(),
        })
    }

    /// Announces `route` to every server, now and after every reconnect. Counted: each call
    /// needs its own [`ClientHandle::withdraw`].
    pub fn announce(&self, route: Route) -> Result<(), ClientError> {
        check_vni(route.vni)?;
        self.send(Command::Announce(route))
    }

    /// Withdraws one announcement of `route`; the servers are told when none is left. A route
    /// that is not announced is ignored.
    pub fn withdraw(&self, route: Route) -> Result<(), ClientError> {
        check_vni(route.vni)?;
        self.send(Command::Withdraw(route))
    }

    /// A snapshot of the sessions and counts. Never waits on the client.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of [`ClientHandle::status`] (e.g. to wait until a
    /// session is established).
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The merged view of every subscribed VNI as it stands. Safe to await from anywhere: the
    /// client's task never waits on a consumer.
    pub async fn routes(&self) -> Result<Vec<Route>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Routes(tx))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// The servers (indexes in the configuration) that currently provide `route`, ascending;
    /// empty if none does.
    pub async fn providers(&self, route: Route) -> Result<Vec<ServerId>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Providers(route, tx))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Closes every session and stops. The servers then withdraw this client's routes. Returns
    /// once all connection tasks have ended; every subscription ends after that.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts a client on the current tokio runtime.
pub fn start(config: ClientConfig) -> Result<ClientHandle, ClientError> {
    config.validate()?;
    let settings = PeerSettings {
        keepalive: config.keepalive,
        connect_timeout: config.connect_timeout,
        backoff_min: config.backoff_min,
        backoff_max: config.backoff_max,
        snapshot_quiet: config.snapshot_quiet,
    };
    // Enough for a few read batches per server; more only buffers what the actor cannot take.
    let (peer_tx, peer_rx) = mpsc::channel(16 * config.servers.len());
    let mut tasks = JoinSet::new();
    let mut peers = Vec::with_capacity(config.servers.len());
    for (id, server) in config.servers.into_iter().enumerate() {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("route_server", addr = %server.addr);
        peers.push(Peer {
            addr: server.addr.clone(),
            cmds: cmd_tx,
            status: ServerStatus {
                addr: server.addr.clone(),
                state: ServerState::Connecting,
                last_error: None,
                sessions: 0,
                extensions: Extensions::NONE,
            },
        });
        tasks.spawn(
            peer::run(id, server, settings.clone(), cmd_rx, peer_tx.clone()).instrument(span),
        );
    }
    drop(peer_tx);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(Status {
        servers: peers.iter().map(|p| p.status.clone()).collect(),
        subscriptions: Vec::new(),
        announced: 0,
        routes: 0,
    });
    let actor = Actor::new(status_tx, peers, tasks);
    tokio::spawn(
        actor
            .run(cmd_rx, peer_rx)
            .instrument(tracing::info_span!("route_client")),
    );
    Ok(ClientHandle {
        tx: cmd_tx,
        status: status_rx,
        next_sub: Arc::new(AtomicU64::new(1)),
        subscription_buffer: config.subscription_buffer,
    })
}
