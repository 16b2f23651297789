//! The loop of a polled source (the link-up): each round acknowledges what the centre has
//! taken, then lists what waits and takes each dossier the gateway has no record of.
//!
//! Acknowledging only after the centre took a dossier is what the round's order and the
//! book's state give, with no step that a crash can split badly:
//! - a dossier is recorded together with its webhook ([`super::Inbound::take`]), or not at all
//!   (then the next round fetches it again, since the source still lists it);
//! - it is acknowledged only when its webhook message is `delivered` (the centre's endpoint
//!   answered 2xx), and marked acknowledged only after the source confirmed;
//! - a crash between the source's confirmation and the mark sends the acknowledgement once
//!   more at the next round, which the source takes as a repeat.
//!
//! Each round is bounded: at most [`PER_ROUND`] dossiers listed and [`PER_ROUND`] waiting
//! acknowledgements looked at.

use std::sync::Arc;
use std::time::Duration;

use hcc_adapters::evidence::{self, Recorder, Subject};
use hcc_adapters::inbound::InboundSource;
use tokio_util::sync::CancellationToken;

use super::{EVENTS_QUEUE, Inbound, TakeError, Taken};
use crate::storage::{MessageQueue, MessageStatus, now_ms};

/// The most dossiers one round lists, and acknowledgements it looks at.
pub const PER_ROUND: usize = 500;

/// What one round did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub listed: usize,
    pub taken: usize,
    pub known: usize,
    pub acknowledged: usize,
    /// Taken, but the centre does not have them yet.
    pub waiting: usize,
    pub failures: usize,
}

/// Runs rounds every `source.poll_every()` until `stop`.
pub async fn run(
    inbound: Arc<Inbound>,
    source: Arc<dyn InboundSource>,
    queue: MessageQueue,
    redis: Arc<crate::outage::Dependency>,
    evidence: Option<Arc<dyn Recorder>>,
    stop: CancellationToken,
) {
    let Some(every) = source.poll_every() else {
        return;
    };
    loop {
        // A round's calls (list, details, files, acknowledgements) are evidence of one piece of
        // work; a dossier's own key is in the bodies' digests, not in the records.
        let (r, noted) = tokio::select! {
            _ = stop.cancelled() => return,
            r = evidence::scope(evidence.as_ref(), Subject::default(), round(&inbound, source.as_ref(), &queue, &redis)) => r,
        };
        noted.settle(&format!(
            "round: {} listed, {} taken, {} acknowledged, {} failures",
            r.listed, r.taken, r.acknowledged, r.failures
        ));
        if r != Round::default() {
            tracing::info!(
                source = source.id(),
                listed = r.listed,
                taken = r.taken,
                acknowledged = r.acknowledged,
                waiting = r.waiting,
                failures = r.failures,
                "inbound poll round"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every.max(Duration::from_millis(100))) => {}
        }
    }
}

/// One round: acknowledge, then list and take.
/// The store's failures go to `redis`, which logs an outage once (see [`crate::outage`]).
pub async fn round(inbound: &Inbound, source: &dyn InboundSource, queue: &MessageQueue, redis: &crate::outage::Dependency) -> Round {
    let mut r = Round::default();
    acknowledge_taken(inbound, source, queue, redis, &mut r).await;
    let listed = match source.list(PER_ROUND).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(source = source.id(), alarm = e.alarm, error = %crate::redact::Escaped(&e.reason), "inbound list failed; trying again next round");
            r.failures += 1;
            return r;
        }
    };
    r.listed = listed.len();
    for l in listed.iter().take(PER_ROUND) {
        match inbound.book.get(l.code.as_str()).await {
            Ok(Some(_)) => {
                r.known += 1;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                redis.store_failed(&e, "inbound book unavailable; trying again next round");
                r.failures += 1;
                return r;
            }
        }
        let dossier = match source.fetch(l).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(source = source.id(), ma_ho_so = %l.code, alarm = e.alarm, error = %crate::redact::Escaped(&e.reason), "inbound fetch failed; trying again next round");
                r.failures += 1;
                continue;
            }
        };
        match inbound.take(source, dossier).await {
            Ok(Taken::Created(_)) => r.taken += 1,
            Ok(Taken::Duplicate) => r.known += 1,
            Err(TakeError::Storage(e)) => {
                redis.store_failed(&e, "inbound book unavailable; trying again next round");
                r.failures += 1;
                return r;
            }
            Err(e) => {
                // A dossier whose files break the rules stays unacknowledged at the source, and
                // is looked at again every round: a person must look.
                tracing::error!(alarm = true, source = source.id(), ma_ho_so = %l.code, error = %crate::redact::Escaped(&e.to_string()), "inbound dossier not taken");
                r.failures += 1;
            }
        }
    }
    r
}

/// Acknowledges every taken dossier whose webhook the centre has.
async fn acknowledge_taken(
    inbound: &Inbound,
    source: &dyn InboundSource,
    queue: &MessageQueue,
    redis: &crate::outage::Dependency,
    r: &mut Round,
) {
    let asked = std::time::Instant::now();
    let waiting = match inbound.book.unacknowledged(source.id(), PER_ROUND).await {
        Ok(w) => {
            redis.ok_since(asked);
            w
        }
        Err(e) => {
            redis.store_failed(&e, "inbound book unavailable");
            r.failures += 1;
            return;
        }
    };
    for rec in waiting {
        let delivered = match queue.get(EVENTS_QUEUE, &rec.message_id).await {
            Ok(Some(m)) => m.status == MessageStatus::Delivered,
            Ok(None) => {
                tracing::warn!(source = source.id(), ma_ho_so = %rec.code, "the webhook of an unacknowledged inbound dossier is no longer recorded; acknowledge it at the source by hand once the centre confirms it has it");
                false
            }
            Err(e) => {
                redis.store_failed(&e, "queue unavailable");
                r.failures += 1;
                return;
            }
        };
        if !delivered {
            r.waiting += 1;
            continue;
        }
        let Ok(code) = hcc_adapters::domain::MaHoSo::parse(&rec.code) else {
            continue;
        };
        let link = rec.link.as_object().cloned().unwrap_or_default();
        match source.acknowledge(&code, &link).await {
            Ok(()) => match inbound.book.mark_acknowledged(&rec.code, source.id(), now_ms()).await {
                Ok(_) => r.acknowledged += 1,
                Err(e) => {
                    tracing::warn!(source = source.id(), error = %e, "acknowledged, but not marked; it will be acknowledged again");
                    r.failures += 1;
                }
            },
            Err(e) => {
                tracing::warn!(source = source.id(), ma_ho_so = %rec.code, alarm = e.alarm, error = %crate::redact::Escaped(&e.reason), "acknowledgement failed; trying again next round");
                r.failures += 1;
            }
        }
    }
}
