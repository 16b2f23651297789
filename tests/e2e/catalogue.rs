//! The national procedure catalogue at the gateway, against the mock portal's catalogue: a sync
//! fills it; acceptance warns of (or refuses) a dossier whose `MaTTHC` it lacks or withdrew, and
//! never refuses while it is empty; a failed pull keeps the previous copy; a sync cut short
//! resumes where it stopped in another instance without listing again; the CLI reads it.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::{Key, TestApp, dossier, eventually, operator_cli, portal, settings, spawn_app, unique_prefix};
use serde_json::{Value, json};

async fn gateway(portal_url: &str, prefix: &str, check: &str, pace: u32) -> TestApp {
    let o = vec![
        ("HCC__DVCQG__BASE_URL", portal_url.to_string()),
        ("HCC__QUEUE__KEY_PREFIX", prefix.to_string()),
        ("HCC__CATALOGUE__CHECK", check.to_string()),
        ("HCC__CATALOGUE__PACE_PER_SEC", pace.to_string()),
    ];
    spawn_app(settings(QueueBackendKind::Redis, &o), Workers::On).await
}

/// Asks for a sync and waits for a run that started after the ask to end.
async fn sync(app: &TestApp) -> Value {
    let before = app.get_json("/v1/catalogue/sync", Key::Operator).await["started_at"].clone();
    let r = app
        .post("/v1/catalogue/sync", Key::Admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    eventually("the sync ends", Duration::from_secs(30), || async {
        let s = app.get_json("/v1/catalogue/sync", Key::Operator).await;
        (matches!(s["phase"].as_str(), Some("done" | "failed")) && s["started_at"] != before).then_some(s)
    })
    .await
}

fn with_procedure(ma: &str, code: &str) -> Value {
    let mut d = dossier(ma, 2);
    d["MaTTHC"] = json!(code);
    d
}

async fn accept(app: &TestApp, ma: &str, code: &str) -> (u16, Value) {
    let r = app.post_dossier(&with_procedure(ma, code)).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_fills_the_catalogue_and_acceptance_warns_of_or_refuses_what_it_lacks() {
    let (portal_mock, portal_state) = portal();
    let prefix = unique_prefix();
    let app = gateway(&portal_mock.url(), &prefix, "warn", 100).await;
    // Never pulled: nothing is refused or warned of.
    let (status, body) = accept(&app, "H46-CAT-0001", "9.999999").await;
    assert_eq!(status, 202, "{body}");
    assert!(body.get("warnings").is_none(), "an empty catalogue never warns: {body}");

    let s = sync(&app).await;
    assert_eq!(s["phase"], "done", "{s}");
    let listed = portal_state.catalogue_codes();
    assert!(listed.len() >= 5, "the mock lists a few procedures: {listed:?}");
    assert_eq!(s["procedures"], json!(listed.len()));
    let all = app.get_json("/v1/catalogue/procedures?limit=1000", Key::Centre).await;
    assert_eq!(all["total"], json!(listed.len()), "{all}");
    // The portal's fields as it sent them, with synced_at and withdrawn.
    let one = app.get_json("/v1/catalogue/procedures/1.001193", Key::Operator).await;
    assert_eq!(one["MATTHC"], "1.001193", "{one}");
    assert!(one["LINHVUCTHUCHIEN"].is_array(), "the details were pulled: {one}");
    assert_eq!(one["withdrawn"], false);
    assert!(one["synced_at"].is_string());
    // Words without diacritics find a Vietnamese name; a field filters.
    let found = app.get_json("/v1/catalogue/procedures?q=khai%20sinh", Key::Centre).await;
    assert!(
        found["procedures"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["MATTHC"] == "1.001193")),
        "{found}"
    );
    let field = one["LINHVUCTHUCHIEN"][0]["MALINHVUC"].as_str().unwrap_or("").to_string();
    let by_field = app
        .get_json(&format!("/v1/catalogue/procedures?linh_vuc={field}"), Key::Centre)
        .await;
    assert!(
        by_field["procedures"]
            .as_array()
            .is_some_and(|p| !p.is_empty() && p.iter().all(|p| p["LINHVUCTHUCHIEN"].to_string().contains(&field))),
        "{by_field}"
    );
    assert_eq!(
        app.get("/v1/catalogue/procedures/9.999999", Key::Centre)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        404
    );

    // Known: no warning. Unknown: a warning on /MaTTHC, and still queued.
    // Known (and not the one the portal withdraws below).
    let known = listed.iter().find(|c| *c != "1.001193").cloned().unwrap_or_default();
    let (status, body) = accept(&app, "H46-CAT-0002", &known).await;
    assert_eq!((status, body.get("warnings").is_none()), (202, true), "{body}");
    let (status, body) = accept(&app, "H46-CAT-0003", "9.999999").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["warnings"][0]["field"], "/MaTTHC", "{body}");

    // The portal withdraws one: after the next sync it is withdrawn (kept), and warned of.
    portal_state.withdraw_procedure("1.001193");
    assert_eq!(sync(&app).await["phase"], "done");
    let gone = app.get_json("/v1/catalogue/procedures/1.001193", Key::Operator).await;
    assert_eq!(gone["withdrawn"], true, "{gone}");
    let (status, body) = accept(&app, "H46-CAT-0004", "1.001193").await;
    assert_eq!((status, body["warnings"][0]["field"].clone()), (202, json!("/MaTTHC")), "{body}");

    // Under `refuse`, the same store: unknown and withdrawn are 422 on /MaTTHC, known passes.
    let strict = gateway(&portal_mock.url(), &prefix, "refuse", 100).await;
    for code in ["9.999999", "1.001193"] {
        let (status, body) = accept(&strict, "H46-CAT-0005", code).await;
        assert_eq!(status, 422, "{code}: {body}");
        assert_eq!(body["errors"][0]["field"], "/MaTTHC", "{body}");
    }
    assert_eq!(accept(&strict, "H46-CAT-0006", &known).await.0, 202);
    // Restored on the portal, listed again at the next sync.
    portal_state.restore_procedure("1.001193");
    assert_eq!(sync(&strict).await["phase"], "done");
    let (status, body) = accept(&strict, "H46-CAT-0007", "1.001193").await;
    assert_eq!(
        status,
        202,
        "{body} {}",
        strict.get_json("/v1/catalogue/procedures/1.001193", Key::Operator).await
    );

    // The CLI reads the same.
    let (ok, out, err) = operator_cli(&app.url(""), &["catalogue", "search", "--q", "khai sinh"]);
    assert!(ok, "{err}");
    assert!(out.contains("1.001193"), "{out}");
    let (ok, out, err) = operator_cli(&app.url(""), &["catalogue", "status"]);
    assert!(ok && out.contains("sync done"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_keeps_the_previous_catalogue() {
    let (portal_mock, portal_state) = portal();
    let app = gateway(&portal_mock.url(), &unique_prefix(), "refuse", 100).await;
    assert_eq!(sync(&app).await["phase"], "done");
    let before = app.get_json("/v1/catalogue/procedures?limit=1000", Key::Centre).await;
    portal_state.set_catalogue_down(true);
    let s = sync(&app).await;
    assert_eq!(s["phase"], "failed", "{s}");
    assert!(s["last_error"].is_string());
    let after = app.get_json("/v1/catalogue/procedures?limit=1000", Key::Centre).await;
    assert_eq!(after, before, "the previous catalogue stands");
    let known = portal_state.catalogue_codes().first().cloned().unwrap_or_default();
    assert_eq!(accept(&app, "H46-CAT-0101", &known).await.0, 202);
    assert_eq!(accept(&app, "H46-CAT-0102", "9.999999").await.0, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cut_short_resumes_in_another_instance_without_listing_again() {
    let (portal_mock, portal_state) = portal();
    let prefix = unique_prefix();
    // Two details a second: the first instance is stopped a few procedures in.
    let slow = gateway(&portal_mock.url(), &prefix, "warn", 2).await;
    let r = slow
        .post("/v1/catalogue/sync", Key::Admin)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 202);
    eventually("a few details pulled", Duration::from_secs(20), || async {
        let s = slow.get_json("/v1/catalogue/sync", Key::Operator).await;
        (s["phase"] == "details" && s["done"].as_u64().unwrap_or(0) >= 2).then_some(())
    })
    .await;
    slow.stop().await;
    let cut = portal_state.catalogue_calls();
    // Another instance finds the run half done and finishes it once the lease expires.
    let other = gateway(&portal_mock.url(), &prefix, "warn", 100).await;
    let s = eventually("the run finished elsewhere", Duration::from_secs(60), || async {
        let s = other.get_json("/v1/catalogue/sync", Key::Operator).await;
        (s["phase"] == "done").then_some(s)
    })
    .await;
    let (lists, details) = portal_state.catalogue_calls();
    assert_eq!(lists, cut.0, "the list was not pulled again");
    assert_eq!(s["done"], s["total"]);
    // Each procedure asked about once, give or take the one in flight when the first stopped.
    let total = s["total"].as_u64().unwrap_or(0);
    assert!(details >= total && details <= total + 1, "{details} details for {total}");
}
