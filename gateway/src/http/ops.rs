//! The operators' API: queue statistics per destination, dead letters (list, replay one or
//! all, discard), and pause/resume. Operators read; only admins act.

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_adapters::fields::{Fields, text};
use hcc_config::Role;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{is_json, json_value, object_of, read_limited};
use super::problem::ApiError;
use super::{MessageView, Page};
use crate::engine::EngineHandle;
use crate::engine::breaker::BreakerState;
use crate::monitoring::Monitoring;
use crate::storage::{QueueStats, now_ms};

const READ: &[Role] = &[Role::Operator, Role::Admin];
const ACT: &[Role] = &[Role::Admin];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/queues", web::get().to(list_queues))
        .route("/v1/queues/history", web::get().to(history))
        .route("/ops", web::get().to(dashboard_page))
        .route("/ops/app.js", web::get().to(dashboard_script))
        .route("/ops/style.css", web::get().to(dashboard_style))
        .route("/v1/queues/{name}/dead", web::get().to(list_dead))
        // A resource of its own, ahead of `/dead/{id}`: another method on it is a 405, not a
        // discard of a dead letter called `replay`.
        .service(
            web::resource("/v1/queues/{name}/dead/replay")
                .route(web::post().to(replay_all))
                .default_service(web::to(super::not_found)),
        )
        .route("/v1/queues/{name}/dead/{id}/replay", web::post().to(replay_one))
        .route("/v1/queues/{name}/dead/{id}", web::delete().to(discard_one))
        .route("/v1/queues/{name}/pause", web::post().to(pause))
        .route("/v1/queues/{name}/resume", web::post().to(resume));
}

#[derive(Serialize, ToSchema)]
#[schema(as = Queue)]
pub struct QueueView {
    pub name: String,
    pub destination: String,
    #[serde(flatten)]
    pub stats: QueueStats,
    /// This process's circuit breaker for the destination.
    pub breaker: Option<BreakerState>,
}

#[derive(Serialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueView>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    pub interval_secs: u64,
    /// Oldest first, the last hour at most.
    pub samples: Vec<crate::monitoring::Sample>,
}

#[derive(Serialize, ToSchema)]
pub struct DeadList {
    pub queue: String,
    pub dead: Vec<MessageView>,
}

/// What became of one dead letter.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterAction {
    pub id: String,
    /// `queued` (replayed) or `discarded`.
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    pub replayed: usize,
    pub ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PausedState {
    pub queue: String,
    pub paused: bool,
}

/// The body [`ReplayFilter::parse`] reads.
pub(crate) fn body_schemas() -> Vec<(String, Value)> {
    vec![(
        "ReplayFilter".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "kind": {"type": "string", "description": "only dead letters of this kind"},
                "error_contains": {"type": "string", "description": "only dead letters whose last error contains this text"}
            }
        }),
    )]
}

pub async fn queue_views(engine: &EngineHandle) -> Result<Vec<QueueView>, ApiError> {
    let now = now_ms();
    let mut out = Vec::new();
    for name in engine.destinations() {
        let stats = engine.queue.stats(name, now).await?;
        out.push(QueueView {
            name: name.to_string(),
            destination: engine.destination_of(name).unwrap_or(name).to_string(),
            stats,
            breaker: engine.breaker_state(name),
        });
    }
    Ok(out)
}

/// Each destination's queue: depths, age of the oldest ready message, pause and breaker.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/queues", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "The queues", body = QueueList), (status = 401), (status = 403), (status = 503)))]
async fn list_queues(caller: Caller, engine: web::Data<EngineHandle>) -> Result<HttpResponse, ApiError> {
    caller.require(READ)?;
    Ok(HttpResponse::Ok().json(QueueList {
        queues: queue_views(&engine).await?,
    }))
}

/// Queue depths sampled by this process over the last hour, for the dashboard.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/queues/history", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "The samples", body = HistoryView), (status = 401), (status = 403)))]
async fn history(caller: Caller, history: web::Data<crate::monitoring::History>) -> Result<HttpResponse, ApiError> {
    caller.require(READ)?;
    Ok(HttpResponse::Ok().json(HistoryView {
        interval_secs: crate::monitoring::HISTORY_EVERY.as_secs(),
        samples: history.samples(),
    }))
}

