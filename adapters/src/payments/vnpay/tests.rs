//! Unit tests for the VNPAY provider and its messages.

use super::*;
use hcc_config::Section;
use serde_json::Value;

const SECRET: &str = "vnpay-dev-hash-secret";

fn hmac(data: &str) -> String {
    hex::encode(hcc_signing::hmac_sha512(SECRET.as_bytes(), data.as_bytes()).unwrap())
}

fn query_param(query: &str, key: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

// --- hashing rules --------------------------------------------------------------------

#[test]
fn spaces_encode_as_plus_and_empty_values_are_left_out() {
    let p = vec![
        ("vnp_B".to_string(), "a b".to_string()),
        ("vnp_A".to_string(), "x/y".to_string()),
        ("vnp_C".to_string(), String::new()),
        ("other".to_string(), "z".to_string()),
        ("vnp_SecureHashType".to_string(), "HmacSHA512".to_string()),
    ];
    assert_eq!(signing_data(&p), "vnp_A=x%2Fy&vnp_B=a+b");
}

#[test]
fn timestamps_are_checked_for_shape() {
    assert!(is_timestamp("20241126133005"));
    assert!(!is_timestamp("20241326133005"));
    assert!(!is_timestamp("2024112613300"));
    assert!(!is_timestamp("2024112613300x"));
    assert_eq!(amount_vnd("+15000000"), None);
    assert_eq!(amount_vnd("015000000"), None);
    assert_eq!(amount_vnd("-15000000"), None);
    assert_eq!(amount_vnd("15000000"), Some(150_000));
    assert_eq!(amount_vnd("15000050"), None);
    assert_eq!(amount_vnd("0"), None);
}

// --- payment URL ----------------------------------------------------------------------

fn request(ip: &str, created_at: i64) -> PaymentRequest<'static> {
    PaymentRequest {
        pay_url: "http://127.0.0.1:9102/vnpay/pay",
        tmn_code: "HCCDEV01",
        reference: "HCC241126ABCDEFGH",
        amount_vnd: 150_000,
        order_info: "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
        created_at,
        expire_minutes: 15,
        return_url: "https://centre.example/paid",
        citizen_ip: ip.parse().unwrap(),
    }
}

#[test]
fn the_payment_url_is_signed_over_a_hand_written_string() {
    // 1_732_602_605 is 2024-11-26 13:30:05 in Hà Nội; +15 minutes is 13:45:05.
    let u = payment_url(&request("203.0.113.7", 1_732_602_605), SECRET).unwrap();
    let expected = "vnp_Amount=15000000&vnp_Command=pay&vnp_CreateDate=20241126133005&vnp_CurrCode=VND\
            &vnp_ExpireDate=20241126134505&vnp_IpAddr=203.0.113.7&vnp_Locale=vn\
            &vnp_OrderInfo=Thanh+toan+phi%2C+le+phi+ho+so+000.00.22.H46-241125-0001&vnp_OrderType=other\
            &vnp_ReturnUrl=https%3A%2F%2Fcentre.example%2Fpaid&vnp_TmnCode=HCCDEV01&vnp_TxnRef=HCC241126ABCDEFGH\
            &vnp_Version=2.1.0";
    assert_eq!(
        u.url,
        format!("http://127.0.0.1:9102/vnpay/pay?{expected}&vnp_SecureHash={}", hmac(expected))
    );
    assert_eq!(
        (u.create_date.as_str(), u.expire_date.as_str()),
        ("20241126133005", "20241126134505")
    );
}

