//! The delivery engine: one engine drives every destination. For each queue ("lane") a claim
//! loop takes due messages in batches under a lease, hands each to the adapter that delivers
//! that queue, and settles the outcome: delivered, retried later on the backoff
//! schedule, or dead-lettered. A reaper returns the leases of lost workers to the queue. The
//! circuit breaker, the concurrency limit, a destination's shared rate limit and graceful
//! shutdown live here too, so an adapter never has to think about any of them.

pub mod breaker;
pub mod policy;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use hcc_adapters::{Adapter, Delivery, Outcome};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::breaker::{Breaker, BreakerConfig, BreakerState, Gate};
use self::policy::{DestinationHealth, RetryPolicy};
use crate::background::Background;
use crate::redact;
use crate::storage::{Claimed, MessageQueue, OutboxEvent, Permit, PermitAsk, SettleNotes, Settlement, now_ms, rate_burst};

/// How long an outbox event's id is remembered in the centre's queue, so that relaying it
/// again (a relay that died between queueing it and taking it off the outbox) queues nothing:
/// far longer than any relay takes.
const OUTBOX_IDEM_SECS: u64 = 7 * 24 * 3600;
/// How often the outbox relay looks for events, and how many it moves per queue per round.
const OUTBOX_EVERY: Duration = Duration::from_millis(200);
const OUTBOX_BATCH: usize = 200;

/// Longest reason a message keeps for its last error, in characters: a portal's answer may be
/// long, and the reason is stored, listed and logged with every attempt.
const MAX_ERROR_CHARS: usize = 1024;

/// How one destination is driven.
#[derive(Debug, Clone)]
pub struct LaneConfig {
    pub concurrency: usize,
    pub upstream_timeout: Duration,
    pub lease: Duration,
    pub max_age: Duration,
    /// 0 = no limit.
    pub max_attempts: u32,
    pub policy: RetryPolicy,
    pub breaker: BreakerConfig,
    pub retention_secs: u64,
    pub poll_interval: Duration,
    /// Deliveries a second to the lane's destination from every process together; 0 = no
    /// limit. Lanes of one destination share its limit.
    pub rate_limit_per_sec: u32,
}

impl LaneConfig {
    pub fn from_settings(s: &hcc_config::Settings, destination: &str) -> Self {
        let d = s.delivery_for(destination);
        LaneConfig {
            concurrency: d.concurrency,
            upstream_timeout: Duration::from_millis(d.upstream_timeout_ms),
            lease: Duration::from_millis(d.lease_ms),
            max_age: Duration::from_secs(d.max_age_secs),
            max_attempts: d.max_attempts,
            policy: RetryPolicy {
                base: Duration::from_millis(d.backoff_base_ms),
                max: Duration::from_millis(d.backoff_max_ms),
                healthy_max: Duration::from_millis(d.backoff_healthy_max_ms),
            },
            breaker: BreakerConfig {
                failure_rate_percent: d.breaker_failure_rate_percent,
                min_calls: d.breaker_min_calls,
                window: Duration::from_millis(d.breaker_window_ms),
                cooldown: Duration::from_millis(d.breaker_cooldown_ms),
                half_open_probes: d.breaker_half_open_probes,
                consecutive_failures: d.breaker_failure_threshold,
            },
            retention_secs: s.queue.delivered_retention_secs,
            poll_interval: Duration::from_millis(s.queue.poll_interval_ms),
            rate_limit_per_sec: s.rate_limit_for(destination),
        }
    }
}

struct Lane {
    /// The queue this lane drains; usually the adapter's destination name, but not always
    /// (the payment events queue is delivered by the centre's webhook).
    name: String,
    observer: Option<Arc<dyn Observer>>,
    cfg: LaneConfig,
    adapter: Arc<dyn Adapter>,
    breaker: Mutex<Breaker>,
    wake: Notify,
    permits: Arc<Semaphore>,
    /// The centre's events are on and this lane's adapter tells the centre (set at start).
    events: std::sync::atomic::AtomicBool,
}

