//! The sizing phases: the backlog drain (a portal outage's backlog delivered by one engine)
//! and `--only scale` (the raw Redis baseline, HTTP ingest and the drain).

use super::*;

/// The backlog-drain phase: `n` portal updates queued while the portal was away, then drained
/// by one engine; returns the time to deliver them all.
pub(super) async fn drain_phase(redis: &Target, prefix: &str, portal: &str, workers: usize, n: usize) -> anyhow::Result<Duration> {
    let bq = redis.queues(redis.store(64, prefix)?);
    fill(
        &bq,
        "dvcqg",
        "dossier.sync",
        n,
        Arc::new(|i| {
            let ma = format!("BKL-{:06}", i % 20_000);
            let body = serde_json::to_vec(&dossier(&ma, 1 + (i / 20_000 % 2) as u8)).unwrap_or_default();
            (ma, body)
        }),
    )
    .await?;
    let engine = engine_for(&bq, &settings(redis, prefix, portal, workers)?, None)?;
    let drain_t = wait_delivered(&bq, "dvcqg", n as u64, Duration::from_secs(1200)).await?;
    engine.shutdown(Duration::from_secs(5)).await;
    Ok(drain_t)
}

/// `--only scale`: the raw baseline, HTTP ingest with no workers, and the backlog drain.
pub(super) async fn scale_phase(a: &Args, target: &Target, prefixes: &mut Vec<String>) -> anyhow::Result<Value> {
    eprintln!("[scale 1/3] raw Redis baseline (redis-benchmark -t lpush -c 64)");
    let baseline = redis_baseline(target);
    let portal = hcc_mocks::dvcqg::spawn(
        "127.0.0.1:0",
        hcc_mocks::dvcqg::PortalState::new(hcc_mocks::dvcqg::PortalConfig::default()),
    )?;
    eprintln!("[scale 2/3] HTTP ingest: {} dossiers at {} connections", a.requests, a.concurrency);
    prefixes.push(fresh_prefix());
    let gw = serve(target, &prefixes[prefixes.len() - 1], &portal.url(), a.workers, Workers::Off).await?;
    let (ingest_t, ingest_lat, ingest_ids) = load(&gw.base, a.requests, a.concurrency, "ING").await?;
    gw.stop().await;
    eprintln!("[scale 3/3] backlog drain: {} portal updates", a.backlog);
    prefixes.push(fresh_prefix());
    let drain_t = drain_phase(target, &prefixes[prefixes.len() - 1], &portal.url(), a.workers, a.backlog).await?;
    portal.stop().await;
    Ok(json!({
        "redis_mode": if target.is_cluster() { "cluster" } else { "standalone" },
        "partitions": target.partitions,
        "redis_lpush_baseline_rps": baseline,
        "ingest": {"requests": a.requests, "accepted": ingest_ids.len(), "concurrency": a.concurrency,
                   "rate_per_s": ingest_ids.len() as f64 / ingest_t.as_secs_f64(),
                   "p50_ms": percentile(&ingest_lat, 0.5), "p99_ms": percentile(&ingest_lat, 0.99)},
        "backlog_drain": {"messages": a.backlog, "workers": a.workers, "seconds": drain_t.as_secs_f64(),
                          "rate_per_s": a.backlog as f64 / drain_t.as_secs_f64()},
    }))
}
