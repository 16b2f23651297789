//! Faults a mock can inject, set through `POST /_mock/faults`: a share of requests that fail
//! with a status code or a dropped connection, and random added latency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of requests that fail, 0.0..=1.0.
    pub fail_rate: f64,
    /// The status of a failed request; 0 drops the connection instead of answering.
    pub fail_status: u16,
    /// Of the failures, the share that drop the connection regardless of `fail_status`.
    pub drop_rate: f64,
    /// Each request waits a random time up to this long.
    pub max_latency_ms: u64,
    /// Fixed latency added to every request.
    pub latency_ms: u64,
    /// Sent as `Retry-After` (seconds) with injected failures.
    pub retry_after_secs: Option<u64>,
}

/// What to do with one request.
pub enum Injected {
    Pass,
    Fail(u16),
    Drop,
}

impl Faults {
    /// A flaky upstream: `status_rate` of requests answered 503, `drop_rate` dropped, both
    /// shares of all requests (0.2 and 0.1 make the 30% of calls failing).
    pub fn flaky(status_rate: f64, drop_rate: f64) -> Self {
        let fail_rate = (status_rate + drop_rate).clamp(0.0, 1.0);
        Faults {
            fail_rate,
            fail_status: 503,
            drop_rate: if fail_rate > 0.0 { drop_rate / fail_rate } else { 0.0 },
            ..Faults::default()
        }
    }

    pub fn latency(&self) -> Duration {
        let extra = if self.max_latency_ms > 0 {
            fastrand::u64(0..=self.max_latency_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms + extra)
    }

    pub fn roll(&self) -> Injected {
        if self.fail_rate > 0.0 && fastrand::f64() < self.fail_rate {
            if self.fail_status == 0 || (self.drop_rate > 0.0 && fastrand::f64() < self.drop_rate) {
                Injected::Drop
            } else {
                Injected::Fail(self.fail_status)
            }
        } else {
            Injected::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaky_faults_fail_the_shares_asked_for() {
        let f = Faults::flaky(0.2, 0.1);
        let (mut fail, mut drop) = (0u32, 0u32);
        for _ in 0..20_000 {
            match f.roll() {
                Injected::Pass => {}
                Injected::Fail(s) => {
                    assert_eq!(s, 503);
                    fail += 1;
                }
                Injected::Drop => drop += 1,
            }
        }
        assert!((3_500..4_500).contains(&fail), "{fail} answered 503 of 20000");
        assert!((1_600..2_400).contains(&drop), "{drop} dropped of 20000");
        assert!(matches!(Faults::flaky(0.0, 0.0).roll(), Injected::Pass));
    }
}
