//! The payment providers' protocols (`docs/paygov.md`, `docs/vnpay.md`, `docs/bank-xml.md`):
//! the national payment platform (PayGov), VNPAY, and banks' ISO 20022 camt.054 notifications.
//! Each module builds and checks its provider's messages, owns its settings section and
//! implements [`PaymentProvider`]; what a notice does to a payment is decided in one place in
//! the gateway, the same for every route and for reconciliation.
//!
//! A provider speaks to the gateway in [`Notice`]s (paid, failed, undecided, reversal) and hears
//! back what the gateway's matching rules made of each ([`Applied`]). It never sees the store,
//! so the rules cannot be applied twice or differently by two providers. Adding a provider is a
//! module here, its mock, and one line in [`crate::standard`].

mod answer;
pub mod bank;
pub mod paygov;
mod schedule;
mod section;
pub mod vietqr;
pub mod vnpay;

pub use answer::{MAX_ANSWER_BYTES, read_json};
pub(crate) use section::provider_client;
pub use section::{ProviderSettings, check_http_url, parse_section, problem, settings_if_on};

pub use schedule::Schedule;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hcc_config::Problem;
use serde_json::{Value, json};

use crate::BoxFuture;

pub use crate::registry::BuildContext;

/// A provider as the registry knows it before configuration: its id (also the name of its
/// settings section), its callback routes, and how to build it from its section
/// ([`crate::standard`] lists the gateway's own).
#[derive(Clone, Copy)]
pub struct ProviderKind {
    /// `"paygov"`, `"vnpay"`, `"vietqr"`, `"banks"`: what `POST /v1/payments` names in `provider`, what a
    /// payment record stores, and the settings section's name.
    pub id: &'static str,
    /// The routes its callbacks arrive on. They exist whether or not it is configured, so an
    /// unconfigured provider's callback is answered "not configured", not "no such resource".
    /// Empty for a provider whose payments another one confirms (VietQR: the bank's camt.054).
    pub routes: &'static [CallbackRoute],
    /// For a provider that creates payments, the request fields it needs beyond the common
    /// ones; `None` for one that only confirms (banks).
    pub creates: Option<&'static [RequiredField]>,
    /// Parses and checks its section; `Ok(None)` when the section leaves it off.
    pub build: BuildFn,
}

/// A provider's build: its context (its section, absent when the configuration has none) to
/// the provider, `None` when the section leaves it off, or every problem found.
pub type BuildFn = fn(&BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>>;

/// A field of `POST /v1/payments` a provider needs, and the message when it is missing.
pub struct RequiredField {
    pub field: &'static str,
    pub message: &'static str,
}

/// A payment provider: creates payments (when it does), turns its callbacks into [`Notice`]s
/// and answers them in its own terms, and answers reconciliation queries (when it can).
pub trait PaymentProvider: Send + Sync + 'static {
    fn id(&self) -> &'static str;

    /// `None` for a provider that never creates a payment (a bank only notifies).
    fn creator(&self) -> Option<&dyn PaymentCreator>;

    /// `None` for a provider that cannot be asked about a payment, or is configured not to be.
    fn reconciler(&self) -> Option<&dyn Reconciler>;

    /// The cheap checks on a callback before its body is read (which caller, which content
    /// type): a refusal here costs nothing but a look-up.
    fn admit(&self, head: &CallbackHead<'_>) -> Result<(), Refused> {
        let _ = head;
        Ok(())
    }

    /// Authenticates and reads one callback. `Err` is answered as it is, with nothing applied.
    fn parse<'a>(&'a self, head: CallbackHead<'a>, body: Vec<u8>) -> BoxFuture<'a, Result<Parsed, Refused>>;
}

/// Creating a payment with a provider.
pub trait PaymentCreator: Send + Sync {
    /// How the citizen pays it: a page to send them to, or a code to scan. The payment is
    /// stored (pending) before this is called, so a confirmation can never find it missing.
    fn create<'a>(&'a self, order: &'a PaymentOrder<'a>) -> BoxFuture<'a, Result<Handoff, CreateError>>;

    /// How long a payment is meant to be paid in (`*.expire_minutes`): its `expires_at`.
    fn lifetime(&self) -> Duration;
}

