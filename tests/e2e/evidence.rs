//! The evidence log end to end (issue 27): a dossier's life cycle and a PayGov payment through
//! the gateway, the mock TSA stamping the chain; every body the mock portal received for the
//! dossier is in its records by SHA-256; a token is judged by `openssl ts -verify`; the files
//! verify, and one changed byte or one deleted line breaks them at the record named; the
//! auditor's script (docs/evidence-audit.sh) agrees, with nothing but the files, `openssl` and
//! `sha256sum`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hcc_gateway::app::Workers;
use hcc_gateway::evidence::verify::{Options, verify_dir};
use hcc_mocks::tsa::TsaState;
use hcc_tests::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn anchor(dir: &Path) -> hcc_signing::pki::TrustStore {
    hcc_signing::pki::TrustStore::pinned_from_file(&dir.join("root.pem")).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The one chain file in `dir`.
fn chain_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The mock authority, its certificate issued by the environment's root.
async fn mock_tsa(e: &PaymentEnv) -> (hcc_mocks::Running, TsaState) {
    let read = |n: &str| std::fs::read(e.dir.join(n)).unwrap();
    let state = TsaState::new(&read("tsa.key"), &read("tsa.pem"), &read("root.pem")).unwrap();
    (hcc_mocks::tsa::spawn("127.0.0.1:0", state.clone()).await.unwrap(), state)
}

/// A gateway delivering to the environment's portal, its evidence log on in `e.dir/evidence`,
/// stamped every second by `tsa` (whose tokens chain to the environment's root), with `extra`.
async fn logging_gateway(e: &PaymentEnv, tsa: &hcc_mocks::Running, extra: &[(&str, String)]) -> (TestApp, PathBuf) {
    let evidence_dir = e.dir.join("evidence");
    let mut vars = vec![
        ("HCC__DVCQG__BASE_URL", e.portal.url()),
        ("HCC__EVIDENCE__ENABLED", "true".into()),
        ("HCC__EVIDENCE__DIR", evidence_dir.to_string_lossy().into_owned()),
        ("HCC__EVIDENCE__TSA_URL", format!("{}/", tsa.url())),
        ("HCC__EVIDENCE__TSA_CA", e.dir.join("root.pem").to_string_lossy().into_owned()),
        ("HCC__EVIDENCE__BATCH_SECS", "1".into()),
    ];
    vars.extend(extra.iter().cloned());
    (spawn_app(e.settings(&vars), Workers::On).await, evidence_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_is_recorded_chained_stamped_and_verifiable_without_the_gateway() {
    let e = payment_env("evidence");
    let (tsa, _) = mock_tsa(&e).await;
    let (app, evidence_dir) = logging_gateway(
        &e,
        &tsa,
        &[
            ("HCC__SIGNING__PKCS12", e.dir.join("gateway.p12").to_string_lossy().into_owned()),
            ("HCC__SIGNING__PKCS12_PASSWORD", hcc_signing::devpki::DEV_PKCS12_PASSWORD.into()),
        ],
    )
    .await;

    // A signature the gateway makes is recorded by the digests of what was signed and of it.
    let signed = app
        .post("/v1/signatures?format=cms", Key::Centre)
        .header("Content-Type", "application/octet-stream")
        .body("Quyết định số 27/QĐ")
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let signature = signed.bytes().await.unwrap();

    // A dossier's life cycle, and a payment paid through PayGov.
    let ma = "000.00.22.H46-261207-0027";
    for u in life_cycle() {
        let (path, body) = u.path_and_body(ma);
        accepted_id(app.post_json(&path, Key::Centre, &body).await).await;
    }
    let steps = life_cycle().len();
    eventually("the portal has the whole life cycle", WAIT, || async {
        (e.paygov.arrivals_of(ma).len() >= steps).then_some(())
    })
    .await;
    let reference = app.new_payment_reference("paygov", 100_000).await;
    let paid = e
        .paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(paid["replies"][0]["MaLoi"], "00", "{paid}");

    // Every body the portal received for the dossier is in its records, by SHA-256.
    let bodies = e.paygov.bodies_naming(ma);
    assert!(bodies.len() >= steps, "{bodies:?}");
    let records = eventually("the dossier's records are written and stamped", WAIT, || async {
        let v = app.get_json(&format!("/v1/evidence?ordering_key={ma}"), Key::Operator).await;
        let recs = v["records"].as_array().cloned().unwrap_or_default();
        let digests: Vec<&str> = recs.iter().filter_map(|r| r["record"]["request_sha256"].as_str()).collect();
        let all = bodies.iter().all(|b| digests.contains(&b.as_str()));
        (all && recs.iter().all(|r| r["stamp"].is_object())).then_some(recs)
    })
    .await;
    for r in &records {
        assert_eq!(r["record"]["counterpart"], "dvcqg", "{r}");
        assert!(
            r["record"].get("request_kept").is_none(),
            "a citizen's dossier is never copied: {r}"
        );
        // The line as written hashes to the record's hash (what an auditor recomputes).
        let text = r["line_text"].as_str().unwrap();
        let (hash, json) = text.split_once(' ').unwrap();
        assert_eq!(hash, r["hash"].as_str().unwrap());
        assert_eq!(hcc_signing::sha256_hex(json.as_bytes()), hash);
    }
    assert!(
        records.iter().any(|r| r["record"]["outcome"] == "delivered"),
        "the attempt's outcome is recorded"
    );

    // The payment: INIT (its answer kept), the payment URL, and PayGov's signed confirmation,
    // kept whole.
    let v = app.get_json(&format!("/v1/evidence?reference={reference}"), Key::Operator).await;
    let recs = v["records"].as_array().unwrap();
    let ops: Vec<&str> = recs.iter().filter_map(|r| r["record"]["operation"].as_str()).collect();
    assert!(ops.contains(&"INIT") && ops.contains(&"payment URL"), "{ops:?}");
    let callback = recs
        .iter()
        .find(|r| r["record"]["direction"] == "in")
        .unwrap_or_else(|| panic!("the confirmation is recorded: {v}"));
    let kept = base64::engine::general_purpose::STANDARD
        .decode(callback["record"]["request_kept"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        hcc_signing::sha256_hex(&kept),
        callback["record"]["request_sha256"].as_str().unwrap(),
        "the confirmation kept is the one digested"
    );
    assert!(String::from_utf8_lossy(&kept).contains(&reference));

    // A stamp's token, judged by openssl: its imprint is the hash it says it covers.
    let stamp = &records[0]["stamp"];
    let token = base64::engine::general_purpose::STANDARD
        .decode(stamp["token"].as_str().unwrap())
        .unwrap();
    let tok = e.dir.join("stamp.tsr");
    std::fs::write(&tok, &token).unwrap();
    let root = e.dir.join("root.pem");
    let covers = stamp["covers"].as_str().unwrap();
    let verify_with = |digest: &str| {
        run(
            "openssl",
            &[
                "ts",
                "-verify",
                "-digest",
                digest,
                "-in",
                tok.to_str().unwrap(),
                "-token_in",
                "-CAfile",
                root.to_str().unwrap(),
            ],
        )
    };
    let (ok, log) = verify_with(covers);
    assert!(ok, "openssl ts -verify: {log}");
    assert!(!verify_with(&"00".repeat(32)).0, "openssl took another digest");
    // The one record by id.
    let one = app
        .get_json(&format!("/v1/evidence/{}", records[0]["id"].as_str().unwrap()), Key::Operator)
        .await;
    assert_eq!(one["hash"], records[0]["hash"]);
    // The metrics show a stamped chain.
    let metrics = app.metrics().await;
    assert!(metrics.contains("hcc_evidence_stamps"), "{metrics}");

    app.stop().await;
    tsa.stop().await;

    // The files verify, with the gateway's verifier, its command, and the auditor's script.
    let opts = || Options {
        anchor: Some(anchor(&e.dir)),
        ..Options::default()
    };
    let report = verify_dir(&evidence_dir, &opts()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.chains[0].stamps > 0 && report.chains[0].unstamped == 0, "{report:?}");
    let all = std::fs::read_to_string(chain_file(&evidence_dir)).unwrap();
    let sign_record = all
        .lines()
        .find(|l| l.contains(r#""operation":"sign cms""#))
        .unwrap_or_else(|| panic!("no record of the signature"));
    assert!(
        sign_record.contains(&hcc_signing::sha256_hex("Quyết định số 27/QĐ".as_bytes())),
        "{sign_record}"
    );
    assert!(sign_record.contains(&hcc_signing::sha256_hex(&signature)), "{sign_record}");
    let bin = binary("hcc-gateway");
    let cli = std::process::Command::new(&bin)
        .args(["evidence", "verify"])
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local")
        .env("HCC__EVIDENCE__DIR", &evidence_dir)
        .env("HCC__EVIDENCE__TSA_CA", &root)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cli.stdout).into_owned();
    assert!(cli.status.success() && said.contains("OK: every chain holds"), "{said}");
    let script = workspace_dir().join("docs/evidence-audit.sh");
    let audit = |dir: &Path| run("bash", &[script.to_str().unwrap(), dir.to_str().unwrap(), root.to_str().unwrap()]);
    let (ok, log) = audit(&evidence_dir);
    assert!(ok, "the auditor's script: {log}");

    // One changed byte: the gateway's verifier, its command and the script all fail, naming
    // the record.
    let changed = e.dir.join("changed");
    copy_dir(&evidence_dir, &changed);
    let file = chain_file(&changed);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let victim = lines.len() / 2;
    let at = lines[victim].len() - 5;
    let flipped = if lines[victim].as_bytes()[at] == b'a' { "b" } else { "a" };
    lines[victim].replace_range(at..at + 1, flipped);
    std::fs::write(&file, format!("{}\n", lines.join("\n"))).unwrap();
    let report = verify_dir(&changed, &opts()).unwrap();
    let b = report.first_break().expect("a changed byte breaks the chain");
    assert_eq!(b.line, victim + 1, "{b}");
    let cli = std::process::Command::new(&bin)
        .args(["evidence", "verify"])
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local")
        .env("HCC__EVIDENCE__DIR", &changed)
        .env("HCC__EVIDENCE__TSA_CA", &root)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cli.stdout).into_owned();
    assert!(!cli.status.success() && said.contains(&b.record), "{said}");
    let (ok, log) = audit(&changed);
    assert!(!ok, "the script passed a changed byte: {log}");
    assert!(log.contains(&format!("line {}", victim + 1)), "{log}");

    // One deleted line.
    let deleted = e.dir.join("deleted");
    copy_dir(&evidence_dir, &deleted);
    let file = chain_file(&deleted);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(victim);
    std::fs::write(&file, format!("{}\n", lines.join("\n"))).unwrap();
    let report = verify_dir(&deleted, &opts()).unwrap();
    let b = report.first_break().expect("a deleted line breaks the chain");
    assert_eq!(b.line, victim + 1, "{b}");
    assert!(!audit(&deleted).0, "the script passed a deleted line");
}

/// A gauge's value in the Prometheus text.
fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in the metrics"))
}

/// The authority down for a while: dossiers are delivered all the same, the alarm gauge shows
/// the chain waiting, failures are counted; when it answers again the chain is stamped up to its
/// head and every record ends up covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_down_delays_stamps_never_deliveries() {
    let e = payment_env("evidence-tsa-down");
    let (tsa, tsa_state) = mock_tsa(&e).await;
    tsa_state.set_faults(hcc_mocks::faults::Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Default::default()
    });
    let (app, evidence_dir) = logging_gateway(&e, &tsa, &[]).await;
    let dossiers: Vec<String> = (0..5).map(|i| format!("000.00.22.H46-261207-{i:04}")).collect();
    for ma in &dossiers {
        accepted_id(app.post_json("/v1/dossiers", Key::Centre, &dossier(ma, 1)).await).await;
    }
    eventually("every dossier delivered while the authority is down", WAIT, || async {
        dossiers.iter().all(|ma| !e.paygov.arrivals_of(ma).is_empty()).then_some(())
    })
    .await;
    let waited = eventually("the chain shows it waits for a stamp", WAIT, || async {
        let m = app.metrics().await;
        let age = gauge(&m, "hcc_evidence_unstamped_age_seconds");
        (age >= 2.0 && gauge(&m, "hcc_evidence_stamp_failures") >= 2.0 && gauge(&m, "hcc_evidence_stamps") == 0.0).then_some(age)
    })
    .await;
    assert!(waited >= 2.0);

    // The authority answers again: the head is stamped and nothing waits any more.
    tsa_state.set_faults(hcc_mocks::faults::Faults::default());
    eventually("every record covered once the authority is back", WAIT, || async {
        let m = app.metrics().await;
        (gauge(&m, "hcc_evidence_stamps") >= 1.0 && gauge(&m, "hcc_evidence_unstamped_age_seconds") == 0.0).then_some(())
    })
    .await;
    let v = app
        .get_json(&format!("/v1/evidence?ordering_key={}", dossiers[0]), Key::Operator)
        .await;
    let recs = v["records"].as_array().unwrap();
    assert!(!recs.is_empty() && recs.iter().all(|r| r["stamp"].is_object()), "{v}");
    app.stop().await;
    tsa.stop().await;
    let report = verify_dir(
        &evidence_dir,
        &Options {
            anchor: Some(anchor(&e.dir)),
            ..Options::default()
        },
    )
    .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.chains[0].unstamped, 0, "{report:?}");
}

