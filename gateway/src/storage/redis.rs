//! The Redis handle the three concerns share, in one of three topologies (`queue.redis_mode`):
//! one server, a Sentinel-managed primary with replicas, or a Redis Cluster. Also the helpers
//! every concern's script wrappers use to run a script and to read its reply, so that a reply
//! of the wrong shape is [`StorageError::Corrupt`] everywhere, never a default.
//!
//! Key names: everything of queue (or ledger) `q` under prefix `p` starts with `p:{q}:`, so
//! Redis Cluster keeps it in one slot (scripts are routed by their first key, which carries the
//! tag); the audit log is `p:{audit}:log`.
//!
//! **Shared connections.** Ordinary commands travel pipelined on a few shared multiplexed
//! connections (a cluster connection in cluster mode, itself multiplexed per node): that is the
//! throughput path. The pool makes (and after a failure remakes) them.
//!
//! **Following a failover (sentinel).** The pool asks the sentinels for the primary whenever it
//! makes a connection, and checks `ROLE` whenever it hands back an idle one, so it never hands
//! out a connection to a demoted primary. A `READONLY` answer or a broken connection drops
//! every shared connection (they all went to the same node) and the command is sent once more
//! on a fresh one; if the sentinels have not promoted anyone yet, that fails too and the caller
//! gets `Unavailable` (503), never a false acknowledgement. Readiness asks `ROLE` as well.
//!
//! **Replica acknowledgement.** With `min_replicas` N ≥ 1, a write that acknowledges something
//! to a caller goes through [`RedisStore::run_acknowledged`]: the script, then `WAIT N timeout`
//! on the same connection. `WAIT` blocks the connection it is sent on for up to the timeout, so
//! it never travels on a shared multiplexed connection (every caller queued behind it would
//! wait too): an acknowledged write takes a dedicated pooled connection (in cluster mode a
//! pooled cluster connection, whose `WAIT` is routed to the master owning the write's slot).
//! The pool bounds how many acknowledged writes wait at once. `WAIT` counts replicas that hold
//! everything this connection wrote, and a script that only answered (an idempotent replay, a
//! duplicate confirmation) wrote nothing on it, so a one-key marker write in the same slot
//! (`p:{tag}:ack`) goes between the script and the `WAIT`: a replay then waits for the
//! original write too, which precedes the marker on the primary. redis-rs gives up on a reply
//! after 500 ms by default; the dedicated connection's limit is raised to the `WAIT` timeout
//! plus a margin so the server, not the client, decides.
//!
//! Sentinel closes the clients of a primary it demotes, so the usual sign of a failover is a
//! broken connection; `READONLY` is for a node demoted while the sentinels could not reach it.
//!
//! **Credentials and TLS** (`queue.redis_username`, `queue.redis_password`,
//! `queue.sentinel_password`, `rediss://`, `queue.redis_ca`) reach every node in every
//! topology: see [`super::redis_access`], which also builds the pools. In sentinel mode the
//! data nodes are reached in database 0.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::Timeouts;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, Value};

use super::redis_access::{self, ClusterPool, ClusterPooled, RedisAccess, SentinelConnection, SentinelPool};
use super::{Millis, StorageError};

/// How many multiplexed connections the store shares among all its callers.
const SHARED_CONNECTIONS: usize = 4;

/// How long the start-up check of credentials and certificates waits for a connection.
const ACCESS_CHECK_WITHIN: Duration = Duration::from_secs(10);

/// How much longer than `WAIT`'s own timeout its reply may take to arrive.
const REPLY_MARGIN: Duration = Duration::from_secs(1);

/// At most one warning per this long about writes replicas did not confirm: while replicas are
/// missing every acknowledged write is refused, and a line each would flood the log.
const UNREPLICATED_WARN_EVERY_MS: u64 = 60_000;

/// Where Redis is. No `Debug`: URLs may carry a password.
#[derive(Clone)]
pub enum RedisTopology {
    Standalone {
        url: String,
    },
    /// The sentinels' URLs and the name of the master they watch.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// Seed nodes; the rest of the cluster is discovered.
    Cluster {
        nodes: Vec<String>,
    },
}

