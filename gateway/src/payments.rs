//! Non-cash fee payments: creating a payment with a provider, and applying providers'
//! confirmations by one set of matching rules whatever the route (PayGov callback, VNPAY IPN,
//! bank camt.054, reconciliation). The state lives in the queue backend; the first valid
//! confirmation marks the payment paid and queues one `payment.confirmed` event for the centre
//! in the same atomic step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;

use backon::{ExponentialBuilder, Retryable};
use hcc_adapters::dvcqg::model::MaHoSo;
use hcc_adapters::payments::paygov::{self, FeeLine, QueryState};
use hcc_adapters::payments::{check_payment_url, is_reference, new_reference, vn_timestamp, vnpay};
use hcc_config::Settings;
use openssl::x509::X509;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::observe::Telemetry;
use crate::redact::Escaped;
use crate::storage::ledger::{ConfirmOutcome, Confirmation, PaymentEvents, PaymentRecord, PaymentState, Reversal, ReverseOutcome};
use crate::storage::{Millis, NewMessage, PaymentLedger, StorageError, now_ms};

/// The queue of payment events (confirmed, reversed, duplicate), delivered by the centre's
/// webhook; the ledger's keys share its hash tag.
pub const EVENTS_QUEUE: &str = "payments";
/// At most this many pending payments are queried per provider per reconciliation round.
const RECONCILE_BATCH: usize = 500;
/// camt.054 signature verifications running at once for one bank, at most. A real bank sends a
/// notification at a time; verification (parse, canonicalisation, RSA) is the costly part of an
/// endpoint anyone can call, so a flood under one bank id waits its turn instead of taking every
/// core. See docs/bank-xml.md.
pub const BANK_VERIFICATIONS: usize = 4;

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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paygov" => Some(Provider::Paygov),
            "vnpay" => Some(Provider::Vnpay),
            _ => None,
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
    Queue(#[from] StorageError),
    #[error(transparent)]
    Randomness(#[from] hcc_adapters::payments::RandomnessError),
}

/// The citizen who pays. The identity number and address go to PayGov's receipt once and are
/// never stored or logged.
#[derive(Clone)]
pub struct Payer {
    pub ho_ten: String,
    pub so_cmnd: Option<String>,
    pub dia_chi: Option<String>,
    /// The citizen's address as the centre saw it (`vnp_IpAddr`).
    pub ip: Option<IpAddr>,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer").field("so_cmnd", &"[masked]").finish_non_exhaustive()
    }
}

/// A payment request, parsed at the edge: every field here is valid.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub ma_ho_so: MaHoSo,
    pub amount: u64,
    pub provider: Provider,
    /// The configured agency (`agencies.<id>`) the fee is paid to.
    pub agency: Agency,
    pub ma_tthc: String,
    pub ten_tthc: String,
    pub fees: Vec<FeeLine>,
    pub payer: Payer,
}

/// A receiving agency and its beneficiary account, from configuration.
#[derive(Debug, Clone)]
pub struct Agency {
    pub id: String,
    pub ma_don_vi: String,
    pub ten_don_vi: String,
    pub tk_thu_huong: String,
    pub ma_nh_thu_huong: String,
    pub ten_tk_thu_huong: String,
}

struct PaygovConfig {
    init_url: String,
    query_url: String,
    bearer_token: String,
    bank_code: String,
    server_ip: String,
    partner_code: String,
    secret: String,
}

struct VnpayConfig {
    tmn_code: String,
    hash_secret: String,
    pay_url: String,
    return_url: String,
    api_url: String,
    expire_minutes: u64,
    server_ip: String,
}

pub struct Payments {
    ledger: PaymentLedger,
    client: reqwest::Client,
    paygov: Option<PaygovConfig>,
    vnpay: Option<VnpayConfig>,
    agencies: Vec<Agency>,
    init_deadline: Duration,
    /// Configured banks' signing certificates, by bank id.
    pub banks: BTreeMap<String, X509>,
    /// Per configured bank, the permits for concurrent camt.054 verifications.
    bank_verifications: BTreeMap<String, Arc<Semaphore>>,
    telemetry: Arc<Telemetry>,
}

