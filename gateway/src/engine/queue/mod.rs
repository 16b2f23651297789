//! The durable queue behind the delivery engine: one abstraction, two backends.
//!
//! - `redis` is production: every state change is one atomic Lua script, keys of a queue share
//!   one hash tag so Redis Cluster keeps them in one slot, payloads are stored once in the
//!   message's hash and the queue structures hold only ids.
//! - `memory` is the embedded backend for the demo and development: same semantics, nothing
//!   survives the process.
//!
//! The model, the same in both: each ordering key has a FIFO list of message ids. Only the head
//! of a list may be in flight; when it settles, the next id becomes due. A `due` set holds the
//! ordering keys whose head may be claimed at a given time, which is how retries are scheduled.
//! A dead head stays at the head, so everything behind it is `blocked` until an operator acts.
//!
//! Statistics come from counters kept by the operations that change them (a message dying,
//! one queued behind a dead head, a replay, a discard), never from walking the dead letters:
//! `stats` is what every scrape of `/metrics` pays for. [`Queue::audit_counters`] recounts
//! from scratch to check them.

mod memory;
pub mod payments;
mod redis;

use serde::Serialize;

pub use self::memory::MemoryQueue;
use self::payments::{ConfirmOutcome, Confirmation, PaymentEvents, PaymentRecord, PaymentState, Reversal, ReverseOutcome};
pub use self::redis::RedisQueue;

/// Unix time in milliseconds.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
    #[error("queue backend returned something unexpected: {0}")]
    Corrupt(String),
}

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

/// The queue backend the engine and the API share. An enum rather than a trait object: there
/// are exactly two, and static dispatch keeps the hot path free of boxing.
#[derive(Clone)]
pub enum Queue {
    Redis(RedisQueue),
    Memory(MemoryQueue),
}

macro_rules! dispatch {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            Queue::Redis($q) => $e,
            Queue::Memory($q) => $e,
        }
    };
}

