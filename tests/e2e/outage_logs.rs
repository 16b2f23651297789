//! Logs that stay readable in an outage (issue 29, item 4): a real `hcc-gateway serve` under
//! load loses its (private) Redis for 3 s. The outage is logged as two state changes and a few
//! summaries, not a line per refused request; `/metrics` counted every refusal.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hcc_mocks::dvcqg::{PortalConfig, PortalState};
use hcc_tests::*;

/// Concurrent clients posting dossiers.
const CLIENTS: usize = 8;
/// How long Redis stays down.
const OUTAGE: Duration = Duration::from_secs(3);
/// The most lines (other than the one access line per request) the outage may write.
const MAX_LINES: usize = 20;

struct Load {
    accepted: AtomicUsize,
    refused: AtomicUsize,
    other: AtomicUsize,
    stop: AtomicBool,
}

/// One client: posts fresh dossiers until told to stop (or a minute passes), counting answers.
async fn client_loop(client: reqwest::Client, base: String, n: usize, load: Arc<Load>) {
    let started = Instant::now();
    for i in 0..1_000_000usize {
        if load.stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let ma = format!("OUTAGE-{n}-{i:06}");
        let (path, body) = Update::Sync(1, 0).path_and_body(&ma);
        let sent = client
            .post(format!("{base}{path}"))
            .bearer_auth(CENTRE_KEY)
            .header("Idempotency-Key", &ma)
            .json(&body)
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(202) => load.accepted.fetch_add(1, Ordering::Relaxed),
            Ok(503) => load.refused.fetch_add(1, Ordering::Relaxed),
            _ => load.other.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn lines_after(path: &std::path::Path, offset: usize) -> Vec<serde_json::Value> {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&text[offset.min(text.len())..])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_writes_a_bounded_number_of_log_lines() {
    let mut redis = PrivateRedis::start();
    let state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()).unwrap();
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("hcc-outage-{}.log", uuid::Uuid::new_v4().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child: Child = serve_command(port, &unique_prefix())
        .env_remove("RUST_LOG")
        .env("HCC__QUEUE__REDIS_URL", redis.url())
        .env("HCC__DVCQG__BASE_URL", portal.url())
        .env("HCC__LOG__LEVEL", "info")
        .env("HCC__LOG__FORMAT", "json")
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    Gateway::at(&base).wait_ready().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let load = Arc::new(Load {
        accepted: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        other: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client_loop(client.clone(), base.clone(), n, load.clone())))
        .collect();
    eventually("the load accepted", Duration::from_secs(20), || async {
        (load.accepted.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await;

    // The outage, under load.
    let offset = std::fs::metadata(&log_path).map(|m| m.len() as usize).unwrap_or(0);
    let refused_before = load.refused.load(Ordering::Relaxed);
    redis.kill();
    tokio::time::sleep(OUTAGE).await;
    redis.restart();
    let accepted_at_restart = load.accepted.load(Ordering::Relaxed);
    eventually("accepting again", Duration::from_secs(20), || async {
        (load.accepted.load(Ordering::Relaxed) >= accepted_at_restart + 50).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let refused = load.refused.load(Ordering::Relaxed) - refused_before;
    assert!(
        refused >= 100,
        "only {refused} requests were refused: the outage was not under load"
    );

    // What the outage wrote, besides the lines every request writes at INFO whatever happens
    // (its access line, "accepted"): everything else, at every level.
    let written: Vec<serde_json::Value> = lines_after(&log_path, offset)
        .into_iter()
        .filter(|l| !(l["level"] == "INFO" && l["span"]["name"] == "request"))
        .collect();
    let shown: Vec<String> = written.iter().map(|l| l.to_string()).collect();
    let mut by_message = std::collections::BTreeMap::<String, usize>::new();
    for l in &written {
        *by_message.entry(format!("{} {}", l["level"], l["message"])).or_default() += 1;
    }
    let of = |needle: &str| {
        written
            .iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with(needle)))
            .count()
    };
    assert_eq!(of("Redis is unavailable"), 1, "{shown:#?}");
    assert_eq!(of("Redis is available again"), 1, "{shown:#?}");
    assert!(
        written.len() <= MAX_LINES,
        "{} lines for {refused} refused requests, by message: {by_message:#?}",
        written.len()
    );
    let down = written
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Redis is unavailable")))
        .unwrap();
    assert_eq!(down["level"], "ERROR");
    assert_eq!(down["dependency"], "redis");
    assert!(
        !down["error"].as_str().unwrap_or_default().is_empty(),
        "the first error is given: {down}"
    );
    let back = written
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Redis is available again")))
        .unwrap();
    assert!(back["refused"].as_u64().unwrap_or(0) >= refused as u64, "{back}");
    eprintln!("{refused} requests refused; the outage wrote:\n{}", shown.join("\n"));

    // /metrics counted every refusal, and Redis is up again.
    let text = eventually("/metrics", Duration::from_secs(10), || async {
        let r = client.get(format!("{base}/metrics")).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        r.text().await.ok()
    })
    .await;
    let counted = metric(&text, "hcc_dependency_failures_total{dependency=\"redis\",caller=\"request\"}").unwrap_or(0.0);
    assert!(counted >= refused as f64, "counted {counted} of {refused} refusals:\n{text}");
    assert_eq!(metric(&text, "hcc_dependency_up{dependency=\"redis\"}"), Some(1.0), "{text}");

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log_path);
    portal.stop().await;
}
