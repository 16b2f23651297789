//! Outages of what the gateway depends on (Redis, a destination behind its breaker, a
//! timestamp authority), logged as state changes rather than one line per failure.
//!
//! A 2-second Redis outage under load refuses thousands of requests; a line for each buries
//! the one fact an operator needs (Redis went away at 10:02:11, came back 2 s later) under
//! noise, and costs disk and log-shipping exactly when the system is under stress. So each
//! dependency has a [`Dependency`]: its first failure logs one ERROR with the error that
//! started it (escaped), every failure meanwhile is counted
//! (`hcc_dependency_failures_total{dependency,caller}`), one WARN summary is written at most
//! every [`SUMMARY_EVERY`] while failures keep coming, and the first success logs the recovery
//! once, with how long it lasted and what it cost. `hcc_dependency_up{dependency}` is 1 or 0.
//!
//! The summary is written by the failure that finds the last line old enough, not by a timer:
//! no task to own, and a dependency nobody calls while it is down has nothing to summarise
//! (the recovery line carries the totals).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::redact::Escaped;

/// At most one "still unavailable" line per dependency this often while it is down.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// The label of the store's dependency: Redis (or the embedded memory store, which never fails).
pub const REDIS: &str = "redis";

/// Who met the failure: a request the gateway refused, or its own background work (a claim, a
/// settlement, a poll) that will try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Request,
    Background,
}

impl Caller {
    fn label(self) -> &'static str {
        match self {
            Caller::Request => "request",
            Caller::Background => "background",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabel {
    dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabel {
    dependency: String,
    caller: String,
}

/// Every dependency of one gateway, and their metrics. Cheap to share (`Arc`); one per
/// application, like the metrics registry it is registered in.
#[derive(Default)]
pub struct Outages {
    failures: Family<FailureLabel, Counter>,
    up: Family<DependencyLabel, Gauge>,
    known: Mutex<BTreeMap<String, Arc<Dependency>>>,
}

impl Outages {
    pub fn new() -> Arc<Self> {
        Arc::new(Outages::default())
    }

    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "hcc_dependency_failures",
            "Failures met while calling a dependency (redis, a destination's breaker, a timestamp authority), by who met them: a refused request or background work",
            self.failures.clone(),
        );
        registry.register(
            "hcc_dependency_up",
            "Whether a dependency answers (1) or is in an outage (0), as this process last saw it",
            self.up.clone(),
        );
    }

    /// The dependency labelled `label` (a bounded set: `redis`, `tsa`, `evidence_tsa`,
    /// `breaker:<destination>`), named `name` in log lines; made (up) on first use.
    pub fn dependency(&self, label: &str, name: &str) -> Arc<Dependency> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .entry(label.to_string())
            .or_insert_with(|| {
                let counter = |caller: Caller| {
                    self.failures
                        .get_or_create(&FailureLabel {
                            dependency: label.into(),
                            caller: caller.label().into(),
                        })
                        .clone()
                };
                let up = self.up.get_or_create(&DependencyLabel { dependency: label.into() }).clone();
                up.set(1);
                Arc::new(Dependency {
                    name: name.to_string(),
                    label: label.to_string(),
                    down: AtomicBool::new(false),
                    state: Mutex::new(State::Up),
                    refused: counter(Caller::Request),
                    failed: counter(Caller::Background),
                    up,
                })
            })
            .clone()
    }

    /// The store's dependency.
    pub fn redis(&self) -> Arc<Dependency> {
        self.dependency(REDIS, "Redis")
    }
}

/// One dependency's state. Reporting a success is one atomic load while it is up, so the hot
/// paths (every claim, every settlement) report freely.
pub struct Dependency {
    name: String,
    label: String,
    down: AtomicBool,
    state: Mutex<State>,
    refused: Counter,
    failed: Counter,
    up: Gauge,
}

impl std::fmt::Debug for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependency").field("label", &self.label).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Up,
    Down(Outage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outage {
    since: Instant,
    /// When the last line about it was written (its start, or the last summary).
    last_line: Instant,
    refused_total: u64,
    failed_total: u64,
    refused_since_line: u64,
    failed_since_line: u64,
}

/// What one report makes the dependency write, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Down,
    StillDown { refused: u64, failed: u64, over: Duration },
    Back { after: Duration, refused: u64, failed: u64 },
}