impl Payments {
    pub fn from_settings(s: &Settings, ledger: PaymentLedger, telemetry: Arc<Telemetry>) -> Result<Self, (&'static str, String)> {
        let or_base = |url: &str| {
            if url.is_empty() {
                s.paygov.base_url.clone()
            } else {
                url.to_string()
            }
        };
        let paygov = (!s.paygov.base_url.is_empty() || !s.paygov.init_url.is_empty()).then(|| PaygovConfig {
            init_url: or_base(&s.paygov.init_url),
            query_url: or_base(&s.paygov.query_url),
            bearer_token: s.paygov.bearer_token.expose().to_string(),
            bank_code: s.paygov.bank_code.clone(),
            server_ip: s.paygov.server_ip.clone(),
            partner_code: s.paygov.partner_code.clone(),
            secret: s.paygov.secret.expose().to_string(),
        });
        if !s.vnpay.tmn_code.is_empty()
            && let Err(e) = check_payment_url(&s.vnpay.pay_url)
        {
            // Citizens are sent there; the same rule as a provider's own payment URL.
            return Err(("vnpay.pay_url", format!("vnpay.pay_url: {e}")));
        }
        let vnpay = (!s.vnpay.tmn_code.is_empty()).then(|| VnpayConfig {
            tmn_code: s.vnpay.tmn_code.clone(),
            hash_secret: s.vnpay.hash_secret.expose().to_string(),
            pay_url: s.vnpay.pay_url.clone(),
            return_url: s.vnpay.return_url.clone(),
            api_url: s.vnpay.api_url.clone(),
            expire_minutes: s.vnpay.expire_minutes,
            server_ip: s.vnpay.server_ip.clone(),
        });
        let agencies = s
            .agencies
            .iter()
            .map(|(id, a)| Agency {
                id: id.clone(),
                ma_don_vi: a.ma_don_vi.clone(),
                ten_don_vi: a.ten_don_vi.clone(),
                tk_thu_huong: a.tk_thu_huong.clone(),
                ma_nh_thu_huong: a.ma_nh_thu_huong.clone(),
                ten_tk_thu_huong: a.ten_tk_thu_huong.clone(),
            })
            .collect();
        let mut banks = BTreeMap::new();
        for (id, b) in &s.banks {
            let pem = std::fs::read(&b.cert).map_err(|e| ("banks.<id>.cert", format!("banks.{id}.cert: cannot read {}: {e}", b.cert)))?;
            let cert = X509::from_pem(&pem).map_err(|_| ("banks.<id>.cert", format!("banks.{id}.cert: not a PEM certificate")))?;
            banks.insert(id.clone(), cert);
        }
        let bank_verifications = banks
            .keys()
            .map(|id| (id.clone(), Arc::new(Semaphore::new(BANK_VERIFICATIONS))))
            .collect();
        let init_deadline = Duration::from_millis(s.paygov.init_deadline_ms);
        let client = hcc_adapters::http::client(init_deadline / 2).map_err(|e| ("paygov.base_url", e.to_string()))?;
        Ok(Payments {
            ledger,
            client,
            paygov,
            vnpay,
            agencies,
            init_deadline,
            banks,
            bank_verifications,
            telemetry,
        })
    }

    /// A permit to verify one camt.054 document of `bank`, or `None` when that bank's
    /// [`BANK_VERIFICATIONS`] permits are all taken (or the bank is not configured). Never
    /// waits: a caller that would queue is refused at once and told when to come back.
    pub fn try_bank_verification(&self, bank: &str) -> Option<OwnedSemaphorePermit> {
        self.bank_verifications.get(bank)?.clone().try_acquire_owned().ok()
    }

    pub fn paygov_partner(&self) -> Option<(&str, &str)> {
        self.paygov.as_ref().map(|p| (p.partner_code.as_str(), p.secret.as_str()))
    }

    /// VNPAY's merchant code and hash secret, for checking IPNs.
    pub fn vnpay_merchant(&self) -> Option<(&str, &str)> {
        self.vnpay.as_ref().map(|v| (v.tmn_code.as_str(), v.hash_secret.as_str()))
    }

    /// The agency a request names by `MaDonVi`; with none named, the only one configured.
    pub fn agency(&self, ma_don_vi: Option<&str>) -> Result<&Agency, String> {
        match ma_don_vi {
            Some(m) => self
                .agencies
                .iter()
                .find(|a| a.ma_don_vi == m)
                .ok_or_else(|| "names no receiving agency configured on this gateway".to_string()),
            None => match self.agencies.as_slice() {
                [only] => Ok(only),
                [] => Err("no receiving agency is configured (agencies.<id>)".into()),
                _ => Err("is required: several receiving agencies are configured".into()),
            },
        }
    }