#[test]
fn expiry_crosses_midnight_and_ipv6_citizens_are_encoded() {
    // 2024-11-26 23:50:00 in Hà Nội is 16:50:00Z = 1_732_639_800.
    let u = payment_url(&request("2001:db8::1", 1_732_639_800), SECRET).unwrap();
    assert_eq!(
        (u.create_date.as_str(), u.expire_date.as_str()),
        ("20241126235000", "20241127000500")
    );
    let query = u.url.split_once('?').unwrap().1;
    assert!(query.contains("&vnp_IpAddr=2001%3Adb8%3A%3A1&"), "{query}");
    assert_eq!(query_param(query, "vnp_ExpireDate"), "20241127000500");
    // A dual-stack listener's IPv4-mapped address goes out as plain IPv4.
    let u = payment_url(&request("::ffff:198.51.100.4", 1_732_639_800), SECRET).unwrap();
    assert!(u.url.contains("&vnp_IpAddr=198.51.100.4&"), "{}", u.url);
}

#[test]
fn payment_urls_refuse_what_vnpay_would() {
    let mut r = request("203.0.113.7", 1_732_602_605);
    r.amount_vnd = 0;
    assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Amount);
    r.amount_vnd = 10_000_000_000;
    assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Amount);
    r.amount_vnd = u64::MAX;
    assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Amount);
    let mut r = request("203.0.113.7", 1_732_602_605);
    r.order_info = "Lệ phí";
    assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::OrderInfo);
    let mut r = request("203.0.113.7", 1_732_602_605);
    r.reference = "HCC&vnp_Amount=1";
    assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::Reference);
    let mut r = request("203.0.113.7", 1_732_602_605);
    r.expire_minutes = 0;
    assert_eq!(payment_url(&r, SECRET).unwrap_err(), PaymentUrlError::ExpireMinutes);
}

// --- IPN ------------------------------------------------------------------------------

/// A genuine IPN as VNPAY would send it: the hashed string is written out by hand.
const PAID_HASHED: &str = "vnp_Amount=15000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14123456&vnp_CardType=ATM\
        &vnp_OrderInfo=Thanh+toan+le+phi&vnp_PayDate=20241126133505&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01\
        &vnp_TransactionNo=14123456&vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";

fn paid_ipn() -> String {
    // Sent in VNPAY's own (unsorted) order, with the hash type and an upper-case hash.
    format!(
        "vnp_TmnCode=HCCDEV01&vnp_Amount=15000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14123456&vnp_CardType=ATM\
             &vnp_PayDate=20241126133505&vnp_OrderInfo=Thanh+toan+le+phi&vnp_TransactionNo=14123456\
             &vnp_ResponseCode=00&vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH\
             &vnp_SecureHashType=HmacSHA512&vnp_SecureHash={}",
        hmac(PAID_HASHED).to_uppercase()
    )
}

#[test]
fn a_genuine_paid_ipn_is_read_from_its_hashed_values() {
    let ipn = verify_ipn(&paid_ipn(), "HCCDEV01", SECRET).unwrap();
    assert_eq!(
        ipn,
        Ipn {
            reference: "HCC241126ABCDEFGH".into(),
            amount_vnd: 150_000,
            outcome: Verdict::Paid,
            paid: true,
            transaction: "14123456".into(),
            pay_date: "20241126133505".into(),
            response_code: "00".into(),
            transaction_status: "00".into(),
        }
    );
    // Extra non-vnp parameters are not hashed, are ignored, and are never read.
    let with_junk = format!("utm_source=x&{}", paid_ipn());
    assert!(verify_ipn(&with_junk, "HCCDEV01", SECRET).unwrap().paid);
}