impl State {
    fn on_failure(&mut self, caller: Caller, now: Instant) -> Option<Line> {
        let (refused, failed) = match caller {
            Caller::Request => (1, 0),
            Caller::Background => (0, 1),
        };
        match self {
            State::Up => {
                *self = State::Down(Outage {
                    since: now,
                    last_line: now,
                    refused_total: refused,
                    failed_total: failed,
                    refused_since_line: 0,
                    failed_since_line: 0,
                });
                Some(Line::Down)
            }
            State::Down(o) => {
                o.refused_total += refused;
                o.failed_total += failed;
                o.refused_since_line += refused;
                o.failed_since_line += failed;
                let over = now.saturating_duration_since(o.last_line);
                if over < SUMMARY_EVERY {
                    return None;
                }
                let line = Line::StillDown {
                    refused: std::mem::take(&mut o.refused_since_line),
                    failed: std::mem::take(&mut o.failed_since_line),
                    over,
                };
                o.last_line = now;
                Some(line)
            }
        }
    }

    /// A call begun at `started` succeeded at `now`. A call begun before the outage does not
    /// end it: its answer may have been on its way before the dependency went (a reply already
    /// in a socket's buffer while new connections are refused), and taking it for a recovery
    /// would write a false "back" line and a second "down" line milliseconds apart.
    fn on_success(&mut self, started: Instant, now: Instant) -> Option<Line> {
        if let State::Down(o) = self
            && started < o.since
        {
            return None;
        }
        match std::mem::replace(self, State::Up) {
            State::Up => None,
            State::Down(o) => Some(Line::Back {
                after: now.saturating_duration_since(o.since),
                refused: o.refused_total,
                failed: o.failed_total,
            }),
        }
    }
}

impl Dependency {
    /// A detached dependency (its metrics in no registry), for code built without an
    /// application: tests, tools.
    pub fn detached(label: &str, name: &str) -> Arc<Self> {
        Outages::default().dependency(label, name)
    }

    /// A request was refused because of it; `cause` is the error (outside text, escaped here).
    pub fn refused(&self, cause: &dyn Display) {
        self.refused.inc();
        self.failure(Caller::Request, cause);
    }

    /// Background work failed because of it and will try again.
    pub fn failed(&self, cause: &dyn Display) {
        self.failed.inc();
        self.failure(Caller::Background, cause);
    }

    /// It was judged working just now (a breaker that closed, a timestamp token that came).
    pub fn ok(&self) {
        self.ok_since(Instant::now());
    }

