//! Payments over HTTP: `POST /v1/payments` and `GET /v1/payments/{MaThamChieu}` (role centre),
//! and the providers' callbacks, which carry no API key: their checksum or signature is their
//! authentication, checked before anything else is read. Each callback answers in its
//! provider's own terms.

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::dvcqg::model::MaHoSo;
use hcc_adapters::payments::paygov::{self, FeeLine};
use hcc_adapters::payments::{camt054, vnpay};
use hcc_config::Role;
use hcc_signing::xml::dom::XmlError;
use hcc_signing::xml::dsig::{self, DsigError, XmlTrust};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{JsonBytes, is_xml, read_limited};
use super::problem::{ApiError, FieldError};
use super::signatures::SigningState;
use crate::engine::queue::payments::{ConfirmOutcome, Confirmation, PaymentState, ReverseOutcome};
use crate::payments::{NewPayment, PaymentError, Payments, Provider};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments", web::post().to(create))
        .route("/v1/payments/{reference}", web::get().to(get))
        .route("/v1/callbacks/paygov", web::post().to(paygov_callback))
        .route("/v1/callbacks/vnpay/ipn", web::get().to(vnpay_ipn))
        .route("/v1/callbacks/banks/{bank_id}/camt054", web::post().to(camt054_callback));
}

fn payments(p: &web::Data<Option<std::sync::Arc<Payments>>>) -> Result<&Payments, ApiError> {
    p.get_ref()
        .as_deref()
        .ok_or_else(|| ApiError::NotConfigured("payments are not configured".into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    #[serde(rename = "MaHoSo")]
    ma_ho_so: Value,
    #[serde(rename = "SoTien")]
    so_tien: Value,
    provider: Value,
    #[serde(rename = "PhiLePhi", default)]
    fees: Vec<FeeLine>,
    #[serde(default)]
    payer: Value,
}

async fn create(caller: Caller, p: web::Data<Option<std::sync::Arc<Payments>>>, body: JsonBytes) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let payments = payments(&p)?;
    let req: CreateRequest = serde_json::from_slice(&body.0).map_err(|e| {
        let m = e.to_string();
        if e.is_data() {
            ApiError::Validation(vec![FieldError {
                field: String::new(),
                message: m.split(" at line").next().unwrap_or("").to_string(),
            }])
        } else {
            ApiError::BadRequest("malformed JSON".into())
        }
    })?;
    let mut errors = Vec::new();
    let ma = req.ma_ho_so.as_str().map(MaHoSo::parse);
    if !matches!(ma, Some(Ok(_))) {
        errors.push(FieldError {
            field: "/MaHoSo".into(),
            message: "must be a dossier code".into(),
        });
    }
    let amount = req.so_tien.as_u64().filter(|n| *n > 0 && *n < 1_000_000_000_000);
    if amount.is_none() {
        errors.push(FieldError {
            field: "/SoTien".into(),
            message: "must be a whole, positive amount in VND".into(),
        });
    }
    let provider = match req.provider.as_str() {
        Some("paygov") => Some(Provider::Paygov),
        Some("vnpay") => Some(Provider::Vnpay),
        _ => {
            errors.push(FieldError {
                field: "/provider".into(),
                message: "must be paygov or vnpay".into(),
            });
            None
        }
    };
    if !req.fees.is_empty() && Some(req.fees.iter().map(|f| f.so_tien).sum::<u64>()) != amount {
        errors.push(FieldError {
            field: "/PhiLePhi".into(),
            message: "the fee lines must add up to SoTien".into(),
        });
    }
    let (Some(Ok(ma)), Some(amount), Some(provider), true) = (ma, amount, provider, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let payer = if req.payer.is_null() { json!({}) } else { req.payer };
    match payments
        .create(NewPayment {
            ma_ho_so: ma.to_string(),
            amount,
            provider,
            fees: req.fees,
            payer,
        })
        .await
    {
        Ok(r) => Ok(HttpResponse::Created()
            .insert_header((actix_web::http::header::LOCATION, format!("/v1/payments/{}", r.reference)))
            .json(json!({"MaThamChieu": r.reference, "payment_url": r.payment_url, "status": "pending"}))),
        Err(PaymentError::NotConfigured(what)) => Err(ApiError::NotConfigured(format!("the {what} provider is not configured"))),
        Err(PaymentError::Refused(m)) => Err(ApiError::Upstream(format!("the provider refused the payment: {m}"))),
        Err(PaymentError::Unreachable(m)) => Err(ApiError::Upstream(format!("the provider did not answer: {m}"))),
        Err(PaymentError::Queue(e)) => Err(e.into()),
    }
}

async fn get(
    caller: Caller,
    p: web::Data<Option<std::sync::Arc<Payments>>>,
    reference: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let payments = payments(&p)?;
    match payments.get(&reference).await? {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::NotFound("no payment with this MaThamChieu".into())),
    }
}

async fn paygov_callback(
    req: HttpRequest,
    p: web::Data<Option<std::sync::Arc<Payments>>>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let payments = payments(&p)?;
    let (partner, secret) = payments
        .paygov_partner()
        .ok_or_else(|| ApiError::NotConfigured("paygov is not configured".into()))?;
    let body = read_limited(&req, &mut payload).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("the confirmation is not JSON".into()))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let echo = text("MaXacThuc");
    let c = match paygov::parse_confirmation(&v, partner, secret) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(audit = true, provider = "paygov", error = %e, "confirmation refused");
            return Ok(HttpResponse::Ok().json(paygov::reply(
                false,
                &e.to_string(),
                partner,
                &text("MaThamChieu"),
                &text("ThoiGianGD"),
                &echo,
            )));
        }
    };
    let outcome = payments
        .confirm(&Confirmation {
            reference: c.reference.clone(),
            provider: "paygov".into(),
            transaction: c.transaction.clone(),
            amount: c.amount,
            paid: c.paid,
            provider_time: c.time.clone(),
        })
        .await?;
    let (ok, description) = match outcome {
        ConfirmOutcome::Paid | ConfirmOutcome::Duplicate(PaymentState::Paid) => (true, "Thành công"),
        ConfirmOutcome::Failed | ConfirmOutcome::Duplicate(PaymentState::Failed) => (true, "Đã ghi nhận giao dịch không thành công"),
        ConfirmOutcome::AlreadySettled(PaymentState::Paid) => (true, "Giao dịch đã được xác nhận trước đó"),
        ConfirmOutcome::Unknown => (false, "Không tìm thấy mã tham chiếu"),
        ConfirmOutcome::AmountMismatch | ConfirmOutcome::Duplicate(PaymentState::AmountMismatch) => (false, "Số tiền không khớp"),
        ConfirmOutcome::AlreadySettled(_) | ConfirmOutcome::Duplicate(_) => (false, "Giao dịch không còn chờ thanh toán"),
    };
    Ok(HttpResponse::Ok().json(paygov::reply(ok, description, partner, &c.reference, &c.time, &c.checksum)))
}

