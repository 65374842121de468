//! The leader election handle both backends hand out.
//!
//! Every replica campaigns and keeps its [`Campaign`] for as long as it wants to lead. The
//! replica whose candidacy is oldest leads; the others follow and learn the leader's identity
//! (to forward writes to it). Leadership is a state that comes and goes, not a one-off answer:
//! a leader that cannot keep its lease alive steps down (its state says so before its lease can
//! expire on the server, so two replicas never both believe they lead while the clocks agree),
//! and campaigns again when the backend is back.

use tokio::sync::{oneshot, watch};

use super::{Fence, StoreError};

/// What a campaigner knows about its election.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderState {
    /// This campaigner leads: act as the leader until this turns false.
    pub is_leader: bool,
    /// The leader's identity as last observed (this campaigner's own when it leads); `None`
    /// while there is none, or none known.
    pub leader: Option<String>,
    /// While this campaigner leads: what makes its writes conditional on still leading.
    pub fence: Option<Fence>,
}

/// How dropping a campaign withdraws it.
pub(crate) enum Resign {
    /// In-process election: dropping the ticket removes the candidate.
    Local(#[allow(dead_code)] super::embedded::Ticket),
    /// A backend task holds the candidacy: closing (or answering) this channel makes it step
    /// down and give up its lease; the inner sender tells when it did.
    Task(oneshot::Sender<oneshot::Sender<()>>),
}

/// A candidacy in a named election, from [`Store::campaign`](super::Store::campaign). Dropping
/// it resigns (in the background); [`Campaign::resign`] resigns and waits.
pub struct Campaign {
    election: String,
    identity: String,
    state: watch::Receiver<LeaderState>,
    resign: Option<Resign>,
}

impl std::fmt::Debug for Campaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaign")
            .field("election", &self.election)
            .field("identity", &self.identity)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl Campaign {
    pub(crate) fn new(
        election: String,
        identity: String,
        state: watch::Receiver<LeaderState>,
        resign: Resign,
    ) -> Self {
        Self {
            election,
            identity,
            state,
            resign: Some(resign),
        }
    }

    /// The election's name.
    pub fn election(&self) -> &str {
        &self.election
    }

    /// This campaigner's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The current state.
    pub fn state(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// Whether this campaigner leads now.
    pub fn is_leader(&self) -> bool {
        self.state.borrow().is_leader
    }

    /// The leader's identity as last observed.
    pub fn leader(&self) -> Option<String> {
        self.state.borrow().leader.clone()
    }

    /// The fence for writes while this campaigner leads; `None` when it does not.
    pub fn fence(&self) -> Option<Fence> {
        self.state.borrow().fence.clone()
    }

    /// Waits for the next change of the state and returns it; [`StoreError::Closed`] when the
    /// backend's task is gone (the store was closed or the runtime is shutting down).
    pub async fn changed(&mut self) -> Result<LeaderState, StoreError> {
        self.state.changed().await.map_err(|_| StoreError::Closed)?;
        Ok(self.state.borrow_and_update().clone())
    }

    /// Waits until `f` holds for the state (at once if it already does).
    pub async fn wait_for(
        &mut self,
        f: impl FnMut(&LeaderState) -> bool,
    ) -> Result<LeaderState, StoreError> {
        match self.state.wait_for(f).await {
            Ok(s) => Ok(s.clone()),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// A receiver of the state, for a task that only follows it.
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// Steps down and withdraws the candidacy, and waits until the backend has released it, so
    /// that another campaigner can take over at once rather than after the lease TTL.
    pub async fn resign(mut self) {
        match self.resign.take() {
            Some(Resign::Local(ticket)) => drop(ticket),
            Some(Resign::Task(stop)) => {
                let (done_tx, done_rx) = oneshot::channel();
                if stop.send(done_tx).is_ok() {
                    let _ = done_rx.await;
                }
            }
            None => {}
        }
    }
}
