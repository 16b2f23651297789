//! The ledger in Redis. Its keys carry the hash tag of its events queue `l` (`payments`), so a
//! confirmation and the event it queues are one script in one slot. Each script has exactly
//! one wrapper here; a reply it does not know is `Corrupt`.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:{l}:payment:r:<reference>` | hash | a payment record |
//! | `p:{l}:payment:pending` | zset | reference -> creation time, of pending payments |
//! | `p:{l}:payment:ask:<provider>` | zset | reference -> when it is next asked about (ms), of a provider's pending payments; settled ones leave it when next met; pending payments older than the schedules join it when its reconciler starts (`payment_adopt.lua`) |
//! | `p:{l}:payment:ix:s:<status>` | zset | reference -> last update (ms), of payments in that status; `duplicate` holds paid payments that were paid again (they stay under `paid` too) |
//! | `p:{l}:payment:ix:h:<MaHoSo>` | zset | reference -> last update, of a dossier's payments |
//! | `p:{l}:payment:ix:all` | zset | reference -> last update, of every payment |
//! | `p:{l}:payment:hist:<reference>` | list | the payment's history, JSON `{at, event, detail}`, oldest first, at most 50 (`lib/payment_index.lua`) |
//! | `p:{l}:payment:tx:<kind>:<provider>:<id>` | string | an applied provider transaction (`paid`), failure (`failed`, `<id>` = `<reference>:<answer>`) or reversal (`reversal`), with its outcome |
//!
//! `payment:` is a family no queue key begins with (`m:`, `k:`, `due`, …, see `queue::redis`),
//! and `payment:r:` one no other ledger key begins with, so no reference, whatever its text,
//! names the pending index, a marker or a message.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::{
    ConfirmOutcome, Confirmation, ExpireOutcome, HistoryEntry, PaymentEvents, PaymentFilter, PaymentRecord, PaymentState, Reversal,
    ReverseOutcome, index_name,
};
use crate::storage::queue::redis::QueueKeys;
use crate::storage::redis::{corrupt, one_of_two, reply};
use crate::storage::{Millis, NewMessage, RedisStore, StorageError};
use hcc_adapters::payments::Handoff;

static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/lib/payment_index.lua"),
        include_str!("../lua/payment_create.lua")
    ))
});
static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/lib/payment_index.lua"),
        include_str!("../lua/payment_expire.lua")
    ))
});
static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/payment_adopt.lua")));
static SET_HANDOFF: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/payment_set_handoff.lua")));
static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/lib/push.lua"),
        include_str!("../lua/lib/payment_index.lua"),
        include_str!("../lua/payment_confirm.lua")
    ))
});
static REVERSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../lua/lib/push.lua"),
        include_str!("../lua/lib/payment_index.lua"),
        include_str!("../lua/payment_reverse.lua")
    ))
});

#[derive(Clone)]
pub struct RedisLedger {
    store: RedisStore,
    /// The events queue's keys; the ledger's own are under the same base.
    events: std::sync::Arc<QueueKeys>,
}

/// A payment record's key.
fn record_key(base: &str, reference: &str) -> String {
    format!("{base}payment:r:{reference}")
}

/// The index of pending payments (zset: reference -> creation time).
fn pending_key(base: &str) -> String {
    format!("{base}payment:pending")
}

/// A provider's ask schedule (zset: reference -> when it is next asked about).
fn ask_key(base: &str, provider: &str) -> String {
    format!("{base}payment:ask:{provider}")
}

/// An applied provider transaction or reversal; `marker` begins with its kind (`paid:`,
/// `failed:`, `reversal:`), see [`Confirmation::transaction_key`] and [`Reversal::marker`].
fn marker_key(base: &str, marker: &str) -> String {
    format!("{base}payment:tx:{marker}")
}

