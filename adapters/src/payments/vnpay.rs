//! VNPAY 2.1.0 (payments notes §2 and docs/vnpay.md): the signed payment URL the citizen is sent
//! to, the IPN (a server-to-server HTTP GET) that confirms it, and `querydr`, the merchant API
//! the gateway asks when an IPN never came.
//!
//! Two signatures are in play. The payment URL and the IPN carry `vnp_SecureHash` = hex
//! HMAC-SHA512 over every non-empty `vnp_` parameter but the hash fields, sorted by key,
//! form-URL-encoded (space as `+`), joined with `&`. `querydr` requests and answers are signed
//! over fixed field lists joined with `|`. Hashes are compared case-insensitively and in
//! constant time. Amounts travel ×100.
//!
//! An IPN is a query string anybody who saw the return URL can replay and edit. Because empty
//! values are not hashed, everything read from an IPN is read from the very parameters that
//! were hashed: a repeated key is refused as a bad signature, and an empty value never decides
//! an outcome.

use std::collections::HashSet;
use std::net::IpAddr;

use std::sync::Arc;
use std::time::Duration;

use hcc_config::{Problem, Secret};
use serde_json::{Map, Value, json};

use super::{
    AmountRule, Applied, BuildContext, CallbackHead, CallbackMethod, CallbackRoute, CreateError, Handoff, Notice, Parsed, PaymentCreator,
    PaymentOrder, PaymentProvider, PendingPayment, ProviderKind, ProviderSettings, Reconciler, Refused, Reply, RequiredField, Schedule,
    Settlement, StoreFailed, check_http_url, problem, provider_client, settings_if_on,
};
use crate::BoxFuture;

pub const VERSION: &str = "2.1.0";

/// Larger IPN query strings are refused unread. A real IPN is well under 1 KiB.
pub const MAX_IPN_QUERY_BYTES: usize = 4096;
/// More IPN parameters than this are refused unread. A real IPN has about fifteen.
pub const MAX_IPN_PARAMS: usize = 40;

/// `vnp_Amount` is `Numeric[1,12]`, in VND ×100.
const MAX_AMOUNT_X100: u64 = 999_999_999_999;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn is_hashed(key: &str, value: &str) -> bool {
    key.starts_with("vnp_") && key != "vnp_SecureHash" && key != "vnp_SecureHashType" && !value.is_empty()
}

/// The string VNPAY signs, from unsorted parameters: non-empty `vnp_` parameters but the hash
/// fields, sorted by key, `k=v` form-encoded, joined with `&`.
fn signing_data(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params.iter().filter(|(k, v)| is_hashed(k, v)).collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac_hex(data: &str, secret: &str) -> Option<String> {
    hcc_signing::hmac_sha512(secret.as_bytes(), data.as_bytes()).ok().map(hex::encode)
}

/// Whether `claimed` (hex, any case) is the HMAC of `data`. Constant time in the content.
fn hash_matches(claimed: &str, data: &str, secret: &str) -> bool {
    let Some(expected) = hmac_hex(data, secret) else {
        return false;
    };
    let claimed = claimed.to_ascii_lowercase();
    !claimed.is_empty() && hcc_signing::ct_eq(claimed.as_bytes(), expected.as_bytes())
}

/// `yyyyMMddHHmmss` with plausible fields (VNPAY's `Numeric[14]` dates).
fn is_timestamp(s: &str) -> bool {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(u32::MAX);
    (1..=12).contains(&n(4..6)) && (1..=31).contains(&n(6..8)) && n(8..10) < 24 && n(10..12) < 60 && n(12..14) < 60
}

/// `vnp_Amount` (×100) to VND: a strict digit string ([`super::strict_amount`]: no sign, no
/// leading zero), positive, a whole number of đồng.
fn amount_vnd(raw: &str) -> Option<u64> {
    super::strict_amount(raw)
        .filter(|a| *a > 0 && *a <= MAX_AMOUNT_X100 && a.is_multiple_of(100))
        .map(|a| a / 100)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack listener reports) are sent as
/// the IPv4 address they are.
fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// What a payment's `vnp_ResponseCode` and `vnp_TransactionStatus` say, the same for IPNs and
/// `querydr` answers. An empty value was not signed and decides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both codes are `00`.
    Paid,
    /// `vnp_TransactionStatus` `01`: not completed yet.
    Pending,
    /// `vnp_TransactionStatus` `02`: the transaction failed.
    Failed,
    /// Anything else (a code missing, a reversal `04`, refund states `05`/`06`/`09`, suspected
    /// fraud `07`, a `00` status beside a non-`00` response code, codes not known): change
    /// nothing, let reconciliation or a person decide.
    Undecided,
}

fn classify(response_code: &str, transaction_status: &str) -> Outcome {
    if response_code.is_empty() || transaction_status.is_empty() {
        return Outcome::Undecided;
    }
    match (response_code, transaction_status) {
        ("00", "00") => Outcome::Paid,
        (_, "01") => Outcome::Pending,
        (_, "02") => Outcome::Failed,
        _ => Outcome::Undecided,
    }
}

// ---------------------------------------------------------------------------------------------
// The payment URL

pub struct PaymentRequest<'a> {
    pub pay_url: &'a str,
    pub tmn_code: &'a str,
    /// `vnp_TxnRef`, the payment reference.
    pub reference: &'a str,
    pub amount_vnd: u64,
    /// `vnp_OrderInfo`: printable ASCII (Vietnamese without diacritics), 1 to 255 characters.
    pub order_info: &'a str,
    /// When the payment was created, Unix seconds: `vnp_CreateDate`, and with
    /// `expire_minutes`, `vnp_ExpireDate`.
    pub created_at: i64,
    pub expire_minutes: u64,
    pub return_url: &'a str,
    /// The citizen's address (`vnp_IpAddr`), which VNPAY uses for its fraud checks.
    pub citizen_ip: IpAddr,
}

/// A signed payment URL, and the dates in it. `create_date` is what `querydr` must later send as
/// `vnp_TransactionDate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentUrl {
    pub url: String,
    pub create_date: String,
    pub expire_date: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PaymentUrlError {
    #[error("the amount must be between 1 and 9,999,999,999 VND")]
    Amount,
    #[error("vnp_OrderInfo must be 1 to 255 printable ASCII characters")]
    OrderInfo,
    #[error("vnp_TxnRef must be 1 to 100 letters, digits, '-' or '_'")]
    Reference,
    #[error("vnp_ExpireDate must be 1 to 1440 minutes after vnp_CreateDate")]
    ExpireMinutes,
    #[error("the signature could not be computed")]
    Crypto,
}