#[test]
fn a_replayed_ipn_with_empty_parameters_put_in_front_is_refused() {
    // The attack: empty values are not hashed, so the signature still holds, and a reader
    // that takes the first occurrence would see an empty code and an empty transaction.
    let forged = format!("vnp_ResponseCode=&vnp_TransactionNo=&{}", paid_ipn());
    assert_eq!(
        verify_ipn(&forged, "HCCDEV01", SECRET).unwrap_err(),
        IpnError::RepeatedKey("vnp_TransactionNo".into())
    );
    // The signature alone would have let it through: the empty values are not hashed.
    let params: Vec<(String, String)> = form_urlencoded::parse(forged.as_bytes()).into_owned().collect();
    assert_eq!(signing_data(&params), PAID_HASHED);
    assert_eq!(IpnError::RepeatedKey(String::new()).rsp_code(), "97");
    // Appended after, too.
    let forged = format!("{}&vnp_TransactionStatus=", paid_ipn());
    assert_eq!(verify_ipn(&forged, "HCCDEV01", SECRET).unwrap_err().rsp_code(), "97");
    // The same key with the same value, and a key spelled with an escape, are repeats too.
    let forged = format!("vnp_Amount=15000000&{}", paid_ipn());
    assert!(matches!(verify_ipn(&forged, "HCCDEV01", SECRET), Err(IpnError::RepeatedKey(_))));
    let forged = format!("vnp%5FTxnRef=HCC241126ABCDEFGH&{}", paid_ipn());
    assert!(matches!(verify_ipn(&forged, "HCCDEV01", SECRET), Err(IpnError::RepeatedKey(_))));
    // Repeated junk is refused as well: a genuine IPN repeats nothing.
    let forged = format!("a=1&a=2&{}", paid_ipn());
    assert!(matches!(verify_ipn(&forged, "HCCDEV01", SECRET), Err(IpnError::RepeatedKey(_))));
}

#[test]
fn an_ipn_whose_codes_were_not_signed_is_never_paid() {
    // A genuine, signed IPN that carries no vnp_ResponseCode at all.
    let hashed = "vnp_Amount=15000000&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=14123456\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
    let ipn = verify_ipn(&format!("{hashed}&vnp_SecureHash={}", hmac(hashed)), "HCCDEV01", SECRET).unwrap();
    assert_eq!((ipn.paid, ipn.outcome), (false, Verdict::Undecided));
    // An added empty vnp_ResponseCode is not a repeat here, and still decides nothing.
    let ipn = verify_ipn(
        &format!("vnp_ResponseCode=&{hashed}&vnp_SecureHash={}", hmac(hashed)),
        "HCCDEV01",
        SECRET,
    )
    .unwrap();
    assert_eq!((ipn.paid, ipn.response_code.as_str()), (false, ""));
    // Paid but with no transaction number: refused, not paid.
    let hashed = "vnp_Amount=15000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
    assert_eq!(
        verify_ipn(
            &format!("{hashed}&vnp_TransactionNo=&vnp_SecureHash={}", hmac(hashed)),
            "HCCDEV01",
            SECRET
        )
        .unwrap_err(),
        IpnError::Field("vnp_TransactionNo")
    );
}

#[test]
fn failed_and_pending_ipns_are_told_apart() {
    let failed = "vnp_Amount=15000000&vnp_ResponseCode=24&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=0\
            &vnp_TransactionStatus=02&vnp_TxnRef=HCC241126ABCDEFGH";
    let ipn = verify_ipn(&format!("{failed}&vnp_SecureHash={}", hmac(failed)), "HCCDEV01", SECRET).unwrap();
    assert_eq!((ipn.paid, ipn.outcome), (false, Verdict::Failed));
    let fraud = "vnp_Amount=15000000&vnp_ResponseCode=07&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=07&vnp_TxnRef=HCC241126ABCDEFGH";
    let ipn = verify_ipn(&format!("{fraud}&vnp_SecureHash={}", hmac(fraud)), "HCCDEV01", SECRET).unwrap();
    assert_eq!(ipn.outcome, Verdict::Undecided);
}

