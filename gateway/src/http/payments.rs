//! Payments over HTTP: `POST /v1/payments` and `GET /v1/payments/{MaThamChieu}` (role centre),
//! and the providers' callbacks, which carry no API key: their checksum or signature is their
//! authentication, checked before anything else is read. Each callback answers in its
//! provider's own terms.
//!
//! Every route that names a payment checks the reference's shape
//! (`hcc_adapters::payments::is_reference`) before any look-up, so nothing a caller writes in a
//! path or a callback reaches the store's key space unless it is a reference the gateway could
//! have made. The camt.054 endpoint, which anyone can call, refuses what can never be a bank
//! notification (unknown bank, wrong content type, too large, another root element) before any
//! parsing or signature work, and verifies at most `BANK_VERIFICATIONS` documents per bank at
//! once.

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::dvcqg::model::MaHoSo;
use std::net::IpAddr;

use hcc_adapters::fields::{Fields, non_empty_text};
use hcc_adapters::payments::paygov::{self, FeeKind, FeeLine};
use hcc_adapters::payments::{camt054, is_reference, vnpay};
use hcc_config::Role;
use hcc_signing::xml::dom::XmlError;
use hcc_signing::xml::dsig::{self, DsigError, XmlTrust};
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{JsonBytes, is_xml, read_limited};
use super::problem::{ApiError, FieldError};
use super::signatures::SigningState;
use crate::payments::{NewPayment, Payer, PaymentError, Payments, Provider};
use crate::redact::Escaped;
use crate::storage::ledger::{ConfirmOutcome, Confirmation, PaymentState, Reversal, ReverseOutcome};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments", web::post().to(create))
        .route("/v1/payments/{reference}", web::get().to(get))
        .route("/v1/callbacks/paygov", web::post().to(paygov_callback))
        .route("/v1/callbacks/vnpay/ipn", web::get().to(vnpay_ipn))
        .route("/v1/callbacks/banks/{bank_id}/camt054", web::post().to(camt054_callback));
}

