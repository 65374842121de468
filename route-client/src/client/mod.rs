//! Route client library: what a node uses to talk to the region route servers.
//!
//! [`start`] connects to every configured server, keeps each session alive (keepalives, hold
//! timer), reconnects with jittered exponential back-off and, after every (re)connect, re-sends
//! all SUBSCRIBEs and announced routes. The routes received from all servers are merged
//! ([`aggregate::Aggregator`]): a route is present while any server provides it, so losing one
//! server withdraws nothing the others still have. Changes of that merged view arrive, in order,
//! on one [`ClientEvent`] stream.
//!
//! ```text
//!   application                       actor task (owns all state)           one task per server
//!  -------------                     -----------------------------          --------------------
//!  ClientHandle --Command (unbounded)--> desired subscriptions     --PeerCmd (unbounded)--> peer 0 --TLS/TCP--> server 0
//!   subscribe/announce/status/...       desired announcements      <--PeerEvent (bounded)-- peer 1 --TLS/TCP--> server 1
//!                                       Aggregator (route -> servers)                      (session state machine,
//!  Receiver<ClientEvent> <--(bounded)-- merged view changes                                  conn reader + writer task)
//! ```
//!
//! Channels towards the actor and the peers are unbounded so the actor never waits on a peer
//! and the application never deadlocks by calling the handle from the task that reads events;
//! they carry only what the application asked for. Channels from the servers towards the
//! application are bounded: a slow consumer slows the reading of the sockets (TCP back-pressure)
//! instead of growing memory.

pub mod aggregate;
pub mod backoff;
mod peer;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrinet_proto::frame::{self, Message};
use ferrinet_proto::route::Subscription;
use rustls_pki_types::ServerName;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

pub use aggregate::{Aggregator, MAX_SERVERS, RouteEvent, ServerId};

use crate::route::{Action, MAX_VNI, Route};
use peer::{PeerCmd, PeerEvent, PeerSettings};

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
    /// Capacity of the event stream.
    pub event_buffer: usize,
}

impl ClientConfig {
    /// Defaults for `servers`: keepalive 5 s, connect timeout 10 s, back-off 0.5 s to 30 s.
    pub fn new(servers: Vec<ServerConfig>) -> Self {
        Self {
            servers,
            keepalive: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            event_buffer: 4096,
        }
    }
}

/// A client that cannot start or a request it cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A configuration or request value is out of range; names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The client has shut down.
    #[error("the route client has shut down")]
    Closed,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ClientError {
    ClientError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// What the client reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A route appeared in or disappeared from the merged view.
    Route(RouteEvent),
    /// A session with a server became ESTABLISHED; subscriptions and announcements are re-sent.
    ServerUp {
        /// Index of the server in the configuration.
        server: ServerId,
        /// Its address.
        addr: String,
    },
    /// An established session ended; the routes only this server provided were removed (their
    /// REMOVEs precede this event).
    ServerDown {
        /// Index of the server in the configuration.
        server: ServerId,
        /// Its address.
        addr: String,
        /// Why it ended.
        reason: String,
    },
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Its address.
    pub addr: String,
    /// Where the connection stands.
    pub state: ServerState,
    /// Why the last session or attempt ended, if one did.
    pub last_error: Option<String>,
    /// Sessions that reached ESTABLISHED so far.
    pub sessions: u64,
}

/// A snapshot of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Per server, in configuration order.
    pub servers: Vec<ServerStatus>,
    /// Subscribed VNIs, ascending.
    pub subscriptions: Vec<u32>,
    /// Routes this client announces.
    pub announced: usize,
    /// Received routes held, including those hidden because this client announces their
    /// (VNI, prefix) itself.
    pub routes: usize,
}

enum Command {
    Subscribe(u32),
    Unsubscribe(u32),
    Announce(Route),
    Withdraw(Route),
    Routes(oneshot::Sender<Vec<Route>>),
    Providers(Route, oneshot::Sender<Vec<ServerId>>),
    Shutdown(oneshot::Sender<()>),
}

/// Controls a running client. Cheap to clone; the client shuts down when every handle is gone
/// or on [`ClientHandle::shutdown`].
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::Announce(_) => "announce",
            Self::Withdraw(_) => "withdraw",
            Self::Routes(_) => "routes",
            Self::Providers(..) => "providers",
            Self::Shutdown(_) => "shutdown",
        })
    }
}

