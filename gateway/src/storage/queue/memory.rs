//! The queues of the embedded store. They keep the Redis backend's semantics exactly (the
//! conformance suite runs against both), under the store's one mutex.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use super::{
    Claimed, CounterAudit, Disposition, Enqueued, Idempotency, KEY_HISTORY_CAP, KeyHistory, MessageRecord, MessageStatus, NewMessage,
    Permit, PermitAsk, QueueStats, ReplayJob, ReplayStep, SettleNotes, rate_burst, rate_interval_us,
};
use crate::storage::{MemoryStore, Millis, StorageError};

#[derive(Clone)]
pub struct MemoryQueue {
    store: MemoryStore,
}

/// One queue's state.
#[derive(Default)]
pub(in crate::storage) struct QueueState {
    msgs: HashMap<String, Msg>,
    keys: HashMap<String, VecDeque<String>>,
    /// (due time, ordering key), plus the reverse map to move an entry.
    due: BTreeSet<(Millis, String)>,
    due_at: HashMap<String, Millis>,
    leases: HashMap<String, Millis>,
    dead: BTreeSet<(Millis, String)>,
    idem: HashMap<String, (String, String, Millis)>,
    paused: bool,
    accepted: u64,
    delivered_total: u64,
    discarded_total: u64,
    /// Messages queued behind a dead head, kept by the operations that change it, as the
    /// Redis scripts keep theirs: `stats` never walks the dead letters.
    blocked: u64,
    /// The partition count recorded for the queue of this name (as Redis's `p:{q}:meta`).
    partitions: Option<u16>,
    /// The shared rate limit's theoretical arrival time, microseconds (as `rate.lua`).
    rate_tat_us: i64,
    /// Per ordering key, its history index and last status (as `p:{q}:dx:` and `p:{q}:ps:`).
    histories: HashMap<String, History>,
    /// Events for the centre, `<event id>\n<event>` (as `p:{q}:outbox`).
    outbox: VecDeque<String>,
    /// The latest paced replay, its remaining ids, its owner and lease (as `replay_job.lua`).
    replay_job: Option<(ReplayJob, VecDeque<String>, String, Millis)>,
}

#[derive(Default)]
struct History {
    ids: VecDeque<String>,
    status: Option<String>,
    expires: Option<Millis>,
}

struct Msg {
    kind: String,
    okey: String,
    payload: Option<Vec<u8>>,
    status: MessageStatus,
    attempts: u32,
    created: Millis,
    age_from: Millis,
    next: Option<Millis>,
    delivered: Option<Millis>,
    error: Option<String>,
    token: Option<String>,
    died: Option<Millis>,
    expires: Option<Millis>,
    deaths: u32,
    replays: u32,
    /// Set by a replay (its number), cleared by the delivery that follows.
    redeliver: Option<u32>,
    /// The trace that accepted the message (`crate::telemetry`).
    traceparent: Option<String>,
}

impl QueueState {
    fn set_due(&mut self, okey: &str, at: Millis) {
        if let Some(old) = self.due_at.insert(okey.to_string(), at) {
            self.due.remove(&(old, okey.to_string()));
        }
        self.due.insert((at, okey.to_string()));
    }

    fn unset_due(&mut self, okey: &str) {
        if let Some(old) = self.due_at.remove(okey) {
            self.due.remove(&(old, okey.to_string()));
        }
    }

    /// How many messages wait behind the head of `okey`.
    fn behind(&self, okey: &str) -> u64 {
        self.keys.get(okey).map_or(0, |l| l.len() as u64).saturating_sub(1)
    }

    fn head_is(&self, okey: &str, id: &str) -> bool {
        self.keys.get(okey).and_then(|l| l.front()).is_some_and(|h| h == id)
    }

    fn pop_head(&mut self, okey: &str, id: &str, now: Millis) {
        if let Some(list) = self.keys.get_mut(okey) {
            if list.front().is_some_and(|h| h == id) {
                list.pop_front();
            } else {
                list.retain(|x| x != id);
            }
            if list.is_empty() {
                self.keys.remove(okey);
            } else {
                self.set_due(okey, now);
            }
        }
    }

    /// Stores a message and puts it in its key's FIFO: enqueue, and the ledger queueing its
    /// events in the same step (as `lua/lib/push.lua`).
    /// Queues `msg` as `id`, keeping the trace of the current span (as `lua/lib/push.lua`'s
    /// callers do).
    pub(in crate::storage) fn push(&mut self, id: String, msg: NewMessage, now: Millis) {
        self.push_traced(id, msg, now, crate::telemetry::current_traceparent());
    }

