//! High availability on Redis Sentinel: a primary, two replicas and three sentinels, the
//! gateway in sentinel mode with `min_replicas 1`; and replica acknowledgement on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_gateway::storage::{Store, now_ms};
use hcc_tests::deployment::{SENTINEL_MASTER, SentinelDeployment, connected_replicas, info};
use hcc_tests::*;

const DOSSIERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_failover_mid_storm_loses_nothing_accepted_and_keeps_order() {
    let mut redis = tokio::task::spawn_blocking(SentinelDeployment::start).await.unwrap();
    let (p, state) = portal();
    let app = spawn_app(
        settings(
            QueueBackendKind::Redis,
            &[
                ("HCC__DVCQG__BASE_URL", p.url()),
                ("HCC__QUEUE__REDIS_MODE", "sentinel".into()),
                ("HCC__QUEUE__REDIS_NODES", redis.sentinel_urls().join(",")),
                ("HCC__QUEUE__SENTINEL_MASTER", SENTINEL_MASTER.into()),
                ("HCC__QUEUE__MIN_REPLICAS", "1".into()),
                // The gateway waits for every connected replica, with 1 as the floor; the
                // timeout is how long a lagging replica (on a loaded machine) is waited for
                // before 1 is enough. Too short, and a lagging replica Sentinel then promotes
                // would lack acknowledged writes (docs/operations.md, "Which replicas").
                ("HCC__QUEUE__REPLICA_TIMEOUT_MS", "3000".into()),
            ],
        ),
        Workers::On,
    )
    .await;
    let client = app.client.clone();
    let base = app.address.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut storm = Vec::new();
    for d in 0..DOSSIERS {
        let (client, base, accepted) = (client.clone(), base.clone(), accepted.clone());
        storm.push(tokio::spawn(async move {
            let ma = format!("000.00.22.H46-241126-{d:04}");
            let mut sent = Vec::new();
            for (i, u) in life_cycle().iter().enumerate() {
                sent.push(post_until_202(&client, &base, &ma, u, &format!("s{d}-{i}"), deadline).await);
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            sent
        }));
    }
    // Kill the primary once a third of the storm is in.
    while accepted.load(Ordering::Relaxed) < DOSSIERS * 10 / 3 {
        assert!(Instant::now() < deadline, "the storm stalled before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_port = redis.kill_primary();
    let killed_at = Instant::now();
    // Readiness must say so during the switch.
    let mut saw_unready = false;
    let mut ready_again = false;
    while Instant::now() < killed_at + Duration::from_secs(30) {
        let status = client
            .get(app.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        saw_unready |= status == 503;
        if saw_unready && status == 200 {
            ready_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut after_kill: Vec<Instant> = Vec::new();
    for t in storm {
        after_kill.extend(t.await.unwrap().into_iter().filter(|s| *s > killed_at));
    }
    assert!(saw_unready, "/readyz never answered 503 after the primary died");
    assert!(ready_again, "/readyz never came back after the failover");
    let first = after_kill
        .iter()
        .min()
        .copied()
        .unwrap_or_else(|| panic!("nothing accepted after the kill"));
    let gap = first.duration_since(killed_at);
    println!(
        "sentinel failover gap: {} ms (primary on port {killed_port} killed)",
        gap.as_millis()
    );
    assert!(gap < Duration::from_secs(30), "accepting again took {gap:?}");
    let new_primary = redis.primary_port().unwrap_or_else(|| panic!("no new primary"));
    assert_ne!(new_primary, killed_port);

    let dossiers: Vec<String> = (0..DOSSIERS).map(|d| format!("000.00.22.H46-241126-{d:04}")).collect();
    let wrong = not_in_order_after(&state, &dossiers, Duration::from_secs(60)).await;
    if !wrong.is_empty() {
        let stats = app.handle.queue.stats("dvcqg", hcc_gateway::storage::now_ms()).await;
        panic!("dossiers not delivered whole and in order: {wrong:?}\nqueue on the new primary: {stats:?}");
    }
    assert_eq!(state.counters().backwards, 0, "the portal saw a dossier go backwards");
    app.stop().await;
    p.stop().await;
    drop(redis);
}

/// A failover the sentinels are asked for: the old primary stays up as a replica, so writes
/// sent to it are refused (`READONLY`) or its connections are closed. The gateway follows the
/// new primary and nothing accepted is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_switch_with_the_old_primary_alive_is_followed() {
    let redis = tokio::task::spawn_blocking(SentinelDeployment::start).await.unwrap();
    let (p, state) = portal();
    let s = settings(
        QueueBackendKind::Redis,
        &[
            ("HCC__DVCQG__BASE_URL", p.url()),
            ("HCC__QUEUE__REDIS_MODE", "sentinel".into()),
            ("HCC__QUEUE__REDIS_NODES", redis.sentinel_urls().join(",")),
            ("HCC__QUEUE__SENTINEL_MASTER", SENTINEL_MASTER.into()),
            ("HCC__QUEUE__MIN_REPLICAS", "1".into()),
        ],
    );
    let prefix = s.queue.key_prefix.clone();
    let app = spawn_app(s, Workers::On).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let updates = life_cycle();
    let ma = "000.00.22.H46-241126-0500";
    for (i, u) in updates.iter().enumerate().take(5) {
        post_until_202(&app.client, &app.address, ma, u, &format!("d-{i}"), deadline).await;
    }
    let old = redis.primary_port().unwrap_or_else(|| panic!("no primary"));
    redis.demote_primary();
    eventually("a new primary", Duration::from_secs(30), || async {
        redis.primary_port().filter(|p| *p != old).map(|_| ())
    })
    .await;
    for (i, u) in updates.iter().enumerate().skip(5) {
        post_until_202(&app.client, &app.address, ma, u, &format!("d-{i}"), deadline).await;
    }
    let new = redis.primary_port().unwrap_or_else(|| panic!("no primary"));
    assert_ne!(new, old);
    // The last update is on the new primary: the gateway writes there now.
    let store = Store::redis(&format!("redis://127.0.0.1:{new}/0"), 2, &prefix).unwrap();
    let ready = store.queue().stats("dvcqg", now_ms()).await.unwrap();
    assert!(
        ready.delivered_total + ready.ready + ready.in_flight + ready.scheduled >= 10,
        "{ready:?}"
    );
    let expected: Vec<(String, u8)> = updates.iter().map(|u| (u.expected().0.to_string(), u.expected().1)).collect();
    eventually("the whole life cycle at the portal, in order", Duration::from_secs(30), || async {
        let seen = state.arrivals_of(ma).into_iter().map(|a| (a.service, a.status)).collect();
        (dedup(seen) == expected).then_some(())
    })
    .await;
    let status = app.client.get(app.url("/readyz")).send().await.unwrap().status();
    assert_eq!(status, 200);
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_replicas_without_a_replica_is_503_and_the_retry_keeps_the_first_write() {
    let primary = PrivateRedis::start();
    let s = settings(
        QueueBackendKind::Redis,
        &[
            ("HCC__QUEUE__REDIS_URL", primary.url()),
            // The default wait (1 s), longer than the client's default response timeout.
            ("HCC__QUEUE__MIN_REPLICAS", "1".into()),
            ("HCC__DVCQG__BASE_URL", "http://127.0.0.1:9/".into()),
        ],
    );
    let prefix = s.queue.key_prefix.clone();
    let app = spawn_app(s, Workers::Off).await;
    let ma = "000.00.22.H46-241126-0999";
    let (path, body) = life_cycle()[0].path_and_body(ma);
    let post = || {
        app.client
            .post(app.url(&path))
            .bearer_auth(CENTRE_KEY)
            .header("Idempotency-Key", "only-once")
            .json(&body)
            .send()
    };
    let unreplicated = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("hcc_queue_unreplicated_writes_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert_eq!(unreplicated(app.metrics().await), Some(0), "exported at 0 before any refusal");
    for _ in 0..2 {
        let started = Instant::now();
        let r = post().await.unwrap();
        assert_eq!(r.status(), 503);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "a 503 must come when the wait runs out, not before or long after: {took:?}"
        );
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["type"], "https://hcc-gateway.dev/problems/not-replicated");
    }
    // The refusals log only at debug per request: the counter is their signal.
    assert_eq!(unreplicated(app.metrics().await), Some(2));
    let replica = PrivateRedis::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    eventually("the replica in sync", Duration::from_secs(20), || async {
        (connected_replicas(primary.port) >= 1).then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = post().await.unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(
            r.headers()["idempotent-replayed"],
            "true",
            "the first write was kept, not made again"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    assert!(!ids[0].is_empty());
    assert_eq!(ids[0], ids[1]);
    // One message in the queue, on the replica too.
    let stats = Store::redis(&primary.url(), 2, &prefix)
        .unwrap()
        .queue()
        .stats("dvcqg", now_ms())
        .await
        .unwrap();
    assert_eq!(stats.ready, 1, "{stats:?}");
    app.stop().await;
    drop(replica);
}

/// A 202 means every replica connected at the time holds the write, not only the fastest:
/// whichever of them a failover promotes has it. Replica B is asleep (`DEBUG SLEEP`) when the
/// write is made, so it can neither take nor acknowledge it; the gateway must wait for it (up
/// to `replica_timeout_ms`). Right after the 202 the primary must therefore report B's
/// acknowledged offset past where the stream stood before the write. Waiting for
/// `min_replicas` (1) alone answers as soon as replica A has it, with B still asleep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_write_is_on_every_connected_replica() {
    let primary = PrivateRedis::start();
    let of_primary = [
        "--replicaof",
        "127.0.0.1",
        &primary.port.to_string(),
        "--enable-debug-command",
        "yes",
    ]
    .map(String::from);
    let of_primary: Vec<&str> = of_primary.iter().map(String::as_str).collect();
    let _a = PrivateRedis::start_with(&of_primary);
    let b = PrivateRedis::start_with(&of_primary);
    eventually("both replicas in sync", Duration::from_secs(20), || async {
        (connected_replicas(primary.port) >= 2).then_some(())
    })
    .await;
    let s = settings(
        QueueBackendKind::Redis,
        &[
            ("HCC__QUEUE__REDIS_URL", primary.url()),
            ("HCC__QUEUE__MIN_REPLICAS", "1".into()),
            ("HCC__QUEUE__REPLICA_TIMEOUT_MS", "10000".into()),
            ("HCC__DVCQG__BASE_URL", "http://127.0.0.1:9/".into()),
        ],
    );
    let app = spawn_app(s, Workers::Off).await;
    // What the primary says of its replication stream: its own offset, and B's last
    // acknowledged offset.
    let offsets = |b_port: u16| -> (u64, u64) {
        let text = info(primary.port, "replication").unwrap_or_default();
        let master = text
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // `slave1:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0`
        let of_b = text
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains(&format!("port={b_port},")))
            .find_map(|l| l.split(',').find_map(|kv| kv.strip_prefix("offset=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        (master, of_b)
    };
    // B sleeps for 3 s: still connected, but it neither takes nor acknowledges anything.
    let b_url = b.url();
    let sleeper = tokio::spawn(async move {
        let client = redis::Client::open(b_url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: redis::RedisResult<()> = redis::cmd("DEBUG").arg("SLEEP").arg(3).query_async(&mut conn).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (before, _) = offsets(b.port);
    assert!(before > 0, "the primary's replication offset could not be read");
    let r = app.post_dossier(&dossier("000.00.22.H46-241126-0777", 1)).await;
    assert_eq!(r.status(), 202);
    let (_, b_acked) = offsets(b.port);
    assert!(
        b_acked > before,
        "the 202 came before replica B had the write: B acknowledged {b_acked}, the stream was at {before} before it"
    );
    let _ = sleeper.await;
    app.stop().await;
}
