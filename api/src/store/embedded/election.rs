//! In-process elections of the embedded store. The process is the only replica, so there is no
//! lease to lose: the oldest campaign of an election leads until it is dropped, then the next
//! oldest does. This keeps the embedded store a drop-in for etcd in code that campaigns (and
//! lets the conformance tests run the same election tests on both).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::store::campaign::Resign;
use crate::store::types::FenceKind;
use crate::store::{Campaign, Fence, LeaderState};

struct Candidate {
    id: u64,
    identity: String,
    state: watch::Sender<LeaderState>,
}

type Elections = HashMap<String, Vec<Candidate>>;

/// Shared with the writer thread, which checks fences against it.
#[derive(Default, Clone)]
pub(super) struct Registry {
    elections: Arc<Mutex<Elections>>,
    next_id: Arc<AtomicU64>,
}

/// A candidate's place in its election: dropping it withdraws the candidate.
pub(crate) struct Ticket {
    elections: Arc<Mutex<Elections>>,
    election: String,
    id: u64,
}

impl Registry {
    pub(super) fn campaign(&self, election: &str, identity: &str) -> Campaign {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (state, rx) = watch::channel(LeaderState::default());
        {
            let mut all = self
                .elections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let candidates = all.entry(election.to_owned()).or_default();
            candidates.push(Candidate {
                id,
                identity: identity.to_owned(),
                state,
            });
            publish(election, candidates);
        }
        let ticket = Ticket {
            elections: self.elections.clone(),
            election: election.to_owned(),
            id,
        };
        Campaign::new(
            election.to_owned(),
            identity.to_owned(),
            rx,
            Resign::Local(ticket),
        )
    }

    /// Whether `fence` is of the candidate that leads its election now.
    pub(super) fn holds(&self, fence: &Fence) -> bool {
        let FenceKind::Local { id } = fence.kind else {
            return false;
        };
        let all = self
            .elections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.get(&fence.election)
            .and_then(|c| c.first())
            .is_some_and(|c| c.id == id)
    }

    pub(super) fn leader(&self, election: &str) -> Option<String> {
        let all = self
            .elections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.get(election)
            .and_then(|c| c.first())
            .map(|c| c.identity.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut all = self
            .elections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(candidates) = all.get_mut(&self.election) {
            candidates.retain(|c| c.id != self.id);
            if candidates.is_empty() {
                all.remove(&self.election);
            } else {
                publish(&self.election, candidates);
            }
        }
    }
}

/// Tells every candidate who leads: the first (oldest) one.
fn publish(election: &str, candidates: &[Candidate]) {
    let leader = candidates.first().map(|c| (c.id, c.identity.clone()));
    for c in candidates {
        let is_leader = leader.as_ref().is_some_and(|(id, _)| *id == c.id);
        let next = LeaderState {
            is_leader,
            leader: leader.as_ref().map(|(_, identity)| identity.clone()),
            fence: is_leader.then(|| Fence {
                election: election.to_owned(),
                kind: FenceKind::Local { id: c.id },
            }),
        };
        c.state.send_if_modified(|s| {
            let changed = *s != next;
            *s = next;
            changed
        });
    }
}
