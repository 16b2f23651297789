//! VNPAY's two signatures, restated from the notes (the payment URL's and IPN's over the
//! sorted query, `querydr`'s over `|`-joined values), the `querydr` field lists, and the
//! timestamp check and random ids the handlers share.

/// Payment URL and IPN: every non-empty `vnp_` field but the hash ones, sorted by key,
/// form-encoded with `+` for spaces, `k=v` joined with `&`.
pub(super) fn query_signing_string(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.starts_with("vnp_") && k != "vnp_SecureHash" && k != "vnp_SecureHashType")
        .collect();
    p.sort();
    p.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>(),
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac512_hex(secret: &str, data: &str) -> String {
    hcc_signing::hmac_sha512(secret.as_bytes(), data.as_bytes())
        .map(hex::encode)
        .unwrap_or_default()
}

pub(super) fn vnpay_hash(params: &[(String, String)], secret: &str) -> String {
    hmac512_hex(secret, &query_signing_string(params))
}

/// `querydr`: the listed values joined with `|` (absent ones empty).
pub(super) fn pipe_hash(values: &[&str], secret: &str) -> String {
    hmac512_hex(secret, &values.join("|"))
}

pub(super) fn hash_ok(claimed: &str, expected: &str) -> bool {
    !expected.is_empty() && hcc_signing::ct_eq(claimed.to_ascii_lowercase().as_bytes(), expected.as_bytes())
}

pub(super) const QUERYDR_REQUEST: [&str; 9] = [
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
];

pub(super) const QUERYDR_ANSWER: [&str; 15] = [
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

/// `yyyyMMddHHmmss` with a real calendar date and time.
pub(super) fn valid_timestamp(s: &str) -> bool {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap_or(u32::MAX);
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && n(8, 10) < 24 && n(10, 12) < 60 && n(12, 14) < 60
}

pub(super) fn random_hex(n: usize) -> String {
    (0..n).map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)])).collect()
}
