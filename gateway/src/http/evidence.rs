//! The evidence routes (operator): `GET /v1/evidence?ordering_key=|reference=` and
//! `GET /v1/evidence/{id}`, records with their place in their chain and the timestamp token
//! that covers them, for anyone to check with `openssl ts -verify` (docs/evidence.md). Also
//! [`with_body`], how a route that answers a counterpart learns the exact bytes it answered.

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::{HttpResponse, web};
use hcc_config::Role;

use super::auth::Caller;
use super::problem::{ApiError, FieldError};
use crate::evidence::Evidence;
use crate::evidence::read::{Query, Results, search};

/// The most bytes of the log one search reads.
const SEARCH_BUDGET_BYTES: u64 = 512 * 1024 * 1024;
/// The most records one search returns.
const MAX_RECORDS: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/evidence", web::get().to(list))
        .route("/v1/evidence/{id}", web::get().to(get_one));
}

/// A response and its exact body bytes, the body put back unchanged.
pub(crate) async fn with_body(resp: HttpResponse) -> (HttpResponse, Vec<u8>) {
    let (head, body) = resp.into_parts();
    match body.try_into_bytes() {
        Ok(bytes) => {
            let copy = bytes.to_vec();
            (head.set_body(BoxBody::new(bytes)), copy)
        }
        // A streamed body (none of the routes that use this answer with one) is read whole.
        Err(body) => match actix_web::body::to_bytes(body).await {
            Ok(bytes) => {
                let copy = bytes.to_vec();
                (head.set_body(BoxBody::new(bytes)), copy)
            }
            Err(_) => (head.set_body(BoxBody::new(())), Vec::new()),
        },
    }
}

fn evidence(e: &web::Data<Option<Arc<Evidence>>>) -> Result<Arc<Evidence>, ApiError> {
    e.get_ref()
        .clone()
        .ok_or_else(|| ApiError::NotConfigured("the evidence log is off (evidence.enabled)".into()))
}

async fn run_search(e: Arc<Evidence>, q: OwnedQuery, limit: usize) -> Result<Results, ApiError> {
    tokio::task::spawn_blocking(move || {
        let query = match &q {
            OwnedQuery::OrderingKey(k) => Query::OrderingKey(k),
            OwnedQuery::Reference(k) => Query::Reference(k),
            OwnedQuery::Id(instance, seq) => Query::Id { instance, seq: *seq },
        };
        search(e.dir(), &query, limit, SEARCH_BUDGET_BYTES)
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(|err| {
        tracing::error!(error = %err, "the evidence log cannot be read");
        ApiError::Internal
    })
}

enum OwnedQuery {
    OrderingKey(String),
    Reference(String),
    Id(String, u64),
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Find {
    /// The records of one dossier (`MaHoSo`) or other ordering key.
    #[param(max_length = 200)]
    ordering_key: Option<String>,
    /// The records of one payment (`MaThamChieu`), its callbacks and bank notices included.
    #[param(max_length = 64)]
    reference: Option<String>,
    /// At most this many records (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Evidence records of one dossier or one payment, oldest first.
///
/// Roles: operator, admin. Exactly one of `ordering_key` and `reference`. Each record comes with
/// its id (`instance:seq`), its line as written (`line_text`: the SHA-256 of the text after the
/// first space is `hash`), and the stamp whose RFC 3161 token covers it (`stamp.covers` is the
/// token's imprint: `openssl ts -verify -digest COVERS -in TOKEN -token_in -CAfile TSA.pem`).
/// `truncated` says the search stopped at its limit or its read budget.
#[utoipa::path(get, path = "/v1/evidence", tag = "evidence", security(("bearer" = [])),
    params(Find),
    responses(
        (status = 200, description = "`{records, truncated}`", body = Object),
        (status = 400), (status = 401), (status = 403),
        (status = 503, description = "The evidence log is off"),
    ))]
async fn list(caller: Caller, e: web::Data<Option<Arc<Evidence>>>, q: web::Query<Find>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator, Role::Admin])?;
    let e = evidence(&e)?;
    let bad = |field: &str, message: &str| {
        ApiError::InvalidParameters(vec![FieldError {
            field: format!("{field} (query)"),
            message: message.into(),
        }])
    };
    let printable = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic());
    let query = match (&q.ordering_key, &q.reference) {
        (Some(k), None) if printable(k, 200) => OwnedQuery::OrderingKey(k.clone()),
        (Some(_), None) => return Err(bad("ordering_key", "must be 1 to 200 visible ASCII characters")),
        (None, Some(r)) if hcc_adapters::payments::is_reference(r) => OwnedQuery::Reference(r.clone()),
        (None, Some(_)) => return Err(bad("reference", "must be a payment reference (MaThamChieu)")),
        _ => return Err(bad("ordering_key", "give exactly one of ordering_key and reference")),
    };
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=MAX_RECORDS).contains(&n) => n,
        Some(_) => return Err(bad("limit", "must be from 1 to 1000")),
    };
    let found = run_search(e, query, limit).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// One evidence record, with its place in its chain and the stamp that covers it.
///
/// Roles: operator, admin. `id` is `instance:seq`, as `GET /v1/evidence` gives it.
#[utoipa::path(get, path = "/v1/evidence/{id}", tag = "evidence", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^[a-z0-9-]{1,64}:[0-9]{1,19}$", description = "The record's instance and seq")),
    responses(
        (status = 200, description = "`{id, file, line, hash, line_text, record, stamp}`", body = Object),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "No such record"),
        (status = 503, description = "The evidence log is off"),
    ))]
async fn get_one(caller: Caller, e: web::Data<Option<Arc<Evidence>>>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Operator, Role::Admin])?;
    let e = evidence(&e)?;
    let parsed = id
        .split_once(':')
        .filter(|(i, _)| crate::evidence::record::is_instance(i))
        .and_then(|(i, s)| {
            s.parse::<u64>()
                .ok()
                .filter(|_| s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .map(|s| (i.to_string(), s))
        });
    let Some((instance, seq)) = parsed else {
        return Err(ApiError::InvalidParameters(vec![FieldError {
            field: "id (path)".into(),
            message: "must be instance:seq".into(),
        }]));
    };
    let found = run_search(e, OwnedQuery::Id(instance, seq), 1).await?;
    match found.records.into_iter().next() {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::NotFound("no evidence record has this id".into())),
    }
}
