//! The Redis handle the three concerns share: a deadpool pool feeding a few shared multiplexed
//! connections, and the key prefix. Also the helpers every concern's script wrappers use to
//! run a script and to read its reply, so that a reply of the wrong shape is
//! [`StorageError::Corrupt`] everywhere, never a default.
//!
//! Key names: everything of queue (or ledger) `q` under prefix `p` starts with `p:{q}:`, so
//! Redis Cluster keeps it in one slot; the audit log is `p:{audit}:log`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_redis::{Config, Pool, Runtime};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{FromRedisValue, Value};

use super::{Millis, StorageError};

/// How many multiplexed connections the store shares among all its callers.
const SHARED_CONNECTIONS: usize = 4;

#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    shared: Arc<Shared>,
    prefix: Arc<str>,
}

impl RedisStore {
    /// Builds the pool; connections are made lazily, so this succeeds with Redis down.
    pub fn new(url: &str, pool_size: usize, prefix: &str) -> Result<Self, StorageError> {
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
        Ok(RedisStore {
            pool,
            shared: Arc::new(Shared {
                slots: (0..SHARED_CONNECTIONS).map(|_| Arc::new(Mutex::new(None))).collect(),
                next: AtomicUsize::new(0),
            }),
            prefix: prefix.into(),
        })
    }

    /// A connection shared with other callers. Commands from concurrent requests travel
    /// pipelined on a few multiplexed connections instead of one pooled connection each, which
    /// cuts the syscalls per message on both sides (the profile's main cost). The pool still
    /// makes (and after a failure remakes) the connections.
    async fn conn(&self) -> Result<SharedConn, StorageError> {
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

    /// `p:{tag}:`: every key of the queue (or ledger) named `tag` starts with it.
    pub(super) fn base(&self, tag: &str) -> String {
        format!("{}:{{{}}}:", self.prefix, tag)
    }

    /// `p:{fixed}:name`: a key of its own slot, e.g. the audit log.
    pub(super) fn key(&self, tag: &str, name: &str) -> String {
        format!("{}{name}", self.base(tag))
    }

    /// Runs a script (or command) and returns its raw reply: failing to reach Redis, or Redis
    /// refusing it, is `Unavailable`; the caller reads the reply.
    pub(super) async fn run(&self, inv: &redis::ScriptInvocation<'_>) -> Result<Value, StorageError> {
        inv.invoke_async(&mut self.conn().await?).await.map_err(unavailable)
    }

    pub(super) async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StorageError> {
        cmd.query_async(&mut self.conn().await?).await.map_err(unavailable)
    }

    pub(super) async fn pipe(&self, pipe: &redis::Pipeline) -> Result<(), StorageError> {
        pipe.query_async::<()>(&mut self.conn().await?).await.map_err(unavailable)
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        self.cmd(&redis::cmd("PING")).await
    }

    /// Reads the settings the durability promise depends on. Returns warnings to log loudly.
    pub async fn durability_warnings(&self) -> Result<Vec<String>, StorageError> {
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

pub(super) fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

/// A reply element as text; `what` names it in the error.
pub(super) fn text(v: &Value, what: &str) -> Result<String, StorageError> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| corrupt(format_args!("{what}: not UTF-8"))),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        _ => Err(corrupt(format_args!("{what}: {v:?}"))),
    }
}

/// A stored number: an integer reply or its decimal text. Anything else is corrupt, never 0.
pub(super) fn number<T: std::str::FromStr + TryFrom<i64>>(v: &Value, what: &str) -> Result<T, StorageError> {
    let parsed = match v {
        Value::Int(i) => T::try_from(*i).ok(),
        other => text(other, what)?.parse().ok(),
    };
    parsed.ok_or_else(|| corrupt(format_args!("{what}: {v:?}")))
}

/// A counter that may never have been written (`''` from the script): 0 then; a present
/// value must be a number. A negative one (`blocked` kept over data from before the counters,
/// which the first stats read recounts) reads as 0.
pub(super) fn counter(v: &Value, what: &str) -> Result<u64, StorageError> {
    match v {
        Value::BulkString(b) if b.is_empty() => Ok(0),
        Value::Nil => Ok(0),
        other => Ok(number::<i64>(other, what)?.max(0) as u64),
    }
}

/// An optional time: `''` is none, anything else must be Unix milliseconds.
pub(super) fn opt_ms(v: &Value, what: &str) -> Result<Option<Millis>, StorageError> {
    let s = text(v, what)?;
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(|_| corrupt(format_args!("{what}: {s:?}")))
    }
}

/// A reply that is one of two words: `yes` is true, `no` false, anything else corrupt.
pub(super) fn one_of_two(v: &Value, what: &str, yes: &str, no: &str) -> Result<bool, StorageError> {
    let answer: String = reply(v, what)?;
    match answer {
        a if a == yes => Ok(true),
        a if a == no => Ok(false),
        other => Err(corrupt(format_args!("{what} {other:?}"))),
    }
}

/// A reply converted to `T`; a reply of another shape is corrupt (the command itself failing
/// is `Unavailable`, see [`RedisStore::run`]).
pub(super) fn reply<T: FromRedisValue>(v: &Value, what: &str) -> Result<T, StorageError> {
    redis::from_redis_value_ref(v).map_err(|e| corrupt(format_args!("{what}: {e}")))
}
