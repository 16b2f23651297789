//! The gateway's copy of the national procedure catalogue: each procedure the portal listed,
//! with its details as sent, when they were pulled, and whether it has since disappeared from
//! the list (withdrawn, never deleted); and the state of the sync that pulls it, so that a sync
//! interrupted anywhere resumes where it stopped, in whichever instance holds the lease.
//!
//! Two backends with the same semantics, like every concern. The keys of the Redis one share
//! the hash tag `{catalogue}`; no step needs two keys at once but the lease.

pub(super) mod memory;
pub(super) mod redis;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::memory::MemoryCatalogue;
use self::redis::RedisCatalogue;
use super::{Millis, StorageError, Store, dispatch};

/// One procedure as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Procedure {
    pub code: String,
    pub name: String,
    /// The list's entry as sent.
    pub listed: Value,
    /// `LayThuTuc`'s answer as sent, once pulled.
    pub details: Option<Value>,
    /// The procedure's fields (`LINHVUCTHUCHIEN[].MALINHVUC`), for the filter.
    pub linh_vuc: Vec<String>,
    /// When its details (or, before them, its list entry) were last pulled.
    pub synced_at: Millis,
    pub withdrawn: bool,
}

/// What a search and the acceptance check need of every procedure, kept in one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    #[serde(default)]
    pub linh_vuc: Vec<String>,
    #[serde(default)]
    pub withdrawn: bool,
}

/// Where the sync is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// `idle` (never ran), `details` (the list is taken, details are being pulled), `done`,
    /// `failed` (the last list pull failed; the catalogue is the previous one).
    pub phase: String,
    /// The run's id: its start time.
    pub run: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Procedures in the run's list, and how many of them have been asked about.
    pub total: u64,
    pub done: u64,
    /// Details that could not be pulled in this run (the previous ones are kept).
    pub failed_details: u64,
    pub last_error: Option<String>,
    /// When a run last finished.
    pub last_success_at: Option<Millis>,
}

#[derive(Clone)]
pub enum CatalogueBook {
    Redis(RedisCatalogue),
    Memory(MemoryCatalogue),
}

impl CatalogueBook {
    pub fn new(store: &Store) -> Self {
        match store {
            Store::Redis(s) => CatalogueBook::Redis(RedisCatalogue::new(s.clone())),
            Store::Memory(s) => CatalogueBook::Memory(MemoryCatalogue::new(s.clone())),
        }
    }

    /// Records the procedures of a list (new ones, changed names, withdrawn ones listed again).
    pub async fn put_listed(&self, listed: &[(String, String, Value)], now: Millis) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.put_listed(listed, now).await)
    }

    /// Records one procedure's details.
    pub async fn put_details(&self, code: &str, details: &Value, linh_vuc: &[String], now: Millis) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.put_details(code, details, linh_vuc, now).await)
    }

    /// Marks withdrawn every procedure not in `listed`; returns how many were newly withdrawn.
    pub async fn withdraw_others(&self, listed: &std::collections::HashSet<String>, now: Millis) -> Result<u64, StorageError> {
        dispatch!(self, CatalogueBook, b => b.withdraw_others(listed, now).await)
    }

    pub async fn get(&self, code: &str) -> Result<Option<Procedure>, StorageError> {
        dispatch!(self, CatalogueBook, b => b.get(code).await)
    }

    /// Every procedure's summary, by code.
    pub async fn summaries(&self) -> Result<std::collections::BTreeMap<String, Summary>, StorageError> {
        dispatch!(self, CatalogueBook, b => b.summaries().await)
    }

    /// A procedure's summary; `None` when the catalogue does not have it.
    pub async fn summary(&self, code: &str) -> Result<Option<Summary>, StorageError> {
        dispatch!(self, CatalogueBook, b => b.summary(code).await)
    }

    pub async fn count(&self) -> Result<u64, StorageError> {
        dispatch!(self, CatalogueBook, b => b.count().await)
    }

    pub async fn sync_state(&self) -> Result<SyncState, StorageError> {
        dispatch!(self, CatalogueBook, b => b.sync_state().await)
    }

    pub async fn save_sync_state(&self, s: &SyncState) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.save_sync_state(s).await)
    }

    /// The run's list of codes, kept so that an interrupted run resumes with the same list.
    pub async fn set_todo(&self, codes: &[String]) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.set_todo(codes).await)
    }

    /// `n` codes of the run's list from position `from`.
    pub async fn todo(&self, from: u64, n: u64) -> Result<Vec<String>, StorageError> {
        dispatch!(self, CatalogueBook, b => b.todo(from, n).await)
    }

    /// Takes or keeps the sync's lease for `owner` until `now + ttl_ms`; `false` when another
    /// owner holds it.
    pub async fn lease(&self, owner: &str, ttl_ms: u64, now: Millis) -> Result<bool, StorageError> {
        dispatch!(self, CatalogueBook, b => b.lease(owner, ttl_ms, now).await)
    }

    /// Gives the lease back (when `owner` holds it).
    pub async fn release(&self, owner: &str) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.release(owner).await)
    }

    /// Remembers the procedure a dossier was last accepted with (kept 180 days), so that a
    /// later message of the dossier that names none can be told it (a copy for the ministry's
    /// monitoring, which needs the procedure of every step).
    pub async fn remember_procedure(&self, ordering_key: &str, code: &str) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.remember_procedure(ordering_key, code).await)
    }

    /// The procedure a dossier was last accepted with, if remembered.
    pub async fn procedure_of(&self, ordering_key: &str) -> Result<Option<String>, StorageError> {
        dispatch!(self, CatalogueBook, b => b.procedure_of(ordering_key).await)
    }

    /// Asks for a sync now (any instance running the sync loop takes it).
    pub async fn request_sync(&self) -> Result<(), StorageError> {
        dispatch!(self, CatalogueBook, b => b.request_sync().await)
    }

    /// Whether a sync was asked for, taking the request.
    pub async fn take_request(&self) -> Result<bool, StorageError> {
        dispatch!(self, CatalogueBook, b => b.take_request().await)
    }
}
