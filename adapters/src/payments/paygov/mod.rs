//! The national payment platform (PayGov): INIT to create a payment, QUERY to reconcile, and
//! the platform's confirmation callback. Every message carries `MaXacThuc`: lowercase hex
//! SHA-256 of the listed fields joined with `|`, the shared secret appended last (plain SHA-256,
//! not HMAC, as the platform defines it), compared in constant time.
//!
//! This module is the provider (settings, build, the calls to the platform); the messages
//! themselves are built and read without I/O in `wire.rs`, re-exported here.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use hcc_config::{Problem, Secret};
use serde_json::Value;

use super::{
    AmountRule, Applied, BuildContext, CallbackHead, CallbackMethod, CallbackProblem, CallbackRoute, CreateError, Handoff, Notice, Parsed,
    PaymentCreator, PaymentOrder, PaymentProvider, PendingPayment, ProviderKind, ProviderSettings, Reconciler, Refused, Reply,
    RequiredField, Schedule, Settlement, State, StoreFailed, check_http_url, problem, provider_client, settings_if_on,
};
use super::{MAX_ANSWER_BYTES, read_json};
use crate::BoxFuture;
use crate::evidence::{Keep, Label};
use crate::http;

mod wire;

pub use wire::*;

/// The `[paygov]` section. PayGov is on when `base_url` or `init_url` is set.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaygovSettings {
    pub base_url: String,
    /// INIT's endpoint; empty: `base_url`.
    pub init_url: String,
    /// QUERY's endpoint; empty: `base_url`.
    pub query_url: String,
    /// Sent as `Authorization: Bearer` when set.
    pub bearer_token: Secret,
    /// `MaNganHang` in every INIT.
    pub bank_code: String,
    /// `Ip` in INIT: this server's address as the platform sees it.
    pub server_ip: String,
    pub partner_code: String,
    pub secret: Secret,
    /// `POST /v1/payments` waits at most this long for INIT, retries included.
    pub init_deadline_ms: u64,
    /// How long a payment stays payable on the platform's page, in minutes: with
    /// `payments.expire_grace_minutes`, when a payment QUERY reports unpaid is `expired`.
    pub expire_minutes: u64,
    pub reconcile_interval_secs: u64,
    pub reconcile_min_age_secs: u64,
    pub reconcile_max_age_secs: u64,
}

impl Default for PaygovSettings {
    fn default() -> Self {
        PaygovSettings {
            base_url: String::new(),
            init_url: String::new(),
            query_url: String::new(),
            bearer_token: Secret::default(),
            bank_code: "PAYMENT".into(),
            server_ip: String::new(),
            partner_code: String::new(),
            secret: Secret::default(),
            init_deadline_ms: 8_000,
            expire_minutes: 15,
            reconcile_interval_secs: 300,
            reconcile_min_age_secs: 1_800,
            reconcile_max_age_secs: 3 * 86_400,
        }
    }
}

impl ProviderSettings for PaygovSettings {
    fn is_on(&self) -> bool {
        !self.base_url.is_empty() || !self.init_url.is_empty()
    }

    /// Everything its types cannot say, by key; production refuses a secret (or a bearer token)
    /// under 16 bytes, with which anyone could forge a confirmation, and `http` to anything but
    /// a loopback host.
    fn problems(&self, ctx: &BuildContext<'_>) -> Vec<Problem> {
        let mut p = Vec::new();
        for (key, url) in [
            ("paygov.base_url", &self.base_url),
            ("paygov.init_url", &self.init_url),
            ("paygov.query_url", &self.query_url),
        ] {
            if !url.is_empty() {
                check_http_url(&mut p, key, url, ctx.production);
            }
        }
        if !self.is_on() {
            return p;
        }
        if !(1..=10_080).contains(&self.expire_minutes) {
            p.push(problem("paygov.expire_minutes", "must be between 1 and 10080 (a week)"));
        }
        if self.bank_code.trim().is_empty() {
            p.push(problem("paygov.bank_code", "must not be empty: it is MaNganHang in every INIT"));
        }
        if self.server_ip.parse::<std::net::IpAddr>().is_err() {
            p.push(problem(
                "paygov.server_ip",
                "must be this server's IP address as the platform sees it (Ip in INIT)",
            ));
        }
        if ctx.agencies.is_empty() {
            p.push(problem(
                "agencies",
                "PayGov needs at least one receiving agency with its beneficiary account",
            ));
        }
        hcc_config::check_shared_secret(&mut p, "paygov.secret", &self.secret, ctx.production, "PayGov's confirmations");
        if !self.bearer_token.is_empty() {
            hcc_config::check_shared_secret(
                &mut p,
                "paygov.bearer_token",
                &self.bearer_token,
                ctx.production,
                "calls to PayGov as this gateway",
            );
        }
        p
    }
}

