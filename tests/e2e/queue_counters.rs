//! Queue statistics against a hostile scraper. `/metrics` is unauthenticated and `/v1/queues`
//! feeds dashboards; both used to run a Lua script that walked every dead letter and its
//! ordering key on each request, so a thousand dead letters made every scrape a thousand-step
//! script blocking Redis. They now read maintained counters. These tests watch what a scrape
//! sends to Redis (`MONITOR`), check the counters against a count from scratch through the
//! operators' API, and through a `kill -9` of Redis and data that predates the counters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_gateway::storage::{Claimed, Disposition, Enqueued, MessageQueue as Queue, NewMessage, Store, now_ms};
use hcc_tests::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DEST: &str = "dvcqg";
const KEEP: u64 = 3600;

fn redis_queue(url: &str, prefix: &str) -> Queue {
    Store::redis(url, 4, prefix).unwrap().queue()
}

async fn put(q: &Queue, key: &str, now: i64) -> String {
    let msg = NewMessage {
        kind: "dossier.sync".into(),
        ordering_key: key.into(),
        payload: format!("{{\"MaHoSo\":\"{key}\"}}").into_bytes(),
    };
    match q.enqueue(DEST, msg, None, now).await.unwrap() {
        Enqueued::Accepted(id) => id,
        other => panic!("{other:?}"),
    }
}

/// `keys` ordering keys whose first message is dead, with one message queued behind each of
/// the first `behind`. Returns the dead ids, by key number.
async fn seed_dead_letters(q: &Queue, keys: usize, behind: usize) -> Vec<String> {
    let now = now_ms();
    for k in 0..keys {
        put(q, &format!("D-{k:04}"), now).await;
    }
    let mut dead: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..5 {
        let batch: Vec<Claimed> = q.claim(DEST, keys, now + 60_000, now + round).await.unwrap();
        for c in &batch {
            let how = Disposition::Dead {
                error: "portal refused: invalid MaTTHC".into(),
            };
            assert!(q.settle(DEST, c, &how, now + round, KEEP).await.unwrap());
            dead.insert(c.ordering_key.clone(), c.id.clone());
        }
        if dead.len() == keys {
            break;
        }
    }
    assert_eq!(dead.len(), keys, "every head was claimed and died");
    for k in 0..behind {
        put(q, &format!("D-{k:04}"), now).await;
    }
    dead.into_values().collect()
}

/// A `MONITOR` connection: every command Redis runs, including those inside Lua scripts.
struct Monitor {
    lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
}

impl Monitor {
    async fn start(url: &str) -> Monitor {
        let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or_default().to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let ok = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        assert!(matches!(ok, Ok(Ok(Some(ref l))) if l == "+OK"), "MONITOR refused: {ok:?}");
        Monitor { lines }
    }

    /// The commands that name `needle`, up to the first that names `sentinel` (bounded).
    async fn until(&mut self, needle: &str, sentinel: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        for _ in 0..10_000_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, self.lines.next_line()).await {
                Ok(Ok(Some(l))) => l,
                other => panic!("MONITOR stopped before the sentinel: {other:?}"),
            };
            if line.contains(sentinel) {
                return seen;
            }
            if line.contains(needle) {
                seen.push(line);
            }
        }
        panic!("no sentinel in MONITOR's output");
    }
}

async fn queue_view(app: &TestApp) -> Value {
    let r = app.queues(Key::Operator).await;
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == DEST)
        .cloned()
        .unwrap_or_else(|| panic!("no {DEST} queue in {v}"))
}

