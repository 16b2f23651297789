//! The payment providers' protocols (`shared/domain/payments.md`): the national payment
//! platform (PayGov), VNPAY, and banks' ISO 20022 camt.054 notifications. Each module builds
//! and checks its provider's messages; what a confirmation does to a payment is decided in one
//! place in the gateway, the same for every route.

pub mod camt054;
pub mod paygov;
pub mod vnpay;

/// Vietnam's civil time (UTC+7, no daylight saving) as `yyyyMMddHHmmss`, from Unix seconds.
pub fn vn_timestamp(unix_secs: i64) -> String {
    let t = unix_secs + 7 * 3600;
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let sod = t.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The characters of a reference's random tail: upper-case letters and digits without the
/// look-alikes `I`, `O`, `0` and `1`, so that a reference copied by hand stays one reference.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of a reference: `HCC`, six digits of date, eight of [`ALPHABET`].
pub const REFERENCE_LEN: usize = 17;

/// The system's random generator failed. A reference made without it (all zeros, say) would
/// collide with the next one and could name someone else's payment, so none is made.
#[derive(Debug, thiserror::Error)]
#[error("the random generator failed, so no payment reference was made: {0}")]
pub struct RandomnessError(#[from] hcc_signing::CryptoError);

/// A payment reference (`MaThamChieu`): `HCC`, the date, and eight random characters, unique per
/// attempt. Its shape lets it be found inside a bank's free-text remittance information.
pub fn new_reference(unix_secs: i64) -> Result<String, RandomnessError> {
    let mut random = [0u8; 8];
    hcc_signing::random_bytes(&mut random)?;
    let tail: String = random.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    Ok(format!("HCC{}{tail}", &vn_timestamp(unix_secs)[2..8]))
}

/// Whether `s` is exactly a reference [`new_reference`] could have made: `HCC`, six digits,
/// eight characters of its alphabet, upper case, nothing before or after. Every route that
/// names a payment (`GET /v1/payments/{MaThamChieu}`, the providers' callbacks) asks this before
/// anything is looked up, so a value such as `pending` never reaches the store's key space.
pub fn is_reference(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == REFERENCE_LEN
        && b.starts_with(b"HCC")
        && b[3..9].iter().all(u8::is_ascii_digit)
        && b[9..].iter().all(|c| ALPHABET.contains(c))
}

/// `s` as a reference, when [`is_reference`] holds.
pub fn parse_reference(s: &str) -> Option<&str> {
    is_reference(s).then_some(s)
}

/// A provider's amount as the strict digit string it was signed as: ASCII digits only (no
/// sign, space, decimal point or exponent), no leading zero (`0` alone is zero), at most 19
/// digits, and within `u64`. Rust's own parser would take `+5` and `007`; an amount written
/// two ways could be read two ways by two readers of the same signed message.
pub fn strict_amount(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    s.parse().ok()
}

/// Why a provider's payment URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentUrlError {
    #[error("the payment URL is empty, too long, or holds spaces or control characters")]
    Text,
    #[error("the payment URL is not an absolute URL")]
    NotAUrl,
    #[error("the payment URL must be https (http only to a loopback host, for development)")]
    Scheme,
    #[error("the payment URL must not carry a user name or password")]
    Credentials,
}

/// The longest payment URL taken: it is shown to a citizen's browser, which has limits too.
const MAX_PAYMENT_URL: usize = 2048;

/// Checks a payment page URL a provider gave (PayGov's `UrlThanhToan`) or configuration names
/// (`vnpay.pay_url`) before a citizen is sent there: `https` with a host, or `http` only when
/// the host is a loopback address (`localhost`, `127.0.0.0/8`, `::1`). That is how development
/// is recognised: a mock on this machine; no setting can let plain http out to the network,
/// and `javascript:`, `data:` and relative URLs never pass. Returns the URL as given.
pub fn check_payment_url(raw: &str) -> Result<&str, PaymentUrlError> {
    if raw.is_empty() || raw.len() > MAX_PAYMENT_URL || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PaymentUrlError::Text);
    }
    let url = reqwest::Url::parse(raw).map_err(|_| PaymentUrlError::NotAUrl)?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(PaymentUrlError::NotAUrl)?;
    // The URL parser has already put IP literals in canonical form (IPv6 in brackets).
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(PaymentUrlError::Scheme),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PaymentUrlError::Credentials);
    }
    Ok(raw)
}