/// The dashboard is three static files compiled into the binary: nothing comes from the
/// internet, and the policy header says so to the browser.
fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// The operators' dashboard (it asks for a key itself).
#[utoipa::path(get, path = "/ops", tag = "operations", responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn dashboard_page() -> HttpResponse {
    asset("text/html; charset=utf-8", include_str!("../../ops/index.html"))
}

/// The dashboard's script.
#[utoipa::path(get, path = "/ops/app.js", tag = "operations", responses((status = 200, description = "The script", content_type = "text/javascript", body = String)))]
async fn dashboard_script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("../../ops/app.js"))
}

/// The dashboard's style sheet.
#[utoipa::path(get, path = "/ops/style.css", tag = "operations", responses((status = 200, description = "The style sheet", content_type = "text/css", body = String)))]
async fn dashboard_style() -> HttpResponse {
    asset("text/css; charset=utf-8", include_str!("../../ops/style.css"))
}

fn known<'a>(engine: &EngineHandle, name: &'a str) -> Result<&'a str, ApiError> {
    if engine.has_destination(name) {
        Ok(name)
    } else {
        // The name is the caller's text: not repeated back.
        Err(ApiError::NotFound("no queue with this name".into()))
    }
}

/// A page of a queue's dead letters.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/queues/{name}/dead", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination, e.g. `dvcqg`"), super::PageParams),
    responses(
        (status = 200, description = "The dead letters", body = DeadList),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No queue with this name"),
        (status = 503),
    ))]
async fn list_dead(caller: Caller, engine: web::Data<EngineHandle>, name: web::Path<String>, page: Page) -> Result<HttpResponse, ApiError> {
    caller.require(READ)?;
    let name = known(&engine, &name)?;
    let records = engine.queue.list_dead(name, page.offset, page.limit).await?;
    Ok(HttpResponse::Ok().json(DeadList {
        queue: name.to_string(),
        dead: records.into_iter().map(MessageView::from).collect(),
    }))
}

/// Queues one dead letter again.
///
/// Roles: admin.
#[utoipa::path(post, path = "/v1/queues/{name}/dead/{id}/replay", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination"), ("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "Queued again", body = DeadLetterAction),
        (status = 401), (status = 403),
        (status = 404, description = "No queue with this name, or no dead letter with this id"),
        (status = 503),
    ))]
async fn replay_one(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ACT)?;
    let (name, id) = path.into_inner();
    let name = known(&engine, &name)?;
    if !engine.queue.replay(name, &id, now_ms()).await? {
        return Err(ApiError::NotFound("no dead letter with this id".into()));
    }
    engine.wake(name);
    tracing::info!(operator = %caller.name, queue = name, id = %id, "dead letter replayed");
    monitoring.audit(&caller.name, "dead.replay", &format!("{name}/{id}"), "");
    Ok(HttpResponse::Ok().json(DeadLetterAction { id, status: "queued" }))
}

#[derive(Default)]
struct ReplayFilter {
    /// Only dead letters whose last error contains this text.
    error_contains: Option<String>,
    /// Only dead letters of this kind.
    kind: Option<String>,
}

impl ReplayFilter {
    /// `{"kind": ..., "error_contains": ...}`, both optional strings, nothing else; read field
    /// by field so a wrong type is named by its pointer and not quoted.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let v = json_value(body)?;
        let obj = object_of(&v, &["kind", "error_contains"])?;
        let mut errors = Vec::new();
        let mut f = Fields::new(obj, String::new(), &mut errors);
        let filter = ReplayFilter {
            error_contains: f.optional("error_contains", text),
            kind: f.optional("kind", text),
        };
        if errors.is_empty() {
            Ok(filter)
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// An empty body replays every dead letter; a filter that does not parse replays none, since
/// guessing would replay too much.
/// Queues every dead letter again, or those the filter picks.
///
/// An empty body replays every dead letter; a filter that does not parse replays none.
///
/// Roles: admin.
#[utoipa::path(post, path = "/v1/queues/{name}/dead/replay", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination")),
    request_body(content = ref("#/components/schemas/ReplayFilter"), content_type = "application/json", description = "Optional filter"),
    responses(
        (status = 200, description = "The ones queued again", body = Replayed),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No queue with this name"),
        (status = 413), (status = 415), (status = 422), (status = 503),
    ))]