fn gauge(text: &str, state: &str) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == "hcc_queue_messages" && s.labels.get("queue") == Some(DEST) && s.labels.get("state") == Some(state))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_with_a_thousand_dead_letters_reads_only_counters() {
    let url = redis_url();
    let prefix = unique_prefix();
    let app = spawn_app(
        settings(
            QueueBackendKind::Redis,
            &[
                ("HCC__QUEUE__KEY_PREFIX", prefix.clone()),
                // A destination to report on; no workers run, so nothing is sent there.
                ("HCC__DVCQG__BASE_URL", "http://127.0.0.1:9".into()),
            ],
        ),
        Workers::Off,
    )
    .await;
    let q = redis_queue(&url, &prefix);
    let dead = seed_dead_letters(&q, 1000, 300).await;
    // The first read of a queue sets its counters up (a recount, once); the attack is the
    // scrapes after it.
    q.stats(DEST, now_ms()).await.unwrap();
    let before = redis_snapshot(&url, &prefix).await;

    let mut monitor = Monitor::start(&url).await;
    let text = app.metrics().await;
    let view = queue_view(&app).await;
    let sentinel = format!("{prefix}:sentinel:{}", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("EXISTS").arg(&sentinel).query_async(&mut conn).await.unwrap();
    let sent = monitor.until(&format!("\"{prefix}:"), &sentinel).await;

    // What the two scrapes asked of Redis: counters, never a message or an ordering key.
    let per_message: Vec<&String> = sent
        .iter()
        .filter(|l| l.contains(&format!("{prefix}:{{{DEST}}}:m:")) || l.contains(&format!("{prefix}:{{{DEST}}}:k:")))
        .collect();
    assert!(
        per_message.is_empty(),
        "a scrape walked the dead letters ({} commands), e.g. {:?}",
        per_message.len(),
        per_message.first()
    );
    assert!(
        sent.len() < 60,
        "two scrapes sent {} commands on the queue's keys: {sent:#?}",
        sent.len()
    );

    assert_eq!((gauge(&text, "dead"), gauge(&text, "blocked")), (1000.0, 300.0));
    assert_eq!((view["dead"].as_u64(), view["blocked"].as_u64()), (Some(1000), Some(300)), "{view}");
    assert_eq!(redis_snapshot(&url, &prefix).await, before, "a scrape changed the stored data");

    // Operators act through the API; the counters follow and agree with a recount.
    for id in &dead[0..100] {
        let r = app.replay(DEST, id, Key::Admin).await;
        assert_eq!(r.status(), 200);
    }
    for id in &dead[200..400] {
        let r = app.discard(DEST, id, Key::Admin).await;
        assert_eq!(r.status(), 200);
    }
    // Keys D-0000..D-0099 were replayed and D-0200..D-0299 discarded: 200 of the 300 blocked
    // messages are free; 700 dead letters remain.
    let view = queue_view(&app).await;
    assert_eq!((view["dead"].as_u64(), view["blocked"].as_u64()), (Some(700), Some(100)), "{view}");
    let audit = q.audit_counters(DEST).await.unwrap();
    assert!(audit.exact(), "{audit:?}");
    assert_eq!((audit.counted_dead, audit.counted_blocked), (700, 100));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_survive_a_redis_crash_and_old_data_is_recounted_once() {
    // Every write on disk before it is acknowledged, so the restart finds exactly what was
    // acknowledged.
    let mut redis = PrivateRedis::start_with(&["--appendfsync", "always"]);
    let prefix = unique_prefix();
    let q = redis_queue(&redis.url(), &prefix);
    let dead = seed_dead_letters(&q, 50, 30).await;
    put(&q, "D-0040", now_ms()).await;
    assert!(q.replay(DEST, &dead[0], now_ms()).await.unwrap());
    assert!(q.discard(DEST, &dead[1], now_ms(), KEEP).await.unwrap());
    let before = q.stats(DEST, now_ms()).await.unwrap();
    assert_eq!((before.dead, before.blocked), (48, 29));

    redis.kill();
    redis.restart();
    // A restarted gateway: a new connection pool on the same data.
    let q = redis_queue(&redis.url(), &prefix);
    let after = eventually("redis back", Duration::from_secs(10), || async {
        q.stats(DEST, now_ms()).await.ok()
    })
    .await;
    assert_eq!((after.dead, after.blocked), (48, 29));
    let audit = q.audit_counters(DEST).await.unwrap();
    assert!(audit.exact(), "after a crash: {audit:?}");

    // Data from before the counters existed: no `counters_v`, and a `blocked` that means
    // nothing. The first read counts from scratch, once, and the counters are kept again.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stats_key = format!("{prefix}:{{{DEST}}}:stats");
    let _: () = redis::cmd("HDEL")
        .arg(&stats_key)
        .arg("counters_v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&stats_key)
        .arg("blocked")
        .arg(-7)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!q.audit_counters(DEST).await.unwrap().exact());
    let s = q.stats(DEST, now_ms()).await.unwrap();
    assert_eq!((s.dead, s.blocked), (48, 29));
    let marked: Option<String> = redis::cmd("HGET")
        .arg(&stats_key)
        .arg("counters_v")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(marked.as_deref(), Some("1"));
    put(&q, "D-0041", now_ms()).await;
    let audit = q.audit_counters(DEST).await.unwrap();
    assert!(audit.exact(), "{audit:?}");
    assert_eq!(audit.blocked, 30);
}
