//! Payments over HTTP: `POST /v1/payments` and `GET /v1/payments/{MaThamChieu}` (role centre),
//! and the providers' callbacks, which carry no API key: their checksum or signature is their
//! authentication, checked by the provider before anything else is read. One handler serves
//! every provider's callback routes; each answers in its provider's own terms.
//!
//! Every route that names a payment checks the reference's shape
//! (`hcc_adapters::payments::is_reference`) before any look-up, so nothing a caller writes in a
//! path or a callback reaches the store's key space unless it is a reference the gateway could
//! have made. A provider refuses what is cheap to refuse first: `admit` before the body is read
//! (which caller, which content type), then the body's size here, then its own checks (the
//! root-element scan and per-caller verification permits of a signed notification) before any
//! costly work.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::domain::MaHoSo;
use hcc_adapters::evidence::{Keep, Label, Subject};
use hcc_adapters::payments::{CallbackHead, CallbackMethod, CallbackProblem, Notice, Refused, Reply, StoreFailed, is_reference};
use hcc_adapters::registry::Registry;
use hcc_config::Role;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::{JsonBytes, media_type, read_at_most, read_limited};
use super::payment_request::{MAX_AMOUNT, MAX_FEE_LINES, parse_payment};
use super::problem::{ApiError, FieldError};
use crate::evidence::Evidence;
use crate::payments::{PaymentError, Payments};
use crate::redact::Escaped;
use crate::timefmt::rfc3339_ms;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/payments")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(super::not_found)),
    )
    .route("/v1/payments/{reference}", web::get().to(get))
    .route("/v1/payments/{reference}/qr.png", web::get().to(qr_png))
    .route("/v1/payments/{reference}/qr.svg", web::get().to(qr_svg));
}

/// Every callback route of the registry's providers, configured or not: an unconfigured
/// provider's callback is told so.
pub fn callback_routes(cfg: &mut web::ServiceConfig, registry: &Registry) {
    for route in registry.callback_routes() {
        let method = match route.method {
            CallbackMethod::Get => web::get(),
            CallbackMethod::Post => web::post(),
        };
        cfg.route(route.path, method.to(callback));
    }
}

/// The JSON Schemas of the bodies read and written here as JSON values (by field, or in a
/// provider's terms), for the OpenAPI document; `creating` are the ids of the registry's
/// providers that create payments.
pub(crate) fn body_schemas(creating: &[&str]) -> Vec<(String, Value)> {
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
                "description": "Each provider may require more of the payer's fields (PayGov's receipt names the payer, VNPAY needs IpNguoiNop); the fee lines add up to SoTien",
                "properties": {
                    "MaHoSo": {"$ref": "#/components/schemas/MaHoSo"},
                    "SoTien": amount,
                    "provider": {"type": "string", "enum": creating},
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
                    "IpNguoiNop": {"type": "string", "description": "the citizen's IPv4 or IPv6 address"},
                    "MaDVC": {"type": "string", "minLength": 1, "maxLength": 100, "description": "the public service's code; PayGov gets MaTTHC + \".01\" when absent"},
                    "TenDVC": {"type": "string", "minLength": 1, "maxLength": 500, "description": "the public service's name"},
                    "HuyenNguoiNop": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the payer's district; sent to the provider once, never stored"},
                    "TinhNguoiNop": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the payer's province; sent to the provider once, never stored"}
                }
            }),
        ),
        (
            "PaymentCreated".into(),
            json!({
                "type": "object",
                "required": ["MaThamChieu", "status", "expires_at"],
                "description": "payment_url for a provider's page (PayGov, VNPAY); qr for VietQR",
                "properties": {
                    "MaThamChieu": reference,
                    "payment_url": {"type": "string", "format": "uri"},
                    "status": {"type": "string", "enum": ["pending"]},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "qr": {"$ref": "#/components/schemas/PaymentQr"}
                }
            }),
        ),
    ]
}

/// `MaThamChieu` as [`is_reference`] takes it: `HCC`, six digits, eight of the alphabet.
pub const REFERENCE_PATTERN: &str = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$";

