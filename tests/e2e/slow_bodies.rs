//! Bodies that cannot hold the server (issue 20, item 3), against the real `hcc-gateway serve`
//! process so that its memory can be read from `/proc/<pid>/status`:
//! - a PayGov callback declaring a megabyte is refused (413) before a byte is read, and one that
//!   stops sending gets 408;
//! - hundreds of connections declare a megabyte to a configured bank's camt.054 route, send
//!   almost all of it and wait: the gateway's resident memory stays under a bound, the bodies
//!   it took are answered 408 when they stop coming, and past the in-flight budget new bodies
//!   get 503 with `Retry-After`;
//! - when the attack ends the memory comes back, and a real signed camt.054 from the mock bank
//!   still pays.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hcc_tests::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The in-flight budget the gateway runs with here, and its body read timeout.
const BUDGET: usize = 32 * 1024 * 1024;
const READ_TIMEOUT_MS: u64 = 4_000;
/// The configured body limit, which is the camt.054 route's.
const LIMIT: usize = 1024 * 1024;
/// Connections that send almost a whole megabyte and wait.
const HOLDERS: usize = 300;
/// Before the fix each held its megabyte, about 300 MB in all; the bound leaves room for the
/// budget, actix's per-connection buffers and the allocator's slack.
const PEAK_BOUND_KB: u64 = 160 * 1024;
/// After the attack the gateway is back within this of where it started. Without giving the
/// allocator's free pages back (`hcc_gateway::memory`) about 60 MB stayed, fixed or not.
const AFTER_BOUND_KB: u64 = 36 * 1024;

