//! The shared audit log: JSON lines, newest first, the newest `keep` kept. In Redis one list,
//! `p:{audit}:log`, in a slot of its own; in the embedded store a deque. Two plain commands
//! each way, so no script.

use super::{MemoryStore, RedisStore, StorageError, Store, dispatch};

#[derive(Clone)]
pub enum AuditLog {
    Redis(RedisAudit),
    Memory(MemoryAudit),
}

impl AuditLog {
    pub fn new(store: &Store) -> Self {
        match store {
            Store::Redis(s) => AuditLog::Redis(RedisAudit { store: s.clone() }),
            Store::Memory(s) => AuditLog::Memory(MemoryAudit { store: s.clone() }),
        }
    }

    /// Appends lines, keeping the newest `keep`.
    pub async fn append(&self, lines: &[String], keep: usize) -> Result<(), StorageError> {
        if lines.is_empty() {
            return Ok(());
        }
        dispatch!(self, AuditLog, a => a.append(lines, keep.max(1)).await)
    }

    /// Lines, newest first.
    pub async fn read(&self, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        dispatch!(self, AuditLog, a => a.read(offset, limit.max(1)).await)
    }
}

#[derive(Clone)]
pub struct RedisAudit {
    store: RedisStore,
}

impl RedisAudit {
    fn key(&self) -> String {
        self.store.key("audit", "log")
    }

    async fn append(&self, lines: &[String], keep: usize) -> Result<(), StorageError> {
        let key = self.key();
        let mut pipe = redis::pipe();
        pipe.cmd("LPUSH").arg(&key).arg(lines).ignore();
        pipe.cmd("LTRIM").arg(&key).arg(0).arg(keep - 1).ignore();
        self.store.pipe(&pipe).await
    }

    async fn read(&self, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        self.store
            .cmd(redis::cmd("LRANGE").arg(self.key()).arg(offset).arg(offset + limit - 1))
            .await
    }
}

#[derive(Clone)]
pub struct MemoryAudit {
    store: MemoryStore,
}

impl MemoryAudit {
    async fn append(&self, lines: &[String], keep: usize) -> Result<(), StorageError> {
        let log = &mut self.store.lock().audit;
        for l in lines {
            log.push_front(l.clone());
        }
        log.truncate(keep);
        Ok(())
    }

    async fn read(&self, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self.store.lock().audit.iter().skip(offset).take(limit).cloned().collect())
    }
}
