//! The production backend: Redis through a deadpool connection pool. Every state change is one
//! Lua script, so a crash between two commands cannot leave a message half-moved, and two
//! gateway processes on one Redis see one consistent queue.
//!
//! Keys of queue `q` under prefix `p` all carry the hash tag `{q}`, so Redis Cluster keeps a
//! queue in one slot. Every name is either fixed or begins with a fixed family prefix that no
//! other name begins with, so no outside text (a message id, an ordering key, a payment
//! reference) can name another key:
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
//! | `p:{q}:payment:r:<reference>` | hash | a payment record |
//! | `p:{q}:payment:pending` | zset | reference -> creation time, of pending payments |
//! | `p:{q}:payment:tx:<kind>:<provider>:<id>` | string | an applied provider transaction (`paid`, `failed`) or reversal (`reversal`), with its outcome |
//!
//! `p:{audit}:log` (list) is the shared audit log. Scripts derive per-message keys from the
//! prefix passed in ARGV; they always fall in the declared keys' slot because of the shared tag.
//!
//! Statistics are read from counters, never by walking the queue: `dead` is the cardinality of
//! `dead`, `blocked` (messages queued behind a dead head) is kept by the scripts that change it.
//! A scrape is therefore a fixed handful of O(1)/O(log n) reads, however many dead letters
//! there are. `counters_v` marks a queue whose `blocked` was counted from scratch once; a
//! queue without it (data from before the counters, or an operator who deleted the field to
//! force it) is recounted on its next stats read. Payment data under the older `pay:` and
//! `paytx:` names is not migrated: the product had no production data when they changed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_redis::{Config, Pool, Runtime};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Script, Value};

use super::payments::{ConfirmOutcome, Confirmation, PaymentEvents, PaymentRecord, PaymentState, Reversal, ReverseOutcome};
use super::{
    Claimed, CounterAudit, Enqueued, Idempotency, MessageRecord, MessageStatus, Millis, NewMessage, QueueError, QueueStats, Settlement,
    parse_confirm,
};

/// How many multiplexed connections the queue shares among all its callers.
const SHARED_CONNECTIONS: usize = 4;

#[derive(Clone)]
pub struct RedisQueue {
    pool: Pool,
    shared: Arc<Shared>,
    prefix: Arc<str>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    enqueue: Script,
    pay_create: Script,
    pay_confirm: Script,
    pay_reverse: Script,
    claim: Script,
    settle: Script,
    reap: Script,
    get: Script,
    replay: Script,
    discard: Script,
    stats: Script,
    recount: Script,
}