pub fn payment_url(r: &PaymentRequest<'_>, secret: &str) -> Result<PaymentUrl, PaymentUrlError> {
    let amount = r
        .amount_vnd
        .checked_mul(100)
        .filter(|a| (1..=MAX_AMOUNT_X100).contains(a))
        .ok_or(PaymentUrlError::Amount)?;
    if r.order_info.is_empty() || r.order_info.len() > 255 || !r.order_info.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(PaymentUrlError::OrderInfo);
    }
    if r.reference.is_empty()
        || r.reference.len() > 100
        || !r.reference.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PaymentUrlError::Reference);
    }
    if !(1..=1440).contains(&r.expire_minutes) {
        return Err(PaymentUrlError::ExpireMinutes);
    }
    // Both dates from one clock reading, so they can never disagree.
    let create_date = super::vn_timestamp(r.created_at);
    let expire_date = super::vn_timestamp(r.created_at + r.expire_minutes as i64 * 60);
    let params: Vec<(String, String)> = [
        ("vnp_Version", VERSION.to_string()),
        ("vnp_Command", "pay".into()),
        ("vnp_TmnCode", r.tmn_code.into()),
        ("vnp_Amount", amount.to_string()),
        ("vnp_CurrCode", "VND".into()),
        ("vnp_TxnRef", r.reference.into()),
        ("vnp_OrderInfo", r.order_info.into()),
        ("vnp_OrderType", "other".into()),
        ("vnp_Locale", "vn".into()),
        ("vnp_ReturnUrl", r.return_url.into()),
        ("vnp_IpAddr", ip_text(r.citizen_ip)),
        ("vnp_CreateDate", create_date.clone()),
        ("vnp_ExpireDate", expire_date.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // The URL's query is exactly the signed string, so what VNPAY parses is what was hashed.
    let data = signing_data(&params);
    let hash = hmac_hex(&data, secret).ok_or(PaymentUrlError::Crypto)?;
    Ok(PaymentUrl {
        url: format!("{}?{data}&vnp_SecureHash={hash}", r.pay_url),
        create_date,
        expire_date,
    })
}

// ---------------------------------------------------------------------------------------------
// The IPN

/// An IPN whose signature holds, read from the parameters that were hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipn {
    pub reference: String,
    pub amount_vnd: u64,
    pub outcome: Outcome,
    /// `outcome == Outcome::Paid`.
    pub paid: bool,
    /// `vnp_TransactionNo`; never empty when paid, may be empty otherwise.
    pub transaction: String,
    /// `vnp_PayDate` (`yyyyMMddHHmmss`, GMT+7) as sent; may be empty.
    pub pay_date: String,
    pub response_code: String,
    pub transaction_status: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IpnError {
    #[error("the IPN query is larger than this gateway reads")]
    TooLarge,
    #[error("the IPN repeats the parameter {0:?}")]
    RepeatedKey(String),
    #[error("vnp_SecureHash does not match")]
    BadSignature,
    #[error("vnp_TmnCode is not this merchant's")]
    WrongMerchant,
    #[error("vnp_TxnRef is missing")]
    MissingReference,
    #[error("vnp_TxnRef is not a payment reference of this gateway's shape")]
    NotOurReference,
    #[error("vnp_Amount is missing or not a whole number of VND ×100")]
    InvalidAmount,
    #[error("{0} is missing or invalid")]
    Field(&'static str),
}

impl IpnError {
    /// The `RspCode` to answer VNPAY with: `97` for anything whose signature can't be trusted
    /// (a repeated key is a forgery attempt), `01` for an order that can't be ours, `04` for a
    /// bad amount, `99` otherwise.
    pub fn rsp_code(&self) -> &'static str {
        match self {
            IpnError::TooLarge | IpnError::RepeatedKey(_) | IpnError::BadSignature => "97",
            IpnError::WrongMerchant | IpnError::MissingReference | IpnError::NotOurReference => "01",
            IpnError::InvalidAmount => "04",
            IpnError::Field(_) => "99",
        }
    }
}

/// Checks an IPN's raw query string for the merchant `tmn_code`. The signature comes first:
/// nothing else is read from an unsigned message, and only hashed (non-empty `vnp_`) values are
/// read at all.
pub fn verify_ipn(query: &str, tmn_code: &str, secret: &str) -> Result<Ipn, IpnError> {
    if query.len() > MAX_IPN_QUERY_BYTES {
        return Err(IpnError::TooLarge);
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if params.len() == MAX_IPN_PARAMS {
            return Err(IpnError::TooLarge);
        }
        // Keys are compared decoded, so `vnp%5FAmount` repeats `vnp_Amount`. Any key counts,
        // the unhashed ones too: a repeat has no business in a genuine IPN.
        if !seen.insert(k.to_string()) {
            return Err(IpnError::RepeatedKey(k.into_owned()));
        }
        params.push((k.into_owned(), v.into_owned()));
    }
    let raw = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str()).unwrap_or("");
    if !hash_matches(raw("vnp_SecureHash"), &signing_data(&params), secret) {
        return Err(IpnError::BadSignature);
    }
    // From here on, read only what was hashed.
    let signed = |k: &str| params.iter().find(|(pk, v)| pk == k && is_hashed(pk, v)).map(|(_, v)| v.as_str());
    if signed("vnp_TmnCode") != Some(tmn_code) || tmn_code.is_empty() {
        return Err(IpnError::WrongMerchant);
    }
    let reference = signed("vnp_TxnRef").ok_or(IpnError::MissingReference)?;
    // Only a reference of the gateway's own shape is ever looked up.
    let reference = super::parse_reference(reference).ok_or(IpnError::NotOurReference)?.to_string();
    let amount_vnd = signed("vnp_Amount").and_then(amount_vnd).ok_or(IpnError::InvalidAmount)?;
    let response_code = signed("vnp_ResponseCode").unwrap_or("").to_string();
    let transaction_status = signed("vnp_TransactionStatus").unwrap_or("").to_string();
    let outcome = classify(&response_code, &transaction_status);
    let transaction = signed("vnp_TransactionNo").unwrap_or("").to_string();
    if outcome == Outcome::Paid && transaction.is_empty() {
        return Err(IpnError::Field("vnp_TransactionNo"));
    }
    Ok(Ipn {
        reference,
        amount_vnd,
        outcome,
        paid: outcome == Outcome::Paid,
        transaction,
        pay_date: signed("vnp_PayDate").unwrap_or("").to_string(),
        response_code,
        transaction_status,
    })
}

// ---------------------------------------------------------------------------------------------
// querydr

/// The fields a `querydr` request signs, in order.
const QUERYDR_REQUEST_FIELDS: [&str; 9] = [
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
];

/// The fields a `querydr` answer signs, in order.
const QUERYDR_ANSWER_FIELDS: [&str; 15] = [
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
];

pub struct QueryDrRequest<'a> {
    pub tmn_code: &'a str,
    /// The payment's `vnp_TxnRef`.
    pub txn_ref: &'a str,
    pub order_info: &'a str,
    /// The payment's own `vnp_CreateDate` (from [`PaymentUrl::create_date`]): VNPAY finds the
    /// transaction by reference and this date.
    pub transaction_date: &'a str,
    /// Now, Unix seconds: the request's `vnp_CreateDate`.
    pub now: i64,
    /// This server's address (configuration `vnpay.server_ip`).
    pub server_ip: IpAddr,
    /// `vnp_RequestId`, unique per day; `None` draws 32 random hex characters.
    pub request_id: Option<&'a str>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QueryDrError {
    #[error("{0} is missing or invalid")]
    Field(&'static str),
    #[error("{0} is neither a string nor an integer")]
    FieldType(&'static str),
    #[error("the answer is not a JSON object")]
    NotAnObject,
    #[error("vnp_SecureHash of the answer does not match")]
    BadSignature,
    #[error("the answer names another merchant")]
    WrongMerchant,
    #[error("the answer is about another transaction")]
    WrongReference,
    #[error("the signature could not be computed, or no random request id could be drawn")]
    Crypto,
}

/// The JSON body to POST to the merchant API (`vnpay.api_url`). Its `vnp_RequestId` is in it.
pub fn querydr_request(r: &QueryDrRequest<'_>, secret: &str) -> Result<Value, QueryDrError> {
    let request_id = match r.request_id {
        Some(id) => id.to_string(),
        None => {
            let mut b = [0u8; 16];
            hcc_signing::random_bytes(&mut b).map_err(|_| QueryDrError::Crypto)?;
            hex::encode(b)
        }
    };
    if request_id.is_empty() || request_id.len() > 32 || !request_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(QueryDrError::Field("vnp_RequestId"));
    }
    if !is_timestamp(r.transaction_date) {
        return Err(QueryDrError::Field("vnp_TransactionDate"));
    }
    if r.txn_ref.is_empty() {
        return Err(QueryDrError::Field("vnp_TxnRef"));
    }
    if r.order_info.is_empty() {
        return Err(QueryDrError::Field("vnp_OrderInfo"));
    }
    let create_date = super::vn_timestamp(r.now);
    let ip = ip_text(r.server_ip);
    let values = [
        request_id.as_str(),
        VERSION,
        "querydr",
        r.tmn_code,
        r.txn_ref,
        r.transaction_date,
        create_date.as_str(),
        ip.as_str(),
        r.order_info,
    ];
    let hash = hmac_hex(&values.join("|"), secret).ok_or(QueryDrError::Crypto)?;
    let mut body = Map::new();
    for (k, v) in QUERYDR_REQUEST_FIELDS.iter().zip(values) {
        body.insert((*k).to_string(), json!(v));
    }
    body.insert("vnp_SecureHash".into(), json!(hash));
    Ok(Value::Object(body))
}