/// How to reach Redis and how much durability an acknowledgement carries.
#[derive(Clone)]
pub struct RedisOptions {
    pub topology: RedisTopology,
    pub pool_size: usize,
    pub prefix: String,
    /// Replicas that must hold an acknowledged write (0: the primary alone).
    pub min_replicas: u32,
    pub replica_timeout: Duration,
    /// Credentials and TLS for every node.
    pub access: RedisAccess,
}

#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    shared: Arc<Shared>,
    prefix: Arc<str>,
    min_replicas: u32,
    replica_timeout: Duration,
}

#[derive(Clone)]
enum Backend {
    Standalone(deadpool_redis::Pool),
    /// The pool, and the sentinels' own connection infos (to tell, when a login is refused,
    /// whether the sentinels or the data nodes refused it).
    Sentinel(SentinelPool, Arc<[redis::ConnectionInfo]>),
    Cluster(ClusterPool),
}

/// A connection of one of the topologies.
#[derive(Clone)]
enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, p: &'a redis::Pipeline, offset: usize, count: usize) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A pooled connection held by one caller (acknowledged writes), returned to the pool on drop.
enum Dedicated {
    Node(deadpool_redis::Connection),
    Sentinel(SentinelConnection),
    Cluster(ClusterPooled),
}

impl Dedicated {
    /// Lets a reply take up to `limit`: redis-rs gives up on a node's reply after 500 ms by
    /// default, which would cut a longer `WAIT` short (and report a failure the server did not
    /// have). Cluster connections have no such default.
    fn allow_replies_within(&mut self, limit: Duration) {
        match self {
            Dedicated::Node(c) => c.set_response_timeout(limit),
            Dedicated::Sentinel(c) => c.set_response_timeout(limit),
            Dedicated::Cluster(_) => {}
        }
    }
}

impl ConnectionLike for Dedicated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Dedicated::Node(c) => c.req_packed_command(cmd),
            Dedicated::Sentinel(c) => c.req_packed_command(cmd),
            Dedicated::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, p: &'a redis::Pipeline, offset: usize, count: usize) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Dedicated::Node(c) => c.req_packed_commands(p, offset, count),
            Dedicated::Sentinel(c) => c.req_packed_commands(p, offset, count),
            Dedicated::Cluster(c) => c.req_packed_commands(p, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Dedicated::Node(c) => c.get_db(),
            Dedicated::Sentinel(c) => c.get_db(),
            Dedicated::Cluster(c) => c.get_db(),
        }
    }
}

fn pool_error(e: impl std::fmt::Display) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(e.to_string()))
}

impl Backend {
    async fn shared(&self) -> redis::RedisResult<Conn> {
        Ok(match self {
            Backend::Standalone(p) => Conn::Node(deadpool_redis::Connection::take(p.get().await.map_err(pool_error)?)),
            Backend::Sentinel(p, _) => Conn::Node(deadpool::managed::Object::take(p.get().await.map_err(pool_error)?)),
            Backend::Cluster(p) => Conn::Cluster(deadpool::managed::Object::take(p.get().await.map_err(pool_error)?)),
        })
    }

    async fn dedicated(&self) -> redis::RedisResult<Dedicated> {
        Ok(match self {
            Backend::Standalone(p) => Dedicated::Node(p.get().await.map_err(pool_error)?),
            Backend::Sentinel(p, _) => Dedicated::Sentinel(p.get().await.map_err(pool_error)?),
            Backend::Cluster(p) => Dedicated::Cluster(p.get().await.map_err(pool_error)?),
        })
    }
}

/// Whether the node behind `conn` is a primary (`ROLE` answers `master` first).
pub(super) async fn is_primary(conn: &mut impl ConnectionLike) -> redis::RedisResult<bool> {
    let role: Vec<Value> = redis::cmd("ROLE").query_async(conn).await?;
    Ok(matches!(role.first(), Some(Value::BulkString(b)) if b == b"master"))
}

impl RedisStore {
    /// A standalone server, no replica acknowledgement (tools and tests).
    pub fn new(url: &str, pool_size: usize, prefix: &str) -> Result<Self, StorageError> {
        Self::with_options(&RedisOptions {
            topology: RedisTopology::Standalone { url: url.to_string() },
            pool_size,
            prefix: prefix.to_string(),
            min_replicas: 0,
            replica_timeout: Duration::from_secs(1),
            access: RedisAccess::default(),
        })
    }