/// Stores a message and puts it in its key's FIFO: shared by the enqueue script and the payment
/// scripts, which queue their event in the same atomic step.
const PUSH_FN: &str = r#"
local function push(mk, lk, due, stats, id, kind, okey, payload, now)
  redis.call('HSET', mk, 'kind', kind, 'okey', okey, 'payload', payload, 'status', 'queued',
    'attempts', 0, 'created', now, 'agefrom', now)
  if redis.call('RPUSH', lk, id) == 1 then
    redis.call('ZADD', due, now, okey)
  else
    -- Queued behind a dead head, the message is blocked: counted here, so that stats never
    -- has to look for it. The head's hash is this message's key with the head's id.
    local head = redis.call('LINDEX', lk, 0)
    if redis.call('HGET', string.sub(mk, 1, #mk - #id) .. head, 'status') == 'dead' then
      redis.call('HINCRBY', stats, 'blocked', 1)
    end
  end
  redis.call('HINCRBY', stats, 'accepted', 1)
end
"#;

const ENQUEUE: &str = r#"
-- KEYS: msg, key list, due, stats [, idem]; ARGV: id, kind, okey, payload, now, fingerprint, ttl
if #KEYS == 5 then
  local prev = redis.call('GET', KEYS[5])
  if prev then
    local sep = string.find(prev, '\n', 1, true)
    local pid = string.sub(prev, 1, sep - 1)
    if string.sub(prev, sep + 1) == ARGV[6] then return {1, pid} end
    return {2, pid}
  end
  redis.call('SET', KEYS[5], ARGV[1] .. '\n' .. ARGV[6], 'EX', ARGV[7])
end
push(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return {0, ARGV[1]}
"#;

const PAY_CREATE: &str = r#"
-- KEYS: payment, pending index; ARGV: ref, mahoso, amount, provider, agency, fees, url, now, provider_created
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'mahoso', ARGV[2], 'amount', ARGV[3], 'provider', ARGV[4], 'agency', ARGV[5],
  'fees', ARGV[6], 'url', ARGV[7], 'state', 'pending', 'created', ARGV[8], 'pcreated', ARGV[9])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
return 1
"#;

/// The matching rules of `payments.rs` (module docs there). `stale` means the payment was
/// paid by another transaction after the caller read it: the caller reads again and retries,
/// so that a `payment.duplicate` event always names the transaction that stands.
const PAY_CONFIRM: &str = r#"
-- KEYS: payment, tx marker, pending index, msg, key list, due, stats
-- ARGV: ref, txn, amount, paid, ptime, now, id, okey, by, standing txn,
--       confirmed kind, confirmed payload, duplicate kind, duplicate payload
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local before = redis.call('GET', KEYS[2])
if before then return 'duplicate:' .. before end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'paid' and ARGV[4] == '1' then
  if (redis.call('HGET', KEYS[1], 'txn') or '') ~= ARGV[10] then return 'stale' end
  redis.call('SET', KEYS[2], 'paid_twice')
  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
  push(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[7], ARGV[13], ARGV[8], ARGV[14], ARGV[6])
  return 'paid_twice'
end
if state ~= 'pending' and not (state == 'failed' and ARGV[4] == '1') then return 'already:' .. state end
local outcome = 'paid'
if ARGV[4] ~= '1' then outcome = 'failed'
elseif redis.call('HGET', KEYS[1], 'amount') ~= ARGV[3] then outcome = 'amount_mismatch' end
redis.call('SET', KEYS[2], outcome)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', outcome, 'txn', ARGV[2], 'ptime', ARGV[5], 'settled', ARGV[6], 'by', ARGV[9])
if outcome == 'paid' then
  push(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[7], ARGV[11], ARGV[8], ARGV[12], ARGV[6])
end
return outcome
"#;

const PAY_REVERSE: &str = r#"
-- KEYS: payment, reversal marker, msg, key list, due, stats
-- ARGV: ref, by, amount, original txn ('' when not named), now, id, okey, kind, payload
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
local p = redis.call('HMGET', KEYS[1], 'state', 'by', 'amount', 'txn')
if p[1] ~= 'paid' then return 'not_paid' end
if p[2] ~= ARGV[2] then return 'other_provider' end
if p[3] ~= ARGV[3] then return 'other_amount' end
if ARGV[4] ~= '' and p[4] ~= ARGV[4] then return 'other_transaction' end
redis.call('SET', KEYS[2], 'reversed')
redis.call('HSET', KEYS[1], 'state', 'reversed', 'reversed', ARGV[5])
push(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[6], ARGV[8], ARGV[7], ARGV[9], ARGV[5])
return 'reversed'
"#;

const CLAIM: &str = r#"
-- KEYS: due, lease, paused; ARGV: now, lease_until, max, base, token
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
local okeys = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, okey in ipairs(okeys) do
  redis.call('ZREM', KEYS[1], okey)
  local id = redis.call('LINDEX', ARGV[4] .. 'k:' .. okey, 0)
  if id then
    local mk = ARGV[4] .. 'm:' .. id
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    local attempts = redis.call('HINCRBY', mk, 'attempts', 1)
    redis.call('HSET', mk, 'status', 'in_flight', 'token', ARGV[5])
    local f = redis.call('HMGET', mk, 'kind', 'payload', 'created', 'agefrom')
    out[#out + 1] = {id, okey, f[1] or '', f[2] or '', attempts, f[3] or '0', f[4] or '0'}
  end
end
return out
"#;

const SETTLE: &str = r#"
-- KEYS: msg, key list, due, lease, dead, stats
-- ARGV: id, token, mode, now, at, error, okey, retention_secs
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[1], 'token')
local mode = ARGV[3]
local function next_of_key()
  if redis.call('LINDEX', KEYS[2], 0) == ARGV[1] then
    redis.call('LPOP', KEYS[2])
  else
    redis.call('LREM', KEYS[2], 1, ARGV[1])
  end
  if redis.call('LLEN', KEYS[2]) > 0 then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7]) end
end
if mode == 'delivered' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'delivered', ARGV[4])
  redis.call('HDEL', KEYS[1], 'payload', 'next')
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('HINCRBY', KEYS[6], 'delivered_total', 1)
  next_of_key()
elseif mode == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'retrying', 'next', ARGV[5], 'err', ARGV[6])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
elseif mode == 'dead' then
  redis.call('HSET', KEYS[1], 'status', 'dead', 'err', ARGV[6])
  redis.call('HDEL', KEYS[1], 'next')
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  -- Everything queued behind it is blocked from now on.
  local behind = redis.call('LLEN', KEYS[2]) - 1
  if behind > 0 then redis.call('HINCRBY', KEYS[6], 'blocked', behind) end
else
  local a = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('HSET', KEYS[1], 'status', a > 0 and 'retrying' or 'queued')
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[7])
end
return 1
"#;

