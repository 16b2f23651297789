//! Durable state, by concern: the delivery queues ([`MessageQueue`]), the payment ledger
//! ([`PaymentLedger`]) and the audit log ([`AuditLog`]). All three are made from one shared
//! handle, [`Store`]: a Redis pool and key prefix in production, or the embedded memory state
//! for the demo and development (same semantics, nothing survives the process).
//!
//! Shape: each concern is an enum over its two backends (`Redis…` / `Memory…` types in the
//! concern's `redis` and `memory` modules), built from the `Store`. Static dispatch, because
//! there are exactly two backends and the hot path (claim, settle) stays free of boxing; an
//! enum rather than a generic parameter, because a generic would spread a type parameter
//! through the engine, the HTTP state and every test while buying nothing over a `match`. The
//! concerns share the handle, never each other's methods: a queue has no payment methods and
//! the ledger no queue methods. The one meeting point is deliberate: confirming a payment
//! queues its event in the same atomic step, so the ledger writes into its events queue
//! through the queue's own push (the Lua library `lua/lib/push.lua`, and the memory
//! backend's queue state).
//!
//! Redis scripts live in `lua/<name>.lua`, each with a header naming its KEYS and ARGV and its
//! reply, and each has exactly one typed wrapper in the concern's `redis` module.

pub mod audit;
pub mod catalogue;
pub mod inbound;
pub mod ledger;
mod memory;
pub mod queue;
mod redis;
mod redis_access;

pub use self::audit::AuditLog;
pub use self::catalogue::CatalogueBook;
pub use self::inbound::{InboundBook, InboundRecord};
pub use self::ledger::PaymentLedger;
pub use self::memory::MemoryStore;
pub use self::queue::{
    Claimed, CounterAudit, Disposition, Enqueued, Idempotency, KEY_HISTORY_CAP, KeyHistory, MessageQueue, MessageRecord, MessageStatus,
    NewMessage, OutboxEvent, PartitionError, Permit, PermitAsk, QueueStats, ReplayJob, ReplayStep, SettleNotes, partition_of, rate_burst,
};
pub use self::redis::{RedisOptions, RedisStore, RedisTopology};
pub use self::redis_access::RedisAccess;

/// Unix time in milliseconds, and now: the clock lives in `hcc-core`.
pub use hcc_core::time::{Millis, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("storage backend returned something unexpected: {0}")]
    Corrupt(String),
    /// The write is on the primary but fewer than `wanted` replicas confirmed it in time
    /// (`queue.min_replicas`): nothing may be acknowledged; the caller retries (with its
    /// idempotency key, which finds the kept write).
    #[error("the write reached {got} of {wanted} required replicas in time")]
    NotReplicated { wanted: u32, got: u32 },
    /// Redis refused the gateway's credentials, or the gateway Redis's certificate: the
    /// setting `key` is wrong, and waiting will not fix it.
    #[error("{key}: {message}")]
    Access { key: &'static str, message: String },
}

/// The one handle the three concerns are made from. Cheap to clone: clones share the pool
/// (or the memory state).
#[derive(Clone)]
pub enum Store {
    Redis(RedisStore),
    Memory(MemoryStore),
}

impl Store {
    /// A Redis store; connections are made lazily, so this succeeds with Redis down.
    pub fn redis(url: &str, pool_size: usize, prefix: &str) -> Result<Self, StorageError> {
        Ok(Store::Redis(RedisStore::new(url, pool_size, prefix)?))
    }

    /// A Redis store in any topology, with replica acknowledgement as configured.
    pub fn redis_with(options: &RedisOptions) -> Result<Self, StorageError> {
        Ok(Store::Redis(RedisStore::with_options(options)?))
    }

