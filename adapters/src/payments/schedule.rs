//! When a pending payment is asked about (docs/vnpay.md, docs/paygov.md "Reconciliation"): a
//! small pure policy, so that both the reconciler and its tests read the same rule.
//!
//! A payment is asked at growing ages: `min_age`, 5 × `min_age`, 30 × `min_age`, then every
//! 180 × `min_age` but at least every 6 hours (with `min_age` 2 min: 2 min, 10 min, 1 h, then
//! every 6 h). It is also asked once when its provider lifetime and the grace end, because
//! that answer decides whether it expires. Nothing is asked after `max_age`. Ages count from the
//! gateway's creation of the payment, the same clock `vnp_CreateDate`/`vnp_ExpireDate` come from.

use std::time::Duration;

/// The ladder's first steps, as multiples of `min_age`.
const STEPS: [u32; 3] = [1, 5, 30];
/// After the steps, the gap as a multiple of `min_age` ...
const REPEAT: u32 = 180;
/// ... but never longer than this.
const MAX_REPEAT: Duration = Duration::from_secs(6 * 3600);

/// How often a provider's reconciler looks for due payments, and at which ages a payment is
/// asked ([`Schedule::next_ask`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How often the reconciler looks for payments that are due (`*.reconcile_interval_secs`).
    pub every: Duration,
    /// The first question, this long after creation (`*.reconcile_min_age_secs`).
    pub min_age: Duration,
    /// No question after this age (`*.reconcile_max_age_secs`).
    pub max_age: Duration,
    /// The provider's payment lifetime (`vnpay.expire_minutes`, `paygov.expire_minutes`).
    pub lifetime: Duration,
}

impl Schedule {
    /// From a section's `reconcile_*_secs` keys; a zero interval is taken as one second. The
    /// lifetime is the provider's own ([`Schedule::with_lifetime`]); none until set.
    pub fn from_secs(every: u64, min_age: u64, max_age: u64) -> Self {
        Schedule {
            every: Duration::from_secs(every.max(1)),
            min_age: Duration::from_secs(min_age),
            max_age: Duration::from_secs(max_age),
            lifetime: Duration::ZERO,
        }
    }

    pub fn with_lifetime(self, lifetime: Duration) -> Self {
        Schedule { lifetime, ..self }
    }

    /// The age from which a payment the provider reports unpaid expires: its lifetime and the
    /// grace are over.
    pub fn expires_at(&self, grace: Duration) -> Duration {
        self.lifetime.saturating_add(grace)
    }

    /// Whether a payment of this age, reported unpaid by its provider, expires.
    pub fn is_over(&self, grace: Duration, age: Duration) -> bool {
        age >= self.expires_at(grace)
    }

    /// The age at which a payment that is `age` old now is asked next: the first ladder age or
    /// expiry moment strictly after `age`; `None` when that is past `max_age` (it is no longer
    /// asked).
    pub fn next_ask(&self, grace: Duration, age: Duration) -> Option<Duration> {
        // A zero `min_age` would make every step zero: the ladder starts at one second.
        let base = self.min_age.max(Duration::from_secs(1));
        let mut next = None;
        for k in STEPS {
            let at = base.saturating_mul(k);
            if at > age {
                next = Some(at);
                break;
            }
        }
        let next = next.unwrap_or_else(|| {
            let last = base.saturating_mul(STEPS[STEPS.len() - 1]);
            let gap = base.saturating_mul(REPEAT).min(MAX_REPEAT);
            // In milliseconds as u128, where no age a Duration holds can overflow.
            let gap_ms = gap.as_millis().max(1);
            let done = age.saturating_sub(last).as_millis() / gap_ms + 1;
            let at = last.as_millis() + done * gap_ms;
            match u64::try_from(at / 1000) {
                Ok(secs) => Duration::from_secs(secs).saturating_add(Duration::from_millis((at % 1000) as u64)),
                Err(_) => Duration::MAX,
            }
        });
        let end = self.expires_at(grace);
        let next = if end > age { next.min(end) } else { next };
        (next <= self.max_age).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn s(min_age: Duration, max_age: Duration, lifetime: Duration) -> Schedule {
        Schedule {
            every: Duration::from_secs(60),
            min_age,
            max_age,
            lifetime,
        }
    }

    /// Every ask age from creation up to `until`, by following `next_ask`.
    fn asks(s: &Schedule, grace: Duration, until: Duration) -> Vec<u64> {
        let mut out = Vec::new();
        let mut age = Duration::ZERO;
        for _ in 0..1000 {
            match s.next_ask(grace, age) {
                Some(a) if a <= until => {
                    assert!(a > age, "the schedule moves forward");
                    out.push(a.as_secs() / 60);
                    age = a;
                }
                _ => break,
            }
        }
        out
    }

    #[test]
    fn two_minutes_ten_minutes_an_hour_then_every_six_hours() {
        let day = 24 * 60 * MIN;
        let sched = s(2 * MIN, 3 * day, Duration::ZERO);
        assert_eq!(asks(&sched, Duration::ZERO, day), [2, 10, 60, 420, 780, 1140]);
    }

    #[test]
    fn the_end_of_the_lifetime_and_grace_is_asked_once_on_top_of_the_ladder() {
        let sched = s(2 * MIN, 24 * 60 * MIN, 15 * MIN);
        assert_eq!(asks(&sched, 30 * MIN, 120 * MIN), [2, 10, 45, 60]);
        assert!(!sched.is_over(30 * MIN, 44 * MIN));
        assert!(sched.is_over(30 * MIN, 45 * MIN));
        // Asked late (a round came after the moment): the ladder goes on from there.
        assert_eq!(sched.next_ask(30 * MIN, 50 * MIN), Some(60 * MIN));
    }

    #[test]
    fn a_long_first_age_caps_the_repeat_at_six_hours() {
        // VNPAY's defaults: 15 min, then 75 min, 7.5 h, then every 6 h (not 45 h).
        let sched = s(15 * MIN, 3 * 24 * 60 * MIN, 15 * MIN);
        assert_eq!(asks(&sched, Duration::ZERO, 24 * 60 * MIN), [15, 75, 450, 810, 1170]);
    }

    #[test]
    fn nothing_is_asked_past_the_maximum_age() {
        let sched = s(2 * MIN, 60 * MIN, 15 * MIN);
        assert_eq!(asks(&sched, Duration::ZERO, 24 * 60 * MIN), [2, 10, 15, 60]);
        assert_eq!(sched.next_ask(Duration::ZERO, 60 * MIN), None);
        assert_eq!(sched.next_ask(Duration::ZERO, 10_000 * MIN), None);
    }

    #[test]
    fn a_zero_first_age_still_moves_forward_and_huge_ages_do_not_overflow() {
        let sched = s(Duration::ZERO, Duration::MAX, Duration::ZERO);
        assert_eq!(sched.next_ask(Duration::ZERO, Duration::ZERO), Some(Duration::from_secs(1)));
        assert_eq!(sched.next_ask(Duration::ZERO, Duration::from_secs(1)), Some(Duration::from_secs(5)));
        let far = Duration::from_secs(u64::MAX / 4);
        assert!(sched.next_ask(Duration::ZERO, far).is_some_and(|a| a > far));
    }
}