impl Lane {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sees every settled attempt: metrics and the audit log hang here, outside the engine.
pub trait Observer: Send + Sync {
    fn attempt(&self, destination: &str, claimed: &Claimed, settlement: &Settlement, elapsed: Duration);
}

/// What the HTTP side needs of the engine: the queues, their lanes' names, a way to wake a
/// lane after an enqueue, and the breakers' states. Cheap to clone. Lanes are named by their
/// queue; [`EngineHandle::destination_of`] names the adapter that delivers one.
#[derive(Clone)]
pub struct EngineHandle {
    pub queue: MessageQueue,
    lanes: Arc<BTreeMap<String, Arc<Lane>>>,
    /// The queue the gateway's events for the centre go to, when the centre has a webhook.
    events_sink: Option<String>,
    /// The process's background work: work started by a request (a paced replay) is spawned
    /// through it and stops with it.
    background: Background,
}

impl EngineHandle {
    /// The names of the queues that have a lane.
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.lanes.keys().map(String::as_str)
    }

    pub fn has_destination(&self, name: &str) -> bool {
        self.lanes.contains_key(name)
    }

    /// The destination (adapter) that delivers queue `queue`.
    pub fn destination_of(&self, queue: &str) -> Option<&str> {
        self.lanes.get(queue).map(|l| l.adapter.destination())
    }

    /// Wakes the destination's claim loop: a message was just enqueued here. Other processes
    /// find it by polling.
    pub fn wake(&self, destination: &str) {
        if let Some(l) = self.lanes.get(destination) {
            l.wake.notify_one();
        }
    }

    pub fn breaker_state(&self, destination: &str) -> Option<BreakerState> {
        self.lanes.get(destination).map(|l| l.breaker().state(Instant::now()))
    }

    /// Attempts and failures in the destination's breaker window, as this process saw them.
    pub fn breaker_window(&self, destination: &str) -> Option<(u32, u32)> {
        self.lanes.get(destination).map(|l| l.breaker().window_counts(Instant::now()))
    }

    /// The owner of the process's background work, for work a request starts.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Stops the background work (see [`Background::cancel`]).
    pub fn stop_background(&self) {
        self.background.cancel();
    }

    /// The queue the centre's events go to, if the centre has a webhook.
    pub fn events_sink(&self) -> Option<&str> {
        self.events_sink.as_deref()
    }

    /// Whether the centre is told of queue `queue`'s dead letters (its adapter says so and
    /// the centre has a webhook).
    pub fn tells_centre(&self, queue: &str) -> bool {
        self.events_sink.is_some() && self.lanes.get(queue).is_some_and(|l| l.adapter.tells_centre())
    }

    pub fn retention_secs(&self, destination: &str) -> u64 {
        self.lanes.get(destination).map_or(7 * 86_400, |l| l.cfg.retention_secs)
    }
}

pub struct EngineBuilder {
    queue: MessageQueue,
    lanes: BTreeMap<String, Arc<Lane>>,
    reaper_interval: Duration,
    observer: Option<Arc<dyn Observer>>,
    events_sink: Option<String>,
    background: Background,
}

impl EngineBuilder {
    pub fn new(queue: MessageQueue, reaper_interval: Duration) -> Self {
        EngineBuilder {
            queue,
            lanes: BTreeMap::new(),
            reaper_interval,
            observer: None,
            events_sink: None,
            background: Background::new(),
        }
    }

    /// The engine's loops, and the work its handle starts, are spawned through `background`
    /// (the application's), and stop when it is cancelled. Without it the engine has its own.
    pub fn background(mut self, background: Background) -> Self {
        self.background = background;
        self
    }

    /// The gateway's events for the centre (a dead dossier, a replayed one delivered) go to
    /// queue `queue_name`, which must have a lane. Without it, no such event is made.
    pub fn events_to(mut self, queue_name: &str) -> Self {
        self.events_sink = Some(queue_name.to_string());
        self
    }

    /// Every later destination reports its attempts to `observer`.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A lane for the queue named after the adapter's destination.
    pub fn destination(self, adapter: Arc<dyn Adapter>, cfg: LaneConfig) -> Self {
        let name = adapter.destination().to_string();
        self.lane(&name, adapter, cfg)
    }

    /// A lane that drains queue `queue_name` through `adapter`, whatever the adapter's
    /// destination is called.
    pub fn lane(mut self, queue_name: &str, adapter: Arc<dyn Adapter>, cfg: LaneConfig) -> Self {
        let name = queue_name.to_string();
        let lane = Lane {
            name: name.clone(),
            observer: self.observer.clone(),
            breaker: Mutex::new(Breaker::new(cfg.breaker)),
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            wake: Notify::new(),
            events: std::sync::atomic::AtomicBool::new(false),
            cfg,
            adapter,
        };
        self.lanes.insert(name, Arc::new(lane));
        self
    }