    fn push_traced(&mut self, id: String, msg: NewMessage, now: Millis, traceparent: Option<String>) {
        self.msgs.insert(
            id.clone(),
            Msg {
                kind: msg.kind,
                okey: msg.ordering_key.clone(),
                payload: Some(msg.payload),
                status: MessageStatus::Queued,
                attempts: 0,
                created: now,
                age_from: now,
                next: None,
                delivered: None,
                error: None,
                token: None,
                died: None,
                expires: None,
                deaths: 0,
                replays: 0,
                redeliver: None,
                traceparent,
            },
        );
        let h = self.histories.entry(msg.ordering_key.clone()).or_default();
        h.ids.push_back(id.clone());
        while h.ids.len() > KEY_HISTORY_CAP {
            h.ids.pop_front();
        }
        h.expires = None;
        let list = self.keys.entry(msg.ordering_key.clone()).or_default();
        list.push_back(id);
        if list.len() == 1 {
            self.set_due(&msg.ordering_key, now);
        } else if list
            .front()
            .and_then(|h| self.msgs.get(h))
            .is_some_and(|h| h.status == MessageStatus::Dead)
        {
            self.blocked += 1;
        }
        self.accepted += 1;
    }

    /// Takes `id` off the dead letters: its message, if it was dead (replay and discard).
    fn take_dead(&mut self, id: &str) -> Option<&mut Msg> {
        let died = self.msgs.get(id)?.died?;
        if !self.dead.remove(&(died, id.to_string())) {
            return None;
        }
        let m = self.msgs.get_mut(id)?;
        m.died = None;
        Some(m)
    }

    /// The key's history lasts as long as the records of its last message.
    fn expire_history_when_idle(&mut self, okey: &str, at: Millis) {
        if !self.keys.contains_key(okey)
            && let Some(h) = self.histories.get_mut(okey)
        {
            h.expires = Some(at);
        }
    }

    fn purge_expired(&mut self, now: Millis) {
        self.msgs.retain(|_, m| m.expires.is_none_or(|e| e > now));
        self.histories.retain(|_, h| h.expires.is_none_or(|e| e > now));
        self.idem.retain(|_, (_, _, e)| *e > now);
    }

    fn record(&self, queue: &str, id: &str) -> Option<MessageRecord> {
        let m = self.msgs.get(id)?;
        let mut status = m.status;
        if status == MessageStatus::Queued || status == MessageStatus::Retrying {
            let head = self.keys.get(&m.okey).and_then(|l| l.front());
            if let Some(h) = head
                && h != id
                && self.msgs.get(h).is_some_and(|hm| hm.status == MessageStatus::Dead)
            {
                status = MessageStatus::Blocked;
            }
        }
        Some(MessageRecord {
            id: id.to_string(),
            kind: m.kind.clone(),
            destination: queue.to_string(),
            ordering_key: m.okey.clone(),
            status,
            attempts: m.attempts,
            created_at: m.created,
            next_attempt_at: m.next,
            delivered_at: m.delivered,
            last_error: m.error.clone(),
        })
    }
}

impl MemoryQueue {
    pub(super) fn new(store: MemoryStore) -> Self {
        MemoryQueue { store }
    }

    fn with<T>(&self, queue: &str, f: impl FnOnce(&mut QueueState) -> T) -> T {
        f(self.store.lock().queues.entry(queue.to_string()).or_default())
    }

    pub async fn enqueue(
        &self,
        queue: &str,
        msg: NewMessage,
        idem: Option<&Idempotency>,
        traceparent: Option<String>,
        now: Millis,
    ) -> Result<Enqueued, StorageError> {
        Ok(self.with(queue, |s| {
            let id = uuid::Uuid::now_v7().to_string();
            if let Some(i) = idem {
                let k = format!("{}:{}", i.scope, i.key);
                if let Some((pid, fp, exp)) = s.idem.get(&k)
                    && *exp > now
                {
                    return if *fp == i.fingerprint {
                        Enqueued::Replayed(pid.clone())
                    } else {
                        Enqueued::Conflict
                    };
                }
                s.idem
                    .insert(k, (id.clone(), i.fingerprint.clone(), now + i.ttl_secs as i64 * 1000));
            }
            s.push_traced(id.clone(), msg, now, traceparent);
            Enqueued::Accepted(id)
        }))
    }

