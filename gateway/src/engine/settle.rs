//! One delivery and its settlement: the adapter's outcome becomes delivered, a retry on the
//! backoff schedule, or a dead letter (`decide`, the one place the retry schedule, the age and
//! attempt limits and the breaker's bookkeeping live); the settlement is written with what it
//! records beside the message (the carried status, the centre's event), a few times if the
//! store blinks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use hcc_adapters::evidence::{self, Subject};
use hcc_adapters::{CentreEvent, Delivery, Outcome};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::Lane;
use super::breaker::BreakerState;
use super::policy::DestinationHealth;
use crate::redact;
use crate::storage::{Claimed, Disposition, MessageQueue, OutboxEvent, Permit, PermitAsk, SettleNotes, now_ms};

/// Longest reason a message keeps for its last error, in characters: a portal's answer may be
/// long, and the reason is stored, listed and logged with every attempt.
const MAX_ERROR_CHARS: usize = 1024;

/// Turns an adapter's outcome into a settlement: the retry schedule, the age and attempt
/// limits, and the breaker's bookkeeping all happen here and nowhere else. `probe` says the
/// attempt was let through a half-open breaker.
///
/// A retry waits on the short cap while other attempts to the destination are succeeding (the
/// breaker is closed and its window holds a success), on the long cap otherwise; see
/// [`policy`].
///
/// An adapter's reason may quote its destination's answer (a portal's message, a centre's
/// body), which is outside text: it can hold a citizen's ID number or a newline. It is cleaned
/// here, once, before it becomes the message's `last_error` or dead-letter reason, so that the
/// API views, the audit log and the logs all show the masked, escaped text.
pub(super) fn decide(lane: &Lane, c: &Claimed, outcome: Outcome, probe: bool, now: i64) -> Disposition {
    let outcome = match outcome {
        Outcome::Reject { reason } => Outcome::Reject {
            reason: redact::clean(&reason, MAX_ERROR_CHARS),
        },
        Outcome::Retry { reason, after } => Outcome::Retry {
            reason: redact::clean(&reason, MAX_ERROR_CHARS),
            after,
        },
        Outcome::Delivered => Outcome::Delivered,
    };
    match outcome {
        Outcome::Delivered => {
            breaker_success(lane, probe);
            Disposition::Delivered
        }
        Outcome::Reject { reason } => {
            // The destination is healthy: it judged the data.
            breaker_success(lane, probe);
            Disposition::Dead { error: reason }
        }
        Outcome::Retry { reason, after } => {
            // Judged after this failure is counted: if it opens the breaker, the long cap applies.
            let (health, open) = {
                let mut b = lane.breaker();
                let t = Instant::now();
                b.on_failure(t, probe);
                let health = if b.destination_succeeding(t) {
                    DestinationHealth::Succeeding
                } else {
                    DestinationHealth::Failing
                };
                (health, b.state(t) != BreakerState::Closed)
            };
            // The breaker opening is logged once, with this failure's reason; the failures
            // while it stays open (its probes) are counted and summarised.
            if open {
                lane.outage.failed(&reason);
            }
            let cfg = &lane.cfg;
            if cfg.max_attempts > 0 && c.attempts >= cfg.max_attempts {
                return Disposition::Dead {
                    error: format!("gave up after {} attempts; last error: {reason}", c.attempts),
                };
            }
            let delay = cfg.policy.next_delay(c.attempts, health, after);
            let at = now + delay.as_millis() as i64;
            if at - c.age_from > cfg.max_age.as_millis() as i64 {
                let hours = (now - c.age_from) as f64 / 3_600_000.0;
                return Disposition::Dead {
                    error: format!("gave up after {hours:.1} h and {} attempts; last error: {reason}", c.attempts),
                };
            }
            Disposition::Retry { at, error: reason }
        }
    }
}

/// A success for the breaker; a breaker that closes with it ends the destination's outage.
fn breaker_success(lane: &Lane, probe: bool) {
    let closed = {
        let mut b = lane.breaker();
        let t = Instant::now();
        b.on_success(t, probe);
        b.state(t) == BreakerState::Closed
    };
    if closed {
        lane.outage.ok();
    }
}

