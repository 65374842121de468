//! The underlay send path: a thread of its own, so that the packet loops hand over their
//! bursts instead of carrying each packet through the kernel themselves.
//!
//! ```text
//!  TAP / underlay threads ──Burst (bounded channel)──► sender thread ──► Sender (IPPROTO_RAW)
//!      └── a small burst with nothing queued ──────────────────────────► Sender, inline
//! ```
//!
//! On a veth fabric a raw send runs the whole way into the receiving node's socket queue in
//! the sending thread; a TAP thread that sends the segments of a TCP super-segment itself is
//! busy with the kernel's work, not with reading its VM. A lone packet (a ping, an ACK) is
//! sent inline when no burst is queued, which keeps its latency and cannot overtake a queued
//! packet of its flow.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Weak};

use super::underlay::{RECV_WAKEUP, Sender, UnderlayError};

/// Encapsulated packets and their outer destinations.
pub type Burst = Vec<(Ipv6Addr, Vec<u8>)>;

/// Bursts that may wait for the sender thread; beyond that, sends fail and are counted.
const QUEUE: usize = 256;
/// Bursts this small go inline when nothing is queued.
const INLINE: usize = 2;

/// The send side of the underlay; shared by the packet threads.
#[derive(Debug)]
pub struct UnderlayTx {
    sender: Arc<Sender>,
    queue: SyncSender<Burst>,
    /// Bursts handed over and not yet sent.
    queued: Arc<AtomicUsize>,
}

impl UnderlayTx {
    /// Opens the raw socket and starts the sender thread, which counts a failed send by
    /// calling `failed` with the number of packets and ends when `alive` can no longer be
    /// upgraded.
    pub fn start<T: Send + Sync + 'static>(
        alive: Weak<T>,
        failed: fn(&T, u64),
    ) -> Result<Self, UnderlayError> {
        let sender = Arc::new(Sender::new()?);
        let (queue, bursts) = sync_channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let (s, q) = (sender.clone(), queued.clone());
        std::thread::Builder::new()
            .name("dp-underlay-tx".into())
            .spawn(move || sender_thread(alive, failed, &s, &q, &bursts))
            .map_err(|source| UnderlayError::Socket {
                what: "start the sender thread",
                source,
            })?;
        Ok(Self {
            sender,
            queue,
            queued,
        })
    }

    /// Sends `burst` (emptied), inline or through the sender thread; returns how many
    /// packets could not be sent or queued.
    pub fn send(&self, burst: &mut Burst) -> u64 {
        if burst.is_empty() {
            return 0;
        }
        if burst.len() <= INLINE && self.queued.load(Ordering::Acquire) == 0 {
            return send_all(&self.sender, burst.drain(..));
        }
        let n = burst.len() as u64;
        self.queued.fetch_add(1, Ordering::AcqRel);
        match self.queue.try_send(std::mem::take(burst)) {
            Ok(()) => 0,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                n
            }
        }
    }
}

fn send_all(sender: &Sender, burst: impl Iterator<Item = (Ipv6Addr, Vec<u8>)>) -> u64 {
    burst
        .filter(|(dst, packet)| sender.send(*dst, packet).is_err())
        .count() as u64
}

fn sender_thread<T>(
    alive: Weak<T>,
    failed: fn(&T, u64),
    sender: &Sender,
    queued: &AtomicUsize,
    bursts: &Receiver<Burst>,
) {
    loop {
        let burst = match bursts.recv_timeout(RECV_WAKEUP) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => {
                if alive.strong_count() == 0 {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let lost = send_all(sender, burst.into_iter());
        queued.fetch_sub(1, Ordering::AcqRel);
        if lost > 0 {
            match alive.upgrade() {
                Some(a) => failed(&a, lost),
                None => return,
            }
        }
    }
}
