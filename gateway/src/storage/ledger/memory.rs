//! The ledger in the embedded store: the same matching rules as the Redis scripts
//! (`payment_confirm.lua`, `payment_reverse.lua`, `payment_expire.lua`), step for step, under the store's one mutex,
//! which also holds the events queue the rules write to. The circle with `storage::memory` is
//! deliberate: one mutex mirrors one Redis script (see there).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{
    ConfirmOutcome, Confirmation, ExpireOutcome, HistoryEntry, PaymentEvents, PaymentFilter, PaymentRecord, PaymentState, Reversal,
    ReverseOutcome, index_name,
};
use crate::storage::memory::MemoryState;
use crate::storage::queue::memory::QueueState;
use crate::storage::{MemoryStore, Millis, NewMessage, StorageError};
use hcc_adapters::payments::Handoff;

/// One ledger's state.
#[derive(Default)]
pub(in crate::storage) struct LedgerState {
    pub(super) payments: HashMap<String, PaymentRecord>,
    /// Applied provider transactions and reversals, by their marker, with what they did.
    applied: HashMap<String, Applied>,
    /// The list indexes by name (`s:<status>`, `h:<MaHoSo>`, `all`), as the Redis zsets.
    indexes: HashMap<String, ZSet>,
    history: HashMap<String, Vec<HistoryEntry>>,
    /// Bank money that matched nothing (`super::unmatched`).
    pub(super) unmatched: super::unmatched::UnmatchedBook,
    /// Each provider's ask schedule (reference -> when it is next asked about), as
    /// `payment:ask:<provider>`.
    asks: HashMap<String, ZSet>,
}

/// The same bound as `lib/payment_index.lua`.
const HISTORY_CAP: usize = 50;

/// A sorted set: member -> score, ordered by (score, member).
#[derive(Default)]
pub(super) struct ZSet {
    order: BTreeSet<(Millis, String)>,
    score: HashMap<String, Millis>,
}

impl ZSet {
    pub(super) fn add(&mut self, member: &str, at: Millis) {
        if let Some(old) = self.score.insert(member.to_string(), at) {
            self.order.remove(&(old, member.to_string()));
        }
        self.order.insert((at, member.to_string()));
    }

    pub(super) fn remove(&mut self, member: &str) {
        if let Some(old) = self.score.remove(member) {
            self.order.remove(&(old, member.to_string()));
        }
    }

    /// Members scored at or after `since`, highest score first, paged.
    pub(super) fn newest_first(&self, since: Millis, offset: usize, limit: usize) -> Vec<String> {
        self.order
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since)
            .skip(offset)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl LedgerState {
    /// As `payment_index` of `lib/payment_index.lua`.
    fn index(&mut self, reference: &str, old: Option<&str>, new: &str, now: Millis) {
        let ma = self.payments.get(reference).map(|p| p.ma_ho_so.clone()).unwrap_or_default();
        if let Some(o) = old.filter(|o| *o != new) {
            self.indexes.entry(format!("s:{o}")).or_default().remove(reference);
        }
        for name in [format!("s:{new}"), "all".to_string(), format!("h:{ma}")] {
            self.indexes.entry(name).or_default().add(reference, now);
        }
        if let Some(p) = self.payments.get_mut(reference) {
            p.updated_at = Some(now);
        }
    }

    /// As `payment_note`.
    fn note(&mut self, reference: &str, now: Millis, event: &str, detail: String) {
        let h = self.history.entry(reference.to_string()).or_default();
        let entry = HistoryEntry {
            at: now,
            event: event.to_string(),
            detail,
        };
        if h.len() >= HISTORY_CAP {
            if let Some(last) = h.last_mut() {
                *last = entry;
            }
        } else {
            h.push(entry);
        }
    }
}

/// What an applied transaction did: the answer a repeat of it gets.
#[derive(Clone, Copy)]
enum Applied {
    Settled(PaymentState),
    PaidTwice,
    Reversed,
}

#[derive(Clone)]
pub struct MemoryLedger {
    store: MemoryStore,
    events: Arc<str>,
}

impl MemoryLedger {
    pub(super) fn new(store: MemoryStore, events_queue: &str) -> Self {
        MemoryLedger {
            store,
            events: events_queue.into(),
        }
    }

