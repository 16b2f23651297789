//! Makes text from outside safe to show: identity numbers are masked and control characters
//! escaped before the text reaches a log line, the audit log, a stored `last_error`, or an
//! operator's screen.
//!
//! # Identity numbers
//!
//! A Vietnamese citizen ID (CCCD) has 12 digits, the older ID card (CMND) 9, a mobile number
//! 10. People write them as one run (`001203004567`) or in groups (`001 203 004 567`,
//! `001-203-004-567`, `0012 0300 4567`, `0912.345.678`). A masked number keeps its last two
//! digits and its separators (`*** *** *** *67`), which is enough for a person to tell two
//! apart. [`mask_identity_numbers`] masks:
//!
//! 1. any run of 9 to 12 digits, wherever it stands (`CMND123456789` too);
//! 2. groups of at least 3 digits joined by a hyphen or one or two spaces, when two or more of
//!    them hold 9 digits or more together (`123 456 789`, `001-203-004-567`, `0912 345 678`;
//!    a 16-digit card number in fours too);
//! 3. groups of at least 2 digits joined by dots, 9 to 12 digits in all, when the first group
//!    starts with 0: an ID's province code or a mobile prefix (`0912.345.678`,
//!    `001.203.004.567`).
//!
//! What stays, and why:
//! - dates and times (`2024-11-25`, `25/11/2024`, `08:30:00`, `2024-11-25T08:30:00Z`), with
//!   their groups of 2 and 4 digits and at most 8 digits in all;
//! - amounts as Vietnamese write them, with dots (`100.000`, `100.000.000`, `1.500.000.000`):
//!   they never start with 0. A 9-digit CMND written with dots and not starting with 0 cannot be
//!   told from an amount and stays; nobody was seen writing one so;
//! - amounts under 9 digits written with spaces (`100 000`, `1 500 000`);
//! - codes, where the digits are glued by a hyphen or a dot to letters: `MaHoSo`
//!   `000.00.22.H46-241125-0001`, `MaDonVi` `000.00.22.H46`, `MaTTHC` `1.004227` (a run of 9
//!   to 12 digits inside a code is still masked, by rule 1);
//! - runs of 13 digits or more: timestamps `20241125083000`, milliseconds, bank accounts
//!   `0011004123456`;
//! - the gateway's own machine identifiers, which are never personal and which operators
//!   search logs for: UUIDs (message and request ids) and payment references
//!   (`HCC241126` and eight characters).
//!
//! Masking errs on the safe side: an amount of 9 digits or more written with spaces
//! (`100 000 000`), or a list of numbers such as `500 502 503`, is masked too. A log reader
//! loses those rare forms; a citizen's number does not leak.
//!
//! Numbers a log field carries as integers (amounts, durations, counts) are the gateway's own
//! and are not masked: see `monitoring`.
//!
//! # Control characters
//!
//! A newline in a logged value forges a log line; an ANSI escape rewrites a terminal; a
//! bidirectional override reorders what an operator reads. [`push_escaped`] writes every
//! control character (C0, DEL, C1), the Unicode line and paragraph separators and the
//! bidirectional controls as escapes: `\n`, `\r`, `\t`, or `\u{1b}`.

use std::fmt;

/// Longest outside value an [`Escaped`] log field carries, in characters.
const MAX_LOGGED_CHARS: usize = 256;

/// A value from outside, made safe for a log line (see the module docs): identity numbers
/// masked, control characters escaped, cut after 256 characters.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        push_escaped(f, &mask_identity_numbers(self.0), MAX_LOGGED_CHARS)
    }
}

/// Text from outside as the gateway stores and shows it (a message's `last_error`, a dead
/// letter's reason): identity numbers masked, control characters escaped, at most `max_chars`
/// characters (then `…`).
pub fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    // Writing into a String cannot fail.
    let _ = push_escaped(&mut out, &mask_identity_numbers(text), max_chars);
    out
}

