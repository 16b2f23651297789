//! A bank's money at the edges, end to end through mock-bank's signed camt.054: credits to
//! other accounts, re-sent statements without bank references, reversals that carry only the
//! original's references or none, and the unmatched list a finance officer works through.

use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_tests::*;
use serde_json::{Value, json};

use super::payments::{create, env, exactly_webhooks, outcomes, outcomes_of};

/// The agency account of `config/local.toml` (`agencies.*.tk_thu_huong`).
const OUR_ACCOUNT: &str = "0011004123456";
/// Another agency's account at the same bank.
const OTHER_ACCOUNT: &str = "0011009998887";

fn bank_url(app: &TestApp) -> String {
    app.url("/v1/callbacks/banks/devbank/camt054")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_to_another_agencys_account_pays_nothing_and_is_listed() {
    let e = env();
    // A second configured bank (same certificate) that names its NAPAS BIN: not the agency's.
    let app = spawn_app(
        e.settings(&[
            ("HCC__BANKS__OTHERBANK__CERT", e.dir.join("bank.pem").to_string_lossy().into_owned()),
            ("HCC__BANKS__OTHERBANK__BIN", "970415".into()),
        ]),
        Workers::On,
    )
    .await;
    let ours = create(&app, "paygov", 120_000).await;
    let theirs = create(&app, "paygov", 80_000).await;
    // One document, two agencies' accounts: the credit to ours pays; the one to another
    // agency's account that names our reference pays nothing.
    let r = e
        .bank_statement(json!({"url": bank_url(&app), "notifications": [
            {"account": OTHER_ACCOUNT, "entries": [{"reference": theirs, "amount_vnd": 80_000, "bank_ref": "FTOTHER1"}]},
            {"account": "0011-0041 23456", "entries": [{"reference": ours, "amount_vnd": 120_000, "bank_ref": "FTOURS1"}]},
        ]}))
        .await;
    assert_eq!(r["replies"][0]["status"], 200, "{r}");
    assert_eq!(outcomes_of(&r, 0), ["wrong_account", "paid"], "{r}");
    assert_eq!(app.payment(&theirs).await["status"], "pending");
    assert_eq!(app.payment(&ours).await["status"], "paid");
    let listed = app.unmatched_credits("?state=open").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let u = &listed[0];
    assert_eq!(
        (
            u["reason"].as_str(),
            u["bank"].as_str(),
            u["account"].as_str(),
            u["amount"].as_u64()
        ),
        (Some("wrong_account"), Some("devbank"), Some(OTHER_ACCOUNT), Some(80_000)),
        "{u}"
    );
    assert_eq!(u["MaThamChieu"], theirs.as_str());
    assert_eq!(u["bank_transaction"], "FTOTHER1");
    assert_eq!(u["state"], "open");
    // The same statement again lists nothing twice.
    e.bank_statement(json!({"url": bank_url(&app), "notifications": [
        {"account": OTHER_ACCOUNT, "entries": [{"reference": theirs, "amount_vnd": 80_000, "bank_ref": "FTOTHER1"}]},
    ]}))
    .await;
    assert_eq!(app.unmatched_credits("").await.len(), 1);
    // The right account at a bank whose BIN is not the agency's bank: still not ours.
    let r = e
        .bank_credit(json!({"reference": theirs, "amount_vnd": 80_000, "bank_ref": "FTBIN1",
            "url": app.url("/v1/callbacks/banks/otherbank/camt054")}))
        .await;
    assert_eq!(outcomes(&r), ["wrong_account"], "{r}");
    assert_eq!(app.payment(&theirs).await["status"], "pending");
    assert_eq!(app.unmatched_credits("?bank=otherbank").await.len(), 1);
    // Counted, and audited.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hcc_bank_unmatched_total{reason=\"wrong_account\"} 2"),
        "{}",
        metrics.lines().filter(|l| l.contains("unmatched")).collect::<Vec<_>>().join("\n")
    );
    let audit = app.get_json("/v1/audit", Key::Operator).await.to_string();
    assert!(audit.contains("payment.unmatched"), "{audit}");
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_without_bank_references_resent_in_a_statement_pays_once() {
    let e = env();
    let app = e.gateway().await;
    let reference = create(&app, "paygov", 150_000).await;
    let other = create(&app, "paygov", 60_000).await;
    let credit = json!({"reference": reference, "amount_vnd": 150_000, "refs": "none", "booking_date": "2026-12-06"});
    // Alone first: no AcctSvcrRef, no TxId anywhere; the very same document twice is one credit.
    let first = e
        .bank_statement(json!({"url": bank_url(&app), "copies": 2, "notifications": [{"account": OUR_ACCOUNT, "entries": [credit]}]}))
        .await;
    let mut seen = [outcomes_of(&first, 0), outcomes_of(&first, 1)].concat();
    seen.sort();
    assert_eq!(seen, ["duplicate (paid)", "paid"], "{first}");
    let paid = app.payment(&reference).await;
    assert!(
        paid["provider_transaction"].as_str().is_some_and(|t| t.starts_with("content:")),
        "{paid}"
    );
    // Then inside end-of-day statements, in another place, among others, twice.
    let eod = json!({"url": bank_url(&app), "notifications": [{"account": OUR_ACCOUNT, "entries": [
        {"reference": other, "amount_vnd": 60_000, "refs": "none", "booking_date": "2026-12-06"},
        {"reference": "TIEN NUOC THANG 11", "amount_vnd": 1_000, "refs": "entry", "bank_ref": "FTSMALL", "booking_date": "2026-12-06"},
        credit,
    ]}]});
    let r = e.bank_statement(eod.clone()).await;
    let seen = outcomes_of(&r, 0);
    assert_eq!(seen[0], "paid", "{r}");
    assert_eq!(seen[2], "possible_repeat", "{r}");
    let r = e.bank_statement(eod).await;
    let seen = outcomes_of(&r, 0);
    assert_eq!(seen[0], "possible_repeat", "{r}");
    assert_eq!(seen[2], "possible_repeat", "{r}");
    let again = app.payment(&reference).await;
    for k in ["status", "provider_transaction", "duplicates", "updated_at"] {
        assert_eq!(again[k], paid[k], "{k}: the payment did not change at the later documents");
    }
    let repeats: Vec<Value> = app
        .unmatched_credits("")
        .await
        .into_iter()
        .filter(|u| u["reason"] == "possible_repeat" && u["MaThamChieu"] == reference.as_str())
        .collect();
    assert_eq!(repeats.len(), 1, "one entry for a person, however often it comes: {repeats:?}");
    // Two payments confirmed (ours and the other), no payment.duplicate.
    exactly_webhooks(&e.centre_state, 2).await;
    let types: Vec<Value> = e.centre_state.received().into_iter().map(|w| w.body["type"].clone()).collect();
    assert!(types.iter().all(|t| t == "payment.confirmed"), "{types:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversals_match_by_the_originals_references_never_by_their_own() {
    let e = env();
    let app = e.gateway().await;
    let url = bank_url(&app);
    // A credit the bank identifies by its entry's AcctSvcrRef only.
    let a = create(&app, "paygov", 90_000).await;
    let r = e
        .bank_credit(json!({"reference": a, "amount_vnd": 90_000, "refs": "entry", "bank_ref": "FTA1", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["paid"], "{r}");
    // Its reversal: a new entry (AcctSvcrRef RVA1) whose TxDtls/Refs repeat the original's.
    let r = e
        .bank_credit(
            json!({"reference": a, "amount_vnd": 90_000, "reversal": true, "bank_ref": "RVA1", "original_bank_ref": "FTA1", "url": url}),
        )
        .await;
    assert_eq!(outcomes(&r), ["reversed"], "{r}");
    assert_eq!(app.payment(&a).await["status"], "reversed");
    // A credit and a reversal with no TxDtls/Refs at all: the reversal's own AcctSvcrRef is
    // its own; it matches by bank, reference, amount and currency.
    let b = create(&app, "paygov", 70_000).await;
    let r = e
        .bank_credit(json!({"reference": b, "amount_vnd": 70_000, "refs": "entry", "bank_ref": "FTB1", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["paid"], "{r}");
    let r = e
        .bank_credit(json!({"reference": b, "amount_vnd": 70_000, "reversal": true, "refs": "entry", "bank_ref": "RVB1", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["reversed"], "{r}");
    assert_eq!(app.payment(&b).await["status"], "reversed");
    // A reversal naming another credit of a paid fee matches nothing: kept, nothing changes.
    let c = create(&app, "paygov", 50_000).await;
    let r = e
        .bank_credit(json!({"reference": c, "amount_vnd": 50_000, "bank_ref": "FTC1", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["paid"], "{r}");
    let r = e
        .bank_credit(
            json!({"reference": c, "amount_vnd": 50_000, "reversal": true, "bank_ref": "RVC9", "original_bank_ref": "FTC9", "url": url}),
        )
        .await;
    assert_eq!(outcomes(&r), ["reversal_refused_mismatch"], "{r}");
    assert_eq!(app.payment(&c).await["status"], "paid");
    // And one naming no payment at all.
    let r = e
        .bank_credit(json!({"reference": "HCC261206AAAAAAAA", "amount_vnd": 10_000, "reversal": true, "bank_ref": "RVX1", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["unknown_reference"], "{r}");
    let listed = app.unmatched_credits("?state=open").await;
    let reasons: Vec<&str> = listed.iter().map(|u| u["reason"].as_str().unwrap_or_default()).collect();
    assert_eq!(reasons, ["unmatched_reversal", "unmatched_reversal"], "{listed:?}");
    assert!(listed.iter().all(|u| u["kind"] == "reversal"));
    // Confirmed a, b, c; reversed a, b.
    exactly_webhooks(&e.centre_state, 5).await;
    app.stop().await;
}

pub(crate) async fn assign(app: &TestApp, id: &str, reference: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/payments/unmatched/{id}/assign"),
        Key::Admin,
        &json!({"MaThamChieu": reference}),
    )
    .await
}

/// `hcc_bank_unmatched_open{reason}` on /metrics.
async fn open_unmatched(app: &TestApp, reason: &str) -> u64 {
    let series = format!("hcc_bank_unmatched_open{{reason=\"{reason}\"}} ");
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}in\n{text}"))
}

async fn assigning_unmatched_money_pays_once(backend: &str) {
    let e = env();
    let app = spawn_app(e.settings(&[("HCC__QUEUE__BACKEND", backend.into())]), Workers::On).await;
    let url = bank_url(&app);
    let fee = create(&app, "paygov", 300_000).await;
    // A transfer whose note lost the reference, and one of another amount.
    let r = e
        .bank_credit(json!({"reference": "LE PHI HO SO CCCD 022190000123", "amount_vnd": 300_000, "bank_ref": "FTN1", "remittance": "ustrd", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["no_reference"], "{r}");
    let r = e
        .bank_credit(json!({"reference": "LE PHI", "amount_vnd": 299_000, "bank_ref": "FTN2", "remittance": "ustrd", "url": url}))
        .await;
    assert_eq!(outcomes(&r), ["no_reference"], "{r}");
    let listed = app.unmatched_credits("?state=open").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(open_unmatched(&app, "no_reference").await, 2);
    assert_eq!(open_unmatched(&app, "amount_mismatch").await, 0, "every reason is exported");
    // The CLI lists them for the finance officer.
    let url = app.address.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || operator_cli(&url, &["unmatched", "--bank", "devbank"]))
        .await
        .unwrap();
    assert!(ok && out.contains("no_reference"), "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains("no_reference")).count(), 2, "{out}");
    assert!(!out.contains("022190000123"), "{out}");
    let text = serde_json::to_string(&listed).unwrap_or_default();
    assert!(!text.contains("022190000123"), "identity numbers are masked: {text}");
    let right = listed.iter().find(|u| u["amount"] == 300_000).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = listed.iter().find(|u| u["amount"] == 299_000).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Operators read; only admins act.
    let r = app
        .post_json(
            &format!("/v1/payments/unmatched/{right}/assign"),
            Key::Operator,
            &json!({"MaThamChieu": fee}),
        )
        .await;
    assert_eq!(r.status(), 403);
    // Another amount: 422, nothing changes.
    let r = assign(&app, &wrong, &fee).await;
    assert_eq!(r.status(), 422, "{:?}", r.text().await);
    assert_eq!(app.payment(&fee).await["status"], "pending");
    // The right one pays it, once.
    let r = assign(&app, &right, &fee).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let v = json(r).await;
    assert_eq!(
        (v["state"].as_str(), v["settled_with"].as_str()),
        (Some("assigned"), Some(fee.as_str()))
    );
    let p = app.payment(&fee).await;
    assert_eq!(
        (p["status"].as_str(), p["confirmed_by"].as_str()),
        (Some("paid"), Some("bank:devbank"))
    );
    assert_eq!(open_unmatched(&app, "no_reference").await, 1, "assigned: no longer open");
    let again = assign(&app, &right, &fee).await;
    assert_eq!(again.status(), 200, "repeating is harmless");
    assert_eq!(app.payment(&fee).await["updated_at"], p["updated_at"]);
    // The other one now cannot pay the paid fee either, even when asked right.
    let r = assign(&app, &wrong, &fee).await;
    assert_eq!(r.status(), 422);
    // Returned instead: once, then settled.
    let give_back = |id: String| {
        let app = &app;
        async move {
            app.post_json(
                &format!("/v1/payments/unmatched/{id}/return"),
                Key::Admin,
                &json!({"reason": "chuyển nhầm, hoàn lại người nộp"}),
            )
            .await
        }
    };
    assert_eq!(give_back(wrong.clone()).await.status(), 200);
    assert_eq!(give_back(wrong.clone()).await.status(), 200, "repeating is harmless");
    assert_eq!(open_unmatched(&app, "no_reference").await, 0, "returned: no longer open");
    assert_eq!(assign(&app, &wrong, &fee).await.status(), 409);
    assert_eq!(give_back(right.clone()).await.status(), 409, "an assigned credit is not returned");
    assert_eq!(
        app.post_json(
            "/v1/payments/unmatched/UFFFFFFFFFFFFFFFFFFFFFFFF/return",
            Key::Admin,
            &json!({"reason": "x"})
        )
        .await
        .status(),
        404
    );
    assert_eq!(app.unmatched_credits("?state=open").await.len(), 0);
    assert_eq!(app.unmatched_credits("?state=assigned").await.len(), 1);
    assert_eq!(app.unmatched_credits("?state=returned").await.len(), 1);
    let audit = app.get_json("/v1/audit", Key::Operator).await.to_string();
    assert_eq!(audit.matches("payment.unmatched_assign").count(), 1, "{audit}");
    assert_eq!(audit.matches("payment.unmatched_return").count(), 1, "{audit}");
    assert!(audit.contains("dev-admin"), "the acting key is named: {audit}");
    exactly_webhooks(&e.centre_state, 1).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigning_unmatched_money_pays_once_redis() {
    assigning_unmatched_money_pays_once("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigning_unmatched_money_pays_once_memory() {
    assigning_unmatched_money_pays_once("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_credit_for_a_paid_fee_is_listed_to_refund() {
    let e = env();
    let app = e.gateway().await;
    let url = bank_url(&app);
    let fee = create(&app, "paygov", 40_000).await;
    for bank_ref in ["FTP1", "FTP2"] {
        e.bank_credit(json!({"reference": fee, "amount_vnd": 40_000, "bank_ref": bank_ref, "url": url}))
            .await;
    }
    let listed = app.unmatched_credits("").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["reason"].as_str(), listed[0]["bank_transaction"].as_str()),
        (Some("already_paid"), Some("FTP2"))
    );
    // payment.confirmed and payment.duplicate.
    exactly_webhooks(&e.centre_state, 2).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
}

/// Issue 22 item 6: some banks write the narrative in `TxDtls/AddtlTxInf` or
/// `Ntry/AddtlNtryInf` instead of `RmtInf` (docs/bank-xml.md); the reference found there pays
/// the fee, in both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_in_the_additional_information_pays_the_fee() {
    let e = env();
    let app = e.gateway().await;
    let url = bank_url(&app);
    let mut paid = 0;
    for version in ["08", "02"] {
        for (i, remittance) in ["addtl_tx", "addtl_ntry"].into_iter().enumerate() {
            let fee = create(&app, "paygov", 60_000).await;
            let r = e
                .bank_credit(
                    json!({"reference": fee, "amount_vnd": 60_000, "bank_ref": format!("FTA{version}{i}"),
                    "version": version, "remittance": remittance, "url": url}),
                )
                .await;
            let doc = r["document"].as_str().unwrap_or_default();
            let field = if remittance == "addtl_tx" {
                "<AddtlTxInf>"
            } else {
                "<AddtlNtryInf>"
            };
            assert!(doc.contains(field) && !doc.contains(&format!("<EndToEndId>{fee}")), "{doc}");
            assert_eq!(outcomes_of(&r, 0), ["paid"], "{version} {remittance}: {r}");
            assert_eq!(app.payment(&fee).await["status"], "paid", "{version} {remittance}");
            paid += 1;
        }
    }
    exactly_webhooks(&e.centre_state, paid).await;
    assert!(app.unmatched_credits("").await.is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
}

/// Issue 22 item 5: a bank signing as Java does (Apache Santuario: exclusive C14N with an
/// `InclusiveNamespaces PrefixList`, here from mock-bank's xmlsec1 template, the root declaring
/// a namespace nothing uses). The gateway verifies it and pays; so does `xmlsec1 --verify`; the
/// same document with that one declaration changed is refused and pays nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_signed_with_an_inclusive_prefix_list_pays_and_its_namespaces_are_signed() {
    let e = env();
    let app = e.gateway().await;
    let fee = create(&app, "paygov", 45_000).await;
    // Built, not sent: first changed, then the original.
    let r = e
        .bank_credit(json!({"reference": fee, "amount_vnd": 45_000, "bank_ref": "FTJAVA1", "c14n": "exclusive_prefixlist"}))
        .await;
    let doc = r["document"].as_str().unwrap_or_default().to_string();
    assert!(doc.contains("PrefixList=\"ns2 #default\"") && doc.contains("xmlns:ns2="), "{doc}");
    let path = e.dir.join("java-signed.xml");
    let check = |bytes: &str| {
        std::fs::write(&path, bytes).unwrap();
        let root = e.dir.join("root.pem").display().to_string();
        std::process::Command::new("xmlsec1")
            .args(["--verify", "--trusted-pem", &root, &path.display().to_string()])
            .output()
            .map(|o| o.status.success())
            .unwrap_or_else(|err| panic!("cannot run xmlsec1: {err}"))
    };
    assert!(check(&doc), "xmlsec1 verifies the mock's document");
    let changed = doc.replacen("urn:example:mock-bank:jaxb", "urn:example:mock-bank:other", 1);
    assert!(!check(&changed), "xmlsec1 refuses the changed declaration");
    let refused = app.camt054("devbank", changed).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert_eq!(app.payment(&fee).await["status"], "pending");
    let ok = app.camt054("devbank", doc).await;
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    app.wait_payment(&fee, "paid").await;
    exactly_webhooks(&e.centre_state, 1).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
}

/// Entries kept before the open counts existed (no count hash, no `reason` field beside the
/// JSON) are counted once from the open index at the first read; settling one afterwards takes
/// its reason from the JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_counts_include_entries_kept_before_the_counts_existed() {
    use hcc_gateway::storage::ledger::unmatched::{UnmatchedFacts, UnmatchedState};
    use hcc_gateway::storage::{Store, now_ms};
    let prefix = unique_prefix();
    let ledger = Store::redis(&redis_url(), 2, &prefix).unwrap().ledger("payments");
    let facts = |id: &str, reason: &str| UnmatchedFacts {
        id: id.into(),
        bank: "devbank".into(),
        kind: "credit".into(),
        reason: reason.into(),
        detail: String::new(),
        account: None,
        amount: 10_000,
        currency: "VND".into(),
        booking_date: "2026-12-07".into(),
        bank_transaction: format!("FT{id}"),
        refs: Default::default(),
        reference: None,
        remittance: String::new(),
    };
    for (id, reason) in [("U1", "no_reference"), ("U2", "no_reference"), ("U3", "amount_mismatch")] {
        assert!(ledger.unmatched_put(&facts(id, reason), now_ms()).await.unwrap());
    }
    // As the data of a gateway from before the counts.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let base = format!("{prefix}:{{payments}}:");
    let _: () = redis::cmd("DEL")
        .arg(format!("{base}unmatched:open"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in ["U1", "U2", "U3"] {
        let _: () = redis::cmd("HDEL")
            .arg(format!("{base}unmatched:e:{id}"))
            .arg("reason")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let open = ledger.unmatched_open_by_reason().await.unwrap();
    assert_eq!(
        (open.get("no_reference"), open.get("amount_mismatch")),
        (Some(&2), Some(&1)),
        "{open:?}"
    );
    ledger
        .unmatched_settle("U1", UnmatchedState::Returned, "x", "dev-admin", now_ms())
        .await
        .unwrap();
    assert!(ledger.unmatched_put(&facts("U4", "amount_mismatch"), now_ms()).await.unwrap());
    let open = ledger.unmatched_open_by_reason().await.unwrap();
    assert_eq!(
        (open.get("no_reference"), open.get("amount_mismatch")),
        (Some(&1), Some(&2)),
        "{open:?}"
    );
}
