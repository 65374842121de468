//! The send paths: a thread each for the underlay and for the TAPs, so that the packet loop
//! hands over its bursts instead of carrying each packet through the kernel itself.
//!
//! ```text
//!  packet loop ──Burst<T> (bounded channel)──► sender thread ──► send(T): raw IPv6 / TAP write
//!      └── a small burst with nothing queued ─────────────────► send(T), inline
//! ```
//!
//! On a veth fabric a raw send runs the whole way into the receiving node's socket queue in
//! the sending thread, and a TAP write runs the VM's stack; a loop doing that itself is busy
//! with the kernel's work, not with reading. A small burst (a ping, an ACK) is sent inline
//! when nothing is queued, which keeps its latency (a VM's reply is then queued on its TAP
//! when the write returns, for the loop's next poll) and cannot overtake a queued packet of
//! its flow. A thread ends when its [`Handoff`] is dropped (its channel closes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use super::spin::spin_read;

/// Bursts that may wait for a sender thread; beyond that, sends fail and are counted.
const QUEUE: usize = 256;

/// Sends one item; how many packets were lost doing so (0 when sent).
pub type SendFn<T> = dyn Fn(T) -> u64 + Send + Sync;

/// A send path: its thread, and inline sends for small bursts.
pub struct Handoff<T> {
    send: Arc<SendFn<T>>,
    /// Whether a burst is small enough to go inline.
    small: fn(&[T]) -> bool,
    queue: SyncSender<Vec<T>>,
    shared: Arc<Shared>,
}

impl<T> std::fmt::Debug for Handoff<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("queued", &self.shared.queued)
            .field("lost", &self.shared.lost)
            .finish_non_exhaustive()
    }
}

/// What the sender thread and the packet loop both see.
#[derive(Debug, Default)]
struct Shared {
    /// Bursts handed over and not yet sent.
    queued: AtomicUsize,
    /// Packets the sender thread lost, not yet collected by [`Handoff::take_lost`].
    lost: AtomicU64,
}

impl<T: Send + 'static> Handoff<T> {
    /// Starts thread `name`, which sends with `send` and polls for `spin` before it sleeps.
    /// Bursts for which `small` holds go inline when nothing is queued.
    pub fn start(
        name: &str,
        send: Arc<SendFn<T>>,
        small: fn(&[T]) -> bool,
        spin: Duration,
    ) -> std::io::Result<Self> {
        let (queue, bursts) = sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let (s, sh) = (send.clone(), shared.clone());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || sender_thread(&*s, &sh, &bursts, spin))?;
        Ok(Self {
            send,
            small,
            queue,
            shared,
        })
    }

    /// Sends `burst` (emptied), inline or through the sender thread; returns how many
    /// packets were lost inline. A full queue sends inline too: the loop then slows down to
    /// what the kernel takes, and what it cannot read is dropped (and counted) by the kernel
    /// before any work went into it.
    pub fn send(&self, burst: &mut Vec<T>) -> u64 {
        if burst.is_empty() {
            return 0;
        }
        let queued = &self.shared.queued;
        if (self.small)(burst) && queued.load(Ordering::Acquire) == 0 {
            return self.send_inline(burst.drain(..));
        }
        queued.fetch_add(1, Ordering::AcqRel);
        match self.queue.try_send(std::mem::take(burst)) {
            Ok(()) => 0,
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                queued.fetch_sub(1, Ordering::AcqRel);
                self.send_inline(b.into_iter())
            }
        }
    }

    fn send_inline(&self, items: impl Iterator<Item = T>) -> u64 {
        items.map(|item| (self.send)(item)).sum()
    }

    /// Packets the sender thread lost since the last call.
    pub fn take_lost(&self) -> u64 {
        self.shared.lost.swap(0, Ordering::Relaxed)
    }
}

fn sender_thread<T>(send: &SendFn<T>, shared: &Shared, bursts: &Receiver<Vec<T>>, spin: Duration) {
    // A closed channel (the packet path was dropped) is `None` either way.
    while let Ok(Some(burst)) = spin_read(spin, |wait| {
        Ok(if wait {
            bursts.recv().ok()
        } else {
            bursts.try_recv().ok()
        })
    }) {
        let lost: u64 = burst.into_iter().map(send).sum();
        shared.queued.fetch_sub(1, Ordering::AcqRel);
        if lost > 0 {
            shared.lost.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;

    fn recorder() -> (Arc<Mutex<Vec<u32>>>, Arc<SendFn<u32>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let send: Arc<SendFn<u32>> = Arc::new(move |x: u32| {
            s.lock().unwrap().push(x);
            u64::from(x % 2 == 1)
        });
        (seen, send)
    }

    #[test]
    fn small_bursts_go_inline_and_count_their_losses() {
        let (seen, send) = recorder();
        let h = Handoff::start("t-inline", send, |b| b.len() <= 2, Duration::ZERO).unwrap();
        let mut burst = vec![2, 3];
        assert_eq!(h.send(&mut burst), 1);
        assert!(burst.is_empty());
        assert_eq!(*seen.lock().unwrap(), [2, 3]);
    }

    #[test]
    fn big_bursts_go_through_the_thread_in_order() {
        let (seen, send) = recorder();
        let h = Handoff::start("t-thread", send, |_| false, Duration::ZERO).unwrap();
        for chunk in [[1, 2, 4], [6, 8, 9]] {
            assert_eq!(h.send(&mut chunk.to_vec()), 0);
        }
        let mut lost = 0;
        for _ in 0..1000 {
            lost += h.take_lost();
            if seen.lock().unwrap().len() == 6 && lost == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*seen.lock().unwrap(), [1, 2, 4, 6, 8, 9]);
        assert_eq!(lost, 2);
    }
}
