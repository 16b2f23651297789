//! The queues in Redis. Every state change is one Lua script (`../lua/`), so a crash between
//! two commands cannot leave a message half-moved, and two gateway processes on one Redis see
//! one consistent queue. Each script has exactly one wrapper here, which builds its KEYS and
//! ARGV from named arguments and turns its reply into a type; a reply it does not know is
//! `Corrupt`.
//!
//! Keys of queue `q` under prefix `p` all carry the hash tag `{q}`, so Redis Cluster keeps a
//! queue in one slot. Every name is either fixed or begins with a fixed family prefix that no
//! other name begins with, so no outside text (a message id, an ordering key) can name another
//! key (the ledger's families, `payment:…`, are apart too: see `ledger::redis`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:{q}:m:<id>` | hash | a message and its payload |
//! | `p:{q}:k:<ordering key>` | list | the key's FIFO of message ids; the head is the one that may be in flight |
//! | `p:{q}:due` | zset | ordering key -> when its head may be claimed |
//! | `p:{q}:lease` | zset | message id -> lease deadline |
//! | `p:{q}:dead` | zset | message id -> time of death |
//! | `p:{q}:idem:<scope>:<key>` | string | `<id>\n<fingerprint>` of an idempotency key |
//! | `p:{q}:paused` | string | present while the queue is paused |
//! | `p:{q}:stats` | hash | counters: `accepted`, `delivered_total`, `discarded_total`, `blocked`, `counters_v` |
//! | `p:{q}:meta` | hash | `partitions`: the partition count the queue is laid out in (on the queue's own name, not a partition's) |
//! | `p:{q}:dx:<ordering key>` | list | the key's message ids in acceptance order, the newest 1000 ([`super::KEY_HISTORY_CAP`]); expires with the records of the key's last message |
//! | `p:{q}:ps:<ordering key>` | string | the last status the destination took for the key (a dossier's `portal_status`); expires with the index |
//! | `p:{q}:outbox` | list | events for the centre written by `settle.lua`, `<event id>\n<kind>\n<ordering key>\n<payload>`, until relayed to the centre's queue |
//! | `p:{Q}:replayjob` | hash | the queue's latest paced replay: `id`, `total`, `done`, `rate`, `started`, `finished`, `state`, and the running process's `owner` and `lease` (on the queue's own name `Q`, not a partition's) |
//! | `p:{Q}:replayids` | list | the ids that replay has still to replay |
//! | `p:{d}:rate` | string | the shared rate limit's arrival time for destination `d` (`rate.lua`) |
//!
//! Here `q` is one partition of a queue (`dvcqg`, or `dvcqg:3` when there are several: see
//! the queue layer above), so all the keys a script touches share one partition's tag.
//!
//! Statistics are read from counters, never by walking the queue: `dead` is the cardinality of
//! `dead`, `blocked` (messages queued behind a dead head) is kept by the scripts that change it.
//! `counters_v` marks a queue whose `blocked` was counted from scratch once; a queue without it
//! (data from before the counters, or an operator who deleted the field to force it) is
//! recounted on its next stats read.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::{
    Claimed, CounterAudit, Disposition, Enqueued, Idempotency, KeyHistory, MessageRecord, MessageStatus, NewMessage, OutboxEvent, Permit,
    PermitAsk, QueueStats, ReplayJob, ReplayStep, SettleNotes, rate_burst, rate_interval_us,
};
use crate::storage::redis::{corrupt, counter, number, one_of_two, opt_ms, reply, text};
use crate::storage::{Millis, RedisStore, StorageError};

static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("../lua/lib/push.lua"), include_str!("../lua/enqueue.lua"))));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/claim.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/settle.lua")));
static REAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/reap.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/get.lua")));
static REPLAY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/replay.lua")));
static DISCARD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/discard.lua")));
static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/stats.lua")));
static RECOUNT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/recount.lua")));
static RATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/rate.lua")));
static REPLAY_JOB: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/replay_job.lua")));
static DOSSIER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/dossier.lua")));

#[derive(Clone)]
pub struct RedisQueue {
    store: RedisStore,
}

/// The keys of one queue: `p:{q}:` and the names under it.
pub(in crate::storage) struct QueueKeys {
    pub base: String,
}

impl QueueKeys {
    pub fn new(store: &RedisStore, queue: &str) -> Self {
        QueueKeys { base: store.base(queue) }
    }

