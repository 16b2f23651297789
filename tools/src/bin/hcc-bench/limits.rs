//! `--only limits`: the throughput issue's figures, driven from outside the gateway. The load
//! comes from `wrk` (Debian's), a separate process with a Lua script that gives every request
//! a new `MaHoSo`; the portal is `nginx` (Debian's), answering every call with success at once;
//! the yardstick is raw `redis-benchmark -t lpush -c 64` against the same Redis in the same
//! run, so every figure is printed as a ratio to it. The gateway is the real `hcc-gateway
//! serve` process beside this binary (`--gateway-bin` names another build, for comparing a
//! lever against the build without it).
//!
//! Figures, each measured `--limits-runs` times (min, median, max):
//! - ingest at `--wrk-connections` (a curve: throughput and p99 against connections, drawn by
//!   `--plot` as an SVG), no workers;
//! - the drain of a `--backlog` queued while the portal was away, to nginx;
//! - end to end: wrk into a gateway with workers, nginx as the portal, until the last delivery;
//! - ingest at 64 connections on a private Redis with `appendfsync always` (beside its own
//!   `redis-benchmark`): the honest-durability figure;
//! - the gateway's resident memory with the backlog queued, and over a `--soak-secs` soak at a
//!   paced `--soak-rate` (samples every 5 s).

use super::*;

/// What a portal call costs nginx: nothing. Every operation (login, look-up, write) is answered
/// with this one body, which each of them reads as success: a session for the login, an empty
/// `result` array for `TraCuuHoSo` (the dossier is new), `error_code` 0 for the writes.
const PORTAL_ANSWER: &str = r#"{"error_code":0,"message":"ok","session":"bench-session","result":[]}"#;

/// wrk's script: a fresh `MaHoSo` per request (thread id and counter, tagged per run), the
/// centre's key, and one JSON line of results at the end (`WRK_JSON {...}`) for this binary to
/// read.
const WRK_SCRIPT: &str = r#"
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  tag = args[1] or "W"
  pause = tonumber(args[2] or "0")
  counter = 0
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer dev-centre-key"}
end
function request()
  counter = counter + 1
  local body = string.format('{"MaHoSo":"%s-%d-%08d","MaTTHC":"1.004227.000.00.00.H46","TrangThaiHoSo":1,"NgayTiepNhan":"20241125083000","ChuHoSo":"Bench","LoaiDoiTuong":1,"DanhSachLePhi":[{"TenPhiLePhi":"Le phi","MaPhiLePhi":"LP01","HinhThucThu":2,"Gia":100000,"LoaiPhiLePhi":2}]}', tag, tid, counter)
  return wrk.format("POST", "/v1/dossiers", headers, body)
