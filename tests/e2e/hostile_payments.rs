//! The hostile review's payment attacks, replayed over real HTTP against a gateway on a Redis
//! backend, with mock-portal playing PayGov and mock-bank playing VNPAY and a host-to-host bank
//! (issue 10: defects 7 first, second and fourth bullets, 9, and 10 first bullet). Each test
//! states the attack, the answer it now gets, and, where nothing may change, compares every
//! Redis key under the test's prefix (`DUMP`, byte for byte) before and after.
//!
//! Checksums and signatures of hand-made messages are computed here from the joined strings
//! written out in full, never with the adapter's code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_tests::*;
use serde_json::{Value, json};

const PAYGOV_SECRET: &str = "paygov-dev-secret";
const PROBLEMS: &str = "https://hcc-gateway.dev/problems/";

fn env() -> PaymentEnv {
    payment_env("hostile")
}

/// The INIT deadline these tests count on when the platform is made slow.
fn deadline() -> [(&'static str, String); 1] {
    [("HCC__PAYGOV__INIT_DEADLINE_MS", "3000".into())]
}

fn key_names(s: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    s.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
}

/// The audit trail is written in the background a moment after a request; it is the one place
/// a refused request may leave a line. Waits until the store stops changing (bounded), so that
/// a "before" snapshot holds everything the set-up wrote.
async fn settled(prefix: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut last = store_snapshot(prefix).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = store_snapshot(prefix).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the store under {prefix} never stopped changing");
}

/// Asserts a problem+json answer of `status` and problem `type` slug; returns its body.
async fn problem(r: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "{:?}", r.headers());
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], format!("{PROBLEMS}{slug}"), "{v}");
    v
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vnpay_hmac(data: &str) -> String {
    hex(&hcc_signing::hmac_sha512(VNPAY_SECRET.as_bytes(), data.as_bytes()).unwrap())
}