    pub fn memory() -> Self {
        Store::Memory(MemoryStore::default())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Redis(_) => "redis",
            Store::Memory(_) => "memory",
        }
    }

    pub fn queue(&self) -> MessageQueue {
        MessageQueue::new(self)
    }

    /// The ledger whose events go to the queue `events_queue` (and whose keys share its hash
    /// tag).
    pub fn ledger(&self, events_queue: &str) -> PaymentLedger {
        PaymentLedger::new(self, events_queue)
    }

    /// The book of inbound dossiers whose `dossier.received` webhooks go to the queue
    /// `events_queue` (and whose keys share its hash tag).
    pub fn inbound(&self, events_queue: &str) -> InboundBook {
        InboundBook::new(self, events_queue)
    }

    /// The copy of the national procedure catalogue.
    pub fn catalogue(&self) -> CatalogueBook {
        CatalogueBook::new(self)
    }

    pub fn audit_log(&self) -> AuditLog {
        AuditLog::new(self)
    }

    /// Writes refused since start because too few replicas confirmed them (always 0 in memory,
    /// which has no replicas).
    pub fn unreplicated_writes(&self) -> u64 {
        match self {
            Store::Redis(r) => r.unreplicated_writes(),
            Store::Memory(_) => 0,
        }
    }
}

/// Forwards a method of a concern's enum to its backend.
macro_rules! dispatch {
    ($self:ident, $ty:ident, $b:ident => $e:expr) => {
        match $self {
            $ty::Redis($b) => $e,
            $ty::Memory($b) => $e,
        }
    };
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    /// Every script, by file name.
    const SCRIPTS: [(&str, &str); 25] = [
        ("catalogue_lease.lua", include_str!("lua/catalogue_lease.lua")),
        ("inbound_accept.lua", include_str!("lua/inbound_accept.lua")),
        ("inbound_ack.lua", include_str!("lua/inbound_ack.lua")),
        ("unmatched_put.lua", include_str!("lua/unmatched_put.lua")),
        ("unmatched_settle.lua", include_str!("lua/unmatched_settle.lua")),
        ("unmatched_open.lua", include_str!("lua/unmatched_open.lua")),
        ("payment_overdue.lua", include_str!("lua/payment_overdue.lua")),
        ("replay_job.lua", include_str!("lua/replay_job.lua")),
        ("lib/payment_index.lua", include_str!("lua/lib/payment_index.lua")),
        ("dossier.lua", include_str!("lua/dossier.lua")),
        ("lib/push.lua", include_str!("lua/lib/push.lua")),
        ("enqueue.lua", include_str!("lua/enqueue.lua")),
        ("claim.lua", include_str!("lua/claim.lua")),
        ("settle.lua", include_str!("lua/settle.lua")),
        ("reap.lua", include_str!("lua/reap.lua")),
        ("get.lua", include_str!("lua/get.lua")),
        ("replay.lua", include_str!("lua/replay.lua")),
        ("discard.lua", include_str!("lua/discard.lua")),
        ("stats.lua", include_str!("lua/stats.lua")),
        ("recount.lua", include_str!("lua/recount.lua")),
        ("rate.lua", include_str!("lua/rate.lua")),
        ("payment_create.lua", include_str!("lua/payment_create.lua")),
        ("payment_set_handoff.lua", include_str!("lua/payment_set_handoff.lua")),
        ("payment_confirm.lua", include_str!("lua/payment_confirm.lua")),
        ("payment_reverse.lua", include_str!("lua/payment_reverse.lua")),
    ];

    /// The indexes `code` uses of `table` (`KEYS` or `ARGV`).
    fn used(code: &str, table: &str) -> std::collections::BTreeSet<u32> {
        let open = format!("{table}[");
        code.match_indices(&open)
            .filter_map(|(at, _)| {
                let rest = &code[at + open.len()..];
                rest[..rest.find(']')?].parse().ok()
            })
            .collect()
    }

    /// The header (the comment lines before the first line of code) names every KEYS[i] and
    /// ARGV[i] the code uses, and says what the script returns.
    #[test]
    fn every_script_header_names_its_keys_argv_and_reply() {
        for (name, script) in SCRIPTS {
            let header: String = script.lines().take_while(|l| l.starts_with("--")).collect::<Vec<_>>().join("\n");
            let code: String = script
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!header.is_empty(), "{name} has no header");
            for table in ["KEYS", "ARGV"] {
                for i in used(&code, table) {
                    assert!(
                        header.contains(&format!("{table}[{i}]")),
                        "{name}: {table}[{i}] is used but not named in the header"
                    );
                }
            }
            if !name.starts_with("lib/") {
                assert!(header.contains("Returns"), "{name}: the header does not say what it returns");
            }
        }
    }
}
