//! `hcc-bench`: the figures the issues ask for, printed as a table and as JSON. Not a test: it
//! asserts nothing. Everything runs in this one process on loopback (gateway, mocks, load
//! client), against the Redis given, so the figures are what one small machine does alone.
//!
//! Phases: a raw Redis baseline (`redis-benchmark -t lpush -c 64`), HTTP ingest at N
//! concurrent connections, delivery of a pre-filled queue to an HTTP sink that answers at once,
//! end to end (HTTP in, portal out), the drain of a portal backlog after an outage, and a flaky
//! portal (20% 503, 10% dropped connections, 3 s sessions: 420 updates over 60 dossiers, five
//! runs, the time from the last acceptance to the last delivery). `--only flaky` runs that
//! phase alone; `--only scale` runs the baseline, ingest and backlog drain alone, the figures
//! that size a deployment. `--redis-mode cluster --redis-nodes ...` runs on a Redis Cluster
//! (with `--partitions`), the baseline then being `redis-benchmark --cluster`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hcc_adapters::Adapter;
use hcc_gateway::app::{Application, Workers};
use hcc_gateway::engine::{EngineBuilder, LaneConfig};
use hcc_gateway::storage::{Enqueued, MessageQueue, NewMessage, Store, now_ms};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Measures hcc-gateway on this machine: ingest, delivery, end-to-end, backlog drain, with a raw Redis baseline")]
struct Args {
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis: String,
    /// Requests for the ingest phase (the end-to-end phase sends a fifth of it).
    #[arg(long, default_value_t = 50_000)]
    requests: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Messages in the delivery phase.
    #[arg(long, default_value_t = 50_000)]
    deliveries: usize,
    /// Messages in the backlog-drain phase.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Delivery workers per destination.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Only the signature figures (sign/verify per second), nothing that needs Redis.
    #[arg(long)]
    signatures_only: bool,
    /// Also write the JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Run one phase alone.
    #[arg(long, value_enum)]
    only: Option<Phase>,
    /// Runs of the flaky-portal phase.
    #[arg(long, default_value_t = 5)]
    flaky_runs: usize,
    /// How long one flaky-portal run may take to deliver everything before it is reported as
    /// unfinished (seconds).
    #[arg(long, default_value_t = 600)]
    flaky_limit_secs: u64,
    /// Partitions per destination queue (`queue.partitions`), for a Redis Cluster run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    partitions: u16,
    /// `standalone` uses `--redis`; `cluster` uses `--redis-nodes` (`queue.redis_mode`).
    #[arg(long, value_enum, default_value = "standalone")]
    redis_mode: RedisMode,
    /// A Redis Cluster's nodes, comma-separated `redis://host:port` URLs (`queue.redis_nodes`);
    /// every node is listed, so that clean-up reaches every master.
    #[arg(long, value_delimiter = ',')]
    redis_nodes: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RedisMode {
    Standalone,
    Cluster,
}

/// The Redis of this run and how its queues are laid out, made once from the arguments and
/// handed to every phase: no process globals.
struct Target {
    /// `--redis`: the standalone server (the first node names a cluster's host otherwise).
    url: String,
    /// The cluster's nodes when `--redis-mode cluster`; empty on standalone.
    nodes: Vec<String>,
    /// `--partitions`: every queue and gateway of the run uses it.
    partitions: u16,
}

impl Target {
    fn from_args(a: &Args) -> anyhow::Result<Target> {
        let nodes = if a.redis_mode == RedisMode::Cluster {
            anyhow::ensure!(!a.redis_nodes.is_empty(), "--redis-mode cluster needs --redis-nodes");
            a.redis_nodes.clone()
        } else {
            Vec::new()
        };
        Ok(Target {
            url: a.redis.clone(),
            nodes,
            partitions: a.partitions,
        })
    }

