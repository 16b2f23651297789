//! The signature API over HTTP, judged by the real tools, and the key material start-up and
//! `keys dev` produce. The signing library's own interop tests (CMS and XML-DSig both ways, the
//! refusals) are in `signing/tests/interop.rs`; the helpers are shared with them.

use crate::common;

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Pki, openssl_cms_verify, pki, replace, run, s, xmlsec_sign, xmlsec_verify};
use hcc_tests::workspace_dir;

mod api {
    use hcc_config::QueueBackendKind;
    use hcc_gateway::app::{Application, Workers};
    use hcc_tests::{Key, json as read_json, settings, spawn_app};
    use serde_json::{Value, json};

    use super::*;

    fn signing_settings(p: &Pki, password: &str) -> hcc_config::Settings {
        settings(
            QueueBackendKind::Memory,
            &[
                ("HCC__SIGNING__PKCS12", s(&p.dir.join("gateway.p12")).to_string()),
                ("HCC__SIGNING__PKCS12_PASSWORD", password.to_string()),
                ("HCC__TRUST__CA_DIR", s(&p.dir.join("trust")).to_string()),
            ],
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_signature_api_signs_for_the_real_tools_and_verifies_theirs() {
        let p = pki();
        let app = spawn_app(signing_settings(&p, hcc_signing::devpki::DEV_PKCS12_PASSWORD), Workers::Off).await;
        // CMS, checked by openssl.
        let content = "Quyết định cấp giấy chứng nhận".as_bytes().to_vec();
        let r = app.sign("cms", None, content.clone()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pkcs7-signature");
        let der = r.bytes().await.unwrap().to_vec();
        let (ok, log) = openssl_cms_verify(&p, &der, &content, "api", &[]);
        assert!(ok, "{log}");
        // CMS verification through the API.
        let body = json!({"content_base64": STANDARD.encode(&content), "signature_base64": STANDARD.encode(&der)});
        let v = read_json(app.verify(&body).await).await;
        assert_eq!((v["valid"].as_bool(), v["trusted"].as_bool()), (Some(true), Some(true)), "{v}");
        assert!(v["signer"]["subject"].as_str().unwrap().contains("hcc-gateway"));
        for k in ["issuer", "serial", "not_before", "not_after"] {
            assert!(v["signer"][k].is_string(), "{k} missing: {v}");
        }
        let body = json!({"content_base64": STANDARD.encode(b"other"), "signature_base64": STANDARD.encode(&der)});
        let v = read_json(app.verify(&body).await).await;
        assert_eq!(v["valid"], false);
        let r = app.verify(&json!({"content_base64": "!!", "signature_base64": ""})).await;
        assert_eq!(r.status(), 422);

        // XML-DSig, checked by xmlsec1.
        let camt = std::fs::read(workspace_dir().join("tests/fixtures/xml/01-camt054-v08.xml")).unwrap();
        let r = app.sign("xmldsig", Some("application/xml"), camt.clone()).await;
        assert_eq!(r.status(), 200);
        let signed = r.bytes().await.unwrap().to_vec();
        let (ok, log) = xmlsec_verify(&p, "api.xml", &signed);
        assert!(ok, "{log}");
        let v = read_json(app.verify_xml("application/xml", signed.clone()).await).await;
        assert_eq!((v["valid"].as_bool(), v["trusted"].as_bool()), (Some(true), Some(true)), "{v}");
        let tampered = replace(&signed, "100000", "900000");
        let v = read_json(app.verify_xml("text/xml", tampered).await).await;
        assert_eq!(v["valid"], false);
        assert!(v["reason"].as_str().unwrap().contains("digest"), "{v}");
        // Signed by xmlsec1 with the bank key: valid and trusted (the bank chains to the root).
        let v = read_json(app.verify_xml("application/xml", xmlsec_sign(&p, "api2.xml", &camt)).await).await;
        assert_eq!((v["valid"].as_bool(), v["trusted"].as_bool()), (Some(true), Some(true)), "{v}");

        // Bad input.
        let doctype = b"<!DOCTYPE d [<!ENTITY e \"x\">]><d>&e;</d>".to_vec();
        for path in ["/v1/signatures?format=xmldsig", "/v1/signatures/verify"] {
            let r = app.post_raw(path, Key::Centre, Some("application/xml"), doctype.clone()).await;
            assert_eq!(r.status(), 400, "{path}");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: Value = r.json().await.unwrap();
            assert!(body["detail"].as_str().unwrap().contains("DOCTYPE"));
        }
        assert_eq!(app.post_raw("/v1/signatures", Key::Centre, None, "x").await.status(), 400);
        assert_eq!(app.sign("xmldsig", Some("text/plain"), "<a/>").await.status(), 415);
        assert_eq!(
            app.post_raw("/v1/signatures?format=cms", Key::Operator, None, "x").await.status(),
            403
        );
        assert_eq!(app.post_raw("/v1/signatures?format=cms", Key::None, None, "x").await.status(), 401);
        app.stop().await;
    }

    #[tokio::test]
    async fn a_wrong_pkcs12_password_stops_start_up_naming_the_key() {
        let p = pki();
        let err = Application::build(signing_settings(&p, "not-the-password"), Workers::Off)
            .await
            .err()
            .expect("must refuse");
        let text = err.to_string();
        assert!(text.starts_with("signing.pkcs12:") && text.contains("password"), "{text}");
    }

    #[test]
    fn keys_dev_writes_a_pki_openssl_accepts() {
        let dir = std::env::temp_dir().join(format!("hcc-keys-{}", uuid::Uuid::new_v4().simple()));
        let out = Command::new(hcc_tests::binary("hcc-gateway"))
            .args(["keys", "dev"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for f in [
            "root.pem",
            "trust/root.pem",
            "gateway.pem",
            "gateway.key",
            "gateway.p12",
            "bank.pem",
            "bank.key",
            "tsa.pem",
            "tsa.key",
        ] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        // The mock TSA's certificate is one openssl accepts for time stamping.
        let (ok, log) = run(
            "openssl",
            &[
                "verify",
                "-purpose",
                "timestampsign",
                "-CAfile",
                s(&dir.join("root.pem")),
                s(&dir.join("tsa.pem")),
            ],
        );
        assert!(ok, "tsa.pem: {log}");
        for cert in ["gateway.pem", "bank.pem"] {
            let (ok, log) = run("openssl", &["verify", "-CAfile", s(&dir.join("root.pem")), s(&dir.join(cert))]);
            assert!(ok, "{cert}: {log}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
