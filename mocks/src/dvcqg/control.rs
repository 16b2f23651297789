//! The `/_mock/...` control and inspection handlers: thin HTTP wrappers over the methods in
//! `state`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::PortalState;
use crate::faults::Faults;

pub(super) async fn set_faults(state: web::Data<PortalState>, f: web::Json<Faults>) -> HttpResponse {
    state.set_faults(f.into_inner());
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
pub(super) struct Sessions {
    lifetime_ms: Option<u64>,
    #[serde(default)]
    expire_all: bool,
}

pub(super) async fn set_sessions(state: web::Data<PortalState>, b: web::Json<Sessions>) -> HttpResponse {
    if let Some(ms) = b.lifetime_ms {
        state.set_session_lifetime(Duration::from_millis(ms));
    }
    if b.expire_all {
        state.expire_sessions();
    }
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
pub(super) struct Catalogue {
    add: Vec<String>,
}

pub(super) async fn add_catalogue(state: web::Data<PortalState>, b: web::Json<Catalogue>) -> HttpResponse {
    state.lock().catalogue.extend(b.into_inner().add);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
pub(super) struct Dstcode {
    required: Option<String>,
}

pub(super) async fn set_dstcode(state: web::Data<PortalState>, b: web::Json<Dstcode>) -> HttpResponse {
    state.require_dstcode(b.into_inner().required.filter(|c| !c.is_empty()));
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
pub(super) struct LookupAnswer {
    answer: Option<Value>,
}

pub(super) async fn set_lookup(state: web::Data<PortalState>, b: web::Json<LookupAnswer>) -> HttpResponse {
    state.set_lookup_answer(b.into_inner().answer);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
pub(super) struct ExistsCode {
    error_code: Option<Value>,
}

pub(super) async fn set_exists_code(state: web::Data<PortalState>, b: web::Json<ExistsCode>) -> HttpResponse {
    state.set_exists_code(b.into_inner().error_code);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
pub(super) struct ChosenRefusal {
    #[serde(rename = "MaHoSo")]
    ma_ho_so: String,
    answer: Option<Value>,
}

pub(super) async fn set_refusal(state: web::Data<PortalState>, b: web::Json<ChosenRefusal>) -> HttpResponse {
    let b = b.into_inner();
    state.set_refusal(&b.ma_ho_so, b.answer);
    HttpResponse::NoContent().finish()
}

pub(super) async fn set_stale_answer(state: web::Data<PortalState>, b: web::Json<LookupAnswer>) -> HttpResponse {
    state.set_stale_answer(b.into_inner().answer);
    HttpResponse::NoContent().finish()
}

pub(super) async fn seed_dossier(state: web::Data<PortalState>, b: web::Json<Value>) -> HttpResponse {
    match state.seed_dossier(b.into_inner()) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(m) => HttpResponse::BadRequest().json(json!({"message": m})),
    }
}

#[derive(Deserialize)]
pub(super) struct ReceivedQuery {
    #[serde(rename = "MaHoSo")]
    ma_ho_so: Option<String>,
}

pub(super) async fn received(state: web::Data<PortalState>, q: web::Query<ReceivedQuery>) -> HttpResponse {
    match &q.ma_ho_so {
        Some(ma) => HttpResponse::Ok().json(state.arrivals_of(ma)),
        None => HttpResponse::Ok().json(state.arrivals()),
    }
}

pub(super) async fn stats(state: web::Data<PortalState>) -> HttpResponse {
    HttpResponse::Ok().json(state.counters())
}

pub(super) async fn per_second(state: web::Data<PortalState>) -> HttpResponse {
    HttpResponse::Ok().json(state.per_second())
}
