//! Non-cash fee payments: creating a payment with a provider, and applying providers' notices
//! by one set of matching rules whatever brought them (a callback of any provider, or
//! reconciliation). The providers are the registry's (`hcc_adapters::standard`), built from
//! their own settings sections by `Registry::build`; nothing here names one. The state lives in the
//! queue backend; the first valid confirmation marks the payment paid and queues one
//! `payment.confirmed` event for the centre in the same atomic step. Asking the providers about
//! pending payments, and expiring them, is [`reconcile`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hcc_adapters::domain::MaHoSo;
use hcc_adapters::evidence::{self, Direction, Exchange, Keep, Label, Recorder, Subject};
use hcc_adapters::payments::{
    Agency, AmountRule, Applied, CreateError, FeeLine, Handoff, Notice, Payer, PaymentOrder, PaymentProvider, PublicService, Settlement,
    State, is_reference, new_reference, vn_timestamp,
};
use hcc_config::{Problem, Settings};
use hcc_core::time::millis;
use serde_json::{Value, json};

mod reconcile;

pub use reconcile::reconcile_loop;
use reconcile::schedule_problems;

use crate::monitoring::Monitoring;
use crate::redact::Escaped;
use crate::storage::ledger::{ConfirmOutcome, Confirmation, PaymentEvents, PaymentRecord, PaymentState, Reversal, ReverseOutcome};
use crate::storage::{Millis, NewMessage, PaymentLedger, StorageError, now_ms};

/// The queue the ledger's events wait in for the centre's webhook destination; the ledger's
/// keys share its hash tag.
pub const EVENTS_QUEUE: &str = "payments";
/// At most this many due payments are asked about per provider per reconciliation round; the
/// longest due go first and each asked one moves back in its schedule, so none waits for ever.
pub(crate) const RECONCILE_BATCH: usize = 500;
/// `payments.expire_grace_minutes` when unset.
const DEFAULT_GRACE_MINUTES: u64 = 30;
/// The longest grace taken: a week.
const MAX_GRACE_MINUTES: u64 = 7 * 24 * 60;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("the {0} provider is not configured on this gateway")]
    NotConfigured(&'static str),
    #[error("the provider refused the payment: {0}")]
    Refused(String),
    #[error("the provider did not answer in time: {0}")]
    Unreachable(String),
    /// The store already holds a payment under the reference just drawn: nothing was created.
    #[error("the store already holds a payment with reference {0}")]
    ReferenceTaken(String),
    #[error(transparent)]
    Queue(#[from] StorageError),
    #[error(transparent)]
    Randomness(#[from] hcc_adapters::payments::RandomnessError),
}

impl From<CreateError> for PaymentError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Refused(m) => PaymentError::Refused(m),
            CreateError::Unreachable(m) => PaymentError::Unreachable(m),
        }
    }
}

/// A payment request, parsed at the edge: every field here is valid.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub ma_ho_so: MaHoSo,
    pub amount: u64,
    /// The id of a provider that creates payments (`Registry::creating`).
    pub provider: &'static str,
    /// The configured agency (`agencies.<id>`) the fee is paid to.
    pub agency: Agency,
    pub ma_tthc: String,
    pub ten_tthc: String,
    /// `MaDVC`/`TenDVC`; sent to the provider once, not kept in the record.
    pub service: PublicService,
    pub fees: Vec<FeeLine>,
    pub payer: Payer,
}

/// The `[payments]` section: what applies to every provider. The providers' own sections are
/// claimed by the registry.
pub const SECTION: &str = "payments";

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PaymentsSettings {
    /// After a provider's lifetime, how long a payment the provider reports unpaid stays
    /// pending before it is `expired` (money in flight when the page closed still arrives).
    expire_grace_minutes: u64,
}

impl Default for PaymentsSettings {
    fn default() -> Self {
        PaymentsSettings {
            expire_grace_minutes: DEFAULT_GRACE_MINUTES,
        }
    }
}

