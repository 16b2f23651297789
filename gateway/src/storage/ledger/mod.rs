//! The payment ledger: payment records and the provider transactions applied to them. A ledger
//! is made with the name of its events queue (`payments`), and its Redis keys share that
//! queue's hash tag, so that confirming a payment and queueing its event are one atomic step in
//! one Redis Cluster slot: two copies of a callback on two gateway processes make one event.
//! The ledger is named after no destination; whoever delivers the events queue (the centre's
//! webhook) is the engine's business.
//!
//! The matching rules, the same in both backends:
//! - a provider transaction (provider + its transaction id) is applied once; a repeat gets the
//!   first answer again and changes nothing;
//! - `pending` (or `failed`, since a provider's later word that money arrived outranks its
//!   earlier failure, or `expired`, since money that arrives late still counts) becomes `paid`
//!   on a paid confirmation of the right amount, with one `payment.confirmed` event, or
//!   `amount_mismatch` for a person to look at; paying an `expired` one is answered
//!   [`ConfirmOutcome::PaidLate`];
//! - a failure is recorded once per payment and provider answer, never under a provider
//!   transaction number (VNPAY sends `0` on every cancelled payment);
//! - a pending payment is asked about on its provider's schedule (a per-provider index by the
//!   time it is next due), and `expired` when its lifetime is over and the provider says it is
//!   unpaid; it is then no longer asked;
//! - a second, different paid transaction for a `paid` payment is money paid twice: the first
//!   stands, and one `payment.duplicate` event tells the centre to refund;
//! - a reversal undoes a `paid` payment only when it comes from the provider that paid it, for
//!   the same amount, naming the same transaction where it names one; the payment becomes
//!   `reversed` with one `payment.reversed` event.

pub(super) mod memory;
pub mod overdue;
pub(super) mod redis;
pub mod unmatched;

use serde::Serialize;

use self::memory::MemoryLedger;
use self::redis::RedisLedger;
use super::{Millis, NewMessage, StorageError, Store, dispatch};
pub use hcc_adapters::payments::Handoff;

/// A payment's state: the providers' own vocabulary ([`hcc_adapters::payments::State`]), which
/// the ledger stores and answers in.
pub use hcc_adapters::payments::State as PaymentState;

/// The states as the API document lists them (the document only: the ledger's type is
/// [`PaymentState`], which lives in a crate without the document's derive).
#[derive(utoipa::ToSchema)]
#[schema(as = PaymentState)]
#[allow(dead_code, reason = "a description only")]
#[serde(rename_all = "snake_case")]
enum PaymentStateSchema {
    Pending,
    Paid,
    Failed,
    AmountMismatch,
    Reversed,
    Expired,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Payment)]
pub struct PaymentRecord {
    #[serde(rename = "MaThamChieu")]
    #[schema(pattern = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$")]
    pub reference: String,
    #[serde(rename = "MaHoSo")]
    pub ma_ho_so: String,
    #[serde(rename = "SoTien")]
    pub amount: u64,
    /// `paygov` or `vnpay`.
    pub provider: String,
    #[schema(value_type = PaymentStateSchema)]
    pub status: PaymentState,
    /// The provider's payment page (empty for a VietQR payment); shown by the API's views.
    #[serde(skip)]
    pub payment_url: String,
    /// The receiving agency (`MaDonVi`) and the fee lines as JSON text. The payer's name,
    /// address and identity number go to the provider once and are not kept.
    #[serde(rename = "MaDonVi")]
    pub agency: String,
    #[serde(skip)]
    pub fees_json: String,
    #[serde(skip)]
    pub created_at: Millis,
    /// The time the provider was told at creation (`ThoiGianGD` of INIT, `vnp_CreateDate`):
    /// the provider finds the payment by reference and this time when it is queried.
    #[serde(skip)]
    pub provider_created: String,
    pub provider_transaction: Option<String>,
    pub provider_time: Option<String>,
    /// Which route's confirmation made it paid (`paygov`, `vnpay`, `bank:<id>`).
    pub confirmed_by: Option<String>,
    #[serde(skip)]
    pub settled_at: Option<Millis>,
    /// Paid transactions that arrived after the one that stands: money to refund.
    pub duplicates: u32,
    /// The last change (creation when unknown).
    #[serde(skip)]
    pub updated_at: Option<Millis>,
    /// The bank references (JSON, `BankRefs`) of the credit that settled it, when a bank's
    /// camt.054 did: what a reversal is matched against.
    #[serde(skip)]
    pub bank_refs: Option<String>,
    /// A VietQR payment's EMVCo payload: the code the citizen scans (shown as `qr`).
    #[serde(skip)]
    pub qr_payload: Option<String>,
    /// When its provider's lifetime ends (shown as `expires_at`); none for payments made
    /// before lifetimes were kept.
    #[serde(skip)]
    pub expires_at: Option<Millis>,
}

