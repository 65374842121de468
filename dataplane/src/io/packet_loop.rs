//! The packet loop: one thread that polls every open TAP and both underlay sockets, moves
//! what they hold through the forwarder, and writes the results (dpservice, too, forwards on
//! one worker core).
//!
//! ```text
//!  poll(TAPs, underlay 4, underlay 41): without waiting while a growing TCP merge may wait
//!     │ (MERGE_HOLD), then merges out, then without waiting for `poll_spin`, then up to WAKEUP
//!     │ for each ready source: up to BATCH frames / packets
//!     ▼
//!  lock State, lock Forwarder ─► Actions ─► dispatch: frames to TAPs (merged per TAP),
//!                                           a burst to UnderlayTx (inline or sender thread)
//! ```
//!
//! One loop for all sources is what keeps a round trip short: writing a frame into a TAP runs
//! the VM's stack in the write, so a reply (an echo reply, an ACK) is already queued on the
//! TAP when the write returns, and the next poll takes it without any thread being woken. With
//! a thread per source, each hop of a round trip was a wakeup, often of a halted CPU.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::spin::{Wait, spin_read, wait_read};
use super::tap::Tap;
use super::underlay::Receiver;
use super::{BATCH, BUFFER, Inner, Outbox, lock};
use crate::forward::{DropReason, Forwarder};
use crate::packet::offload::{self, Segments};

/// How long one poll may sleep: how soon the loop notices that the packet path was dropped
/// or that a TAP was opened.
pub const WAKEUP: Duration = Duration::from_millis(100);

/// The loop's own view of the sources, refreshed when the set of TAPs changes.
struct Sources {
    receivers: Vec<Receiver>,
    taps: Vec<(String, Arc<Tap>)>,
    /// The [`Inner::tap_generation`] `taps` was taken at.
    generation: u64,
}

/// Runs the loop until the packet path is dropped.
pub fn run(inner: Weak<Inner>, receivers: Vec<Receiver>, spin: Wait) {
    let mut sources = Sources {
        receivers,
        taps: Vec::new(),
        generation: u64::MAX,
    };
    let mut buf = vec![0u8; BUFFER];
    let mut segments = Segments::new();
    let mut out = Outbox::default();
    let mut ready = Vec::new();
    loop {
        {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            sources.refresh(&inner);
        }
        let fds = sources.fds();
        if let Err(e) = next_round(&inner, &fds, spin, &mut out, &mut ready) {
            tracing::error!(error = %e, "packet loop: poll failed");
            std::thread::sleep(WAKEUP);
            continue;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let (mut taken, mut closed) = (0, false);
        let nrecv = sources.receivers.len();
        for (i, flags) in ready.iter().enumerate() {
            if flags.is_empty() {
                continue;
            }
            if let Some(r) = sources.receivers.get(i) {
                taken += drain_underlay(&inner, r, &mut buf, &mut out);
            } else if let Some((device, tap)) = sources.taps.get(i - nrecv) {
                let gone = flags.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL)
                    && !flags.contains(PollFlags::POLLIN);
                let n = if gone {
                    Err(io::Error::other(format!("poll reported {flags:?}")))
                } else {
                    drain_tap(&inner, device, tap, &mut buf, &mut segments, &mut out)
                };
                match n {
                    Ok(n) => taken += n,
                    Err(e) => closed |= inner.close_tap(device, tap, &e),
                }
            }
        }
        if taken > 0 {
            inner.dispatch(&mut out, Some(Instant::now()));
        } else if out.holding() {
            inner.dispatch(&mut out, None);
        }
        if closed {
            // A fresh TAP for the port, waiting for its VM as after CreateInterface.
            inner.reconcile();
        }
    }
}

impl Sources {
    fn refresh(&mut self, inner: &Inner) {
        let generation = inner.tap_generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let mut taps: Vec<(String, Arc<Tap>)> = inner
            .taps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(d, t)| (d.clone(), t.clone()))
            .collect();
        taps.sort_by(|a, b| a.0.cmp(&b.0));
        self.taps = taps;
    }

    /// Receivers first, then TAPs: the order of `ready`.
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.receivers
            .iter()
            .map(Receiver::fd)
            .chain(self.taps.iter().map(|(_, t)| t.fd()))
            .collect()
    }
}

