//! The evidence log: a hash-chained record of every exchange with the outside, timestamped in
//! batches by an RFC 3161 authority, so that what crossed the boundary, and when, can be shown
//! later to someone who does not trust the gateway (docs/evidence.md).
//!
//! - [`record`]: the line format, shared by the writer, the verifier and the API;
//! - [`writer`]: one process's chain, written in the background, rotated daily, stamped;
//! - [`verify`]: `hcc-gateway evidence verify`, the whole check of the files;
//! - [`read`]: finding records for `GET /v1/evidence`.
//!
//! Exchanges reach the log through [`hcc_adapters::evidence::Recorder`], which [`Evidence`]
//! implements: the engine and the payments open a scope around work that talks to the outside,
//! the adapters' HTTP calls note what they send and receive, and callbacks and pushes are
//! recorded by their routes. Recording never waits: a record that does not fit the memory
//! budget is counted and written as a gap.

pub mod read;
pub mod record;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use hcc_adapters::evidence::{Direction, Exchange, Label, Recorder, Subject};
use hcc_config::{Problem, Settings};
use hcc_signing::pki::TrustStore;
use tokio::sync::mpsc;

use self::record::{Record, kind};
use crate::background::Background;
use crate::tsa::TsaClient;

/// The `[evidence]` section.
pub const SECTION: &str = "evidence";

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceSettings {
    pub enabled: bool,
    /// The folder of the chain files (one chain per process).
    pub dir: String,
    /// The RFC 3161 authority (http or https); empty: records are chained but never stamped.
    pub tsa_url: String,
    /// The PEM certificate the authority's tokens must chain to (required with `tsa_url`).
    pub tsa_ca: String,
    /// How often the chain head is stamped.
    pub batch_secs: u64,
    /// The memory records may take while they wait for the writer; more are counted as a gap.
    pub max_pending_bytes: usize,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            enabled: false,
            dir: "data/evidence".into(),
            tsa_url: String::new(),
            tsa_ca: String::new(),
            batch_secs: 60,
            max_pending_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The `[evidence]` section, checked.
pub fn settings(s: &Settings) -> Result<EvidenceSettings, Vec<Problem>> {
    let e: EvidenceSettings = hcc_adapters::payments::parse_section(s.section(SECTION))?;
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: &str| {
        problems.push(Problem {
            key: format!("{SECTION}.{key}"),
            message: message.into(),
        })
    };
    if e.enabled {
        if e.dir.trim().is_empty() {
            problem("dir", "must name a folder");
        }
        if !(1..=86_400).contains(&e.batch_secs) {
            problem("batch_secs", "must be from 1 to 86400");
        }
        if !(1024 * 1024..=4 * 1024 * 1024 * 1024).contains(&e.max_pending_bytes) {
            problem("max_pending_bytes", "must be from 1 MiB to 4 GiB");
        }
        if !e.tsa_url.trim().is_empty() {
            if let Err(err) = TsaClient::try_new(e.tsa_url.trim(), crate::tsa::DEFAULT_TIMEOUT) {
                problem("tsa_url", &err.to_string());
            }
            if e.tsa_ca.trim().is_empty() {
                problem(
                    "tsa_ca",
                    "is required with evidence.tsa_url: the tokens must chain to a configured certificate",
                );
            } else if let Err(err) = TrustStore::pinned_from_file(Path::new(e.tsa_ca.trim())) {
                problem("tsa_ca", &err.to_string());
            }
        }
    }
    if problems.is_empty() { Ok(e) } else { Err(problems) }
}

/// What `config check` adds for the `[evidence]` section.
pub fn settings_problems(s: &Settings) -> Vec<Problem> {
    settings(s).err().unwrap_or_default()
}

/// The authority's anchor: `evidence.tsa_ca`, pinned.
pub fn anchor(e: &EvidenceSettings) -> Result<Option<TrustStore>, String> {
    if e.tsa_ca.trim().is_empty() {
        return Ok(None);
    }
    TrustStore::pinned_from_file(Path::new(e.tsa_ca.trim()))
        .map(Some)
        .map_err(|err| format!("evidence.tsa_ca: {err}"))
}

/// The evidence authority's label and name as a dependency.
pub const EVIDENCE_TSA: &str = "evidence_tsa";
pub const EVIDENCE_TSA_NAME: &str = "the evidence log's timestamp authority";

/// The counters the writer keeps and `/metrics` shows.
#[derive(Debug, Default)]
pub struct Shared {
    pub instance: String,
    pub pending_bytes: AtomicUsize,
    /// Records refused since the last gap record.
    pub dropped: AtomicU64,
    /// Records refused and written as gaps.
    pub dropped_total: AtomicU64,
    pub written: AtomicU64,
    pub stamps: AtomicU64,
    pub stamp_failures: AtomicU64,
    pub write_errors: AtomicU64,
    /// The time of the oldest record no token covers yet (0: none).
    pub oldest_unstamped_ms: AtomicI64,
    pub last_stamp_ms: AtomicI64,
    /// The timestamp authority as a dependency: its outage is logged once and its failures
    /// counted (`crate::outage`); the application's, once attached to the monitoring.
    pub tsa: std::sync::OnceLock<std::sync::Arc<crate::outage::Dependency>>,
}

impl Shared {
    /// Seconds since the oldest record no token covers was made (0 when every record is).
    pub fn unstamped_secs(&self, now_ms: i64) -> f64 {
        match self.oldest_unstamped_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            at => (now_ms - at).max(0) as f64 / 1000.0,
        }
    }

    /// The timestamp authority's outage tracker: the attached one, or one of its own.
    pub fn tsa(&self) -> &crate::outage::Dependency {
        self.tsa
            .get_or_init(|| crate::outage::Dependency::detached(EVIDENCE_TSA, EVIDENCE_TSA_NAME))
    }

    pub fn dropped(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }
}