    pub async fn claim(&self, queue: &str, max: usize, lease_until: Millis, now: Millis) -> Result<Vec<Claimed>, StorageError> {
        Ok(self.with(queue, |s| {
            if s.paused {
                return Vec::new();
            }
            let token = uuid::Uuid::new_v4().to_string();
            let okeys: Vec<String> = s
                .due
                .iter()
                .take_while(|(at, _)| *at <= now)
                .take(max)
                .map(|(_, k)| k.clone())
                .collect();
            let mut out = Vec::with_capacity(okeys.len());
            for okey in okeys {
                s.unset_due(&okey);
                let Some(id) = s.keys.get(&okey).and_then(|l| l.front()).cloned() else {
                    continue;
                };
                let Some(m) = s.msgs.get_mut(&id) else {
                    continue;
                };
                m.attempts += 1;
                m.status = MessageStatus::InFlight;
                m.token = Some(token.clone());
                s.leases.insert(id.clone(), lease_until);
                let m = &s.msgs[&id];
                out.push(Claimed {
                    id,
                    kind: m.kind.clone(),
                    ordering_key: okey,
                    payload: m.payload.clone().unwrap_or_default(),
                    attempts: m.attempts,
                    created_at: m.created,
                    age_from: m.age_from,
                    token: token.clone(),
                    traceparent: m.traceparent.clone(),
                });
            }
            out
        }))
    }

    pub async fn settle(
        &self,
        queue: &str,
        c: &Claimed,
        how: &Disposition,
        now: Millis,
        retention_secs: u64,
        notes: &SettleNotes,
    ) -> Result<bool, StorageError> {
        Ok(self.with(queue, |s| {
            let holds = s.leases.contains_key(&c.id) && s.msgs.get(&c.id).is_some_and(|m| m.token.as_deref() == Some(c.token.as_str()));
            if !holds {
                return false;
            }
            s.leases.remove(&c.id);
            let okey = c.ordering_key.clone();
            let Some(m) = s.msgs.get_mut(&c.id) else {
                return false;
            };
            m.token = None;
            match how {
                Disposition::Delivered => {
                    m.status = MessageStatus::Delivered;
                    m.delivered = Some(now);
                    m.next = None;
                    m.payload = None;
                    let until = now + retention_secs.max(1) as i64 * 1000;
                    m.expires = Some(until);
                    let redelivered = m.redeliver.take();
                    s.delivered_total += 1;
                    s.pop_head(&okey, &c.id, now);
                    if let (Some(n), Some(ev)) = (redelivered, &notes.on_redelivered) {
                        s.outbox.push_back(format!("{}.delivered.{n}\n{}", c.id, ev.encode()));
                    }
                    if let Some(st) = &notes.status {
                        s.histories.entry(okey.clone()).or_default().status = Some(st.clone());
                    }
                    s.expire_history_when_idle(&okey, until);
                }
                Disposition::Retry { at, error } => {
                    m.status = MessageStatus::Retrying;
                    m.next = Some(*at);
                    m.error = Some(error.clone());
                    s.set_due(&okey, *at);
                }
                Disposition::Dead { error } => {
                    m.status = MessageStatus::Dead;
                    m.next = None;
                    m.error = Some(error.clone());
                    m.died = Some(now);
                    m.deaths += 1;
                    let deaths = m.deaths;
                    if let Some(ev) = &notes.on_dead {
                        s.outbox.push_back(format!("{}.rejected.{deaths}\n{}", c.id, ev.encode()));
                    }
                    s.dead.insert((now, c.id.clone()));
                    s.blocked += s.behind(&okey);
                }
                Disposition::Release => {
                    m.attempts = m.attempts.saturating_sub(1);
                    m.status = if m.attempts > 0 {
                        MessageStatus::Retrying
                    } else {
                        MessageStatus::Queued
                    };
                    s.set_due(&okey, now);
                }
            }
            true
        }))
    }

    pub async fn reap(&self, queue: &str, now: Millis) -> Result<usize, StorageError> {
        Ok(self.with(queue, |s| {
            s.purge_expired(now);
            let expired: Vec<String> = s
                .leases
                .iter()
                .filter(|(_, until)| **until <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                s.leases.remove(id);
                if let Some(m) = s.msgs.get_mut(id) {
                    m.status = MessageStatus::Retrying;
                    m.token = None;
                    m.error = Some("lease expired: the worker was lost mid-delivery".into());
                    let okey = m.okey.clone();
                    if s.head_is(&okey, id) {
                        s.set_due(&okey, now);
                    }
                }
            }
            expired.len()
        }))
    }

