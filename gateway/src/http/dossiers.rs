//! `GET /v1/dossiers/{MaHoSo}`: a dossier's story as the gateway knows it — its messages to
//! the portal in acceptance order, the last status the portal took, and whether it is blocked
//! behind a dead letter. Read from the portal queue's per-dossier index (one partition, one
//! script), never from a scan.

use actix_web::{HttpResponse, web};
use hcc_adapters::domain::MaHoSo;
use hcc_adapters::registry::Registry;
use hcc_config::Role;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{ApiError, FieldError};
use crate::engine::EngineHandle;
use crate::reason::{self, PlainReason};
use crate::redact::mask_identity_numbers;
use crate::storage::{MessageRecord, MessageStatus};
use crate::timefmt::rfc3339_ms;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/dossiers/{MaHoSo}", web::get().to(get_dossier));
}

/// One message of a dossier.
#[derive(Serialize, ToSchema)]
pub struct DossierMessage {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(example = "dossier.sync")]
    pub kind: String,
    /// Where it goes: the portal (`dvcqg`), the centre (`inbound`, a dossier handed down), the
    /// link-up (`dvclt`).
    #[schema(example = "dvcqg")]
    pub destination: String,
    pub status: MessageStatus,
    pub attempts: u32,
    /// Identity numbers masked.
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub accepted_at: String,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// For a dead letter: what happened, in plain English and Vietnamese.
    pub plain_reason: Option<PlainReason>,
}

impl From<MessageRecord> for DossierMessage {
    fn from(r: MessageRecord) -> Self {
        let last_error = r.last_error.as_deref().map(mask_identity_numbers);
        DossierMessage {
            plain_reason: plain_reason(r.status, last_error.as_deref()),
            id: r.id,
            kind: r.kind,
            destination: r.destination,
            status: r.status,
            attempts: r.attempts,
            last_error,
            accepted_at: rfc3339_ms(r.created_at),
            delivered_at: r.delivered_at.map(rfc3339_ms),
        }
    }
}

/// The plain reason a message in `status` with `last_error` shows: dead letters only.
pub fn plain_reason(status: MessageStatus, last_error: Option<&str>) -> Option<PlainReason> {
    (status == MessageStatus::Dead).then(|| reason::of_dead_letter(last_error.unwrap_or("")))
}

#[derive(Serialize, ToSchema)]
#[schema(as = Dossier)]
pub struct DossierView {
    #[serde(rename = "MaHoSo")]
    pub ma_ho_so: String,
    /// The last `TrangThaiHoSo` the portal took (as sent to it), or null.
    #[schema(example = "4")]
    pub portal_status: Option<String>,
    /// A message of the dossier is dead, holding back those after it.
    pub blocked: bool,
    /// In acceptance order, both directions: up to the portal, and for a dossier handed down,
    /// its `dossier.received` webhook to the centre and the statuses sent back up. The newest
    /// 1000 at most, and only those whose records are still kept
    /// (`queue.delivered_retention_secs` after delivery).
    pub messages: Vec<DossierMessage>,
    /// For a dossier handed down by the portal or the link-up: where it came from, its files,
    /// and whether its source was told the province has it.
    pub inbound: Option<super::inbound::InboundView>,
}

/// A dossier's messages to the portal, its portal status and whether it is blocked.
///
/// Roles: centre, operator, admin.
#[utoipa::path(get, path = "/v1/dossiers/{MaHoSo}", tag = "dossiers", security(("bearer" = [])),
    params(("MaHoSo" = String, Path, pattern = "^[A-Za-z0-9._-]{1,100}$", description = "The dossier's code")),
    responses(
        (status = 200, description = "The dossier", body = DossierView),
        (status = 401), (status = 403),
        (status = 404, description = "The gateway never accepted a message for this dossier (or its records have expired)"),
        (status = 400, description = "Not a MaHoSo"),
        (status = 503),
    ))]
async fn get_dossier(
    caller: Caller,
    engine: web::Data<EngineHandle>,
    registry: web::Data<Registry>,
    inbound: web::Data<std::sync::Arc<crate::inbound::Inbound>>,
    ma: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Centre, Role::Operator, Role::Admin])?;
    let ma = MaHoSo::parse(&ma).map_err(|message| {
        ApiError::InvalidParameters(vec![FieldError {
            field: "MaHoSo (path)".into(),
            message,
        }])
    })?;
    let portal = dossier_destination(&registry);
    let history = match portal {
        Some(queue) if engine.has_destination(queue) => engine.queue.key_history(queue, ma.as_str()).await?,
        _ => None,
    };
    let record = inbound.book.get(ma.as_str()).await?;
    if history.is_none() && record.is_none() {
        return Err(ApiError::NotFound("the gateway holds no message for this dossier".into()));
    }
    let (mut status, mut blocked, mut messages) = match history {
        Some(h) => (h.status.clone(), h.blocked(), h.messages),
        None => (None, false, Vec::new()),
    };
    if let Some(r) = &record {
        if let Some(m) = engine.queue.get(crate::inbound::EVENTS_QUEUE, &r.message_id).await? {
            messages.push(m);
        }
        // Statuses sent back up through a destination other than the portal's queue.
        if Some(r.source.as_str()) != portal
            && engine.has_destination(&r.source)
            && let Some(h) = engine.queue.key_history(&r.source, ma.as_str()).await?
        {
            blocked |= h.blocked();
            status = status.or(h.status.clone());
            messages.extend(h.messages);
        }
        messages.sort_by_key(|m| m.created_at);
    }
    Ok(HttpResponse::Ok().json(DossierView {
        ma_ho_so: ma.to_string(),
        portal_status: status,
        blocked,
        messages: messages.into_iter().map(DossierMessage::from).collect(),
        inbound: record.map(super::inbound::InboundView::from),
    }))
}

/// The destination the centre's dossiers go to: the one its `dossier.*` ingest routes feed
/// (the portal, in the standard registry).
fn dossier_destination(registry: &Registry) -> Option<&'static str> {
    registry
        .ingest_routes()
        .find(|(_, route)| route.kind.starts_with("dossier."))
        .map(|(destination, _)| destination)
}