    /// The handle without workers: an API-only process, or tests that drive the queue by hand.
    pub fn handle(&self) -> EngineHandle {
        let sink = self.events_sink.clone().filter(|s| self.lanes.contains_key(s));
        for lane in self.lanes.values() {
            lane.events
                .store(sink.is_some() && lane.adapter.tells_centre(), std::sync::atomic::Ordering::Relaxed);
        }
        EngineHandle {
            queue: self.queue.clone(),
            lanes: Arc::new(self.lanes.clone()),
            events_sink: sink,
            background: self.background.clone(),
        }
    }

    /// Starts a claim loop per destination, the reaper and the outbox relay, all through the
    /// builder's [`Background`]: they stop when it is cancelled or at [`Engine::shutdown`].
    pub fn start(self) -> Engine {
        let handle = self.handle();
        let bg = &self.background;
        let stop = bg.token().child_token();
        let hard_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut loops = Vec::new();
        for lane in handle.lanes.values() {
            loops.push(bg.spawn(claim_loop(
                handle.queue.clone(),
                lane.clone(),
                stop.clone(),
                hard_stop.clone(),
                tracker.clone(),
            )));
        }
        loops.push(bg.spawn(reaper(handle.clone(), self.reaper_interval, stop.clone())));
        if handle.events_sink.is_some() {
            loops.push(bg.spawn(relay_outboxes(handle.clone(), stop.clone())));
        }
        Engine {
            handle,
            stop,
            hard_stop,
            tracker,
            loops,
        }
    }
}

pub struct Engine {
    handle: EngineHandle,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
    loops: Vec<JoinHandle<()>>,
}

impl Engine {
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops claiming, lets in-flight deliveries finish for up to `grace`, then hands back
    /// whatever is still running (its attempt does not count) and returns.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        for l in self.loops {
            let _ = l.await;
        }
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "deliveries still running after the grace period; handing them back"
            );
            self.hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
        }
    }
}

