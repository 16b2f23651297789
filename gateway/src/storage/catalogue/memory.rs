//! The catalogue in the embedded store: the Redis backend's semantics under the store's mutex.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::{Procedure, Summary, SyncState};
use crate::storage::{MemoryStore, Millis, StorageError};

#[derive(Default)]
pub(in crate::storage) struct CatalogueState {
    procedures: BTreeMap<String, Procedure>,
    sync: Option<SyncState>,
    todo: Vec<String>,
    lease: Option<(String, Millis)>,
    requested: bool,
    /// The procedure each dossier was last accepted with (the newest [`REMEMBERED`]).
    procedure_of: std::collections::HashMap<String, String>,
    remembered: std::collections::VecDeque<String>,
}

/// How many dossiers' procedures the embedded store remembers.
const REMEMBERED: usize = 100_000;

#[derive(Clone)]
pub struct MemoryCatalogue {
    store: MemoryStore,
}

impl MemoryCatalogue {
    pub(super) fn new(store: MemoryStore) -> Self {
        MemoryCatalogue { store }
    }

    fn with<T>(&self, f: impl FnOnce(&mut CatalogueState) -> T) -> T {
        f(&mut self.store.lock().catalogue)
    }

    pub(super) async fn put_listed(&self, listed: &[(String, String, Value)], now: Millis) -> Result<(), StorageError> {
        self.with(|c| {
            for (code, name, raw) in listed {
                let p = c.procedures.entry(code.clone()).or_insert_with(|| Procedure {
                    code: code.clone(),
                    name: String::new(),
                    listed: Value::Null,
                    details: None,
                    linh_vuc: Vec::new(),
                    synced_at: now,
                    withdrawn: false,
                });
                p.name = name.clone();
                p.listed = raw.clone();
                p.withdrawn = false;
            }
        });
        Ok(())
    }

    pub(super) async fn put_details(&self, code: &str, details: &Value, linh_vuc: &[String], now: Millis) -> Result<(), StorageError> {
        self.with(|c| {
            if let Some(p) = c.procedures.get_mut(code) {
                p.details = Some(details.clone());
                p.linh_vuc = linh_vuc.to_vec();
                p.synced_at = now;
            }
        });
        Ok(())
    }

    pub(super) async fn withdraw_others(&self, listed: &HashSet<String>, _now: Millis) -> Result<u64, StorageError> {
        Ok(self.with(|c| {
            let mut n = 0;
            for (code, p) in c.procedures.iter_mut() {
                if !listed.contains(code) && !p.withdrawn {
                    p.withdrawn = true;
                    n += 1;
                }
            }
            n
        }))
    }

    pub(super) async fn get(&self, code: &str) -> Result<Option<Procedure>, StorageError> {
        Ok(self.with(|c| c.procedures.get(code).cloned()))
    }

    fn summary_of(p: &Procedure) -> Summary {
        Summary {
            name: p.name.clone(),
            linh_vuc: p.linh_vuc.clone(),
            withdrawn: p.withdrawn,
        }
    }

    pub(super) async fn summaries(&self) -> Result<BTreeMap<String, Summary>, StorageError> {
        Ok(self.with(|c| c.procedures.iter().map(|(k, p)| (k.clone(), Self::summary_of(p))).collect()))
    }

    pub(super) async fn summary(&self, code: &str) -> Result<Option<Summary>, StorageError> {
        Ok(self.with(|c| c.procedures.get(code).map(Self::summary_of)))
    }

    pub(super) async fn count(&self) -> Result<u64, StorageError> {
        Ok(self.with(|c| c.procedures.len() as u64))
    }

    pub(super) async fn sync_state(&self) -> Result<SyncState, StorageError> {
        Ok(self.with(|c| {
            c.sync.clone().unwrap_or(SyncState {
                phase: "idle".into(),
                ..SyncState::default()
            })
        }))
    }

    pub(super) async fn save_sync_state(&self, s: &SyncState) -> Result<(), StorageError> {
        self.with(|c| c.sync = Some(s.clone()));
        Ok(())
    }

    pub(super) async fn set_todo(&self, codes: &[String]) -> Result<(), StorageError> {
        self.with(|c| c.todo = codes.to_vec());
        Ok(())
    }

    pub(super) async fn todo(&self, from: u64, n: u64) -> Result<Vec<String>, StorageError> {
        Ok(self.with(|c| c.todo.iter().skip(from as usize).take(n as usize).cloned().collect()))
    }

    pub(super) async fn lease(&self, owner: &str, ttl_ms: u64, now: Millis) -> Result<bool, StorageError> {
        Ok(self.with(|c| match &c.lease {
            Some((holder, until)) if holder != owner && *until > now => false,
            _ => {
                c.lease = Some((owner.to_string(), now + ttl_ms as Millis));
                true
            }
        }))
    }

    pub(super) async fn release(&self, owner: &str) -> Result<(), StorageError> {
        self.with(|c| {
            if c.lease.as_ref().is_some_and(|(h, _)| h == owner) {
                c.lease = None;
            }
        });
        Ok(())
    }

    pub(super) async fn remember_procedure(&self, ordering_key: &str, code: &str) -> Result<(), StorageError> {
        self.with(|c| {
            if c.procedure_of.insert(ordering_key.to_string(), code.to_string()).is_none() {
                c.remembered.push_back(ordering_key.to_string());
                while c.remembered.len() > REMEMBERED {
                    if let Some(old) = c.remembered.pop_front() {
                        c.procedure_of.remove(&old);
                    }
                }
            }
        });
        Ok(())
    }

    pub(super) async fn procedure_of(&self, ordering_key: &str) -> Result<Option<String>, StorageError> {
        Ok(self.with(|c| c.procedure_of.get(ordering_key).cloned()))
    }

    pub(super) async fn request_sync(&self) -> Result<(), StorageError> {
        self.with(|c| c.requested = true);
        Ok(())
    }

    pub(super) async fn take_request(&self) -> Result<bool, StorageError> {
        Ok(self.with(|c| std::mem::take(&mut c.requested)))
    }
}
