//! PAdES through the HTTP API, judged by outside tools: `pdfsig` (poppler-utils) and pyHanko
//! (`tests/support/pyhanko_tool.py`) on what the gateway signs, the gateway on what pyHanko
//! signs, `pdftotext` on the visible stamp's Vietnamese text; `qpdf` makes the test PDFs with
//! an xref stream and the encrypted one. A missing tool fails the test (see scripts/test.sh).

use crate::common;

use std::path::Path;

use common::{Pki, pki, run, s};
use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::{Key, TestApp, json as read_json, problem, settings, spawn_app, workspace_dir};
use serde_json::Value;

fn signing_settings(p: &Pki, extra: &[(&str, String)]) -> hcc_config::Settings {
    let mut vars = vec![
        ("HCC__SIGNING__PKCS12", s(&p.dir.join("gateway.p12")).to_string()),
        (
            "HCC__SIGNING__PKCS12_PASSWORD",
            hcc_signing::devpki::DEV_PKCS12_PASSWORD.to_string(),
        ),
        ("HCC__TRUST__CA_DIR", s(&p.dir.join("trust")).to_string()),
    ];
    vars.extend(extra.iter().cloned());
    settings(QueueBackendKind::Memory, &vars)
}

fn classic_fixture() -> Vec<u8> {
    std::fs::read(workspace_dir().join("tests/fixtures/pdf/result-classic.pdf")).unwrap()
}

/// The fixture rewritten by qpdf with object streams and a cross-reference stream.
fn xref_stream_fixture(p: &Pki) -> Vec<u8> {
    let src = p.dir.join("src-classic.pdf");
    let out = p.dir.join("src-streams.pdf");
    std::fs::write(&src, classic_fixture()).unwrap();
    let (ok, log) = run("qpdf", &["--object-streams=generate", s(&src), s(&out)]);
    assert!(ok, "qpdf: {log}");
    let bytes = std::fs::read(&out).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("/XRef"), "qpdf wrote no xref stream");
    bytes
}

async fn sign_pdf(app: &TestApp, pdf: Vec<u8>, visible: bool) -> Vec<u8> {
    let path = if visible {
        "/v1/signatures?format=pades&visible=true"
    } else {
        "/v1/signatures?format=pades"
    };
    let r = app.post_raw(path, Key::Centre, Some("application/pdf"), pdf).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    r.bytes().await.unwrap().to_vec()
}

/// The gateway's report on `pdf`: the `signatures` list.
async fn gateway_verify(app: &TestApp, pdf: Vec<u8>) -> Vec<Value> {
    let r = app.verify_xml("application/pdf", pdf).await;
    assert_eq!(r.status(), 200);
    let v = read_json(r).await;
    v["signatures"]
        .as_array()
        .unwrap_or_else(|| panic!("no signatures list: {v}"))
        .clone()
}