/// One record on its way to the writer.
struct Entry {
    record: Record,
    at_ms: i64,
    /// What it holds in memory, counted against the budget until written.
    cost: usize,
}

/// The log of this process: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Evidence {
    tx: mpsc::UnboundedSender<Entry>,
    shared: Arc<Shared>,
    max_pending: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("instance", &self.shared.instance)
            .finish_non_exhaustive()
    }
}

impl Evidence {
    /// The log of these settings, its writer started as a sink of `background` (it writes what
    /// is queued, and asks for a last stamp, at shutdown); None when it is off.
    pub fn start(s: &Settings, background: &Background) -> Result<Option<Arc<Self>>, Vec<Problem>> {
        let e = settings(s)?;
        if !e.enabled {
            return Ok(None);
        }
        let problem = |key: &str, message: String| {
            vec![Problem {
                key: format!("{SECTION}.{key}"),
                message,
            }]
        };
        let tsa = if e.tsa_url.trim().is_empty() {
            None
        } else {
            let client =
                TsaClient::try_new(e.tsa_url.trim(), crate::tsa::DEFAULT_TIMEOUT).map_err(|err| problem("tsa_url", err.to_string()))?;
            let anchor = anchor(&e).map_err(|m| problem("tsa_ca", m))?;
            anchor.map(|a| client.with_named_anchor(a, "evidence.tsa_ca"))
        };
        let dir = PathBuf::from(e.dir.trim());
        std::fs::create_dir_all(&dir).map_err(|err| problem("dir", format!("cannot be made: {err}")))?;
        let shared = Arc::new(Shared {
            instance: new_instance_id(),
            ..Shared::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (wdir, wshared, batch) = (dir.clone(), shared.clone(), Duration::from_secs(e.batch_secs));
        background.spawn_sink(move |stop| writer::run(wdir, wshared, rx, tsa, batch, stop));
        tracing::info!(instance = %shared.instance, dir = %dir.display(), stamped = !e.tsa_url.trim().is_empty(), "evidence log on");
        Ok(Some(Arc::new(Evidence {
            tx,
            shared,
            max_pending: e.max_pending_bytes,
            dir,
        })))
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a record: queued for the writer when it fits the budget, else counted.
    fn submit(&self, record: Record) {
        let cost = 512
            + record.request_kept.as_ref().map_or(0, String::len)
            + record.answer_kept.as_ref().map_or(0, String::len)
            + record.failure.as_ref().map_or(0, String::len);
        let before = self.shared.pending_bytes.fetch_add(cost, Ordering::Relaxed);
        if before + cost > self.max_pending {
            self.shared.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let at_ms = hcc_core::time::now_ms();
        let entry = Entry {
            record: Record {
                time: hcc_core::time::rfc3339_ms(at_ms),
                ..record
            },
            at_ms,
            cost,
        };
        if self.tx.send(entry).is_err() {
            // The writer is gone (shutdown): the record is counted, the exchange goes on.
            self.shared.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An exchange a counterpart started (a callback, a push), with what the gateway answered.
    pub fn inbound(&self, subject: &Subject, label: &Label, request: &[u8], status: u16, answer: &[u8], outcome: &str) {
        self.record(
            subject,
            Exchange::new(Direction::In, label, request, Some(answer)).status(status),
            outcome,
        );
    }

    /// Something the gateway issued without an exchange (a payment URL, a QR payload, a
    /// signature): `made` is what it issued, kept when `label` says so, over `input`.
    pub fn issued(&self, subject: &Subject, label: &Label, input: &[u8], made: &[u8], outcome: &str) {
        self.record(subject, Exchange::new(Direction::Out, label, input, Some(made)), outcome);
    }
}

impl Recorder for Evidence {
    fn record(&self, subject: &Subject, e: Exchange, outcome: &str) {
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
        self.submit(Record {
            kind: kind::EXCHANGE.into(),
            direction: Some(e.direction.as_str().into()),
            counterpart: Some(e.counterpart),
            operation: Some(e.operation),
            ordering_key: subject.ordering_key.clone(),
            reference: subject.reference.clone(),
            message_id: subject.message_id.clone(),
            request_sha256: e.request_sha256.map(hex::encode),
            request_len: Some(e.request_len),
            answer_sha256: e.answer_sha256.map(hex::encode),
            answer_len: e.answer_sha256.map(|_| e.answer_len),
            status: e.status,
            failure: e.failure,
            outcome: Some(outcome.to_string()),
            request_kept: e.kept_request.map(b64),
            answer_kept: e.kept_answer.map(b64),
            ..Record::default()
        });
    }
}

/// The recorder the engine and the payments take, when the log is on.
pub fn recorder(e: &Option<Arc<Evidence>>) -> Option<Arc<dyn Recorder>> {
    e.as_ref().map(|e| e.clone() as Arc<dyn Recorder>)
}

/// A process's instance id: when it started (seconds, so that a folder lists chains in the
/// order they began) and 6 random hex digits.
fn new_instance_id() -> String {
    let mut r = [0u8; 3];
    let _ = hcc_core::random_bytes(&mut r);
    format!("{}-{}", hcc_core::time::unix_now(), hex::encode(r))
}