/// How a created payment reaches the citizen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handoff {
    /// The provider's payment page (PayGov, VNPAY).
    Url(String),
    /// A VietQR payload (EMVCo) for the citizen's banking app to scan.
    Qr(String),
}

/// Asking a provider about one pending payment, because callbacks get lost.
pub trait Reconciler: Send + Sync {
    fn schedule(&self) -> Schedule;
    /// What the provider says of the payment: a settlement when it is paid or failed,
    /// [`Notice::Undecided`] when the provider says it is not paid (not completed yet, or never
    /// seen), and `None` when it says nothing trustworthy (unreachable, an unsigned or
    /// unexpected answer). Only an `Undecided` answer lets a payment past its lifetime expire.
    fn query<'a>(&'a self, payment: &'a PendingPayment) -> BoxFuture<'a, Option<Notice>>;
}

/// A stored pending payment, as a reconciler needs it.
#[derive(Debug, Clone)]
pub struct PendingPayment {
    pub reference: String,
    pub amount: u64,
    /// The provider-facing creation time (`yyyyMMddHHmmss`, Vietnam time) its creation carried.
    pub provider_created: String,
}

/// A payment to create, parsed at the edge: every field here is valid.
pub struct PaymentOrder<'a> {
    pub reference: &'a str,
    pub amount: u64,
    /// `Thanh toan phi, le phi ho so <MaHoSo>`: ASCII, as every provider takes it.
    pub description: &'a str,
    /// Creation time, Unix seconds, and the same as `yyyyMMddHHmmss` in Vietnam time.
    pub created_unix: i64,
    pub created: &'a str,
    pub ma_ho_so: &'a str,
    pub ma_tthc: &'a str,
    pub ten_tthc: &'a str,
    /// `MaDVC`/`TenDVC`: the public service, when the centre names it.
    pub service: &'a PublicService,
    pub agency: &'a Agency,
    pub fees: &'a [FeeLine],
    pub payer: &'a Payer,
}

/// Why a provider did not create a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("the provider refused the payment: {0}")]
    Refused(String),
    #[error("the provider did not answer in time: {0}")]
    Unreachable(String),
}

/// A receiving agency and its beneficiary account, from configuration (`agencies.<id>`).
#[derive(Debug, Clone)]
pub struct Agency {
    pub id: String,
    pub ma_don_vi: String,
    pub ten_don_vi: String,
    pub tk_thu_huong: String,
    pub ma_nh_thu_huong: String,
    pub ten_tk_thu_huong: String,
}

impl Agency {
    /// Every agency of the settings.
    pub fn all(s: &hcc_config::Settings) -> Vec<Agency> {
        s.agencies
            .iter()
            .map(|(id, a)| Agency {
                id: id.clone(),
                ma_don_vi: a.ma_don_vi.clone(),
                ten_don_vi: a.ten_don_vi.clone(),
                tk_thu_huong: a.tk_thu_huong.clone(),
                ma_nh_thu_huong: a.ma_nh_thu_huong.clone(),
                ten_tk_thu_huong: a.ten_tk_thu_huong.clone(),
            })
            .collect()
    }
}

/// The public service (`MaDVC`, `TenDVC`) a fee belongs to, as the centre names it; either may
/// be absent (a provider then decides what to send, docs/paygov.md).
#[derive(Debug, Clone, Default)]
pub struct PublicService {
    pub ma_dvc: Option<String>,
    pub ten_dvc: Option<String>,
}

/// The citizen who pays. The identity number, address, district and province go to a
/// provider's receipt once and are never stored or logged.
#[derive(Clone)]
pub struct Payer {
    pub ho_ten: String,
    pub so_cmnd: Option<String>,
    pub dia_chi: Option<String>,
    /// `HuyenNguoiNop`, `TinhNguoiNop`: the payer's district and province (personal data).
    pub huyen: Option<String>,
    pub tinh: Option<String>,
    /// The citizen's address as the centre saw it (`IpNguoiNop`).
    pub ip: Option<IpAddr>,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer").field("so_cmnd", &"[masked]").finish_non_exhaustive()
    }
}

