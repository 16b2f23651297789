//! A bank's money, as its camt.054 reports it: when a credit pays a fee, when a reversal takes
//! one back, and what happens to the money that does neither. The rules (docs/bank-xml.md):
//!
//! - A credit pays a fee only when it credits that fee's agency's account (`Ntfctn/Acct/Id`
//!   equals the agency's `tk_thu_huong`, digits compared, spaces and dashes ignored) and, when
//!   the bank's section names its NAPAS BIN, the agency banks there (`ma_nh_thu_huong`).
//! - A credit of another amount than the fee's changes no payment: the payment stays as it was
//!   (a citizen who mistyped the amount in a VietQR transfer can still pay the right one), and
//!   the money is listed as `amount_mismatch`.
//! - A credit's identity is the bank's reference, or a content identity; a content identity
//!   seen again in another document changes no payment and is listed as `possible_repeat`.
//! - A reversal matches its credit by the references it carries, compared kind by kind with
//!   the credit's; carrying none comparable, by bank, payment reference, amount and currency
//!   against the credit that stands.
//! - Every credit or reversal that paid or reversed nothing is kept in the unmatched list
//!   (`storage::ledger::unmatched`) for a person, with why; finance assigns it to a payment or
//!   marks it to be returned.

use hcc_adapters::payments::{Agency, Applied, BankEntry, BankRefs, UnmatchedReason};

use crate::payments::Payments;
use crate::redact::{Escaped, mask_identity_numbers};
use crate::storage::ledger::unmatched::{SettleOutcome, UnmatchedEntry, UnmatchedFacts, UnmatchedFilter, UnmatchedState};
use crate::storage::ledger::{ConfirmOutcome, Confirmation, PaymentState, Reversal, ReverseOutcome};
use crate::storage::{StorageError, now_ms};

/// Digits only: how account numbers are compared (banks write them with spaces and dashes).
pub fn account_digits(account: &str) -> String {
    account.chars().filter(char::is_ascii_digit).collect()
}

/// Whether the bank `bin` may pay `agency`, and `account` is the agency's: `None` when it fits,
/// otherwise why not.
pub fn account_problem(agency: &Agency, account: Option<&str>, bin: Option<&str>) -> Option<String> {
    let want = account_digits(&agency.tk_thu_huong);
    let got = account.map(account_digits).unwrap_or_default();
    if want.is_empty() {
        return Some(format!("agency {} has no beneficiary account configured", agency.ma_don_vi));
    }
    if got.is_empty() {
        return Some("the notification names no credited account".into());
    }
    if !hcc_signing::ct_eq(want.as_bytes(), got.as_bytes()) {
        return Some(format!(
            "credited account {got} is not agency {}'s account {want}",
            agency.ma_don_vi
        ));
    }
    if let Some(b) = bin
        && b != agency.ma_nh_thu_huong.trim()
    {
        return Some(format!(
            "the bank (BIN {b}) is not agency {}'s bank ({})",
            agency.ma_don_vi, agency.ma_nh_thu_huong
        ));
    }
    None
}

/// The id of an unmatched entry: the same bank transaction for the same reason is one entry,
/// whichever document carried it, however often.
fn unmatched_id(e: &BankEntry, kind: &str, reason: UnmatchedReason) -> String {
    let text = format!("{}\n{kind}\n{}\n{}", e.source, e.identity, reason.as_str());
    let digest = hex::encode(openssl::sha::sha256(text.as_bytes()));
    format!("U{}", &digest[..24].to_ascii_uppercase())
}

