//! Pending payments past their lifetime, for `hcc_payments_pending_overdue{provider}`: those
//! reconciliation should have settled or expired by now (their provider's lifetime,
//! `payments.expire_grace_minutes` and a slack of two reconciliation rounds are over: a payment
//! is asked the moment its lifetime and the grace end, so normally it is expired within a
//! round and never counted) and still works on (created within the provider's
//! `reconcile_max_age_secs`). A payment older than that was given up with an alarm line and an
//! audit entry and is not counted; a provider that cannot be asked (VNPAY without `querydr`)
//! expires nothing by design and is not counted either.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::PaymentLedger;
use super::memory::MemoryLedger;
use super::redis::RedisLedger;
use crate::storage::redis::{corrupt, counter, reply, text};
use crate::storage::{Millis, StorageError, dispatch};
use hcc_adapters::payments::State as PaymentState;

static OVERDUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/payment_overdue.lua")));

/// The most pending payments one count reads (see `payment_overdue.lua`): past it the count is
/// a lower bound, which still fires any alert on it.
pub const MAX_OVERDUE_SCANNED: usize = 10_000;

/// What makes a reconciling provider's pending payment overdue.
#[derive(Debug, Clone)]
pub struct OverdueTerms {
    /// The provider's id.
    pub provider: &'static str,
    /// Its payments' lifetime (`*.expire_minutes`).
    pub lifetime: Duration,
    /// How long reconciliation asks about a payment (`*.reconcile_max_age_secs`).
    pub max_age: Duration,
    /// How long after the lifetime and the grace a payment may still wait for its round.
    pub slack: Duration,
}

fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl PaymentLedger {
    /// How many payments of each of `terms`' providers are overdue at `now`, with `grace`
    /// after every lifetime. Every provider of `terms` is in the answer.
    pub async fn pending_overdue(
        &self,
        terms: &[OverdueTerms],
        grace: Duration,
        now: Millis,
    ) -> Result<HashMap<String, u64>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.pending_overdue(terms, grace, now).await)
    }
}

impl RedisLedger {
    pub async fn pending_overdue(
        &self,
        terms: &[OverdueTerms],
        grace: Duration,
        now: Millis,
    ) -> Result<HashMap<String, u64>, StorageError> {
        let mut inv = OVERDUE.key(format!("{}payment:pending", self.base()));
        inv.arg(self.base()).arg(now).arg(ms(grace)).arg(MAX_OVERDUE_SCANNED);
        for t in terms {
            inv.arg(t.provider).arg(ms(t.lifetime)).arg(ms(t.max_age)).arg(ms(t.slack));
        }
        let flat: Vec<Value> = reply(&self.store().run(&inv).await?, "overdue payments reply")?;
        let mut out = HashMap::new();
        for pair in flat.chunks(2) {
            let [provider, n] = pair else {
                return Err(corrupt("overdue payments reply: an odd number of elements"));
            };
            out.insert(text(provider, "overdue provider")?, counter(n, "overdue count")?);
        }
        Ok(out)
    }
}

impl MemoryLedger {
    /// A walk over every payment: the memory backend is for the demo and development.
    pub async fn pending_overdue(
        &self,
        terms: &[OverdueTerms],
        grace: Duration,
        now: Millis,
    ) -> Result<HashMap<String, u64>, StorageError> {
        Ok(self.with(|l, _| {
            let mut out: HashMap<String, u64> = terms.iter().map(|t| (t.provider.to_string(), 0)).collect();
            for p in l.payments.values().filter(|p| p.status == PaymentState::Pending) {
                let Some(t) = terms.iter().find(|t| t.provider == p.provider) else {
                    continue;
                };
                let ends = p.expires_at.unwrap_or_else(|| p.created_at.saturating_add(ms(t.lifetime)));
                if p.created_at >= now.saturating_sub(ms(t.max_age)) && ends.saturating_add(ms(grace)).saturating_add(ms(t.slack)) < now {
                    *out.entry(p.provider.clone()).or_insert(0) += 1;
                }
            }
            out
        }))
    }
}
