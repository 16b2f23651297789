//! The HTTP service: readiness follows Redis, health, OpenAPI, problem+json on unknown routes.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::{Key, PrivateRedis, eventually, send, settings, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_redis_down_and_back_without_a_restart() {
    let mut redis = PrivateRedis::start();
    let app = spawn_app(
        settings(QueueBackendKind::Redis, &[("HCC__QUEUE__REDIS_URL", redis.url())]),
        Workers::On,
    )
    .await;
    let status = |app: &hcc_tests::TestApp| {
        let req = app.get("/readyz", Key::None);
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(status(&app).await, 200);
    redis.kill();
    eventually("503 while Redis is down", Duration::from_secs(15), || async {
        (status(&app).await == 503).then_some(())
    })
    .await;
    let r = send(app.get("/readyz", Key::None)).await;
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(send(app.get("/healthz", Key::None)).await.status(), 200, "alive, just not ready");
    redis.restart();
    eventually("200 once Redis is back", Duration::from_secs(15), || async {
        (status(&app).await == 200).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn openapi_and_unknown_routes() {
    let app = spawn_app(settings(QueueBackendKind::Memory, &[]), Workers::Off).await;
    let doc = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3."));
    // Every route the gateway serves is described.
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/v1/dossiers", "post"),
        ("/v1/dossiers/{MaHoSo}/progress", "post"),
        ("/v1/messages/{id}", "get"),
        ("/v1/queues", "get"),
        ("/v1/queues/{name}/dead", "get"),
        ("/v1/queues/{name}/dead/replay", "post"),
        ("/v1/queues/{name}/dead/{id}/replay", "post"),
        ("/v1/queues/{name}/dead/{id}", "delete"),
        ("/v1/queues/{name}/pause", "post"),
        ("/v1/queues/{name}/resume", "post"),
        ("/v1/signatures", "post"),
        ("/v1/signatures/verify", "post"),
        ("/v1/payments", "post"),
        ("/v1/payments/{MaThamChieu}", "get"),
        ("/v1/callbacks/paygov", "post"),
        ("/v1/callbacks/vnpay/ipn", "get"),
        ("/v1/callbacks/banks/{bank_id}/camt054", "post"),
        ("/metrics", "get"),
        ("/v1/audit", "get"),
        ("/v1/queues/history", "get"),
        ("/ops", "get"),
        ("/ops/catalogue.js", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not in /openapi.json");
    }
    let r = send(app.get("/nowhere", Key::None)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert!(r#type(&body).ends_with("/not-found"));
    let r = send(app.get("/v1/messages/0190f0e0-0000-7000-8000-000000000000", Key::Operator)).await;
    assert_eq!(r.status(), 404);
    let r = send(app.get("/v1/messages/x", Key::None)).await;
    assert_eq!(r.status(), 401);
    app.stop().await;
}

fn r#type(v: &serde_json::Value) -> &str {
    v["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn start_up_warns_when_redis_cannot_keep_the_promise() {
    use hcc_gateway::storage::RedisStore;
    // The shared test Redis keeps nothing on disk: every warning fires.
    let loose = RedisStore::new(&hcc_tests::redis_url(), 2, "warn")
        .unwrap()
        .durability_warnings()
        .await
        .unwrap();
    assert!(loose.iter().any(|w| w.contains("appendonly")), "{loose:?}");
    // A Redis configured as production should be: no warning.
    let strict = PrivateRedis::start_with(&["--appendfsync", "always"]);
    let none = RedisStore::new(&strict.url(), 2, "warn")
        .unwrap()
        .durability_warnings()
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn start_up_warns_when_min_replicas_cannot_be_met() {
    use hcc_gateway::storage::{RedisOptions, RedisStore, RedisTopology};
    let primary = PrivateRedis::start_with(&["--appendfsync", "always"]);
    let store = RedisStore::with_options(&RedisOptions {
        topology: RedisTopology::Standalone { url: primary.url() },
        pool_size: 2,
        prefix: "warn".into(),
        min_replicas: 1,
        replica_timeout: std::time::Duration::from_millis(200),
        access: Default::default(),
    })
    .unwrap();
    let warnings = store.durability_warnings().await.unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("min_replicas is 1") && w.contains("0 replica(s)")),
        "{warnings:?}"
    );
    let _replica = PrivateRedis::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    hcc_tests::eventually("the replica online", std::time::Duration::from_secs(20), || async {
        (hcc_tests::deployment::connected_replicas(primary.port) >= 1).then_some(())
    })
    .await;
    let warnings = store.durability_warnings().await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// In the process: every background task the gateway started (claim loops, reaper, the
/// reconciliation loops, the replay supervisor, the sampler, the memory watcher, the audit
/// writer) has finished when `run` returns. One thread, and no await between the return and
/// the count: a task that `run` did not wait for has had no chance to finish.
#[tokio::test]
async fn run_returns_with_no_background_task_left() {
    let app = hcc_gateway::app::Application::build(settings(QueueBackendKind::Memory, &[]), Workers::On)
        .await
        .expect("gateway builds");
    let background = app.background();
    let started = background.clone();
    app.run(async move {
        eventually("background tasks under way", Duration::from_secs(5), || async {
            (started.running() > 0).then_some(())
        })
        .await;
    })
    .await
    .expect("run ends cleanly");
    assert_eq!(background.running(), 0);
}