    pub async fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>, StorageError> {
        Ok(self.with(queue, |s| s.record(queue, id)))
    }

    pub async fn key_history(&self, queue: &str, okey: &str) -> Result<Option<KeyHistory>, StorageError> {
        // Expired records and histories are purged by `reap`, as every other memory record is.
        Ok(self.with(queue, |s| {
            let h = s.histories.get(okey)?;
            let messages = h
                .ids
                .iter()
                .filter_map(|id| {
                    let m = s.msgs.get(id)?;
                    Some(MessageRecord {
                        id: id.clone(),
                        kind: m.kind.clone(),
                        destination: queue.to_string(),
                        ordering_key: okey.to_string(),
                        status: m.status,
                        attempts: m.attempts,
                        created_at: m.created,
                        next_attempt_at: m.next,
                        delivered_at: m.delivered,
                        last_error: m.error.clone(),
                    })
                })
                .collect::<Vec<_>>();
            let head = s.keys.get(okey).and_then(|l| l.front()).cloned();
            if messages.is_empty() && head.is_none() {
                return None;
            }
            Some(KeyHistory::new(h.status.clone(), head, messages))
        }))
    }

    pub async fn outbox(&self, queue: &str, max: usize) -> Result<Vec<String>, StorageError> {
        Ok(self.with(queue, |s| s.outbox.iter().take(max).cloned().collect()))
    }

    pub async fn outbox_done(&self, queue: &str, raw: &str) -> Result<(), StorageError> {
        self.with(queue, |s| {
            if let Some(i) = s.outbox.iter().position(|x| x == raw) {
                s.outbox.remove(i);
            }
        });
        Ok(())
    }

    pub async fn dead_ids(&self, queue: &str, upto: usize) -> Result<Vec<(Millis, String)>, StorageError> {
        Ok(self.with(queue, |s| s.dead.iter().take(upto).cloned().collect()))
    }

    pub async fn replay(&self, queue: &str, id: &str, now: Millis) -> Result<bool, StorageError> {
        Ok(self.with(queue, |s| {
            let Some(m) = s.take_dead(id) else {
                return false;
            };
            m.status = MessageStatus::Queued;
            m.attempts = 0;
            m.age_from = now;
            m.replays += 1;
            m.redeliver = Some(m.replays);
            let okey = m.okey.clone();
            s.blocked = s.blocked.saturating_sub(s.behind(&okey));
            s.set_due(&okey, now);
            true
        }))
    }

    pub async fn discard(&self, queue: &str, id: &str, now: Millis, retention_secs: u64) -> Result<bool, StorageError> {
        Ok(self.with(queue, |s| {
            let Some(m) = s.take_dead(id) else {
                return false;
            };
            m.status = MessageStatus::Discarded;
            m.payload = None;
            m.expires = Some(now + retention_secs as i64 * 1000);
            let okey = m.okey.clone();
            s.discarded_total += 1;
            s.blocked = s.blocked.saturating_sub(s.behind(&okey));
            s.pop_head(&okey, id, now);
            s.expire_history_when_idle(&okey, now + retention_secs.max(1) as i64 * 1000);
            true
        }))
    }

    pub async fn stats(&self, queue: &str, now: Millis) -> Result<QueueStats, StorageError> {
        Ok(self.with(queue, |s| {
            let ready_keys = s.due.iter().take_while(|(at, _)| *at <= now).count() as u64;
            let scheduled = s.due.len() as u64 - ready_keys;
            let oldest = s
                .due
                .iter()
                .next()
                .filter(|(at, _)| *at <= now)
                .map(|(at, _)| (now - at) as f64 / 1000.0)
                .unwrap_or(0.0);
            let blocked = s.blocked;
            let pending = s.accepted - s.delivered_total - s.discarded_total;
            let in_flight = s.leases.len() as u64;
            let dead = s.dead.len() as u64;
            QueueStats {
                ready: pending.saturating_sub(in_flight + dead + blocked + scheduled),
                scheduled,
                in_flight,
                dead,
                blocked,
                delivered_total: s.delivered_total,
                oldest_ready_age_seconds: oldest,
                paused: s.paused,
            }
        }))
    }