    /// Builds the pool; connections are made lazily, so this succeeds with Redis down.
    pub fn with_options(o: &RedisOptions) -> Result<Self, StorageError> {
        let timeouts = Timeouts {
            wait: Some(Duration::from_secs(5)),
            create: Some(Duration::from_secs(2)),
            recycle: Some(Duration::from_secs(2)),
        };
        let pool_config = deadpool_redis::PoolConfig {
            max_size: o.pool_size,
            timeouts,
            ..Default::default()
        };
        let backend = match &o.topology {
            RedisTopology::Standalone { url } => Backend::Standalone(redis_access::standalone(url, &o.access, pool_config)?),
            RedisTopology::Sentinel { sentinels, master } => {
                let (pool, infos) = redis_access::sentinel(sentinels, master, &o.access, pool_config)?;
                Backend::Sentinel(pool, infos.into())
            }
            RedisTopology::Cluster { nodes } => Backend::Cluster(redis_access::cluster(nodes, &o.access, pool_config)?),
        };
        Ok(RedisStore {
            backend,
            shared: Arc::new(Shared {
                slots: (0..SHARED_CONNECTIONS).map(|_| Arc::new(Mutex::new(None))).collect(),
                next: AtomicUsize::new(0),
                unreplicated: AtomicU64::new(0),
                unreplicated_warned: AtomicU64::new(0),
            }),
            prefix: o.prefix.as_str().into(),
            min_replicas: o.min_replicas,
            replica_timeout: o.replica_timeout,
        })
    }

    /// A connection shared with other callers. Commands from concurrent requests travel
    /// pipelined on a few multiplexed connections instead of one pooled connection each, which
    /// cuts the syscalls per message on both sides (the profile's main cost).
    async fn conn(&self) -> Result<SharedConn, StorageError> {
        let i = self.shared.next.fetch_add(1, Ordering::Relaxed) % SHARED_CONNECTIONS;
        let slot = self.shared.slots[i].clone();
        let existing = lock(&slot).clone();
        let conn = match existing {
            Some(conn) => conn,
            None => {
                let conn = self.backend.shared().await.map_err(unavailable)?;
                *lock(&slot) = Some(conn.clone());
                conn
            }
        };
        Ok(SharedConn {
            conn,
            slot,
            store: self.clone(),
        })
    }

