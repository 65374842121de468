//! The table task: the one owner of the [`RouteTable`] and of every session's send queue.
//!
//! Session readers send it whole reads' worth of validated operations; it applies them in order,
//! encodes each resulting change once, appends it to a per-recipient buffer and, when its inbox
//! is momentarily empty, pushes one queue item per recipient with `try_send`. It never awaits a
//! peer: a recipient whose queue is full is disconnected (and its routes withdrawn) on the spot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use ferrinet_proto::frame::{self, Message};
use ferrinet_proto::route::EndOfSnapshot;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::authz::Permission;
use super::metrics::Metrics;
use crate::conn::{Outbound, encode_route};
use crate::route::{Action, NextHopType, Route};
use crate::table::{Change, Cursor, Recipients, RouteTable, SessionId, StaleCursor};

/// Which listener a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Listener {
    /// TLS with a client certificate.
    Tls,
    /// Plaintext (metalbond v1 peers).
    Compat,
}

impl Listener {
    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Compat => "compat",
        }
    }
}

/// What the session task and the table task both know about a session; counters are updated
/// by the session task and read for `/sessions.json`.
#[derive(Debug)]
pub struct SessionInfo {
    /// Server-wide unique id.
    pub id: SessionId,
    /// Listener.
    pub listener: Listener,
    /// Remote address.
    pub peer: SocketAddr,
    /// Certificate identity (TLS only).
    pub identity: Option<String>,
    /// What it may announce.
    pub permission: Arc<Permission>,
    /// When the connection was accepted.
    pub connected_at: SystemTime,
    /// HELLO and first KEEPALIVE done.
    pub established: AtomicBool,
    /// UPDATEs received.
    pub updates_received: AtomicU64,
    /// UPDATEs refused (invalid or unauthorized).
    pub updates_refused: AtomicU64,
    /// Bytes written to the peer.
    pub bytes_sent: AtomicU64,
    /// Bytes read from the peer.
    pub bytes_received: AtomicU64,
}

impl SessionInfo {
    /// A fresh session record.
    pub fn new(
        id: SessionId,
        listener: Listener,
        peer: SocketAddr,
        identity: Option<String>,
        permission: Arc<Permission>,
    ) -> Self {
        Self {
            id,
            listener,
            peer,
            identity,
            permission,
            connected_at: SystemTime::now(),
            established: AtomicBool::new(false),
            updates_received: AtomicU64::new(0),
            updates_refused: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        }
    }
}

/// One validated operation of a session, in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// UPDATE ADD.
    Announce(Route),
    /// UPDATE REMOVE.
    Withdraw(Route),
    /// SUBSCRIBE.
    Subscribe {
        /// The VNI.
        vni: u32,
        /// The session negotiated END_OF_SNAPSHOT: follow the snapshot with the marker.
        end_marker: bool,
    },
    /// UNSUBSCRIBE.
    Unsubscribe(u32),
}

/// Messages to the table task.
#[derive(Debug)]
pub enum ToTable {
    /// A session is up (before its HELLO): its queue and kill switch.
    Register {
        /// Shared record.
        info: Arc<SessionInfo>,
        /// Its send queue.
        tx: mpsc::Sender<Outbound>,
        /// Cancelled to disconnect it (overflow).
        kill: CancellationToken,
    },
    /// Operations from one read of a session.
    Batch(SessionId, Vec<Op>),
    /// The session ended.
    Closed(SessionId),
    /// `/routes.json`: one page of the routes of one VNI or all.
    Routes {
        /// Only this VNI.
        vni: Option<u32>,
        /// Where the page starts (`None`: the first page).
        cursor: Option<Cursor>,
        /// Most routes in the page.
        limit: usize,
        /// Answer.
        reply: oneshot::Sender<Result<RoutesView, StaleCursor>>,
    },
    /// `/sessions.json` and the status page.
    Sessions(oneshot::Sender<Vec<SessionView>>),
    /// The status page's summary: routes per VNI, without the routes themselves.
    VniCounts(oneshot::Sender<VniCounts>),
}