impl Payments {
    /// Keeps a bank transaction that paid or reversed nothing, with an audit line, an alarm
    /// and a metric. A re-sent one is kept once.
    async fn keep_unmatched(&self, e: &BankEntry, kind: &str, reason: UnmatchedReason, detail: String) -> Result<Applied, StorageError> {
        let facts = UnmatchedFacts {
            id: unmatched_id(e, kind, reason),
            bank: e.bank.clone(),
            kind: kind.into(),
            reason: reason.as_str().into(),
            detail: mask_identity_numbers(&detail),
            account: e.account.clone(),
            amount: e.amount,
            currency: e.currency.clone(),
            booking_date: e.booking_date.clone(),
            bank_transaction: e.identity.clone(),
            refs: e.refs.clone(),
            reference: e.reference.clone(),
            remittance: mask_identity_numbers(&e.remittance),
        };
        if self.ledger.unmatched_put(&facts, now_ms()).await? {
            tracing::warn!(
                alarm = true,
                provider = %e.source,
                unmatched = %facts.id,
                reason = reason.as_str(),
                detail = %Escaped(&facts.detail),
                "bank money matched nothing: kept in the unmatched list for a person"
            );
            self.monitoring.bank_unmatched(reason.as_str());
            self.monitoring.audit(
                &format!("provider:{}", e.source),
                "payment.unmatched",
                &facts.id,
                &format!("{} {} {} VND: {}", reason.as_str(), kind, e.amount, facts.detail),
            );
        }
        Ok(Applied::Unmatched(reason))
    }

    /// A bank's booked VND credit.
    pub(crate) async fn apply_bank_credit(&self, e: &BankEntry) -> Result<Applied, StorageError> {
        if e.references_found > 1 {
            return self
                .keep_unmatched(
                    e,
                    "credit",
                    UnmatchedReason::AmbiguousReference,
                    format!("the transfer names {} payment references", e.references_found),
                )
                .await;
        }
        let Some(reference) = &e.reference else {
            return self
                .keep_unmatched(
                    e,
                    "credit",
                    UnmatchedReason::NoReference,
                    "the transfer names no payment reference".into(),
                )
                .await;
        };
        let Some(record) = self.get(reference).await? else {
            self.keep_unmatched(
                e,
                "credit",
                UnmatchedReason::NoReference,
                format!("{reference} names no payment of this gateway"),
            )
            .await?;
            return Ok(Applied::Unknown);
        };
        let agency = self.agencies.iter().find(|a| a.ma_don_vi == record.agency);
        let problem = match agency {
            None => Some(format!("the payment's agency {} is not configured", record.agency)),
            Some(a) => account_problem(a, e.account.as_deref(), e.bin.as_deref()),
        };
        if let Some(why) = problem {
            return self
                .keep_unmatched(e, "credit", UnmatchedReason::WrongAccount, format!("{reference}: {why}"))
                .await;
        }
        // Another amount than the fee's: the money waits for a person (to refund it, or to
        // assign it once the fee is settled otherwise), and the payment stays as it was, so the
        // citizen who mistyped the amount can still pay the right one.
        if e.amount != record.amount {
            return self
                .keep_unmatched(
                    e,
                    "credit",
                    UnmatchedReason::AmountMismatch,
                    format!("{reference}: {} VND received for a fee of {} VND", e.amount, record.amount),
                )
                .await;
        }
        // A content identity seen before in another document: maybe the same credit sent
        // again, maybe a second identical payment. It pays nothing; a person decides.
        let first_document = if e.content_identity {
            Some(self.ledger.first_document(&e.source, &e.identity, &e.document).await?)
        } else {
            None
        };
        let c = Confirmation {
            reference: reference.clone(),
            provider: e.source.clone(),
            transaction: e.identity.clone(),
            amount: e.amount,
            paid: true,
            provider_time: e.booking_date.clone(),
            bank_refs: serde_json::to_string(&e.refs).ok(),
        };
        let outcome = self.confirm(&c).await?;
        let applied = crate::payments::applied(outcome);
        match outcome {
            ConfirmOutcome::Duplicate(_) if first_document.as_deref().is_some_and(|d| d != e.document) => {
                self.keep_unmatched(
                    e,
                    "credit",
                    UnmatchedReason::PossibleRepeat,
                    format!(
                        "{reference}: a transfer with the same date, amount and text came in an earlier notification; the same one sent again, or a second payment"
                    ),
                )
                .await?;
                Ok(Applied::Unmatched(UnmatchedReason::PossibleRepeat))
            }
            ConfirmOutcome::PaidTwice => {
                self.keep_unmatched(
                    e,
                    "credit",
                    UnmatchedReason::AlreadyPaid,
                    format!("{reference} was already paid by another transaction: refund this one"),
                )
                .await?;
                Ok(applied)
            }
            ConfirmOutcome::AlreadySettled(state) => {
                self.keep_unmatched(
                    e,
                    "credit",
                    UnmatchedReason::AlreadyPaid,
                    format!("{reference} is {}: this credit paid nothing", state.as_str()),
                )
                .await?;
                Ok(applied)
            }
            _ => Ok(applied),
        }
    }

