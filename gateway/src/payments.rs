//! Non-cash fee payments: creating a payment with a provider, and applying providers'
//! confirmations by one set of matching rules whatever the route (PayGov callback, VNPAY IPN,
//! bank camt.054, reconciliation). The state lives in the queue backend; the first valid
//! confirmation marks the payment paid and queues one `payment.confirmed` event for the centre
//! in the same atomic step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use hcc_adapters::payments::paygov::{self, FeeLine, QueryState};
use hcc_adapters::payments::{new_reference, vn_timestamp, vnpay};
use hcc_config::Settings;
use openssl::x509::X509;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::engine::queue::payments::{ConfirmOutcome, Confirmation, PaymentRecord, PaymentState, ReverseOutcome};
use crate::engine::queue::{Millis, NewMessage, Queue, QueueError, now_ms};
use crate::observe::Telemetry;

/// Payments and their events live beside the centre's webhook queue.
pub const EVENTS_QUEUE: &str = hcc_adapters::webhook::DESTINATION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Paygov,
    Vnpay,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Paygov => "paygov",
            Provider::Vnpay => "vnpay",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("the {0} provider is not configured on this gateway")]
    NotConfigured(&'static str),
    #[error("the provider refused the payment: {0}")]
    Refused(String),
    #[error("the provider did not answer in time: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub struct NewPayment {
    pub ma_ho_so: String,
    pub amount: u64,
    pub provider: Provider,
    pub fees: Vec<FeeLine>,
    pub payer: Value,
}

struct PaygovConfig {
    base_url: String,
    partner_code: String,
    secret: String,
}

struct VnpayConfig {
    tmn_code: String,
    hash_secret: String,
    pay_url: String,
    return_url: String,
}

pub struct Payments {
    queue: Queue,
    client: reqwest::Client,
    paygov: Option<PaygovConfig>,
    vnpay: Option<VnpayConfig>,
    init_deadline: Duration,
    /// Configured banks' signing certificates, by bank id.
    pub banks: BTreeMap<String, X509>,
    telemetry: Arc<Telemetry>,
}

impl Payments {
    pub fn from_settings(s: &Settings, queue: Queue, telemetry: Arc<Telemetry>) -> Result<Self, (&'static str, String)> {
        let paygov = (!s.paygov.base_url.is_empty()).then(|| PaygovConfig {
            base_url: s.paygov.base_url.clone(),
            partner_code: s.paygov.partner_code.clone(),
            secret: s.paygov.secret.expose().to_string(),
        });
        let vnpay = (!s.vnpay.tmn_code.is_empty()).then(|| VnpayConfig {
            tmn_code: s.vnpay.tmn_code.clone(),
            hash_secret: s.vnpay.hash_secret.expose().to_string(),
            pay_url: s.vnpay.pay_url.clone(),
            return_url: s.vnpay.return_url.clone(),
        });
        let mut banks = BTreeMap::new();
        for (id, b) in &s.banks {
            let pem = std::fs::read(&b.cert).map_err(|e| ("banks.<id>.cert", format!("banks.{id}.cert: cannot read {}: {e}", b.cert)))?;
            let cert = X509::from_pem(&pem).map_err(|_| ("banks.<id>.cert", format!("banks.{id}.cert: not a PEM certificate")))?;
            banks.insert(id.clone(), cert);
        }
        let init_deadline = Duration::from_millis(s.paygov.init_deadline_ms);
        let client = hcc_adapters::http::client(init_deadline / 2).map_err(|e| ("paygov.base_url", e.to_string()))?;
        Ok(Payments {
            queue,
            client,
            paygov,
            vnpay,
            init_deadline,
            banks,
            telemetry,
        })
    }

    pub fn paygov_partner(&self) -> Option<(&str, &str)> {
        self.paygov.as_ref().map(|p| (p.partner_code.as_str(), p.secret.as_str()))
    }

    pub fn vnpay_secret(&self) -> Option<&str> {
        self.vnpay.as_ref().map(|v| v.hash_secret.as_str())
    }

    pub async fn get(&self, reference: &str) -> Result<Option<PaymentRecord>, QueueError> {
        self.queue.payment_get(EVENTS_QUEUE, reference).await
    }