/// What VNPAY says of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryDr {
    /// `vnp_ResponseCode` and `vnp_TransactionStatus` both `00`. The caller compares the amount
    /// with the stored payment's.
    Paid {
        amount_vnd: u64,
        transaction: String,
        pay_date: String,
        bank_code: String,
    },
    /// `vnp_TransactionStatus` `01`: not completed yet; ask again later.
    Pending,
    /// `vnp_TransactionStatus` `02`: the transaction failed.
    Failed { transaction_status: String },
    /// `vnp_ResponseCode` `91`: VNPAY has no such transaction (the citizen never reached it, or
    /// the reference and date don't match).
    NotFound,
    /// Anything else (another response code such as `94` duplicate request or `99`, or a
    /// status that is not final): can't tell; ask again later or let a person look.
    Unknown { response_code: String, transaction_status: String },
}

/// A JSON field as the string that was signed. Strings as they are; integers in decimal (what
/// VNPAY's own and public clients' `String(n)` gives); absent and `null` as the empty string.
/// Anything else (fractions, booleans, arrays, objects) is refused: no one can say how it was
/// rendered when signed.
fn field_text(m: &Map<String, Value>, key: &'static str) -> Result<String, QueryDrError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Some(_) => Err(QueryDrError::FieldType(key)),
    }
}

/// Checks a `querydr` answer for the transaction `txn_ref` of merchant `tmn_code`. The
/// signature over the fifteen answer fields comes first, for every answer: an unsigned one says
/// nothing (the caller treats the error as "ask again later").
pub fn parse_querydr_answer(answer: &Value, txn_ref: &str, tmn_code: &str, secret: &str) -> Result<QueryDr, QueryDrError> {
    let m = answer.as_object().ok_or(QueryDrError::NotAnObject)?;
    let mut values = Vec::with_capacity(QUERYDR_ANSWER_FIELDS.len());
    for key in QUERYDR_ANSWER_FIELDS {
        values.push(field_text(m, key)?);
    }
    let claimed = match m.get("vnp_SecureHash") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(QueryDrError::BadSignature),
    };
    if !hash_matches(claimed, &values.join("|"), secret) {
        return Err(QueryDrError::BadSignature);
    }
    let get = |key: &str| {
        QUERYDR_ANSWER_FIELDS
            .iter()
            .position(|k| *k == key)
            .map(|i| values[i].as_str())
            .unwrap_or("")
    };
    // An answer may leave out who it is about (error answers do); when it names someone, it must
    // be us and this transaction.
    let (their_tmn, their_ref) = (get("vnp_TmnCode"), get("vnp_TxnRef"));
    if !their_tmn.is_empty() && their_tmn != tmn_code {
        return Err(QueryDrError::WrongMerchant);
    }
    if !their_ref.is_empty() && their_ref != txn_ref {
        return Err(QueryDrError::WrongReference);
    }
    let (code, status) = (get("vnp_ResponseCode"), get("vnp_TransactionStatus"));
    match code {
        "00" => {}
        "91" => return Ok(QueryDr::NotFound),
        _ => {
            return Ok(QueryDr::Unknown {
                response_code: code.into(),
                transaction_status: status.into(),
            });
        }
    }
    // A successful answer must say, signed, whose transaction it describes.
    if their_tmn.is_empty() || tmn_code.is_empty() {
        return Err(QueryDrError::WrongMerchant);
    }
    if their_ref.is_empty() {
        return Err(QueryDrError::WrongReference);
    }
    if get("vnp_Command") != "querydr" {
        return Err(QueryDrError::Field("vnp_Command"));
    }
    Ok(match classify(code, status) {
        Outcome::Paid => {
            let amount_vnd = amount_vnd(get("vnp_Amount")).ok_or(QueryDrError::Field("vnp_Amount"))?;
            let transaction = get("vnp_TransactionNo");
            if transaction.is_empty() {
                return Err(QueryDrError::Field("vnp_TransactionNo"));
            }
            QueryDr::Paid {
                amount_vnd,
                transaction: transaction.into(),
                pay_date: get("vnp_PayDate").into(),
                bank_code: get("vnp_BankCode").into(),
            }
        }
        Outcome::Pending => QueryDr::Pending,
        Outcome::Failed => QueryDr::Failed {
            transaction_status: status.into(),
        },
        Outcome::Undecided => QueryDr::Unknown {
            response_code: code.into(),
            transaction_status: status.into(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// The provider: settings, the payment URL, the IPN, querydr

/// The `[vnpay]` section. VNPAY is on when `tmn_code` is set.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VnpaySettings {
    pub tmn_code: String,
    pub hash_secret: Secret,
    pub pay_url: String,
    /// Where VNPAY sends the citizen back after paying (the centre's page).
    pub return_url: String,
    /// The merchant API (`querydr`), e.g. `https://.../merchant_webapi/api/transaction`; empty:
    /// no reconciliation.
    pub api_url: String,
    /// The payment URL's lifetime (`vnp_ExpireDate` = creation + this).
    pub expire_minutes: u64,
    /// `vnp_IpAddr` of the server in `querydr` requests.
    pub server_ip: String,
    /// How long one `querydr` call may take.
    pub query_timeout_ms: u64,
    pub reconcile_interval_secs: u64,
    pub reconcile_min_age_secs: u64,
    pub reconcile_max_age_secs: u64,
}

impl Default for VnpaySettings {
    fn default() -> Self {
        VnpaySettings {
            tmn_code: String::new(),
            hash_secret: Secret::default(),
            pay_url: String::new(),
            return_url: String::new(),
            api_url: String::new(),
            expire_minutes: 15,
            server_ip: String::new(),
            query_timeout_ms: 4_000,
            reconcile_interval_secs: 300,
            reconcile_min_age_secs: 900,
            reconcile_max_age_secs: 3 * 86_400,
        }
    }
}

impl ProviderSettings for VnpaySettings {
    fn is_on(&self) -> bool {
        !self.tmn_code.is_empty()
    }

    /// Everything its types cannot say, by key; production refuses a hash secret under 16
    /// bytes, with which anyone could forge an IPN, and `http` to anything but a loopback host.
    fn problems(&self, ctx: &BuildContext<'_>) -> Vec<Problem> {
        let mut p = Vec::new();
        for (key, url) in [
            ("vnpay.api_url", &self.api_url),
            ("vnpay.pay_url", &self.pay_url),
            ("vnpay.return_url", &self.return_url),
        ] {
            if !url.trim().is_empty() {
                check_http_url(&mut p, key, url, ctx.production);
            }
        }
        // An empty return URL is left out of the signed URL (empty values are not hashed), and
        // VNPAY refuses a payment without `vnp_ReturnUrl`.
        // (A non-empty one is checked as a URL above.)
        if self.is_on() && self.return_url.trim().is_empty() {
            p.push(problem(
                "vnpay.return_url",
                "is required while VNPAY is on: VNPAY refuses a payment without vnp_ReturnUrl",
            ));
        }
        if self.is_on() && !(1..=1440).contains(&self.expire_minutes) {
            p.push(problem("vnpay.expire_minutes", "must be between 1 and 1440"));
        }
        if self.is_on() && !(100..=60_000).contains(&self.query_timeout_ms) {
            p.push(problem("vnpay.query_timeout_ms", "must be between 100 and 60000"));
        }
        if !self.api_url.is_empty() && self.server_ip.parse::<IpAddr>().is_err() {
            p.push(problem(
                "vnpay.server_ip",
                "must be this server's IP address (vnp_IpAddr of querydr)",
            ));
        }
        if self.is_on() {
            hcc_config::check_shared_secret(&mut p, "vnpay.hash_secret", &self.hash_secret, ctx.production, "VNPAY's IPNs");
        }
        p
    }
}

pub const ID: &str = "vnpay";

/// VNPAY as the registry lists it.
pub const KIND: ProviderKind = ProviderKind {
    id: ID,
    routes: &[CallbackRoute {
        method: CallbackMethod::Get,
        path: "/v1/callbacks/vnpay/ipn",
        operation: IPN_OPERATION,
        // An IPN is a GET: its parameters are in the query, a body is never read.
        body_limit: Some(4 * 1024),
    }],
    creates: Some(&[RequiredField {
        field: "IpNguoiNop",
        message: "is required for VNPAY: the citizen's IP address",
    }]),
    build: build_provider,
};

const IPN_OPERATION: &str = r##"{
    "summary": "VNPAY's IPN (authenticated by vnp_SecureHash, no API key)",
    "description": "Checks in VNPAY's order: signature over exactly the parameters read (a repeated key is a forgery), merchant, order, amount, then applies only while pending. Every answer, a storage error included, is a 200 in VNPAY's terms (RspCode).",
    "tags": [
        "callbacks"
    ],
    "parameters": [
        {
            "in": "query",
            "name": "vnp_TxnRef",
            "required": false,
            "description": "The payment's MaThamChieu",
            "schema": {
                "type": "string"
            }
        },
        {
            "in": "query",
            "name": "vnp_Amount",
            "required": false,
            "description": "The amount in đồng × 100",
            "schema": {
                "type": "string"
            }
        },
        {
            "in": "query",
            "name": "vnp_ResponseCode",
            "required": false,
            "schema": {
                "type": "string"
            }
        },
        {
            "in": "query",
            "name": "vnp_SecureHash",
            "required": false,
            "description": "HMAC-SHA512 over the other vnp_ parameters",
            "schema": {
                "type": "string"
            }
        }
    ],
    "responses": {
        "200": {
            "description": "VNPAY's answer",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "RspCode 00 is taken",
                        "required": [
                            "RspCode",
                            "Message"
                        ],
                        "properties": {
                            "RspCode": {
                                "type": "string",
                                "pattern": "^[0-9]{2}$"
                            },
                            "Message": {
                                "type": "string"
                            }
                        }
                    }
                }
            }
        },
        "503": {
            "description": "VNPAY is not configured"
        }
    }
}"##;

