//! A stand-in VNPAY 2.1.0 (payments notes §2 and its 2026-11 evidence), written from the notes,
//! never from the gateway's adapter. Served by `mock-bank` beside the host-to-host bank.
//!
//! - `GET /vnpay/pay?...`: the payment page the citizen's browser is sent to. It refuses what
//!   VNPAY refuses (unknown terminal, bad signature, a missing or malformed `vnp_IpAddr` or
//!   `vnp_ExpireDate`, an amount that is not ×100, ...) and records the order with its
//!   `vnp_CreateDate`, which `querydr` needs.
//! - `POST /_mock/vnpay/pay`: "the citizen paid": marks the order in the mock's ledger and sends
//!   the signed IPN to `ipn_url` by HTTP GET (or loses it, for reconciliation to find).
//! - `POST /merchant_webapi/api/transaction`: `querydr`, answered from the ledger, signed.
//! - `POST /_mock/vnpay/querydr` bends the next answers (tampered, another amount, an amount
//!   written loosely, another code, an HTTP failure); `GET /_mock/vnpay/queries` and `GET /_mock/vnpay/orders` show what the mock
//!   received and knows.
//!
//! Error page codes of `GET /vnpay/pay` (VNPAY shows `Payment/Error.html?code=NN`): `72` unknown
//! terminal, `70` wrong signature, `03` malformed data, `11` the payment URL expired, `01` the
//! order already exists with other data or is already paid. They are answered as JSON here.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Received `querydr` requests kept for inspection (the oldest are dropped).
const MAX_QUERIES_KEPT: usize = 1000;
const MAX_PAY_QUERY_BYTES: usize = 8192;
const MAX_PAY_PARAMS: usize = 50;
const VERSION: &str = "2.1.0";

/// One transaction VNPAY knows, by `vnp_TxnRef`.
#[derive(Debug, Clone)]
struct Order {
    /// VND ×100, as VNPAY keeps it.
    amount_x100: u64,
    /// The merchant's `vnp_CreateDate`; `None` for an order the control made up without one
    /// (then no `querydr` can find it).
    create_date: Option<String>,
    order_info: String,
    /// `vnp_TransactionStatus`: `01` until paid, then `00` or `02`.
    status: String,
    transaction_no: String,
    pay_date: String,
    bank_code: String,
}

impl Order {
    fn json(&self) -> Value {
        json!({
            "amount_vnd": self.amount_x100 / 100,
            "create_date": self.create_date,
            "order_info": self.order_info,
            "vnp_TransactionStatus": self.status,
            "vnp_TransactionNo": self.transaction_no,
            "vnp_PayDate": self.pay_date,
            "vnp_BankCode": self.bank_code,
        })
    }
}

/// How the next `querydr` answers are bent (`POST /_mock/vnpay/querydr`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AnswerControl {
    /// Change `vnp_Amount` after signing.
    tamper: bool,
    /// Answer (and sign) this amount instead of the ledger's.
    amount_vnd: Option<u64>,
    /// Answer (and sign) this `vnp_ResponseCode` instead of the real one.
    response_code: Option<String>,
    /// Answer (and sign) this `vnp_TransactionStatus` instead of the ledger's.
    transaction_status: Option<String>,
    /// Send `vnp_Amount` as a JSON number (signed as its decimal digits).
    amount_as_number: bool,
    /// Answer (and sign) exactly this `vnp_Amount` text (`"015000000"`, `"+15000000"`): a
    /// loosely written amount, which VNPAY itself never sends.
    amount_text: Option<String>,
    /// Answer with this HTTP status and no body.
    http_status: Option<u16>,
    /// How many answers this applies to; absent = until the next control call.
    times: Option<u32>,
}

#[derive(Default)]
struct Ledger {
    orders: HashMap<String, Order>,
    queries: Vec<Value>,
    /// `vnp_RequestId`s seen, with the day (`yyyyMMdd` of `vnp_CreateDate`): unique per day.
    request_ids: HashSet<(String, String)>,
    control: AnswerControl,
}

#[derive(Clone)]
pub struct VnpayState {
    tmn_code: String,
    hash_secret: String,
    ledger: Arc<Mutex<Ledger>>,
    client: reqwest::Client,
}

