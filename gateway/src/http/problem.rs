//! Every error the API gives is an RFC 9457 `application/problem+json` document: `type`,
//! `title`, `status`, `detail`, and `errors` with field paths for validation. Nothing echoes a
//! payload back, and internal errors say only that they happened. A problem lists at most
//! [`MAX_FIELD_ERRORS`] fields and then says how many more there were, so a body built to fail
//! everywhere cannot make the answer larger than the question.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One field that failed validation, named by its JSON Pointer (`/DanhSachLePhi/0/Gia`).
pub use hcc_adapters::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("this API key's role may not do this")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("the body must be {0}")]
    UnsupportedMediaType(&'static str),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive in time (`server.body_read_timeout_ms`).
    #[error("the body did not arrive within {} ms", .0.as_millis())]
    BodyTimeout(std::time::Duration),
    /// The budget of body bytes being received (`server.inflight_body_bytes`) is taken.
    #[error("the gateway is receiving as many request bodies as it takes at once; try again shortly")]
    BodiesBusy,
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// Query-string or path parameters that do not parse or are out of range (400).
    #[error("the request has invalid parameters")]
    InvalidParameters(Vec<FieldError>),
    /// A known path asked with a method it does not serve; the methods it does serve.
    #[error("this resource does not support the method; see the Allow header")]
    MethodNotAllowed(Vec<Method>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The store did not answer; the cause is for the outage's log line (`crate::outage`), never
    /// for the caller.
    #[error("the queue backend is unavailable; nothing was accepted, try again")]
    Unavailable(String),
    /// The write is on the primary only (`queue.min_replicas`): not acknowledged. A retry with
    /// the same `Idempotency-Key` finds it and is answered once replicas hold it.
    #[error("the write was not confirmed by enough replicas in time; retry with the same Idempotency-Key")]
    NotReplicated,
    #[error("{0}")]
    NotConfigured(String),
    /// A service the request needs (a timestamp authority, a signing token) is down now;
    /// nothing was done, the request may be retried.
    #[error("{0}")]
    DependencyUnavailable(String),
    #[error("{0}")]
    Upstream(String),
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    #[error("an internal error occurred")]
    Internal,
}

/// An RFC 9457 problem, the body of every error; its schema is the document's `Problem`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody<'a> {
    /// `https://hcc-gateway.dev/problems/<slug>`
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    kind: &'a str,
    title: &'a str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong, in words; never a quote of the request.
    detail: String,
    /// The fields that failed, at most 100; when there were more, a last entry with an empty
    /// field says how many more. Messages never quote the value sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldErrorSchema>>, max_items = 101)]
    errors: Option<&'a [FieldError]>,
}

/// The schema of [`FieldError`] (defined in the adapters, which know no OpenAPI).
#[derive(utoipa::ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code, reason = "a schema only: the values are FieldErrors")]
pub(crate) struct FieldErrorSchema {
    /// JSON Pointer into the body (`/DanhSachLePhi/0/Gia`); a query or path parameter is named
    /// with its place (`limit (query)`); empty for the body as a whole or for the count of
    /// errors left out.
    field: String,
    message: String,
}

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden => ("forbidden", "Forbidden"),
            ApiError::BadRequest(_) => ("malformed-request", "Malformed request"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::BodyTimeout(_) => ("request-timeout", "Request timeout"),
            ApiError::BodiesBusy => ("busy", "Service unavailable"),
            ApiError::Validation(_) => ("validation", "Validation failed"),
            ApiError::InvalidParameters(_) => ("invalid-parameters", "Invalid parameters"),
            ApiError::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::Unavailable(_) => ("backend-unavailable", "Service unavailable"),
            ApiError::NotReplicated => ("not-replicated", "Service unavailable"),
            ApiError::NotConfigured(_) => ("not-configured", "Service unavailable"),
            ApiError::DependencyUnavailable(_) => ("dependency-unavailable", "Service unavailable"),
            ApiError::Upstream(_) => ("upstream-failed", "Bad gateway"),
            ApiError::BadSignature(_) => ("bad-signature", "Unauthorized"),
            ApiError::Internal => ("internal", "Internal error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InvalidParameters(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_)
            | ApiError::NotReplicated
            | ApiError::NotConfigured(_)
            | ApiError::DependencyUnavailable(_)
            | ApiError::BodiesBusy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title) = self.slug_and_title();
        let errors = match self {
            ApiError::Validation(e) | ApiError::InvalidParameters(e) => Some(capped(e)),
            _ => None,
        };
        let mut resp = problem(self.status_code(), slug, title, self.to_string(), errors.as_deref());
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            ApiError::NotReplicated => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from_static(NOT_REPLICATED_RETRY_AFTER_SECS),
                );
            }
            ApiError::DependencyUnavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static(DEPENDENCY_RETRY_AFTER_SECS));
            }
            ApiError::BodiesBusy => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static(BODIES_BUSY_RETRY_AFTER_SECS));
            }
            ApiError::MethodNotAllowed(allowed) => {
                let list = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(v) = header::HeaderValue::from_str(&list) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        // A body refused before it was read whole leaves the rest of it on the connection:
        // close it rather than read (or wait for) what is left.
        if matches!(self, ApiError::PayloadTooLarge(_) | ApiError::BodyTimeout(_) | ApiError::BodiesBusy) {
            resp.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        }
        resp
    }
}