fn check_vni(vni: u32) -> Result<(), ClientError> {
    if vni > MAX_VNI {
        return Err(invalid("vni", format!("{vni} exceeds 24 bits")));
    }
    Ok(())
}

impl ClientHandle {
    fn send(&self, c: Command) -> Result<(), ClientError> {
        self.tx.send(c).map_err(|_| ClientError::Closed)
    }

    /// Receive the routes of `vni` from now on (all current ones first). Idempotent.
    pub fn subscribe(&self, vni: u32) -> Result<(), ClientError> {
        check_vni(vni)?;
        self.send(Command::Subscribe(vni))
    }

    /// Stop receiving `vni`; its routes leave the view (REMOVE events). Idempotent.
    pub fn unsubscribe(&self, vni: u32) -> Result<(), ClientError> {
        check_vni(vni)?;
        self.send(Command::Unsubscribe(vni))
    }

    /// Announce `route` to every server, now and after every reconnect. Idempotent.
    pub fn announce(&self, route: Route) -> Result<(), ClientError> {
        self.send(Command::Announce(route))
    }

    /// Withdraw an announced route from every server. Idempotent.
    pub fn withdraw(&self, route: Route) -> Result<(), ClientError> {
        self.send(Command::Withdraw(route))
    }

    /// A snapshot of the sessions and counts. Never waits on the client, so it is safe to call
    /// from the task that reads the event stream.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of [`ClientHandle::status`] (e.g. to wait until a
    /// session is established).
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The merged view as it stands (after every event already delivered).
    ///
    /// Served by the client's task: do not await it from the task that reads the event stream
    /// while that stream may be full.
    pub async fn routes(&self) -> Result<Vec<Route>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Routes(tx))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// The servers (indexes in the configuration) that currently provide `route`, ascending;
    /// empty if none does. The same caution as for [`ClientHandle::routes`] applies.
    pub async fn providers(&self, route: Route) -> Result<Vec<ServerId>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Providers(route, tx))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Closes every session and stops. The servers then withdraw this client's routes. Returns
    /// once all connection tasks have ended; the event stream ends after that.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts a client on the current tokio runtime. Returns its handle and its event stream.
pub fn start(
    config: ClientConfig,
) -> Result<(ClientHandle, mpsc::Receiver<ClientEvent>), ClientError> {
    if config.servers.is_empty() {
        return Err(invalid("servers", "at least one server is needed"));
    }
    if config.servers.len() > MAX_SERVERS {
        return Err(invalid(
            "servers",
            format!(
                "{} servers, at most {MAX_SERVERS} are supported",
                config.servers.len()
            ),
        ));
    }
    if config.keepalive < Duration::from_secs(1) {
        return Err(invalid("keepalive", "must be at least 1 s"));
    }
    if config.backoff_min.is_zero() || config.backoff_max < config.backoff_min {
        return Err(invalid("backoff", "need 0 < backoff_min <= backoff_max"));
    }
    if config.event_buffer == 0 {
        return Err(invalid("event_buffer", "must be at least 1"));
    }
    let settings = PeerSettings {
        keepalive: config.keepalive,
        connect_timeout: config.connect_timeout,
        backoff_min: config.backoff_min,
        backoff_max: config.backoff_max,
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
            },
        });
        tasks.spawn(
            peer::run(id, server, settings.clone(), cmd_rx, peer_tx.clone()).instrument(span),
        );
    }
    drop(peer_tx);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(config.event_buffer);
    let (status_tx, status_rx) = watch::channel(Status {
        servers: peers.iter().map(|p| p.status.clone()).collect(),
        subscriptions: Vec::new(),
        announced: 0,
        routes: 0,
    });
    let actor = Actor {
        status: status_tx,
        peers,
        tasks,
        subscriptions: BTreeSet::new(),
        announced: HashSet::new(),
        view: Aggregator::new(),
        events: ev_tx,
    };
    tokio::spawn(actor.run(cmd_rx, peer_rx));
    Ok((
        ClientHandle {
            tx: cmd_tx,
            status: status_rx,
        },
        ev_rx,
    ))
}

struct Peer {
    addr: String,
    cmds: mpsc::UnboundedSender<PeerCmd>,
    status: ServerStatus,
}

