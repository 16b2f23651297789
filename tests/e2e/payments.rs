//! Payments end to end: the gateway, mock-portal playing PayGov, mock-bank playing VNPAY and a
//! host-to-host bank, and mock-centre receiving the signed webhooks.

use std::path::PathBuf;
use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::bank::BankState;
use hcc_mocks::centre::CentreState;
use hcc_mocks::portal::{PortalConfig, PortalState};
use hcc_signing::devpki::{CertSpec, DevPki, KeyKind, Role, issue};
use hcc_signing::pki::Identity;
use hcc_signing::webhook::WebhookSecret;
use hcc_tests::*;
use serde_json::{Value, json};

struct Env {
    dir: PathBuf,
    portal: hcc_mocks::Running,
    paygov: PortalState,
    bank: hcc_mocks::Running,
    centre: hcc_mocks::Running,
    centre_state: CentreState,
    prefix: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env() -> Env {
    let dir = std::env::temp_dir().join(format!("hcc-pay-{}", uuid::Uuid::new_v4().simple()));
    let pki = DevPki::generate().unwrap();
    pki.write(&dir).unwrap();
    let paygov = PortalState::new(PortalConfig::default());
    let portal = hcc_mocks::portal::spawn("127.0.0.1:0", paygov.clone()).unwrap();
    let (key, cert) = issue(
        &CertSpec {
            common_name: "Stranger Bank",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        Some((&pki.root, &pki.root_key)),
    )
    .unwrap();
    let bank_state = BankState::new(
        "HCCDEV01",
        "vnpay-dev-hash-secret",
        Identity {
            key: pki.bank.key.clone(),
            cert: pki.bank.cert.clone(),
            chain: vec![],
        },
        Identity { key, cert, chain: vec![] },
    );
    let bank = hcc_mocks::bank::spawn("127.0.0.1:0", bank_state).unwrap();
    let (centre, centre_state) = hcc_mocks::centre::spawn("127.0.0.1:0", WebhookSecret::parse(CENTRE_SECRET).unwrap()).unwrap();
    Env {
        dir,
        portal,
        paygov,
        bank,
        centre,
        centre_state,
        prefix: unique_prefix(),
    }
}

impl Env {
    fn settings(&self, extra: &[(&str, String)]) -> hcc_config::Settings {
        let mut o = vec![
            ("HCC__QUEUE__KEY_PREFIX", self.prefix.clone()),
            ("HCC__PAYGOV__BASE_URL", format!("{}/paygov", self.portal.url())),
            (
                "HCC__VNPAY__PAY_URL",
                "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html".to_string(),
            ),
            (
                "HCC__BANKS__DEVBANK__CERT",
                self.dir.join("bank.pem").to_string_lossy().into_owned(),
            ),
            ("HCC__TRUST__CA_DIR", self.dir.join("trust").to_string_lossy().into_owned()),
            ("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", self.centre.url())),
        ];
        o.extend(extra.iter().cloned());
        settings(QueueBackendKind::Redis, &o)
    }

    async fn gateway(&self) -> TestApp {
        spawn_app(self.settings(&[]), Workers::On).await
    }

    async fn control(&self, url: String, body: Value) -> Value {
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn paygov_pay(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/paygov/pay", self.portal.url()), body).await
    }

    async fn vnpay_pay(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/vnpay/pay", self.bank.url()), body).await
    }

    async fn bank_credit(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/bank/credit", self.bank.url()), body).await
    }
}

async fn create(app: &TestApp, provider: &str, amount: u64) -> String {
    let r = app
        .client
        .post(app.url("/v1/payments"))
        .bearer_auth(CENTRE_KEY)
        .json(&json!({"MaHoSo": "000.00.22.H46-241125-0001", "SoTien": amount, "provider": provider,
                      "PhiLePhi": [{"LoaiPhiLePhi": 2, "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "SoTien": amount}],
                      "payer": {"HoTen": "Nguyễn Thị Lan"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "pending");
    assert!(v["payment_url"].as_str().unwrap().starts_with("http"));
    v["MaThamChieu"].as_str().unwrap().to_string()
}

async fn payment(app: &TestApp, reference: &str) -> Value {
    app.client
        .get(app.url(&format!("/v1/payments/{reference}")))
        .bearer_auth(CENTRE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_status(app: &TestApp, reference: &str, want: &str) {
    eventually(&format!("payment {want}"), Duration::from_secs(15), || async {
        (payment(app, reference).await["status"] == want).then_some(())
    })
    .await;
}

/// Waits for `n` webhooks, then gives stragglers a moment, and checks there are exactly `n`.
async fn exactly_webhooks(state: &CentreState, n: u64) {
    eventually(&format!("{n} webhooks"), Duration::from_secs(20), || async {
        (state.counters().received >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = state.counters();
    assert_eq!((c.received, c.unique, c.bad_signatures), (n, n, 0), "{c:?}");
}

fn callback(app: &TestApp, path: &str) -> String {
    app.url(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paygov_end_to_end_paid_once_with_one_signed_webhook() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    assert!(e.paygov.paygov.known(&reference), "INIT reached the platform");
    let r = e
        .paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [callback(&app, "/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(r["replies"][0]["MaLoi"], "00", "{r}");
    let p = payment(&app, &reference).await;
    assert_eq!(p["status"], "paid");
    assert_eq!(p["provider_transaction"], r["MaGiaoDich"]);
    exactly_webhooks(&e.centre_state, 1).await;
    let w = &e.centre_state.received()[0];
    assert_eq!(w.body["type"], "payment.confirmed");
    assert_eq!(w.body["MaThamChieu"], reference.as_str());
    assert_eq!(w.body["SoTien"], 100_000);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnpay_end_to_end_and_its_answer_codes() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "vnpay", 150_000).await;
    let url = payment(&app, &reference).await["payment_url"].as_str().unwrap().to_string();
    assert!(
        url.contains("vnp_Amount=15000000") && url.contains("vnp_SecureHash=") && url.contains(&reference),
        "{url}"
    );
    let ipn_url = callback(&app, "/v1/callbacks/vnpay/ipn");
    // Signature first, then order, then amount, then state.
    let r = e
        .vnpay_pay(json!({"TxnRef": reference, "amount_vnd": 150_000, "ipn_url": ipn_url, "tamper": true}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "97");
    let r = e
        .vnpay_pay(json!({"TxnRef": "HCC241126NOTFOUND", "amount_vnd": 150_000, "ipn_url": ipn_url}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "01");
    assert_eq!(payment(&app, &reference).await["status"], "pending", "refusals change nothing");
    let r = e
        .vnpay_pay(json!({"TxnRef": reference, "amount_vnd": 150_000, "ipn_url": ipn_url}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "00");
    assert_eq!(payment(&app, &reference).await["status"], "paid");
    let r = e
        .vnpay_pay(json!({"TxnRef": reference, "amount_vnd": 150_000, "ipn_url": ipn_url}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "02", "already confirmed");
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_camt054_end_to_end_with_a_reversal() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 200_000).await;
    let url = callback(&app, "/v1/callbacks/banks/devbank/camt054");
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "bank_ref": "FT1"}))
        .await;
    assert_eq!(r["replies"][0]["status"], 200, "{r}");
    assert_eq!(r["replies"][0]["body"]["entries"][0]["outcome"], "paid", "{r}");
    assert_eq!(payment(&app, &reference).await["status"], "paid");
    exactly_webhooks(&e.centre_state, 1).await;
    // Version 02, reference in the remittance text: the same payment again is a duplicate.
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "bank_ref": "FT1", "version": "02"}))
        .await;
    assert!(
        r["replies"][0]["body"]["entries"][0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("duplicate"),
        "{r}"
    );
    // A debit is not a payment.
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "debit": true}))
        .await;
    assert_eq!(r["replies"][0]["body"]["entries"][0]["outcome"], "ignored_debit");
    // The reversal undoes it, once.
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "reversal": true, "bank_ref": "RV1", "copies": 2}))
        .await;
    let outcomes: Vec<&str> = r["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["body"]["entries"][0]["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"reversed") && outcomes.contains(&"reversal_ignored"),
        "{outcomes:?}"
    );
    assert_eq!(payment(&app, &reference).await["status"], "pending");
    exactly_webhooks(&e.centre_state, 2).await;
    assert!(e.centre_state.received().iter().any(|w| w.body["type"] == "payment.reversed"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_copies_to_two_gateway_processes_make_one_webhook() {
    let e = env();
    let a = e.gateway().await;
    let b = e.gateway().await;
    let reference = create(&a, "paygov", 100_000).await;
    let r = e.paygov_pay(json!({"MaThamChieu": reference, "copies": 10, "callback_urls": [callback(&a, "/v1/callbacks/paygov"), callback(&b, "/v1/callbacks/paygov")]})).await;
    let replies = r["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 10);
    assert!(
        replies.iter().all(|x| x["MaLoi"] == "00"),
        "every copy gets the success answer: {r}"
    );
    // The same for VNPAY and the bank, concurrently, on both processes.
    let v = create(&b, "vnpay", 120_000).await;
    let ipn = e
        .vnpay_pay(json!({"TxnRef": v, "amount_vnd": 120_000, "ipn_url": callback(&a, "/v1/callbacks/vnpay/ipn"), "copies": 10}))
        .await;
    let codes: Vec<&str> = ipn["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["RspCode"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == "00").count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == "00" || *c == "02"), "{codes:?}");
    let k = create(&a, "paygov", 90_000).await;
    e.bank_credit(json!({"reference": k, "amount_vnd": 90_000, "url": callback(&b, "/v1/callbacks/banks/devbank/camt054"), "copies": 10, "bank_ref": "FT9"})).await;
    exactly_webhooks(&e.centre_state, 3).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_confirmations_leave_everything_as_it_was() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    // A bad checksum.
    let r = e
        .paygov_pay(json!({"MaThamChieu": reference, "tamper": true, "callback_urls": [callback(&app, "/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(r["replies"][0]["MaLoi"], "99", "{r}");
    // A tampered XML signature, and a certificate from another bank.
    let url = callback(&app, "/v1/callbacks/banks/devbank/camt054");
    for body in [
        json!({"reference": reference, "amount_vnd": 100_000, "url": url, "tamper": true}),
        json!({"reference": reference, "amount_vnd": 100_000, "url": url, "stranger": true}),
    ] {
        let r = e.bank_credit(body).await;
        assert_eq!(r["replies"][0]["status"], 401, "{r}");
    }
    // An unknown reference, on every route.
    let r = e
        .bank_credit(json!({"reference": "HCC241126UNKNOWN1", "amount_vnd": 100_000, "url": url}))
        .await;
    assert_eq!(r["replies"][0]["body"]["entries"][0]["outcome"], "unknown_reference");
    let mut forged = serde_json::Map::new();
    for (k, v) in [
        ("LoaiBanTin", "PAYMENT"),
        ("MaLoi", "00"),
        ("MaDoiTac", "HCC-DEV"),
        ("MaThamChieu", "HCC241126UNKNOWN1"),
        ("MaTienTe", "VND"),
        ("MaGiaoDich", "X1"),
        ("MaNganHang", "VCB"),
        ("ThoiGianGD", "20241126100000"),
        ("ThongTinGiaoDich", "x"),
    ] {
        forged.insert(k.into(), json!(v));
    }
    forged.insert("SoTien".into(), json!(100_000));
    let mac = hcc_adapters::payments::paygov::checksum(&forged, hcc_adapters::payments::paygov::CONFIRM_FIELDS, "paygov-dev-secret");
    forged.insert("MaXacThuc".into(), json!(mac));
    let r: Value = app
        .client
        .post(callback(&app, "/v1/callbacks/paygov"))
        .json(&forged)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["MaLoi"], "99");
    // Garbage gets a problem, not a crash.
    let r = app
        .client
        .post(callback(&app, "/v1/callbacks/banks/devbank/camt054"))
        .header("content-type", "application/xml")
        .body("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .post(callback(&app, "/v1/callbacks/banks/nobank/camt054"))
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(payment(&app, &reference).await["status"], "pending");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.centre_state.counters().received, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amount_mismatch_is_marked_for_a_person_and_sends_nothing() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    let r = e
        .paygov_pay(
            json!({"MaThamChieu": reference, "amount": 10_000, "copies": 2, "callback_urls": [callback(&app, "/v1/callbacks/paygov")]}),
        )
        .await;
    assert!(r["replies"].as_array().unwrap().iter().all(|x| x["MaLoi"] == "99"), "{r}");
    assert_eq!(payment(&app, &reference).await["status"], "amount_mismatch");
    let v = create(&app, "vnpay", 50_000).await;
    let r = e
        .vnpay_pay(json!({"TxnRef": v, "amount_vnd": 40_000, "ipn_url": callback(&app, "/v1/callbacks/vnpay/ipn")}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "04");
    assert_eq!(payment(&app, &v).await["status"], "amount_mismatch");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.centre_state.counters().received, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_callback_is_found_by_reconciliation() {
    let e = env();
    let app = spawn_app(
        e.settings(&[
            ("HCC__PAYGOV__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__PAYGOV__RECONCILE_MIN_AGE_SECS", "0".into()),
        ]),
        Workers::On,
    )
    .await;
    let reference = create(&app, "paygov", 75_000).await;
    let r = e.paygov_pay(json!({"MaThamChieu": reference, "notify": false})).await;
    assert_eq!(r["sent"], 0);
    wait_status(&app, &reference, "paid").await;
    assert_eq!(payment(&app, &reference).await["provider_transaction"], r["MaGiaoDich"]);
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_waits_for_a_centre_that_is_down() {
    let e = env();
    let centre_addr = e.centre.addr.to_string();
    e.centre.stop().await;
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    e.paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [callback(&app, "/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(payment(&app, &reference).await["status"], "paid");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (back, state) = hcc_mocks::centre::spawn(&centre_addr, WebhookSecret::parse(CENTRE_SECRET).unwrap()).unwrap();
    exactly_webhooks(&state, 1).await;
    app.stop().await;
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_signature_verifies_with_the_standardwebhooks_python_package() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    e.paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [callback(&app, "/v1/callbacks/paygov")]}))
        .await;
    exactly_webhooks(&e.centre_state, 1).await;
    let w = e.centre_state.received().remove(0);
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
d = json.load(sys.stdin)
headers = {"webhook-id": d["id"], "webhook-timestamp": d["ts"], "webhook-signature": d["sig"]}
Webhook(d["secret"]).verify(d["raw"], headers)
try:
    Webhook(d["secret"]).verify(d["raw"] + " ", headers)
    print("TAMPERED ACCEPTED")
    sys.exit(1)
except Exception:
    print("verified")
"#;
    let input = json!({"id": w.webhook_id, "ts": w.timestamp, "sig": w.signature, "raw": w.raw, "secret": CENTRE_SECRET}).to_string();
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && text.contains("verified"),
        "standardwebhooks refused: {text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_requests_are_validated() {
    let e = env();
    let app = e.gateway().await;
    let post = |body: Value| app.client.post(app.url("/v1/payments")).bearer_auth(CENTRE_KEY).json(&body).send();
    let r = post(json!({"MaHoSo": "X-1", "SoTien": 0, "provider": "cash"})).await.unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["/SoTien", "/provider"]);
    let r = post(json!({"MaHoSo": "X-1", "SoTien": 100, "provider": "paygov", "PhiLePhi": [{"LoaiPhiLePhi": 2, "MaPhiLePhi": "a", "TenPhiLePhi": "b", "SoTien": 99}]})).await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        app.client
            .post(app.url("/v1/payments"))
            .bearer_auth(OPERATOR_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        app.client
            .get(app.url("/v1/payments/HCC241126NOSUCH01"))
            .bearer_auth(CENTRE_KEY)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_retries_a_transient_failure_inside_its_deadline_and_reports_a_dead_provider() {
    let e = env();
    let app = e.gateway().await;
    // Faults answer 204 with no body, so this posts directly rather than through `control`.
    let set = |n: u32, status: u16| {
        let url = format!("{}/_mock/paygov/faults", e.portal.url());
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"fail_next": n, "status": status}))
                .send()
                .await
                .unwrap()
        }
    };
    set(1, 503).await;
    let reference = create(&app, "paygov", 100_000).await;
    assert!(e.paygov.paygov.known(&reference), "the retried INIT reached the platform");
    set(1, 0).await;
    create(&app, "paygov", 100_000).await;
    // A provider that keeps failing: a clear 502 within the deadline.
    set(100, 503).await;
    let started = std::time::Instant::now();
    let r = app
        .client
        .post(app.url("/v1/payments"))
        .bearer_auth(CENTRE_KEY)
        .json(&json!({"MaHoSo": "X-1", "SoTien": 100, "provider": "paygov"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(9), "the deadline held");
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("did not answer"), "{v}");
    app.stop().await;
}
