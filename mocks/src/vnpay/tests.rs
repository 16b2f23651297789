//! Tests of the VNPAY stand-in: the signatures against hand-written strings, then the
//! payment page, `querydr` and the IPN over HTTP.

use actix_web::{HttpRequest, HttpResponse};

use super::querydr::signed_answer;
use super::sign::{QUERYDR_ANSWER, pipe_hash, query_signing_string, valid_timestamp, vnpay_hash};
use super::*;

const SECRET: &str = "vnpay-dev-hash-secret";

fn hmac(data: &str) -> String {
    hex::encode(hcc_signing::hmac_sha512(SECRET.as_bytes(), data.as_bytes()).unwrap())
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_query_signature_is_over_a_hand_written_string() {
    let p = pairs(&[
        ("vnp_TxnRef", "HCC241126ABCDEFGH"),
        ("vnp_OrderInfo", "Le phi: ho so/1"),
        ("vnp_Amount", "15000000"),
        ("vnp_BankCode", ""),
        ("vnp_SecureHashType", "HmacSHA512"),
        ("utm", "x"),
    ]);
    let written = "vnp_Amount=15000000&vnp_OrderInfo=Le+phi%3A+ho+so%2F1&vnp_TxnRef=HCC241126ABCDEFGH";
    assert_eq!(query_signing_string(&p), written);
    assert_eq!(vnpay_hash(&p, SECRET), hmac(written));
}

#[test]
fn the_querydr_signatures_are_over_hand_written_strings() {
    let request = [
        "r1",
        "2.1.0",
        "querydr",
        "HCCDEV01",
        "HCC241126ABCDEFGH",
        "20241126133005",
        "20241126140000",
        "192.0.2.10",
        "Thanh toan",
    ];
    assert_eq!(
        pipe_hash(&request, SECRET),
        hmac("r1|2.1.0|querydr|HCCDEV01|HCC241126ABCDEFGH|20241126133005|20241126140000|192.0.2.10|Thanh toan")
    );
    let state = VnpayState::new("HCCDEV01", SECRET);
    let fields: HashMap<&'static str, String> = [
        ("vnp_ResponseId", "a1"),
        ("vnp_Command", "querydr"),
        ("vnp_ResponseCode", "00"),
        ("vnp_Message", "QueryDR Success"),
        ("vnp_TmnCode", "HCCDEV01"),
        ("vnp_TxnRef", "HCC241126ABCDEFGH"),
        ("vnp_Amount", "15000000"),
        ("vnp_TransactionType", "01"),
        ("vnp_TransactionStatus", "01"),
        ("vnp_OrderInfo", "Thanh toan"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let a = signed_answer(&state, fields, &AnswerControl::default());
    assert_eq!(
        a["vnp_SecureHash"],
        hmac("a1|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000||||01|01|Thanh toan||")
    );
    assert!(a.get("vnp_BankCode").is_none() && a.get("vnp_PromotionCode").is_none());
}

#[test]
fn timestamps_must_be_real_dates() {
    assert!(valid_timestamp("20240229235959"));
    assert!(!valid_timestamp("20230229000000"));
    assert!(!valid_timestamp("20241126240000"));
    assert!(!valid_timestamp("2024112613300"));
}

// --- over HTTP ------------------------------------------------------------------------

/// A payment URL's signed string, written out, dated far in the future so it has not
/// expired. `extra` replaces or removes (empty) fields for the refusal cases.
fn payment_query(extra: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("vnp_Amount", "15000000"),
        ("vnp_Command", "pay"),
        ("vnp_CreateDate", "20991126133005"),
        ("vnp_CurrCode", "VND"),
        ("vnp_ExpireDate", "20991126134505"),
        ("vnp_IpAddr", "203.0.113.7"),
        ("vnp_Locale", "vn"),
        ("vnp_OrderInfo", "Thanh+toan+phi%2C+le+phi"),
        ("vnp_OrderType", "other"),
        ("vnp_ReturnUrl", "https%3A%2F%2Fcentre.example%2Fpaid"),
        ("vnp_TmnCode", "HCCDEV01"),
        ("vnp_TxnRef", "HCC991126ABCDEFGH"),
        ("vnp_Version", "2.1.0"),
    ];
    for (k, v) in extra {
        fields.retain(|(fk, _)| fk != k);
        if !v.is_empty() {
            fields.push((k, v));
        }
    }
    fields.sort();
    let signed = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    format!("{signed}&vnp_SecureHash={}", hmac(&signed))
}

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post(url: String, body: &Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn querydr(id: &str, txn_ref: &str, transaction_date: &str) -> Value {
    let signed = format!("{id}|2.1.0|querydr|HCCDEV01|{txn_ref}|{transaction_date}|20991126140000|192.0.2.10|Hoi giao dich");
    json!({
        "vnp_RequestId": id, "vnp_Version": "2.1.0", "vnp_Command": "querydr", "vnp_TmnCode": "HCCDEV01",
        "vnp_TxnRef": txn_ref, "vnp_TransactionDate": transaction_date, "vnp_CreateDate": "20991126140000",
        "vnp_IpAddr": "192.0.2.10", "vnp_OrderInfo": "Hoi giao dich", "vnp_SecureHash": hmac(&signed),
    })
}

fn answer_string(a: &Value) -> String {
    QUERYDR_ANSWER
        .iter()
        .map(|k| a.get(*k).and_then(Value::as_str).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_page_refusals() {
    let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
    let page = |q: String| get(format!("{}/vnpay/pay?{q}", mock.url()));
    for (extra, code) in [
        (vec![("vnp_IpAddr", "")], "03"),
        (vec![("vnp_IpAddr", "citizen")], "03"),
        (vec![("vnp_ExpireDate", "")], "03"),
        (vec![("vnp_ExpireDate", "20991126133005")], "03"),
        (vec![("vnp_ExpireDate", "20991326134505")], "03"),
        (vec![("vnp_Amount", "15000050")], "03"),
        (vec![("vnp_OrderInfo", "L%E1%BB%87+ph%C3%AD")], "03"),
        (vec![("vnp_TmnCode", "OTHER001")], "72"),
        (
            vec![("vnp_CreateDate", "20201126133005"), ("vnp_ExpireDate", "20201126134505")],
            "11",
        ),
    ] {
        let (status, body) = page(payment_query(&extra)).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (400, code), "{extra:?}: {body}");
    }
    let (_, body) = page(payment_query(&[]).replace("vnp_Amount=15000000", "vnp_Amount=25000000")).await;
    assert_eq!(body["code"], "70");
    let (_, body) = page(format!("vnp_Amount=15000000&{}", payment_query(&[]))).await;
    assert_eq!(body["code"], "03", "a repeated key");
    let (_, body) = get(format!("{}/_mock/vnpay/orders", mock.url())).await;
    assert_eq!(body, json!({}), "nothing refused was recorded");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_paid_with_a_lost_ipn_is_found_by_querydr() {
    let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
    let api = format!("{}/merchant_webapi/api/transaction", mock.url());
    let (status, body) = get(format!("{}/vnpay/pay?{}", mock.url(), payment_query(&[]))).await;
    assert_eq!((status, body["code"].as_str()), (200, Some("00")), "{body}");
    // Not paid yet: pending, with no transaction, bank or pay date (absent, signed as empty).
    let a = post(api.clone(), &querydr("q1", "HCC991126ABCDEFGH", "20991126133005")).await;
    assert_eq!(
        (a["vnp_ResponseCode"].as_str(), a["vnp_TransactionStatus"].as_str()),
        (Some("00"), Some("01"))
    );
    assert_eq!(
        answer_string(&a),
        format!(
            "{}|querydr|00|QueryDR Success|HCCDEV01|HCC991126ABCDEFGH|15000000||||01|01|Thanh toan phi, le phi||",
            a["vnp_ResponseId"].as_str().unwrap()
        )
    );
    assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)));
    // Paid, and the IPN lost.
    let p = post(
        format!("{}/_mock/vnpay/pay", mock.url()),
        &json!({"TxnRef": "HCC991126ABCDEFGH", "lose_ipn": true}),
    )
    .await;
    assert_eq!(p["ipn_sent"], false);
    let a = post(api.clone(), &querydr("q2", "HCC991126ABCDEFGH", "20991126133005")).await;
    assert_eq!(
        (a["vnp_TransactionStatus"].as_str(), a["vnp_Amount"].as_str()),
        (Some("00"), Some("15000000"))
    );
    assert_eq!(a["vnp_TransactionNo"], p["vnp_TransactionNo"]);
    assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)));
    // Found only with the order's own vnp_CreateDate; ids are unique per day; hashes checked.
    let a = post(api.clone(), &querydr("q3", "HCC991126ABCDEFGH", "20991126140000")).await;
    assert_eq!(a["vnp_ResponseCode"], "91");
    let a = post(api.clone(), &querydr("q3", "HCC991126ABCDEFGH", "20991126133005")).await;
    assert_eq!(a["vnp_ResponseCode"], "94");
    let mut bad = querydr("q4", "HCC991126ABCDEFGH", "20991126133005");
    bad["vnp_OrderInfo"] = json!("changed");
    assert_eq!(post(api.clone(), &bad).await["vnp_ResponseCode"], "97");
    let mut bad = querydr("q5", "HCC991126ABCDEFGH", "20991126133005");
    bad["vnp_Version"] = json!("2.0.1");
    assert_eq!(post(api.clone(), &bad).await["vnp_ResponseCode"], "03");
    // Bent answers: tampered once, then another (signed) amount as a JSON number.
    post(format!("{}/_mock/vnpay/querydr", mock.url()), &json!({"tamper": true, "times": 1})).await;
    let a = post(api.clone(), &querydr("q6", "HCC991126ABCDEFGH", "20991126133005")).await;
    assert_ne!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)));
    let a = post(api.clone(), &querydr("q7", "HCC991126ABCDEFGH", "20991126133005")).await;
    assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&answer_string(&a)), "times: 1 is over");
    post(
        format!("{}/_mock/vnpay/querydr", mock.url()),
        &json!({"amount_vnd": 1000, "amount_as_number": true}),
    )
    .await;
    let a = post(api.clone(), &querydr("q8", "HCC991126ABCDEFGH", "20991126133005")).await;
    assert_eq!(a["vnp_Amount"], json!(100000));
    let signed = answer_string(&a).replacen("|HCC991126ABCDEFGH||", "|HCC991126ABCDEFGH|100000|", 1);
    assert_eq!(a["vnp_SecureHash"].as_str().unwrap(), hmac(&signed));
    let (_, q) = get(format!("{}/_mock/vnpay/queries", mock.url())).await;
    let codes: Vec<&str> = q
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["vnp_ResponseCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["00", "00", "91", "94", "97", "03", "00", "00", "00"]);
    assert_eq!(q[0]["request"]["vnp_RequestId"], "q1");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipns_are_signed_and_sent_by_get() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let merchant = crate::spawn_server("127.0.0.1:0", move |cfg: &mut web::ServiceConfig| {
        let s = s.clone();
        cfg.route(
            "/ipn",
            web::get().to(move |req: HttpRequest| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(req.query_string().to_string());
                    HttpResponse::Ok().json(json!({"RspCode": "00", "Message": "Confirm Success"}))
                }
            }),
        );
    })
    .unwrap();
    let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
    let p = post(
        format!("{}/_mock/vnpay/pay", mock.url()),
        &json!({"TxnRef": "HCC241126ABCDEFGH", "amount_vnd": 150000, "ipn_url": format!("{}/ipn", merchant.url()),
                "create_date": "20241126133005"}),
    )
    .await;
    assert_eq!(p["replies"][0]["RspCode"], "00");
    let query = seen.lock().unwrap()[0].clone();
    let get = |k: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let (txn, paid) = (get("vnp_TransactionNo"), get("vnp_PayDate"));
    let written = format!(
        "vnp_Amount=15000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP{txn}&vnp_CardType=ATM\
         &vnp_OrderInfo=Thanh+toan+le+phi+ho+so&vnp_PayDate={paid}&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01\
         &vnp_TransactionNo={txn}&vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH"
    );
    assert_eq!(get("vnp_SecureHash"), hmac(&written));
    // An injection-test IPN: the raw prefix goes in front of the signed query.
    let p = post(
        format!("{}/_mock/vnpay/pay", mock.url()),
        &json!({"TxnRef": "HCC241126ABCDEFGH", "ipn_url": format!("{}/ipn", merchant.url()),
                "query_prefix": "vnp_ResponseCode=&vnp_TransactionNo="}),
    )
    .await;
    assert!(
        p["ipn_query"]
            .as_str()
            .unwrap()
            .starts_with("vnp_ResponseCode=&vnp_TransactionNo=&vnp_TmnCode=")
    );
    assert_eq!(
        p["vnp_TransactionNo"].as_str().unwrap(),
        txn,
        "a resent success keeps its transaction"
    );
    merchant.stop().await;
    mock.stop().await;
}

