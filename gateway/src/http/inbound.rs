//! The inbound routes: the sources' pushes (`POST /v1/inbound/dvcqg/dossiers`, one route per
//! source that pushes, from the registry), the stored files (`GET /v1/inbound/files/{id}`), the
//! centre's status for an inbound dossier (`POST /v1/inbound/dossiers/{MaHoSo}/status`), and
//! the operators' list and view (`GET /v1/inbound/dossiers`, `/v1/inbound/dossiers/{MaHoSo}`).
//!
//! A push is answered in its source's terms (`{"error_code", "message"}`), not with a problem
//! document: the portal reads `error_code`. The address and the key are checked before a byte
//! of the body is read.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::domain::MaHoSo;
use hcc_adapters::evidence::{self, Direction, Exchange, Label, Recorder, Subject};
use hcc_adapters::inbound::{InboundStatus, KIND_STATUS, PushOutcome, PushRefusal, status_payload};
use hcc_adapters::registry::Registry;
use hcc_config::Role;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::JsonBytes;
use super::problem::{ApiError, FieldError};
use crate::engine::EngineHandle;
use crate::evidence::Evidence;
use crate::inbound::{Inbound, Refused, TakeError, Taken};
use crate::storage::InboundRecord;
use crate::timefmt::rfc3339_ms;

pub fn routes(cfg: &mut web::ServiceConfig, registry: &Registry) {
    for kind in registry.sources() {
        if let Some(path) = kind.push_path {
            let id = kind.id;
            cfg.route(
                path,
                web::post().to(
                    move |req: HttpRequest,
                          payload: web::Payload,
                          inbound: web::Data<Arc<Inbound>>,
                          evidence: web::Data<Option<Arc<Evidence>>>| push(id, req, payload, inbound, evidence),
                ),
            );
        }
    }
    cfg.route("/v1/inbound/files/{id}", web::get().to(get_file))
        .route("/v1/inbound/dossiers", web::get().to(list))
        .route("/v1/inbound/dossiers/{MaHoSo}", web::get().to(get_one))
        .route("/v1/inbound/dossiers/{MaHoSo}/status", web::post().to(post_status));
}

/// Each push route's OpenAPI operation, for the document.
pub(crate) fn push_operations(registry: &Registry) -> Vec<super::operation::ExtraOperation> {
    registry
        .sources()
        .iter()
        .filter_map(|k| k.push_path.map(|p| (k.id, p)))
        .map(|(id, path)| super::operation::ExtraOperation {
            method: actix_web::http::Method::POST,
            path: path.to_string(),
            operation: push_operation(id),
            schemas: Vec::new(),
        })
        .collect()
}

fn push_operation(source: &str) -> Value {
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["error_code", "message"],
                "properties": {
                    "error_code": {"type": "integer", "enum": [-1, 0, 1], "description": "0 created, 1 duplicate, -1 error"},
                    "message": {"type": "string", "description": "<MaHoSo>|<what happened>"}
                }
            }}}
        })
    };
    json!({
        "tags": ["inbound"],
        "summary": format!("A dossier pushed down by {source}"),
        "description": "Taken only from an address in inbound.allowed_ips and with the key inbound.dvcqg_key in the header \
            inbound.key_header (default X-DVCQG-Key), both checked before the body is read. Idempotent on MaHoSo. Answered \
            in the portal's terms: error_code 0 created, 1 duplicate, -1 error. Files are at most inbound.max_file_bytes, \
            and must be PDF, PNG, JPEG, TIFF or Office documents by their first bytes. See docs/inbound.md.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {
                "MaHoSo": {"type": "string"}, "MaHoSoQG": {"type": "string"}, "MaTTHC": {"type": "string"},
                "TenTepDonDangKy": {"type": "string"}, "TepDonDangKy": {"type": "string", "description": "base64"},
                "URLTepDangKy": {"type": "string"},
                "TaiLieuNop": {"type": "array", "items": {"type": "object", "properties": {
                    "TenTepDinhKem": {"type": "string"}, "Base64": {"type": "string"}
                }}}
            }
        }}}},
        "responses": {
            "200": answer("Created (0) or a duplicate (1)"),
            "400": answer("Not a JSON object"),
            "401": answer("Missing or wrong key"),
            "403": answer("Not from an allowed address, or pushes are off"),
            "408": answer("The body did not arrive in time"),
            "413": answer("Body over inbound.max_body_bytes"),
            "415": answer("Not application/json"),
            "422": answer("Invalid fields, or a file too large, of a type not taken, or behind a URL off the portal's host"),
            "502": answer("A file could not be fetched from the portal's file service"),
            "503": answer("Storage down, the source not configured, or no centre webhook to hand the dossier to")
        }
    })
}

