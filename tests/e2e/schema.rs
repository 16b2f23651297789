//! The served OpenAPI document against the live gateway, judged by an outside fuzzer:
//! schemathesis (PyPI) runs every documented operation with each role's key and with none, and
//! finds no server error, no undocumented status, no wrong content type, no body outside its
//! schema, no wrong answer to an undeclared method and no ignored authentication.
//!
//! Skipped when schemathesis is not installed, except under `scripts/test.sh`, which installs
//! it and sets `HCC_REQUIRE_TOOLS=1`: there a missing tool is a failure.

use std::time::{Duration, Instant};

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::{ADMIN_KEY, CENTRE_KEY, OPERATOR_KEY, payment_mocks, portal, settings, spawn_app, unique_prefix};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,\
    response_schema_conformance,unsupported_method,allow_header_conformance,ignored_auth";

/// Whether schemathesis can be run; a failure when it cannot and the suite requires it.
fn schemathesis_available() -> bool {
    let found = std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("HCC_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("schemathesis is required (HCC_REQUIRE_TOOLS=1): scripts/test.sh installs it");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_with_any_key_or_none() {
    if !schemathesis_available() {
        eprintln!("schemathesis is not installed: skipped (scripts/test.sh installs it)");
        return;
    }
    let mocks = payment_mocks("schema");
    let (portal, _) = portal();
    let prefix = unique_prefix();
    let mut overrides = mocks.overrides(&prefix);
    overrides.push(("HCC__DVCQG__BASE_URL", portal.url()));
    overrides.push(("HCC__SIGNING__PKCS12", mocks.dir.join("gateway.p12").to_string_lossy().into_owned()));
    overrides.push((
        "HCC__SIGNING__PKCS12_PASSWORD",
        hcc_signing::devpki::DEV_PKCS12_PASSWORD.to_string(),
    ));
    // The evidence log on, so that its routes are judged answering, not only "off" (503).
    overrides.push(("HCC__EVIDENCE__ENABLED", "true".into()));
    overrides.push(("HCC__EVIDENCE__DIR", mocks.dir.join("evidence").to_string_lossy().into_owned()));
    let app = spawn_app(settings(QueueBackendKind::Redis, &overrides), Workers::On).await;
    let schema = app.url("/openapi.json");
    let reports = std::env::temp_dir().join(format!("hcc-schemathesis-{}", uuid::Uuid::new_v4().simple()));
    // schemathesis keeps a cache in its working directory: a temporary one, not the repository.
    std::fs::create_dir_all(&reports).unwrap_or_else(|e| panic!("{}: {e}", reports.display()));
    let mut failures = Vec::new();
    for (role, key) in [
        ("no key", None),
        ("centre", Some(CENTRE_KEY)),
        ("operator", Some(OPERATOR_KEY)),
        ("admin", Some(ADMIN_KEY)),
    ] {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new("schemathesis");
        cmd.args(["--no-color", "run", &schema, "--checks", CHECKS])
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "15", "--max-time", "20"])
            // One worker: with several, the coverage phase's code generation trips a CPython 3.11
            // thread-safety bug ("AST constructor recursion depth mismatch") on the large bodies.
            .args(["--workers", "1", "--request-timeout", "10"])
            .arg("--report-dir")
            .arg(reports.join(role.replace(' ', "-")))
            .current_dir(&reports)
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        if let Some(key) = key {
            cmd.args(["--header", &format!("Authorization: Bearer {key}")]);
        }
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("schemathesis ({role}) did not finish in 90 s"))
            .unwrap_or_else(|e| panic!("schemathesis ({role}) could not run: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let summary: Vec<&str> = text.lines().rev().take(4).collect();
        eprintln!("schemathesis ({role}), {:.0?}: {:?}", started.elapsed(), summary);
        if !out.status.success() {
            failures.push(format!(
                "---- {role}: exit {:?}\n{text}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&reports);
    assert!(failures.is_empty(), "schemathesis found problems:\n{}", failures.join("\n"));
}
