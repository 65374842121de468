//! Group commit in the region actor: answers wait for a Flush, which writes what every message
//! before it changed in one go (one realization per affected network, shared commits), waits for
//! the allocator's writes, and only then answers. A failed commit fails every waiting answer and
//! makes the actor (and the allocator) read their state again from the store.

use std::sync::Arc;

use ractor::ActorRef;

use crate::allocator::AllocatorMsg;

use super::actor::RegionState;
use super::{ApiError, RegionMsg};

/// An answer waiting for the flush: called with the state after it and the commit's failure.
pub(crate) type Deferred = Box<dyn FnOnce(&RegionState, Option<&Arc<ApiError>>) + Send + Sync>;

impl RegionState {
    /// Answers `r` now when it failed (nothing of it is to be written), else after the next
    /// flush, with `send` called on the state then.
    pub(super) fn defer<T: Send + Sync + 'static>(
        &mut self,
        r: Result<T, ApiError>,
        send: impl FnOnce(&RegionState, Result<T, ApiError>) + Send + Sync + 'static,
    ) {
        match r {
            Err(e) => send(self, Err(e)),
            Ok(v) => self.deferred.push(Box::new(move |st, failed| {
                let r = match failed {
                    None => Ok(v),
                    Some(e) => Err(ApiError::NotCommitted(e.clone())),
                };
                send(st, r);
            })),
        }
    }

    /// Queues a Flush behind the messages already waiting, unless one is queued.
    pub(super) fn queue_flush(&mut self, myself: &ActorRef<RegionMsg>) {
        if !self.flush_queued && myself.send_message(RegionMsg::Flush).is_ok() {
            self.flush_queued = true;
        }
    }

    /// Writes, waits for the allocator, answers.
    pub(super) async fn flush(&mut self) {
        let r = match self.write().await {
            Ok(()) => self.sync_allocator().await,
            Err(e) => Err(e),
        };
        let failed = r.err().map(Arc::new);
        if let Some(e) = &failed {
            tracing::warn!(error = %super::error::error_chain(e.as_ref()), waiting = self.deferred.len(), "region write failed: reloading the state from the store");
            self.reload().await;
        }
        for d in std::mem::take(&mut self.deferred) {
            d(self, failed.as_ref());
        }
    }

    /// Waits until the allocator's queued writes are committed.
    pub(super) async fn sync_allocator(&self) -> Result<(), ApiError> {
        match self.allocator.call(AllocatorMsg::Sync, None).await {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => Ok(()),
            Ok(ractor::rpc::CallResult::Success(Err(source))) => Err(ApiError::Allocation {
                what: "allocations not committed".into(),
                source,
            }),
            _ => Err(ApiError::Unavailable { leader: None }),
        }
    }

    /// Makes the allocator read its state again, and tells it the networks' subnets and the
    /// gateways' slice sizes again.
    pub(super) async fn reload_allocator(&mut self) {
        match self.allocator.call(AllocatorMsg::Reload, None).await {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => self.define_allocator_state().await,
            _ => tracing::error!("the allocator cannot reload its state"),
        }
    }
}
