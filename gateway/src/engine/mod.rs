//! The delivery engine: one engine drives every destination. For each queue ("lane") a claim
//! loop takes due messages in batches under a lease, hands each to the adapter that delivers
//! that queue, and settles the outcome: delivered, retried later on the backoff
//! schedule, or dead-lettered. A reaper returns the leases of lost workers to the queue. The
//! circuit breaker, the concurrency limit, a destination's shared rate limit and graceful
//! shutdown live here too, so an adapter never has to think about any of them.
//!
//! # Layout
//!
//! - this file: a lane's configuration and state, the [`EngineBuilder`], the [`Engine`] and
//!   its shutdown, and the [`EngineHandle`] the HTTP side holds;
//! - `lane`: the claim loop, the shared rate limit's permits, and the reaper;
//! - `settle`: one delivery, the decision on its outcome, and its settlement with what it
//!   records beside the message;
//! - `outbox`: the relay of the centre's events from the outboxes to the centre's queue;
//! - [`breaker`]: the circuit breaker; [`policy`]: the retry schedule.

pub mod breaker;
mod lane;
mod outbox;
pub mod policy;
mod settle;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcc_adapters::Adapter;
use hcc_adapters::evidence::Recorder;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::breaker::{Breaker, BreakerConfig, BreakerState};
use self::policy::RetryPolicy;
use crate::background::Background;
use crate::outage::{Dependency, Outages};
use crate::storage::{Claimed, Disposition, MessageQueue};

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
    /// The evidence log, told of every exchange an attempt makes, with the attempt's outcome.
    evidence: Option<Arc<dyn Recorder>>,
    cfg: LaneConfig,
    adapter: Arc<dyn Adapter>,
    breaker: Mutex<Breaker>,
    wake: Notify,
    permits: Arc<Semaphore>,
    /// The centre's events are on and this lane's adapter tells the centre (set at start).
    events: std::sync::atomic::AtomicBool,
    /// The store, told of every claim, settlement and poll that fails or gets through, so an
    /// outage is logged once (see [`crate::outage`]).
    redis: Arc<Dependency>,
    /// The destination as its breaker sees it: down while the breaker is open or half-open.
    outage: Arc<Dependency>,
}

impl Lane {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sees every settled attempt: metrics and the audit log hang here, outside the engine.
pub trait Observer: Send + Sync {
    fn attempt(&self, destination: &str, claimed: &Claimed, settlement: &Disposition, elapsed: Duration);
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
    /// The store's outages, as the engine's loops meet them.
    redis: Arc<Dependency>,
}

impl EngineHandle {
    /// The store as a dependency: background work that uses the queue reports to it.
    pub fn redis(&self) -> &Arc<Dependency> {
        &self.redis
    }

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
    evidence: Option<Arc<dyn Recorder>>,
    events_sink: Option<String>,
    background: Background,
    outages: Arc<Outages>,
}

impl EngineBuilder {
    pub fn new(queue: MessageQueue, reaper_interval: Duration) -> Self {
        EngineBuilder {
            queue,
            lanes: BTreeMap::new(),
            reaper_interval,
            observer: None,
            evidence: None,
            events_sink: None,
            background: Background::new(),
            outages: Outages::new(),
        }
    }

    /// Every later lane reports the store's outages and its breaker's to `outages` (the
    /// application's, whose metrics are on `/metrics`). Without it the engine keeps its own.
    pub fn outages(mut self, outages: Arc<Outages>) -> Self {
        self.outages = outages;
        self
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

    /// Every later lane tells `evidence` of the exchanges its attempts make.
    pub fn evidence(mut self, evidence: Option<Arc<dyn Recorder>>) -> Self {
        self.evidence = evidence;
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
            evidence: self.evidence.clone(),
            breaker: Mutex::new(Breaker::new(cfg.breaker)),
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            wake: Notify::new(),
            events: std::sync::atomic::AtomicBool::new(false),
            redis: self.outages.redis(),
            outage: self.outages.dependency(
                &format!("breaker:{name}"),
                &format!("the destination of queue {name} (its breaker is open)"),
            ),
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
            redis: self.outages.redis(),
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
            loops.push(bg.spawn(lane::claim_loop(
                handle.queue.clone(),
                lane.clone(),
                stop.clone(),
                hard_stop.clone(),
                tracker.clone(),
            )));
        }
        loops.push(bg.spawn(lane::reaper(handle.clone(), self.reaper_interval, stop.clone())));
        if handle.events_sink.is_some() {
            loops.push(bg.spawn(outbox::relay_outboxes(handle.clone(), stop.clone())));
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
