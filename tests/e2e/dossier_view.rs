//! Issue 13 end to end: a dossier's view, the `dossier.rejected` and `dossier.delivered`
//! webhooks at mock-centre, the dead-letter filter by ordering key, and paced replay; on Redis
//! and on the memory backend where the suite runs both.

use std::time::{Duration, Instant};

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::centre::CentreState;
use hcc_signing::webhook::WebhookSecret;
use hcc_tests::*;
use serde_json::{Value, json};

const UNKNOWN_TTHC: &str = "1.999999.000.00.00.H46";

fn refused(ma: &str) -> Value {
    let mut d = dossier(ma, 1);
    d["MaTTHC"] = json!(UNKNOWN_TTHC);
    d
}

async fn accept(app: &TestApp, path: &str, body: &Value) -> String {
    accepted_id(app.post_json(path, Key::Centre, body).await).await
}

/// The webhooks of `kind` the centre received, by body.
fn hooks(state: &CentreState, kind: &str) -> Vec<Value> {
    state.received().into_iter().map(|w| w.body).filter(|b| b["type"] == kind).collect()
}

/// Waits for `n` webhooks in all, then a settle period, and checks no more came and every
/// signature verified.
async fn exactly(state: &CentreState, n: u64) {
    eventually(&format!("{n} webhooks"), Duration::from_secs(20), || async {
        (state.counters().received >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let c = state.counters();
    assert_eq!((c.received, c.unique, c.bad_signatures), (n, n, 0), "{c:?}");
}

async fn gateway_with_centre(
    backend: QueueBackendKind,
) -> (
    hcc_mocks::Running,
    hcc_mocks::dvcqg::PortalState,
    hcc_mocks::Running,
    CentreState,
    TestApp,
) {
    let (portal, state) = portal();
    let (centre, centre_state) = hcc_mocks::centre::spawn("127.0.0.1:0", WebhookSecret::parse(CENTRE_SECRET).unwrap()).unwrap();
    let app = spawn_app(
        settings(
            backend,
            &[
                ("HCC__DVCQG__BASE_URL", portal.url()),
                ("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", centre.url())),
            ],
        ),
        Workers::On,
    )
    .await;
    (portal, state, centre, centre_state, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dossier_tells_the_centre_once_shows_dead_and_blocked_and_its_replay_tells_it_delivered() {
    for backend in [QueueBackendKind::Redis, QueueBackendKind::Memory] {
        let (portal, state, centre, centre_state, app) = gateway_with_centre(backend).await;
        let ok = accept(&app, "/v1/dossiers", &dossier("V13-OK", 2)).await;
        let ok_progress = accept(&app, "/v1/dossiers/V13-OK/progress", &progress("V13-OK", 4, 1)).await;
        let dead = accept(&app, "/v1/dossiers", &refused("V13-A")).await;
        let behind = accept(&app, "/v1/dossiers/V13-A/progress", &progress("V13-A", 4, 1)).await;
        app.wait_message(&dead, "dead").await;
        app.wait_message(&ok_progress, "delivered").await;

        // One signed dossier.rejected, naming the dossier, the message and the portal's reason.
        exactly(&centre_state, 1).await;
        let rejected = hooks(&centre_state, "dossier.rejected");
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!(rejected[0]["data"]["MaHoSo"], "V13-A");
        assert_eq!(rejected[0]["data"]["id"], dead.as_str());
        assert!(
            rejected[0]["data"]["reason"].as_str().unwrap().contains(UNKNOWN_TTHC),
            "{rejected:?}"
        );
        assert!(rejected[0]["timestamp"].as_str().unwrap().ends_with('Z'));

        // The view: dead, then blocked behind it, in acceptance order.
        let v = app.get_json("/v1/dossiers/V13-A", Key::Centre).await;
        assert_eq!(v["MaHoSo"], "V13-A");
        assert_eq!(v["blocked"], true, "{v}");
        assert_eq!(v["portal_status"], Value::Null, "the portal took nothing of it: {v}");
        let msgs = v["messages"].as_array().unwrap();
        let seen: Vec<(&str, &str)> = msgs
            .iter()
            .map(|m| (m["id"].as_str().unwrap(), m["status"].as_str().unwrap()))
            .collect();
        assert_eq!(seen, [(dead.as_str(), "dead"), (behind.as_str(), "blocked")], "{v}");
        assert!(msgs[0]["last_error"].as_str().unwrap().contains(UNKNOWN_TTHC));
        assert!(
            msgs[0]["plain_reason"]["en"]
                .as_str()
                .unwrap()
                .starts_with("The national portal refused"),
            "{v}"
        );
        assert!(
            msgs[0]["plain_reason"]["vi"]
                .as_str()
                .unwrap()
                .starts_with("Cổng Dịch vụ công quốc gia từ chối"),
            "{v}"
        );
        assert_eq!(msgs[1]["plain_reason"], Value::Null);
        assert!(msgs[0]["accepted_at"].as_str().unwrap() <= msgs[1]["accepted_at"].as_str().unwrap());

        // A delivered dossier: its last status as the portal took it, not blocked.
        let v = app.get_json("/v1/dossiers/V13-OK", Key::Operator).await;
        assert_eq!(
            (v["portal_status"].as_str(), v["blocked"].as_bool()),
            (Some("4"), Some(false)),
            "{v}"
        );
        let ids: Vec<&str> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [ok.as_str(), ok_progress.as_str()]);
        assert!(v["messages"][0]["delivered_at"].is_string());

        // The filter finds the dead letter by its dossier, and nothing for another.
        let d = app.get_json("/v1/queues/dvcqg/dead?ordering_key=V13-A", Key::Operator).await;
        let found: Vec<&str> = d["dead"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(found, [dead.as_str()], "{d}");
        assert!(d["dead"][0]["plain_reason"]["vi"].is_string());
        let d = app.get_json("/v1/queues/dvcqg/dead?ordering_key=V13-OK", Key::Operator).await;
        assert_eq!(d["dead"], json!([]));

        // Unknown, malformed and unauthorised look-ups.
        problem(send(app.get("/v1/dossiers/V13-NEVER", Key::Centre)).await, 404).await;
        problem(send(app.get("/v1/dossiers/a%20b", Key::Centre)).await, 400).await;
        problem(send(app.get(&format!("/v1/dossiers/{}", "A".repeat(101)), Key::Centre)).await, 400).await;
        assert_eq!(send(app.get("/v1/dossiers/V13-A", Key::None)).await.status(), 401);
        problem(send(app.get("/v1/queues/dvcqg/dead?ordering_key=a/b", Key::Operator)).await, 400).await;
        problem(send(app.get("/v1/queues/dvcqg/dead?cursor=zz", Key::Operator)).await, 400).await;

        // The portal learns the procedure; a replay delivers, and the centre hears of it once.
        state.add_catalogue(UNKNOWN_TTHC);
        assert_eq!(app.replay("dvcqg", &dead, Key::Admin).await.status(), 200);
        app.wait_message(&behind, "delivered").await;
        exactly(&centre_state, 2).await;
        let delivered = hooks(&centre_state, "dossier.delivered");
        assert_eq!(delivered.len(), 1, "{delivered:?}");
        assert_eq!(
            (delivered[0]["data"]["MaHoSo"].as_str(), delivered[0]["data"]["id"].as_str()),
            (Some("V13-A"), Some(dead.as_str()))
        );
        let v = app.get_json("/v1/dossiers/V13-A", Key::Centre).await;
        assert_eq!(
            (v["portal_status"].as_str(), v["blocked"].as_bool()),
            (Some("4"), Some(false)),
            "{v}"
        );
        // No event for a delivery that was never dead, nor about the webhooks themselves.
        assert!(hooks(&centre_state, "dossier.rejected").len() == 1);
        app.stop().await;
        portal.stop().await;
        centre.stop().await;
    }
}

/// Makes `n` dead letters (one per dossier) and waits for them.
async fn dead_letters(app: &TestApp, tag: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(accept(app, "/v1/dossiers", &refused(&format!("{tag}-{i:03}"))).await);
    }
    eventually(&format!("{n} dead letters"), Duration::from_secs(60), || async {
        let q = app.get_json("/v1/queues", Key::Operator).await;
        let dvcqg = q["queues"].as_array()?.iter().find(|q| q["name"] == "dvcqg")?.clone();
        (dvcqg["dead"].as_u64() == Some(n as u64)).then_some(())
    })
    .await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_replay_of_50_at_5_per_second_takes_about_10_s_and_an_unpaced_one_does_not() {
    let (portal, state, app) = with_portal(QueueBackendKind::Redis).await;
    problem(send(app.get("/v1/queues/dvcqg/dead/replay", Key::Operator)).await, 404).await;
    dead_letters(&app, "PACE", 50).await;
    state.add_catalogue(UNKNOWN_TTHC);
    let started = Instant::now();
    let r = app
        .post_json("/v1/queues/dvcqg/dead/replay", Key::Admin, &json!({"rate_per_sec": 5}))
        .await;
    let (code, v) = status_json(r).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        (v["replay"]["total"].as_u64(), v["replay"]["state"].as_str()),
        (Some(50), Some("running")),
        "{v}"
    );
    // One running replay per queue.
    let r = app
        .post_json("/v1/queues/dvcqg/dead/replay", Key::Admin, &json!({"rate_per_sec": 5}))
        .await;
    problem(r, 409).await;
    let q = app.get_json("/v1/queues", Key::Operator).await;
    assert_eq!(
        q["queues"].as_array().unwrap().iter().find(|q| q["name"] == "dvcqg").unwrap()["replay"]["state"],
        "running"
    );
    // Progress moves; the replay finishes in about 50 / 5 = 10 s.
    let mut seen_partial = false;
    let finished: Value = eventually("the paced replay to finish", Duration::from_secs(30), || async {
        let p = app.get_json("/v1/queues/dvcqg/dead/replay", Key::Operator).await;
        let done = p["done"].as_u64().unwrap_or(0);
        if done > 0 && done < 50 {
            seen_partial = true;
        }
        (p["state"] == "finished").then_some(p)
    })
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(8) && took <= Duration::from_secs(20), "took {took:?}");
    assert!(seen_partial, "progress was visible while it ran");
    assert_eq!(
        (finished["done"].as_u64(), finished["total"].as_u64()),
        (Some(50), Some(50)),
        "{finished}"
    );
    assert!(finished["finished_at"].is_string());
    eventually("every replayed dossier delivered", Duration::from_secs(30), || async {
        let q = app.get_json("/v1/queues", Key::Operator).await;
        let d = q["queues"].as_array()?.iter().find(|q| q["name"] == "dvcqg")?.clone();
        (d["dead"] == 0 && d["delivered_total"] == 50).then_some(())
    })
    .await;

    // Without the cap, 50 go at once.
    let other = "1.888888.000.00.00.H46";
    for i in 0..50 {
        let mut d = dossier(&format!("FAST-{i:03}"), 1);
        d["MaTTHC"] = json!(other);
        accept(&app, "/v1/dossiers", &d).await;
    }
    eventually("50 new dead letters", Duration::from_secs(60), || async {
        let q = app.get_json("/v1/queues", Key::Operator).await;
        let d = q["queues"].as_array()?.iter().find(|q| q["name"] == "dvcqg")?.clone();
        (d["dead"] == 50).then_some(())
    })
    .await;
    let started = Instant::now();
    let (code, v) = status_json(
        app.post_json("/v1/queues/dvcqg/dead/replay", Key::Admin, &json!({"kind": "dossier.sync"}))
            .await,
    )
    .await;
    assert_eq!((code, v["replayed"].as_u64()), (200, Some(50)), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an unpaced replay took {:?}",
        started.elapsed()
    );

    // Hostile bodies.
    for body in [
        json!({"rate_per_sec": 0}),
        json!({"rate_per_sec": -1}),
        json!({"rate_per_sec": 1001}),
        json!({"rate_per_sec": "5"}),
        json!({"ordering_key": "a/b"}),
    ] {
        problem(app.post_json("/v1/queues/dvcqg/dead/replay", Key::Admin, &body).await, 422).await;
    }
    app.stop().await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_replay_whose_process_dies_is_finished_by_another() {
    let (portal, state) = portal();
    let prefix = unique_prefix();
    let o = [("HCC__DVCQG__BASE_URL", portal.url()), ("HCC__QUEUE__KEY_PREFIX", prefix.clone())];
    let a = spawn_app(settings(QueueBackendKind::Redis, &o), Workers::On).await;
    dead_letters(&a, "TAKE", 20).await;
    state.add_catalogue(UNKNOWN_TTHC);
    let (code, v) = status_json(
        a.post_json("/v1/queues/dvcqg/dead/replay", Key::Admin, &json!({"rate_per_sec": 10}))
            .await,
    )
    .await;
    assert_eq!(code, 202, "{v}");
    eventually("some progress", Duration::from_secs(10), || async {
        (a.get_json("/v1/queues/dvcqg/dead/replay", Key::Operator).await["done"].as_u64()? >= 3).then_some(())
    })
    .await;
    // The process that runs it goes away; another, on the same store, takes the job over.
    a.stop().await;
    let b = spawn_app(settings(QueueBackendKind::Redis, &o), Workers::On).await;
    let p: Value = eventually("the replay to finish on the other process", Duration::from_secs(30), || async {
        let p = b.get_json("/v1/queues/dvcqg/dead/replay", Key::Operator).await;
        (p["state"] == "finished").then_some(p)
    })
    .await;
    assert_eq!(p["done"], 20, "{p}");
    b.stop().await;
    portal.stop().await;
}