const REAP: &str = r#"
-- KEYS: lease, due; ARGV: now, base
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local mk = ARGV[2] .. 'm:' .. id
  local okey = redis.call('HGET', mk, 'okey')
  if okey then
    redis.call('HSET', mk, 'status', 'retrying', 'err', 'lease expired: the worker was lost mid-delivery')
    redis.call('HDEL', mk, 'token')
    if redis.call('LINDEX', ARGV[2] .. 'k:' .. okey, 0) == id then
      redis.call('ZADD', KEYS[2], ARGV[1], okey)
    end
  end
end
return #ids
"#;

const GET: &str = r#"
-- KEYS: msg; ARGV: base, id. Adds the status of the key's head, to tell blocked from queued.
local f = redis.call('HMGET', KEYS[1], 'kind', 'okey', 'status', 'attempts', 'created', 'next', 'delivered', 'err')
if not f[3] then return nil end
local head_status = ''
local head = redis.call('LINDEX', ARGV[1] .. 'k:' .. f[2], 0)
if head and head ~= ARGV[2] then
  head_status = redis.call('HGET', ARGV[1] .. 'm:' .. head, 'status') or ''
end
return {f[1], f[2], f[3], f[4], f[5], f[6] or '', f[7] or '', f[8] or '', head_status}
"#;

const REPLAY: &str = r#"
-- KEYS: msg, dead, due, stats; ARGV: id, now, base
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local okey = redis.call('HGET', KEYS[1], 'okey')
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'agefrom', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], okey)
-- The messages behind it wait for it again, as queued, no longer blocked.
local behind = redis.call('LLEN', ARGV[3] .. 'k:' .. okey) - 1
if behind > 0 then redis.call('HINCRBY', KEYS[4], 'blocked', -behind) end
return 1
"#;

const DISCARD: &str = r#"
-- KEYS: msg, dead, due, stats; ARGV: id, now, base, retention_secs
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local okey = redis.call('HGET', KEYS[1], 'okey')
redis.call('HSET', KEYS[1], 'status', 'discarded')
redis.call('HDEL', KEYS[1], 'payload')
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[4], 'discarded_total', 1)
local lk = ARGV[3] .. 'k:' .. okey
-- The next message becomes the head, queued: nothing of this key is blocked any more.
local behind = redis.call('LLEN', lk) - 1
if behind > 0 then redis.call('HINCRBY', KEYS[4], 'blocked', -behind) end
redis.call('LREM', lk, 1, ARGV[1])
if redis.call('LLEN', lk) > 0 then redis.call('ZADD', KEYS[3], ARGV[2], okey) end
return 1
"#;

/// What `/metrics` and `/v1/queues` read on every scrape, so it must not grow with the queue:
/// cardinalities and counters only, a fixed number of O(1) or O(log n) reads, no loop. The
/// `blocked` counter is kept by the scripts that change it (a death, a message queued behind a
/// dead head, a replay, a discard); `counters_v` says it has been counted once from scratch
/// (see [`RECOUNT`]), which [`RedisQueue::stats`] makes sure of.
const STATS: &str = r#"
-- KEYS: due, lease, dead, stats, paused; ARGV: now
local ready_keys = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
local all_keys = redis.call('ZCARD', KEYS[1])
local in_flight = redis.call('ZCARD', KEYS[2])
local dead = redis.call('ZCARD', KEYS[3])
local c = redis.call('HMGET', KEYS[4], 'accepted', 'delivered_total', 'discarded_total', 'blocked', 'counters_v')
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local oldest_at = ''
if oldest[2] then oldest_at = oldest[2] end
return {ready_keys, all_keys - ready_keys, in_flight, dead, tonumber(c[4] or 0),
  tonumber(c[1] or 0), tonumber(c[2] or 0), tonumber(c[3] or 0), oldest_at,
  redis.call('EXISTS', KEYS[5]), tonumber(c[5] or 0)}
"#;

/// Counts dead and blocked messages from scratch, over every dead letter: O(dead letters),
/// never on a scrape. It runs once for a queue whose data predates the counters (no
/// `counters_v`), and for [`RedisQueue::audit_counters`]. With ARGV[2] = '1' it writes the
/// count into the `blocked` counter and sets `counters_v`.
const RECOUNT: &str = r#"
-- KEYS: dead, stats; ARGV: base, repair
local dead, blocked = 0, 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. 'm:' .. id, 'okey', 'status')
  if f[2] == 'dead' then dead = dead + 1 end
  if f[1] then
    local behind = redis.call('LLEN', ARGV[1] .. 'k:' .. f[1]) - 1
    if behind > 0 then blocked = blocked + behind end
  end
end
local kept = tonumber(redis.call('HGET', KEYS[2], 'blocked') or 0)
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], 'blocked', blocked, 'counters_v', 1)
end
return {redis.call('ZCARD', KEYS[1]), kept, dead, blocked}
"#;