    /// A bank's booked DBIT with `RvslInd`: the reversal of a credit.
    pub(crate) async fn apply_bank_reversal(&self, e: &BankEntry) -> Result<Applied, StorageError> {
        let unmatched = |why: String| (UnmatchedReason::UnmatchedReversal, why);
        let (reference, record) = match &e.reference {
            None => {
                let (r, why) = unmatched("the reversal names no single payment reference".into());
                return self.keep_unmatched(e, "reversal", r, why).await;
            }
            Some(reference) => match self.get(reference).await? {
                None => {
                    let (r, why) = unmatched(format!("{reference} names no payment of this gateway"));
                    self.keep_unmatched(e, "reversal", r, why).await?;
                    return Ok(Applied::Unknown);
                }
                Some(record) => (reference.clone(), record),
            },
        };
        // The references the reversal carries, against those of the credit that stands.
        let credit_refs: BankRefs = record
            .bank_refs
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        let original = match e.refs.names(&credit_refs) {
            Some(true) => record.provider_transaction.clone(),
            Some(false) => {
                let (r, why) = unmatched(format!(
                    "{reference}: the reversal names another bank transaction than the credit that paid it"
                ));
                self.keep_unmatched(e, "reversal", r, why).await?;
                return Ok(Applied::ReversalMismatch);
            }
            // Nothing comparable: bank, reference, amount and currency (checked by the ledger).
            None => None,
        };
        let r = Reversal {
            reference: reference.clone(),
            provider: e.source.clone(),
            key: e.identity.clone(),
            amount: e.amount,
            original_transaction: original,
        };
        let outcome = self.reverse(&r).await?;
        Ok(match outcome {
            ReverseOutcome::Unknown => Applied::Unknown,
            ReverseOutcome::Reversed => Applied::Reversed,
            ReverseOutcome::Duplicate => Applied::ReversalDuplicate,
            ReverseOutcome::NotPaid => {
                let state = record.status.as_str();
                let (r, why) = unmatched(format!("{reference} is {state}: there is no credit standing to reverse"));
                self.keep_unmatched(e, "reversal", r, why).await?;
                Applied::ReversalNotPaid
            }
            ReverseOutcome::Mismatch(m) => {
                let (r, why) = unmatched(format!("{reference}: {m}"));
                self.keep_unmatched(e, "reversal", r, why).await?;
                Applied::ReversalMismatch
            }
        })
    }

    /// The unmatched list, newest first.
    pub async fn unmatched(&self, f: &UnmatchedFilter, offset: usize, limit: usize) -> Result<Vec<UnmatchedEntry>, StorageError> {
        self.ledger.unmatched_list(f, offset, limit).await
    }

    pub async fn unmatched_entry(&self, id: &str) -> Result<Option<UnmatchedEntry>, StorageError> {
        if !is_unmatched_id(id) {
            return Ok(None);
        }
        self.ledger.unmatched_get(id).await
    }