    /// Creates a payment with its provider, synchronously. The record is stored (pending)
    /// before the provider hears of it, so a confirmation can never find it missing; a
    /// provider that refuses marks it failed.
    pub async fn create(&self, p: NewPayment) -> Result<PaymentRecord, PaymentError> {
        let now = now_ms();
        let reference = new_reference(now / 1000);
        let timestamp = vn_timestamp(now / 1000);
        let description = format!("Thanh toan phi, le phi ho so {}", p.ma_ho_so);
        let mut record = PaymentRecord {
            reference: reference.clone(),
            ma_ho_so: p.ma_ho_so.clone(),
            amount: p.amount,
            provider: p.provider.as_str().into(),
            status: PaymentState::Pending,
            payment_url: String::new(),
            fees_json: serde_json::to_string(&p.fees).unwrap_or_default(),
            payer_json: p.payer.to_string(),
            created_at: now,
            provider_transaction: None,
            provider_time: None,
            settled_at: None,
        };
        match p.provider {
            Provider::Vnpay => {
                let v = self.vnpay.as_ref().ok_or(PaymentError::NotConfigured("vnpay"))?;
                record.payment_url = vnpay::payment_url(
                    &vnpay::PaymentRequest {
                        pay_url: &v.pay_url,
                        tmn_code: &v.tmn_code,
                        reference: &reference,
                        amount_vnd: p.amount,
                        order_info: &description,
                        create_date: &timestamp,
                        return_url: &v.return_url,
                        ip: "127.0.0.1",
                    },
                    &v.hash_secret,
                );
                self.queue.payment_create(EVENTS_QUEUE, &record).await?;
            }
            Provider::Paygov => {
                let g = self.paygov.as_ref().ok_or(PaymentError::NotConfigured("paygov"))?;
                self.queue.payment_create(EVENTS_QUEUE, &record).await?;
                let payer = p.payer.get("HoTen").and_then(Value::as_str).unwrap_or("");
                let msg = paygov::init_message(
                    &paygov::InitRequest {
                        partner_code: &g.partner_code,
                        reference: &reference,
                        amount: p.amount,
                        description: &description,
                        timestamp: &timestamp,
                        ma_ho_so: &p.ma_ho_so,
                        fees: &p.fees,
                        payer_name: payer,
                    },
                    &g.secret,
                );
                match self.init(&g.base_url, &msg).await {
                    Ok(url) => record.payment_url = url,
                    Err(e) => {
                        let failed = Confirmation {
                            reference: reference.clone(),
                            provider: "paygov".into(),
                            transaction: format!("init:{reference}"),
                            amount: p.amount,
                            paid: false,
                            provider_time: timestamp.clone(),
                        };
                        let _ = self.queue.payment_confirm(EVENTS_QUEUE, &failed, &unused_event(), now_ms()).await;
                        return Err(e);
                    }
                }
                self.queue.payment_set_url(EVENTS_QUEUE, &reference, &record.payment_url).await?;
            }
        }
        self.telemetry.payment_state("pending");
        self.telemetry.audit(
            "centre",
            "payment.create",
            &reference,
            &format!("{} {} VND via {}", record.ma_ho_so, record.amount, record.provider),
        );
        Ok(record)
    }