fn rsp(code: &str, message: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"RspCode": code, "Message": message}))
}

/// VNPAY's order of checks: signature, order, amount, then apply only if still pending.
async fn vnpay_ipn(req: HttpRequest, p: web::Data<Option<std::sync::Arc<Payments>>>) -> Result<HttpResponse, ApiError> {
    let payments = payments(&p)?;
    let secret = payments
        .vnpay_secret()
        .ok_or_else(|| ApiError::NotConfigured("vnpay is not configured".into()))?;
    let ipn = match vnpay::verify_ipn(req.query_string(), secret) {
        Ok(i) => i,
        Err(vnpay::IpnError::BadSignature) => {
            tracing::warn!(audit = true, provider = "vnpay", "IPN with an invalid signature refused");
            return Ok(rsp("97", "Invalid signature"));
        }
        Err(e) => return Ok(rsp("99", &e.to_string())),
    };
    let Some(record) = payments.get(&ipn.reference).await? else {
        tracing::warn!(audit = true, provider = "vnpay", reference = %ipn.reference, "IPN for an unknown order refused");
        return Ok(rsp("01", "Order not found"));
    };
    let c = Confirmation {
        reference: ipn.reference.clone(),
        provider: "vnpay".into(),
        transaction: ipn.transaction.clone(),
        amount: ipn.amount_vnd,
        paid: ipn.paid,
        provider_time: ipn.pay_date.clone(),
    };
    if record.amount != ipn.amount_vnd {
        payments.confirm(&c).await?;
        return Ok(rsp("04", "Invalid amount"));
    }
    Ok(match payments.confirm(&c).await? {
        ConfirmOutcome::Paid | ConfirmOutcome::Failed => rsp("00", "Confirm Success"),
        ConfirmOutcome::Unknown => rsp("01", "Order not found"),
        ConfirmOutcome::AmountMismatch => rsp("04", "Invalid amount"),
        ConfirmOutcome::Duplicate(_) | ConfirmOutcome::AlreadySettled(_) => rsp("02", "Order already confirmed"),
    })
}

