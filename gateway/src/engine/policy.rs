//! The durable queue's retry schedule: delay = f(attempt), capped, with jitter. It is a pure
//! function of the attempt count stored with the message, so a restart does not reset it.
//! (In-process retries elsewhere use `backon`; this schedule outlives processes, so it is ours.)

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The un-jittered delay after attempt `attempt` (1-based): base, 2·base, 4·base, ... ≤ max.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// "Equal jitter": half the ceiling fixed, half random. Spreads a crowd of retries without
    /// ever retrying at once; `unit` is a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let c = self.ceiling(attempt);
        c / 2 + c.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// The delay to use after a transient failure. An upstream `Retry-After` is honoured: never
    /// sooner than it asks (capped by `max`, so a hostile header cannot park a queue forever).
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let own = self.delay(attempt, fastrand::f64());
        match retry_after {
            Some(after) => own.max(after.min(self.max)),
            None => own,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        assert_eq!(P.ceiling(1), Duration::from_millis(100));
        assert_eq!(P.ceiling(2), Duration::from_millis(200));
        assert_eq!(P.ceiling(5), Duration::from_millis(1600));
        assert_eq!(P.ceiling(8), Duration::from_secs(10));
        assert_eq!(P.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_half_and_whole_ceiling() {
        for attempt in 1..20 {
            let c = P.ceiling(attempt);
            assert_eq!(P.delay(attempt, 0.0), c / 2);
            assert!(P.delay(attempt, 0.999) <= c);
            assert!(P.delay(attempt, 0.5) > c / 2);
        }
    }

    #[test]
    fn retry_after_is_a_floor_capped_by_max() {
        assert!(P.next_delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(P.next_delay(1, Some(Duration::from_secs(3600))) <= Duration::from_secs(10));
        assert!(P.next_delay(1, None) <= Duration::from_millis(100));
    }
}