impl VnpayState {
    pub fn new(tmn_code: &str, hash_secret: &str) -> Self {
        VnpayState {
            tmn_code: tmn_code.into(),
            hash_secret: hash_secret.into(),
            ledger: Arc::new(Mutex::new(Ledger::default())),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn routes(state: VnpayState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/vnpay/pay", web::get().to(pay_page))
            .route("/merchant_webapi/api/transaction", web::post().to(transaction_api))
            .route("/_mock/vnpay/pay", web::post().to(vnpay_pay))
            .route("/_mock/vnpay/querydr", web::post().to(querydr_control))
            .route("/_mock/vnpay/queries", web::get().to(queries))
            .route("/_mock/vnpay/orders", web::get().to(orders));
    }
}

// ---------------------------------------------------------------------------------------------
// VNPAY's two signatures, restated from the notes.

/// Payment URL and IPN: every non-empty `vnp_` field but the hash ones, sorted by key,
/// form-encoded with `+` for spaces, `k=v` joined with `&`.
fn query_signing_string(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.starts_with("vnp_") && k != "vnp_SecureHash" && k != "vnp_SecureHashType")
        .collect();
    p.sort();
    p.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>(),
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac512_hex(secret: &str, data: &str) -> String {
    hcc_signing::hmac_sha512(secret.as_bytes(), data.as_bytes())
        .map(hex::encode)
        .unwrap_or_default()
}

fn vnpay_hash(params: &[(String, String)], secret: &str) -> String {
    hmac512_hex(secret, &query_signing_string(params))
}

/// `querydr`: the listed values joined with `|` (absent ones empty).
fn pipe_hash(values: &[&str], secret: &str) -> String {
    hmac512_hex(secret, &values.join("|"))
}

fn hash_ok(claimed: &str, expected: &str) -> bool {
    !expected.is_empty() && hcc_signing::ct_eq(claimed.to_ascii_lowercase().as_bytes(), expected.as_bytes())
}

const QUERYDR_REQUEST: [&str; 9] = [
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

const QUERYDR_ANSWER: [&str; 15] = [
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

/// `yyyyMMddHHmmss` with a real calendar date and time.
fn valid_timestamp(s: &str) -> bool {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap_or(u32::MAX);
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && n(8, 10) < 24 && n(10, 12) < 60 && n(12, 14) < 60
}

fn random_hex(n: usize) -> String {
    (0..n).map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)])).collect()
}

// ---------------------------------------------------------------------------------------------
// The payment page

fn page_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"code": code, "message": message}))
}

/// Checks a payment URL's query as VNPAY's payment page would, and records the order.
fn check_payment(state: &VnpayState, query: &str, now_vn: &str) -> Result<(String, Order), (&'static str, String)> {
    let bad = |m: &str| ("03", m.to_string());
    if query.len() > MAX_PAY_QUERY_BYTES {
        return Err(bad("query too large"));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()).into_owned() {
        if params.iter().any(|(pk, _)| *pk == k) {
            return Err(bad(&format!("{k} repeated")));
        }
        if params.len() == MAX_PAY_PARAMS {
            return Err(bad("too many parameters"));
        }
        params.push((k, v));
    }
    let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str()).unwrap_or("");
    // The terminal first: its secret is what the signature is checked with.
    if get("vnp_TmnCode") != state.tmn_code {
        return Err(("72", "Không tìm thấy website (vnp_TmnCode)".into()));
    }
    if !hash_ok(get("vnp_SecureHash"), &vnpay_hash(&params, &state.hash_secret)) {
        return Err(("70", "Sai chữ ký".into()));
    }
    if get("vnp_Version") != VERSION {
        return Err(bad("vnp_Version"));
    }
    if get("vnp_Command") != "pay" {
        return Err(bad("vnp_Command"));
    }
    if get("vnp_CurrCode") != "VND" {
        return Err(bad("vnp_CurrCode"));
    }
    if !matches!(get("vnp_Locale"), "vn" | "en") {
        return Err(bad("vnp_Locale"));
    }
    if get("vnp_OrderType").is_empty() {
        return Err(bad("vnp_OrderType"));
    }
    let ret = get("vnp_ReturnUrl");
    if !(ret.starts_with("http://") || ret.starts_with("https://")) {
        return Err(bad("vnp_ReturnUrl"));
    }
    let txn_ref = get("vnp_TxnRef");
    if txn_ref.is_empty() || txn_ref.len() > 100 {
        return Err(bad("vnp_TxnRef"));
    }
    // Vietnamese without diacritics, 1 to 255 characters.
    let info = get("vnp_OrderInfo");
    if info.is_empty() || info.len() > 255 || !info.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad("vnp_OrderInfo"));
    }
    let amount = get("vnp_Amount");
    let amount_x100: u64 = if !amount.is_empty() && amount.len() <= 12 && amount.bytes().all(|b| b.is_ascii_digit()) {
        amount.parse().unwrap_or(0)
    } else {
        0
    };
    if amount_x100 == 0 || !amount_x100.is_multiple_of(100) {
        return Err(bad("vnp_Amount (VND ×100)"));
    }
    if get("vnp_IpAddr").parse::<IpAddr>().is_err() {
        return Err(bad("vnp_IpAddr is not the customer's IP address"));
    }
    let (created, expires) = (get("vnp_CreateDate"), get("vnp_ExpireDate"));
    if !valid_timestamp(created) {
        return Err(bad("vnp_CreateDate"));
    }
    if !valid_timestamp(expires) || expires <= created {
        return Err(bad("vnp_ExpireDate missing, malformed or not after vnp_CreateDate"));
    }
    if now_vn > expires {
        return Err(("11", "Đã hết hạn chờ thanh toán".into()));
    }
    Ok((
        txn_ref.to_string(),
        Order {
            amount_x100,
            create_date: Some(created.to_string()),
            order_info: info.to_string(),
            status: "01".into(),
            transaction_no: String::new(),
            pay_date: String::new(),
            bank_code: String::new(),
        },
    ))
}