    /// The counters beside a count from scratch over the dead letters, as Redis's `RECOUNT`.
    pub async fn audit_counters(&self, queue: &str) -> Result<CounterAudit, StorageError> {
        Ok(self.with(queue, |s| {
            let dead_msgs = || s.dead.iter().filter_map(|(_, id)| s.msgs.get(id));
            CounterAudit {
                dead: s.dead.len() as u64,
                blocked: s.blocked,
                counted_dead: dead_msgs().filter(|m| m.status == MessageStatus::Dead).count() as u64,
                counted_blocked: dead_msgs().map(|m| s.behind(&m.okey)).sum(),
            }
        }))
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StorageError> {
        self.with(queue, |s| s.paused = paused);
        Ok(())
    }

    pub async fn recorded_partitions(&self, queue: &str) -> Result<Option<u16>, StorageError> {
        Ok(self.with(queue, |s| s.partitions))
    }

    pub async fn record_partitions(&self, queue: &str, partitions: u16) -> Result<(), StorageError> {
        self.with(queue, |s| s.partitions = Some(partitions));
        Ok(())
    }

    pub async fn replay_job_start(
        &self,
        queue: &str,
        job_id: &str,
        rate: f64,
        ids: &[String],
        now: Millis,
    ) -> Result<Result<(), String>, StorageError> {
        Ok(self.with(queue, |s| {
            if let Some((j, ..)) = &s.replay_job
                && j.state == "running"
            {
                return Err(j.id.clone());
            }
            let job = ReplayJob {
                id: job_id.to_string(),
                total: ids.len() as u64,
                done: 0,
                rate_per_sec: rate,
                started_at: now,
                finished_at: None,
                state: "running".into(),
            };
            s.replay_job = Some((job, ids.iter().cloned().collect(), String::new(), 0));
            Ok(())
        }))
    }

    pub async fn replay_job(&self, queue: &str) -> Result<Option<ReplayJob>, StorageError> {
        Ok(self.with(queue, |s| s.replay_job.as_ref().map(|(j, ..)| j.clone())))
    }

    pub async fn replay_job_lease(&self, queue: &str, owner: &str, until: Millis, now: Millis) -> Result<bool, StorageError> {
        Ok(self.with(queue, |s| match &mut s.replay_job {
            Some((j, _, o, lease)) if j.state == "running" => {
                if o != owner && !o.is_empty() && *lease > now {
                    return false;
                }
                *o = owner.to_string();
                *lease = until;
                true
            }
            _ => false,
        }))
    }

    pub async fn replay_job_next(&self, queue: &str, owner: &str, now: Millis) -> Result<ReplayStep, StorageError> {
        Ok(self.with(queue, |s| match &mut s.replay_job {
            Some((j, ids, o, lease)) if j.state == "running" && o == owner && *lease > now => match ids.front() {
                Some(id) => ReplayStep::Replay(id.clone()),
                None => {
                    j.state = "finished".into();
                    j.finished_at = Some(now);
                    o.clear();
                    ReplayStep::Finished
                }
            },
            _ => ReplayStep::Lost,
        }))
    }

    pub async fn replay_job_done(&self, queue: &str, owner: &str, id: &str, now: Millis) -> Result<Option<u64>, StorageError> {
        Ok(self.with(queue, |s| match &mut s.replay_job {
            Some((j, ids, o, lease)) if j.state == "running" && o == owner && *lease > now => {
                if ids.front().is_some_and(|h| h == id) {
                    ids.pop_front();
                    j.done += 1;
                }
                Some(j.done)
            }
            _ => None,
        }))
    }

    pub async fn replay_job_cancel(&self, queue: &str, now: Millis) -> Result<bool, StorageError> {
        Ok(self.with(queue, |s| match &mut s.replay_job {
            Some((j, ids, o, lease)) if j.state == "running" => {
                j.state = "cancelled".into();
                j.finished_at = Some(now);
                ids.clear();
                o.clear();
                *lease = 0;
                true
            }
            _ => false,
        }))
    }

    /// The GCRA of `rate.lua`, on this process's clock (the only one sharing this store).
    pub async fn permit(&self, destination: &str, per_sec: u32, ask: PermitAsk) -> Result<Permit, StorageError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let interval = rate_interval_us(per_sec);
        let tau = interval * (i64::from(rate_burst(per_sec)) - 1);
        Ok(self.with(destination, |s| {
            let tat = s.rate_tat_us.max(now);
            let wait = tat - tau - now;
            if wait > 0 {
                return Permit::Wait(Duration::from_micros(wait as u64));
            }
            if ask == PermitAsk::Take {
                s.rate_tat_us = tat + interval;
            }
            Permit::Granted
        }))
    }
}
