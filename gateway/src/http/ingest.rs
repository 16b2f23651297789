//! The ingest routes: every route a registered destination declares
//! ([`hcc_adapters::registry::IngestRoute`]) is served here, the same way. The core does what
//! they share: the caller's key and the route's roles, the body's content type, size and JSON
//! syntax ([`JsonBytes`]), `Idempotency-Key`, queueing, and the 202 with `Location`; the route's
//! own `parse` turns the path parameters and the body into the ordering key and payload.
//!
//! The order of the checks is part of the API: 401, then 415/413 (while reading), 403, then
//! the route's 400/422, then 503 when the destination is not configured here, then the
//! `Idempotency-Key`'s 400, then 409 or 202. 202 is sent only once the queue has the message.

use std::fmt;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::registry::{IngestError, IngestRequest, IngestRoute};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::auth::Caller;
use super::body::JsonBytes;
use super::problem::ApiError;
use crate::engine::EngineHandle;
use crate::storage::{Enqueued, Idempotency, NewMessage, now_ms};

/// One ingest route and the destination (queue) it feeds.
pub type Route = (&'static str, &'static IngestRoute);

/// Each route's OpenAPI operation, for the document ([`super::openapi::ApiDocument`]).
pub fn operations(routes: &[Route]) -> Vec<super::operation::ExtraOperation> {
    routes
        .iter()
        .map(|(_, r)| super::operation::ExtraOperation {
            method: actix_web::http::Method::POST,
            path: r.openapi_path.to_string(),
            operation: (r.operation)(),
            schemas: Vec::new(),
        })
        .collect()
}

/// Registers each route as a `POST`.
pub fn routes(cfg: &mut web::ServiceConfig, routes: &[Route]) {
    for &(destination, route) in routes {
        cfg.route(
            route.path,
            web::post().to(
                move |req: HttpRequest, caller: Caller, engine: web::Data<EngineHandle>, path: web::Path<PathParams>, body: JsonBytes| {
                    ingest(destination, route, req, caller, engine, path.into_inner(), body)
                },
            ),
        );
    }
}

/// A route's path parameters by name, percent-decoded as `web::Path` decodes them (actix's own
/// path deserializer reads them), so a route sees what a handler taking `web::Path<String>`
/// saw.
pub struct PathParams(Vec<(String, String)>);

impl<'de> Deserialize<'de> for PathParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // actix gives parameter names as identifiers only, as for a struct's fields.
        struct Name(String);
        impl<'de> Deserialize<'de> for Name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl Visitor<'_> for Text {
                    type Value = Name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a path parameter's name")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name, E> {
                        Ok(Name(v.to_string()))
                    }
                }
                d.deserialize_identifier(Text)
            }
        }
        struct Params;
        impl<'de> Visitor<'de> for Params {
            type Value = PathParams;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("path parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathParams, A::Error> {
                let mut out = Vec::new();
                while let Some(Name(name)) = map.next_key()? {
                    out.push((name, map.next_value::<String>()?));
                }
                Ok(PathParams(out))
            }
        }
        d.deserialize_map(Params)
    }
}

/// How long idempotency keys are kept; set from `queue.idempotency_ttl_secs`.
#[derive(Clone, Copy)]
pub struct IdempotencyTtl(pub u64);

/// The `Idempotency-Key` header: optional, 1 to 255 visible ASCII characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(s.to_string()))
}

