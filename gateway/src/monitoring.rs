//! What operators see of the gateway besides the JSON API and the logs (`logging.rs`):
//! Prometheus metrics, the audit log and the dashboard's history. Metrics live in a registry per application (no global state, so several gateways in
//! one test process do not mix). Audit lines are queued to a background writer that appends
//! them to the store's audit log in batches, off the delivery hot path; the log keeps the newest
//! `AUDIT_KEEP` lines.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::background::Background;
use crate::engine::{EngineHandle, Observer};
use crate::redact::mask_identity_numbers;
use crate::storage::{AuditLog, Claimed, Disposition, StorageError, now_ms};

/// How many audit lines the log keeps.
pub const AUDIT_KEEP: usize = 200_000;
const AUDIT_BUFFER: usize = 50_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dest {
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Attempt {
    destination: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueState {
    queue: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Http {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaymentLabel {
    provider: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AuditLine {
    pub at: String,
    /// `engine`, an API key's name, or `provider:<name>`.
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub detail: String,
}

pub struct Monitoring {
    registry: Registry,
    attempts: Family<Attempt, Counter>,
    latency: Family<Dest, Histogram>,
    depth: Family<QueueState, Gauge>,
    oldest: Family<Dest, Gauge<f64, AtomicU64>>,
    breaker: Family<Dest, Gauge>,
    http: Family<Http, Counter>,
    payments: Family<PaymentLabel, Counter>,
    bank_unmatched: Family<ReasonLabel, Counter>,
    bank_unmatched_open: Family<ReasonLabel, Gauge>,
    pending_overdue: Family<ProviderLabel, Gauge>,
    unreplicated: Counter,
    audit_dropped: Counter,
    audit: mpsc::Sender<AuditLine>,
    audit_log: AuditLog,
    /// The evidence log's counters, when it is on; read at each scrape.
    evidence: std::sync::OnceLock<Arc<crate::evidence::Shared>>,
    evidence_gauges: EvidenceGauges,
    /// Redis, the destinations' breakers, the timestamp authorities: their outages.
    outages: Arc<crate::outage::Outages>,
    /// The store, for the figures it keeps itself (writes refused as not replicated).
    store: std::sync::OnceLock<crate::storage::Store>,
    /// The payment ledger, when payments are on: its open unmatched bank money, and its
    /// overdue pending payments by the reconciling providers' terms and the grace.
    ledger: std::sync::OnceLock<LedgerWatch>,
}

struct LedgerWatch {
    ledger: crate::storage::PaymentLedger,
    overdue: Vec<crate::storage::ledger::overdue::OverdueTerms>,
    grace: Duration,
}

/// The evidence log's figures (all 0 while it is off).
#[derive(Default)]
struct EvidenceGauges {
    records: Gauge,
    dropped: Gauge,
    stamps: Gauge,
    stamp_failures: Gauge,
    write_errors: Gauge,
    unstamped: Gauge<f64, AtomicU64>,
}

impl Monitoring {
    /// Builds the registry and starts the audit writer on `audit_log`, on its own: it stops when
    /// the last [`Monitoring`] is dropped (tests, tools).
    pub fn start(audit_log: AuditLog) -> Arc<Self> {
        Self::start_in(audit_log, &Background::new())
    }

    /// Builds the registry and starts the audit writer on `audit_log` as a sink of
    /// `background`: at shutdown it writes every line queued before the tasks finished, then
    /// stops.
    pub fn start_in(audit_log: AuditLog, background: &Background) -> Arc<Self> {
        let mut registry = Registry::default();
        let attempts = Family::<Attempt, Counter>::default();
        let latency = Family::<Dest, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let depth = Family::<QueueState, Gauge>::default();
        let oldest = Family::<Dest, Gauge<f64, AtomicU64>>::default();
        let breaker = Family::<Dest, Gauge>::default();
        let http = Family::<Http, Counter>::default();
        let payments = Family::<PaymentLabel, Counter>::default();
        let bank_unmatched = Family::<ReasonLabel, Counter>::default();
        let bank_unmatched_open = Family::<ReasonLabel, Gauge>::default();
        // Every reason from the start, at 0: the alert and the dashboard name the series.
        for r in hcc_adapters::payments::UnmatchedReason::ALL {
            bank_unmatched_open.get_or_create(&ReasonLabel { reason: r.as_str().into() }).set(0);
        }
        let pending_overdue = Family::<ProviderLabel, Gauge>::default();
        let unreplicated = Counter::default();
        let audit_dropped = Counter::default();
        registry.register(
            "hcc_delivery_attempts",
            "Delivery attempts by destination and outcome",
            attempts.clone(),
        );
        registry.register("hcc_delivery_duration_seconds", "Time one delivery attempt took", latency.clone());
        registry.register("hcc_queue_messages", "Messages per queue and state", depth.clone());
        registry.register(
            "hcc_queue_oldest_ready_age_seconds",
            "How long the oldest claimable message has waited",
            oldest.clone(),
        );
        registry.register(
            "hcc_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            breaker.clone(),
        );
        registry.register("hcc_http_requests", "HTTP requests by route, method and status", http.clone());
        registry.register(
            "hcc_payments",
            "Payments that entered each state, by provider (this process)",
            payments.clone(),
        );
        registry.register(
            "hcc_bank_unmatched",
            "Bank credits and reversals that paid or reversed nothing, kept for a person, by reason (this process)",
            bank_unmatched.clone(),
        );
        registry.register(
            "hcc_bank_unmatched_open",
            "Bank credits and reversals in the unmatched list still open (waiting for a finance officer), by reason (the store's count)",
            bank_unmatched_open.clone(),
        );
        registry.register(
            "hcc_payments_pending_overdue",
            "Pending payments past their provider's lifetime and payments.expire_grace_minutes that reconciliation has not settled or expired, by reconciling provider (the store's count)",
            pending_overdue.clone(),
        );
        registry.register(
            "hcc_queue_unreplicated_writes",
            "Writes refused (503) because fewer than queue.min_replicas replicas confirmed them in time (this process)",
            unreplicated.clone(),
        );
        registry.register(
            "hcc_audit_dropped",
            "Audit lines dropped because the writer fell behind",
            audit_dropped.clone(),
        );
        let evidence_gauges = EvidenceGauges::default();
        for (name, help, gauge) in [
            (
                "hcc_evidence_records",
                "Records this process wrote to the evidence log",
                &evidence_gauges.records,
            ),
            (
                "hcc_evidence_dropped",
                "Exchanges the evidence log could not take (its memory budget full, or its folder unwritable), written as gaps",
                &evidence_gauges.dropped,
            ),
            (
                "hcc_evidence_stamps",
                "Timestamp tokens added to this process's evidence chain",
                &evidence_gauges.stamps,
            ),
            (
                "hcc_evidence_stamp_failures",
                "Times the timestamp authority gave no token for the evidence chain",
                &evidence_gauges.stamp_failures,
            ),
            (
                "hcc_evidence_write_errors",
                "Failed writes to the evidence log's files",
                &evidence_gauges.write_errors,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "hcc_evidence_unstamped_age_seconds",
            "How long the oldest evidence record no timestamp token covers has waited (0: every record is covered)",
            evidence_gauges.unstamped.clone(),
        );
        let outages = crate::outage::Outages::new();
        outages.register(&mut registry);
        crate::telemetry::register(&mut registry);
        let (tx, rx) = mpsc::channel(AUDIT_BUFFER);
        let log = audit_log.clone();
        let redis = outages.redis();
        background.spawn_sink(move |flush| audit_writer(log, redis, rx, flush));
        Arc::new(Monitoring {
            registry,
            attempts,
            latency,
            depth,
            oldest,
            breaker,
            http,
            payments,
            bank_unmatched,
            bank_unmatched_open,
            pending_overdue,
            unreplicated,
            audit_dropped,
            audit: tx,
            audit_log,
            evidence: std::sync::OnceLock::new(),
            evidence_gauges,
            outages,
            store: std::sync::OnceLock::new(),
            ledger: std::sync::OnceLock::new(),
        })
    }

    /// Shows the store's own figures from now on (`hcc_queue_unreplicated_writes_total`).
    pub fn attach_store(&self, store: crate::storage::Store) {
        let _ = self.store.set(store);
    }

    /// Shows the payment ledger's figures from now on: its open unmatched bank money
    /// (`hcc_bank_unmatched_open`; without a ledger every reason reads 0) and the pending
    /// payments of `overdue`'s providers past their lifetime and `grace`
    /// (`hcc_payments_pending_overdue`, every such provider at 0 from now).
    pub fn attach_ledger(
        &self,
        ledger: crate::storage::PaymentLedger,
        overdue: Vec<crate::storage::ledger::overdue::OverdueTerms>,
        grace: Duration,
    ) {
        for t in &overdue {
            self.pending_overdue
                .get_or_create(&ProviderLabel {
                    provider: t.provider.into(),
                })
                .set(0);
        }
        let _ = self.ledger.set(LedgerWatch { ledger, overdue, grace });
    }

    /// Shows the evidence log's figures from now on.
    pub fn attach_evidence(&self, shared: Arc<crate::evidence::Shared>) {
        let _ = shared.tsa.set(
            self.outages
                .dependency(crate::evidence::EVIDENCE_TSA, crate::evidence::EVIDENCE_TSA_NAME),
        );
        let _ = self.evidence.set(shared);
    }

    /// The dependencies' outages (see [`crate::outage`]).
    pub fn outages(&self) -> &Arc<crate::outage::Outages> {
        &self.outages
    }

    /// The log the audit lines are written to, for reading them back.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit_log
    }

    pub fn audit(&self, actor: &str, action: &str, target: &str, detail: &str) {
        let line = AuditLine {
            at: crate::timefmt::rfc3339_ms(now_ms()),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail: mask_identity_numbers(detail),
        };
        if self.audit.try_send(line).is_err() {
            self.audit_dropped.inc();
        }
    }

    /// Counts one answered request. `route` must come from a bounded set (a route pattern or
    /// `unmatched`); the method is the caller's token, so only the standard methods keep their
    /// name and any other is `other`: invented methods must not grow the series without limit.
    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        self.http
            .get_or_create(&Http {
                route: route.into(),
                method: http_method_label(method).into(),
                status: status.to_string(),
            })
            .inc();
    }

    /// A payment of `provider` (a configured provider's id: a bounded set) entered `state`.
    pub fn payment_state(&self, provider: &str, state: &str) {
        self.payments
            .get_or_create(&PaymentLabel {
                provider: provider.into(),
                state: state.into(),
            })
            .inc();
    }

    /// A bank credit or reversal kept in the unmatched list, by reason.
    pub fn bank_unmatched(&self, reason: &str) {
        self.bank_unmatched.get_or_create(&ReasonLabel { reason: reason.into() }).inc();
    }

    /// The Prometheus text, with the queue gauges read fresh from the backend.
    pub async fn render(&self, engine: &EngineHandle) -> Result<String, StorageError> {
        let now = now_ms();
        for name in engine.destinations() {
            let asked = std::time::Instant::now();
            let s = engine.queue.stats(name, now).await?;
            self.outages.redis().ok_since(asked);
            for (state, n) in [
                ("ready", s.ready),
                ("scheduled", s.scheduled),
                ("in_flight", s.in_flight),
                ("dead", s.dead),
                ("blocked", s.blocked),
            ] {
                self.depth
                    .get_or_create(&QueueState {
                        queue: name.into(),
                        state: state.into(),
                    })
                    .set(n as i64);
            }
            self.depth
                .get_or_create(&QueueState {
                    queue: name.into(),
                    state: "delivered_total".into(),
                })
                .set(s.delivered_total as i64);
            self.oldest
                .get_or_create(&Dest { destination: name.into() })
                .set(s.oldest_ready_age_seconds);
            if let Some(b) = engine.breaker_state(name) {
                self.breaker
                    .get_or_create(&Dest { destination: name.into() })
                    .set(b.as_gauge() as i64);
            }
        }
        if let Some(store) = self.store.get() {
            // The store counts; the counter shows its figure (it only grows).
            self.unreplicated
                .inner()
                .store(store.unreplicated_writes(), std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(watch) = self.ledger.get() {
            let open = watch.ledger.unmatched_open_by_reason().await?;
            for r in hcc_adapters::payments::UnmatchedReason::ALL {
                let n = open.get(r.as_str()).copied().unwrap_or(0);
                self.bank_unmatched_open
                    .get_or_create(&ReasonLabel { reason: r.as_str().into() })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if !watch.overdue.is_empty() {
                let overdue = watch.ledger.pending_overdue(&watch.overdue, watch.grace, now).await?;
                for (provider, n) in overdue {
                    self.pending_overdue
                        .get_or_create(&ProviderLabel { provider })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        if let Some(e) = self.evidence.get() {
            use std::sync::atomic::Ordering::Relaxed;
            let g = &self.evidence_gauges;
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            g.records.set(n(e.written.load(Relaxed)));
            g.dropped.set(n(e.dropped()));
            g.stamps.set(n(e.stamps.load(Relaxed)));
            g.stamp_failures.set(n(e.stamp_failures.load(Relaxed)));
            g.write_errors.set(n(e.write_errors.load(Relaxed)));
            g.unstamped.set(e.unstamped_secs(now));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(out)
    }
}

impl Observer for Monitoring {
    fn attempt(&self, destination: &str, c: &Claimed, settlement: &Disposition, elapsed: Duration) {
        let (outcome, detail) = match settlement {
            Disposition::Delivered => ("delivered", String::new()),
            Disposition::Retry { error, .. } => ("retry", error.clone()),
            Disposition::Dead { error } => ("dead", error.clone()),
            Disposition::Release => ("handed_back", String::new()),
        };
        self.attempts
            .get_or_create(&Attempt {
                destination: destination.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.latency
            .get_or_create(&Dest {
                destination: destination.into(),
            })
            .observe(elapsed.as_secs_f64());
        self.audit(
            "engine",
            &format!("delivery.{outcome}"),
            &format!("{destination}/{} attempt {}", c.id, c.attempts),
            &detail,
        );
    }
}

/// The `method` label: the methods of RFC 9110 and PATCH by name, anything else `other`.
/// Method tokens are case-sensitive, so `get` is `other` too.
pub fn http_method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// Appends the queued lines in batches until every sender is gone, or until `flush` is
/// cancelled: then it takes no new line, writes those already queued, and returns.
async fn audit_writer(
    audit_log: AuditLog,
    redis: Arc<crate::outage::Dependency>,
    mut rx: mpsc::Receiver<AuditLine>,
    flush: CancellationToken,
) {
    let mut batch = Vec::with_capacity(512);
    let mut closed = false;
    loop {
        let first = tokio::select! {
            biased;
            line = rx.recv() => match line {
                Some(l) => l,
                None => break,
            },
            // Closing the channel keeps what is queued: `recv` hands it out, then ends.
            _ = flush.cancelled(), if !closed => {
                rx.close();
                closed = true;
                continue;
            }
        };
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(l) => batch.push(l),
                Err(_) => break,
            }
        }
        let lines: Vec<String> = batch.drain(..).filter_map(|l| serde_json::to_string(&l).ok()).collect();
        // Redis may blink: a few tries, then the batch is dropped with a warning rather than
        // stalling every later line.
        for attempt in 0..5 {
            let asked = std::time::Instant::now();
            match audit_log.append(&lines, AUDIT_KEEP).await {
                Ok(()) => {
                    redis.ok_since(asked);
                    break;
                }
                Err(e) => {
                    redis.failed(&e);
                    if attempt == 4 {
                        // Lines lost, not merely late: worth a line of its own (one per batch,
                        // and the tries before it take seconds).
                        tracing::warn!(error = %e, lines = lines.len(), "audit lines could not be written");
                    } else {
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
        }
    }
}

/// Queue depths sampled every `HISTORY_EVERY` for the last hour, for the dashboard's charts.
/// Each process keeps its own; they all read the same shared queues.
pub const HISTORY_EVERY: Duration = Duration::from_secs(15);
const HISTORY_KEEP: usize = 240;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueuePoint {
    pub waiting: u64,
    pub dead: u64,
    pub oldest_ready_age_seconds: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sample {
    pub at: String,
    pub queues: std::collections::BTreeMap<String, QueuePoint>,
}

#[derive(Default)]
pub struct History {
    samples: std::sync::Mutex<std::collections::VecDeque<Sample>>,
}

impl History {
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// `redis` hears when the store answers: every process samples, so even one without workers
    /// sees the store come back within [`HISTORY_EVERY`].
    async fn take(&self, engine: &EngineHandle, redis: &crate::outage::Dependency) {
        let now = now_ms();
        let mut queues = std::collections::BTreeMap::new();
        for name in engine.destinations() {
            let asked = std::time::Instant::now();
            if let Ok(s) = engine.queue.stats(name, now).await {
                redis.ok_since(asked);
                queues.insert(
                    name.to_string(),
                    QueuePoint {
                        waiting: s.ready + s.scheduled + s.in_flight,
                        dead: s.dead,
                        oldest_ready_age_seconds: s.oldest_ready_age_seconds,
                    },
                );
            }
        }
        if let Ok(mut s) = self.samples.lock() {
            s.push_back(Sample {
                at: crate::timefmt::rfc3339_ms(now),
                queues,
            });
            while s.len() > HISTORY_KEEP {
                s.pop_front();
            }
        }
    }
}

pub async fn sample_history(history: Arc<History>, engine: EngineHandle, redis: Arc<crate::outage::Dependency>, stop: CancellationToken) {
    loop {
        history.take(&engine, &redis).await;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(HISTORY_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::http_method_label;

    #[test]
    fn only_standard_methods_keep_their_name() {
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] {
            assert_eq!(http_method_label(m), m);
        }
        for m in ["get", "BREW", "PROPFIND", "X-1", ""] {
            assert_eq!(http_method_label(m), "other");
        }
    }
}