    /// Runs `f` on the ledger and its events queue, as one step.
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut LedgerState, &mut QueueState) -> T) -> T {
        let mut guard = self.store.lock();
        let MemoryState { queues, ledgers, .. } = &mut *guard;
        let ledger = ledgers.entry(self.events.to_string()).or_default();
        let queue = queues.entry(self.events.to_string()).or_default();
        f(ledger, queue)
    }

    pub async fn create(&self, p: &PaymentRecord, first_ask: Millis) -> Result<bool, StorageError> {
        Ok(self.with(|l, _| {
            if l.payments.contains_key(&p.reference) {
                return false;
            }
            l.payments.insert(p.reference.clone(), p.clone());
            l.asks.entry(p.provider.clone()).or_default().add(&p.reference, first_ask);
            l.index(&p.reference, None, "pending", p.created_at);
            l.note(&p.reference, p.created_at, "created", format!("{}, {} VND", p.provider, p.amount));
            true
        }))
    }

    pub async fn set_handoff(&self, reference: &str, handoff: &Handoff) -> Result<(), StorageError> {
        self.with(|l, _| {
            if let Some(p) = l.payments.get_mut(reference) {
                match handoff {
                    Handoff::Url(url) => p.payment_url = url.clone(),
                    Handoff::Qr(payload) => p.qr_payload = Some(payload.clone()),
                }
            }
        });
        Ok(())
    }

    pub async fn get(&self, reference: &str) -> Result<Option<PaymentRecord>, StorageError> {
        Ok(self.with(|l, _| l.payments.get(reference).cloned()))
    }

    pub async fn confirm(&self, c: &Confirmation, standing: &str, ev: &PaymentEvents, now: Millis) -> Result<ConfirmOutcome, StorageError> {
        Ok(self.with(|l, q| {
            let marker = c.transaction_key();
            let Some(p) = l.payments.get_mut(&c.reference) else {
                return ConfirmOutcome::Unknown;
            };
            match l.applied.get(&marker) {
                Some(Applied::Settled(s)) => return ConfirmOutcome::Duplicate(*s),
                Some(Applied::PaidTwice) => return ConfirmOutcome::Duplicate(PaymentState::Paid),
                // A reversal's marker never equals a confirmation's (`Reversal::marker`).
                Some(Applied::Reversed) => return ConfirmOutcome::Duplicate(PaymentState::Reversed),
                None => {}
            }
            if p.status == PaymentState::Paid && c.paid {
                if p.provider_transaction.as_deref().unwrap_or("") != standing {
                    return ConfirmOutcome::Stale;
                }
                p.duplicates += 1;
                l.applied.insert(marker, Applied::PaidTwice);
                q.push(uuid::Uuid::now_v7().to_string(), ev.duplicate.clone(), now);
                l.index(&c.reference, None, "duplicate", now);
                l.note(
                    &c.reference,
                    now,
                    "duplicate",
                    format!("{} transaction {}, {} VND", c.provider, c.transaction, c.amount),
                );
                l.note(&c.reference, now, "webhook_queued", ev.duplicate.kind.clone());
                return ConfirmOutcome::PaidTwice;
            }
            // A provider's later word that money arrived outranks its earlier failure, and an
            // expiry.
            let reopens = matches!(p.status, PaymentState::Failed | PaymentState::Expired) && c.paid;
            if p.status != PaymentState::Pending && !reopens {
                return ConfirmOutcome::AlreadySettled(p.status);
            }
            let (state, outcome) = if !c.paid {
                (PaymentState::Failed, ConfirmOutcome::Failed)
            } else if p.amount != c.amount {
                (PaymentState::AmountMismatch, ConfirmOutcome::AmountMismatch)
            } else {
                (PaymentState::Paid, ConfirmOutcome::Paid)
            };
            let old = p.status;
            p.status = state;
            p.provider_transaction = Some(c.transaction.clone());
            p.provider_time = Some(c.provider_time.clone());
            p.confirmed_by = Some(c.provider.clone());
            p.settled_at = Some(now);
            p.bank_refs = c.bank_refs.clone();
            l.applied.insert(marker, Applied::Settled(state));
            l.index(&c.reference, Some(old.as_str()), state.as_str(), now);
            let late = if old == PaymentState::Expired { ", after it expired" } else { "" };
            l.note(
                &c.reference,
                now,
                state.as_str(),
                format!("{} transaction {}, {} VND{late}", c.provider, c.transaction, c.amount),
            );
            if state == PaymentState::Paid {
                q.push(uuid::Uuid::now_v7().to_string(), ev.confirmed.clone(), now);
                l.note(&c.reference, now, "webhook_queued", ev.confirmed.kind.clone());
                if old == PaymentState::Expired {
                    return ConfirmOutcome::PaidLate;
                }
            }
            outcome
        }))
    }

    pub async fn reverse(&self, r: &Reversal, event: &NewMessage, now: Millis) -> Result<ReverseOutcome, StorageError> {
        Ok(self.with(|l, q| {
            let marker = r.marker();
            let Some(p) = l.payments.get_mut(&r.reference) else {
                return ReverseOutcome::Unknown;
            };
            if l.applied.contains_key(&marker) {
                return ReverseOutcome::Duplicate;
            }
            if p.status != PaymentState::Paid {
                return ReverseOutcome::NotPaid;
            }
            if p.confirmed_by.as_deref() != Some(r.provider.as_str()) {
                return ReverseOutcome::Mismatch("another route paid it");
            }
            if p.amount != r.amount {
                return ReverseOutcome::Mismatch("another amount was paid");
            }
            if let Some(t) = &r.original_transaction
                && p.provider_transaction.as_ref() != Some(t)
            {
                return ReverseOutcome::Mismatch("it names another transaction");
            }
            p.status = PaymentState::Reversed;
            l.applied.insert(marker, Applied::Reversed);
            q.push(uuid::Uuid::now_v7().to_string(), event.clone(), now);
            l.index(&r.reference, Some("paid"), "reversed", now);
            l.note(&r.reference, now, "reversed", format!("{}, {} VND", r.provider, r.amount));
            l.note(&r.reference, now, "webhook_queued", event.kind.clone());
            ReverseOutcome::Reversed
        }))
    }

    pub async fn list_refs(&self, f: &PaymentFilter, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self.with(|l, _| {
            l.indexes
                .get(&index_name(f))
                .map(|ix| ix.newest_first(f.since.unwrap_or(0), offset, limit))
                .unwrap_or_default()
        }))
    }

    pub async fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        Ok(self.with(|l, _| l.history.get(reference).cloned().unwrap_or_default()))
    }

    pub async fn due(&self, provider: &str, now: Millis, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self.with(|l, _| {
            l.asks.get(provider).map_or_else(Vec::new, |z| {
                z.order
                    .iter()
                    .take_while(|(at, _)| *at <= now)
                    .take(limit)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
        }))
    }

    pub async fn reschedule(&self, provider: &str, reference: &str, at: Millis) -> Result<(), StorageError> {
        self.with(|l, _| {
            // As ZADD XX: only a payment still in the schedule moves.
            if let Some(z) = l.asks.get_mut(provider)
                && z.score.contains_key(reference)
            {
                z.add(reference, at);
            }
        });
        Ok(())
    }

    pub async fn unschedule(&self, provider: &str, reference: &str) -> Result<(), StorageError> {
        self.with(|l, _| {
            if let Some(z) = l.asks.get_mut(provider) {
                z.remove(reference);
            }
        });
        Ok(())
    }

    pub async fn adopt_page(
        &self,
        provider: &str,
        now: Millis,
        created_from: Millis,
        offset: usize,
        page: usize,
    ) -> Result<(usize, usize), StorageError> {
        Ok(self.with(|l, _| {
            // The pending index, as `payment:pending`: by creation time, then reference.
            let mut pending: Vec<(Millis, &PaymentRecord)> = l
                .payments
                .values()
                .filter(|p| p.status == PaymentState::Pending && p.created_at >= created_from)
                .map(|p| (p.created_at, p))
                .collect();
            pending.sort_by(|a, b| (a.0, &a.1.reference).cmp(&(b.0, &b.1.reference)));
            let read: Vec<(String, String)> = pending
                .into_iter()
                .skip(offset)
                .take(page)
                .map(|(_, p)| (p.reference.clone(), p.provider.clone()))
                .collect();
            let asks = l.asks.entry(provider.to_string()).or_default();
            let mut adopted = 0;
            for (reference, owner) in &read {
                if owner == provider && !asks.score.contains_key(reference) {
                    asks.add(reference, now);
                    adopted += 1;
                }
            }
            (read.len(), adopted)
        }))
    }

    pub async fn expire(&self, provider: &str, reference: &str, detail: &str, now: Millis) -> Result<ExpireOutcome, StorageError> {
        Ok(self.with(|l, _| {
            if let Some(z) = l.asks.get_mut(provider) {
                z.remove(reference);
            }
            let Some(p) = l.payments.get_mut(reference) else {
                return ExpireOutcome::Unknown;
            };
            if p.status != PaymentState::Pending {
                return ExpireOutcome::NotPending(p.status);
            }
            p.status = PaymentState::Expired;
            l.index(reference, Some("pending"), "expired", now);
            l.note(reference, now, "expired", detail.to_string());
            ExpireOutcome::Expired
        }))
    }

    pub async fn pending(&self, from: Millis, to: Millis, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self.with(|l, _| {
            let mut v: Vec<(Millis, String)> = l
                .payments
                .values()
                .filter(|p| p.status == PaymentState::Pending && p.created_at >= from && p.created_at <= to)
                .map(|p| (p.created_at, p.reference.clone()))
                .collect();
            v.sort();
            v.into_iter().take(limit).map(|(_, r)| r).collect()
        }))
    }
}
