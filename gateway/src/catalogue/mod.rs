//! The national procedure catalogue at the gateway: a copy pulled from the portal
//! ([`sync`]), served to the centre and operators, and the check of every dossier's `MaTTHC`
//! at acceptance (`catalogue.check`: `off`, `warn`, `refuse`), so that a centre hears at once,
//! not when the portal refuses the dossier hours later, that the national catalogue does not
//! have a procedure.

pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use hcc_adapters::evidence::Recorder;

use hcc_config::{Problem, Settings};

use crate::storage::{CatalogueBook, StorageError, Store};

/// The `[catalogue]` section.
pub const SECTION: &str = "catalogue";

/// What acceptance does with a procedure the catalogue does not have (or has withdrawn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckMode {
    Off,
    Warn,
    Refuse,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CatalogueSettings {
    /// How often the catalogue is pulled; 0: never by itself (a sync can still be asked for).
    sync_every_secs: u64,
    check: CheckMode,
    /// Details asked for per second during a sync: the portal is a shared national service.
    pace_per_sec: u32,
    /// The most procedures a list may hold (more is not the catalogue).
    max_procedures: usize,
    /// The largest answer taken for one procedure's details.
    max_detail_bytes: usize,
}

impl Default for CatalogueSettings {
    fn default() -> Self {
        CatalogueSettings {
            sync_every_secs: 86_400,
            check: CheckMode::Warn,
            pace_per_sec: 5,
            max_procedures: 20_000,
            max_detail_bytes: 1024 * 1024,
        }
    }
}

fn settings(s: &Settings) -> Result<CatalogueSettings, Vec<Problem>> {
    let c: CatalogueSettings = hcc_adapters::payments::parse_section(s.section(SECTION))?;
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: &str| {
        problems.push(Problem {
            key: format!("{SECTION}.{key}"),
            message: message.into(),
        })
    };
    if !(1..=100).contains(&c.pace_per_sec) {
        problem("pace_per_sec", "must be from 1 to 100");
    }
    if !(1..=200_000).contains(&c.max_procedures) {
        problem("max_procedures", "must be from 1 to 200000");
    }
    if !(1024..=64 * 1024 * 1024).contains(&c.max_detail_bytes) {
        problem("max_detail_bytes", "must be from 1 KiB to 64 MiB");
    }
    if problems.is_empty() { Ok(c) } else { Err(problems) }
}

/// What `config check` adds for the `[catalogue]` section.
pub fn settings_problems(s: &Settings) -> Vec<Problem> {
    settings(s).err().unwrap_or_default()
}

/// What the catalogue says of a procedure at acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Unknown,
    Withdrawn,
    /// Not checked: the check is off, the catalogue was never pulled, or it cannot be read now.
    Unchecked,
}

pub struct Catalogue {
    pub(crate) book: CatalogueBook,
    pub(crate) mode: CheckMode,
    pub(crate) every: Option<Duration>,
    pub(crate) pace: Duration,
    pub(crate) max_procedures: usize,
    pub(crate) max_detail_bytes: usize,
    /// The evidence log, told of each call the sync makes to the portal.
    pub(crate) evidence: Option<Arc<dyn Recorder>>,
    /// The store as a dependency: every dossier looks its procedure up, so a store that does
    /// not answer is reported as an outage, once (`crate::outage`), not a line per dossier.
    pub(crate) redis: Option<Arc<crate::outage::Dependency>>,
}

impl Catalogue {
    pub fn with_evidence(mut self, evidence: Option<Arc<dyn Recorder>>) -> Self {
        self.evidence = evidence;
        self
    }

    /// Reports the store's failures to `redis` instead of logging each.
    pub fn with_redis(mut self, redis: Arc<crate::outage::Dependency>) -> Self {
        self.redis = Some(redis);
        self
    }

    pub fn from_settings(s: &Settings, store: &Store) -> Result<Catalogue, Vec<Problem>> {
        let c = settings(s)?;
        Ok(Catalogue {
            book: store.catalogue(),
            mode: c.check,
            every: (c.sync_every_secs > 0).then(|| Duration::from_secs(c.sync_every_secs)),
            pace: Duration::from_millis(1000 / u64::from(c.pace_per_sec.max(1))),
            max_procedures: c.max_procedures,
            max_detail_bytes: c.max_detail_bytes,
            evidence: None,
            redis: None,
        })
    }

    pub fn mode(&self) -> CheckMode {
        self.mode
    }

    /// The catalogue's word on `code`. An empty catalogue (never pulled) and a store that
    /// cannot be read never refuse a dossier: the portal still judges it.
    pub async fn verdict(&self, code: &str) -> Verdict {
        if self.mode == CheckMode::Off {
            return Verdict::Unchecked;
        }
        let looked: Result<Verdict, StorageError> = async {
            if self.book.count().await? == 0 {
                return Ok(Verdict::Unchecked);
            }
            Ok(match self.book.summary(code).await? {
                None => Verdict::Unknown,
                Some(s) if s.withdrawn => Verdict::Withdrawn,
                Some(_) => Verdict::Known,
            })
        }
        .await;
        const UNREAD: &str = "the catalogue cannot be read; the procedure is not checked";
        match (looked, &self.redis) {
            (Ok(v), redis) => {
                if let Some(r) = redis {
                    r.ok();
                }
                v
            }
            (Err(e), Some(r)) => {
                r.store_failed(&e, UNREAD);
                Verdict::Unchecked
            }
            (Err(e), None) => {
                tracing::warn!(error = %e, "{UNREAD}");
                Verdict::Unchecked
            }
        }
    }
}

/// The words a warning or a refusal uses for a verdict, or `None` when it passes.
pub fn complaint(v: Verdict) -> Option<&'static str> {
    match v {
        Verdict::Unknown => Some("the national procedure catalogue does not have this MaTTHC (the portal refuses such a dossier)"),
        Verdict::Withdrawn => Some("the national procedure catalogue has withdrawn this MaTTHC (the portal refuses such a dossier)"),
        Verdict::Known | Verdict::Unchecked => None,
    }
}
