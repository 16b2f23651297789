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
mod outbox;
pub(super) mod redis;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use self::memory::MemoryQueue;
pub use self::outbox::OutboxEvent;
use self::redis::RedisQueue;
use super::{Millis, StorageError, Store};

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
    /// The trace that accepted the message (W3C `traceparent`), which its delivery continues.
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
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

/// The most message ids an ordering key's history index keeps (the newest): a dossier with more
/// messages than this shows its latest ones. The same figure is in `lua/lib/push.lua`.
pub const KEY_HISTORY_CAP: usize = 1000;

/// What a settlement records beside the message's own state, in the same atomic step.
#[derive(Debug, Clone, Default)]
pub struct SettleNotes {
    /// On delivery: the status the message carried to the destination (a dossier's
    /// `TrangThaiHoSo`), kept as the ordering key's last status.
    pub status: Option<String>,
    /// On death: the event that tells the centre (`dossier.rejected`).
    pub on_dead: Option<OutboxEvent>,
    /// On delivery of a message replayed from the dead letters: the event that tells the
    /// centre (`dossier.delivered`).
    pub on_redelivered: Option<OutboxEvent>,
}

/// An ordering key's messages in acceptance order (those whose records are still kept).
#[derive(Debug, Clone)]
pub struct KeyHistory {
    /// The last status the destination took for the key.
    pub status: Option<String>,
    /// The id at the head of the key's FIFO, if any message waits.
    pub head: Option<String>,
    pub messages: Vec<MessageRecord>,
}

impl KeyHistory {
    /// Marks the messages queued behind a dead head `blocked`, as a single look-up does.
    pub(in crate::storage) fn new(status: Option<String>, head: Option<String>, mut messages: Vec<MessageRecord>) -> Self {
        let head_dead = head
            .as_deref()
            .is_some_and(|h| messages.iter().any(|m| m.id == h && m.status == MessageStatus::Dead));
        if head_dead {
            for m in &mut messages {
                if matches!(m.status, MessageStatus::Queued | MessageStatus::Retrying) {
                    m.status = MessageStatus::Blocked;
                }
            }
        }
        KeyHistory { status, head, messages }
    }

    /// Whether the key's head is dead, holding back what follows.
    pub fn blocked(&self) -> bool {
        self.head
            .as_deref()
            .is_some_and(|h| self.messages.iter().any(|m| m.id == h && m.status == MessageStatus::Dead))
    }
}

/// A queue's paced replay as stored (see `lua/replay_job.lua`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayJob {
    pub id: String,
    pub total: u64,
    pub done: u64,
    pub rate_per_sec: f64,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    /// `running` | `finished` | `cancelled`.
    pub state: String,
}

/// What a replay runner may do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayStep {
    /// Replay this id, then report it done.
    Replay(String),
    /// Nothing is left: the job is finished.
    Finished,
    /// The runner no longer holds the job's lease: another process runs it.
    Lost,
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

/// Whether a delivery to a rate-limited destination may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Granted,
    /// None is free; the next one is, at the earliest, after this long.
    Wait(Duration),
}

/// Taking a permit, or only asking how long until one is free (without taking it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitAsk {
    Take,
    Peek,
}

/// How many deliveries the shared rate limit lets through at once after a quiet spell:
/// a tenth of a second's worth, at least one. Any window of W seconds then carries at most
/// `rate * W + burst` deliveries.
pub fn rate_burst(per_sec: u32) -> u32 {
    (per_sec / 10).max(1)
}

/// The GCRA's emission interval: microseconds between two permits, rounded up so that the
/// fleet never goes faster than the rate.
pub(in crate::storage) fn rate_interval_us(per_sec: u32) -> i64 {
    1_000_000u32.div_ceil(per_sec.max(1)) as i64
}

/// The partition of `ordering_key` in a queue of `partitions` partitions: FNV-1a (64 bits) of
/// the key's UTF-8 bytes, modulo the count. Stable across processes, versions and platforms,
/// so a key always lands in the same partition and keeps its FIFO; documented in
/// docs/operations.md with a test vector.
pub fn partition_of(ordering_key: &str, partitions: u16) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = ordering_key
        .as_bytes()
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    (hash % u64::from(partitions.max(1))) as u16
}

/// The name partition `i` of `partitions` of queue `queue` is stored under (its hash tag in
/// Redis): the queue's own name when there is one partition, so an unpartitioned deployment
/// keeps its keys, else `queue:i`.
fn partition_name(queue: &str, partitions: u16, i: u16) -> String {
    if partitions <= 1 {
        queue.to_string()
    } else {
        format!("{queue}:{i}")
    }
}

