//! The book in the embedded store: `inbound_accept.lua` and `inbound_ack.lua` step for step,
//! under the store's one mutex, which also holds the webhook queue the book writes to.

use std::collections::{BTreeSet, HashMap};

use super::{Accepted, InboundRecord};
use crate::storage::{MemoryStore, Millis, NewMessage, StorageError};

/// One book's state.
#[derive(Default)]
pub(in crate::storage) struct BookState {
    records: HashMap<String, InboundRecord>,
    /// (received, code), as the index zsets.
    order: BTreeSet<(Millis, String)>,
}

#[derive(Clone)]
pub struct MemoryBook {
    store: MemoryStore,
    queue: String,
}

impl MemoryBook {
    pub(super) fn new(store: MemoryStore, queue: &str) -> Self {
        MemoryBook {
            store,
            queue: queue.to_string(),
        }
    }

    pub(super) async fn accept(&self, record: &InboundRecord, event: NewMessage) -> Result<Accepted, StorageError> {
        let mut state = self.store.lock();
        let book = state.inbound.entry(self.queue.clone()).or_default();
        if book.records.contains_key(&record.code) {
            return Ok(Accepted::Duplicate);
        }
        book.order.insert((record.received_at, record.code.clone()));
        book.records.insert(record.code.clone(), record.clone());
        state
            .queues
            .entry(self.queue.clone())
            .or_default()
            .push(record.message_id.clone(), event, record.received_at);
        Ok(Accepted::Created(record.message_id.clone()))
    }

    pub(super) async fn get(&self, code: &str) -> Result<Option<InboundRecord>, StorageError> {
        let state = self.store.lock();
        Ok(state.inbound.get(&self.queue).and_then(|b| b.records.get(code).cloned()))
    }

    pub(super) async fn list(&self, source: Option<&str>, offset: usize, limit: usize) -> Result<Vec<InboundRecord>, StorageError> {
        let state = self.store.lock();
        let Some(book) = state.inbound.get(&self.queue) else {
            return Ok(Vec::new());
        };
        Ok(book
            .order
            .iter()
            .rev()
            .filter_map(|(_, c)| book.records.get(c))
            .filter(|r| source.is_none_or(|s| r.source == s))
            .skip(offset)
            .take(limit)
            .cloned()
            .collect())
    }

    pub(super) async fn count(&self, source: Option<&str>) -> Result<u64, StorageError> {
        let state = self.store.lock();
        Ok(state.inbound.get(&self.queue).map_or(0, |b| {
            b.records.values().filter(|r| source.is_none_or(|s| r.source == s)).count() as u64
        }))
    }

    pub(super) async fn unacknowledged(&self, source: &str, limit: usize) -> Result<Vec<InboundRecord>, StorageError> {
        let state = self.store.lock();
        let Some(book) = state.inbound.get(&self.queue) else {
            return Ok(Vec::new());
        };
        Ok(book
            .order
            .iter()
            .filter_map(|(_, c)| book.records.get(c))
            .filter(|r| r.source == source && r.needs_ack && r.acked_at.is_none())
            .take(limit)
            .cloned()
            .collect())
    }

    pub(super) async fn mark_acknowledged(&self, code: &str, _source: &str, now: Millis) -> Result<bool, StorageError> {
        let mut state = self.store.lock();
        let Some(r) = state.inbound.get_mut(&self.queue).and_then(|b| b.records.get_mut(code)) else {
            return Ok(false);
        };
        if r.acked_at.is_some() {
            return Ok(false);
        }
        r.acked_at = Some(now);
        Ok(true)
    }
}
