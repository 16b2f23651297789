//! One circuit breaker per destination. After `threshold` consecutive transient failures it
//! opens and the destination's workers stop claiming; after `cooldown` one probe is let through
//! (half-open); its success closes the breaker, its failure opens it again. Work waits in the
//! queue meanwhile, so a failing destination is not hammered. Each gateway process keeps its
//! own breaker: the state is about what this process sees, and it needs no coordination.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// What a worker may claim now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Claim freely.
    Closed,
    /// Claim exactly one message, as the probe.
    Probe,
    /// Claim nothing for this long.
    Wait(Duration),
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            opened_at: None,
            probing: false,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if self.probing || now.duration_since(at) >= self.cooldown => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    pub fn gate(&mut self, now: Instant) -> Gate {
        let Some(at) = self.opened_at else {
            return Gate::Closed;
        };
        if self.probing {
            // The probe is out; wait for its verdict.
            return Gate::Wait(Duration::from_millis(50));
        }
        let waited = now.duration_since(at);
        if waited >= self.cooldown {
            self.probing = true;
            Gate::Probe
        } else {
            Gate::Wait(self.cooldown - waited)
        }
    }

    /// The probe was not used (nothing to claim): let the next claim be the probe.
    pub fn probe_unused(&mut self) {
        self.probing = false;
    }

    pub fn on_success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
        self.probing = false;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.probing || (self.opened_at.is_none() && self.failures >= self.threshold) {
            self.opened_at = Some(now);
            self.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        assert_eq!(b.gate(t0), Gate::Closed);
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.gate(t0 + Duration::from_secs(4)), Gate::Wait(Duration::from_secs(6)));
        assert_eq!(b.gate(t0 + Duration::from_secs(10)), Gate::Probe);
        assert_eq!(b.state(t0 + Duration::from_secs(10)), BreakerState::HalfOpen);
        // Only one probe at a time.
        assert!(matches!(b.gate(t0 + Duration::from_secs(10)), Gate::Wait(_)));
    }

    #[test]
    fn failed_probe_reopens_and_successful_probe_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(1));
        b.on_failure(t0);
        assert_eq!(b.gate(t0 + Duration::from_secs(1)), Gate::Probe);
        b.on_failure(t0 + Duration::from_secs(1));
        assert_eq!(b.state(t0 + Duration::from_millis(1500)), BreakerState::Open);
        assert_eq!(b.gate(t0 + Duration::from_secs(2)), Gate::Probe);
        b.on_success();
        assert_eq!(b.state(t0 + Duration::from_secs(2)), BreakerState::Closed);
        assert_eq!(b.gate(t0 + Duration::from_secs(2)), Gate::Closed);
    }

    #[test]
    fn success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(1));
        b.on_failure(t0);
        b.on_success();
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn unused_probe_is_offered_again() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(1));
        b.on_failure(t0);
        assert_eq!(b.gate(t0 + Duration::from_secs(1)), Gate::Probe);
        b.probe_unused();
        assert_eq!(b.gate(t0 + Duration::from_secs(1)), Gate::Probe);
    }
}
