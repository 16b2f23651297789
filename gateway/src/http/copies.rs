//! Copies of an accepted ingest message for the destinations that take them
//! ([`hcc_adapters::registry::DestinationSpec::copies`]): the ministry's monitoring hears of
//! every dossier step the centre hands the portal. A copy is the same kind, ordering key and
//! payload, queued in the copying destination's own queue, so neither destination's deliveries
//! wait for the other's (each queue has its own lane, retries, breaker and dead letters).
//!
//! Copies are queued **before** the main message. The two writes are not one transaction: a
//! crash between them leaves one without the other. With the copies first, that crash leaves
//! copies and no main message, and the centre, which got no 202, sends the request again; its
//! `Idempotency-Key` makes each copy a replay, and the main message is queued once. Were the
//! main message first, a centre that sends no key, or a failure after the 202, could leave the
//! portal with a step the monitoring never hears of, with nothing to tell anyone. A copy that
//! cannot be queued fails the request (503) before anything is answered 202.

use actix_web::{HttpRequest, web};
use hcc_adapters::registry::{Ingest, Registry};

use super::auth::Caller;
use super::ingest::{IdempotencyTtl, idempotency_key};
use super::problem::ApiError;
use crate::engine::EngineHandle;
use crate::storage::{Enqueued, Idempotency, NewMessage, now_ms};

/// The field the contract names a dossier's national procedure by.
const PROCEDURE_FIELD: &str = "MaTTHC";

/// The copy's payload: the accepted one, and for a message that names no procedure (a progress
/// entry), the procedure its dossier was last accepted with, which the copying destination
/// needs (the ministry's monitoring reports the procedure of every step). The dossier's
/// procedure is remembered in the store, so a restart forgets nothing; the idempotency
/// fingerprint stays the accepted payload's, so a retried request is still the same.
async fn with_procedure(req: &HttpRequest, accepted: &Ingest) -> Result<Vec<u8>, ApiError> {
    let Some(cat) = req.app_data::<web::Data<std::sync::Arc<crate::catalogue::Catalogue>>>() else {
        return Ok(accepted.payload.clone());
    };
    if let Some(code) = &accepted.procedure {
        cat.book.remember_procedure(&accepted.ordering_key, code).await?;
        return Ok(accepted.payload.clone());
    }
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(&accepted.payload) else {
        return Ok(accepted.payload.clone());
    };
    if object.contains_key(PROCEDURE_FIELD) {
        return Ok(accepted.payload.clone());
    }
    match cat.book.procedure_of(&accepted.ordering_key).await? {
        Some(code) => {
            object.insert(PROCEDURE_FIELD.into(), serde_json::Value::String(code));
            serde_json::to_vec(&object).map_err(|_| ApiError::Internal)
        }
        None => Ok(accepted.payload.clone()),
    }
}

/// Queues a copy of `accepted` (of ingest kind `kind`) for every destination that copies that
/// kind and is configured here, and wakes each; nothing for a kind nobody copies. The caller's
/// `Idempotency-Key` guards each copy under its own scope, `"{kind}:{caller}:{destination}"`,
/// with the main message's fingerprint rule (the payload's SHA-256).
pub async fn queue(
    req: &HttpRequest,
    caller: &Caller,
    engine: &EngineHandle,
    kind: &'static str,
    accepted: &Ingest,
) -> Result<(), ApiError> {
    let Some(registry) = req.app_data::<web::Data<Registry>>() else {
        // The application always registers it; without it no copy could be made, and
        // answering 202 would lose them silently.
        tracing::error!(alarm = true, kind, "the registry is not app data: copies cannot be queued");
        return Err(ApiError::Internal);
    };
    let mut copying = registry.copying(kind).filter(|d| engine.has_destination(d)).peekable();
    if copying.peek().is_none() {
        return Ok(());
    }
    let key = idempotency_key(req)?;
    let ttl = req.app_data::<web::Data<IdempotencyTtl>>().map_or(86_400, |t| t.0);
    let fingerprint = hcc_signing::sha256_hex(&accepted.payload);
    let payload = with_procedure(req, accepted).await?;
    for destination in copying {
        let idem = key.as_ref().map(|key| Idempotency {
            scope: format!("{kind}:{}:{destination}", caller.name),
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            ttl_secs: ttl,
        });
        let msg = NewMessage {
            kind: kind.into(),
            ordering_key: accepted.ordering_key.clone(),
            payload: payload.clone(),
        };
        match engine.queue.enqueue(destination, msg, idem.as_ref(), now_ms()).await? {
            Enqueued::Accepted(id) => {
                engine.wake(destination);
                tracing::info!(id = %id, kind, destination, ordering_key = %accepted.ordering_key, "copy accepted");
            }
            Enqueued::Replayed(_) => {}
            Enqueued::Conflict => {
                return Err(ApiError::Conflict("this Idempotency-Key was used with a different body".into()));
            }
        }
    }
    Ok(())
}