/// PayGov as the registry lists it.
pub const KIND: ProviderKind = ProviderKind {
    id: ID,
    routes: &[CallbackRoute {
        method: CallbackMethod::Post,
        path: "/v1/callbacks/paygov",
        operation: CALLBACK_OPERATION,
        // A confirmation is a dozen short fields, well under 1 KiB.
        body_limit: Some(8 * 1024),
    }],
    creates: Some(&[
        // The platform's receipt for MaDichVu 2 names the payer in full.
        RequiredField {
            field: "SoCMNDNguoiNop",
            message: "is required for PayGov: the receipt names the payer",
        },
        RequiredField {
            field: "DiaChiNguoiNop",
            message: "is required for PayGov: the receipt names the payer",
        },
    ]),
    build: build_provider,
};

pub const ID: &str = "paygov";

const CALLBACK_OPERATION: &str = r##"{
    "summary": "PayGov's payment confirmation (authenticated by MaXacThuc, no API key)",
    "description": "Every answer the platform should read is a 200 in its own terms: MaLoi 00 taken (or a repeat), anything else not taken.",
    "tags": [
        "callbacks"
    ],
    "requestBody": {
        "required": true,
        "description": "PayGov's confirmation",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object"
                }
            }
        }
    },
    "responses": {
        "200": {
            "description": "PayGov's answer",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "MaLoi 00 is taken, anything else is not",
                        "required": [
                            "MaLoi",
                            "MoTaLoi",
                            "MaDoiTac",
                            "MaThamChieu",
                            "ThoiGianGD",
                            "MaXacThuc"
                        ],
                        "properties": {
                            "MaLoi": {
                                "type": "string"
                            },
                            "MoTaLoi": {
                                "type": "string"
                            },
                            "MaDoiTac": {
                                "type": "string"
                            },
                            "MaThamChieu": {
                                "type": "string"
                            },
                            "ThoiGianGD": {
                                "type": "string"
                            },
                            "MaXacThuc": {
                                "type": "string"
                            }
                        }
                    }
                }
            }
        },
        "400": {
            "description": "The body is not JSON"
        },
        "413": {
            "description": "The body is larger than the configured limit"
        },
        "415": {
            "description": "The body is not application/json"
        },
        "503": {
            "description": "PayGov is not configured, or the queue backend is unavailable"
        }
    }
}"##;

