//! The book of inbound dossiers: each dossier a counterpart handed down (the portal's push, the
//! link-up's list), recorded once under its code together with its `dossier.received` webhook,
//! in one atomic step, so that a second hand-down of the same code is a duplicate and a record
//! never exists without its webhook. Polled sources also wait for an acknowledgement: the book
//! keeps those not yet acknowledged.
//!
//! Like the ledger, the book shares its webhook queue's hash tag (the queue stays whole), and
//! has two backends with the same semantics.

pub(super) mod memory;
pub(super) mod redis;

use serde_json::Value;

use self::memory::MemoryBook;
use self::redis::RedisBook;
use super::{Millis, NewMessage, StorageError, Store, dispatch};

/// An inbound dossier as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRecord {
    /// The dossier's code (a valid `MaHoSo`).
    pub code: String,
    /// The counterpart it came from (`dvcqg`, `dvclt`): also the destination its status goes to.
    pub source: String,
    pub procedure: Option<String>,
    pub received_at: Millis,
    /// The `dossier.received` webhook's message id.
    pub message_id: String,
    /// The stored files' descriptions (JSON array of `{id, name, content_type, size, sha256}`).
    pub files: Value,
    /// What the source needs back with the status ([`hcc_adapters::inbound::InboundDossier::link`]).
    pub link: Value,
    /// Whether the source waits for an acknowledgement once the centre has the dossier.
    pub needs_ack: bool,
    pub acked_at: Option<Millis>,
}

/// What [`InboundBook::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Recorded, and its webhook queued as this message.
    Created(String),
    /// The code was recorded before; nothing changed.
    Duplicate,
}

#[derive(Clone)]
pub enum InboundBook {
    Redis(RedisBook),
    Memory(MemoryBook),
}

/// The most records one page lists.
pub const MAX_PAGE: usize = 500;

impl InboundBook {
    pub fn new(store: &Store, events_queue: &str) -> Self {
        match store {
            Store::Redis(s) => InboundBook::Redis(RedisBook::new(s.clone(), events_queue)),
            Store::Memory(s) => InboundBook::Memory(MemoryBook::new(s.clone(), events_queue)),
        }
    }

    /// Records `record` and queues `event` (its `dossier.received` webhook, ordered by the
    /// code) in one step, unless the code is recorded already. `record.message_id` is the
    /// event's id.
    pub async fn accept(&self, record: &InboundRecord, event: NewMessage) -> Result<Accepted, StorageError> {
        dispatch!(self, InboundBook, b => b.accept(record, event).await)
    }

    pub async fn get(&self, code: &str) -> Result<Option<InboundRecord>, StorageError> {
        dispatch!(self, InboundBook, b => b.get(code).await)
    }

    /// Records newest first, of one source or of all, paged (at most [`MAX_PAGE`]).
    pub async fn list(&self, source: Option<&str>, offset: usize, limit: usize) -> Result<Vec<InboundRecord>, StorageError> {
        let limit = limit.min(MAX_PAGE);
        dispatch!(self, InboundBook, b => b.list(source, offset, limit).await)
    }

    /// How many records there are, of one source or of all.
    pub async fn count(&self, source: Option<&str>) -> Result<u64, StorageError> {
        dispatch!(self, InboundBook, b => b.count(source).await)
    }

    /// A source's records not yet acknowledged, oldest first, at most `limit`.
    pub async fn unacknowledged(&self, source: &str, limit: usize) -> Result<Vec<InboundRecord>, StorageError> {
        let limit = limit.min(MAX_PAGE);
        dispatch!(self, InboundBook, b => b.unacknowledged(source, limit).await)
    }

    /// Marks a record acknowledged to its source; `false` when it was already (or is unknown).
    pub async fn mark_acknowledged(&self, code: &str, source: &str, now: Millis) -> Result<bool, StorageError> {
        dispatch!(self, InboundBook, b => b.mark_acknowledged(code, source, now).await)
    }
}