/// `payment_confirm.lua`'s answer.
fn confirm_outcome(s: &str) -> Result<ConfirmOutcome, StorageError> {
    let unknown = || corrupt(format_args!("payment confirmation reply {s:?}"));
    let state = |x: &str| PaymentState::parse(x).ok_or_else(unknown);
    Ok(match s {
        "unknown" => ConfirmOutcome::Unknown,
        "paid" => ConfirmOutcome::Paid,
        "paid_late" => ConfirmOutcome::PaidLate,
        "failed" => ConfirmOutcome::Failed,
        "amount_mismatch" => ConfirmOutcome::AmountMismatch,
        "paid_twice" => ConfirmOutcome::PaidTwice,
        "stale" => ConfirmOutcome::Stale,
        "duplicate:paid_twice" => ConfirmOutcome::Duplicate(PaymentState::Paid),
        _ => match (s.strip_prefix("duplicate:"), s.strip_prefix("already:")) {
            (Some(before), _) => ConfirmOutcome::Duplicate(state(before)?),
            (_, Some(now)) => ConfirmOutcome::AlreadySettled(state(now)?),
            _ => return Err(unknown()),
        },
    })
}

/// `payment_reverse.lua`'s answer.
fn reverse_outcome(s: &str) -> Result<ReverseOutcome, StorageError> {
    Ok(match s {
        "unknown" => ReverseOutcome::Unknown,
        "reversed" => ReverseOutcome::Reversed,
        "duplicate" => ReverseOutcome::Duplicate,
        "not_paid" => ReverseOutcome::NotPaid,
        "other_provider" => ReverseOutcome::Mismatch("another route paid it"),
        "other_amount" => ReverseOutcome::Mismatch("another amount was paid"),
        "other_transaction" => ReverseOutcome::Mismatch("it names another transaction"),
        _ => return Err(corrupt(format_args!("payment reversal reply {s:?}"))),
    })
}

fn num<T: std::str::FromStr>(v: String, field: &str) -> Result<T, StorageError> {
    v.parse().map_err(|_| corrupt(format_args!("payment {field} {v:?}")))
}

/// A payment record from its stored hash: a missing or unparsable field is corrupt, never a
/// default.
fn record_from(reference: &str, mut map: HashMap<String, String>) -> Result<PaymentRecord, StorageError> {
    let mut take = |k: &str| map.remove(k);
    let required = |v: Option<String>, k: &str| v.ok_or_else(|| corrupt(format_args!("payment {k} missing")));
    let status = required(take("state"), "state")?;
    Ok(PaymentRecord {
        reference: reference.to_string(),
        ma_ho_so: required(take("mahoso"), "mahoso")?,
        amount: num(required(take("amount"), "amount")?, "amount")?,
        provider: required(take("provider"), "provider")?,
        status: PaymentState::parse(&status).ok_or_else(|| corrupt(format_args!("payment state {status:?}")))?,
        payment_url: required(take("url"), "url")?,
        agency: required(take("agency"), "agency")?,
        fees_json: required(take("fees"), "fees")?,
        created_at: num(required(take("created"), "created")?, "created")?,
        provider_created: required(take("pcreated"), "pcreated")?,
        provider_transaction: take("txn"),
        provider_time: take("ptime"),
        confirmed_by: take("by"),
        settled_at: take("settled").map(|v| num(v, "settled")).transpose()?,
        // Written by the first duplicate only: absent is none.
        duplicates: take("duplicates").map_or(Ok(0), |v| num(v, "duplicates"))?,
        // Payments from before the indexes have none: their creation is their last update.
        updated_at: take("updated").map(|v| num(v, "updated")).transpose()?,
        bank_refs: take("brefs"),
        qr_payload: take("qr"),
        // Payments from before lifetimes were kept have none (written as 0).
        expires_at: take("expires").map(|v| num(v, "expires")).transpose()?.filter(|&t| t > 0),
    })
}

impl RedisLedger {
    pub(super) fn new(store: RedisStore, events_queue: &str) -> Self {
        let events = std::sync::Arc::new(QueueKeys::new(&store, events_queue));
        RedisLedger { store, events }
    }

    pub(super) fn base(&self) -> &str {
        &self.events.base
    }