end
function done(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"#;

/// Appended for the soak: a pause before each request (`pause`, the second argument). Only
/// then, since wrk schedules every request through a timer once a script has `delay`.
const WRK_PACING: &str = "\nfunction delay()\n  return pause\nend\n";

/// A scratch folder with wrk's script and nginx's files in it.
struct Tools {
    dir: ScratchDir,
}

impl Tools {
    fn new() -> anyhow::Result<Tools> {
        let dir = ScratchDir(std::env::temp_dir().join(format!("hcc-bench-limits-{}", uuid::Uuid::new_v4().simple())));
        std::fs::create_dir_all(dir.path())?;
        std::fs::write(dir.path().join("dossiers.lua"), WRK_SCRIPT)?;
        std::fs::write(dir.path().join("dossiers-paced.lua"), format!("{WRK_SCRIPT}{WRK_PACING}"))?;
        Ok(Tools { dir })
    }

    fn script(&self) -> std::path::PathBuf {
        self.dir.path().join("dossiers.lua")
    }

    fn paced_script(&self) -> std::path::PathBuf {
        self.dir.path().join("dossiers-paced.lua")
    }
}

/// nginx as the portal: one process (no master), one worker's work, keep-alive without limit,
/// no access log. Stopped when dropped.
struct Nginx {
    child: std::process::Child,
    url: String,
}

impl Nginx {
    fn start(tools: &Tools) -> anyhow::Result<Nginx> {
        let dir = tools.dir.path().join("nginx");
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 100000000;\n  keepalive_timeout 120s;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    location / {{ default_type application/json; return 200 '{PORTAL_ANSWER}'; }}\n  }}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = std::process::Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start nginx (Debian package nginx)")?;
        let nginx = Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").is_file() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// A private `redis-server` for the durability figure: append-only, `appendfsync always`, on a
/// port of its own, in a folder of its own. Stopped when dropped.
struct FsyncRedis {
    child: std::process::Child,
    port: u16,
}

impl FsyncRedis {
    fn start(tools: &Tools) -> anyhow::Result<FsyncRedis> {
        let dir = tools.dir.path().join("redis-fsync");
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start redis-server")?;
        let r = FsyncRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
                .unwrap_or(false);
            if pong {
                return Ok(r);
            }
            anyhow::ensure!(Instant::now() < deadline, "the appendfsync-always redis-server did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FsyncRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One wrk run's summary.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WrkRun {
    pub(super) connections: usize,
    /// Completed requests.
    pub(super) requests: u64,
    /// Answers other than 2xx/3xx, and socket errors (connect, read, write, timeout).
    pub(super) non_2xx: u64,
    pub(super) socket_errors: u64,
    pub(super) seconds: f64,
    /// Accepted dossiers per second (completed requests less refusals and errors).
    pub(super) rate: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    /// CPU per accepted dossier (µs): the gateway process's, and Redis's when it runs here.
    pub(super) gateway_cpu_us: Option<f64>,
    pub(super) redis_cpu_us: Option<f64>,
}

impl WrkRun {
    pub(super) fn accepted(&self) -> u64 {
        self.requests.saturating_sub(self.non_2xx)
    }

    fn to_json(self) -> Value {
        json!({"connections": self.connections, "requests": self.requests, "non_2xx": self.non_2xx,
               "socket_errors": self.socket_errors, "seconds": self.seconds, "rate_per_s": self.rate,
               "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms,
               "gateway_cpu_us_per_dossier": self.gateway_cpu_us, "redis_cpu_us_per_dossier": self.redis_cpu_us})
    }
}

/// Runs wrk against `base` for `secs` at `connections` (two threads, the machine's cores),
/// with `pause_ms` between a connection's requests (0: as fast as answers come).
fn wrk(script: &std::path::Path, base: &str, connections: usize, secs: u64, tag: &str, pause_ms: u64) -> anyhow::Result<WrkRun> {
    let threads = connections.clamp(1, 2);
    let out = std::process::Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{secs}s"),
        ])
        .args(["--timeout", "10s", "-s"])
        .arg(script)
        .arg(base)
        .args(["--", tag, &pause_ms.to_string()])
        .output()
        .context("cannot run wrk (Debian package wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK_JSON "))
        .with_context(|| format!("wrk printed no summary: {}", String::from_utf8_lossy(&out.stderr)))?;
    let v: Value = serde_json::from_str(line)?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let seconds = n("duration_us") as f64 / 1e6;
    let socket_errors = n("connect") + n("read") + n("write") + n("timeout");
    let mut run = WrkRun {
        connections,
        requests: n("requests"),
        non_2xx: n("status") + socket_errors.min(n("requests")),
        socket_errors,
        seconds,
        rate: 0.0,
        p50_ms: n("p50_us") as f64 / 1000.0,
        p99_ms: n("p99_us") as f64 / 1000.0,
        max_ms: n("max_us") as f64 / 1000.0,
        gateway_cpu_us: None,
        redis_cpu_us: None,
    };
    run.rate = if seconds > 0.0 { run.accepted() as f64 / seconds } else { 0.0 };
    Ok(run)
}