async fn pay_page(state: web::Data<VnpayState>, req: HttpRequest) -> HttpResponse {
    let (txn_ref, order) = match check_payment(&state, req.query_string(), &crate::paygov::chrono_like_now()) {
        Ok(o) => o,
        Err((code, message)) => return page_error(code, &message),
    };
    let mut ledger = state.ledger();
    if let Some(known) = ledger.orders.get(&txn_ref) {
        // The citizen reloading the same page is fine; another order under a used reference
        // is not.
        let same = known.amount_x100 == order.amount_x100 && known.create_date == order.create_date;
        if !same || known.status != "01" {
            return page_error("01", "Giao dịch đã tồn tại");
        }
    } else {
        ledger.orders.insert(txn_ref.clone(), order.clone());
    }
    HttpResponse::Ok().json(json!({
        "code": "00",
        "vnp_TxnRef": txn_ref,
        "amount_vnd": order.amount_x100 / 100,
        "vnp_CreateDate": order.create_date,
    }))
}

// ---------------------------------------------------------------------------------------------
// "The citizen paid": the IPN

fn one() -> usize {
    1
}

fn ok_code() -> String {
    "00".into()
}

#[derive(Deserialize)]
struct VnpayPay {
    #[serde(rename = "TxnRef")]
    txn_ref: String,
    /// Required for an order the payment page never saw; otherwise overrides its amount (the
    /// IPN and later `querydr` answers then say this amount).
    amount_vnd: Option<u64>,
    /// Where to send the IPN; required unless `lose_ipn`.
    ipn_url: Option<String>,
    #[serde(default = "ok_code")]
    response_code: String,
    /// Defaults to `00` when `response_code` is `00`, else `02`.
    transaction_status: Option<String>,
    #[serde(default = "one")]
    copies: usize,
    /// Change the amount after signing.
    #[serde(default)]
    tamper: bool,
    /// Record the payment but send no IPN.
    #[serde(default)]
    lose_ipn: bool,
    /// For an order the payment page never saw: its `vnp_CreateDate`.
    create_date: Option<String>,
    /// Raw text put in front of the signed query (`prefix&query`), for injection tests.
    query_prefix: Option<String>,
}

