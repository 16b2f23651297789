//! Every error the API gives is an RFC 9457 `application/problem+json` document: `type`,
//! `title`, `status`, `detail`, and `errors` with field paths for validation. Nothing echoes a
//! payload back, and internal errors say only that they happened.

use actix_web::http::StatusCode;
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
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the queue backend is unavailable; nothing was accepted, try again")]
    Unavailable,
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    Upstream(String),
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    #[error("an internal error occurred")]
    Internal,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden => ("forbidden", "Forbidden"),
            ApiError::BadRequest(_) => ("malformed-request", "Malformed request"),
            ApiError::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::Validation(_) => ("validation", "Validation failed"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::Unavailable => ("backend-unavailable", "Service unavailable"),
            ApiError::NotConfigured(_) => ("not-configured", "Service unavailable"),
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
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable | ApiError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title) = self.slug_and_title();
        let status = self.status_code();
        let kind = format!("https://hcc-gateway.dev/problems/{slug}");
        let body = Problem {
            kind: &kind,
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                ApiError::Validation(e) => Some(e),
                _ => None,
            },
        };
        let mut resp = HttpResponse::build(status);
        resp.content_type("application/problem+json");
        if matches!(self, ApiError::Unauthorized) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        resp.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

impl From<crate::engine::queue::QueueError> for ApiError {
    fn from(e: crate::engine::queue::QueueError) -> Self {
        tracing::error!(error = %e, "queue backend error");
        match e {
            crate::engine::queue::QueueError::Unavailable(_) => ApiError::Unavailable,
            crate::engine::queue::QueueError::Corrupt(_) => ApiError::Internal,
        }
    }
}
