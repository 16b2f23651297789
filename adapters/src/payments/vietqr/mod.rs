//! VietQR at the counter (`docs/vietqr.md`): one dynamic NAPAS 247 QR per fee, naming the
//! agency's account at its bank, the amount, and the payment reference in the transfer note.
//! The citizen's banking app pays by instant transfer; the agency's bank then reports the credit
//! in its signed camt.054, which the gateway already matches by reference, account and amount.
//! So this provider creates payments but takes no callback of its own, and nobody can be asked
//! about one: its "query" is the bank's silence (see [`Reconciler`] below), which is what lets a
//! payment past its lifetime expire, while a late credit still pays it.
//!
//! The payload (an EMVCo merchant-presented QR) is built without I/O in `wire.rs`,
//! re-exported here.

use std::sync::Arc;
use std::time::Duration;

use hcc_config::Problem;

use super::{
    BuildContext, CreateError, Handoff, Notice, PaymentCreator, PaymentOrder, PaymentProvider, PendingPayment, ProviderKind,
    ProviderSettings, Reconciler, Schedule, problem, settings_if_on,
};
use crate::BoxFuture;

mod wire;

pub use wire::*;

/// The provider's id: `"provider": "vietqr"` and the `[vietqr]` section.
pub const ID: &str = "vietqr";

pub const KIND: ProviderKind = ProviderKind {
    id: ID,
    // The bank's camt.054 confirms (the `banks` provider's route); VietQR has no callback.
    routes: &[],
    creates: Some(&[]),
    build: build_provider,
};

/// `vietqr.expire_minutes` when unset.
const DEFAULT_EXPIRE_MINUTES: u64 = 15;
/// The longest lifetime taken: a day (a counter QR is for the citizen standing there).
const MAX_EXPIRE_MINUTES: u64 = 24 * 60;
/// `vietqr.reconcile_interval_secs` when unset: how often due payments are looked at
/// (looking costs no call to anyone).
const DEFAULT_LOOK_EVERY_SECS: u64 = 60;
/// How long after its lifetime a payment is still looked at: past any grace the gateway takes
/// (`payments.expire_grace_minutes` is at most a week), so that every payment can expire.
const LOOK_AFTER_LIFETIME: Duration = Duration::from_secs(8 * 24 * 3600);

/// The `[vietqr]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VietqrSettings {
    pub enabled: bool,
    /// How long a QR is meant to be paid in; after it and `payments.expire_grace_minutes`
    /// without the bank reporting a credit, the payment is `expired`.
    pub expire_minutes: u64,
    /// The short text after the reference in the transfer note, made ASCII.
    pub label: String,
    /// How often pending VietQR payments are looked at, to expire those past their lifetime
    /// and the grace that the bank never reported paid.
    pub reconcile_interval_secs: u64,
}

impl Default for VietqrSettings {
    fn default() -> Self {
        VietqrSettings {
            enabled: false,
            expire_minutes: DEFAULT_EXPIRE_MINUTES,
            label: "LEPHI".into(),
            reconcile_interval_secs: DEFAULT_LOOK_EVERY_SECS,
        }
    }
}

impl ProviderSettings for VietqrSettings {
    fn is_on(&self) -> bool {
        self.enabled
    }

    /// The label must fit `62/08` beside the reference, and every agency a QR can name must
    /// have a NAPAS BIN and an account number a payer's app takes.
    fn problems(&self, ctx: &BuildContext<'_>) -> Vec<Problem> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if !(1..=MAX_EXPIRE_MINUTES).contains(&self.expire_minutes) {
            p.push(problem("vietqr.expire_minutes", format!("must be from 1 to {MAX_EXPIRE_MINUTES}")));
        }
        if let Err(e) = Label::parse(&self.label) {
            p.push(problem("vietqr.label", e.to_string()));
        }
        if ctx.agencies.is_empty() {
            p.push(problem(
                "agencies",
                "VietQR pays to an agency's account: configure at least one agencies.<id>",
            ));
        }
        for a in &ctx.agencies {
            if !is_bin(a.ma_nh_thu_huong.trim()) {
                p.push(problem(
                    format!("agencies.{}.ma_nh_thu_huong", a.id),
                    "must be the bank's 6-digit NAPAS BIN when vietqr.enabled (e.g. 970415 for VietinBank)",
                ));
            }
            if account_number(&a.tk_thu_huong).is_none() {
                p.push(problem(
                    format!("agencies.{}.tk_thu_huong", a.id),
                    format!("must be an account number of 1 to {MAX_ACCOUNT} letters or digits (spaces and dashes are dropped) when vietqr.enabled"),
                ));
            }
        }
        p
    }
}

fn build_provider(ctx: &BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>> {
    let Some(s) = settings_if_on::<VietqrSettings>(ctx)? else {
        return Ok(None);
    };
    let label = Label::parse(&s.label).map_err(|e| vec![problem("vietqr.label", e.to_string())])?;
    let lifetime = Duration::from_secs(s.expire_minutes * 60);
    Ok(Some(Arc::new(Vietqr {
        label,
        schedule: Schedule {
            every: Duration::from_secs(s.reconcile_interval_secs.max(1)),
            min_age: lifetime,
            max_age: lifetime.saturating_add(LOOK_AFTER_LIFETIME),
            lifetime,
        },
    })))
}

/// The VietQR provider.
pub struct Vietqr {
    label: Label,
    schedule: Schedule,
}

impl PaymentProvider for Vietqr {
    fn id(&self) -> &'static str {
        ID
    }

    fn creator(&self) -> Option<&dyn PaymentCreator> {
        Some(self)
    }

    fn reconciler(&self) -> Option<&dyn Reconciler> {
        Some(self)
    }

    /// VietQR has no callback route; the gateway never calls this.
    fn parse<'a>(&'a self, _head: super::CallbackHead<'a>, _body: Vec<u8>) -> BoxFuture<'a, Result<super::Parsed, super::Refused>> {
        Box::pin(async {
            Err(super::Refused::new(
                super::Reply::Problem(super::CallbackProblem::NotFound("VietQR takes no callback".into())),
                "VietQR takes no callback",
            ))
        })
    }
}

impl PaymentCreator for Vietqr {
    /// The QR's payload; nothing is sent anywhere, so this cannot be unreachable.
    fn create<'a>(&'a self, order: &'a PaymentOrder<'a>) -> BoxFuture<'a, Result<Handoff, CreateError>> {
        Box::pin(async move { payment_payload(order.agency, order.reference, order.amount, &self.label).map(Handoff::Qr) })
    }

    fn lifetime(&self) -> Duration {
        self.schedule.lifetime
    }
}

/// Nobody can be asked about a VietQR payment: the bank reports credits, it answers no
/// questions. A payment still pending when it is looked at is one the bank has not reported:
/// that silence is the only answer there is, and it is what lets the payment expire after its
/// lifetime and the grace. A credit reported later still pays it (a late payment).
impl Reconciler for Vietqr {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn query<'a>(&'a self, payment: &'a PendingPayment) -> BoxFuture<'a, Option<Notice>> {
        Box::pin(async move {
            Some(Notice::Undecided {
                reference: payment.reference.clone(),
                amount: payment.amount,
            })
        })
    }
}

#[cfg(test)]
mod tests;
