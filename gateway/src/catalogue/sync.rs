//! The catalogue's sync: the portal's list (`LayDanhSachTTHC`), then each procedure's details
//! (`LayThuTuc`), paced (`catalogue.pace_per_sec`), under a lease so that one instance pulls at
//! a time, and resumable: the run's list and how far it got are stored after every procedure,
//! so a run cut short (a restart, a lost lease) goes on from there.
//!
//! A failed list pull changes nothing of the catalogue (the run is `failed`, the previous copy
//! stands); a failed detail keeps that procedure's previous details. Procedures missing from a
//! finished run's list are marked withdrawn, never deleted; one listed again is restored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hcc_adapters::Adapter;
use hcc_adapters::catalogue::CatalogueSource;
use hcc_adapters::evidence::{self, Subject};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Catalogue;
use crate::storage::catalogue::SyncState;
use crate::storage::{Millis, StorageError, now_ms};

/// How long the lease lasts without renewal; it is renewed at every procedure.
const LEASE_MS: u64 = 30_000;
/// How often the loop looks for a requested sync or a due one.
const TICK: Duration = Duration::from_secs(1);
/// After a failed list pull, the next try comes at most this much later.
const RETRY_FAILED: Duration = Duration::from_secs(600);
/// Codes read from the stored list at a time.
const TODO_PAGE: u64 = 100;

/// The fields (`LINHVUCTHUCHIEN[].MALINHVUC`) of a procedure's details.
pub fn linh_vuc(details: &Value) -> Vec<String> {
    details
        .get("LINHVUCTHUCHIEN")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|f| f.get("MALINHVUC").and_then(Value::as_str))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .take(50)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a run is due now: never run, a run to resume, or the period since the last one over.
fn due(cat: &Catalogue, s: &SyncState, now: Millis) -> bool {
    if s.phase == "details" {
        return true;
    }
    let Some(every) = cat.every else {
        return false;
    };
    let wait = if s.phase == "failed" { every.min(RETRY_FAILED) } else { every };
    match s.finished_at.or(s.started_at) {
        // Never ran: the first run is at start-up.
        None => true,
        Some(last) => now >= last + wait.as_millis() as Millis,
    }
}

