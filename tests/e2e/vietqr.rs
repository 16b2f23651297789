//! VietQR at the counter, end to end: the gateway makes a NAPAS QR per fee, mock-bank scans it
//! as a payer's app would and books the transfer, and its signed camt.054 pays the fee once.
//! The payload is judged by outside readers (`zbarimg` on the PNG, the npm `vietnam-qr-pay` on
//! the text) and by a CRC written here from the public algorithm, not the gateway's.

use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_gateway::storage::{Store, now_ms};
use hcc_tests::*;
use serde_json::{Value, json};

use super::bank_money::assign;
use super::payment_lifetimes::{config_check, pending_record};
use super::payments::{create, env, exactly_webhooks, outcomes};

/// The agency of `config/local.toml`: its account and its bank's NAPAS BIN (Vietcombank).
const OUR_ACCOUNT: &str = "0011004123456";
const OUR_BIN: &str = "970436";

/// CRC-16/CCITT-FALSE as the public notes write it (poly 0x1021, init 0xFFFF), for judging the
/// gateway's payloads without its own code; pinned by the public vectors below.
fn crc(bytes: &[u8]) -> String {
    let mut c: u32 = 0xFFFF;
    for b in bytes {
        c ^= u32::from(*b) << 8;
        for _ in 0..8 {
            c = if c & 0x8000 != 0 { (c << 1) ^ 0x1021 } else { c << 1 };
            c &= 0xFFFF;
        }
    }
    format!("{c:04X}")
}

#[test]
fn the_judges_crc_is_the_public_one() {
    assert_eq!(crc(b"00"), "2EC9");
    assert_eq!(crc(b"01"), "3EE8");
    let dynamic =
        "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN62200816test text string6304";
    assert_eq!(crc(dynamic.as_bytes()), "D9C6");
}

/// A gateway with VietQR on, and `extra`.
async fn vietqr_gateway(e: &PaymentEnv, extra: &[(&str, String)]) -> TestApp {
    let mut o = vec![("HCC__VIETQR__ENABLED", "true".to_string())];
    o.extend(extra.iter().cloned());
    spawn_app(e.settings(&o), Workers::On).await
}

fn bank_url(app: &TestApp) -> String {
    app.url("/v1/callbacks/banks/devbank/camt054")
}