#[test]
fn ipns_are_verified_before_anything_is_read() {
    let ok = paid_ipn();
    assert_eq!(verify_ipn(&ok, "HCCDEV01", "other").unwrap_err(), IpnError::BadSignature);
    assert_eq!(
        verify_ipn(&ok.replace("15000000", "25000000"), "HCCDEV01", SECRET).unwrap_err(),
        IpnError::BadSignature
    );
    assert_eq!(verify_ipn("vnp_TxnRef=x", "HCCDEV01", SECRET).unwrap_err(), IpnError::BadSignature);
    assert_eq!(verify_ipn("", "HCCDEV01", SECRET).unwrap_err(), IpnError::BadSignature);
    // Another merchant's (correctly signed) IPN.
    assert_eq!(verify_ipn(&ok, "HCCDEV02", SECRET).unwrap_err(), IpnError::WrongMerchant);
    assert_eq!(IpnError::WrongMerchant.rsp_code(), "01");
    // Bounded before anything is parsed or hashed.
    let big = format!("{ok}&x={}", "a".repeat(MAX_IPN_QUERY_BYTES));
    assert_eq!(verify_ipn(&big, "HCCDEV01", SECRET).unwrap_err(), IpnError::TooLarge);
    let many: String = (0..MAX_IPN_PARAMS).map(|i| format!("x{i}=1&")).collect();
    assert_eq!(
        verify_ipn(&format!("{many}{ok}"), "HCCDEV01", SECRET).unwrap_err(),
        IpnError::TooLarge
    );
}

#[test]
fn a_signed_amount_that_is_not_whole_vnd_is_refused() {
    let odd = "vnp_Amount=15000050&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
    let e = verify_ipn(&format!("{odd}&vnp_SecureHash={}", hmac(odd)), "HCCDEV01", SECRET).unwrap_err();
    assert_eq!((e.clone(), e.rsp_code()), (IpnError::InvalidAmount, "04"));
}

#[test]
fn a_signed_ipn_with_a_loose_amount_or_a_foreign_reference_is_refused() {
    // Signed over exactly these strings: the amount with a leading zero is what was hashed.
    let zero = "vnp_Amount=015000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
    let e = verify_ipn(&format!("{zero}&vnp_SecureHash={}", hmac(zero)), "HCCDEV01", SECRET).unwrap_err();
    assert_eq!((e.clone(), e.rsp_code()), (IpnError::InvalidAmount, "04"));
    // `+` is a space in a query string; `%2B` is the sign itself.
    let plus = "vnp_Amount=%2B15000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
            &vnp_TransactionStatus=00&vnp_TxnRef=HCC241126ABCDEFGH";
    let e = verify_ipn(&format!("{plus}&vnp_SecureHash={}", hmac(plus)), "HCCDEV01", SECRET).unwrap_err();
    assert_eq!(e, IpnError::InvalidAmount);
    for reference in ["pending", "HCC241126ABCDEFG", "hcc241126abcdefgh", "HCC241126ABCDEF%2FH"] {
        let q = format!(
            "vnp_Amount=15000000&vnp_ResponseCode=00&vnp_TmnCode=HCCDEV01&vnp_TransactionNo=1\
                 &vnp_TransactionStatus=00&vnp_TxnRef={reference}"
        );
        let e = verify_ipn(&format!("{q}&vnp_SecureHash={}", hmac(&q)), "HCCDEV01", SECRET).unwrap_err();
        assert_eq!((e.clone(), e.rsp_code()), (IpnError::NotOurReference, "01"), "{reference}");
    }
}

// --- querydr --------------------------------------------------------------------------

#[test]
fn a_querydr_request_is_signed_over_a_hand_written_string() {
    // now = 2024-11-26 14:00:00 in Hà Nội = 07:00:00Z = 1_732_604_400.
    let body = querydr_request(
        &QueryDrRequest {
            tmn_code: "HCCDEV01",
            txn_ref: "HCC241126ABCDEFGH",
            order_info: "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
            transaction_date: "20241126133005",
            now: 1_732_604_400,
            server_ip: "192.0.2.10".parse().unwrap(),
            request_id: Some("0123456789abcdef0123456789abcdef"),
        },
        SECRET,
    )
    .unwrap();
    let signed = "0123456789abcdef0123456789abcdef|2.1.0|querydr|HCCDEV01|HCC241126ABCDEFGH|20241126133005\
            |20241126140000|192.0.2.10|Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001";
    assert_eq!(
        body,
        json!({
            "vnp_RequestId": "0123456789abcdef0123456789abcdef",
            "vnp_Version": "2.1.0",
            "vnp_Command": "querydr",
            "vnp_TmnCode": "HCCDEV01",
            "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_TransactionDate": "20241126133005",
            "vnp_CreateDate": "20241126140000",
            "vnp_IpAddr": "192.0.2.10",
            "vnp_OrderInfo": "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
            "vnp_SecureHash": hmac(signed),
        })
    );
}

