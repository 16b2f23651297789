//! The embedded, single-process store: the state of every queue, ledger and the audit log
//! under one mutex, so that a ledger step and the event it queues are one atomic step, as
//! they are in one Redis script. Nothing here survives the process.
//!
//! This module and `ledger::memory` use each other on purpose: the state here holds each
//! ledger's state beside the queues, and a ledger step takes this one mutex to write its
//! events queue in the same step, as one Redis script does. Splitting the circle would split
//! the mutex, and with it the atomicity the Redis backend has.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ledger::memory::LedgerState;
use super::queue::memory::QueueState;

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Default)]
pub(super) struct MemoryState {
    /// By queue name.
    pub queues: HashMap<String, QueueState>,
    /// By the name of the ledger's events queue.
    pub ledgers: HashMap<String, LedgerState>,
    /// By the name of the book's webhook queue.
    pub inbound: HashMap<String, super::inbound::memory::BookState>,
    pub catalogue: super::catalogue::memory::CatalogueState,
    /// Newest first.
    pub audit: VecDeque<String>,
}

impl MemoryStore {
    pub(super) fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to
        // serve; refusing all further work would be worse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
