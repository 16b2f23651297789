//! `kill -9` of a real `hcc-gateway serve` process in the middle of a storm, then a restart:
//! every accepted update still reaches the portal, in order.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hcc_mocks::dvcqg::{PortalConfig, PortalState};
use hcc_mocks::faults::Faults;
use hcc_tests::*;

fn serve(port: u16, prefix: &str, portal: &str) -> Child {
    command(port, prefix, portal)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"))
}

/// `hcc-gateway serve` on `port`, the queue in Redis under `prefix`, the portal at `portal`,
/// logging errors only (stderr is the caller's to set).
fn command(port: u16, prefix: &str, portal: &str) -> Command {
    let mut command = serve_command(port, prefix);
    command
        .env("HCC__DVCQG__BASE_URL", portal)
        .env("HCC__DELIVERY__UPSTREAM_TIMEOUT_MS", "1000")
        .env("HCC__DELIVERY__LEASE_MS", "2000")
        .env("HCC__DELIVERY__BACKOFF_BASE_MS", "20")
        .env("HCC__DELIVERY__BACKOFF_MAX_MS", "300");
    command
}

/// Waits for `child` to exit after SIGTERM, at most `limit`.
async fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < limit, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(port: u16) {
    Gateway::at(&format!("http://127.0.0.1:{port}")).wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_storm_loses_nothing_and_keeps_order() {
    let state = PortalState::new(PortalConfig::default());
    state.set_faults(Faults {
        fail_rate: 0.2,
        fail_status: 502,
        drop_rate: 0.3,
        max_latency_ms: 40,
        latency_ms: 0,
        ..Default::default()
    });
    state.set_session_lifetime(Duration::from_secs(3));
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let port = free_port();
    let prefix = unique_prefix();
    let mut child = serve(port, &prefix, &portal.url());
    wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let dossiers: Vec<String> = (0..100).map(|i| format!("CRASH-{i:03}")).collect();
    let mut producers = Vec::new();
    for chunk in dossiers.chunks(10) {
        let (client, base, chunk) = (client.clone(), base.clone(), chunk.to_vec());
        producers.push(tokio::spawn(async move {
            for (i, u) in life_cycle().iter().enumerate() {
                for ma in &chunk {
                    // Retries with the same key ride through the crash; a request that was
                    // accepted just before it is replayed, not queued twice.
                    post_until_accepted(&client, &base, ma, u, &format!("{ma}-{i}"), Duration::from_secs(60)).await;
                }
            }
        }));
    }
    // Let the storm get going, then kill the process outright.
    eventually("deliveries under way", Duration::from_secs(60), || async {
        (state.counters().accepted >= 150).then_some(())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let at_kill = state.counters().accepted;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = serve(port, &prefix, &portal.url());
    wait_ready(port).await;
    for p in producers {
        p.await.unwrap();
    }
    eventually("every update at the portal", Duration::from_secs(180), || async {
        let per: usize = dossiers
            .iter()
            .map(|ma| {
                let mut v: Vec<(String, u8)> = state.arrivals_of(ma).into_iter().map(|a| (a.service, a.status)).collect();
                v.dedup();
                v.len()
            })
            .sum();
        (per >= 1000).then_some(())
    })
    .await;
    let want: Vec<(String, u8)> = life_cycle().iter().map(|u| (u.expected().0.to_string(), u.expected().1)).collect();
    for ma in &dossiers {
        let mut got: Vec<(String, u8)> = state.arrivals_of(ma).into_iter().map(|a| (a.service, a.status)).collect();
        got.dedup();
        assert_eq!(got, want, "dossier {ma}");
    }
    assert!(at_kill < 1000, "the kill happened mid-storm");
    assert_eq!(state.counters().backwards, 0);
    let _ = child.kill();
    let _ = child.wait();
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_an_in_flight_delivery_and_exits_cleanly() {
    let state = PortalState::new(PortalConfig::default());
    // Every portal answer takes 300 ms, and a first sync makes three calls (login, TraCuuHoSo,
    // DongBoHoSoMC): the delivery is in flight when SIGTERM arrives.
    state.set_faults(Faults {
        latency_ms: 300,
        ..Default::default()
    });
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let port = free_port();
    let mut child = serve(port, &unique_prefix(), &portal.url());
    wait_ready(port).await;
    let client = reqwest::Client::new();
    post_until_accepted(
        &client,
        &format!("http://127.0.0.1:{port}"),
        "TERM-1",
        &Update::Sync(1, 0),
        "term-1",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        state.arrivals_of("TERM-1").is_empty(),
        "SIGTERM must come while the delivery is in flight"
    );
    let status = terminate(&mut child, Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status:?}");
    // The in-flight delivery was allowed to finish before the exit.
    assert_eq!(state.arrivals_of("TERM-1").len(), 1);
    portal.stop().await;
}

/// SIGTERM while a delivery is in flight: the process exits 0 within its grace period, reports
/// that no background task was left running, and the audit line of the delivery it finished
/// while stopping, audited an instant before the exit, is in the shared audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_no_task_running_and_no_audit_line_unwritten() {
    let state = PortalState::new(PortalConfig::default());
    state.set_faults(Faults {
        latency_ms: 300,
        ..Default::default()
    });
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let port = free_port();
    let prefix = unique_prefix();
    let log_path = std::env::temp_dir().join(format!("hcc-sigterm-{prefix}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let grace_secs = 10;
    let mut child = command(port, &prefix, &portal.url())
        .env("HCC__LOG__LEVEL", "info")
        .env("HCC__LOG__FORMAT", "json")
        .env("HCC__SERVER__SHUTDOWN_GRACE_SECS", grace_secs.to_string())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"));
    wait_ready(port).await;
    let client = reqwest::Client::new();
    post_until_accepted(
        &client,
        &format!("http://127.0.0.1:{port}"),
        "TERM-AUDIT",
        &Update::Sync(1, 0),
        "term-audit",
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        state.arrivals_of("TERM-AUDIT").is_empty(),
        "SIGTERM must come while the delivery is in flight"
    );
    let status = terminate(&mut child, Duration::from_secs(grace_secs + 5)).await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(state.arrivals_of("TERM-AUDIT").len(), 1);
    portal.stop().await;

    // The delivery finished during the shutdown; its audit line was written before the exit.
    let store = hcc_gateway::app::build_store(&settings(
        hcc_config::QueueBackendKind::Redis,
        &[("HCC__QUEUE__KEY_PREFIX", prefix.clone())],
    ))
    .unwrap();
    let lines = store.audit_log().read(0, 100).await.unwrap();
    let delivered: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["action"] == "delivery.delivered")
        .collect();
    assert_eq!(delivered.len(), 1, "audit log: {lines:?}");

    // The last word of the process: every background task finished.
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let stopped: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "log: {text}");
    assert_eq!(stopped[0]["unfinished"], 0, "log: {text}");
}
