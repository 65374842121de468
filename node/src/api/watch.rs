//! The change log behind `Watch`: the last events in memory, and the watchers.
//!
//! A watch registers and gets its snapshot (or the logged events after its revision) in one
//! step inside the ApiActor, so nothing is lost or sent twice. Each watcher has a bounded
//! channel; one that falls [`WATCH_BUFFER`] events behind is cut off (its stream ends) rather
//! than slowing the node, and resumes with `from_revision` = the last revision it saw.

use std::collections::VecDeque;

use ferrinet_proto::node::v1 as pb;
use tokio::sync::mpsc;

use super::error::ApiError;

/// Events a watcher may fall behind before it is cut off.
pub const WATCH_BUFFER: usize = 8192;
/// Events remembered for resuming watches.
const LOG_LEN: usize = 16_384;

/// The kind of an object.
pub fn kind_of(o: &pb::Object) -> pb::Kind {
    match &o.object {
        Some(pb::object::Object::Network(_)) => pb::Kind::Network,
        Some(pb::object::Object::NetworkInterface(_)) => pb::Kind::NetworkInterface,
        Some(pb::object::Object::LoadBalancer(_)) => pb::Kind::LoadBalancer,
        None => pb::Kind::Unspecified,
    }
}

fn matches(filter: pb::Kind, o: &pb::Object) -> bool {
    filter == pb::Kind::Unspecified || kind_of(o) == filter
}

struct Watcher {
    kind: pb::Kind,
    tx: mpsc::Sender<pb::WatchEvent>,
}

/// The log and the watchers.
#[derive(Default)]
pub struct WatchLog {
    log: VecDeque<pb::WatchEvent>,
    watchers: Vec<Watcher>,
}

impl WatchLog {
    /// Records an event and sends it to every interested watcher; cuts off the ones that lag.
    pub fn publish(&mut self, ev: pb::WatchEvent) {
        self.watchers.retain(|w| {
            let Some(o) = &ev.object else { return true };
            if !matches(w.kind, o) {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(ev.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!("watcher fell {WATCH_BUFFER} events behind: cut off");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if self.log.len() == LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back(ev);
    }

    /// A new watcher of `kind`: from the snapshot `current` (all objects, at `revision`) when
    /// `from` is 0, else from the logged events after `from`.
    pub fn watch(
        &mut self,
        kind: pb::Kind,
        from: u64,
        revision: u64,
        current: impl Iterator<Item = pb::Object>,
    ) -> Result<mpsc::Receiver<pb::WatchEvent>, ApiError> {
        let backlog: Vec<pb::WatchEvent> = if from == 0 {
            current
                .filter(|o| matches(kind, o))
                .map(|o| pb::WatchEvent {
                    r#type: pb::EventType::Added.into(),
                    object: Some(o),
                    revision,
                })
                .collect()
        } else {
            let oldest = self.log.front().map_or(revision, |e| e.revision - 1);
            if from < oldest || from > revision {
                return Err(ApiError::TooOld {
                    asked: from,
                    oldest,
                    current: revision,
                });
            }
            self.log
                .iter()
                .filter(|e| {
                    e.revision > from && e.object.as_ref().is_some_and(|o| matches(kind, o))
                })
                .cloned()
                .collect()
        };
        let (tx, rx) = mpsc::channel(backlog.len() + WATCH_BUFFER);
        for e in backlog {
            // Room was made for the whole backlog.
            let _ = tx.try_send(e);
        }
        self.watchers.push(Watcher { kind, tx });
        Ok(rx)
    }
}