    /// The payment `reference` names. A value that is not of the gateway's reference shape
    /// names no payment and never reaches the store, whose key space holds more than payments.
    pub async fn get(&self, reference: &str) -> Result<Option<PaymentRecord>, StorageError> {
        if !is_reference(reference) {
            return Ok(None);
        }
        self.ledger.get(reference).await
    }

    /// Creates a payment with its provider, synchronously. The record is stored (pending)
    /// before the provider hears of it, so a confirmation can never find it missing; a
    /// provider that refuses marks it failed.
    pub async fn create(&self, p: NewPayment) -> Result<PaymentRecord, PaymentError> {
        let now = now_ms();
        let reference = new_reference(now / 1000)?;
        let timestamp = vn_timestamp(now / 1000);
        let description = format!("Thanh toan phi, le phi ho so {}", p.ma_ho_so);
        let fees_json = Value::Array(p.fees.iter().map(FeeLine::wire).collect()).to_string();
        let mut record = PaymentRecord {
            reference: reference.clone(),
            ma_ho_so: p.ma_ho_so.to_string(),
            amount: p.amount,
            provider: p.provider.as_str().into(),
            status: PaymentState::Pending,
            payment_url: String::new(),
            agency: p.agency.ma_don_vi.clone(),
            fees_json,
            created_at: now,
            provider_created: timestamp.clone(),
            provider_transaction: None,
            provider_time: None,
            confirmed_by: None,
            settled_at: None,
            duplicates: 0,
        };
        match p.provider {
            Provider::Vnpay => {
                let v = self.vnpay.as_ref().ok_or(PaymentError::NotConfigured("vnpay"))?;
                let ip = p
                    .payer
                    .ip
                    .ok_or_else(|| PaymentError::Refused("VNPAY needs the citizen's IpNguoiNop".into()))?;
                record.payment_url = self.vnpay_url(v, &reference, p.amount, &description, now / 1000, ip)?;
                self.ledger.create(&record).await?;
            }
            Provider::Paygov => {
                let g = self.paygov.as_ref().ok_or(PaymentError::NotConfigured("paygov"))?;
                self.ledger.create(&record).await?;
                let msg = paygov::init_message(
                    &paygov::InitRequest {
                        partner_code: &g.partner_code,
                        reference: &reference,
                        amount: p.amount,
                        description: &description,
                        timestamp: &timestamp,
                        bank_code: &g.bank_code,
                        server_ip: &g.server_ip,
                        ma_ho_so: p.ma_ho_so.as_str(),
                        ma_tthc: &p.ma_tthc,
                        ten_tthc: &p.ten_tthc,
                        beneficiary: paygov::Beneficiary {
                            ma_don_vi: &p.agency.ma_don_vi,
                            ten_don_vi: &p.agency.ten_don_vi,
                            tk_thu_huong: &p.agency.tk_thu_huong,
                            ma_nh_thu_huong: &p.agency.ma_nh_thu_huong,
                            ten_tk_thu_huong: &p.agency.ten_tk_thu_huong,
                        },
                        fees: &p.fees,
                        payer: paygov::Payer {
                            ho_ten: &p.payer.ho_ten,
                            so_cmnd: p.payer.so_cmnd.as_deref().unwrap_or(""),
                            dia_chi: p.payer.dia_chi.as_deref().unwrap_or(""),
                        },
                    },
                    &g.secret,
                );
                match self.init(g, &msg).await {
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
                        let events = events(&record, &failed, now_ms());
                        let _ = self.ledger.confirm(&failed, "", &events, now_ms()).await;
                        return Err(e);
                    }
                }
                self.ledger.set_url(&reference, &record.payment_url).await?;
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

    /// A POST to the platform, with the bearer token when one is configured.
    fn paygov_post(&self, g: &PaygovConfig, url: &str, msg: &Value) -> reqwest::RequestBuilder {
        let req = self.client.post(url).json(msg);
        if g.bearer_token.is_empty() {
            req
        } else {
            req.bearer_auth(&g.bearer_token)
        }
    }

    /// INIT with a deadline; a transient failure is retried within it.
    async fn init(&self, g: &PaygovConfig, msg: &Value) -> Result<String, PaymentError> {
        let attempt = || async {
            let resp = self
                .paygov_post(g, &g.init_url, msg)
                .send()
                .await
                .map_err(|e| PaymentError::Unreachable(e.to_string()))?;
            let status = resp.status().as_u16();
            if resp.status().is_server_error() || status == 429 {
                return Err(PaymentError::Unreachable(format!("HTTP {status}")));
            }
            if resp.status().is_redirection() {
                // The client follows no redirect; the Location is not ours to trust or log.
                tracing::error!(
                    alarm = true,
                    provider = "paygov",
                    status,
                    "PayGov INIT answered a redirect, which is not followed: check paygov.init_url"
                );
                return Err(PaymentError::Refused(format!("HTTP {status} (a redirect, not followed)")));
            }
            if !resp.status().is_success() {
                return Err(PaymentError::Refused(format!("HTTP {status}")));
            }
            let v: Value = resp.json().await.map_err(|e| PaymentError::Unreachable(e.to_string()))?;
            paygov::parse_init_answer(&v).map_err(PaymentError::Refused)
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

    /// Applies a confirmation. The events are built from the stored record, so what the centre
    /// hears is what it asked for, plus the provider's transaction.
    pub async fn confirm(&self, c: &Confirmation) -> Result<ConfirmOutcome, StorageError> {
        // A payment paid by another transaction between our read and the script is read again,
        // so that a duplicate's event names the transaction that stands; bounded, since each
        // retry means another confirmation won a race that cannot repeat without end.
        for _ in 0..4 {
            let Some(record) = self.get(&c.reference).await? else {
                tracing::warn!(audit = true, provider = %c.provider, reference = %Escaped(&c.reference), "confirmation for an unknown reference refused");
                self.telemetry.audit(
                    &format!("provider:{}", c.provider),
                    "payment.confirmation_refused",
                    &c.reference,
                    "unknown reference",
                );
                return Ok(ConfirmOutcome::Unknown);
            };
            let standing = record.provider_transaction.clone().unwrap_or_default();
            let events = events(&record, c, now_ms());
            let outcome = self.ledger.confirm(c, &standing, &events, now_ms()).await?;
            if outcome == ConfirmOutcome::Stale {
                continue;
            }
            self.observe_confirmation(c, &record, outcome);
            return Ok(outcome);
        }
        Err(StorageError::Corrupt(format!(
            "payment {} keeps changing under a confirmation",
            c.reference
        )))
    }

    fn observe_confirmation(&self, c: &Confirmation, record: &PaymentRecord, outcome: ConfirmOutcome) {
        tracing::info!(audit = true, provider = %c.provider, reference = %Escaped(&c.reference), transaction = %Escaped(&c.transaction), outcome = ?outcome, "payment confirmation applied");
        let state = match outcome {
            ConfirmOutcome::Paid => Some("paid"),
            ConfirmOutcome::Failed => Some("failed"),
            ConfirmOutcome::AmountMismatch => Some("amount_mismatch"),
            ConfirmOutcome::PaidTwice => Some("duplicate"),
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
        match outcome {
            ConfirmOutcome::AmountMismatch => {
                tracing::warn!(alarm = true, reference = %Escaped(&c.reference), expected = record.amount, received = c.amount, "payment amount mismatch: a person must look at it");
            }
            ConfirmOutcome::PaidTwice => {
                tracing::warn!(alarm = true, reference = %Escaped(&c.reference), standing = %Escaped(record.provider_transaction.as_deref().unwrap_or("")), duplicate = %Escaped(&c.transaction), amount = c.amount, "money paid twice: the first payment stands, the centre is told to refund the second");
                self.telemetry.audit(
                    &format!("provider:{}", c.provider),
                    "payment.duplicate",
                    &c.reference,
                    &format!(
                        "second paid transaction {} ({} VND) after {}: refund it",
                        c.transaction,
                        c.amount,
                        record.provider_transaction.as_deref().unwrap_or("")
                    ),
                );
            }
            _ => {}
        }
    }

    /// Applies a provider's reversal of a payment it made.
    pub async fn reverse(&self, r: &Reversal) -> Result<ReverseOutcome, StorageError> {
        let Some(record) = self.get(&r.reference).await? else {
            return Ok(ReverseOutcome::Unknown);
        };
        let c = Confirmation {
            reference: r.reference.clone(),
            provider: r.provider.clone(),
            transaction: r.original_transaction.clone().unwrap_or_default(),
            amount: r.amount,
            paid: false,
            provider_time: String::new(),
        };
        let event = event("payment.reversed", &record, &c, now_ms(), None);
        let outcome = self.ledger.reverse(r, &event, now_ms()).await?;
        tracing::info!(audit = true, provider = %r.provider, reference = %Escaped(&r.reference), outcome = ?outcome, "payment reversal applied");
        self.telemetry.audit(
            &format!("provider:{}", r.provider),
            "payment.reversal",
            &r.reference,
            &format!("{outcome:?}"),
        );
        match outcome {
            ReverseOutcome::Reversed => {
                self.telemetry.payment_state("reversed");
                tracing::warn!(alarm = true, reference = %Escaped(&r.reference), "a paid fee was reversed by the bank");
            }
            ReverseOutcome::Mismatch(why) => {
                tracing::warn!(alarm = true, reference = %Escaped(&r.reference), why, "a reversal does not match the payment that stands: nothing changed, a person must look at it");
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Asks the providers about pending payments between the configured ages and applies the
    /// answers by the same rules, because callbacks get lost.
    pub async fn reconcile_once(&self, provider: Provider, min_age: Duration, max_age: Duration) -> Result<usize, StorageError> {
        let now = now_ms();
        let refs = self
            .ledger
            .pending(
                now - max_age.as_millis() as Millis,
                now - min_age.as_millis() as Millis,
                RECONCILE_BATCH,
            )
            .await?;
        let mut applied = 0;
        for reference in refs {
            let Some(record) = self.get(&reference).await? else { continue };
            if record.provider != provider.as_str() || record.status != PaymentState::Pending {
                continue;
            }
            let answer = match provider {
                Provider::Paygov => self.query_paygov(&record).await,
                Provider::Vnpay => self.query_vnpay(&record).await,
            };
            let Some(c) = answer else { continue };
            self.confirm(&c).await?;
            applied += 1;
        }
        Ok(applied)
    }

    /// VNPAY's payment page for the citizen, signed, expiring after `vnpay.expire_minutes`.
    fn vnpay_url(
        &self,
        v: &VnpayConfig,
        reference: &str,
        amount: u64,
        description: &str,
        created_unix: i64,
        ip: IpAddr,
    ) -> Result<String, PaymentError> {
        vnpay::payment_url(
            &vnpay::PaymentRequest {
                pay_url: &v.pay_url,
                tmn_code: &v.tmn_code,
                reference,
                amount_vnd: amount,
                order_info: description,
                created_at: created_unix,
                expire_minutes: v.expire_minutes,
                return_url: &v.return_url,
                citizen_ip: ip,
            },
            &v.hash_secret,
        )
        .map(|u| u.url)
        .map_err(|e| PaymentError::Refused(e.to_string()))
    }

    /// VNPAY's `querydr` for one payment, with the `vnp_CreateDate` of its payment URL. The
    /// answer's signature is checked before anything in it is believed; only a paid answer or a
    /// definite failure changes the payment.
    async fn query_vnpay(&self, record: &PaymentRecord) -> Option<Confirmation> {
        let v = self.vnpay.as_ref().filter(|v| !v.api_url.is_empty())?;
        let server_ip: IpAddr = v.server_ip.parse().ok()?;
        let body = vnpay::querydr_request(
            &vnpay::QueryDrRequest {
                tmn_code: &v.tmn_code,
                txn_ref: &record.reference,
                order_info: &format!("Truy van giao dich {}", record.reference),
                transaction_date: &record.provider_created,
                now: now_ms() / 1000,
                server_ip,
                request_id: None,
            },
            &v.hash_secret,
        )
        .ok()?;
        let answer = match self.client.post(&v.api_url).json(&body).send().await {
            // Only a 2xx answer is read: a redirect or an error page says nothing.
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok()?,
            Ok(r) => {
                tracing::warn!(reference = %record.reference, status = r.status().as_u16(), "VNPAY querydr answered without success; asking again next round");
                return None;
            }
            Err(e) => {
                tracing::warn!(reference = %record.reference, error = %e, "VNPAY querydr failed");
                return None;
            }
        };
        match vnpay::parse_querydr_answer(&answer, &record.reference, &v.tmn_code, &v.hash_secret) {
            Ok(vnpay::QueryDr::Paid {
                amount_vnd,
                transaction,
                pay_date,
                ..
            }) => Some(Confirmation {
                reference: record.reference.clone(),
                provider: "vnpay".into(),
                transaction,
                amount: amount_vnd,
                paid: true,
                provider_time: pay_date,
            }),
            Ok(vnpay::QueryDr::Failed { transaction_status }) => Some(Confirmation {
                reference: record.reference.clone(),
                provider: "vnpay".into(),
                transaction: format!("querydr-failed:{transaction_status}"),
                amount: record.amount,
                paid: false,
                provider_time: vn_timestamp(now_ms() / 1000),
            }),
            Ok(other) => {
                tracing::debug!(reference = %record.reference, answer = ?other, "VNPAY querydr: not settled yet");
                None
            }
            Err(e) => {
                tracing::warn!(alarm = true, reference = %record.reference, error = %e, "VNPAY querydr answer refused; asking again next round");
                None
            }
        }
    }

    /// PayGov's QUERY for one payment, with the time its INIT carried.
    async fn query_paygov(&self, record: &PaymentRecord) -> Option<Confirmation> {
        let g = self.paygov.as_ref()?;
        let msg = paygov::query_message(&g.partner_code, &record.reference, &record.provider_created, &g.secret);
        let answer = match self.paygov_post(g, &g.query_url, &msg).send().await {
            // Only a 2xx answer is read: a redirect or an error page says nothing.
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            Ok(r) => {
                tracing::warn!(reference = %record.reference, status = r.status().as_u16(), "PayGov QUERY answered without success");
                None
            }
            Err(e) => {
                tracing::warn!(reference = %record.reference, error = %e, "PayGov QUERY failed");
                None
            }
        };
        let now = vn_timestamp(now_ms() / 1000);
        match answer.as_ref().and_then(paygov::parse_query_answer) {
            Some(QueryState::Paid { amount, transaction }) => Some(Confirmation {
                reference: record.reference.clone(),
                provider: "paygov".into(),
                transaction,
                amount,
                paid: true,
                provider_time: now,
            }),
            Some(QueryState::Failed) => Some(Confirmation {
                reference: record.reference.clone(),
                provider: "paygov".into(),
                transaction: format!("query-failed:{}", record.reference),
                amount: record.amount,
                paid: false,
                provider_time: now,
            }),
            Some(QueryState::Pending) => None,
            None => {
                tracing::warn!(reference = %record.reference, "PayGov QUERY gave no trustworthy answer (MaLoi not 00); asking again next round");
                None
            }
        }
    }
}

/// The event a payment's change queues for the centre, in the Standard Webhooks payload shape
/// (`type`, `timestamp`, `data`) with the portal's vocabulary inside.
fn event(kind: &str, record: &PaymentRecord, c: &Confirmation, now: Millis, standing: Option<&str>) -> NewMessage {
    let mut data = json!({
        "MaThamChieu": record.reference,
        "MaHoSo": record.ma_ho_so,
        "MaDonVi": record.agency,
        "SoTien": record.amount,
        "provider": record.provider,
        "confirmed_by": c.provider,
        "provider_transaction": c.transaction,
        "provider_time": c.provider_time,
    });
    if let Some(s) = standing {
        data["SoTienNopThua"] = json!(c.amount);
        data["standing_transaction"] = json!(s);
    }
    let body = json!({"type": kind, "timestamp": crate::timefmt::rfc3339_ms(now), "data": data});
    NewMessage {
        kind: kind.into(),
        ordering_key: record.ma_ho_so.clone(),
        payload: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// The two events a confirmation may queue: paid, or paid a second time.
fn events(record: &PaymentRecord, c: &Confirmation, now: Millis) -> PaymentEvents {
    let standing = record.provider_transaction.as_deref().unwrap_or("");
    PaymentEvents {
        ordering_key: record.ma_ho_so.clone(),
        confirmed: event("payment.confirmed", record, c, now, None),
        duplicate: event("payment.duplicate", record, c, now, Some(standing)),
    }
}

/// The periodic reconciliation job of one provider; stops with `stop`.
pub async fn reconcile_loop(
    payments: Arc<Payments>,
    provider: Provider,
    every: Duration,
    min_age: Duration,
    max_age: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        match payments.reconcile_once(provider, min_age, max_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(provider = provider.as_str(), applied = n, "reconciliation applied provider answers"),
            Err(e) => tracing::warn!(provider = provider.as_str(), error = %e, "reconciliation cannot reach the queue"),
        }
    }
}