/// The answer to a push: the source's own body, with an HTTP status that says the same.
fn answer(inbound: &Inbound, source: &str, status: StatusCode, code: Option<&str>, outcome: PushOutcome) -> HttpResponse {
    let body = match inbound.source(source) {
        Some(s) => s.push_reply(code, &outcome),
        None => Value::Null,
    };
    let body = if body.is_null() {
        // The source is not built here; the portal's own shape still says what happened.
        let (n, text) = match &outcome {
            PushOutcome::Created => (0, "created".to_string()),
            PushOutcome::Duplicate => (1, "duplicate".to_string()),
            PushOutcome::Error { reason } => (-1, reason.clone()),
        };
        json!({"error_code": n, "message": format!("{}|{text}", code.unwrap_or(""))})
    } else {
        body
    };
    HttpResponse::build(status)
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .json(body)
}

fn error(reason: impl Into<String>) -> PushOutcome {
    PushOutcome::Error { reason: reason.into() }
}

async fn push(
    source_id: &'static str,
    req: HttpRequest,
    payload: web::Payload,
    inbound: web::Data<Arc<Inbound>>,
    evidence: web::Data<Option<Arc<Evidence>>>,
) -> HttpResponse {
    let recorder = crate::evidence::recorder(evidence.get_ref());
    let mut seen = PushSeen::default();
    let resp = take_push(source_id, &req, payload, &inbound, recorder.as_ref(), &mut seen).await;
    let Some(evidence) = evidence.get_ref() else { return resp };
    // The push as it came, by digest only: a citizen's dossier is not copied into the log.
    let (resp, answer) = super::evidence::with_body(resp).await;
    let exchange = Exchange {
        request_sha256: seen.body_sha256,
        request_len: seen.body_len,
        ..Exchange::new(Direction::In, &Label::new(source_id, "push"), b"", Some(&answer)).status(resp.status().as_u16())
    };
    let subject = Subject {
        ordering_key: seen.code,
        ..Subject::default()
    };
    let outcome = if resp.status().is_success() { "taken" } else { "refused" };
    evidence.record(&subject, exchange, outcome);
    resp
}

/// What a push showed, for its evidence record.
#[derive(Default)]
struct PushSeen {
    body_sha256: Option<[u8; 32]>,
    body_len: usize,
    code: Option<String>,
}

async fn take_push(
    source_id: &'static str,
    req: &HttpRequest,
    mut payload: web::Payload,
    inbound: &Inbound,
    recorder: Option<&Arc<dyn Recorder>>,
    seen: &mut PushSeen,
) -> HttpResponse {
    let peer = req.peer_addr().map(|a| a.ip());
    match inbound.gate.admit(source_id, peer, req.headers()) {
        Ok(()) => {}
        Err(Refused::Address) => {
            tracing::warn!(source = source_id, peer = ?peer, "inbound push refused: address not allowed (or pushes are off)");
            return answer(
                inbound,
                source_id,
                StatusCode::FORBIDDEN,
                None,
                error("this address may not push dossiers here"),
            );
        }
        Err(Refused::Key) => {
            tracing::warn!(source = source_id, peer = ?peer, "inbound push refused: missing or wrong key");
            return answer(inbound, source_id, StatusCode::UNAUTHORIZED, None, error("missing or wrong key"));
        }
    }
    let Some(source) = inbound.source(source_id).cloned() else {
        return answer(
            inbound,
            source_id,
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            error("this source is not configured here"),
        );
    };
    if !super::body::is_json(req) {
        return answer(
            inbound,
            source_id,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            error("the body must be application/json"),
        );
    }
    let body = match super::body::read_at_most(req, &mut payload, inbound.max_body_bytes).await {
        Ok(b) => {
            if recorder.is_some() {
                seen.body_sha256 = Some(hcc_core::sha256(&b));
                seen.body_len = b.len();
            }
            b
        }
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            return answer(inbound, source_id, status, None, error(e.to_string()));
        }
    };
    let dossier = match source.parse_push(&body) {
        Ok(d) => d,
        Err(PushRefusal::Malformed(why)) => return answer(inbound, source_id, StatusCode::BAD_REQUEST, None, error(why)),
        Err(PushRefusal::Invalid { code, errors }) => {
            let fields: Vec<String> = errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect();
            return answer(
                inbound,
                source_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                code.as_deref(),
                error(format!("invalid fields: {}", fields.join("; "))),
            );
        }
    };
    drop(body);
    let code = dossier.code.to_string();
    seen.code = Some(code.clone());
    // The files fetched from the portal while the dossier is taken are exchanges of their own.
    let (taken, noted) = evidence::scope(
        recorder,
        Subject {
            ordering_key: Some(code.clone()),
            ..Subject::default()
        },
        inbound.take(source.as_ref(), dossier),
    )
    .await;
    noted.settle(if taken.is_ok() { "taken" } else { "not taken" });
    match taken {
        Ok(Taken::Created(_)) => answer(inbound, source_id, StatusCode::OK, Some(&code), PushOutcome::Created),
        Ok(Taken::Duplicate) => answer(inbound, source_id, StatusCode::OK, Some(&code), PushOutcome::Duplicate),
        Err(e) => {
            let status = match &e {
                TakeError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                TakeError::Fetch(_) => StatusCode::BAD_GATEWAY,
                TakeError::NoCentre | TakeError::Storage(_) | TakeError::Files(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            if status.is_server_error() {
                tracing::error!(source = source_id, ma_ho_so = %code, error = %crate::redact::Escaped(&e.to_string()), "inbound push not taken");
            }
            answer(inbound, source_id, status, Some(&code), error(e.to_string()))
        }
    }
}

/// A stored file of an inbound dossier, byte for byte.
///
/// Roles: centre.
#[utoipa::path(get, path = "/v1/inbound/files/{id}", tag = "inbound", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "The file's id, from the dossier.received webhook")),
    responses(
        (status = 200, description = "The file, served as its first bytes say it is", content(
            ("application/pdf"), ("image/png"), ("image/jpeg"), ("image/tiff"), ("application/octet-stream")
        )),
        (status = 401), (status = 403),
        (status = 404, description = "No such file"),
        (status = 503),
    ))]