/// Start-up refuses a partition count that would strand messages.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "queue.partitions is {configured}, but queue {queue:?} was laid out in {stored} partition(s) and still holds \
         {waiting} message(s) (queued, in flight, dead or blocked); drain it, or set queue.partitions back to {stored}: \
         the partition count of a queue changes only while it is empty"
    )]
    Changed {
        queue: String,
        stored: u16,
        configured: u16,
        waiting: u64,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Clone)]
enum Backend {
    Redis(RedisQueue),
    Memory(MemoryQueue),
}

/// How the queues are split: one count for every queue, except those kept whole.
#[derive(Default)]
struct Layout {
    partitions: u16,
    whole: BTreeSet<String>,
    /// Per queue, the partition the next claim starts at: it moves on by one every claim, so
    /// a busy partition cannot starve the others.
    cursors: Mutex<HashMap<String, usize>>,
}

/// The delivery queues, by name. Cheap to clone.
///
/// A queue of P partitions is P queues of the backend, `queue:0` … `queue:P-1` (just `queue`
/// when P = 1), each with its own Redis hash tag. A message goes to the partition of its
/// ordering key ([`partition_of`]), so everything the backend does atomically for one key stays
/// in one slot; this layer spreads claims over the partitions and gathers the rest (stats,
/// dead letters, look-ups by id) from all of them.
#[derive(Clone)]
pub struct MessageQueue {
    backend: Backend,
    layout: Arc<Layout>,
}

/// Forwards to the backend.
macro_rules! on {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.backend {
            Backend::Redis($b) => $e,
            Backend::Memory($b) => $e,
        }
    };
}

impl MessageQueue {
    /// Every queue in one partition; see [`MessageQueue::with_partitions`].
    pub fn new(store: &Store) -> Self {
        let backend = match store {
            Store::Redis(s) => Backend::Redis(RedisQueue::new(s.clone())),
            Store::Memory(s) => Backend::Memory(MemoryQueue::new(s.clone())),
        };
        MessageQueue {
            backend,
            layout: Arc::new(Layout {
                partitions: 1,
                ..Layout::default()
            }),
        }
    }

