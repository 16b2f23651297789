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
//!
//! The parts: this file holds the ledger, the state and the routes; `sign` the two
//! signatures and the checks they share; `pay` the payment page and the IPN; `querydr` the
//! transaction API; `control` the `/_mock/vnpay/...` control and inspection handlers.

mod control;
mod pay;
mod querydr;
mod sign;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use serde::Deserialize;
use serde_json::{Value, json};

use control::{orders, queries, querydr_control};
use pay::{pay_page, vnpay_pay};
use querydr::transaction_api;

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