struct Served {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `hcc-gateway serve` on Redis with PayGov on the mock portal and bank `devbank`.
fn serve(mocks: &PaymentMocks) -> Served {
    let bin = binary("hcc-gateway");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("hcc-slow-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = File::create(dir.join("gateway.log")).unwrap();
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env_remove("RUST_LOG")
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local")
        .env("HCC__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("HCC__SERVER__WORKERS", "2")
        .env("HCC__SERVER__BODY_LIMIT_BYTES", LIMIT.to_string())
        .env("HCC__SERVER__BODY_READ_TIMEOUT_MS", READ_TIMEOUT_MS.to_string())
        .env("HCC__SERVER__INFLIGHT_BODY_BYTES", BUDGET.to_string())
        .env("HCC__QUEUE__BACKEND", "redis")
        .env("HCC__QUEUE__REDIS_URL", redis_url())
        .env("HCC__QUEUE__POLL_INTERVAL_MS", "20")
        .env("HCC__DVCQG__BASE_URL", "")
        .env("HCC__CENTRE__WEBHOOK_URL", "")
        .env("HCC__LOG__LEVEL", "warn");
    for (k, v) in mocks.overrides(&unique_prefix()) {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"));
    Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// The resident set of process `pid`, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the resident set of `pid` every 50 ms until `stop`; the largest seen.
fn watch_peak(pid: u32, stop: Arc<AtomicBool>) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let seen = peak.clone();
    let task = tokio::spawn(async move {
        // Bounded: at most ten minutes of samples.
        for _ in 0..12_000 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            seen.fetch_max(rss_kb(pid), Ordering::AcqRel);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (peak, task)
}

/// What became of one slow body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The gateway answered: the status and its `Retry-After`.
    Answered(u16, Option<String>),
    /// The connection was closed or reset without an answer the client could read (a refusal
    /// sent while the client was still sending may be lost to the reset).
    Cut,
    /// No answer at all within the wait: the body holds the server.
    Silent,
}

/// One connection: a head declaring `declared` bytes, `sent` bytes of body (in 16 KiB writes,
/// stopping if the gateway cuts it), `sent_tx` told, then waiting up to `wait` for the answer.
async fn slow_body(
    port: u16,
    path: &str,
    content_type: &str,
    declared: usize,
    sent: usize,
    wait: Duration,
    sent_tx: Option<tokio::sync::mpsc::Sender<()>>,
) -> Outcome {
    let Ok(Ok(mut s)) = tokio::time::timeout(wait, tokio::net::TcpStream::connect(("127.0.0.1", port))).await else {
        return Outcome::Cut;
    };
    let head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n");
    let piece = vec![b' '; 16 * 1024];
    let mut written = s.write_all(head.as_bytes()).await.is_ok();
    let mut left = sent;
    while written && left > 0 {
        let n = left.min(piece.len());
        written = s.write_all(&piece[..n]).await.is_ok();
        left -= n;
    }
    if let Some(tx) = sent_tx {
        let _ = tx.send(()).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        // Bounded by the wait above and by the head's size.
        while answer.len() < 64 * 1024 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(code) => {
            let retry_after = text.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("retry-after").then(|| value.trim().to_string())
            });
            Outcome::Answered(code, retry_after)
        }
        None if read.is_err() => Outcome::Silent,
        None => Outcome::Cut,
    }
}

fn tally(outcomes: &[Outcome]) -> std::collections::BTreeMap<String, usize> {
    let mut t = std::collections::BTreeMap::new();
    for o in outcomes {
        let k = match o {
            Outcome::Answered(c, _) => c.to_string(),
            Outcome::Cut => "cut".into(),
            Outcome::Silent => "silent".into(),
        };
        *t.entry(k).or_insert(0) += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_cannot_hold_the_gateway_and_a_real_notification_still_pays() {
    let mocks = payment_mocks("slow");
    let served = serve(&mocks);
    let gateway = Gateway::at(&served.base);
    gateway.wait_ready().await;
    let pid = served.child.id();
    let port: u16 = served.base.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap();
    // Warm up the paths the attack takes, so the baseline includes what any traffic costs.
    let reference = gateway.new_payment_reference("paygov", 150_000).await;
    let r = gateway.camt054("devbank", "<x/>").await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let baseline = rss_kb(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let (peak, watcher) = watch_peak(pid, stop.clone());
    let wait = Duration::from_secs(30);

    // PayGov sends a few KB: a megabyte declared is refused unread, and a body that stops
    // coming gets 408.
    let declared_big: Vec<_> = (0..100)
        .map(|_| tokio::spawn(slow_body(port, "/v1/callbacks/paygov", "application/json", LIMIT, 0, wait, None)))
        .collect();
    let stalled: Vec<_> = (0..20)
        .map(|_| tokio::spawn(slow_body(port, "/v1/callbacks/paygov", "application/json", 4000, 100, wait, None)))
        .collect();
    let mut big = Vec::new();
    for t in declared_big {
        big.push(t.await.unwrap());
    }
    let mut slow = Vec::new();
    for t in stalled {
        slow.push(t.await.unwrap());
    }
    assert!(big.iter().all(|o| matches!(o, Outcome::Answered(413, _))), "{:?}", tally(&big));
    assert!(slow.iter().all(|o| matches!(o, Outcome::Answered(408, _))), "{:?}", tally(&slow));

    // The bank's route takes a megabyte: hundreds of connections send almost all of it and wait.
    let path = "/v1/callbacks/banks/devbank/camt054";
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel(HOLDERS);
    let holders: Vec<_> = (0..HOLDERS)
        .map(|_| {
            tokio::spawn(slow_body(
                port,
                path,
                "application/xml",
                LIMIT,
                LIMIT - 48 * 1024,
                wait,
                Some(sent_tx.clone()),
            ))
        })
        .collect();
    drop(sent_tx);
    for _ in 0..HOLDERS {
        if tokio::time::timeout(wait, sent_rx.recv()).await.ok().flatten().is_none() {
            break;
        }
    }
    // The budget is taken by now, all but less than one holder's share: of new bodies of a
    // quarter megabyte at most a few fit, the rest are told to come back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probes: Vec<_> = (0..50)
        .map(|_| tokio::spawn(slow_body(port, path, "application/xml", LIMIT, 256 * 1024, wait, None)))
        .collect();
    let mut probed = Vec::new();
    for t in probes {
        probed.push(t.await.unwrap());
    }
    let mut held = Vec::new();
    for t in holders {
        held.push(t.await.unwrap());
    }
    stop.store(true, Ordering::Release);
    let _ = watcher.await;
    let peak = peak.load(Ordering::Acquire);
    eprintln!(
        "RSS baseline {baseline} kB, peak {peak} kB; holders {:?}, probes {:?}",
        tally(&held),
        tally(&probed)
    );
    assert!(!held.contains(&Outcome::Silent), "a body held the server: {:?}", tally(&held));
    assert!(
        held.iter().all(|o| matches!(o, Outcome::Answered(408 | 503, _) | Outcome::Cut)),
        "{:?}",
        tally(&held)
    );
    assert!(
        held.iter().any(|o| matches!(o, Outcome::Answered(408, _))),
        "the bodies the budget took end in 408: {:?}",
        tally(&held)
    );
    assert!(
        probed.iter().all(|o| matches!(o, Outcome::Answered(408 | 503, _) | Outcome::Cut)),
        "{:?}",
        tally(&probed)
    );
    assert!(
        probed.iter().any(|o| matches!(o, Outcome::Answered(503, Some(r)) if r == "2")),
        "a full budget answers 503 with Retry-After: {:?}",
        tally(&probed)
    );
    assert!(
        peak.saturating_sub(baseline) < PEAK_BOUND_KB,
        "resident memory grew from {baseline} kB to {peak} kB"
    );

    // The attack is over: the memory comes back (bounded wait), and a real notification pays.
    let after = eventually("memory back after the attack", Duration::from_secs(10), || async {
        let now = rss_kb(pid);
        (now.saturating_sub(baseline) < AFTER_BOUND_KB).then_some(now)
    })
    .await;
    eprintln!("RSS after the attack {after} kB");
    let credit: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_mock/bank/credit", mocks.bank.url()))
        .json(&json!({"reference": reference, "amount_vnd": 150_000, "url": gateway.url(path), "bank_ref": "FT-SLOW-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(credit["replies"][0]["status"], 200, "{credit}");
    gateway.wait_payment(&reference, "paid").await;
}
