//! The HTTP API on actix-web: routing, the request-id middleware, and the handlers that are not
//! about one business area (health, readiness, OpenAPI, message status).
//!
//! Every error is problem+json, including those actix makes itself: query-string and path
//! parameters that do not parse are answered by [`query_error`] and [`path_error`], a known
//! path asked with another method is a 405 with `Allow` (the methods come from the OpenAPI
//! document, the one list of what each path serves), and the middleware turns any other error
//! that is not ours into the same shape.
//!
//! The document is generated from the handlers ([`openapi`]) with the operations of the
//! registered destinations' ingest routes and of the payment providers' callbacks merged in, so
//! their routes are documented, and answer 405 rightly, without the core naming them.

pub mod auth;
pub mod body;
pub mod catalogue;
pub mod copies;
pub mod dossiers;
pub mod evidence;
pub mod inbound;
pub mod ingest;
pub mod openapi;
pub mod operation;
pub mod ops;
pub mod payment_request;
pub mod payments;
pub mod problem;
pub mod signatures;
pub mod unmatched;

use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use hcc_config::Role;
use serde::Serialize;
use utoipa::ToSchema;

use self::auth::Caller;
use self::openapi::ApiDocument;
use self::problem::{ApiError, FieldError};
use crate::engine::EngineHandle;
use crate::redact::mask_identity_numbers;
use crate::storage::MessageRecord;
use crate::timefmt::rfc3339_ms;

/// Registers every route. `extra` lets later areas (dossiers, payments) add theirs.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/openapi.json", web::get().to(openapi))
        .route("/v1/messages/{id}", web::get().to(get_message))
        .route("/metrics", web::get().to(metrics))
        .route("/v1/audit", web::get().to(audit))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .configure(ops::routes)
        .configure(dossiers::routes)
        .configure(catalogue::routes)
        .configure(evidence::routes)
        .configure(signatures::routes)
        // Before payments: `/v1/payments/unmatched` is not a `/v1/payments/{MaThamChieu}`.
        .configure(unmatched::routes)
        .configure(payments::routes);
}

/// The default service: a path the OpenAPI document knows, asked with a method it does not
/// serve, is a 405 naming the methods it does; any other path is a 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = api_document(&req).allowed_methods(req.path());
    if !allowed.is_empty() && !allowed.contains(req.method()) {
        return Err(ApiError::MethodNotAllowed(allowed));
    }
    Err(ApiError::NotFound("no such resource".into()))
}

/// The document the server was built with, or the core one.
fn api_document(req: &HttpRequest) -> &ApiDocument {
    req.app_data::<web::Data<ApiDocument>>().map_or(&*openapi::CORE, |d| d.get_ref())
}

/// A serde message names a field only in a few shapes (`missing field `x``), and then the
/// name is one of ours, not the caller's; any other message may quote the caller's value and
/// is not repeated.
fn named_field(message: &str) -> Option<&str> {
    for prefix in ["missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest
                .split('`')
                .next()
                .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
    }
    None
}

/// A query string that does not fit the handler's parameters: 400 problem+json.
pub fn query_error(e: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let QueryPayloadError::Deserialize(inner) = &e else {
        return ApiError::BadRequest("the query string could not be read".into()).into();
    };
    let text = inner.to_string();
    let error = match named_field(&text) {
        Some(name) => FieldError {
            field: format!("{name} (query)"),
            message: if text.starts_with("missing") {
                "is required"
            } else {
                "is given more than once"
            }
            .into(),
        },
        None => FieldError {
            field: String::new(),
            message: "the query string does not fit this endpoint's parameters; see /openapi.json".into(),
        },
    };
    ApiError::InvalidParameters(vec![error]).into()
}

/// Path parameters that do not parse: 400 problem+json, without repeating the path.
pub fn path_error(_: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::InvalidParameters(vec![FieldError {
        field: String::new(),
        message: "a path parameter does not have the expected form; see /openapi.json".into(),
    }])
    .into()
}