/// An attempt's outcome as its evidence records say it.
fn evidence_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Delivered => "delivered".into(),
        // Outside text, cleaned as for every other place it is kept (see `decide`).
        Outcome::Retry { reason, .. } => format!("retry: {}", redact::clean(reason, MAX_ERROR_CHARS)),
        Outcome::Reject { reason } => format!("rejected: {}", redact::clean(reason, MAX_ERROR_CHARS)),
    }
}

pub(super) async fn deliver(
    queue: MessageQueue,
    lane: Arc<Lane>,
    c: Claimed,
    probe: bool,
    permit: OwnedSemaphorePermit,
    hard_stop: CancellationToken,
) {
    let started = Instant::now();
    // The attempt's span, a child of the request that accepted the message (its trace is kept
    // with the message); only while traces are on, so that log lines keep their shape.
    let span = if crate::telemetry::enabled() {
        let span = tracing::info_span!(
            "deliver",
            otel.name = %format_args!("deliver {}", lane.name),
            otel.kind = "consumer",
            destination = %lane.name,
            message_id = %c.id,
            kind = %c.kind,
            attempt = c.attempts,
            outcome = tracing::field::Empty,
        );
        if let Some(traceparent) = &c.traceparent {
            crate::telemetry::continue_trace(&span, traceparent);
        }
        span
    } else {
        tracing::Span::none()
    };
    let delivery = Delivery {
        id: &c.id,
        kind: &c.kind,
        ordering_key: &c.ordering_key,
        payload: &c.payload,
        attempt: c.attempts,
    };
    // The adapter has its own timeouts; this outer bound keeps a stuck adapter from outliving
    // its lease, after which another worker may take the message.
    let bound = lane
        .cfg
        .lease
        .saturating_sub(Duration::from_millis(500))
        .max(lane.cfg.upstream_timeout);
    let outcome = if rate_permit(&queue, &lane, &hard_stop).await {
        let subject = Subject::message(&c.id, &c.ordering_key);
        let attempt = evidence::scope(lane.evidence.as_ref(), subject, async {
            tokio::select! {
                r = tokio::time::timeout(bound, lane.adapter.deliver(delivery)) => Some(r.unwrap_or_else(|_| Outcome::retry("delivery did not finish in time"))),
                _ = hard_stop.cancelled() => None,
            }
        });
        let (outcome, noted) = tracing::Instrument::instrument(attempt, span.clone()).await;
        noted.settle(&match &outcome {
            Some(o) => evidence_outcome(o),
            None => "stopped: handed back at shutdown".into(),
        });
        outcome
    } else {
        None
    };
    let now = now_ms();
    let settlement = match outcome {
        Some(o) => decide(&lane, &c, o, probe, now),
        None => Disposition::Release,
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    span.record(
        "outcome",
        match &settlement {
            Disposition::Delivered => "delivered",
            Disposition::Retry { .. } => "retry",
            Disposition::Dead { .. } => "dead",
            Disposition::Release => "released",
        },
    );
    if let Some(o) = &lane.observer {
        o.attempt(&lane.name, &c, &settlement, started.elapsed());
    }
    match &settlement {
        Disposition::Delivered => {
            tracing::debug!(destination = %lane.name, id = %c.id, attempt = c.attempts, elapsed_ms, "delivered")
        }
        Disposition::Retry { at, error } => {
            tracing::info!(destination = %lane.name, id = %c.id, attempt = c.attempts, elapsed_ms, retry_in_ms = at - now, error = %error, "will retry")
        }
        Disposition::Dead { error } => {
            tracing::warn!(destination = %lane.name, id = %c.id, attempt = c.attempts, error = %error, "dead-lettered")
        }
        Disposition::Release => {
            tracing::info!(destination = %lane.name, id = %c.id, "handed back unattempted (shutdown, or no rate permit in time)")
        }
    }
    // Redis may blink; try the settlement a few times. If it still fails the lease runs out and
    // the message is delivered again: at least once, never lost.
    let notes = settle_notes(&lane, &c, &settlement, now, &span);
    let settle = || queue.settle_noted(&lane.name, &c, &settlement, now, lane.cfg.retention_secs, &notes);
    let asked = Instant::now();
    let result = settle
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(6),
        )
        .await;
    if result.is_ok() {
        lane.redis.ok_since(asked);
    }
    match result {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(destination = %lane.name, id = %c.id, "lease was lost before settlement; another worker owns the message now")
        }
        Err(e) => {
            // In a store outage, every delivery in flight ends here: the outage is logged
            // once (`crate::outage`), the message's fate at debug.
            tracing::debug!(destination = %lane.name, id = %c.id, error = %e, "cannot settle; the message will be retried after its lease");
            lane.redis
                .store_failed(&e, "cannot settle; the message will be retried after its lease");
        }
    }
    drop(permit);
    // The next message of this key may be due now.
    lane.wake.notify_one();
}

