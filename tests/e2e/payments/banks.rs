//! Banks' camt.054 end to end: a credit pays, only a matching DBIT reversal undoes it, batch entries pay each fee, a bank signing like .NET (inclusive C14N, RSA-SHA512) is accepted.

use super::*;

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