    /// Pays the payment `reference` with the unmatched credit `id`, when its amount and
    /// account fit; repeating it changes nothing.
    pub async fn assign_unmatched(&self, id: &str, reference: &str, by: &str) -> Result<UnmatchedEntry, UnmatchedError> {
        let entry = self.unmatched_entry(id).await?.ok_or(UnmatchedError::NotFound)?;
        match entry.state {
            UnmatchedState::Open => {}
            UnmatchedState::Assigned if entry.settled_with.as_deref() == Some(reference) => return Ok(entry),
            other => return Err(UnmatchedError::Settled(other, entry.settled_with.unwrap_or_default())),
        }
        let f = &entry.facts;
        if f.kind != "credit" {
            return Err(UnmatchedError::Unfit(
                "a reversal pays no fee: mark it returned once it is settled with the bank".into(),
            ));
        }
        if f.currency != "VND" {
            return Err(UnmatchedError::Unfit(format!("the credit is in {}, not VND", f.currency)));
        }
        let record = self
            .get(reference)
            .await?
            .ok_or_else(|| UnmatchedError::Unfit(format!("{reference} names no payment of this gateway")))?;
        if record.amount != f.amount {
            return Err(UnmatchedError::Unfit(format!(
                "the credit is {} VND and the payment {} VND",
                f.amount, record.amount
            )));
        }
        let agency = self
            .agencies
            .iter()
            .find(|a| a.ma_don_vi == record.agency)
            .ok_or_else(|| UnmatchedError::Unfit(format!("the payment's agency {} is not configured", record.agency)))?;
        let bin = self.bank_bins.get(&f.bank).cloned();
        if let Some(why) = account_problem(agency, f.account.as_deref(), bin.as_deref()) {
            return Err(UnmatchedError::Unfit(why));
        }
        let source = format!("bank:{}", f.bank);
        // Its own transaction key: the bank identity may already be recorded (a credit for
        // another amount, or one that came when the fee it named was paid).
        let c = Confirmation {
            reference: reference.to_string(),
            provider: source.clone(),
            transaction: format!("{}@{}", f.bank_transaction, f.id),
            amount: f.amount,
            paid: true,
            provider_time: f.booking_date.clone(),
            bank_refs: serde_json::to_string(&f.refs).ok(),
        };
        match record.status {
            PaymentState::Paid | PaymentState::Reversed | PaymentState::AmountMismatch
                if record.provider_transaction.as_deref() != Some(c.transaction.as_str()) =>
            {
                return Err(UnmatchedError::Unfit(format!(
                    "{reference} is {}: assigning this credit would pay it twice",
                    record.status.as_str()
                )));
            }
            _ => {}
        }
        let outcome = self.confirm(&c).await?;
        match outcome {
            ConfirmOutcome::Paid | ConfirmOutcome::PaidLate | ConfirmOutcome::Duplicate(PaymentState::Paid) => {}
            other => {
                return Err(UnmatchedError::Unfit(format!("the payment did not take it: {other:?}")));
            }
        }
        self.monitoring.audit(
            by,
            "payment.unmatched_assign",
            id,
            &format!("{} VND from {} paid {reference}", f.amount, f.bank_transaction),
        );
        match self
            .ledger
            .unmatched_settle(id, UnmatchedState::Assigned, reference, by, now_ms())
            .await?
        {
            SettleOutcome::Unknown => Err(UnmatchedError::NotFound),
            SettleOutcome::Done | SettleOutcome::Same => self.unmatched_entry(id).await?.ok_or(UnmatchedError::NotFound),
            SettleOutcome::Settled(s) => Err(UnmatchedError::Settled(s, String::new())),
        }
    }