#[test]
fn querydr_request_ids_are_random_and_inputs_are_checked() {
    let mut r = QueryDrRequest {
        tmn_code: "HCCDEV01",
        txn_ref: "HCC241126ABCDEFGH",
        order_info: "x",
        transaction_date: "20241126133005",
        now: 1_732_604_400,
        server_ip: "192.0.2.10".parse().unwrap(),
        request_id: None,
    };
    let a = querydr_request(&r, SECRET).unwrap()["vnp_RequestId"].as_str().unwrap().to_string();
    let b = querydr_request(&r, SECRET).unwrap()["vnp_RequestId"].as_str().unwrap().to_string();
    assert!(a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()) && a != b, "{a} {b}");
    r.transaction_date = "2024-11-26";
    assert_eq!(querydr_request(&r, SECRET).unwrap_err(), QueryDrError::Field("vnp_TransactionDate"));
    r.transaction_date = "20241126133005";
    r.request_id = Some("not/alnum");
    assert_eq!(querydr_request(&r, SECRET).unwrap_err(), QueryDrError::Field("vnp_RequestId"));
}

fn paid_answer() -> Value {
    let signed = "a1b2c3d4e5|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|NCB\
            |20241126133505|14123456|01|00|Thanh toan le phi||";
    json!({
        "vnp_ResponseId": "a1b2c3d4e5",
        "vnp_Command": "querydr",
        "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success",
        "vnp_TmnCode": "HCCDEV01",
        "vnp_TxnRef": "HCC241126ABCDEFGH",
        "vnp_Amount": "15000000",
        "vnp_BankCode": "NCB",
        "vnp_PayDate": "20241126133505",
        "vnp_TransactionNo": "14123456",
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": "00",
        "vnp_OrderInfo": "Thanh toan le phi",
        "vnp_SecureHash": hmac(signed).to_uppercase(),
    })
}

fn parse(v: &Value) -> Result<QueryDr, QueryDrError> {
    parse_querydr_answer(v, "HCC241126ABCDEFGH", "HCCDEV01", SECRET)
}

#[test]
fn a_paid_answer_without_promotion_fields_ends_in_two_pipes() {
    assert_eq!(
        parse(&paid_answer()).unwrap(),
        QueryDr::Paid {
            amount_vnd: 150_000,
            transaction: "14123456".into(),
            pay_date: "20241126133505".into(),
            bank_code: "NCB".into(),
        }
    );
}

#[test]
fn numbers_are_signed_in_decimal_and_promotions_take_their_place() {
    let signed = "r2|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|NCB|20241126133505\
            |14123456|01|00|Thanh toan le phi|KM01|500000";
    let v = json!({
        "vnp_ResponseId": "r2", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
        "vnp_Amount": 15000000, "vnp_BankCode": "NCB", "vnp_PayDate": 20241126133505u64,
        "vnp_TransactionNo": 14123456, "vnp_TransactionType": "01", "vnp_TransactionStatus": "00",
        "vnp_OrderInfo": "Thanh toan le phi", "vnp_PromotionCode": "KM01", "vnp_PromotionAmount": 500000,
        "vnp_SecureHash": hmac(signed),
    });
    assert!(matches!(parse(&v), Ok(QueryDr::Paid { amount_vnd: 150_000, .. })));
    let mut f = v.clone();
    f["vnp_Amount"] = json!(15000000.0);
    assert_eq!(parse(&f).unwrap_err(), QueryDrError::FieldType("vnp_Amount"));
}