/// Route counts for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct VniCounts {
    /// Distinct routes in the whole table.
    pub route_count: usize,
    /// `(vni, routes)` of every VNI that has routes, sorted.
    pub vnis: Vec<(u32, usize)>,
}

/// An owner of a route in `/routes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerView {
    /// Session id.
    pub session: SessionId,
    /// Certificate identity, or the peer address of a plaintext peer.
    pub peer: String,
}

/// A route in `/routes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// Destination prefix.
    pub prefix: String,
    /// Underlay next hop.
    pub next_hop: String,
    /// STD, NAT or LB.
    pub r#type: &'static str,
    /// Target VNI (0 normally).
    pub target_vni: u32,
    /// NAT port range `[from, to)`, NAT only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_ports: Option<[u16; 2]>,
    /// Sessions that announced it.
    pub owners: Vec<OwnerView>,
}

/// One VNI in `/routes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct VniView {
    /// The VNI.
    pub vni: u32,
    /// Its routes.
    pub routes: Vec<RouteView>,
}

/// A page of `/routes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RoutesView {
    /// Distinct routes in the whole table.
    pub route_count: usize,
    /// Per VNI, sorted; a VNI larger than a page spans several pages.
    pub vnis: Vec<VniView>,
    /// The `cursor` of the next page; `null` on the last one.
    pub next: Option<String>,
}

/// One session in `/sessions.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Session id.
    pub id: SessionId,
    /// `tls` or `compat`.
    pub listener: Listener,
    /// Remote address.
    pub peer: String,
    /// Certificate identity.
    pub identity: Option<String>,
    /// What it may announce.
    pub permission: String,
    /// `connecting` or `established`.
    pub state: &'static str,
    /// Seconds since accept.
    pub connected_secs: u64,
    /// VNIs subscribed to.
    pub subscriptions: Vec<u32>,
    /// Routes it announced that are stored.
    pub routes_owned: usize,
    /// UPDATEs received.
    pub updates_received: u64,
    /// UPDATEs refused.
    pub updates_refused: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Items waiting in its send queue.
    pub queued: usize,
}

struct Handle {
    info: Arc<SessionInfo>,
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
}

/// Messages handled before the pending fan-out is pushed, at most: bounds latency under load
/// while still merging many small batches into one queue item per recipient.
const MAX_MERGE: usize = 64;

struct TableTask {
    table: RouteTable,
    sessions: HashMap<SessionId, Handle>,
    /// Encoded changes per recipient, not yet queued.
    pending: HashMap<SessionId, BytesMut>,
    /// Scratch buffer for encoding one change.
    frame: BytesMut,
    metrics: Metrics,
}

/// Runs the table task until every sender of `rx` is gone.
pub async fn run(mut rx: mpsc::Receiver<ToTable>, metrics: Metrics) {
    let mut t = TableTask {
        table: RouteTable::new(),
        sessions: HashMap::new(),
        pending: HashMap::new(),
        frame: BytesMut::with_capacity(256),
        metrics,
    };
    while let Some(msg) = rx.recv().await {
        t.handle(msg);
        for _ in 1..MAX_MERGE {
            match rx.try_recv() {
                Ok(m) => t.handle(m),
                Err(_) => break,
            }
        }
        t.flush();
        t.metrics
            .routes
            .set(i64::try_from(t.table.route_count()).unwrap_or(i64::MAX));
    }
    tracing::debug!("table task ended");
}

