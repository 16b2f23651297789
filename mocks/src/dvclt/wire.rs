//! What the DVCLT mock checks on every request and how it words its answers: the `Accept` and
//! JSON-body rules the fork's client always follows, the status call's fields
//! (`shared/domain/dvcqg.md`, "Civil-registration link-up"), the `dd/MM/yyyy HH:mm:ss` times,
//! and the several forms a text answer may take.

use actix_web::HttpRequest;
use actix_web::http::header;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Whether the request's `Accept` names `application/json` (the fork's client always sends it).
pub fn accepts_json(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// The body as a JSON object: the fork's client sends one on every call, `{}` on a GET, with
/// `Content-Type: application/json`. `Err` is the 400's message.
pub fn json_object(req: &HttpRequest, body: &[u8]) -> Result<Map<String, Value>, &'static str> {
    let json_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if body.is_empty() {
        return Err("A non-empty request body is required.");
    }
    if !json_type {
        return Err("Content-Type must be application/json.");
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("The request body is not a JSON object."),
    }
}

/// `(year, month, day, hour, minute, second)` of a Unix time, UTC (days-to-civil, H. Hinnant).
pub fn civil(unix_secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn unix_now() -> u64 {
    crate::dvcqg_push::now_ms() / 1000
}

/// `dd/MM/yyyy HH:mm:ss`, the link-up's way of writing a time.
pub fn dmy(unix_secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_secs);
    format!("{d:02}/{mo:02}/{y:04} {h:02}:{mi:02}:{s:02}")
}

/// `yyyy-MM-ddTHH:mm:ss`, as an ASP.NET `DateTime` serialises (the token's expiry).
pub fn iso(unix_secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// `dd/MM/yyyy HH:mm:ss` naming a real calendar time.
pub fn real_dmy(v: &str) -> bool {
    let b = v.as_bytes();
    let shape = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b'/',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return false;
    }
    let p = |a: usize, z: usize| v[a..z].parse::<u32>().unwrap_or(99);
    let (d, mo, y, h, mi, s) = (p(0, 2), p(3, 5), p(6, 10), p(11, 13), p(14, 16), p(17, 19));
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12).contains(&mo) && d >= 1 && d <= days[(mo - 1) as usize] && h < 24 && mi < 60 && s < 60
}

/// A status the link-up took: the fields it is keyed and ordered by, and the whole body.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRecord {
    #[serde(rename = "soHoSoLT")]
    pub so_ho_so_lt: String,
    #[serde(rename = "maHoSo")]
    pub ma_ho_so: String,
    #[serde(rename = "maTTHC")]
    pub ma_tthc: String,
    #[serde(rename = "trangThai")]
    pub trang_thai: i64,
    #[serde(rename = "thoiGianThucHien")]
    pub thoi_gian_thuc_hien: String,
    pub body: Value,
    pub at_ms: u64,
}

impl StatusRecord {
    /// Two statuses are "the same" when they say the same of the same dossier at the same time.
    pub fn key(&self) -> (String, i64, String) {
        (self.so_ho_so_lt.clone(), self.trang_thai, self.thoi_gian_thuc_hien.clone())
    }
}

/// The status call's fields, checked. `known` gives the `maTTHC` of a link-up dossier by its
/// `maHoSo` (`soHoSoLT` here). `Err` is the refusal's message, which never says "thành công"
/// nor "đã tồn tại" (those words are final for the client).
pub fn check_status(b: &Map<String, Value>, known: impl Fn(&str) -> Option<String>) -> Result<StatusRecord, String> {
    let text = |name: &str| b.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let so = text("soHoSoLT").ok_or("Thiếu soHoSoLT")?;
    let tthc = known(so).ok_or_else(|| format!("Không tìm thấy hồ sơ liên thông {so}"))?;
    let ma_tthc = text("maTTHC").ok_or("Thiếu maTTHC")?;
    if ma_tthc != tthc {
        return Err(format!("maTTHC {ma_tthc} không khớp hồ sơ liên thông {so}"));
    }
    if b.get("coQuanXuLy").and_then(Value::as_i64) != Some(5) {
        return Err("coQuanXuLy phải là số 5".into());
    }
    let ma = text("maHoSo").ok_or("Thiếu maHoSo")?;
    let trang_thai = b
        .get("trangThai")
        .and_then(Value::as_i64)
        .filter(|t| (1..=7).contains(t))
        .ok_or("trangThai phải là số nguyên từ 1 đến 7")?;
    let at = text("thoiGianThucHien")
        .filter(|t| real_dmy(t))
        .ok_or("thoiGianThucHien không đúng định dạng dd/MM/yyyy HH:mm:ss")?;
    for name in ["ghiChu", "nguoiXuLy", "chucDanh", "phongBanXuLy", "noiDungXuLy"] {
        if !matches!(b.get(name), None | Some(Value::Null | Value::String(_))) {
            return Err(format!("{name} phải là chuỗi"));
        }
    }
    match b.get("ketQuaXuLy") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() || serde_json::from_str::<Value>(s).is_ok() => {}
        Some(_) => return Err("ketQuaXuLy phải là chuỗi JSON".into()),
    }
    Ok(StatusRecord {
        so_ho_so_lt: so.to_string(),
        ma_ho_so: ma.to_string(),
        ma_tthc: ma_tthc.to_string(),
        trang_thai,
        thoi_gian_thuc_hien: at.to_string(),
        body: Value::Object(b.clone()),
        at_ms: crate::dvcqg_push::now_ms(),
    })
}