/// `kill -9` of a real process while it writes records: the chain on disk verifies up to its
/// last complete record; the next process starts a chain of its own in the same folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_leaves_a_chain_that_verifies() {
    let (portal, state) = portal();
    let evidence_dir = std::env::temp_dir().join(format!("hcc-evidence-kill-{}", unique_prefix()));
    let start = |port: u16, prefix: &str| {
        serve_command(port, prefix)
            .env("HCC__DVCQG__BASE_URL", portal.url())
            .env("HCC__EVIDENCE__ENABLED", "true")
            .env("HCC__EVIDENCE__DIR", &evidence_dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"))
    };
    let port = free_port();
    let prefix = unique_prefix();
    let mut child = start(port, &prefix);
    let base = format!("http://127.0.0.1:{port}");
    Gateway::at(&base).wait_ready().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut producers = Vec::new();
    for p in 0..8 {
        let (client, base) = (client.clone(), base.clone());
        producers.push(tokio::spawn(async move {
            for i in 0..200 {
                let ma = format!("KILL-{p}-{i:03}");
                // Posts until the process is gone; what is lost here is never accepted.
                let Ok(r) = client
                    .post(format!("{base}/v1/dossiers"))
                    .bearer_auth(CENTRE_KEY)
                    .json(&dossier(&ma, 1))
                    .send()
                    .await
                else {
                    return;
                };
                let _ = r.bytes().await;
            }
        }));
    }
    eventually("records being written", WAIT, || async {
        (state.counters().accepted >= 200).then_some(())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    for p in producers {
        let _ = p.await;
    }
    let report = verify_dir(&evidence_dir, &Options::default()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.chains.len(), 1);
    assert!(report.chains[0].records >= 200, "{report:?}");

    // The next process: a chain of its own beside the first; both verify.
    let port = free_port();
    let mut child = start(port, &prefix);
    Gateway::at(&format!("http://127.0.0.1:{port}")).wait_ready().await;
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/dossiers"))
        .bearer_auth(CENTRE_KEY)
        .json(&dossier("KILL-AFTER", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually("the dossier after the crash delivered", WAIT, || async {
        (!state.arrivals_of("KILL-AFTER").is_empty()).then_some(())
    })
    .await;
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let report = verify_dir(&evidence_dir, &Options::default()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.chains.len(), 2, "{report:?}");
    portal.stop().await;
    let _ = std::fs::remove_dir_all(&evidence_dir);
}