/// `offset` and `limit` of a list endpoint, read from the query string and range-checked here,
/// so a value the backend cannot take (an offset past `i64::MAX` is an error in Redis) is the
/// caller's 400 and not our 503. Other parameters are ignored, as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;
    /// Far past any list the gateway keeps, and far below where `offset + limit` or Redis's
    /// 64-bit indexes could overflow.
    pub const MAX_OFFSET: usize = 1_000_000_000;

    pub fn from_query(query: &str) -> Result<Page, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| ApiError::BadRequest("the query string could not be read".into()))?
            .into_inner();
        let mut offset = None;
        let mut limit = None;
        let mut errors = Vec::new();
        for (name, value) in &pairs {
            let (slot, lo, hi) = match name.as_str() {
                "offset" => (&mut offset, 0, Self::MAX_OFFSET),
                "limit" => (&mut limit, 1, Self::MAX_LIMIT),
                _ => continue,
            };
            let field = format!("{name} (query)");
            if slot.is_some() {
                errors.push(FieldError {
                    field,
                    message: "is given more than once".into(),
                });
                continue;
            }
            // Digits only: no sign, no spaces, no exponent; the value itself is not repeated.
            match value.parse::<usize>() {
                Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) && (lo..=hi).contains(&n) => *slot = Some(n),
                _ => {
                    *slot = Some(lo);
                    errors.push(FieldError {
                        field,
                        message: format!("must be a whole number from {lo} to {hi}"),
                    });
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::InvalidParameters(errors));
        }
        Ok(Page {
            offset: offset.unwrap_or(0),
            limit: limit.unwrap_or(Self::DEFAULT_LIMIT),
        })
    }
}

/// The opaque cursor of a list paged by position: `o<offset>`.
pub fn offset_cursor(offset: usize) -> String {
    format!("o{offset}")
}

/// The offset an [`offset_cursor`] names, if it is one (and in range).
pub fn cursor_offset(cursor: &str) -> Option<usize> {
    let digits = cursor.strip_prefix('o')?;
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|o| *o <= Page::MAX_OFFSET)
}

/// The query parameters [`Page`] reads, for the document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a description only: the values are read by Page::from_query")]
pub struct PageParams {
    /// Entries to skip.
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<u64>,
    /// Entries to return, 100 when not given.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

impl FromRequest for Page {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Page::from_query(req.query_string()))
    }
}

/// An error response that actix made from an error that is not an [`ApiError`] (an extractor
/// without an error handler, a payload error) is answered as problem+json with the same status;
/// its text is not repeated, as it may quote the request.
fn as_problem(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let foreign = res.response().error().is_some_and(|e| e.as_error::<ApiError>().is_none());
    if !foreign {
        return res;
    }
    let status = res.status();
    let reason = status.canonical_reason().unwrap_or("Error");
    let slug = if status.is_server_error() {
        "internal"
    } else {
        "malformed-request"
    };
    let detail = if status.is_server_error() {
        "an internal error occurred".to_string()
    } else {
        "the request could not be processed".to_string()
    };
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, problem::problem(status, slug, reason, detail, None))
}

