//! `--only evidence`: the cost of the evidence log (docs/evidence.md) end to end. One mock
//! portal and one mock RFC 3161 authority serve every run; each run measures the end-to-end
//! phase (HTTP in, the mock portal out) twice, first with the log off, then on (a fresh folder,
//! stamped every second), so that the machine's drift hits both alike. After each "on"
//! measurement the folder is read back: a log with no exchanges or no stamp is a failed
//! measurement, not a cheap log.

use std::path::{Path, PathBuf};

use super::*;

/// The overhead the log may cost, in percent of the end-to-end rate without it.
pub(super) const EVIDENCE_TARGET_PCT: f64 = 10.0;

/// Past this many cores kept busy by other processes (not the gateway, the bench or Redis),
/// a run is flagged as measured on a busy machine.
const BUSY_MACHINE_CORES: f64 = 0.15;

/// The order of the two measurements of a run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub(super) enum EvidenceOrder {
    /// The log off, then on (the default).
    OffOn,
    /// The log on, then off: shows whether the second measurement of a pair gains or loses by
    /// coming second.
    OnOff,
    /// A control: the log off in both measurements, the second reported in the "on" column. The
    /// "overhead" is then the noise (and the order's effect) alone.
    OffOff,
}

impl EvidenceOrder {
    /// Whether the log is on in the first and in the second measurement.
    fn slots(self) -> [bool; 2] {
        match self {
            EvidenceOrder::OffOn => [false, true],
            EvidenceOrder::OnOff => [true, false],
            EvidenceOrder::OffOff => [false, false],
        }
    }

    fn name(self) -> &'static str {
        match self {
            EvidenceOrder::OffOn => "off then on",
            EvidenceOrder::OnOff => "on then off",
            EvidenceOrder::OffOff => "off then off (control: the on column is a second off)",
        }
    }
}

/// What one "on" measurement left in its folder.
#[derive(Default)]
pub(super) struct LogFiles {
    files: usize,
    lines: u64,
    exchanges: u64,
    stamps: u64,
    gaps: u64,
    /// Exchange records by operation (login, TraCuuHoSo, DongBoHoSoMC, ...).
    operations: std::collections::BTreeMap<String, u64>,
    /// `verify_dir`'s verdict: None when the chain verifies, else why not.
    broken: Option<String>,
    /// Records after the last stamp (verify's count).
    unstamped: u64,
}

/// Reads the folder of one "on" measurement: lines, exchange and stamp records, and the whole
/// chain check against the authority's root.
fn read_log(dir: &Path, root_pem: &Path) -> LogFiles {
    let mut log = LogFiles::default();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        log.files += 1;
        for line in text.lines() {
            log.lines += 1;
            if line.contains(r#""type":"exchange""#) {
                log.exchanges += 1;
                let op = line
                    .split_once(r#""operation":""#)
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map_or("?", |(op, _)| op);
                *log.operations.entry(op.to_string()).or_default() += 1;
            } else if line.contains(r#""type":"stamp""#) {
                log.stamps += 1;
            } else if line.contains(r#""type":"gap""#) {
                log.gaps += 1;
            }
        }
    }
    let anchor = match hcc_signing::pki::TrustStore::pinned_from_file(root_pem) {
        Ok(a) => a,
        Err(e) => {
            log.broken = Some(format!("cannot read the authority's root: {e}"));
            return log;
        }
    };
    let opts = hcc_gateway::evidence::verify::Options {
        anchor: Some(anchor),
        ..Default::default()
    };
    match hcc_gateway::evidence::verify::verify_dir(dir, &opts) {
        Ok(report) => {
            log.unstamped = report.chains.iter().map(|c| c.unstamped).sum();
            log.broken = match (report.first_break(), report.chains.len()) {
                (Some(b), _) => Some(b.to_string()),
                (None, 0) => Some("no chain in the folder".into()),
                (None, 1) => None,
                (None, n) => Some(format!("{n} chains, one expected")),
            };
        }
        Err(e) => log.broken = Some(format!("cannot be read: {e}")),
    }
    log
}