/// Every callback route of the registry's providers as OpenAPI operations, described by the
/// providers.
pub(crate) fn callback_operations(registry: &Registry) -> Vec<super::operation::ExtraOperation> {
    registry
        .callback_routes()
        .map(|route| super::operation::ExtraOperation {
            method: match route.method {
                CallbackMethod::Get => actix_web::http::Method::GET,
                CallbackMethod::Post => actix_web::http::Method::POST,
            },
            path: route.path.to_string(),
            operation: route.operation(),
            schemas: Vec::new(),
        })
        .collect()
}

pub(super) fn payments(p: &web::Data<Option<Arc<Payments>>>) -> Result<&Payments, ApiError> {
    p.get_ref()
        .as_deref()
        .ok_or_else(|| ApiError::NotConfigured("payments are not configured".into()))
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
async fn create(
    caller: Caller,
    p: web::Data<Option<Arc<Payments>>>,
    registry: web::Data<Registry>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let payments = payments(&p)?;
    let v: Value = serde_json::from_slice(&body.0).map_err(|_| ApiError::BadRequest("malformed JSON".into()))?;
    let new = parse_payment(&v, payments, &registry).map_err(ApiError::Validation)?;
    match payments.create(new).await {
        Ok(r) => {
            let listed = PaymentListed::from(r);
            let mut created = json!({"MaThamChieu": listed.record.reference, "status": "pending", "expires_at": listed.expires_at});
            if let Some(url) = &listed.payment_url {
                created["payment_url"] = json!(url);
            }
            if let Some(qr) = &listed.qr {
                created["qr"] = json!(qr);
            }
            Ok(HttpResponse::Created()
                .insert_header((
                    actix_web::http::header::LOCATION,
                    format!("/v1/payments/{}", listed.record.reference),
                ))
                .json(created))
        }
        Err(PaymentError::NotConfigured(what)) => Err(ApiError::NotConfigured(format!("the {what} provider is not configured"))),
        Err(PaymentError::Refused(m)) => Err(ApiError::Upstream(format!("the provider refused the payment: {m}"))),
        Err(PaymentError::Unreachable(m)) => Err(ApiError::Upstream(format!("the provider did not answer: {m}"))),
        Err(PaymentError::ReferenceTaken(_)) => Err(ApiError::Internal),
        Err(PaymentError::Randomness(e)) => {
            tracing::error!(error = %e, "payment not created");
            Err(ApiError::Internal)
        }
        Err(PaymentError::Queue(e)) => Err(e.into()),
    }
}

/// One payment's state.
///
/// Roles: centre, operator, admin.
#[utoipa::path(get, path = "/v1/payments/{MaThamChieu}", tag = "payments", security(("bearer" = [])),
    params(("MaThamChieu" = String, Path, pattern = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$", description = "The payment's reference")),
    responses(
        (status = 200, description = "The payment and its history", body = PaymentDetail),
        (status = 401), (status = 403), (status = 404, description = "No payment with this MaThamChieu"),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn get(caller: Caller, p: web::Data<Option<Arc<Payments>>>, reference: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let payments = payments(&p)?;
    // A malformed reference names no payment: the same 404 as an unknown one, answered without
    // a look-up (so `/v1/payments/pending` can never read an internal key).
    if !is_reference(&reference) {
        return Err(ApiError::NotFound("no payment with this MaThamChieu".into()));
    }
    match payments.get(&reference).await? {
        Some(r) => {
            let history = payments.history(&reference).await?;
            Ok(HttpResponse::Ok().json(PaymentDetail {
                payment: PaymentListed::from(r),
                history: history.into_iter().map(PaymentStep::from).collect(),
            }))
        }
        None => Err(ApiError::NotFound("no payment with this MaThamChieu".into())),
    }
}

/// A payment as lists show it: the record, its times, and how the citizen pays it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = PaymentListed)]
pub struct PaymentListed {
    #[serde(flatten)]
    #[schema(inline)]
    pub record: crate::storage::ledger::PaymentRecord,
    /// The provider's payment page (PayGov, VNPAY).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_url: Option<String>,
    /// A VietQR payment's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<PaymentQr>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The last change of its status.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// When its provider's lifetime ends (absent for payments made before it was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A VietQR payment's code: the EMVCo payload, and the paths of its images.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PaymentQr {
    /// The payload a banking app scans (NAPAS VietQR, EMVCo).
    pub payload: String,
    /// `/v1/payments/{MaThamChieu}/qr.png`
    pub png: String,
    /// `/v1/payments/{MaThamChieu}/qr.svg`
    pub svg: String,
}

impl From<crate::storage::ledger::PaymentRecord> for PaymentListed {
    fn from(r: crate::storage::ledger::PaymentRecord) -> Self {
        PaymentListed {
            created_at: rfc3339_ms(r.created_at),
            updated_at: rfc3339_ms(r.updated_at.unwrap_or(r.created_at)),
            expires_at: r.expires_at.map(rfc3339_ms),
            payment_url: (!r.payment_url.is_empty()).then(|| r.payment_url.clone()),
            qr: r.qr_payload.clone().map(|payload| PaymentQr {
                payload,
                png: format!("/v1/payments/{}/qr.png", r.reference),
                svg: format!("/v1/payments/{}/qr.svg", r.reference),
            }),
            record: r,
        }
    }
}

/// A VietQR payment's code as a PNG image.
///
/// Roles: centre, operator.
#[utoipa::path(get, path = "/v1/payments/{MaThamChieu}/qr.png", tag = "payments", security(("bearer" = [])),
    params(("MaThamChieu" = String, Path, pattern = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$", description = "The payment's reference")),
    responses(
        (status = 200, description = "The code, black on white with its quiet zone; never cached", content_type = "image/png"),
        (status = 401), (status = 403), (status = 404, description = "No VietQR payment with this MaThamChieu"),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn qr_png(caller: Caller, p: web::Data<Option<Arc<Payments>>>, reference: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let payload = qr_payload(&caller, &p, &reference).await?;
    let png = crate::qr::png(&payload).map_err(|e| {
        tracing::error!(error = %e, "a stored VietQR payload cannot be drawn");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(png))
}

/// A VietQR payment's code as an SVG image.
///
/// Roles: centre, operator.
#[utoipa::path(get, path = "/v1/payments/{MaThamChieu}/qr.svg", tag = "payments", security(("bearer" = [])),
    params(("MaThamChieu" = String, Path, pattern = "^HCC[0-9]{6}[A-HJ-NP-Z2-9]{8}$", description = "The payment's reference")),
    responses(
        (status = 200, description = "The code, black on white with its quiet zone; never cached", content_type = "image/svg+xml"),
        (status = 401), (status = 403), (status = 404, description = "No VietQR payment with this MaThamChieu"),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn qr_svg(caller: Caller, p: web::Data<Option<Arc<Payments>>>, reference: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let payload = qr_payload(&caller, &p, &reference).await?;
    let svg = crate::qr::svg(&payload).map_err(|e| {
        tracing::error!(error = %e, "a stored VietQR payload cannot be drawn");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(svg))
}

/// The stored VietQR payload of the payment `reference` names; 404 for anything else (an
/// unknown or malformed reference, or another provider's payment).
async fn qr_payload(caller: &Caller, p: &web::Data<Option<Arc<Payments>>>, reference: &str) -> Result<String, ApiError> {
    caller.require(&[Role::Centre, Role::Operator])?;
    let payments = payments(p)?;
    let not_found = || ApiError::NotFound("no VietQR payment with this MaThamChieu".into());
    if !is_reference(reference) {
        return Err(not_found());
    }
    payments.get(reference).await?.and_then(|r| r.qr_payload).ok_or_else(not_found)
}

/// One step of a payment's story.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = PaymentStep)]
pub struct PaymentStep {
    #[schema(format = DateTime)]
    pub at: String,
    /// `created`, `paid`, `failed`, `amount_mismatch`, `duplicate`, `reversed`, `expired`,
    /// `webhook_queued`.
    pub event: String,
    pub detail: String,
}

impl From<crate::storage::ledger::HistoryEntry> for PaymentStep {
    fn from(h: crate::storage::ledger::HistoryEntry) -> Self {
        PaymentStep {
            at: rfc3339_ms(h.at),
            event: h.event,
            detail: h.detail,
        }
    }
}

/// A payment with its history, oldest step first (at most 50 steps: the first 49 and the last).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PaymentDetail {
    #[serde(flatten)]
    #[schema(inline)]
    pub payment: PaymentListed,
    pub history: Vec<PaymentStep>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PaymentList {
    pub payments: Vec<PaymentListed>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The list's query parameters, for the document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a description only: the values are read by PaymentQuery::parse")]
pub struct PaymentListParams {
    /// Only payments in this status (`duplicate`: paid, then paid again by another transaction).
    #[param(pattern = "^(pending|paid|failed|amount_mismatch|reversed|expired|duplicate)$")]
    status: Option<String>,
    /// Only the payments of this dossier.
    #[param(rename = "MaHoSo", pattern = "^[A-Za-z0-9._-]{1,100}$")]
    ma_ho_so: Option<String>,
    /// Only payments changed at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Entries per page, 50 when not given.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^o[0-9]{1,10}$")]
    cursor: Option<String>,
}

struct PaymentQuery {
    filter: crate::storage::ledger::PaymentFilter,
    offset: usize,
    limit: usize,
}

const LIST_DEFAULT: usize = 50;
const LIST_MAX: usize = 200;

impl PaymentQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        use crate::storage::ledger::ListStatus;
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| ApiError::BadRequest("the query string could not be read".into()))?
            .into_inner();
        let mut q = PaymentQuery {
            filter: Default::default(),
            offset: 0,
            limit: LIST_DEFAULT,
        };
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in &pairs {
            let field = format!("{name} (query)");
            if !seen.insert(name.as_str()) {
                errors.push(FieldError {
                    field,
                    message: "is given more than once".into(),
                });
                continue;
            }
            let bad = |message: &str| FieldError {
                field: format!("{name} (query)"),
                message: message.into(),
            };
            match name.as_str() {
                "status" => match ListStatus::parse(value) {
                    Some(s) => q.filter.status = Some(s),
                    None => errors.push(bad(
                        "must be pending, paid, failed, amount_mismatch, reversed, expired or duplicate",
                    )),
                },
                "MaHoSo" => match MaHoSo::parse(value) {
                    Ok(m) => q.filter.ma_ho_so = Some(m.to_string()),
                    Err(m) => errors.push(bad(&m)),
                },
                "since" => match crate::timefmt::parse_rfc3339_ms(value) {
                    Some(t) => q.filter.since = Some(t),
                    None => errors.push(bad("must be an RFC 3339 time, e.g. 2026-11-26T08:00:00Z")),
                },
                "limit" => match value.parse::<usize>() {
                    Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) && (1..=LIST_MAX).contains(&n) => q.limit = n,
                    _ => errors.push(bad("must be a whole number from 1 to 200")),
                },
                "cursor" => match super::cursor_offset(value) {
                    Some(o) => q.offset = o,
                    None => errors.push(bad("is not a cursor this list gave")),
                },
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::InvalidParameters(errors));
        }
        Ok(q)
    }
}

/// Payments by status, dossier and time of last change, newest first.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", security(("bearer" = [])),
    params(PaymentListParams),
    responses(
        (status = 200, description = "A page of payments", body = PaymentList),
        (status = 400), (status = 401), (status = 403),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn list(req: HttpRequest, caller: Caller, p: web::Data<Option<Arc<Payments>>>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator, Role::Admin])?;
    let q = PaymentQuery::parse(req.query_string())?;
    let payments = payments(&p)?;
    let mut rows = payments.list(&q.filter, q.offset, q.limit + 1).await?;
    let more = rows.len() > q.limit;
    rows.truncate(q.limit);
    Ok(HttpResponse::Ok().json(PaymentList {
        next_cursor: more.then(|| super::offset_cursor(q.offset + q.limit)),
        payments: rows.into_iter().map(PaymentListed::from).collect(),
    }))
}

/// Every provider's callback, on each of its routes. The provider reads and authenticates
/// the request; the notices it gives are applied by `Payments::apply`, the one set of
/// matching rules; the provider answers in its own terms.
async fn callback(
    req: HttpRequest,
    p: web::Data<Option<Arc<Payments>>>,
    registry: web::Data<Registry>,
    evidence: web::Data<Option<Arc<Evidence>>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut seen = Seen {
        body: evidence.is_some().then(Vec::new),
        ..Seen::default()
    };
    let answered = take_callback(&req, &p, &registry, payload, &mut seen).await;
    // Every callback that reached a provider's route is evidence, refused or taken: its exact
    // bytes (kept whole: the provider signed them) and the exact answer.
    let (Some(evidence), Some(provider)) = (evidence.get_ref(), seen.provider) else {
        return answered;
    };
    let (resp, answer) = super::evidence::with_body(answered.unwrap_or_else(HttpResponse::from_error)).await;
    let request = match seen.body {
        Some(body) if req.method() == actix_web::http::Method::POST => body,
        _ => req.query_string().as_bytes().to_vec(),
    };
    let route = req.match_pattern().unwrap_or_default();
    let label = Label::new(provider, format!("{} {route}", req.method())).keep(Keep::Request);
    let subject = Subject {
        reference: (!seen.references.is_empty()).then(|| seen.references.join(",")),
        ..Subject::default()
    };
    let outcome = if resp.status().is_success() { seen.outcome } else { "refused" };
    evidence.inbound(&subject, &label, &request, resp.status().as_u16(), &answer, outcome);
    Ok(resp)
}

/// What a callback showed, for its evidence record.
#[derive(Default)]
struct Seen {
    provider: Option<&'static str>,
    /// The body as read, when the evidence log wants it.
    body: Option<Vec<u8>>,
    references: Vec<String>,
    outcome: &'static str,
}

async fn take_callback(
    req: &HttpRequest,
    p: &web::Data<Option<Arc<Payments>>>,
    registry: &Registry,
    mut payload: web::Payload,
    seen: &mut Seen,
) -> Result<HttpResponse, ApiError> {
    let payments = payments(p)?;
    let route = req.match_pattern().unwrap_or_default();
    let Some(kind) = registry.callback(req.method().as_str(), &route) else {
        return Err(ApiError::NotFound("no such resource".into()));
    };
    seen.provider = Some(kind.id);
    seen.outcome = "refused";
    let provider = payments
        .provider(kind.id)
        .ok_or_else(|| ApiError::NotConfigured(format!("{} is not configured", kind.id)))?;
    let head = CallbackHead {
        route: &route,
        params: req.match_info().iter().map(|(k, v)| (k, v.to_string())).collect(),
        query: req.query_string(),
        media_type: media_type(req),
    };
    if let Err(refused) = provider.admit(&head) {
        return refusal(kind.id, refused);
    }
    // Only a POST carries a body; a GET's is never read. Each route takes what its
    // counterpart sends (a PayGov confirmation a few KB), else the configured limit.
    let body = if req.method() == actix_web::http::Method::POST {
        let own = kind.routes.iter().find(|r| r.path == route).and_then(|r| r.body_limit);
        match own {
            Some(limit) => read_at_most(req, &mut payload, limit).await?.to_vec(),
            None => read_limited(req, &mut payload).await?.to_vec(),
        }
    } else {
        Vec::new()
    };
    if let Some(kept) = seen.body.as_mut() {
        kept.clone_from(&body);
    }
    let parsed = match provider.parse(head, body).await {
        Ok(parsed) => parsed,
        Err(refused) => return refusal(kind.id, refused),
    };
    seen.references = parsed.notices.iter().filter_map(Notice::reference).map(str::to_string).collect();
    seen.outcome = "taken";
    let applied = payments.apply_all(&parsed.notices).await;
    let reply = (parsed.reply)(applied.as_deref().map_err(|_| StoreFailed));
    match (reply, applied) {
        (Reply::StoreFailed, Err(e)) => Err(e.into()),
        (Reply::StoreFailed, Ok(_)) => Err(ApiError::Internal),
        (reply, Err(e)) => {
            tracing::error!(provider = kind.id, error = %e, "a callback could not be stored; the provider will send it again");
            render(reply)
        }
        (reply, Ok(_)) => render(reply),
    }
}

/// A callback refused before anything was applied: written to the audit log (the reason may
/// quote the caller, so it is escaped), answered as the provider says.
fn refusal(provider: &str, refused: Refused) -> Result<HttpResponse, ApiError> {
    tracing::warn!(audit = true, provider, why = %Escaped(&refused.why), "callback refused");
    render(refused.reply)
}

fn render(reply: Reply) -> Result<HttpResponse, ApiError> {
    match reply {
        Reply::Json(v) => Ok(HttpResponse::Ok().json(v)),
        Reply::StoreFailed => Err(ApiError::Unavailable("the payment store failed".into())),
        Reply::Problem(p) => Err(match p {
            CallbackProblem::Malformed(m) => ApiError::BadRequest(m),
            CallbackProblem::Invalid { pointer, message } => ApiError::Validation(vec![FieldError { field: pointer, message }]),
            CallbackProblem::MediaType(t) => ApiError::UnsupportedMediaType(t),
            CallbackProblem::TooLarge(n) => ApiError::PayloadTooLarge(n),
            CallbackProblem::BadSignature(m) => ApiError::BadSignature(m),
            CallbackProblem::NotFound(m) => ApiError::NotFound(m),
            CallbackProblem::Busy { retry_after_secs, detail } => return Ok(busy(retry_after_secs, detail)),
            CallbackProblem::Internal => ApiError::Internal,
        }),
    }
}

/// `503` with `Retry-After` and a problem+json body: the gateway's capacity for this caller is
/// taken. 503 rather than 429 because the limit is the gateway's capacity, shared by everyone
/// who claims that caller's id, not a rate the real caller exceeded; host-to-host senders
/// retry a 503.
fn busy(retry_after_secs: u64, detail: &str) -> HttpResponse {
    let problem = json!({
        "type": "https://hcc-gateway.dev/problems/busy",
        "title": "Service unavailable",
        "status": 503,
        "detail": detail,
    });
    HttpResponse::ServiceUnavailable()
        .content_type("application/problem+json")
        .insert_header((actix_web::http::header::RETRY_AFTER, retry_after_secs.to_string()))
        .body(problem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_callback_route_is_documented_as_its_provider_describes_it() {
        // The 405/Allow table is read from the OpenAPI document: a callback route missing there
        // would answer 404 to a wrong method, and one described differently would mislead.
        let registry = hcc_adapters::standard();
        let doc: Value = serde_json::from_slice(&super::super::openapi::ApiDocument::for_registry(&registry).json()).expect("JSON");
        for kind in registry.providers() {
            for route in kind.routes {
                let documented = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
                let described = route.operation();
                assert!(
                    described.is_object(),
                    "{} {}: the operation does not parse",
                    route.method.as_str(),
                    route.path
                );
                assert_eq!(
                    documented["summary"],
                    described["summary"],
                    "{} {} ({})",
                    route.method.as_str(),
                    route.path,
                    kind.id
                );
                // Every status the provider describes is documented (the document may add to
                // an error response, never drop one).
                for status in described["responses"].as_object().into_iter().flat_map(|r| r.keys()) {
                    assert!(
                        documented["responses"].get(status).is_some(),
                        "{} {}: {status}",
                        route.method.as_str(),
                        route.path
                    );
                }
            }
        }
    }

    #[test]
    fn only_providers_that_create_payments_are_named_in_a_request() {
        let r = hcc_adapters::standard();
        assert!(r.creating("paygov").is_some() && r.creating("vnpay").is_some() && r.creating("vietqr").is_some());
        assert!(r.creating("banks").is_none(), "banks only notify");
        assert!(r.creating("cash").is_none());
    }
}