/// The JSON Schemas of the bodies read and written here as JSON values (by field, or in a
/// provider's terms), for the OpenAPI document.
pub(crate) fn body_schemas() -> Vec<(String, Value)> {
    let amount = json!({"oneOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
        {"type": "string", "pattern": "^[0-9]{1,15}$"}
    ], "description": "whole đồng, a number or a string of digits"});
    let reference = json!({"type": "string", "pattern": REFERENCE_PATTERN});
    vec![
        (
            "PaymentRequest".into(),
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["MaHoSo", "SoTien", "provider", "MaTTHC", "TenTTHC", "PhiLePhi", "HoTenNguoiNop"],
                "description": "SoCMNDNguoiNop and DiaChiNguoiNop are required for paygov, IpNguoiNop for vnpay; the fee lines add up to SoTien",
                "properties": {
                    "MaHoSo": {"$ref": "#/components/schemas/MaHoSo"},
                    "SoTien": amount,
                    "provider": {"type": "string", "enum": ["paygov", "vnpay"]},
                    "MaDonVi": {"type": "string", "maxLength": 50, "description": "required when several agencies are configured"},
                    "MaTTHC": {"type": "string", "minLength": 1, "maxLength": 100},
                    "TenTTHC": {"type": "string", "minLength": 1, "maxLength": 500},
                    "PhiLePhi": {"type": "array", "minItems": 1, "maxItems": MAX_FEE_LINES, "items": {
                        "type": "object",
                        "required": ["LoaiPhiLePhi", "MaPhiLePhi", "TenPhiLePhi", "SoTien"],
                        "properties": {
                            "LoaiPhiLePhi": {"oneOf": [{"type": "integer", "enum": [1, 2]}, {"type": "string", "enum": ["1", "2"]}], "description": "1 phí, 2 lệ phí"},
                            "MaPhiLePhi": {"type": "string", "minLength": 1, "maxLength": 50},
                            "TenPhiLePhi": {"type": "string", "minLength": 1, "maxLength": 500},
                            "SoTien": amount
                        }
                    }},
                    "HoTenNguoiNop": {"type": "string", "minLength": 1, "maxLength": 200},
                    "SoCMNDNguoiNop": {"type": "string", "pattern": "^([0-9]{9}|[0-9]{12})$"},
                    "DiaChiNguoiNop": {"type": "string", "minLength": 1, "maxLength": 500},
                    "IpNguoiNop": {"type": "string", "description": "the citizen's IPv4 or IPv6 address"}
                }
            }),
        ),
        (
            "PaymentCreated".into(),
            json!({
                "type": "object",
                "required": ["MaThamChieu", "payment_url", "status"],
                "properties": {
                    "MaThamChieu": reference,
                    "payment_url": {"type": "string", "format": "uri"},
                    "status": {"type": "string", "enum": ["pending"]}
                }
            }),
        ),
        (
            "PaygovReply".into(),
            json!({
                "type": "object",
                "description": "PayGov's answer format: MaLoi 00 is taken, anything else is not",
                "required": ["MaLoi", "MoTaLoi", "MaDoiTac", "MaThamChieu", "ThoiGianGD", "MaXacThuc"],
                "properties": {
                    "MaLoi": {"type": "string"}, "MoTaLoi": {"type": "string"}, "MaDoiTac": {"type": "string"},
                    "MaThamChieu": {"type": "string"}, "ThoiGianGD": {"type": "string"}, "MaXacThuc": {"type": "string"}
                }
            }),
        ),
        (
            "VnpayAnswer".into(),
            json!({
                "type": "object",
                "description": "VNPAY's IPN answer format: RspCode 00 is taken",
                "required": ["RspCode", "Message"],
                "properties": {"RspCode": {"type": "string", "pattern": "^[0-9]{2}$"}, "Message": {"type": "string"}}
            }),
        ),
        (
            "BankNotificationResult".into(),
            json!({
                "type": "object",
                "required": ["bank", "signer", "entries"],
                "properties": {
                    "bank": {"type": "string"},
                    "signer": {"type": "string"},
                    "entries": {"type": "array", "items": {"type": "object", "required": ["entry", "transaction", "outcome"], "properties": {
                        "entry": {"type": "integer", "minimum": 0},
                        "transaction": {"type": "integer", "minimum": 0},
                        "MaThamChieu": {"type": ["string", "null"]},
                        "bank_transaction": {"type": ["string", "null"]},
                        "amount": {"type": ["integer", "null"], "minimum": 0},
                        "outcome": {"type": "string"}
                    }}}
                }
            }),
        ),
    ]
}

/// `MaThamChieu` as [`is_reference`] takes it: `HCC`, six digits, eight of the alphabet.
pub const REFERENCE_PATTERN: &str = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$";

fn payments(p: &web::Data<Option<std::sync::Arc<Payments>>>) -> Result<&Payments, ApiError> {
    p.get_ref()
        .as_deref()
        .ok_or_else(|| ApiError::NotConfigured("payments are not configured".into()))
}

/// The fields of `POST /v1/payments` (contract v2), in the portal's vocabulary.
const PAYMENT_FIELDS: &[&str] = &[
    "MaHoSo",
    "SoTien",
    "provider",
    "MaDonVi",
    "MaTTHC",
    "TenTTHC",
    "PhiLePhi",
    "HoTenNguoiNop",
    "SoCMNDNguoiNop",
    "DiaChiNguoiNop",
    "IpNguoiNop",
];
/// A receipt lists a handful of fees; a caller cannot grow the list without bound.
const MAX_FEE_LINES: usize = 50;
/// The largest amount taken, in đồng (a trillion: far above any fee, far below overflow).
const MAX_AMOUNT: u64 = 1_000_000_000_000;
/// Seconds a bank is asked to wait when its verifications are all taken (`Retry-After`).
const BANK_BUSY_RETRY_SECS: u64 = 1;

/// The fee lines' total, or `None` when it would not fit in a `u64`: an overflow is refused,
/// never wrapped. With [`MAX_FEE_LINES`] lines of at most [`MAX_AMOUNT`] it cannot overflow
/// today; the check keeps that true if either bound is ever raised.
fn fee_total(fees: &[FeeLine]) -> Option<u64> {
    fees.iter().try_fold(0u64, |total, l| total.checked_add(l.amount))
}

