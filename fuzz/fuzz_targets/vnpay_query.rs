//! The VNPAY readers (adapters/src/payments/vnpay/wire.rs): the IPN's raw query string and the
//! `querydr` answer. Most mutated inputs fail the hash check, so each input is also re-signed
//! here, by VNPAY's rule as docs/vnpay.md states it, and read again: the signature must then
//! hold (the gateway signs the same string VNPAY does, however the query is encoded), and what
//! the gateway reads must be the values that were signed.
#![no_main]

use hcc_adapters::payments::vnpay::{self, IpnError, MAX_IPN_PARAMS, MAX_IPN_QUERY_BYTES, Verdict, QueryDrError};
use hcc_fuzz::{SECRET, TMN_CODE};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn hmac_hex(data: &str) -> String {
    hex::encode(hcc_signing::hmac_sha512(SECRET.as_bytes(), data.as_bytes()).expect("HMAC-SHA512"))
}

/// VNPAY's signing string: the non-empty `vnp_` parameters but `vnp_SecureHash` and
/// `vnp_SecureHashType`, sorted by key, each `key=value` form-encoded, joined with `&`.
fn vnpay_signing_data(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k.starts_with("vnp_") && k != "vnp_SecureHash" && k != "vnp_SecureHashType" && !v.is_empty())
        .collect();
    p.sort();
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.extend_pairs(p.iter().map(|(k, v)| (k, v)));
    s.finish()
}

fn ipn(query: &str) {
    let _ = vnpay::verify_ipn(query, TMN_CODE, SECRET);
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "vnp_SecureHash")
        .collect();
    let hash = hmac_hex(&vnpay_signing_data(&params));
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.extend_pairs(&params);
    s.append_pair("vnp_SecureHash", &hash);
    let resigned = s.finish();
    let mut keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    let repeated = keys.windows(2).any(|w| w[0] == w[1]);
    let fits = resigned.len() <= MAX_IPN_QUERY_BYTES && params.len() < MAX_IPN_PARAMS;
    let signed = |k: &str| params.iter().find(|(pk, v)| pk == k && !v.is_empty()).map(|(_, v)| v.as_str());
    match vnpay::verify_ipn(&resigned, TMN_CODE, SECRET) {
        Err(IpnError::BadSignature) if fits && !repeated => {
            panic!("a correctly signed IPN was refused: {resigned}")
        }
        Ok(ipn) => {
            assert!(fits && !repeated, "{resigned}");
            assert_eq!(Some(TMN_CODE), signed("vnp_TmnCode"));
            assert_eq!(Some(ipn.reference.as_str()), signed("vnp_TxnRef"));
            assert!(hcc_adapters::payments::is_reference(&ipn.reference));
            assert_eq!(Some((ipn.amount_vnd * 100).to_string().as_str()), signed("vnp_Amount"));
            assert_eq!(ipn.paid, ipn.outcome == Verdict::Paid);
            if ipn.paid {
                assert_eq!(signed("vnp_ResponseCode"), Some("00"));
                assert_eq!(signed("vnp_TransactionStatus"), Some("00"));
                assert!(!ipn.transaction.is_empty());
            }
            assert_eq!(ipn.transaction, signed("vnp_TransactionNo").unwrap_or(""));
        }
        Err(e) => {
            let _ = e.rsp_code();
        }
    }
}

/// The fifteen fields a `querydr` answer signs, in order (VNPAY's API).
const QUERYDR_ANSWER_FIELDS: [&str; 15] = [
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
];

fn querydr(mut v: Value) {
    const TXN_REF: &str = "HCC260101ABCDEFGH";
    let _ = vnpay::parse_querydr_answer(&v, TXN_REF, TMN_CODE, SECRET);
    let Some(m) = v.as_object_mut() else {
        return;
    };
    let mut parts = Vec::new();
    for key in QUERYDR_ANSWER_FIELDS {
        parts.push(match m.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            // Not a signable field: the reader refuses it before the hash.
            Some(_) => return,
        });
    }
    m.insert("vnp_SecureHash".into(), Value::String(hmac_hex(&parts.join("|"))));
    match vnpay::parse_querydr_answer(&v, TXN_REF, TMN_CODE, SECRET) {
        Err(QueryDrError::BadSignature) => panic!("a correctly signed querydr answer was refused: {v}"),
        Ok(vnpay::QueryDr::Paid { amount_vnd, .. }) => {
            assert_eq!(v.get("vnp_TxnRef").and_then(Value::as_str), Some(TXN_REF));
            assert!(amount_vnd > 0);
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<Value>(text) {
        Ok(v) => querydr(v),
        Err(_) => ipn(text),
    }
});
