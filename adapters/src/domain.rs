//! The vocabulary the gateway's core shares with its counterparts: the dossier code
//! (`MaHoSo`) every message of a dossier is ordered by, and the payment reference
//! (`MaThamChieu`) every provider and bank names a payment by. Both are parsed at the edge and
//! valid wherever they travel.

use std::fmt;

use crate::payments::vn_timestamp;

/// A dossier code (`MaHoSo`). Decree 61/2018 gives it as agency code, receipt date and sequence
/// (`000.00.22.H46-241125-0001`), but provinces' one-stop software writes it differently, and
/// every code a province issues must stay valid, so no province's shape is demanded. What is
/// refused is what makes a code unsafe where it travels (a URL path segment, Redis keys, logs):
/// - 1 to 100 characters, each an ASCII letter, an ASCII digit, `.`, `-` or `_`;
/// - no path separator (`/`, `\`): the code is one segment of
///   `/v1/dossiers/{MaHoSo}/progress`, where a `/` cannot be routed and `%2F` is read differently
///   by every proxy on the way;
/// - not a dot segment (`.` or `..`), and at least one letter or digit (so `-`, `___` or `...`
///   are no codes at all).
///
/// `docs/dvcqg.md` states the same pattern for centres.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaHoSo(String);

impl MaHoSo {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 100 {
            return Err("must be 1 to 100 characters".into());
        }
        if s.contains(['/', '\\']) {
            return Err("must not contain a path separator (/ or \\)".into());
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err("may contain only letters, digits and . - _".into());
        }
        if s == "." || s == ".." {
            return Err("must not be a dot segment (. or ..)".into());
        }
        if !s.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Err("must contain at least one letter or digit".into());
        }
        Ok(MaHoSo(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MaHoSo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
}