/// `LoaiPhiLePhi`: 1 = phí (a service charge), 2 = lệ phí (a state fee).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeKind {
    Phi = 1,
    LePhi = 2,
}

/// One fee line of a payment, as the receipt lists it (`PhiLePhi`, the portal's vocabulary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    pub kind: FeeKind,
    pub code: String,
    pub name: String,
    pub amount: u64,
}

impl FeeLine {
    /// The receipt's form: amounts and kinds as strings, as public clients send them.
    pub fn wire(&self) -> Value {
        json!({"LoaiPhiLePhi": (self.kind as u8).to_string(), "MaPhiLePhi": self.code, "TenPhiLePhi": self.name, "SoTien": self.amount.to_string()})
    }
}

/// A callback route: its method, its path template (actix syntax, `{name}` for a parameter),
/// and its OpenAPI Operation object.
pub struct CallbackRoute {
    pub method: CallbackMethod,
    pub path: &'static str,
    /// The OpenAPI Operation object, as JSON text.
    pub operation: &'static str,
    /// The largest body the counterpart sends here, in bytes; `None` for the configured
    /// `server.body_limit_bytes`. The gateway refuses a larger one (413) before reading it, so
    /// a caller without a key holds at most this much of the gateway's memory.
    pub body_limit: Option<usize>,
}

impl CallbackRoute {
    /// The Operation object; a text that does not parse (a bug caught by the providers' tests)
    /// gives `null`.
    pub fn operation(&self) -> Value {
        serde_json::from_str(self.operation).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMethod {
    Get,
    Post,
}

impl CallbackMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackMethod::Get => "GET",
            CallbackMethod::Post => "POST",
        }
    }
}

/// What a provider sees of a callback request before and while reading it.
#[derive(Debug, Clone)]
pub struct CallbackHead<'a> {
    /// The route's path template, as in [`CallbackRoute::path`].
    pub route: &'a str,
    /// The path parameters by name, as matched.
    pub params: Vec<(&'a str, String)>,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The media type, lowercase, without parameters.
    pub media_type: Option<String>,
}

impl CallbackHead<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// A callback refused: the answer, and why (for the audit log, written escaped by the
/// gateway: it may quote the caller's text).
#[derive(Debug)]
pub struct Refused {
    pub reply: Reply,
    pub why: String,
}

impl Refused {
    pub fn new(reply: Reply, why: impl Into<String>) -> Self {
        Refused { reply, why: why.into() }
    }
}

/// A provider's answer to its caller. The gateway renders it over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `200` with this JSON body, in the provider's own terms.
    Json(Value),
    /// A problem+json answer.
    Problem(CallbackProblem),
    /// Answer as the gateway answers a storage failure (`503` or `500`).
    StoreFailed,
}