    /// Marks the unmatched money `id` to be given back to the payer; repeating it changes
    /// nothing.
    pub async fn return_unmatched(&self, id: &str, reason: &str, by: &str) -> Result<UnmatchedEntry, UnmatchedError> {
        let entry = self.unmatched_entry(id).await?.ok_or(UnmatchedError::NotFound)?;
        let reason = mask_identity_numbers(reason);
        match self
            .ledger
            .unmatched_settle(id, UnmatchedState::Returned, &reason, by, now_ms())
            .await?
        {
            SettleOutcome::Unknown => Err(UnmatchedError::NotFound),
            SettleOutcome::Same => Ok(entry),
            SettleOutcome::Done => {
                self.monitoring.audit(
                    by,
                    "payment.unmatched_return",
                    id,
                    &format!("{} VND from {}: {reason}", entry.facts.amount, entry.facts.bank_transaction),
                );
                self.unmatched_entry(id).await?.ok_or(UnmatchedError::NotFound)
            }
            SettleOutcome::Settled(s) => Err(UnmatchedError::Settled(s, entry.settled_with.unwrap_or_default())),
        }
    }
}

/// An unmatched entry's id: `U` and 24 upper-case hex digits.
pub fn is_unmatched_id(id: &str) -> bool {
    id.len() == 25 && id.starts_with('U') && id[1..].bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[derive(Debug, thiserror::Error)]
pub enum UnmatchedError {
    #[error("no unmatched entry with this id")]
    NotFound,
    #[error("it does not fit: {0}")]
    Unfit(String),
    #[error("it was already {state} ({with})", state = .0.as_str(), with = .1)]
    Settled(UnmatchedState, String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(account: &str, bin: &str) -> Agency {
        Agency {
            id: "a".into(),
            ma_don_vi: "000.00.00.H00".into(),
            ten_don_vi: String::new(),
            tk_thu_huong: account.into(),
            ma_nh_thu_huong: bin.into(),
            ten_tk_thu_huong: String::new(),
        }
    }

    #[test]
    fn accounts_compare_by_digits_and_the_bin_when_configured() {
        let a = agency("0011 0041-23456", "970436");
        assert_eq!(account_problem(&a, Some("0011004123456"), None), None);
        assert_eq!(account_problem(&a, Some(" 001-1004 123456 "), Some("970436")), None);
        assert!(account_problem(&a, Some("0011004123457"), None).is_some());
        assert!(
            account_problem(&a, Some("00110041234560"), None).is_some(),
            "a longer number is another account"
        );
        assert!(account_problem(&a, None, None).is_some());
        assert!(account_problem(&a, Some("---"), None).is_some());
        assert!(account_problem(&a, Some("0011004123456"), Some("970415")).is_some(), "another bank");
        assert!(account_problem(&agency("", "970436"), Some("0011004123456"), None).is_some());
    }

    #[test]
    fn unmatched_ids_are_stable_per_transaction_and_reason() {
        let e = BankEntry {
            bank: "b".into(),
            source: "bank:b".into(),
            bin: None,
            reference: None,
            references_found: 0,
            identity: "FT1".into(),
            content_identity: false,
            document: "d1".into(),
            account: None,
            amount: 1,
            currency: "VND".into(),
            booking_date: String::new(),
            refs: BankRefs::default(),
            remittance: String::new(),
        };
        let id = unmatched_id(&e, "credit", UnmatchedReason::NoReference);
        assert!(is_unmatched_id(&id), "{id}");
        let other_doc = BankEntry {
            document: "d2".into(),
            ..e.clone()
        };
        assert_eq!(id, unmatched_id(&other_doc, "credit", UnmatchedReason::NoReference));
        assert_ne!(id, unmatched_id(&e, "credit", UnmatchedReason::WrongAccount));
        assert_ne!(id, unmatched_id(&e, "reversal", UnmatchedReason::NoReference));
        let other_tx = BankEntry {
            identity: "FT2".into(),
            ..e.clone()
        };
        assert_ne!(id, unmatched_id(&other_tx, "credit", UnmatchedReason::NoReference));
        assert!(!is_unmatched_id("U123"));
        assert!(!is_unmatched_id("u0123456789ABCDEF01234567"));
    }
}