impl TableTask {
    fn handle(&mut self, msg: ToTable) {
        match msg {
            ToTable::Register { info, tx, kill } => {
                self.sessions.insert(info.id, Handle { info, tx, kill });
            }
            ToTable::Batch(from, ops) => {
                // A session removed for overflow may still have batches in flight: they must
                // not be stored, as nothing would ever withdraw them.
                if !self.sessions.contains_key(&from) {
                    return;
                }
                for op in ops {
                    self.apply(from, op);
                }
            }
            ToTable::Closed(id) => self.remove(id),
            ToTable::Routes {
                vni,
                cursor,
                limit,
                reply,
            } => {
                let _ = reply.send(self.routes_view(vni, cursor, limit));
            }
            ToTable::Sessions(reply) => {
                let _ = reply.send(self.sessions_view());
            }
            ToTable::VniCounts(reply) => {
                let _ = reply.send(VniCounts {
                    route_count: self.table.route_count(),
                    vnis: self.table.vni_route_counts(),
                });
            }
        }
    }

    fn apply(&mut self, from: SessionId, op: Op) {
        match op {
            Op::Announce(r) => {
                if let Some(c) = self.table.announce(from, r) {
                    self.push(&c);
                }
            }
            Op::Withdraw(r) => {
                if let Some(c) = self.table.withdraw(from, &r) {
                    self.push(&c);
                }
            }
            Op::Subscribe { vni, end_marker } => {
                let snapshot = self.table.subscribe(from, vni);
                if snapshot.is_some() {
                    self.metrics.subscriptions.inc();
                }
                // Changes already pending for this session precede the snapshot, and every
                // later change of `vni` follows it: the table registered the subscription and
                // took the snapshot in one step, so nothing is lost or sent twice. A repeated
                // SUBSCRIBE gets no second snapshot, but still its marker: what the session
                // holds is complete.
                if let Some(buf) = self.pending.remove(&from) {
                    self.send(from, Outbound::Frames(buf.freeze()));
                }
                if let Some(routes) = snapshot.filter(|s| !s.is_empty()) {
                    self.send(from, Outbound::Routes(Action::Add, routes));
                }
                if end_marker {
                    self.send(from, Outbound::Frames(self.end_of_snapshot(vni)));
                }
            }
            Op::Unsubscribe(vni) => {
                if self.table.is_subscribed(from, vni) {
                    self.metrics.subscriptions.dec();
                }
                for c in self.table.unsubscribe(from, vni) {
                    self.push(&c);
                }
            }
        }
    }

    fn end_of_snapshot(&self, vni: u32) -> Bytes {
        let mut b = BytesMut::with_capacity(8);
        // Cannot fail: the marker is a few bytes.
        if let Err(e) = frame::encode(&Message::EndOfSnapshot(EndOfSnapshot { vni }), &mut b) {
            tracing::error!(error = %e, "cannot encode end-of-snapshot marker");
        }
        b.freeze()
    }

    /// Encodes a change once and appends it to each recipient's pending buffer.
    fn push(&mut self, c: &Change) {
        self.frame.clear();
        if let Err(e) = encode_route(c.action, &c.route, &mut self.frame) {
            // Cannot happen: a route's UPDATE is far below the frame limit.
            tracing::error!(error = %e, route = %c.route, "cannot encode route change");
            return;
        }
        match c.to {
            Recipients::AllExcept(except) => {
                for s in self.table.subscribers(c.route.vni) {
                    if s != except {
                        self.pending
                            .entry(s)
                            .or_default()
                            .extend_from_slice(&self.frame);
                    }
                }
            }
            Recipients::Only(s) => self
                .pending
                .entry(s)
                .or_default()
                .extend_from_slice(&self.frame),
        }
    }

    /// Queues an item for a session; a full queue disconnects it.
    fn send(&mut self, id: SessionId, item: Outbound) {
        let Some(h) = self.sessions.get(&id) else {
            return;
        };
        match h.tx.try_send(item) {
            Ok(()) => {}
            // Its task is ending; `Closed` follows.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.overflow(id),
        }
    }