/// A PayGov confirmation built by hand: `joined` is the checksum string written out in the
/// notes' field order, secret last; `fields` the same values as JSON.
async fn paygov_confirm(app: &TestApp, fields: Value, joined: &str) -> Value {
    let mut body = fields;
    body["MaXacThuc"] = json!(hcc_signing::sha256_hex(joined.as_bytes()));
    let r = app.paygov_callback(&body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A VNPAY IPN built by hand: `hashed` is the signed string (sorted, form-encoded), sent as the
/// query with the hash appended.
async fn vnpay_ipn(app: &TestApp, hashed: &str) -> Value {
    let r = app.vnpay_ipn(&format!("{hashed}&vnp_SecureHash={}", vnpay_hmac(hashed))).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Defect 7, second bullet: references are checked by shape before any look-up.

/// The attack: `GET /v1/payments/pending` read the internal pending index (`pay:pending`, a
/// sorted set beside the `pay:{ref}` hashes) and answered 503; callbacks naming `pending` did
/// the same look-up. Now every malformed reference is "no payment" without a look-up: 404 for
/// the API, `99` "MaThamChieu is missing or invalid" for PayGov, `01` for VNPAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payment_references_never_reach_the_store() {
    let e = env();
    let app = e.quiet_gateway(&deadline()).await;
    let reference = app.new_payment_reference("paygov", 100_000).await;
    let before = settled(&e.prefix).await;
    assert!(!before.is_empty(), "the payment is stored under the test's prefix");
    for bad in [
        "pending",
        "PENDING",
        "hcc241126abcdefgh",
        &reference.to_lowercase(),
        &reference[..16],
        &format!("{reference}X"),
        "HCC241126ABCDEFG0",
        "..%2Fpending",
        "pay%3Apending",
        &"H".repeat(5000),
    ] {
        let r = send(app.get(&format!("/v1/payments/{bad}"), Key::Operator)).await;
        let v = problem(r, 404, "not-found").await;
        assert_eq!(v["detail"], "no payment with this MaThamChieu", "{bad}");
    }
    // An unknown reference of the right shape gets the very same answer, after a look-up.
    let (status, v) = status_json(app.get_payment("HCC241126ABCDEFGH").await).await;
    assert_eq!((status, v["detail"].as_str()), (404, Some("no payment with this MaThamChieu")));

    // PayGov: a confirmation whose checksum holds (whoever holds the secret) naming `pending`.
    let time = "20241126133005";
    let fields = json!({"LoaiBanTin": "PAYMENT", "MaLoi": "00", "MaDoiTac": "HCC-DEV", "MaThamChieu": "pending",
        "SoTien": "100000", "MaTienTe": "VND", "MaGiaoDich": "PG1", "MaNganHang": "VCB", "ThoiGianGD": time,
        "ThongTinGiaoDich": "Thanh toan le phi"});
    let joined = format!("PAYMENT|00|HCC-DEV|pending|100000|VND|PG1|VCB|{time}|Thanh toan le phi|{PAYGOV_SECRET}");
    let reply = paygov_confirm(&app, fields, &joined).await;
    assert_eq!(reply["MaLoi"], "99", "{reply}");
    assert_eq!(
        reply["MoTaLoi"], "MaThamChieu is missing or invalid",
        "refused by shape, not a storage error: {reply}"
    );

    // VNPAY: a signed IPN for the order `pending`.
    let hashed = "vnp_Amount=10000000&vnp_BankCode=NCB&vnp_OrderInfo=Thanh+toan&vnp_PayDate=20241126133505\
        &vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=14123456&vnp_TransactionStatus=00&vnp_TxnRef=pending";
    let reply = vnpay_ipn(&app, hashed).await;
    assert_eq!(reply["RspCode"], "01", "order not found, not a storage error (99): {reply}");

    assert_eq!(settled(&e.prefix).await, before, "nothing stored changed");
    let (status, v) = status_json(app.get_payment(&reference).await).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("pending")));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Defect 7, first bullet: fee lines are summed with checked arithmetic.

/// The largest fee lines the edge takes cannot overflow (each at most 10^12 đồng, at most 50
/// lines); a total that does not match, or lines beyond the bounds, are a 422 naming the field,
/// and nothing reaches the store or the platform. (The overflow itself is unit-tested on
/// `fee_total` in `gateway/src/http/payments.rs`: the edge's bounds keep it out of reach here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_lines_at_the_limits_are_refused_without_wrapping() {
    let e = env();
    let app = e.quiet_gateway(&deadline()).await;
    let before = settled(&e.prefix).await;
    let inits = e.paygov_inits();
    let line = |amount: Value| json!({"LoaiPhiLePhi": "2", "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí", "SoTien": amount});
    let cases = [
        // 50 lines of the largest amount (digit strings): 5 × 10^13, which is not SoTien.
        (json!(vec![line(json!("1000000000000")); 50]), json!("1000000000000"), "/PhiLePhi"),
        // Two lines whose u64 sum would wrap to 0 if they were taken: refused line by line.
        (
            json!([line(json!("18446744073709551615")), line(json!("1"))]),
            json!("1"),
            "/PhiLePhi/0/SoTien",
        ),
        (json!([line(json!(u64::MAX)), line(json!(1))]), json!(1), "/PhiLePhi/0/SoTien"),
        (json!(vec![line(json!(1)); 51]), json!(51), "/PhiLePhi"),
        (json!([line(json!("1000000000001"))]), json!("1000000000001"), "/SoTien"),
    ];
    for (fees, total, field) in cases {
        let mut body = payment_body("paygov", 1);
        body["PhiLePhi"] = fees;
        body["SoTien"] = total;
        let v = problem(app.create_payment(&body).await, 422, "validation").await;
        let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().filter_map(|x| x["field"].as_str()).collect();
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    assert_eq!(e.paygov_inits(), inits, "the platform heard nothing");
    assert_eq!(settled(&e.prefix).await, before, "nothing stored changed");
    // The largest amount the edge takes, as one line or split, is taken.
    let mut body = payment_body("paygov", 1);
    body["SoTien"] = json!("1000000000000");
    body["PhiLePhi"] = json!([line(json!("999999999999")), line(json!("1"))]);
    assert_eq!(app.create_payment(&body).await.status(), 201);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Defect 7, fourth bullet: MaHoSo.

/// The attack: dossier codes `..`, `.`, `a/b`, `../../x` or `---` were taken and became
/// ordering keys, portal look-ups and payment receipts. Now they are a 422 naming `/MaHoSo`
/// (or the path's `MaHoSo`), nothing is queued, and every code shape provinces issue is still
/// taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dossier_codes_refuse_separators_dot_segments_and_codes_without_letters() {
    let e = env();
    // The portal is configured (so dossiers are taken) but no worker delivers: what is taken
    // stays queued where the snapshot sees it.
    let app = spawn_app(e.settings(&[("HCC__DVCQG__BASE_URL", e.portal.url())]), Workers::Off).await;
    let before = settled(&e.prefix).await;
    let post = |path: &str, body: Value| {
        send(
            app.post(path, Key::Centre)
                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                .json(&body),
        )
    };
    for bad in [".", "..", "../../admin", "000.00.22.H46/241125/0001", "a\\b", "---", "...", "_"] {
        let v = problem(post("/v1/dossiers", dossier(bad, 1)).await, 422, "validation").await;
        assert_eq!(v["errors"][0]["field"], "/MaHoSo", "{bad}: {v}");
        let mut pay = payment_body("paygov", 100_000);
        pay["MaHoSo"] = json!(bad);
        let v = problem(app.create_payment(&pay).await, 422, "validation").await;
        assert_eq!(v["errors"][0]["field"], "/MaHoSo", "{bad}: {v}");
    }
    // In the path: a code without letters, and an encoded separator or dot segment.
    for path in ["---", "...", "a%2Fb", "a%5Cb", "%2E%2E%2Fx"] {
        // actix decodes `%2F` in a path segment, so `a%2Fb` arrives as `a/b` and is refused.
        let r = post(&format!("/v1/dossiers/{path}/progress"), progress("x", 4, 1)).await;
        problem(r, 422, "validation").await;
    }
    assert_eq!(settled(&e.prefix).await, before, "nothing was queued or stored");
    let stats = app.handle.queue.stats("dvcqg", hcc_gateway::storage::now_ms()).await.unwrap();
    assert_eq!(stats.ready, 0);
    // Every form provinces' software issues stays valid.
    for ok in [
        "000.00.22.H46-241125-0001",
        "H46.22.08-241126-0001",
        "G22.386-241125-000123",
        "000.00.01.H01_241125_0001",
        "HS-2024-001",
        "QN241125000001",
    ] {
        assert_eq!(post("/v1/dossiers", dossier(ok, 1)).await.status(), 202, "{ok}");
        assert_eq!(
            post(&format!("/v1/dossiers/{ok}/progress"), progress(ok, 2, 1)).await.status(),
            202,
            "{ok}"
        );
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Defect 9: outbound safety.

/// A listener that counts connections and answers each with an empty 200: the attacker's
/// server, which must never hear from the gateway.
async fn attacker() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let _ = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 56\r\nConnection: close\r\n\r\n{\"MaLoi\":\"00\",\"UrlThanhToan\":\"https://attacker.example/\"}")
                .await;
        }
    });
    (format!("http://{addr}"), hits)
}

