//! The relay of the centre's events: a settlement writes its event (`dossier.rejected`,
//! `dossier.delivered`) to its queue's outbox in the same atomic step; this moves them on to
//! the centre's queue, on every process (the move is idempotent, so processes may overlap).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::EngineHandle;
use crate::storage::now_ms;

/// How long an outbox event's id is remembered in the centre's queue, so that relaying it
/// again (a relay that died between queueing it and taking it off the outbox) queues nothing:
/// far longer than any relay takes.
const OUTBOX_IDEM_SECS: u64 = 7 * 24 * 3600;
/// How often the outbox relay looks for events, and how many it moves per queue per round.
const OUTBOX_EVERY: Duration = Duration::from_millis(200);
const OUTBOX_BATCH: usize = 200;

/// Moves the events that settlements wrote to the outboxes on to the centre's queue, every
/// [`OUTBOX_EVERY`], on every process (the move is idempotent, so processes may overlap).
pub(super) async fn relay_outboxes(handle: EngineHandle, stop: CancellationToken) {
    let Some(sink) = handle.events_sink.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(OUTBOX_EVERY) => {}
        }
        for (name, lane) in handle.lanes.iter() {
            if !lane.events.load(std::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            let asked = std::time::Instant::now();
            match handle
                .queue
                .relay_outbox(name, &sink, OUTBOX_BATCH, OUTBOX_IDEM_SECS, now_ms())
                .await
            {
                Ok(0) => handle.redis.ok_since(asked),
                Ok(n) => {
                    handle.redis.ok_since(asked);
                    tracing::debug!(queue = %name, events = n, "relayed events for the centre");
                    handle.wake(&sink);
                }
                Err(e) => handle.redis.store_failed(&e, "cannot relay events for the centre; trying again"),
            }
        }
    }
}