/// The `[payments]` section's grace, or what is wrong with it by key.
fn grace(s: &Settings) -> Result<Duration, Vec<Problem>> {
    let p: PaymentsSettings = hcc_adapters::payments::parse_section(s.section(SECTION))?;
    if p.expire_grace_minutes > MAX_GRACE_MINUTES {
        return Err(vec![Problem {
            key: "payments.expire_grace_minutes".into(),
            message: format!("must be at most {MAX_GRACE_MINUTES} (a week)"),
        }]);
    }
    Ok(Duration::from_secs(p.expire_grace_minutes * 60))
}

/// What `hcc-gateway config check` adds to the registry's checks of each provider's section:
/// the `[payments]` section, and the providers' schedules against it.
pub fn settings_problems(s: &Settings, providers: &HashMap<&'static str, Arc<dyn PaymentProvider>>) -> Vec<Problem> {
    match grace(s) {
        Ok(g) => schedule_problems(providers, g),
        Err(p) => p,
    }
}

pub struct Payments {
    pub(crate) ledger: PaymentLedger,
    providers: HashMap<&'static str, Arc<dyn PaymentProvider>>,
    pub(crate) agencies: Vec<Agency>,
    /// `banks.<id>.bin` by bank id, where configured (`crate::bank_money`).
    pub(crate) bank_bins: HashMap<String, String>,
    pub(crate) monitoring: Arc<Monitoring>,
    /// `payments.expire_grace_minutes`.
    grace: Duration,
    /// The evidence log: told of every call to a provider and of every URL or code issued.
    pub(crate) evidence: Option<Arc<dyn Recorder>>,
}

impl Payments {
    /// The payments of these settings with the providers the registry built from them, or
    /// `None` when no provider is configured.
    pub fn from_settings(
        s: &Settings,
        providers: HashMap<&'static str, Arc<dyn PaymentProvider>>,
        ledger: PaymentLedger,
        monitoring: Arc<Monitoring>,
    ) -> Result<Option<Self>, Vec<Problem>> {
        if providers.is_empty() {
            return Ok(None);
        }
        let grace = grace(s)?;
        let problems = schedule_problems(&providers, grace);
        if !problems.is_empty() {
            return Err(problems);
        }
        let agencies = Agency::all(s);
        let banks: hcc_adapters::payments::bank::BanksSettings =
            hcc_adapters::payments::parse_section(s.section(hcc_adapters::payments::bank::ID)).unwrap_or_default();
        let bank_bins = banks
            .into_iter()
            .filter(|(_, b)| !b.bin.is_empty())
            .map(|(id, b)| (id, b.bin))
            .collect();
        Ok(Some(Payments {
            ledger,
            providers,
            agencies,
            bank_bins,
            monitoring,
            grace,
            evidence: None,
        }))
    }

    /// The configured provider of this id.
    pub fn provider(&self, id: &str) -> Option<&Arc<dyn PaymentProvider>> {
        self.providers.get(id)
    }

    /// The ids of the configured providers that can be asked about a payment.
    pub fn reconciling(&self) -> Vec<&'static str> {
        let mut ids: Vec<&'static str> = self
            .providers
            .iter()
            .filter(|(_, p)| p.reconciler().is_some())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// What makes each reconciling provider's pending payment overdue
    /// (`hcc_payments_pending_overdue`), and the grace after every lifetime.
    pub fn overdue_terms(&self) -> (Vec<crate::storage::ledger::overdue::OverdueTerms>, Duration) {
        let terms = self
            .reconciling()
            .into_iter()
            .filter_map(|id| {
                let p = self.providers.get(id)?;
                let schedule = p.reconciler()?.schedule();
                Some(crate::storage::ledger::overdue::OverdueTerms {
                    provider: id,
                    lifetime: p.creator().map_or(schedule.lifetime, |c| c.lifetime()),
                    max_age: schedule.max_age,
                    // A round lasts up to its interval or 30 s (`reconcile_once`): the round
                    // due at the expiry moment, and one more.
                    slack: schedule.every.max(Duration::from_secs(30)).saturating_mul(2),
                })
            })
            .collect();
        (terms, self.grace)
    }