async fn vnpay_pay(state: web::Data<VnpayState>, r: web::Json<VnpayPay>) -> HttpResponse {
    if r.ipn_url.is_none() && !r.lose_ipn {
        return HttpResponse::BadRequest().json(json!({"error": "ipn_url is required unless lose_ipn"}));
    }
    if r.create_date.as_deref().is_some_and(|d| !valid_timestamp(d)) {
        return HttpResponse::BadRequest().json(json!({"error": "create_date must be yyyyMMddHHmmss"}));
    }
    let status = r
        .transaction_status
        .clone()
        .unwrap_or_else(|| if r.response_code == "00" { "00".into() } else { "02".into() });
    let order = {
        let mut ledger = state.ledger();
        let order = match (ledger.orders.get(&r.txn_ref), r.amount_vnd) {
            (Some(o), _) => o.clone(),
            (None, Some(amount)) => Order {
                amount_x100: amount.saturating_mul(100),
                create_date: r.create_date.clone(),
                order_info: "Thanh toan le phi ho so".into(),
                status: "01".into(),
                transaction_no: String::new(),
                pay_date: String::new(),
                bank_code: String::new(),
            },
            (None, None) => {
                return HttpResponse::BadRequest().json(json!({"error": "unknown TxnRef: give amount_vnd, or load the payment URL first"}));
            }
        };
        let mut order = order;
        if let Some(a) = r.amount_vnd {
            order.amount_x100 = a.saturating_mul(100);
        }
        // A second success for a paid order is VNPAY resending the same IPN: same transaction.
        // A payment that did not succeed (cancelled `24`, timed out `11`, …) carries
        // `vnp_TransactionNo=0`, as captures signed by the VNPAY sandbox show: the number
        // identifies nothing then.
        if status != "00" {
            order.transaction_no = "0".into();
            order.pay_date = crate::paygov::chrono_like_now();
        } else if order.status != "00" || order.transaction_no.is_empty() {
            order.transaction_no = fastrand::u64(10_000_000..99_999_999).to_string();
            order.pay_date = crate::paygov::chrono_like_now();
        }
        order.status = status.clone();
        order.bank_code = "NCB".into();
        ledger.orders.insert(r.txn_ref.clone(), order.clone());
        order
    };
    let txn = order.transaction_no.clone();
    let mut params: Vec<(String, String)> = [
        ("vnp_TmnCode", state.tmn_code.clone()),
        ("vnp_Amount", order.amount_x100.to_string()),
        ("vnp_BankCode", order.bank_code.clone()),
        ("vnp_BankTranNo", format!("VNP{txn}")),
        ("vnp_CardType", "ATM".into()),
        ("vnp_PayDate", order.pay_date.clone()),
        ("vnp_OrderInfo", order.order_info.clone()),
        ("vnp_TransactionNo", txn.clone()),
        ("vnp_ResponseCode", r.response_code.clone()),
        ("vnp_TransactionStatus", status),
        ("vnp_TxnRef", r.txn_ref.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let hash = vnpay_hash(&params, &state.hash_secret);
    if r.tamper {
        params[1].1 = (order.amount_x100 + 100).to_string();
    }
    params.push(("vnp_SecureHashType".into(), "HmacSHA512".into()));
    params.push(("vnp_SecureHash".into(), hash));
    let mut query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
    if let Some(p) = &r.query_prefix {
        query = format!("{p}&{query}");
    }
    let Some(ipn_url) = r.ipn_url.as_deref().filter(|_| !r.lose_ipn) else {
        return HttpResponse::Ok().json(json!({"vnp_TransactionNo": txn, "ipn_sent": false, "ipn_query": query, "replies": []}));
    };
    let url = format!("{ipn_url}?{query}");
    let sends: Vec<_> = (0..r.copies.min(100))
        .map(|_| {
            let (c, u) = (state.client.clone(), url.clone());
            tokio::spawn(async move {
                match c.get(&u).send().await {
                    Ok(resp) => resp.json::<Value>().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                }
            })
        })
        .collect();
    let mut replies = Vec::new();
    for s in sends {
        replies.push(s.await.unwrap_or(Value::Null));
    }
    HttpResponse::Ok().json(json!({"vnp_TransactionNo": txn, "ipn_sent": true, "ipn_query": query, "replies": replies}))
}

// ---------------------------------------------------------------------------------------------
// querydr

fn message(code: &str) -> &'static str {
    match code {
        "00" => "QueryDR Success",
        "02" => "Invalid TmnCode",
        "03" => "Invalid data format",
        "91" => "Transaction not found",
        "94" => "Duplicate request",
        "97" => "Invalid Checksum",
        _ => "Unknown error",
    }
}

/// A signed answer: `fields` in any order, signed over the answer list (absent = empty), then
/// bent as the control says.
fn signed_answer(state: &VnpayState, mut fields: HashMap<&'static str, String>, control: &AnswerControl) -> Value {
    if let Some(code) = &control.response_code {
        fields.insert("vnp_Message", message(code).into());
        fields.insert("vnp_ResponseCode", code.clone());
    }
    if fields.get("vnp_ResponseCode").map(String::as_str) == Some("00") {
        if let Some(a) = control.amount_vnd {
            fields.insert("vnp_Amount", a.saturating_mul(100).to_string());
        }
        if let Some(t) = &control.amount_text {
            fields.insert("vnp_Amount", t.clone());
        }
        if let Some(s) = &control.transaction_status {
            fields.insert("vnp_TransactionStatus", s.clone());
        }
    }
    let values: Vec<&str> = QUERYDR_ANSWER
        .iter()
        .map(|k| fields.get(k).map(String::as_str).unwrap_or(""))
        .collect();
    let hash = pipe_hash(&values, &state.hash_secret);
    let mut out = Map::new();
    for k in QUERYDR_ANSWER {
        if let Some(v) = fields.get(k) {
            out.insert(k.into(), json!(v));
        }
    }
    if control.amount_as_number
        && let Some(n) = fields.get("vnp_Amount").and_then(|a| a.parse::<u64>().ok())
    {
        out.insert("vnp_Amount".into(), json!(n));
    }
    if control.tamper {
        let a = fields.get("vnp_Amount").and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
        out.insert("vnp_Amount".into(), json!((a + 100).to_string()));
    }
    out.insert("vnp_SecureHash".into(), json!(hash));
    Value::Object(out)
}

/// Answers one `querydr` body: the answer's fields, before signing.
fn answer_querydr(state: &VnpayState, ledger: &mut Ledger, body: &[u8]) -> HashMap<&'static str, String> {
    let mut fields: HashMap<&'static str, String> = HashMap::new();
    fields.insert("vnp_ResponseId", random_hex(32));
    fields.insert("vnp_Command", "querydr".into());
    fields.insert("vnp_TmnCode", state.tmn_code.clone());
    let fail = |fields: &mut HashMap<&'static str, String>, code: &str| {
        fields.insert("vnp_ResponseCode", code.into());
        fields.insert("vnp_Message", message(code).into());
    };
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        fail(&mut fields, "03");
        return fields;
    };
    // Every request field is a JSON string.
    let mut v: HashMap<&str, &str> = HashMap::new();
    for k in QUERYDR_REQUEST.iter().chain(["vnp_SecureHash"].iter()) {
        match req.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => {
                v.insert(k, s.as_str());
            }
            _ => {
                fail(&mut fields, "03");
                return fields;
            }
        }
    }
    if let Some(r) = v.get("vnp_TxnRef") {
        fields.insert("vnp_TxnRef", (*r).to_string());
    }
    let id = v["vnp_RequestId"];
    let well_formed = v["vnp_Command"] == "querydr"
        && v["vnp_Version"] == VERSION
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && valid_timestamp(v["vnp_TransactionDate"])
        && valid_timestamp(v["vnp_CreateDate"])
        && v["vnp_IpAddr"].parse::<IpAddr>().is_ok();
    if !well_formed {
        fail(&mut fields, "03");
        return fields;
    }
    if v["vnp_TmnCode"] != state.tmn_code {
        fail(&mut fields, "02");
        return fields;
    }
    let values: Vec<&str> = QUERYDR_REQUEST.iter().map(|k| v[k]).collect();
    if !hash_ok(v["vnp_SecureHash"], &pipe_hash(&values, &state.hash_secret)) {
        fail(&mut fields, "97");
        return fields;
    }
    if !ledger.request_ids.insert((id.to_string(), v["vnp_CreateDate"][..8].to_string())) {
        fail(&mut fields, "94");
        return fields;
    }
    let found = ledger
        .orders
        .get(v["vnp_TxnRef"])
        .filter(|o| o.create_date.as_deref() == Some(v["vnp_TransactionDate"]));
    let Some(o) = found else {
        fail(&mut fields, "91");
        return fields;
    };
    fail(&mut fields, "00");
    fields.insert("vnp_Amount", o.amount_x100.to_string());
    fields.insert("vnp_OrderInfo", o.order_info.clone());
    fields.insert("vnp_TransactionType", "01".into());
    fields.insert("vnp_TransactionStatus", o.status.clone());
    for (k, val) in [
        ("vnp_BankCode", &o.bank_code),
        ("vnp_PayDate", &o.pay_date),
        ("vnp_TransactionNo", &o.transaction_no),
    ] {
        if !val.is_empty() {
            fields.insert(k, val.clone());
        }
    }
    fields
}