    /// Forgets every shared connection: after a failover they all lead to the demoted node.
    fn drop_shared(&self) {
        for slot in &self.shared.slots {
            *lock(slot) = None;
        }
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

    /// Runs a script whose effect is acknowledged to a caller (a 202, a payment confirmation's
    /// answer, a settlement) and, with `min_replicas` set, returns only once that many replicas
    /// hold it: otherwise [`StorageError::NotReplicated`]; the write stays on the primary, so
    /// the caller's retry with the same idempotency key finds it. `base` is the `p:{tag}:` of
    /// the keys the script wrote, for the marker write (see the module doc).
    pub(super) async fn run_acknowledged(&self, inv: &redis::ScriptInvocation<'_>, base: &str) -> Result<Value, StorageError> {
        if self.min_replicas == 0 {
            return self.run(inv).await;
        }
        let mut dedicated = self.backend.dedicated().await.map_err(|e| self.failed(e))?;
        dedicated.allow_replies_within(self.replica_timeout + REPLY_MARGIN);
        let answer: Value = inv.invoke_async(&mut dedicated).await.map_err(|e| self.failed(e))?;
        let marker = format!("{base}ack");
        let mut mark = redis::cmd("SET");
        mark.arg(&marker).arg(super::now_ms()).arg("PX").arg(60_000);
        // WAIT for every replica connected now, never fewer than `min_replicas`: Sentinel
        // promotes the replica it believes most up to date, which is best effort, so a write
        // held by only some replicas could be lost by a failover that picks another. Held by
        // all of them, it survives whichever is promoted; a replica that is down lowers the
        // count, so writes go on with `min_replicas` as the floor.
        let info = redis::cmd("INFO").arg("replication").clone();
        let wait_for = |info: &str| {
            let connected = info
                .lines()
                .find_map(|l| l.strip_prefix("connected_slaves:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
                .unwrap_or(0);
            let mut wait = redis::cmd("WAIT");
            wait.arg(connected.max(self.min_replicas))
                .arg(self.replica_timeout.as_millis() as u64);
            wait
        };
        let acked: i64 = match &mut dedicated {
            Dedicated::Cluster(c) => {
                // WAIT is routed to every master by default; it must go to the one that took
                // the write, which is the one owning the slot of `base` (the script's keys').
                // A routed command's error reply comes back as `Ok(Value::ServerError)`, not as
                // an `Err`. Right after a failover a connection's slot map can still name the
                // old master, back as a replica: the `SET` is redirected (`MOVED`) to the new
                // master, but the `WAIT` is refused there ("WAIT cannot be used with replica
                // instances"). That is "not acknowledged yet" (503, retried with the same
                // idempotency key, by when the map is fresh), not a corrupt reply (500).
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(&marker, SlotAddr::Master));
                let conn: &mut ClusterConnection = c;
                conn.route_command(mark, RoutingInfo::SingleNode(route.clone()))
                    .await
                    .and_then(Value::extract_error)
                    .map_err(|e| self.failed(e))?;
                let text = conn
                    .route_command(info, RoutingInfo::SingleNode(route.clone()))
                    .await
                    .and_then(Value::extract_error)
                    .map_err(|e| self.failed(e))?;
                let text: String = reply(&text, "INFO reply")?;
                let v = conn
                    .route_command(wait_for(&text), RoutingInfo::SingleNode(route))
                    .await
                    .and_then(Value::extract_error)
                    .map_err(|e| self.failed(e))?;
                reply(&v, "WAIT reply")?
            }
            other => {
                let (_, text): ((), String) = redis::pipe()
                    .add_command(mark)
                    .add_command(info)
                    .query_async(other)
                    .await
                    .map_err(|e| self.failed(e))?;
                wait_for(&text).query_async(other).await.map_err(|e| self.failed(e))?
            }
        };
        if acked < i64::from(self.min_replicas) {
            let e = StorageError::NotReplicated {
                wanted: self.min_replicas,
                got: acked.max(0) as u32,
            };
            self.count_unreplicated(&e);
            return Err(e);
        }
        Ok(answer)
    }

    /// Writes refused since start because too few replicas confirmed them
    /// (`hcc_queue_unreplicated_writes_total`): the HTTP layer and background work log them
    /// only at debug, so this count, and the rate-limited warning beside it, is their signal.
    pub fn unreplicated_writes(&self) -> u64 {
        self.shared.unreplicated.load(Ordering::Relaxed)
    }

    /// Counts one refused write; warns at most once per [`UNREPLICATED_WARN_EVERY_MS`], with the
    /// count so far (the first refusal always warns).
    fn count_unreplicated(&self, e: &StorageError) {
        let total = self.shared.unreplicated.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(super::now_ms()).unwrap_or(0).max(1);
        let last = self.shared.unreplicated_warned.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= UNREPLICATED_WARN_EVERY_MS;
        // One caller wins the slot: concurrent refusals do not each write the line.
        if due
            && self
                .shared
                .unreplicated_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %e,
                refused_since_start = total,
                "writes are refused (503) because too few replicas confirm them (queue.min_replicas); at most one such line every {} s, every refusal counted in hcc_queue_unreplicated_writes_total",
                UNREPLICATED_WARN_EVERY_MS / 1000,
            );
        }
    }

    /// `Unavailable`, and after a sign of failover (`READONLY`, a broken connection) the
    /// shared connections are dropped so the next command finds the new primary.
    fn failed(&self, e: redis::RedisError) -> StorageError {
        if SharedConn::broken(&e) {
            self.drop_shared();
        }
        unavailable(e)
    }

    pub(super) async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StorageError> {
        cmd.query_async(&mut self.conn().await?).await.map_err(unavailable)
    }

    pub(super) async fn pipe(&self, pipe: &redis::Pipeline) -> Result<(), StorageError> {
        pipe.query_async::<()>(&mut self.conn().await?).await.map_err(unavailable)
    }