/// Creates a VietQR payment; returns its reference and the 201's body.
async fn create_qr(app: &TestApp, amount: u64) -> (String, Value) {
    let v = app.new_payment("vietqr", amount).await;
    assert_eq!(v["status"], "pending", "{v}");
    let reference = v["MaThamChieu"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    (reference, v)
}

async fn get_bytes(app: &TestApp, path: &str, key: Key<'_>) -> (u16, String, String, Vec<u8>) {
    let r = send(app.get(path, key)).await;
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (status, ctype, cache) = (r.status().as_u16(), header("content-type"), header("cache-control"));
    (status, ctype, cache, r.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_payment_by_vietqr_is_paid_once_by_the_banks_credit() {
    let e = env();
    let app = vietqr_gateway(&e, &[]).await;
    let before = now_ms();
    let (reference, created) = create_qr(&app, 150_000).await;
    assert!(created.get("payment_url").is_none(), "a QR payment has no page: {created}");
    let payload = created["qr"]["payload"].as_str().unwrap_or_default().to_string();
    assert_eq!(created["qr"]["png"], format!("/v1/payments/{reference}/qr.png"));
    assert_eq!(created["qr"]["svg"], format!("/v1/payments/{reference}/qr.svg"));
    // 15 minutes from creation by default.
    let expires = hcc_gateway::timefmt::parse_rfc3339_ms(created["expires_at"].as_str().unwrap_or_default()).unwrap_or(0);
    assert!((before + 15 * 60_000..=now_ms() + 15 * 60_000).contains(&expires), "{created}");

    // The payload, field by field as the notes write it, and its CRC by the judge's own hand.
    let purpose = format!("{reference} LEPHI");
    let want_body = format!(
        "000201010212385{}0010A000000727{}0208QRIBFTTA530370454061500005802VN62{}0117{reference}08{:02}{purpose}6304",
        // 38: 00 (14) + 01 (4 + 10 + 4 + 13) + 02 (12): 57.
        7,
        format_args!("01270006{OUR_BIN}0113{OUR_ACCOUNT}"),
        4 + 17 + 4 + purpose.len(),
        purpose.len(),
    );
    assert_eq!(payload, format!("{want_body}{}", crc(want_body.as_bytes())));
    // The same read back: the GET shows what the 201 showed.
    let got = app.payment(&reference).await;
    assert_eq!(
        (got["provider"].as_str(), got["qr"]["payload"].as_str(), got["expires_at"].as_str()),
        (Some("vietqr"), Some(payload.as_str()), created["expires_at"].as_str()),
        "{got}"
    );

    // The images: right types, never cached, and the PNG decodes to exactly the payload.
    let (status, ctype, cache, png) = get_bytes(&app, &format!("/v1/payments/{reference}/qr.png"), Key::Centre).await;
    assert_eq!((status, ctype.as_str(), cache.as_str()), (200, "image/png", "no-store"));
    if let Some(decoded) = zbar_decode(&png) {
        assert_eq!(decoded, payload, "zbarimg reads the gateway's PNG");
    }
    let (status, ctype, cache, svg) = get_bytes(&app, &format!("/v1/payments/{reference}/qr.svg"), Key::Operator).await;
    assert_eq!((status, ctype.as_str(), cache.as_str()), (200, "image/svg+xml", "no-store"));
    assert!(String::from_utf8_lossy(&svg).contains("<svg"));
    // The npm library payers' tooling uses reads what the payment was created with.
    if let Some(judged) = vietqr_judge(&payload) {
        let field = |k: &str| judged[k].as_str().map(str::to_string);
        assert_eq!(
            (
                field("bank_bin"),
                field("account"),
                field("amount"),
                field("purpose"),
                field("bill_number")
            ),
            (
                Some(OUR_BIN.into()),
                Some(OUR_ACCOUNT.into()),
                Some("150000".into()),
                Some(purpose.clone()),
                Some(reference.clone())
            ),
            "vietnam-qr-pay reads what the payment was created with: {judged}"
        );
        assert_eq!(
            (judged["valid"].as_bool(), judged["crc_ok"].as_bool()),
            (Some(true), Some(true)),
            "{judged}"
        );
    }
    // Only a VietQR payment has a code; unknown and malformed references are 404 too; the admin
    // key is not a role of this route.
    let page = create(&app, "paygov", 50_000).await;
    for path in [
        format!("/v1/payments/{page}/qr.png"),
        format!("/v1/payments/{page}/qr.svg"),
        "/v1/payments/HCC241126ABCDEFGH/qr.png".into(),
        "/v1/payments/pending/qr.png".into(),
    ] {
        assert_eq!(get_bytes(&app, &path, Key::Centre).await.0, 404, "{path}");
    }
    assert_eq!(
        get_bytes(&app, &format!("/v1/payments/{reference}/qr.png"), Key::Admin).await.0,
        403
    );

    // The citizen scans and pays; the bank's statement line carries the note wrapped, as banks
    // write it. The credit pays the fee; the same document again changes nothing.
    let scan = json!({"payload": payload, "url": bank_url(&app), "note_prefix": "MBVCB.8812345", "bin": OUR_BIN});
    let r = e.vietqr_scan(scan.clone()).await;
    assert_eq!(outcomes(&r), ["paid"], "{r}");
    assert_eq!(r["decoded"]["amount"].to_string().trim_matches('"'), "150000", "{r}");
    let paid = app.payment(&reference).await;
    assert_eq!(
        (paid["status"].as_str(), paid["confirmed_by"].as_str()),
        (Some("paid"), Some("bank:devbank"))
    );
    let again = e
        .bank_credit(json!({"reference": purpose, "amount_vnd": 150_000, "account": OUR_ACCOUNT,
            "bank_ref": r["bank_ref"], "url": bank_url(&app), "remittance": "ustrd", "version": "08"}))
        .await;
    assert!(outcomes(&again)[0].starts_with("duplicate"), "{again}");
    exactly_webhooks(&e.centre_state, 1).await;
    let hook = &e.centre_state.received()[0].body;
    assert_eq!(
        (
            hook["type"].as_str(),
            hook["data"]["MaThamChieu"].as_str(),
            hook["data"]["provider"].as_str()
        ),
        (Some("payment.confirmed"), Some(reference.as_str()), Some("vietqr"))
    );
    // Paid, the code is no longer offered by the dashboard, but it stays readable.
    assert_eq!(
        get_bytes(&app, &format!("/v1/payments/{reference}/qr.png"), Key::Centre).await.0,
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_note_or_another_amount_waits_for_a_person_who_can_assign_it() {
    let e = env();
    let app = vietqr_gateway(&e, &[]).await;
    let (reference, created) = create_qr(&app, 200_000).await;
    let payload = created["qr"]["payload"].as_str().unwrap_or_default().to_string();
    // The citizen rewrote the note: no reference, nothing paid, a person sees it.
    let edited = e
        .vietqr_scan(json!({"payload": payload, "url": bank_url(&app), "edit_note": "chuyen tien le phi", "bank_ref": "FTEDIT1"}))
        .await;
    assert_eq!(outcomes(&edited), ["no_reference"], "{edited}");
    // Another amount with the reference kept: not paid either.
    let short = e
        .vietqr_scan(json!({"payload": payload, "url": bank_url(&app), "amount_vnd": 20_000, "bank_ref": "FTSHORT1"}))
        .await;
    assert_eq!(outcomes(&short), ["amount_mismatch"], "{short}");
    assert_eq!(app.payment(&reference).await["status"], "pending");
    let open = app.unmatched_credits("?state=open").await;
    let reasons: Vec<&str> = open.iter().filter_map(|u| u["reason"].as_str()).collect();
    assert_eq!(reasons.len(), 2, "{open:?}");
    assert!(
        reasons.contains(&"no_reference") && reasons.contains(&"amount_mismatch"),
        "{open:?}"
    );
    let edited_id = open
        .iter()
        .find(|u| u["reason"] == "no_reference")
        .and_then(|u| u["id"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        open.iter().find(|u| u["reason"] == "no_reference").map(|u| u["amount"].clone()),
        Some(json!(200_000))
    );
    // The finance officer recognises the edited transfer: it pays the fee, once.
    let r = assign(&app, &edited_id, &reference).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(app.payment(&reference).await["status"], "paid");
    // Assigning it again changes nothing.
    assert_eq!(assign(&app, &edited_id, &reference).await.status(), 200);
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_bank_refuses_a_code_a_payers_app_would_refuse() {
    let e = env();
    let app = vietqr_gateway(&e, &[]).await;
    let (_, created) = create_qr(&app, 75_000).await;
    let payload = created["qr"]["payload"].as_str().unwrap_or_default().to_string();
    // One digit of the CRC changed: the app refuses it and nothing reaches the gateway.
    let last = payload.chars().last().unwrap_or('0');
    let flipped = format!("{}{}", &payload[..payload.len() - 1], if last == 'A' { 'B' } else { 'A' });
    let refused = e.vietqr_scan(json!({"payload": flipped, "url": bank_url(&app)})).await;
    assert!(
        refused["error"].as_str().is_some_and(|m| m.to_lowercase().contains("crc")),
        "{refused}"
    );
    // A code for another bank is not this bank's to pay.
    let other = e.vietqr_scan(json!({"payload": payload, "bin": "970415"})).await;
    assert!(other["error"].is_string(), "{other}");
    assert!(app.unmatched_credits("").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banks_silence_expires_a_qr_and_a_late_credit_still_pays_it() {
    let e = env();
    let ledger = match Store::redis(&redis_url(), 8, &e.prefix) {
        Ok(s) => s.ledger("payments"),
        Err(err) => panic!("redis: {err}"),
    };
    let old = pending_record("vietqr", Duration::from_secs(10 * 60), 90_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(ledger.create_scheduled(&old, old.created_at + 1000).await.unwrap_or(false));
    let app = vietqr_gateway(
        &e,
        &[
            ("HCC__VIETQR__EXPIRE_MINUTES", "1".into()),
            ("HCC__VIETQR__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__PAYMENTS__EXPIRE_GRACE_MINUTES", "0".into()),
        ],
    )
    .await;
    // A fresh one is inside its lifetime and stays pending.
    let (fresh, _) = create_qr(&app, 30_000).await;
    app.wait_payment(&old.reference, "expired").await;
    assert_eq!(app.payment(&fresh).await["status"], "pending");
    // The transfer was made in time; the bank reports it late. It pays, and the centre hears.
    let r = e
        .bank_credit(json!({"reference": format!("{} LEPHI", old.reference), "amount_vnd": 90_000,
            "account": OUR_ACCOUNT, "url": bank_url(&app), "remittance": "ustrd", "version": "08"}))
        .await;
    assert_eq!(outcomes(&r), ["paid"], "{r}");
    assert_eq!(app.payment(&old.reference).await["status"], "paid");
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

#[test]
fn config_check_names_a_label_too_long_and_a_bank_without_a_bin() {
    let (ok, stderr) = config_check(&[("HCC__VIETQR__ENABLED", "true")]);
    assert!(ok, "the development profile takes VietQR: {stderr}");
    let (ok, stderr) = config_check(&[
        ("HCC__VIETQR__ENABLED", "true"),
        ("HCC__VIETQR__LABEL", "Thanh toán lệ phí"),
        ("HCC__AGENCIES__QUANG-NINH__MA_NH_THU_HUONG", "VCB"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("vietqr.label") && stderr.contains("Thanh toan le phi"), "{stderr}");
    assert!(stderr.contains("agencies.quang-ninh.ma_nh_thu_huong"), "{stderr}");
    // VietQR off: the same label and bank are nobody's business.
    let (ok, stderr) = config_check(&[
        ("HCC__VIETQR__ENABLED", "false"),
        ("HCC__VIETQR__LABEL", "Thanh toán lệ phí"),
        ("HCC__AGENCIES__QUANG-NINH__MA_NH_THU_HUONG", "VCB"),
    ]);
    assert!(ok, "{stderr}");
}

/// The counter's view: the dashboard draws a pending payment's code with its amount, agency and
/// time left; and `hcc-gateway payments qr` draws it in a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_shows_the_code_in_the_dashboard_and_the_terminal() {
    let e = env();
    let app = vietqr_gateway(&e, &[]).await;
    let (reference, _) = create_qr(&app, 150_000).await;
    let config = json!({
        "base": app.address,
        "key": OPERATOR_KEY,
        "reference": reference,
        "amount_text": "150.000",
        "ma_don_vi": "000.00.22.H46",
        "shot": super::dashboard::artifacts().join("payment-vietqr.png").to_string_lossy(),
    });
    super::dashboard::browser("qr.mjs", vec![config.to_string()]).await;

    let url = app.address.clone();
    let paygov = create(&app, "paygov", 10_000).await;
    let out = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| operator_cli(&url, args);
        [
            run(&["payments", "qr", &reference]),
            run(&["payments", "qr", &paygov]),
            run(&["payments", "qr", "../../v1/queues"]),
        ]
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, text, err) = &out[0];
    assert!(ok, "{err}");
    assert!(text.contains("▀") || text.contains("▄"), "a drawing: {text}");
    assert!(
        text.contains("150000 VND") && text.contains("000.00.22.H46") && text.contains("left"),
        "{text}"
    );
    let (ok, _, err) = &out[1];
    assert!(!ok && err.contains("only VietQR payments"), "{err}");
    let (ok, _, err) = &out[2];
    assert!(!ok && err.contains("is not a MaThamChieu"), "{err}");
    app.stop().await;
}
