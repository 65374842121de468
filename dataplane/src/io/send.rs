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
//! packet of its flow. The thread ends when the [`UnderlayTx`] is dropped (its channel closes).

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use std::time::Duration;

use super::spin::spin_read;
use super::underlay::{Sender, UnderlayError};

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
    shared: Arc<Shared>,
}

/// What the sender thread and the packet threads both see.
#[derive(Debug, Default)]
struct Shared {
    /// Bursts handed over and not yet sent.
    queued: AtomicUsize,
    /// Packets the sender thread could not send, not yet collected by [`UnderlayTx::take_lost`].
    lost: AtomicU64,
}

impl UnderlayTx {
    /// Opens the raw socket and starts the sender thread, which polls for `spin` before it
    /// sleeps.
    pub fn start(spin: Duration) -> Result<Self, UnderlayError> {
        let sender = Arc::new(Sender::new()?);
        let (queue, bursts) = sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let (s, sh) = (sender.clone(), shared.clone());
        std::thread::Builder::new()
            .name("dp-underlay-tx".into())
            .spawn(move || sender_thread(&s, &sh, &bursts, spin))
            .map_err(|source| UnderlayError::Socket {
                what: "start the sender thread",
                source,
            })?;
        Ok(Self {
            sender,
            queue,
            shared,
        })
    }

    /// Sends `burst` (emptied), inline or through the sender thread; returns how many
    /// packets could not be sent or queued.
    pub fn send(&self, burst: &mut Burst) -> u64 {
        if burst.is_empty() {
            return 0;
        }
        let queued = &self.shared.queued;
        if burst.len() <= INLINE && queued.load(Ordering::Acquire) == 0 {
            return send_all(&self.sender, burst.drain(..));
        }
        let n = burst.len() as u64;
        queued.fetch_add(1, Ordering::AcqRel);
        match self.queue.try_send(std::mem::take(burst)) {
            Ok(()) => 0,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                queued.fetch_sub(1, Ordering::AcqRel);
                n
            }
        }
    }

    /// Packets the sender thread failed to send since the last call.
    pub fn take_lost(&self) -> u64 {
        self.shared.lost.swap(0, Ordering::Relaxed)
    }
}

fn send_all(sender: &Sender, burst: impl Iterator<Item = (Ipv6Addr, Vec<u8>)>) -> u64 {
    burst
        .filter(|(dst, packet)| sender.send(*dst, packet).is_err())
        .count() as u64
}

fn sender_thread(sender: &Sender, shared: &Shared, bursts: &Receiver<Burst>, spin: Duration) {
    // A closed channel (the packet path was dropped) is `None` either way.
    while let Ok(Some(burst)) = spin_read(spin, |wait| {
        Ok(if wait {
            bursts.recv().ok()
        } else {
            bursts.try_recv().ok()
        })
    }) {
        let lost = send_all(sender, burst.into_iter());
        shared.queued.fetch_sub(1, Ordering::AcqRel);
        if lost > 0 {
            shared.lost.fetch_add(lost, Ordering::Relaxed);
        }
    }
}