fn build_provider(ctx: &BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>> {
    let Some(s) = settings_if_on::<PaygovSettings>(ctx)? else {
        return Ok(None);
    };
    let init_deadline = Duration::from_millis(s.init_deadline_ms);
    let or_base = |url: &str| if url.is_empty() { s.base_url.clone() } else { url.to_string() };
    Ok(Some(Arc::new(Paygov {
        client: provider_client("paygov.init_deadline_ms", init_deadline / 2)?,
        init_url: or_base(&s.init_url),
        query_url: or_base(&s.query_url),
        schedule: Schedule::from_secs(s.reconcile_interval_secs, s.reconcile_min_age_secs, s.reconcile_max_age_secs)
            .with_lifetime(Duration::from_secs(s.expire_minutes * 60)),
        init_deadline,
        settings: s,
    })))
}

/// PayGov, configured.
pub struct Paygov {
    settings: PaygovSettings,
    init_url: String,
    query_url: String,
    init_deadline: Duration,
    schedule: Schedule,
    client: reqwest::Client,
}

impl Paygov {
    /// A POST to the platform, with the bearer token when one is configured.
    fn post(&self, url: &str, msg: &Value) -> reqwest::RequestBuilder {
        let req = self.client.post(url).json(msg);
        let token = self.settings.bearer_token.expose();
        if token.is_empty() { req } else { req.bearer_auth(token) }
    }

    /// INIT with a deadline; a transient failure is retried within it.
    async fn init(&self, msg: &Value) -> Result<String, CreateError> {
        let attempt = || async {
            let label = Label::new(ID, "INIT").keep(Keep::Answer);
            let resp = http::send(self.post(&self.init_url, msg), label, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| CreateError::Unreachable(e.to_string()))?;
            let status = resp.status().as_u16();
            if resp.status().is_server_error() || status == 429 {
                return Err(CreateError::Unreachable(format!("HTTP {status}")));
            }
            if resp.status().is_redirection() {
                // The client follows no redirect; the Location is not ours to trust or log.
                tracing::error!(
                    alarm = true,
                    provider = ID,
                    status,
                    "PayGov INIT answered a redirect, which is not followed: check paygov.init_url"
                );
                return Err(CreateError::Refused(format!("HTTP {status} (a redirect, not followed)")));
            }
            if !resp.status().is_success() {
                return Err(CreateError::Refused(format!("HTTP {status}")));
            }
            let v: Value = read_json(resp).await.map_err(CreateError::Unreachable)?;
            parse_init_answer(&v).map_err(CreateError::Refused)
        };
        let retried = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(2),
            )
            .when(|e| matches!(e, CreateError::Unreachable(_)));
        match tokio::time::timeout(self.init_deadline, retried).await {
            Ok(r) => r,
            Err(_) => Err(CreateError::Unreachable(format!(
                "no answer within {} ms",
                self.init_deadline.as_millis()
            ))),
        }
    }

    /// QUERY for one payment, with the time its INIT carried.
    async fn query_one(&self, payment: &PendingPayment) -> Option<Notice> {
        let s = &self.settings;
        let msg = query_message(&s.partner_code, &payment.reference, &payment.provider_created, s.secret.expose());
        let label = Label::new(ID, "QUERY").keep(Keep::Answer);
        let answer = match http::send(self.post(&self.query_url, &msg), label, MAX_ANSWER_BYTES).await {
            // Only a 2xx answer is read: a redirect or an error page says nothing.
            Ok(r) if r.status().is_success() => read_json(r).await.ok(),
            Ok(r) => {
                tracing::warn!(reference = %payment.reference, status = r.status().as_u16(), "PayGov QUERY answered without success");
                None
            }
            Err(e) => {
                tracing::warn!(reference = %payment.reference, error = %e, "PayGov QUERY failed");
                None
            }
        };
        let now = super::vn_timestamp(super::unix_now());
        let settled = |transaction: String, amount: u64, paid: bool| {
            Some(Notice::Settled(Settlement {
                reference: payment.reference.clone(),
                source: ID.into(),
                transaction,
                amount,
                paid,
                time: now.clone(),
                amounts: AmountRule::Ledger,
            }))
        };
        match answer.as_ref().and_then(parse_query_answer) {
            Some(QueryState::Paid { amount, transaction }) => settled(transaction, amount, true),
            // A failure belongs to its payment: the ledger keeps it under the reference, and
            // the answer names what was said (`TrangThaiGD` 4).
            Some(QueryState::Failed) => settled("query-failed:4".into(), payment.amount, false),
            // The platform says it is not paid (`TrangThaiGD` 3): past its lifetime and the
            // grace, that ends it (`expired`).
            Some(QueryState::Pending) => Some(Notice::Undecided {
                reference: payment.reference.clone(),
                amount: payment.amount,
            }),
            None => {
                tracing::warn!(reference = %payment.reference, "PayGov QUERY gave no trustworthy answer (MaLoi not 00); asking again next round");
                None
            }
        }
    }
}

