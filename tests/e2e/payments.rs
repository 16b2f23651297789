//! Payments end to end: the gateway, mock-portal playing PayGov, mock-bank playing VNPAY and a
//! host-to-host bank, and mock-centre receiving the signed webhooks.

use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_mocks::centre::CentreState;
use hcc_signing::webhook::WebhookSecret;
use hcc_tests::*;
use serde_json::{Value, json};

/// The environment of these tests: the payment mocks and a mock centre.
pub(crate) fn env() -> PaymentEnv {
    payment_env("pay")
}

pub(crate) async fn create(app: &TestApp, provider: &str, amount: u64) -> String {
    let v = app.new_payment(provider, amount).await;
    assert_eq!(v["status"], "pending");
    assert!(v["payment_url"].as_str().unwrap().starts_with("http"));
    v["MaThamChieu"].as_str().unwrap().to_string()
}

/// Waits for `n` webhooks, then gives stragglers a moment, and checks there are exactly `n`.
pub(crate) async fn exactly_webhooks(state: &CentreState, n: u64) {
    eventually(&format!("{n} webhooks"), Duration::from_secs(20), || async {
        (state.counters().received >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = state.counters();
    assert_eq!((c.received, c.unique, c.bad_signatures), (n, n, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paygov_end_to_end_paid_once_with_one_signed_webhook() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    assert!(e.paygov.paygov.known(&reference), "INIT reached the platform");
    let r = e
        .paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(r["replies"][0]["MaLoi"], "00", "{r}");
    let p = app.payment(&reference).await;
    assert_eq!(p["status"], "paid");
    assert_eq!(p["provider_transaction"], r["MaGiaoDich"]);
    exactly_webhooks(&e.centre_state, 1).await;
    let w = &e.centre_state.received()[0];
    assert_eq!(w.body["type"], "payment.confirmed");
    assert!(w.body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", w.body);
    assert_eq!(w.body["data"]["MaThamChieu"], reference.as_str());
    assert_eq!(w.body["data"]["SoTien"], 100_000);
    assert_eq!(w.body["data"]["MaDonVi"], "000.00.22.H46");
    // The event went through a queue of its own, `payments`, delivered by the centre's webhook.
    let queues = json(app.queues(Key::Operator).await).await;
    let lanes: Vec<(&str, &str, u64)> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap(),
                q["destination"].as_str().unwrap(),
                q["delivered_total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(lanes.contains(&("payments", "centre", 1)), "{lanes:?}");
    assert!(
        lanes.iter().any(|(name, dest, _)| *name == "centre" && *dest == "centre"),
        "{lanes:?}"
    );
    // What the platform received: the receipt in full, as public clients send it.
    let init = e
        .paygov
        .paygov
        .inits()
        .into_iter()
        .find(|m| m["MaThamChieu"] == reference.as_str())
        .unwrap();
    assert_eq!(init["SoTien"], "100000");
    assert_eq!(init["MaNganHang"], "PAYMENT");
    assert_eq!(init["Ip"], "203.0.113.10");
    let receipt = &init["ThongTinBienLai"];
    for (k, v) in [
        ("MaDichVu", "2"),
        ("MaDonVi", "000.00.22.H46"),
        ("TenDonVi", "Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh"),
        ("MaHoSo", "000.00.22.H46-241125-0001"),
        ("MaTTHC", "1.004227"),
        ("TKThuHuong", "0011004123456"),
        ("MaNHThuHuong", "970436"),
        ("TenTKThuHuong", "VAN PHONG UBND TINH QUANG NINH"),
        ("HoTenNguoiNop", "Nguyễn Thị Lan"),
        ("SoCMNDNguoiNop", "022190000123"),
    ] {
        assert_eq!(receipt[k], v, "{k}");
    }
    assert_eq!(receipt["PhiLePhi"][0]["LoaiPhiLePhi"], "2");
    assert_eq!(receipt["PhiLePhi"][0]["SoTien"], "100000");
    // The identity number went to the platform and nowhere else.
    let stored = app.payment(&reference).await.to_string();
    assert!(!stored.contains("022190000123"), "{stored}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnpay_end_to_end_and_its_answer_codes() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "vnpay", 150_000).await;
    let url = app.payment(&reference).await["payment_url"].as_str().unwrap().to_string();
    assert!(
        url.contains("vnp_Amount=15000000") && url.contains("vnp_SecureHash=") && url.contains(&reference),
        "{url}"
    );
    let ipn_url = app.url("/v1/callbacks/vnpay/ipn");
    // Signature first, then order, then amount, then state.
    let r = e
        .vnpay_pay(json!({"TxnRef": reference, "amount_vnd": 150_000, "ipn_url": ipn_url, "tamper": true}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "97");
    let r = e
        .vnpay_pay(json!({"TxnRef": "HCC241126NOTFOUND", "amount_vnd": 150_000, "ipn_url": ipn_url}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "01");
    assert_eq!(app.payment(&reference).await["status"], "pending", "refusals change nothing");
    let r = e
        .vnpay_pay(json!({"TxnRef": reference, "amount_vnd": 150_000, "ipn_url": ipn_url}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "00");
    assert_eq!(app.payment(&reference).await["status"], "paid");
    let r = e
        .vnpay_pay(json!({"TxnRef": reference, "amount_vnd": 150_000, "ipn_url": ipn_url}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "02", "already confirmed");
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

/// The outcome the gateway gave each transaction of the document the mock bank sent.
pub(crate) fn outcomes(r: &Value) -> Vec<String> {
    outcomes_of(r, 0)
}

/// The outcomes of the `reply`-th copy the mock bank sent.
pub(crate) fn outcomes_of(r: &Value, reply: usize) -> Vec<String> {
    r["replies"][reply]["body"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|x| x["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_camt054_pays_and_only_a_matching_dbit_reversal_undoes_it() {
    let e = env();
    // A second configured bank with the same certificate: same signature, another payer.
    let app = spawn_app(
        e.settings(&[("HCC__BANKS__OTHERBANK__CERT", e.dir.join("bank.pem").to_string_lossy().into_owned())]),
        Workers::On,
    )
    .await;
    let reference = create(&app, "paygov", 200_000).await;
    let url = app.url("/v1/callbacks/banks/devbank/camt054");
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "bank_ref": "FT1"}))
        .await;
    assert_eq!(r["replies"][0]["status"], 200, "{r}");
    assert_eq!(outcomes(&r), ["paid"], "{r}");
    let p = app.payment(&reference).await;
    assert_eq!(
        (p["status"].as_str(), p["confirmed_by"].as_str()),
        (Some("paid"), Some("bank:devbank"))
    );
    exactly_webhooks(&e.centre_state, 1).await;
    // Version 02, reference in the remittance text, same bank transaction: a repeat.
    let r = e
        .bank_credit(
            json!({"reference": reference, "amount_vnd": 200_000, "url": url, "bank_ref": "FT1", "version": "02", "remittance": "ustrd"}),
        )
        .await;
    assert!(outcomes(&r)[0].starts_with("duplicate"), "{r}");
    // A plain debit is not a payment.
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "debit": true, "bank_ref": "DB1"}))
        .await;
    assert_eq!(outcomes(&r), ["ignored_debit"]);
    // None of these may un-pay the fee:
    // - a CRDT with RvslInd (ISO: the return of an earlier debit);
    // - a DBIT reversal of another amount;
    // - a DBIT reversal naming another bank transaction;
    // - a DBIT reversal from another bank.
    for (body, want, at) in [
        (
            json!({"reference": reference, "amount_vnd": 200_000, "reversal": true, "debit": false, "bank_ref": "FT1"}),
            "ignored_returned_debit",
            &url,
        ),
        (
            json!({"reference": reference, "amount_vnd": 20_000, "reversal": true, "bank_ref": "FT1"}),
            "reversal_refused_mismatch",
            &url,
        ),
        (
            json!({"reference": reference, "amount_vnd": 200_000, "reversal": true, "bank_ref": "FT2", "original_bank_ref": "FT2"}),
            "reversal_refused_mismatch",
            &url,
        ),
        (
            json!({"reference": reference, "amount_vnd": 200_000, "reversal": true, "bank_ref": "FT1"}),
            "reversal_refused_mismatch",
            &app.url("/v1/callbacks/banks/otherbank/camt054"),
        ),
    ] {
        let mut body = body;
        body["url"] = json!(at);
        let r = e.bank_credit(body.clone()).await;
        assert_eq!(outcomes(&r), [want], "{body}: {r}");
        let p = app.payment(&reference).await;
        assert_eq!(p["status"], "paid", "{body} left the fee paid");
        assert_eq!(p["provider_transaction"], "FT1");
    }
    // The bank's own reversal of that credit: DBIT, RvslInd, same amount, same transaction. Once.
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "reversal": true, "bank_ref": "FT1", "copies": 2}))
        .await;
    let mut seen: Vec<&str> = r["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["body"]["entries"][0]["outcome"].as_str().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ["reversal_duplicate", "reversed"], "{r}");
    assert_eq!(app.payment(&reference).await["status"], "reversed");
    exactly_webhooks(&e.centre_state, 2).await;
    let reversed: Vec<Value> = e
        .centre_state
        .received()
        .into_iter()
        .map(|w| w.body)
        .filter(|b| b["type"] == "payment.reversed")
        .collect();
    assert_eq!(reversed.len(), 1);
    assert_eq!(reversed[0]["data"]["MaThamChieu"], reference.as_str());
    // A reversed fee is not paid again by a repeat of the old credit.
    let r = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 200_000, "url": url, "bank_ref": "FT1"}))
        .await;
    assert!(outcomes(&r)[0].starts_with("duplicate"), "{r}");
    assert_eq!(app.payment(&reference).await["status"], "reversed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_entry_pays_each_fee_with_its_own_amount_wherever_the_reference_sits() {
    let e = env();
    let app = e.gateway().await;
    let url = app.url("/v1/callbacks/banks/devbank/camt054");
    let (a, b, c) = (
        create(&app, "paygov", 50_000).await,
        create(&app, "paygov", 70_000).await,
        create(&app, "paygov", 30_000).await,
    );
    // One entry for 150,000 with three transactions, v08 and then v02 (whose amounts sit in
    // AmtDtls): each fee is paid with its own amount, never the entry's total.
    let r = e
        .bank_credit(json!({"url": url, "transactions": [
            {"reference": a, "amount_vnd": 50_000, "bank_ref": "BT-A"},
            {"reference": b, "amount_vnd": 70_000, "bank_ref": "BT-B"},
            {"reference": c, "amount_vnd": 30_000, "bank_ref": "BT-C"}]}))
        .await;
    assert_eq!(outcomes(&r), ["paid", "paid", "paid"], "{r}");
    for x in [&a, &b, &c] {
        assert_eq!(app.payment(x).await["status"], "paid");
    }
    let (d, f) = (create(&app, "paygov", 40_000).await, create(&app, "paygov", 60_000).await);
    let r = e
        .bank_credit(json!({"url": url, "version": "02", "transactions": [
            {"reference": d, "amount_vnd": 40_000, "bank_ref": "BT-D"},
            {"reference": f, "amount_vnd": 60_000, "bank_ref": "BT-F"}]}))
        .await;
    assert_eq!(outcomes(&r), ["paid", "paid"], "{r}");
    // The reference on the second line of the remittance, cut across two lines, and in
    // structured remittance.
    for (i, remittance) in ["ustrd_multiline", "ustrd_split", "strd"].iter().enumerate() {
        let x = create(&app, "paygov", 10_000).await;
        let r = e
            .bank_credit(json!({"reference": x, "amount_vnd": 10_000, "url": url, "remittance": remittance, "bank_ref": format!("RM{i}")}))
            .await;
        assert_eq!(outcomes(&r), ["paid"], "{remittance}: {r}");
    }
    exactly_webhooks(&e.centre_state, 8).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_signing_like_dotnet_with_inclusive_c14n_and_rsa_sha512_is_accepted() {
    let e = env();
    let app = e.gateway().await;
    let url = app.url("/v1/callbacks/banks/devbank/camt054");
    for (i, (c14n, signature, digest)) in [
        ("inclusive", "rsa-sha512", "sha512"),
        ("inclusive", "rsa-sha256", "sha256"),
        ("exclusive", "rsa-sha512", "sha256"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = create(&app, "paygov", 25_000).await;
        // Signed by xmlsec1 from a template, not by our own code.
        let r = e
            .bank_credit(
                json!({"reference": x, "amount_vnd": 25_000, "url": url, "bank_ref": format!("NET{i}"),
                                "c14n": c14n, "signature": signature, "digest": digest}),
            )
            .await;
        assert_eq!(outcomes(&r), ["paid"], "{c14n} {signature} {digest}: {r}");
        let doc = r["document"].as_str().unwrap();
        assert!(doc.contains(if c14n == "inclusive" {
            "REC-xml-c14n-20010315"
        } else {
            "xml-exc-c14n"
        }));
        // Tampered after signing: 401 and nothing recorded.
        let y = create(&app, "paygov", 25_000).await;
        let r = e
            .bank_credit(
                json!({"reference": y, "amount_vnd": 25_000, "url": url, "bank_ref": format!("NETT{i}"),
                                "c14n": c14n, "signature": signature, "digest": digest, "tamper": true}),
            )
            .await;
        assert_eq!(r["replies"][0]["status"], 401, "{r}");
        assert_eq!(app.payment(&y).await["status"], "pending");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_copies_to_two_gateway_processes_make_one_webhook() {
    let e = env();
    let a = e.gateway().await;
    let b = e.gateway().await;
    let reference = create(&a, "paygov", 100_000).await;
    let r = e.paygov_pay(json!({"MaThamChieu": reference, "copies": 10, "callback_urls": [a.url("/v1/callbacks/paygov"), b.url("/v1/callbacks/paygov")]})).await;
    let replies = r["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 10);
    assert!(
        replies.iter().all(|x| x["MaLoi"] == "00"),
        "every copy gets the success answer: {r}"
    );
    // The same for VNPAY and the bank, concurrently, on both processes.
    let v = create(&b, "vnpay", 120_000).await;
    let ipn = e
        .vnpay_pay(json!({"TxnRef": v, "amount_vnd": 120_000, "ipn_url": a.url("/v1/callbacks/vnpay/ipn"), "copies": 10}))
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
    e.bank_credit(
        json!({"reference": k, "amount_vnd": 90_000, "url": b.url("/v1/callbacks/banks/devbank/camt054"), "copies": 10, "bank_ref": "FT9"}),
    )
    .await;
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
        .paygov_pay(json!({"MaThamChieu": reference, "tamper": true, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(r["replies"][0]["MaLoi"], "99", "{r}");
    // A tampered XML signature, and a certificate from another bank.
    let url = app.url("/v1/callbacks/banks/devbank/camt054");
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
    let r = json(app.paygov_callback(&json!(forged)).await).await;
    assert_eq!(r["MaLoi"], "99");
    // Garbage gets a problem, not a crash.
    let r = app.camt054("devbank", "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>").await;
    assert_eq!(r.status(), 400);
    let r = app.post_raw("/v1/callbacks/banks/nobank/camt054", Key::None, None, "<x/>").await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.payment(&reference).await["status"], "pending");
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
        .paygov_pay(json!({"MaThamChieu": reference, "amount": 10_000, "copies": 2, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
        .await;
    assert!(r["replies"].as_array().unwrap().iter().all(|x| x["MaLoi"] == "99"), "{r}");
    assert_eq!(app.payment(&reference).await["status"], "amount_mismatch");
    let v = create(&app, "vnpay", 50_000).await;
    let r = e
        .vnpay_pay(json!({"TxnRef": v, "amount_vnd": 40_000, "ipn_url": app.url("/v1/callbacks/vnpay/ipn")}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "04");
    assert_eq!(app.payment(&v).await["status"], "amount_mismatch");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.centre_state.counters().received, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_callback_is_found_by_reconciliation() {
    let e = env();
    let app = spawn_app(
        e.settings(&[
            // Two seconds, so that "now" can never pass for the INIT's time by accident.
            ("HCC__PAYGOV__RECONCILE_INTERVAL_SECS", "2".into()),
            ("HCC__PAYGOV__RECONCILE_MIN_AGE_SECS", "0".into()),
        ]),
        Workers::On,
    )
    .await;
    let reference = create(&app, "paygov", 75_000).await;
    let init_time = e.paygov.paygov.inits().last().unwrap()["ThoiGianGD"].as_str().unwrap().to_string();
    let r = e.paygov_pay(json!({"MaThamChieu": reference, "notify": false})).await;
    assert_eq!(r["sent"], 0);
    // The platform finds a payment only by its INIT's time: a QUERY with another time finds
    // nothing (so the gateway's reconciliation below only works if it repeats the original).
    let other_time = if init_time.ends_with('0') {
        "20241126000001"
    } else {
        "20241126000000"
    };
    let q = hcc_adapters::payments::paygov::query_message("HCC-DEV", &reference, other_time, "paygov-dev-secret");
    let answer = e.control(format!("{}/paygov/query", e.portal.url()), q).await;
    assert_eq!(answer["MaLoi"], "05", "{answer}");
    app.wait_payment(&reference, "paid").await;
    assert_eq!(app.payment(&reference).await["provider_transaction"], r["MaGiaoDich"]);
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
    e.paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
        .await;
    assert_eq!(app.payment(&reference).await["status"], "paid");
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
    e.paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
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
    let post = |body: Value| {
        let app = &app;
        async move { app.create_payment(&body).await }
    };
    let fields_of = |v: Value| -> Vec<String> {
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect()
    };
    let r = post(json!({"MaHoSo": "X-1", "SoTien": 0, "provider": "cash"})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        fields_of(r.json().await.unwrap()),
        vec!["/SoTien", "/provider", "/MaTTHC", "/TenTTHC", "/HoTenNguoiNop", "/PhiLePhi"]
    );
    // Each v2 field is parsed at the edge; every problem is named by its pointer.
    for (field, value, pointer) in [
        ("SoTien", json!("12a"), "/SoTien"),
        ("SoTien", json!(-5), "/SoTien"),
        ("MaDonVi", json!("999.99.99.X00"), "/MaDonVi"),
        ("SoCMNDNguoiNop", json!("12345"), "/SoCMNDNguoiNop"),
        ("SoCMNDNguoiNop", json!(22190000123_u64), "/SoCMNDNguoiNop"),
        ("IpNguoiNop", json!("not-an-ip"), "/IpNguoiNop"),
        ("HoTenNguoiNop", json!("Lan\nforged"), "/HoTenNguoiNop"),
        ("PhiLePhi", json!([]), "/PhiLePhi"),
        (
            "PhiLePhi",
            json!([{"LoaiPhiLePhi": 3, "MaPhiLePhi": "a", "TenPhiLePhi": "b", "SoTien": 100}]),
            "/PhiLePhi/0/LoaiPhiLePhi",
        ),
        (
            "PhiLePhi",
            json!([{"LoaiPhiLePhi": "2", "MaPhiLePhi": "a", "TenPhiLePhi": "b", "SoTien": 99}]),
            "/PhiLePhi",
        ),
        ("provider", json!("momo"), "/provider"),
        ("payer", json!({"HoTen": "x"}), "/payer"),
    ] {
        let mut body = payment_body("paygov", 100);
        body[field] = value;
        let r = post(body).await;
        assert_eq!(r.status(), 422, "{field}");
        let v: Value = r.json().await.unwrap();
        assert!(!v.to_string().contains("22190000123"), "the identity number is never echoed: {v}");
        assert!(fields_of(v).contains(&pointer.to_string()), "{field} -> {pointer}");
    }
    // Strings of digits are taken where centres send them.
    let mut body = payment_body("paygov", 100);
    body["SoTien"] = json!("100");
    body["PhiLePhi"][0]["LoaiPhiLePhi"] = json!("2");
    body["PhiLePhi"][0]["SoTien"] = json!("100");
    assert_eq!(post(body).await.status(), 201);
    // Per provider: PayGov's receipt names the payer; VNPAY needs the citizen's address.
    let mut body = payment_body("paygov", 100);
    body.as_object_mut().unwrap().remove("SoCMNDNguoiNop");
    assert_eq!(fields_of(post(body).await.json().await.unwrap()), vec!["/SoCMNDNguoiNop"]);
    let mut body = payment_body("vnpay", 100);
    body.as_object_mut().unwrap().remove("IpNguoiNop");
    body.as_object_mut().unwrap().remove("SoCMNDNguoiNop");
    assert_eq!(fields_of(post(body).await.json().await.unwrap()), vec!["/IpNguoiNop"]);
    // With a single agency configured, MaDonVi may be left out.
    let mut body = payment_body("paygov", 100);
    body.as_object_mut().unwrap().remove("MaDonVi");
    assert_eq!(post(body).await.status(), 201);
    assert_eq!(app.post_json("/v1/payments", Key::Operator, &json!({})).await.status(), 403);
    assert_eq!(app.get_payment("HCC241126NOSUCH01").await.status(), 404);
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
    let r = app.create_payment(&payment_body("paygov", 100)).await;
    assert_eq!(r.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(9), "the deadline held");
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("did not answer"), "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paygov_takes_a_bearer_token_and_either_answer_envelope() {
    let e = env();
    let switched = reqwest::Client::new()
        .post(format!("{}/_mock/paygov/config", e.portal.url()))
        .json(&json!({"wrapped_envelope": true, "require_bearer": "tok-9f8e7d"}))
        .send()
        .await
        .unwrap();
    assert!(switched.status().is_success());
    let app = spawn_app(e.settings(&[("HCC__PAYGOV__BEARER_TOKEN", "tok-9f8e7d".into())]), Workers::On).await;
    let reference = create(&app, "paygov", 30_000).await;
    assert_eq!(
        app.payment(&reference).await["payment_url"],
        format!("https://paygov.example.vn/pay/{reference}")
    );
    app.stop().await;
    // Without the token the platform refuses, and the centre hears it clearly.
    let app = e.gateway().await;
    let r = app.create_payment(&payment_body("paygov", 30_000)).await;
    assert_eq!(r.status(), 502);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_confirmation_is_recorded_and_never_pays() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 60_000).await;
    let r = e
        .paygov_pay(json!({"MaThamChieu": reference, "ma_loi": "24", "copies": 2, "callback_urls": [app.url("/v1/callbacks/paygov")]}))
        .await;
    for reply in r["replies"].as_array().unwrap() {
        assert_eq!(reply["MaLoi"], "24", "a failure is never answered 00: {r}");
    }
    assert_eq!(app.payment(&reference).await["status"], "failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.centre_state.counters().received, 0, "no webhook for a failure");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_paid_twice_leaves_the_first_standing_and_asks_the_centre_to_refund() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 100_000).await;
    let url = app.url("/v1/callbacks/paygov");
    let first = e.paygov_pay(json!({"MaThamChieu": reference, "callback_urls": [url]})).await;
    let second = e
        .paygov_pay(json!({"MaThamChieu": reference, "copies": 3, "callback_urls": [url]}))
        .await;
    assert_ne!(first["MaGiaoDich"], second["MaGiaoDich"]);
    assert!(second["replies"].as_array().unwrap().iter().all(|x| x["MaLoi"] == "00"), "{second}");
    let p = app.payment(&reference).await;
    assert_eq!(p["status"], "paid");
    assert_eq!(p["provider_transaction"], first["MaGiaoDich"], "the first payment stands");
    assert_eq!(p["duplicates"], 1, "three copies of one transaction are one duplicate");
    // The same fee credited by a bank as well is a third payment.
    let bank = e
        .bank_credit(json!({"reference": reference, "amount_vnd": 100_000, "url": app.url("/v1/callbacks/banks/devbank/camt054"), "bank_ref": "FT777"}))
        .await;
    assert_eq!(bank["replies"][0]["body"]["entries"][0]["outcome"], "paid_twice", "{bank}");
    exactly_webhooks(&e.centre_state, 3).await;
    let hooks = e.centre_state.received();
    let dups: Vec<&Value> = hooks.iter().map(|w| &w.body).filter(|b| b["type"] == "payment.duplicate").collect();
    assert_eq!(dups.len(), 2, "{hooks:?}");
    assert!(dups.iter().all(|d| d["data"]["standing_transaction"] == first["MaGiaoDich"]));
    assert!(dups.iter().any(|d| d["data"]["provider_transaction"] == second["MaGiaoDich"]));
    assert!(dups.iter().any(|d| d["data"]["confirmed_by"] == "bank:devbank"));
    // Operators see it in the audit log and the metrics.
    let audit: Value = eventually("the audit line", Duration::from_secs(10), || async {
        let a: Value = app.audit(Key::Operator).await.json().await.ok()?;
        a.to_string().contains("payment.duplicate").then_some(a)
    })
    .await;
    assert!(audit.to_string().contains(&reference));
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("state=\"duplicate\"") && l.trim_end().ends_with(" 2")),
        "{metrics}"
    );
    app.stop().await;
}

/// Loads the payment page as the citizen's browser would: the mock VNPAY checks the URL the
/// gateway signed (merchant, signature, `vnp_IpAddr`, `vnp_ExpireDate`) and records the order.
pub(crate) async fn open_vnpay_page(app: &TestApp, reference: &str) -> Value {
    let url = app.payment(reference).await["payment_url"].as_str().unwrap().to_string();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200, "the mock VNPAY refused the gateway's URL: {url}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vnpay_url_carries_the_citizens_address_and_an_expiry() {
    let e = env();
    let app = spawn_app(e.settings(&[("HCC__VNPAY__EXPIRE_MINUTES", "20".into())]), Workers::On).await;
    let reference = create(&app, "vnpay", 80_000).await;
    let url = app.payment(&reference).await["payment_url"].as_str().unwrap().to_string();
    let query: std::collections::HashMap<String, String> = reqwest::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["vnp_IpAddr"], "198.51.100.23", "the citizen's address, not the server's");
    let created = &query["vnp_CreateDate"];
    let expires = &query["vnp_ExpireDate"];
    let minutes = |t: &str| -> i64 {
        let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
        // Days are the same or the next; enough for a 20-minute difference.
        n(6, 8) * 1440 + n(8, 10) * 60 + n(10, 12)
    };
    assert_eq!(minutes(expires) - minutes(created), 20, "{created} -> {expires}");
    assert_eq!(&created[12..14], &expires[12..14]);
    let page = open_vnpay_page(&app, &reference).await;
    assert_eq!(page["code"], "00", "{page}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_vnpay_ipn_is_found_by_querydr_whose_signed_answer_is_checked() {
    let e = env();
    let app = spawn_app(
        e.settings(&[
            ("HCC__VNPAY__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__VNPAY__RECONCILE_MIN_AGE_SECS", "0".into()),
        ]),
        Workers::On,
    )
    .await;
    let control = |body: Value| e.control(format!("{}/_mock/vnpay/querydr", e.bank.url()), body);
    // The first answer is tampered with after signing: the gateway must not believe it. (It is
    // asked at ages 1 s, 5 s, 30 s, …: the second question gets the honest answer.)
    control(json!({"tamper": true, "times": 1})).await;
    let reference = create(&app, "vnpay", 90_000).await;
    let page = open_vnpay_page(&app, &reference).await;
    let r = e.vnpay_pay(json!({"TxnRef": reference, "lose_ipn": true})).await;
    assert_eq!(r["ipn_sent"], false, "{r}");
    eventually("querydr asked", Duration::from_secs(10), || async {
        let q: Value = reqwest::get(format!("{}/_mock/vnpay/queries", e.bank.url()))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!q.as_array()?.is_empty()).then_some(())
    })
    .await;
    assert_eq!(app.payment(&reference).await["status"], "pending", "a forged answer pays nothing");
    // The next, honest answer: paid, with VNPAY's transaction.
    app.wait_payment(&reference, "paid").await;
    assert_eq!(app.payment(&reference).await["provider_transaction"], r["vnp_TransactionNo"]);
    let queries: Value = reqwest::get(format!("{}/_mock/vnpay/queries", e.bank.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asked = &queries[0]["request"];
    assert_eq!(asked["vnp_Command"], "querydr");
    assert_eq!(
        asked["vnp_TransactionDate"], page["vnp_CreateDate"],
        "the payment's own create date"
    );
    assert_eq!(asked["vnp_IpAddr"], "203.0.113.10", "the server's address");
    exactly_webhooks(&e.centre_state, 1).await;
    // Another amount in a signed answer is never paid.
    control(json!({"amount_vnd": 1_000})).await;
    let other = create(&app, "vnpay", 40_000).await;
    open_vnpay_page(&app, &other).await;
    e.vnpay_pay(json!({"TxnRef": other, "lose_ipn": true})).await;
    app.wait_payment(&other, "amount_mismatch").await;
    app.stop().await;
}

/// The hostile review's replay: a genuine, signed success IPN with empty copies of the deciding
/// keys put in front. It must not turn a paid order into a failed one, nor record an empty
/// transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_ipn_with_injected_empty_parameters_is_refused() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "vnpay", 110_000).await;
    open_vnpay_page(&app, &reference).await;
    let ipn_url = app.url("/v1/callbacks/vnpay/ipn");
    let first = e.vnpay_pay(json!({"TxnRef": reference, "ipn_url": ipn_url})).await;
    assert_eq!(first["replies"][0]["RspCode"], "00", "{first}");
    for prefix in [
        "vnp_ResponseCode=&vnp_TransactionNo=",
        "vnp_ResponseCode=24&",
        "vnp_TxnRef=HCC241126OTHER001&",
        "junk=1&junk=2&",
    ] {
        let r = e
            .vnpay_pay(json!({"TxnRef": reference, "ipn_url": ipn_url, "query_prefix": prefix}))
            .await;
        assert_eq!(r["replies"][0]["RspCode"], "97", "{prefix}: {r}");
    }
    let p = app.payment(&reference).await;
    assert_eq!(p["status"], "paid");
    assert_eq!(p["provider_transaction"], first["vnp_TransactionNo"]);
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

/// Every page of `GET /v1/payments?query`, following `next_cursor` (bounded), as references.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/v1/payments?{query}{sep}limit=2&cursor={c}"),
            None => format!("/v1/payments?{query}{sep}limit=2"),
        };
        let (code, v) = status_json(send(app.get(&path, Key::Operator)).await).await;
        assert_eq!(code, 200, "{path}: {v}");
        let page = v["payments"].as_array().unwrap();
        assert!(page.len() <= 2, "{v}");
        for p in page {
            assert!(p["created_at"].is_string() && p["updated_at"].is_string(), "{p}");
            out.push(p["MaThamChieu"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

/// Creates a payment for dossier `ma`.
async fn create_for(app: &TestApp, ma: &str, provider: &str, amount: u64) -> String {
    let mut body = payment_body(provider, amount);
    body["MaHoSo"] = json!(ma);
    let r = app.create_payment(&body).await;
    assert_eq!(r.status(), 201);
    json(r).await["MaThamChieu"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_listed_under_each_status_by_dossier_and_since_with_their_history() {
    let e = env();
    let app = e.gateway().await;
    let paygov = app.url("/v1/callbacks/paygov");
    let bank = app.url("/v1/callbacks/banks/devbank/camt054");
    let pending = create_for(&app, "LIST-A", "paygov", 10_000).await;
    let paid = create_for(&app, "LIST-A", "paygov", 20_000).await;
    e.paygov_pay(json!({"MaThamChieu": paid, "callback_urls": [paygov]})).await;
    let failed = create_for(&app, "LIST-B", "paygov", 30_000).await;
    e.paygov_pay(json!({"MaThamChieu": failed, "ma_loi": "24", "callback_urls": [paygov]}))
        .await;
    let mismatch = create_for(&app, "LIST-B", "paygov", 40_000).await;
    e.paygov_pay(json!({"MaThamChieu": mismatch, "amount": 4_000, "callback_urls": [paygov]}))
        .await;
    let reversed = create_for(&app, "LIST-C", "paygov", 50_000).await;
    e.bank_credit(json!({"reference": reversed, "amount_vnd": 50_000, "url": bank, "bank_ref": "FT50"}))
        .await;
    e.bank_credit(json!({"reference": reversed, "amount_vnd": 50_000, "url": bank, "reversal": true, "bank_ref": "FT50"}))
        .await;
    let twice = create_for(&app, "LIST-C", "paygov", 60_000).await;
    e.paygov_pay(json!({"MaThamChieu": twice, "callback_urls": [paygov]})).await;
    e.paygov_pay(json!({"MaThamChieu": twice, "callback_urls": [paygov]})).await;

    for (status, want) in [
        ("pending", vec![pending.clone()]),
        ("paid", vec![twice.clone(), paid.clone()]),
        ("failed", vec![failed.clone()]),
        ("amount_mismatch", vec![mismatch.clone()]),
        ("reversed", vec![reversed.clone()]),
        ("duplicate", vec![twice.clone()]),
    ] {
        assert_eq!(listed(&app, &format!("status={status}")).await, want, "status {status}");
    }
    // All of them, newest change first, over three pages, no repeats.
    let all = listed(&app, "").await;
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all.iter().collect::<std::collections::BTreeSet<_>>().len(), 6, "{all:?}");
    assert_eq!(all[0], twice, "{all:?}");
    assert_eq!(listed(&app, "MaHoSo=LIST-B").await, vec![mismatch.clone(), failed.clone()]);
    assert_eq!(listed(&app, "MaHoSo=LIST-C&status=reversed").await, vec![reversed.clone()]);
    assert!(listed(&app, "MaHoSo=LIST-Z").await.is_empty());
    // `since` keeps what changed at or after the time: the last change, not creation.
    let p = app.payment(&twice).await;
    let since = p["updated_at"].as_str().unwrap().to_string();
    assert_eq!(listed(&app, &format!("since={since}")).await, vec![twice.clone()]);
    assert_eq!(listed(&app, "since=2000-01-01T00:00:00Z").await.len(), 6);
    assert!(listed(&app, "since=2999-01-01T00:00:00%2B07:00").await.is_empty());

    // The payment's story, oldest first.
    let events: Vec<String> = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["created", "paid", "webhook_queued", "duplicate", "webhook_queued"], "{p}");
    assert!(p["history"][0]["at"].as_str().unwrap().ends_with('Z'));
    let r = app.payment(&reversed).await;
    let events: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["created", "paid", "webhook_queued", "reversed", "webhook_queued"], "{r}");

    // Hostile queries are problems; the centre may not list.
    for q in [
        "status=lost",
        "status=",
        "since=yesterday",
        "since=2026-02-30T00:00:00Z",
        "limit=201",
        "limit=0",
        "limit=-1",
        "limit=99999999999999999999999",
        "cursor=x",
        "MaHoSo=a/b",
        "status=paid&status=failed",
    ] {
        let r = send(app.get(&format!("/v1/payments?{q}"), Key::Operator)).await;
        let p = problem(r, 400).await;
        assert!(p["errors"].is_array(), "{q}: {p}");
    }
    assert_eq!(send(app.get("/v1/payments", Key::Centre)).await.status(), 403);

    // The CLI pages through the same list.
    let url = app.address.clone();
    let (mismatch2, twice2) = (mismatch.clone(), twice.clone());
    tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| operator_cli(&url, args);
        let (ok, out, err) = run(&["payments", "--status", "amount_mismatch"]);
        assert!(
            ok && out.contains(&mismatch2) && out.contains("LIST-B") && !out.contains(&twice2),
            "{out}{err}"
        );
        let (ok, out, _) = run(&["payments", "--ma-ho-so", "LIST-C", "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!((ok, v.as_array().map(Vec::len)), (true, Some(2)), "{v}");
        let (ok, _, err) = run(&["payments", "--status", "lost"]);
        assert!(!ok && err.contains("HTTP 400"), "{err}");
    })
    .await
    .unwrap();
    app.stop().await;
}

/// Issue 22 item 4: the receipt's optional fields both public PayGov clients send. `MaDVC`,
/// `TenDVC`, `HuyenNguoiNop` and `TinhNguoiNop` reach `ThongTinBienLai` when given; without
/// `MaDVC` the platform gets `MaTTHC` + `.01` (HuanVu201's `DvcPaymentService.cs`), which the
/// mock platform requires non-empty. The district and province are never kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paygov_receipt_carries_the_public_service_and_the_payers_district() {
    let e = env();
    let app = e.gateway().await;
    let receipt_of = |reference: &str| {
        e.paygov
            .paygov
            .inits()
            .into_iter()
            .find(|m| m["MaThamChieu"] == reference)
            .map(|m| m["ThongTinBienLai"].clone())
            .unwrap_or_else(|| panic!("no INIT for {reference}"))
    };
    // All four given.
    let mut body = payment_body("paygov", 70_000);
    body["MaDVC"] = json!("1.004227.000.00.00.H46");
    body["TenDVC"] = json!("Đăng ký đất đai lần đầu");
    body["HuyenNguoiNop"] = json!("Huyện Vân Đồn");
    body["TinhNguoiNop"] = json!("Tỉnh Quảng Ninh");
    let r = app.create_payment(&body).await;
    assert_eq!(r.status(), 201);
    let given = json(r).await["MaThamChieu"].as_str().unwrap_or_default().to_string();
    let receipt = receipt_of(&given);
    for (k, v) in [
        ("MaDVC", "1.004227.000.00.00.H46"),
        ("TenDVC", "Đăng ký đất đai lần đầu"),
        ("HuyenNguoiNop", "Huyện Vân Đồn"),
        ("TinhNguoiNop", "Tỉnh Quảng Ninh"),
    ] {
        assert_eq!(receipt[k], v, "{k}");
    }
    // None given: MaDVC is MaTTHC + ".01"; the others are not sent.
    let absent = create(&app, "paygov", 30_000).await;
    let receipt = receipt_of(&absent);
    assert_eq!(receipt["MaDVC"], "1.004227.01");
    for k in ["TenDVC", "HuyenNguoiNop", "TinhNguoiNop"] {
        assert!(receipt.get(k).is_none(), "{k}: {receipt}");
    }
    // The district and province went to the platform and are not in the record.
    let stored = app.payment(&given).await.to_string();
    assert!(!stored.contains("Vân Đồn") && !stored.contains("Tỉnh Quảng Ninh"), "{stored}");
    // Given but empty: a 422 naming the field, nothing sent.
    let sent = e.paygov.paygov.inits().len();
    let mut body = payment_body("paygov", 70_000);
    body["HuyenNguoiNop"] = json!("  ");
    body["MaDVC"] = json!(12);
    let r = app.create_payment(&body).await;
    assert_eq!(r.status(), 422);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("/HuyenNguoiNop") && text.contains("/MaDVC"), "{text}");
    assert_eq!(e.paygov.paygov.inits().len(), sent);
    app.stop().await;
}