async fn claim_loop(queue: MessageQueue, lane: Arc<Lane>, stop: CancellationToken, hard_stop: CancellationToken, tracker: TaskTracker) {
    let mut error_pause = Duration::from_millis(100);
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = lane.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        // A rate-limited lane claims only when a permit is free (asked without taking it, so
        // that polling an idle queue spends nothing), and no more than a burst at a time: the
        // leases of claimed messages run while they wait for their permits.
        let rate = lane.cfg.rate_limit_per_sec;
        if rate > 0 {
            let pause = match queue.permit(lane.adapter.destination(), rate, PermitAsk::Peek).await {
                Ok(Permit::Granted) => None,
                Ok(Permit::Wait(d)) => Some(d),
                Err(e) => {
                    tracing::warn!(destination = %lane.name, error = %e, "cannot read the rate limit");
                    Some(error_pause)
                }
            };
            if let Some(d) = pause {
                drop(first);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(d.min(Duration::from_secs(1))) => continue,
                }
            }
        }
        let gate = lane.breaker().gate(Instant::now());
        let want = match gate {
            Gate::Closed => 1 + lane.permits.available_permits(),
            Gate::Probe(n) => (n as usize).min(1 + lane.permits.available_permits()),
            Gate::Wait(d) => {
                drop(first);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(d.min(Duration::from_secs(1))) => continue,
                }
            }
        };
        let want = if rate > 0 { want.min(rate_burst(rate) as usize) } else { want };
        let now = now_ms();
        let lease_until = now + lane.cfg.lease.as_millis() as i64;
        match queue.claim(&lane.name, want, lease_until, now).await {
            Ok(batch) if batch.is_empty() => {
                if let Gate::Probe(n) = gate {
                    lane.breaker().probes_unused(n);
                }
                drop(first);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = lane.wake.notified() => {}
                    _ = tokio::time::sleep(lane.cfg.poll_interval) => {}
                }
            }
            Ok(batch) => {
                error_pause = Duration::from_millis(100);
                let mut first = Some(first);
                let probe = matches!(gate, Gate::Probe(_));
                let mut spawned = 0u32;
                for claimed in batch {
                    // Only this loop takes permits, and it asked for no more than were free.
                    let permit = match first.take() {
                        Some(p) => p,
                        None => match lane.permits.clone().try_acquire_owned() {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    spawned += 1;
                    tracker.spawn(deliver(queue.clone(), lane.clone(), claimed, probe, permit, hard_stop.clone()));
                }
                // Probes the breaker offered but no delivery carries (fewer due messages or
                // permits than probes) go back, or the half-open breaker would wait for
                // verdicts that never come.
                if let Gate::Probe(n) = gate {
                    lane.breaker().probes_unused(n.saturating_sub(spawned));
                }
            }
            Err(e) => {
                if let Gate::Probe(n) = gate {
                    lane.breaker().probes_unused(n);
                }
                drop(first);
                tracing::warn!(destination = %lane.name, error = %e, "cannot claim from the queue");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(error_pause) => {}
                }
                error_pause = (error_pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

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
fn decide(lane: &Lane, c: &Claimed, outcome: Outcome, probe: bool, now: i64) -> Settlement {
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
            lane.breaker().on_success(Instant::now(), probe);
            Settlement::Delivered
        }
        Outcome::Reject { reason } => {
            // The destination is healthy: it judged the data.
            lane.breaker().on_success(Instant::now(), probe);
            Settlement::Dead { error: reason }
        }
        Outcome::Retry { reason, after } => {
            // Judged after this failure is counted: if it opens the breaker, the long cap applies.
            let health = {
                let mut b = lane.breaker();
                let t = Instant::now();
                b.on_failure(t, probe);
                if b.destination_succeeding(t) {
                    DestinationHealth::Succeeding
                } else {
                    DestinationHealth::Failing
                }
            };
            let cfg = &lane.cfg;
            if cfg.max_attempts > 0 && c.attempts >= cfg.max_attempts {
                return Settlement::Dead {
                    error: format!("gave up after {} attempts; last error: {reason}", c.attempts),
                };
            }
            let delay = cfg.policy.next_delay(c.attempts, health, after);
            let at = now + delay.as_millis() as i64;
            if at - c.age_from > cfg.max_age.as_millis() as i64 {
                let hours = (now - c.age_from) as f64 / 3_600_000.0;
                return Settlement::Dead {
                    error: format!("gave up after {hours:.1} h and {} attempts; last error: {reason}", c.attempts),
                };
            }
            Settlement::Retry { at, error: reason }
        }
    }
}

async fn deliver(
    queue: MessageQueue,
    lane: Arc<Lane>,
    c: Claimed,
    probe: bool,
    permit: OwnedSemaphorePermit,
    hard_stop: CancellationToken,
) {
    let started = Instant::now();
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
        tokio::select! {
            r = tokio::time::timeout(bound, lane.adapter.deliver(delivery)) => Some(r.unwrap_or_else(|_| Outcome::retry("delivery did not finish in time"))),
            _ = hard_stop.cancelled() => None,
        }
    } else {
        None
    };
    let now = now_ms();
    let settlement = match outcome {
        Some(o) => decide(&lane, &c, o, probe, now),
        None => Settlement::Release,
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if let Some(o) = &lane.observer {
        o.attempt(&lane.name, &c, &settlement, started.elapsed());
    }
    match &settlement {
        Settlement::Delivered => {
            tracing::debug!(destination = %lane.name, id = %c.id, attempt = c.attempts, elapsed_ms, "delivered")
        }
        Settlement::Retry { at, error } => {
            tracing::info!(destination = %lane.name, id = %c.id, attempt = c.attempts, elapsed_ms, retry_in_ms = at - now, error = %error, "will retry")
        }
        Settlement::Dead { error } => {
            tracing::warn!(destination = %lane.name, id = %c.id, attempt = c.attempts, error = %error, "dead-lettered")
        }
        Settlement::Release => {
            tracing::info!(destination = %lane.name, id = %c.id, "handed back unattempted (shutdown, or no rate permit in time)")
        }
    }
    // Redis may blink; try the settlement a few times. If it still fails the lease runs out and
    // the message is delivered again: at least once, never lost.
    let notes = settle_notes(&lane, &c, &settlement, now);
    let settle = || queue.settle_noted(&lane.name, &c, &settlement, now, lane.cfg.retention_secs, &notes);
    let result = settle
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(6),
        )
        .await;
    match result {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(destination = %lane.name, id = %c.id, "lease was lost before settlement; another worker owns the message now")
        }
        Err(e) => {
            tracing::error!(destination = %lane.name, id = %c.id, error = %e, "cannot settle; the message will be retried after its lease")
        }
    }
    drop(permit);
    // The next message of this key may be due now.
    lane.wake.notify_one();
}