fn write(p: &Pki, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = p.dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Signs `input` into `out` with pyHanko and the development gateway key.
fn pyhanko_sign(p: &Pki, input: &Path, out: &Path) {
    let tool = workspace_dir().join("tests/support/pyhanko_tool.py");
    let (ok, log) = run(
        "python3",
        &[
            s(&tool),
            "sign",
            s(&p.dir.join("gateway.key")),
            s(&p.dir.join("gateway.pem")),
            s(input),
            s(out),
        ],
    );
    assert!(ok, "pyHanko could not sign: {log}");
}

/// pdfsig's report (it exits non-zero when a signature is bad, so the text is what counts).
fn pdfsig(path: &Path) -> String {
    run("pdfsig", &[s(path)]).1
}

/// pyHanko's verdict on each signature, trusting the development root.
fn pyhanko_validate(p: &Pki, path: &Path) -> Vec<Value> {
    let tool = workspace_dir().join("tests/support/pyhanko_tool.py");
    let (ok, out) = run("python3", &[s(&tool), "validate", s(&p.dir.join("root.pem")), s(path)]);
    assert!(ok, "pyHanko could not validate (is it installed? see scripts/test.sh): {out}");
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_pyhanko_accepts(v: &Value, coverage: &str) {
    assert_eq!(
        (v["intact"].as_bool(), v["valid"].as_bool(), v["trusted"].as_bool()),
        (Some(true), Some(true), Some(true)),
        "{v}"
    );
    assert_eq!(v["coverage"], coverage, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdfs_signed_by_the_gateway_pass_pdfsig_and_pyhanko() {
    let p = pki();
    let app = spawn_app(signing_settings(&p, &[]), Workers::Off).await;
    for (kind, original) in [("classic", classic_fixture()), ("xref-stream", xref_stream_fixture(&p))] {
        for visible in [false, true] {
            let name = format!("{kind}-{}.pdf", if visible { "visible" } else { "invisible" });
            let signed = sign_pdf(&app, original.clone(), visible).await;
            assert_eq!(&signed[..original.len()], &original[..], "{name}: the original bytes changed");
            let path = write(&p, &name, &signed);
            let report = pdfsig(&path);
            assert!(report.contains("Signature Validation: Signature is Valid."), "{name}: {report}");
            assert!(report.contains("Total document signed"), "{name}: {report}");
            assert!(
                report.contains("ETSI.CAdES.detached") && report.contains("SHA-256"),
                "{name}: {report}"
            );
            let ph = pyhanko_validate(&p, &path);
            assert_eq!(ph.len(), 1, "{name}: {ph:?}");
            assert_pyhanko_accepts(&ph[0], "ENTIRE_FILE");
            let ours = gateway_verify(&app, signed.clone()).await;
            assert_eq!(ours.len(), 1, "{name}: {ours:?}");
            let sig = &ours[0];
            assert_eq!(
                (
                    sig["valid"].as_bool(),
                    sig["trusted"].as_bool(),
                    sig["covers_whole_document"].as_bool()
                ),
                (Some(true), Some(true), Some(true)),
                "{name}: {sig}"
            );
            assert!(sig["signer"]["subject"].as_str().unwrap().contains("CN=hcc-gateway (dev)"), "{sig}");
            assert!(sig["signed_at"].is_string(), "{sig}");
            assert!(sig["timestamp"].is_null(), "{sig}");
            let (ok, text) = run("pdftotext", &[s(&path), "-"]);
            assert!(ok, "{text}");
            assert!(text.contains("Result document 0001"), "{text}");
            let stamp = ["Ký bởi: hcc-gateway (dev)", "Cơ quan: hcc-gateway development", "Thời gian: "];
            for line in stamp {
                assert_eq!(text.contains(line), visible, "{name}: {line:?} in {text:?}");
            }
        }
    }
    let unsigned = gateway_verify(&app, classic_fixture()).await;
    assert!(unsigned.is_empty(), "{unsigned:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_signed_twice_keeps_both_signatures_and_pyhanko_signatures_verify() {
    let p = pki();
    let app = spawn_app(signing_settings(&p, &[]), Workers::Off).await;
    let once = sign_pdf(&app, classic_fixture(), true).await;
    let twice = sign_pdf(&app, once, false).await;
    let path = write(&p, "twice.pdf", &twice);
    let report = pdfsig(&path);
    assert_eq!(report.matches("Signature is Valid.").count(), 2, "{report}");
    let first = report.split("Signature #2").next().unwrap();
    assert!(first.contains("Not total document signed"), "{report}");
    let ours = gateway_verify(&app, twice.clone()).await;
    let flags: Vec<(bool, bool)> = ours
        .iter()
        .map(|v| (v["valid"].as_bool().unwrap(), v["covers_whole_document"].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, vec![(true, false), (true, true)], "{ours:?}");
    // A second signature is no modification of the first.
    for v in &ours {
        assert_eq!(
            (v["modified_after_signing"].as_bool(), &v["reason"]),
            (Some(false), &Value::Null),
            "{v}"
        );
    }
    let ph = pyhanko_validate(&p, &path);
    assert_eq!(ph.len(), 2, "{ph:?}");
    assert_pyhanko_accepts(&ph[0], "ENTIRE_REVISION");
    assert_pyhanko_accepts(&ph[1], "ENTIRE_FILE");

    // Signed by pyHanko with the gateway's development key, over the gateway's two signatures.
    let out = p.dir.join("pyhanko.pdf");
    pyhanko_sign(&p, &path, &out);
    let ours = gateway_verify(&app, std::fs::read(&out).unwrap()).await;
    assert_eq!(ours.len(), 3, "{ours:?}");
    for (i, v) in ours.iter().enumerate() {
        assert_eq!((v["valid"].as_bool(), v["trusted"].as_bool()), (Some(true), Some(true)), "{i}: {v}");
        assert_eq!(v["covers_whole_document"].as_bool(), Some(i == 2), "{i}: {v}");
        // pyHanko's signature update is a further signature, not a modification.
        assert_eq!(v["modified_after_signing"].as_bool(), Some(false), "{i}: {v}");
    }
    // And one pyHanko made on the plain fixture.
    let plain = write(&p, "plain.pdf", &classic_fixture());
    let out = p.dir.join("pyhanko-plain.pdf");
    pyhanko_sign(&p, &plain, &out);
    let ours = gateway_verify(&app, std::fs::read(&out).unwrap()).await;
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(
        (
            ours[0]["valid"].as_bool(),
            ours[0]["trusted"].as_bool(),
            ours[0]["covers_whole_document"].as_bool()
        ),
        (Some(true), Some(true), Some(true)),
        "{ours:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_added_or_changed_after_signing_are_reported() {
    let p = pki();
    let app = spawn_app(signing_settings(&p, &[]), Workers::Off).await;
    let signed = sign_pdf(&app, classic_fixture(), false).await;

    // One byte appended: the signature still verifies but no longer covers the file.
    let mut appended = signed.clone();
    appended.push(b'\n');
    let ours = gateway_verify(&app, appended.clone()).await;
    assert_eq!(ours.len(), 1);
    assert_eq!(
        (ours[0]["valid"].as_bool(), ours[0]["covers_whole_document"].as_bool()),
        (Some(true), Some(false)),
        "{ours:?}"
    );
    // A newline changes no object: not a modification.
    assert_eq!(ours[0]["modified_after_signing"].as_bool(), Some(false), "{ours:?}");
    let report = pdfsig(&write(&p, "appended.pdf", &appended));
    assert!(report.contains("Signature is Valid."), "{report}");

    // An update after signing that rewrites the page's text: the signature still verifies over
    // its range, but the answer must not read as clean.
    let revoked = common::redefine_object(&signed, 4, common::REVOKED_CONTENT);
    let ours = gateway_verify(&app, revoked).await;
    assert_eq!(ours.len(), 1);
    assert_eq!(
        (
            ours[0]["valid"].as_bool(),
            ours[0]["covers_whole_document"].as_bool(),
            ours[0]["modified_after_signing"].as_bool()
        ),
        (Some(true), Some(false), Some(true)),
        "{ours:?}"
    );
    let reason = ours[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("modified after signing") && reason.contains("object 4 0"),
        "{reason}"
    );
    assert!(
        !report.contains("Total document signed") && report.contains("Not total document signed"),
        "{report}"
    );

    // One byte changed inside the signed range (the page's text): invalid.
    let at = signed.windows(20).position(|w| w == b"Result document 0001").unwrap();
    let mut changed = signed.clone();
    changed[at + 19] = b'2';
    let ours = gateway_verify(&app, changed.clone()).await;
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["valid"], false, "{ours:?}");
    let report = pdfsig(&write(&p, "changed.pdf", &changed));
    assert!(!report.contains("Signature is Valid."), "{report}");

    // A /ByteRange rewritten to leave 2 more bytes out than the /Contents string: invalid, and
    // for the range itself, before the CMS is even looked at.
    let start = signed.windows(11).position(|w| w == b"/ByteRange[").unwrap() + "/ByteRange".len();
    let end = start + signed[start..].iter().position(|b| *b == b']').unwrap() + 1;
    let text = std::str::from_utf8(&signed[start + 1..end - 1]).unwrap();
    let n: Vec<usize> = text.split(' ').map(|x| x.parse().unwrap()).collect();
    // Padded to at least the old text's width, so no stray "]" is left behind.
    let lie = format!("{:<width$}", format!("[0 {} {} {}]", n[1], n[2] + 2, n[3] - 2), width = end - start);
    let mut lying = signed.clone();
    lying[start..start + lie.len()].copy_from_slice(lie.as_bytes());
    let ours = gateway_verify(&app, lying).await;
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["valid"], false, "{ours:?}");
    assert!(ours[0]["reason"].as_str().unwrap().contains("/ByteRange"), "{ours:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_pdf_signature_with_a_lookalike_certificate_is_invalid_and_openssl_agrees() {
    use hcc_signing::devpki::{Role, lookalike};
    let p = pki();
    let app = spawn_app(signing_settings(&p, &[]), Workers::Off).await;
    // The attacker's key, a certificate with the gateway's serial and its issuer in another
    // case, and a CMS whose signer identifier names the gateway's certificate carrying both.
    let (attacker_key, a_prime) = lookalike(&p.pki.gateway.cert, Role::Signer).unwrap();
    let forger = hcc_signing::pki::Identity {
        key: attacker_key.into(),
        cert: p.pki.gateway.cert.clone(),
        chain: vec![a_prime, p.pki.root.clone()],
    };
    let options = hcc_signing::pades::SignOptions {
        visible: false,
        time: 1_795_638_605,
        reserve: 16 * 1024,
    };
    let mut changed = classic_fixture();
    let at = changed.windows(20).position(|w| w == b"Result document 0001").unwrap();
    changed[at..at + 20].copy_from_slice(b"REVOKED. Pay 9999999");
    let prepared = hcc_signing::pades::prepare(&changed, &p.pki.gateway.cert, &options).unwrap();
    let content = prepared.signed_content();
    let cms = hcc_signing::cades::sign(&forger, &content).unwrap().into_der();
    let forged = prepared.embed(&cms).unwrap();

    let ours = gateway_verify(&app, forged).await;
    assert_eq!(ours.len(), 1);
    assert_eq!(
        (ours[0]["valid"].as_bool(), ours[0]["trusted"].as_bool()),
        (Some(false), Some(false)),
        "{ours:?}"
    );
    assert!(ours[0]["reason"].as_str().unwrap().contains("ambiguous"), "{ours:?}");
    // The same CMS over the same bytes, judged by openssl cms -verify: refused too.
    let (ok, log) = common::openssl_cms_verify(&p, &cms, &content, "forged-pdf", &[]);
    assert!(!ok, "openssl accepted the forged PDF signature: {log}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_declaring_more_objects_than_a_pdf_may_hold_is_a_422() {
    let p = pki();
    let app = spawn_app(signing_settings(&p, &[]), Workers::Off).await;
    // The xref stream fixture with /Size 4294967295 (and /Index keeping its entries), as
    // the review sent it.
    let bytes = xref_stream_fixture(&p);
    let at = bytes.windows(6).rposition(|w| w == b"/Size ").unwrap();
    let digits = bytes[at + 6..].iter().take_while(|b| b.is_ascii_digit()).count();
    let count = std::str::from_utf8(&bytes[at + 6..at + 6 + digits]).unwrap().to_string();
    let mut pdf = bytes[..at].to_vec();
    pdf.extend_from_slice(format!("/Index [0 {count}] /Size 4294967295").as_bytes());
    pdf.extend_from_slice(&bytes[at + 6 + digits..]);
    let r = app
        .post_raw("/v1/signatures?format=pades", Key::Centre, Some("application/pdf"), pdf)
        .await;
    let v = problem(r, 422).await;
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("/Size"), "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_truncated_and_oversized_pdfs_are_refused() {
    let p = pki();
    let app = spawn_app(signing_settings(&p, &[]), Workers::Off).await;
    let plain = write(&p, "plain.pdf", &classic_fixture());
    let enc = p.dir.join("encrypted.pdf");
    let (ok, log) = run("qpdf", &["--encrypt", "", "owner-secret", "256", "--", s(&plain), s(&enc)]);
    assert!(ok, "qpdf: {log}");
    let encrypted = std::fs::read(&enc).unwrap();
    let whole = classic_fixture();
    let truncated = whole[..whole.len() / 2].to_vec();
    for (what, body, needle) in [
        ("encrypted", encrypted, "encrypted"),
        ("truncated", truncated, "not a readable PDF"),
        ("not a PDF", b"%PDF-1.7 but nothing else".to_vec(), "not a readable PDF"),
    ] {
        for path in ["/v1/signatures?format=pades", "/v1/signatures/verify"] {
            let r = app.post_raw(path, Key::Centre, Some("application/pdf"), body.clone()).await;
            let v = problem(r, 422).await;
            assert!(v["errors"][0]["message"].as_str().unwrap().contains(needle), "{what} {path}: {v}");
        }
    }
    // Over the body limit (1 MiB): 413 before anything is parsed.
    let mut big = classic_fixture();
    big.resize(1024 * 1024 + 1, b' ');
    let r = app
        .post_raw("/v1/signatures?format=pades", Key::Centre, Some("application/pdf"), big)
        .await;
    problem(r, 413).await;
    // Wrong content type, visible without pades, wrong role.
    let r = app.sign("pades", Some("application/octet-stream"), classic_fixture()).await;
    problem(r, 415).await;
    let r = app.post_raw("/v1/signatures?format=cms&visible=true", Key::Centre, None, "x").await;
    problem(r, 400).await;
    let r = app
        .post_raw(
            "/v1/signatures?format=pades",
            Key::Operator,
            Some("application/pdf"),
            classic_fixture(),
        )
        .await;
    problem(r, 403).await;
    app.stop().await;
}

/// A mock RFC 3161 authority whose certificate chains to the development root.
async fn mock_tsa(p: &Pki) -> hcc_mocks::Running {
    let read = |n: &str| std::fs::read(p.dir.join(n)).unwrap();
    let state = hcc_mocks::tsa::TsaState::new(&read("tsa.key"), &read("tsa.pem"), &read("root.pem")).unwrap();
    hcc_mocks::tsa::spawn("127.0.0.1:0", state).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pades_b_t_carries_a_signature_timestamp_pyhanko_and_the_gateway_accept() {
    let p = pki();
    let tsa = mock_tsa(&p).await;
    let app = spawn_app(
        signing_settings(&p, &[("HCC__SIGNING__TSA_URL", format!("{}/", tsa.url()))]),
        Workers::Off,
    )
    .await;
    let signed = sign_pdf(&app, classic_fixture(), true).await;
    let path = write(&p, "b-t.pdf", &signed);
    let report = pdfsig(&path);
    assert!(
        report.contains("Signature is Valid.") && report.contains("Total document signed"),
        "{report}"
    );
    let ph = pyhanko_validate(&p, &path);
    assert_eq!(ph.len(), 1);
    assert_pyhanko_accepts(&ph[0], "ENTIRE_FILE");
    assert_eq!(
        (ph[0]["timestamp"]["intact"].as_bool(), ph[0]["timestamp"]["valid"].as_bool()),
        (Some(true), Some(true)),
        "{ph:?}"
    );
    let ours = gateway_verify(&app, signed).await;
    assert_eq!(ours.len(), 1);
    let ts = &ours[0]["timestamp"];
    assert_eq!(
        (ts["valid"].as_bool(), ts["trusted"].as_bool()),
        (Some(true), Some(true)),
        "{ours:?}"
    );
    assert!(ts["time"].is_string(), "{ours:?}");
    app.stop().await;
}
