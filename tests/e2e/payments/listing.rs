//! Payment requests validated at the edge, and payments listed by status, dossier and time with their history.

use super::*;

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
