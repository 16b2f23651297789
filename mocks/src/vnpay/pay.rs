//! The payment page (`GET /vnpay/pay`) and "the citizen paid" (`POST /_mock/vnpay/pay`),
//! which records the payment and sends the signed IPN.

use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::sign::{hash_ok, valid_timestamp, vnpay_hash};
use super::{MAX_PAY_PARAMS, MAX_PAY_QUERY_BYTES, Order, VERSION, VnpayState};

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

pub(super) async fn pay_page(state: web::Data<VnpayState>, req: HttpRequest) -> HttpResponse {
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
pub(super) struct VnpayPay {
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

pub(super) async fn vnpay_pay(state: web::Data<VnpayState>, r: web::Json<VnpayPay>) -> HttpResponse {
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