impl PaymentProvider for Paygov {
    fn id(&self) -> &'static str {
        ID
    }

    fn creator(&self) -> Option<&dyn PaymentCreator> {
        Some(self)
    }

    fn reconciler(&self) -> Option<&dyn Reconciler> {
        Some(self)
    }

    fn parse<'a>(&'a self, _head: CallbackHead<'a>, body: Vec<u8>) -> BoxFuture<'a, Result<Parsed, Refused>> {
        Box::pin(async move {
            let partner = self.settings.partner_code.clone();
            let v: Value = serde_json::from_slice(&body).map_err(|_| {
                Refused::new(
                    Reply::Problem(CallbackProblem::Malformed("the confirmation is not JSON".into())),
                    "the confirmation is not JSON",
                )
            })?;
            let c = match parse_confirmation(&v, &partner, self.settings.secret.expose()) {
                Ok(c) => c,
                Err(e) => {
                    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let answer = reply(
                        "99",
                        &e.to_string(),
                        &partner,
                        &text("MaThamChieu"),
                        &text("ThoiGianGD"),
                        &text("MaXacThuc"),
                    );
                    return Err(Refused::new(Reply::Json(answer), e.to_string()));
                }
            };
            let notice = Notice::Settled(Settlement {
                reference: c.reference.clone(),
                source: ID.into(),
                // A failure is named by the platform's answer (`MaLoi`), not by a bank transaction it
                // may lack; the ledger keeps it under the payment's reference.
                transaction: if c.paid {
                    c.transaction.clone()
                } else {
                    format!("failed:{}", c.ma_loi)
                },
                amount: c.amount,
                paid: c.paid,
                time: c.time.clone(),
                amounts: AmountRule::Ledger,
            });
            let answer = move |outcomes: Result<&[Applied], StoreFailed>| {
                let answer =
                    |code: &str, description: &str| Reply::Json(reply(code, description, &partner, &c.reference, &c.time, &c.checksum));
                // The platform hears "not taken" and sends again; nothing was recorded.
                let Ok([outcome]) = outcomes else {
                    return answer("99", "Lỗi hệ thống, vui lòng gửi lại");
                };
                match outcome {
                    Applied::Paid | Applied::Duplicate(State::Paid) => answer("00", "Thành công"),
                    Applied::AlreadySettled(State::Paid) | Applied::PaidTwice => answer("00", "Giao dịch đã được ghi nhận"),
                    // A failure is recorded but is never answered with 00: the platform's own code goes back.
                    Applied::Failed | Applied::Duplicate(State::Failed) => answer(&c.ma_loi, "Đã ghi nhận giao dịch không thành công"),
                    Applied::Unknown => answer("99", "Không tìm thấy mã tham chiếu"),
                    Applied::AmountMismatch | Applied::Duplicate(State::AmountMismatch) | Applied::OrderAmountDiffers => {
                        answer("99", "Số tiền không khớp")
                    }
                    _ => answer("99", "Giao dịch không còn chờ thanh toán"),
                }
            };
            Ok(Parsed {
                notices: vec![notice],
                reply: Box::new(answer),
            })
        })
    }
}

impl PaymentCreator for Paygov {
    fn create<'a>(&'a self, order: &'a PaymentOrder<'a>) -> BoxFuture<'a, Result<Handoff, CreateError>> {
        Box::pin(async move {
            let s = &self.settings;
            let a = order.agency;
            let ma_dvc = ma_dvc(order.service.ma_dvc.as_deref(), order.ma_tthc);
            let msg = init_message(
                &InitRequest {
                    partner_code: &s.partner_code,
                    reference: order.reference,
                    amount: order.amount,
                    description: order.description,
                    timestamp: order.created,
                    bank_code: &s.bank_code,
                    server_ip: &s.server_ip,
                    ma_ho_so: order.ma_ho_so,
                    ma_tthc: order.ma_tthc,
                    ten_tthc: order.ten_tthc,
                    ma_dvc: &ma_dvc,
                    ten_dvc: order.service.ten_dvc.as_deref(),
                    beneficiary: Beneficiary {
                        ma_don_vi: &a.ma_don_vi,
                        ten_don_vi: &a.ten_don_vi,
                        tk_thu_huong: &a.tk_thu_huong,
                        ma_nh_thu_huong: &a.ma_nh_thu_huong,
                        ten_tk_thu_huong: &a.ten_tk_thu_huong,
                    },
                    fees: order.fees,
                    payer: Payer {
                        ho_ten: &order.payer.ho_ten,
                        so_cmnd: order.payer.so_cmnd.as_deref().unwrap_or(""),
                        dia_chi: order.payer.dia_chi.as_deref().unwrap_or(""),
                        huyen: order.payer.huyen.as_deref(),
                        tinh: order.payer.tinh.as_deref(),
                    },
                },
                s.secret.expose(),
            );
            self.init(&msg).await.map(Handoff::Url)
        })
    }

    fn lifetime(&self) -> Duration {
        self.schedule.lifetime
    }
}

impl Reconciler for Paygov {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn query<'a>(&'a self, payment: &'a PendingPayment) -> BoxFuture<'a, Option<Notice>> {
        Box::pin(self.query_one(payment))
    }
}

#[cfg(test)]
mod tests;
