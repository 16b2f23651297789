//! `POST /v1/dossiers` and `POST /v1/dossiers/{MaHoSo}/progress` (role centre). The body is
//! parsed into the portal's types at this edge; a valid one is queued for the `dvcqg`
//! destination with `MaHoSo` as its ordering key, so a dossier's sync and its progress reach
//! the portal in the order they were accepted. 202 is sent only once the queue has it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::dvcqg::model::{Dossier, MaHoSo, Progress};
use hcc_adapters::dvcqg::{DESTINATION, KIND_PROGRESS, KIND_SYNC};
use hcc_config::Role;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::JsonBytes;
use super::problem::{ApiError, FieldError};
use crate::engine::EngineHandle;
use crate::storage::{Enqueued, Idempotency, NewMessage, now_ms};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/dossiers", web::post().to(post_dossier))
        .route("/v1/dossiers/{ma_ho_so}/progress", web::post().to(post_progress));
}

// ---- The portal's bodies as documented. This block, and the annotations of the two handlers
// below, move with the routes to the portal adapter's route descriptors.

/// The JSON Schemas of the portal bodies, which are read field by field (`Dossier::parse`,
/// `Progress::parse`).
pub(crate) fn body_schemas() -> Vec<(String, Value)> {
    let date = json!({"$ref": "#/components/schemas/PortalDate"});
    let number_or_digits = |schema: Value, digits: &str| json!({"oneOf": [schema, {"type": "string", "pattern": digits}], "description": "a number or a string of digits; sent to the portal as a string"});
    let list = json!({"type": ["array", "null"], "items": {"type": "object"}, "description": "null is read as an empty list"});
    vec![
        (
            "MaHoSo".into(),
            json!({"type": "string", "pattern": MA_HO_SO_PATTERN, "description": "1 to 100 letters, digits and . - _, at least one letter or digit, not . or .."}),
        ),
        (
            "PortalDate".into(),
            json!({"type": "string", "pattern": "^[0-9]{14}$", "description": "yyyyMMddHHmmss, Asia/Ho_Chi_Minh, a real calendar time, years 1900 to 2999"}),
        ),
        (
            "Dossier".into(),
            json!({
                "type": "object",
                "description": "One dossier as the portal's DongBoHoSoMC takes it. Unknown fields are passed through.",
                "required": ["MaHoSo", "MaTTHC", "TrangThaiHoSo", "NgayTiepNhan"],
                "additionalProperties": true,
                "properties": {
                    "MaHoSo": {"$ref": "#/components/schemas/MaHoSo"},
                    "MaTTHC": {"type": "string", "pattern": "\\S", "maxLength": 100},
                    "TrangThaiHoSo": number_or_digits(json!({"type": "integer", "minimum": 1, "maximum": 10}), "^0{0,16}([1-9]|10)$"),
                    "NgayTiepNhan": date, "NgayHenTra": date, "NgayTra": date, "NgayKetThucXuLy": date,
                    "LoaiDoiTuong": number_or_digits(json!({"type": "integer", "enum": [1, 2]}), "^0{0,17}[12]$"),
                    "HinhThuc": number_or_digits(json!({"type": "integer", "enum": [0, 1]}), "^0{0,17}[01]$"),
                    "TaiLieuNop": list, "DanhSachGiayToKetQua": list, "DanhSachTepDinhKemKhac": list, "DanhSachHoSoBoSung": list,
                    "DanhSachLePhi": {"type": ["array", "null"], "description": "null is read as an empty list", "items": {
                        "type": "object", "required": ["Gia"], "properties": {
                            "TenPhiLePhi": {"type": "string"}, "MaPhiLePhi": {"type": "string"},
                            "HinhThucThu": number_or_digits(json!({"type": "integer", "minimum": 0, "maximum": 99}), "^0{0,16}[0-9]{1,2}$"),
                            "Gia": {"type": "integer", "minimum": 0},
                            "LoaiPhiLePhi": number_or_digits(json!({"type": "integer", "enum": [1, 2]}), "^0{0,17}[12]$")
                        }
                    }}
                }
            }),
        ),
        (
            "Progress".into(),
            json!({
                "type": "object",
                "description": "One progress entry as CapNhatTienDoHoSoMC takes it; MaHoSo may be omitted (taken from the URL).",
                "required": ["TrangThai", "ThoiDiemXuLy"],
                "additionalProperties": true,
                "properties": {
                    "MaHoSo": {"$ref": "#/components/schemas/MaHoSo"},
                    "NguoiXuLy": {"type": "string"}, "ChucDanh": {"type": "string"}, "PhongBanXuLy": {"type": "string"}, "NoiDungXuLy": {"type": "string"},
                    "ThoiDiemXuLy": date, "NgayBatDau": date, "NgayKetThucTheoQuyDinh": date,
                    "TrangThai": number_or_digits(json!({"type": "integer", "minimum": 1, "maximum": 10}), "^0{0,16}([1-9]|10)$")
                }
            }),
        ),
        (
            "Accepted".into(),
            json!({
                "type": "object",
                "required": ["id", "kind", "ordering_key", "status"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "kind": {"type": "string", "enum": [KIND_SYNC, KIND_PROGRESS]},
                    "ordering_key": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued"]}
                }
            }),
        ),
    ]
}

/// `MaHoSo` as [`MaHoSo::parse`] takes it, less the rules a pattern cannot say simply (not a
/// dot segment, at least one letter or digit).
pub const MA_HO_SO_PATTERN: &str = "^[A-Za-z0-9._-]{1,100}$";

// ---- End of the portal's bodies.

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
async fn accept(
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

/// Queues one dossier for the portal (`DongBoHoSoMC`), in order with its progress.
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/dossiers", tag = "dossiers", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "The same key and body within the retention answer the first acceptance again")),
    request_body(content = ref("#/components/schemas/Dossier"), content_type = "application/json"),
    responses(
        (status = 202, description = "Queued; `Location` names the message", body = ref("#/components/schemas/Accepted"), content_type = "application/json",
            headers(("Location" = String, description = "/v1/messages/{id}"), ("Idempotent-Replayed" = String, description = "`true` when this is an earlier acceptance answered again"))),
        (status = 400), (status = 401), (status = 403),
        (status = 409, description = "This Idempotency-Key was used with a different body"),
        (status = 413), (status = 415), (status = 422),
        (status = 503, description = "The portal destination is not configured, or the queue backend is unavailable"),
    ))]
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

/// Queues one progress entry of a dossier for the portal (`CapNhatTienDoHoSoMC`).
///
/// Roles: centre.
#[utoipa::path(post, path = "/v1/dossiers/{MaHoSo}/progress", tag = "dossiers", security(("bearer" = [])),
    params(
        ("MaHoSo" = String, Path, pattern = "^[A-Za-z0-9._-]{1,100}$", description = "The dossier"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "The same key and body within the retention answer the first acceptance again"),
    ),
    request_body(content = ref("#/components/schemas/Progress"), content_type = "application/json"),
    responses(
        (status = 202, description = "Queued; `Location` names the message", body = ref("#/components/schemas/Accepted"), content_type = "application/json",
            headers(("Location" = String, description = "/v1/messages/{id}"), ("Idempotent-Replayed" = String, description = "`true` when this is an earlier acceptance answered again"))),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "The path does not name a dossier (an empty segment)"),
        (status = 409, description = "This Idempotency-Key was used with a different body"),
        (status = 413), (status = 415),
        (status = 422, description = "Invalid fields, or a MaHoSo in the path that is not one"),
        (status = 503, description = "The portal destination is not configured, or the queue backend is unavailable"),
    ))]
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
