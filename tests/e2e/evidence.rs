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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_is_recorded_chained_stamped_and_verifiable_without_the_gateway() {
    let e = payment_env("evidence");
    let read = |n: &str| std::fs::read(e.dir.join(n)).unwrap();
    let tsa_state = TsaState::new(&read("tsa.key"), &read("tsa.pem"), &read("root.pem")).unwrap();
    let tsa = hcc_mocks::tsa::spawn("127.0.0.1:0", tsa_state).await.unwrap();
    let evidence_dir = e.dir.join("evidence");
    let app = spawn_app(
        e.settings(&[
            ("HCC__DVCQG__BASE_URL", e.portal.url()),
            ("HCC__EVIDENCE__ENABLED", "true".into()),
            ("HCC__EVIDENCE__DIR", evidence_dir.to_string_lossy().into_owned()),
            ("HCC__EVIDENCE__TSA_URL", format!("{}/", tsa.url())),
            ("HCC__EVIDENCE__TSA_CA", e.dir.join("root.pem").to_string_lossy().into_owned()),
            ("HCC__EVIDENCE__BATCH_SECS", "1".into()),
        ]),
        Workers::On,
    )
    .await;

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
