//! Dossiers to the portal, end to end: the centre's HTTP calls, the gateway, mock-portal.

use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_gateway::engine::breaker::BreakerState;
use hcc_gateway::storage::now_ms;
use hcc_mocks::dvcqg::PortalState;
use hcc_mocks::faults::Faults;
use hcc_tests::*;
use serde_json::{Value, json};

/// The portal's view of one dossier: (service, status) in arrival order.
fn seen(state: &PortalState, ma: &str) -> Vec<(String, u8)> {
    state.arrivals_of(ma).into_iter().map(|a| (a.service, a.status)).collect()
}

fn expected() -> Vec<(String, u8)> {
    life_cycle().iter().map(|u| (u.expected().0.to_string(), u.expected().1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_whole_life_reaches_the_portal_in_order() {
    let (p, state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let ma = "000.00.22.H46-241125-0001";
    let mut ids = Vec::new();
    for (i, u) in life_cycle().iter().enumerate() {
        ids.push(post_until_accepted(&app.client, &app.address, ma, u, &format!("k{i}"), Duration::from_secs(5)).await);
    }
    app.all_delivered(&ids).await;
    assert_eq!(seen(&state, ma), expected());
    let arrivals = state.arrivals_of(ma);
    assert_eq!(arrivals[0].is_updating.as_deref(), Some("False"), "first sync creates the dossier");
    assert!(
        arrivals
            .iter()
            .filter(|a| a.service == "DongBoHoSoMC")
            .skip(1)
            .all(|a| a.is_updating.as_deref() == Some("True"))
    );
    // Unknown fields pass through untouched.
    assert_eq!(arrivals[0].item["ChuHoSo"], "Nguyễn Thị Lan");
    let c = state.counters();
    assert_eq!((c.backwards, c.duplicates, c.refused), (0, 0, 0));
    let m = app.message(&ids[0]).await;
    assert_eq!(m["kind"], "dossier.sync");
    assert_eq!(m["destination"], "dvcqg");
    assert_eq!(m["ordering_key"], ma);
    assert!(m["delivered_at"].is_string());
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_2000_updates_through_failures_and_expiring_sessions() {
    let (p, state) = portal();
    state.set_faults(Faults {
        fail_rate: 0.3,
        fail_status: 503,
        drop_rate: 0.4,
        max_latency_ms: 25,
        latency_ms: 0,
        ..Default::default()
    });
    state.set_session_lifetime(Duration::from_secs(2));
    let app = portal_gateway(&p.url(), &[("HCC__DELIVERY__CONCURRENCY", "32".into())], Workers::On).await;
    let dossiers: Vec<String> = (0..200).map(|i| format!("000.00.22.H46-241125-{i:04}")).collect();
    let mut producers = Vec::new();
    for chunk in dossiers.chunks(25) {
        let (client, base, chunk) = (app.client.clone(), app.address.clone(), chunk.to_vec());
        producers.push(tokio::spawn(async move {
            // Interleave dossiers, each one's updates in order.
            for (i, u) in life_cycle().iter().enumerate() {
                for ma in &chunk {
                    post_until_accepted(&client, &base, ma, u, &format!("{ma}-{i}"), Duration::from_secs(30)).await;
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    eventually("2000 updates at the portal", Duration::from_secs(240), || async {
        (state.counters().accepted >= 2000).then_some(())
    })
    .await;
    for ma in &dossiers {
        assert_eq!(dedup(seen(&state, ma)), expected(), "dossier {ma}");
    }
    let c = state.counters();
    assert_eq!(c.backwards, 0);
    assert!(
        c.failed_by_fault > 100 && c.logins > 1 && c.stale_session_answers > 0,
        "the storm really blew: {c:?}"
    );
    let stats = app.handle.queue.stats("dvcqg", now_ms()).await.unwrap();
    assert_eq!((stats.dead, stats.blocked), (0, 0));
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_rejection_dead_letters_and_blocks_only_that_dossier() {
    let (p, state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let mut bad = dossier("BAD-1", 1);
    bad["MaTTHC"] = json!("9.999999.000.00.00.H46");
    let bad_id = json(app.post_dossier(&bad).await).await;
    let next_id = json(app.post_progress("BAD-1", &progress("BAD-1", 2, 1)).await).await;
    let good_id = json(app.post_dossier(&dossier("GOOD-1", 1)).await).await;
    let bad_id = bad_id["id"].as_str().unwrap().to_string();
    let m = eventually("dead", Duration::from_secs(15), || async {
        let m = app.message(&bad_id).await;
        (m["status"] == "dead").then_some(m)
    })
    .await;
    assert!(
        m["last_error"].as_str().unwrap().contains("không tồn tại"),
        "the portal's reason is kept: {m}"
    );
    assert_eq!(m["attempts"], 1, "a refusal is not retried");
    assert_eq!(app.message(next_id["id"].as_str().unwrap()).await["status"], "blocked");
    let good = good_id["id"].as_str().unwrap().to_string();
    eventually("other dossiers flow", Duration::from_secs(15), || async {
        (app.message(&good).await["status"] == "delivered").then_some(())
    })
    .await;
    // Still blocked a while later: nothing behind a dead message moves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.message(next_id["id"].as_str().unwrap()).await["status"], "blocked");
    assert!(seen(&state, "BAD-1").is_empty());
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_opens_the_breaker_and_the_backlog_drains_afterwards() {
    let (p, state) = portal();
    let portal_addr = p.addr.to_string();
    p.stop().await;
    let app = portal_gateway(
        &format!("http://{portal_addr}"),
        &[
            ("HCC__DELIVERY__BREAKER_FAILURE_THRESHOLD", "5".into()),
            ("HCC__DELIVERY__BREAKER_COOLDOWN_MS", "1000".into()),
            // One probe per cool-down, so the count of attempts below says the breaker held.
            ("HCC__DELIVERY__BREAKER_HALF_OPEN_PROBES", "1".into()),
        ],
        Workers::On,
    )
    .await;
    let dossiers: Vec<String> = (0..20).map(|i| format!("OUT-{i}")).collect();
    let mut first_ids = Vec::new();
    for (i, u) in life_cycle().iter().enumerate() {
        for ma in &dossiers {
            let id = post_until_accepted(&app.client, &app.address, ma, u, &format!("{ma}-{i}"), Duration::from_secs(5)).await;
            if i == 0 {
                first_ids.push(id);
            }
        }
    }
    eventually("breaker open", Duration::from_secs(15), || async {
        (app.handle.breaker_state("dvcqg") == Some(BreakerState::Open)).then_some(())
    })
    .await;
    let attempts = || async {
        let mut n = 0;
        for id in &first_ids {
            n += app.message(id).await["attempts"].as_u64().unwrap_or(0);
        }
        n
    };
    let before = attempts().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = attempts().await;
    // Twenty heads with a 20-500 ms backoff would make dozens of attempts in 3 s; the open
    // breaker lets one probe through per second.
    assert!(
        after - before <= 5,
        "attempts kept coming with the breaker open: {before} -> {after}"
    );
    let back = hcc_mocks::dvcqg::spawn(&portal_addr, state.clone()).unwrap();
    eventually("backlog drained", Duration::from_secs(60), || async {
        (state.counters().accepted >= 200).then_some(())
    })
    .await;
    for ma in &dossiers {
        assert_eq!(dedup(seen(&state, ma)), expected(), "dossier {ma}");
    }
    assert_eq!(app.handle.queue.stats("dvcqg", now_ms()).await.unwrap().dead, 0);
    app.stop().await;
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_precise_problem_and_queues_nothing() {
    let (p, _state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::Off).await;
    let url = "/v1/dossiers";
    let good = dossier("X-1", 1);
    // Authentication and roles.
    problem(app.post_json(url, Key::None, &good).await, 401).await;
    problem(app.post_json(url, Key::Raw("not-a-key"), &good).await, 401).await;
    problem(app.post_json(url, Key::Operator, &good).await, 403).await;
    // Transport-level problems.
    problem(app.post_raw(url, Key::Centre, Some("application/json"), "{\"MaHoSo\": ").await, 400).await;
    problem(app.post_raw(url, Key::Centre, Some("text/plain"), good.to_string()).await, 415).await;
    let big = format!("{{\"MaHoSo\": \"X\", \"pad\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    problem(app.post_raw(url, Key::Centre, Some("application/json"), big).await, 413).await;
    let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let v = problem(app.post_raw(url, Key::Centre, Some("application/json"), bomb).await, 400).await;
    assert!(v["detail"].as_str().unwrap().contains("nested"));
    // Validation names the field.
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("MaHoSo");
    let mut status11 = good.clone();
    status11["TrangThaiHoSo"] = json!(11);
    let mut bad_date = good.clone();
    bad_date["NgayTiepNhan"] = json!("20241340250000");
    let mut bad_fee = good.clone();
    bad_fee["DanhSachLePhi"][0]["Gia"] = json!("một trăm");
    for (body, field) in [
        (missing, "/MaHoSo"),
        (status11, "/TrangThaiHoSo"),
        (bad_date, "/NgayTiepNhan"),
        (bad_fee, "/DanhSachLePhi/0/Gia"),
    ] {
        let v = problem(app.post_dossier(&body).await, 422).await;
        assert_eq!(v["errors"][0]["field"], field, "{v}");
        assert!(!v.to_string().contains("Nguyễn Thị Lan"), "no echo of the payload");
    }
    let v = problem(app.post_progress("X-1", &json!({"TrangThai": 4})).await, 422).await;
    assert_eq!(v["errors"][0]["field"], "/ThoiDiemXuLy");
    problem(app.post_progress("bad%20code", &progress("x", 4, 1)).await, 422).await;
    problem(app.post_dossier_with_key(&good, &"x".repeat(256)).await, 400).await;
    let s = app.handle.queue.stats("dvcqg", now_ms()).await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.scheduled, s.dead, s.delivered_total),
        (0, 0, 0, 0, 0),
        "nothing was queued"
    );
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_the_first_answer_and_refuse_a_different_body() {
    let (p, _state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::Off).await;
    let first = app.post_dossier_with_key(&dossier("I-1", 1), "centre-req-42").await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_string();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(location, format!("/v1/messages/{}", first["id"].as_str().unwrap()));
    assert_eq!(first["status"], "queued");
    assert_eq!(first["ordering_key"], "I-1");
    // The same body laid out differently is the same request.
    let pretty = serde_json::to_string_pretty(&dossier("I-1", 1)).unwrap();
    let again = send(
        app.post("/v1/dossiers", Key::Centre)
            .header("Idempotency-Key", "centre-req-42")
            .header("content-type", "application/json; charset=utf-8")
            .body(pretty),
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    problem(app.post_dossier_with_key(&dossier("I-1", 2), "centre-req-42").await, 409).await;
    assert_eq!(app.handle.queue.stats("dvcqg", now_ms()).await.unwrap().ready, 1);
    app.stop().await;
    p.stop().await;
}