/// [`redis_baseline`], leaving the list `redis-benchmark -t lpush` fills (`mylist`) as long as
/// it was, so that runs after runs do not grow the server (standalone only; elsewhere the
/// baseline is taken as it is).
fn tidy_baseline(target: &Target) -> Option<f64> {
    let cli = |args: &[&str]| -> Option<String> {
        let (host, port) = redis_host_port(&target.url)?;
        let out = std::process::Command::new("redis-cli")
            .args(["-h", &host, "-p", &port])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let before = if target.is_cluster() {
        None
    } else {
        cli(&["llen", "mylist"]).and_then(|n| n.parse::<u64>().ok())
    };
    let baseline = redis_baseline(target);
    match before {
        Some(0) => drop(cli(&["del", "mylist"])),
        Some(n) => drop(cli(&["ltrim", "mylist", "0", &(n - 1).to_string()])),
        None => {}
    }
    baseline
}

/// One end-to-end measurement and where the CPU went.
type Measured = (EndToEnd, CpuUse);

/// One end-to-end measurement: rate, accepted, HTTP p50/p99, accepted-to-portal p50/p99, the
/// gateway's CPU per dossier.
fn measured(m: &Measured) -> Value {
    let ((ids, rate, http_lat, lat, peak), cpu) = m;
    json!({"rate_per_s": rate, "dossiers": ids.len(), "seconds": cpu.wall,
           "cpu_s": {"gateway": cpu.gateway, "bench": cpu.bench, "redis": cpu.redis, "others": cpu.others(), "machine": cpu.machine},
           "others_cores": others_cores(m),
           "gateway_cpu_ms_per_dossier": cpu_per_dossier(m),
           "http_p50_ms": percentile(http_lat, 0.5), "http_p99_ms": percentile(http_lat, 0.99),
           "accept_to_portal_p50_ms": percentile(lat, 0.5), "accept_to_portal_p99_ms": percentile(lat, 0.99),
           "gateway_peak_rss_mib": peak})
}

fn cpu_per_dossier(m: &Measured) -> Option<f64> {
    let ((ids, ..), cpu) = m;
    cpu.gateway.filter(|_| !ids.is_empty()).map(|c| c * 1000.0 / ids.len() as f64)
}

/// The cores the machine's other processes (not the gateway, the bench or Redis) kept busy
/// during a measurement, on average.
fn others_cores(m: &Measured) -> f64 {
    let cpu = &m.1;
    if cpu.wall > 0.0 { cpu.others() / cpu.wall } else { 0.0 }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// min, median and max of `v`.
fn spread(v: &[f64]) -> Value {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return json!({"min": null, "median": null, "max": null});
    }
    json!({"min": s[0], "median": median(&s), "max": s[s.len() - 1]})
}

/// `runs` pairs of end-to-end measurements (by default the log off, then on) of
/// `--requests`/5 dossiers each.
pub(super) async fn evidence_phase(
    a: &Args,
    target: &Target,
    runs: usize,
    order: EvidenceOrder,
    prefixes: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let scratch = ScratchDir(std::env::temp_dir().join(format!("hcc-bench-evidence-{}", uuid::Uuid::new_v4().simple())));
    let pki_dir = scratch.path().join("pki");
    hcc_signing::devpki::DevPki::generate()?.write(&pki_dir)?;
    let read = |n: &str| std::fs::read(pki_dir.join(n)).with_context(|| format!("cannot read {n}"));
    let tsa_state = hcc_mocks::tsa::TsaState::new(&read("tsa.key")?, &read("tsa.pem")?, &read("root.pem")?)?;
    let tsa = hcc_mocks::tsa::spawn("127.0.0.1:0", tsa_state.clone()).await?;
    let root_pem = pki_dir.join("root.pem");
    let portal = hcc_mocks::dvcqg::spawn(
        "127.0.0.1:0",
        hcc_mocks::dvcqg::PortalState::new(hcc_mocks::dvcqg::PortalConfig::default()),
    )?;
    let n = a.requests / 5;
    let mut rows = Vec::new();
    for run in 1..=runs {
        eprintln!("[evidence {run}/{runs}] raw Redis baseline (redis-benchmark -t lpush -c 64)");
        let baseline = tidy_baseline(target);
        let mut off = None;
        let mut on = None;
        let mut log = None;
        let mut tsa_requests = 0;
        let mut problems = Vec::new();
        for (slot, log_on) in order.slots().into_iter().enumerate() {
            let prefix = fresh_prefix();
            prefixes.push(prefix.clone());
            let dir: PathBuf = scratch.path().join(format!("run-{run}"));
            let extra = if log_on {
                std::fs::create_dir_all(&dir)?;
                vec![
                    ("HCC__EVIDENCE__ENABLED", "true".to_string()),
                    ("HCC__EVIDENCE__DIR", dir.to_string_lossy().into_owned()),
                    ("HCC__EVIDENCE__TSA_URL", format!("{}/", tsa.url())),
                    ("HCC__EVIDENCE__TSA_CA", root_pem.to_string_lossy().into_owned()),
                    ("HCC__EVIDENCE__BATCH_SECS", "1".to_string()),
                ]
            } else {
                Vec::new()
            };
            let what = if log_on { "on" } else { "off" };
            eprintln!("[evidence {run}/{runs}] log {what}: {n} dossiers end to end");
            let tsa_before = tsa_state.counters().requests;
            let got = e2e_phase_with(a, target, &prefix, &portal.url(), n, &extra).await;
            cleanup(target, std::slice::from_ref(&prefix));
            match &got {
                Err(e) => problems.push(format!("log {what}: {e:#}")),
                Ok(((ids, ..), _)) if ids.len() < n => problems.push(format!("log {what}: only {} of {n} dossiers accepted", ids.len())),
                Ok(_) => {}
            }
            if log_on {
                tsa_requests = tsa_state.counters().requests.saturating_sub(tsa_before);
                let l = read_log(&dir, &root_pem);
                // The folder is only needed for the counts: a long run would otherwise keep
                // every run's records in the temporary folder until the end.
                let _ = std::fs::remove_dir_all(&dir);
                if l.lines == 0 {
                    problems.push("the evidence folder is empty: failed measurement".into());
                } else if l.exchanges == 0 {
                    problems.push("the evidence log holds no exchange record: failed measurement".into());
                }
                if let Ok(((ids, ..), _)) = &got
                    && (l.exchanges as usize) < ids.len()
                {
                    problems.push(format!(
                        "{} exchange records for {} delivered dossiers: records are missing",
                        l.exchanges,
                        ids.len()
                    ));
                }
                if l.lines > 0 && l.stamps == 0 {
                    problems.push("no stamp record: the authority was never asked or never answered".into());
                }
                if l.gaps > 0 {
                    problems.push(format!("{} gap records: the writer dropped records", l.gaps));
                }
                if let Some(why) = &l.broken {
                    problems.push(format!("verify: {why}"));
                }
                log = Some(l);
            }
            // In the control (off, off) the second measurement fills the "on" column.
            if log_on || (order == EvidenceOrder::OffOff && slot == 1) {
                on = Some(got);
            } else {
                off = Some(got);
            }
        }
        let rate = |m: &Option<anyhow::Result<Measured>>| m.as_ref().and_then(|r| r.as_ref().ok()).map(|m| m.0.1);
        let cpu = |m: &Option<anyhow::Result<Measured>>| m.as_ref().and_then(|r| r.as_ref().ok()).and_then(cpu_per_dossier);
        let shown = |m: &Option<anyhow::Result<Measured>>| m.as_ref().and_then(|r| r.as_ref().ok()).map_or(Value::Null, measured);
        let (off_rate, on_rate) = (rate(&off), rate(&on));
        let (off_cpu, on_cpu) = (cpu(&off), cpu(&on));
        let others = |m: &Option<anyhow::Result<Measured>>| m.as_ref().and_then(|r| r.as_ref().ok()).map(others_cores);
        let (off_others, on_others) = (others(&off), others(&on));
        if off_others.into_iter().chain(on_others).any(|c| c > BUSY_MACHINE_CORES) {
            problems.push(format!(
                "other processes kept {} / {} cores busy (off / on): the machine was not quiet, the figures are noisy",
                off_others.map_or("n/a".into(), |c| format!("{c:.2}")),
                on_others.map_or("n/a".into(), |c| format!("{c:.2}"))
            ));
        }
        // A run whose log is empty (or whose measurement failed) says nothing of the log's cost.
        let log_ok = match &log {
            Some(l) => l.exchanges > 0,
            None => order == EvidenceOrder::OffOff,
        };
        let valid = off_rate.is_some() && on_rate.is_some() && log_ok;
        let pct = |base: Option<f64>, with: Option<f64>, higher_is_worse: bool| match (base, with) {
            (Some(b), Some(w)) if b > 0.0 => Some(if higher_is_worse {
                (w - b) / b * 100.0
            } else {
                (b - w) / b * 100.0
            }),
            _ => None,
        };
        let overhead = pct(off_rate, on_rate, false);
        let cpu_overhead = pct(off_cpu, on_cpu, true);
        for p in &problems {
            eprintln!("[evidence {run}/{runs}] PROBLEM: {p}");
        }
        let log = log.map_or(Value::Null, |l| {
            json!({"files": l.files, "lines": l.lines, "exchanges": l.exchanges, "stamps": l.stamps,
                   "gaps": l.gaps, "operations": l.operations, "unstamped_at_end": l.unstamped,
                   "verified": l.broken.is_none(), "broken": l.broken})
        });
        rows.push(json!({
            "run": run,
            "valid": valid,
            "redis_lpush_baseline_rps": baseline,
            "off": shown(&off),
            "on": shown(&on),
            "off_rate_per_s": off_rate,
            "on_rate_per_s": on_rate,
            "overhead_pct": overhead,
            "gateway_cpu_ms_per_dossier_off": off_cpu,
            "gateway_cpu_ms_per_dossier_on": on_cpu,
            "cpu_overhead_pct": cpu_overhead,
            "others_cores_off": off_others,
            "others_cores_on": on_others,
            "log": log,
            "tsa_requests": tsa_requests,
            "problems": problems,
        }));
    }
    portal.stop().await;
    tsa.stop().await;
    drop(scratch);

    let valid: Vec<&Value> = rows.iter().filter(|r| r["valid"] == true).collect();
    let pick = |k: &str| valid.iter().filter_map(|r| r[k].as_f64()).collect::<Vec<f64>>();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let (mo, mn) = (median(&sorted(pick("off_rate_per_s"))), median(&sorted(pick("on_rate_per_s"))));
    let of_medians = (mo.is_finite() && mn.is_finite() && mo > 0.0).then(|| (mo - mn) / mo * 100.0);
    let median_overhead = median(&sorted(pick("overhead_pct")));
    Ok(json!({
        "dossiers_per_measurement": n,
        "concurrency": a.concurrency,
        "workers": a.workers,
        "batch_secs": 1,
        "order": order.name(),
        "runs": rows,
        "valid_runs": valid.len(),
        "summary": {
            "off_rate_per_s": spread(&pick("off_rate_per_s")),
            "on_rate_per_s": spread(&pick("on_rate_per_s")),
            "overhead_pct": spread(&pick("overhead_pct")),
            "overhead_of_medians_pct": of_medians,
            "gateway_cpu_ms_per_dossier_off": spread(&pick("gateway_cpu_ms_per_dossier_off")),
            "gateway_cpu_ms_per_dossier_on": spread(&pick("gateway_cpu_ms_per_dossier_on")),
            "cpu_overhead_pct": spread(&pick("cpu_overhead_pct")),
        },
        "target_overhead_pct": EVIDENCE_TARGET_PCT,
        "within_target": median_overhead.is_finite().then_some(median_overhead <= EVIDENCE_TARGET_PCT),
    }))
}

/// The table of `--only evidence`.
pub(super) fn print_evidence(v: &Value) {
    let num = |x: &Value, prec: usize| x.as_f64().map_or("n/a".to_string(), |f| format!("{f:.prec$}"));
    let int = |x: &Value| x.as_u64().map_or("n/a".to_string(), |i| i.to_string());
    println!(
        "evidence log overhead, end to end (HTTP in -> mock portal): {} dossiers per measurement, c={}, {} workers, stamped every {} s, {}",
        v["dossiers_per_measurement"],
        v["concurrency"],
        v["workers"],
        v["batch_secs"],
        v["order"].as_str().unwrap_or_default()
    );
    println!(
        "{:<7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>13} {:>7} {:>9} {:>7} {:>5} {:>8} {:>7}",
        "run",
        "off d/s",
        "on d/s",
        "overhead%",
        "cpu off",
        "cpu on",
        "cpu +%",
        "others",
        "lpush ops/s",
        "lines",
        "exchanges",
        "stamps",
        "gaps",
        "tsa reqs",
        "verify"
    );
    for r in v["runs"].as_array().into_iter().flatten() {
        let l = &r["log"];
        let verify = match l["verified"].as_bool() {
            Some(true) => "ok",
            Some(false) => "BROKEN",
            None => "-",
        };
        println!(
            "{:<7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>13} {:>7} {:>9} {:>7} {:>5} {:>8} {:>7}",
            format!("{}{}", r["run"], if r["valid"] == true { "" } else { " !" }),
            num(&r["off_rate_per_s"], 0),
            num(&r["on_rate_per_s"], 0),
            num(&r["overhead_pct"], 1),
            num(&r["gateway_cpu_ms_per_dossier_off"], 3),
            num(&r["gateway_cpu_ms_per_dossier_on"], 3),
            num(&r["cpu_overhead_pct"], 1),
            format!("{}/{}", num(&r["others_cores_off"], 2), num(&r["others_cores_on"], 2)),
            num(&r["redis_lpush_baseline_rps"], 0),
            int(&l["lines"]),
            int(&l["exchanges"]),
            int(&l["stamps"]),
            int(&l["gaps"]),
            int(&r["tsa_requests"]),
            verify
        );
    }
    let s = &v["summary"];
    for k in ["min", "median", "max"] {
        println!(
            "{:<7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
            k,
            num(&s["off_rate_per_s"][k], 0),
            num(&s["on_rate_per_s"][k], 0),
            num(&s["overhead_pct"][k], 1),
            num(&s["gateway_cpu_ms_per_dossier_off"][k], 3),
            num(&s["gateway_cpu_ms_per_dossier_on"][k], 3),
            num(&s["cpu_overhead_pct"][k], 1)
        );
    }
    println!(
        "(cpu: the gateway process's CPU ms per dossier, first request to last delivery; others: cores kept busy by \
         processes other than the gateway, the bench and Redis, off/on; a run marked ! is a failed measurement, left out \
         of min/median/max)"
    );
    println!(
        "valid runs: {}; overhead of the medians: {}%; median overhead {}% against a target of {}%: {}",
        v["valid_runs"],
        num(&s["overhead_of_medians_pct"], 1),
        num(&s["overhead_pct"]["median"], 1),
        v["target_overhead_pct"],
        match v["within_target"].as_bool() {
            Some(true) => "within",
            Some(false) => "OVER",
            None => "unknown (no valid run)",
        }
    );
    for r in v["runs"].as_array().into_iter().flatten() {
        for p in r["problems"].as_array().into_iter().flatten() {
            println!("run {}: PROBLEM: {}", r["run"], p.as_str().unwrap_or_default());
        }
    }
}