async fn replay_all(
    req: HttpRequest,
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    name: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(ACT)?;
    let name = known(&engine, &name)?;
    let body = read_limited(&req, &mut payload).await?;
    let filter: ReplayFilter = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayFilter::default()
    } else if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    } else {
        ReplayFilter::parse(&body)?
    };
    let mut replayed = Vec::new();
    // Pages from the start each time: replayed letters leave the list.
    let mut offset = 0;
    loop {
        let page = engine.queue.list_dead(name, offset, 500).await?;
        if page.is_empty() {
            break;
        }
        let mut kept = 0;
        for r in page {
            let kind_ok = filter.kind.as_deref().is_none_or(|k| k == r.kind);
            let err_ok = filter
                .error_contains
                .as_deref()
                .is_none_or(|t| r.last_error.as_deref().unwrap_or("").contains(t));
            if kind_ok && err_ok && engine.queue.replay(name, &r.id, now_ms()).await? {
                replayed.push(r.id);
            } else {
                kept += 1;
            }
        }
        offset += kept;
    }
    engine.wake(name);
    tracing::info!(operator = %caller.name, queue = name, count = replayed.len(), "dead letters replayed");
    monitoring.audit(&caller.name, "dead.replay_all", name, &format!("{} replayed", replayed.len()));
    Ok(HttpResponse::Ok().json(Replayed {
        replayed: replayed.len(),
        ids: replayed,
    }))
}

/// Discards one dead letter (kept for the retention time, then gone); what waited behind it
/// in its ordering key goes on.
///
/// Roles: admin.
#[utoipa::path(delete, path = "/v1/queues/{name}/dead/{id}", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination"), ("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "Discarded", body = DeadLetterAction),
        (status = 401), (status = 403),
        (status = 404, description = "No queue with this name, or no dead letter with this id"),
        (status = 503),
    ))]
async fn discard_one(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ACT)?;
    let (name, id) = path.into_inner();
    let name = known(&engine, &name)?;
    if !engine.queue.discard(name, &id, now_ms(), engine.retention_secs(name)).await? {
        return Err(ApiError::NotFound("no dead letter with this id".into()));
    }
    engine.wake(name);
    tracing::info!(operator = %caller.name, queue = name, id = %id, "dead letter discarded");
    monitoring.audit(&caller.name, "dead.discard", &format!("{name}/{id}"), "");
    Ok(HttpResponse::Ok().json(DeadLetterAction { id, status: "discarded" }))
}

async fn set_paused(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    name: web::Path<String>,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    caller.require(ACT)?;
    let name = known(&engine, &name)?;
    engine.queue.set_paused(name, paused).await?;
    if !paused {
        engine.wake(name);
    }
    tracing::info!(operator = %caller.name, queue = name, paused, "queue paused state changed");
    monitoring.audit(&caller.name, if paused { "queue.pause" } else { "queue.resume" }, name, "");
    Ok(HttpResponse::Ok().json(PausedState {
        queue: name.to_string(),
        paused,
    }))
}

/// Stops delivery to a destination; messages are still accepted.
///
/// Roles: admin.
#[utoipa::path(post, path = "/v1/queues/{name}/pause", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination")),
    responses(
        (status = 200, description = "Paused", body = PausedState),
        (status = 401), (status = 403), (status = 404, description = "No queue with this name"), (status = 503),
    ))]
async fn pause(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(caller, engine, monitoring, name, true).await
}

/// Resumes delivery to a destination.
///
/// Roles: admin.
#[utoipa::path(post, path = "/v1/queues/{name}/resume", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination")),
    responses(
        (status = 200, description = "Resumed", body = PausedState),
        (status = 401), (status = 403), (status = 404, description = "No queue with this name"), (status = 503),
    ))]
async fn resume(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(caller, engine, monitoring, name, false).await
}
