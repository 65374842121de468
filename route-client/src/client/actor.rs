//! The client actor: owns the desired state (subscriptions, announcements), the merged view of
//! every server's routes and the per-subscription buffers; handles one message at a time and
//! never awaits a consumer or a server.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::aggregate::{Aggregator, RouteEvent};
use super::peer::{PeerCmd, PeerEvent};
use super::servers::{ServerId, ServerSet};
use super::subscription::{SubId, SubItem, Subscriber, VniEvent};
use super::{ServerState, ServerStatus, Status, SubscriptionStatus};
use crate::route::{Action, Route};
use crate::session::Extensions;

/// Requests to the actor, from handles and subscriptions.
pub(crate) enum Command {
    Subscribe {
        id: SubId,
        vni: u32,
        tx: mpsc::Sender<SubItem>,
    },
    Unsubscribe(SubId),
    /// The subscription read the lag marker: send it the current set.
    Resync(SubId),
    Announce(Route),
    Withdraw(Route),
    Routes(oneshot::Sender<Vec<Route>>),
    Providers(Route, oneshot::Sender<Vec<ServerId>>),
    Shutdown(oneshot::Sender<()>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::Resync(_) => "resync",
            Self::Announce(_) => "announce",
            Self::Withdraw(_) => "withdraw",
            Self::Routes(_) => "routes",
            Self::Providers(..) => "providers",
            Self::Shutdown(_) => "shutdown",
        })
    }
}

/// One connection task, as the actor sees it.
pub(super) struct Peer {
    pub addr: String,
    pub cmds: mpsc::UnboundedSender<PeerCmd>,
    pub status: ServerStatus,
}

/// A VNI this client receives: its local subscriptions and whether its initial set is complete.
#[derive(Default)]
struct Vni {
    subs: HashMap<SubId, Subscriber>,
    complete: bool,
    /// Established servers whose snapshot has not finished yet.
    waiting: ServerSet,
    /// Some server finished its snapshot: once `waiting` empties, the set is complete.
    any_done: bool,
}

impl Vni {
    fn push(&mut self, e: &VniEvent) {
        for s in self.subs.values_mut() {
            s.push(e.clone());
        }
    }
}

pub(super) struct Actor {
    pub status: watch::Sender<Status>,
    pub peers: Vec<Peer>,
    pub tasks: JoinSet<()>,
    vnis: BTreeMap<u32, Vni>,
    sub_vni: HashMap<SubId, u32>,
    /// Announced routes with how many times each was announced.
    announced: HashMap<Route, u32>,
    view: Aggregator,
    dirty: bool,
}