/// What the settlement records beside the message: the status it carried, when delivered; and
/// for a destination that tells the centre, the event its death (`dossier.rejected`, with the
/// already masked reason) or its delivery after a replay (`dossier.delivered`) queues. Both
/// events are written in the settlement's own atomic step, so a crash can neither lose nor
/// double one; which of them is queued is the store's decision (only a replayed message's
/// delivery queues `dossier.delivered`).
fn settle_notes(lane: &Lane, c: &Claimed, settlement: &Settlement, now: i64) -> SettleNotes {
    let delivery = Delivery {
        id: &c.id,
        kind: &c.kind,
        ordering_key: &c.ordering_key,
        payload: &c.payload,
        attempt: c.attempts,
    };
    let tells = lane.events.load(std::sync::atomic::Ordering::Relaxed);
    let event = |kind: &str, data: serde_json::Value| OutboxEvent {
        kind: kind.to_string(),
        ordering_key: c.ordering_key.clone(),
        payload: serde_json::json!({"type": kind, "timestamp": crate::timefmt::rfc3339_ms(now), "data": data}).to_string(),
    };
    match settlement {
        Settlement::Delivered => SettleNotes {
            status: lane.adapter.carried_status(&delivery),
            on_dead: None,
            on_redelivered: tells.then(|| event("dossier.delivered", serde_json::json!({"MaHoSo": c.ordering_key, "id": c.id}))),
        },
        Settlement::Dead { error } => SettleNotes {
            status: None,
            on_dead: tells.then(|| {
                event(
                    "dossier.rejected",
                    serde_json::json!({"MaHoSo": c.ordering_key, "id": c.id, "reason": redact::mask_identity_numbers(error)}),
                )
            }),
            on_redelivered: None,
        },
        Settlement::Retry { .. } | Settlement::Release => SettleNotes::default(),
    }
}

/// Moves the events that settlements wrote to the outboxes on to the centre's queue, every
/// [`OUTBOX_EVERY`], on every process (the move is idempotent, so processes may overlap).
async fn relay_outboxes(handle: EngineHandle, stop: CancellationToken) {
    let Some(sink) = handle.events_sink.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(OUTBOX_EVERY) => {}
        }
        for (name, lane) in handle.lanes.iter() {
            if !lane.events.load(std::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            match handle
                .queue
                .relay_outbox(name, &sink, OUTBOX_BATCH, OUTBOX_IDEM_SECS, now_ms())
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(queue = %name, events = n, "relayed events for the centre");
                    handle.wake(&sink);
                }
                Err(e) => tracing::warn!(queue = %name, error = %e, "cannot relay events for the centre; trying again"),
            }
        }
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
                tracing::warn!(destination = %lane.name, error = %e, "cannot reach the rate limit");
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

async fn reaper(handle: EngineHandle, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        for name in handle.lanes.keys() {
            match handle.queue.reap(name, now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(destination = %name, returned = n, "returned expired leases to the queue");
                    handle.wake(name);
                }
                Err(e) => {
                    tracing::warn!(destination = %name, error = %e, "reaper cannot reach the queue")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            breaker: Mutex::new(Breaker::new(cfg.breaker)),
            permits: Arc::new(Semaphore::new(1)),
            wake: Notify::new(),
            events: std::sync::atomic::AtomicBool::new(false),
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
        }
    }

    const PORTAL: &str = "portal refused (error_code 2): CCCD 001 203 004 567 sai\n2026-11-25T00:00:00Z  INFO forged";
    const CLEAN: &str = "portal refused (error_code 2): CCCD *** *** *** *67 sai\\n2026-11-25T00:00:00Z  INFO forged";

    #[test]
    fn outside_reasons_are_masked_and_escaped_before_they_are_stored() {
        let now = 1_000;
        assert_eq!(
            decide(&lane(0), &claimed(1), Outcome::reject(PORTAL), false, now),
            Settlement::Dead { error: CLEAN.into() }
        );
        match decide(&lane(0), &claimed(1), Outcome::retry(PORTAL), false, now) {
            Settlement::Retry { error, .. } => assert_eq!(error, CLEAN),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&lane(3), &claimed(3), Outcome::retry(PORTAL), false, now),
            Settlement::Dead {
                error: format!("gave up after 3 attempts; last error: {CLEAN}")
            }
        );
        match decide(&lane(0), &claimed(1), Outcome::reject("x".repeat(5000)), false, now) {
            Settlement::Dead { error } => assert_eq!(error.chars().count(), MAX_ERROR_CHARS + 1),
            other => panic!("{other:?}"),
        }
    }

    /// The wait a retry of attempt 8 gets from `decide` on `lane`.
    fn retry_wait(lane: &Lane) -> i64 {
        let now = 1_000;
        match decide(lane, &claimed(8), Outcome::retry("HTTP 503"), false, now) {
            Settlement::Retry { at, .. } => at - now,
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
