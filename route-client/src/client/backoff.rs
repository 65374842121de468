//! Jittered exponential back-off between reconnect attempts, as a pure function of the attempt
//! number and a random draw, so that tests can pin the draw.

use std::time::Duration;

/// Reconnect back-off: the ceiling doubles per failed attempt from `min` up to `max`, and each
/// delay is drawn from the upper half of the ceiling ("equal jitter"), so that nodes that lost a
/// server together do not all come back in the same instant yet never retry sooner than half
/// the ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

/// The delay before attempt number `attempt` (0 = first retry) for a draw `jitter` in [0, 1].
///
/// The ceiling is `min * 2^attempt`, capped at `max`; the delay is `ceiling * (1 + jitter) / 2`.
/// A `max` below `min` is treated as `min`. Out-of-range draws are clamped.
pub fn delay(min: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let max = max.max(min);
    // 2^attempt overflows quickly; once past 2^31 the ceiling is `max` for any sane `min`.
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let ceiling = min.checked_mul(factor).map_or(max, |c| c.min(max));
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    // Computed as half + half * jitter so that huge ceilings cannot overflow the float round trip.
    let half = ceiling / 2;
    let extra =
        Duration::try_from_secs_f64(half.as_secs_f64() * jitter).map_or(half, |e| e.min(half));
    half.saturating_add(extra)
}

impl Backoff {
    /// Back-off between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, with a fresh random draw; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random::<f64>())
    }

    /// As [`Backoff::next_delay`], with the random draw given.
    pub fn next_delay_with(&mut self, jitter: f64) -> Duration {
        let d = delay(self.min, self.max, self.attempt, jitter);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Starts over from `min`, after a session reached ESTABLISHED.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_max() {
        let mut b = Backoff::new(MS(100), MS(1000));
        let ceilings: Vec<Duration> = (0..6).map(|_| b.next_delay_with(1.0)).collect();
        assert_eq!(
            ceilings,
            vec![MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000)]
        );
        b.reset();
        assert_eq!(b.next_delay_with(0.0), MS(50));
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn odd_inputs_stay_sane() {
        assert_eq!(delay(MS(100), MS(10), 3, 1.0), MS(100));
        assert_eq!(delay(MS(100), MS(1000), 3, f64::NAN), MS(400));
        assert_eq!(delay(MS(100), MS(1000), 3, 7.0), MS(800));
        assert_eq!(delay(MS(100), MS(1000), 3, -1.0), MS(400));
        assert!(
            delay(Duration::from_secs(u64::MAX / 2), Duration::MAX, 40, 1.0) >= Duration::MAX / 2
        );
        assert_eq!(delay(Duration::ZERO, MS(5), 9, 1.0), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn within_bounds_and_monotone(min in 1u64..10_000, extra in 0u64..100_000, attempt in 0u32..100, j in 0.0f64..=1.0) {
            let (min, max) = (MS(min), MS(min + extra));
            let d = delay(min, max, attempt, j);
            prop_assert!(d >= min / 2 && d <= max);
            // The ceiling never shrinks as attempts grow.
            prop_assert!(delay(min, max, attempt + 1, 1.0) >= delay(min, max, attempt, 1.0));
        }
    }
}
