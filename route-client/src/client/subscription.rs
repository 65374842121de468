//! Per-VNI subscriptions: the owned [`Subscription`] a consumer reads, and the actor's side of
//! it ([`Subscriber`]).
//!
//! Back-pressure is decided here, not left to chance: each subscription has its own bounded
//! buffer and the client actor never waits on it. When a consumer falls behind so far that its
//! buffer is full, the actor stops queueing changes for it and puts a lag marker in the last
//! free slot (the slot is kept for it, so the marker always fits). When the consumer reaches the
//! marker, its subscription asks the actor for a resync and receives the whole current set of
//! the VNI as one [`VniEvent::Snapshot`], then changes again. A slow consumer thus costs one
//! snapshot, never a stall of the other subscriptions, the servers' sessions or memory.

use tokio::sync::mpsc;

use super::actor::Command;
use crate::route::Route;

/// Identity of one subscription inside a client.
pub(super) type SubId = u64;

/// What a subscription yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VniEvent {
    /// A route appeared in the merged view of the servers.
    Added(Route),
    /// A route disappeared from it (no server provides it any more, or this client now
    /// announces its prefix itself).
    Removed(Route),
    /// Every server that was connected has sent the routes it held when the subscription
    /// started: what the consumer holds now is the complete set (changes keep coming).
    /// Comes once per subscription, unless a [`VniEvent::Snapshot`] said `complete` first, and
    /// again after an [`VniEvent::Incomplete`].
    Complete,
    /// The last connected server went away: the removals that follow are of routes no server
    /// can vouch for any more, not withdrawals. A consumer that installs routes should keep
    /// them until the next [`VniEvent::Complete`] (a server is back and sent its set), and only
    /// then drop what is still missing.
    Incomplete,
    /// Replace everything held for this VNI with `routes`; changes follow. Sent first to a
    /// subscription that joins a VNI this client already receives, and after a consumer fell
    /// behind (see the module doc).
    Snapshot {
        /// The whole current set.
        routes: Vec<Route>,
        /// Whether the set is complete already (no [`VniEvent::Complete`] will follow).
        complete: bool,
    },
}

/// An item of a subscription's buffer.
#[derive(Debug)]
pub(crate) enum SubItem {
    Event(VniEvent),
    /// The consumer fell behind; changes were dropped from here on until it asks for a resync.
    Lagged,
}

/// The routes of one VNI, as an owned stream. Dropping it ends the subscription; the wire
/// UNSUBSCRIBE goes out when the last subscription of the VNI in this client ends.
#[derive(Debug)]
pub struct Subscription {
    pub(super) vni: u32,
    pub(super) id: SubId,
    pub(super) rx: mpsc::Receiver<SubItem>,
    pub(super) cmds: mpsc::UnboundedSender<Command>,
}

impl Subscription {
    /// The VNI.
    pub fn vni(&self) -> u32 {
        self.vni
    }

    /// The next event; `None` once the client has shut down. Cancel-safe.
    pub async fn next(&mut self) -> Option<VniEvent> {
        loop {
            match self.rx.recv().await? {
                SubItem::Event(e) => return Some(e),
                SubItem::Lagged => {
                    // The actor answers with a Snapshot in the now empty buffer.
                    self.cmds.send(Command::Resync(self.id)).ok()?;
                }
            }
        }
    }

    /// Ends the subscription (the same as dropping it).
    pub fn unsubscribe(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // A client that has shut down has nothing left to unsubscribe.
        let _ = self.cmds.send(Command::Unsubscribe(self.id));
    }
}

/// The actor's end of one subscription.
#[derive(Debug)]
pub(super) struct Subscriber {
    tx: mpsc::Sender<SubItem>,
    lagged: bool,
}

impl Subscriber {
    pub(super) fn new(tx: mpsc::Sender<SubItem>) -> Self {
        Self { tx, lagged: false }
    }

    /// Queues `e` without waiting; a full buffer turns into the lag marker (see the module doc).
    /// A consumer that has gone away is ignored: its Unsubscribe is on the way.
    pub(super) fn push(&mut self, e: VniEvent) {
        if self.lagged {
            return;
        }
        // Only the actor sends, so the capacity read here is what `try_send` finds.
        if self.tx.capacity() > 1 {
            let _ = self.tx.try_send(SubItem::Event(e));
        } else {
            self.lagged = true;
            let _ = self.tx.try_send(SubItem::Lagged);
        }
    }

    /// Whether changes are being dropped until the consumer asks for a resync.
    pub(super) fn lagged(&self) -> bool {
        self.lagged
    }

    /// The consumer asked for a resync: it has read the marker, so its buffer is empty.
    pub(super) fn resync(&mut self, routes: Vec<Route>, complete: bool) {
        self.lagged = false;
        self.push(VniEvent::Snapshot { routes, complete });
    }
}