/// The problem answers a provider gives before anything is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackProblem {
    /// `400`: not a message of this protocol at all.
    Malformed(String),
    /// `422`: a document of the right kind that cannot be read, at this JSON Pointer.
    Invalid { pointer: String, message: String },
    /// `415`: the body must be of this media type.
    MediaType(&'static str),
    /// `413`: larger than this many bytes.
    TooLarge(usize),
    /// `401`: the signature or its certificate does not hold.
    BadSignature(String),
    /// `404`: nothing here for this caller (the message never repeats the caller's text).
    NotFound(String),
    /// `503` with `Retry-After`: the gateway's capacity for this caller is taken; nothing read.
    Busy { retry_after_secs: u64, detail: &'static str },
    /// `500`: the provider's own failure.
    Internal,
}

/// A callback read and authenticated: its notices, and how to answer once they are applied.
pub struct Parsed {
    pub notices: Vec<Notice>,
    /// Builds the answer from what each notice came to, in order, or from the storage failure
    /// that stopped the gateway (earlier notices may have been applied; every notice is
    /// idempotent, and the caller sends again).
    pub reply: ReplyFn,
}

/// How a provider answers once its notices are applied (see [`Parsed::reply`]).
pub type ReplyFn = Box<dyn FnOnce(Result<&[Applied], StoreFailed>) -> Reply + Send>;

/// The store could not be reached or read while notices were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFailed;

/// What a provider says about one payment, in the gateway's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Money arrived (or, if `paid` is false, the attempt failed and never pays).
    Settled(Settlement),
    /// Neither paid nor failed yet. Nothing changes; the gateway still says whether the payment
    /// is known and whether the amount is its amount ([`Applied::NotFinal`]).
    Undecided { reference: String, amount: u64 },
    /// A bank's booked VND credit to an account it reports (camt.054): it pays the fee it
    /// names when it credits that fee's agency's account; otherwise it is kept for a person.
    BankCredit(BankEntry),
    /// A bank taking a credit back (a booked DBIT entry with `RvslInd`): it reverses the credit
    /// it matches, or it is kept for a person.
    BankReversal(BankEntry),
}

impl Notice {
    /// The payment reference the notice names, when it names one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Notice::Settled(s) => Some(&s.reference),
            Notice::Undecided { reference, .. } => Some(reference),
            Notice::BankCredit(e) | Notice::BankReversal(e) => e.reference.as_deref(),
        }
    }
}

/// A provider's word that a payment was paid, or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub reference: String,
    /// Who says so: the provider's id, or `bank:<id>` for one bank.
    pub source: String,
    /// The provider's transaction: its identity for de-duplication.
    pub transaction: String,
    pub amount: u64,
    pub paid: bool,
    /// The provider's time of it, as it gave it ("" when none).
    pub time: String,
    pub amounts: AmountRule,
}

/// How a settlement's amount is matched with the payment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountRule {
    /// The ledger's rule: a paid amount that differs is recorded as `amount_mismatch` for a
    /// person and never pays; a failure is recorded whatever amount it names.
    Ledger,
    /// The amount is the order's, and the protocol checks it before anything else (VNPAY's
    /// IPN): a notice for another amount changes nothing ([`Applied::OrderAmountDiffers`]),
    /// except that a paid one is still recorded as `amount_mismatch` for a person.
    OrderFirst,
}

/// The bank's references of a transaction, by kind, from `TxDtls/Refs` (and, for an entry
/// with one transaction, `Ntry/AcctSvcrRef` as the account servicer's reference). Values are
/// as the bank wrote them; `NOTPROVIDED` is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankRefs {
    #[serde(rename = "AcctSvcrRef", skip_serializing_if = "Option::is_none", default)]
    pub acct_svcr_ref: Option<String>,
    #[serde(rename = "TxId", skip_serializing_if = "Option::is_none", default)]
    pub tx_id: Option<String>,
    #[serde(rename = "EndToEndId", skip_serializing_if = "Option::is_none", default)]
    pub end_to_end_id: Option<String>,
}

impl BankRefs {
    pub fn is_empty(&self) -> bool {
        self.acct_svcr_ref.is_none() && self.tx_id.is_none() && self.end_to_end_id.is_none()
    }

    /// Whether `self` (what a reversal carries) names `credit` (what a credit carried): every
    /// kind both hold is equal, and they share at least one. `None` when they share no kind,
    /// so that nothing can be compared.
    pub fn names(&self, credit: &BankRefs) -> Option<bool> {
        let pairs = [
            (&self.acct_svcr_ref, &credit.acct_svcr_ref),
            (&self.tx_id, &credit.tx_id),
            (&self.end_to_end_id, &credit.end_to_end_id),
        ];
        let shared: Vec<bool> = pairs.iter().filter_map(|(a, b)| Some(a.as_ref()? == b.as_ref()?)).collect();
        (!shared.is_empty()).then(|| shared.iter().all(|&same| same))
    }
}