/// What the settlement records beside the message: the status it carried, when delivered; and
/// for a destination that tells the centre, the event its death or its delivery after a replay
/// queues, as the adapter words them ([`Adapter::dead_letter_event`], with the reason masked
/// here, and [`Adapter::redelivered_event`]). Both events are written in the settlement's own
/// atomic step, so a crash can neither lose nor double one; which of them is queued is the
/// store's decision (only a replayed message's delivery queues the second).
pub(super) fn settle_notes(lane: &Lane, c: &Claimed, settlement: &Disposition, now: i64, trace: &tracing::Span) -> SettleNotes {
    let delivery = Delivery {
        id: &c.id,
        kind: &c.kind,
        ordering_key: &c.ordering_key,
        payload: &c.payload,
        attempt: c.attempts,
    };
    let tells = lane.events.load(std::sync::atomic::Ordering::Relaxed);
    // The destination words the event; the envelope is the gateway's.
    let event = |e: CentreEvent| OutboxEvent {
        kind: e.kind.to_string(),
        ordering_key: c.ordering_key.clone(),
        payload: serde_json::json!({"type": e.kind, "timestamp": crate::timefmt::rfc3339_ms(now), "data": e.data}).to_string(),
        traceparent: crate::telemetry::traceparent_of(trace),
    };
    match settlement {
        Disposition::Delivered => SettleNotes {
            status: lane.adapter.carried_status(&delivery),
            on_dead: None,
            on_redelivered: tells.then(|| lane.adapter.redelivered_event(&delivery)).flatten().map(event),
        },
        Disposition::Dead { error } => SettleNotes {
            status: None,
            on_dead: tells
                .then(|| lane.adapter.dead_letter_event(&delivery, &redact::mask_identity_numbers(error)))
                .flatten()
                .map(event),
            on_redelivered: None,
        },
        Disposition::Retry { .. } | Disposition::Release => SettleNotes::default(),
    }
}