/// Gives each request an id (the caller's `X-Request-Id` when it is sane), opens a tracing span
/// carrying it, logs one line per request, and returns the id in the answer. A panic in what
/// it wraps is a 500 problem.
pub async fn request_id(req: ServiceRequest, next: Next<impl MessageBody + 'static>) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let incoming = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(str::to_string);
    let id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().to_string();
    let path = req.path().to_string();
    let monitoring = req.app_data::<web::Data<crate::monitoring::Monitoring>>().cloned();
    let span = if crate::telemetry::enabled() {
        // A trace's span name is fixed once its context is read (at acceptance, before
        // routing), so it names the path; the route pattern is recorded after, as an attribute.
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            %method,
            %path,
            otel.kind = "server",
            otel.name = %format_args!("{method} {path}"),
            http.route = tracing::field::Empty
        );
        // A caller's trace is continued; a malformed header starts a new one.
        if let Some(traceparent) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
            crate::telemetry::continue_trace(&span, traceparent);
        }
        span
    } else {
        // Without traces the span only labels the log lines.
        tracing::info_span!("request", request_id = %id, %method, %path)
    };
    let started = std::time::Instant::now();
    // A handler that panics must not take its worker, and the connections on it, down: the
    // panic is caught here, logged by the panic hook (`logging::install_panic_hook`) as one
    // escaped line, and answered as any internal error is.
    // The request went into the call (the router needs it unshared), so the answer is given
    // as an error carrying the whole response, which actix sends as it is.
    let call = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(next.call(req)));
    let Ok(res) = tracing::Instrument::instrument(call, span.clone()).await else {
        let _enter = span.enter();
        tracing::info!(status = 500u16, elapsed_us = started.elapsed().as_micros() as u64, "request");
        if let Some(t) = &monitoring {
            // Where it was routed is lost with the request.
            t.http_request("panicked", &method, 500);
        }
        let mut answer = actix_web::ResponseError::error_response(&ApiError::Internal);
        if let Ok(v) = HeaderValue::from_str(&id) {
            answer.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
        }
        return Err(actix_web::error::InternalError::from_response("a handler panicked", answer).into());
    };
    let _enter = span.enter();
    match res {
        Ok(r) => {
            let mut r = as_problem(r.map_into_boxed_body());
            if let (Some(t), Some(ApiError::Unavailable(cause))) =
                (&monitoring, r.response().error().and_then(|e| e.as_error::<ApiError>()))
            {
                // Logged as the store's outage, once, and counted: not a line per request.
                t.outages().redis().refused(cause);
            }
            let status = r.status().as_u16();
            tracing::info!(status, elapsed_us = started.elapsed().as_micros() as u64, "request");
            // The route pattern, not the path: ids must not explode the label space (nor the
            // trace's span names), and every path no route matches shares `unmatched`. Written
            // `:param`, as braces inside label values trip some Prometheus tooling.
            let route = r
                .request()
                .match_pattern()
                .map_or_else(|| "unmatched".into(), |p| p.replace('{', ":").replace('}', ""));
            span.record("http.route", route.as_str());
            if let Some(t) = &monitoring {
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

/// The health and readiness answers.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` (alive) or `ready`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The queue backend, on readiness only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "redis")]
    pub queue: Option<&'static str>,
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Alive", body = Status)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok", queue: None })
}

/// Ready: the queue backend answers.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, description = "Ready", body = Status), (status = 503, description = "The queue backend is unavailable")))]
async fn readyz(engine: web::Data<EngineHandle>, monitoring: web::Data<crate::monitoring::Monitoring>) -> Result<HttpResponse, ApiError> {
    let asked = std::time::Instant::now();
    engine.queue.ping().await?;
    // A probe that gets through is how an API-only process (no claim loop polling the store)
    // sees the store come back.
    monitoring.outages().redis().ok_since(asked);
    Ok(HttpResponse::Ok().json(Status {
        status: "ready",
        queue: Some(engine.queue.backend_name()),
    }))
}

/// Prometheus text. Unauthenticated, as scrapers expect; it carries counts, never payloads.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 503, description = "The queue backend is unavailable"),
    ))]
async fn metrics(engine: web::Data<EngineHandle>, monitoring: web::Data<crate::monitoring::Monitoring>) -> Result<HttpResponse, ApiError> {
    let text = monitoring.render(&engine).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// The audit log, newest first: delivery attempts and operator actions.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// One object per entry, as written.
    pub entries: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Delivery attempts and operator actions, newest first.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/audit", tag = "operations", security(("bearer" = [])), params(PageParams),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 400), (status = 401), (status = 403), (status = 503),
    ))]
async fn audit(caller: Caller, monitoring: web::Data<crate::monitoring::Monitoring>, page: Page) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator, Role::Admin])?;
    let lines = monitoring.audit_log().read(page.offset, page.limit).await?;
    let entries = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    Ok(HttpResponse::Ok().json(AuditPage { entries }))
}

/// This document, generated from the code at start.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
async fn openapi(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(api_document(&req).json())
}

/// A message's state as the API shows it: RFC 3339 times, identity numbers masked.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageView {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(example = "dossier.sync")]
    pub kind: String,
    #[schema(example = "dvcqg")]
    pub destination: String,
    pub ordering_key: String,
    pub status: crate::storage::MessageStatus,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
    /// For a dead letter: what happened, in plain English and Vietnamese.
    pub plain_reason: Option<crate::reason::PlainReason>,
}

