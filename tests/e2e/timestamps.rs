//! Signature timestamps over real HTTP: the gateway's RFC 3161 client (`gateway/src/tsa.rs`)
//! against the mock TSA, whose tokens OpenSSL's own TS code makes; the tokens judged by
//! `openssl ts -verify`; what the mock refuses as a real authority would; an authority down
//! or failing is `Unavailable` (the API's 503). And the API's `format=cms` signatures, now
//! made by the CAdES builder, judged by `openssl cms -verify`.

use std::time::Duration;

use crate::common::{Pki, openssl_cms_verify, pki, run, s};
use hcc_gateway::tsa::{TsaClient, TsaError};
use hcc_mocks::tsa::{REJECTION_BAD_DATA_FORMAT, TsaState};
use hcc_signing::cades;

async fn mock_tsa(p: &Pki) -> hcc_mocks::Running {
    let read = |n: &str| std::fs::read(p.dir.join(n)).unwrap();
    let state = TsaState::new(&read("tsa.key"), &read("tsa.pem"), &read("root.pem")).unwrap();
    hcc_mocks::tsa::spawn("127.0.0.1:0", state).await.unwrap()
}

/// A client taking tokens from an authority that chains to the development root.
fn client(p: &Pki, url: &str) -> TsaClient {
    let anchor = hcc_signing::pki::TrustStore::from_dir(&p.dir.join("trust")).unwrap();
    TsaClient::try_new(url, Duration::from_secs(10)).unwrap().with_anchor(anchor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_the_mock_tsa_verify_with_openssl_and_in_cades() {
    let p = pki();
    let tsa = mock_tsa(&p).await;
    let content = "Quyết định phê duyệt hồ sơ".as_bytes();
    let sig = cades::sign(&p.pki.gateway, content).unwrap();
    let token = client(&p, &format!("{}/", tsa.url()))
        .timestamp(sig.signature_value())
        .await
        .unwrap();

    // The independent judge: openssl ts -verify, over the data and over its digest.
    let (tok, data) = (p.dir.join("t.tst"), p.dir.join("sv.bin"));
    std::fs::write(&tok, &token).unwrap();
    std::fs::write(&data, sig.signature_value()).unwrap();
    let root = p.dir.join("root.pem");
    let (ok, log) = run(
        "openssl",
        &["ts", "-verify", "-data", s(&data), "-in", s(&tok), "-token_in", "-CAfile", s(&root)],
    );
    assert!(ok, "openssl ts -verify: {log}");
    let digest = hcc_signing::sha256_hex(sig.signature_value());
    let (ok, log) = run(
        "openssl",
        &[
            "ts",
            "-verify",
            "-digest",
            &digest,
            "-in",
            s(&tok),
            "-token_in",
            "-CAfile",
            s(&root),
        ],
    );
    assert!(ok, "openssl ts -verify -digest: {log}");
    let (ok, _) = run(
        "openssl",
        &[
            "ts",
            "-verify",
            "-digest",
            &"00".repeat(32),
            "-in",
            s(&tok),
            "-token_in",
            "-CAfile",
            s(&root),
        ],
    );
    assert!(!ok, "openssl ts -verify accepted another digest");

    let stamped = sig.with_timestamp(&token).unwrap();
    let v = cades::verify(stamped.to_der(), content, &p.trust).unwrap();
    assert!(v.valid && v.trusted, "{v:?}");
    let ts = v.timestamp.unwrap();
    assert!(ts.valid && ts.trusted, "{ts:?}");
    // The mock writes milliseconds; they survive into the RFC 3339 time.
    assert!(ts.time.contains('T') && ts.time.ends_with('Z'), "{}", ts.time);
    tsa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_tsa_refuses_what_a_real_one_refuses() {
    let p = pki();
    let tsa = mock_tsa(&p).await;
    let http = reqwest::Client::new();
    let post = |ct: &'static str, body: Vec<u8>| http.post(format!("{}/", tsa.url())).header("content-type", ct).body(body).send();
    // A well-formed query, wrong content type.
    let q = p.dir.join("q.tsq");
    let (ok, log) = run(
        "openssl",
        &["ts", "-query", "-digest", &"11".repeat(32), "-sha256", "-cert", "-out", s(&q)],
    );
    assert!(ok, "{log}");
    let query = std::fs::read(&q).unwrap();
    assert_eq!(post("application/octet-stream", query.clone()).await.unwrap().status(), 415);
    assert_eq!(post("application/timestamp-query", vec![0x30; 20_000]).await.unwrap().status(), 413);
    // Garbage: a rejection with badDataFormat, as a TimeStampResp.
    let r = post("application/timestamp-query", b"not a request".to_vec()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/timestamp-reply");
    let reply = p.dir.join("garbage.tsr");
    std::fs::write(&reply, r.bytes().await.unwrap()).unwrap();
    let (_, text) = run("openssl", &["ts", "-reply", "-in", s(&reply), "-text"]);
    assert!(
        text.contains("Status: Rejected") && text.contains("the data submitted has the wrong format"),
        "{text}"
    );
    // The mock's own fallback for a request openssl cannot answer at all reads the same.
    std::fs::write(&reply, REJECTION_BAD_DATA_FORMAT).unwrap();
    let (_, text) = run("openssl", &["ts", "-reply", "-in", s(&reply), "-text"]);
    assert!(
        text.contains("Status: Rejected") && text.contains("the data submitted has the wrong format"),
        "{text}"
    );
    // A hash it does not offer (SHA-1): openssl's own rejection, which openssl reads back so.
    let (ok, log) = run("openssl", &["ts", "-query", "-digest", &"22".repeat(20), "-sha1", "-out", s(&q)]);
    assert!(ok, "{log}");
    let r = post("application/timestamp-query", std::fs::read(&q).unwrap()).await.unwrap();
    let reply = p.dir.join("sha1.tsr");
    std::fs::write(&reply, r.bytes().await.unwrap()).unwrap();
    let (_, text) = run("openssl", &["ts", "-reply", "-in", s(&reply), "-text"]);
    assert!(
        text.contains("Status: Rejected") && text.contains("unrecognized or unsupported algorithm"),
        "{text}"
    );
    // And the well-formed one is granted.
    let r = post("application/timestamp-query", query).await.unwrap();
    std::fs::write(&reply, r.bytes().await.unwrap()).unwrap();
    let (_, text) = run("openssl", &["ts", "-reply", "-in", s(&reply), "-text"]);
    assert!(text.contains("Status: Granted"), "{text}");
    let stats: serde_json::Value = http
        .get(format!("{}/_mock/stats", tsa.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["refused_http"], 1, "{stats}");
    assert_eq!(stats["requests"], 3, "{stats}");
    tsa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_down_or_failing_is_unavailable_and_a_stranger_answer_is_refused() {
    let p = pki();
    let tsa = mock_tsa(&p).await;
    let url = format!("{}/", tsa.url());
    let http = reqwest::Client::new();
    // Failing with 503: Unavailable, which the API answers 503.
    let r = http
        .post(format!("{}/_mock/faults", tsa.url()))
        .json(&serde_json::json!({"fail_rate": 1.0, "fail_status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let e = client(&p, &url).timestamp(b"x").await.unwrap_err();
    assert!(matches!(e, TsaError::Unavailable(_)), "{e:?}");
    let problem = hcc_gateway::http::problem::ApiError::from(e);
    assert_eq!(actix_web::ResponseError::status_code(&problem), 503);
    // A 4xx is not an outage: a refused answer (502).
    http.post(format!("{}/_mock/faults", tsa.url()))
        .json(&serde_json::json!({"fail_rate": 1.0, "fail_status": 400}))
        .send()
        .await
        .unwrap();
    assert!(matches!(client(&p, &url).timestamp(b"x").await, Err(TsaError::BadResponse(_))));
    // Another path on the mock is not an authority: 404, refused.
    http.post(format!("{}/_mock/faults", tsa.url()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(client(&p, &url).timestamp(b"x").await.is_ok());
    assert!(matches!(
        client(&p, &format!("{}/_mock/stats", tsa.url())).timestamp(b"x").await,
        Err(TsaError::BadResponse(_))
    ));
    // Down: connection refused, Unavailable.
    tsa.stop().await;
    let e = client(&p, &url).timestamp(b"x").await.unwrap_err();
    assert!(matches!(e, TsaError::Unavailable(_)), "{e:?}");
    // Slower than the timeout: Unavailable, bounded by the timeout (one coarse upper bound).
    let slow = mock_tsa(&p).await;
    http.post(format!("{}/_mock/faults", slow.url()))
        .json(&serde_json::json!({"latency_ms": 5000}))
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = TsaClient::try_new(&format!("{}/", slow.url()), Duration::from_millis(300))
        .unwrap()
        .timestamp(b"x")
        .await
        .unwrap_err();
    assert!(matches!(e, TsaError::Unavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout was not applied");
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_taken_only_from_an_authority_that_chains_to_the_anchor() {
    use hcc_signing::pki::TrustStore;
    let p = pki();
    let tsa = mock_tsa(&p).await;
    let url = format!("{}/", tsa.url());
    let with = |anchor: TrustStore| TsaClient::try_new(&url, Duration::from_secs(10)).unwrap().with_anchor(anchor);
    // The development root, and the authority's own certificate pinned (signing.tsa_ca): taken.
    assert!(client(&p, &url).timestamp(b"x").await.is_ok());
    let pinned = TrustStore::pinned_from_file(&p.dir.join("tsa.pem")).unwrap();
    assert!(with(pinned).timestamp(b"x").await.is_ok());
    // Pinned to another certificate (the bank's), or to another root: refused, naming why.
    let other = TrustStore::pinned_from_file(&p.dir.join("bank.pem")).unwrap();
    let e = with(other).timestamp(b"x").await.unwrap_err();
    assert!(
        matches!(&e, TsaError::BadResponse(m) if m.contains("does not chain to signing.tsa_ca")),
        "{e:?}"
    );
    let stranger = hcc_signing::devpki::DevPki::generate().unwrap();
    let e = with(TrustStore::from_certs(vec![stranger.root]).unwrap())
        .timestamp(b"x")
        .await
        .unwrap_err();
    assert!(matches!(e, TsaError::BadResponse(_)), "{e:?}");
    // No anchor at all: no token.
    let e = TsaClient::try_new(&url, Duration::from_secs(10))
        .unwrap()
        .timestamp(b"x")
        .await
        .unwrap_err();
    assert!(matches!(e, TsaError::BadResponse(_)), "{e:?}");
    tsa.stop().await;
}

mod api {
    use hcc_config::QueueBackendKind;
    use hcc_gateway::app::Workers;
    use hcc_tests::{settings, spawn_app};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn format_cms_is_cades_and_openssl_verifies_it() {
        let p = pki();
        let app = spawn_app(
            settings(
                QueueBackendKind::Memory,
                &[
                    ("HCC__SIGNING__PKCS12", s(&p.dir.join("gateway.p12")).to_string()),
                    (
                        "HCC__SIGNING__PKCS12_PASSWORD",
                        hcc_signing::devpki::DEV_PKCS12_PASSWORD.to_string(),
                    ),
                    ("HCC__TRUST__CA_DIR", s(&p.dir.join("trust")).to_string()),
                    ("HCC__SIGNING__TSA_URL", "http://127.0.0.1:9/".to_string()),
                ],
            ),
            Workers::Off,
        )
        .await;
        let content = b"%PDF-1.7 not really, just bytes\x00\xff".to_vec();
        let r = app.sign("cms", None, content.clone()).await;
        assert_eq!(r.status(), 200);
        let der = r.bytes().await.unwrap().to_vec();
        let (ok, log) = openssl_cms_verify(&p, &der, &content, "api", &["-purpose", "any"]);
        let sig = p.dir.join("api.p7s");
        assert!(ok, "{log}");
        let (_, printed) = run("openssl", &["cms", "-cmsout", "-print", "-inform", "DER", "-in", s(&sig)]);
        assert!(
            printed.contains("signingCertificateV2") && printed.contains("signingTime"),
            "{printed}"
        );
        let v = cades::verify(&der, &content, &p.trust).unwrap();
        assert!(v.valid && v.trusted && v.signed_at.is_some(), "{v:?}");
    }

    #[test]
    fn a_tsa_url_that_is_not_http_stops_start_up() {
        let p = pki();
        let st = settings(
            QueueBackendKind::Memory,
            &[
                ("HCC__SIGNING__TSA_URL", "ftp://tsa.example.vn/".to_string()),
                ("HCC__TRUST__CA_DIR", s(&p.dir.join("trust")).to_string()),
            ],
        );
        let Err(e) = hcc_gateway::app::signing_state(&st) else {
            panic!("an ftp TSA URL was accepted");
        };
        assert!(e.to_string().contains("signing.tsa_url"), "{e}");
        let st = settings(
            QueueBackendKind::Memory,
            &[
                ("HCC__SIGNING__TSA_URL", "http://127.0.0.1:9104/".to_string()),
                ("HCC__TRUST__CA_DIR", s(&p.dir.join("trust")).to_string()),
            ],
        );
        assert!(hcc_gateway::app::signing_state(&st).unwrap().tsa.is_some());
        // Tokens must chain to something configured: signing.tsa_ca, or else the trust store.
        let st = settings(
            QueueBackendKind::Memory,
            &[("HCC__SIGNING__TSA_URL", "http://127.0.0.1:9104/".to_string())],
        );
        let Err(e) = hcc_gateway::app::signing_state(&st) else {
            panic!("a TSA with nothing to chain its tokens to was accepted");
        };
        assert!(
            e.to_string().contains("signing.tsa_url") && e.to_string().contains("signing.tsa_ca"),
            "{e}"
        );
        let st = settings(
            QueueBackendKind::Memory,
            &[
                ("HCC__SIGNING__TSA_URL", "http://127.0.0.1:9104/".to_string()),
                ("HCC__SIGNING__TSA_CA", s(&p.dir.join("tsa.pem")).to_string()),
            ],
        );
        assert!(hcc_gateway::app::signing_state(&st).unwrap().tsa.is_some());
        let st = settings(QueueBackendKind::Memory, &[]);
        assert!(hcc_gateway::app::signing_state(&st).unwrap().tsa.is_none());
    }
}