    /// Ready: Redis answers, and in sentinel mode the node is the primary (a demoted one still
    /// answers `PING`).
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self.backend {
            Backend::Sentinel(..) => {
                let mut conn = self.conn().await?;
                match is_primary(&mut conn).await {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        self.drop_shared();
                        Err(unavailable("the node is no longer the primary; following the failover"))
                    }
                    Err(e) => Err(self.failed(e)),
                }
            }
            _ => self.cmd(&redis::cmd("PING")).await,
        }
    }

    /// Start-up: whether Redis takes the gateway's credentials and the gateway trusts Redis's
    /// certificate, on a fresh connection made past the pool's timeouts. A refusal is
    /// [`StorageError::Access`] naming the setting to fix; Redis out of reach is
    /// `Unavailable` (the process may start and wait for it).
    pub async fn check_access(&self) -> Result<(), StorageError> {
        use deadpool::managed::Manager;
        // A server that needs a password takes a connection that sent none, and answers its
        // first command `NOAUTH`: hence the `PING`.
        let ping = redis::cmd("PING");
        let attempt = async {
            match &self.backend {
                Backend::Standalone(p) => ping.query_async::<()>(&mut p.manager().create().await?).await,
                Backend::Sentinel(p, _) => ping.query_async::<()>(&mut p.manager().create().await?).await,
                Backend::Cluster(p) => ping.query_async::<()>(&mut p.manager().create().await?).await,
            }
        };
        let e = match tokio::time::timeout(ACCESS_CHECK_WITHIN, attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => return Err(unavailable("no answer within the start-up check's time")),
        };
        let Some(refusal) = redis_access::refusal(&e) else {
            return Err(unavailable(e));
        };
        let sentinels = match &self.backend {
            Backend::Sentinel(_, s) => Some(s.clone()),
            _ => None,
        };
        Err(redis_access::blame(refusal, &e, sentinels.as_deref()).await)
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
        // A cluster answers INFO per node; its masters' replicas are the cluster's to report.
        if self.min_replicas > 0 && !matches!(self.backend, Backend::Cluster(_)) {
            let info: Option<String> = redis::cmd("INFO").arg("replication").query_async(&mut conn).await.ok();
            let online = info
                .as_deref()
                .map(|i| i.lines().filter(|l| l.starts_with("slave") && l.contains("state=online")).count());
            let wanted = self.min_replicas;
            match online {
                Some(n) if n >= wanted as usize => {}
                Some(n) => warnings.push(format!(
                    "queue.min_replicas is {wanted} but the primary has {n} replica(s) online: every acknowledged write is refused (503) until enough are"
                )),
                None => warnings.push(format!(
                    "cannot read INFO replication; make sure the primary has at least {wanted} replica(s) (queue.min_replicas)"
                )),
            }
        }
        if self.min_replicas == 0 && !matches!(self.backend, Backend::Standalone(_)) {
            warnings.push("queue.min_replicas is 0: a failover can lose messages already acknowledged; set it to 1 or more".into());
        }
        Ok(warnings)
    }
}

type Slot = Arc<Mutex<Option<Conn>>>;

struct Shared {
    slots: Vec<Slot>,
    next: AtomicUsize,
    /// Writes refused as not replicated, since start (see [`RedisStore::unreplicated_writes`]).
    unreplicated: AtomicU64,
    /// When the last warning about them was written (Unix ms; 0: never).
    unreplicated_warned: AtomicU64,
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<Conn>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// A shared connection that replaces itself when it breaks. A connection found dead (Redis
/// restarted, or the primary failed) or answering `READONLY` (its node was demoted) is dropped
/// with the other shared ones, replaced from the pool, and the command sent once more on the
/// new one. Every script here is safe to run twice: a `READONLY` refusal wrote nothing, and
/// settlements, replays and discards check their preconditions, a repeated claim only leaves
/// a lease to expire, and a repeated enqueue is absorbed by its idempotency key when the
/// caller sent one (otherwise it is the same at-least-once duplicate a client's own retry
/// would make).
struct SharedConn {
    conn: Conn,
    slot: Slot,
    store: RedisStore,
}

impl SharedConn {
    fn broken(e: &redis::RedisError) -> bool {
        e.is_io_error()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
    }

    async fn renew(&mut self) -> redis::RedisResult<()> {
        self.store.drop_shared();
        self.conn = self.store.backend.shared().await?;
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