    pub(super) fn store(&self) -> &RedisStore {
        &self.store
    }

    /// `payment_create.lua`.
    pub async fn create(&self, p: &PaymentRecord, first_ask: Millis) -> Result<bool, StorageError> {
        let mut inv = CREATE.key(record_key(self.base(), &p.reference));
        inv.key(pending_key(self.base()))
            .key(ask_key(self.base(), &p.provider))
            .arg(&p.reference)
            .arg(&p.ma_ho_so)
            .arg(p.amount)
            .arg(&p.provider)
            .arg(&p.agency)
            .arg(&p.fees_json)
            .arg(&p.payment_url)
            .arg(p.created_at)
            .arg(&p.provider_created)
            .arg(first_ask)
            .arg(p.expires_at.unwrap_or(0));
        one_of_two(&self.store.run(&inv).await?, "payment creation reply", "created", "exists")
    }

    /// `payment_set_handoff.lua`.
    pub async fn set_handoff(&self, reference: &str, handoff: &Handoff) -> Result<(), StorageError> {
        let mut inv = SET_HANDOFF.key(record_key(self.base(), reference));
        match handoff {
            Handoff::Url(url) => inv.arg("url").arg(url),
            Handoff::Qr(payload) => inv.arg("qr").arg(payload),
        };
        let answer: String = reply(&self.store.run(&inv).await?, "payment handoff reply")?;
        match answer.as_str() {
            "set" | "unknown" => Ok(()),
            other => Err(corrupt(format_args!("payment handoff reply {other:?}"))),
        }
    }

    pub async fn get(&self, reference: &str) -> Result<Option<PaymentRecord>, StorageError> {
        let map: HashMap<String, String> = self
            .store
            .cmd(redis::cmd("HGETALL").arg(record_key(self.base(), reference)))
            .await?;
        if map.is_empty() {
            return Ok(None);
        }
        record_from(reference, map).map(Some)
    }

    /// `payment_confirm.lua`; `standing` is the transaction the caller saw standing, `ev`
    /// the confirmed and the duplicate event, one of which may be queued.
    pub async fn confirm(&self, c: &Confirmation, standing: &str, ev: &PaymentEvents, now: Millis) -> Result<ConfirmOutcome, StorageError> {
        let id = uuid::Uuid::now_v7().to_string();
        let q = &self.events;
        let mut inv = CONFIRM.key(record_key(self.base(), &c.reference));
        inv.key(marker_key(self.base(), &c.transaction_key()))
            .key(pending_key(self.base()))
            .key(q.message(&id))
            .key(q.ordering_key(&ev.ordering_key))
            .key(q.named("due"))
            .key(q.named("stats"))
            .arg(&c.reference)
            .arg(&c.transaction)
            .arg(c.amount)
            .arg(if c.paid { "1" } else { "0" })
            .arg(&c.provider_time)
            .arg(now)
            .arg(&id)
            .arg(&ev.ordering_key)
            .arg(&c.provider)
            .arg(standing)
            .arg(&ev.confirmed.kind)
            .arg(&ev.confirmed.payload)
            .arg(&ev.duplicate.kind)
            .arg(&ev.duplicate.payload)
            .arg(c.bank_refs.as_deref().unwrap_or(""))
            .arg(crate::telemetry::current_traceparent().unwrap_or_default());
        let answer: String = reply(&self.store.run_acknowledged(&inv, self.base()).await?, "payment confirmation reply")?;
        confirm_outcome(&answer)
    }

    /// `payment_reverse.lua`.
    pub async fn reverse(&self, r: &Reversal, event: &NewMessage, now: Millis) -> Result<ReverseOutcome, StorageError> {
        let id = uuid::Uuid::now_v7().to_string();
        let q = &self.events;
        let mut inv = REVERSE.key(record_key(self.base(), &r.reference));
        inv.key(marker_key(self.base(), &r.marker()))
            .key(q.message(&id))
            .key(q.ordering_key(&event.ordering_key))
            .key(q.named("due"))
            .key(q.named("stats"))
            .arg(&r.reference)
            .arg(&r.provider)
            .arg(r.amount)
            .arg(r.original_transaction.as_deref().unwrap_or(""))
            .arg(now)
            .arg(&id)
            .arg(&event.ordering_key)
            .arg(&event.kind)
            .arg(&event.payload)
            .arg(crate::telemetry::current_traceparent().unwrap_or_default());
        let answer: String = reply(&self.store.run_acknowledged(&inv, self.base()).await?, "payment reversal reply")?;
        reverse_outcome(&answer)
    }

