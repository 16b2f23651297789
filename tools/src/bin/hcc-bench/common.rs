//! What every phase of the bench shares: the Redis of the run, the gateway under measurement
//! (its own process when the binary sits beside this one), load, waiting, filling a queue, and
//! leaving Redis as it was found.

use super::*;

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(super) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(super) fn redis_host_port(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("redis://")?;
    let hostport = rest.split('/').next()?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    Some((host.to_string(), port.to_string()))
}

pub(super) fn redis_baseline(t: &Target) -> Option<f64> {
    let (host, port) = redis_host_port(t.nodes.first().unwrap_or(&t.url))?;
    let mut cmd = std::process::Command::new("redis-benchmark");
    cmd.args(["-h", &host, "-p", &port, "-t", "lpush", "-c", "64", "-n", "200000", "-q"]);
    if t.is_cluster() {
        cmd.arg("--cluster");
    }
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "LPUSH: 123456.79 requests per second, p50=0.263 msec"
    let line = text.split(['\r', '\n']).rev().find(|l| l.contains("LPUSH:"))?;
    line.split("LPUSH:").nth(1)?.split_whitespace().next()?.parse().ok()
}

pub(super) fn dossier(ma: &str, status: u8) -> Value {
    json!({"MaHoSo": ma, "MaTTHC": "1.004227.000.00.00.H46", "TrangThaiHoSo": status, "NgayTiepNhan": "20241125083000", "ChuHoSo": "Bench", "LoaiDoiTuong": 1,
           "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "MaPhiLePhi": "LP01", "HinhThucThu": 2, "Gia": 100000, "LoaiPhiLePhi": 2}]})
}

pub(super) fn settings(redis: &Target, prefix: &str, portal: &str, workers: usize) -> anyhow::Result<hcc_config::Settings> {
    settings_with(redis, prefix, portal, workers, &[])
}

/// [`settings`] with `extra` `HCC__...` pairs on top (they win over the bench's own).
pub(super) fn settings_with(
    redis: &Target,
    prefix: &str,
    portal: &str,
    workers: usize,
    extra: &[(&'static str, String)],
) -> anyhow::Result<hcc_config::Settings> {
    let mut src = hcc_config::Source::from_process_env();
    for (k, v) in [
        ("HCC__SERVER__BIND", "127.0.0.1:0".to_string()),
        ("HCC__QUEUE__BACKEND", "redis".into()),
        ("HCC__QUEUE__KEY_PREFIX", prefix.into()),
        ("HCC__QUEUE__POOL_SIZE", "64".into()),
        ("HCC__DVCQG__BASE_URL", portal.into()),
        ("HCC__CENTRE__WEBHOOK_URL", String::new()),
        ("HCC__DELIVERY__CONCURRENCY", workers.to_string()),
        ("HCC__LOG__LEVEL", "error".into()),
    ]
    .into_iter()
    .chain(redis.queue_vars())
    .chain(extra.iter().cloned())
    {
        src.vars.insert(k.into(), v);
    }
    Ok(hcc_config::load(&src)?)
}

/// Posts `n` dossiers at `concurrency`; returns (elapsed, sorted latencies in ms, ids).
pub(super) async fn load(base: &str, n: usize, concurrency: usize, tag: &str) -> anyhow::Result<(Duration, Vec<f64>, Vec<String>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url, tag) = (client.clone(), next.clone(), format!("{base}/v1/dossiers"), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = dossier(&format!("{tag}-{:05}", i % 10_000), 1 + (i / 10_000 % 2) as u8);
                let t = Instant::now();
                let r = client.post(&url).bearer_auth("dev-centre-key").json(&body).send().await;
                let ok = match r {
                    Ok(r) if r.status() == 202 => r.json::<Value>().await.ok(),
                    _ => None,
                };
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if let Some(v) = ok {
                    ids.push(v["id"].as_str().unwrap_or_default().to_string());
                }
            }
            (lat, ids)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        let (l, i) = t.await?;
        lat.extend(l);
        ids.extend(i);
    }
    let elapsed = started.elapsed();
    lat.sort_by(f64::total_cmp);
    Ok((elapsed, lat, ids))
}

pub(super) async fn wait_delivered(queue: &MessageQueue, dest: &str, n: u64, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let s = queue.stats(dest, now_ms()).await?;
        if s.delivered_total >= n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            anyhow::bail!("only {} of {n} delivered after {limit:?}", s.delivered_total);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) type PayloadFn = dyn Fn(usize) -> (String, Vec<u8>) + Send + Sync;

pub(super) async fn fill(queue: &MessageQueue, dest: &str, kind: &str, n: usize, payload: Arc<PayloadFn>) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for part in 0..16 {
        let (queue, dest, kind, payload) = (queue.clone(), dest.to_string(), kind.to_string(), payload.clone());
        tasks.push(tokio::spawn(async move {
            for i in (part..n).step_by(16) {
                let (key, body) = payload(i);
                match queue
                    .enqueue(
                        &dest,
                        NewMessage {
                            kind: kind.clone(),
                            ordering_key: key,
                            payload: body,
                        },
                        None,
                        now_ms(),
                    )
                    .await
                {
                    Ok(Enqueued::Accepted(_)) => {}
                    other => return Err(anyhow::anyhow!("enqueue failed: {other:?}")),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Starts the engine on every destination the settings configure.
pub(super) fn engine_for(
    queue: &MessageQueue,
    s: &hcc_config::Settings,
    extra: Option<Arc<dyn Adapter>>,
) -> anyhow::Result<hcc_gateway::engine::Engine> {
    let mut adapters = hcc_gateway::app::build_adapters(s, &hcc_adapters::standard())?;
    adapters.extend(extra);
    let mut builder = EngineBuilder::new(queue.clone(), Duration::from_secs(1));
    for ad in adapters {
        let cfg = LaneConfig::from_settings(s, ad.destination());
        builder = builder.destination(ad, cfg);
    }
    Ok(builder.start())
}

/// A gateway under measurement: a separate `hcc-gateway serve` process when the binary sits
/// beside this one (so its own peak memory can be read), otherwise in this process.
pub(super) struct Served {
    pub(super) base: String,
    pub(super) queue: MessageQueue,
    pub(super) child: Option<std::process::Child>,
    in_process: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl Served {
    /// The gateway process's peak resident memory, when it is a separate process.
    pub(super) fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// The CPU time (user and system, seconds) the gateway process has used so far, when it is
    /// a separate process.
    pub(super) fn cpu_secs(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    pub(super) async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        if let Some((tx, server)) = self.in_process.take() {
            let _ = tx.send(());
            let _ = server.await;
        }
    }
}

pub(super) async fn serve(redis: &Target, prefix: &str, portal: &str, workers: usize, with_workers: Workers) -> anyhow::Result<Served> {
    serve_with(redis, prefix, portal, workers, with_workers, &[]).await
}

/// [`serve`] with `extra` `HCC__...` pairs in the gateway's environment (they win over the
/// bench's own), e.g. the evidence log's settings.
pub(super) async fn serve_with(
    redis: &Target,
    prefix: &str,
    portal: &str,
    workers: usize,
    with_workers: Workers,
    extra: &[(&'static str, String)],
) -> anyhow::Result<Served> {
    let sibling = std::env::current_exe()?.with_file_name("hcc-gateway");
    if sibling.is_file() {
        return serve_binary(&sibling, redis, prefix, portal, workers, with_workers, extra).await;
    }
    let queue = redis.queues(redis.store(8, prefix)?);
    let app = Application::build(settings_with(redis, prefix, portal, workers, extra)?, with_workers).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    Ok(Served {
        base,
        queue,
        child: None,
        in_process: Some((tx, server)),
    })
}

/// A gateway under measurement as its own process, from the binary `bin` (the one beside this
/// bench, or another build to compare with).
pub(super) async fn serve_binary(
    bin: &std::path::Path,
    redis: &Target,
    prefix: &str,
    portal: &str,
    workers: usize,
    with_workers: Workers,
    extra: &[(&'static str, String)],
) -> anyhow::Result<Served> {
    let queue = redis.queues(redis.store(8, prefix)?);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("serve");
    if with_workers == Workers::Off {
        cmd.arg("--no-workers");
    }
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    cmd.env("HCC_CONFIG_DIR", config_dir)
        .env("HCC__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("HCC__QUEUE__BACKEND", "redis")
        .env("HCC__QUEUE__KEY_PREFIX", prefix)
        .env("HCC__QUEUE__POOL_SIZE", "64")
        .env("HCC__DVCQG__BASE_URL", portal)
        .env("HCC__CENTRE__WEBHOOK_URL", "")
        .env("HCC__DELIVERY__CONCURRENCY", workers.to_string())
        .env("HCC__LOG__LEVEL", "error")
        .envs(redis.queue_vars())
        .envs(extra.iter().cloned())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = cmd.spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        anyhow::ensure!(Instant::now() < deadline, "hcc-gateway serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Served {
        base,
        queue,
        child: Some(child),
        in_process: None,
    })
}

pub(super) fn fresh_prefix() -> String {
    format!("bench-{}", uuid::Uuid::new_v4().simple())
}

pub(super) fn cleanup(redis: &Target, prefixes: &[String]) {
    // Leave Redis as we found it. On a cluster each master is asked for the keys it holds and
    // unlinks them itself (a replica's `MOVED` answers are ignored), so no command crosses slots.
    for node in &redis.nodes {
        if let Some((host, port)) = redis_host_port(node) {
            for prefix in prefixes {
                let _ = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "redis-cli -h {host} -p {port} --scan --pattern '{prefix}:*' | sed 's/^/UNLINK /' | redis-cli -h {host} -p {port} >/dev/null"
                    ))
                    .status();
            }
        }
    }
    if redis.is_cluster() {
        return;
    }
    if let Some((host, port)) = redis_host_port(&redis.url) {
        for prefix in prefixes {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("redis-cli -h {host} -p {port} --scan --pattern '{prefix}:*' | xargs -r -n 500 redis-cli -h {host} -p {port} del >/dev/null"))
                .status();
        }
    }
}