impl Queue {
    pub fn backend_name(&self) -> &'static str {
        match self {
            Queue::Redis(_) => "redis",
            Queue::Memory(_) => "memory",
        }
    }

    pub async fn enqueue(&self, queue: &str, msg: NewMessage, idem: Option<&Idempotency>, now: Millis) -> Result<Enqueued, QueueError> {
        dispatch!(self, q => q.enqueue(queue, msg, idem, now).await)
    }

    /// Claims up to `max` due heads. Nothing when the queue is paused.
    pub async fn claim(&self, queue: &str, max: usize, lease_until: Millis, now: Millis) -> Result<Vec<Claimed>, QueueError> {
        dispatch!(self, q => q.claim(queue, max, lease_until, now).await)
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
    ) -> Result<bool, QueueError> {
        dispatch!(self, q => q.settle(queue, claimed, how, now, retention_secs).await)
    }

    /// Returns expired leases to the queue; how many.
    pub async fn reap(&self, queue: &str, now: Millis) -> Result<usize, QueueError> {
        dispatch!(self, q => q.reap(queue, now).await)
    }

    pub async fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>, QueueError> {
        dispatch!(self, q => q.get(queue, id).await)
    }

    pub async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<MessageRecord>, QueueError> {
        dispatch!(self, q => q.list_dead(queue, offset, limit).await)
    }

    /// Puts a dead message back at the head of its key with a fresh retry budget.
    pub async fn replay(&self, queue: &str, id: &str, now: Millis) -> Result<bool, QueueError> {
        dispatch!(self, q => q.replay(queue, id, now).await)
    }

    /// Drops a dead message for good and unblocks its key.
    pub async fn discard(&self, queue: &str, id: &str, now: Millis, retention_secs: u64) -> Result<bool, QueueError> {
        dispatch!(self, q => q.discard(queue, id, now, retention_secs).await)
    }

    /// Reads maintained counters: constant work per queue, however many messages are dead or
    /// blocked, because `/metrics` (unauthenticated) and `/v1/queues` call it on every request.
    pub async fn stats(&self, queue: &str, now: Millis) -> Result<QueueStats, QueueError> {
        dispatch!(self, q => q.stats(queue, now).await)
    }

    /// Recounts `dead` and `blocked` from scratch and shows them beside the maintained
    /// counters, changing nothing. O(dead letters): for tests and for checking a deployment,
    /// never for a scrape.
    pub async fn audit_counters(&self, queue: &str) -> Result<CounterAudit, QueueError> {
        dispatch!(self, q => q.audit_counters(queue).await)
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), QueueError> {
        dispatch!(self, q => q.set_paused(queue, paused).await)
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        dispatch!(self, q => q.ping().await)
    }

    /// Appends audit lines (JSON) to the shared audit log, keeping the newest `keep`.
    pub async fn audit_append(&self, lines: &[String], keep: usize) -> Result<(), QueueError> {
        dispatch!(self, q => q.audit_append(lines, keep).await)
    }

    /// Audit lines, newest first.
    pub async fn audit_read(&self, offset: usize, limit: usize) -> Result<Vec<String>, QueueError> {
        dispatch!(self, q => q.audit_read(offset, limit).await)
    }

    /// Stores a new pending payment; `false` if the reference exists.
    pub async fn payment_create(&self, queue: &str, p: &PaymentRecord) -> Result<bool, QueueError> {
        dispatch!(self, q => q.payment_create(queue, p).await)
    }

    pub async fn payment_set_url(&self, queue: &str, reference: &str, url: &str) -> Result<(), QueueError> {
        dispatch!(self, q => q.payment_set_url(queue, reference, url).await)
    }

    pub async fn payment_get(&self, queue: &str, reference: &str) -> Result<Option<PaymentRecord>, QueueError> {
        dispatch!(self, q => q.payment_get(queue, reference).await)
    }

    /// Applies a confirmation by the matching rules (`payments.rs`), atomically with queueing
    /// the event it calls for. `standing` is the transaction the caller saw standing.
    pub async fn payment_confirm(
        &self,
        queue: &str,
        c: &Confirmation,
        standing: &str,
        events: &PaymentEvents,
        now: Millis,
    ) -> Result<ConfirmOutcome, QueueError> {
        dispatch!(self, q => q.payment_confirm(queue, c, standing, events, now).await)
    }

    /// Undoes a paid payment (a provider's reversal) when it matches, once per reversal,
    /// queueing `event`.
    pub async fn payment_reverse(&self, queue: &str, r: &Reversal, event: &NewMessage, now: Millis) -> Result<ReverseOutcome, QueueError> {
        dispatch!(self, q => q.payment_reverse(queue, r, event, now).await)
    }

    pub async fn payments_pending(&self, queue: &str, from: Millis, to: Millis, limit: usize) -> Result<Vec<String>, QueueError> {
        dispatch!(self, q => q.payments_pending(queue, from, to, limit).await)
    }
}

/// The payment scripts' answers, shared by both backends.
pub(crate) fn parse_confirm(s: &str) -> Result<ConfirmOutcome, QueueError> {
    let state = |x: &str| PaymentState::parse(x).ok_or_else(|| QueueError::Corrupt(format!("payment outcome {s}")));
    Ok(match s {
        "unknown" => ConfirmOutcome::Unknown,
        "paid" => ConfirmOutcome::Paid,
        "failed" => ConfirmOutcome::Failed,
        "amount_mismatch" => ConfirmOutcome::AmountMismatch,
        "paid_twice" => ConfirmOutcome::PaidTwice,
        "stale" => ConfirmOutcome::Stale,
        "duplicate:paid_twice" => ConfirmOutcome::Duplicate(PaymentState::Paid),
        _ if s.starts_with("duplicate:") => ConfirmOutcome::Duplicate(state(&s[10..])?),
        _ if s.starts_with("already:") => ConfirmOutcome::AlreadySettled(state(&s[8..])?),
        _ => return Err(QueueError::Corrupt(format!("payment outcome {s}"))),
    })
}
