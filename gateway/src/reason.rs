//! A dead letter's reason in plain words, English and Vietnamese, for the operator and the
//! centre's staff: the stored `last_error` says what the destination answered, in the
//! gateway's and the destination's terms; this says what happened and what to do.
//!
//! The classification reads the reasons the gateway itself writes (the portal adapter's
//! `portal refused …`, the engine's `gave up after …`, the HTTP adapters' `upstream refused …`,
//! a configuration alarm); any other text gets the general wording. The destination's own
//! words, already masked by the engine, are quoted where they help.

use serde::Serialize;
use utoipa::ToSchema;

/// Longest quotation of a destination's own words inside a plain reason, in characters.
const QUOTE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlainReason {
    pub en: String,
    pub vi: String,
}

fn quote(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > QUOTE_CHARS {
        let mut q: String = s.chars().take(QUOTE_CHARS).collect();
        q.push('…');
        q
    } else {
        s.to_string()
    }
}

/// The plain reason of a dead letter whose last error is `error` (already masked).
pub fn of_dead_letter(error: &str) -> PlainReason {
    // The engine wraps the last transient error when it gives up: the wrapped one says why.
    if let Some(rest) = error.strip_prefix("gave up after ") {
        let (budget, last) = rest.split_once("; last error: ").unwrap_or((rest, ""));
        let cause = of_transient(last);
        let (en_spent, vi_spent) = match budget.split_once(" h and ") {
            Some((hours, _)) => (format!("after retrying for {hours} h"), format!("sau {hours} giờ thử lại")),
            None => {
                let n = budget.split(' ').next().unwrap_or("");
                (format!("after {n} attempts"), format!("sau {n} lần thử"))
            }
        };
        return PlainReason {
            en: format!(
                "The gateway stopped retrying {en_spent}: {} Replay it once that is fixed.",
                cause.en
            ),
            vi: format!(
                "Cổng kết nối đã ngừng gửi lại {vi_spent}: {} Hãy gửi lại khi lỗi đã được khắc phục.",
                cause.vi
            ),
        };
    }
    for service in ["DongBoHoSoMC", "CapNhatTienDoHoSoMC"] {
        if let Some(rest) = error.strip_prefix(&format!("portal refused {service} ")) {
            let said = rest.split_once("): ").map_or("", |(_, m)| m);
            let what_en = if service == "DongBoHoSoMC" {
                "the dossier's data"
            } else {
                "the dossier's progress update"
            };
            let what_vi = if service == "DongBoHoSoMC" {
                "dữ liệu hồ sơ"
            } else {
                "cập nhật tiến độ hồ sơ"
            };
            return PlainReason {
                en: format!(
                    "The national portal refused {what_en}: “{}”. Correct the dossier in the centre's software and send it again.",
                    quote(said)
                ),
                vi: format!(
                    "Cổng Dịch vụ công quốc gia từ chối {what_vi}: “{}”. Hãy sửa hồ sơ trong phần mềm của trung tâm rồi gửi lại.",
                    quote(said)
                ),
            };
        }
    }
    if let Some(code) = error.strip_prefix("upstream refused the message: HTTP ") {
        return PlainReason {
            en: format!(
                "The destination refused the message (HTTP {}). Check the message and the destination's settings.",
                quote(code)
            ),
            vi: format!(
                "Nơi nhận từ chối tin nhắn (HTTP {}). Hãy kiểm tra nội dung tin nhắn và cấu hình nơi nhận.",
                quote(code)
            ),
        };
    }
    if error.starts_with("stored payload is not a JSON object") || error.starts_with("the portal adapter does not handle") {
        return PlainReason {
            en: "The gateway cannot read this stored message; report it to the integration team.".into(),
            vi: "Cổng kết nối không đọc được tin nhắn đã lưu; hãy báo cho nhóm tích hợp.".into(),
        };
    }
    PlainReason {
        en: format!("Delivery failed: “{}”.", quote(error)),
        vi: format!("Gửi không thành công: “{}”.", quote(error)),
    }
}

/// The cause of a transient failure, as a sentence.
fn of_transient(error: &str) -> PlainReason {
    let lower = error.to_ascii_lowercase();
    if lower.contains("username and") || lower.contains("password") || lower.contains("credentials") {
        return PlainReason {
            en: "the portal refused the gateway's credentials (check dvcqg.username and dvcqg.password).".into(),
            vi: "cổng từ chối thông tin đăng nhập của cổng kết nối (kiểm tra dvcqg.username và dvcqg.password).".into(),
        };
    }
    if lower.starts_with("configuration fault") {
        return PlainReason {
            en: "the gateway's settings for this destination are wrong (an alarm was raised).".into(),
            vi: "cấu hình của cổng kết nối cho nơi nhận này bị sai (đã phát cảnh báo).".into(),
        };
    }
    if lower.contains("timed out") || lower.contains("in time") || lower.contains("connect") || lower.contains("http 5") {
        return PlainReason {
            en: "the destination could not be reached or kept failing.".into(),
            vi: "không kết nối được tới nơi nhận hoặc nơi nhận liên tục báo lỗi.".into(),
        };
    }
    PlainReason {
        en: format!("the last error was “{}”.", quote(error)),
        vi: format!("lỗi cuối cùng là “{}”.", quote(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_refusal_quotes_the_portal_and_says_what_to_do() {
        let r = of_dead_letter("portal refused DongBoHoSoMC (error_code 2): Mã TTHC không tồn tại");
        assert!(
            r.en.starts_with("The national portal refused the dossier's data: “Mã TTHC không tồn tại”"),
            "{}",
            r.en
        );
        assert!(
            r.vi.starts_with("Cổng Dịch vụ công quốc gia từ chối dữ liệu hồ sơ: “Mã TTHC không tồn tại”"),
            "{}",
            r.vi
        );
        let p = of_dead_letter("portal refused CapNhatTienDoHoSoMC (error_code 5): sai");
        assert!(p.en.contains("progress update") && p.vi.contains("cập nhật tiến độ"));
    }

    #[test]
    fn giving_up_names_the_budget_and_the_cause() {
        let r = of_dead_letter("gave up after 72.0 h and 40 attempts; last error: upstream timed out");
        assert!(
            r.en.starts_with("The gateway stopped retrying after retrying for 72.0 h: the destination could not be reached"),
            "{}",
            r.en
        );
        assert!(
            r.vi.contains("sau 72.0 giờ thử lại") && r.vi.contains("không kết nối được"),
            "{}",
            r.vi
        );
        let c = of_dead_letter(
            "gave up after 3 attempts; last error: configuration fault (alarm raised): the portal refused a freshly issued session (or the LGSP answered 401): check dvcqg.username and dvcqg.password",
        );
        assert!(c.en.contains("after 3 attempts") && c.en.contains("credentials"), "{}", c.en);
        assert!(c.vi.contains("thông tin đăng nhập"), "{}", c.vi);
    }

    #[test]
    fn other_reasons_are_quoted_and_bounded() {
        assert!(of_dead_letter("upstream refused the message: HTTP 400").en.contains("HTTP 400"));
        let long = "x".repeat(5000);
        let r = of_dead_letter(&long);
        assert!(r.en.chars().count() < QUOTE_CHARS + 40, "{}", r.en.len());
        assert!(r.vi.starts_with("Gửi không thành công"));
    }
}