/// The resident memory of a gateway process now (VmRSS) and at its peak (VmHWM), MiB.
fn rss_mib(gw: &Served) -> (Option<f64>, Option<f64>) {
    let Some(pid) = gw.child.as_ref().map(std::process::Child::id) else {
        return (None, None);
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// min, median, max of some figures.
fn spread(mut v: Vec<f64>) -> Value {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Value::Null;
    }
    json!({"min": v[0], "median": v[v.len() / 2], "max": v[v.len() - 1], "runs": v})
}

fn median(v: &Value) -> f64 {
    v["median"].as_f64().unwrap_or(f64::NAN)
}

/// `--only limits`.
pub(super) async fn limits_phase(a: &Args, target: &Target, prefixes: &mut Vec<String>) -> anyhow::Result<Value> {
    let tools = Tools::new()?;
    let nginx = Nginx::start(&tools)?;
    let runs = a.limits_runs.max(1);
    let redis_pid = local_redis_pid(target);
    let secs = a.wrk_secs.max(1);
    let mut baselines = Vec::new();
    let mut curve: Vec<(usize, Vec<WrkRun>)> = a.wrk_connections.iter().map(|c| (*c, Vec::new())).collect();
    let (mut drains, mut e2es, mut drain_rss, mut ingest_rss, mut queued_at_rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        eprintln!("[limits {}/{runs}] raw Redis baseline (redis-benchmark -t lpush -c 64)", run + 1);
        baselines.extend(redis_baseline(target));
        for (c, results) in curve.iter_mut() {
            eprintln!("[limits {}/{runs}] ingest: wrk -c {c} for {secs} s, no workers", run + 1);
            prefixes.push(fresh_prefix());
            let gw = serve_from(a, target, &prefixes[prefixes.len() - 1], &nginx.url, Workers::Off).await?;
            let (gw_cpu, redis_cpu) = (gw.cpu_secs(), pid_cpu_secs(redis_pid));
            let r = wrk(&tools.script(), &gw.base, *c, secs, &format!("I{run}c{c}"), 0).map(|mut r| {
                // Where the CPU went, per accepted dossier: the gateway's and Redis's own.
                let accepted = r.accepted().max(1) as f64;
                let per = |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(b, e)| (e - b) * 1e6 / accepted);
                r.gateway_cpu_us = per(gw_cpu, gw.cpu_secs());
                r.redis_cpu_us = per(redis_cpu, pid_cpu_secs(redis_pid));
                r
            });
            if *c == 64
                && let Ok(r) = &r
            {
                let (now, _) = rss_mib(&gw);
                ingest_rss.extend(now);
                queued_at_rss.push(r.accepted() as f64);
            }
            gw.stop().await;
            results.push(r?);
        }

        eprintln!(
            "[limits {}/{runs}] drain: {} portal updates queued, then delivered to nginx",
            run + 1,
            a.backlog
        );
        prefixes.push(fresh_prefix());
        let prefix = prefixes[prefixes.len() - 1].clone();
        let bq = target.queues(target.store(64, &prefix)?);
        fill(
            &bq,
            "dvcqg",
            "dossier.sync",
            a.backlog,
            Arc::new(|i| {
                let ma = format!("DRN-{i:07}");
                (ma.clone(), serde_json::to_vec(&dossier(&ma, 1)).unwrap_or_default())
            }),
        )
        .await?;
        let t0 = Instant::now();
        let gw = serve_from(a, target, &prefix, &nginx.url, Workers::On).await?;
        let (rss_before, _) = rss_mib(&gw);
        let drained = wait_delivered(&gw.queue, "dvcqg", a.backlog as u64, Duration::from_secs(1200))
            .await
            .map(|_| t0.elapsed());
        let (_, peak) = rss_mib(&gw);
        gw.stop().await;
        drains.push(a.backlog as f64 / drained?.as_secs_f64());
        drain_rss.extend(rss_before.into_iter().chain(peak).reduce(f64::max));

        eprintln!(
            "[limits {}/{runs}] end to end: wrk -c 64 for {secs} s into a gateway with workers, nginx as the portal",
            run + 1
        );
        prefixes.push(fresh_prefix());
        let gw = serve_from(a, target, &prefixes[prefixes.len() - 1], &nginx.url, Workers::On).await?;
        let t0 = Instant::now();
        let r = wrk(&tools.script(), &gw.base, 64, secs, &format!("E{run}"), 0);
        let done = match &r {
            Ok(r) => wait_delivered(&gw.queue, "dvcqg", r.accepted(), Duration::from_secs(600))
                .await
                .map(|_| t0.elapsed()),
            Err(_) => Ok(Duration::ZERO),
        };
        gw.stop().await;
        let (r, done) = (r?, done?);
        e2es.push(r.accepted() as f64 / done.as_secs_f64());
    }

    let durability = if target.is_cluster() {
        Value::Null
    } else {
        eprintln!("[limits] durability: a private Redis with appendfsync always, its own baseline, ingest at 64 connections");
        let redis = FsyncRedis::start(&tools)?;
        let fsync_target = Target {
            url: format!("redis://127.0.0.1:{}/0", redis.port),
            nodes: Vec::new(),
            partitions: target.partitions,
        };
        let (mut base, mut ingest, mut p99) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            base.extend(redis_baseline(&fsync_target));
            let gw = serve_from(a, &fsync_target, &fresh_prefix(), &nginx.url, Workers::Off).await?;
            let r = wrk(&tools.script(), &gw.base, 64, secs, &format!("F{run}"), 0);
            gw.stop().await;
            let r = r?;
            ingest.push(r.rate);
            p99.push(r.p99_ms);
        }
        drop(redis);
        json!({"redis_lpush_baseline_rps": spread(base), "ingest_rate_per_s": spread(ingest), "ingest_p99_ms": spread(p99)})
    };

    let soak = if a.soak_secs > 0 {
        eprintln!(
            "[limits] soak: {} s at about {}/s into a gateway with workers",
            a.soak_secs, a.soak_rate
        );
        prefixes.push(fresh_prefix());
        Some(soak(a, target, &tools, &nginx, &prefixes[prefixes.len() - 1]).await?)
    } else {
        None
    };

    let baseline = spread(baselines);
    let b = median(&baseline);
    let curve_json: Vec<Value> = curve
        .iter()
        .map(|(c, rs)| {
            json!({"connections": c,
                   "rate_per_s": spread(rs.iter().map(|r| r.rate).collect()),
                   "p50_ms": spread(rs.iter().map(|r| r.p50_ms).collect()),
                   "p99_ms": spread(rs.iter().map(|r| r.p99_ms).collect()),
                   "gateway_cpu_us_per_dossier": spread(rs.iter().filter_map(|r| r.gateway_cpu_us).collect()),
                   "redis_cpu_us_per_dossier": spread(rs.iter().filter_map(|r| r.redis_cpu_us).collect()),
                   "refused_or_failed": rs.iter().map(|r| r.non_2xx).sum::<u64>(),
                   "wrk": rs.iter().map(|r| r.to_json()).collect::<Vec<_>>()})
        })
        .collect();
    let at64 = curve_json.iter().find(|v| v["connections"] == 64).cloned().unwrap_or(Value::Null);
    let (drain, e2e) = (spread(drains), spread(e2es));
    Ok(json!({
        "redis_mode": if target.is_cluster() { "cluster" } else { "standalone" },
        "runs": runs,
        "wrk_seconds": secs,
        "redis_lpush_baseline_rps": baseline,
        "ingest_curve": curve_json,
        "ingest_64": {"rate_per_s": at64["rate_per_s"], "p99_ms": at64["p99_ms"], "ratio": median(&at64["rate_per_s"]) / b,
                      "target_ratio": 0.25, "target_p99_ms": 5.0},
        "drain": {"messages": a.backlog, "rate_per_s": drain, "ratio": median(&drain) / b, "target_ratio": 0.125},
        "end_to_end": {"rate_per_s": e2e, "ratio": median(&e2e) / b, "target_ratio": 0.1},
        "memory": {"ingest_rss_mib_after_c64": spread(ingest_rss), "queued_then": spread(queued_at_rss),
                   "drain_peak_rss_mib_with_backlog": spread(drain_rss), "backlog": a.backlog, "target_mib": 50.0},
        "durability_appendfsync_always": durability,
        "soak": soak,
    }))
}

