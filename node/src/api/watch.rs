//! The change log behind `Watch`: the latest event of each object, and the watchers.
//!
//! A watch registers and gets its snapshot (or the logged events after its revision) in one
//! step inside the ApiActor, so nothing is lost or sent twice. Each watcher has a bounded
//! channel; one that falls [`WATCH_BUFFER`] events behind is cut off (its stream ends) rather
//! than slowing the node, and resumes with `from_revision` = the last revision it saw.
//!
//! The log is compacted: it keeps only the latest event of each object (a deletion as the
//! object's last state), in revision order. A resumed watch therefore gets every object that
//! changed after its revision, in its current state, rather than each intermediate state, which
//! is what a level-triggered client needs, at one object copy per object instead of one per
//! change.

use std::collections::{BTreeMap, HashMap};

use ferrinet_proto::node::v1 as pb;
use tokio::sync::mpsc;

use super::error::ApiError;

/// Events a watcher may fall behind before it is cut off.
pub const WATCH_BUFFER: usize = 8192;
/// Most events remembered for resuming watches (one per object, deletions included).
const LOG_LEN: usize = 65_536;

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

fn key_of(ev: &pb::WatchEvent) -> Option<(i32, String)> {
    let o = ev.object.as_ref()?;
    let name = super::objects::metadata(o)?.name.clone();
    Some((kind_of(o) as i32, name))
}

/// The log and the watchers.
#[derive(Default)]
pub struct WatchLog {
    /// Revision -> the latest event of one object.
    log: BTreeMap<u64, pb::WatchEvent>,
    /// Object -> the revision of its event in `log`.
    latest: HashMap<(i32, String), u64>,
    /// Events at or below this revision were dropped to bound the log.
    dropped_through: u64,
    watchers: Vec<Watcher>,
}

impl WatchLog {
    /// An empty log at `revision`: what happened before it (e.g. before a restart) cannot be
    /// resumed from.
    pub fn starting_at(revision: u64) -> Self {
        Self {
            dropped_through: revision,
            ..Self::default()
        }
    }

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
        if let Some(key) = key_of(&ev)
            && let Some(old) = self.latest.insert(key, ev.revision)
        {
            self.log.remove(&old);
        }
        self.log.insert(ev.revision, ev);
        if self.log.len() > LOG_LEN
            && let Some((rev, old)) = self.log.pop_first()
        {
            self.dropped_through = rev;
            if let Some(key) = key_of(&old) {
                self.latest.remove(&key);
            }
        }
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
            let oldest = self.dropped_through;
            if from < oldest || from > revision {
                return Err(ApiError::TooOld {
                    asked: from,
                    oldest,
                    current: revision,
                });
            }
            self.log
                .range(from + 1..)
                .map(|(_, e)| e)
                .filter(|e| e.object.as_ref().is_some_and(|o| matches(kind, o)))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn net(name: &str, vni: u32) -> pb::Object {
        pb::Object {
            object: Some(pb::object::Object::Network(pb::Network {
                metadata: Some(pb::Metadata {
                    name: name.into(),
                    ..Default::default()
                }),
                spec: Some(pb::NetworkSpec {
                    id: vni,
                    ..Default::default()
                }),
                status: None,
            })),
        }
    }

    fn ev(ty: pb::EventType, o: pb::Object, revision: u64) -> pb::WatchEvent {
        pb::WatchEvent {
            r#type: ty.into(),
            object: Some(o),
            revision,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<pb::WatchEvent>) -> Vec<u64> {
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            v.push(e.revision);
        }
        v
    }

    #[test]
    fn resumes_with_the_latest_state_of_each_changed_object() {
        let mut log = WatchLog::starting_at(10);
        let mut live = log
            .watch(pb::Kind::Unspecified, 10, 10, std::iter::empty())
            .unwrap();
        log.publish(ev(pb::EventType::Added, net("a", 1), 11));
        log.publish(ev(pb::EventType::Added, net("b", 2), 12));
        log.publish(ev(pb::EventType::Modified, net("a", 3), 13));
        log.publish(ev(pb::EventType::Deleted, net("b", 2), 14));
        // A live watcher sees every event.
        assert_eq!(drain(&mut live), vec![11, 12, 13, 14]);
        // A resumed one sees each object's latest event after its revision.
        let mut from_11 = log
            .watch(pb::Kind::Unspecified, 11, 14, std::iter::empty())
            .unwrap();
        assert_eq!(drain(&mut from_11), vec![13, 14]);
        let mut from_13 = log
            .watch(pb::Kind::Network, 13, 14, std::iter::empty())
            .unwrap();
        assert_eq!(drain(&mut from_13), vec![14]);
        let mut other_kind = log
            .watch(pb::Kind::LoadBalancer, 10, 14, std::iter::empty())
            .unwrap();
        assert!(drain(&mut other_kind).is_empty());
        // Before the log's start (a restart) or beyond the current revision: list again.
        assert!(matches!(
            log.watch(pb::Kind::Unspecified, 9, 14, std::iter::empty()),
            Err(ApiError::TooOld { .. })
        ));
        assert!(matches!(
            log.watch(pb::Kind::Unspecified, 15, 14, std::iter::empty()),
            Err(ApiError::TooOld { .. })
        ));
    }

    #[test]
    fn snapshot_first_then_changes() {
        let mut log = WatchLog::starting_at(0);
        let mut w = log
            .watch(
                pb::Kind::Network,
                0,
                5,
                [net("a", 1), net("b", 2)].into_iter(),
            )
            .unwrap();
        log.publish(ev(pb::EventType::Modified, net("a", 9), 6));
        let got: Vec<(i32, u64)> = std::iter::from_fn(|| w.try_recv().ok())
            .map(|e| (e.r#type, e.revision))
            .collect();
        assert_eq!(
            got,
            vec![
                (pb::EventType::Added as i32, 5),
                (pb::EventType::Added as i32, 5),
                (pb::EventType::Modified as i32, 6)
            ]
        );
    }
}
