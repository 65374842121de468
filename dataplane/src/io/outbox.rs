//! What the packet loop is about to send, and how long merged frames may wait for more.
//!
//! Frames to a TAP that takes offload are merged per flow ([`Coalescer`]). A super-segment
//! written to the VM stands for all its segments: the VM's stack runs once and answers with
//! one ACK, which every node on the way back then carries. So frames of a flow that is still
//! growing (its sender has more full-sized segments on the way) wait for them, but only while
//! the loop has nothing else to wait for and at most [`MERGE_HOLD`].

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TapFrame;
use crate::forward::Action;
use crate::packet::offload::{Coalescer, VnetHdr};

/// How long frames to a TAP may wait for more segments of a flow that is still growing. About
/// ten segments at the rate one sender thread puts them on the underlay: enough for writes
/// of 15 to 20 segments where the loop alone got 9, short beside a TCP round trip.
pub const MERGE_HOLD: Duration = Duration::from_micros(50);

/// Frames on their way out; kept by the packet loop so that the buffers are reused.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub actions: Vec<Action>,
    pub merge: HashMap<Arc<str>, Merge>,
    pub underlay: Vec<(Ipv6Addr, Vec<u8>)>,
    pub taps: Vec<TapFrame>,
}

/// Frames to one offloading TAP, and since when the oldest has waited.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    pub frames: Coalescer,
    pub since: Option<Instant>,
}

impl Merge {
    /// Queues `frame` at `now`.
    pub fn push(&mut self, frame: Vec<u8>, now: impl FnOnce() -> Instant) {
        self.since.get_or_insert_with(now);
        self.frames.push(frame);
    }

    /// The frames, in order, with the header each is written with; the merge starts anew.
    pub fn take(&mut self) -> impl Iterator<Item = (VnetHdr, Vec<u8>)> + '_ {
        self.since = None;
        self.frames.drain()
    }

    /// Whether the frames go out now: there are some and, with `hold` (the time now), none
    /// of their flows is growing or the oldest has waited [`MERGE_HOLD`].
    pub fn goes(&self, hold: Option<Instant>) -> bool {
        !self.frames.is_empty() && hold.is_none_or(|now| self.hold_left(now).is_none())
    }

    /// How much longer the frames may wait for a growing flow; `None` when they may not.
    pub fn hold_left(&self, now: Instant) -> Option<Duration> {
        let since = self.since.filter(|_| self.frames.growing())?;
        Some(MERGE_HOLD.saturating_sub(now.saturating_duration_since(since)))
            .filter(|d| !d.is_zero())
    }
}

impl Outbox {
    /// Whether frames wait in a merge.
    pub fn holding(&self) -> bool {
        self.merge.values().any(|m| !m.frames.is_empty())
    }

    /// How much longer the longest-waiting-allowed merge may wait; `None` when none may.
    pub fn hold_left(&self, now: Instant) -> Option<Duration> {
        self.merge.values().filter_map(|m| m.hold_left(now)).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::offload::tests::tcp_frame;
    use crate::packet::tcp;

    fn segment(seq: u32, flags: u8, len: usize) -> Vec<u8> {
        tcp_frame(true, 1, seq, (seq / 1000) as u16, flags, &vec![7; len])
    }

    #[test]
    fn a_growing_flow_waits_up_to_the_hold() {
        let t0 = Instant::now();
        let mut m = Merge::default();
        assert!(!m.goes(None), "nothing to send");
        m.push(segment(0, tcp::ACK, 1000), || t0);
        m.push(segment(1000, tcp::ACK, 1000), || t0 + MERGE_HOLD);
        assert_eq!(m.since, Some(t0), "the oldest frame's time counts");
        let half = t0 + MERGE_HOLD / 2;
        assert_eq!(m.hold_left(half), Some(MERGE_HOLD / 2));
        assert!(!m.goes(Some(half)));
        assert!(m.goes(Some(t0 + MERGE_HOLD)), "held long enough");
        assert!(m.goes(None), "the loop is about to sleep");
    }

    #[test]
    fn a_flow_that_ended_goes_at_once() {
        let t0 = Instant::now();
        for last in [
            segment(1000, tcp::ACK, 300),
            segment(1000, tcp::ACK | tcp::PSH, 1000),
        ] {
            let mut m = Merge::default();
            m.push(segment(0, tcp::ACK, 1000), || t0);
            m.push(last, || t0);
            assert_eq!(m.hold_left(t0), None);
            assert!(m.goes(Some(t0)));
        }
    }

    #[test]
    fn the_outbox_waits_for_its_longest_hold() {
        let t0 = Instant::now();
        let mut out = Outbox::default();
        assert!(!out.holding());
        assert_eq!(out.hold_left(t0), None);
        let mut old = Merge::default();
        old.push(segment(0, tcp::ACK, 1000), || t0);
        let mut new = Merge::default();
        new.push(segment(0, tcp::ACK, 1000), || t0 + MERGE_HOLD / 4);
        out.merge.insert("a".into(), old);
        out.merge.insert("b".into(), new);
        assert!(out.holding());
        // "b" came a quarter of the hold later: three quarters left at half.
        assert_eq!(out.hold_left(t0 + MERGE_HOLD / 2), Some(MERGE_HOLD * 3 / 4));
    }
}