    /// INIT with a deadline; a transient failure is retried within it.
    async fn init(&self, url: &str, msg: &Value) -> Result<String, PaymentError> {
        let attempt = || async {
            let resp = self
                .client
                .post(url)
                .json(msg)
                .send()
                .await
                .map_err(|e| PaymentError::Unreachable(e.to_string()))?;
            if resp.status().is_server_error() || resp.status().as_u16() == 429 {
                return Err(PaymentError::Unreachable(format!("HTTP {}", resp.status().as_u16())));
            }
            let v: Value = resp.json().await.map_err(|e| PaymentError::Unreachable(e.to_string()))?;
            match (
                v.get("MaLoi").and_then(Value::as_str),
                v.get("UrlThanhToan").and_then(Value::as_str),
            ) {
                (Some("00"), Some(u)) if !u.is_empty() => Ok(u.to_string()),
                _ => Err(PaymentError::Refused(format!(
                    "MaLoi {} {}",
                    v.get("MaLoi").unwrap_or(&Value::Null),
                    v.get("MoTaLoi").and_then(Value::as_str).unwrap_or("")
                ))),
            }
        };
        let retried = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(2),
            )
            .when(|e| matches!(e, PaymentError::Unreachable(_)));
        match tokio::time::timeout(self.init_deadline, retried).await {
            Ok(r) => r,
            Err(_) => Err(PaymentError::Unreachable(format!(
                "no answer within {} ms",
                self.init_deadline.as_millis()
            ))),
        }
    }

    /// Applies a confirmation. The event is built from the stored record, so what the centre
    /// hears is what it asked for, plus the provider's transaction.
    pub async fn confirm(&self, c: &Confirmation) -> Result<ConfirmOutcome, QueueError> {
        let Some(record) = self.get(&c.reference).await? else {
            tracing::warn!(audit = true, provider = %c.provider, reference = %c.reference, "confirmation for an unknown reference refused");
            self.telemetry.audit(
                &format!("provider:{}", c.provider),
                "payment.confirmation_refused",
                &c.reference,
                "unknown reference",
            );
            return Ok(ConfirmOutcome::Unknown);
        };
        let event = event("payment.confirmed", &record, c, now_ms());
        let outcome = self.queue.payment_confirm(EVENTS_QUEUE, c, &event, now_ms()).await?;
        tracing::info!(audit = true, provider = %c.provider, reference = %c.reference, transaction = %c.transaction, outcome = ?outcome, "payment confirmation applied");
        let state = match outcome {
            ConfirmOutcome::Paid => Some("paid"),
            ConfirmOutcome::Failed => Some("failed"),
            ConfirmOutcome::AmountMismatch => Some("amount_mismatch"),
            _ => None,
        };
        if let Some(s) = state {
            self.telemetry.payment_state(s);
        }
        self.telemetry.audit(
            &format!("provider:{}", c.provider),
            "payment.confirmation",
            &c.reference,
            &format!("transaction {}: {outcome:?}", c.transaction),
        );
        if outcome == ConfirmOutcome::AmountMismatch {
            tracing::warn!(alarm = true, reference = %c.reference, expected = record.amount, received = c.amount, "payment amount mismatch: a person must look at it");
        }
        Ok(outcome)
    }

    pub async fn reverse(&self, reference: &str, reversal_key: &str, provider: &str, amount: u64) -> Result<ReverseOutcome, QueueError> {
        let Some(record) = self.get(reference).await? else {
            return Ok(ReverseOutcome::Unknown);
        };
        let c = Confirmation {
            reference: reference.into(),
            provider: provider.into(),
            transaction: reversal_key.into(),
            amount,
            paid: false,
            provider_time: String::new(),
        };
        let event = event("payment.reversed", &record, &c, now_ms());
        let outcome = self
            .queue
            .payment_reverse(EVENTS_QUEUE, reference, reversal_key, &event, now_ms())
            .await?;
        tracing::info!(audit = true, provider, reference, outcome = ?outcome, "payment reversal applied");
        self.telemetry.audit(
            &format!("provider:{provider}"),
            "payment.reversal",
            reference,
            &format!("{outcome:?}"),
        );
        if outcome == ReverseOutcome::Reversed {
            self.telemetry.payment_state("pending");
        }
        Ok(outcome)
    }

    /// Queries the platform about pending PayGov payments between the configured ages and
    /// applies the answers by the same rules, because callbacks get lost.
    pub async fn reconcile_once(&self, min_age: Duration, max_age: Duration) -> Result<usize, QueueError> {
        let Some(g) = &self.paygov else { return Ok(0) };
        let now = now_ms();
        let refs = self
            .queue
            .payments_pending(
                EVENTS_QUEUE,
                now - max_age.as_millis() as Millis,
                now - min_age.as_millis() as Millis,
                500,
            )
            .await?;
        let mut applied = 0;
        for reference in refs {
            let Some(record) = self.get(&reference).await? else { continue };
            if record.provider != "paygov" || record.status != PaymentState::Pending {
                continue;
            }
            let ts = vn_timestamp(now_ms() / 1000);
            let msg = paygov::query_message(&g.partner_code, &reference, &ts, &g.secret);
            let answer = match self.client.post(&g.base_url).json(&msg).send().await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(e) => {
                    tracing::warn!(reference = %reference, error = %e, "reconciliation query failed");
                    None
                }
            };
            let c = match answer.as_ref().and_then(paygov::parse_query_answer) {
                Some(QueryState::Paid { amount, transaction }) => Confirmation {
                    reference: reference.clone(),
                    provider: "paygov".into(),
                    transaction,
                    amount,
                    paid: true,
                    provider_time: ts,
                },
                Some(QueryState::Failed) => Confirmation {
                    reference: reference.clone(),
                    provider: "paygov".into(),
                    transaction: format!("query-failed:{reference}"),
                    amount: record.amount,
                    paid: false,
                    provider_time: ts,
                },
                _ => continue,
            };
            self.confirm(&c).await?;
            applied += 1;
        }
        Ok(applied)
    }
}

fn unused_event() -> NewMessage {
    NewMessage {
        kind: "none".into(),
        ordering_key: "none".into(),
        payload: Vec::new(),
    }
}

fn event(kind: &str, record: &PaymentRecord, c: &Confirmation, now: Millis) -> NewMessage {
    let body = json!({
        "type": kind,
        "MaThamChieu": record.reference,
        "MaHoSo": record.ma_ho_so,
        "SoTien": record.amount,
        "provider": record.provider,
        "provider_transaction": c.transaction,
        "provider_time": c.provider_time,
        "at": crate::timefmt::rfc3339_ms(now),
    });
    NewMessage {
        kind: kind.into(),
        ordering_key: record.ma_ho_so.clone(),
        payload: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// The periodic reconciliation job; stops with `stop`.
pub async fn reconcile_loop(payments: Arc<Payments>, every: Duration, min_age: Duration, max_age: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        match payments.reconcile_once(min_age, max_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(applied = n, "reconciliation applied provider answers"),
            Err(e) => tracing::warn!(error = %e, "reconciliation cannot reach the queue"),
        }
    }
}
