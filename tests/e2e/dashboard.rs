//! The `/ops` dashboard in a real headless Chromium (Playwright): enter a key, see a dead
//! letter, click replay, see it go. The screenshots stay in `artifacts/`.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_a_dead_letter_from_the_dashboard() {
    let (portal, state, app) = with_portal(QueueBackendKind::Redis).await;
    let mut bad = dossier("DASH-1", 1);
    bad["MaTTHC"] = json!("1.888888.000.00.00.H46");
    let r = json(app.post_dossier(&bad).await).await;
    let id = r["id"].as_str().unwrap().to_string();
    let status = |id: String| {
        let req = app.get(&format!("/v1/messages/{id}"), Key::Operator);
        async move { json(send(req).await).await["status"].as_str().unwrap_or_default().to_string() }
    };
    eventually("dead", Duration::from_secs(15), || async {
        (status(id.clone()).await == "dead").then_some(())
    })
    .await;
    state.add_catalogue("1.888888.000.00.00.H46");

    // The page and its assets come from the gateway, with a policy that forbids anything else.
    let page = send(app.get("/ops", Key::None)).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );

    let artifacts = workspace_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let script = workspace_dir().join("tests/browser/dashboard.mjs");
    let (base, id2, shot2) = (app.address.clone(), id.clone(), shot.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(&base)
            .arg(ADMIN_KEY)
            .arg(&id2)
            .arg(&shot2)
            .current_dir(workspace_dir().join("tests/browser"))
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run node (see scripts/test.sh): {e}"));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed: {log}");
    assert!(shot.is_file(), "no screenshot");
    eventually("delivered after the replay", Duration::from_secs(15), || async {
        (status(id.clone()).await == "delivered").then_some(())
    })
    .await;
    app.stop().await;
    portal.stop().await;
}
