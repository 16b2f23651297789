//! The flaky-portal phase: 420 updates over 60 dossiers to a portal at 30% faults with 3 s
//! sessions, several runs, the time from the last acceptance to the last delivery.

use super::*;

/// Dossiers and updates of the flaky-portal phase (issue 15): 60 dossiers, 7 updates each.
pub(super) const FLAKY_DOSSIERS: usize = 60;
/// Each dossier's life in the flaky phase: (status, whether it is a progress entry).
pub(super) const FLAKY_LIFE: &[(u8, bool)] = &[(1, false), (2, false), (4, true), (4, false), (9, true), (9, false), (10, false)];

pub(super) fn flaky_update(ma: &str, step: usize) -> (String, Value) {
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
pub(super) async fn post_accepted(client: &reqwest::Client, base: &str, path: &str, body: &Value, key: &str) -> anyhow::Result<String> {
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
pub(super) struct FlakyRun {
    /// Last acceptance to last delivery, from the messages' records; `None`: not all were
    /// delivered within the limit.
    seconds: Option<f64>,
    delivered: u64,
    portal: hcc_mocks::dvcqg::PortalCounters,
}

/// One run: a fresh portal at 30% faults with 3 s sessions, a fresh gateway, 420 updates
/// posted at once (ten producers, each dossier's updates in order), then the wait.
pub(super) async fn flaky_run(redis: &Target, workers: usize, limit: Duration, prefix: &str) -> anyhow::Result<FlakyRun> {
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
pub(super) async fn flaky_phase(
    redis: &Target,
    workers: usize,
    runs: usize,
    limit: Duration,
    prefixes: &mut Vec<String>,
) -> anyhow::Result<Value> {
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

pub(super) fn print_flaky(v: &Value) {
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
