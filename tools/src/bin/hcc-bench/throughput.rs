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
    Ok(e2e_phase_with(a, target, prefix, portal, n, &[]).await?.0)
}

/// Where the machine's CPU went from the first request to the last delivery (seconds).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CpuUse {
    /// The gateway process (None when it runs in this process).
    pub(super) gateway: Option<f64>,
    /// This process: the load client and the mocks.
    pub(super) bench: f64,
    /// The Redis server, when it runs on this machine (standalone).
    pub(super) redis: Option<f64>,
    /// Every core of the machine, busy (all processes).
    pub(super) machine: f64,
    pub(super) wall: f64,
}

impl CpuUse {
    /// What the processes other than the gateway, the bench and Redis used (whatever else runs
    /// on the machine): the noise to read the figures against.
    pub(super) fn others(&self) -> f64 {
        (self.machine - self.bench - self.gateway.unwrap_or(0.0) - self.redis.unwrap_or(0.0)).max(0.0)
    }
}

/// The pid of a standalone Redis that runs on this machine (`INFO server`'s `process_id`, when
/// `/proc` shows a redis process by that id).
pub(super) fn local_redis_pid(t: &Target) -> Option<u32> {
    if t.is_cluster() {
        return None;
    }
    let (host, port) = redis_host_port(&t.url)?;
    let out = std::process::Command::new("redis-cli")
        .args(["-h", &host, "-p", &port, "info", "server"])
        .output()
        .ok()?;
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    comm.contains("redis").then_some(pid)
}

pub(super) fn pid_cpu_secs(pid: Option<u32>) -> Option<f64> {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?)
}

/// User and system CPU seconds of a `/proc/.../stat` text (utime and stime, fields 14 and 15,
/// in USER_HZ ticks, 100 on Linux).
pub(super) fn stat_cpu_secs(stat: &str) -> Option<f64> {
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The machine's busy CPU seconds so far, all cores (`/proc/stat`: everything but idle and
/// iowait).
fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy as f64 / 100.0
}

fn self_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu_secs(&s))
        .unwrap_or(0.0)
}

/// [`e2e_phase`] with `extra` `HCC__...` pairs in the gateway's settings; also where the CPU
/// went from the first request to the last delivery.
pub(super) async fn e2e_phase_with(
    a: &Args,
    target: &Target,
    prefix: &str,
    portal: &str,
    n: usize,
    extra: &[(&'static str, String)],
) -> anyhow::Result<(EndToEnd, CpuUse)> {
    let gw = serve_with(target, prefix, portal, a.workers, Workers::On, extra).await?;
    // The gateway is stopped whatever happens, so a failed measurement leaves no process behind.
    let measured = measure_e2e(a, &gw, n, local_redis_pid(target)).await;
    gw.stop().await;
    measured
}

async fn measure_e2e(a: &Args, gw: &Served, n: usize, redis_pid: Option<u32>) -> anyhow::Result<(EndToEnd, CpuUse)> {
    let (gw_before, bench_before, redis_before, machine_before) =
        (gw.cpu_secs(), self_cpu_secs(), pid_cpu_secs(redis_pid), machine_busy_secs());
    let started = Instant::now();
    let (_, http_lat, ids) = load(&gw.base, n, a.concurrency, "E2E").await?;
    wait_delivered(&gw.queue, "dvcqg", ids.len() as u64, Duration::from_secs(600)).await?;
    let t = started.elapsed();
    let cpu = CpuUse {
        gateway: gw_before.zip(gw.cpu_secs()).map(|(b, e)| e - b),
        bench: self_cpu_secs() - bench_before,
        redis: redis_before.zip(pid_cpu_secs(redis_pid)).map(|(b, e)| e - b),
        machine: machine_busy_secs() - machine_before,
        wall: t.as_secs_f64(),
    };
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
    let rate = ids.len() as f64 / t.as_secs_f64();
    Ok(((ids, rate, http_lat, lat, peak), cpu))
}
