//! The operators' API: queue statistics, dead letters replayed and discarded, roles, pause.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_tests::*;
use serde_json::{Value, json};

/// Accepts a dossier update at `path` (the sync or a progress path) and returns its id.
async fn accept(app: &TestApp, path: &str, body: &Value) -> String {
    accepted_id(app.post_json(path, Key::Centre, body).await).await
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.message(id).await["status"].as_str().unwrap_or_default().to_string()
}

fn unknown_procedure(ma: &str) -> Value {
    let mut d = dossier(ma, 1);
    d["MaTTHC"] = json!("1.999999.000.00.00.H46");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_discard_with_roles_and_queue_stats() {
    for backend in [QueueBackendKind::Redis, QueueBackendKind::Memory] {
        let (portal, state, app) = with_portal(backend).await;
        let dead_a = accept(&app, "/v1/dossiers", &unknown_procedure("OPS-A")).await;
        let next_a = accept(&app, "/v1/dossiers/OPS-A/progress", &progress("OPS-A", 2, 1)).await;
        let dead_b = accept(&app, "/v1/dossiers", &unknown_procedure("OPS-B")).await;
        let next_b = accept(&app, "/v1/dossiers", &dossier("OPS-B", 2)).await;
        app.wait_message(&dead_a, "dead").await;
        app.wait_message(&dead_b, "dead").await;

        let (code, queues) = status_json(app.queues(Key::Operator).await).await;
        assert_eq!(code, 200);
        let q = queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "dvcqg")
            .unwrap()
            .clone();
        assert_eq!(
            (q["dead"].as_u64(), q["blocked"].as_u64(), q["paused"].as_bool()),
            (Some(2), Some(2), Some(false)),
            "{q}"
        );
        assert_eq!(q["breaker"], "closed");
        assert_eq!(app.queues(Key::Centre).await.status(), 403);

        let (code, dead) = status_json(app.dead("dvcqg", Key::Operator).await).await;
        assert_eq!(code, 200);
        assert_eq!(dead["dead"].as_array().unwrap().len(), 2);
        assert!(dead["dead"][0]["last_error"].as_str().unwrap().contains("1.999999.000.00.00.H46"));

        // Operators look; admins act.
        assert_eq!(app.replay("dvcqg", &dead_a, Key::Operator).await.status(), 403);
        let r = app.discard("dvcqg", &dead_b, Key::Operator).await;
        assert_eq!(r.status(), 403);
        assert_eq!(status_of(&app, &dead_a).await, "dead", "a refused action changes nothing");

        // The portal learns the procedure; the admin replays A and discards B.
        state.add_catalogue("1.999999.000.00.00.H46");
        assert_eq!(app.replay("dvcqg", &dead_a, Key::Admin).await.status(), 200);
        app.wait_message(&dead_a, "delivered").await;
        app.wait_message(&next_a, "delivered").await;
        let r = app.discard("dvcqg", &dead_b, Key::Admin).await;
        assert_eq!(r.status(), 200);
        app.wait_message(&next_b, "delivered").await;
        assert_eq!(status_of(&app, &dead_b).await, "discarded");
        assert_eq!(
            app.replay("dvcqg", &dead_b, Key::Admin).await.status(),
            404,
            "a discarded message never comes back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b_at_portal: Vec<u8> = state.arrivals_of("OPS-B").iter().map(|a| a.status).collect();
        assert_eq!(b_at_portal, vec![2], "only the update after the discarded one reached the portal");

        // Pause holds new work; resume lets it go.
        assert_eq!(app.pause("dvcqg", Key::Operator).await.status(), 403);
        assert_eq!(app.pause("dvcqg", Key::Admin).await.status(), 200);
        let held = accept(&app, "/v1/dossiers", &dossier("OPS-C", 1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status_of(&app, &held).await, "queued");
        assert_eq!(json(app.queues(Key::Operator).await).await["queues"][0]["paused"], true);
        assert_eq!(app.resume("dvcqg", Key::Admin).await.status(), 200);
        app.wait_message(&held, "delivered").await;
        assert_eq!(app.pause("nope", Key::Admin).await.status(), 404);
        app.stop().await;
        portal.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_with_a_filter() {
    let (portal, state, app) = with_portal(QueueBackendKind::Redis).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(accept(&app, "/v1/dossiers", &unknown_procedure(&format!("F-{i}"))).await);
    }
    for id in &ids {
        app.wait_message(id, "dead").await;
    }
    state.add_catalogue("1.999999.000.00.00.H46");
    let filter = |body: &'static str| app.replay_all("dvcqg", body, Key::Admin);
    assert_eq!(filter("{\"kind\": ").await.status(), 400, "a broken filter replays nothing");
    let r = json(filter("{\"kind\": \"dossier.progress\"}").await).await;
    assert_eq!(r["replayed"], 0);
    let r = json(filter("{\"error_contains\": \"1.999999\"}").await).await;
    assert_eq!(r["replayed"], 3);
    for id in &ids {
        app.wait_message(id, "delivered").await;
    }
    app.stop().await;
    portal.stop().await;
}

fn cli(args: &[&str], url: &str, key: Option<&str>) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(binary("hcc-gateway"));
    cmd.args(args).env("HCC_URL", url).env_remove("HCC_API_KEY");
    if let Some(k) = key {
        cmd.env("HCC_API_KEY", k);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run hcc-gateway: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_replays_and_discards_and_the_audit_log_names_who() {
    let (portal, state, app) = with_portal(QueueBackendKind::Redis).await;
    let a = accept(&app, "/v1/dossiers", &unknown_procedure("CLI-A")).await;
    let b = accept(&app, "/v1/dossiers", &unknown_procedure("CLI-B")).await;
    let after_b = accept(&app, "/v1/dossiers", &dossier("CLI-B", 2)).await;
    app.wait_message(&a, "dead").await;
    app.wait_message(&b, "dead").await;
    let url = app.address.clone();
    let (url2, a2, b2) = (url.clone(), a.clone(), b.clone());
    let checks = tokio::task::spawn_blocking(move || {
        let (ok, table, _) = cli(&["queues"], &url2, Some(OPERATOR_KEY));
        assert!(ok && table.contains("dvcqg") && table.contains("BREAKER"), "{table}");
        let (ok, list, _) = cli(&["dead", "list", "--queue", "dvcqg"], &url2, Some(OPERATOR_KEY));
        assert!(ok && list.contains(&a2) && list.contains(&b2), "{list}");
        let (ok, _, err) = cli(&["dead", "replay", "--queue", "dvcqg", &a2], &url2, Some(OPERATOR_KEY));
        assert!(!ok && err.contains("403"), "{err}");
        let (ok, _, err) = cli(&["queues"], &url2, Some("wrong-key"));
        assert!(!ok && err.contains("refused the API key"), "{err}");
        let (ok, _, err) = cli(&["queues"], "http://127.0.0.1:9", Some(OPERATOR_KEY));
        assert!(!ok && err.contains("cannot reach the gateway"), "{err}");
        let (ok, _, err) = cli(&["queues"], &url2, None);
        assert!(!ok && err.contains("HCC_API_KEY"), "{err}");
        // A dossier's story: its dead message with the plain reason, and the one blocked behind.
        let (ok, out, err) = cli(&["dossier", "CLI-B"], &url2, Some(OPERATOR_KEY));
        assert!(ok && out.contains("blocked: yes") && out.contains(&b2), "{out}{err}");
        assert!(out.contains("The national portal refused") && out.contains("blocked"), "{out}");
        let (ok, out, _) = cli(&["dossier", "CLI-B", "--json"], &url2, Some(OPERATOR_KEY));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (ok, v["MaHoSo"].as_str(), v["blocked"].as_bool()),
            (true, Some("CLI-B"), Some(true))
        );
        let (ok, _, err) = cli(&["dossier", "CLI-NEVER"], &url2, Some(OPERATOR_KEY));
        assert!(!ok && err.contains("HTTP 404"), "{err}");
        let (ok, _, err) = cli(&["dossier", "../v1/queues"], &url2, Some(OPERATOR_KEY));
        assert!(!ok && err.contains("not a MaHoSo"), "{err}");
    });
    checks.await.unwrap();
    state.add_catalogue("1.999999.000.00.00.H46");
    let (url2, a2, b2) = (url.clone(), a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        let (ok, out, err) = cli(&["dead", "replay", "--queue", "dvcqg", &a2], &url2, Some(ADMIN_KEY));
        assert!(ok && out.contains("replayed"), "{out}{err}");
        let (ok, out, err) = cli(&["dead", "discard", "--queue", "dvcqg", &b2], &url2, Some(ADMIN_KEY));
        assert!(ok && out.contains("discarded"), "{out}{err}");
    })
    .await
    .unwrap();
    app.wait_message(&a, "delivered").await;
    app.wait_message(&after_b, "delivered").await;
    assert_eq!(status_of(&app, &b).await, "discarded");
    // The audit log names who did it, and records delivery attempts.
    let log = eventually("audit lines", Duration::from_secs(5), || async {
        let (_, v) = status_json(send(app.get("/v1/audit?limit=200", Key::Operator)).await).await;
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        let has = |actor: &str, action: &str| entries.iter().any(|e| e["actor"] == actor && e["action"] == action);
        (has("dev-admin", "dead.replay")
            && has("dev-admin", "dead.discard")
            && has("engine", "delivery.dead")
            && has("engine", "delivery.delivered"))
        .then_some(entries)
    })
    .await;
    assert!(log.iter().any(|e| e["target"].as_str().unwrap_or("").contains(&a)));
    assert_eq!(app.audit(Key::Centre).await.status(), 403);
    app.stop().await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_match_the_queue_api() {
    let (portal, _state, app) = with_portal(QueueBackendKind::Redis).await;
    // A known workload: 5 delivered, 1 dead blocking 2 more.
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(accept(&app, "/v1/dossiers", &dossier(&format!("M-{i}"), 1)).await);
    }
    let dead = accept(&app, "/v1/dossiers", &unknown_procedure("M-DEAD")).await;
    for s in [2, 4] {
        accept(&app, "/v1/dossiers/M-DEAD/progress", &progress("M-DEAD", s, s as u32)).await;
    }
    for id in &ids {
        app.wait_message(id, "delivered").await;
    }
    app.wait_message(&dead, "dead").await;
    let text = app.metrics().await;
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let gauge = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or(f64::NAN)
    };
    let queues = json(app.queues(Key::Operator).await).await;
    let q = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "dvcqg")
        .unwrap()
        .clone();
    for state_name in ["ready", "scheduled", "in_flight", "dead", "blocked"] {
        assert_eq!(
            gauge("hcc_queue_messages", &[("queue", "dvcqg"), ("state", state_name)]),
            q[state_name].as_f64().unwrap(),
            "{state_name}"
        );
    }
    assert_eq!(gauge("hcc_queue_messages", &[("queue", "dvcqg"), ("state", "dead")]), 1.0);
    assert_eq!(gauge("hcc_queue_messages", &[("queue", "dvcqg"), ("state", "blocked")]), 2.0);
    assert_eq!(
        gauge("hcc_delivery_attempts_total", &[("destination", "dvcqg"), ("outcome", "delivered")]),
        5.0
    );
    assert_eq!(
        gauge("hcc_delivery_attempts_total", &[("destination", "dvcqg"), ("outcome", "dead")]),
        1.0
    );
    assert_eq!(gauge("hcc_breaker_state", &[("destination", "dvcqg")]), 0.0);
    assert_eq!(
        gauge(
            "hcc_http_requests_total",
            &[("route", "/v1/dossiers"), ("method", "POST"), ("status", "202")]
        ),
        6.0
    );
    assert_eq!(
        gauge(
            "hcc_http_requests_total",
            &[("route", "/v1/dossiers/:ma_ho_so/progress"), ("method", "POST"), ("status", "202")]
        ),
        2.0
    );
    assert!(text.contains("hcc_delivery_duration_seconds_bucket"));
    assert!(text.contains("hcc_queue_oldest_ready_age_seconds"));
    app.stop().await;
    portal.stop().await;
}
