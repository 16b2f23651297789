//! The operators' API: queue statistics, dead letters replayed and discarded, roles, pause.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::portal::{PortalConfig, PortalState};
use hcc_tests::*;
use serde_json::{Value, json};

async fn get(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    let r = app.client.get(app.url(path)).bearer_auth(key).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    let r = app.client.post(app.url(path)).bearer_auth(key).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn accept(app: &TestApp, path: &str, body: &Value) -> String {
    let r: Value = app
        .client
        .post(app.url(path))
        .bearer_auth(CENTRE_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_str().unwrap().to_string()
}

async fn status_of(app: &TestApp, id: &str) -> String {
    get(app, &format!("/v1/messages/{id}"), OPERATOR_KEY).await.1["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_status(app: &TestApp, id: &str, want: &str) {
    eventually(&format!("{id} {want}"), Duration::from_secs(15), || async {
        (status_of(app, id).await == want).then_some(())
    })
    .await;
}

fn unknown_procedure(ma: &str) -> Value {
    let mut d = dossier(ma, 1);
    d["MaTTHC"] = json!("1.999999.000.00.00.H46");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_discard_with_roles_and_queue_stats() {
    for backend in [QueueBackendKind::Redis, QueueBackendKind::Memory] {
        let state = PortalState::new(PortalConfig::default());
        let portal = hcc_mocks::portal::spawn("127.0.0.1:0", state.clone()).unwrap();
        let app = spawn_app(settings(backend, &[("HCC__DVCQG__BASE_URL", portal.url())]), Workers::On).await;
        let dead_a = accept(&app, "/v1/dossiers", &unknown_procedure("OPS-A")).await;
        let next_a = accept(&app, "/v1/dossiers/OPS-A/progress", &progress("OPS-A", 2, 1)).await;
        let dead_b = accept(&app, "/v1/dossiers", &unknown_procedure("OPS-B")).await;
        let next_b = accept(&app, "/v1/dossiers", &dossier("OPS-B", 2)).await;
        wait_status(&app, &dead_a, "dead").await;
        wait_status(&app, &dead_b, "dead").await;

        let (code, queues) = get(&app, "/v1/queues", OPERATOR_KEY).await;
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
        assert_eq!(get(&app, "/v1/queues", CENTRE_KEY).await.0, 403);

        let (code, dead) = get(&app, "/v1/queues/dvcqg/dead", OPERATOR_KEY).await;
        assert_eq!(code, 200);
        assert_eq!(dead["dead"].as_array().unwrap().len(), 2);
        assert!(dead["dead"][0]["last_error"].as_str().unwrap().contains("1.999999.000.00.00.H46"));

        // Operators look; admins act.
        assert_eq!(
            post(&app, &format!("/v1/queues/dvcqg/dead/{dead_a}/replay"), OPERATOR_KEY).await.0,
            403
        );
        let r = app
            .client
            .delete(app.url(&format!("/v1/queues/dvcqg/dead/{dead_b}")))
            .bearer_auth(OPERATOR_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(status_of(&app, &dead_a).await, "dead", "a refused action changes nothing");

        // The portal learns the procedure; the admin replays A and discards B.
        state.add_catalogue("1.999999.000.00.00.H46");
        assert_eq!(
            post(&app, &format!("/v1/queues/dvcqg/dead/{dead_a}/replay"), ADMIN_KEY).await.0,
            200
        );
        wait_status(&app, &dead_a, "delivered").await;
        wait_status(&app, &next_a, "delivered").await;
        let r = app
            .client
            .delete(app.url(&format!("/v1/queues/dvcqg/dead/{dead_b}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        wait_status(&app, &next_b, "delivered").await;
        assert_eq!(status_of(&app, &dead_b).await, "discarded");
        assert_eq!(
            post(&app, &format!("/v1/queues/dvcqg/dead/{dead_b}/replay"), ADMIN_KEY).await.0,
            404,
            "a discarded message never comes back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b_at_portal: Vec<u8> = state.arrivals_of("OPS-B").iter().map(|a| a.status).collect();
        assert_eq!(b_at_portal, vec![2], "only the update after the discarded one reached the portal");

        // Pause holds new work; resume lets it go.
        assert_eq!(post(&app, "/v1/queues/dvcqg/pause", OPERATOR_KEY).await.0, 403);
        assert_eq!(post(&app, "/v1/queues/dvcqg/pause", ADMIN_KEY).await.0, 200);
        let held = accept(&app, "/v1/dossiers", &dossier("OPS-C", 1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status_of(&app, &held).await, "queued");
        assert_eq!(get(&app, "/v1/queues", OPERATOR_KEY).await.1["queues"][0]["paused"], true);
        assert_eq!(post(&app, "/v1/queues/dvcqg/resume", ADMIN_KEY).await.0, 200);
        wait_status(&app, &held, "delivered").await;
        assert_eq!(post(&app, "/v1/queues/nope/pause", ADMIN_KEY).await.0, 404);
        app.stop().await;
        portal.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_with_a_filter() {
    let state = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::portal::spawn("127.0.0.1:0", state.clone()).unwrap();
    let app = spawn_app(
        settings(QueueBackendKind::Redis, &[("HCC__DVCQG__BASE_URL", portal.url())]),
        Workers::On,
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(accept(&app, "/v1/dossiers", &unknown_procedure(&format!("F-{i}"))).await);
    }
    for id in &ids {
        wait_status(&app, id, "dead").await;
    }
    state.add_catalogue("1.999999.000.00.00.H46");
    let filter = |body: &str| {
        app.client
            .post(app.url("/v1/queues/dvcqg/dead/replay"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    assert_eq!(
        filter("{\"kind\": ").await.unwrap().status(),
        400,
        "a broken filter replays nothing"
    );
    let r: Value = filter("{\"kind\": \"dossier.progress\"}").await.unwrap().json().await.unwrap();
    assert_eq!(r["replayed"], 0);
    let r: Value = filter("{\"error_contains\": \"1.999999\"}").await.unwrap().json().await.unwrap();
    assert_eq!(r["replayed"], 3);
    for id in &ids {
        wait_status(&app, id, "delivered").await;
    }
    app.stop().await;
    portal.stop().await;
}
