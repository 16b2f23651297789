//! The unmatched list over HTTP: bank money that paid or reversed nothing
//! (`crate::bank_money`). Operators read it; admins assign a credit to the payment it was meant
//! for, or mark it to be returned to the payer. Both actions are audited with the acting key's
//! name, and repeating one changes nothing.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::payments::is_reference;
use hcc_config::Role;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::JsonBytes;
use super::payments::payments;
use super::problem::{ApiError, FieldError};
use crate::bank_money::{UnmatchedError, is_unmatched_id};
use crate::payments::Payments;
use crate::storage::ledger::unmatched::{UnmatchedEntry, UnmatchedFilter, UnmatchedState};
use crate::timefmt::rfc3339_ms;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/payments/unmatched", web::get().to(list))
        .route("/v1/payments/unmatched/{id}/assign", web::post().to(assign))
        .route("/v1/payments/unmatched/{id}/return", web::post().to(give_back));
}

/// The longest reason a returned entry keeps.
const MAX_REASON_CHARS: usize = 500;
const LIST_DEFAULT: usize = 50;
const LIST_MAX: usize = 200;

/// JSON Schemas of the bodies read field by field here.
pub(crate) fn body_schemas() -> Vec<(String, Value)> {
    vec![
        (
            "UnmatchedAssign".into(),
            json!({
                "type": "object",
                "required": ["MaThamChieu"],
                "properties": {"MaThamChieu": {"type": "string", "pattern": super::payments::REFERENCE_PATTERN}}
            }),
        ),
        (
            "UnmatchedReturn".into(),
            json!({
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS}}
            }),
        ),
    ]
}

/// An unmatched entry as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UnmatchedListed {
    #[serde(flatten)]
    #[schema(inline)]
    pub entry: UnmatchedEntry,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<UnmatchedEntry> for UnmatchedListed {
    fn from(e: UnmatchedEntry) -> Self {
        UnmatchedListed {
            created_at: rfc3339_ms(e.created_at),
            updated_at: rfc3339_ms(e.updated_at),
            entry: e,
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UnmatchedList {
    pub unmatched: Vec<UnmatchedListed>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The list's query parameters, for the document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a description only: the values are read by parse_query")]
pub struct UnmatchedListParams {
    /// Only entries in this state.
    #[param(pattern = "^(open|assigned|returned)$")]
    state: Option<String>,
    /// Only this configured bank's entries.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    bank: Option<String>,
    /// Only entries kept at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Entries per page, 50 when not given.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^o[0-9]{1,10}$")]
    cursor: Option<String>,
}

fn parse_query(query: &str) -> Result<(UnmatchedFilter, usize, usize), ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| ApiError::BadRequest("the query string could not be read".into()))?
        .into_inner();
    let (mut f, mut offset, mut limit) = (UnmatchedFilter::default(), 0, LIST_DEFAULT);
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in &pairs {
        let bad = |message: &str| FieldError {
            field: format!("{name} (query)"),
            message: message.into(),
        };
        if !seen.insert(name.as_str()) {
            errors.push(bad("is given more than once"));
            continue;
        }
        match name.as_str() {
            "state" => match UnmatchedState::parse(value) {
                Some(s) => f.state = Some(s),
                None => errors.push(bad("must be open, assigned or returned")),
            },
            "bank" => {
                if (1..=64).contains(&value.len())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
                {
                    f.bank = Some(value.clone());
                } else {
                    errors.push(bad("must be a bank id, lowercase [a-z0-9_-]"));
                }
            }
            "since" => match crate::timefmt::parse_rfc3339_ms(value) {
                Some(t) => f.since = Some(t),
                None => errors.push(bad("must be an RFC 3339 time, e.g. 2026-11-26T08:00:00Z")),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) && (1..=LIST_MAX).contains(&n) => limit = n,
                _ => errors.push(bad("must be a whole number from 1 to 200")),
            },
            "cursor" => match super::cursor_offset(value) {
                Some(o) => offset = o,
                None => errors.push(bad("is not a cursor this list gave")),
            },
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidParameters(errors));
    }
    Ok((f, offset, limit))
}

/// Bank credits and reversals that paid or reversed nothing, newest first.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/payments/unmatched", tag = "payments", security(("bearer" = [])),
    params(UnmatchedListParams),
    responses(
        (status = 200, description = "A page of unmatched bank money", body = UnmatchedList),
        (status = 400), (status = 401), (status = 403),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn list(req: HttpRequest, caller: Caller, p: web::Data<Option<Arc<Payments>>>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator, Role::Admin])?;
    let (f, offset, limit) = parse_query(req.query_string())?;
    let payments = payments(&p)?;
    let mut rows = payments.unmatched(&f, offset, limit + 1).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok(HttpResponse::Ok().json(UnmatchedList {
        next_cursor: more.then(|| super::offset_cursor(offset + limit)),
        unmatched: rows.into_iter().map(UnmatchedListed::from).collect(),
    }))
}

