//! The gateway's signing key in a PKCS#11 token (SoftHSM2), over HTTP, judged by the outside
//! tools: `xmlsec1` and `openssl` check what the gateway signed, `pkcs11-tool` says how the key
//! is protected. Each gateway is a real `hcc-gateway serve` child process with its own
//! `SOFTHSM2_CONF` (SoftHSM reads it once per process, and this test process's environment is
//! shared by every test in it). The key is the development PKI's gateway key, imported with
//! `softhsm2-util`, so the certificate the gateway is configured with is the PKI's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Pki, openssl_cms_verify, pki, run, s, xmlsec_verify};
use hcc_tests::softhsm::{SoftHsm, USER_PIN, module_path};
use hcc_tests::{Gateway, Key, binary, eventually, free_port, workspace_dir};

const TOKEN: &str = "hcc-gateway";
const KEY: &str = "gateway-signing";

/// A SoftHSM with the token [`TOKEN`] holding the development gateway key as [`KEY`], and the
/// PKI it comes from (in the SoftHSM's folder, removed with it).
fn token_with_gateway_key() -> (SoftHsm, Pki) {
    let hsm = SoftHsm::fresh();
    let p = pki();
    hsm.init_token(TOKEN);
    hsm.import_key(TOKEN, &p.dir.join("gateway.key"), KEY, "01");
    (hsm, p)
}

/// A running `hcc-gateway serve` child, killed on drop; its stderr goes to a file.
struct TokenGateway {
    child: Child,
    gateway: Gateway,
    stderr: PathBuf,
}