/// The gateway of the given build (`--gateway-bin`), or the one beside this binary.
async fn serve_from(a: &Args, target: &Target, prefix: &str, portal: &str, workers: Workers) -> anyhow::Result<Served> {
    match &a.gateway_bin {
        Some(bin) => serve_binary(bin, target, prefix, portal, a.workers, workers, &[]).await,
        None => serve(target, prefix, portal, a.workers, workers).await,
    }
}

/// wrk paced at about `--soak-rate` for `--soak-secs` into a gateway with workers; the gateway's
/// resident memory every 5 s.
async fn soak(a: &Args, target: &Target, tools: &Tools, nginx: &Nginx, prefix: &str) -> anyhow::Result<Value> {
    let gw = serve_from(a, target, prefix, &nginx.url, Workers::On).await?;
    let connections = 64usize;
    // Each connection waits this long between requests: 64 connections at 10,000/s wait
    // 6.4 ms each (less their answer's time, which wrk does not subtract: the rate reached is
    // printed).
    let pause_ms = ((connections as f64 * 1000.0) / a.soak_rate.max(1) as f64).round() as u64;
    let (secs, base, script) = (a.soak_secs, gw.base.clone(), tools.paced_script());
    let load = tokio::task::spawn_blocking(move || wrk(&script, &base, connections, secs, "S", pause_ms));
    let started = Instant::now();
    let mut samples = Vec::new();
    while !load.is_finished() && started.elapsed() < Duration::from_secs(secs + 60) {
        let (now, _) = rss_mib(&gw);
        let s = gw.queue.stats("dvcqg", now_ms()).await.ok();
        samples.push(json!({"t_s": started.elapsed().as_secs(), "rss_mib": now,
                            "delivered": s.as_ref().map(|s| s.delivered_total), "ready": s.as_ref().map(|s| s.ready)}));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let r = load.await?;
    gw.stop().await;
    let r = r?;
    let rss: Vec<f64> = samples.iter().filter_map(|s| s["rss_mib"].as_f64()).collect();
    let minute = (60 / 5).min(rss.len());
    let avg = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Ok(
        json!({"seconds": secs, "offered_rate": a.soak_rate, "accepted_rate_per_s": r.rate, "p99_ms": r.p99_ms,
              "rss_first_minute_mib": avg(&rss[..minute]), "rss_last_minute_mib": avg(&rss[rss.len() - minute..]),
              "rss_max_mib": rss.iter().copied().fold(f64::NAN, f64::max), "samples": samples}),
    )
}

/// The table: every figure beside its baseline and target.
pub(super) fn print_limits(v: &Value) {
    let m = |x: &Value| median(x);
    let mmm = |x: &Value| {
        format!(
            "{:>9.0} {:>9.0} {:>9.0}",
            x["min"].as_f64().unwrap_or(f64::NAN),
            x["median"].as_f64().unwrap_or(f64::NAN),
            x["max"].as_f64().unwrap_or(f64::NAN)
        )
    };
    let mmm2 = |x: &Value| {
        format!(
            "{:>9.2} {:>9.2} {:>9.2}",
            x["min"].as_f64().unwrap_or(f64::NAN),
            x["median"].as_f64().unwrap_or(f64::NAN),
            x["max"].as_f64().unwrap_or(f64::NAN)
        )
    };
    println!(
        "{:<48} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "figure", "min", "median", "max", "ratio", "target"
    );
    println!(
        "{:<48} {} {:>7} {:>7}",
        "redis-benchmark -t lpush -c 64 (ops/s)",
        mmm(&v["redis_lpush_baseline_rps"]),
        "1",
        ""
    );
    for c in v["ingest_curve"].as_array().into_iter().flatten() {
        println!(
            "{:<48} {} {:>7.3} {:>7}",
            format!("ingest, wrk -c {} (dossiers/s)", c["connections"]),
            mmm(&c["rate_per_s"]),
            m(&c["rate_per_s"]) / m(&v["redis_lpush_baseline_rps"]),
            if c["connections"] == 64 { "0.25" } else { "" }
        );
        println!(
            "{:<48} {} {:>7} {:>7}",
            format!("  p99, wrk -c {} (ms)", c["connections"]),
            mmm2(&c["p99_ms"]),
            "",
            if c["connections"] == 64 { "5 ms" } else { "" }
        );
        if c["connections"] == 64 {
            println!(
                "{:<48} {} {:>7} {:>7}",
                "  gateway CPU per dossier, c=64 (µs)",
                mmm2(&c["gateway_cpu_us_per_dossier"]),
                "",
                ""
            );
            println!(
                "{:<48} {} {:>7} {:>7}",
                "  Redis CPU per dossier, c=64 (µs)",
                mmm2(&c["redis_cpu_us_per_dossier"]),
                "",
                ""
            );
        }
    }
    println!(
        "{:<48} {} {:>7.3} {:>7}",
        format!("drain of {} to nginx (msg/s)", v["drain"]["messages"]),
        mmm(&v["drain"]["rate_per_s"]),
        v["drain"]["ratio"].as_f64().unwrap_or(f64::NAN),
        "0.125"
    );
    println!(
        "{:<48} {} {:>7.3} {:>7}",
        "end to end, wrk -c 64 -> nginx (dossiers/s)",
        mmm(&v["end_to_end"]["rate_per_s"]),
        v["end_to_end"]["ratio"].as_f64().unwrap_or(f64::NAN),
        "0.1"
    );
    let mem = &v["memory"];
    println!(
        "{:<48} {} {:>7} {:>7}",
        format!("gateway RSS, {} queued, draining (MiB)", mem["backlog"]),
        mmm2(&mem["drain_peak_rss_mib_with_backlog"]),
        "",
        "50"
    );
    println!(
        "{:<48} {} {:>7} {:>7}",
        "gateway RSS after ingest c=64 (MiB)",
        mmm2(&mem["ingest_rss_mib_after_c64"]),
        "",
        "50"
    );
    let d = &v["durability_appendfsync_always"];
    if !d.is_null() {
        println!(
            "{:<48} {} {:>7} {:>7}",
            "appendfsync always: redis-benchmark lpush (ops/s)",
            mmm(&d["redis_lpush_baseline_rps"]),
            "1",
            ""
        );
        println!(
            "{:<48} {} {:>7.3} {:>7}",
            "appendfsync always: ingest c=64 (dossiers/s)",
            mmm(&d["ingest_rate_per_s"]),
            m(&d["ingest_rate_per_s"]) / m(&d["redis_lpush_baseline_rps"]),
            ""
        );
        println!(
            "{:<48} {} {:>7} {:>7}",
            "appendfsync always: ingest p99 (ms)",
            mmm2(&d["ingest_p99_ms"]),
            "",
            ""
        );
    }
    let s = &v["soak"];
    if !s.is_null() {
        println!(
            "soak {} s offered {}/s: accepted {:.0}/s, p99 {:.1} ms, RSS first minute {:.1} MiB, last minute {:.1} MiB, max {:.1} MiB",
            s["seconds"],
            s["offered_rate"],
            s["accepted_rate_per_s"].as_f64().unwrap_or(f64::NAN),
            s["p99_ms"].as_f64().unwrap_or(f64::NAN),
            s["rss_first_minute_mib"].as_f64().unwrap_or(f64::NAN),
            s["rss_last_minute_mib"].as_f64().unwrap_or(f64::NAN),
            s["rss_max_mib"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

/// The ingest curve as an SVG line chart: accepted dossiers per second (median, with the
/// min–max range as a bar) against connections on a log scale, the p99 on a second axis, and
/// the target (a quarter of the same run's raw LPUSH) as a dashed line.
pub(super) fn plot_limits(v: &Value) -> String {
    /// One connection count's figures: connections, rate min / median / max, p99 (ms).
    type Point = (f64, f64, f64, f64, f64);
    let points: Vec<Point> = v["ingest_curve"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["connections"].as_f64()?,
                c["rate_per_s"]["min"].as_f64()?,
                c["rate_per_s"]["median"].as_f64()?,
                c["rate_per_s"]["max"].as_f64()?,
                c["p99_ms"]["median"].as_f64()?,
            ))
        })
        .collect();
    let baseline = median(&v["redis_lpush_baseline_rps"]);
    let target = if baseline.is_finite() { baseline * 0.25 } else { 0.0 };
    let (w, h, left, right, top, bottom) = (760.0, 420.0, 80.0, 80.0, 50.0, 60.0);
    let ymax = points.iter().map(|p| p.3).fold(target, f64::max).max(1.0) * 1.15;
    let pmax = points.iter().map(|p| p.4).fold(5.0, f64::max) * 1.15;
    let (xmin, xmax) = (
        points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1.0).log2(),
        points.iter().map(|p| p.0).fold(1.0, f64::max).log2(),
    );
    let span = (xmax - xmin).max(1.0);
    let x = |c: f64| left + (c.max(1.0).log2() - xmin) / span * (w - left - right);
    let y = |r: f64| h - bottom - r / ymax * (h - top - bottom);
    let yp = |ms: f64| h - bottom - ms / pmax * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"28\" font-size=\"16\">hcc-gateway ingest (POST /v1/dossiers, wrk) against connections</text>\n"
    );
    for i in 0..=5 {
        let r = ymax / 5.0 * f64::from(i);
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\n",
            w - right,
            left - 6.0,
            y(r) + 4.0,
            r,
            y = y(r)
        );
        let p = pmax / 5.0 * f64::from(i);
        s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" fill=\"#b35900\">{:.1}</text>\n",
            w - right + 6.0,
            yp(p) + 4.0,
            p
        );
    }
    for p in &points {
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(p.0),
            h - bottom + 20.0,
            p.0
        );
        s += &format!(
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1f5fa8\" stroke-width=\"2\"/>\n",
            y(p.1),
            y(p.3),
            x = x(p.0)
        );
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f5fa8\"/><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#b35900\"/>\n",
            x(p.0),
            y(p.2),
            x(p.0),
            yp(p.4)
        );
    }
    let line = |f: &dyn Fn(&Point) -> (f64, f64)| {
        points
            .iter()
            .map(|p| {
                let (a, b) = f(p);
                format!("{a:.1},{b:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    s += &format!(
        "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"3\" points=\"{}\"/>\n",
        line(&|p| (x(p.0), y(p.2)))
    );
    s += &format!(
        "<polyline fill=\"none\" stroke=\"#b35900\" stroke-width=\"2\" points=\"{}\"/>\n",
        line(&|p| (x(p.0), yp(p.4)))
    );
    if target > 0.0 {
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{t:.1}\" y2=\"{t:.1}\" stroke=\"#2a8a2a\" stroke-dasharray=\"6 4\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" fill=\"#2a8a2a\" text-anchor=\"end\">target: 0.25 × raw LPUSH ({:.0}/s)</text>\n",
            w - right,
            w - right - 4.0,
            y(target) - 6.0,
            target,
            t = y(target)
        );
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">connections (log scale)</text>\n\
         <text x=\"18\" y=\"{}\" transform=\"rotate(-90 18 {})\" text-anchor=\"middle\" fill=\"#1f5fa8\">accepted dossiers/s (median; bar: min–max)</text>\n\
         <text x=\"{}\" y=\"{}\" transform=\"rotate(90 {} {})\" text-anchor=\"middle\" fill=\"#b35900\">p99 latency, ms</text>\n</svg>\n",
        (left + w - right) / 2.0,
        h - 18.0,
        h / 2.0,
        h / 2.0,
        w - 22.0,
        h / 2.0,
        w - 22.0,
        h / 2.0
    );
    s
}