async fn transaction_api(state: web::Data<VnpayState>, body: web::Bytes) -> HttpResponse {
    let mut ledger = state.ledger();
    let control = ledger.control.clone();
    if let Some(t) = ledger.control.times.as_mut() {
        *t = t.saturating_sub(1);
        if *t == 0 {
            ledger.control = AnswerControl::default();
        }
    }
    let request = serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    let answer = match control.http_status {
        Some(status) => Err(status),
        None => Ok(answer_querydr(&state, &mut ledger, &body)),
    };
    let (code, response) = match answer {
        Err(status) => (
            Value::Null,
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)).finish(),
        ),
        Ok(fields) => {
            let code = json!(fields.get("vnp_ResponseCode"));
            (code, HttpResponse::Ok().json(signed_answer(&state, fields, &control)))
        }
    };
    if ledger.queries.len() == MAX_QUERIES_KEPT {
        ledger.queries.remove(0);
    }
    ledger.queries.push(json!({"request": request, "vnp_ResponseCode": code}));
    response
}

async fn querydr_control(state: web::Data<VnpayState>, c: web::Json<AnswerControl>) -> HttpResponse {
    state.ledger().control = c.into_inner();
    HttpResponse::Ok().json(json!({"ok": true}))
}

async fn queries(state: web::Data<VnpayState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.ledger().queries)
}