/// How a text answer is written. The fork's client reads every answer as text and looks for
/// the words, so a client must find them in each form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerForm {
    /// One of the others at random, per answer.
    #[default]
    Random,
    /// `{"succeeded": .., "message": "..."}`.
    Json,
    /// A JSON string literal, `"..."` (what an API returning a bare string serialises).
    JsonString,
    /// Plain text.
    Text,
}

/// An answer carrying `message` in `form`.
pub fn worded(form: AnswerForm, succeeded: bool, message: &str) -> actix_web::HttpResponse {
    let form = match form {
        AnswerForm::Random => [AnswerForm::Json, AnswerForm::JsonString, AnswerForm::Text][fastrand::usize(0..3)],
        f => f,
    };
    let mut ok = actix_web::HttpResponse::Ok();
    match form {
        AnswerForm::Text => ok.content_type("text/plain; charset=utf-8").body(message.to_string()),
        AnswerForm::JsonString => ok.json(json!(message)),
        _ => ok.json(json!({"succeeded": succeeded, "message": message})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(dmy(0), "01/01/1970 00:00:00");
        assert_eq!(dmy(1_709_251_199), "29/02/2024 23:59:59");
        assert_eq!(iso(1_796_083_200), "2026-12-01T00:00:00");
        assert!(real_dmy("29/02/2024 23:59:59") && real_dmy(&dmy(unix_now())));
        for bad in [
            "29/02/2026 10:00:00",
            "2026-12-01 10:00:00",
            "01/13/2026 10:00:00",
            "1/12/2026 10:00:00",
            "01/12/2026 24:00:00",
            "01/12/2026T10:00:00",
        ] {
            assert!(!real_dmy(bad), "{bad}");
        }
    }

    #[test]
    fn the_status_fields() {
        let known = |so: &str| (so == "LT-1").then(|| "1.001193".to_string());
        let good = json!({"maTTHC": "1.001193", "soHoSoLT": "LT-1", "coQuanXuLy": 5, "maHoSo": "QN-1",
            "trangThai": 3, "thoiGianThucHien": "01/12/2026 08:30:00", "ghiChu": "x", "ketQuaXuLy": "[]"});
        assert_eq!(check_status(good.as_object().unwrap(), known).map(|r| r.trang_thai), Ok(3));
        for (name, bad) in [
            ("soHoSoLT", json!("LT-2")),
            ("maTTHC", json!("1.000000")),
            ("coQuanXuLy", json!("5")),
            ("coQuanXuLy", json!(4)),
            ("maHoSo", json!("")),
            ("trangThai", json!("3")),
            ("trangThai", json!(8)),
            ("trangThai", json!(0)),
            ("thoiGianThucHien", json!("20261201083000")),
            ("thoiGianThucHien", json!("31/11/2026 08:30:00")),
            ("ketQuaXuLy", json!([])),
            ("ketQuaXuLy", json!("{not json")),
            ("nguoiXuLy", json!(1)),
        ] {
            let mut b = good.clone();
            b[name] = bad.clone();
            let e = check_status(b.as_object().unwrap(), known).err().unwrap_or_default();
            assert!(!e.is_empty(), "{name} = {bad}");
            assert!(!e.contains("thành công") && !e.contains("đã tồn tại"), "{e}");
        }
    }
}