/// Whether `ch` must not reach a log line or a terminal as itself.
fn must_escape(ch: char) -> bool {
    ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes `text` with control characters escaped (see the module docs), cut after `max_chars`
/// characters with `…`. Nothing else is changed: a backslash stays a backslash.
pub fn push_escaped(out: &mut impl fmt::Write, text: &str, max_chars: usize) -> fmt::Result {
    for (i, ch) in text.chars().enumerate() {
        if i == max_chars {
            return out.write_char('…');
        }
        match ch {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if must_escape(c) => write!(out, "{}", c.escape_unicode())?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Masks identity numbers in `text` (see the module docs for what is masked and what stays).
/// Masking is idempotent: masked text passes through unchanged.
pub fn mask_identity_numbers(text: &str) -> String {
    let bytes = text.as_bytes();
    let groups = digit_groups(text);
    // hide[b]: the digit at byte b becomes '*'.
    let mut hide = vec![false; bytes.len()];
    let mut mask = |first: usize, last: usize| {
        // Every digit from the first group's start to the last group's end, but the last two.
        let (start, end) = (groups[first].0, groups[last].1);
        let mut keep = 2;
        for b in (start..end).rev() {
            if bytes[b].is_ascii_digit() {
                if keep > 0 {
                    keep -= 1;
                } else {
                    hide[b] = true;
                }
            }
        }
    };
    // Rule 1: a run of 9 to 12 digits.
    for (i, g) in groups.iter().enumerate() {
        if (9..=12).contains(&(g.1 - g.0)) {
            mask(i, i);
        }
    }
    // Rule 2: groups of three or more digits joined by a hyphen or spaces.
    for (first, last) in chains(text, &groups, Link::HyphenOrSpace) {
        let (first, last) = unglued(text, &groups, first, last);
        let mut i = first;
        while i <= last {
            let mut j = i;
            let mut total = 0;
            while j <= last && (3..=12).contains(&(groups[j].1 - groups[j].0)) {
                total += groups[j].1 - groups[j].0;
                j += 1;
            }
            if j > i + 1 && total >= 9 {
                mask(i, j - 1);
            }
            i = j + 1;
        }
    }
    // Rule 3: dotted groups starting with 0.
    for (first, last) in chains(text, &groups, Link::Dot) {
        let total: usize = (first..=last).map(|k| groups[k].1 - groups[k].0).sum();
        if last > first
            && bytes[groups[first].0] == b'0'
            && (first..=last).all(|k| groups[k].1 - groups[k].0 >= 2)
            && (9..=12).contains(&total)
            && !glued_before(text, groups[first].0)
            && !glued_after(text, groups[last].1)
        {
            mask(first, last);
        }
    }
    text.char_indices()
        .map(|(b, ch)| if hide.get(b).copied().unwrap_or(false) { '*' } else { ch })
        .collect()
}

/// The byte ranges of the maximal runs of ASCII digits, leaving out the gateway's own machine
/// identifiers.
fn digit_groups(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut groups = Vec::new();
    let mut b = 0;
    while b < bytes.len() {
        if let Some(len) = machine_token_at(text, b) {
            b += len;
        } else if bytes[b].is_ascii_digit() {
            let start = b;
            while b < bytes.len() && bytes[b].is_ascii_digit() {
                b += 1;
            }
            groups.push((start, b));
        } else {
            b += 1;
        }
    }
    groups
}

/// The length of a UUID (`8-4-4-4-12` hex digits) or of a payment reference (`HCC`, six
/// digits, eight characters of the reference alphabet) standing alone at byte `b`, if one does.
fn machine_token_at(text: &str, b: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if b > 0 && bytes[b - 1].is_ascii_alphanumeric() {
        return None;
    }
    let alone = |len: usize| bytes.len() >= b + len && bytes.get(b + len).is_none_or(|c| !c.is_ascii_alphanumeric());
    let uuid = alone(36)
        && bytes[b..b + 36].iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if uuid {
        return Some(36);
    }
    const REFERENCE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let reference = alone(17)
        && bytes[b..].starts_with(b"HCC")
        && bytes[b + 3..b + 9].iter().all(u8::is_ascii_digit)
        && bytes[b + 9..b + 17].iter().all(|c| REFERENCE_ALPHABET.contains(c));
    reference.then_some(17)
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    /// One hyphen, or one or two spaces.
    HyphenOrSpace,
    /// One dot.
    Dot,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}')
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{2011}')
}

/// How two neighbouring groups are joined: `Some(true)` by a hyphen, `Some(false)` by spaces
/// (rule 2) or a dot (rule 3), `None` when they are not joined in this way.
fn joined(between: &str, link: Link) -> Option<bool> {
    let mut chars = between.chars();
    let (first, second, third) = (chars.next(), chars.next(), chars.next());
    match (link, first, second, third) {
        (Link::HyphenOrSpace, Some(c), None, _) if is_hyphen(c) => Some(true),
        (Link::HyphenOrSpace, Some(c), None, _) if is_space(c) => Some(false),
        (Link::HyphenOrSpace, Some(c), Some(d), None) if is_space(c) && is_space(d) => Some(false),
        (Link::Dot, Some('.'), None, _) => Some(false),
        _ => None,
    }
}

/// The maximal chains of joined groups, as index ranges into `groups`.
fn chains(text: &str, groups: &[(usize, usize)], link: Link) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..groups.len() {
        let next_joined = groups.get(i + 1).is_some_and(|n| joined(&text[groups[i].1..n.0], link).is_some());
        if !next_joined {
            out.push((start, i));
            start = i + 1;
        }
    }
    out
}

/// Whether the text right before byte `at` makes the digits there part of a code: a letter or
/// digit touching them, or a hyphen, dot or slash with a letter or digit before it.
fn glued_before(text: &str, at: usize) -> bool {
    let mut before = text[..at].chars().rev();
    match before.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some(c) if is_hyphen(c) || c == '.' || c == '/' => before.next().is_some_and(|d| d.is_alphanumeric() || d == '_'),
        _ => false,
    }
}

/// [`glued_before`], looking after byte `at`: a dot ending a sentence does not glue.
fn glued_after(text: &str, at: usize) -> bool {
    let mut after = text[at..].chars();
    match after.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some(c) if is_hyphen(c) || c == '.' || c == '/' => after.next().is_some_and(|d| d.is_alphanumeric() || d == '_'),
        _ => false,
    }
}