fn build_provider(ctx: &BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>> {
    let Some(s) = settings_if_on::<VnpaySettings>(ctx)? else {
        return Ok(None);
    };
    // Citizens are sent there; the same rule as a provider's own payment URL.
    if let Err(e) = super::check_payment_url(&s.pay_url) {
        return Err(vec![problem("vnpay.pay_url", e.to_string())]);
    }
    let querydr = if s.api_url.is_empty() {
        None
    } else {
        // Checked by `problems` above.
        let server_ip = s
            .server_ip
            .parse()
            .map_err(|_| vec![problem("vnpay.server_ip", "is not an IP address")])?;
        Some(Querydr {
            tmn_code: s.tmn_code.clone(),
            hash_secret: s.hash_secret.clone(),
            api_url: s.api_url.clone(),
            server_ip,
            // The payment URL's `vnp_ExpireDate` is creation + `expire_minutes`.
            schedule: Schedule::from_secs(s.reconcile_interval_secs, s.reconcile_min_age_secs, s.reconcile_max_age_secs)
                .with_lifetime(Duration::from_secs(s.expire_minutes * 60)),
            client: provider_client("vnpay.api_url", Duration::from_millis(s.query_timeout_ms))?,
        })
    };
    Ok(Some(Arc::new(Vnpay { settings: s, querydr })))
}

/// VNPAY, configured.
pub struct Vnpay {
    settings: VnpaySettings,
    /// Present when `api_url` is set.
    querydr: Option<Querydr>,
}

/// VNPAY's merchant API, for reconciliation.
struct Querydr {
    tmn_code: String,
    hash_secret: Secret,
    api_url: String,
    server_ip: IpAddr,
    schedule: Schedule,
    client: reqwest::Client,
}

fn rsp(code: &str, message: &str) -> Reply {
    Reply::Json(json!({"RspCode": code, "Message": message}))
}

impl Querydr {
    /// `querydr` for one payment, with the `vnp_CreateDate` of its payment URL. The answer's
    /// signature is checked before anything in it is believed; only a paid answer or a
    /// definite failure says anything.
    async fn query_one(&self, payment: &PendingPayment) -> Option<Notice> {
        let now = super::unix_now();
        let body = querydr_request(
            &QueryDrRequest {
                tmn_code: &self.tmn_code,
                txn_ref: &payment.reference,
                order_info: &format!("Truy van giao dich {}", payment.reference),
                transaction_date: &payment.provider_created,
                now,
                server_ip: self.server_ip,
                request_id: None,
            },
            self.hash_secret.expose(),
        )
        .ok()?;
        let answer = match self.client.post(&self.api_url).json(&body).send().await {
            // Only a 2xx answer is read: a redirect or an error page says nothing.
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok()?,
            Ok(r) => {
                tracing::warn!(reference = %payment.reference, status = r.status().as_u16(), "VNPAY querydr answered without success; asking again next round");
                return None;
            }
            Err(e) => {
                tracing::warn!(reference = %payment.reference, error = %e, "VNPAY querydr failed");
                return None;
            }
        };
        let settled = |transaction: String, amount: u64, paid: bool, time: String| {
            Some(Notice::Settled(Settlement {
                reference: payment.reference.clone(),
                source: ID.into(),
                transaction,
                amount,
                paid,
                time,
                amounts: AmountRule::Ledger,
            }))
        };
        match parse_querydr_answer(&answer, &payment.reference, &self.tmn_code, self.hash_secret.expose()) {
            Ok(QueryDr::Paid {
                amount_vnd,
                transaction,
                pay_date,
                ..
            }) => settled(transaction, amount_vnd, true, pay_date),
            Ok(QueryDr::Failed { transaction_status }) => settled(
                format!("querydr-failed:{transaction_status}"),
                payment.amount,
                false,
                super::vn_timestamp(now),
            ),
            // VNPAY says it is not paid: not completed yet, or never seen (the citizen never
            // opened the page). Past its lifetime and the grace, that ends it (`expired`).
            Ok(QueryDr::Pending | QueryDr::NotFound) => Some(Notice::Undecided {
                reference: payment.reference.clone(),
                amount: payment.amount,
            }),
            Ok(other) => {
                tracing::debug!(reference = %payment.reference, answer = ?other, "VNPAY querydr: nothing definite");
                None
            }
            Err(e) => {
                tracing::warn!(alarm = true, reference = %payment.reference, error = %e, "VNPAY querydr answer refused; asking again next round");
                None
            }
        }
    }
}

impl PaymentProvider for Vnpay {
    fn id(&self) -> &'static str {
        ID
    }

    fn creator(&self) -> Option<&dyn PaymentCreator> {
        Some(self)
    }

    fn reconciler(&self) -> Option<&dyn Reconciler> {
        self.querydr.as_ref().map(|q| q as &dyn Reconciler)
    }

    /// VNPAY's order of checks: signature (over exactly the parameters read; a repeated key is
    /// a forgery), merchant, then, by the gateway, order and amount, and only then the outcome,
    /// applied only if still pending. Every answer, a storage error included, is HTTP 200 with
    /// an `RspCode`, as VNPAY expects.
    fn parse<'a>(&'a self, head: CallbackHead<'a>, _body: Vec<u8>) -> BoxFuture<'a, Result<Parsed, Refused>> {
        Box::pin(async move {
            let ipn = verify_ipn(head.query, &self.settings.tmn_code, self.settings.hash_secret.expose()).map_err(|e| {
                let code = e.rsp_code();
                let message = if code == "97" { "Invalid signature" } else { "Invalid request" };
                Refused::new(rsp(code, message), e.to_string())
            })?;
            let notice = match ipn.outcome {
                Outcome::Paid | Outcome::Failed => Notice::Settled(Settlement {
                    reference: ipn.reference.clone(),
                    source: ID.into(),
                    transaction: settlement_transaction(&ipn),
                    amount: ipn.amount_vnd,
                    paid: ipn.paid,
                    time: ipn.pay_date.clone(),
                    amounts: AmountRule::OrderFirst,
                }),
                // Neither paid nor failed (a missing code, or "in progress"): nothing is decided
                // here; VNPAY sends again and reconciliation asks.
                Outcome::Pending | Outcome::Undecided => Notice::Undecided {
                    reference: ipn.reference.clone(),
                    amount: ipn.amount_vnd,
                },
            };
            let answer = |outcomes: Result<&[Applied], StoreFailed>| {
                let Ok([outcome]) = outcomes else {
                    return rsp("99", "Unknown error");
                };
                match outcome {
                    Applied::Paid | Applied::Failed => rsp("00", "Confirm Success"),
                    Applied::Unknown => rsp("01", "Order not found"),
                    Applied::AmountMismatch | Applied::OrderAmountDiffers => rsp("04", "Invalid amount"),
                    Applied::NotFinal => rsp("99", "Transaction not final"),
                    Applied::Duplicate(_) | Applied::AlreadySettled(_) | Applied::PaidTwice => rsp("02", "Order already confirmed"),
                    Applied::Reversed
                    | Applied::ReversalDuplicate
                    | Applied::ReversalNotPaid
                    | Applied::ReversalMismatch
                    | Applied::Unmatched(_) => rsp("99", "Unknown error"),
                }
            };
            Ok(Parsed {
                notices: vec![notice],
                reply: Box::new(answer),
            })
        })
    }
}

