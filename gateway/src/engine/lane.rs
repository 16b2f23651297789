//! A lane's claim loop: it takes due messages in batches under a lease, as the breaker, the
//! concurrency limit and the destination's shared rate limit allow, and hands each to a
//! delivery (`settle`); and the reaper, which returns the leases of lost workers to the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::Gate;
use super::{EngineHandle, Lane};
use crate::storage::{MessageQueue, Permit, PermitAsk, now_ms, rate_burst};

pub(super) async fn claim_loop(
    queue: MessageQueue,
    lane: Arc<Lane>,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
) {
    let mut error_pause = Duration::from_millis(100);
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = lane.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        // A rate-limited lane claims only when a permit is free (asked without taking it, so
        // that polling an idle queue spends nothing), and no more than a burst at a time: the
        // leases of claimed messages run while they wait for their permits.
        let rate = lane.cfg.rate_limit_per_sec;
        if rate > 0 {
            let pause = match queue.permit(lane.adapter.destination(), rate, PermitAsk::Peek).await {
                Ok(Permit::Granted) => None,
                Ok(Permit::Wait(d)) => Some(d),
                Err(e) => {
                    lane.redis.store_failed(&e, "cannot read the rate limit");
                    Some(error_pause)
                }
            };
            if let Some(d) = pause {
                drop(first);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(d.min(Duration::from_secs(1))) => continue,
                }
            }
        }
        let gate = lane.breaker().gate(Instant::now());
        let want = match gate {
            Gate::Closed => 1 + lane.permits.available_permits(),
            Gate::Probe(n) => (n as usize).min(1 + lane.permits.available_permits()),
            Gate::Wait(d) => {
                drop(first);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(d.min(Duration::from_secs(1))) => continue,
                }
            }
        };
        let want = if rate > 0 { want.min(rate_burst(rate) as usize) } else { want };
        let now = now_ms();
        let lease_until = now + lane.cfg.lease.as_millis() as i64;
        let asked = std::time::Instant::now();
        let claimed = queue.claim(&lane.name, want, lease_until, now).await;
        if claimed.is_ok() {
            lane.redis.ok_since(asked);
        }
        match claimed {
            Ok(batch) if batch.is_empty() => {
                if let Gate::Probe(n) = gate {
                    lane.breaker().probes_unused(n);
                }
                drop(first);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = lane.wake.notified() => {}
                    _ = tokio::time::sleep(lane.cfg.poll_interval) => {}
                }
            }
            Ok(batch) => {
                error_pause = Duration::from_millis(100);
                let mut first = Some(first);
                let probe = matches!(gate, Gate::Probe(_));
                let mut spawned = 0u32;
                for claimed in batch {
                    // Only this loop takes permits, and it asked for no more than were free.
                    let permit = match first.take() {
                        Some(p) => p,
                        None => match lane.permits.clone().try_acquire_owned() {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    spawned += 1;
                    tracker.spawn(super::settle::deliver(
                        queue.clone(),
                        lane.clone(),
                        claimed,
                        probe,
                        permit,
                        hard_stop.clone(),
                    ));
                }
                // Probes the breaker offered but no delivery carries (fewer due messages or
                // permits than probes) go back, or the half-open breaker would wait for
                // verdicts that never come.
                if let Gate::Probe(n) = gate {
                    lane.breaker().probes_unused(n.saturating_sub(spawned));
                }
            }
            Err(e) => {
                if let Gate::Probe(n) = gate {
                    lane.breaker().probes_unused(n);
                }
                drop(first);
                lane.redis.store_failed(&e, "cannot claim from the queue");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(error_pause) => {}
                }
                error_pause = (error_pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub(super) async fn reaper(handle: EngineHandle, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        for name in handle.lanes.keys() {
            let asked = std::time::Instant::now();
            match handle.queue.reap(name, now_ms()).await {
                Ok(0) => handle.redis.ok_since(asked),
                Ok(n) => {
                    handle.redis.ok_since(asked);
                    tracing::warn!(destination = %name, returned = n, "returned expired leases to the queue");
                    handle.wake(name);
                }
                Err(e) => handle.redis.store_failed(&e, "reaper cannot reach the queue"),
            }
        }
    }
}