/// The attack: the platform's INIT endpoint (or whatever sits in front of it) answers
/// `302 Location: <attacker>`; a client that follows it re-sends the INIT (receipt, payer's
/// identity number, bearer token) there and believes the attacker's answer. Now the redirect is
/// not followed: the centre gets 502 upstream-failed, the payment is recorded failed with no
/// payment URL, and the attacker hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_the_payment_platform_is_never_followed() {
    let e = env();
    let (evil, hits) = attacker().await;
    let app = e.quiet_gateway(&deadline()).await;
    e.paygov_config(json!({"init_redirect": format!("{evil}/steal")})).await;
    let before_inits = e.paygov_inits();
    let v = problem(app.create_payment(&payment_body("paygov", 100_000)).await, 502, "upstream-failed").await;
    assert!(v["detail"].as_str().unwrap().contains("302"), "{v}");
    assert!(!v.to_string().contains(&evil), "the Location is not repeated: {v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the attacker was called");
    assert_eq!(e.paygov_inits(), before_inits, "the mock recorded nothing");
    // The stored payment (found by its key: the 502 names no reference) is failed and carries
    // no payment URL.
    let keys = key_names(&store_snapshot(&e.prefix).await);
    let record = keys
        .iter()
        .find_map(|k| k.rsplit(':').next().filter(|r| hcc_adapters::payments::is_reference(r)));
    let (status, p) = status_json(app.get_payment(record.expect("the failed payment is stored")).await).await;
    assert_eq!(
        (status, p["status"].as_str(), p.get("payment_url")),
        (200, Some("failed"), None),
        "{p}"
    );
    app.stop().await;
}