/// One bank transaction as a camt.054 reports it, with what the gateway needs to match it to a
/// fee, or to show it to a person when it matches none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankEntry {
    /// The configured bank's id (`banks.<id>`).
    pub bank: String,
    /// `bank:<id>`: the route that confirms.
    pub source: String,
    /// The bank's NAPAS BIN (`banks.<id>.bin`), when configured.
    pub bin: Option<String>,
    /// The one reference of the gateway's shape the transaction names, if exactly one.
    pub reference: Option<String>,
    /// How many distinct references of the gateway's shape it names.
    pub references_found: usize,
    /// The transaction's identity at this bank: the bank's reference, or a content identity
    /// (`content:…`) when the bank gave none.
    pub identity: String,
    /// `identity` is a content identity: the same text may be a second, identical payment.
    pub content_identity: bool,
    /// SHA-256 (hex) of the document as received: which notification carried it.
    pub document: String,
    /// The credited (or debited) account, `Ntfctn/Acct/Id` (`IBAN` or `Othr/Id`), as written.
    pub account: Option<String>,
    pub amount: u64,
    pub currency: String,
    /// `BookgDt/Dt` (or the date of `BookgDt/DtTm`), as written ("" when none).
    pub booking_date: String,
    /// The references the transaction carries (for a reversal: those of the credit it takes back).
    pub refs: BankRefs,
    /// The remittance text (`Ustrd` lines, `Strd` references), as written.
    pub remittance: String,
}

/// Why a bank's money paid or reversed nothing, as the unmatched list names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmatchedReason {
    NoReference,
    AmbiguousReference,
    AmountMismatch,
    WrongAccount,
    UnmatchedReversal,
    PossibleRepeat,
    AlreadyPaid,
}

impl UnmatchedReason {
    pub const ALL: [UnmatchedReason; 7] = [
        UnmatchedReason::NoReference,
        UnmatchedReason::AmbiguousReference,
        UnmatchedReason::AmountMismatch,
        UnmatchedReason::WrongAccount,
        UnmatchedReason::UnmatchedReversal,
        UnmatchedReason::PossibleRepeat,
        UnmatchedReason::AlreadyPaid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnmatchedReason::NoReference => "no_reference",
            UnmatchedReason::AmbiguousReference => "ambiguous_reference",
            UnmatchedReason::AmountMismatch => "amount_mismatch",
            UnmatchedReason::WrongAccount => "wrong_account",
            UnmatchedReason::UnmatchedReversal => "unmatched_reversal",
            UnmatchedReason::PossibleRepeat => "possible_repeat",
            UnmatchedReason::AlreadyPaid => "already_paid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A payment's state, as the gateway stores it and as the providers hear of it: one
/// vocabulary for the ledger and the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Paid,
    Failed,
    AmountMismatch,
    Reversed,
    /// The provider's lifetime and the grace passed while the provider said it was unpaid.
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Paid => "paid",
            State::Failed => "failed",
            State::AmountMismatch => "amount_mismatch",
            State::Reversed => "reversed",
            State::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            State::Pending,
            State::Paid,
            State::Failed,
            State::AmountMismatch,
            State::Reversed,
            State::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What the gateway's matching rules made of one [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// No such payment: refused, nothing stored.
    Unknown,
    /// First valid confirmation: paid, the centre is told.
    Paid,
    /// Recorded as failed; never pays.
    Failed,
    /// A paid amount that differs: recorded for a person to look at, never paid.
    AmountMismatch,
    /// A second, different paid transaction for a paid payment: the first stands, the centre
    /// is told to refund.
    PaidTwice,
    /// This transaction was applied before, with this result: nothing happens.
    Duplicate(State),
    /// The payment was already settled by another transaction: nothing happens.
    AlreadySettled(State),
    /// [`AmountRule::OrderFirst`] or [`Notice::Undecided`]: the notice is for another amount
    /// than the payment's; nothing changed but a paid one's `amount_mismatch` record.
    OrderAmountDiffers,
    /// [`Notice::Undecided`] for a known payment of this amount: nothing changed.
    NotFinal,
    /// The paid payment is now reversed; the centre is told.
    Reversed,
    /// This reversal was applied before.
    ReversalDuplicate,
    /// Nothing to undo: the payment is not paid.
    ReversalNotPaid,
    /// The reversal does not match the payment that stands: nothing changed.
    ReversalMismatch,
    /// A bank's money that paid or reversed nothing it could: kept for a person, with why.
    Unmatched(UnmatchedReason),
}

/// The calendar and the time formats live in `hcc-core`; re-exported for the callers here.
pub use hcc_core::time::{civil_from_days, unix_now, vn_timestamp};

pub use crate::domain::{REFERENCE_LEN, RandomnessError, find_reference, is_reference, new_reference, parse_reference};

/// A provider's amount as the strict digit string it was signed as: ASCII digits only (no
/// sign, space, decimal point or exponent), no leading zero (`0` alone is zero), at most 19
/// digits, and within `u64`. Rust's own parser would take `+5` and `007`; an amount written
/// two ways could be read two ways by two readers of the same signed message.
pub fn strict_amount(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    s.parse().ok()
}

/// Why a provider's payment URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentUrlError {
    #[error("the payment URL is empty, too long, or holds spaces or control characters")]
    Text,
    #[error("the payment URL is not an absolute URL")]
    NotAUrl,
    #[error("the payment URL must be https (http only to a loopback host, for development)")]
    Scheme,
    #[error("the payment URL must not carry a user name or password")]
    Credentials,
}