#[test]
fn a_signed_querydr_amount_with_a_sign_or_a_leading_zero_is_refused() {
    for (amount, signed) in [
        (
            "015000000",
            "r8|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|015000000|NCB|20241126133505|1|01|00|x||",
        ),
        (
            "+15000000",
            "r8|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|+15000000|NCB|20241126133505|1|01|00|x||",
        ),
    ] {
        let v = json!({
            "vnp_ResponseId": "r8", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
            "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
            "vnp_Amount": amount, "vnp_BankCode": "NCB", "vnp_PayDate": "20241126133505", "vnp_TransactionNo": "1",
            "vnp_TransactionType": "01", "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x",
            "vnp_SecureHash": hmac(signed),
        });
        assert_eq!(parse(&v).unwrap_err(), QueryDrError::Field("vnp_Amount"), "{amount}");
    }
    // A negative JSON integer is rendered "-15000000" for the signature, and refused.
    let signed = "r9|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|-15000000|NCB|20241126133505|1|01|00|x||";
    let v = json!({
        "vnp_ResponseId": "r9", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
        "vnp_Amount": -15000000, "vnp_BankCode": "NCB", "vnp_PayDate": "20241126133505", "vnp_TransactionNo": "1",
        "vnp_TransactionType": "01", "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x",
        "vnp_SecureHash": hmac(signed),
    });
    assert_eq!(parse(&v).unwrap_err(), QueryDrError::Field("vnp_Amount"));
}

#[test]
fn pending_failed_and_not_found_answers() {
    let pending = "r3|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|||||01|Thanh toan le phi||";
    let v = json!({
        "vnp_ResponseId": "r3", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
        "vnp_Amount": "15000000", "vnp_TransactionStatus": "01", "vnp_OrderInfo": "Thanh toan le phi",
        "vnp_SecureHash": hmac(pending),
    });
    assert_eq!(parse(&v).unwrap(), QueryDr::Pending);
    let failed = "r4|querydr|00|QueryDR Success|HCCDEV01|HCC241126ABCDEFGH|15000000|NCB||0|01|02|x||";
    let v = json!({
        "vnp_ResponseId": "r4", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
        "vnp_Amount": "15000000", "vnp_BankCode": "NCB", "vnp_TransactionNo": "0", "vnp_TransactionType": "01",
        "vnp_TransactionStatus": "02", "vnp_OrderInfo": "x", "vnp_SecureHash": hmac(failed),
    });
    assert_eq!(
        parse(&v).unwrap(),
        QueryDr::Failed {
            transaction_status: "02".into()
        }
    );
    let missing = "r5|querydr|91|Transaction not found|HCCDEV01||||||||||";
    let v = json!({
        "vnp_ResponseId": "r5", "vnp_Command": "querydr", "vnp_ResponseCode": "91",
        "vnp_Message": "Transaction not found", "vnp_TmnCode": "HCCDEV01", "vnp_SecureHash": hmac(missing),
    });
    assert_eq!(parse(&v).unwrap(), QueryDr::NotFound);
    let dup = "r6|querydr|94|Duplicate request|HCCDEV01|HCC241126ABCDEFGH|||||||||";
    let v = json!({
        "vnp_ResponseId": "r6", "vnp_Command": "querydr", "vnp_ResponseCode": "94",
        "vnp_Message": "Duplicate request", "vnp_TmnCode": "HCCDEV01", "vnp_TxnRef": "HCC241126ABCDEFGH",
        "vnp_SecureHash": hmac(dup),
    });
    assert_eq!(
        parse(&v).unwrap(),
        QueryDr::Unknown {
            response_code: "94".into(),
            transaction_status: String::new()
        }
    );
}