/// The statuses the payment list filters by: a payment's own, or `duplicate` (paid, then paid
/// again by another transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStatus {
    Is(PaymentState),
    Duplicate,
}

impl ListStatus {
    pub fn parse(s: &str) -> Option<Self> {
        if s == "duplicate" {
            Some(ListStatus::Duplicate)
        } else {
            PaymentState::parse(s).map(ListStatus::Is)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListStatus::Is(s) => s.as_str(),
            ListStatus::Duplicate => "duplicate",
        }
    }

    fn matches(self, p: &PaymentRecord) -> bool {
        match self {
            ListStatus::Is(s) => p.status == s,
            ListStatus::Duplicate => p.duplicates > 0,
        }
    }
}

/// What the payment list keeps: every field optional.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub status: Option<ListStatus>,
    /// A checked MaHoSo.
    pub ma_ho_so: Option<String>,
    /// Updated at or after (Unix ms).
    pub since: Option<Millis>,
}

/// The index a filter reads: the dossier's when it names one (a dossier has few payments, and
/// a status is then checked on each), else the status's, else all payments'.
pub(super) fn index_name(f: &PaymentFilter) -> String {
    match (&f.ma_ho_so, f.status) {
        (Some(m), _) => format!("h:{m}"),
        (None, Some(s)) => format!("s:{}", s.as_str()),
        (None, None) => "all".into(),
    }
}

/// The most entries of a dossier's payment index read to apply a status filter on top of it.
pub const MAX_DOSSIER_PAYMENTS_SCANNED: usize = 1000;

/// One step of a payment's story.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[serde(skip)]
    pub at: Millis,
    /// `created`, `paid`, `failed`, `amount_mismatch`, `duplicate`, `reversed`, `expired`,
    /// `webhook_queued`.
    pub event: String,
    pub detail: String,
}

/// A provider's word on a payment, already authenticated by its route.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub reference: String,
    pub provider: String,
    pub transaction: String,
    pub amount: u64,
    /// The provider says paid (otherwise: failed).
    pub paid: bool,
    pub provider_time: String,
    /// A bank credit's references (JSON, `BankRefs`), kept with the payment it settles.
    pub bank_refs: Option<String>,
}

impl Confirmation {
    /// The transaction's identity for de-duplication: `paid:`, the provider, the provider's
    /// transaction id; or `failed:`, the provider, the payment's reference and the provider's
    /// answer (`transaction` of a failure). A failure belongs to its payment: providers name
    /// failures with a transaction number that identifies nothing (VNPAY sends `0` for every
    /// cancelled payment), so a failure is never keyed by it alone, or only the first
    /// cancelled payment would ever be recorded. A failure is kept apart from a success, so
    /// that a provider's "failed, then paid" is not mistaken for a repeat. The kind comes
    /// first, where no transaction id can forge it (as a `:failed` suffix could be), and it is
    /// never `reversal:` ([`Reversal::marker`]). The provider is a route name (`paygov`,
    /// `vnpay`, `bank:<id>` with `<id>` in `[a-z0-9_-]+`) and a reference has no colon (its
    /// shape is checked before any look-up), so each part ends at a known colon.
    pub fn transaction_key(&self) -> String {
        if self.paid {
            format!("paid:{}:{}", self.provider, self.transaction)
        } else {
            format!("failed:{}:{}:{}", self.provider, self.reference, self.transaction)
        }
    }
}

/// The events a confirmation may queue for the centre: `payment.confirmed` when it pays,
/// `payment.duplicate` when it pays a second time. At most one of them is queued.
pub struct PaymentEvents {
    pub ordering_key: String,
    pub confirmed: NewMessage,
    pub duplicate: NewMessage,
}

