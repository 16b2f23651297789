//! The body of a JSON request: content type checked (415), size limited while reading (413,
//! and a `Content-Length` over the limit is refused before a byte is read), parsed with
//! serde_json's nesting limit so a JSON bomb is a 400, not a stack overflow.
//!
//! Bodies are parsed into a [`Value`] only, never straight into a typed struct: serde's type
//! errors quote the offending value (`invalid type: string "001203004567"`) and cannot name
//! where it was. Handlers read the value field by field (`hcc_adapters::fields`), which names
//! every problem by JSON Pointer and quotes nothing.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::problem::{ApiError, FieldError};

/// The configured body limit, shared through app data.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The raw bytes of a JSON body, not yet parsed.
pub struct JsonBytes(pub web::Bytes);

impl JsonBytes {
    /// The body as a JSON value; see [`json_value`].
    pub fn value(&self) -> Result<Value, ApiError> {
        json_value(&self.0)
    }
}

/// Parses a JSON document; a syntax error is a 400 with serde's position but not the input.
pub(crate) fn json_value(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.to_string().contains("recursion limit") {
            "JSON nested too deeply".to_string()
        } else {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        };
        ApiError::BadRequest(what)
    })
}

/// The value as an object that has no members but `allowed`. An unknown member is reported
/// without its name, which is the caller's text.
pub(crate) fn object_of<'a>(v: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::Validation(vec![FieldError {
            field: String::new(),
            message: "the body must be a JSON object".into(),
        }]));
    };
    let unknown = obj.keys().filter(|k| !allowed.contains(&k.as_str())).count();
    if unknown > 0 {
        return Err(ApiError::Validation(vec![FieldError {
            field: String::new(),
            message: format!("{unknown} unknown member(s); the members are {}", allowed.join(", ")),
        }]));
    }
    Ok(obj)
}

/// The request's media type, lowercase, without parameters.
pub(crate) fn media_type(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(actix_web::http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

pub(crate) fn is_json(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| m == "application/json")
}

pub(crate) fn is_xml(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|m| m == "application/xml" || m == "text/xml" || m.ends_with("+xml"))
}

pub(crate) async fn read_limited<S, E>(req: &HttpRequest, payload: &mut S) -> Result<web::Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + Unpin,
{
    let limit = req.app_data::<web::Data<BodyLimit>>().map(|l| l.0).unwrap_or(1024 * 1024);
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl FromRequest for JsonBytes {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json(&req) {
                return Err(ApiError::UnsupportedMediaType("application/json"));
            }
            Ok(JsonBytes(read_limited(&req, &mut payload).await?))
        })
    }
}
