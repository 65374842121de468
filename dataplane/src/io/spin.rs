//! Waiting for the next packet: polled for a short while before sleeping.
//!
//! A packet loop that sleeps as soon as its queue is empty is woken by the kernel for the next
//! packet; when the CPU it sleeps on has gone idle, that wakeup costs tens of microseconds
//! (on a VM, an exit to the host), paid once per hop of a round trip and once per burst of a
//! flood. Polling the queue for a little while first catches the next packet of a busy flow
//! and the reply to what was just forwarded.
//!
//! Polling only pays while the CPU has nothing else to run: then there is no one to take the
//! CPU from, and the wakeup it saves is the expensive kind. Each empty poll yields the CPU and
//! notes how long the yield took: a late one means another thread ran. Once other threads
//! have had more than [`BUSY_YIELD`] and more than half of the spin, the CPU is busy: the
//! threads producing the packets need it, and a wakeup on it is cheap, so the spin ends and
//! the thread sleeps. Without that rule a long spin takes half a busy core from the VMs beside
//! it. A short turn of another thread (the VM's reply to what was just forwarded) does not
//! end it.
//!
//! A busy loop ([`Wait::Busy`], `busy_poll`) never sleeps: it is the dedicated core of
//! dpservice's workers. It pays where halting a CPU is dear, as on a VM whose host does not
//! let the guest poll before it halts: there every sleeping thread woken costs an exit to
//! the host, once per hop of a round trip.

use std::io;
use std::time::{Duration, Instant};

/// How much of a spin other threads may take before, if that is over half of it, the CPU
/// counts as busy.
pub const BUSY_YIELD: Duration = Duration::from_micros(200);

/// How a reader waits once its queue is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Polls for up to this long unless the CPU turns out busy, then sleeps.
    Spin(Duration),
    /// Polls for up to this long whatever else runs, and never sleeps: gives `None` after it.
    Busy(Duration),
}

/// Calls `read(false)` (must not wait) until it gives something, `spin` has passed or the CPU
/// turned out busy, then `read(true)` (may wait). With `spin` zero, only `read(true)`.
pub fn spin_read<T>(
    spin: Duration,
    read: impl FnMut(bool) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    wait_read(Wait::Spin(spin), read)
}

/// [`spin_read`] for either [`Wait`].
pub fn wait_read<T>(
    wait: Wait,
    read: impl FnMut(bool) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    spin_read_with(wait, read, Instant::now, || {
        let before = Instant::now();
        std::thread::yield_now();
        before.elapsed()
    })
}

