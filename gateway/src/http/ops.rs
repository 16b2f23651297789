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
use super::problem::{ApiError, FieldError};
use super::{MessageView, Page};
use crate::engine::EngineHandle;
use crate::engine::breaker::BreakerState;
use crate::monitoring::Monitoring;
use crate::storage::{QueueStats, ReplayJob, now_ms};

const READ: &[Role] = &[Role::Operator, Role::Admin];
const ACT: &[Role] = &[Role::Admin];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/queues", web::get().to(list_queues))
        .route("/v1/queues/history", web::get().to(history))
        .route("/ops", web::get().to(dashboard_page))
        .route("/ops/app.js", web::get().to(dashboard_script))
        .route("/ops/catalogue.js", web::get().to(dashboard_catalogue_script))
        .route("/ops/style.css", web::get().to(dashboard_style))
        .route("/v1/queues/{name}/dead", web::get().to(list_dead))
        // A resource of its own, ahead of `/dead/{id}`: another method on it is a 405, not a
        // discard of a dead letter called `replay`.
        .service(
            web::resource("/v1/queues/{name}/dead/replay")
                .route(web::post().to(replay_all))
                .route(web::get().to(replay_progress))
                .route(web::delete().to(replay_cancel))
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
    /// The queue's latest paced replay, if any.
    pub replay: Option<ReplayProgress>,
}

/// A paced replay's progress.
#[derive(Serialize, ToSchema)]
pub struct ReplayProgress {
    pub id: String,
    pub queue: String,
    pub total: u64,
    pub done: u64,
    pub rate_per_sec: f64,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// `running`, `finished` or `cancelled`.
    #[schema(example = "running")]
    pub state: String,
}

impl ReplayProgress {
    fn of(queue: &str, j: ReplayJob) -> Self {
        ReplayProgress {
            id: j.id,
            queue: queue.to_string(),
            total: j.total,
            done: j.done,
            rate_per_sec: j.rate_per_sec,
            started_at: crate::timefmt::rfc3339_ms(j.started_at),
            finished_at: j.finished_at.map(crate::timefmt::rfc3339_ms),
            state: j.state,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReplayStarted {
    pub replay: ReplayProgress,
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
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The dead-letter list's query: a page (`offset` or the opaque `cursor` of the previous page,
/// and `limit`) and an optional `ordering_key`.
struct DeadQuery {
    page: Page,
    ordering_key: Option<String>,
}

impl DeadQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut page = Page::from_query(query)?;
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| ApiError::BadRequest("the query string could not be read".into()))?
            .into_inner();
        let mut errors = Vec::new();
        let mut ordering_key = None;
        let mut cursor = None;
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "ordering_key" => &mut ordering_key,
                "cursor" => &mut cursor,
                _ => continue,
            };
            if slot.is_some() {
                errors.push(FieldError {
                    field: format!("{name} (query)"),
                    message: "is given more than once".into(),
                });
            }
            *slot = Some(value);
        }
        if let Some(k) = &ordering_key
            && let Err(message) = hcc_adapters::domain::MaHoSo::parse(k)
        {
            errors.push(FieldError {
                field: "ordering_key (query)".into(),
                message,
            });
        }
        if let Some(c) = &cursor {
            match super::cursor_offset(c) {
                Some(o) => page.offset = o,
                None => errors.push(FieldError {
                    field: "cursor (query)".into(),
                    message: "is not a cursor this list gave".into(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::InvalidParameters(errors));
        }
        Ok(DeadQuery { page, ordering_key })
    }
}

/// The query parameters of the dead-letter list beyond the page, for the document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "a description only: the values are read by DeadQuery::parse")]
pub struct DeadParams {
    /// Only the dead letter of this ordering key (a dossier's MaHoSo).
    #[param(pattern = "^[A-Za-z0-9._-]{1,100}$")]
    ordering_key: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^o[0-9]{1,10}$")]
    cursor: Option<String>,
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
                "error_contains": {"type": "string", "description": "only dead letters whose last error contains this text"},
                "ordering_key": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$", "description": "only the dead letter of this ordering key (a MaHoSo)"},
                "rate_per_sec": {"type": "number", "minimum": crate::replay::MIN_RATE, "maximum": crate::replay::MAX_RATE,
                    "description": "replay in the background at this pace (202 with the replay's progress) instead of all at once"}
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
            replay: engine.queue.replay_job(name).await?.map(|j| ReplayProgress::of(name, j)),
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

/// The dashboard is four static files compiled into the binary: nothing comes from the
/// internet, and the policy header says so to the browser.
fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
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

/// The dashboard's Catalogue view (a second script: the first would grow past a readable size).
#[utoipa::path(get, path = "/ops/catalogue.js", tag = "operations", responses((status = 200, description = "The script", content_type = "text/javascript", body = String)))]
async fn dashboard_catalogue_script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("../../ops/catalogue.js"))
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
    params(("name" = String, Path, description = "A destination, e.g. `dvcqg`"), super::PageParams, DeadParams),
    responses(
        (status = 200, description = "The dead letters", body = DeadList),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No queue with this name"),
        (status = 503),
    ))]