    /// A call to it begun at `started` succeeded: it ends an outage only if it began after the
    /// outage did (see `State::on_success`).
    pub fn ok_since(&self, started: Instant) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let line = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let line = s.on_success(started, Instant::now());
            self.down.store(*s != State::Up, Ordering::Relaxed);
            line
        };
        if let Some(Line::Back { after, refused, failed }) = line {
            self.up.set(1);
            tracing::warn!(
                dependency = %self.label,
                down_ms = after.as_millis() as u64,
                refused,
                failed,
                "{} is available again after {:.1} s; meanwhile {refused} requests were refused and {failed} background operations failed",
                self.name,
                after.as_secs_f64(),
            );
        }
    }

    /// A store error met by background work that will try again: the store not answering is
    /// this dependency's outage; a reply of the wrong shape is a fault, logged each time with
    /// `what` was being done; a write replicas did not confirm is the store's to report (it
    /// counts it in `hcc_queue_unreplicated_writes_total` and warns, rate-limited).
    pub fn store_failed(&self, e: &crate::storage::StorageError, what: &'static str) {
        use crate::storage::StorageError;
        match e {
            StorageError::Unavailable(_) | StorageError::Access { .. } => self.failed(e),
            StorageError::Corrupt(_) => tracing::error!(error = %e, "{what}"),
            StorageError::NotReplicated { .. } => tracing::debug!(error = %e, "{what}"),
        }
    }

    /// Whether it is in an outage now, as this process last saw it.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn failure(&self, caller: Caller, cause: &dyn Display) {
        let line = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            self.down.store(true, Ordering::Relaxed);
            s.on_failure(caller, Instant::now())
        };
        match line {
            Some(Line::Down) => {
                self.up.set(0);
                let cause = cause.to_string();
                tracing::error!(
                    alarm = true,
                    dependency = %self.label,
                    error = %Escaped(&cause),
                    "{} is unavailable; what needs it is refused or retried, and counted, until it answers again (one summary every {} s)",
                    self.name,
                    SUMMARY_EVERY.as_secs(),
                );
            }
            Some(Line::StillDown { refused, failed, over }) => {
                tracing::warn!(
                    dependency = %self.label,
                    refused,
                    failed,
                    "{} still unavailable: {refused} requests refused and {failed} background operations failed in the last {:.0} s",
                    self.name,
                    over.as_secs_f64(),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Down once, a summary at most every SUMMARY_EVERY however many failures, back once.
    #[test]
    fn an_outage_is_three_kinds_of_line_whatever_its_failures() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = State::Up;
        assert_eq!(s.on_success(at(0), at(0)), None);
        assert_eq!(s.on_failure(Caller::Request, at(0)), Some(Line::Down));
        let mut lines = Vec::new();
        // 10,000 failures over 12 s: one a millisecond-and-a-bit.
        for i in 1..=10_000u64 {
            let caller = if i % 10 == 0 { Caller::Background } else { Caller::Request };
            if let Some(l) = s.on_failure(caller, at(i * 12 / 10)) {
                lines.push(l);
            }
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        let Line::StillDown { refused, failed, over } = &lines[0] else {
            panic!("{lines:?}")
        };
        assert!(*over >= SUMMARY_EVERY && *over < SUMMARY_EVERY + Duration::from_millis(5));
        assert_eq!(refused + failed, 4_167);
        assert_eq!(
            s.on_success(at(12_999), at(13_000)),
            Some(Line::Back {
                after: Duration::from_secs(13),
                refused: 9_001,
                failed: 1_000
            })
        );
        assert_eq!(s.on_success(at(13_001), at(13_001)), None);
        // A new outage starts afresh.
        assert_eq!(s.on_failure(Caller::Background, at(14_000)), Some(Line::Down));
        // The answer to a call sent before it began (however late it comes) does not end it.
        assert_eq!(s.on_success(at(13_999), at(14_004)), None);
        assert_eq!(s.on_success(at(13_500), at(20_000)), None);
        assert!(matches!(s, State::Down(_)));
        assert_eq!(s.on_failure(Caller::Request, at(14_010)), None, "still the same outage");
        // A call sent after it began, even 1 ms after, does.
        assert!(matches!(s.on_success(at(14_001), at(14_003)), Some(Line::Back { .. })));
    }

    #[test]
    fn metrics_follow_the_state() {
        let outages = Outages::default();
        let mut registry = Registry::default();
        outages.register(&mut registry);
        let redis = outages.redis();
        redis.refused(&"connection refused");
        redis.refused(&"connection refused");
        redis.failed(&"connection refused\nforged line");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("hcc_dependency_up{dependency=\"redis\"} 0"), "{text}");
        assert!(
            text.contains("hcc_dependency_failures_total{dependency=\"redis\",caller=\"request\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("hcc_dependency_failures_total{dependency=\"redis\",caller=\"background\"} 1"),
            "{text}"
        );
        assert!(redis.is_down());
        let sent_before = Instant::now() - Duration::from_secs(1);
        redis.ok_since(sent_before);
        assert!(redis.is_down(), "an answer to a call sent before the outage ends nothing");
        redis.ok_since(Instant::now());
        assert!(!redis.is_down());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("hcc_dependency_up{dependency=\"redis\"} 1"), "{text}");
        // The same dependency, asked for again, is the same one.
        assert!(Arc::ptr_eq(&redis, &outages.redis()));
    }
}