async fn camt054_callback(
    req: HttpRequest,
    p: web::Data<Option<std::sync::Arc<Payments>>>,
    signing: web::Data<SigningState>,
    bank_id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let payments = payments(&p)?;
    let bank_id = bank_id.into_inner();
    let cert = payments
        .banks
        .get(&bank_id)
        .ok_or_else(|| ApiError::NotFound(format!("no bank {bank_id:?} is configured")))?;
    if !is_xml(&req) {
        return Err(ApiError::UnsupportedMediaType("application/xml"));
    }
    let body = read_limited(&req, &mut payload).await?;
    let verified = match dsig::verify_enveloped(
        &body,
        &XmlTrust::Pinned {
            cert,
            store: signing.trust.as_ref(),
        },
    ) {
        Ok(v) => v,
        Err(DsigError::Xml(
            e @ (XmlError::Doctype | XmlError::Malformed(_) | XmlError::NotUtf8 | XmlError::UnknownEntity(_) | XmlError::TooDeep),
        )) => {
            return Err(ApiError::BadRequest(e.to_string()));
        }
        Err(DsigError::Xml(XmlError::TooLarge(n))) => return Err(ApiError::PayloadTooLarge(n)),
        Err(e) => {
            tracing::warn!(audit = true, bank = %bank_id, error = %e, "camt.054 refused: signature or certificate");
            return Err(ApiError::BadSignature(e.to_string()));
        }
    };
    let entries = camt054::entries(&verified.document).map_err(|e| {
        ApiError::Validation(vec![FieldError {
            field: "/Document".into(),
            message: e.to_string(),
        }])
    })?;
    let provider = format!("bank:{bank_id}");
    let mut outcomes = Vec::new();
    for e in entries {
        let outcome = if !e.credit {
            "ignored_debit".to_string()
        } else if !e.booked {
            "ignored_not_booked".to_string()
        } else if e.currency != "VND" || e.amount_vnd.is_none() {
            "ignored_not_vnd".to_string()
        } else if let Some(reference) = &e.reference {
            let amount = e.amount_vnd.unwrap_or(0);
            let key = if e.bank_reference.is_empty() {
                format!("{reference}:{}", e.index)
            } else {
                e.bank_reference.clone()
            };
            if e.reversal {
                match payments
                    .reverse(reference, &format!("{provider}:reversal:{key}"), &provider, amount)
                    .await?
                {
                    ReverseOutcome::Reversed => "reversed",
                    ReverseOutcome::Ignored => "reversal_ignored",
                    ReverseOutcome::Unknown => "unknown_reference",
                }
                .to_string()
            } else {
                let c = Confirmation {
                    reference: reference.clone(),
                    provider: provider.clone(),
                    transaction: key,
                    amount,
                    paid: true,
                    provider_time: String::new(),
                };
                match payments.confirm(&c).await? {
                    ConfirmOutcome::Paid => "paid".to_string(),
                    ConfirmOutcome::Duplicate(s) => format!("duplicate ({})", s.as_str()),
                    ConfirmOutcome::AlreadySettled(s) => format!("already_{}", s.as_str()),
                    ConfirmOutcome::Unknown => "unknown_reference".to_string(),
                    ConfirmOutcome::AmountMismatch => "amount_mismatch".to_string(),
                    ConfirmOutcome::Failed => "failed".to_string(),
                }
            }
        } else {
            "no_reference".to_string()
        };
        outcomes.push(json!({"entry": e.index, "MaThamChieu": e.reference, "bank_reference": e.bank_reference, "amount": e.amount_vnd, "outcome": outcome}));
    }
    Ok(HttpResponse::Ok().json(json!({"bank": bank_id, "signer": verified.signer.subject, "entries": outcomes})))
}