/// Waits for a permit of the lane's shared rate limit, if it has one. Bounded: the wait must
/// leave the delivery its upstream timeout inside the lease (so that the lease never runs out
/// mid-delivery and hands the message to a second worker). `false` when no permit came in that
/// time or at a hard stop: the message is handed back unattempted.
async fn rate_permit(queue: &MessageQueue, lane: &Lane, hard_stop: &CancellationToken) -> bool {
    let rate = lane.cfg.rate_limit_per_sec;
    if rate == 0 {
        return true;
    }
    let budget = lane
        .cfg
        .lease
        .saturating_sub(lane.cfg.upstream_timeout)
        .saturating_sub(Duration::from_millis(500));
    let deadline = Instant::now() + budget;
    loop {
        let pause = match queue.permit(lane.adapter.destination(), rate, PermitAsk::Take).await {
            Ok(Permit::Granted) => return true,
            Ok(Permit::Wait(d)) => d,
            Err(e) => {
                lane.redis.store_failed(&e, "cannot reach the rate limit");
                Duration::from_millis(100)
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::info!(destination = %lane.name, "no rate permit within the lease; handing the message back");
            return false;
        }
        tokio::select! {
            _ = hard_stop.cancelled() => return false,
            _ = tokio::time::sleep(pause.min(left)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use hcc_adapters::Adapter;
    use tokio::sync::{Notify, Semaphore};

    use super::*;
    use crate::engine::LaneConfig;
    use crate::engine::breaker::{Breaker, BreakerConfig, BreakerState};
    use crate::engine::policy::RetryPolicy;

    struct Nowhere;

    impl Adapter for Nowhere {
        fn destination(&self) -> &str {
            "nowhere"
        }
        fn deliver<'a>(&'a self, _: Delivery<'a>) -> hcc_adapters::BoxFuture<'a, Outcome> {
            Box::pin(async { Outcome::Delivered })
        }
    }

    fn lane(max_attempts: u32) -> Lane {
        let cfg = LaneConfig {
            concurrency: 1,
            upstream_timeout: Duration::from_secs(1),
            lease: Duration::from_secs(5),
            max_age: Duration::from_secs(3600),
            max_attempts,
            policy: RetryPolicy {
                base: Duration::from_millis(10),
                max: Duration::from_millis(100),
                healthy_max: Duration::from_millis(100),
            },
            breaker: BreakerConfig {
                cooldown: Duration::from_secs(1),
                ..BreakerConfig::default()
            },
            retention_secs: 60,
            poll_interval: Duration::from_millis(10),
            rate_limit_per_sec: 0,
        };
        Lane {
            name: "nowhere".into(),
            observer: None,
            evidence: None,
            breaker: Mutex::new(Breaker::new(cfg.breaker)),
            permits: Arc::new(Semaphore::new(1)),
            wake: Notify::new(),
            events: std::sync::atomic::AtomicBool::new(false),
            redis: crate::outage::Dependency::detached(crate::outage::REDIS, "Redis"),
            outage: crate::outage::Dependency::detached("breaker:nowhere", "the destination of queue nowhere"),
            cfg,
            adapter: Arc::new(Nowhere),
        }
    }

    fn claimed(attempts: u32) -> Claimed {
        Claimed {
            id: "0190f3a2-7b4c-7def-8123-456789012345".into(),
            kind: "dossier.sync".into(),
            ordering_key: "000.00.22.H46-241125-0001".into(),
            payload: b"{}".to_vec(),
            attempts,
            created_at: 0,
            age_from: 0,
            token: "t".into(),
            traceparent: None,
        }
    }

    const PORTAL: &str = "portal refused (error_code 2): CCCD 001 203 004 567 sai\n2026-11-25T00:00:00Z  INFO forged";
    const CLEAN: &str = "portal refused (error_code 2): CCCD *** *** *** *67 sai\\n2026-11-25T00:00:00Z  INFO forged";

    #[test]
    fn outside_reasons_are_masked_and_escaped_before_they_are_stored() {
        let now = 1_000;
        assert_eq!(
            decide(&lane(0), &claimed(1), Outcome::reject(PORTAL), false, now),
            Disposition::Dead { error: CLEAN.into() }
        );
        match decide(&lane(0), &claimed(1), Outcome::retry(PORTAL), false, now) {
            Disposition::Retry { error, .. } => assert_eq!(error, CLEAN),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&lane(3), &claimed(3), Outcome::retry(PORTAL), false, now),
            Disposition::Dead {
                error: format!("gave up after 3 attempts; last error: {CLEAN}")
            }
        );
        match decide(&lane(0), &claimed(1), Outcome::reject("x".repeat(5000)), false, now) {
            Disposition::Dead { error } => assert_eq!(error.chars().count(), MAX_ERROR_CHARS + 1),
            other => panic!("{other:?}"),
        }
    }

    /// The wait a retry of attempt 8 gets from `decide` on `lane`.
    fn retry_wait(lane: &Lane) -> i64 {
        let now = 1_000;
        match decide(lane, &claimed(8), Outcome::retry("HTTP 503"), false, now) {
            Disposition::Retry { at, .. } => at - now,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retries_wait_on_the_short_cap_while_the_destination_succeeds() {
        let mut l = lane(0);
        l.cfg.policy = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
            healthy_max: Duration::from_secs(30),
        };
        l.breaker = Mutex::new(Breaker::new(l.cfg.breaker));
        // No success seen yet: the destination may be down, the long cap applies (attempt 8:
        // 128 s ceiling, so at least 64 s).
        assert!(retry_wait(&l) >= 64_000);
        // Others get through: the same message waits at most 30 s (20 failures after 30
        // successes are 40%, under the breaker's 50%).
        for _ in 0..30 {
            l.breaker().on_success(Instant::now(), false);
        }
        for _ in 0..20 {
            let w = retry_wait(&l);
            assert!((15_000..=30_000).contains(&w), "{w}");
        }
        // The destination as a whole fails: the breaker opens, and the long cap is back.
        for _ in 0..40 {
            retry_wait(&l);
        }
        assert_eq!(l.breaker().state(Instant::now()), BreakerState::Open);
        assert!(retry_wait(&l) >= 64_000);
    }
}