/// What the matching rules made of a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// No such payment: refused, nothing stored.
    Unknown,
    /// This provider transaction was applied before, with this result: the same answer again,
    /// nothing happens.
    Duplicate(PaymentState),
    /// The payment was already settled by another transaction; nothing happens.
    AlreadySettled(PaymentState),
    /// A second, different paid transaction for a paid payment: the first stands and one
    /// `payment.duplicate` event is queued.
    PaidTwice,
    /// The amount differs: marked for a person to look at, never paid.
    AmountMismatch,
    /// First valid confirmation: paid, one event queued.
    Paid,
    /// Paid, one event queued, and the payment had expired: money that arrived late.
    PaidLate,
    /// The provider says the payment failed.
    Failed,
    /// Another transaction paid it since the caller read it: read again and retry.
    Stale,
}

/// A provider's reversal of a payment it made (a bank's DBIT entry with `RvslInd`).
#[derive(Debug, Clone)]
pub struct Reversal {
    pub reference: String,
    /// The route that must have paid it (`bank:<id>`).
    pub provider: String,
    /// The reversal's own identity, so that a repeat of it changes nothing.
    pub key: String,
    pub amount: u64,
    /// The original transaction it names, when it names one.
    pub original_transaction: Option<String>,
}

impl Reversal {
    /// The reversal's identity for de-duplication, apart from every confirmation's
    /// ([`Confirmation::transaction_key`]).
    pub fn marker(&self) -> String {
        format!("reversal:{}:{}", self.provider, self.key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReverseOutcome {
    Unknown,
    /// The paid payment is now `reversed`; an event tells the centre.
    Reversed,
    /// This reversal was applied before.
    Duplicate,
    /// Nothing to undo: the payment is not paid.
    NotPaid,
    /// It does not match the payment that stands (another payer route, amount or transaction):
    /// nothing changes.
    Mismatch(&'static str),
}

/// What ending a pending payment ([`PaymentLedger::expire`]) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireOutcome {
    Unknown,
    /// It was pending and is now `expired`, out of the pending index and its ask schedule.
    Expired,
    /// It was no longer pending (settled meanwhile): nothing changed but leaving the schedule.
    NotPending(PaymentState),
}

/// The most pages of 1000 pending payments read when adopting them into an ask schedule.
pub const MAX_ADOPTED_PAGES: usize = 1000;

/// The payment ledger. Cheap to clone.
#[derive(Clone)]
pub enum PaymentLedger {
    Redis(RedisLedger),
    Memory(MemoryLedger),
}

impl PaymentLedger {
    /// The ledger whose events go to the queue `events_queue`.
    pub fn new(store: &Store, events_queue: &str) -> Self {
        match store {
            Store::Redis(s) => PaymentLedger::Redis(RedisLedger::new(s.clone(), events_queue)),
            Store::Memory(s) => PaymentLedger::Memory(MemoryLedger::new(s.clone(), events_queue)),
        }
    }

    /// Stores a new pending payment, due to be asked about at its creation; `false` if the
    /// reference exists.
    pub async fn create(&self, p: &PaymentRecord) -> Result<bool, StorageError> {
        self.create_scheduled(p, p.created_at).await
    }

    /// Stores a new pending payment, first asked about at `first_ask` in its provider's
    /// schedule ([`PaymentLedger::due`]); `false` if the reference exists.
    pub async fn create_scheduled(&self, p: &PaymentRecord, first_ask: Millis) -> Result<bool, StorageError> {
        dispatch!(self, PaymentLedger, l => l.create(p, first_ask).await)
    }

    /// References in `provider`'s ask schedule that are due at `now`, the longest due first,
    /// at most `limit`. Some may be settled meanwhile: the caller drops those
    /// ([`PaymentLedger::unschedule`]).
    pub async fn due(&self, provider: &str, now: Millis, limit: usize) -> Result<Vec<String>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.due(provider, now, limit).await)
    }

    /// Moves a payment in `provider`'s ask schedule to `at`; nothing when it is not in it.
    pub async fn reschedule(&self, provider: &str, reference: &str, at: Millis) -> Result<(), StorageError> {
        dispatch!(self, PaymentLedger, l => l.reschedule(provider, reference, at).await)
    }

    /// Takes a payment out of `provider`'s ask schedule: it is no longer asked about.
    pub async fn unschedule(&self, provider: &str, reference: &str) -> Result<(), StorageError> {
        dispatch!(self, PaymentLedger, l => l.unschedule(provider, reference).await)
    }

    /// Puts `provider`'s pending payments created at or after `created_from` that are in no
    /// ask schedule (made before the schedules existed) into its schedule, due at `now`; returns
    /// how many. Read in pages of the pending index, at most [`MAX_ADOPTED_PAGES`] of them.
    pub async fn adopt_pending(&self, provider: &str, now: Millis, created_from: Millis) -> Result<usize, StorageError> {
        const PAGE: usize = 1000;
        let mut adopted = 0;
        for n in 0..MAX_ADOPTED_PAGES {
            let (read, took) = dispatch!(self, PaymentLedger, l => l.adopt_page(provider, now, created_from, n * PAGE, PAGE).await)?;
            adopted += took;
            if read < PAGE {
                break;
            }
        }
        Ok(adopted)
    }

    /// Ends a pending payment of `provider` whose lifetime is over and which the provider
    /// reports unpaid: `expired`, out of the pending index and the ask schedule, with `detail`
    /// in its history. A payment no longer pending only leaves the schedule.
    pub async fn expire(&self, provider: &str, reference: &str, detail: &str, now: Millis) -> Result<ExpireOutcome, StorageError> {
        dispatch!(self, PaymentLedger, l => l.expire(provider, reference, detail, now).await)
    }

    /// Sets the payment page of an existing payment; nothing for an unknown reference.
    /// Records how the citizen pays: the provider's page, or the code to scan.
    pub async fn set_handoff(&self, reference: &str, handoff: &Handoff) -> Result<(), StorageError> {
        dispatch!(self, PaymentLedger, l => l.set_handoff(reference, handoff).await)
    }

    pub async fn get(&self, reference: &str) -> Result<Option<PaymentRecord>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.get(reference).await)
    }

    /// Applies a confirmation by the matching rules (module docs), atomically with queueing
    /// the event it calls for. `standing` is the transaction the caller saw standing.
    pub async fn confirm(&self, c: &Confirmation, standing: &str, ev: &PaymentEvents, now: Millis) -> Result<ConfirmOutcome, StorageError> {
        dispatch!(self, PaymentLedger, l => l.confirm(c, standing, ev, now).await)
    }

    /// Undoes a paid payment (a provider's reversal) when it matches, once per reversal,
    /// queueing `event`.
    pub async fn reverse(&self, r: &Reversal, event: &NewMessage, now: Millis) -> Result<ReverseOutcome, StorageError> {
        dispatch!(self, PaymentLedger, l => l.reverse(r, event, now).await)
    }

    /// Payments the filter keeps, newest update first, from an index (never a scan of all
    /// payments); `offset`/`limit` page through them.
    pub async fn list(&self, f: &PaymentFilter, offset: usize, limit: usize) -> Result<Vec<PaymentRecord>, StorageError> {
        let refs = match (&f.ma_ho_so, f.status) {
            (Some(_), Some(status)) => {
                // The dossier's index, with the status checked on each: bounded by the scan cap.
                let refs = dispatch!(self, PaymentLedger, l => l.list_refs(f, 0, MAX_DOSSIER_PAYMENTS_SCANNED).await)?;
                let mut kept = Vec::new();
                for r in refs {
                    if let Some(p) = self.get(&r).await?
                        && status.matches(&p)
                    {
                        kept.push(p);
                    }
                }
                return Ok(kept.into_iter().skip(offset).take(limit).collect());
            }
            _ => dispatch!(self, PaymentLedger, l => l.list_refs(f, offset, limit).await)?,
        };
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            if let Some(p) = self.get(&r).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The payment's history, oldest first (bounded, see `lua/lib/payment_index.lua`).
    pub async fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.history(reference).await)
    }

    /// References of pending payments created between `from` and `to`, oldest first.
    pub async fn pending(&self, from: Millis, to: Millis, limit: usize) -> Result<Vec<String>, StorageError> {
        dispatch!(self, PaymentLedger, l => l.pending(from, to, limit).await)
    }
}