#[test]
fn querydr_answers_are_verified_and_must_be_about_our_transaction() {
    let mut v = paid_answer();
    v["vnp_Amount"] = json!("25000000");
    assert_eq!(parse(&v).unwrap_err(), QueryDrError::BadSignature);
    let mut v = paid_answer();
    v.as_object_mut().unwrap().remove("vnp_SecureHash");
    assert_eq!(parse(&v).unwrap_err(), QueryDrError::BadSignature);
    // A promotion field added after signing changes the string.
    let mut v = paid_answer();
    v["vnp_PromotionCode"] = json!("X");
    assert_eq!(parse(&v).unwrap_err(), QueryDrError::BadSignature);
    assert_eq!(
        parse_querydr_answer(&paid_answer(), "HCC241126ABCDEFGH", "HCCDEV01", "other").unwrap_err(),
        QueryDrError::BadSignature
    );
    assert_eq!(
        parse_querydr_answer(&paid_answer(), "HCC241126OTHERREF", "HCCDEV01", SECRET).unwrap_err(),
        QueryDrError::WrongReference
    );
    assert_eq!(
        parse_querydr_answer(&paid_answer(), "HCC241126ABCDEFGH", "HCCDEV02", SECRET).unwrap_err(),
        QueryDrError::WrongMerchant
    );
    assert_eq!(parse(&json!([1])).unwrap_err(), QueryDrError::NotAnObject);
    // A signed success that doesn't say whose transaction it is decides nothing.
    let anon = "r7|querydr|00|QueryDR Success|HCCDEV01||15000000|NCB|20241126133505|1|01|00|x||";
    let v = json!({
        "vnp_ResponseId": "r7", "vnp_Command": "querydr", "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success", "vnp_TmnCode": "HCCDEV01", "vnp_Amount": "15000000",
        "vnp_BankCode": "NCB", "vnp_PayDate": "20241126133505", "vnp_TransactionNo": "1",
        "vnp_TransactionType": "01", "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x",
        "vnp_SecureHash": hmac(anon),
    });
    assert_eq!(parse(&v).unwrap_err(), QueryDrError::WrongReference);
}

fn build(text: &str, production: bool) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<String>> {
    let section = Section::from_toml("vnpay", text).expect("toml");
    super::super::test_build(&KIND, Some(&section), production, "", vec![super::super::test_agency()])
        .map_err(|p| p.into_iter().map(|p| p.key).collect())
}

const ON: &str = "tmn_code = \"HCCDEV01\"\npay_url = \"https://sandbox.vnpayment.vn/paymentv2/vpcpay.html\"\nreturn_url = \"https://centre.example/paid\"\n";

#[test]
fn production_refuses_an_empty_hash_secret_only_while_vnpay_is_on() {
    assert_eq!(build(ON, true).err(), Some(vec!["vnpay.hash_secret".to_string()]));
    assert_eq!(
        build(&format!("{ON}hash_secret = \"\\t\"\n"), true).err(),
        Some(vec!["vnpay.hash_secret".to_string()])
    );
    assert!(build(&format!("{ON}hash_secret = \"{SECRET}\"\n"), true).is_ok());
    assert!(build(ON, false).is_ok());
    assert!(matches!(build("hash_secret = \"\"\n", true), Ok(None)), "off: nothing to forge");
}

#[test]
fn settings_are_checked_by_key() {
    assert_eq!(
        build(
            &format!("{ON}expire_minutes = 0\napi_url = \"https://v/api\"\nserver_ip = \"here\"\n"),
            false
        )
        .err(),
        Some(vec!["vnpay.expire_minutes".to_string(), "vnpay.server_ip".to_string()])
    );
    assert_eq!(
        build("api_url = \"nowhere\"\nserver_ip = \"203.0.113.10\"\n", false).err(),
        Some(vec!["vnpay.api_url".to_string()])
    );
    assert_eq!(
        build(&format!("{ON}query_timeout_ms = 0\n"), false).err(),
        Some(vec!["vnpay.query_timeout_ms".to_string()])
    );
    // Citizens are sent to pay_url: plain http only to this machine.
    assert_eq!(
        build(
            "tmn_code = \"T\"\npay_url = \"http://vnpay.example.vn/pay\"\nreturn_url = \"https://c/\"\n",
            false
        )
        .err(),
        Some(vec!["vnpay.pay_url".to_string()])
    );
    assert!(
        build(
            "tmn_code = \"T\"\npay_url = \"http://127.0.0.1:9102/vnpay/pay\"\nreturn_url = \"https://c/\"\n",
            false
        )
        .is_ok()
    );
}

