//! The delivery engine against real Redis and a real HTTP destination (mock-centre): crash
//! recovery through leases, two engines sharing one Redis, a Redis restart with AOF, retries
//! through a faulty destination, and the breaker: it stays closed at 30% failures and opens
//! within seconds on a destination that fails every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hcc_adapters::webhook::WebhookAdapter;
use hcc_gateway::engine::breaker::{BreakerConfig, BreakerState};
use hcc_gateway::engine::policy::RetryPolicy;
use hcc_gateway::engine::{Engine, EngineBuilder, LaneConfig};
use hcc_gateway::storage::{Enqueued, MessageQueue as Queue, MessageStatus, NewMessage, Store, now_ms};
use hcc_mocks::centre::{CentreState, Received};
use hcc_mocks::faults::Faults;
use hcc_signing::webhook::WebhookSecret;
use hcc_tests::{CENTRE_SECRET, PrivateRedis, eventually, redis_url, unique_prefix};

fn secret() -> WebhookSecret {
    WebhookSecret::parse(CENTRE_SECRET).unwrap()
}

fn lane(concurrency: usize) -> LaneConfig {
    LaneConfig {
        concurrency,
        upstream_timeout: Duration::from_millis(2000),
        lease: Duration::from_millis(3000),
        max_age: Duration::from_secs(3600),
        max_attempts: 0,
        policy: RetryPolicy {
            base: Duration::from_millis(20),
            max: Duration::from_millis(300),
            healthy_max: Duration::from_millis(300),
        },
        // Out of the way unless a test asks for it: no window ever holds this many calls.
        breaker: BreakerConfig {
            min_calls: u32::MAX,
            cooldown: Duration::from_millis(300),
            ..BreakerConfig::default()
        },
        retention_secs: 3600,
        poll_interval: Duration::from_millis(20),
        rate_limit_per_sec: 0,
    }
}

fn engine(queue: Queue, sink_url: &str, cfg: LaneConfig) -> Engine {
    let adapter = WebhookAdapter::new(format!("{sink_url}/webhooks"), secret(), cfg.upstream_timeout).unwrap();
    EngineBuilder::new(queue, Duration::from_millis(100))
        .destination(Arc::new(adapter), cfg)
        .start()
}

fn redis_queue(url: &str, prefix: &str) -> Queue {
    Store::redis(url, 16, prefix).unwrap().queue()
}

async fn enqueue(q: &Queue, key: &str, seq: u32) -> String {
    let payload = serde_json::json!({"ordering_key": key, "seq": seq}).to_string().into_bytes();
    match q
        .enqueue(
            "centre",
            NewMessage {
                kind: "test.event".into(),
                ordering_key: key.into(),
                payload,
            },
            None,
            now_ms(),
        )
        .await
        .unwrap()
    {
        Enqueued::Accepted(id) => id,
        other => panic!("{other:?}"),
    }
}

/// Per ordering key, the sequence numbers in the order the sink finished receiving them.
fn sequences(received: &[Received]) -> HashMap<String, Vec<u64>> {
    let mut sorted = received.to_vec();
    sorted.sort_by_key(|r| r.finished_us);
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for r in sorted {
        let key = r.body["ordering_key"].as_str().unwrap_or_default().to_string();
        out.entry(key).or_default().push(r.body["seq"].as_u64().unwrap_or(u64::MAX));
    }
    out
}

