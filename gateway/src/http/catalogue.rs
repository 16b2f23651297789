//! The catalogue routes: the national procedures as the portal sends them
//! (`GET /v1/catalogue/procedures?q=&linh_vuc=`, `GET /v1/catalogue/procedures/{MaTTHC}`),
//! with `synced_at` and `withdrawn`; the sync's progress (`GET /v1/catalogue/sync`) and asking
//! for one now (`POST /v1/catalogue/sync`, admin).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use hcc_adapters::catalogue::is_procedure_code;
use hcc_adapters::text::without_diacritics;
use hcc_config::Role;
use serde_json::{Value, json};

use super::auth::Caller;
use super::problem::{ApiError, FieldError};
use crate::catalogue::Catalogue;
use crate::storage::catalogue::Procedure;
use crate::timefmt::rfc3339_ms;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/catalogue/procedures", web::get().to(list))
        .route("/v1/catalogue/procedures/{MaTTHC}", web::get().to(get_one))
        .route("/v1/catalogue/sync", web::get().to(sync_state))
        .route("/v1/catalogue/sync", web::post().to(request_sync));
}

/// A procedure as served: the portal's object as it sent it (the details once pulled, else the
/// list's entry), with `synced_at` and `withdrawn` added.
fn view(p: Procedure) -> Value {
    let mut v = match p.details.or(Some(p.listed)) {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    v.insert("synced_at".into(), Value::from(rfc3339_ms(p.synced_at)));
    v.insert("withdrawn".into(), Value::from(p.withdrawn));
    Value::Object(v)
}

/// Text compared without case or diacritics, so `khai sinh` finds `Đăng ký khai sinh`.
fn folded(s: &str) -> String {
    without_diacritics(s).to_lowercase()
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Words of the code or the name, without regard to case or diacritics.
    #[param(max_length = 200)]
    q: Option<String>,
    /// Only procedures of this field (`MALINHVUC`).
    #[param(max_length = 50)]
    linh_vuc: Option<String>,
}

/// National procedures, by code.
///
/// Roles: centre, operator, admin. The portal's fields as it sends them (`MATTHC`, `TENTTHC`,
/// `LINHVUCTHUCHIEN`, ...), with `synced_at` and `withdrawn`.
#[utoipa::path(get, path = "/v1/catalogue/procedures", tag = "catalogue", security(("bearer" = [])),
    params(Search, super::PageParams),
    responses(
        (status = 200, description = "`{procedures, total}`", body = Object),
        (status = 400), (status = 401), (status = 403), (status = 503),
    ))]
async fn list(caller: Caller, cat: web::Data<Arc<Catalogue>>, page: super::Page, q: web::Query<Search>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let mut errors = Vec::new();
    if q.q.as_ref().is_some_and(|s| s.chars().count() > 200) {
        errors.push(FieldError {
            field: "q (query)".into(),
            message: "must be at most 200 characters".into(),
        });
    }
    if q.linh_vuc.as_ref().is_some_and(|s| s.chars().count() > 50) {
        errors.push(FieldError {
            field: "linh_vuc (query)".into(),
            message: "must be at most 50 characters".into(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidParameters(errors));
    }
    let words: Vec<String> =
        q.q.as_deref()
            .map(folded)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
    let field = q.linh_vuc.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let matching: Vec<String> = cat
        .book
        .summaries()
        .await?
        .into_iter()
        .filter(|(code, s)| {
            let text = folded(&format!("{code} {}", s.name));
            words.iter().all(|w| text.contains(w.as_str())) && field.is_none_or(|f| s.linh_vuc.iter().any(|l| l == f))
        })
        .map(|(code, _)| code)
        .collect();
    let total = matching.len();
    let mut procedures = Vec::new();
    for code in matching.into_iter().skip(page.offset).take(page.limit) {
        if let Some(p) = cat.book.get(&code).await? {
            procedures.push(view(p));
        }
    }
    Ok(HttpResponse::Ok().json(json!({"procedures": procedures, "total": total})))
}

/// One national procedure.
///
/// Roles: centre, operator, admin.
#[utoipa::path(get, path = "/v1/catalogue/procedures/{MaTTHC}", tag = "catalogue", security(("bearer" = [])),
    params(("MaTTHC" = String, Path, pattern = "^[!-.0-\\[\\]-~]{1,50}$", description = "The procedure's national code")),
    responses(
        (status = 200, description = "The procedure as the portal sent it, with `synced_at` and `withdrawn`", body = Object),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "The catalogue does not have it"),
        (status = 503),
    ))]
async fn get_one(caller: Caller, cat: web::Data<Arc<Catalogue>>, code: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    if !is_procedure_code(&code) {
        return Err(ApiError::InvalidParameters(vec![FieldError {
            field: "MaTTHC (path)".into(),
            message: "must be 1 to 50 visible ASCII characters without / or \\".into(),
        }]));
    }
    match cat.book.get(&code).await? {
        Some(p) => Ok(HttpResponse::Ok().json(view(p))),
        None => Err(ApiError::NotFound(
            "the national catalogue (as last pulled) does not have this procedure".into(),
        )),
    }
}

fn state_view(s: crate::storage::catalogue::SyncState, procedures: u64, cat: &Catalogue) -> Value {
    json!({
        "phase": s.phase,
        "started_at": s.started_at.map(rfc3339_ms),
        "finished_at": s.finished_at.map(rfc3339_ms),
        "last_success_at": s.last_success_at.map(rfc3339_ms),
        "total": s.total,
        "done": s.done,
        "failed_details": s.failed_details,
        "last_error": s.last_error,
        "procedures": procedures,
        "check": format!("{:?}", cat.mode()).to_lowercase(),
        "sync_every_secs": cat.every.map_or(0, |d| d.as_secs()),
    })
}

/// The catalogue sync's progress.
///
/// Roles: centre, operator, admin. `phase`: `idle` (never ran), `details` (pulling each
/// procedure: `done` of `total`), `done`, `failed` (the list could not be pulled; the previous
/// catalogue stands).
#[utoipa::path(get, path = "/v1/catalogue/sync", tag = "catalogue", security(("bearer" = [])),
    responses((status = 200, description = "The sync's state", body = Object), (status = 401), (status = 403), (status = 503)))]
async fn sync_state(caller: Caller, cat: web::Data<Arc<Catalogue>>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let s = cat.book.sync_state().await?;
    let n = cat.book.count().await?;
    Ok(HttpResponse::Ok().json(state_view(s, n, &cat)))
}

/// Asks for a catalogue sync now; an instance running the delivery workers takes it within a
/// second (a run in progress goes on).
///
/// Roles: admin.
#[utoipa::path(post, path = "/v1/catalogue/sync", tag = "catalogue", security(("bearer" = [])),
    responses((status = 202, description = "Asked for; the state as it is now", body = Object), (status = 401), (status = 403), (status = 503)))]
async fn request_sync(caller: Caller, cat: web::Data<Arc<Catalogue>>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    cat.book.request_sync().await?;
    tracing::info!(who = %caller.name, "catalogue sync asked for");
    let s = cat.book.sync_state().await?;
    let n = cat.book.count().await?;
    Ok(HttpResponse::Accepted().json(state_view(s, n, &cat)))
}