/// `Retry-After` while the body budget is taken: a slow body holds its share at most
/// `server.body_read_timeout_ms`, most far less.
const BODIES_BUSY_RETRY_AFTER_SECS: &str = "2";

/// `Retry-After` of a write replicas did not confirm in time: replicas catch up (or a
/// failover finishes) within seconds.
const NOT_REPLICATED_RETRY_AFTER_SECS: &str = "1";

/// `Retry-After` while a dependency of the request is away (the signing key's token, the
/// timestamp authority): the gateway tries it again on the next request, and a token plugged
/// back in is answered within seconds.
const DEPENDENCY_RETRY_AFTER_SECS: &str = "5";

/// At most this many field errors are listed; one more entry says how many were left out.
pub const MAX_FIELD_ERRORS: usize = 100;

/// The first [`MAX_FIELD_ERRORS`] errors and, when there were more, a last entry with an empty
/// field saying how many more. Every validation answer passes through here.
fn capped(errors: &[FieldError]) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = errors.iter().take(MAX_FIELD_ERRORS).cloned().collect();
    let more = errors.len().saturating_sub(MAX_FIELD_ERRORS);
    if more > 0 {
        out.push(FieldError {
            field: String::new(),
            message: format!("and {more} more {}", if more == 1 { "error" } else { "errors" }),
        });
    }
    out
}

/// A problem+json answer. `pub(crate)` so errors that are not ours (actix's extractor errors)
/// can be answered in the same shape.
pub(crate) fn problem(status: StatusCode, slug: &str, title: &str, detail: String, errors: Option<&[FieldError]>) -> HttpResponse {
    let kind = format!("https://hcc-gateway.dev/problems/{slug}");
    let body = ProblemBody {
        kind: &kind,
        title,
        status: status.as_u16(),
        detail,
        errors,
    };
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(serde_json::to_string(&body).unwrap_or_default())
}

/// A store that does not answer is an outage, logged once as a state change by the request
/// middleware (`http::request_id`, through [`crate::outage`]), not once per refused request; a
/// write replicas did not confirm is counted where it happens (the store's
/// `hcc_queue_unreplicated_writes_total`), which also warns at most once a minute, so here it
/// is only a debug line. A reply of the wrong shape is a fault of its own, logged each time.
impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Unavailable(cause) => ApiError::Unavailable(cause),
            // Refused credentials or certificate after start-up (a rotated password): the
            // store is out of reach like any outage, and the cause names the key.
            crate::storage::StorageError::Access { .. } => ApiError::Unavailable(e.to_string()),
            crate::storage::StorageError::Corrupt(_) => {
                tracing::error!(error = %e, "queue backend error");
                ApiError::Internal
            }
            crate::storage::StorageError::NotReplicated { .. } => {
                tracing::debug!(error = %e, "write not confirmed by enough replicas");
                ApiError::NotReplicated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    fn errors(n: usize) -> Vec<FieldError> {
        (0..n)
            .map(|i| FieldError {
                field: format!("/TaiLieuNop/{i}"),
                message: "must be an object".into(),
            })
            .collect()
    }

    async fn body_of(e: ApiError) -> serde_json::Value {
        let bytes = to_bytes(e.error_response().into_body()).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[actix_web::test]
    async fn at_most_a_hundred_field_errors_and_a_count_of_the_rest() {
        for (n, listed, last) in [
            (0, 0, None),
            (100, 100, Some("/TaiLieuNop/99")),
            (101, 101, Some("")),
            (500_000, 101, Some("")),
        ] {
            let v = body_of(ApiError::Validation(errors(n))).await;
            let list = v["errors"].as_array().unwrap();
            assert_eq!(list.len(), listed, "{n}");
            if let Some(last) = last {
                assert_eq!(list[list.len() - 1]["field"], last, "{n}");
            }
        }
        let v = body_of(ApiError::Validation(errors(500_000))).await;
        assert_eq!(v["errors"][100]["message"], "and 499900 more errors");
        let v = body_of(ApiError::InvalidParameters(errors(101))).await;
        assert_eq!(v["errors"][100]["message"], "and 1 more error");
        assert_eq!(v["status"], 400);
    }

    #[actix_web::test]
    async fn a_405_names_the_allowed_methods() {
        let r = ApiError::MethodNotAllowed(vec![Method::GET, Method::POST]).error_response();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers().get(header::ALLOW).unwrap(), "GET, POST");
        assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), "application/problem+json");
    }

    #[actix_web::test]
    async fn a_write_replicas_did_not_confirm_is_a_503_with_retry_after() {
        let e = ApiError::from(crate::storage::StorageError::NotReplicated { wanted: 1, got: 0 });
        let r = e.error_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), "application/problem+json");
        let v = body_of(e).await;
        assert_eq!(v["type"], "https://hcc-gateway.dev/problems/not-replicated");
        assert!(v["detail"].as_str().unwrap().contains("Idempotency-Key"));
        // A backend that is down is another problem, without the promise.
        let r = ApiError::from(crate::storage::StorageError::Unavailable("down".into())).error_response();
        assert_eq!(r.status(), 503);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