async fn wait_unique(state: &CentreState, n: u64, limit: Duration) {
    eventually(&format!("{n} unique webhooks"), limit, || async {
        (state.counters().unique >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_worker_message_is_delivered_once_more_after_its_lease() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    let id = enqueue(&q, "dossier-1", 1).await;
    // A worker takes the message under a 1.5 s lease and dies without acking: nothing settles it.
    let taken = q.claim("centre", 10, now_ms() + 1500, now_ms()).await.unwrap();
    assert_eq!(taken.len(), 1);
    drop(taken);
    let started = std::time::Instant::now();
    let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), lane(4));
    wait_unique(&state, 1, Duration::from_secs(15)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "delivered before the lease ran out"
    );
    let rec = q.get("centre", &id).await.unwrap().unwrap();
    assert_eq!(rec.status, MessageStatus::Delivered);
    assert_eq!(rec.attempts, 2);
    // Exactly once more: give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state.counters().received, 1);
    e.shutdown(Duration::from_secs(5)).await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_redis_deliver_10000_messages_in_order_without_overlap() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    let a = engine(redis_queue(&redis_url(), &prefix), &sink.url(), lane(32));
    let b = engine(redis_queue(&redis_url(), &prefix), &sink.url(), lane(32));
    // 20 rounds over 500 keys, enqueued by concurrent producers while both engines run.
    let mut producers = Vec::new();
    for part in 0..4u32 {
        let q = q.clone();
        producers.push(tokio::spawn(async move {
            for seq in 0..20u32 {
                for key in (part * 125)..((part + 1) * 125) {
                    enqueue(&q, &format!("key-{key}"), seq).await;
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    wait_unique(&state, 10_000, Duration::from_secs(180)).await;
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    let c = state.counters();
    assert_eq!(c.unique, 10_000);
    assert_eq!(c.duplicates, 0, "no message delivered twice");
    assert_eq!(c.concurrent_same_id, 0, "no message delivered by both engines at once");
    assert_eq!(c.concurrent_same_key, 0, "one key never had two deliveries in flight");
    let seqs = sequences(&state.received());
    assert_eq!(seqs.len(), 500);
    for (key, s) in seqs {
        assert_eq!(s, (0..20).collect::<Vec<u64>>(), "order broken for {key}");
    }
    let stats = q.stats("centre", now_ms()).await.unwrap();
    assert_eq!((stats.ready, stats.in_flight, stats.dead, stats.delivered_total), (0, 0, 0, 10_000));
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_destination_gets_everything_in_order_through_retries() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    state.set_faults(Faults {
        fail_rate: 0.3,
        fail_status: 503,
        drop_rate: 0.3,
        max_latency_ms: 20,
        latency_ms: 0,
        ..Default::default()
    });
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    for seq in 0..15 {
        for key in 0..20 {
            enqueue(&q, &format!("k{key}"), seq).await;
        }
    }
    let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), lane(16));
    wait_unique(&state, 300, Duration::from_secs(120)).await;
    e.shutdown(Duration::from_secs(5)).await;
    let c = state.counters();
    assert!(c.failed_by_fault > 0, "the faults were exercised");
    for (key, s) in sequences(&state.received()) {
        assert_eq!(s, (0..15).collect::<Vec<u64>>(), "order broken for {key}");
    }
    assert_eq!(q.stats("centre", now_ms()).await.unwrap().dead, 0);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_on_a_dead_destination_and_the_backlog_drains_when_it_returns() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    let sink_url = sink.url();
    sink.stop().await;
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    let mut heads = Vec::new();
    for seq in 0..10 {
        let k = enqueue(&q, "k", seq).await;
        let j = enqueue(&q, "j", seq).await;
        if seq == 0 {
            heads = vec![k, j];
        }
    }
    let mut cfg = lane(8);
    cfg.breaker = BreakerConfig {
        min_calls: 10,
        cooldown: Duration::from_millis(1000),
        half_open_probes: 1,
        ..BreakerConfig::default()
    };
    let e = engine(redis_queue(&redis_url(), &prefix), &sink_url, cfg);
    let handle = e.handle();
    eventually("breaker open", Duration::from_secs(10), || async {
        matches!(handle.breaker_state("centre"), Some(BreakerState::Open)).then_some(())
    })
    .await;
    let attempts = |q: Queue, heads: Vec<String>| async move {
        let mut total = 0;
        for id in heads {
            total += q.get("centre", &id).await.unwrap().map_or(0, |r| r.attempts);
        }
        total
    };
    // With the breaker open, one probe per 1 s cool-down; the 20-300 ms backoff alone would
    // make some twenty attempts in the same 3 s.
    let before = attempts(q.clone(), heads.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = attempts(q.clone(), heads.clone()).await;
    assert!(
        after - before <= 5,
        "attempts kept coming while the breaker was open: {before} -> {after}"
    );
    let stats = q.stats("centre", now_ms()).await.unwrap();
    assert_eq!(
        (stats.dead, stats.delivered_total),
        (0, 0),
        "a down destination is retried, never dead-lettered"
    );
    // Bring the destination back on the same address.
    let (back, state2) = hcc_mocks::centre::spawn(sink_url.trim_start_matches("http://"), secret()).unwrap();
    wait_unique(&state2, 20, Duration::from_secs(30)).await;
    for (key, s) in sequences(&state2.received()) {
        assert_eq!(s, (0..10).collect::<Vec<u64>>(), "order broken for {key}");
    }
    assert_eq!(state.counters().received, 0);
    e.shutdown(Duration::from_secs(5)).await;
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_a_redis_crash_with_aof() {
    let mut redis = PrivateRedis::start_with(&["--appendfsync", "always"]);
    let prefix = unique_prefix();
    let q = redis_queue(&redis.url(), &prefix);
    let mut ids = Vec::new();
    for seq in 0..50 {
        ids.push(enqueue(&q, &format!("k{}", seq % 5), seq).await);
    }
    redis.kill();
    redis.restart();
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    let e = engine(redis_queue(&redis.url(), &prefix), &sink.url(), lane(8));
    wait_unique(&state, 50, Duration::from_secs(30)).await;
    e.shutdown(Duration::from_secs(5)).await;
    for id in ids {
        assert_eq!(
            q.get("centre", &id).await.unwrap().map(|r| r.status),
            Some(MessageStatus::Delivered)
        );
    }
    sink.stop().await;
}

/// One message in flight to a sink that takes `latency_ms` to answer.
async fn one_slow_delivery(latency_ms: u64) -> (hcc_mocks::Running, CentreState, Queue, String, Engine) {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    state.set_faults(Faults {
        latency_ms,
        ..Default::default()
    });
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    let id = enqueue(&q, "k", 0).await;
    let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), lane(4));
    eventually("in flight", Duration::from_secs(5), || async {
        (q.get("centre", &id).await.unwrap().map(|r| r.status) == Some(MessageStatus::InFlight)).then_some(())
    })
    .await;
    (sink, state, q, id, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_deliveries() {
    let (sink, state, q, id, e) = one_slow_delivery(800).await;
    e.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        q.get("centre", &id).await.unwrap().map(|r| r.status),
        Some(MessageStatus::Delivered)
    );
    assert_eq!(state.counters().received, 1);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_deliveries_that_outlast_the_grace_period() {
    let (sink, _state, q, id, e) = one_slow_delivery(1500).await;
    e.shutdown(Duration::from_millis(100)).await;
    let rec = q.get("centre", &id).await.unwrap().unwrap();
    assert_eq!(rec.status, MessageStatus::Queued, "handed back, not lost");
    assert_eq!(rec.attempts, 0, "a handed-back delivery does not count as an attempt");
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_dead_lettered_by_attempts_or_by_age() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    state.set_faults(Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Default::default()
    });
    for (max_attempts, max_age, expect) in [
        (3, Duration::from_secs(3600), "gave up after 3 attempts"),
        (0, Duration::from_millis(400), "gave up after"),
    ] {
        let prefix = unique_prefix();
        let q = redis_queue(&redis_url(), &prefix);
        let id = enqueue(&q, "k", 0).await;
        let behind = enqueue(&q, "k", 1).await;
        let mut cfg = lane(2);
        cfg.max_attempts = max_attempts;
        cfg.max_age = max_age;
        let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), cfg);
        let rec = eventually("dead", Duration::from_secs(15), || async {
            q.get("centre", &id).await.unwrap().filter(|r| r.status == MessageStatus::Dead)
        })
        .await;
        let err = rec.last_error.unwrap_or_default();
        assert!(err.contains(expect) && err.contains("HTTP 503"), "{err}");
        if max_attempts > 0 {
            assert_eq!(rec.attempts, 3);
        }
        assert_eq!(
            q.get("centre", &behind).await.unwrap().map(|r| r.status),
            Some(MessageStatus::Blocked)
        );
        e.shutdown(Duration::from_secs(2)).await;
    }
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_destination_is_honoured() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    state.set_faults(Faults {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(3),
        ..Default::default()
    });
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    let id = enqueue(&q, "k", 0).await;
    let mut cfg = lane(2);
    cfg.policy = RetryPolicy {
        base: Duration::from_millis(20),
        max: Duration::from_secs(10),
        healthy_max: Duration::from_secs(10),
    };
    let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), cfg);
    let rec = eventually("retrying", Duration::from_secs(10), || async {
        q.get("centre", &id).await.unwrap().filter(|r| r.status == MessageStatus::Retrying)
    })
    .await;
    // The backoff alone would wait 10-20 ms; the destination asked for 3 s.
    let wait = rec.next_attempt_at.unwrap_or(0) - now_ms();
    assert!(wait > 2_000, "next attempt in {wait} ms");
    assert!(rec.last_error.unwrap_or_default().contains("429"));
    e.shutdown(Duration::from_secs(2)).await;
    sink.stop().await;
}

/// The breaker of the two tests below: ≥ 50% failures, as by default, but of at least 100
/// calls. At the default 20, a window of 20 calls at 30% failures holds 10 or more failures
/// about 5% of the time (see the breaker's unit tests), which would make a test of "stays
/// closed" fail once in twenty runs; at 100 the chance is below 1e-4, and a dead destination
/// still gives 100 calls in well under 5 s at this lane's backoff (20-300 ms, 16 keys).
fn rate_breaker() -> BreakerConfig {
    BreakerConfig {
        failure_rate_percent: 50,
        min_calls: 100,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(1),
        half_open_probes: 3,
        consecutive_failures: 0,
    }
}

/// Samples the breaker every few milliseconds until stopped: (states seen other than closed,
/// the most calls its window held).
fn watch_breaker(
    handle: hcc_gateway::engine::EngineHandle,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<(Vec<BreakerState>, u32)>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut most_calls = 0;
        // Bounded: at most 10 minutes of 5 ms samples, far beyond any test's own deadline.
        for _ in 0..120_000 {
            if stopped.try_recv().is_ok() {
                break;
            }
            if let Some(state) = handle.breaker_state("centre").filter(|s| *s != BreakerState::Closed) {
                seen.push(state);
            }
            most_calls = most_calls.max(handle.breaker_window("centre").map_or(0, |(calls, _)| calls));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (seen, most_calls)
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_failing_30_percent_of_calls_keeps_flowing_with_the_breaker_closed() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    state.set_faults(Faults {
        fail_rate: 0.3,
        fail_status: 503,
        ..Default::default()
    });
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    for seq in 0..20 {
        for key in 0..16 {
            enqueue(&q, &format!("k{key}"), seq).await;
        }
    }
    let mut cfg = lane(16);
    cfg.breaker = rate_breaker();
    let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), cfg);
    let (stop, watcher) = watch_breaker(e.handle());
    wait_unique(&state, 320, Duration::from_secs(120)).await;
    let _ = stop.send(());
    let (seen, most_calls) = watcher.await.unwrap();
    e.shutdown(Duration::from_secs(5)).await;
    let c = state.counters();
    assert!(c.failed_by_fault > 50, "the faults were exercised: {}", c.failed_by_fault);
    // Not vacuous: the window held enough calls for the rate rule to judge.
    assert!(most_calls >= 100, "the window never held 100 calls (at most {most_calls})");
    assert!(
        seen.is_empty(),
        "the breaker left closed at 30% failures: {:?}",
        &seen[..seen.len().min(5)]
    );
    for (key, s) in sequences(&state.received()) {
        assert_eq!(s, (0..20).collect::<Vec<u64>>(), "order broken for {key}");
    }
    assert_eq!(q.stats("centre", now_ms()).await.unwrap().dead, 0);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_failing_every_call_trips_the_breaker_within_5_s() {
    let (sink, state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret()).unwrap();
    state.set_faults(Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Default::default()
    });
    let prefix = unique_prefix();
    let q = redis_queue(&redis_url(), &prefix);
    for seq in 0..5 {
        for key in 0..16 {
            enqueue(&q, &format!("k{key}"), seq).await;
        }
    }
    let mut cfg = lane(16);
    cfg.breaker = rate_breaker();
    let e = engine(redis_queue(&redis_url(), &prefix), &sink.url(), cfg);
    let handle = e.handle();
    // The spec's bound, measured from the engine's start (generous: the engine needs some 20
    // calls a second; this lane makes several times that).
    eventually("breaker open within 5 s", Duration::from_secs(5), || async {
        matches!(handle.breaker_state("centre"), Some(BreakerState::Open)).then_some(())
    })
    .await;
    let (calls, failures) = handle.breaker_window("centre").unwrap_or_default();
    assert!(calls >= 100 && failures == calls, "opened on {failures} failures of {calls} calls");
    let stats = q.stats("centre", now_ms()).await.unwrap();
    assert_eq!(
        (stats.dead, stats.delivered_total),
        (0, 0),
        "a failing destination is retried, not dead-lettered"
    );
    assert!(state.counters().failed_by_fault >= 100);
    e.shutdown(Duration::from_secs(2)).await;
    sink.stop().await;
}