async fn get_file(caller: Caller, inbound: web::Data<Arc<Inbound>>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let Some((file, bytes)) = inbound.files.get(&id).await.map_err(|e| {
        tracing::error!(error = %e, "inbound file store unreadable");
        ApiError::DependencyUnavailable("the file store cannot be read".into())
    })?
    else {
        return Err(ApiError::NotFound("no such file".into()));
    };
    let disposition = header::ContentDisposition {
        disposition: header::DispositionType::Attachment,
        parameters: vec![header::DispositionParam::FilenameExt(header::ExtendedValue {
            charset: header::Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: file.name.into_bytes(),
        })],
    };
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header(disposition)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(bytes))
}

fn path_code(raw: &str) -> Result<MaHoSo, ApiError> {
    MaHoSo::parse(raw).map_err(|message| {
        ApiError::InvalidParameters(vec![FieldError {
            field: "MaHoSo (path)".into(),
            message,
        }])
    })
}

/// The centre's status of an inbound dossier, queued back to the counterpart it came from, in
/// order per dossier.
///
/// Roles: centre. The body is in the portal's vocabulary; for the portal it goes as
/// `DongBoTrangThaiHoSo` (`type: "2"`), for the link-up as its status call with the mapped
/// `trangThai`. Takes `Idempotency-Key` as every queueing route does.
#[utoipa::path(post, path = "/v1/inbound/dossiers/{MaHoSo}/status", tag = "inbound", security(("bearer" = [])),
    params(
        ("MaHoSo" = String, Path, pattern = "^[A-Za-z0-9._-]{1,100}$", description = "The inbound dossier's code"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters"),
    ),
    request_body(content = InboundStatusBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued; Location points at the message", body = QueuedStatus),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "The gateway never took an inbound dossier of this code"),
        (status = 409), (status = 413), (status = 415), (status = 422),
        (status = 503, description = "Storage down, or the dossier's source is not configured here"),
    ))]
async fn post_status(
    req: HttpRequest,
    caller: Caller,
    engine: web::Data<EngineHandle>,
    inbound: web::Data<Arc<Inbound>>,
    code: web::Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre])?;
    let code = path_code(&code)?;
    let status = InboundStatus::parse(&body.value()?).map_err(ApiError::Validation)?;
    let Some(record) = inbound.book.get(code.as_str()).await? else {
        return Err(ApiError::NotFound("the gateway never took an inbound dossier of this code".into()));
    };
    if !engine.has_destination(&record.source) {
        return Err(ApiError::NotConfigured(format!(
            "the {} destination, where this dossier came from, is not configured on this gateway",
            record.source
        )));
    }
    let link = record.link.as_object().cloned().unwrap_or_default();
    let payload = serde_json::to_vec(&status_payload(&status, &link)).map_err(|_| ApiError::Internal)?;
    let msg = super::ingest::ToQueue {
        destination: &record.source,
        kind: KIND_STATUS,
        ordering_key: code.to_string(),
        payload,
        warnings: Vec::new(),
    };
    super::ingest::queue_and_answer(&req, &caller, &engine, msg).await
}

