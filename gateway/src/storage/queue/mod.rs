//! The delivery queues behind the engine: one abstraction, two backends.
//!
//! - `redis` is production: every state change is one atomic Lua script (`../lua/`), keys of a
//!   queue share one hash tag so Redis Cluster keeps them in one slot, payloads are stored once
//!   in the message's hash and the queue structures hold only ids.
//! - `memory` is the embedded backend: same semantics, nothing survives the process.
//!
//! The model, the same in both: each ordering key has a FIFO list of message ids. Only the head
//! of a list may be in flight; when it settles, the next id becomes due. A `due` set holds the
//! ordering keys whose head may be claimed at a given time, which is how retries are scheduled.
//! A dead head stays at the head, so everything behind it is `blocked` until an operator acts.
//!
//! Statistics come from counters kept by the operations that change them (a message dying,
//! one queued behind a dead head, a replay, a discard), never from walking the dead letters:
//! `stats` is what every scrape of `/metrics` pays for. [`MessageQueue::audit_counters`]
//! recounts from scratch to check them.

pub(super) mod memory;
pub(super) mod redis;

use serde::Serialize;

use self::memory::MemoryQueue;
use self::redis::RedisQueue;
use super::{Millis, StorageError, Store, dispatch};

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub kind: String,
    pub ordering_key: String,
    pub payload: Vec<u8>,
}

/// A request-level idempotency key. `scope` keeps one caller's keys from meeting another's;
/// `fingerprint` identifies the body, so a reused key with another body is a conflict.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub ttl_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Accepted(String),
    /// The same key and body were accepted before, as this message.
    Replayed(String),
    /// The same key came with a different body.
    Conflict,
}

/// A message a worker holds under a lease. `token` proves the lease on settlement.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub ordering_key: String,
    pub payload: Vec<u8>,
    pub attempts: u32,
    pub created_at: Millis,
    /// When the retry budget started: acceptance, or the last replay.
    pub age_from: Millis,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Delivered,
    Retry {
        at: Millis,
        error: String,
    },
    Dead {
        error: String,
    },
    /// Handed back unattempted (shutdown): the attempt does not count.
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    InFlight,
    Retrying,
    Delivered,
    Dead,
    Blocked,
    Discarded,
}

impl MessageStatus {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "in_flight" => Self::InFlight,
            "retrying" => Self::Retrying,
            "delivered" => Self::Delivered,
            "dead" => Self::Dead,
            "blocked" => Self::Blocked,
            "discarded" => Self::Discarded,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageRecord {
    pub id: String,
    pub kind: String,
    pub destination: String,
    pub ordering_key: String,
    pub status: MessageStatus,
    pub attempts: u32,
    pub created_at: Millis,
    pub next_attempt_at: Option<Millis>,
    pub delivered_at: Option<Millis>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct QueueStats {
    /// Accepted and waiting for a worker, including messages queued behind an earlier message
    /// of the same ordering key.
    pub ready: u64,
    /// Heads of ordering keys waiting for their retry time.
    pub scheduled: u64,
    pub in_flight: u64,
    pub dead: u64,
    /// Waiting behind a dead message of the same ordering key.
    pub blocked: u64,
    pub delivered_total: u64,
    /// How long the longest-waiting claimable message has been claimable.
    pub oldest_ready_age_seconds: f64,
    pub paused: bool,
}

/// The maintained `dead` and `blocked` counters beside a count of them from scratch, over every
/// dead letter. `stats` reads only the maintained ones; the two agree unless something other
/// than the queue's own operations changed the stored data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterAudit {
    pub dead: u64,
    pub blocked: u64,
    pub counted_dead: u64,
    pub counted_blocked: u64,
}

impl CounterAudit {
    pub fn exact(&self) -> bool {
        self.dead == self.counted_dead && self.blocked == self.counted_blocked
    }
}

/// The delivery queues, by name. Cheap to clone.
#[derive(Clone)]
pub enum MessageQueue {
    Redis(RedisQueue),
    Memory(MemoryQueue),
}

impl MessageQueue {
    pub fn new(store: &Store) -> Self {
        match store {
            Store::Redis(s) => MessageQueue::Redis(RedisQueue::new(s.clone())),
            Store::Memory(s) => MessageQueue::Memory(MemoryQueue::new(s.clone())),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            MessageQueue::Redis(_) => "redis",
            MessageQueue::Memory(_) => "memory",
        }
    }

    pub async fn enqueue(&self, queue: &str, msg: NewMessage, idem: Option<&Idempotency>, now: Millis) -> Result<Enqueued, StorageError> {
        dispatch!(self, MessageQueue, q => q.enqueue(queue, msg, idem, now).await)
    }

    /// Claims up to `max` due heads. Nothing when the queue is paused.
    pub async fn claim(&self, queue: &str, max: usize, lease_until: Millis, now: Millis) -> Result<Vec<Claimed>, StorageError> {
        dispatch!(self, MessageQueue, q => q.claim(queue, max, lease_until, now).await)
    }

    /// Settles a claimed message. `Ok(false)` means the lease was lost (it expired and the
    /// message went back to the queue): the settlement is ignored.
    pub async fn settle(
        &self,
        queue: &str,
        claimed: &Claimed,
        how: &Settlement,
        now: Millis,
        retention_secs: u64,
    ) -> Result<bool, StorageError> {
        dispatch!(self, MessageQueue, q => q.settle(queue, claimed, how, now, retention_secs).await)
    }

    /// Returns expired leases to the queue; how many.
    pub async fn reap(&self, queue: &str, now: Millis) -> Result<usize, StorageError> {
        dispatch!(self, MessageQueue, q => q.reap(queue, now).await)
    }

    pub async fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>, StorageError> {
        dispatch!(self, MessageQueue, q => q.get(queue, id).await)
    }

    pub async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<MessageRecord>, StorageError> {
        dispatch!(self, MessageQueue, q => q.list_dead(queue, offset, limit).await)
    }

    /// Puts a dead message back at the head of its key with a fresh retry budget.
    pub async fn replay(&self, queue: &str, id: &str, now: Millis) -> Result<bool, StorageError> {
        dispatch!(self, MessageQueue, q => q.replay(queue, id, now).await)
    }

    /// Drops a dead message for good and unblocks its key.
    pub async fn discard(&self, queue: &str, id: &str, now: Millis, retention_secs: u64) -> Result<bool, StorageError> {
        dispatch!(self, MessageQueue, q => q.discard(queue, id, now, retention_secs).await)
    }

    /// Reads maintained counters: constant work per queue, however many messages are dead or
    /// blocked, because `/metrics` (unauthenticated) and `/v1/queues` call it on every request.
    pub async fn stats(&self, queue: &str, now: Millis) -> Result<QueueStats, StorageError> {
        dispatch!(self, MessageQueue, q => q.stats(queue, now).await)
    }

    /// Recounts `dead` and `blocked` from scratch and shows them beside the maintained
    /// counters, changing nothing. O(dead letters): for tests and for checking a deployment,
    /// never for a scrape.
    pub async fn audit_counters(&self, queue: &str) -> Result<CounterAudit, StorageError> {
        dispatch!(self, MessageQueue, q => q.audit_counters(queue).await)
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StorageError> {
        dispatch!(self, MessageQueue, q => q.set_paused(queue, paused).await)
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            MessageQueue::Redis(q) => q.store().ping().await,
            MessageQueue::Memory(_) => Ok(()),
        }
    }
}
