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

/// A payment reference (`MaThamChieu`): `HCC`, the date, and eight random characters, unique per
/// attempt. Its shape lets it be found inside a bank's free-text remittance information.
pub fn new_reference(unix_secs: i64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut random = [0u8; 8];
    let _ = hcc_signing::random_bytes(&mut random);
    let tail: String = random.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    format!("HCC{}{tail}", &vn_timestamp(unix_secs)[2..8])
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
        let r = new_reference(1_732_602_605);
        assert!(r.starts_with("HCC241126") && r.len() == 17, "{r}");
        assert_eq!(find_reference(&format!("Thanh toan le phi {r} ho so 000.00.22")), Some(r.clone()));
        assert_eq!(find_reference(&r.to_lowercase()), Some(r));
        assert_eq!(find_reference("HCC2411"), None);
        assert_eq!(find_reference("nothing here"), None);
    }
}