    fn is_cluster(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// A store on this Redis: the URL on standalone, the cluster's nodes on a cluster.
    fn store(&self, pool_size: usize, prefix: &str) -> anyhow::Result<Store> {
        if !self.is_cluster() {
            return Ok(Store::redis(&self.url, pool_size, prefix)?);
        }
        Ok(Store::redis_with(&hcc_gateway::storage::RedisOptions {
            topology: hcc_gateway::storage::RedisTopology::Cluster { nodes: self.nodes.clone() },
            pool_size,
            prefix: prefix.to_string(),
            min_replicas: 0,
            replica_timeout: Duration::from_secs(1),
        })?)
    }

    /// The `HCC__QUEUE__...` settings that point a gateway at this Redis and lay out its queues.
    fn queue_vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("HCC__QUEUE__REDIS_URL", self.url.clone()),
            ("HCC__QUEUE__PARTITIONS", self.partitions.to_string()),
        ];
        if self.is_cluster() {
            v.push(("HCC__QUEUE__REDIS_MODE", "cluster".into()));
            v.push(("HCC__QUEUE__REDIS_NODES", self.nodes.join(",")));
        }
        v
    }

    /// The queues of a store, laid out as the gateways of this run lay them out.
    fn queues(&self, store: Store) -> MessageQueue {
        store
            .queue()
            .with_partitions(self.partitions, [hcc_gateway::payments::EVENTS_QUEUE])
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// The flaky portal: 30% faults, 3 s sessions, 420 updates over 60 dossiers.
    Flaky,
    /// The raw Redis baseline, HTTP ingest and the backlog drain: the sizing figures.
    Scale,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
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

fn redis_host_port(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("redis://")?;
    let hostport = rest.split('/').next()?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    Some((host.to_string(), port.to_string()))
}

fn redis_baseline(t: &Target) -> Option<f64> {
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

fn dossier(ma: &str, status: u8) -> Value {
    json!({"MaHoSo": ma, "MaTTHC": "1.004227.000.00.00.H46", "TrangThaiHoSo": status, "NgayTiepNhan": "20241125083000", "ChuHoSo": "Bench", "LoaiDoiTuong": 1,
           "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "MaPhiLePhi": "LP01", "HinhThucThu": 2, "Gia": 100000, "LoaiPhiLePhi": 2}]})
}

fn settings(redis: &Target, prefix: &str, portal: &str, workers: usize) -> anyhow::Result<hcc_config::Settings> {
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
    {
        src.vars.insert(k.into(), v);
    }
    Ok(hcc_config::load(&src)?)
}

/// Posts `n` dossiers at `concurrency`; returns (elapsed, sorted latencies in ms, ids).
async fn load(base: &str, n: usize, concurrency: usize, tag: &str) -> anyhow::Result<(Duration, Vec<f64>, Vec<String>)> {
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

async fn wait_delivered(queue: &MessageQueue, dest: &str, n: u64, limit: Duration) -> anyhow::Result<Duration> {
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

type PayloadFn = dyn Fn(usize) -> (String, Vec<u8>) + Send + Sync;

async fn fill(queue: &MessageQueue, dest: &str, kind: &str, n: usize, payload: Arc<PayloadFn>) -> anyhow::Result<()> {
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
fn engine_for(
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
struct Served {
    base: String,
    queue: MessageQueue,
    child: Option<std::process::Child>,
    in_process: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl Served {
    /// The gateway process's peak resident memory, when it is a separate process.
    fn peak_rss_mib(&self) -> Option<f64> {
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

    async fn stop(mut self) {
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

async fn serve(redis: &Target, prefix: &str, portal: &str, workers: usize, with_workers: Workers) -> anyhow::Result<Served> {
    let queue = redis.queues(redis.store(8, prefix)?);
    let sibling = std::env::current_exe()?.with_file_name("hcc-gateway");
    if sibling.is_file() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = std::process::Command::new(&sibling);
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
        return Ok(Served {
            base,
            queue,
            child: Some(child),
            in_process: None,
        });
    }
    let app = Application::build(settings(redis, prefix, portal, workers)?, with_workers).await?;
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

fn fresh_prefix() -> String {
    format!("bench-{}", uuid::Uuid::new_v4().simple())
}

/// Calls `f` repeatedly for about a second; returns calls per second.
/// Stops at the first failure: a signature that failed fast would flatter the figure.
fn per_second(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) || n < 10 {
        f()?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `openssl speed rsa2048` on this machine: (sign/s, verify/s).
fn openssl_speed_rsa2048() -> Option<(f64, f64)> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa2048"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000700s 0.000021s   1428.6  47619.0"
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("rsa 2048") || l.trim_start().starts_with("rsa  2048"))?;
    let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let n = nums.len();
    (n >= 2).then(|| (nums[n - 2], nums[n - 1]))
}

fn signature_figures(softhsm: &std::path::Path) -> anyhow::Result<Value> {
    use hcc_signing::devpki::{CertSpec, DevPki, KeyKind, Role, issue};
    use hcc_signing::pki::{Identity, TrustStore};
    use hcc_signing::xml::dsig::{XmlTrust, sign_enveloped, verify_enveloped};
    let pki = DevPki::generate()?;
    let trust = TrustStore::from_certs(vec![pki.root.clone()])?;
    let (ek, ec) = issue(
        &CertSpec {
            common_name: "bench EC",
            key: KeyKind::EcP256,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        Some((&pki.root, &pki.root_key)),
    )?;
    let ec_id = Identity {
        key: ek.into(),
        cert: ec,
        chain: vec![],
    };
    let mut entries = String::new();
    let mut i = 0;
    while entries.len() < 1900 {
        entries.push_str(&format!("<Ntry><NtryRef>{i}</NtryRef><Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><RmtInf>HCC24112600{i:02}</RmtInf></Ntry>"));
        i += 1;
    }
    let xml = format!(
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\"><BkToCstmrDbtCdtNtfctn>{entries}</BkToCstmrDbtCdtNtfctn></Document>"
    );
    let content = xml.as_bytes().to_vec();
    let mut out = serde_json::Map::new();
    for (name, id) in [("rsa2048", &pki.gateway), ("p256", &ec_id)] {
        let sig = hcc_signing::cades::sign_detached(id, &content)?;
        out.insert(
            format!("cms_sign_{name}_per_s"),
            json!(per_second(|| {
                hcc_signing::cades::sign_detached(id, &content)?;
                Ok(())
            })?),
        );
        out.insert(
            format!("cms_verify_{name}_per_s"),
            json!(per_second(|| {
                let v = hcc_signing::cms::verify_detached(&sig, &content, &trust)?;
                anyhow::ensure!(v.valid && v.trusted, "the bench's own CMS signature does not verify: {v:?}");
                Ok(())
            })?),
        );
    }
    let signed = sign_enveloped(&content, &pki.gateway)?;
    out.insert(
        "xmldsig_sign_rsa2048_per_s".into(),
        json!(per_second(|| {
            sign_enveloped(&content, &pki.gateway)?;
            Ok(())
        })?),
    );
    out.insert(
        "xmldsig_verify_rsa2048_per_s".into(),
        json!(per_second(|| {
            verify_enveloped(&signed, &XmlTrust::Store(&trust))?;
            Ok(())
        })?),
    );
    out.insert("document_bytes".into(), json!(content.len()));

    // PAdES on a one-page result PDF: sign (parse, incremental update, CMS) and verify (find
    // every signature, check its byte range, verify the CMS, chain to the root).
    let pdf: &[u8] = include_bytes!("../../../tests/fixtures/pdf/result-classic.pdf");
    let pades_sign = |id: &Identity, visible: bool| -> anyhow::Result<Vec<u8>> {
        let options = hcc_signing::pades::SignOptions {
            visible,
            time: 1_764_000_000,
            reserve: hcc_signing::pades::contents_reserve(id, false),
        };
        Ok(hcc_signing::pades::sign(pdf, id, &options)?)
    };
    let signed_pdf = pades_sign(&pki.gateway, false)?;
    out.insert(
        "pades_sign_rsa2048_per_s".into(),
        json!(per_second(|| pades_sign(&pki.gateway, false).map(drop))?),
    );
    out.insert(
        "pades_sign_visible_rsa2048_per_s".into(),
        json!(per_second(|| pades_sign(&pki.gateway, true).map(drop))?),
    );
    out.insert(
        "pades_verify_rsa2048_per_s".into(),
        json!(per_second(|| {
            let report = hcc_signing::pades::verify(&signed_pdf, &trust)?;
            anyhow::ensure!(
                report.len() == 1 && report[0].valid && report[0].trusted,
                "the bench's own PDF does not verify"
            );
            Ok(())
        })?),
    );
    out.insert("pdf_bytes".into(), json!(pdf.len()));

    // The same key in a SoftHSM2 token (PKCS#11) against the PKCS#12 key above, when SoftHSM2 is
    // installed: the cost of the round trip through the module.
    match softhsm_identity(&pki, softhsm) {
        Ok(Some(token_id)) => {
            out.insert(
                "cms_sign_rsa2048_pkcs11_per_s".into(),
                json!(per_second(|| {
                    hcc_signing::cades::sign_detached(&token_id, &content)?;
                    Ok(())
                })?),
            );
            out.insert(
                "pades_sign_rsa2048_pkcs11_per_s".into(),
                json!(per_second(|| pades_sign(&token_id, false).map(drop))?),
            );
        }
        Ok(None) => eprintln!("softhsm2 is not installed: no PKCS#11 figures"),
        Err(e) => eprintln!("no PKCS#11 figures: {e:#}"),
    }
    if let Some((s, v)) = openssl_speed_rsa2048() {
        out.insert("openssl_speed_rsa2048_sign_per_s".into(), json!(s));
        out.insert("openssl_speed_rsa2048_verify_per_s".into(), json!(v));
    }
    Ok(Value::Object(out))
}

/// A folder removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A token in the bench's private SoftHSM2 (folder `dir`, set up by `main`) holding the
/// development gateway key (imported, so it is sensitive and not extractable), and the identity
/// that signs through it. `None` without SoftHSM2.
fn softhsm_identity(pki: &hcc_signing::devpki::DevPki, dir: &std::path::Path) -> anyhow::Result<Option<hcc_signing::pki::Identity>> {
    use anyhow::Context as _;
    let Some(module) = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file()) else {
        return Ok(None);
    };
    let key_pem = dir.join("gateway.key");
    std::fs::write(&key_pem, pki.gateway_key.private_key_to_pem_pkcs8()?)?;
    let cert_pem = dir.join("gateway.pem");
    std::fs::write(&cert_pem, pki.gateway.cert.to_pem()?)?;
    for args in [
        vec![
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "123456",
            "--so-pin",
            "12345678",
        ],
        vec![
            "--import",
            key_pem.to_str().unwrap_or_default(),
            "--token",
            "bench",
            "--label",
            "gateway",
            "--id",
            "01",
            "--pin",
            "123456",
        ],
    ] {
        let out = std::process::Command::new("softhsm2-util")
            .args(&args)
            .output()
            .context("softhsm2-util")?;
        anyhow::ensure!(
            out.status.success(),
            "softhsm2-util {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = hcc_signing::pkcs11::TokenConfig {
        module,
        token: "bench".into(),
        pin: "123456".into(),
        key_label: "gateway".into(),
    };
    let (id, _) = hcc_signing::pkcs11::token_identity(&config, &cert_pem)?;
    Ok(Some(id))
}

fn print_signatures(v: &Value) {
    println!("{:<46} {:>12}", "signature figure (one core)", "per second");
    if let Some(m) = v.as_object() {
        for (k, val) in m {
            println!("{:<46} {:>12.0}", k, val.as_f64().unwrap_or(0.0));
        }
    }
}

/// Dossiers and updates of the flaky-portal phase (issue 15): 60 dossiers, 7 updates each.
const FLAKY_DOSSIERS: usize = 60;
/// Each dossier's life in the flaky phase: (status, whether it is a progress entry).
const FLAKY_LIFE: &[(u8, bool)] = &[(1, false), (2, false), (4, true), (4, false), (9, true), (9, false), (10, false)];

fn flaky_update(ma: &str, step: usize) -> (String, Value) {
    let (status, is_progress) = FLAKY_LIFE[step];
    if is_progress {
        let body = json!({"MaHoSo": ma, "NguoiXuLy": "Bench", "ChucDanh": "Chuyên viên", "NoiDungXuLy": "Xử lý hồ sơ",
                          "ThoiDiemXuLy": format!("2024112609{:02}00", step), "TrangThai": status});
        (format!("/v1/dossiers/{ma}/progress"), body)
    } else {
        let mut body = dossier(ma, status);
        body["GhiChu"] = json!(format!("bước {step}"));
        ("/v1/dossiers".into(), body)
    }
}

/// Posts one update until the gateway accepts it, with one Idempotency-Key; its message id.
async fn post_accepted(client: &reqwest::Client, base: &str, path: &str, body: &Value, key: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = client
            .post(format!("{base}{path}"))
            .bearer_auth("dev-centre-key")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        if let Ok(r) = sent
            && r.status() == 202
            && let Ok(v) = r.json::<Value>().await
        {
            return Ok(v["id"].as_str().unwrap_or_default().to_string());
        }
        anyhow::ensure!(Instant::now() < deadline, "{path} ({key}) was not accepted within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One flaky-portal run's figure.
struct FlakyRun {
    /// Last acceptance to last delivery, from the messages' records; `None`: not all were
    /// delivered within the limit.
    seconds: Option<f64>,
    delivered: u64,
    portal: hcc_mocks::dvcqg::PortalCounters,
}

/// One run: a fresh portal at 30% faults with 3 s sessions, a fresh gateway, 420 updates
/// posted at once (ten producers, each dossier's updates in order), then the wait.
async fn flaky_run(redis: &Target, workers: usize, limit: Duration, prefix: &str) -> anyhow::Result<FlakyRun> {
    let state = hcc_mocks::dvcqg::PortalState::new(hcc_mocks::dvcqg::PortalConfig {
        session_lifetime: Duration::from_secs(3),
        ..hcc_mocks::dvcqg::PortalConfig::default()
    });
    state.set_faults(hcc_mocks::faults::Faults::flaky(0.2, 0.1));
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone())?;
    let gw = serve(redis, prefix, &portal.url(), workers, Workers::On).await?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let tag = &prefix[prefix.len() - 6..];
    let dossiers: Vec<String> = (0..FLAKY_DOSSIERS).map(|i| format!("FLK{tag}-{i:03}")).collect();
    let mut producers = Vec::new();
    for chunk in dossiers.chunks(FLAKY_DOSSIERS / 10) {
        let (client, base, chunk) = (client.clone(), gw.base.clone(), chunk.to_vec());
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for step in 0..FLAKY_LIFE.len() {
                for ma in &chunk {
                    let (path, body) = flaky_update(ma, step);
                    ids.push(post_accepted(&client, &base, &path, &body, &format!("{ma}-{step}")).await?);
                }
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for p in producers {
        ids.extend(p.await??);
    }
    let total = ids.len() as u64;
    let finished = wait_delivered(&gw.queue, "dvcqg", total, limit).await.is_ok();
    let mut last_created = 0;
    let mut last_delivered = 0;
    for id in &ids {
        if let Some(r) = gw.queue.get("dvcqg", id).await? {
            last_created = last_created.max(r.created_at);
            last_delivered = last_delivered.max(r.delivered_at.unwrap_or_default());
        }
    }
    let delivered = gw.queue.stats("dvcqg", now_ms()).await?.delivered_total;
    gw.stop().await;
    portal.stop().await;
    Ok(FlakyRun {
        seconds: finished.then(|| (last_delivered - last_created) as f64 / 1000.0),
        delivered,
        portal: state.counters(),
    })
}

/// The flaky-portal phase: `runs` runs; min/median/max of the time from the last acceptance
/// to the last delivery. An unfinished run counts as the limit, and is flagged.
async fn flaky_phase(redis: &Target, workers: usize, runs: usize, limit: Duration, prefixes: &mut Vec<String>) -> anyhow::Result<Value> {
    let total = FLAKY_DOSSIERS * FLAKY_LIFE.len();
    let mut times = Vec::new();
    let mut detail = Vec::new();
    for run in 1..=runs {
        prefixes.push(fresh_prefix());
        let prefix = prefixes.last().cloned().unwrap_or_default();
        let r = flaky_run(redis, workers, limit, &prefix).await?;
        let c = &r.portal;
        match r.seconds {
            Some(t) => eprintln!("    run {run}/{runs}: last acceptance -> last delivery {t:.1} s"),
            None => eprintln!("    run {run}/{runs}: only {} of {total} delivered after {limit:?}", r.delivered),
        }
        times.push(r.seconds.unwrap_or(limit.as_secs_f64()));
        detail.push(
            json!({"seconds": r.seconds, "delivered": r.delivered, "portal_logins": c.logins, "portal_failed_by_fault": c.failed_by_fault,
                           "portal_stale_session_answers": c.stale_session_answers, "portal_lookups": c.lookups,
                           "portal_duplicates": c.duplicates, "portal_backwards": c.backwards}),
        );
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(
        json!({"updates": total, "dossiers": FLAKY_DOSSIERS, "fail_503_share": 0.2, "drop_share": 0.1, "session_lifetime_s": 3,
              "workers": workers, "runs": runs, "limit_s": limit.as_secs(),
              "unfinished_runs": detail.iter().filter(|d| d["seconds"].is_null()).count(),
              "last_acceptance_to_last_delivery_s": {"min": sorted.first(), "median": percentile(&sorted, 0.5), "max": sorted.last(), "each": times},
              "per_run": detail}),
    )
}

fn print_flaky(v: &Value) {
    let t = &v["last_acceptance_to_last_delivery_s"];
    let f = |k: &str| t[k].as_f64().unwrap_or(0.0);
    println!(
        "{:<46} {:>12}",
        format!("flaky portal, {} runs: last accept -> last delivery (s)", v["runs"]),
        format!("{:.1}/{:.1}/{:.1}", f("min"), f("median"), f("max"))
    );
    println!(
        "{:<46} {:>12}",
        "  (min/median/max; unfinished runs)",
        v["unfinished_runs"].to_string()
    );
}

fn cleanup(redis: &Target, prefixes: &[String]) {
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

/// The backlog-drain phase: `n` portal updates queued while the portal was away, then drained
/// by one engine; returns the time to deliver them all.
async fn drain_phase(redis: &Target, prefix: &str, portal: &str, workers: usize, n: usize) -> anyhow::Result<Duration> {
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
async fn scale_phase(a: &Args, target: &Target, prefixes: &mut Vec<String>) -> anyhow::Result<Value> {
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

fn main() -> anyhow::Result<()> {
    // SoftHSM2 reads SOFTHSM2_CONF from the environment when its module is loaded; the
    // environment may only be changed while the process has one thread, so here, before the
    // runtime starts.
    let softhsm = ScratchDir(std::env::temp_dir().join(format!("hcc-bench-softhsm-{}", uuid::Uuid::new_v4().simple())));
    let conf = softhsm.path().join("softhsm2.conf");
    std::fs::create_dir_all(softhsm.path().join("tokens"))?;
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            softhsm.path().join("tokens").display()
        ),
    )?;
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(softhsm.path()));
    drop(softhsm);
    result
}

async fn run(softhsm: &std::path::Path) -> anyhow::Result<()> {
    let a = Args::parse();
    let target = Target::from_args(&a)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if a.signatures_only {
        let sigs = signature_figures(softhsm)?;
        print_signatures(&sigs);
        println!("{}", serde_json::to_string_pretty(&json!({"signatures": sigs}))?);
        return Ok(());
    }
    let redis_at = if target.is_cluster() {
        format!("cluster {}", target.nodes.join(","))
    } else {
        target.url.clone()
    };
    eprintln!("hcc-bench on {cores} cores, Redis at {redis_at}");
    let flaky_limit = Duration::from_secs(a.flaky_limit_secs);
    if a.only == Some(Phase::Flaky) {
        eprintln!(
            "[flaky] 420 updates over 60 dossiers to a portal at 30% faults with 3 s sessions, {} runs",
            a.flaky_runs
        );
        let mut prefixes = Vec::new();
        let flaky = flaky_phase(&target, a.workers, a.flaky_runs, flaky_limit, &mut prefixes).await;
        cleanup(&target, &prefixes);
        let report = json!({"machine": {"cores": cores}, "flaky_portal": flaky?});
        println!();
        print_flaky(&report["flaky_portal"]);
        println!();
        println!("{}", serde_json::to_string_pretty(&report)?);
        if let Some(path) = a.json {
            std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(());
    }

    if a.only == Some(Phase::Scale) {
        let mut prefixes = Vec::new();
        let scale = scale_phase(&a, &target, &mut prefixes).await;
        cleanup(&target, &prefixes);
        let report = json!({"machine": {"cores": cores}, "scale": scale?});
        let v = &report["scale"];
        println!(
            "baseline {} ops/s, ingest {:.0} msg/s (p50 {:.2} ms, p99 {:.2} ms), drain {:.0} msg/s",
            v["redis_lpush_baseline_rps"].as_f64().map_or("n/a".into(), |b| format!("{b:.0}")),
            v["ingest"]["rate_per_s"].as_f64().unwrap_or(0.0),
            v["ingest"]["p50_ms"].as_f64().unwrap_or(0.0),
            v["ingest"]["p99_ms"].as_f64().unwrap_or(0.0),
            v["backlog_drain"]["rate_per_s"].as_f64().unwrap_or(0.0)
        );
        println!("{}", serde_json::to_string_pretty(&report)?);
        if let Some(path) = a.json {
            std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(());
    }

    eprintln!("[1/6] raw Redis baseline (redis-benchmark -t lpush -c 64)");
    let baseline = redis_baseline(&target);

    let portal_state = hcc_mocks::dvcqg::PortalState::new(hcc_mocks::dvcqg::PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", portal_state.clone())?;
    let mut prefixes = Vec::new();

    eprintln!(
        "[2/6] HTTP ingest: {} dossiers at {} connections, no workers",
        a.requests, a.concurrency
    );
    prefixes.push(fresh_prefix());
    let gw = serve(&target, &prefixes[0], &portal.url(), a.workers, Workers::Off).await?;
    let separate = gw.child.is_some();
    let (ingest_t, ingest_lat, ingest_ids) = load(&gw.base, a.requests, a.concurrency, "ING").await?;
    let ingest_peak = gw.peak_rss_mib();
    gw.stop().await;
    let ingest_rate = ingest_ids.len() as f64 / ingest_t.as_secs_f64();

    eprintln!(
        "[3/6] delivery: {} queued webhooks to an HTTP sink that answers at once, {} workers",
        a.deliveries, a.workers
    );
    let secret = hcc_signing::webhook::WebhookSecret::parse("whsec_ZGV2LWNlbnRyZS13ZWJob29rLXNlY3JldA==")?;
    let (sink, _sink_state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret.clone())?;
    prefixes.push(fresh_prefix());
    let dq = target.queues(target.store(64, &prefixes[1])?);
    fill(
        &dq,
        "centre",
        "bench.event",
        a.deliveries,
        Arc::new(|i| (format!("k{}", i % 5000), format!("{{\"seq\":{i}}}").into_bytes())),
    )
    .await?;
    let ds = settings(&target, &prefixes[1], "", a.workers)?;
    let sink_adapter: Arc<dyn Adapter> = Arc::new(hcc_adapters::webhook::WebhookAdapter::new(
        format!("{}/webhooks", sink.url()),
        secret,
        Duration::from_secs(10),
    )?);
    let engine = engine_for(&dq, &ds, Some(sink_adapter))?;
    let delivery_t = wait_delivered(&dq, "centre", a.deliveries as u64, Duration::from_secs(600)).await?;
    engine.shutdown(Duration::from_secs(5)).await;
    let delivery_rate = a.deliveries as f64 / delivery_t.as_secs_f64();

    let e2e_n = a.requests / 5;
    eprintln!("[4/6] end to end: {e2e_n} dossiers over HTTP, delivered to the mock portal");
    prefixes.push(fresh_prefix());
    let gw = serve(&target, &prefixes[2], &portal.url(), a.workers, Workers::On).await?;
    let started = Instant::now();
    let (_, e2e_http_lat, e2e_ids) = load(&gw.base, e2e_n, a.concurrency, "E2E").await?;
    wait_delivered(&gw.queue, "dvcqg", e2e_ids.len() as u64, Duration::from_secs(600)).await?;
    let e2e_t = started.elapsed();
    let mut e2e_lat = Vec::new();
    for id in e2e_ids.iter().step_by((e2e_ids.len() / 2000).max(1)) {
        if let Some(r) = gw.queue.get("dvcqg", id).await?
            && let Some(d) = r.delivered_at
        {
            e2e_lat.push((d - r.created_at) as f64);
        }
    }
    e2e_lat.sort_by(f64::total_cmp);
    let e2e_peak = gw.peak_rss_mib();
    gw.stop().await;
    let e2e_rate = e2e_ids.len() as f64 / e2e_t.as_secs_f64();

    eprintln!(
        "[5/6] backlog drain: {} portal updates queued during an outage, then the portal returns",
        a.backlog
    );
    prefixes.push(fresh_prefix());
    let drain_t = drain_phase(&target, &prefixes[3], &portal.url(), a.workers, a.backlog).await?;
    portal.stop().await;
    sink.stop().await;

    eprintln!(
        "[6/6] flaky portal: 420 updates over 60 dossiers, 30% faults, 3 s sessions, {} runs",
        a.flaky_runs
    );
    let flaky = flaky_phase(&target, a.workers, a.flaky_runs, flaky_limit, &mut prefixes).await?;

    eprintln!("[+] signatures: CMS and XML-DSig on a 2 KB document");
    let sigs = signature_figures(softhsm)?;
    let p = |v: &[f64], q: f64| percentile(v, q);
    let report = json!({
        "signatures": sigs,
        "machine": {"cores": cores, "note": "gateway, mocks, load client and Redis share these cores"},
        "redis_lpush_baseline_rps": baseline,
        "ingest": {"requests": a.requests, "accepted": ingest_ids.len(), "concurrency": a.concurrency, "rate_per_s": ingest_rate,
                   "p50_ms": p(&ingest_lat, 0.5), "p99_ms": p(&ingest_lat, 0.99)},
        "delivery": {"messages": a.deliveries, "workers": a.workers, "rate_per_s": delivery_rate, "seconds": delivery_t.as_secs_f64()},
        "end_to_end": {"dossiers": e2e_ids.len(), "rate_per_s": e2e_rate, "http_p50_ms": p(&e2e_http_lat, 0.5), "http_p99_ms": p(&e2e_http_lat, 0.99),
                       "accept_to_portal_p50_ms": p(&e2e_lat, 0.5), "accept_to_portal_p99_ms": p(&e2e_lat, 0.99)},
        "backlog_drain": {"messages": a.backlog, "seconds": drain_t.as_secs_f64(), "rate_per_s": a.backlog as f64 / drain_t.as_secs_f64()},
        "flaky_portal": flaky,
        "peak_rss_mib": peak_rss_mib(),
        "gateway": {"separate_process": separate, "peak_rss_mib_ingest": ingest_peak, "peak_rss_mib_end_to_end": e2e_peak},
    });
    println!();
    println!("{:<46} {:>12}", "figure", "value");
    println!(
        "{:<46} {:>12}",
        "redis-benchmark -t lpush -c 64 (ops/s)",
        baseline.map_or("n/a".into(), |b| format!("{b:.0}"))
    );
    println!(
        "{:<46} {:>12.0}",
        format!("ingest over HTTP, c={} (msg/s)", a.concurrency),
        ingest_rate
    );
    println!("{:<46} {:>12.2}", "ingest p50 (ms)", p(&ingest_lat, 0.5));
    println!("{:<46} {:>12.2}", "ingest p99 (ms)", p(&ingest_lat, 0.99));
    println!("{:<46} {:>12.0}", "delivery to an HTTP sink (msg/s)", delivery_rate);
    println!("{:<46} {:>12.0}", "end to end, HTTP in -> portal (dossiers/s)", e2e_rate);
    println!("{:<46} {:>12.1}", "end to end, accepted -> at portal p50 (ms)", p(&e2e_lat, 0.5));
    println!("{:<46} {:>12.1}", "end to end, accepted -> at portal p99 (ms)", p(&e2e_lat, 0.99));
    println!(
        "{:<46} {:>12.1}",
        format!("drain a {} backlog (s)", a.backlog),
        drain_t.as_secs_f64()
    );
    print_flaky(&report["flaky_portal"]);
    if let (Some(i), Some(e)) = (ingest_peak, e2e_peak) {
        println!("{:<46} {:>12.1}", "gateway peak RSS, ingest phase (MiB)", i);
        println!("{:<46} {:>12.1}", "gateway peak RSS, end-to-end phase (MiB)", e);
    }
    println!("{:<46} {:>12.1}", "peak RSS, bench process (mocks, client) (MiB)", peak_rss_mib());
    println!();
    print_signatures(&report["signatures"]);
    println!();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    cleanup(&target, &prefixes);
    Ok(())
}
