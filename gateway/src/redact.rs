//! Masks personal identity numbers before text reaches a log line or an operator's screen.
//! A Vietnamese citizen ID (CCCD) has 12 digits, the older ID card (CMND) 9; any run of 9 to 12
//! digits is masked but for its last two, which is enough for a person to tell two apart.
//!
//! [`Escaped`] wraps any value from outside for a log field: control characters (a newline
//! forging a log line, an ANSI escape) are written as `\u{..}` escapes, identity numbers are
//! masked, and very long values are cut.

use std::fmt;

/// Longest outside value a log field carries, in characters.
const MAX_LOGGED_CHARS: usize = 256;

/// A value from outside, made safe for a log line (see the module docs).
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = mask_identity_numbers(self.0);
        for (i, ch) in masked.chars().enumerate() {
            if i == MAX_LOGGED_CHARS {
                return f.write_str("…");
            }
            if ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}') {
                write!(f, "{}", ch.escape_unicode())?;
            } else {
                fmt::Write::write_char(f, ch)?;
            }
        }
        Ok(())
    }
}

pub fn mask_identity_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if (9..=12).contains(&run.len()) {
            out.extend(std::iter::repeat_n('*', run.len() - 2));
            out.push_str(&run[run.len() - 2..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::mask_identity_numbers as m;

    #[test]
    fn escaped_values_cannot_forge_a_log_line() {
        let shown = super::Escaped("ref\n2026-11-25 INFO forged\u{1b}[31m 001203004567").to_string();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.contains("\\u{a}") && shown.contains("**********67"), "{shown}");
        assert_eq!(super::Escaped(&"x".repeat(1000)).to_string().chars().count(), 257);
    }

    #[test]
    fn masks_cccd_and_cmnd_but_not_short_numbers_or_dates() {
        assert_eq!(m("SoCMNDNguoiNop 001203004567 invalid"), "SoCMNDNguoiNop **********67 invalid");
        assert_eq!(m("cmnd=123456789"), "cmnd=*******89");
        assert_eq!(m("HTTP 503 after 3 attempts"), "HTTP 503 after 3 attempts");
        assert_eq!(m("date 20241125083000"), "date 20241125083000");
        assert_eq!(m(""), "");
    }
}