/// The part of the chain `first..=last` that is not a code. When the chain is glued to a code
/// on one side, the groups hyphenated to that side belong to the code (`H46-241125-0001`,
/// `2024-11-25T08`), but a group after a space starts free again (`…-0001 001 203 004 567`).
/// A single glued group is no code's shape and stays (`SoCMND123 456 789`). `first > last`
/// when nothing is left.
fn unglued(text: &str, groups: &[(usize, usize)], mut first: usize, mut last: usize) -> (usize, usize) {
    let hyphenated = |i: usize| joined(&text[groups[i].1..groups[i + 1].0], Link::HyphenOrSpace) == Some(true);
    if glued_before(text, groups[first].0) {
        let mut end = first;
        while end < last && hyphenated(end) {
            end += 1;
        }
        if end > first {
            first = end + 1;
        }
    }
    if first <= last && glued_after(text, groups[last].1) {
        let mut start = last;
        while start > first && hyphenated(start - 1) {
            start -= 1;
        }
        if start < last {
            if start == first {
                return (1, 0);
            }
            last = start - 1;
        }
    }
    if first > last { (1, 0) } else { (first, last) }
}

/// Masks identity numbers inside the string literals of one JSON document (a JSON log line),
/// leaving its numbers, names of fields aside, and escapes alone, so the result is still the
/// same JSON with masked strings.
pub fn mask_json_strings(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        // Inside a string: plain stretches between escapes are masked on their own.
        loop {
            let stop = rest.find(['"', '\\']).unwrap_or(rest.len());
            out.push_str(&mask_identity_numbers(&rest[..stop]));
            rest = &rest[stop..];
            if let Some(after) = rest.strip_prefix('\\') {
                // An escape: `\x`, or `\uXXXX`, copied as it is.
                let len = if after.starts_with('u') { 5 } else { 1 };
                let len = after.char_indices().nth(len).map_or(after.len(), |(b, _)| b);
                out.push('\\');
                out.push_str(&after[..len]);
                rest = &after[len..];
            } else {
                if let Some(after) = rest.strip_prefix('"') {
                    out.push('"');
                    rest = after;
                }
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::mask_identity_numbers as m;

    #[test]
    fn escaped_values_cannot_forge_a_log_line() {
        let shown = super::Escaped("ref\n2026-11-25 INFO forged\u{1b}[31m\r\u{2028}\u{202e} 001203004567").to_string();
        assert!(!shown.chars().any(super::must_escape), "{shown}");
        assert_eq!(shown, "ref\\n2026-11-25 INFO forged\\u{1b}[31m\\r\\u{2028}\\u{202e} **********67");
        assert_eq!(super::Escaped(&"x".repeat(1000)).to_string().chars().count(), 257);
        assert_eq!(super::clean("a\tb 001 203 004 567 ".repeat(10).as_str(), 12), "a\\tb *** *** …");
        // A backslash stays: only real control characters are escaped.
        assert_eq!(super::clean("C:\\n", 10), "C:\\n");
    }

    #[test]
    fn masks_cccd_and_cmnd_but_not_short_numbers_or_dates() {
        assert_eq!(m("SoCMNDNguoiNop 001203004567 invalid"), "SoCMNDNguoiNop **********67 invalid");
        assert_eq!(m("cmnd=123456789"), "cmnd=*******89");
        assert_eq!(m("CMND123456789"), "CMND*******89");
        assert_eq!(m("HTTP 503 after 3 attempts"), "HTTP 503 after 3 attempts");
        assert_eq!(m("date 20241125083000"), "date 20241125083000");
        assert_eq!(m("account 0011004123456"), "account 0011004123456");
        assert_eq!(m(""), "");
    }

    #[test]
    fn masks_numbers_written_with_spaces_or_hyphens() {
        for (text, want) in [
            ("001 203 004 567", "*** *** *** *67"),
            ("001-203-004-567", "***-***-***-*67"),
            ("022 190 000 123", "*** *** *** *23"),
            ("0012 0300 4567", "**** **** **67"),
            ("001203 004567", "****** ****67"),
            ("001  203  004  567", "***  ***  ***  *67"),
            ("001\u{a0}203\u{a0}004\u{a0}567", "***\u{a0}***\u{a0}***\u{a0}*67"),
            ("001\u{2011}203\u{2011}004\u{2011}567", "***\u{2011}***\u{2011}***\u{2011}*67"),
            ("123 456 789", "*** *** *89"),
            ("123-456-789", "***-***-*89"),
            ("0912 345 678", "**** *** *78"),
            ("091 234 5678", "*** *** **78"),
            ("+84 912 345 678", "+84 *** *** *78"),
            ("0912345678", "********78"),
        ] {
            assert_eq!(m(text), want, "{text}");
        }
    }

    #[test]
    fn masks_numbers_wherever_they_stand_in_a_sentence() {
        for (text, want) in [
            ("Số CCCD 001 203 004 567 không hợp lệ", "Số CCCD *** *** *** *67 không hợp lệ"),
            ("CCCD:001-203-004-567.", "CCCD:***-***-***-*67."),
            ("(001 203 004 567)", "(*** *** *** *67)"),
            (r#"{"SoCMNDNguoiNop":"001-203-004-567"}"#, r#"{"SoCMNDNguoiNop":"***-***-***-*67"}"#),
            ("ngày 2024-11-25 001 203 004 567", "ngày 2024-11-25 *** *** *** *67"),
            (
                "000.00.22.H46-241125-0001 001 203 004 567",
                "000.00.22.H46-241125-0001 *** *** *** *67",
            ),
            ("x\n001 203 004 567\n", "x\n*** *** *** *67\n"),
            ("a 001 203 004 567 and 123-456-789", "a *** *** *** *67 and ***-***-*89"),
            ("gọi 0912.345.678.", "gọi ****.***.*78."),
            ("CCCD 001 203 004 567x", "CCCD *** *** *** *67x"),
            ("SoCMND123 456 789", "SoCMND*** *** *89"),
            ("001.203.004.567", "***.***.***.*67"),
        ] {
            assert_eq!(m(text), want, "{text}");
        }
    }

    #[test]
    fn leaves_dates_times_amounts_codes_and_machine_ids() {
        for text in [
            "2024-11-25",
            "2024-11-25T08:30:00Z",
            "2024-11-25 08:30:00",
            "2026-11-25T00:00:00.123456Z  INFO",
            "25/11/2024 08 30 00",
            "100 000",
            "1 500 000 VND",
            "100.000",
            "100.000.000 đồng",
            "1.500.000.000",
            "MaHoSo 000.00.22.H46-241125-0001",
            "MaDonVi 000.00.22.H46, MaTTHC 1.004227",
            "0190f3a2-7b4c-7def-8123-456789012345",
            "id=0190f3a2-7b4c-7def-8123-456789012345.",
            "HCC241126234ABCDE",
            "bank:HCC241126234ABCDE paid",
            "IpNguoiNop 198.51.100.23, 203.113.100.123",
            "attempt 12 of 20, HTTP 502",
            "1732521600123 ms",
        ] {
            assert_eq!(m(text), text);
        }
    }

    #[test]
    fn errs_on_the_safe_side_where_shapes_coincide() {
        // An amount of 9 digits with spaces is a CMND's shape.
        assert_eq!(m("100 000 000"), "*** *** *00");
        // A year before a number joins it; the number is masked whole.
        assert_eq!(m("năm 2024 001 203 004 567"), "năm **** *** *** *** *67");
        // A reference-like text that is not one of ours is not spared.
        assert_eq!(m("HCC241126234ABCD"), "HCC*******34ABCD");
        // A UUID glued to more hex is not a UUID.
        assert_eq!(m("0190f3a2-7b4c-7def-8123-456789012345f"), "0190f3a2-7b4c-7def-8123-**********45f");
    }

    #[test]
    fn masking_is_idempotent() {
        for text in [
            "001 203 004 567",
            "cmnd=123456789",
            "0912.345.678",
            "năm 2024 001 203 004 567",
            "x **********67 y",
        ] {
            let once = m(text);
            assert_eq!(m(&once), once, "{text}");
        }
    }

    #[test]
    fn json_strings_are_masked_and_the_json_stays_valid() {
        let line = r#"{"level":"WARN","elapsed_us":123456789,"error":"CCCD 001 203 004 567\n\u0012345678901 x","id":"0190f3a2-7b4c-7def-8123-456789012345"}"#;
        let masked = super::mask_json_strings(line);
        assert_eq!(
            masked,
            r#"{"level":"WARN","elapsed_us":123456789,"error":"CCCD *** *** *** *67\n\u0012*******01 x","id":"0190f3a2-7b4c-7def-8123-456789012345"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(v["elapsed_us"], 123_456_789);
        // Unterminated input is still handled (a cut line), and nothing panics.
        assert_eq!(super::mask_json_strings(r#"{"a":"001203004567\"#), r#"{"a":"**********67\"#);
        assert_eq!(super::mask_json_strings(r#""\u00"#), r#""\u00"#);
    }
}