/// The attack: the platform answers INIT with `UrlThanhToan` `http://...` (readable and
/// changeable on the way) or `javascript:...` (script in the centre's page), and the centre
/// sends the citizen there. Now only `https` (or `http` to a loopback host, for development)
/// is taken; anything else is 502 and never shown to the centre.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_page_that_is_not_https_is_never_handed_out() {
    let e = env();
    let app = e.quiet_gateway(&deadline()).await;
    for url in [
        "http://paygov.example.vn/pay/x",
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "https://user:pw@paygov.example.vn/pay",
        "//attacker.example/pay",
    ] {
        e.paygov_config(json!({"init_payment_url": url})).await;
        let v = problem(app.create_payment(&payment_body("paygov", 100_000)).await, 502, "upstream-failed").await;
        assert!(v["detail"].as_str().unwrap().contains("UrlThanhToan refused"), "{url}: {v}");
        assert!(
            !v.to_string().contains("attacker.example") && !v.to_string().contains("javascript"),
            "{v}"
        );
    }
    e.paygov_config(json!({"init_payment_url": "https://paygov.example.vn/pay/ok"}))
        .await;
    let r = app.create_payment(&payment_body("paygov", 100_000)).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["payment_url"], "https://paygov.example.vn/pay/ok");
    app.stop().await;
}

/// The attack: amounts written loosely (`0100000`, `+100000`) under a valid checksum: the
/// platform or VNPAY hash the text, and Rust's integer parser read `0100000` and `+100000` as
/// 100000, so one signed text meant two things to two readers. Now a loose amount is refused
/// (`99` for PayGov, `04` for VNPAY) and nothing stored changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_amounts_with_a_sign_or_leading_zeros_pay_nothing() {
    let e = env();
    let app = e.quiet_gateway(&deadline()).await;
    let paygov_ref = app.new_payment_reference("paygov", 100_000).await;
    let vnpay_ref = app.new_payment_reference("vnpay", 150_000).await;
    let before = settled(&e.prefix).await;
    let time = "20241126133005";
    for amount in ["0100000", "+100000", "00100000"] {
        let fields = json!({"LoaiBanTin": "PAYMENT", "MaLoi": "00", "MaDoiTac": "HCC-DEV", "MaThamChieu": paygov_ref,
            "SoTien": amount, "MaTienTe": "VND", "MaGiaoDich": "PG77", "MaNganHang": "VCB", "ThoiGianGD": time,
            "ThongTinGiaoDich": "Thanh toan le phi"});
        let joined = format!("PAYMENT|00|HCC-DEV|{paygov_ref}|{amount}|VND|PG77|VCB|{time}|Thanh toan le phi|{PAYGOV_SECRET}");
        let reply = paygov_confirm(&app, fields, &joined).await;
        assert_eq!(
            (reply["MaLoi"].as_str(), reply["MoTaLoi"].as_str()),
            (Some("99"), Some("SoTien is missing or invalid")),
            "{amount}: {reply}"
        );
    }
    for amount in ["015000000", "%2B15000000", "0015000000"] {
        let hashed = format!(
            "vnp_Amount={amount}&vnp_BankCode=NCB&vnp_OrderInfo=Thanh+toan&vnp_PayDate=20241126133505\
             &vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=14123456&vnp_TransactionStatus=00&vnp_TxnRef={vnpay_ref}"
        );
        let reply = vnpay_ipn(&app, &hashed).await;
        assert_eq!(reply["RspCode"], "04", "{amount}: {reply}");
    }
    assert_eq!(settled(&e.prefix).await, before, "nothing stored changed");
    for r in [&paygov_ref, &vnpay_ref] {
        assert_eq!(status_json(app.get_payment(r).await).await.1["status"], "pending");
    }
    // The same messages with the amount written strictly are taken: the test above refused the
    // writing, not the message.
    let fields = json!({"LoaiBanTin": "PAYMENT", "MaLoi": "00", "MaDoiTac": "HCC-DEV", "MaThamChieu": paygov_ref,
        "SoTien": "100000", "MaTienTe": "VND", "MaGiaoDich": "PG77", "MaNganHang": "VCB", "ThoiGianGD": time,
        "ThongTinGiaoDich": "Thanh toan le phi"});
    let joined = format!("PAYMENT|00|HCC-DEV|{paygov_ref}|100000|VND|PG77|VCB|{time}|Thanh toan le phi|{PAYGOV_SECRET}");
    assert_eq!(paygov_confirm(&app, fields, &joined).await["MaLoi"], "00");
    let hashed = format!(
        "vnp_Amount=15000000&vnp_BankCode=NCB&vnp_OrderInfo=Thanh+toan&vnp_PayDate=20241126133505\
         &vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=14123456&vnp_TransactionStatus=00&vnp_TxnRef={vnpay_ref}"
    );
    assert_eq!(vnpay_ipn(&app, &hashed).await["RspCode"], "00");
    for r in [&paygov_ref, &vnpay_ref] {
        assert_eq!(status_json(app.get_payment(r).await).await.1["status"], "paid");
    }
    app.stop().await;
}