impl Actor {
    pub fn new(status: watch::Sender<Status>, peers: Vec<Peer>, tasks: JoinSet<()>) -> Self {
        Self {
            status,
            peers,
            tasks,
            vnis: BTreeMap::new(),
            sub_vni: HashMap::new(),
            announced: HashMap::new(),
            view: Aggregator::new(),
            dirty: false,
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut peer_events: mpsc::Receiver<PeerEvent>,
    ) {
        let done = loop {
            tokio::select! {
                c = commands.recv() => match c {
                    // Every handle and subscription is gone: nobody can use the client.
                    None => break None,
                    Some(Command::Shutdown(tx)) => break Some(tx),
                    Some(c) => self.command(c),
                },
                e = peer_events.recv() => match e {
                    Some(e) => self.peer_event(e),
                    // Peer tasks only end when told to; nothing more will come.
                    None => break None,
                },
            }
            self.publish();
        };
        for p in &self.peers {
            let _ = p.cmds.send(PeerCmd::Stop);
        }
        // Ends every subscription's stream.
        self.vnis.clear();
        // Keep draining reports so that no peer blocks on a full channel while stopping; a peer
        // stuck writing to a server that does not read is cut off.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            tokio::select! {
                t = self.tasks.join_next() => if t.is_none() { break },
                _ = peer_events.recv() => {}
                () = tokio::time::sleep_until(deadline) => self.tasks.abort_all(),
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn publish(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let status = Status {
            servers: self.peers.iter().map(|p| p.status.clone()).collect(),
            subscriptions: self
                .vnis
                .iter()
                .map(|(&vni, v)| SubscriptionStatus {
                    vni,
                    consumers: v.subs.len(),
                    lagged: v.subs.values().filter(|s| s.lagged()).count(),
                    complete: v.complete,
                })
                .collect(),
            announced: self.announced.len(),
            routes: self.view.len(),
        };
        self.status.send_replace(status);
    }

    fn to_peers(&self, mut make: impl FnMut() -> PeerCmd) {
        for p in &self.peers {
            // A peer task that has ended gets nothing; it only ends on shutdown.
            let _ = p.cmds.send(make());
        }
    }

    fn established(&self) -> ServerSet {
        let mut set = ServerSet::new();
        for (i, p) in self.peers.iter().enumerate() {
            if p.status.state == ServerState::Established {
                set.insert(i);
            }
        }
        set
    }

    /// Delivers changes of the merged view to the subscriptions of their VNIs.
    fn deliver(&mut self, events: impl IntoIterator<Item = RouteEvent>) {
        for e in events {
            if let Some(v) = self.vnis.get_mut(&e.route.vni) {
                v.push(&match e.action {
                    Action::Add => VniEvent::Added(e.route),
                    Action::Remove => VniEvent::Removed(e.route),
                });
            }
        }
    }

    fn command(&mut self, c: Command) {
        self.dirty = true;
        match c {
            Command::Subscribe { id, vni, tx } => {
                let mut sub = Subscriber::new(tx);
                if !self.vnis.contains_key(&vni) {
                    self.to_peers(|| PeerCmd::Subscribe(vec![vni]));
                    let waiting = self.established();
                    self.vnis.insert(
                        vni,
                        Vni {
                            waiting,
                            ..Vni::default()
                        },
                    );
                } else if let Some(v) = self.vnis.get(&vni) {
                    // Joining a VNI already received: start from the current set.
                    sub.push(VniEvent::Snapshot {
                        routes: self.view.routes_of(vni),
                        complete: v.complete,
                    });
                }
                let Some(v) = self.vnis.get_mut(&vni) else {
                    return;
                };
                v.subs.insert(id, sub);
                self.sub_vni.insert(id, vni);
            }
            Command::Unsubscribe(id) => {
                let Some(vni) = self.sub_vni.remove(&id) else {
                    return;
                };
                let Some(v) = self.vnis.get_mut(&vni) else {
                    return;
                };
                v.subs.remove(&id);
                if v.subs.is_empty() {
                    self.vnis.remove(&vni);
                    self.to_peers(|| PeerCmd::Unsubscribe(vni));
                    // Nobody is left to tell.
                    self.view.drop_vni(vni);
                }
            }
            Command::Resync(id) => {
                let Some(&vni) = self.sub_vni.get(&id) else {
                    return;
                };
                let routes = self.view.routes_of(vni);
                if let Some(v) = self.vnis.get_mut(&vni)
                    && let Some(s) = v.subs.get_mut(&id)
                {
                    tracing::debug!(
                        vni,
                        routes = routes.len(),
                        "resync of a lagging subscription"
                    );
                    s.resync(routes, v.complete);
                }
            }
            Command::Announce(r) => {
                let n = self.announced.entry(r).or_insert(0);
                *n += 1;
                if *n == 1 {
                    self.to_peers(|| PeerCmd::Routes(Action::Add, vec![r]));
                    let evs = self.view.announce(&r);
                    self.deliver(evs);
                }
            }
            Command::Withdraw(r) => {
                let Some(n) = self.announced.get_mut(&r) else {
                    return;
                };
                *n -= 1;
                if *n == 0 {
                    self.announced.remove(&r);
                    self.to_peers(|| PeerCmd::Routes(Action::Remove, vec![r]));
                    let evs = self.view.withdraw(&r);
                    self.deliver(evs);
                }
            }
            Command::Routes(tx) => {
                let _ = tx.send(self.view.routes().collect());
            }
            Command::Providers(r, tx) => {
                let servers = self.view.providers(&r).map(|s| s.iter().collect());
                let _ = tx.send(servers.unwrap_or_default());
            }
            Command::Shutdown(_) => {}
        }
    }

    /// Server `server` finished (or can no longer finish) the snapshot of the VNIs it owed.
    fn settle(v: &mut Vni) -> bool {
        if !v.complete && v.waiting.is_empty() && v.any_done {
            v.complete = true;
            v.push(&VniEvent::Complete);
            return true;
        }
        false
    }

    fn peer_event(&mut self, e: PeerEvent) {
        self.dirty = true;
        match e {
            PeerEvent::Connecting(id) => {
                if let Some(p) = self.peers.get_mut(id) {
                    p.status.state = ServerState::Connecting;
                }
            }
            PeerEvent::Established(id, extensions) => {
                let Some(p) = self.peers.get_mut(id) else {
                    return;
                };
                p.status.state = ServerState::Established;
                p.status.sessions += 1;
                p.status.extensions = extensions;
                // Every (re)established session gets the whole desired state.
                let vnis: Vec<u32> = self.vnis.keys().copied().collect();
                if !vnis.is_empty() {
                    let _ = p.cmds.send(PeerCmd::Subscribe(vnis));
                }
                if !self.announced.is_empty() {
                    let routes = self.announced.keys().copied().collect();
                    let _ = p.cmds.send(PeerCmd::Routes(Action::Add, routes));
                }
                for v in self.vnis.values_mut().filter(|v| !v.complete) {
                    v.waiting.insert(id);
                }
            }
            PeerEvent::Updates(id, batch) => {
                for (action, r) in batch {
                    // A server may still send a VNI just unsubscribed from; ignore it.
                    if !self.vnis.contains_key(&r.vni) {
                        continue;
                    }
                    let e = self.view.apply(id, action, r);
                    self.deliver(e);
                }
            }
            PeerEvent::SnapshotDone(id, vni) => {
                if let Some(v) = self.vnis.get_mut(&vni)
                    && v.waiting.remove(id)
                {
                    v.any_done = true;
                    if Self::settle(v) {
                        tracing::debug!(vni, server = id, "initial route set complete");
                    }
                }
            }
            PeerEvent::Down {
                server,
                was_established,
                error,
                retry_in,
            } => {
                let Some(p) = self.peers.get_mut(server) else {
                    return;
                };
                p.status.state = ServerState::Backoff;
                tracing::debug!(addr = %p.addr, error = %super::error::chain(&error), ?retry_in, "server down");
                p.status.last_error = Some(Arc::new(error));
                p.status.extensions = Extensions::NONE;
                if was_established {
                    let none_left = self
                        .peers
                        .iter()
                        .all(|p| p.status.state != ServerState::Established);
                    if none_left {
                        // Before the removals, so a consumer knows they are no withdrawals.
                        for v in self.vnis.values_mut() {
                            v.complete = false;
                            v.any_done = false;
                            v.waiting.clear();
                            v.push(&VniEvent::Incomplete);
                        }
                    }
                    let evs = self.view.drop_server(server);
                    self.deliver(evs);
                    for v in self.vnis.values_mut() {
                        if v.waiting.remove(server) {
                            Self::settle(v);
                        }
                    }
                }
            }
        }
    }
}