#[test]
fn vnpay_on_needs_a_return_url_which_is_named_by_its_key() {
    let pay = "tmn_code = \"T\"\npay_url = \"https://sandbox.vnpayment.vn/paymentv2/vpcpay.html\"\n";
    for text in [
        pay.to_string(),
        format!("{pay}return_url = \"\"\n"),
        format!("{pay}return_url = \"  \"\n"),
    ] {
        assert_eq!(build(&text, false).err(), Some(vec!["vnpay.return_url".to_string()]), "{text}");
    }
    assert_eq!(
        build(&format!("{pay}return_url = \"centre/paid\"\n"), false).err(),
        Some(vec!["vnpay.return_url".to_string()])
    );
    assert!(build(&format!("{pay}return_url = \"https://centre.example/paid\"\n"), false).is_ok());
    assert!(matches!(build("return_url = \"\"\n", false), Ok(None)), "off: nothing to return to");
}

#[test]
fn a_failure_is_named_by_vnpays_answer_never_by_transaction_number_zero() {
    let ipn = |code: &str, status: &str, no: &str| Ipn {
        reference: "HCC241126ABCDEFGH".into(),
        amount_vnd: 150_000,
        outcome: classify(code, status),
        paid: classify(code, status) == Verdict::Paid,
        transaction: no.into(),
        pay_date: String::new(),
        response_code: code.into(),
        transaction_status: status.into(),
    };
    assert_eq!(settlement_transaction(&ipn("24", "02", "0")), "ipn-failed:24:02");
    assert_eq!(settlement_transaction(&ipn("24", "02", "")), "ipn-failed:24:02");
    assert_eq!(settlement_transaction(&ipn("11", "02", "0")), "ipn-failed:11:02");
    assert_eq!(settlement_transaction(&ipn("00", "00", "14123456")), "14123456");
}

#[test]
fn vnpay_reconciles_only_with_a_merchant_api_until_its_payment_urls_expire() {
    let without = build(ON, false).expect("valid").expect("on");
    assert!(without.creator().is_some() && without.reconciler().is_none());
    let with = build(
        &format!("{ON}api_url = \"https://v/api\"\nserver_ip = \"203.0.113.10\"\nreconcile_interval_secs = 7\n"),
        false,
    )
    .expect("valid")
    .expect("on");
    assert_eq!(
        with.reconciler().map(|r| r.schedule().every),
        Some(std::time::Duration::from_secs(7))
    );
    assert_eq!(
        with.reconciler().map(|r| r.schedule().lifetime),
        Some(std::time::Duration::from_secs(15 * 60)),
        "vnp_ExpireDate: expire_minutes after creation"
    );
}

#[tokio::test]
async fn a_forged_ipn_is_refused_with_rsp_code_97_and_nothing_to_apply() {
    let vnpay = build(&format!("{ON}hash_secret = \"{SECRET}\"\n"), false)
        .expect("valid")
        .expect("on");
    let head = CallbackHead {
        route: "/v1/callbacks/vnpay/ipn",
        params: vec![],
        query: "vnp_TxnRef=HCC241126ABCDEFGH&vnp_Amount=10000000&vnp_TmnCode=HCCDEV01&vnp_SecureHash=00",
        media_type: None,
    };
    let Err(refused) = vnpay.parse(head, vec![]).await else {
        panic!("a forged IPN was taken");
    };
    assert_eq!(refused.reply, Reply::Json(json!({"RspCode": "97", "Message": "Invalid signature"})));
}