fn answer(r: Result<UnmatchedEntry, UnmatchedError>) -> Result<HttpResponse, ApiError> {
    match r {
        Ok(e) => Ok(HttpResponse::Ok().json(UnmatchedListed::from(e))),
        Err(UnmatchedError::NotFound) => Err(ApiError::NotFound("no unmatched entry with this id".into())),
        Err(e @ UnmatchedError::Settled(..)) => Err(ApiError::Conflict(e.to_string())),
        Err(UnmatchedError::Unfit(why)) => Err(ApiError::Validation(vec![FieldError {
            field: "/MaThamChieu".into(),
            message: why,
        }])),
        Err(UnmatchedError::Storage(e)) => Err(e.into()),
    }
}

fn entry_id(id: &str) -> Result<&str, ApiError> {
    if is_unmatched_id(id) {
        Ok(id)
    } else {
        Err(ApiError::NotFound("no unmatched entry with this id".into()))
    }
}

/// Pays the named payment with an unmatched credit, when its amount and account fit.
///
/// Roles: admin. Repeating it changes nothing.
#[utoipa::path(post, path = "/v1/payments/unmatched/{id}/assign", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^U[0-9A-F]{24}$", description = "The unmatched entry")),
    request_body(content = ref("#/components/schemas/UnmatchedAssign"), content_type = "application/json"),
    responses(
        (status = 200, description = "Assigned: the payment is paid", body = UnmatchedListed),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409, description = "It was settled otherwise before"),
        (status = 413), (status = 415), (status = 422, description = "The amount, the account or the payment does not fit; nothing changed"),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn assign(
    caller: Caller,
    p: web::Data<Option<Arc<Payments>>>,
    id: web::Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id = entry_id(&id)?;
    let v = body.value()?;
    let reference = match v.get("MaThamChieu").and_then(Value::as_str) {
        Some(r) if is_reference(r) => r.to_string(),
        _ => {
            return Err(ApiError::Validation(vec![FieldError {
                field: "/MaThamChieu".into(),
                message: "must be a payment reference of this gateway".into(),
            }]));
        }
    };
    let payments = payments(&p)?;
    answer(payments.assign_unmatched(id, &reference, &caller.name).await)
}

/// Marks unmatched money to be given back to the payer.
///
/// Roles: admin. Repeating it changes nothing.
#[utoipa::path(post, path = "/v1/payments/unmatched/{id}/return", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^U[0-9A-F]{24}$", description = "The unmatched entry")),
    request_body(content = ref("#/components/schemas/UnmatchedReturn"), content_type = "application/json"),
    responses(
        (status = 200, description = "Marked to be returned", body = UnmatchedListed),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409, description = "It was assigned to a payment before"),
        (status = 413), (status = 415), (status = 422),
        (status = 503, description = "Payments are not configured, or the queue backend is unavailable"),
    ))]
async fn give_back(
    caller: Caller,
    p: web::Data<Option<Arc<Payments>>>,
    id: web::Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id = entry_id(&id)?;
    let v = body.value()?;
    let reason = match v.get("reason").and_then(Value::as_str).map(str::trim) {
        Some(r) if !r.is_empty() && r.chars().count() <= MAX_REASON_CHARS && !r.chars().any(char::is_control) => r.to_string(),
        _ => {
            return Err(ApiError::Validation(vec![FieldError {
                field: "/reason".into(),
                message: format!("must be a text of 1 to {MAX_REASON_CHARS} characters, without control characters"),
            }]));
        }
    };
    let payments = payments(&p)?;
    answer(payments.return_unmatched(id, &reason, &caller.name).await)
}
