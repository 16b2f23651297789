//! The book in Redis. Its keys carry the hash tag of its webhook queue `i`, so a record and
//! the webhook it queues are one script in one slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:{i}:in:r:<code>` | hash | a record: `source`, `procedure`, `received`, `message`, `files`, `link`, `needs_ack`, `acked` |
//! | `p:{i}:in:ix:all` | zset | code -> received (ms), of every record |
//! | `p:{i}:in:ix:s:<source>` | zset | code -> received, of one source's records |
//! | `p:{i}:in:unacked:<source>` | zset | code -> received, of a polled source's records not yet acknowledged |
//!
//! `in:` is a family no queue key begins with (`m:`, `k:`, `due`, `dx:`, `ps:`, …), and
//! `in:r:` one no other book key begins with.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;
use serde_json::Value;

use super::{Accepted, InboundRecord};
use crate::storage::queue::redis::QueueKeys;
use crate::storage::redis::{corrupt, reply};
use crate::storage::{Millis, NewMessage, RedisStore, StorageError};

static ACCEPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/lib/push.lua"),
        include_str!("../lua/inbound_accept.lua")
    ))
});
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/inbound_ack.lua")));

#[derive(Clone)]
pub struct RedisBook {
    store: RedisStore,
    events: std::sync::Arc<QueueKeys>,
}

fn record_key(base: &str, code: &str) -> String {
    format!("{base}in:r:{code}")
}

fn index_key(base: &str, source: Option<&str>) -> String {
    match source {
        Some(s) => format!("{base}in:ix:s:{s}"),
        None => format!("{base}in:ix:all"),
    }
}

fn unacked_key(base: &str, source: &str) -> String {
    format!("{base}in:unacked:{source}")
}

/// A record from its stored hash: a missing or unparsable field is corrupt, never a default.
fn record_from(code: &str, mut map: HashMap<String, String>) -> Result<InboundRecord, StorageError> {
    let mut take = |k: &str| map.remove(k);
    let required = |v: Option<String>, k: &str| v.ok_or_else(|| corrupt(format_args!("inbound {k} missing")));
    let json = |v: String, k: &str| serde_json::from_str::<Value>(&v).map_err(|_| corrupt(format_args!("inbound {k} is not JSON")));
    let ms = |v: String, k: &str| v.parse::<Millis>().map_err(|_| corrupt(format_args!("inbound {k} {v:?}")));
    let procedure = required(take("procedure"), "procedure")?;
    Ok(InboundRecord {
        code: code.to_string(),
        source: required(take("source"), "source")?,
        procedure: (!procedure.is_empty()).then_some(procedure),
        received_at: ms(required(take("received"), "received")?, "received")?,
        message_id: required(take("message"), "message")?,
        files: json(required(take("files"), "files")?, "files")?,
        link: json(required(take("link"), "link")?, "link")?,
        needs_ack: required(take("needs_ack"), "needs_ack")? == "1",
        acked_at: take("acked").map(|v| ms(v, "acked")).transpose()?,
    })
}

impl RedisBook {
    pub(super) fn new(store: RedisStore, events_queue: &str) -> Self {
        let events = std::sync::Arc::new(QueueKeys::new(&store, events_queue));
        RedisBook { store, events }
    }

    fn base(&self) -> &str {
        &self.events.base
    }

    /// `inbound_accept.lua`.
    pub(super) async fn accept(&self, r: &InboundRecord, event: NewMessage) -> Result<Accepted, StorageError> {
        let q = &self.events;
        let mut inv = ACCEPT.key(record_key(self.base(), &r.code));
        inv.key(index_key(self.base(), None))
            .key(index_key(self.base(), Some(&r.source)))
            .key(unacked_key(self.base(), &r.source))
            .key(q.message(&r.message_id))
            .key(q.ordering_key(&event.ordering_key))
            .key(q.named("due"))
            .key(q.named("stats"))
            .arg(&r.code)
            .arg(&r.source)
            .arg(r.procedure.as_deref().unwrap_or(""))
            .arg(r.received_at)
            .arg(&r.message_id)
            .arg(r.files.to_string())
            .arg(r.link.to_string())
            .arg(if r.needs_ack { "1" } else { "0" })
            .arg(&event.kind)
            .arg(&event.payload)
            .arg(crate::telemetry::current_traceparent().unwrap_or_default());
        let answer: String = reply(&self.store.run_acknowledged(&inv, self.base()).await?, "inbound accept reply")?;
        match answer.as_str() {
            "created" => Ok(Accepted::Created(r.message_id.clone())),
            "duplicate" => Ok(Accepted::Duplicate),
            other => Err(corrupt(format_args!("inbound accept reply {other:?}"))),
        }
    }

    pub(super) async fn get(&self, code: &str) -> Result<Option<InboundRecord>, StorageError> {
        let map: HashMap<String, String> = self.store.cmd(redis::cmd("HGETALL").arg(record_key(self.base(), code))).await?;
        if map.is_empty() {
            return Ok(None);
        }
        record_from(code, map).map(Some)
    }

    /// The records named by `codes`, in that order; one gone meanwhile is skipped.
    async fn records(&self, codes: Vec<String>) -> Result<Vec<InboundRecord>, StorageError> {
        let mut out = Vec::with_capacity(codes.len());
        for code in codes {
            if let Some(r) = self.get(&code).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub(super) async fn list(&self, source: Option<&str>, offset: usize, limit: usize) -> Result<Vec<InboundRecord>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let codes: Vec<String> = self
            .store
            .cmd(
                redis::cmd("ZREVRANGE")
                    .arg(index_key(self.base(), source))
                    .arg(offset)
                    .arg(offset + limit - 1),
            )
            .await?;
        self.records(codes).await
    }

    pub(super) async fn count(&self, source: Option<&str>) -> Result<u64, StorageError> {
        self.store.cmd(redis::cmd("ZCARD").arg(index_key(self.base(), source))).await
    }

    pub(super) async fn unacknowledged(&self, source: &str, limit: usize) -> Result<Vec<InboundRecord>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let codes: Vec<String> = self
            .store
            .cmd(redis::cmd("ZRANGE").arg(unacked_key(self.base(), source)).arg(0).arg(limit - 1))
            .await?;
        self.records(codes).await
    }

    /// `inbound_ack.lua`.
    pub(super) async fn mark_acknowledged(&self, code: &str, source: &str, now: Millis) -> Result<bool, StorageError> {
        let mut inv = ACK.key(record_key(self.base(), code));
        inv.key(unacked_key(self.base(), source)).arg(code).arg(now);
        let answer: String = reply(&self.store.run_acknowledged(&inv, self.base()).await?, "inbound ack reply")?;
        match answer.as_str() {
            "acked" => Ok(true),
            "already" | "unknown" => Ok(false),
            other => Err(corrupt(format_args!("inbound ack reply {other:?}"))),
        }
    }
}