/// The 202 of a queued status.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a description only: the answer is written by ingest::queue_and_answer")]
pub struct QueuedStatus {
    #[schema(format = "uuid")]
    id: String,
    #[schema(example = "dossier.status")]
    kind: String,
    ordering_key: String,
    #[schema(example = "queued")]
    status: String,
}

/// The centre's status of an inbound dossier (the portal's vocabulary).
#[derive(ToSchema)]
#[allow(
    dead_code,
    non_snake_case,
    reason = "a description only, in the portal's field names: the body is read by InboundStatus::parse"
)]
pub struct InboundStatusBody {
    /// The portal's status code, 1 to 10, as a number or a string of digits.
    #[schema(value_type = String, example = "4")]
    TrangThai: String,
    /// What was done, 1 to 2,000 characters.
    NoiDung: String,
    /// When, `yyyyMMddHHmmss` (a real time).
    #[schema(pattern = "^[0-9]{14}$", example = "20261207093000")]
    NgayXuLy: String,
    MaHoSoDonVi: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    TaiLieuXuLy: Option<Vec<Value>>,
    NguoiXuLy: Option<String>,
    ChucDanh: Option<String>,
    PhongBanXuLy: Option<String>,
}

/// An inbound dossier as operators see it.
#[derive(Serialize, ToSchema)]
pub struct InboundView {
    #[serde(rename = "MaHoSo")]
    pub ma_ho_so: String,
    /// Where it came from: `dvcqg` (the portal's push) or `dvclt` (the link-up).
    pub source: String,
    #[serde(rename = "MaTTHC")]
    pub ma_tthc: Option<String>,
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The `dossier.received` webhook's message.
    #[schema(format = "uuid")]
    pub webhook_id: String,
    /// A polled source waits for an acknowledgement once the centre has the dossier.
    pub needs_acknowledgement: bool,
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
    /// `{id, name, content_type, size, sha256}` of each file.
    #[schema(value_type = Vec<Object>)]
    pub files: Value,
}

impl From<InboundRecord> for InboundView {
    fn from(r: InboundRecord) -> Self {
        InboundView {
            ma_ho_so: r.code,
            source: r.source,
            ma_tthc: r.procedure,
            received_at: rfc3339_ms(r.received_at),
            webhook_id: r.message_id,
            needs_acknowledgement: r.needs_ack,
            acknowledged_at: r.acked_at.map(rfc3339_ms),
            files: r.files,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InboundList {
    pub dossiers: Vec<InboundView>,
    /// How many there are (of the source asked for).
    pub total: u64,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this source's (`dvcqg`, `dvclt`).
    #[param(pattern = "^[a-z0-9_-]{1,40}$")]
    source: Option<String>,
}

/// Inbound dossiers, newest first.
///
/// Roles: centre, operator, admin.
#[utoipa::path(get, path = "/v1/inbound/dossiers", tag = "inbound", security(("bearer" = [])),
    params(ListQuery, super::PageParams),
    responses(
        (status = 200, description = "The dossiers", body = InboundList),
        (status = 400), (status = 401), (status = 403), (status = 503),
    ))]
async fn list(
    caller: Caller,
    inbound: web::Data<Arc<Inbound>>,
    page: super::Page,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let source = q.source.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = source
        && !(s.len() <= 40
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
    {
        return Err(ApiError::InvalidParameters(vec![FieldError {
            field: "source (query)".into(),
            message: "must be a source's id (lowercase letters, digits, _ and -)".into(),
        }]));
    }
    let records = inbound.book.list(source, page.offset, page.limit).await?;
    let total = inbound.book.count(source).await?;
    Ok(HttpResponse::Ok().json(InboundList {
        dossiers: records.into_iter().map(InboundView::from).collect(),
        total,
    }))
}

/// One inbound dossier: where it came from, its files, and whether its source was told.
///
/// Roles: centre, operator, admin. Its messages (the webhook, the statuses sent back up) are in
/// `GET /v1/dossiers/{MaHoSo}`.
#[utoipa::path(get, path = "/v1/inbound/dossiers/{MaHoSo}", tag = "inbound", security(("bearer" = [])),
    params(("MaHoSo" = String, Path, pattern = "^[A-Za-z0-9._-]{1,100}$", description = "The dossier's code")),
    responses(
        (status = 200, description = "The dossier", body = InboundView),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No inbound dossier of this code"),
        (status = 503),
    ))]
async fn get_one(caller: Caller, inbound: web::Data<Arc<Inbound>>, code: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let code = path_code(&code)?;
    match inbound.book.get(code.as_str()).await? {
        Some(r) => Ok(HttpResponse::Ok().json(InboundView::from(r))),
        None => Err(ApiError::NotFound("no inbound dossier of this code".into())),
    }
}