async fn orders(state: web::Data<VnpayState>) -> HttpResponse {
    let l = state.ledger();
    let m: Map<String, Value> = l.orders.iter().map(|(k, o)| (k.clone(), o.json())).collect();
    HttpResponse::Ok().json(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "vnpay-dev-hash-secret";

    fn hmac(data: &str) -> String {
        hex::encode(hcc_signing::hmac_sha512(SECRET.as_bytes(), data.as_bytes()).unwrap())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_query_signature_is_over_a_hand_written_string() {
        let p = pairs(&[
            ("vnp_TxnRef", "HCC241126ABCDEFGH"),
            ("vnp_OrderInfo", "Le phi: ho so/1"),
            ("vnp_Amount", "15000000"),
            ("vnp_BankCode", ""),
            ("vnp_SecureHashType", "HmacSHA512"),
            ("utm", "x"),
        ]);
        let written = "vnp_Amount=15000000&vnp_OrderInfo=Le+phi%3A+ho+so%2F1&vnp_TxnRef=HCC241126ABCDEFGH";
        assert_eq!(query_signing_string(&p), written);
        assert_eq!(vnpay_hash(&p, SECRET), hmac(written));
    }

    #[test]
    fn the_querydr_signatures_are_over_hand_written_strings() {
        let request = [
            "r1",
            "2.1.0",
            "querydr",
            "HCCDEV01",
            "HCC241126ABCDEFGH",
            "20241126133005",
            "20241126140000",
            "192.0.2.10",
            "Thanh toan",
        ];
        assert_eq!(
            pipe_hash(&request, SECRET),
            hmac("r1|2.1.0|querydr|HCCDEV01|HCC241126ABCDEFGH|20241126133005|20241126140000|192.0.2.10|Thanh toan")
        );
        let state = VnpayState::new("HCCDEV01", SECRET);
        let fields: HashMap<&'static str, String> = [
            ("vnp_ResponseId", "a1"),
            ("vnp_Command", "querydr"),
            ("vnp_ResponseCode", "00"),
            ("vnp_Message", "QueryDR Success"),
            ("vnp_TmnCode", "HCCDEV01"),
            ("vnp_TxnRef", "HCC241126ABCDEFGH"),
            ("vnp_Amount", "15000000"),
            ("vnp_TransactionType", "01"),
            ("vnp_TransactionStatus", "01"),
            ("vnp_OrderInfo", "Thanh toan"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let a = signed_answer(&state, fields, &AnswerControl::default());
        assert_eq!(
            a["vnp_SecureHash"],
            hmac("a1|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000||||01|01|Thanh toan||")
        );
        assert!(a.get("vnp_BankCode").is_none() && a.get("vnp_PromotionCode").is_none());
    }

    #[test]
    fn timestamps_must_be_real_dates() {
        assert!(valid_timestamp("20240229235959"));
        assert!(!valid_timestamp("20230229000000"));
        assert!(!valid_timestamp("20241126240000"));
        assert!(!valid_timestamp("2024112613300"));
    }

    // --- over HTTP ------------------------------------------------------------------------

    /// A payment URL's signed string, written out, dated far in the future so it has not
    /// expired. `extra` replaces or removes (empty) fields for the refusal cases.
    fn payment_query(extra: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("vnp_Amount", "15000000"),
            ("vnp_Command", "pay"),
            ("vnp_CreateDate", "20991126133005"),
            ("vnp_CurrCode", "VND"),
            ("vnp_ExpireDate", "20991126134505"),
            ("vnp_IpAddr", "203.0.113.7"),
            ("vnp_Locale", "vn"),
            ("vnp_OrderInfo", "Thanh+toan+phi%2C+le+phi"),
            ("vnp_OrderType", "other"),
            ("vnp_ReturnUrl", "https%3A%2F%2Fcentre.example%2Fpaid"),
            ("vnp_TmnCode", "HCCDEV01"),
            ("vnp_TxnRef", "HCC991126ABCDEFGH"),
            ("vnp_Version", "2.1.0"),
        ];
        for (k, v) in extra {
            fields.retain(|(fk, _)| fk != k);
            if !v.is_empty() {
                fields.push((k, v));
            }
        }
        fields.sort();
        let signed = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        format!("{signed}&vnp_SecureHash={}", hmac(&signed))
    }

    async fn get(url: String) -> (u16, Value) {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn post(url: String, body: &Value) -> Value {
        reqwest::Client::new()
            .post(url)
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn querydr(id: &str, txn_ref: &str, transaction_date: &str) -> Value {
        let signed = format!("{id}|2.1.0|querydr|HCCDEV01|{txn_ref}|{transaction_date}|20991126140000|192.0.2.10|Hoi giao dich");
        json!({
            "vnp_RequestId": id, "vnp_Version": "2.1.0", "vnp_Command": "querydr", "vnp_TmnCode": "HCCDEV01",
            "vnp_TxnRef": txn_ref, "vnp_TransactionDate": transaction_date, "vnp_CreateDate": "20991126140000",
            "vnp_IpAddr": "192.0.2.10", "vnp_OrderInfo": "Hoi giao dich", "vnp_SecureHash": hmac(&signed),
        })
    }

    fn answer_string(a: &Value) -> String {
        QUERYDR_ANSWER
            .iter()
            .map(|k| a.get(*k).and_then(Value::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("|")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn payment_page_refusals() {
        let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
        let page = |q: String| get(format!("{}/vnpay/pay?{q}", mock.url()));
        for (extra, code) in [
            (vec![("vnp_IpAddr", "")], "03"),
            (vec![("vnp_IpAddr", "citizen")], "03"),
            (vec![("vnp_ExpireDate", "")], "03"),
            (vec![("vnp_ExpireDate", "20991126133005")], "03"),
            (vec![("vnp_ExpireDate", "20991326134505")], "03"),
            (vec![("vnp_Amount", "15000050")], "03"),
            (vec![("vnp_OrderInfo", "L%E1%BB%87+ph%C3%AD")], "03"),
            (vec![("vnp_TmnCode", "OTHER001")], "72"),
            (
                vec![("vnp_CreateDate", "20201126133005"), ("vnp_ExpireDate", "20201126134505")],
                "11",
            ),
        ] {
            let (status, body) = page(payment_query(&extra)).await;
            assert_eq!((status, body["code"].as_str().unwrap()), (400, code), "{extra:?}: {body}");
        }
        let (_, body) = page(payment_query(&[]).replace("vnp_Amount=15000000", "vnp_Amount=25000000")).await;
        assert_eq!(body["code"], "70");
        let (_, body) = page(format!("vnp_Amount=15000000&{}", payment_query(&[]))).await;
        assert_eq!(body["code"], "03", "a repeated key");
        let (_, body) = get(format!("{}/_mock/vnpay/orders", mock.url())).await;
        assert_eq!(body, json!({}), "nothing refused was recorded");
        mock.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_order_paid_with_a_lost_ipn_is_found_by_querydr() {
        let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
        let api = format!("{}/merchant_webapi/api/transaction", mock.url());
        let (status, body) = get(format!("{}/vnpay/pay?{}", mock.url(), payment_query(&[]))).await;
        assert_eq!((status, body["code"].as_str()), (200, Some("00")), "{body}");
        // Not paid yet: pending, with no transaction, bank or pay date (absent, signed as empty).
        let a = post(api.clone(), &querydr("q1", "HCC991126ABCDEFGH", "20991126133005")).await;
        assert_eq!(
            (a["vnp_ResponseCode"].as_str(), a["vnp_TransactionStatus"].as_str()),
            (Some("00"), Some("01"))
        );
        assert_eq!(
            answer_string(&a),
            format!(
                "{}|querydr|00|QueryDR Success|HCCDEV01|HCC991126ABCDEFGH|15000000||||01|01|Thanh toan phi, le phi||",
                a["vnp_ResponseId"].as_str().unwrap()
            )
        );
        assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)));
        // Paid, and the IPN lost.
        let p = post(
            format!("{}/_mock/vnpay/pay", mock.url()),
            &json!({"TxnRef": "HCC991126ABCDEFGH", "lose_ipn": true}),
        )
        .await;
        assert_eq!(p["ipn_sent"], false);
        let a = post(api.clone(), &querydr("q2", "HCC991126ABCDEFGH", "20991126133005")).await;
        assert_eq!(
            (a["vnp_TransactionStatus"].as_str(), a["vnp_Amount"].as_str()),
            (Some("00"), Some("15000000"))
        );
        assert_eq!(a["vnp_TransactionNo"], p["vnp_TransactionNo"]);
        assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)));
        // Found only with the order's own vnp_CreateDate; ids are unique per day; hashes checked.
        let a = post(api.clone(), &querydr("q3", "HCC991126ABCDEFGH", "20991126140000")).await;
        assert_eq!(a["vnp_ResponseCode"], "91");
        let a = post(api.clone(), &querydr("q3", "HCC991126ABCDEFGH", "20991126133005")).await;
        assert_eq!(a["vnp_ResponseCode"], "94");
        let mut bad = querydr("q4", "HCC991126ABCDEFGH", "20991126133005");
        bad["vnp_OrderInfo"] = json!("changed");
        assert_eq!(post(api.clone(), &bad).await["vnp_ResponseCode"], "97");
        let mut bad = querydr("q5", "HCC991126ABCDEFGH", "20991126133005");
        bad["vnp_Version"] = json!("2.0.1");
        assert_eq!(post(api.clone(), &bad).await["vnp_ResponseCode"], "03");
        // Bent answers: tampered once, then another (signed) amount as a JSON number.
        post(format!("{}/_mock/vnpay/querydr", mock.url()), &json!({"tamper": true, "times": 1})).await;
        let a = post(api.clone(), &querydr("q6", "HCC991126ABCDEFGH", "20991126133005")).await;
        assert_ne!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)));
        let a = post(api.clone(), &querydr("q7", "HCC991126ABCDEFGH", "20991126133005")).await;
        assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)), "times: 1 is over");
        post(
            format!("{}/_mock/vnpay/querydr", mock.url()),
            &json!({"amount_vnd": 1000, "amount_as_number": true}),
        )
        .await;
        let a = post(api.clone(), &querydr("q8", "HCC991126ABCDEFGH", "20991126133005")).await;
        assert_eq!(a["vnp_Amount"], json!(100000));
        let signed = answer_string(&a).replacen("|HCC991126ABCDEFGH||", "|HCC991126ABCDEFGH|100000|", 1);
        assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&signed));
        let (_, q) = get(format!("{}/_mock/vnpay/queries", mock.url())).await;
        let codes: Vec<&str> = q
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["vnp_ResponseCode"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["00", "00", "91", "94", "97", "03", "00", "00", "00"]);
        assert_eq!(q[0]["request"]["vnp_RequestId"], "q1");
        mock.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ipns_are_signed_and_sent_by_get() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        let merchant = crate::spawn_server("127.0.0.1:0", move |cfg: &mut web::ServiceConfig| {
            let s = s.clone();
            cfg.route(
                "/ipn",
                web::get().to(move |req: HttpRequest| {
                    let s = s.clone();
                    async move {
                        s.lock().unwrap().push(req.query_string().to_string());
                        HttpResponse::Ok().json(json!({"RspCode": "00", "Message": "Confirm Success"}))
                    }
                }),
            );
        })
        .unwrap();
        let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
        let p = post(
            format!("{}/_mock/vnpay/pay", mock.url()),
            &json!({"TxnRef": "HCC241126ABCDEFGH", "amount_vnd": 150000, "ipn_url": format!("{}/ipn", merchant.url()),
                    "create_date": "20241126133005"}),
        )
        .await;
        assert_eq!(p["replies"][0]["RspCode"], "00");
        let query = seen.lock().unwrap()[0].clone();
        let get = |k: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        let (txn, paid) = (get("vnp_TransactionNo"), get("vnp_PayDate"));
        let written = format!(
            "vnp_Amount=15000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP{txn}&vnp_CardType=ATM\
             &vnp_OrderInfo=Thanh+toan+le+phi+ho+so&vnp_PayDate={paid}&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01\
             &vnp_TransactionNo={txn}&vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH"
        );
        assert_eq!(get("vnp_SecureHash"), hmac(&written));
        // An injection-test IPN: the raw prefix goes in front of the signed query.
        let p = post(
            format!("{}/_mock/vnpay/pay", mock.url()),
            &json!({"TxnRef": "HCC241126ABCDEFGH", "ipn_url": format!("{}/ipn", merchant.url()),
                    "query_prefix": "vnp_ResponseCode=&vnp_TransactionNo="}),
        )
        .await;
        assert!(
            p["ipn_query"]
                .as_str()
                .unwrap()
                .starts_with("vnp_ResponseCode=&vnp_TransactionNo=&vnp_TmnCode=")
        );
        assert_eq!(
            p["vnp_TransactionNo"].as_str().unwrap(),
            txn,
            "a resent success keeps its transaction"
        );
        merchant.stop().await;
        mock.stop().await;
    }

    /// As the VNPAY sandbox signs it: a cancelled payment says `24`, status `02`, and
    /// transaction number `0`, for every order; a later success gets a real number.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_payment_carries_transaction_number_zero() {
        let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
        let url = format!("{}/_mock/vnpay/pay", mock.url());
        let pay = |reference: &str, code: &str| {
            let body = json!({"TxnRef": reference, "amount_vnd": 150000, "lose_ipn": true, "response_code": code,
                              "create_date": "20241126133005"});
            let url = url.clone();
            async move { post(url, &body).await }
        };
        for reference in ["HCC241126ABCDEFGH", "HCC241126BCDEFGHJ"] {
            let p = pay(reference, "24").await;
            let query = p["ipn_query"].as_str().unwrap().to_string();
            let get = |k: &str| {
                form_urlencoded::parse(query.as_bytes())
                    .find(|(pk, _)| pk == k)
                    .map(|(_, v)| v.into_owned())
                    .unwrap()
            };
            assert_eq!(
                (get("vnp_ResponseCode"), get("vnp_TransactionStatus"), get("vnp_TransactionNo")),
                ("24".to_string(), "02".to_string(), "0".to_string()),
                "{query}"
            );
        }
        let p = pay("HCC241126ABCDEFGH", "00").await;
        assert_ne!(p["vnp_TransactionNo"], "0", "{p}");
        assert_eq!(p["vnp_TransactionNo"].as_str().map(str::len), Some(8));
        mock.stop().await;
    }
}
