//! The HTTP API on actix-web: routing, the request-id middleware, and the handlers that are not
//! about one business area (health, readiness, OpenAPI, message status).

pub mod auth;
pub mod body;
pub mod dossiers;
pub mod ops;
pub mod payments;
pub mod problem;
pub mod signatures;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use hcc_config::Role;
use serde::Serialize;

use self::auth::Caller;
use self::problem::ApiError;
use crate::engine::EngineHandle;
use crate::engine::queue::MessageRecord;
use crate::redact::mask_identity_numbers;
use crate::timefmt::rfc3339_ms;

const OPENAPI: &str = include_str!("../../openapi.json");

/// Registers every route. `extra` lets later areas (dossiers, payments) add theirs.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/openapi.json", web::get().to(openapi))
        .route("/v1/messages/{id}", web::get().to(get_message))
        .route("/metrics", web::get().to(metrics))
        .route("/v1/audit", web::get().to(audit))
        .configure(dossiers::routes)
        .configure(ops::routes)
        .configure(signatures::routes)
        .configure(payments::routes);
}

/// Unknown routes answer problem+json too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such resource".into()))
}

/// Gives each request an id (the caller's `X-Request-Id` when it is sane), opens a tracing span
/// carrying it, logs one line per request, and returns the id in the answer.
pub async fn request_id(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let incoming = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(str::to_string);
    let id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().to_string();
    let path = req.path().to_string();
    let telemetry = req.app_data::<web::Data<crate::observe::Telemetry>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let res = tracing::Instrument::instrument(next.call(req), span.clone()).await;
    let _enter = span.enter();
    match res {
        Ok(mut r) => {
            let status = r.status().as_u16();
            tracing::info!(status, elapsed_us = started.elapsed().as_micros() as u64, "request");
            if let Some(t) = &telemetry {
                // The route pattern, not the path: ids must not explode the label space.
                // Written `:param`, as braces inside label values trip some Prometheus tooling.
                let route = r
                    .request()
                    .match_pattern()
                    .map_or_else(|| "unmatched".into(), |p| p.replace('{', ":").replace('}', ""));
                t.http_request(&route, &method, status);
            }
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
            }
            Ok(r)
        }
        Err(e) => {
            tracing::warn!(error = %e, "request failed");
            Err(e)
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(engine: web::Data<EngineHandle>) -> Result<HttpResponse, ApiError> {
    engine.queue.ping().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready", "queue": engine.queue.backend_name()})))
}

/// Prometheus text. Unauthenticated, as scrapers expect; it carries counts, never payloads.
async fn metrics(engine: web::Data<EngineHandle>, telemetry: web::Data<crate::observe::Telemetry>) -> Result<HttpResponse, ApiError> {
    let text = telemetry.render(&engine).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "hundred")]
    limit: usize,
}

fn hundred() -> usize {
    100
}

/// Delivery attempts and operator actions, newest first.
async fn audit(caller: Caller, engine: web::Data<EngineHandle>, q: web::Query<AuditQuery>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator, Role::Admin])?;
    let lines = engine.queue.audit_read(q.offset, q.limit.min(1000)).await?;
    let entries: Vec<serde_json::Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"entries": entries})))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// A message's state as the API shows it: RFC 3339 times, identity numbers masked.
#[derive(Serialize)]
pub struct MessageView {
    pub id: String,
    pub kind: String,
    pub destination: String,
    pub ordering_key: String,
    pub status: crate::engine::queue::MessageStatus,
    pub attempts: u32,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<MessageRecord> for MessageView {
    fn from(r: MessageRecord) -> Self {
        MessageView {
            id: r.id,
            kind: r.kind,
            destination: r.destination,
            ordering_key: r.ordering_key,
            status: r.status,
            attempts: r.attempts,
            created_at: rfc3339_ms(r.created_at),
            next_attempt_at: r.next_attempt_at.map(rfc3339_ms),
            delivered_at: r.delivered_at.map(rfc3339_ms),
            last_error: r.last_error.as_deref().map(mask_identity_numbers),
        }
    }
}

async fn get_message(caller: Caller, engine: web::Data<EngineHandle>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::NotFound("no message with this id".into()));
    }
    for dest in engine.destinations() {
        if let Some(r) = engine.queue.get(dest, &id).await? {
            return Ok(HttpResponse::Ok().json(MessageView::from(r)));
        }
    }
    Err(ApiError::NotFound("no message with this id".into()))
}