async fn ingest(
    destination: &'static str,
    route: &'static IngestRoute,
    req: HttpRequest,
    caller: Caller,
    engine: web::Data<EngineHandle>,
    path: PathParams,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(route.roles)?;
    let parsed = body.value();
    let malformed = match &parsed {
        Err(ApiError::BadRequest(why)) => why.clone(),
        Err(other) => other.to_string(),
        Ok(_) => String::new(),
    };
    let params: Vec<(&str, &str)> = path.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let request = IngestRequest::new(&params, parsed.as_ref().map_err(|_| malformed.as_str()));
    let accepted = (route.parse)(&request).map_err(|e| match e {
        IngestError::Malformed(why) => ApiError::BadRequest(why),
        IngestError::Invalid(errors) => ApiError::Validation(errors),
        IngestError::Unencodable => ApiError::Internal,
    })?;
    if !engine.has_destination(destination) {
        return Err(ApiError::NotConfigured(format!(
            "the {destination} destination is not configured on this gateway"
        )));
    }
    let warnings = catalogue_check(&req, accepted.procedure.as_deref()).await?;
    super::copies::queue(&req, &caller, &engine, route.kind, &accepted).await?;
    queue_and_answer(
        &req,
        &caller,
        &engine,
        ToQueue {
            destination,
            kind: route.kind,
            ordering_key: accepted.ordering_key,
            payload: accepted.payload,
            warnings,
        },
    )
    .await
}

/// The catalogue's word on the procedure a message names (`catalogue.check`): a warning for
/// the 202, a 422 on `/MaTTHC`, or nothing.
async fn catalogue_check(req: &HttpRequest, procedure: Option<&str>) -> Result<Vec<super::problem::FieldError>, ApiError> {
    let (Some(code), Some(cat)) = (procedure, req.app_data::<web::Data<std::sync::Arc<crate::catalogue::Catalogue>>>()) else {
        return Ok(Vec::new());
    };
    let Some(message) = crate::catalogue::complaint(cat.verdict(code).await) else {
        return Ok(Vec::new());
    };
    let error = super::problem::FieldError {
        field: "/MaTTHC".into(),
        message: message.into(),
    };
    match cat.mode() {
        crate::catalogue::CheckMode::Refuse => Err(ApiError::Validation(vec![error])),
        _ => Ok(vec![error]),
    }
}

/// A parsed message to queue, and what the 202 adds about it.
pub(crate) struct ToQueue<'a> {
    pub destination: &'a str,
    pub kind: &'static str,
    pub ordering_key: String,
    pub payload: Vec<u8>,
    /// What the gateway noticed but did not refuse (the catalogue check), for the 202.
    pub warnings: Vec<super::problem::FieldError>,
}

/// What every route that queues a message shares once the message is parsed: the
/// `Idempotency-Key` (400 when malformed, 409 when reused with another body), the queueing, and
/// the 202 with `Location` (and `Idempotent-Replayed` for a repeat).
pub(crate) async fn queue_and_answer(
    req: &HttpRequest,
    caller: &Caller,
    engine: &EngineHandle,
    msg: ToQueue<'_>,
) -> Result<HttpResponse, ApiError> {
    let ToQueue {
        destination,
        kind,
        ordering_key,
        payload,
        warnings,
    } = msg;
    let key = idempotency_key(req)?;
    let ttl = req.app_data::<web::Data<IdempotencyTtl>>().map_or(86_400, |t| t.0);
    let idem = key.map(|key| Idempotency {
        scope: format!("{kind}:{}", caller.name),
        key,
        fingerprint: hcc_signing::sha256_hex(&payload),
        ttl_secs: ttl,
    });
    let msg = NewMessage {
        kind: kind.into(),
        ordering_key: ordering_key.clone(),
        payload,
    };
    let (id, replayed) = match engine.queue.enqueue(destination, msg, idem.as_ref(), now_ms()).await? {
        Enqueued::Accepted(id) => (id, false),
        Enqueued::Replayed(id) => (id, true),
        Enqueued::Conflict => {
            return Err(ApiError::Conflict("this Idempotency-Key was used with a different body".into()));
        }
    };
    if !replayed {
        engine.wake(destination);
        tracing::info!(id = %id, kind, ordering_key, "accepted");
    }
    let mut resp = HttpResponse::Accepted();
    resp.insert_header((header::LOCATION, format!("/v1/messages/{id}")));
    if replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    let mut body = serde_json::json!({"id": id, "kind": kind, "ordering_key": ordering_key, "status": "queued"});
    if !warnings.is_empty() {
        body["warnings"] = serde_json::json!(warnings);
    }
    Ok(resp.json(body))
}