/// One claimed message as the claim script returns it:
/// id, ordering key, kind, payload, attempts, created, age_from.
type ClaimRow = (String, String, String, Vec<u8>, i64, i64, i64);

type Slot = Arc<Mutex<Option<MultiplexedConnection>>>;

struct Shared {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// A shared connection that replaces itself when it breaks. A connection found dead (Redis
/// restarted since it was made) is replaced from the pool and the command sent once more on
/// the new one. Every script here is safe to run twice: settlements, replays and discards
/// check their preconditions, a repeated claim only leaves a lease to expire, and a repeated
/// enqueue is absorbed by its idempotency key when the caller sent one (otherwise it is the
/// same at-least-once duplicate a client's own retry would make).
struct SharedConn {
    conn: MultiplexedConnection,
    slot: Slot,
    pool: Pool,
}

impl SharedConn {
    fn broken(e: &redis::RedisError) -> bool {
        e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
    }

    async fn renew(&mut self) -> redis::RedisResult<()> {
        *lock(&self.slot) = None;
        let fresh = self
            .pool
            .get()
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        self.conn = deadpool_redis::Connection::take(fresh);
        *lock(&self.slot) = Some(self.conn.clone());
        Ok(())
    }
}

impl ConnectionLike for SharedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.conn.req_packed_command(cmd).await {
                Err(e) if Self::broken(&e) => {
                    self.renew().await?;
                    self.conn.req_packed_command(cmd).await
                }
                other => other,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.conn.req_packed_commands(pipeline, offset, count).await {
                Err(e) if Self::broken(&e) => {
                    self.renew().await?;
                    self.conn.req_packed_commands(pipeline, offset, count).await
                }
                other => other,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// A payment record: `payment:r:` is a prefix no internal key has, so no reference, whatever
/// its text, can name the pending index or a marker.
fn payment_key(base: &str, reference: &str) -> String {
    format!("{base}payment:r:{reference}")
}

/// The index of pending payments (zset: reference -> creation time).
fn payments_pending_key(base: &str) -> String {
    format!("{base}payment:pending")
}

/// An applied provider transaction or reversal; `marker` begins with its kind (`paid:`,
/// `failed:`, `reversal:`), see [`Confirmation::transaction_key`] and [`Reversal::marker`].
fn payment_marker_key(base: &str, marker: &str) -> String {
    format!("{base}payment:tx:{marker}")
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn corrupt(what: &str) -> QueueError {
    QueueError::Corrupt(what.to_string())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn opt_ms(v: &Value) -> Option<Millis> {
    text(v).filter(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

/// The statistics from [`STATS`]'s answer (eleven values).
fn stats_from(v: &[Value], now: Millis) -> Result<QueueStats, QueueError> {
    if v.len() != 11 {
        return Err(corrupt("queue stats"));
    }
    let n = |i: usize| int(&v[i]).unwrap_or(0).max(0) as u64;
    let (scheduled, in_flight, dead, blocked) = (n(1), n(2), n(3), n(4));
    let pending = n(5).saturating_sub(n(6) + n(7));
    let oldest = text(&v[8])
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|at| *at as i64 <= now)
        .map(|at| (now as f64 - at) / 1000.0)
        .unwrap_or(0.0);
    Ok(QueueStats {
        ready: pending.saturating_sub(in_flight + dead + blocked + scheduled),
        scheduled,
        in_flight,
        dead,
        blocked,
        delivered_total: n(6),
        oldest_ready_age_seconds: oldest,
        paused: n(9) == 1,
    })
}

impl RedisQueue {
    /// Builds the pool; connections are made lazily, so this succeeds with Redis down.
    pub fn new(url: &str, pool_size: usize, prefix: &str) -> Result<Self, QueueError> {
        let mut cfg = Config::from_url(url);
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: pool_size,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(std::time::Duration::from_secs(5)),
                create: Some(std::time::Duration::from_secs(2)),
                recycle: Some(std::time::Duration::from_secs(2)),
            },
            ..Default::default()
        });
        let pool = cfg.create_pool(Some(Runtime::Tokio1)).map_err(unavailable)?;
        Ok(RedisQueue {
            pool,
            shared: Arc::new(Shared {
                slots: (0..SHARED_CONNECTIONS).map(|_| Arc::new(Mutex::new(None))).collect(),
                next: AtomicUsize::new(0),
            }),
            prefix: prefix.into(),
            scripts: Arc::new(Scripts {
                enqueue: Script::new(&format!("{PUSH_FN}{ENQUEUE}")),
                pay_create: Script::new(PAY_CREATE),
                pay_confirm: Script::new(&format!("{PUSH_FN}{PAY_CONFIRM}")),
                pay_reverse: Script::new(&format!("{PUSH_FN}{PAY_REVERSE}")),
                claim: Script::new(CLAIM),
                settle: Script::new(SETTLE),
                reap: Script::new(REAP),
                get: Script::new(GET),
                replay: Script::new(REPLAY),
                discard: Script::new(DISCARD),
                stats: Script::new(STATS),
                recount: Script::new(RECOUNT),
            }),
        })
    }

    /// A connection shared with other callers. Commands from concurrent requests travel
    /// pipelined on a few multiplexed connections instead of one pooled connection each, which
    /// cuts the syscalls per message on both sides (the profile's main cost). The pool still
    /// makes (and after a failure remakes) the connections.
    async fn conn(&self) -> Result<SharedConn, QueueError> {
        let i = self.shared.next.fetch_add(1, Ordering::Relaxed) % SHARED_CONNECTIONS;
        let slot = self.shared.slots[i].clone();
        let existing = lock(&slot).clone();
        if let Some(conn) = existing {
            return Ok(SharedConn {
                conn,
                slot,
                pool: self.pool.clone(),
            });
        }
        let conn = deadpool_redis::Connection::take(self.pool.get().await.map_err(unavailable)?);
        *lock(&slot) = Some(conn.clone());
        Ok(SharedConn {
            conn,
            slot,
            pool: self.pool.clone(),
        })
    }

    /// `p:{q}:` — every key of queue `q` starts with it.
    fn base(&self, queue: &str) -> String {
        format!("{}:{{{}}}:", self.prefix, queue)
    }

    pub async fn enqueue(&self, queue: &str, msg: NewMessage, idem: Option<&Idempotency>, now: Millis) -> Result<Enqueued, QueueError> {
        let base = self.base(queue);
        let id = uuid::Uuid::now_v7().to_string();
        let mut inv = self.scripts.enqueue.prepare_invoke();
        inv.key(format!("{base}m:{id}"))
            .key(format!("{base}k:{}", msg.ordering_key))
            .key(format!("{base}due"))
            .key(format!("{base}stats"));
        let (fp, ttl) = match idem {
            Some(i) => {
                inv.key(format!("{base}idem:{}:{}", i.scope, i.key));
                (i.fingerprint.as_str(), i.ttl_secs)
            }
            None => ("", 0),
        };
        inv.arg(&id)
            .arg(&msg.kind)
            .arg(&msg.ordering_key)
            .arg(&msg.payload)
            .arg(now)
            .arg(fp)
            .arg(ttl);
        let (code, rid): (i64, String) = inv.invoke_async(&mut self.conn().await?).await.map_err(unavailable)?;
        Ok(match code {
            0 => Enqueued::Accepted(rid),
            1 => Enqueued::Replayed(rid),
            _ => Enqueued::Conflict,
        })
    }

    pub async fn claim(&self, queue: &str, max: usize, lease_until: Millis, now: Millis) -> Result<Vec<Claimed>, QueueError> {
        let base = self.base(queue);
        let token = uuid::Uuid::new_v4().to_string();
        let rows: Vec<ClaimRow> = self
            .scripts
            .claim
            .key(format!("{base}due"))
            .key(format!("{base}lease"))
            .key(format!("{base}paused"))
            .arg(now)
            .arg(lease_until)
            .arg(max)
            .arg(&base)
            .arg(&token)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(id, ordering_key, kind, payload, attempts, created_at, age_from)| Claimed {
                id,
                kind,
                ordering_key,
                payload,
                attempts: attempts.max(0) as u32,
                created_at,
                age_from,
                token: token.clone(),
            })
            .collect())
    }