/// A whole, positive amount of đồng: a JSON number or a string of digits, as centres send it.
fn amount(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    n.filter(|n| (1..=MAX_AMOUNT).contains(n))
        .ok_or_else(|| "must be a whole, positive amount in VND (a number or a string of digits)".to_string())
}

/// Text for a receipt: trimmed, non-empty, at most `max` characters, no control characters.
fn receipt_text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |v| {
        let t = non_empty_text(max)(v)?;
        if t.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(t)
    }
}

/// A CMND (9 digits) or CCCD (12 digits). The message never repeats the value.
fn identity_number(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if (s.len() == 9 || s.len() == 12) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(s.to_string()),
        _ => Err("must be a CMND (9 digits) or CCCD (12 digits) number, as a string".into()),
    }
}

fn fee_kind(v: &Value) -> Result<FeeKind, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    match n {
        Some(1) => Ok(FeeKind::Phi),
        Some(2) => Ok(FeeKind::LePhi),
        _ => Err("must be 1 (phí) or 2 (lệ phí)".into()),
    }
}

/// Parses a payment request into a [`NewPayment`], reporting every problem by JSON Pointer.
fn parse_payment(v: &Value, payments: &Payments) -> Result<NewPayment, Vec<FieldError>> {
    let Some(obj) = v.as_object() else {
        return Err(vec![FieldError {
            field: String::new(),
            message: "the body must be a JSON object".into(),
        }]);
    };
    let mut errors = Vec::new();
    for k in obj.keys().filter(|k| !PAYMENT_FIELDS.contains(&k.as_str())).take(10) {
        errors.push(FieldError {
            field: format!("/{}", k.replace('~', "~0").replace('/', "~1").chars().take(64).collect::<String>()),
            message: "is not a field of a payment request".into(),
        });
    }
    let mut f = Fields::new(obj, String::new(), &mut errors);
    let ma_ho_so = f.required("MaHoSo", |v| MaHoSo::parse(v.as_str().ok_or("must be a dossier code")?));
    let so_tien = f.required("SoTien", amount);
    let provider = f.required("provider", |v| {
        v.as_str()
            .and_then(Provider::parse)
            .ok_or_else(|| "must be paygov or vnpay".to_string())
    });
    let ma_don_vi = f.optional("MaDonVi", receipt_text(50));
    let ma_tthc = f.required("MaTTHC", receipt_text(100));
    let ten_tthc = f.required("TenTTHC", receipt_text(500));
    let ho_ten = f.required("HoTenNguoiNop", receipt_text(200));
    let dia_chi = f.optional("DiaChiNguoiNop", receipt_text(500));
    let so_cmnd = f.optional("SoCMNDNguoiNop", identity_number);
    let ip = f.optional("IpNguoiNop", |v| {
        v.as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .ok_or_else(|| "must be an IPv4 or IPv6 address".to_string())
    });
    let fee_count = match f.get("PhiLePhi") {
        None | Some(Value::Null) => 0,
        Some(Value::Array(a)) => a.len(),
        Some(_) => usize::MAX,
    };
    let mut fees = Vec::new();
    if fee_count == 0 {
        f.error("PhiLePhi", "is required: at least one fee line");
    } else if fee_count != usize::MAX && fee_count > MAX_FEE_LINES {
        f.error("PhiLePhi", format!("must have at most {MAX_FEE_LINES} fee lines"));
    } else {
        fees = f.list("PhiLePhi", |i| {
            let kind = i.required("LoaiPhiLePhi", fee_kind);
            let code = i.required("MaPhiLePhi", receipt_text(50));
            let name = i.required("TenPhiLePhi", receipt_text(500));
            let amount = i.required("SoTien", amount);
            Some(FeeLine {
                kind: kind?,
                code: code?,
                name: name?,
                amount: amount?,
            })
        });
        if fees.len() == fee_count && so_tien.is_some() {
            match fee_total(&fees) {
                None => f.error("PhiLePhi", "the fee lines add up to more than any amount this gateway takes"),
                Some(total) if Some(total) != so_tien => f.error("PhiLePhi", "the fee lines must add up to SoTien"),
                Some(_) => {}
            }
        }
    }
    let agency = match payments.agency(ma_don_vi.as_deref()) {
        Ok(a) => Some(a.clone()),
        Err(m) => {
            f.error("MaDonVi", m);
            None
        }
    };
    match provider {
        Some(Provider::Paygov) => {
            // The platform's receipt for MaDichVu 2 names the payer in full.
            if so_cmnd.is_none() && f.get("SoCMNDNguoiNop").is_none() {
                f.error("SoCMNDNguoiNop", "is required for PayGov: the receipt names the payer");
            }
            if dia_chi.is_none() && f.get("DiaChiNguoiNop").is_none() {
                f.error("DiaChiNguoiNop", "is required for PayGov: the receipt names the payer");
            }
        }
        Some(Provider::Vnpay) if ip.is_none() && f.get("IpNguoiNop").is_none() => {
            f.error("IpNguoiNop", "is required for VNPAY: the citizen's IP address");
        }
        _ => {}
    }
    match (ma_ho_so, so_tien, provider, agency, ma_tthc, ten_tthc, ho_ten) {
        (Some(ma_ho_so), Some(amount), Some(provider), Some(agency), Some(ma_tthc), Some(ten_tthc), Some(ho_ten)) if errors.is_empty() => {
            Ok(NewPayment {
                ma_ho_so,
                amount,
                provider,
                agency,
                ma_tthc,
                ten_tthc,
                fees,
                payer: Payer {
                    ho_ten,
                    so_cmnd,
                    dia_chi,
                    ip,
                },
            })
        }
        _ => Err(errors),
    }
}