    /// Newest first, from the one index the filter names (see [`index_name`]).
    pub async fn list_refs(&self, f: &PaymentFilter, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        let key = format!("{}payment:ix:{}", self.base(), index_name(f));
        self.newest_first(key, f.since.unwrap_or(0), offset, limit).await
    }

    /// Members of the zset `key` scored at or after `since`, highest score first, paged.
    pub(super) async fn newest_first(&self, key: String, since: Millis, offset: usize, limit: usize) -> Result<Vec<String>, StorageError> {
        self.store
            .cmd(
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg("+inf")
                    .arg(since)
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(offset)
                    .arg(limit),
            )
            .await
    }

    pub async fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        let rows: Vec<String> = self
            .store
            .cmd(
                redis::cmd("LRANGE")
                    .arg(format!("{}payment:hist:{reference}", self.base()))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(r).map_err(|_| corrupt("payment history entry"))?;
                let at = v["at"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| corrupt("payment history time"))?;
                Ok(HistoryEntry {
                    at,
                    event: v["event"].as_str().unwrap_or_default().to_string(),
                    detail: v["detail"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    pub async fn due(&self, provider: &str, now: Millis, limit: usize) -> Result<Vec<String>, StorageError> {
        self.store
            .cmd(
                redis::cmd("ZRANGE")
                    .arg(ask_key(self.base(), provider))
                    .arg("-inf")
                    .arg(now)
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await
    }

    pub async fn reschedule(&self, provider: &str, reference: &str, at: Millis) -> Result<(), StorageError> {
        let _: i64 = self
            .store
            .cmd(
                redis::cmd("ZADD")
                    .arg(ask_key(self.base(), provider))
                    .arg("XX")
                    .arg(at)
                    .arg(reference),
            )
            .await?;
        Ok(())
    }

    pub async fn unschedule(&self, provider: &str, reference: &str) -> Result<(), StorageError> {
        let _: i64 = self
            .store
            .cmd(redis::cmd("ZREM").arg(ask_key(self.base(), provider)).arg(reference))
            .await?;
        Ok(())
    }

    /// `payment_adopt.lua`, one page: (entries read, entries adopted).
    pub async fn adopt_page(
        &self,
        provider: &str,
        now: Millis,
        created_from: Millis,
        offset: usize,
        page: usize,
    ) -> Result<(usize, usize), StorageError> {
        let mut inv = ADOPT.key(pending_key(self.base()));
        inv.key(ask_key(self.base(), provider))
            .arg(provider)
            .arg(now)
            .arg(created_from)
            .arg(offset)
            .arg(page);
        let answer: Vec<usize> = reply(&self.store.run(&inv).await?, "payment adoption reply")?;
        match answer.as_slice() {
            [read, adopted] => Ok((*read, *adopted)),
            _ => Err(corrupt(format_args!("payment adoption reply {answer:?}"))),
        }
    }

    /// `payment_expire.lua`.
    pub async fn expire(&self, provider: &str, reference: &str, detail: &str, now: Millis) -> Result<ExpireOutcome, StorageError> {
        let mut inv = EXPIRE.key(record_key(self.base(), reference));
        inv.key(pending_key(self.base()))
            .key(ask_key(self.base(), provider))
            .arg(reference)
            .arg(now)
            .arg(detail);
        let answer: String = reply(&self.store.run_acknowledged(&inv, self.base()).await?, "payment expiry reply")?;
        match answer.as_str() {
            "unknown" => Ok(ExpireOutcome::Unknown),
            "expired" => Ok(ExpireOutcome::Expired),
            other => other
                .strip_prefix("already:")
                .and_then(PaymentState::parse)
                .map(ExpireOutcome::NotPending)
                .ok_or_else(|| corrupt(format_args!("payment expiry reply {other:?}"))),
        }
    }

    pub async fn pending(&self, from: Millis, to: Millis, limit: usize) -> Result<Vec<String>, StorageError> {
        self.store
            .cmd(
                redis::cmd("ZRANGE")
                    .arg(pending_key(self.base()))
                    .arg(from)
                    .arg(to)
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reference_names_another_key() {
        let base = "p:{payments}:";
        let fixed = ["due", "lease", "dead", "paused", "stats"].map(|k| format!("{base}{k}"));
        for reference in ["pending", "", ":pending", "../pending", "tx:paid:vnpay:1", "r:pending", "stats"] {
            let key = record_key(base, reference);
            assert_ne!(key, pending_key(base), "{reference:?}");
            assert!(!fixed.contains(&key), "{reference:?}");
            assert!(!key.starts_with(&format!("{base}payment:tx:")), "{reference:?}");
            assert!(!key.starts_with(&format!("{base}m:")) && !key.starts_with(&format!("{base}k:")));
        }
        assert!(!pending_key(base).starts_with(&format!("{base}payment:r:")));
        for provider in ["vnpay", "paygov"] {
            assert!(!ask_key(base, provider).starts_with(&format!("{base}payment:r:")));
            assert_ne!(ask_key(base, provider), pending_key(base));
        }
        assert!(!pending_key(base).starts_with(&format!("{base}payment:tx:")));
    }

    #[test]
    fn replies_the_wrappers_do_not_know_are_corrupt() {
        assert_eq!(
            confirm_outcome("duplicate:paid_twice").ok(),
            Some(ConfirmOutcome::Duplicate(PaymentState::Paid))
        );
        assert_eq!(
            confirm_outcome("already:reversed").ok(),
            Some(ConfirmOutcome::AlreadySettled(PaymentState::Reversed))
        );
        for bad in ["", "PAID", "duplicate:", "already:nonsense", "paid ", "1"] {
            assert!(matches!(confirm_outcome(bad), Err(StorageError::Corrupt(_))), "{bad:?}");
        }
        assert_eq!(confirm_outcome("paid_late").ok(), Some(ConfirmOutcome::PaidLate));
        assert_eq!(
            confirm_outcome("already:expired").ok(),
            Some(ConfirmOutcome::AlreadySettled(PaymentState::Expired))
        );
        assert!(matches!(reverse_outcome("reversed"), Ok(ReverseOutcome::Reversed)));
        assert!(matches!(reverse_outcome("0"), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn corrupt_stored_fields_are_errors_not_zero() {
        let good = || -> HashMap<String, String> {
            [
                ("state", "pending"),
                ("mahoso", "000.00.00.H00-241126-0001"),
                ("amount", "100000"),
                ("provider", "vnpay"),
                ("url", ""),
                ("agency", "000.00.00.H00"),
                ("fees", "[]"),
                ("created", "1732600000000"),
                ("pcreated", "20241126120000"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let r = record_from("R", good()).expect("a whole record");
        assert_eq!(
            (r.amount, r.created_at, r.duplicates, r.settled_at),
            (100_000, 1_732_600_000_000, 0, None)
        );
        for (field, value) in [
            ("amount", "abc"),
            ("amount", "-1"),
            ("amount", ""),
            ("created", "yesterday"),
            ("duplicates", "x"),
            ("settled", "soon"),
            ("state", "lost"),
        ] {
            let mut m = good();
            m.insert(field.into(), value.into());
            assert!(matches!(record_from("R", m), Err(StorageError::Corrupt(_))), "{field}={value:?}");
        }
        let mut m = good();
        m.remove("amount");
        assert!(matches!(record_from("R", m), Err(StorageError::Corrupt(_))), "missing amount");
    }
}