/// [`spin_read`] with its clock and its yield (which says how long it took) given.
fn spin_read_with<T>(
    wait: Wait,
    mut read: impl FnMut(bool) -> io::Result<Option<T>>,
    now: impl Fn() -> Instant,
    mut yield_cpu: impl FnMut() -> Duration,
) -> io::Result<Option<T>> {
    let (spin, busy) = match wait {
        Wait::Spin(spin) => (spin, false),
        Wait::Busy(spin) => (spin, true),
    };
    if !spin.is_zero() {
        let start = now();
        let mut others = Duration::ZERO;
        loop {
            if let Some(got) = read(false)? {
                return Ok(Some(got));
            }
            let spun = now().duration_since(start);
            if spun >= spin || (!busy && others > BUSY_YIELD && others * 2 > spun) {
                break;
            }
            others += yield_cpu();
        }
    }
    if busy { read(false) } else { read(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_spin_only_waits() {
        let mut calls = Vec::new();
        let got = spin_read(Duration::ZERO, |wait| {
            calls.push(wait);
            Ok(Some(1))
        });
        assert_eq!(got.ok().flatten(), Some(1));
        assert_eq!(calls, [true]);
    }

    #[test]
    fn what_a_poll_finds_is_returned_without_waiting() {
        let mut calls = Vec::new();
        let got = spin_read(Duration::from_secs(60), |wait| {
            calls.push(wait);
            Ok((calls.len() == 3).then_some(7))
        });
        assert_eq!(got.ok().flatten(), Some(7));
        assert_eq!(calls, [false, false, false]);
    }

    #[test]
    fn after_the_spin_it_waits_once() {
        let mut calls = Vec::new();
        let got: io::Result<Option<u8>> = spin_read(Duration::from_micros(1), |wait| {
            calls.push(wait);
            Ok(None)
        });
        assert_eq!(got.ok().flatten(), None);
        assert_eq!(calls.last(), Some(&true));
        assert_eq!(calls.iter().filter(|w| **w).count(), 1);
        assert!(calls.len() >= 2);
    }

    #[test]
    fn a_busy_cpu_ends_the_spin() {
        let (mut calls, mut yields) = (Vec::new(), 0);
        let got: io::Result<Option<u8>> = spin_read_with(
            Wait::Spin(Duration::from_secs(60)),
            |wait| {
                calls.push(wait);
                Ok(None)
            },
            Instant::now,
            || {
                yields += 1;
                // Two quick yields (an idle CPU), then one that another thread took.
                if yields < 3 {
                    Duration::ZERO
                } else {
                    BUSY_YIELD * 2
                }
            },
        );
        assert_eq!(got.ok().flatten(), None);
        // The third yield is seen by the fourth poll's check.
        assert_eq!(calls, [false, false, false, false, true]);
    }

    #[test]
    fn on_an_idle_cpu_the_spin_lasts_its_time() {
        let start = Instant::now();
        let clock = std::cell::Cell::new(start);
        let mut polls = 0;
        let got: io::Result<Option<u8>> = spin_read_with(
            Wait::Spin(Duration::from_micros(100)),
            |wait| {
                polls += usize::from(!wait);
                Ok(None)
            },
            || clock.get(),
            || {
                clock.set(clock.get() + Duration::from_micros(10));
                Duration::ZERO
            },
        );
        assert_eq!(got.ok().flatten(), None);
        // Polls at 0, 10, ..., 100 us: the one at 100 sees the spin over.
        assert_eq!(polls, 11);
    }

    /// The polls a spin of `spin` makes when its `n`th yield (from 0) gives `turn(n)` to other
    /// threads and each poll takes 10 us of a clock that only the yields move.
    fn polls_with(wait: Wait, turn: impl Fn(u32) -> Duration) -> usize {
        let clock = std::cell::Cell::new(Instant::now());
        let (mut polls, mut n) = (0, 0);
        let _: io::Result<Option<u8>> = spin_read_with(
            wait,
            |wait| {
                polls += usize::from(!wait);
                Ok(None)
            },
            || clock.get(),
            || {
                let took = turn(n);
                n += 1;
                clock.set(clock.get() + took + Duration::from_micros(10));
                took
            },
        );
        polls
    }

    #[test]
    fn a_short_turn_of_another_thread_does_not_end_the_spin() {
        let us = Duration::from_micros;
        // 150 us to another thread, then an idle CPU: the whole 1 ms is spun, polls at 0, 160,
        // 170, ..., 1000 us.
        let polls = polls_with(
            Wait::Spin(us(1000)),
            |n| {
                if n == 0 { us(150) } else { us(0) }
            },
        );
        assert_eq!(polls, 1 + 84 + 1);
    }

    #[test]
    fn many_turns_of_other_threads_end_the_spin() {
        // Every yield gives 50 us away: busy once over 200 us, at the sixth poll.
        let polls = polls_with(Wait::Spin(Duration::from_secs(1)), |_| {
            Duration::from_micros(50)
        });
        assert_eq!(polls, 6);
    }

    #[test]
    fn a_busy_wait_polls_on_through_other_threads_and_never_sleeps() {
        // Every yield gives 50 us away, which ends a spin at its sixth poll; a busy wait polls
        // at 0, 60, ..., 1020 us (over its time), once more in place of the wait, and gives
        // up without waiting.
        let us = Duration::from_micros;
        assert_eq!(polls_with(Wait::Busy(us(1000)), |_| us(50)), 18 + 1);
        let mut waited = false;
        let got: io::Result<Option<u8>> = wait_read(Wait::Busy(us(50)), |wait| {
            waited |= wait;
            Ok(None)
        });
        assert_eq!(got.ok().flatten(), None);
        assert!(!waited);
    }

    #[test]
    fn an_error_ends_the_spin() {
        let mut calls = 0;
        let got: io::Result<Option<u8>> = spin_read(Duration::from_secs(60), |_| {
            calls += 1;
            Err(io::Error::other("gone"))
        });
        assert!(got.is_err());
        assert_eq!(calls, 1);
    }
}
