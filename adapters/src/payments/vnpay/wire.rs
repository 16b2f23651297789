//! VNPAY's messages, built and read without I/O: the signed payment URL, the IPN, `querydr`
//! requests and answers, and the signatures over them. The mocks restate this and the fuzz
//! targets read through it.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

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
pub(super) fn signing_data(params: &[(String, String)]) -> String {
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
pub(super) fn is_timestamp(s: &str) -> bool {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(u32::MAX);
    (1..=12).contains(&n(4..6)) && (1..=31).contains(&n(6..8)) && n(8..10) < 24 && n(10..12) < 60 && n(12..14) < 60
}

/// `vnp_Amount` (×100) to VND: a strict digit string
/// ([`crate::payments::strict_amount`]: no sign, no leading zero), positive, a whole number of
/// đồng.
pub(super) fn amount_vnd(raw: &str) -> Option<u64> {
    crate::payments::strict_amount(raw)
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
pub enum Verdict {
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

pub(super) fn classify(response_code: &str, transaction_status: &str) -> Verdict {
    if response_code.is_empty() || transaction_status.is_empty() {
        return Verdict::Undecided;
    }
    match (response_code, transaction_status) {
        ("00", "00") => Verdict::Paid,
        (_, "01") => Verdict::Pending,
        (_, "02") => Verdict::Failed,
        _ => Verdict::Undecided,
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
    let create_date = crate::payments::vn_timestamp(r.created_at);
    let expire_date = crate::payments::vn_timestamp(r.created_at + r.expire_minutes as i64 * 60);
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
    pub outcome: Verdict,
    /// `outcome == Verdict::Paid`.
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
    let reference = crate::payments::parse_reference(reference)
        .ok_or(IpnError::NotOurReference)?
        .to_string();
    let amount_vnd = signed("vnp_Amount").and_then(amount_vnd).ok_or(IpnError::InvalidAmount)?;
    let response_code = signed("vnp_ResponseCode").unwrap_or("").to_string();
    let transaction_status = signed("vnp_TransactionStatus").unwrap_or("").to_string();
    let outcome = classify(&response_code, &transaction_status);
    let transaction = signed("vnp_TransactionNo").unwrap_or("").to_string();
    if outcome == Verdict::Paid && transaction.is_empty() {
        return Err(IpnError::Field("vnp_TransactionNo"));
    }
    Ok(Ipn {
        reference,
        amount_vnd,
        outcome,
        paid: outcome == Verdict::Paid,
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
    let create_date = crate::payments::vn_timestamp(r.now);
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
        Verdict::Paid => {
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
        Verdict::Pending => QueryDr::Pending,
        Verdict::Failed => QueryDr::Failed {
            transaction_status: status.into(),
        },
        Verdict::Undecided => QueryDr::Unknown {
            response_code: code.into(),
            transaction_status: status.into(),
        },
    })
}