/// The transaction an IPN's settlement names: VNPAY's `vnp_TransactionNo` when paid (never
/// empty then). A failure is named by VNPAY's answer instead: VNPAY sends
/// `vnp_TransactionNo=0` (or nothing) on a cancelled or failed payment, which identifies
/// nothing, and the ledger keeps a failure under its payment's reference anyway
/// (docs/vnpay.md "Failures belong to their payment").
fn settlement_transaction(ipn: &Ipn) -> String {
    if ipn.paid {
        ipn.transaction.clone()
    } else {
        format!("ipn-failed:{}:{}", ipn.response_code, ipn.transaction_status)
    }
}

impl PaymentCreator for Vnpay {
    /// VNPAY's payment page for the citizen, signed, expiring after `vnpay.expire_minutes`.
    fn create<'a>(&'a self, order: &'a PaymentOrder<'a>) -> BoxFuture<'a, Result<Handoff, CreateError>> {
        Box::pin(async move {
            let s = &self.settings;
            let ip = order
                .payer
                .ip
                .ok_or_else(|| CreateError::Refused("VNPAY needs the citizen's IpNguoiNop".into()))?;
            payment_url(
                &PaymentRequest {
                    pay_url: &s.pay_url,
                    tmn_code: &s.tmn_code,
                    reference: order.reference,
                    amount_vnd: order.amount,
                    order_info: order.description,
                    created_at: order.created_unix,
                    expire_minutes: s.expire_minutes,
                    return_url: &s.return_url,
                    citizen_ip: ip,
                },
                s.hash_secret.expose(),
            )
            .map(|u| Handoff::Url(u.url))
            .map_err(|e| CreateError::Refused(e.to_string()))
        })
    }

    fn lifetime(&self) -> Duration {
        Duration::from_secs(self.settings.expire_minutes * 60)
    }
}

