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
//! that size a deployment; `--only evidence` measures the evidence log's cost end to end (log
//! off, then on, `--evidence-runs` times, against a mock portal and a mock RFC 3161 authority);
//! `--only limits` measures from outside (wrk in, nginx as the portal: `limits.rs`).
//! `--redis-mode cluster --redis-nodes ...` runs on a Redis Cluster
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

mod common;
mod evidence;
mod flaky;
mod limits;
mod scale;
mod signatures;
mod throughput;

use common::*;
use evidence::*;
use flaky::*;
use limits::*;
use scale::*;
use signatures::*;
use throughput::*;

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
    /// Runs of the evidence phase (each: the end-to-end phase with the log off, then on).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    evidence_runs: u64,
    /// The order of the two measurements of an evidence run (`off-off`: a control, both off).
    #[arg(long, value_enum, default_value = "off-on")]
    evidence_order: EvidenceOrder,
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
    /// `--only limits`: how many times each figure is measured (min, median, max printed).
    #[arg(long, default_value_t = 3)]
    limits_runs: usize,
    /// `--only limits`: wrk's connection counts for the ingest curve.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 16, 64, 256])]
    wrk_connections: Vec<usize>,
    /// `--only limits`: seconds of each wrk run.
    #[arg(long, default_value_t = 8)]
    wrk_secs: u64,
    /// `--only limits`: a soak of this many seconds at `--soak-rate` (0: none).
    #[arg(long, default_value_t = 0)]
    soak_secs: u64,
    /// `--only limits`: the soak's offered rate, dossiers per second.
    #[arg(long, default_value_t = 10_000)]
    soak_rate: u64,
    /// `--only limits`: the gateway binary to measure (default: `hcc-gateway` beside this one),
    /// for comparing a build with a lever against one without.
    #[arg(long)]
    gateway_bin: Option<std::path::PathBuf>,
    /// `--only limits`: also draw the ingest curve as an SVG here.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
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
            access: Default::default(),
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
    /// The evidence log's overhead end to end: log off, then on, `--evidence-runs` times.
    Evidence,
    /// The throughput limits from outside: wrk in, nginx as the portal, ratios to raw LPUSH.
    Limits,
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

    if a.only == Some(Phase::Evidence) {
        eprintln!(
            "[evidence] end to end with the evidence log {:?}, {} runs of {} dossiers per measurement",
            a.evidence_order,
            a.evidence_runs,
            a.requests / 5
        );
        let mut prefixes = Vec::new();
        let evidence = evidence_phase(&a, &target, a.evidence_runs as usize, a.evidence_order, &mut prefixes).await;
        cleanup(&target, &prefixes);
        let report = json!({"machine": {"cores": cores, "note": "gateway, mocks (portal, TSA), load client and Redis share these cores"},
                            "evidence": evidence?});
        println!();
        print_evidence(&report["evidence"]);
        println!();
        println!("{}", serde_json::to_string_pretty(&report)?);
        if let Some(path) = a.json {
            std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(());
    }

    if a.only == Some(Phase::Limits) {
        let mut prefixes = Vec::new();
        let limits = limits_phase(&a, &target, &mut prefixes).await;
        cleanup(&target, &prefixes);
        let report = json!({"machine": {"cores": cores, "note": "gateway, wrk, nginx and Redis share these cores"},
                            "limits": limits?});
        println!();
        print_limits(&report["limits"]);
        println!();
        println!("{}", serde_json::to_string_pretty(&report)?);
        if let Some(path) = &a.plot {
            std::fs::write(path, plot_limits(&report["limits"])).with_context(|| format!("cannot write {}", path.display()))?;
        }
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
    let ingest = ingest_phase(&a, &target, &prefixes[0], &portal.url()).await?;
    let (separate, ingest_lat, ingest_peak, ingest_rate) = (ingest.separate, ingest.latencies, ingest.peak_rss, ingest.rate);
    let ingest_ids = ingest.accepted;

    eprintln!(
        "[3/6] delivery: {} queued webhooks to an HTTP sink that answers at once, {} workers",
        a.deliveries, a.workers
    );
    prefixes.push(fresh_prefix());
    let (delivery_t, delivery_rate, sink) = delivery_phase(&a, &target, &prefixes[1]).await?;

    let e2e_n = a.requests / 5;
    eprintln!("[4/6] end to end: {e2e_n} dossiers over HTTP, delivered to the mock portal");
    prefixes.push(fresh_prefix());
    let (e2e_ids, e2e_rate, e2e_http_lat, e2e_lat, e2e_peak) = e2e_phase(&a, &target, &prefixes[2], &portal.url(), e2e_n).await?;

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
