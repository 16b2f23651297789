//! Paced replays (issue 20, item 5): the pace is 0.1 to 1000 letters per second, anything else
//! a 422 naming `/rate_per_sec`; an admin cancels a running paced replay with
//! `DELETE /v1/queues/{name}/dead/replay`, from any gateway process on the same Redis, so that
//! a new one can start; with none running the answer is 404.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::*;
use serde_json::{Value, json};

const UNKNOWN_TTHC: &str = "1.999999.000.00.00.H46";
const REPLAY: &str = "/v1/queues/dvcqg/dead/replay";

async fn cancel(app: &TestApp, key: Key<'_>) -> reqwest::Response {
    send(app.request(reqwest::Method::DELETE, REPLAY, key)).await
}

async fn dead_count(app: &TestApp) -> u64 {
    let q = app.get_json("/v1/queues", Key::Operator).await;
    q["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "dvcqg"))
        .and_then(|q| q["dead"].as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_pace_is_0_1_to_1000_and_without_a_running_replay_a_cancel_is_404() {
    let app = spawn_app(
        settings(QueueBackendKind::Redis, &[("HCC__DVCQG__BASE_URL", "http://127.0.0.1:9/".into())]),
        Workers::Off,
    )
    .await;
    for rate in [
        json!(1e-300),
        json!(0.0999),
        json!(0),
        json!(-1),
        json!(1000.001),
        json!(1e300),
        json!("5"),
    ] {
        let v = problem(app.post_json(REPLAY, Key::Admin, &json!({ "rate_per_sec": rate })).await, 422).await;
        assert_eq!(v["errors"][0]["field"], "/rate_per_sec", "{rate}: {v}");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("0.1"), "{v}");
    }
    problem(cancel(&app, Key::Admin).await, 404).await;
    // The bounds themselves are taken (no dead letters here: each replay finishes at once).
    for rate in [0.1, 1000.0] {
        let (code, v) = status_json(app.post_json(REPLAY, Key::Admin, &json!({ "rate_per_sec": rate })).await).await;
        assert_eq!(code, 202, "{rate}: {v}");
        eventually("the empty replay finished", Duration::from_secs(10), || async {
            (app.get_json(REPLAY, Key::Operator).await["state"] == "finished").then_some(())
        })
        .await;
        problem(cancel(&app, Key::Admin).await, 404).await;
    }
    problem(
        send(app.request(reqwest::Method::DELETE, "/v1/queues/nosuch/dead/replay", Key::Admin)).await,
        404,
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_replay_running_in_one_process_is_cancelled_from_another() {
    let (portal, state) = portal();
    let prefix = unique_prefix();
    let o = [("HCC__DVCQG__BASE_URL", portal.url()), ("HCC__QUEUE__KEY_PREFIX", prefix.clone())];
    let runner = spawn_app(settings(QueueBackendKind::Redis, &o), Workers::On).await;
    let other = spawn_app(settings(QueueBackendKind::Redis, &o), Workers::Off).await;
    for i in 0..20 {
        let mut d = dossier(&format!("CANCEL-{i:03}"), 1);
        d["MaTTHC"] = json!(UNKNOWN_TTHC);
        accepted_id(runner.post_json("/v1/dossiers", Key::Centre, &d).await).await;
    }
    eventually("20 dead letters", Duration::from_secs(60), || async {
        (dead_count(&runner).await == 20).then_some(())
    })
    .await;
    // Replayed letters now deliver, so the dead count tells how many were replayed.
    state.add_catalogue(UNKNOWN_TTHC);
    let (code, v) = status_json(runner.post_json(REPLAY, Key::Admin, &json!({"rate_per_sec": 2})).await).await;
    assert_eq!(code, 202, "{v}");
    eventually("the replay under way", Duration::from_secs(15), || async {
        (other.get_json(REPLAY, Key::Operator).await["done"].as_u64()? >= 2).then_some(())
    })
    .await;
    // One at a time: another waits for this one, or for a cancel, which only an admin may give.
    problem(other.post_json(REPLAY, Key::Admin, &json!({"rate_per_sec": 5})).await, 409).await;
    problem(cancel(&other, Key::Operator).await, 403).await;
    problem(cancel(&other, Key::None).await, 401).await;
    // Cancelled through the process that does not run it.
    let (code, c) = status_json(cancel(&other, Key::Admin).await).await;
    assert_eq!(
        (code, c["state"].as_str(), &c["id"]),
        (200, Some("cancelled"), &v["replay"]["id"]),
        "{c}"
    );
    assert!(c["finished_at"].is_string(), "{c}");
    let done = c["done"].as_u64().unwrap();
    assert!(done < 20, "{c}");
    // The runner stops at its next lease renewal (within a second, the letter in hand at most);
    // at 2 a second it would have replayed several more in the 3 s below.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = dead_count(&runner).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = dead_count(&runner).await;
    assert_eq!(settled, later, "the replay went on after it was cancelled");
    assert!(later > 0 && later + done + 1 >= 20, "dead {later}, done {done}");
    let p: Value = runner.get_json(REPLAY, Key::Operator).await;
    assert_eq!((p["state"].as_str(), p["done"].as_u64()), (Some("cancelled"), Some(done)), "{p}");
    // Room for the next one, which runs to its end.
    let (code, v) = status_json(other.post_json(REPLAY, Key::Admin, &json!({"rate_per_sec": 1000})).await).await;
    assert_eq!((code, v["replay"]["total"].as_u64()), (202, Some(later)), "{v}");
    eventually("the new replay finished", Duration::from_secs(30), || async {
        (runner.get_json(REPLAY, Key::Operator).await["state"] == "finished").then_some(())
    })
    .await;
    eventually("every letter delivered", Duration::from_secs(30), || async {
        (dead_count(&runner).await == 0).then_some(())
    })
    .await;
    problem(cancel(&runner, Key::Admin).await, 404).await;
    let audit = runner.get_json("/v1/audit", Key::Admin).await;
    assert!(audit.to_string().contains("dead.replay_cancel"), "{audit}");
    runner.stop().await;
    other.stop().await;
    portal.stop().await;
}