/// The longest payment URL taken: it is shown to a citizen's browser, which has limits too.
const MAX_PAYMENT_URL: usize = 2048;

/// Checks a payment page URL a provider gave (PayGov's `UrlThanhToan`) or configuration names
/// (`vnpay.pay_url`) before a citizen is sent there: `https` with a host, or `http` only when
/// the host is a loopback address (`localhost`, `127.0.0.0/8`, `::1`). That is how development
/// is recognised: a mock on this machine; no setting can let plain http out to the network,
/// and `javascript:`, `data:` and relative URLs never pass. Returns the URL as given.
pub fn check_payment_url(raw: &str) -> Result<&str, PaymentUrlError> {
    if raw.is_empty() || raw.len() > MAX_PAYMENT_URL || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PaymentUrlError::Text);
    }
    let url = reqwest::Url::parse(raw).map_err(|_| PaymentUrlError::NotAUrl)?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(PaymentUrlError::NotAUrl)?;
    // The URL parser has already put IP literals in canonical form (IPv6 in brackets).
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(PaymentUrlError::Scheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PaymentUrlError::Credentials);
    }
    Ok(raw)
}

/// Builds `kind` as the registry would, from `section`, for a provider's own tests.
#[cfg(test)]
pub(crate) fn test_build(
    kind: &ProviderKind,
    section: Option<&hcc_config::Section>,
    production: bool,
    trust_ca_dir: &str,
    agencies: Vec<Agency>,
) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>> {
    let ctx = BuildContext {
        production,
        trust_ca_dir,
        agencies,
        ..BuildContext::bare(kind.id, section)
    };
    (kind.build)(&ctx)
}