struct Actor {
    peers: Vec<Peer>,
    tasks: JoinSet<()>,
    subscriptions: BTreeSet<u32>,
    announced: HashSet<Route>,
    view: Aggregator,
    events: mpsc::Sender<ClientEvent>,
    status: watch::Sender<Status>,
}

fn encoded(msgs: impl IntoIterator<Item = Message>) -> bytes::Bytes {
    let mut b = BytesMut::new();
    for m in msgs {
        // SUBSCRIBE and UNSUBSCRIBE are a few bytes: they always fit a frame.
        if let Err(e) = frame::encode(&m, &mut b) {
            tracing::error!(error = %e, "cannot encode a subscription message");
        }
    }
    b.freeze()
}

impl Actor {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut peer_events: mpsc::Receiver<PeerEvent>,
    ) {
        let done = loop {
            tokio::select! {
                // Commands first: an announce must reach the peers before later updates are
                // interpreted against it.
                biased;
                c = cmds.recv() => match c {
                    None => break None,
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(c) => {
                        self.command(c).await;
                        self.publish();
                    }
                },
                e = peer_events.recv() => match e {
                    Some(e) => {
                        self.peer_event(e).await;
                        self.publish();
                    }
                    // Peer tasks only end when told to; nothing more will come.
                    None => break None,
                },
            }
        };
        for p in &self.peers {
            let _ = p.cmds.send(PeerCmd::Stop);
        }
        // Keep draining reports so that no peer blocks on a full channel while stopping; a peer
        // stuck writing to a server that does not read is cut off.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            tokio::select! {
                t = self.tasks.join_next() => if t.is_none() { break },
                _ = peer_events.recv() => {}
                () = tokio::time::sleep_until(deadline) => {
                    self.tasks.abort_all();
                }
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn publish(&self) {
        let servers = self.peers.iter().map(|p| &p.status);
        let subs = &self.subscriptions;
        let (announced, routes) = (self.announced.len(), self.view.len());
        self.status.send_if_modified(|s| {
            let same = s.servers.iter().eq(servers.clone())
                && s.subscriptions.iter().eq(subs.iter())
                && s.announced == announced
                && s.routes == routes;
            if !same {
                *s = Status {
                    servers: servers.cloned().collect(),
                    subscriptions: subs.iter().copied().collect(),
                    announced,
                    routes,
                };
            }
            !same
        });
    }

    async fn emit(&self, e: ClientEvent) {
        // A dropped receiver means the application does not want events; keep serving it.
        let _ = self.events.send(e).await;
    }

    async fn emit_routes(&self, evs: Vec<RouteEvent>) {
        for e in evs {
            self.emit(ClientEvent::Route(e)).await;
        }
    }

    fn to_peers(&self, mut make: impl FnMut() -> PeerCmd) {
        for p in &self.peers {
            // A peer task that has ended gets nothing; it only ends on shutdown.
            let _ = p.cmds.send(make());
        }
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Subscribe(vni) => {
                if self.subscriptions.insert(vni) {
                    let b = encoded([Message::Subscribe(Subscription { vni })]);
                    self.to_peers(|| PeerCmd::Frames(b.clone()));
                }
            }
            Command::Unsubscribe(vni) => {
                if self.subscriptions.remove(&vni) {
                    let b = encoded([Message::Unsubscribe(Subscription { vni })]);
                    self.to_peers(|| PeerCmd::Frames(b.clone()));
                    let evs = self.view.drop_vni(vni);
                    self.emit_routes(evs).await;
                }
            }
            Command::Announce(r) => {
                if self.announced.insert(r) {
                    self.to_peers(|| PeerCmd::Routes(Action::Add, vec![r]));
                    let evs = self.view.announce(&r);
                    self.emit_routes(evs).await;
                }
            }
            Command::Withdraw(r) => {
                if self.announced.remove(&r) {
                    self.to_peers(|| PeerCmd::Routes(Action::Remove, vec![r]));
                    let evs = self.view.withdraw(&r);
                    self.emit_routes(evs).await;
                }
            }
            Command::Routes(tx) => {
                let _ = tx.send(self.view.routes().collect());
            }
            Command::Providers(r, tx) => {
                let mask = self.view.providers(&r);
                let _ = tx.send((0..MAX_SERVERS).filter(|i| mask & (1 << i) != 0).collect());
            }
            Command::Shutdown(_) => {}
        }
    }

    async fn peer_event(&mut self, e: PeerEvent) {
        match e {
            PeerEvent::Connecting(id) => {
                if let Some(p) = self.peers.get_mut(id) {
                    p.status.state = ServerState::Connecting;
                }
            }
            PeerEvent::Established(id) => {
                let Some(p) = self.peers.get_mut(id) else {
                    return;
                };
                p.status.state = ServerState::Established;
                p.status.sessions += 1;
                tracing::info!(addr = %p.addr, "session established");
                // Every (re)established session gets the whole desired state.
                let subs = encoded(
                    self.subscriptions
                        .iter()
                        .map(|&vni| Message::Subscribe(Subscription { vni })),
                );
                if !subs.is_empty() {
                    let _ = p.cmds.send(PeerCmd::Frames(subs));
                }
                if !self.announced.is_empty() {
                    let routes = self.announced.iter().copied().collect();
                    let _ = p.cmds.send(PeerCmd::Routes(Action::Add, routes));
                }
                let addr = p.addr.clone();
                self.emit(ClientEvent::ServerUp { server: id, addr }).await;
            }
            PeerEvent::Updates(id, batch) => {
                for (action, r) in batch {
                    // A server may still send a VNI we just unsubscribed from; ignore it.
                    if !self.subscriptions.contains(&r.vni) {
                        continue;
                    }
                    if let Some(e) = self.view.apply(id, action, r) {
                        self.emit(ClientEvent::Route(e)).await;
                    }
                }
            }
            PeerEvent::Down {
                server,
                was_established,
                reason,
                retry_in,
            } => {
                let Some(p) = self.peers.get_mut(server) else {
                    return;
                };
                p.status.state = ServerState::Backoff;
                p.status.last_error = Some(reason.clone());
                tracing::debug!(addr = %p.addr, %reason, ?retry_in, "server down");
                if was_established {
                    let addr = p.addr.clone();
                    let evs = self.view.drop_server(server);
                    self.emit_routes(evs).await;
                    self.emit(ClientEvent::ServerDown {
                        server,
                        addr,
                        reason,
                    })
                    .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::conn::FrameReader;
    use crate::session::{Event, Inbound, Output, Role, Session};
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    /// One accepted connection of [`fake_server`]: what the client sent once established, and a
    /// way to send it messages. Dropping `send` closes the connection.
    struct FakeConn {
        inbound: mpsc::UnboundedReceiver<Inbound>,
        send: mpsc::UnboundedSender<Message>,
    }

    /// A minimal server on loopback: runs the server side of the session state machine.
    async fn fake_server() -> (String, mpsc::UnboundedReceiver<FakeConn>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let (in_tx, in_rx) = mpsc::unbounded_channel();
                let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
                if tx
                    .send(FakeConn {
                        inbound: in_rx,
                        send: out_tx,
                    })
                    .is_err()
                {
                    return;
                }
                tokio::spawn(async move {
                    let (rd, mut wr) = tokio::io::split(sock);
                    let mut rd = FrameReader::new(rd);
                    let mut s = Session::new(Role::Server, Duration::from_secs(1));
                    let mut msgs = Vec::new();
                    loop {
                        let mut outs = Vec::new();
                        tokio::select! {
                            r = rd.read_batch(&mut msgs) => {
                                if !matches!(r, Ok(n) if n > 0) { return; }
                                for m in msgs.drain(..) { outs.extend(s.handle(Event::Received(m))); }
                            }
                            m = out_rx.recv() => match m {
                                Some(m) => outs.push(Output::Send(m)),
                                None => return,
                            },
                        }
                        for o in outs {
                            match o {
                                Output::Send(m) => {
                                    let b = frame::encode_to_vec(&m).unwrap();
                                    if wr.write_all(&b).await.is_err() {
                                        return;
                                    }
                                }
                                Output::Deliver(i) => {
                                    let _ = in_tx.send(i);
                                }
                                Output::Close(_) => return,
                                Output::Established => {}
                            }
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("timed out")
            .expect("closed")
    }

    async fn next_event(rx: &mut mpsc::Receiver<ClientEvent>) -> ClientEvent {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("timed out")
            .expect("closed")
    }

    /// Reads what a fresh session got: the subscription and the announcement, in any order.
    async fn expect_state(c: &mut FakeConn, vni: u32, own: Route) {
        let mut got = [next(&mut c.inbound).await, next(&mut c.inbound).await];
        got.sort_by_key(|i| matches!(i, Inbound::Update(_)));
        assert_eq!(got[0], Inbound::Subscribe(vni));
        assert_eq!(got[1], Inbound::Update(own.to_update(Action::Add)));
    }

    fn r(s: &str) -> Route {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn merges_servers_and_resends_state_after_reconnect() {
        let (a_addr, mut a) = fake_server().await;
        let (b_addr, mut b) = fake_server().await;
        let mut cfg = ClientConfig::new(vec![
            ServerConfig::plaintext(a_addr.clone()),
            ServerConfig::plaintext(b_addr.clone()),
        ]);
        cfg.keepalive = Duration::from_secs(1);
        cfg.backoff_min = Duration::from_millis(20);
        cfg.backoff_max = Duration::from_millis(100);
        let (h, mut ev) = start(cfg).unwrap();
        let own = r("7#10.7.0.1/32#2001:db8::1");
        h.subscribe(7).unwrap();
        h.announce(own).unwrap();
        assert!(h.subscribe(1 << 24).is_err());

        let mut a1 = next(&mut a).await;
        let mut b1 = next(&mut b).await;
        expect_state(&mut a1, 7, own).await;
        expect_state(&mut b1, 7, own).await;

        let x = r("7#10.7.0.2/32#2001:db8::2");
        let y = r("7#10.7.0.3/32#2001:db8::3");
        let hidden = r("7#10.7.0.1/32#2001:db8::9");
        let other_vni = r("8#10.8.0.1/32#2001:db8::9");
        for m in [x, y, hidden, other_vni] {
            a1.send
                .send(Message::Update(m.to_update(Action::Add)))
                .unwrap();
        }
        b1.send
            .send(Message::Update(x.to_update(Action::Add)))
            .unwrap();
        let mut routes = Vec::new();
        while routes.len() < 2 {
            if let ClientEvent::Route(e) = next_event(&mut ev).await {
                routes.push(e);
            }
        }
        routes.sort_by_key(|e| e.route);
        assert_eq!(
            routes,
            vec![
                RouteEvent {
                    action: Action::Add,
                    route: x
                },
                RouteEvent {
                    action: Action::Add,
                    route: y
                }
            ]
        );

        // Server A goes away: only y, which B does not have, disappears.
        drop(a1);
        let mut after = Vec::new();
        loop {
            match next_event(&mut ev).await {
                ClientEvent::ServerDown { server: 0, .. } => break,
                ClientEvent::Route(e) => after.push(e),
                _ => {}
            }
        }
        assert_eq!(
            after,
            vec![RouteEvent {
                action: Action::Remove,
                route: y
            }]
        );
        let mut view = h.routes().await.unwrap();
        view.sort();
        assert_eq!(view, vec![x]);

        // The client comes back to A and sends it everything again.
        let mut a2 = next(&mut a).await;
        expect_state(&mut a2, 7, own).await;
        loop {
            if let ClientEvent::ServerUp { server: 0, .. } = next_event(&mut ev).await {
                break;
            }
        }
        let s = h.status();
        assert_eq!(s.servers[0].sessions, 2);
        assert_eq!(s.subscriptions, vec![7]);

        // Withdraw and unsubscribe reach the established sessions.
        h.withdraw(own).unwrap();
        assert_eq!(
            next(&mut b1.inbound).await,
            Inbound::Update(own.to_update(Action::Remove))
        );
        h.unsubscribe(7).unwrap();
        assert_eq!(next(&mut b1.inbound).await, Inbound::Unsubscribe(7));
        assert_eq!(
            next_event(&mut ev).await,
            ClientEvent::Route(RouteEvent {
                action: Action::Remove,
                route: x
            })
        );
        h.shutdown().await;
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            while ev.recv().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "the event stream ends after shutdown");
    }

    #[test]
    fn refuses_bad_config() {
        assert!(matches!(
            start(ClientConfig::new(vec![])),
            Err(ClientError::Invalid {
                field: "servers",
                ..
            })
        ));
    }
}
