//! PayGov and VNPAY end to end: paid once with one signed webhook, their answer codes, INIT retries, bearer tokens, failures, the payment URL, querydr reconciliation, replayed IPNs, the receipt's fields.

use super::*;

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
    // The metrics count the payment's states by its provider.
    let metrics = app.metrics().await;
    for series in [
        "hcc_payments_total{provider=\"paygov\",state=\"pending\"} 1",
        "hcc_payments_total{provider=\"paygov\",state=\"paid\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series} is not on /metrics:\n{metrics}");
    }
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