impl From<MessageRecord> for MessageView {
    fn from(r: MessageRecord) -> Self {
        let last_error = r.last_error.as_deref().map(mask_identity_numbers);
        MessageView {
            plain_reason: dossiers::plain_reason(r.status, last_error.as_deref()),
            id: r.id,
            kind: r.kind,
            destination: r.destination,
            ordering_key: r.ordering_key,
            status: r.status,
            attempts: r.attempts,
            created_at: rfc3339_ms(r.created_at),
            next_attempt_at: r.next_attempt_at.map(rfc3339_ms),
            delivered_at: r.delivered_at.map(rfc3339_ms),
            last_error,
        }
    }
}

/// One message's delivery state.
///
/// Roles: centre, operator, admin.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, format = "uuid", description = "The id the message was accepted under")),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 401), (status = 403),
        (status = 404, description = "No message with this id (an id that is not a UUID names none)"),
        (status = 503),
    ))]
async fn get_message(caller: Caller, engine: web::Data<EngineHandle>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::NotFound("no message with this id".into()));
    }
    for queue in engine.destinations() {
        if let Some(mut r) = engine.queue.get(queue, &id).await? {
            // The record knows its queue; the API names who delivers it.
            r.destination = engine.destination_of(queue).unwrap_or(queue).to_string();
            return Ok(HttpResponse::Ok().json(MessageView::from(r)));
        }
    }
    Err(ApiError::NotFound("no message with this id".into()))
}

#[cfg(test)]
mod tests {
    use actix_web::dev::Service;
    use actix_web::{App, test as actix_test};

    use super::*;

    #[test]
    fn pages_are_digits_in_range() {
        assert_eq!(Page::from_query("").ok(), Some(Page { offset: 0, limit: 100 }));
        assert_eq!(
            Page::from_query("offset=1000000000&limit=1000&_=x").ok(),
            Some(Page {
                offset: 1_000_000_000,
                limit: 1000
            })
        );
        assert_eq!(Page::from_query("limit=1").ok(), Some(Page { offset: 0, limit: 1 }));
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=999999999999",
            "limit=abc",
            "limit=",
            "limit=+5",
            "limit=%205",
            "offset=-1",
            "offset=1000000001",
            "offset=18446744073709551615",
            "offset=99999999999999999999999",
            "offset=1&offset=2",
        ] {
            match Page::from_query(bad) {
                Err(ApiError::InvalidParameters(e)) => assert!(!e.is_empty(), "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_our_own_field_names_are_taken_from_serde_messages() {
        assert_eq!(named_field("missing field `format`"), Some("format"));
        assert_eq!(named_field("duplicate field `format`"), Some("format"));
        assert_eq!(named_field("unknown variant `001203004567`, expected one of"), None);
        assert_eq!(named_field("invalid digit found in string"), None);
    }

    async fn echoing() -> Result<HttpResponse, actix_web::Error> {
        Err(actix_web::error::ErrorBadRequest("you sent 001203004567"))
    }

    async fn panicking() -> HttpResponse {
        panic!("handler bug for 001203004567\nforged: x");
    }

    #[actix_web::test]
    async fn a_panicking_handler_is_a_500_problem_and_the_server_goes_on() {
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(request_id))
                .route("/panics", web::post().to(panicking))
                .route("/healthz", web::get().to(healthz)),
        )
        .await;
        for _ in 0..3 {
            let req = actix_test::TestRequest::post()
                .uri("/panics")
                .insert_header(("x-request-id", "panic-1"))
                .to_request();
            let res = match app.call(req).await {
                Ok(res) => res.into_parts().1,
                Err(e) => e.error_response(),
            };
            assert_eq!(res.status(), 500);
            assert_eq!(res.headers().get("content-type").unwrap(), "application/problem+json");
            assert_eq!(res.headers().get("x-request-id").unwrap(), "panic-1");
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["type"], "https://hcc-gateway.dev/problems/internal");
            assert_eq!(v["status"], 500);
            // The panic's text is the log's, never the caller's.
            assert!(!String::from_utf8_lossy(&body).contains("001203004567"));
        }
        let res = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(res.status(), 200);
    }

    #[actix_web::test]
    async fn errors_that_are_not_ours_become_problems_without_their_text() {
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(request_id))
                .route("/echo", web::get().to(echoing)),
        )
        .await;
        let res = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/echo").to_request()).await;
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers().get("content-type").unwrap(), "application/problem+json");
        let body = actix_test::read_body(res).await;
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("001203004567"), "{text}");
        assert!(text.contains("malformed-request"), "{text}");
    }
}
