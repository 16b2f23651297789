//! Payment records, kept in the queue backend beside the centre's webhook queue (same Redis
//! hash tag), so that confirming a payment and queueing its `payment.confirmed` event are one
//! atomic step: two copies of a callback on two gateway processes make one event.

use serde::Serialize;

use super::{Millis, NewMessage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Pending,
    Paid,
    Failed,
    AmountMismatch,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Pending => "pending",
            PaymentState::Paid => "paid",
            PaymentState::Failed => "failed",
            PaymentState::AmountMismatch => "amount_mismatch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "paid" => Self::Paid,
            "failed" => Self::Failed,
            "amount_mismatch" => Self::AmountMismatch,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentRecord {
    #[serde(rename = "MaThamChieu")]
    pub reference: String,
    #[serde(rename = "MaHoSo")]
    pub ma_ho_so: String,
    #[serde(rename = "SoTien")]
    pub amount: u64,
    pub provider: String,
    pub status: PaymentState,
    pub payment_url: String,
    /// Fee lines and payer as JSON text, stored as given.
    #[serde(skip)]
    pub fees_json: String,
    #[serde(skip)]
    pub payer_json: String,
    #[serde(skip)]
    pub created_at: Millis,
    pub provider_transaction: Option<String>,
    pub provider_time: Option<String>,
    #[serde(skip)]
    pub settled_at: Option<Millis>,
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
    /// The amount differs: marked for a person to look at, never paid.
    AmountMismatch,
    /// First valid confirmation: paid, one event queued.
    Paid,
    /// The provider says the payment failed.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReverseOutcome {
    Unknown,
    /// A paid payment is pending again; an event tells the centre.
    Reversed,
    /// Nothing to undo (not paid, or this reversal was applied before).
    Ignored,
}

/// The event queued with a state change, for the centre's webhook queue.
pub struct Event {
    pub queue: String,
    pub message: NewMessage,
}