impl Reconciler for Querydr {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn query<'a>(&'a self, payment: &'a PendingPayment) -> BoxFuture<'a, Option<Notice>> {
        Box::pin(self.query_one(payment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcc_config::Section;

    const SECRET: &str = "vnpay-dev-hash-secret";

    fn hmac(data: &str) -> String {
        hex::encode(hcc_signing::hmac_sha512(SECRET.as_bytes(), data.as_bytes()).unwrap())
    }

    fn query_param(query: &str, key: &str) -> String {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    // --- hashing rules --------------------------------------------------------------------

    #[test]
    fn spaces_encode_as_plus_and_empty_values_are_left_out() {
        let p = vec![
            ("vnp_B".to_string(), "a b".to_string()),
            ("vnp_A".to_string(), "x/y".to_string()),
            ("vnp_C".to_string(), String::new()),
            ("other".to_string(), "z".to_string()),
            ("vnp_SecureHashType".to_string(), "HmacSHA512".to_string()),
        ];
        assert_eq!(signing_data(&p), "vnp_A=x%2Fy&vnp_B=a+b");
    }

    #[test]
    fn timestamps_are_checked_for_shape() {
        assert!(is_timestamp("20241126133005"));
        assert!(!is_timestamp("20241326133005"));
        assert!(!is_timestamp("2024112613300"));
        assert!(!is_timestamp("2024112613300x"));
        assert_eq!(amount_vnd("+15000000"), None);
        assert_eq!(amount_vnd("015000000"), None);
        assert_eq!(amount_vnd("-15000000"), None);
        assert_eq!(amount_vnd("15000000"), Some(150_000));
        assert_eq!(amount_vnd("15000050"), None);
        assert_eq!(amount_vnd("0"), None);
    }

    // --- payment URL ----------------------------------------------------------------------

    fn request(ip: &str, created_at: i64) -> PaymentRequest<'static> {
        PaymentRequest {
            pay_url: "http://127.0.0.1:9102/vnpay/pay",
            tmn_code: "HCCDEV01",
            reference: "HCC241126ABCDEFGH",
            amount_vnd: 150_000,
            order_info: "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
            created_at,
            expire_minutes: 15,
            return_url: "https://centre.example/paid",
            citizen_ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn the_payment_url_is_signed_over_a_hand_written_string() {
        // 1_732_602_605 is 2024-11-26 13:30:05 in Hà Nội; +15 minutes is 13:45:05.
        let u = payment_url(&request("203.0.113.7", 1_732_602_605), SECRET).unwrap();
        let expected = "vnp_Amount=15000000&vnp_Command=pay&vnp_CreateDate=20241126133005&vnp_CurrCode=VND\
            &vnp_ExpireDate=20241126134505&vnp_IpAddr=203.0.113.7&vnp_Locale=vn\
            &vnp_OrderInfo=Thanh+toan+phi%2C+le+phi+ho+so+000.00.22.H46-241125-0001&vnp_OrderType=other\
            &vnp_ReturnUrl=https%3A%2F%2Fcentre.example%2Fpaid&vnp_TmnCode=HCCDEV01&vnp_TxnRef=HCC241126ABCDEFGH\
            &vnp_Version=2.1.0";
        assert_eq!(
            u.url,
            format!("http://127.0.0.1:9102/vnpay/pay?{expected}&vnp_SecureHash={}", hmac(expected))
        );
        assert_eq!(
            (u.create_date.as_str(), u.expire_date.as_str()),
            ("20241126133005", "20241126134505")
        );
    }

    #[test]
    fn expiry_crosses_midnight_and_ipv6_citizens_are_encoded() {
        // 2024-11-26 23:50:00 in Hà Nội is 16:50:00Z = 1_732_639_800.
        let u = payment_url(&request("2001:db8::1", 1_732_639_800), SECRET).unwrap();
        assert_eq!(
            (u.create_date.as_str(), u.expire_date.as_str()),
            ("20241126235000", "20241127000500")
        );
        let query = u.url.split_once('?').unwrap().1;
        assert!(query.contains("&vnp_IpAddr=2001%3Adb8%3A%3A1&"), "{query}");
        assert_eq!(query_param(query, "vnp_ExpireDate"), "20241127000500");
        // A dual-stack listener's IPv4-mapped address goes out as plain IPv4.
        let u = payment_url(&request("::ffff:198.51.100.4", 1_732_639_800), SECRET).unwrap();
        assert!(u.url.contains("&vnp_IpAddr=198.51.100.4&"), "{}", u.url);
    }

    #[test]
    fn payment_urls_refuse_what_vnpay_would() {
        let mut r = request("203.0.113.7", 1_732_602_605);
        r.amount_vnd = 0;
        assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Amount);
        r.amount_vnd = 10_000_000_000;
        assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Amount);
        r.amount_vnd = u64::MAX;
        assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Amount);
        let mut r = request("203.0.113.7", 1_732_602_605);
        r.order_info = "Lệ phí";
        assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::OrderInfo);
        let mut r = request("203.0.113.7", 1_732_602_605);
        r.reference = "HCC&vnp_Amount=1";
        assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Reference);
        let mut r = request("203.0.113.7", 1_732_602_605);
        r.expire_minutes = 0;
        assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::ExpireMinutes);
    }

    // --- IPN ------------------------------------------------------------------------------

    /// A genuine IPN as VNPAY would send it: the hashed string is written out by hand.
    const PAID_HASHED: &str = "vnp_Amount=15000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14123456&vnp_CardType=ATM\
        &vnp_OrderInfo=Thanh+toan+le+phi&vnp_PayDate=20241126133505&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01\
        &vnp_TransactionNo=14123456&vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";

    fn paid_ipn() -> String {
        // Sent in VNPAY's own (unsorted) order, with the hash type and an upper-case hash.
        format!(
            "vnp_TmnCode=HCCDEV01&vnp_Amount=15000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14123456&vnp_CardType=ATM\
             &vnp_PayDate=20241126133505&vnp_OrderInfo=Thanh+toan+le+phi&vnp_TransactionNo=14123456\
             &vnp_ResponseCode=00&vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH\
             &vnp_SecureHashType=HmacSHA512&vnp_SecureHash={}",
            hmac(PAID_HASHED).to_uppercase()
        )
    }

    #[test]
    fn a_genuine_paid_ipn_is_read_from_its_hashed_values() {
        let ipn = verify_ipn(&paid_ipn(), "HCCDEV01", SECRET).unwrap();
        assert_eq!(
            ipn,
            Ipn {
                reference: "HCC241126ABCDEFGH".into(),
                amount_vnd: 150_000,
                outcome: Outcome::Paid,
                paid: true,
                transaction: "14123456".into(),
                pay_date: "20241126133505".into(),
                response_code: "00".into(),
                transaction_status: "00".into(),
            }
        );
        // Extra non-vnp parameters are not hashed, are ignored, and are never read.
        let with_junk = format!("utm_source=x&{}", paid_ipn());
        assert!(verify_ipn(&with_junk, "HCCDEV01", SECRET).unwrap().paid);
    }

    #[test]
    fn a_replayed_ipn_with_empty_parameters_put_in_front_is_refused() {
        // The attack: empty values are not hashed, so the signature still holds, and a reader
        // that takes the first occurrence would see an empty code and an empty transaction.
        let forged = format!("vnp_ResponseCode=&vnp_TransactionNo=&{}", paid_ipn());
        assert_eq!(
            verify_ipn(&forged, "HCCDEV01", SECRET).unwrap_err(),
            IpnError::RepeatedKey("vnp_TransactionNo".into())
        );
        // The signature alone would have let it through: the empty values are not hashed.
        let params: Vec<(String, String)> = form_urlencoded::parse(forged.as_bytes()).into_owned().collect();
        assert_eq!(signing_data(&params), PAID_HASHED);
        assert_eq!(IpnError::RepeatedKey(String::new()).rsp_code(), "97");
        // Appended after, too.
        let forged = format!("{}&vnp_TransactionStatus=", paid_ipn());
        assert_eq!(verify_ipn(&forged, "HCCDEV01", SECRET).unwrap_err().rsp_code(), "97");
        // The same key with the same value, and a key spelled with an escape, are repeats too.
        let forged = format!("vnp_Amount=15000000&{}", paid_ipn());
        assert!(matches!(verify_ipn(&forged, "HCCDEV01", SECRET), Err(IpnError::RepeatedKey(_))));
        let forged = format!("vnp%5FTxnRef=HCC241126ABCDEFGH&{}", paid_ipn());
        assert!(matches!(verify_ipn(&forged, "HCCDEV01", SECRET), Err(IpnError::RepeatedKey(_))));
        // Repeated junk is refused as well: a genuine IPN repeats nothing.
        let forged = format!("a=1&a=2&{}", paid_ipn());
        assert!(matches!(verify_ipn(&forged, "HCCDEV01", SECRET), Err(IpnError::RepeatedKey(_))));
    }

    #[test]
    fn an_ipn_whose_codes_were_not_signed_is_never_paid() {
        // A genuine, signed IPN that carries no vnp_ResponseCode at all.
        let hashed = "vnp_Amount=15000000&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=14123456\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
        let ipn = verify_ipn(&format!("{hashed}&vnp_SecureHash={}", hmac(hashed)), "HCCDEV01", SECRET).unwrap();
        assert_eq!((ipn.paid, ipn.outcome), (false, Outcome::Undecided));
        // An added empty vnp_ResponseCode is not a repeat here, and still decides nothing.
        let ipn = verify_ipn(
            &format!("vnp_ResponseCode=&{hashed}&vnp_SecureHash={}", hmac(hashed)),
            "HCCDEV01",
            SECRET,
        )
        .unwrap();
        assert_eq!((ipn.paid, ipn.response_code.as_str()), (false, ""));
        // Paid but with no transaction number: refused, not paid.
        let hashed = "vnp_Amount=15000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
        assert_eq!(
            verify_ipn(
                &format!("{hashed}&vnp_TransactionNo=&vnp_SecureHash={}", hmac(hashed)),
                "HCCDEV01",
                SECRET
            )
            .unwrap_err(),
            IpnError::Field("vnp_TransactionNo")
        );
    }

    #[test]
    fn failed_and_pending_ipns_are_told_apart() {
        let failed = "vnp_Amount=15000000&vnp_ResponseCode=24&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=0\
            &vnp_TransactionStatus=02&vnp_TxnRef=HCC241126ABCDEFGH";
        let ipn = verify_ipn(&format!("{failed}&vnp_SecureHash={}", hmac(failed)), "HCCDEV01", SECRET).unwrap();
        assert_eq!((ipn.paid, ipn.outcome), (false, Outcome::Failed));
        let fraud = "vnp_Amount=15000000&vnp_ResponseCode=07&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=07&vnp_TxnRef=HCC241126ABCDEFGH";
        let ipn = verify_ipn(&format!("{fraud}&vnp_SecureHash={}", hmac(fraud)), "HCCDEV01", SECRET).unwrap();
        assert_eq!(ipn.outcome, Outcome::Undecided);
    }

    #[test]
    fn ipns_are_verified_before_anything_is_read() {
        let ok = paid_ipn();
        assert_eq!(verify_ipn(&ok, "HCCDEV01", "other").unwrap_err(), IpnError::BadSignature);
        assert_eq!(
            verify_ipn(&ok.replace("15000000", "25000000"), "HCCDEV01", SECRET).unwrap_err(),
            IpnError::BadSignature
        );
        assert_eq!(verify_ipn("vnp_TxnRef=x", "HCCDEV01", SECRET).unwrap_err(), IpnError::BadSignature);
        assert_eq!(verify_ipn("", "HCCDEV01", SECRET).unwrap_err(), IpnError::BadSignature);
        // Another merchant's (correctly signed) IPN.
        assert_eq!(verify_ipn(&ok, "HCCDEV02", SECRET).unwrap_err(), IpnError::WrongMerchant);
        assert_eq!(IpnError::WrongMerchant.rsp_code(), "01");
        // Bounded before anything is parsed or hashed.
        let big = format!("{ok}&x={}", "a".repeat(MAX_IPN_QUERY_BYTES));
        assert_eq!(verify_ipn(&big, "HCCDEV01", SECRET).unwrap_err(), IpnError::TooLarge);
        let many: String = (0..MAX_IPN_PARAMS).map(|i| format!("x{i}=1&")).collect();
        assert_eq!(
            verify_ipn(&format!("{many}{ok}"), "HCCDEV01", SECRET).unwrap_err(),
            IpnError::TooLarge
        );
    }

    #[test]
    fn a_signed_amount_that_is_not_whole_vnd_is_refused() {
        let odd = "vnp_Amount=15000050&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
        let e = verify_ipn(&format!("{odd}&vnp_SecureHash={}", hmac(odd)), "HCCDEV01", SECRET).unwrap_err();
        assert_eq!((e.clone(), e.rsp_code()), (IpnError::InvalidAmount, "04"));
    }

    #[test]
    fn a_signed_ipn_with_a_loose_amount_or_a_foreign_reference_is_refused() {
        // Signed over exactly these strings: the amount with a leading zero is what was hashed.
        let zero = "vnp_Amount=015000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
        let e = verify_ipn(&format!("{zero}&vnp_SecureHash={}", hmac(zero)), "HCCDEV01", SECRET).unwrap_err();
        assert_eq!((e.clone(), e.rsp_code()), (IpnError::InvalidAmount, "04"));
        // `+` is a space in a query string; `%2B` is the sign itself.
        let plus = "vnp_Amount=%2B15000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
        let e = verify_ipn(&format!("{plus}&vnp_SecureHash={}", hmac(plus)), "HCCDEV01", SECRET).unwrap_err();
        assert_eq!(e, IpnError::InvalidAmount);
        for reference in ["pending", "HCC241126ABCDEFG", "hcc241126abcdefgh", "HCC241126ABCDEF%2FH"] {
            let q = format!(
                "vnp_Amount=15000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
                 &vnp_TransactionStatus=00&vnp_TxnRef={reference}"
            );
            let e = verify_ipn(&format!("{q}&vnp_SecureHash={}", hmac(&q)), "HCCDEV01", SECRET).unwrap_err();
            assert_eq!((e.clone(), e.rsp_code()), (IpnError::NotOurReference, "01"), "{reference}");
        }
    }

    // --- querydr --------------------------------------------------------------------------

    #[test]
    fn a_querydr_request_is_signed_over_a_hand_written_string() {
        // now = 2024-11-26 14:00:00 in Hà Nội = 07:00:00Z = 1_732_604_400.
        let body = querydr_request(
            &QueryDrRequest {
                tmn_code: "HCCDEV01",
                txn_ref: "HCC241126ABCDEFGH",
                order_info: "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
                transaction_date: "20241126133005",
                now: 1_732_604_400,
                server_ip: "192.0.2.10".parse().unwrap(),
                request_id: Some("0123456789abcdef0123456789abcdef"),
            },
            SECRET,
        )
        .unwrap();
        let signed = "0123456789abcdef0123456789abcdef|2.1.0|querydr|HCCDEV01|HCC241126ABCDEFGH|20241126133005\
            |20241126140000|192.0.2.10|Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001";
        assert_eq!(
            body,
            json!({
                "vnp_RequestId": "0123456789abcdef0123456789abcdef",
                "vnp_Version": "2.1.0",
                "vnp_Command": "querydr",
                "vnp_TmnCode": "HCCDEV01",
                "vnp_TxnRef": "HCC241126ABCDEFGH",
                "vnp_TransactionDate": "20241126133005",
                "vnp_CreateDate": "20241126140000",
                "vnp_IpAddr": "192.0.2.10",
                "vnp_OrderInfo": "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
                "vnp_SecureHash": hmac(signed),
            })
        );
    }

    #[test]
    fn querydr_request_ids_are_random_and_inputs_are_checked() {
        let mut r = QueryDrRequest {
            tmn_code: "HCCDEV01",
            txn_ref: "HCC241126ABCDEFGH",
            order_info: "x",
            transaction_date: "20241126133005",
            now: 1_732_604_400,
            server_ip: "192.0.2.10".parse().unwrap(),
            request_id: None,
        };
        let a = querydr_request(&r, SECRET).unwrap()["vnp_RequestId"].as_str().unwrap().to_string();
        let b = querydr_request(&r, SECRET).unwrap()["vnp_RequestId"].as_str().unwrap().to_string();
        assert!(a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()) && a != b, "{a} {b}");
        r.transaction_date = "2024-11-26";
        assert_eq!(querydr_request(&r, SECRET).unwrap_err(), QueryDrError::Field("vnp_TransactionDate"));
        r.transaction_date = "20241126133005";
        r.request_id = Some("not/alnum");
        assert_eq!(querydr_request(&r, SECRET).unwrap_err(), QueryDrError::Field("vnp_RequestId"));
    }

    fn paid_answer() -> Value {
        let signed = "a1b2c3d4e5|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|NCB\
            |20241126133505|14123456|01|00|Thanh toan le phi||";
        json!({
            "vnp_ResponseId": "a1b2c3d4e5",
            "vnp_Command": "querydr",
            "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success",
            "vnp_TmnCode": "HCCDEV01",
            "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_Amount": "15000000",
            "vnp_BankCode": "NCB",
            "vnp_PayDate": "20241126133505",
            "vnp_TransactionNo": "14123456",
            "vnp_TransactionType": "01",
            "vnp_TransactionStatus": "00",
            "vnp_OrderInfo": "Thanh toan le phi",
            "vnp_SecureHash": hmac(signed).to_uppercase(),
        })
    }

    fn parse(v: &Value) -> Result<QueryDr, QueryDrError> {
        parse_querydr_answer(v, "HCC241126ABCDEFGH", "HCCDEV01", SECRET)
    }

    #[test]
    fn a_paid_answer_without_promotion_fields_ends_in_two_pipes() {
        assert_eq!(
            parse(&paid_answer()).unwrap(),
            QueryDr::Paid {
                amount_vnd: 150_000,
                transaction: "14123456".into(),
                pay_date: "20241126133505".into(),
                bank_code: "NCB".into(),
            }
        );
    }

    #[test]
    fn numbers_are_signed_in_decimal_and_promotions_take_their_place() {
        let signed = "r2|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|NCB|20241126133505\
            |14123456|01|00|Thanh toan le phi|KM01|500000";
        let v = json!({
            "vnp_ResponseId": "r2", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_Amount": 15000000, "vnp_BankCode": "NCB", "vnp_PayDate": 20241126133505u64,
            "vnp_TransactionNo": 14123456, "vnp_TransactionType": "01", "vnp_TransactionStatus": "00",
            "vnp_OrderInfo": "Thanh toan le phi", "vnp_PromotionCode": "KM01", "vnp_PromotionAmount": 500000,
            "vnp_SecureHash": hmac(signed),
        });
        assert!(matches!(parse(&v), Ok(QueryDr::Paid { amount_vnd: 150_000, .. })));
        let mut f = v.clone();
        f["vnp_Amount"] = json!(15000000.0);
        assert_eq!(parse(&f).unwrap_err(), QueryDrError::FieldType("vnp_Amount"));
    }

    #[test]
    fn a_signed_querydr_amount_with_a_sign_or_a_leading_zero_is_refused() {
        for (amount, signed) in [
            (
                "015000000",
                "r8|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|015000000|NCB|20241126133505|1|01|00|x||",
            ),
            (
                "+15000000",
                "r8|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|+15000000|NCB|20241126133505|1|01|00|x||",
            ),
        ] {
            let v = json!({
                "vnp_ResponseId": "r8", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
                "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
                "vnp_Amount": amount, "vnp_BankCode": "NCB", "vnp_PayDate": "20241126133505", "vnp_TransactionNo": "1",
                "vnp_TransactionType": "01", "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x",
                "vnp_SecureHash": hmac(signed),
            });
            assert_eq!(parse(&v).unwrap_err(), QueryDrError::Field("vnp_Amount"), "{amount}");
        }
        // A negative JSON integer is rendered "-15000000" for the signature, and refused.
        let signed = "r9|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|-15000000|NCB|20241126133505|1|01|00|x||";
        let v = json!({
            "vnp_ResponseId": "r9", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_Amount": -15000000, "vnp_BankCode": "NCB", "vnp_PayDate": "20241126133505", "vnp_TransactionNo": "1",
            "vnp_TransactionType": "01", "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x",
            "vnp_SecureHash": hmac(signed),
        });
        assert_eq!(parse(&v).unwrap_err(), QueryDrError::Field("vnp_Amount"));
    }

    #[test]
    fn pending_failed_and_not_found_answers() {
        let pending = "r3|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|||||01|Thanh toan le phi||";
        let v = json!({
            "vnp_ResponseId": "r3", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_Amount": "15000000", "vnp_TransactionStatus": "01", "vnp_OrderInfo": "Thanh toan le phi",
            "vnp_SecureHash": hmac(pending),
        });
        assert_eq!(parse(&v).unwrap(), QueryDr::Pending);
        let failed = "r4|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|NCB||0|01|02|x||";
        let v = json!({
            "vnp_ResponseId": "r4", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_Amount": "15000000", "vnp_BankCode": "NCB", "vnp_TransactionNo": "0", "vnp_TransactionType": "01",
            "vnp_TransactionStatus": "02", "vnp_OrderInfo": "x", "vnp_SecureHash": hmac(failed),
        });
        assert_eq!(
            parse(&v).unwrap(),
            QueryDr::Failed {
                transaction_status: "02".into()
            }
        );
        let missing = "r5|querydr|91|Transaction not found|HCCDEV01||||||||||";
        let v = json!({
            "vnp_ResponseId": "r5", "vnp_Command": "querydr", "vnp_ResponseCode": "91",
            "vnp_Message": "Transaction not found", "vnp_TmnCode": "HCCDEV01", "vnp_SecureHash": hmac(missing),
        });
        assert_eq!(parse(&v).unwrap(), QueryDr::NotFound);
        let dup = "r6|querydr|94|Duplicate request|HCCDEV01|HCC241126ABCDEFGH|||||||||";
        let v = json!({
            "vnp_ResponseId": "r6", "vnp_Command": "querydr", "vnp_ResponseCode": "94",
            "vnp_Message": "Duplicate request", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_SecureHash": hmac(dup),
        });
        assert_eq!(
            parse(&v).unwrap(),
            QueryDr::Unknown {
                response_code: "94".into(),
                transaction_status: String::new()
            }
        );
    }

    #[test]
    fn querydr_answers_are_verified_and_must_be_about_our_transaction() {
        let mut v = paid_answer();
        v["vnp_Amount"] = json!("25000000");
        assert_eq!(parse(&v).unwrap_err(), QueryDrError::BadSignature);
        let mut v = paid_answer();
        v.as_object_mut().unwrap().remove("vnp_SecureHash");
        assert_eq!(parse(&v).unwrap_err(), QueryDrError::BadSignature);
        // A promotion field added after signing changes the string.
        let mut v = paid_answer();
        v["vnp_PromotionCode"] = json!("X");
        assert_eq!(parse(&v).unwrap_err(), QueryDrError::BadSignature);
        assert_eq!(
            parse_querydr_answer(&paid_answer(), "HCC241126ABCDEFGH", "HCCDEV01", "other").unwrap_err(),
            QueryDrError::BadSignature
        );
        assert_eq!(
            parse_querydr_answer(&paid_answer(), "HCC241126OTHERREF", "HCCDEV01", SECRET).unwrap_err(),
            QueryDrError::WrongReference
        );
        assert_eq!(
            parse_querydr_answer(&paid_answer(), "HCC241126ABCDEFGH", "HCCDEV02", SECRET).unwrap_err(),
            QueryDrError::WrongMerchant
        );
        assert_eq!(parse(&json!([1])).unwrap_err(), QueryDrError::NotAnObject);
        // A signed success that doesn't say whose transaction it is decides nothing.
        let anon = "r7|querydr|00|QueryDR Success|HCCDEV01||15000000|NCB|20241126133505|1|01|00|x||";
        let v = json!({
            "vnp_ResponseId": "r7", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_Amount": "15000000",
            "vnp_BankCode": "NCB", "vnp_PayDate": "20241126133505", "vnp_TransactionNo": "1",
            "vnp_TransactionType": "01", "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x",
            "vnp_SecureHash": hmac(anon),
        });
        assert_eq!(parse(&v).unwrap_err(), QueryDrError::WrongReference);
    }

    fn build(text: &str, production: bool) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<String>> {
        let section = Section::from_toml("vnpay", text).expect("toml");
        super::super::test_build(&KIND, Some(&section), production, "", vec![super::super::test_agency()])
            .map_err(|p| p.into_iter().map(|p| p.key).collect())
    }

    const ON: &str = "tmn_code = \"HCCDEV01\"\npay_url = \"https://sandbox.vnpayment.vn/paymentv2/vpcpay.html\"\nreturn_url = \"https://centre.example/paid\"\n";

    #[test]
    fn production_refuses_an_empty_hash_secret_only_while_vnpay_is_on() {
        assert_eq!(build(ON, true).err(), Some(vec!["vnpay.hash_secret".to_string()]));
        assert_eq!(
            build(&format!("{ON}hash_secret = \"\\t\"\n"), true).err(),
            Some(vec!["vnpay.hash_secret".to_string()])
        );
        assert!(build(&format!("{ON}hash_secret = \"{SECRET}\"\n"), true).is_ok());
        assert!(build(ON, false).is_ok());
        assert!(matches!(build("hash_secret = \"\"\n", true), Ok(None)), "off: nothing to forge");
    }

    #[test]
    fn settings_are_checked_by_key() {
        assert_eq!(
            build(
                &format!("{ON}expire_minutes = 0\napi_url = \"https://v/api\"\nserver_ip = \"here\"\n"),
                false
            )
            .err(),
            Some(vec!["vnpay.expire_minutes".to_string(), "vnpay.server_ip".to_string()])
        );
        assert_eq!(
            build("api_url = \"nowhere\"\nserver_ip = \"203.0.113.10\"\n", false).err(),
            Some(vec!["vnpay.api_url".to_string()])
        );
        assert_eq!(
            build(&format!("{ON}query_timeout_ms = 0\n"), false).err(),
            Some(vec!["vnpay.query_timeout_ms".to_string()])
        );
        // Citizens are sent to pay_url: plain http only to this machine.
        assert_eq!(
            build(
                "tmn_code = \"T\"\npay_url = \"http://vnpay.example.vn/pay\"\nreturn_url = \"https://c/\"\n",
                false
            )
            .err(),
            Some(vec!["vnpay.pay_url".to_string()])
        );
        assert!(
            build(
                "tmn_code = \"T\"\npay_url = \"http://127.0.0.1:9102/vnpay/pay\"\nreturn_url = \"https://c/\"\n",
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn vnpay_on_needs_a_return_url_which_is_named_by_its_key() {
        let pay = "tmn_code = \"T\"\npay_url = \"https://sandbox.vnpayment.vn/paymentv2/vpcpay.html\"\n";
        for text in [
            pay.to_string(),
            format!("{pay}return_url = \"\"\n"),
            format!("{pay}return_url = \"  \"\n"),
        ] {
            assert_eq!(build(&text, false).err(), Some(vec!["vnpay.return_url".to_string()]), "{text}");
        }
        assert_eq!(
            build(&format!("{pay}return_url = \"centre/paid\"\n"), false).err(),
            Some(vec!["vnpay.return_url".to_string()])
        );
        assert!(build(&format!("{pay}return_url = \"https://centre.example/paid\"\n"), false).is_ok());
        assert!(matches!(build("return_url = \"\"\n", false), Ok(None)), "off: nothing to return to");
    }

    #[test]
    fn a_failure_is_named_by_vnpays_answer_never_by_transaction_number_zero() {
        let ipn = |code: &str, status: &str, no: &str| Ipn {
            reference: "HCC241126ABCDEFGH".into(),
            amount_vnd: 150_000,
            outcome: classify(code, status),
            paid: classify(code, status) == Outcome::Paid,
            transaction: no.into(),
            pay_date: String::new(),
            response_code: code.into(),
            transaction_status: status.into(),
        };
        assert_eq!(settlement_transaction(&ipn("24", "02", "0")), "ipn-failed:24:02");
        assert_eq!(settlement_transaction(&ipn("24", "02", "")), "ipn-failed:24:02");
        assert_eq!(settlement_transaction(&ipn("11", "02", "0")), "ipn-failed:11:02");
        assert_eq!(settlement_transaction(&ipn("00", "00", "14123456")), "14123456");
    }

    #[test]
    fn vnpay_reconciles_only_with_a_merchant_api_until_its_payment_urls_expire() {
        let without = build(ON, false).expect("valid").expect("on");
        assert!(without.creator().is_some() && without.reconciler().is_none());
        let with = build(
            &format!("{ON}api_url = \"https://v/api\"\nserver_ip = \"203.0.113.10\"\nreconcile_interval_secs = 7\n"),
            false,
        )
        .expect("valid")
        .expect("on");
        assert_eq!(
            with.reconciler().map(|r| r.schedule().every),
            Some(std::time::Duration::from_secs(7))
        );
        assert_eq!(
            with.reconciler().map(|r| r.schedule().lifetime),
            Some(std::time::Duration::from_secs(15 * 60)),
            "vnp_ExpireDate: expire_minutes after creation"
        );
    }

    #[tokio::test]
    async fn a_forged_ipn_is_refused_with_rsp_code_97_and_nothing_to_apply() {
        let vnpay = build(&format!("{ON}hash_secret = \"{SECRET}\"\n"), false)
            .expect("valid")
            .expect("on");
        let head = CallbackHead {
            route: "/v1/callbacks/vnpay/ipn",
            params: vec![],
            query: "vnp_TxnRef=HCC241126ABCDEFGH&vnp_Amount=10000000&vnp_TmnCode=HCCDEV01&vnp_SecureHash=00",
            media_type: None,
        };
        let Err(refused) = vnpay.parse(head, vec![]).await else {
            panic!("a forged IPN was taken");
        };
        assert_eq!(refused.reply, Reply::Json(json!({"RspCode": "97", "Message": "Invalid signature"})));
    }
}