/// Waits for the next round's sources in `ready`. A merge whose flow is still growing waits
/// (spinning, up to its hold) for the next segment; the merges go out before the loop sleeps.
fn next_round(
    inner: &Weak<Inner>,
    fds: &[BorrowedFd<'_>],
    spin: Wait,
    out: &mut Outbox,
    ready: &mut Vec<PollFlags>,
) -> io::Result<()> {
    let mut polls = poll_fds(fds);
    if ready_now(&mut polls, ready)? {
        return Ok(());
    }
    if let Some(left) = out.hold_left(Instant::now()) {
        let got = spin_read(left, |_| {
            ready_now(&mut polls, ready).map(|r| r.then_some(()))
        })?;
        if got.is_some() {
            return Ok(());
        }
    }
    if out.holding()
        && let Some(inner) = inner.upgrade()
    {
        inner.dispatch(out, None);
    }
    wait(&mut polls, spin, ready)
}

/// Polls `fds` once without waiting; whether any is ready, and in `ready` what each one
/// reported.
fn ready_now(polls: &mut [PollFd<'_>], ready: &mut Vec<PollFlags>) -> io::Result<bool> {
    let got = match poll(polls, PollTimeout::ZERO) {
        Ok(n) => n > 0,
        Err(Errno::EINTR) => false,
        Err(e) => return Err(io::Error::from(e)),
    };
    take_revents(polls, ready);
    Ok(got)
}

fn poll_fds<'a>(fds: &[BorrowedFd<'a>]) -> Vec<PollFd<'a>> {
    fds.iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect()
}

fn take_revents(polls: &[PollFd<'_>], ready: &mut Vec<PollFlags>) {
    ready.clear();
    ready.extend(
        polls
            .iter()
            .map(|p| p.revents().unwrap_or(PollFlags::empty())),
    );
}

/// Polls `fds` without waiting for up to `spin`, then (unless busy) waits up to [`WAKEUP`];
/// leaves in `ready` what each one reported (all empty when nothing came).
fn wait(polls: &mut [PollFd<'_>], spin: Wait, ready: &mut Vec<PollFlags>) -> io::Result<()> {
    let wakeup = PollTimeout::try_from(WAKEUP).unwrap_or(PollTimeout::MAX);
    wait_read(spin, |may_wait| {
        let timeout = if may_wait { wakeup } else { PollTimeout::ZERO };
        match poll(polls, timeout) {
            Ok(0) | Err(Errno::EINTR) => Ok(None),
            Ok(_) => Ok(Some(())),
            Err(e) => Err(io::Error::from(e)),
        }
    })?;
    take_revents(polls, ready);
    Ok(())
}

/// Takes up to [`BATCH`] frames from a TAP through the forwarder; how many.
fn drain_tap(
    inner: &Inner,
    device: &str,
    tap: &Tap,
    buf: &mut [u8],
    segments: &mut Segments,
    out: &mut Outbox,
) -> io::Result<usize> {
    let mut taken = 0;
    while taken < BATCH {
        let Some(read) = tap.try_recv(buf)? else {
            break;
        };
        taken += 1;
        let frame = buf.get(read.frame).unwrap_or_default();
        let st = lock(&inner.state);
        let mut fw = lock(&inner.forwarder);
        match offload::segment(&read.hdr, frame, segments) {
            Ok(()) => {
                let now = Instant::now();
                for f in segments.iter() {
                    fw.vm_frame(&st, device, f, now, &mut out.actions);
                }
            }
            Err(e) => {
                tracing::debug!(device, error = %e, "offloaded frame from the VM dropped");
                fw.count_port_drops(device, DropReason::Malformed, 1);
            }
        }
    }
    Ok(taken)
}

/// Takes up to [`BATCH`] packets from an underlay socket through the forwarder; how many.
fn drain_underlay(inner: &Inner, receiver: &Receiver, buf: &mut [u8], out: &mut Outbox) -> usize {
    let mut taken = 0;
    while taken < BATCH {
        let (dst, n) = match receiver.try_recv(buf) {
            Ok(Some(got)) => got,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(protocol = receiver.protocol(), error = %e, "underlay read failed");
                break;
            }
        };
        taken += 1;
        let st = lock(&inner.state);
        // Another dataplane's traffic on a shared link (dev mode shares loopback).
        if Forwarder::is_own_underlay(&st, dst) {
            let mut fw = lock(&inner.forwarder);
            let packet = buf.get(..n).unwrap_or_default();
            fw.underlay_packet(&st, dst, packet, Instant::now(), &mut out.actions);
        }
    }
    taken
}
