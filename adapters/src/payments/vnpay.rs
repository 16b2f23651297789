//! VNPAY 2.1.0: the signed payment URL the citizen is sent to, and the IPN (a server-to-server
//! HTTP GET) that confirms it. `vnp_SecureHash` is HMAC-SHA512 over every non-empty `vnp_`
//! parameter but the hash fields, sorted by key, form-URL-encoded (space as `+`), joined with
//! `&`; compared case-insensitively and in constant time. Amounts travel ×100.

pub const VERSION: &str = "2.1.0";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The string VNPAY signs, from unsorted parameters.
fn signing_data(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k.starts_with("vnp_") && k != "vnp_SecureHash" && k != "vnp_SecureHashType" && !v.is_empty())
        .collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn secure_hash(params: &[(String, String)], secret: &str) -> String {
    hcc_signing::hmac_sha512(secret.as_bytes(), signing_data(params).as_bytes())
        .map(hex::encode)
        .unwrap_or_default()
}

pub struct PaymentRequest<'a> {
    pub pay_url: &'a str,
    pub tmn_code: &'a str,
    pub reference: &'a str,
    pub amount_vnd: u64,
    pub order_info: &'a str,
    pub create_date: &'a str,
    pub return_url: &'a str,
    pub ip: &'a str,
}

pub fn payment_url(r: &PaymentRequest<'_>, secret: &str) -> String {
    let params: Vec<(String, String)> = [
        ("vnp_Version", VERSION.to_string()),
        ("vnp_Command", "pay".into()),
        ("vnp_TmnCode", r.tmn_code.into()),
        ("vnp_Amount", (r.amount_vnd * 100).to_string()),
        ("vnp_CurrCode", "VND".into()),
        ("vnp_TxnRef", r.reference.into()),
        ("vnp_OrderInfo", r.order_info.into()),
        ("vnp_OrderType", "other".into()),
        ("vnp_Locale", "vn".into()),
        ("vnp_ReturnUrl", r.return_url.into()),
        ("vnp_IpAddr", r.ip.into()),
        ("vnp_CreateDate", r.create_date.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let hash = secure_hash(&params, secret);
    format!("{}?{}&vnp_SecureHash={hash}", r.pay_url, signing_data(&params))
}

/// An IPN whose signature holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipn {
    pub reference: String,
    pub amount_vnd: u64,
    /// Both `vnp_ResponseCode` and `vnp_TransactionStatus` are `00`.
    pub paid: bool,
    pub transaction: String,
    pub pay_date: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpnError {
    #[error("vnp_SecureHash does not match")]
    BadSignature,
    #[error("{0} is missing or invalid")]
    Field(&'static str),
}

/// Checks an IPN's query string. The signature comes first: nothing else is read from an
/// unsigned message.
pub fn verify_ipn(query: &str, secret: &str) -> Result<Ipn, IpnError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str()).unwrap_or("");
    let claimed = get("vnp_SecureHash").to_ascii_lowercase();
    let expected = secure_hash(&params, secret);
    if claimed.is_empty() || !hcc_signing::ct_eq(claimed.as_bytes(), expected.as_bytes()) {
        return Err(IpnError::BadSignature);
    }
    let reference = get("vnp_TxnRef").to_string();
    if reference.is_empty() {
        return Err(IpnError::Field("vnp_TxnRef"));
    }
    let raw: u64 = get("vnp_Amount").parse().map_err(|_| IpnError::Field("vnp_Amount"))?;
    if !raw.is_multiple_of(100) {
        return Err(IpnError::Field("vnp_Amount"));
    }
    Ok(Ipn {
        reference,
        amount_vnd: raw / 100,
        paid: get("vnp_ResponseCode") == "00" && get("vnp_TransactionStatus") == "00",
        transaction: get("vnp_TransactionNo").to_string(),
        pay_date: get("vnp_PayDate").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipn(secret: &str, amount: &str, code: &str) -> String {
        let params: Vec<(String, String)> = [
            ("vnp_TmnCode", "T1"),
            ("vnp_Amount", amount),
            ("vnp_BankCode", "NCB"),
            ("vnp_OrderInfo", "Le phi ho so 000.00.22"),
            ("vnp_ResponseCode", code),
            ("vnp_TransactionStatus", code),
            ("vnp_TxnRef", "HCC241126ABCDEFGH"),
            ("vnp_TransactionNo", "14123456"),
            ("vnp_PayDate", "20241126133005"),
            ("vnp_CardType", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let hash = secure_hash(&params, secret).to_uppercase();
        let q: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter()).finish();
        format!("{q}&vnp_SecureHashType=HmacSHA512&vnp_SecureHash={hash}")
    }

    #[test]
    fn spaces_encode_as_plus_and_empty_values_are_left_out() {
        let p = vec![
            ("vnp_B".to_string(), "a b".to_string()),
            ("vnp_A".to_string(), "x/y".to_string()),
            ("vnp_C".to_string(), String::new()),
            ("other".to_string(), "z".to_string()),
        ];
        assert_eq!(signing_data(&p), "vnp_A=x%2Fy&vnp_B=a+b");
    }

    #[test]
    fn ipns_are_verified_before_anything_is_read() {
        let ok = verify_ipn(&ipn("s", "10000000", "00"), "s").unwrap();
        assert_eq!(
            (ok.amount_vnd, ok.paid, ok.reference.as_str()),
            (100_000, true, "HCC241126ABCDEFGH")
        );
        assert!(!verify_ipn(&ipn("s", "10000000", "24"), "s").unwrap().paid);
        assert_eq!(
            verify_ipn(&ipn("other", "10000000", "00"), "s").unwrap_err(),
            IpnError::BadSignature
        );
        assert_eq!(
            verify_ipn(&ipn("s", "10000000", "00").replace("10000000", "20000000"), "s").unwrap_err(),
            IpnError::BadSignature
        );
        assert_eq!(verify_ipn("vnp_TxnRef=x", "s").unwrap_err(), IpnError::BadSignature);
    }

    #[test]
    fn the_payment_url_carries_a_hash_over_its_own_parameters() {
        let url = payment_url(
            &PaymentRequest {
                pay_url: "http://pay",
                tmn_code: "T1",
                reference: "R",
                amount_vnd: 5,
                order_info: "le phi",
                create_date: "20241126133005",
                return_url: "http://back",
                ip: "127.0.0.1",
            },
            "s",
        );
        let query = url.split_once('?').unwrap().1;
        assert!(query.contains("vnp_Amount=500"));
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let claimed = params.iter().find(|(k, _)| k == "vnp_SecureHash").unwrap().1.clone();
        assert_eq!(claimed, secure_hash(&params, "s"));
    }
}