    pub fn message(&self, id: &str) -> String {
        format!("{}m:{id}", self.base)
    }

    pub fn ordering_key(&self, okey: &str) -> String {
        format!("{}k:{okey}", self.base)
    }

    pub fn named(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }
}

/// The counters and cardinalities `stats.lua` reads.
struct RawStats {
    scheduled: u64,
    in_flight: u64,
    dead: u64,
    paused: bool,
    accepted: u64,
    delivered_total: u64,
    discarded_total: u64,
    blocked: u64,
    counted_once: bool,
    oldest_due: Option<f64>,
}

impl RedisQueue {
    pub(super) fn new(store: RedisStore) -> Self {
        RedisQueue { store }
    }

    pub(super) fn store(&self) -> &RedisStore {
        &self.store
    }

    /// `enqueue.lua`.
    pub async fn enqueue(
        &self,
        queue: &str,
        msg: NewMessage,
        idem: Option<&Idempotency>,
        traceparent: Option<String>,
        now: Millis,
    ) -> Result<Enqueued, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let id = uuid::Uuid::now_v7().to_string();
        let mut inv = ENQUEUE.prepare_invoke();
        inv.key(k.message(&id))
            .key(k.ordering_key(&msg.ordering_key))
            .key(k.named("due"))
            .key(k.named("stats"));
        let (fingerprint, ttl_secs) = match idem {
            Some(i) => {
                inv.key(k.named(&format!("idem:{}:{}", i.scope, i.key)));
                (i.fingerprint.as_str(), i.ttl_secs)
            }
            None => ("", 0),
        };
        inv.arg(&id)
            .arg(&msg.kind)
            .arg(&msg.ordering_key)
            .arg(&msg.payload)
            .arg(now)
            .arg(fingerprint)
            .arg(ttl_secs)
            .arg(traceparent.as_deref().unwrap_or_default());
        let (answer, rid): (String, String) = reply(&self.store.run_acknowledged(&inv, &k.base).await?, "enqueue reply")?;
        match answer.as_str() {
            "accepted" => Ok(Enqueued::Accepted(rid)),
            "replayed" => Ok(Enqueued::Replayed(rid)),
            "conflict" => Ok(Enqueued::Conflict),
            other => Err(corrupt(format_args!("enqueue reply {other:?}"))),
        }
    }

    /// `claim.lua`.
    pub async fn claim(&self, queue: &str, max: usize, lease_until: Millis, now: Millis) -> Result<Vec<Claimed>, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let token = uuid::Uuid::new_v4().to_string();
        let mut inv = CLAIM.key(k.named("due"));
        inv.key(k.named("lease"))
            .key(k.named("paused"))
            .arg(now)
            .arg(lease_until)
            .arg(max)
            .arg(&k.base)
            .arg(&token);
        let rows: Vec<Vec<Value>> = reply(&self.store.run(&inv).await?, "claim reply")?;
        rows.iter()
            .map(|row| {
                let [id, okey, kind, payload, attempts, created, age_from, traceparent] = &row[..] else {
                    return Err(corrupt("claim row"));
                };
                Ok(Claimed {
                    id: text(id, "claimed id")?,
                    kind: text(kind, "claimed kind")?,
                    ordering_key: text(okey, "claimed ordering key")?,
                    payload: reply(payload, "claimed payload")?,
                    attempts: number(attempts, "claimed attempts")?,
                    created_at: number(created, "claimed created")?,
                    age_from: number(age_from, "claimed age_from")?,
                    token: token.clone(),
                    // A message queued before traces were kept has none.
                    traceparent: text(traceparent, "claimed traceparent").ok().filter(|t| !t.is_empty()),
                })
            })
            .collect()
    }

    /// `settle.lua`.
    pub async fn settle(
        &self,
        queue: &str,
        c: &Claimed,
        how: &Disposition,
        now: Millis,
        retention_secs: u64,
        notes: &SettleNotes,
    ) -> Result<bool, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let (mode, retry_at, error) = match how {
            Disposition::Delivered => ("delivered", 0, ""),
            Disposition::Retry { at, error } => ("retry", *at, error.as_str()),
            Disposition::Dead { error } => ("dead", 0, error.as_str()),
            Disposition::Release => ("release", 0, ""),
        };
        let mut inv = SETTLE.key(k.message(&c.id));
        inv.key(k.ordering_key(&c.ordering_key))
            .key(k.named("due"))
            .key(k.named("lease"))
            .key(k.named("dead"))
            .key(k.named("stats"))
            .arg(&c.id)
            .arg(&c.token)
            .arg(mode)
            .arg(now)
            .arg(retry_at)
            .arg(error)
            .arg(&c.ordering_key)
            .arg(retention_secs.max(1))
            .key(k.named("outbox"))
            .key(k.named(&format!("dx:{}", c.ordering_key)))
            .key(k.named(&format!("ps:{}", c.ordering_key)))
            .arg(notes.status.as_deref().unwrap_or(""))
            .arg(notes.on_dead.as_ref().map(OutboxEvent::encode).unwrap_or_default())
            .arg(notes.on_redelivered.as_ref().map(OutboxEvent::encode).unwrap_or_default());
        one_of_two(
            &self.store.run_acknowledged(&inv, &k.base).await?,
            "settle reply",
            "settled",
            "lease_lost",
        )
    }

    /// `reap.lua`.
    pub async fn reap(&self, queue: &str, now: Millis) -> Result<usize, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = REAP.key(k.named("lease"));
        inv.key(k.named("due")).arg(now).arg(&k.base);
        number(&self.store.run(&inv).await?, "reap reply")
    }

    /// `get.lua`.
    pub async fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = GET.key(k.message(id));
        inv.arg(&k.base).arg(id);
        let f = match self.store.run(&inv).await? {
            Value::Nil => return Ok(None),
            Value::Array(f) => f,
            other => return Err(corrupt(format_args!("message record {other:?}"))),
        };
        let [kind, okey, status, attempts, created, next, delivered, err, head_status] = &f[..] else {
            return Err(corrupt("message record"));
        };
        let status = text(status, "message status")?;
        let mut status = MessageStatus::parse(&status).ok_or_else(|| corrupt(format_args!("message status {status:?}")))?;
        if matches!(status, MessageStatus::Queued | MessageStatus::Retrying) && text(head_status, "head status")? == "dead" {
            status = MessageStatus::Blocked;
        }
        Ok(Some(MessageRecord {
            id: id.to_string(),
            kind: text(kind, "message kind")?,
            destination: queue.to_string(),
            ordering_key: text(okey, "message ordering key")?,
            status,
            attempts: number(attempts, "message attempts")?,
            created_at: number(created, "message created")?,
            next_attempt_at: opt_ms(next, "message next attempt")?,
            delivered_at: opt_ms(delivered, "message delivered")?,
            last_error: Some(text(err, "message error")?).filter(|s| !s.is_empty()),
        }))
    }

    /// `dossier.lua`: the key's history, `None` when no message of it is known.
    pub async fn key_history(&self, queue: &str, okey: &str) -> Result<Option<KeyHistory>, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = DOSSIER.key(k.named(&format!("dx:{okey}")));
        inv.key(k.named(&format!("ps:{okey}"))).key(k.ordering_key(okey)).arg(&k.base);
        let (status, head, rows): (String, String, Vec<Vec<Value>>) = reply(&self.store.run(&inv).await?, "key history")?;
        if rows.is_empty() && head.is_empty() {
            return Ok(None);
        }
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let [id, kind, st, attempts, created, next, delivered, err] = &row[..] else {
                return Err(corrupt("key history row"));
            };
            let st = text(st, "message status")?;
            messages.push(MessageRecord {
                id: text(id, "message id")?,
                kind: text(kind, "message kind")?,
                destination: queue.to_string(),
                ordering_key: okey.to_string(),
                status: MessageStatus::parse(&st).ok_or_else(|| corrupt(format_args!("message status {st:?}")))?,
                attempts: number(attempts, "message attempts")?,
                created_at: number(created, "message created")?,
                next_attempt_at: opt_ms(next, "message next attempt")?,
                delivered_at: opt_ms(delivered, "message delivered")?,
                last_error: Some(text(err, "message error")?).filter(|s| !s.is_empty()),
            });
        }
        Ok(Some(KeyHistory::new(
            Some(status).filter(|s| !s.is_empty()),
            Some(head).filter(|h| !h.is_empty()),
            messages,
        )))
    }

    /// The first `max` events of the outbox, oldest first, as stored.
    pub async fn outbox(&self, queue: &str, max: usize) -> Result<Vec<String>, StorageError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let key = QueueKeys::new(&self.store, queue).named("outbox");
        self.store.cmd(redis::cmd("LRANGE").arg(&key).arg(0).arg(max - 1)).await
    }

    /// Removes one relayed event from the outbox.
    pub async fn outbox_done(&self, queue: &str, raw: &str) -> Result<(), StorageError> {
        let key = QueueKeys::new(&self.store, queue).named("outbox");
        self.store
            .cmd::<i64>(redis::cmd("LREM").arg(&key).arg(1).arg(raw))
            .await
            .map(|_| ())
    }

    /// The first `upto` dead letters, oldest death first (ties by id), with their times.
    pub async fn dead_ids(&self, queue: &str, upto: usize) -> Result<Vec<(Millis, String)>, StorageError> {
        if upto == 0 {
            return Ok(Vec::new());
        }
        let k = QueueKeys::new(&self.store, queue);
        let rows: Vec<(String, f64)> = self
            .store
            .cmd(redis::cmd("ZRANGE").arg(k.named("dead")).arg(0).arg(upto - 1).arg("WITHSCORES"))
            .await?;
        Ok(rows.into_iter().map(|(id, at)| (at as Millis, id)).collect())
    }

    /// `replay.lua`.
    pub async fn replay(&self, queue: &str, id: &str, now: Millis) -> Result<bool, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = REPLAY.key(k.message(id));
        inv.key(k.named("dead"))
            .key(k.named("due"))
            .key(k.named("stats"))
            .arg(id)
            .arg(now)
            .arg(&k.base);
        one_of_two(&self.store.run(&inv).await?, "replay reply", "replayed", "not_dead")
    }

    /// `discard.lua`.
    pub async fn discard(&self, queue: &str, id: &str, now: Millis, retention_secs: u64) -> Result<bool, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = DISCARD.key(k.message(id));
        inv.key(k.named("dead"))
            .key(k.named("due"))
            .key(k.named("stats"))
            .arg(id)
            .arg(now)
            .arg(&k.base)
            .arg(retention_secs.max(1));
        one_of_two(&self.store.run(&inv).await?, "discard reply", "discarded", "not_dead")
    }

    /// Reads the counters (`stats.lua`): constant work however many dead letters there are.
    /// The first read of a queue whose data predates the counters counts them once from
    /// scratch (`recount.lua`) and reads again.
    pub async fn stats(&self, queue: &str, now: Millis) -> Result<QueueStats, StorageError> {
        let mut raw = self.read_stats(queue, now).await?;
        if !raw.counted_once {
            self.recount(queue, true).await?;
            raw = self.read_stats(queue, now).await?;
        }
        let pending = raw.accepted.saturating_sub(raw.delivered_total + raw.discarded_total);
        let oldest = raw
            .oldest_due
            .filter(|at| *at as i64 <= now)
            .map_or(0.0, |at| (now as f64 - at) / 1000.0);
        Ok(QueueStats {
            ready: pending.saturating_sub(raw.in_flight + raw.dead + raw.blocked + raw.scheduled),
            scheduled: raw.scheduled,
            in_flight: raw.in_flight,
            dead: raw.dead,
            blocked: raw.blocked,
            delivered_total: raw.delivered_total,
            oldest_ready_age_seconds: oldest,
            paused: raw.paused,
        })
    }

    /// `stats.lua`.
    async fn read_stats(&self, queue: &str, now: Millis) -> Result<RawStats, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = STATS.key(k.named("due"));
        inv.key(k.named("lease"))
            .key(k.named("dead"))
            .key(k.named("stats"))
            .key(k.named("paused"))
            .arg(now);
        let v: Vec<Value> = reply(&self.store.run(&inv).await?, "queue stats")?;
        let [
            _ready_keys,
            scheduled,
            in_flight,
            dead,
            paused,
            accepted,
            delivered,
            discarded,
            blocked,
            counters_v,
            oldest,
        ] = &v[..]
        else {
            return Err(corrupt("queue stats"));
        };
        let oldest = text(oldest, "oldest due time")?;
        Ok(RawStats {
            scheduled: number(scheduled, "scheduled keys")?,
            in_flight: number(in_flight, "in flight")?,
            dead: number(dead, "dead")?,
            paused: number::<u8>(paused, "paused")? == 1,
            accepted: counter(accepted, "accepted counter")?,
            delivered_total: counter(delivered, "delivered counter")?,
            discarded_total: counter(discarded, "discarded counter")?,
            blocked: counter(blocked, "blocked counter")?,
            counted_once: counter(counters_v, "counters version")? >= 1,
            oldest_due: if oldest.is_empty() {
                None
            } else {
                Some(oldest.parse().map_err(|_| corrupt(format_args!("oldest due time {oldest:?}")))?)
            },
        })
    }

    /// `recount.lua`; with `repair`, the count replaces the maintained counter.
    async fn recount(&self, queue: &str, repair: bool) -> Result<CounterAudit, StorageError> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = RECOUNT.key(k.named("dead"));
        inv.key(k.named("stats")).arg(&k.base).arg(if repair { "repair" } else { "check" });
        let v: Vec<Value> = reply(&self.store.run(&inv).await?, "counter recount")?;
        let [dead, blocked, counted_dead, counted_blocked] = &v[..] else {
            return Err(corrupt("counter recount"));
        };
        Ok(CounterAudit {
            dead: number(dead, "dead")?,
            blocked: counter(blocked, "blocked counter")?,
            counted_dead: number(counted_dead, "counted dead")?,
            counted_blocked: number(counted_blocked, "counted blocked")?,
        })
    }

    /// The maintained counters beside a count from scratch, changing nothing. O(dead letters):
    /// for tests and for an operator checking a deployment, never for a scrape.
    pub async fn audit_counters(&self, queue: &str) -> Result<CounterAudit, StorageError> {
        self.recount(queue, false).await
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StorageError> {
        let key = QueueKeys::new(&self.store, queue).named("paused");
        if paused {
            self.store.cmd(redis::cmd("SET").arg(&key).arg(1)).await
        } else {
            self.store.cmd(redis::cmd("DEL").arg(&key)).await
        }
    }

    /// The partition count recorded for `queue` (in `p:{q}:meta`), if any.
    pub async fn recorded_partitions(&self, queue: &str) -> Result<Option<u16>, StorageError> {
        let key = QueueKeys::new(&self.store, queue).named("meta");
        let v: Value = self.store.cmd(redis::cmd("HGET").arg(&key).arg("partitions")).await?;
        match v {
            Value::Nil => Ok(None),
            v => Ok(Some(number(&v, "recorded partition count")?)),
        }
    }

    pub async fn record_partitions(&self, queue: &str, partitions: u16) -> Result<(), StorageError> {
        let key = QueueKeys::new(&self.store, queue).named("meta");
        self.store.cmd(redis::cmd("HSET").arg(&key).arg("partitions").arg(partitions)).await
    }

    fn replay_job_inv(&self, queue: &str, op: &str, now: Millis) -> redis::ScriptInvocation<'static> {
        let k = QueueKeys::new(&self.store, queue);
        let mut inv = REPLAY_JOB.key(k.named("replayjob"));
        inv.key(k.named("replayids")).arg(op).arg(now);
        inv
    }

    /// `replay_job.lua` start.
    pub async fn replay_job_start(
        &self,
        queue: &str,
        job_id: &str,
        rate: f64,
        ids: &[String],
        now: Millis,
    ) -> Result<Result<(), String>, StorageError> {
        let mut inv = self.replay_job_inv(queue, "start", now);
        inv.arg(job_id).arg(rate.to_string());
        for id in ids {
            inv.arg(id);
        }
        let v: Vec<String> = reply(
            &self.store.run_acknowledged(&inv, &QueueKeys::new(&self.store, queue).base).await?,
            "replay start",
        )?;
        match v.as_slice() {
            [a] if a == "started" => Ok(Ok(())),
            [a, id] if a == "running" => Ok(Err(id.clone())),
            _ => Err(corrupt("replay start reply")),
        }
    }

    pub async fn replay_job(&self, queue: &str) -> Result<Option<ReplayJob>, StorageError> {
        let key = QueueKeys::new(&self.store, queue).named("replayjob");
        let mut m: std::collections::HashMap<String, String> = self.store.cmd(redis::cmd("HGETALL").arg(&key)).await?;
        if m.is_empty() {
            return Ok(None);
        }
        let mut take = |k: &str| m.remove(k).unwrap_or_default();
        let n = |v: String, what: &str| v.parse::<i64>().map_err(|_| corrupt(format_args!("replay job {what}")));
        Ok(Some(ReplayJob {
            id: take("id"),
            total: n(take("total"), "total")? as u64,
            done: n(take("done"), "done")? as u64,
            rate_per_sec: take("rate").parse().map_err(|_| corrupt("replay job rate"))?,
            started_at: n(take("started"), "started")?,
            finished_at: Some(take("finished"))
                .filter(|f| !f.is_empty())
                .map(|f| n(f, "finished"))
                .transpose()?,
            state: take("state"),
        }))
    }

    pub async fn replay_job_lease(&self, queue: &str, owner: &str, until: Millis, now: Millis) -> Result<bool, StorageError> {
        let mut inv = self.replay_job_inv(queue, "lease", now);
        inv.arg(owner).arg(until);
        let a: String = reply(&self.store.run(&inv).await?, "replay lease")?;
        match a.as_str() {
            "leased" => Ok(true),
            "held" | "idle" => Ok(false),
            other => Err(corrupt(format_args!("replay lease reply {other:?}"))),
        }
    }

    pub async fn replay_job_next(&self, queue: &str, owner: &str, now: Millis) -> Result<ReplayStep, StorageError> {
        let mut inv = self.replay_job_inv(queue, "next", now);
        inv.arg(owner);
        let a: String = reply(&self.store.run(&inv).await?, "replay next")?;
        Ok(match a.as_str() {
            "finished" => ReplayStep::Finished,
            "lost" => ReplayStep::Lost,
            _ => ReplayStep::Replay(a),
        })
    }

    pub async fn replay_job_done(&self, queue: &str, owner: &str, id: &str, now: Millis) -> Result<Option<u64>, StorageError> {
        let mut inv = self.replay_job_inv(queue, "done", now);
        inv.arg(owner).arg(id);
        let n: i64 = reply(&self.store.run(&inv).await?, "replay done")?;
        Ok(u64::try_from(n).ok())
    }

    /// `replay_job.lua` cancel: `true` when a running job was cancelled.
    pub async fn replay_job_cancel(&self, queue: &str, now: Millis) -> Result<bool, StorageError> {
        let inv = self.replay_job_inv(queue, "cancel", now);
        let a: String = reply(
            &self.store.run_acknowledged(&inv, &QueueKeys::new(&self.store, queue).base).await?,
            "replay cancel",
        )?;
        match a.as_str() {
            "cancelled" => Ok(true),
            "none" => Ok(false),
            other => Err(corrupt(format_args!("replay cancel reply {other:?}"))),
        }
    }

    /// `rate.lua`, on the destination's own tag: `p:{d}:rate`.
    pub async fn permit(&self, destination: &str, per_sec: u32, ask: PermitAsk) -> Result<Permit, StorageError> {
        let k = QueueKeys::new(&self.store, destination);
        let mut inv = RATE.key(k.named("rate"));
        inv.arg(rate_interval_us(per_sec)).arg(rate_burst(per_sec)).arg(match ask {
            PermitAsk::Take => "take",
            PermitAsk::Peek => "peek",
        });
        let (answer, wait_us): (String, u64) = reply(&self.store.run(&inv).await?, "rate reply")?;
        match answer.as_str() {
            "granted" => Ok(Permit::Granted),
            "wait" => Ok(Permit::Wait(Duration::from_micros(wait_us))),
            other => Err(corrupt(format_args!("rate reply {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The script's code, without its comments (which may name anything).
    fn code(script: &str) -> String {
        script
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn stats_reads_only_counters_and_declared_keys() {
        let code = code(include_str!("../lua/stats.lua"));
        // No loop, no scan, no walk of a list or of the dead letters: a fixed number of reads.
        for banned in [
            "for ", "while ", "repeat", "SCAN", "KEYS'", "LRANGE", "LLEN", "LINDEX", "ARGV[2]", "'m:'", "'k:'",
        ] {
            assert!(!code.contains(banned), "stats.lua must not contain {banned:?}:\n{code}");
        }
        // Every command names a declared key, never one derived from stored data.
        let calls: Vec<&str> = code.split("redis.call").skip(1).map(|c| c.trim_start_matches('(')).collect();
        assert_eq!(calls.len(), 7, "{code}");
        for call in &calls {
            let args = call.split_once(", ").map(|(_, rest)| rest).unwrap_or_default();
            assert!(args.starts_with("KEYS["), "a call on an undeclared key: {call}");
        }
        // The one range read is a single element: the oldest due entry.
        assert_eq!(code.matches("'ZRANGE'").count(), 1);
        assert!(code.contains("'ZRANGE', KEYS[1], 0, 0, 'WITHSCORES'"));
    }
}