impl Drop for TokenGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TokenGateway {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Starts the gateway with its key in `hsm`: the token, key label and PIN (from a file, as a
/// secret is given) may be overridden with `token`, `key`, `pin`.
fn start(hsm: &SoftHsm, p: &Pki, token: &str, key: &str, pin: &str) -> TokenGateway {
    let bin = binary("hcc-gateway");
    assert!(bin.exists(), "{} is missing: cargo build --workspace --bins", bin.display());
    let port = free_port();
    let pin_file = hsm.dir.join(format!("pin-{port}"));
    std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
    let stderr = hsm.dir.join(format!("gateway-{port}.log"));
    let child = hsm
        .command(bin)
        .args(["serve", "--no-workers"])
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local")
        .env("HCC__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("HCC__QUEUE__BACKEND", "memory")
        .env("HCC__LOG__LEVEL", "info")
        .env("HCC__CENTRE__WEBHOOK_URL", "")
        .env("HCC__DVCQG__BASE_URL", "")
        .env("HCC__SIGNING__PKCS11_MODULE", module_path())
        .env("HCC__SIGNING__PKCS11_TOKEN", token)
        .env("HCC__SIGNING__PKCS11_PIN_FILE", &pin_file)
        .env("HCC__SIGNING__PKCS11_KEY_LABEL", key)
        .env("HCC__SIGNING__CERTIFICATE", p.dir.join("gateway.pem"))
        .env("HCC__TRUST__CA_DIR", p.dir.join("trust"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"));
    TokenGateway {
        child,
        gateway: Gateway::at(&format!("http://127.0.0.1:{port}")),
        stderr,
    }
}

/// Starts the gateway and waits until it serves; a gateway that exits instead fails the test
/// with its log.
async fn start_serving(hsm: &SoftHsm, p: &Pki) -> TokenGateway {
    let mut g = start(hsm, p, TOKEN, KEY, USER_PIN);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = g.child.try_wait() {
            panic!("the gateway exited ({status}): {}", g.log());
        }
        let ready = g.gateway.get("/readyz", Key::None).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return g;
        }
        assert!(Instant::now() < deadline, "the gateway did not become ready: {}", g.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the gateway expecting it to refuse to start: its exit status and log.
fn refused_start(hsm: &SoftHsm, p: &Pki, token: &str, key: &str, pin: &str) -> String {
    let mut g = start(hsm, p, token, key, pin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = g.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway did not stop: {}", g.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = g.log();
    assert!(!status.success(), "the gateway started: {log}");
    assert!(!log.contains(pin), "the log shows the PIN: {log}");
    log
}

async fn sign_xml(g: &Gateway) -> reqwest::Response {
    let camt = std::fs::read(workspace_dir().join("tests/fixtures/xml/01-camt054-v08.xml")).unwrap();
    g.sign("xmldsig", Some("application/xml"), camt).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_softhsm_signs_xml_for_xmlsec1_and_never_leaves_the_token() {
    let (hsm, p) = token_with_gateway_key();
    // The outside tool's view: sensitive, and not extractable.
    let access = hsm.private_key_access(TOKEN, KEY);
    assert!(access.split(", ").any(|a| a == "sensitive"), "{access}");
    assert!(!access.split(", ").any(|a| a == "extractable"), "{access}");

    let g = start_serving(&hsm, &p).await;
    let r = sign_xml(&g.gateway).await;
    assert_eq!(r.status(), 200);
    let signed = r.bytes().await.unwrap().to_vec();
    let (ok, log) = xmlsec_verify(&p, "token.xml", &signed);
    assert!(ok, "xmlsec1 refused the token's signature: {log}");
    let v = hcc_tests::json(g.gateway.verify_xml("application/xml", signed).await).await;
    assert_eq!((v["valid"].as_bool(), v["trusted"].as_bool()), (Some(true), Some(true)), "{v}");
    let log = g.log();
    assert!(log.contains("PKCS#11"), "start-up does not say the key is in a token: {log}");
    assert!(
        !log.contains("can leave its token"),
        "a protected key was reported extractable: {log}"
    );
    assert!(!log.contains(USER_PIN), "the log shows the PIN: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_softhsm_signs_cms_for_openssl() {
    let (hsm, p) = token_with_gateway_key();
    let g = start_serving(&hsm, &p).await;
    let content = "Quyết định cấp giấy chứng nhận".as_bytes().to_vec();
    let r = g.gateway.sign("cms", None, content.clone()).await;
    assert_eq!(r.status(), 200, "{}", g.log());
    let der = r.bytes().await.unwrap().to_vec();
    let (ok, log) = openssl_cms_verify(&p, &der, &content, "token", &[]);
    assert!(ok, "{log}");
}

/// PAdES with the key in the token, judged as the software-key PAdES tests are: pdfsig says the
/// signature is valid and covers the document, and the gateway's own verification agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_softhsm_signs_pades_for_pdfsig() {
    let (hsm, p) = token_with_gateway_key();
    let g = start_serving(&hsm, &p).await;
    let pdf = std::fs::read(workspace_dir().join("tests/fixtures/pdf/result-classic.pdf")).unwrap();
    let r = g.gateway.sign("pades", Some("application/pdf"), pdf).await;
    assert_eq!(r.status(), 200, "{}", g.log());
    let signed = r.bytes().await.unwrap().to_vec();
    let path = p.dir.join("token.pdf");
    std::fs::write(&path, &signed).unwrap();
    let (_, report) = run("pdfsig", &[s(&path)]);
    assert!(
        report.contains("Signature is Valid.") && report.contains("Total document signed"),
        "{report}"
    );
    let r = g.gateway.verify_xml("application/pdf", signed).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let sig = &v["signatures"][0];
    assert_eq!(
        (
            sig["valid"].as_bool(),
            sig["trusted"].as_bool(),
            sig["covers_whole_document"].as_bool()
        ),
        (Some(true), Some(true), Some(true)),
        "{v}"
    );
}

#[test]
fn start_up_stops_naming_the_key_for_a_wrong_pin_a_missing_token_or_key_and_a_locked_token() {
    let (hsm, p) = token_with_gateway_key();
    // Wrong PIN.
    let log = refused_start(&hsm, &p, TOKEN, KEY, "135791");
    assert!(log.contains("signing.pkcs11_pin") && log.contains("CKR_PIN_INCORRECT"), "{log}");
    assert!(log.contains(KEY) && log.contains(TOKEN), "{log}");
    // No token of that label.
    let log = refused_start(&hsm, &p, "no-such-token", KEY, USER_PIN);
    assert!(
        log.contains("signing.pkcs11_token") && log.contains("no token labelled \"no-such-token\""),
        "{log}"
    );
    assert!(log.contains(KEY), "{log}");
    // No key of that label.
    let log = refused_start(&hsm, &p, TOKEN, "no-such-key", USER_PIN);
    assert!(
        log.contains("signing.pkcs11_key_label") && log.contains("no private key labelled \"no-such-key\""),
        "{log}"
    );
    // A key that is not the certificate's: a second token holding the bank's key as KEY.
    hsm.init_token("other-token");
    hsm.import_key("other-token", &p.dir.join("bank.key"), KEY, "02");
    let log = refused_start(&hsm, &p, "other-token", KEY, USER_PIN);
    assert!(
        log.contains("signing.certificate") && log.contains("not the private key of the certificate"),
        "{log}"
    );
    // A locked PIN.
    hsm.lock_user_pin(TOKEN);
    let log = refused_start(&hsm, &p, TOKEN, KEY, USER_PIN);
    assert!(log.contains("signing.pkcs11_pin") && log.contains("CKR_PIN_LOCKED"), "{log}");
    assert!(log.contains(KEY) && log.contains(TOKEN), "{log}");
}

/// Moves a directory away and back (the token "unplugged" and "plugged back in").
fn rename(from: &Path, to: &Path) {
    std::fs::rename(from, to).unwrap_or_else(|e| panic!("cannot move {} to {}: {e}", from.display(), to.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lost_at_run_time_answers_503_and_recovers_when_it_is_back() {
    let (hsm, p) = token_with_gateway_key();
    let g = start_serving(&hsm, &p).await;
    assert_eq!(sign_xml(&g.gateway).await.status(), 200, "{}", g.log());

    // Unplugged: SoftHSM finds the token's files gone.
    let dir = hsm.token_dir(TOKEN);
    let away = hsm.dir.join("unplugged");
    rename(&dir, &away);
    for _ in 0..3 {
        let r = sign_xml(&g.gateway).await;
        assert_eq!(r.status(), 503, "{}", g.log());
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert!(r.headers().contains_key("retry-after"));
        let problem: serde_json::Value = r.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(KEY) && detail.contains(TOKEN), "{problem}");
        assert!(!detail.contains(USER_PIN), "{problem}");
    }

    // Plugged back in: answered again by the same process, without a restart.
    rename(&away, &dir);
    let signed = eventually("signing after the token is back", Duration::from_secs(20), || {
        let gateway = &g.gateway;
        async move {
            let r = sign_xml(gateway).await;
            if r.status() == 200 {
                r.bytes().await.ok().map(|b| b.to_vec())
            } else {
                None
            }
        }
    })
    .await;
    let (ok, log) = xmlsec_verify(&p, "recovered.xml", &signed);
    assert!(ok, "{log}");
    assert!(g.child.id() > 0 && !g.log().contains(USER_PIN));
}