/// Finds a reference of [`new_reference`]'s shape in free text.
pub fn find_reference(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let mut i = 0;
    while let Some(pos) = upper[i..].find("HCC") {
        let start = i + pos;
        let end = start + 17;
        if end <= bytes.len()
            && bytes[start + 3..start + 9].iter().all(u8::is_ascii_digit)
            && bytes[start + 9..end].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && (end == bytes.len() || !bytes[end].is_ascii_alphanumeric())
        {
            return Some(upper[start..end].to_string());
        }
        i = start + 3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_vietnam_time_on_a_24_hour_clock() {
        // 2024-11-26T06:30:05Z is 13:30:05 in Hà Nội.
        assert_eq!(vn_timestamp(1_732_602_605), "20241126133005");
    }

    #[test]
    fn references_are_found_in_free_text() {
        let r = new_reference(1_732_602_605).unwrap();
        assert!(r.starts_with("HCC241126") && r.len() == 17, "{r}");
        assert_eq!(find_reference(&format!("Thanh toan le phi {r} ho so 000.00.22")), Some(r.clone()));
        assert_eq!(find_reference(&r.to_lowercase()), Some(r));
        assert_eq!(find_reference("HCC2411"), None);
        assert_eq!(find_reference("nothing here"), None);
    }

    #[test]
    fn references_are_checked_by_shape_before_any_look_up() {
        for _ in 0..50 {
            let r = new_reference(1_732_602_605).unwrap();
            assert!(is_reference(&r), "{r}");
            assert_eq!(parse_reference(&r), Some(r.as_str()));
        }
        assert!(is_reference("HCC241126ABCDEFGH"));
        for bad in [
            "",
            "pending",
            "HCC241126ABCDEFG",
            "HCC241126ABCDEFGHJ",
            "hcc241126abcdefgh",
            "HCC24112XABCDEFGH",
            "HCC241126ABCDEFG0",
            "HCC241126ABCDEFGO",
            "HCC241126ABCDEFG1",
            "HCC241126ABCDEFGI",
            "XCC241126ABCDEFGH",
            "HCC241126ABCDEF/H",
            "HCC241126ABCDEFGĐ",
            " HCC241126ABCDEFGH",
        ] {
            assert!(!is_reference(bad), "{bad:?}");
            assert_eq!(parse_reference(bad), None);
        }
    }

    #[test]
    fn provider_amounts_are_strict_digit_strings() {
        assert_eq!(strict_amount("15000000"), Some(15_000_000));
        assert_eq!(strict_amount("0"), Some(0));
        assert_eq!(strict_amount("18446744073709551615"), None, "20 digits");
        assert_eq!(strict_amount("9999999999999999999"), Some(9_999_999_999_999_999_999));
        for bad in ["", "+5", "-5", "05", "00", " 5", "5 ", "5.0", "1e5", "٥", "0x10", "5_000"] {
            assert_eq!(strict_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn payment_urls_are_https_or_loopback_http() {
        for ok in [
            "https://paygov.example.vn/pay/HCC241126ABCDEFGH",
            "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
            "http://127.0.0.1:9102/vnpay/pay",
            "http://127.8.9.10/pay",
            "http://localhost:9101/pay",
            "http://LOCALHOST/pay",
            "http://[::1]:9101/pay",
        ] {
            assert_eq!(check_payment_url(ok), Ok(ok));
        }
        for (bad, why) in [
            ("http://paygov.example.vn/pay", PaymentUrlError::Scheme),
            ("http://10.0.0.1/pay", PaymentUrlError::Scheme),
            ("http://localhost.attacker.example/pay", PaymentUrlError::Scheme),
            ("http://[::ffff:10.0.0.1]/pay", PaymentUrlError::Scheme),
            ("javascript:alert(1)", PaymentUrlError::NotAUrl),
            ("data:text/html,<script>alert(1)</script>", PaymentUrlError::NotAUrl),
            ("ftp://paygov.example.vn/pay", PaymentUrlError::Scheme),
            ("file:///etc/passwd", PaymentUrlError::NotAUrl),
            ("//paygov.example.vn/pay", PaymentUrlError::NotAUrl),
            ("/pay", PaymentUrlError::NotAUrl),
            ("https://user:pw@paygov.example.vn/pay", PaymentUrlError::Credentials),
            ("https://paygov.example.vn/pay\r\nX: y", PaymentUrlError::Text),
            (" https://paygov.example.vn/pay", PaymentUrlError::Text),
            ("", PaymentUrlError::Text),
        ] {
            assert_eq!(check_payment_url(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            check_payment_url(&format!("https://paygov.example.vn/{}", "a".repeat(2100))),
            Err(PaymentUrlError::Text)
        );
    }
}
