//! Paced replay of dead letters: `POST /v1/queues/{name}/dead/replay` with `rate_per_sec`
//! records a job (the matching ids, the rate) in the store, and a runner replays one id every
//! `1 / rate` seconds. The job lives in the store under a lease the runner renews, so when the
//! process running it dies, another process's supervisor ([`supervise`]) takes it over once
//! the lease runs out and goes on from the first id not yet counted done; an id is taken off
//! the job only after it was replayed, and replaying an id that is no longer dead does nothing,
//! so a take-over neither skips nor doubles a replay. One job runs per queue at a time; an admin
//! cancels it (`DELETE /v1/queues/{name}/dead/replay`), which marks it cancelled in the store:
//! its runner, in whichever process, finds the lease gone at its next renewal (at most a second
//! later; at most the one letter being replayed then is replayed) and stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::EngineHandle;
use crate::storage::{ReplayStep, StorageError, now_ms};

/// How long a runner's claim on a job lasts without renewal; renewed at least every second.
const LEASE: Duration = Duration::from_secs(5);
/// How often every process looks for a running job whose runner is gone.
const SUPERVISE_EVERY: Duration = Duration::from_secs(2);
/// The most dead letters one replay request takes (paced or not); the ids are taken when it
/// starts, so a letter that dies again meanwhile is not replayed twice by the same request.
pub const MAX_JOB_IDS: usize = 10_000;
/// The slowest pace a replay takes, letters per second: one every 10 s. Slower would hold the
/// queue's one replay for days (10,000 letters at 0.1/s take 28 h already).
pub const MIN_RATE: f64 = 0.1;
/// The fastest pace, letters per second.
pub const MAX_RATE: f64 = 1000.0;

/// Runs `queue`'s job while this process holds its lease. Returns when the job is finished,
/// another process holds it, or `stop` fires.
pub async fn run(engine: EngineHandle, queue: String, stop: CancellationToken) -> Result<(), StorageError> {
    // Each run is an owner of its own, so two runs never share a lease, even in one process.
    let owner = uuid::Uuid::new_v4().to_string();
    let q = &engine.queue;
    let Some(job) = q.replay_job(&queue).await? else {
        return Ok(());
    };
    if !q
        .replay_job_lease(&queue, &owner, now_ms() + LEASE.as_millis() as i64, now_ms())
        .await?
    {
        return Ok(());
    }
    // The API takes 0.1 to 1000 ([`MIN_RATE`], [`MAX_RATE`]); a job stored by an older version
    // with another rate is held to the same bounds.
    let interval = Duration::from_secs_f64(1.0 / job.rate_per_sec.clamp(MIN_RATE, MAX_RATE));
    tracing::info!(queue, job = %job.id, rate = job.rate_per_sec, "running a paced replay");
    // The k-th replay of this run is due at start + k * interval: steady, without drift.
    let start = tokio::time::Instant::now();
    let mut k: u32 = 0;
    loop {
        let due = start + interval * k;
        // Sleep in slices of at most a second, renewing the lease in between.
        loop {
            let now = tokio::time::Instant::now();
            if now >= due {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep((due - now).min(Duration::from_secs(1))) => {}
            }
            if !q
                .replay_job_lease(&queue, &owner, now_ms() + LEASE.as_millis() as i64, now_ms())
                .await?
            {
                return Ok(());
            }
        }
        if !q
            .replay_job_lease(&queue, &owner, now_ms() + LEASE.as_millis() as i64, now_ms())
            .await?
        {
            return Ok(());
        }
        match q.replay_job_next(&queue, &owner, now_ms()).await? {
            ReplayStep::Replay(id) => {
                q.replay(&queue, &id, now_ms()).await?;
                engine.wake(&queue);
                if q.replay_job_done(&queue, &owner, &id, now_ms()).await?.is_none() {
                    return Ok(());
                }
                k = k.saturating_add(1);
            }
            ReplayStep::Finished => {
                tracing::info!(queue, job = %job.id, "paced replay finished");
                return Ok(());
            }
            ReplayStep::Lost => return Ok(()),
        }
    }
}

/// On every process: every [`SUPERVISE_EVERY`], starts a run of any queue's running job (the
/// run stops at once unless the job's lease is free, that is its runner died), until the
/// process's background work stops.
pub async fn supervise(engine: EngineHandle) {
    let stop = engine.background().token();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
        }
        let queues: Vec<String> = engine.destinations().map(str::to_string).collect();
        for queue in queues {
            let running = matches!(engine.queue.replay_job(&queue).await, Ok(Some(j)) if j.state == "running");
            if running {
                spawn(engine.clone(), queue);
            }
        }
    }
}

/// Runs `queue`'s job in the background (see [`run`]), owned by the process's
/// [`crate::background::Background`]: it stops when the process shuts down.
pub fn spawn(engine: EngineHandle, queue: String) {
    let background = engine.background().clone();
    let stop = background.token();
    background.spawn(async move {
        if let Err(e) = run(engine, queue.clone(), stop).await {
            tracing::warn!(queue, error = %e, "paced replay interrupted; another run takes it over after its lease");
        }
    });
}
