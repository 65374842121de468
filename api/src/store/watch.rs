//! The watch handle both backends hand out: a task of the backend feeds a bounded channel, so a
//! slow consumer slows its own watch (and, on the embedded store, reads further behind in the
//! log) instead of buffering without limit.

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{StoreError, WatchEvent};

/// Events buffered between the backend's watch task and the consumer.
pub(crate) const WATCH_BUFFER: usize = 256;

/// The changes under a prefix from a revision on, in revision order, from
/// [`Store::watch`](super::Store::watch). Dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::Receiver<Result<WatchEvent, StoreError>>,
    task: AbortHandle,
    ended: bool,
}

impl Watch {
    pub(crate) fn new(
        rx: mpsc::Receiver<Result<WatchEvent, StoreError>>,
        task: AbortHandle,
    ) -> Self {
        Self {
            rx,
            task,
            ended: false,
        }
    }

    /// The next change. A watch does not end by itself: it resumes across lost connections
    /// where the backend can. An error ends it:
    /// [`StoreError::Compacted`] when the revision asked for (or reached by a slow consumer)
    /// is no longer kept, then [`StoreError::Closed`] for every later call.
    pub async fn next(&mut self) -> Result<WatchEvent, StoreError> {
        if self.ended {
            return Err(StoreError::Closed);
        }
        match self.rx.recv().await {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => {
                self.ended = true;
                Err(e)
            }
            None => {
                self.ended = true;
                Err(StoreError::Closed)
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