    pub async fn settle(&self, queue: &str, c: &Claimed, how: &Settlement, now: Millis, retention_secs: u64) -> Result<bool, QueueError> {
        let base = self.base(queue);
        let (mode, at, error) = match how {
            Settlement::Delivered => ("delivered", 0, ""),
            Settlement::Retry { at, error } => ("retry", *at, error.as_str()),
            Settlement::Dead { error } => ("dead", 0, error.as_str()),
            Settlement::Release => ("release", 0, ""),
        };
        let done: i64 = self
            .scripts
            .settle
            .key(format!("{base}m:{}", c.id))
            .key(format!("{base}k:{}", c.ordering_key))
            .key(format!("{base}due"))
            .key(format!("{base}lease"))
            .key(format!("{base}dead"))
            .key(format!("{base}stats"))
            .arg(&c.id)
            .arg(&c.token)
            .arg(mode)
            .arg(now)
            .arg(at)
            .arg(error)
            .arg(&c.ordering_key)
            .arg(retention_secs.max(1))
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    pub async fn reap(&self, queue: &str, now: Millis) -> Result<usize, QueueError> {
        let base = self.base(queue);
        let n: i64 = self
            .scripts
            .reap
            .key(format!("{base}lease"))
            .key(format!("{base}due"))
            .arg(now)
            .arg(&base)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(n.max(0) as usize)
    }

    pub async fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>, QueueError> {
        let base = self.base(queue);
        let v: Value = self
            .scripts
            .get
            .key(format!("{base}m:{id}"))
            .arg(&base)
            .arg(id)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        let Value::Array(f) = v else { return Ok(None) };
        if f.len() != 9 {
            return Err(corrupt("message record"));
        }
        let mut status = text(&f[2])
            .and_then(|s| MessageStatus::parse(&s))
            .ok_or_else(|| corrupt("message status"))?;
        let head_status = text(&f[8]).unwrap_or_default();
        if matches!(status, MessageStatus::Queued | MessageStatus::Retrying) && head_status == "dead" {
            status = MessageStatus::Blocked;
        }
        Ok(Some(MessageRecord {
            id: id.to_string(),
            kind: text(&f[0]).unwrap_or_default(),
            destination: queue.to_string(),
            ordering_key: text(&f[1]).unwrap_or_default(),
            status,
            attempts: int(&f[3]).unwrap_or(0).max(0) as u32,
            created_at: int(&f[4]).unwrap_or(0),
            next_attempt_at: opt_ms(&f[5]),
            delivered_at: opt_ms(&f[6]),
            last_error: text(&f[7]).filter(|s| !s.is_empty()),
        }))
    }

    pub async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<MessageRecord>, QueueError> {
        let base = self.base(queue);
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{base}dead"))
            .arg(offset)
            .arg((offset + limit).saturating_sub(1))
            .query_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if limit == 0 {
                break;
            }
            if let Some(r) = self.get(queue, &id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub async fn replay(&self, queue: &str, id: &str, now: Millis) -> Result<bool, QueueError> {
        let base = self.base(queue);
        let n: i64 = self
            .scripts
            .replay
            .key(format!("{base}m:{id}"))
            .key(format!("{base}dead"))
            .key(format!("{base}due"))
            .key(format!("{base}stats"))
            .arg(id)
            .arg(now)
            .arg(&base)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    pub async fn discard(&self, queue: &str, id: &str, now: Millis, retention_secs: u64) -> Result<bool, QueueError> {
        let base = self.base(queue);
        let n: i64 = self
            .scripts
            .discard
            .key(format!("{base}m:{id}"))
            .key(format!("{base}dead"))
            .key(format!("{base}due"))
            .key(format!("{base}stats"))
            .arg(id)
            .arg(now)
            .arg(&base)
            .arg(retention_secs.max(1))
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    /// Reads the counters ([`STATS`]): constant work however many dead letters there are.
    /// The first read of a queue whose data predates the counters counts them once from
    /// scratch ([`RECOUNT`]) and reads again.
    pub async fn stats(&self, queue: &str, now: Millis) -> Result<QueueStats, QueueError> {
        let v = self.read_stats(queue, now).await?;
        if int(&v[10]).unwrap_or(0) >= 1 {
            return stats_from(&v, now);
        }
        self.recount(queue, true).await?;
        let v = self.read_stats(queue, now).await?;
        stats_from(&v, now)
    }

    async fn read_stats(&self, queue: &str, now: Millis) -> Result<Vec<Value>, QueueError> {
        let base = self.base(queue);
        let v: Vec<Value> = self
            .scripts
            .stats
            .key(format!("{base}due"))
            .key(format!("{base}lease"))
            .key(format!("{base}dead"))
            .key(format!("{base}stats"))
            .key(format!("{base}paused"))
            .arg(now)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        if v.len() != 11 {
            return Err(corrupt("queue stats"));
        }
        Ok(v)
    }

    /// Runs [`RECOUNT`]; with `repair`, the count replaces the maintained counter.
    async fn recount(&self, queue: &str, repair: bool) -> Result<CounterAudit, QueueError> {
        let base = self.base(queue);
        let v: Vec<i64> = self
            .scripts
            .recount
            .key(format!("{base}dead"))
            .key(format!("{base}stats"))
            .arg(&base)
            .arg(if repair { "1" } else { "0" })
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        let [dead, blocked, counted_dead, counted_blocked] = v[..] else {
            return Err(corrupt("counter recount"));
        };
        let n = |x: i64| x.max(0) as u64;
        Ok(CounterAudit {
            dead: n(dead),
            blocked: n(blocked),
            counted_dead: n(counted_dead),
            counted_blocked: n(counted_blocked),
        })
    }

    /// The maintained counters beside a count from scratch, changing nothing. O(dead letters):
    /// for tests and for an operator checking a deployment, never for a scrape.
    pub async fn audit_counters(&self, queue: &str) -> Result<CounterAudit, QueueError> {
        self.recount(queue, false).await
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), QueueError> {
        let key = format!("{}paused", self.base(queue));
        let mut conn = self.conn().await?;
        if paused {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)
        } else {
            redis::cmd("DEL").arg(&key).query_async::<()>(&mut conn).await.map_err(unavailable)
        }
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn().await?)
            .await
            .map_err(unavailable)
    }

    fn audit_key(&self) -> String {
        format!("{}:{{audit}}:log", self.prefix)
    }

    pub async fn audit_append(&self, lines: &[String], keep: usize) -> Result<(), QueueError> {
        if lines.is_empty() {
            return Ok(());
        }
        let key = self.audit_key();
        let mut pipe = redis::pipe();
        pipe.cmd("LPUSH").arg(&key).arg(lines).ignore();
        pipe.cmd("LTRIM").arg(&key).arg(0).arg(keep.max(1) - 1).ignore();
        pipe.query_async::<()>(&mut self.conn().await?).await.map_err(unavailable)
    }

    pub async fn audit_read(&self, offset: usize, limit: usize) -> Result<Vec<String>, QueueError> {
        redis::cmd("LRANGE")
            .arg(self.audit_key())
            .arg(offset)
            .arg((offset + limit.max(1)) - 1)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)
    }

    pub async fn payment_create(&self, queue: &str, p: &PaymentRecord) -> Result<bool, QueueError> {
        let base = self.base(queue);
        let n: i64 = self
            .scripts
            .pay_create
            .key(payment_key(&base, &p.reference))
            .key(payments_pending_key(&base))
            .arg(&p.reference)
            .arg(&p.ma_ho_so)
            .arg(p.amount)
            .arg(&p.provider)
            .arg(&p.agency)
            .arg(&p.fees_json)
            .arg(&p.payment_url)
            .arg(p.created_at)
            .arg(&p.provider_created)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    pub async fn payment_set_url(&self, queue: &str, reference: &str, url: &str) -> Result<(), QueueError> {
        let key = payment_key(&self.base(queue), reference);
        redis::cmd("HSET")
            .arg(&key)
            .arg("url")
            .arg(url)
            .query_async::<()>(&mut self.conn().await?)
            .await
            .map_err(unavailable)
    }

    pub async fn payment_get(&self, queue: &str, reference: &str) -> Result<Option<PaymentRecord>, QueueError> {
        let key = payment_key(&self.base(queue), reference);
        let map: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        if map.is_empty() {
            return Ok(None);
        }
        let get = |k: &str| map.get(k).cloned().unwrap_or_default();
        Ok(Some(PaymentRecord {
            reference: reference.to_string(),
            ma_ho_so: get("mahoso"),
            amount: get("amount").parse().unwrap_or(0),
            provider: get("provider"),
            status: PaymentState::parse(&get("state")).ok_or_else(|| corrupt("payment state"))?,
            payment_url: get("url"),
            agency: get("agency"),
            fees_json: get("fees"),
            created_at: get("created").parse().unwrap_or(0),
            provider_created: get("pcreated"),
            provider_transaction: map.get("txn").cloned(),
            provider_time: map.get("ptime").cloned(),
            confirmed_by: map.get("by").cloned(),
            settled_at: map.get("settled").and_then(|s| s.parse().ok()),
            duplicates: get("duplicates").parse().unwrap_or(0),
        }))
    }

    /// Applies a confirmation (see [`PAY_CONFIRM`]); `standing` is the transaction the caller
    /// saw standing, `events` the confirmed and the duplicate event, one of which may be queued.
    pub async fn payment_confirm(
        &self,
        queue: &str,
        c: &Confirmation,
        standing: &str,
        events: &PaymentEvents,
        now: Millis,
    ) -> Result<ConfirmOutcome, QueueError> {
        let base = self.base(queue);
        let id = uuid::Uuid::now_v7().to_string();
        let out: String = self
            .scripts
            .pay_confirm
            .key(payment_key(&base, &c.reference))
            .key(payment_marker_key(&base, &c.transaction_key()))
            .key(payments_pending_key(&base))
            .key(format!("{base}m:{id}"))
            .key(format!("{base}k:{}", events.ordering_key))
            .key(format!("{base}due"))
            .key(format!("{base}stats"))
            .arg(&c.reference)
            .arg(&c.transaction)
            .arg(c.amount)
            .arg(if c.paid { "1" } else { "0" })
            .arg(&c.provider_time)
            .arg(now)
            .arg(&id)
            .arg(&events.ordering_key)
            .arg(&c.provider)
            .arg(standing)
            .arg(&events.confirmed.kind)
            .arg(&events.confirmed.payload)
            .arg(&events.duplicate.kind)
            .arg(&events.duplicate.payload)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        parse_confirm(&out)
    }

    pub async fn payment_reverse(&self, queue: &str, r: &Reversal, event: &NewMessage, now: Millis) -> Result<ReverseOutcome, QueueError> {
        let base = self.base(queue);
        let id = uuid::Uuid::now_v7().to_string();
        let out: String = self
            .scripts
            .pay_reverse
            .key(payment_key(&base, &r.reference))
            .key(payment_marker_key(&base, &r.marker()))
            .key(format!("{base}m:{id}"))
            .key(format!("{base}k:{}", event.ordering_key))
            .key(format!("{base}due"))
            .key(format!("{base}stats"))
            .arg(&r.reference)
            .arg(&r.provider)
            .arg(r.amount)
            .arg(r.original_transaction.as_deref().unwrap_or(""))
            .arg(now)
            .arg(&id)
            .arg(&event.ordering_key)
            .arg(&event.kind)
            .arg(&event.payload)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)?;
        ReverseOutcome::parse(&out).ok_or_else(|| corrupt("payment reversal outcome"))
    }

    /// References of pending payments created between `from` and `to`.
    pub async fn payments_pending(&self, queue: &str, from: Millis, to: Millis, limit: usize) -> Result<Vec<String>, QueueError> {
        redis::cmd("ZRANGE")
            .arg(payments_pending_key(&self.base(queue)))
            .arg(from)
            .arg(to)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(unavailable)
    }

    /// Reads the settings the durability promise depends on. Returns warnings to log loudly.
    pub async fn durability_warnings(&self) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn().await?;
        let mut warnings = Vec::new();
        let mut read = async |name: &str| -> Option<String> {
            let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut conn).await.ok()?;
            pair.get(1).cloned()
        };
        match read("appendonly").await {
            Some(v) if v == "yes" => {}
            Some(v) => warnings.push(format!(
                "Redis appendonly is {v:?}: a Redis restart loses accepted messages; set appendonly yes"
            )),
            None => warnings.push("cannot read Redis appendonly (CONFIG GET refused); make sure it is yes".into()),
        }
        if let Some(v) = read("appendfsync").await
            && v != "always"
        {
            warnings.push(format!("Redis appendfsync is {v:?}: a crash of the Redis host can lose up to a second of accepted messages; set appendfsync always for the strict promise"));
        }
        match read("maxmemory-policy").await {
            Some(v) if v == "noeviction" => {}
            Some(v) => warnings.push(format!(
                "Redis maxmemory-policy is {v:?}: Redis may evict queued messages; set noeviction"
            )),
            None => warnings.push("cannot read Redis maxmemory-policy (CONFIG GET refused); make sure it is noeviction".into()),
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let code = code(STATS);
        // No loop, no scan, no walk of a list or of the dead letters: a fixed number of reads.
        for banned in [
            "for ", "while ", "repeat", "SCAN", "KEYS'", "LRANGE", "LLEN", "LINDEX", "ARGV[2]", "'m:'", "'k:'",
        ] {
            assert!(!code.contains(banned), "STATS must not contain {banned:?}:\n{code}");
        }
        // Every command names a declared key, never one derived from stored data.
        let calls: Vec<&str> = code.split("redis.call(").skip(1).collect();
        assert_eq!(calls.len(), 7, "{code}");
        for call in &calls {
            let args = call.split_once(", ").map(|(_, rest)| rest).unwrap_or_default();
            assert!(args.starts_with("KEYS["), "a call on an undeclared key: {call}");
        }
        // The one range read is a single element: the oldest due entry.
        assert_eq!(code.matches("'ZRANGE'").count(), 1);
        assert!(code.contains("'ZRANGE', KEYS[1], 0, 0, 'WITHSCORES'"));
    }

    #[test]
    fn no_reference_names_another_key() {
        let base = "p:{centre}:";
        let fixed = ["due", "lease", "dead", "paused", "stats"].map(|k| format!("{base}{k}"));
        for reference in ["pending", "", ":pending", "../pending", "tx:paid:vnpay:1", "r:pending", "stats"] {
            let key = payment_key(base, reference);
            assert_ne!(key, payments_pending_key(base), "{reference:?}");
            assert!(!fixed.contains(&key), "{reference:?}");
            assert!(!key.starts_with(&format!("{base}payment:tx:")), "{reference:?}");
            assert!(!key.starts_with(&format!("{base}m:")) && !key.starts_with(&format!("{base}k:")));
        }
        assert!(!payments_pending_key(base).starts_with(&format!("{base}payment:r:")));
        assert!(!payments_pending_key(base).starts_with(&format!("{base}payment:tx:")));
    }
}
