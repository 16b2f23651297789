//! Reconciliation: asking each provider that can be asked about its pending payments, by its
//! schedule, because callbacks get lost; applying the answers by the same rules as a callback;
//! and expiring a payment whose lifetime and grace are over while the provider reports it
//! unpaid (for VietQR, while the bank has reported nothing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hcc_adapters::evidence::{self, Subject};
use hcc_adapters::payments::{Notice, PaymentProvider, PendingPayment};
use hcc_config::Problem;
use hcc_core::time::millis;
use tokio_util::sync::CancellationToken;

use super::{Payments, RECONCILE_BATCH};
use crate::redact::Escaped;
use crate::storage::ledger::{ExpireOutcome, PaymentRecord, PaymentState};
use crate::storage::{StorageError, now_ms};

/// A reconciling provider must still be asked when its payments' lifetime and the grace end,
/// or none of them could ever expire.
pub(super) fn schedule_problems(providers: &HashMap<&'static str, Arc<dyn PaymentProvider>>, grace: Duration) -> Vec<Problem> {
    let mut ids: Vec<&&'static str> = providers.keys().collect();
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| {
            let schedule = providers[*id].reconciler()?.schedule();
            (schedule.max_age < schedule.expires_at(grace)).then(|| Problem {
                key: format!("{id}.reconcile_max_age_secs"),
                message: format!(
                    "must be at least the payment lifetime plus payments.expire_grace_minutes ({} s), or no payment could expire",
                    schedule.expires_at(grace).as_secs()
                ),
            })
        })
        .collect()
}

impl Payments {
    /// Asks one provider about its payments that are due in its schedule, the longest due
    /// first, at most [`RECONCILE_BATCH`], and applies the answers by the same rules, because
    /// callbacks get lost. Each payment asked moves on in its schedule
    /// ([`hcc_adapters::payments::Schedule::next_ask`]), so the newest are never starved by old
    /// ones. A payment whose lifetime and grace are over and which the provider reports unpaid
    /// becomes `expired`; one past `reconcile_max_age_secs` is no longer asked. Returns how
    /// many answers changed or ended a payment.
    pub async fn reconcile_once(&self, id: &str) -> Result<usize, StorageError> {
        let Some(reconciler) = self.providers.get(id).and_then(|p| p.reconciler()) else {
            return Ok(0);
        };
        let schedule = reconciler.schedule();
        let started = std::time::Instant::now();
        // A round ends with its batch or its time, whichever comes first; the rest wait for
        // the next round, still first in line.
        let budget = schedule.every.max(Duration::from_secs(30));
        let due = self.ledger.due(id, now_ms(), RECONCILE_BATCH).await?;
        let mut applied = 0;
        for reference in due {
            if started.elapsed() > budget {
                break;
            }
            let record = match self.get(&reference).await? {
                Some(r) if r.provider == id && r.status == PaymentState::Pending => r,
                // Settled (or not this provider's): it leaves the schedule.
                _ => {
                    self.ledger.unschedule(id, &reference).await?;
                    continue;
                }
            };
            let pending = PendingPayment {
                reference: record.reference.clone(),
                amount: record.amount,
                provider_created: record.provider_created.clone(),
            };
            let (answer, noted) = evidence::scope(
                self.evidence.as_ref(),
                Subject::payment(&record.reference),
                reconciler.query(&pending),
            )
            .await;
            noted.settle(match &answer {
                Some(Notice::Settled(s)) if s.paid => "paid",
                Some(Notice::Settled(_)) => "failed",
                Some(_) => "not paid yet",
                None => "no answer",
            });
            let now = now_ms();
            let age = Duration::from_millis(u64::try_from(now.saturating_sub(record.created_at)).unwrap_or(0));
            match &answer {
                Some(n @ Notice::Settled(_)) => {
                    self.apply(n).await?;
                    applied += 1;
                    if self.get(&reference).await?.is_some_and(|r| r.status != PaymentState::Pending) {
                        self.ledger.unschedule(id, &reference).await?;
                        continue;
                    }
                }
                Some(Notice::Undecided { .. }) if schedule.is_over(self.grace, age) => {
                    if self.expire(id, &record, age).await? {
                        applied += 1;
                    }
                    continue;
                }
                _ => {}
            }
            match schedule.next_ask(self.grace, age) {
                Some(next) => {
                    let at = record.created_at.saturating_add(millis(next));
                    self.ledger.reschedule(id, &reference, at).await?;
                }
                None => {
                    // Past the maximum age and never reported unpaid after its lifetime (the
                    // provider could not be reached or gave no trustworthy answer): it stays
                    // pending for a person, and is no longer asked.
                    tracing::warn!(alarm = true, provider = id, reference = %Escaped(&reference), "a pending payment reached reconcile_max_age_secs without a final answer: no longer asked, a person must look at it");
                    self.monitoring.audit(
                        &format!("provider:{id}"),
                        "payment.reconcile_gave_up",
                        &reference,
                        "no final answer from the provider before reconcile_max_age_secs; still pending",
                    );
                    self.ledger.unschedule(id, &reference).await?;
                }
            }
        }
        Ok(applied)
    }

    /// Ends a payment the provider reports unpaid past its lifetime and the grace.
    async fn expire(&self, id: &str, record: &PaymentRecord, age: Duration) -> Result<bool, StorageError> {
        let detail = format!(
            "{id} reports it unpaid {} min after creation, past its lifetime and grace",
            age.as_secs() / 60
        );
        let outcome = self.ledger.expire(id, &record.reference, &detail, now_ms()).await?;
        if outcome != ExpireOutcome::Expired {
            return Ok(false);
        }
        tracing::info!(audit = true, provider = id, reference = %Escaped(&record.reference), "payment expired: its lifetime and the grace are over and the provider reports it unpaid");
        self.monitoring.payment_state(id, "expired");
        self.monitoring
            .audit(&format!("provider:{id}"), "payment.expired", &record.reference, &detail);
        Ok(true)
    }
}

/// The periodic reconciliation job of one provider; stops with `stop`.
pub async fn reconcile_loop(payments: Arc<Payments>, id: &'static str, stop: CancellationToken) {
    let Some(schedule) = payments.provider(id).and_then(|p| p.reconciler()).map(|r| r.schedule()) else {
        return;
    };
    let every = schedule.every;
    // Pending payments made before the ask schedules existed join this one, due now; those past
    // the maximum age are left alone, as the reconciler leaves them.
    let now = now_ms();
    let from = now.saturating_sub(millis(schedule.max_age));
    match payments.ledger.adopt_pending(id, now, from).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(provider = id, adopted = n, "pending payments joined the reconciliation schedule"),
        Err(e) => payments
            .monitoring
            .outages()
            .redis()
            .store_failed(&e, "pending payments could not join the reconciliation schedule"),
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let redis = payments.monitoring.outages().redis();
        let asked = std::time::Instant::now();
        match payments.reconcile_once(id).await {
            Ok(0) => redis.ok_since(asked),
            Ok(n) => {
                redis.ok_since(asked);
                tracing::info!(provider = id, applied = n, "reconciliation applied provider answers")
            }
            Err(e) => redis.store_failed(&e, "reconciliation cannot reach the queue"),
        }
    }
}