    /// The agency a request names by `MaDonVi`; with none named, the only one configured.
    pub fn agency(&self, ma_don_vi: Option<&str>) -> Result<&Agency, String> {
        match ma_don_vi {
            Some(m) => self
                .agencies
                .iter()
                .find(|a| a.ma_don_vi == m)
                .ok_or_else(|| "names no receiving agency configured on this gateway".to_string()),
            None => match self.agencies.as_slice() {
                [only] => Ok(only),
                [] => Err("no receiving agency is configured (agencies.<id>)".into()),
                _ => Err("is required: several receiving agencies are configured".into()),
            },
        }
    }

    /// The payment `reference` names. A value that is not of the gateway's reference shape
    /// names no payment and never reaches the store, whose key space holds more than payments.
    /// Payments by status, dossier and time of last change, newest first (the ledger's indexes).
    pub async fn list(
        &self,
        filter: &crate::storage::ledger::PaymentFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<PaymentRecord>, StorageError> {
        self.ledger.list(filter, offset, limit).await
    }

    /// A payment's history, oldest first.
    pub async fn history(&self, reference: &str) -> Result<Vec<crate::storage::ledger::HistoryEntry>, StorageError> {
        self.ledger.history(reference).await
    }

    pub async fn get(&self, reference: &str) -> Result<Option<PaymentRecord>, StorageError> {
        if !is_reference(reference) {
            return Ok(None);
        }
        self.ledger.get(reference).await
    }

    /// The payments telling `evidence` of every exchange with a provider.
    pub fn with_evidence(mut self, evidence: Option<Arc<dyn Recorder>>) -> Self {
        self.evidence = evidence;
        self
    }

    /// A payment URL (PayGov's page, VNPAY's signed URL) or a VietQR payload the gateway gave
    /// the citizen: kept whole in the evidence log, since it is what the citizen was asked to pay.
    fn record_handoff(&self, provider: &str, reference: &str, handoff: &Handoff) {
        let Some(r) = &self.evidence else { return };
        let (operation, issued) = match handoff {
            Handoff::Url(url) => ("payment URL", url.as_str()),
            Handoff::Qr(payload) => ("VietQR payload", payload.as_str()),
        };
        let label = Label::new(provider, operation).keep(Keep::Request);
        r.record(
            &Subject::payment(reference),
            Exchange::new(Direction::Out, &label, issued.as_bytes(), None),
            "issued",
        );
    }

    /// Creates a payment with its provider, synchronously. The record is stored (pending)
    /// before the provider hears of it, so a confirmation can never find it missing; a
    /// provider that refuses marks it failed.
    pub async fn create(&self, p: NewPayment) -> Result<PaymentRecord, PaymentError> {
        let creator = self
            .providers
            .get(p.provider)
            .and_then(|c| c.creator())
            .ok_or(PaymentError::NotConfigured(p.provider))?;
        let now = now_ms();
        let reference = new_reference(now / 1000)?;
        let timestamp = vn_timestamp(now / 1000);
        let description = format!("Thanh toan phi, le phi ho so {}", p.ma_ho_so);
        let fees_json = Value::Array(p.fees.iter().map(FeeLine::wire).collect()).to_string();
        let expires_at = now.saturating_add(millis(creator.lifetime()));
        let mut record = PaymentRecord {
            reference: reference.clone(),
            ma_ho_so: p.ma_ho_so.to_string(),
            amount: p.amount,
            provider: p.provider.into(),
            status: PaymentState::Pending,
            payment_url: String::new(),
            agency: p.agency.ma_don_vi.clone(),
            fees_json,
            created_at: now,
            provider_created: timestamp.clone(),
            provider_transaction: None,
            provider_time: None,
            confirmed_by: None,
            settled_at: None,
            duplicates: 0,
            updated_at: None,
            bank_refs: None,
            qr_payload: None,
            expires_at: Some(expires_at),
        };
        // First asked about by its provider's schedule; a provider that cannot be asked leaves
        // it due at creation, for the day it can.
        let first_ask = self
            .providers
            .get(p.provider)
            .and_then(|c| c.reconciler())
            .and_then(|r| r.schedule().next_ask(self.grace, Duration::ZERO))
            .map_or(now, |age| now.saturating_add(millis(age)));
        if !self.ledger.create_scheduled(&record, first_ask).await? {
            tracing::error!(alarm = true, reference = %reference, "a new payment reference is already taken: nothing created");
            return Err(PaymentError::ReferenceTaken(reference));
        }
        let order = PaymentOrder {
            reference: &reference,
            amount: p.amount,
            description: &description,
            created_unix: now / 1000,
            created: &timestamp,
            ma_ho_so: p.ma_ho_so.as_str(),
            ma_tthc: &p.ma_tthc,
            ten_tthc: &p.ten_tthc,
            service: &p.service,
            agency: &p.agency,
            fees: &p.fees,
            payer: &p.payer,
        };
        let (created, noted) = evidence::scope(self.evidence.as_ref(), Subject::payment(&reference), creator.create(&order)).await;
        noted.settle(match &created {
            Ok(_) => "created",
            Err(_) => "refused: the payment failed",
        });
        let handoff = match created {
            Ok(h) => {
                self.record_handoff(p.provider, &reference, &h);
                h
            }
            Err(e) => {
                let failed = Confirmation {
                    reference: reference.clone(),
                    provider: p.provider.into(),
                    transaction: format!("init:{reference}"),
                    amount: p.amount,
                    paid: false,
                    provider_time: timestamp.clone(),
                    bank_refs: None,
                };
                let events = events(&record, &failed, now_ms());
                if let Err(q) = self.ledger.confirm(&failed, "", &events, now_ms()).await {
                    tracing::error!(reference = %reference, error = %q, "a refused payment could not be marked failed; it stays pending until reconciled");
                }
                return Err(e.into());
            }
        };
        self.ledger.set_handoff(&reference, &handoff).await?;
        match handoff {
            Handoff::Url(url) => record.payment_url = url,
            Handoff::Qr(payload) => record.qr_payload = Some(payload),
        }
        self.monitoring.payment_state(&record.provider, "pending");
        self.monitoring.audit(
            "centre",
            "payment.create",
            &reference,
            &format!("{} {} VND via {}", record.ma_ho_so, record.amount, record.provider),
        );
        Ok(record)
    }

    /// Applies notices in order, by the one set of matching rules; stops at the first storage
    /// failure (each notice is idempotent, and the provider sends again).
    pub async fn apply_all(&self, notices: &[Notice]) -> Result<Vec<Applied>, StorageError> {
        let mut out = Vec::with_capacity(notices.len());
        for n in notices {
            out.push(self.apply(n).await?);
        }
        Ok(out)
    }

    /// What one notice does to its payment. Every callback and every reconciliation answer
    /// comes through here.
    pub async fn apply(&self, notice: &Notice) -> Result<Applied, StorageError> {
        match notice {
            Notice::Settled(s) => {
                let c = confirmation(s);
                if s.amounts == AmountRule::OrderFirst {
                    match self.get(&s.reference).await? {
                        None => {
                            self.refuse_unknown(&s.source, &s.reference);
                            return Ok(Applied::Unknown);
                        }
                        Some(r) if r.amount != s.amount => {
                            // Paid with another amount: recorded for a person, never paid.
                            if s.paid {
                                self.confirm(&c).await?;
                            }
                            return Ok(Applied::OrderAmountDiffers);
                        }
                        Some(_) => {}
                    }
                }
                Ok(applied(self.confirm(&c).await?))
            }
            Notice::Undecided { reference, amount } => Ok(match self.get(reference).await? {
                None => Applied::Unknown,
                Some(r) if r.amount != *amount => Applied::OrderAmountDiffers,
                Some(_) => Applied::NotFinal,
            }),
            Notice::BankCredit(e) => self.apply_bank_credit(e).await,
            Notice::BankReversal(e) => self.apply_bank_reversal(e).await,
        }
    }

    fn refuse_unknown(&self, source: &str, reference: &str) {
        tracing::warn!(audit = true, provider = %source, reference = %Escaped(reference), "confirmation for an unknown reference refused");
        self.monitoring.audit(
            &format!("provider:{source}"),
            "payment.confirmation_refused",
            reference,
            "unknown reference",
        );
    }

    /// Applies a confirmation. The events are built from the stored record, so what the centre
    /// hears is what it asked for, plus the provider's transaction.
    pub(crate) async fn confirm(&self, c: &Confirmation) -> Result<ConfirmOutcome, StorageError> {
        // A payment paid by another transaction between our read and the script is read again,
        // so that a duplicate's event names the transaction that stands; bounded, since each
        // retry means another confirmation won a race that cannot repeat without end.
        for _ in 0..4 {
            let Some(record) = self.get(&c.reference).await? else {
                self.refuse_unknown(&c.provider, &c.reference);
                return Ok(ConfirmOutcome::Unknown);
            };
            let standing = record.provider_transaction.clone().unwrap_or_default();
            let events = events(&record, c, now_ms());
            let outcome = self.ledger.confirm(c, &standing, &events, now_ms()).await?;
            if outcome == ConfirmOutcome::Stale {
                continue;
            }
            self.observe_confirmation(c, &record, outcome);
            return Ok(outcome);
        }
        Err(StorageError::Corrupt(format!(
            "payment {} keeps changing under a confirmation",
            c.reference
        )))
    }

    fn observe_confirmation(&self, c: &Confirmation, record: &PaymentRecord, outcome: ConfirmOutcome) {
        tracing::info!(audit = true, provider = %c.provider, reference = %Escaped(&c.reference), transaction = %Escaped(&c.transaction), outcome = ?outcome, "payment confirmation applied");
        let state = match outcome {
            ConfirmOutcome::Paid | ConfirmOutcome::PaidLate => Some("paid"),
            ConfirmOutcome::Failed => Some("failed"),
            ConfirmOutcome::AmountMismatch => Some("amount_mismatch"),
            ConfirmOutcome::PaidTwice => Some("duplicate"),
            _ => None,
        };
        if let Some(s) = state {
            self.monitoring.payment_state(&c.provider, s);
        }
        self.monitoring.audit(
            &format!("provider:{}", c.provider),
            "payment.confirmation",
            &c.reference,
            &format!("transaction {}: {outcome:?}", c.transaction),
        );
        match outcome {
            ConfirmOutcome::PaidLate => {
                tracing::warn!(audit = true, reference = %Escaped(&c.reference), transaction = %Escaped(&c.transaction), "an expired payment was paid late: it is paid and the centre is told");
                self.monitoring.audit(
                    &format!("provider:{}", c.provider),
                    "payment.paid_late",
                    &c.reference,
                    &format!(
                        "paid late, after the payment expired: transaction {}, {} VND",
                        c.transaction, c.amount
                    ),
                );
            }
            ConfirmOutcome::AmountMismatch => {
                tracing::warn!(alarm = true, reference = %Escaped(&c.reference), expected = record.amount, received = c.amount, "payment amount mismatch: a person must look at it");
            }
            ConfirmOutcome::PaidTwice => {
                tracing::warn!(alarm = true, reference = %Escaped(&c.reference), standing = %Escaped(record.provider_transaction.as_deref().unwrap_or("")), duplicate = %Escaped(&c.transaction), amount = c.amount, "money paid twice: the first payment stands, the centre is told to refund the second");
                self.monitoring.audit(
                    &format!("provider:{}", c.provider),
                    "payment.duplicate",
                    &c.reference,
                    &format!(
                        "second paid transaction {} ({} VND) after {}: refund it",
                        c.transaction,
                        c.amount,
                        record.provider_transaction.as_deref().unwrap_or("")
                    ),
                );
            }
            _ => {}
        }
    }

    /// Applies a provider's reversal of a payment it made.
    pub(crate) async fn reverse(&self, r: &Reversal) -> Result<ReverseOutcome, StorageError> {
        let Some(record) = self.get(&r.reference).await? else {
            return Ok(ReverseOutcome::Unknown);
        };
        let c = Confirmation {
            reference: r.reference.clone(),
            provider: r.provider.clone(),
            transaction: r.original_transaction.clone().unwrap_or_default(),
            amount: r.amount,
            paid: false,
            provider_time: String::new(),
            bank_refs: None,
        };
        let event = event("payment.reversed", &record, &c, now_ms(), None);
        let outcome = self.ledger.reverse(r, &event, now_ms()).await?;
        tracing::info!(audit = true, provider = %r.provider, reference = %Escaped(&r.reference), outcome = ?outcome, "payment reversal applied");
        self.monitoring.audit(
            &format!("provider:{}", r.provider),
            "payment.reversal",
            &r.reference,
            &format!("{outcome:?}"),
        );
        match outcome {
            ReverseOutcome::Reversed => {
                self.monitoring.payment_state(&r.provider, "reversed");
                tracing::warn!(alarm = true, reference = %Escaped(&r.reference), "a paid fee was reversed by the bank");
            }
            ReverseOutcome::Mismatch(why) => {
                tracing::warn!(alarm = true, reference = %Escaped(&r.reference), why, "a reversal does not match the payment that stands: nothing changed, a person must look at it");
            }
            _ => {}
        }
        Ok(outcome)
    }
}

fn confirmation(s: &Settlement) -> Confirmation {
    Confirmation {
        reference: s.reference.clone(),
        provider: s.source.clone(),
        transaction: s.transaction.clone(),
        amount: s.amount,
        paid: s.paid,
        provider_time: s.time.clone(),
        bank_refs: None,
    }
}

pub(crate) fn applied(o: ConfirmOutcome) -> Applied {
    match o {
        ConfirmOutcome::Unknown => Applied::Unknown,
        ConfirmOutcome::Duplicate(s) => Applied::Duplicate(s),
        ConfirmOutcome::AlreadySettled(s) => Applied::AlreadySettled(s),
        ConfirmOutcome::PaidTwice => Applied::PaidTwice,
        ConfirmOutcome::AmountMismatch => Applied::AmountMismatch,
        ConfirmOutcome::Paid | ConfirmOutcome::PaidLate => Applied::Paid,
        ConfirmOutcome::Failed => Applied::Failed,
        // `confirm` reads again on Stale and never returns it; were it to, another transaction
        // paid the payment meanwhile.
        ConfirmOutcome::Stale => Applied::AlreadySettled(State::Paid),
    }
}

/// The event a payment's change queues for the centre, in the Standard Webhooks payload shape
/// (`type`, `timestamp`, `data`) with the portal's vocabulary inside.
fn event(kind: &str, record: &PaymentRecord, c: &Confirmation, now: Millis, standing: Option<&str>) -> NewMessage {
    let mut data = json!({
        "MaThamChieu": record.reference,
        "MaHoSo": record.ma_ho_so,
        "MaDonVi": record.agency,
        "SoTien": record.amount,
        "provider": record.provider,
        "confirmed_by": c.provider,
        "provider_transaction": c.transaction,
        "provider_time": c.provider_time,
    });
    if let Some(s) = standing {
        data["SoTienNopThua"] = json!(c.amount);
        data["standing_transaction"] = json!(s);
    }
    let body = json!({"type": kind, "timestamp": crate::timefmt::rfc3339_ms(now), "data": data});
    NewMessage {
        kind: kind.into(),
        ordering_key: record.ma_ho_so.clone(),
        payload: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// The two events a confirmation may queue: paid, or paid a second time.
fn events(record: &PaymentRecord, c: &Confirmation, now: Millis) -> PaymentEvents {
    let standing = record.provider_transaction.as_deref().unwrap_or("");
    PaymentEvents {
        ordering_key: record.ma_ho_so.clone(),
        confirmed: event("payment.confirmed", record, c, now, None),
        duplicate: event("payment.duplicate", record, c, now, Some(standing)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;

    async fn ledger_with(amount: u64) -> (Payments, String) {
        let store = Store::memory();
        let ledger = store.ledger(EVENTS_QUEUE);
        let payments = Payments {
            ledger: ledger.clone(),
            providers: HashMap::new(),
            agencies: vec![],
            bank_bins: HashMap::new(),
            monitoring: Monitoring::start(store.audit_log()),
            grace: Duration::ZERO,
            evidence: None,
        };
        let now = now_ms();
        let reference = new_reference(now / 1000).expect("randomness");
        let record = PaymentRecord {
            reference: reference.clone(),
            ma_ho_so: "000.00.22.H46-241126-0001".into(),
            amount,
            provider: "test".into(),
            status: PaymentState::Pending,
            payment_url: String::new(),
            agency: "000.00.22.H46".into(),
            fees_json: "[]".into(),
            created_at: now,
            provider_created: vn_timestamp(now / 1000),
            provider_transaction: None,
            provider_time: None,
            confirmed_by: None,
            settled_at: None,
            duplicates: 0,
            updated_at: None,
            bank_refs: None,
            qr_payload: None,
            expires_at: None,
        };
        assert!(ledger.create(&record).await.expect("stored"));
        // The same reference twice is refused by the store, which `create` turns into an error.
        assert!(!ledger.create(&record).await.expect("answered"));
        (payments, reference)
    }

    fn settled(reference: &str, amount: u64, paid: bool, amounts: AmountRule) -> Notice {
        Notice::Settled(Settlement {
            reference: reference.into(),
            source: "test".into(),
            transaction: format!("T-{amount}-{paid}"),
            amount,
            paid,
            time: String::new(),
            amounts,
        })
    }

    async fn status(p: &Payments, reference: &str) -> PaymentState {
        p.get(reference).await.expect("read").expect("stored").status
    }

    #[tokio::test]
    async fn an_order_first_notice_for_another_amount_changes_nothing_unless_it_says_paid() {
        let (p, r) = ledger_with(100_000).await;
        let failed = settled(&r, 90_000, false, AmountRule::OrderFirst);
        assert_eq!(p.apply(&failed).await.expect("applied"), Applied::OrderAmountDiffers);
        assert_eq!(
            status(&p, &r).await,
            PaymentState::Pending,
            "a failure for another amount is not ours"
        );
        let undecided = Notice::Undecided {
            reference: r.clone(),
            amount: 100_000,
        };
        assert_eq!(p.apply(&undecided).await.expect("applied"), Applied::NotFinal);
        let paid = settled(&r, 90_000, true, AmountRule::OrderFirst);
        assert_eq!(p.apply(&paid).await.expect("applied"), Applied::OrderAmountDiffers);
        assert_eq!(
            status(&p, &r).await,
            PaymentState::AmountMismatch,
            "money that arrived is recorded for a person"
        );
    }

    #[tokio::test]
    async fn the_ledger_rule_records_a_failure_whatever_its_amount_and_pays_once() {
        let (p, r) = ledger_with(100_000).await;
        assert_eq!(
            p.apply(&settled(&r, 1, false, AmountRule::Ledger)).await.expect("applied"),
            Applied::Failed
        );
        let paid = settled(&r, 100_000, true, AmountRule::Ledger);
        assert_eq!(
            p.apply(&paid).await.expect("applied"),
            Applied::Paid,
            "a failed payment may still be paid"
        );
        assert_eq!(p.apply(&paid).await.expect("applied"), Applied::Duplicate(State::Paid));
        let unknown = settled("HCC241126ABCDEFGH", 100_000, true, AmountRule::OrderFirst);
        assert_eq!(p.apply(&unknown).await.expect("applied"), Applied::Unknown);
    }
}
