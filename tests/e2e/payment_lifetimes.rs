//! Payments at the edges of their lives, end to end through the mocks and a real Redis:
//! cancelled VNPAY payments (each its own failure, though VNPAY numbers every one `0`),
//! reconciliation that never starves a newer payment behind abandoned ones, expiry, money that
//! arrives after it, and the configuration `config check` refuses.

use std::process::Command;
use std::time::Duration;

use hcc_adapters::payments::{new_reference, vn_timestamp};
use hcc_gateway::app::Workers;
use hcc_gateway::storage::ledger::{ListStatus, PaymentFilter, PaymentRecord, PaymentState};
use hcc_gateway::storage::{PaymentLedger, Store, now_ms};
use hcc_tests::*;
use serde_json::{Value, json};

use super::payments::{create, env, exactly_webhooks, open_vnpay_page};

/// The query string's value of `key`.
fn param(query: &str, key: &str) -> Option<String> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cancelled_vnpay_payments_are_both_failed_and_one_is_then_paid() {
    let e = env();
    let app = e.gateway().await;
    let ipn_url = app.url("/v1/callbacks/vnpay/ipn");
    let (a, b) = (create(&app, "vnpay", 120_000).await, create(&app, "vnpay", 130_000).await);
    for r in [&a, &b] {
        open_vnpay_page(&app, r).await;
        let cancel = e.vnpay_pay(json!({"TxnRef": r, "ipn_url": ipn_url, "response_code": "24"})).await;
        let query = cancel["ipn_query"].as_str().unwrap_or_default();
        assert_eq!(
            (param(query, "vnp_TransactionNo"), param(query, "vnp_TransactionStatus")),
            (Some("0".into()), Some("02".into())),
            "as real VNPAY sends a cancel: {cancel}"
        );
        assert_eq!(cancel["replies"][0]["RspCode"], "00", "{r}: a cancel of its own is taken: {cancel}");
        assert_eq!(app.payment(r).await["status"], "failed", "{r}");
    }
    // VNPAY sends the same IPN again: answered as already confirmed, nothing changes.
    let again = e.vnpay_pay(json!({"TxnRef": a, "ipn_url": ipn_url, "response_code": "24"})).await;
    assert_eq!(again["replies"][0]["RspCode"], "02", "{again}");
    // The citizen tries again and pays: the failure does not stand in the way.
    let paid = e.vnpay_pay(json!({"TxnRef": b, "ipn_url": ipn_url})).await;
    assert_eq!(paid["replies"][0]["RspCode"], "00", "{paid}");
    let p = app.payment(&b).await;
    assert_eq!(p["status"], "paid");
    assert_eq!(p["provider_transaction"], paid["vnp_TransactionNo"]);
    assert_eq!(app.payment(&a).await["status"], "failed");
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

/// A payment created `age` ago that the citizen never took to VNPAY.
fn abandoned(age: Duration) -> Result<PaymentRecord, String> {
    pending_record("vnpay", age, 100_000)
}

/// A pending payment of `provider` created `age` ago, as the ledger stores one.
pub(crate) fn pending_record(provider: &str, age: Duration, amount: u64) -> Result<PaymentRecord, String> {
    let created = now_ms() - age.as_millis() as i64;
    Ok(PaymentRecord {
        reference: new_reference(created / 1000).map_err(|e| e.to_string())?,
        ma_ho_so: "000.00.22.H46-241125-0600".into(),
        amount,
        provider: provider.into(),
        status: PaymentState::Pending,
        payment_url: String::new(),
        agency: "000.00.22.H46".into(),
        fees_json: "[]".into(),
        created_at: created,
        provider_created: vn_timestamp(created / 1000),
        provider_transaction: None,
        provider_time: None,
        confirmed_by: None,
        settled_at: None,
        duplicates: 0,
        updated_at: None,
        bank_refs: None,
        qr_payload: None,
        expires_at: None,
    })
}

async fn expired_refs(ledger: &PaymentLedger) -> Vec<String> {
    let filter = PaymentFilter {
        status: ListStatus::parse("expired"),
        ..PaymentFilter::default()
    };
    match ledger.list(&filter, 0, 2000).await {
        Ok(v) => v.into_iter().map(|p| p.reference).collect(),
        Err(e) => panic!("list: {e}"),
    }
}

/// How many `querydr` requests the mock VNPAY saw for each reference.
async fn queried(bank: &str) -> std::collections::HashMap<String, usize> {
    let q: Value = reqwest::get(format!("{bank}/_mock/vnpay/queries"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut n = std::collections::HashMap::new();
    for x in q.as_array().into_iter().flatten() {
        if let Some(r) = x["request"]["vnp_TxnRef"].as_str() {
            *n.entry(r.to_string()).or_insert(0) += 1;
        }
    }
    n
}

/// 600 abandoned payments (more than a round's batch of 500) are due before a newer one whose
/// IPN was lost. The newer one is still found paid by `querydr` within its schedule; the
/// abandoned ones, past VNPAY's lifetime and reported unknown (`91`), expire and are asked no
/// more; money that arrives later for one of them still pays it, audited as late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_payments_expire_and_never_starve_a_newer_one() {
    let e = env();
    // Seeded through the ledger the gateway uses, as if created 30 minutes ago: inside
    // reconcile_max_age_secs, past the 1-minute lifetime (the grace is 0).
    let ledger = match Store::redis(&redis_url(), 8, &e.prefix) {
        Ok(s) => s.ledger("payments"),
        Err(err) => panic!("redis: {err}"),
    };
    let mut old = Vec::new();
    for _ in 0..600 {
        let p = abandoned(Duration::from_secs(30 * 60)).unwrap_or_else(|err| panic!("{err}"));
        assert!(ledger.create_scheduled(&p, p.created_at + 1000).await.unwrap());
        old.push(p.reference);
    }
    let app = spawn_app(
        e.settings(&[
            ("HCC__VNPAY__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__VNPAY__RECONCILE_MIN_AGE_SECS", "1".into()),
            ("HCC__VNPAY__RECONCILE_MAX_AGE_SECS", "7200".into()),
            ("HCC__VNPAY__EXPIRE_MINUTES", "1".into()),
            ("HCC__PAYMENTS__EXPIRE_GRACE_MINUTES", "0".into()),
        ]),
        Workers::On,
    )
    .await;
    let newer = create(&app, "vnpay", 90_000).await;
    open_vnpay_page(&app, &newer).await;
    let lost = e.vnpay_pay(json!({"TxnRef": newer, "lose_ipn": true})).await;
    assert_eq!(lost["ipn_sent"], false, "{lost}");
    // First asked one second after creation, behind 600 payments due half an hour earlier.
    eventually("the newer payment paid by querydr", Duration::from_secs(40), || async {
        (app.payment(&newer).await["status"] == "paid").then_some(())
    })
    .await;
    assert_eq!(app.payment(&newer).await["provider_transaction"], lost["vnp_TransactionNo"]);
    let expired = eventually("600 expired", Duration::from_secs(40), || async {
        let v = expired_refs(&ledger).await;
        (v.len() >= old.len()).then_some(v)
    })
    .await;
    let mut expired = expired;
    expired.sort();
    old.sort();
    assert_eq!(expired, old, "the abandoned ones, and only they, expired");
    let first = app.payment(&old[0]).await;
    assert_eq!(first["status"], "expired");
    let events: Vec<&str> = first["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["event"].as_str())
        .collect();
    assert_eq!(events, ["created", "expired"], "{first}");

    // Money that arrives late: VNPAY's IPN for an expired payment pays it.
    let late = &old[7];
    let r = e
        .vnpay_pay(json!({"TxnRef": late, "amount_vnd": 100_000, "ipn_url": app.url("/v1/callbacks/vnpay/ipn")}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "00", "{r}");
    assert_eq!(app.payment(late).await["status"], "paid");
    exactly_webhooks(&e.centre_state, 2).await;
    let hooks = e.centre_state.received();
    assert!(
        hooks
            .iter()
            .any(|w| w.body["type"] == "payment.confirmed" && w.body["data"]["MaThamChieu"] == late.as_str()),
        "{:?}",
        hooks.iter().map(|w| &w.body).collect::<Vec<_>>()
    );
    let audit: Value = eventually("the late audit line", Duration::from_secs(10), || async {
        let a: Value = app.audit(Key::Operator).await.json().await.ok()?;
        a.to_string().contains("payment.paid_late").then_some(a)
    })
    .await;
    let line = audit
        .to_string()
        .split("payment.paid_late")
        .nth(1)
        .map(|rest| rest.chars().take(300).collect::<String>())
        .unwrap_or_default();
    assert!(line.contains(late.as_str()) && line.contains("late"), "{line}");
    // And a bank's credit for another expired one, through the camt.054 route.
    let late_credit = &old[8];
    let r = e
        .bank_credit(json!({"reference": late_credit, "amount_vnd": 100_000, "bank_ref": "FTLATE1",
            "url": app.url("/v1/callbacks/banks/devbank/camt054")}))
        .await;
    assert_eq!(super::payments::outcomes(&r), ["paid"], "{r}");
    let p = app.payment(late_credit).await;
    assert_eq!(
        (p["status"].as_str(), p["confirmed_by"].as_str()),
        (Some("paid"), Some("bank:devbank"))
    );
    exactly_webhooks(&e.centre_state, 3).await;
    eventually("the late bank audit line", Duration::from_secs(10), || async {
        let a: Value = app.audit(Key::Operator).await.json().await.ok()?;
        a.to_string()
            .split("payment.paid_late")
            .skip(1)
            .any(|rest| rest.chars().take(300).collect::<String>().contains(late_credit.as_str()))
            .then_some(())
    })
    .await;

    // An expired payment is asked no more: each abandoned one was asked exactly once.
    let asked = queried(&e.bank.url()).await;
    let counts: std::collections::BTreeSet<usize> = old.iter().map(|r| asked.get(r).copied().unwrap_or(0)).collect();
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [1], "asked once each, then expired");
    app.stop().await;
}

/// `hcc_payments_pending_overdue{provider}` on /metrics.
async fn overdue(app: &TestApp, provider: &str) -> u64 {
    let series = format!("hcc_payments_pending_overdue{{provider=\"{provider}\"}} ");
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}in\n{text}"))
}

/// Pending payments past VNPAY's lifetime (1 minute, no grace) and two rounds (1 s each, taken
/// as 30 s) that reconciliation has not got to yet are counted as overdue, and leave the count
/// when paid; one still within its lifetime, one past it but within the two rounds, and one
/// older than reconcile_max_age_secs (given up, alarmed apart), are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_payments_past_their_lifetime_are_counted_until_settled() {
    let e = env();
    let ledger = match Store::redis(&redis_url(), 2, &e.prefix) {
        Ok(s) => s.ledger("payments"),
        Err(err) => panic!("redis: {err}"),
    };
    // First asked in an hour: reconciliation leaves them alone during the test.
    let later = now_ms() + 3_600_000;
    let mut overdue_refs = Vec::new();
    for age in [
        Duration::from_secs(30 * 60),
        Duration::from_secs(40 * 60),
        Duration::from_secs(50 * 60),
    ] {
        let p = abandoned(age).unwrap_or_else(|err| panic!("{err}"));
        assert!(ledger.create_scheduled(&p, later).await.unwrap());
        overdue_refs.push(p.reference);
    }
    for age in [Duration::from_secs(10), Duration::from_secs(90), Duration::from_secs(3 * 3600)] {
        let p = abandoned(age).unwrap_or_else(|err| panic!("{err}"));
        assert!(ledger.create_scheduled(&p, later).await.unwrap());
    }
    let app = spawn_app(
        e.settings(&[
            ("HCC__VNPAY__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__VNPAY__RECONCILE_MIN_AGE_SECS", "1".into()),
            ("HCC__VNPAY__RECONCILE_MAX_AGE_SECS", "7200".into()),
            ("HCC__VNPAY__EXPIRE_MINUTES", "1".into()),
            ("HCC__PAYMENTS__EXPIRE_GRACE_MINUTES", "0".into()),
        ]),
        Workers::On,
    )
    .await;
    assert_eq!(overdue(&app, "vnpay").await, 3);
    assert_eq!(overdue(&app, "paygov").await, 0, "every reconciling provider is exported");
    let r = e
        .vnpay_pay(json!({"TxnRef": overdue_refs[1], "amount_vnd": 100_000, "ipn_url": app.url("/v1/callbacks/vnpay/ipn")}))
        .await;
    assert_eq!(r["replies"][0]["RspCode"], "00", "{r}");
    assert_eq!(app.payment(&overdue_refs[1]).await["status"], "paid");
    assert_eq!(overdue(&app, "vnpay").await, 2, "paid: no longer overdue");
    app.stop().await;
}

/// `hcc-gateway config check` with the development profile and these overrides: its exit
/// status and what it wrote to stderr.
pub(crate) fn config_check(vars: &[(&str, &str)]) -> (bool, String) {
    let bin = binary("hcc-gateway");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    let mut c = Command::new(bin);
    c.args(["config", "check"])
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local");
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap_or_else(|err| panic!("config check: {err}"));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn config_check_refuses_a_shared_ma_don_vi_and_vnpay_without_a_return_url_naming_each_key() {
    let (ok, err) = config_check(&[]);
    assert!(ok, "the development profile passes: {err}");
    let (ok, err) = config_check(&[("HCC__VNPAY__RETURN_URL", "")]);
    assert!(!ok && err.contains("vnpay.return_url"), "{err}");
    let second = [
        ("HCC__AGENCIES__UONG-BI__MA_DON_VI", "000.00.22.H46"),
        ("HCC__AGENCIES__UONG-BI__TEN_DON_VI", "Bo phan mot cua thanh pho Uong Bi"),
        ("HCC__AGENCIES__UONG-BI__TK_THU_HUONG", "0011004999999"),
        ("HCC__AGENCIES__UONG-BI__MA_NH_THU_HUONG", "970436"),
        ("HCC__AGENCIES__UONG-BI__TEN_TK_THU_HUONG", "UBND TP UONG BI"),
    ];
    let (ok, err) = config_check(&second);
    assert!(!ok && err.contains("agencies.uong-bi.ma_don_vi"), "{err}");
    let mut own = second;
    own[0].1 = "000.00.23.H46";
    let (ok, err) = config_check(&own);
    assert!(ok, "an agency with its own MaDonVi: {err}");
    // A reconciliation that stops before the lifetime and grace end could never expire one.
    let (ok, err) = config_check(&[
        ("HCC__VNPAY__RECONCILE_MAX_AGE_SECS", "600"),
        ("HCC__PAYMENTS__EXPIRE_GRACE_MINUTES", "30"),
    ]);
    assert!(!ok && err.contains("vnpay.reconcile_max_age_secs"), "{err}");
    let (ok, err) = config_check(&[("HCC__PAYMENTS__EXPIRE_GRACE_MINUTES", "100000")]);
    assert!(!ok && err.contains("payments.expire_grace_minutes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_is_a_status_the_list_takes() {
    let e = env();
    let app = spawn_app(e.settings(&[]), Workers::On).await;
    assert_eq!(send(app.get("/v1/payments?status=expired", Key::Operator)).await.status(), 200);
    assert_eq!(send(app.get("/v1/payments?status=lapsed", Key::Operator)).await.status(), 400);
    let doc: Value = send(app.get("/openapi.json", Key::None)).await.json().await.unwrap_or(Value::Null);
    let states = &doc["components"]["schemas"]["PaymentState"]["enum"];
    assert!(
        states.as_array().is_some_and(|a| a.iter().any(|s| s == "expired")),
        "the OpenAPI document lists the status: {states}"
    );
    app.stop().await;
}
