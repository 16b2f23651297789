//! The body of a JSON request: content type checked (415), size limited while reading (413,
//! and a `Content-Length` over the limit is refused before a byte is read), parsed with
//! serde_json's nesting limit so a JSON bomb is a 400, not a stack overflow.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// The configured body limit, shared through app data.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The raw bytes of a JSON body, not yet parsed.
pub struct JsonBytes(pub web::Bytes);

impl JsonBytes {
    /// Parses into any type; syntax errors are 400 with serde's position but not the input.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.0).map_err(|e| {
            let what = if e.to_string().contains("recursion limit") {
                "JSON nested too deeply".to_string()
            } else {
                format!("malformed JSON at line {} column {}", e.line(), e.column())
            };
            ApiError::BadRequest(what)
        })
    }
}

/// The request's media type, lowercase, without parameters.
fn media_type(req: &HttpRequest) -> Option<String> {
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