async fn list_dead(
    req: HttpRequest,
    caller: Caller,
    engine: web::Data<EngineHandle>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(READ)?;
    let name = known(&engine, &name)?;
    let q = DeadQuery::parse(req.query_string())?;
    let page = q.page;
    let (records, more) = match &q.ordering_key {
        // A key has at most one dead letter, its head: one look-up, no scan.
        Some(k) => {
            let one: Vec<_> = engine.queue.dead_of_key(name, k).await?.into_iter().collect();
            (one.into_iter().skip(page.offset).take(page.limit).collect::<Vec<_>>(), false)
        }
        None => {
            let mut r = engine.queue.list_dead(name, page.offset, page.limit + 1).await?;
            let more = r.len() > page.limit;
            r.truncate(page.limit);
            (r, more)
        }
    };
    Ok(HttpResponse::Ok().json(DeadList {
        queue: name.to_string(),
        next_cursor: more.then(|| super::offset_cursor(page.offset + page.limit)),
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
    /// Only the dead letter of this ordering key.
    ordering_key: Option<String>,
    /// Replay in the background at this pace.
    rate_per_sec: Option<f64>,
}

/// A replay pace: a number of letters per second from 0.1 to 1000.
fn rate(v: &Value) -> Result<f64, String> {
    use crate::replay::{MAX_RATE, MIN_RATE};
    match v.as_f64() {
        Some(r) if (MIN_RATE..=MAX_RATE).contains(&r) => Ok(r),
        _ => Err(format!("must be a number from {MIN_RATE} to {MAX_RATE} (letters per second)")),
    }
}

/// An ordering key as the API takes them: a MaHoSo's shape.
fn ordering_key(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or("must be a string")?;
    hcc_adapters::domain::MaHoSo::parse(s).map(|m| m.to_string())
}

impl ReplayFilter {
    /// `{"kind": ..., "error_contains": ...}`, both optional strings, nothing else; read field
    /// by field so a wrong type is named by its pointer and not quoted.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let v = json_value(body)?;
        let obj = object_of(&v, &["kind", "error_contains", "ordering_key", "rate_per_sec"])?;
        let mut errors = Vec::new();
        let mut f = Fields::new(obj, String::new(), &mut errors);
        let filter = ReplayFilter {
            error_contains: f.optional("error_contains", text),
            kind: f.optional("kind", text),
            ordering_key: f.optional("ordering_key", ordering_key),
            rate_per_sec: f.optional("rate_per_sec", rate),
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
        (status = 202, description = "With `rate_per_sec`: the paced replay started", body = ReplayStarted),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No queue with this name"),
        (status = 409, description = "A paced replay of this queue is running"),
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
    let matches = |r: &crate::storage::MessageRecord| {
        filter.kind.as_deref().is_none_or(|k| k == r.kind)
            && filter
                .error_contains
                .as_deref()
                .is_none_or(|t| r.last_error.as_deref().unwrap_or("").contains(t))
    };
    // The matching ids now: a letter that dies again while the replay runs is not replayed twice.
    let mut ids = Vec::new();
    match &filter.ordering_key {
        Some(k) => ids.extend(engine.queue.dead_of_key(name, k).await?.filter(|r| matches(r)).map(|r| r.id)),
        None => {
            let mut offset = 0;
            while ids.len() < crate::replay::MAX_JOB_IDS {
                let page = engine.queue.list_dead(name, offset, 500).await?;
                if page.is_empty() {
                    break;
                }
                offset += page.len();
                ids.extend(page.iter().filter(|r| matches(r)).map(|r| r.id.clone()));
            }
            ids.truncate(crate::replay::MAX_JOB_IDS);
        }
    }
    if let Some(rate) = filter.rate_per_sec {
        // The job replays them at the pace, here or on another process.
        let job_id = uuid::Uuid::now_v7().to_string();
        if let Err(running) = engine.queue.replay_job_start(name, &job_id, rate, &ids, now_ms()).await? {
            return Err(ApiError::Conflict(format!("a paced replay of this queue is running ({running})")));
        }
        crate::replay::spawn(engine.get_ref().clone(), name.to_string());
        tracing::info!(operator = %caller.name, queue = name, count = ids.len(), rate, "paced replay started");
        monitoring.audit(&caller.name, "dead.replay_paced", name, &format!("{} at {rate}/s", ids.len()));
        let job = engine.queue.replay_job(name).await?.ok_or(ApiError::Internal)?;
        return Ok(HttpResponse::Accepted().json(ReplayStarted {
            replay: ReplayProgress::of(name, job),
        }));
    }
    let mut replayed = Vec::new();
    for id in ids {
        if engine.queue.replay(name, &id, now_ms()).await? {
            replayed.push(id);
        }
    }
    engine.wake(name);
    tracing::info!(operator = %caller.name, queue = name, count = replayed.len(), "dead letters replayed");
    monitoring.audit(&caller.name, "dead.replay_all", name, &format!("{} replayed", replayed.len()));
    Ok(HttpResponse::Ok().json(Replayed {
        replayed: replayed.len(),
        ids: replayed,
    }))
}

/// The queue's latest paced replay and its progress.
///
/// Roles: operator, admin.
#[utoipa::path(get, path = "/v1/queues/{name}/dead/replay", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination")),
    responses(
        (status = 200, description = "The latest paced replay", body = ReplayProgress),
        (status = 401), (status = 403),
        (status = 404, description = "No queue with this name, or no paced replay of it"),
        (status = 503),
    ))]
async fn replay_progress(caller: Caller, engine: web::Data<EngineHandle>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(READ)?;
    let name = known(&engine, &name)?;
    match engine.queue.replay_job(name).await? {
        Some(j) => Ok(HttpResponse::Ok().json(ReplayProgress::of(name, j))),
        None => Err(ApiError::NotFound("no paced replay of this queue".into())),
    }
}

/// Cancels the queue's running paced replay, in whichever gateway process runs it: it stops
/// within a second (the letter being replayed then may still go), the letters not yet replayed
/// stay dead letters, and a new paced replay may start.
///
/// Roles: admin.
#[utoipa::path(delete, path = "/v1/queues/{name}/dead/replay", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "A destination")),
    responses(
        (status = 200, description = "Cancelled: the replay as it stopped", body = ReplayProgress),
        (status = 401), (status = 403),
        (status = 404, description = "No queue with this name, or no paced replay of it is running"),
        (status = 503),
    ))]
async fn replay_cancel(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    monitoring: web::Data<Monitoring>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(ACT)?;
    let name = known(&engine, &name)?;
    if !engine.queue.replay_job_cancel(name, now_ms()).await? {
        return Err(ApiError::NotFound("no paced replay of this queue is running".into()));
    }
    let job = engine.queue.replay_job(name).await?.ok_or(ApiError::Internal)?;
    tracing::info!(operator = %caller.name, queue = name, job = %job.id, done = job.done, "paced replay cancelled");
    monitoring.audit(
        &caller.name,
        "dead.replay_cancel",
        name,
        &format!("{} of {} replayed", job.done, job.total),
    );
    Ok(HttpResponse::Ok().json(ReplayProgress::of(name, job)))
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
