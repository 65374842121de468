//! Waiting for the next packet: polled for a short while before sleeping.
//!
//! A packet loop that sleeps as soon as its queue is empty is woken by the kernel for the next
//! packet; when the CPU it sleeps on has gone idle, that wakeup costs tens of microseconds
//! (on a VM, an exit to the host), paid once per hop of a round trip and once per burst of a
//! flood. Polling the queue for a little while first catches the next packet of a busy flow
//! and the reply to what was just forwarded. Each empty poll yields the CPU, so that the
//! threads producing the packets still run on a machine with few cores.

use std::io;
use std::time::{Duration, Instant};

/// Calls `read(false)` (must not wait) until it gives something or `spin` has passed, then
/// `read(true)` (may wait). With `spin` zero, only `read(true)`.
pub fn spin_read<T>(
    spin: Duration,
    mut read: impl FnMut(bool) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    if !spin.is_zero() {
        let start = Instant::now();
        loop {
            if let Some(got) = read(false)? {
                return Ok(Some(got));
            }
            if start.elapsed() >= spin {
                break;
            }
            std::thread::yield_now();
        }
    }
    read(true)
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
