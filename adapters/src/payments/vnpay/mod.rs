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
//!
//! This module is the provider (settings, build, the calls to VNPAY); the messages themselves
//! are built and read without I/O in `wire.rs`, re-exported here.

use std::net::IpAddr;

use std::sync::Arc;
use std::time::Duration;

use hcc_config::{Problem, Secret};
use serde_json::json;

use super::{
    AmountRule, Applied, BuildContext, CallbackHead, CallbackMethod, CallbackRoute, CreateError, Handoff, Notice, Parsed, PaymentCreator,
    PaymentOrder, PaymentProvider, PendingPayment, ProviderKind, ProviderSettings, Reconciler, Refused, Reply, RequiredField, Schedule,
    Settlement, StoreFailed, check_http_url, problem, provider_client, settings_if_on,
};
use super::{MAX_ANSWER_BYTES, read_json};
use crate::BoxFuture;
use crate::evidence::{Keep, Label};
use crate::http;

mod wire;

pub use wire::*;

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
        let label = Label::new(ID, "querydr").keep(Keep::Answer);
        let answer = match http::send(self.client.post(&self.api_url).json(&body), label, MAX_ANSWER_BYTES).await {
            // Only a 2xx answer is read: a redirect or an error page says nothing.
            Ok(r) if r.status().is_success() => read_json(r).await.ok()?,
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
                Verdict::Paid | Verdict::Failed => Notice::Settled(Settlement {
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
                Verdict::Pending | Verdict::Undecided => Notice::Undecided {
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
mod tests;