/// Runs the sync whenever it is due or asked for, until `stop`.
/// `redis` hears of the store's failures and successes: a state read every [`TICK`] would
/// otherwise log a line a second through an outage (see [`crate::outage`]).
pub async fn run(
    cat: Arc<Catalogue>,
    portal: Arc<dyn Adapter>,
    owner: String,
    redis: Arc<crate::outage::Dependency>,
    stop: CancellationToken,
) {
    loop {
        let asked = std::time::Instant::now();
        let wanted = async {
            let asked = cat.book.take_request().await?;
            let state = cat.book.sync_state().await?;
            Ok::<bool, StorageError>(asked || due(&cat, &state, now_ms()))
        }
        .await;
        if wanted.is_ok() {
            redis.ok_since(asked);
        }
        match wanted {
            Ok(true) => {
                if let Some(source) = portal.catalogue() {
                    match sync_once(&cat, source, &owner, &stop).await {
                        Ok(s) if s.phase == "done" => {
                            tracing::info!(procedures = s.total, failed_details = s.failed_details, "catalogue synced")
                        }
                        Ok(s) => tracing::info!(phase = %s.phase, done = s.done, total = s.total, "catalogue sync stopped"),
                        Err(e) => tracing::warn!(error = %e, "catalogue sync interrupted; it resumes later"),
                    }
                }
            }
            Ok(false) => {}
            Err(e) => redis.store_failed(&e, "catalogue state unavailable"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// One run (or the rest of an interrupted one). Returns the state it left: `done`, `failed`
/// (the list could not be pulled), `details` (stopped, lease lost, to be resumed), or the state
/// of another instance's run when it holds the lease.
pub async fn sync_once(
    cat: &Catalogue,
    source: &dyn CatalogueSource,
    owner: &str,
    stop: &CancellationToken,
) -> Result<SyncState, StorageError> {
    if !cat.book.lease(owner, LEASE_MS, now_ms()).await? {
        return cat.book.sync_state().await;
    }
    let result = pull(cat, source, owner, stop).await;
    let _ = cat.book.release(owner).await;
    result
}

async fn pull(cat: &Catalogue, source: &dyn CatalogueSource, owner: &str, stop: &CancellationToken) -> Result<SyncState, StorageError> {
    let mut state = cat.book.sync_state().await?;
    if state.phase != "details" {
        let now = now_ms();
        let (listed, noted) = evidence::scope(cat.evidence.as_ref(), Subject::default(), source.procedures(cat.max_procedures)).await;
        noted.settle(if listed.is_ok() {
            "catalogue listed"
        } else {
            "catalogue list failed"
        });
        let listed = match listed {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(alarm = e.alarm, error = %crate::redact::Escaped(&e.reason), "catalogue list pull failed; the previous catalogue stands");
                state.phase = "failed".into();
                state.started_at = Some(now);
                state.finished_at = Some(now_ms());
                state.last_error = Some(crate::redact::clean(&e.reason, 300));
                cat.book.save_sync_state(&state).await?;
                return Ok(state);
            }
        };
        let entries: Vec<(String, String, Value)> = listed.iter().map(|p| (p.code.clone(), p.name.clone(), p.raw.clone())).collect();
        cat.book.put_listed(&entries, now).await?;
        let codes: Vec<String> = listed.into_iter().map(|p| p.code).collect();
        cat.book.set_todo(&codes).await?;
        state = SyncState {
            phase: "details".into(),
            run: now,
            started_at: Some(now),
            finished_at: None,
            total: codes.len() as u64,
            done: 0,
            failed_details: 0,
            last_error: None,
            last_success_at: state.last_success_at,
        };
        cat.book.save_sync_state(&state).await?;
    }
    while state.done < state.total {
        let page = cat.book.todo(state.done, TODO_PAGE).await?;
        if page.is_empty() {
            break;
        }
        for code in page {
            tokio::select! {
                _ = stop.cancelled() => return Ok(state),
                _ = tokio::time::sleep(cat.pace) => {}
            }
            if !cat.book.lease(owner, LEASE_MS, now_ms()).await? {
                tracing::warn!("the catalogue sync's lease went to another instance; it goes on there");
                return Ok(state);
            }
            let subject = Subject {
                ordering_key: Some(code.clone()),
                ..Subject::default()
            };
            let (details, noted) = evidence::scope(cat.evidence.as_ref(), subject, source.procedure(&code, cat.max_detail_bytes)).await;
            noted.settle(if details.is_ok() {
                "procedure pulled"
            } else {
                "procedure pull failed"
            });
            match details {
                Ok(details) => cat.book.put_details(&code, &details, &linh_vuc(&details), now_ms()).await?,
                Err(e) => {
                    state.failed_details += 1;
                    state.last_error = Some(crate::redact::clean(&e.reason, 300));
                }
            }
            state.done += 1;
            cat.book.save_sync_state(&state).await?;
        }
    }
    let listed: HashSet<String> = cat.book.todo(0, state.total.max(1)).await?.into_iter().collect();
    let withdrawn = cat.book.withdraw_others(&listed, now_ms()).await?;
    if withdrawn > 0 {
        tracing::info!(withdrawn, "procedures gone from the national catalogue are marked withdrawn");
    }
    let now = now_ms();
    state.phase = "done".into();
    state.finished_at = Some(now);
    state.last_success_at = Some(now);
    cat.book.save_sync_state(&state).await?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_read_from_the_details() {
        let d = json!({"LINHVUCTHUCHIEN": [{"MALINHVUC": "HT", "TENLINHVUC": "Hộ tịch"}, {"MALINHVUC": " XD "}, {"X": 1}]});
        assert_eq!(linh_vuc(&d), vec!["HT", "XD"]);
        assert!(linh_vuc(&json!({})).is_empty());
    }
}