/// The same for reconciliation: a PayGov QUERY answer and a signed VNPAY `querydr` answer
/// saying "paid" with a loosely written amount leave the payment pending, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_answers_with_loose_amounts_pay_nothing() {
    let e = env();
    let app = spawn_app(
        e.settings(&[
            ("HCC__PAYGOV__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__PAYGOV__RECONCILE_MIN_AGE_SECS", "0".into()),
            ("HCC__VNPAY__RECONCILE_INTERVAL_SECS", "1".into()),
            ("HCC__VNPAY__RECONCILE_MIN_AGE_SECS", "0".into()),
        ]),
        Workers::On,
    )
    .await;
    e.paygov_config(json!({"query_amount_text": "0100000"})).await;
    e.control(format!("{}/_mock/vnpay/querydr", e.bank.url()), json!({"amount_text": "015000000"}))
        .await;
    let paygov_ref = app.new_payment_reference("paygov", 100_000).await;
    let vnpay_ref = app.new_payment_reference("vnpay", 150_000).await;
    // The citizen opens VNPAY's page (so querydr can find the order) and both providers mark the
    // payments paid, with the callbacks lost.
    let page = app
        .client
        .get(
            status_json(app.get_payment(&vnpay_ref).await).await.1["payment_url"]
                .as_str()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(page.status().is_success());
    e.control(
        format!("{}/_mock/paygov/pay", e.portal.url()),
        json!({"MaThamChieu": paygov_ref, "notify": false}),
    )
    .await;
    e.control(
        format!("{}/_mock/vnpay/pay", e.bank.url()),
        json!({"TxnRef": vnpay_ref, "lose_ipn": true}),
    )
    .await;
    // Asked at ages 1 s, 5 s, 30 s, …: the first answers are loose, the next ones strict.
    eventually("both providers asked", Duration::from_secs(15), || async {
        for r in [&paygov_ref, &vnpay_ref] {
            assert_eq!(
                status_json(app.get_payment(r).await).await.1["status"],
                "pending",
                "a loose amount paid {r}"
            );
        }
        let q: Value = reqwest::get(format!("{}/_mock/paygov/queries", e.portal.url()))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let d: Value = reqwest::get(format!("{}/_mock/vnpay/queries", e.bank.url()))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (q["queries"].as_u64()? >= 1 && !d.as_array()?.is_empty()).then_some(())
    })
    .await;
    for r in [&paygov_ref, &vnpay_ref] {
        assert_eq!(
            status_json(app.get_payment(r).await).await.1["status"],
            "pending",
            "a loose amount paid {r}"
        );
    }
    // Strict answers settle them: the refusal was the amount's writing.
    e.paygov_config(json!({})).await;
    e.control(format!("{}/_mock/vnpay/querydr", e.bank.url()), json!({})).await;
    for r in [&paygov_ref, &vnpay_ref] {
        eventually(&format!("{r} paid"), Duration::from_secs(15), || async {
            (status_json(app.get_payment(r).await).await.1["status"] == "paid").then_some(())
        })
        .await;
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Defect 10, first bullet: the camt.054 endpoint is cheap to refuse.

const CAMT_PATH: &str = "/v1/callbacks/banks/devbank/camt054";

/// The attack: anyone could make the gateway parse, canonicalise and RSA-verify any XML they
/// liked under any bank id. Now an unknown bank (404), another content type (415), an
/// oversized body (413), a DOCTYPE (400) or a root that is not a camt.054 `Document` (422 on
/// `/Document`) is refused before any of that: a root that is not camt.054 used to reach the
/// signature check (401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camt054_refusals_come_before_any_signature_work() {
    let e = env();
    let app = e.quiet_gateway(&deadline()).await;
    let before = settled(&e.prefix).await;
    let post = |path: &str, ct: &str, body: Vec<u8>| send(app.post(path, Key::None).header("content-type", ct).body(body));
    let ns = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08";
    let v = problem(
        post(
            "/v1/callbacks/banks/nobank%0A/camt054",
            "application/xml",
            format!("<Document xmlns=\"{ns}\"/>").into_bytes(),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert!(!v.to_string().contains("nobank"), "the id is not echoed: {v}");
    problem(
        post(CAMT_PATH, "application/json", b"{}".to_vec()).await,
        415,
        "unsupported-media-type",
    )
    .await;
    problem(
        post(CAMT_PATH, "application/xml", vec![b' '; 2 * 1024 * 1024]).await,
        413,
        "payload-too-large",
    )
    .await;
    problem(
        post(
            CAMT_PATH,
            "application/xml",
            b"<!DOCTYPE d [<!ENTITY x \"y\">]><Document/>".to_vec(),
        )
        .await,
        400,
        "malformed-request",
    )
    .await;
    problem(
        post(CAMT_PATH, "application/xml", b"not xml".to_vec()).await,
        400,
        "malformed-request",
    )
    .await;
    // Well-formed XML with a signature-shaped body, but not a bank notification.
    for root in [
        format!("<Envelope xmlns=\"{ns}\"><Document/><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></Envelope>"),
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.09\"><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></Document>".into(),
        "<Document><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></Document>".into(),
    ] {
        let v = problem(post(CAMT_PATH, "application/xml", root.clone().into_bytes()).await, 422, "validation").await;
        assert_eq!(v["errors"][0]["field"], "/Document", "{root}: {v}");
    }
    assert_eq!(settled(&e.prefix).await, before, "nothing stored changed");
    app.stop().await;
}

/// A genuine, bank-signed notification padded with 80,000 small elements: its digest no longer
/// holds, but finding that out means parsing, canonicalising and hashing all of it.
async fn heavy_forgery(e: &PaymentEnv) -> Vec<u8> {
    let built = e
        .control(
            format!("{}/_mock/bank/credit", e.bank.url()),
            json!({"reference": "HCC241126ABCDEFGH", "amount_vnd": 1000}),
        )
        .await;
    let doc = built["document"].as_str().unwrap().to_string();
    let at = doc.find("<BkToCstmrDbtCdtNtfctn").unwrap();
    let pad = "<P>x</P>".repeat(80_000);
    format!("{}{pad}{}", &doc[..at], &doc[at..]).into_bytes()
}

/// The attack: a flood of heavy forged notifications under one bank id, each costing a full
/// verification, all at once. Now at most `BANK_VERIFICATIONS` (4) run at once per bank; the
/// rest are answered at once with 503 `busy` and `Retry-After`, unread. Nothing stored changes,
/// and once the flood is over a genuine notification is verified and applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camt054_verifications_per_bank_are_limited() {
    let e = env();
    let app = e.quiet_gateway(&deadline()).await;
    let reference = app.new_payment_reference("paygov", 200_000).await;
    let before = settled(&e.prefix).await;
    let body = heavy_forgery(&e).await;
    assert!(body.len() < 1024 * 1024, "under the body limit: {}", body.len());
    let mut busy = 0;
    let mut refused = 0;
    for _round in 0..6 {
        let sends: Vec<_> = (0..40)
            .map(|_| {
                let (c, url, b) = (app.client.clone(), app.url(CAMT_PATH), body.clone());
                tokio::spawn(async move { c.post(url).header("content-type", "application/xml").body(b).send().await })
            })
            .collect();
        for s in sends {
            let r = s.await.unwrap().unwrap();
            match r.status().as_u16() {
                503 => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    let v = problem(r, 503, "busy").await;
                    assert!(v["detail"].as_str().unwrap().contains("send it again"), "{v}");
                    busy += 1;
                }
                401 => {
                    problem(r, 401, "bad-signature").await;
                    refused += 1;
                }
                other => panic!("unexpected answer {other}: {:?}", r.text().await),
            }
        }
        if busy > 0 {
            break;
        }
    }
    assert!(
        busy > 0,
        "no verification was ever refused for lack of a permit ({refused} verified and refused)"
    );
    assert!(refused > 0, "some forgeries were verified (and refused)");
    assert_eq!(settled(&e.prefix).await, before, "nothing stored changed");
    // The permits came back: a genuine notification now verifies and pays.
    let sent = e
        .control(
            format!("{}/_mock/bank/credit", e.bank.url()),
            json!({"reference": reference, "amount_vnd": 200_000, "url": app.url(CAMT_PATH), "bank_ref": "FT-AFTER"}),
        )
        .await;
    assert_eq!(sent["replies"][0]["status"], 200, "{sent}");
    assert_eq!(status_json(app.get_payment(&reference).await).await.1["status"], "paid");
    app.stop().await;
}