/// As the VNPAY sandbox signs it: a cancelled payment says `24`, status `02`, and
/// transaction number `0`, for every order; a later success gets a real number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_payment_carries_transaction_number_zero() {
    let mock = crate::spawn_server("127.0.0.1:0", routes(VnpayState::new("HCCDEV01", SECRET))).unwrap();
    let url = format!("{}/_mock/vnpay/pay", mock.url());
    let pay = |reference: &str, code: &str| {
        let body = json!({"TxnRef": reference, "amount_vnd": 150000, "lose_ipn": true, "response_code": code,
                          "create_date": "20241126133005"});
        let url = url.clone();
        async move { post(url, &body).await }
    };
    for reference in ["HCC241126ABCDEFGH", "HCC241126BCDEFGHJ"] {
        let p = pay(reference, "24").await;
        let query = p["ipn_query"].as_str().unwrap().to_string();
        let get = |k: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        assert_eq!(
            (get("vnp_ResponseCode"), get("vnp_TransactionStatus"), get("vnp_TransactionNo")),
            ("24".to_string(), "02".to_string(), "0".to_string()),
            "{query}"
        );
    }
    let p = pay("HCC241126ABCDEFGH", "00").await;
    assert_ne!(p["vnp_TransactionNo"], "0", "{p}");
    assert_eq!(p["vnp_TransactionNo"].as_str().map(str::len), Some(8));
    mock.stop().await;
}