/// An agency for tests: VietinBank's BIN and an account of digits.
#[cfg(test)]
pub(crate) fn test_agency() -> Agency {
    Agency {
        id: "ubnd".into(),
        ma_don_vi: "000.00.22.H46".into(),
        ten_don_vi: "UBND".into(),
        tk_thu_huong: "113366668888".into(),
        ma_nh_thu_huong: "970415".into(),
        ten_tk_thu_huong: "UBND".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversal_names_a_credit_by_every_kind_both_hold() {
        let r = |a: Option<&str>, t: Option<&str>, e: Option<&str>| BankRefs {
            acct_svcr_ref: a.map(Into::into),
            tx_id: t.map(Into::into),
            end_to_end_id: e.map(Into::into),
        };
        let credit = r(Some("FT1"), Some("TX1"), None);
        assert_eq!(r(Some("FT1"), None, None).names(&credit), Some(true));
        assert_eq!(r(Some("FT1"), Some("TX1"), Some("E2E")).names(&credit), Some(true));
        assert_eq!(r(Some("FT1"), Some("TX2"), None).names(&credit), Some(false), "one kind differs");
        assert_eq!(r(None, None, Some("E2E")).names(&credit), None, "nothing comparable");
        assert_eq!(r(None, None, None).names(&credit), None);
        assert_eq!(r(Some("FT1"), None, None).names(&BankRefs::default()), None);
    }

    #[test]
    fn timestamps_are_vietnam_time_on_a_24_hour_clock() {
        // 2024-11-26T06:30:05Z is 13:30:05 in Hà Nội.
        assert_eq!(vn_timestamp(1_732_602_605), "20241126133005");
    }

    #[test]
    fn provider_amounts_are_strict_digit_strings() {
        assert_eq!(strict_amount("15000000"), Some(15_000_000));
        assert_eq!(strict_amount("0"), Some(0));
        assert_eq!(strict_amount("18446744073709551615"), None, "20 digits");
        assert_eq!(strict_amount("9999999999999999999"), Some(9_999_999_999_999_999_999));
        for bad in ["", "+5", "-5", "05", "00", " 5", "5 ", "5.0", "1e5", "٥", "0x10", "5_000"] {
            assert_eq!(strict_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn payment_urls_are_https_or_loopback_http() {
        for ok in [
            "https://paygov.example.vn/pay/HCC241126ABCDEFGH",
            "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
            "http://127.0.0.1:9102/vnpay/pay",
            "http://127.8.9.10/pay",
            "http://localhost:9101/pay",
            "http://LOCALHOST/pay",
            "http://[::1]:9101/pay",
        ] {
            assert_eq!(check_payment_url(ok), Ok(ok));
        }
        for (bad, why) in [
            ("http://paygov.example.vn/pay", PaymentUrlError::Scheme),
            ("http://10.0.0.1/pay", PaymentUrlError::Scheme),
            ("http://localhost.attacker.example/pay", PaymentUrlError::Scheme),
            ("http://[::ffff:10.0.0.1]/pay", PaymentUrlError::Scheme),
            ("javascript:alert(1)", PaymentUrlError::NotAUrl),
            ("data:text/html,<script>alert(1)</script>", PaymentUrlError::NotAUrl),
            ("ftp://paygov.example.vn/pay", PaymentUrlError::Scheme),
            ("file:///etc/passwd", PaymentUrlError::NotAUrl),
            ("//paygov.example.vn/pay", PaymentUrlError::NotAUrl),
            ("/pay", PaymentUrlError::NotAUrl),
            ("https://user:pw@paygov.example.vn/pay", PaymentUrlError::Credentials),
            ("https://paygov.example.vn/pay\r\nX: y", PaymentUrlError::Text),
            (" https://paygov.example.vn/pay", PaymentUrlError::Text),
            ("", PaymentUrlError::Text),
        ] {
            assert_eq!(check_payment_url(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            check_payment_url(&format!("https://paygov.example.vn/{}", "a".repeat(2100))),
            Err(PaymentUrlError::Text)
        );
    }

    #[test]
    fn the_registry_names_each_provider_once_with_documented_routes() {
        let registry = crate::standard();
        let mut ids: Vec<&str> = registry.providers().iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), registry.providers().len());
        for kind in registry.providers() {
            // Only a provider whose payments another confirms has no route of its own.
            assert!(!kind.routes.is_empty() || kind.id == vietqr::ID, "{} has a callback route", kind.id);
            for r in kind.routes {
                let op = r.operation();
                assert!(op["responses"]["200"].is_object(), "{} {}: {op}", r.method.as_str(), r.path);
                assert!(r.path.starts_with("/v1/callbacks/"), "{}", r.path);
            }
        }
    }
}
