//! `POST /v1/dossiers` and `POST /v1/dossiers/{MaHoSo}/progress` (role centre). The body is
//! parsed into the portal's types at this edge; a valid one is queued for the `dvcqg`
//! destination with `MaHoSo` as its ordering key, so a dossier's sync and its progress reach
//! the portal in the order they were accepted. 202 is sent only once the queue has it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::dvcqg::model::{Dossier, MaHoSo, Progress};
use hcc_adapters::dvcqg::{DESTINATION, KIND_PROGRESS, KIND_SYNC};
use hcc_config::Role;
use serde_json::Value;

use super::auth::Caller;
use super::body::JsonBytes;
use super::problem::{ApiError, FieldError};
use crate::engine::EngineHandle;
use crate::storage::{Enqueued, Idempotency, NewMessage, now_ms};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/dossiers", web::post().to(post_dossier))
        .route("/v1/dossiers/{ma_ho_so}/progress", web::post().to(post_progress));
}

/// How long idempotency keys are kept; set from `queue.idempotency_ttl_secs`.
#[derive(Clone, Copy)]
pub struct IdempotencyTtl(pub u64);

/// The `Idempotency-Key` header: optional, 1 to 255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
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

/// Accepts one message for the portal: the shared tail of both endpoints.
pub(crate) async fn accept(
    req: &HttpRequest,
    caller: &Caller,
    engine: &EngineHandle,
    destination: &str,
    kind: &str,
    ordering_key: &str,
    object: &serde_json::Map<String, Value>,
) -> Result<HttpResponse, ApiError> {
    if !engine.has_destination(destination) {
        return Err(ApiError::NotConfigured(format!(
            "the {destination} destination is not configured on this gateway"
        )));
    }
    let key = idempotency_key(req)?;
    // serde_json's map is ordered by key, so the fingerprint ignores field order and spacing:
    // the same dossier sent twice is the same body.
    let payload = serde_json::to_vec(object).map_err(|_| ApiError::Internal)?;
    let ttl = req.app_data::<web::Data<IdempotencyTtl>>().map_or(86_400, |t| t.0);
    let idem = key.map(|key| Idempotency {
        scope: format!("{kind}:{}", caller.name),
        key,
        fingerprint: hcc_signing::sha256_hex(&payload),
        ttl_secs: ttl,
    });
    let msg = NewMessage {
        kind: kind.into(),
        ordering_key: ordering_key.into(),
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
    Ok(resp.json(serde_json::json!({"id": id, "kind": kind, "ordering_key": ordering_key, "status": "queued"})))
}

async fn post_dossier(
    req: HttpRequest,
    caller: Caller,
    engine: web::Data<EngineHandle>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let value = body.value()?;
    let dossier = Dossier::parse(&value).map_err(ApiError::Validation)?;
    accept(
        &req,
        &caller,
        &engine,
        DESTINATION,
        KIND_SYNC,
        dossier.ma_ho_so.as_str(),
        &dossier.raw,
    )
    .await
}

async fn post_progress(
    req: HttpRequest,
    caller: Caller,
    engine: web::Data<EngineHandle>,
    path: web::Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let ma = MaHoSo::parse(&path.into_inner()).map_err(|m| {
        ApiError::Validation(vec![FieldError {
            field: "MaHoSo (path)".into(),
            message: m,
        }])
    })?;
    let value = body.value()?;
    let progress = Progress::parse(&value, &ma).map_err(ApiError::Validation)?;
    accept(
        &req,
        &caller,
        &engine,
        DESTINATION,
        KIND_PROGRESS,
        progress.ma_ho_so.as_str(),
        &progress.raw,
    )
    .await
}
