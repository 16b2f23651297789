//! The throughput phases of a full run: HTTP ingest (no workers), delivery of a pre-filled
//! queue to an HTTP sink that answers at once, and end to end (HTTP in, the mock portal out).

use super::*;

/// What the ingest phase measured.
pub(super) struct Ingest {
    /// The gateway ran as its own process (its memory is its own).
    pub(super) separate: bool,
    /// Sorted request latencies, ms.
    pub(super) latencies: Vec<f64>,
    /// The ids of the accepted messages.
    pub(super) accepted: Vec<String>,
    pub(super) peak_rss: Option<f64>,
    pub(super) rate: f64,
}

/// `--requests` dossiers at `--concurrency` connections to a gateway without workers.
pub(super) async fn ingest_phase(a: &Args, target: &Target, prefix: &str, portal: &str) -> anyhow::Result<Ingest> {
    let gw = serve(target, prefix, portal, a.workers, Workers::Off).await?;
    let separate = gw.child.is_some();
    let (t, latencies, accepted) = load(&gw.base, a.requests, a.concurrency, "ING").await?;
    let peak_rss = gw.peak_rss_mib();
    gw.stop().await;
    let rate = accepted.len() as f64 / t.as_secs_f64();
    Ok(Ingest {
        separate,
        latencies,
        accepted,
        peak_rss,
        rate,
    })
}

/// `--deliveries` queued webhooks delivered by one engine to a sink that answers at once:
/// the time, the rate, and the sink (stopped by the caller with the portal).
pub(super) async fn delivery_phase(a: &Args, target: &Target, prefix: &str) -> anyhow::Result<(Duration, f64, hcc_mocks::Running)> {
    let secret = hcc_signing::webhook::WebhookSecret::parse("whsec_ZGV2LWNlbnRyZS13ZWJob29rLXNlY3JldA==")?;
    let (sink, _sink_state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret.clone())?;
    let dq = target.queues(target.store(64, prefix)?);
    fill(
        &dq,
        "centre",
        "bench.event",
        a.deliveries,
        Arc::new(|i| (format!("k{}", i % 5000), format!("{{\"seq\":{i}}}").into_bytes())),
    )
    .await?;
    let ds = settings(target, prefix, "", a.workers)?;
    let sink_adapter: Arc<dyn Adapter> = Arc::new(hcc_adapters::webhook::WebhookAdapter::new(
        format!("{}/webhooks", sink.url()),
        secret,
        Duration::from_secs(10),
    )?);
    let engine = engine_for(&dq, &ds, Some(sink_adapter))?;
    let t = wait_delivered(&dq, "centre", a.deliveries as u64, Duration::from_secs(600)).await?;
    engine.shutdown(Duration::from_secs(5)).await;
    Ok((t, a.deliveries as f64 / t.as_secs_f64(), sink))
}

/// What the end-to-end phase measured: the accepted ids, the rate, the HTTP latencies and the
/// accepted-to-portal latencies (sorted, ms), and the gateway's peak memory.
pub(super) type EndToEnd = (Vec<String>, f64, Vec<f64>, Vec<f64>, Option<f64>);

/// `n` dossiers over HTTP to a gateway with workers, each delivered to the mock portal.
pub(super) async fn e2e_phase(a: &Args, target: &Target, prefix: &str, portal: &str, n: usize) -> anyhow::Result<EndToEnd> {
    let gw = serve(target, prefix, portal, a.workers, Workers::On).await?;
    let started = Instant::now();
    let (_, http_lat, ids) = load(&gw.base, n, a.concurrency, "E2E").await?;
    wait_delivered(&gw.queue, "dvcqg", ids.len() as u64, Duration::from_secs(600)).await?;
    let t = started.elapsed();
    let mut lat = Vec::new();
    for id in ids.iter().step_by((ids.len() / 2000).max(1)) {
        if let Some(r) = gw.queue.get("dvcqg", id).await?
            && let Some(d) = r.delivered_at
        {
            lat.push((d - r.created_at) as f64);
        }
    }
    lat.sort_by(f64::total_cmp);
    let peak = gw.peak_rss_mib();
    gw.stop().await;
    let rate = ids.len() as f64 / t.as_secs_f64();
    Ok((ids, rate, http_lat, lat, peak))
}