    /// The same queues with `partitions` partitions each (`queue.partitions`), except the
    /// queues named in `whole`, which keep one: a queue written by another concern's script in
    /// that concern's slot (the payment ledger's events queue).
    pub fn with_partitions<'a>(self, partitions: u16, whole: impl IntoIterator<Item = &'a str>) -> Self {
        MessageQueue {
            backend: self.backend,
            layout: Arc::new(Layout {
                partitions: partitions.max(1),
                whole: whole.into_iter().map(str::to_string).collect(),
                cursors: Mutex::default(),
            }),
        }
    }

    /// The partition count of queue `queue`.
    pub fn partitions(&self, queue: &str) -> u16 {
        if self.layout.whole.contains(queue) {
            1
        } else {
            self.layout.partitions
        }
    }

    /// The stored name of every partition of `queue`.
    fn parts(&self, queue: &str) -> Vec<String> {
        let p = self.partitions(queue);
        (0..p).map(|i| partition_name(queue, p, i)).collect()
    }

    /// The stored name of the partition holding `ordering_key`.
    fn part_of(&self, queue: &str, ordering_key: &str) -> String {
        let p = self.partitions(queue);
        partition_name(queue, p, partition_of(ordering_key, p))
    }

    fn next_start(&self, queue: &str, n: usize) -> usize {
        let mut cursors = self.layout.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let c = cursors.entry(queue.to_string()).or_default();
        let start = *c % n;
        *c = c.wrapping_add(1);
        start
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    /// Accepts a message into the partition of its ordering key, where its idempotency key
    /// lives too (a reused key is recognised when it comes with the same ordering key, which
    /// a retry of the same request always has). It keeps the current span's trace, if any.
    pub async fn enqueue(&self, queue: &str, msg: NewMessage, idem: Option<&Idempotency>, now: Millis) -> Result<Enqueued, StorageError> {
        let (part, trace) = (self.part_of(queue, &msg.ordering_key), crate::telemetry::current_traceparent());
        on!(self, q => q.enqueue(&part, msg, idem, trace, now).await)
    }

    /// Claims up to `max` due heads. Nothing when the queue is paused. Partitions are visited
    /// in turn from a start that moves on by one every call, so each partition is first in
    /// line at least once every P claims. A partition that fails after others gave messages
    /// is left for the next claim rather than losing those messages' leases to the error.
    pub async fn claim(&self, queue: &str, max: usize, lease_until: Millis, now: Millis) -> Result<Vec<Claimed>, StorageError> {
        let parts = self.parts(queue);
        let n = parts.len();
        let start = self.next_start(queue, n);
        let mut out = Vec::new();
        for j in 0..n {
            if out.len() >= max {
                break;
            }
            let part = &parts[(start + j) % n];
            match on!(self, q => q.claim(part, max - out.len(), lease_until, now).await) {
                Ok(batch) => out.extend(batch),
                Err(e) if out.is_empty() && j + 1 == n => return Err(e),
                Err(e) if out.is_empty() => {
                    // Debug: an outage would write it per claim and partition (`crate::outage`).
                    tracing::debug!(queue, partition = %part, error = %e, "cannot claim from a partition; trying the next");
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Settles a claimed message. `Ok(false)` means the lease was lost (it expired and the
    /// message went back to the queue): the settlement is ignored.
    pub async fn settle(
        &self,
        queue: &str,
        claimed: &Claimed,
        how: &Disposition,
        now: Millis,
        retention_secs: u64,
    ) -> Result<bool, StorageError> {
        self.settle_noted(queue, claimed, how, now, retention_secs, &SettleNotes::default())
            .await
    }

    /// Settles a claimed message and records `notes` in the same atomic step.
    pub async fn settle_noted(
        &self,
        queue: &str,
        claimed: &Claimed,
        how: &Disposition,
        now: Millis,
        retention_secs: u64,
        notes: &SettleNotes,
    ) -> Result<bool, StorageError> {
        let part = self.part_of(queue, &claimed.ordering_key);
        on!(self, q => q.settle(&part, claimed, how, now, retention_secs, notes).await)
    }

    /// An ordering key's history: its messages in acceptance order (the newest
    /// [`KEY_HISTORY_CAP`], those whose records are still kept) and its last status. `None`
    /// when the queue holds nothing of the key. One partition, one index read: no scan.
    pub async fn key_history(&self, queue: &str, ordering_key: &str) -> Result<Option<KeyHistory>, StorageError> {
        let part = self.part_of(queue, ordering_key);
        let mut h = on!(self, q => q.key_history(&part, ordering_key).await)?;
        if let Some(h) = &mut h {
            for m in &mut h.messages {
                m.destination = queue.to_string();
            }
        }
        Ok(h)
    }

    /// The dead letter of an ordering key, if it has one. Only a key's head can be dead (a dead
    /// head holds everything behind it), so this is one look-up of the head.
    pub async fn dead_of_key(&self, queue: &str, ordering_key: &str) -> Result<Option<MessageRecord>, StorageError> {
        let part = self.part_of(queue, ordering_key);
        let Some(head) = on!(self, q => q.key_history(&part, ordering_key).await)?.and_then(|h| h.head) else {
            return Ok(None);
        };
        let r = on!(self, q => q.get(&part, &head).await)?;
        Ok(r.filter(|r| r.status == MessageStatus::Dead).map(|mut r| {
            r.destination = queue.to_string();
            r
        }))
    }

    /// Moves up to `max` events from the outboxes of `queue`'s partitions to queue `sink`
    /// (the centre's). Each is queued with its event id as idempotency key (scope `outbox`,
    /// kept `idem_ttl_secs`) before it leaves the outbox, so a relay that dies between the two
    /// steps, or two processes relaying at once, queue it once. Returns how many were moved.
    pub async fn relay_outbox(&self, queue: &str, sink: &str, max: usize, idem_ttl_secs: u64, now: Millis) -> Result<usize, StorageError> {
        let mut moved = 0;
        for part in self.parts(queue) {
            let raws = on!(self, q => q.outbox(&part, max.saturating_sub(moved)).await)?;
            for raw in raws {
                match OutboxEvent::decode(&raw) {
                    Some((event_id, ev)) => {
                        let idem = Idempotency {
                            scope: "outbox".into(),
                            key: event_id,
                            fingerprint: String::new(),
                            ttl_secs: idem_ttl_secs,
                        };
                        let msg = NewMessage {
                            kind: ev.kind,
                            ordering_key: ev.ordering_key,
                            payload: ev.payload.into_bytes(),
                        };
                        // The event continues the trace of the attempt that settled its message.
                        let part = self.part_of(sink, &msg.ordering_key);
                        let trace = ev.traceparent;
                        on!(self, q => q.enqueue(&part, msg, Some(&idem), trace, now).await)?;
                    }
                    None => tracing::error!(queue = %part, "an outbox entry that does not parse is dropped"),
                }
                on!(self, q => q.outbox_done(&part, &raw).await)?;
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Returns expired leases to the queue; how many.
    pub async fn reap(&self, queue: &str, now: Millis) -> Result<usize, StorageError> {
        let mut n = 0;
        for part in self.parts(queue) {
            n += on!(self, q => q.reap(&part, now).await)?;
        }
        Ok(n)
    }

    /// A message by id. An id does not say its partition (ids stay plain UUIDs, as the API
    /// promises), so each partition is asked in turn; it is in exactly one.
    pub async fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>, StorageError> {
        for part in self.parts(queue) {
            if let Some(mut r) = on!(self, q => q.get(&part, id).await)? {
                r.destination = queue.to_string();
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Dead letters in order of death (then id), over every partition: the first
    /// `offset + limit` of each partition are merged, which is the order one partition
    /// lists them in too.
    pub async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<MessageRecord>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let want = offset.saturating_add(limit);
        let mut all: Vec<(Millis, String, String)> = Vec::new();
        for part in self.parts(queue) {
            for (at, id) in on!(self, q => q.dead_ids(&part, want).await)? {
                all.push((at, id, part.clone()));
            }
        }
        all.sort();
        let mut out = Vec::with_capacity(limit.min(all.len()));
        for (_, id, part) in all.into_iter().skip(offset).take(limit) {
            if let Some(mut r) = on!(self, q => q.get(&part, &id).await)? {
                r.destination = queue.to_string();
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Puts a dead message back at the head of its key with a fresh retry budget.
    pub async fn replay(&self, queue: &str, id: &str, now: Millis) -> Result<bool, StorageError> {
        for part in self.parts(queue) {
            if on!(self, q => q.replay(&part, id, now).await)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Drops a dead message for good and unblocks its key.
    pub async fn discard(&self, queue: &str, id: &str, now: Millis, retention_secs: u64) -> Result<bool, StorageError> {
        for part in self.parts(queue) {
            if on!(self, q => q.discard(&part, id, now, retention_secs).await)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads maintained counters: constant work per partition, however many messages are dead
    /// or blocked, because `/metrics` (unauthenticated) and `/v1/queues` call it on every
    /// request. The partitions' figures add up; the oldest age is the oldest of any.
    pub async fn stats(&self, queue: &str, now: Millis) -> Result<QueueStats, StorageError> {
        let mut total = QueueStats::default();
        for part in self.parts(queue) {
            let s = on!(self, q => q.stats(&part, now).await)?;
            total.ready += s.ready;
            total.scheduled += s.scheduled;
            total.in_flight += s.in_flight;
            total.dead += s.dead;
            total.blocked += s.blocked;
            total.delivered_total += s.delivered_total;
            total.oldest_ready_age_seconds = total.oldest_ready_age_seconds.max(s.oldest_ready_age_seconds);
            total.paused |= s.paused;
        }
        Ok(total)
    }

    /// Recounts `dead` and `blocked` from scratch and shows them beside the maintained
    /// counters, changing nothing. O(dead letters): for tests and for checking a deployment,
    /// never for a scrape.
    pub async fn audit_counters(&self, queue: &str) -> Result<CounterAudit, StorageError> {
        let mut total = CounterAudit::default();
        for part in self.parts(queue) {
            let a = on!(self, q => q.audit_counters(&part).await)?;
            total.dead += a.dead;
            total.blocked += a.blocked;
            total.counted_dead += a.counted_dead;
            total.counted_blocked += a.counted_blocked;
        }
        Ok(total)
    }

    /// Pauses (or resumes) every partition.
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StorageError> {
        for part in self.parts(queue) {
            on!(self, q => q.set_paused(&part, paused).await)?;
        }
        Ok(())
    }

    /// Checks, at start-up, that `queue` is stored in the partition count configured for it,
    /// and records the count. A queue recorded with another count (a queue with no record is
    /// one from before partitions: 1) is taken over only when it holds nothing, because its
    /// messages would sit in partitions nobody reads any more, and a key's FIFO would be
    /// split across two partitions.
    pub async fn check_partitions(&self, queue: &str, now: Millis) -> Result<(), PartitionError> {
        let configured = self.partitions(queue);
        let recorded = on!(self, q => q.recorded_partitions(queue).await)?;
        let stored = recorded.unwrap_or(1);
        if stored != configured {
            let mut waiting = 0;
            for i in 0..stored {
                let s = on!(self, q => q.stats(&partition_name(queue, stored, i), now).await)?;
                waiting += s.ready + s.scheduled + s.in_flight + s.dead + s.blocked;
            }
            if waiting > 0 {
                return Err(PartitionError::Changed {
                    queue: queue.to_string(),
                    stored,
                    configured,
                    waiting,
                });
            }
        }
        if recorded != Some(configured) {
            on!(self, q => q.record_partitions(queue, configured).await)?;
        }
        Ok(())
    }

    /// Records a new paced replay of `ids` for `queue`, unless one is running: then `Err` with
    /// the running job's id.
    pub async fn replay_job_start(
        &self,
        queue: &str,
        job_id: &str,
        rate: f64,
        ids: &[String],
        now: Millis,
    ) -> Result<Result<(), String>, StorageError> {
        on!(self, q => q.replay_job_start(queue, job_id, rate, ids, now).await)
    }

    /// The queue's latest paced replay, if any.
    pub async fn replay_job(&self, queue: &str) -> Result<Option<ReplayJob>, StorageError> {
        on!(self, q => q.replay_job(queue).await)
    }

    /// Takes or renews the running replay's lease for `owner` until `until`; `false` when
    /// there is no running replay or another live process holds it.
    pub async fn replay_job_lease(&self, queue: &str, owner: &str, until: Millis, now: Millis) -> Result<bool, StorageError> {
        on!(self, q => q.replay_job_lease(queue, owner, until, now).await)
    }

    pub async fn replay_job_next(&self, queue: &str, owner: &str, now: Millis) -> Result<ReplayStep, StorageError> {
        on!(self, q => q.replay_job_next(queue, owner, now).await)
    }

    /// Cancels the queue's running paced replay: its runner (in any process on this store)
    /// stops at its next lease renewal, the letters not yet replayed stay dead, and a new
    /// replay may start. `false` when none runs.
    pub async fn replay_job_cancel(&self, queue: &str, now: Millis) -> Result<bool, StorageError> {
        on!(self, q => q.replay_job_cancel(queue, now).await)
    }

    /// Counts `id` replayed; `None` when the lease is lost.
    pub async fn replay_job_done(&self, queue: &str, owner: &str, id: &str, now: Millis) -> Result<Option<u64>, StorageError> {
        on!(self, q => q.replay_job_done(queue, owner, id, now).await)
    }

    /// Asks the shared rate limit of `destination` (`per_sec` deliveries a second across every
    /// process on this store, with a burst of [`rate_burst`]) for a permit.
    pub async fn permit(&self, destination: &str, per_sec: u32, ask: PermitAsk) -> Result<Permit, StorageError> {
        on!(self, q => q.permit(destination, per_sec, ask).await)
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Redis(q) => q.store().ping().await,
            Backend::Memory(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented hash: pinned so that it can never change under a live queue.
    #[test]
    fn partition_hash_is_fnv1a_64_of_the_utf8_bytes() {
        // FNV-1a 64 test vectors (the empty string, "a") and an ordering key.
        assert_eq!(partition_of("", u16::MAX), (0xcbf2_9ce4_8422_2325u64 % 65_535) as u16);
        assert_eq!(partition_of("a", u16::MAX), (0xaf63_dc4c_8601_ec8cu64 % 65_535) as u16);
        // 0x91ec_ee68_8751_e9b1 % 8 = 1.
        assert_eq!(partition_of("000.00.22.H46-241125-0001", 8), 1);
        assert_eq!(partition_of("Hồ sơ", 8), partition_of("Hồ sơ", 8));
        for key in ["a", "b", "000.00.22.H46-241125-0001"] {
            assert_eq!(partition_of(key, 1), 0);
            assert!(partition_of(key, 4) < 4);
        }
        // Keys spread: 1000 keys over 8 partitions, none empty or holding a third.
        let mut counts = [0u32; 8];
        for n in 0..1000 {
            counts[partition_of(&format!("000.00.22.H46-241125-{n:04}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (50..333).contains(c)), "{counts:?}");
    }

    #[test]
    fn one_partition_keeps_the_queue_name_and_more_add_the_index() {
        assert_eq!(partition_name("dvcqg", 1, 0), "dvcqg");
        assert_eq!(partition_name("dvcqg", 8, 3), "dvcqg:3");
    }

    #[test]
    fn the_burst_is_a_tenth_of_the_rate_and_at_least_one() {
        assert_eq!(rate_burst(1), 1);
        assert_eq!(rate_burst(50), 5);
        assert_eq!(rate_burst(1000), 100);
        assert_eq!(rate_interval_us(50), 20_000);
        assert_eq!(rate_interval_us(3), 333_334);
    }
}
