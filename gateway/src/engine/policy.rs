//! The durable queue's retry schedule: delay = f(attempt), capped, with jitter. It is a pure
//! function of the attempt count stored with the message and of whether the destination is
//! succeeding right now, so a restart does not reset it. (In-process retries elsewhere use
//! `backon`; this schedule outlives processes, so it is ours.)
//!
//! Two caps. When other deliveries to the same destination are succeeding, a message's failures
//! are the destination's noise, not the message's fault: its wait is capped at `healthy_max`
//! (30 s by default), so a dossier is not parked for ten minutes behind a run of bad luck. When
//! the destination as a whole is failing, the long cap `max` keeps the queue from hammering it.

use std::time::Duration;

/// What the engine knows about the destination when it schedules a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationHealth {
    /// Other attempts succeeded recently and the breaker is closed.
    Succeeding,
    /// No recent success, or the breaker is open or half-open.
    Failing,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    /// The cap while the destination is failing.
    pub max: Duration,
    /// The cap while the destination is succeeding; never above `max`.
    pub healthy_max: Duration,
}

impl RetryPolicy {
    /// The cap that applies: `healthy_max` (at most `max`) while the destination succeeds.
    pub fn cap(&self, health: DestinationHealth) -> Duration {
        match health {
            DestinationHealth::Succeeding => self.healthy_max.min(self.max),
            DestinationHealth::Failing => self.max,
        }
    }

    /// The un-jittered delay after attempt `attempt` (1-based): base, 2·base, 4·base, ... ≤ cap.
    pub fn ceiling(&self, attempt: u32, health: DestinationHealth) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap(health))
    }

    /// "Equal jitter": half the ceiling fixed, half random. Spreads a crowd of retries without
    /// ever retrying at once; `unit` is a random number in [0, 1).
    pub fn delay(&self, attempt: u32, health: DestinationHealth, unit: f64) -> Duration {
        let c = self.ceiling(attempt, health);
        c / 2 + c.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }

    /// The delay to use after a transient failure. An upstream `Retry-After` is honoured: never
    /// sooner than it asks, whatever the health (capped by the long `max`, so a hostile header
    /// cannot park a queue forever).
    pub fn next_delay(&self, attempt: u32, health: DestinationHealth, retry_after: Option<Duration>) -> Duration {
        let own = self.delay(attempt, health, fastrand::f64());
        match retry_after {
            Some(after) => own.max(after.min(self.max)),
            None => own,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DestinationHealth::{Failing, Succeeding};
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
        healthy_max: Duration::from_secs(3),
    };

    #[test]
    fn grows_exponentially_up_to_the_long_cap_while_failing() {
        assert_eq!(P.ceiling(1, Failing), Duration::from_millis(100));
        assert_eq!(P.ceiling(2, Failing), Duration::from_millis(200));
        assert_eq!(P.ceiling(5, Failing), Duration::from_millis(1600));
        assert_eq!(P.ceiling(8, Failing), Duration::from_secs(10));
        assert_eq!(P.ceiling(u32::MAX, Failing), Duration::from_secs(10));
    }

    #[test]
    fn grows_up_to_the_short_cap_while_succeeding() {
        // Same schedule below the short cap.
        assert_eq!(P.ceiling(1, Succeeding), Duration::from_millis(100));
        assert_eq!(P.ceiling(5, Succeeding), Duration::from_millis(1600));
        assert_eq!(P.ceiling(6, Succeeding), Duration::from_secs(3));
        assert_eq!(P.ceiling(u32::MAX, Succeeding), Duration::from_secs(3));
        for attempt in 1..40 {
            assert!(P.delay(attempt, Succeeding, 0.999) <= Duration::from_secs(3));
        }
    }

    #[test]
    fn the_short_cap_never_exceeds_the_long_one() {
        let p = RetryPolicy {
            healthy_max: Duration::from_secs(30),
            ..P
        };
        assert_eq!(p.cap(Succeeding), Duration::from_secs(10));
        assert_eq!(p.ceiling(20, Succeeding), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_half_and_whole_ceiling() {
        for health in [Failing, Succeeding] {
            for attempt in 1..20 {
                let c = P.ceiling(attempt, health);
                assert_eq!(P.delay(attempt, health, 0.0), c / 2);
                assert!(P.delay(attempt, health, 0.999) <= c);
                assert!(P.delay(attempt, health, 0.5) > c / 2);
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor_capped_by_the_long_max() {
        for health in [Failing, Succeeding] {
            assert!(P.next_delay(1, health, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
            // Above the short cap: still honoured while succeeding.
            assert!(P.next_delay(1, health, Some(Duration::from_secs(8))) >= Duration::from_secs(8));
            assert!(P.next_delay(1, health, Some(Duration::from_secs(3600))) <= Duration::from_secs(10));
            assert!(P.next_delay(1, health, None) <= Duration::from_millis(100));
        }
    }
}