/// Creates a payment with a provider and answers where the citizen pays.
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", security(("bearer" = [])),
    request_body(content = ref("#/components/schemas/PaymentRequest"), content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` names it", body = ref("#/components/schemas/PaymentCreated"), content_type = "application/json",
            headers(("Location" = String, description = "/v1/payments/{MaThamChieu}"))),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415), (status = 422),
        (status = 502), (status = 503, description = "Payments or this provider are not configured, or the queue backend is unavailable"),
    ))]
async fn create(caller: Caller, p: web::Data<Option<std::sync::Arc<Payments>>>, body: JsonBytes) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let payments = payments(&p)?;
    let v: Value = serde_json::from_slice(&body.0).map_err(|_| ApiError::BadRequest("malformed JSON".into()))?;
    let new = parse_payment(&v, payments).map_err(ApiError::Validation)?;
    match payments.create(new).await {
        Ok(r) => Ok(HttpResponse::Created()
            .insert_header((actix_web::http::header::LOCATION, format!("/v1/payments/{}", r.reference)))
            .json(json!({"MaThamChieu": r.reference, "payment_url": r.payment_url, "status": "pending"}))),
        Err(PaymentError::NotConfigured(what)) => Err(ApiError::NotConfigured(format!("the {what} provider is not configured"))),
        Err(PaymentError::Refused(m)) => Err(ApiError::Upstream(format!("the provider refused the payment: {m}"))),
        Err(PaymentError::Unreachable(m)) => Err(ApiError::Upstream(format!("the provider did not answer: {m}"))),
        Err(PaymentError::Queue(e)) => Err(e.into()),
        Err(PaymentError::Randomness(e)) => {
            tracing::error!(error = %e, "payment not created");
            Err(ApiError::Internal)
        }
    }
}

/// One payment's state.
///
/// Roles: centre, operator, admin.
#[utoipa::path(get, path = "/v1/payments/{MaThamChieu}", tag = "payments", security(("bearer" = [])),
    params(("MaThamChieu" = String, Path, pattern = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$", description = "The payment's reference")),
    responses(
        (status = 200, description = "The payment", body = crate::storage::ledger::PaymentRecord),
        (status = 401), (status = 403), (status = 404, description = "No payment with this MaThamChieu"),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn get(
    caller: Caller,
    p: web::Data<Option<std::sync::Arc<Payments>>>,
    reference: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let payments = payments(&p)?;
    // A malformed reference names no payment: the same 404 as an unknown one, answered without
    // a look-up (so `/v1/payments/pending` can never read an internal key).
    if !is_reference(&reference) {
        return Err(ApiError::NotFound("no payment with this MaThamChieu".into()));
    }
    match payments.get(&reference).await? {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::NotFound("no payment with this MaThamChieu".into())),
    }
}

/// PayGov's payment confirmation. No API key: its checksum is its authentication. Every
/// answer the platform should read is a 200 in its own terms (`MaLoi`).
#[utoipa::path(post, path = "/v1/callbacks/paygov", tag = "callbacks",
    request_body(content = Object, content_type = "application/json", description = "PayGov's confirmation"),
    responses(
        (status = 200, description = "PayGov's answer", body = ref("#/components/schemas/PaygovReply"), content_type = "application/json"),
        (status = 400, description = "The body is not JSON"), (status = 413),
        (status = 503, description = "PayGov is not configured"),
    ))]
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
                "99",
                &e.to_string(),
                partner,
                &text("MaThamChieu"),
                &text("ThoiGianGD"),
                &echo,
            )));
        }
    };
    let confirmation = Confirmation {
        reference: c.reference.clone(),
        provider: "paygov".into(),
        transaction: c.transaction.clone(),
        amount: c.amount,
        paid: c.paid,
        provider_time: c.time.clone(),
    };
    let reply = |code: &str, description: &str| {
        HttpResponse::Ok().json(paygov::reply(code, description, partner, &c.reference, &c.time, &c.checksum))
    };
    let outcome = match payments.confirm(&confirmation).await {
        Ok(o) => o,
        Err(e) => {
            // The platform hears "not taken" and sends again; nothing was recorded.
            tracing::error!(provider = "paygov", error = %e, "confirmation could not be stored");
            return Ok(reply("99", "Lỗi hệ thống, vui lòng gửi lại"));
        }
    };
    Ok(match outcome {
        ConfirmOutcome::Paid | ConfirmOutcome::Duplicate(PaymentState::Paid) => reply("00", "Thành công"),
        ConfirmOutcome::AlreadySettled(PaymentState::Paid) | ConfirmOutcome::PaidTwice => reply("00", "Giao dịch đã được ghi nhận"),
        // A failure is recorded but is never answered with 00: the platform's own code goes back.
        ConfirmOutcome::Failed | ConfirmOutcome::Duplicate(PaymentState::Failed) => {
            reply(&c.ma_loi, "Đã ghi nhận giao dịch không thành công")
        }
        ConfirmOutcome::Unknown => reply("99", "Không tìm thấy mã tham chiếu"),
        ConfirmOutcome::AmountMismatch | ConfirmOutcome::Duplicate(PaymentState::AmountMismatch) => reply("99", "Số tiền không khớp"),
        ConfirmOutcome::AlreadySettled(_) | ConfirmOutcome::Duplicate(_) | ConfirmOutcome::Stale => {
            reply("99", "Giao dịch không còn chờ thanh toán")
        }
    })
}

fn rsp(code: &str, message: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"RspCode": code, "Message": message}))
}

/// VNPAY's order of checks: signature (over exactly the parameters read; a repeated key is a
/// forgery), merchant, order, amount, then apply only if still pending. Every answer, a storage
/// error included, is HTTP 200 with an `RspCode`, as VNPAY expects.
/// VNPAY's IPN. No API key: its `vnp_SecureHash` is its authentication. Every answer is a
/// 200 in VNPAY's terms (`RspCode`).
#[utoipa::path(get, path = "/v1/callbacks/vnpay/ipn", tag = "callbacks",
    params(
        ("vnp_TxnRef" = Option<String>, Query, description = "The payment's MaThamChieu"),
        ("vnp_Amount" = Option<String>, Query, description = "The amount in đồng × 100"),
        ("vnp_ResponseCode" = Option<String>, Query),
        ("vnp_SecureHash" = Option<String>, Query, description = "HMAC-SHA512 over the other vnp_ parameters"),
    ),
    responses(
        (status = 200, description = "VNPAY's answer", body = ref("#/components/schemas/VnpayAnswer"), content_type = "application/json"),
        (status = 503, description = "VNPAY is not configured"),
    ))]
async fn vnpay_ipn(req: HttpRequest, p: web::Data<Option<std::sync::Arc<Payments>>>) -> Result<HttpResponse, ApiError> {
    let payments = payments(&p)?;
    let (tmn_code, secret) = payments
        .vnpay_merchant()
        .ok_or_else(|| ApiError::NotConfigured("vnpay is not configured".into()))?;
    let ipn = match vnpay::verify_ipn(req.query_string(), tmn_code, secret) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(audit = true, provider = "vnpay", error = %Escaped(&e.to_string()), "IPN refused");
            let code = e.rsp_code();
            return Ok(rsp(code, if code == "97" { "Invalid signature" } else { "Invalid request" }));
        }
    };
    match vnpay_apply(payments, &ipn).await {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::error!(provider = "vnpay", error = %e, "IPN could not be stored; VNPAY will send it again");
            Ok(rsp("99", "Unknown error"))
        }
    }
}

async fn vnpay_apply(payments: &Payments, ipn: &vnpay::Ipn) -> Result<HttpResponse, crate::storage::StorageError> {
    let Some(record) = payments.get(&ipn.reference).await? else {
        tracing::warn!(audit = true, provider = "vnpay", reference = %Escaped(&ipn.reference), "IPN for an unknown order refused");
        return Ok(rsp("01", "Order not found"));
    };
    if record.amount != ipn.amount_vnd {
        if ipn.paid {
            payments.confirm(&vnpay_confirmation(ipn)).await?;
        }
        return Ok(rsp("04", "Invalid amount"));
    }
    match ipn.outcome {
        vnpay::Outcome::Paid | vnpay::Outcome::Failed => {}
        // Neither paid nor failed (a missing code, or "in progress"): nothing is decided here;
        // VNPAY sends again and reconciliation asks.
        vnpay::Outcome::Pending | vnpay::Outcome::Undecided => return Ok(rsp("99", "Transaction not final")),
    }
    Ok(match payments.confirm(&vnpay_confirmation(ipn)).await? {
        ConfirmOutcome::Paid | ConfirmOutcome::Failed => rsp("00", "Confirm Success"),
        ConfirmOutcome::Unknown => rsp("01", "Order not found"),
        ConfirmOutcome::AmountMismatch => rsp("04", "Invalid amount"),
        ConfirmOutcome::Duplicate(_) | ConfirmOutcome::AlreadySettled(_) | ConfirmOutcome::PaidTwice | ConfirmOutcome::Stale => {
            rsp("02", "Order already confirmed")
        }
    })
}

fn vnpay_confirmation(ipn: &vnpay::Ipn) -> Confirmation {
    let transaction = if ipn.transaction.is_empty() {
        format!("no-transaction:{}:{}", ipn.response_code, ipn.pay_date)
    } else {
        ipn.transaction.clone()
    };
    Confirmation {
        reference: ipn.reference.clone(),
        provider: "vnpay".into(),
        transaction,
        amount: ipn.amount_vnd,
        paid: ipn.paid,
        provider_time: ipn.pay_date.clone(),
    }
}

/// `503` with `Retry-After` and a problem+json body: this bank's verifications are all taken.
/// 503 rather than 429 because the limit is the gateway's capacity, shared by everyone who
/// claims that bank id, not a rate the real bank exceeded; host-to-host senders retry a 503.
fn bank_busy() -> HttpResponse {
    let problem = json!({
        "type": "https://hcc-gateway.dev/problems/busy",
        "title": "Service unavailable",
        "status": 503,
        "detail": "this bank's notifications are being verified at full capacity; nothing was read, send it again",
    });
    HttpResponse::ServiceUnavailable()
        .content_type("application/problem+json")
        .insert_header((actix_web::http::header::RETRY_AFTER, BANK_BUSY_RETRY_SECS.to_string()))
        .body(problem.to_string())
}

/// The order is the cost: the bank id (a map look-up), the content type (a header), the size
/// (declared, then counted while reading), the root element ([`camt054::check_root`], a bounded
/// scan of the first bytes), a permit for this bank, and only then parsing, canonicalisation
/// and the signature, off the async workers.
/// A bank's signed ISO 20022 camt.054 notification. No API key: its XML-DSig signature by the
/// bank's pinned certificate is its authentication.
#[utoipa::path(post, path = "/v1/callbacks/banks/{bank_id}/camt054", tag = "callbacks",
    params(("bank_id" = String, Path, description = "A configured bank")),
    request_body(content = String, content_type = "application/xml", description = "A signed camt.054 document"),
    responses(
        (status = 200, description = "What each transaction did", body = ref("#/components/schemas/BankNotificationResult"), content_type = "application/json"),
        (status = 400, description = "Not well-formed XML, or it has a DOCTYPE"),
        (status = 401, description = "The signature or the signer's certificate does not verify"),
        (status = 404, description = "No bank with this id is configured"),
        (status = 413), (status = 415), (status = 422),
        (status = 503, description = "Payments are not configured, this bank's verifications are all taken (`Retry-After`), or the queue backend is unavailable"),
    ))]
async fn camt054_callback(
    req: HttpRequest,
    p: web::Data<Option<std::sync::Arc<Payments>>>,
    signing: web::Data<SigningState>,
    bank_id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let payments = payments(&p)?;
    let bank_id = bank_id.into_inner();
    let Some(cert) = payments.banks.get(&bank_id).cloned() else {
        // The id is the caller's text: it is not repeated back.
        return Err(ApiError::NotFound("no bank with this id is configured".into()));
    };
    if !is_xml(&req) {
        return Err(ApiError::UnsupportedMediaType("application/xml"));
    }
    let body = read_limited(&req, &mut payload).await?;
    match camt054::check_root(&body) {
        Ok(()) => {}
        Err(e @ (camt054::RootError::NotXml | camt054::RootError::Doctype)) => return Err(ApiError::BadRequest(e.to_string())),
        Err(e @ camt054::RootError::NotCamt054) => {
            return Err(ApiError::Validation(vec![FieldError {
                field: "/Document".into(),
                message: e.to_string(),
            }]));
        }
    }
    let Some(permit) = payments.try_bank_verification(&bank_id) else {
        tracing::warn!(bank = %Escaped(&bank_id), "camt.054 refused unread: this bank's verifications are all taken");
        return Ok(bank_busy());
    };
    let verified = web::block(move || {
        let _permit = permit;
        dsig::verify_enveloped(
            &body,
            &XmlTrust::Pinned {
                cert: &cert,
                store: signing.trust.as_ref(),
            },
        )
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    let verified = match verified {
        Ok(v) => v,
        Err(DsigError::Xml(
            e @ (XmlError::Doctype | XmlError::Malformed(_) | XmlError::NotUtf8 | XmlError::UnknownEntity(_) | XmlError::TooDeep),
        )) => {
            return Err(ApiError::BadRequest(e.to_string()));
        }
        Err(DsigError::Xml(XmlError::TooLarge(n))) => return Err(ApiError::PayloadTooLarge(n)),
        Err(e) => {
            tracing::warn!(audit = true, bank = %Escaped(&bank_id), error = %e, "camt.054 refused: signature or certificate");
            return Err(ApiError::BadSignature(e.to_string()));
        }
    };
    let transactions = camt054::transactions(&verified.document).map_err(|e| {
        ApiError::Validation(vec![FieldError {
            field: "/Document".into(),
            message: e.to_string(),
        }])
    })?;
    let provider = format!("bank:{bank_id}");
    let mut outcomes = Vec::with_capacity(transactions.len());
    for t in &transactions {
        let outcome = apply_bank_transaction(payments, &provider, t).await?;
        outcomes.push(json!({"entry": t.entry, "transaction": t.index, "MaThamChieu": t.reference, "bank_transaction": t.bank_transaction, "amount": t.amount_vnd, "outcome": outcome}));
    }
    Ok(HttpResponse::Ok().json(json!({"bank": bank_id, "signer": verified.signer.subject, "entries": outcomes})))
}

/// What one camt.054 transaction does, by ISO 20022's reading (docs/bank-xml.md): a booked VND
/// credit naming one of our references pays it; a booked DBIT with `RvslInd` reverses the
/// credit it names; everything else (a CRDT reversal returns an earlier debit, other debits,
/// pending entries, other currencies) never touches a fee.
async fn apply_bank_transaction(payments: &Payments, provider: &str, t: &camt054::Transaction) -> Result<String, ApiError> {
    use camt054::Direction;
    let kind = match (t.direction, t.reversal) {
        (Direction::Credit, false) => "credit",
        (Direction::Debit, true) => "reversal",
        (Direction::Credit, true) => return Ok("ignored_returned_debit".into()),
        (Direction::Debit, false) => return Ok("ignored_debit".into()),
    };
    if !t.booked {
        return Ok("ignored_not_booked".into());
    }
    let (Some(amount), "VND") = (t.amount_vnd, t.currency.as_str()) else {
        return Ok("ignored_not_vnd".into());
    };
    let Some(reference) = &t.reference else {
        return Ok("no_reference".into());
    };
    if t.references_found > 1 {
        tracing::warn!(
            alarm = true,
            provider,
            entry = t.entry,
            "a bank transaction names several payments: a person must split it"
        );
        return Ok("ambiguous_reference".into());
    }
    // The bank's own reference is the transaction's identity; without one, the entry's place in
    // this notification is the best there is (a repeat of the same document is still one).
    let identity = t
        .bank_transaction
        .clone()
        .unwrap_or_else(|| format!("{reference}:{}:{}", t.entry, t.index));
    if kind == "reversal" {
        let outcome = payments
            .reverse(&Reversal {
                reference: reference.clone(),
                provider: provider.to_string(),
                key: identity,
                amount,
                original_transaction: t.bank_transaction.clone(),
            })
            .await?;
        return Ok(match outcome {
            ReverseOutcome::Reversed => "reversed",
            ReverseOutcome::Duplicate => "reversal_duplicate",
            ReverseOutcome::NotPaid => "reversal_ignored_not_paid",
            ReverseOutcome::Mismatch(_) => "reversal_refused_mismatch",
            ReverseOutcome::Unknown => "unknown_reference",
        }
        .into());
    }
    let c = Confirmation {
        reference: reference.clone(),
        provider: provider.to_string(),
        transaction: identity,
        amount,
        paid: true,
        provider_time: String::new(),
    };
    Ok(match payments.confirm(&c).await? {
        ConfirmOutcome::Paid => "paid".to_string(),
        ConfirmOutcome::PaidTwice => "paid_twice".to_string(),
        ConfirmOutcome::Duplicate(s) => format!("duplicate ({})", s.as_str()),
        ConfirmOutcome::AlreadySettled(s) => format!("already_{}", s.as_str()),
        ConfirmOutcome::Unknown => "unknown_reference".to_string(),
        ConfirmOutcome::AmountMismatch => "amount_mismatch".to_string(),
        ConfirmOutcome::Failed | ConfirmOutcome::Stale => "failed".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(amount: u64) -> FeeLine {
        FeeLine {
            kind: FeeKind::LePhi,
            code: "LP01".into(),
            name: "Lệ phí".into(),
            amount,
        }
    }

    #[test]
    fn fee_lines_are_summed_without_wrapping() {
        assert_eq!(fee_total(&[]), Some(0));
        assert_eq!(fee_total(&[line(80_000), line(20_000)]), Some(100_000));
        assert_eq!(fee_total(&[line(u64::MAX - 1), line(1)]), Some(u64::MAX));
        // u64::MAX + 1 wraps to 0 and 2 × 2^63 wraps to 0: both would "add up" to a tiny SoTien.
        assert_eq!(fee_total(&[line(u64::MAX), line(1)]), None);
        assert_eq!(fee_total(&[line(1 << 63), line(1 << 63)]), None);
        assert_eq!(fee_total(&[line(u64::MAX), line(u64::MAX), line(2)]), None);
        // The largest request the edge takes is far from overflow.
        let most = vec![line(MAX_AMOUNT); MAX_FEE_LINES];
        assert_eq!(fee_total(&most), Some(MAX_AMOUNT * MAX_FEE_LINES as u64));
    }
}