    /// Pushes every pending buffer as one queue item per recipient. Disconnecting an overflowing
    /// subscriber withdraws its routes, which may produce more changes: repeat until quiet.
    fn flush(&mut self) {
        while !self.pending.is_empty() {
            let pending: Vec<(SessionId, BytesMut)> = self.pending.drain().collect();
            for (id, buf) in pending {
                self.send(id, Outbound::Frames(buf.freeze()));
            }
        }
    }

    fn overflow(&mut self, id: SessionId) {
        let Some(h) = self.sessions.get(&id) else {
            return;
        };
        tracing::warn!(
            session = id,
            peer = %h.info.peer,
            identity = h.info.identity.as_deref().unwrap_or("-"),
            "send queue full: disconnecting slow subscriber"
        );
        self.metrics.overflow_disconnects.inc();
        h.kill.cancel();
        self.remove(id);
    }

    fn remove(&mut self, id: SessionId) {
        if self.sessions.remove(&id).is_none() {
            return;
        }
        self.pending.remove(&id);
        let subs = self.table.subscriptions(id).len();
        self.metrics
            .subscriptions
            .dec_by(i64::try_from(subs).unwrap_or(0));
        for c in self.table.remove_session(id) {
            self.push(&c);
        }
    }

    fn owner_name(&self, id: SessionId) -> String {
        match self.sessions.get(&id) {
            Some(h) => match &h.info.identity {
                Some(i) => i.clone(),
                None => h.info.peer.to_string(),
            },
            None => "-".into(),
        }
    }

    fn routes_view(
        &self,
        vni: Option<u32>,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<RoutesView, StaleCursor> {
        let page = self.table.page(vni, cursor, limit)?;
        let mut vnis: Vec<VniView> = Vec::new();
        // The page is sorted by VNI first: its routes group into consecutive runs.
        for (r, owners) in page.routes {
            let view = RouteView {
                prefix: r.destination.to_string(),
                next_hop: r.next_hop.address.to_string(),
                r#type: r.next_hop.kind.short_name(),
                target_vni: r.next_hop.target_vni,
                nat_ports: (r.next_hop.kind == NextHopType::Nat)
                    .then_some([r.next_hop.port_from, r.next_hop.port_to]),
                owners: owners
                    .into_iter()
                    .map(|session| OwnerView {
                        session,
                        peer: self.owner_name(session),
                    })
                    .collect(),
            };
            match vnis.last_mut() {
                Some(v) if v.vni == r.vni => v.routes.push(view),
                _ => vnis.push(VniView {
                    vni: r.vni,
                    routes: vec![view],
                }),
            }
        }
        Ok(RoutesView {
            route_count: self.table.route_count(),
            vnis,
            next: page.next.map(|c| c.to_string()),
        })
    }

    fn sessions_view(&self) -> Vec<SessionView> {
        let now = SystemTime::now();
        let mut v: Vec<SessionView> = self
            .sessions
            .values()
            .map(|h| {
                let i = &h.info;
                SessionView {
                    id: i.id,
                    listener: i.listener,
                    peer: i.peer.to_string(),
                    identity: i.identity.clone(),
                    permission: i.permission.describe(),
                    state: if i.established.load(Ordering::Relaxed) {
                        "established"
                    } else {
                        "connecting"
                    },
                    connected_secs: now
                        .duration_since(i.connected_at)
                        .map_or(0, |d| d.as_secs()),
                    subscriptions: self.table.subscriptions(i.id),
                    routes_owned: self.table.owned_count(i.id),
                    updates_received: i.updates_received.load(Ordering::Relaxed),
                    updates_refused: i.updates_refused.load(Ordering::Relaxed),
                    bytes_sent: i.bytes_sent.load(Ordering::Relaxed),
                    bytes_received: i.bytes_received.load(Ordering::Relaxed),
                    queued: h.tx.max_capacity() - h.tx.capacity(),
                }
            })
            .collect();
        v.sort_unstable_by_key(|s| s.id);
        v
    }
}
