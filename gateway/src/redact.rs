//! Masks personal identity numbers before text reaches a log line or an operator's screen.
//! A Vietnamese citizen ID (CCCD) has 12 digits, the older ID card (CMND) 9; any run of 9 to 12
//! digits is masked but for its last two, which is enough for a person to tell two apart.

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
    fn masks_cccd_and_cmnd_but_not_short_numbers_or_dates() {
        assert_eq!(m("SoCMNDNguoiNop 001203004567 invalid"), "SoCMNDNguoiNop **********67 invalid");
        assert_eq!(m("cmnd=123456789"), "cmnd=*******89");
        assert_eq!(m("HTTP 503 after 3 attempts"), "HTTP 503 after 3 attempts");
        assert_eq!(m("date 20241125083000"), "date 20241125083000");
        assert_eq!(m(""), "");
    }
}
