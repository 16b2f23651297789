//! The field checks the integration services apply to each item: the life-cycle's moves, codes
//! sent as strings of digits, `IsDeleted` flags, fee lines and `yyyyMMddHHmmss` times.

use serde_json::Value;

/// The life-cycle's allowed moves; anything else seen on the wire counts as "backwards".
pub(super) fn allowed(from: u8, to: u8) -> bool {
    from == to
        || matches!(
            (from, to),
            (1, 2 | 3 | 7) | (2, 4..=9) | (4, 5..=9) | (5, 4 | 7 | 8) | (6, 4 | 7 | 8 | 9) | (9, 6 | 10)
        )
}

/// A code public clients send as a string of digits: the canonical decimal of a number in
/// `range` (`"4"`, not `4`, `"04"` or `"4.0"`). `Err` is the refusal's message.
pub(super) fn digit_code(item: &Value, name: &str, range: std::ops::RangeInclusive<u8>, i: usize) -> Result<Option<u8>, String> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse::<u8>()
            .ok()
            .filter(|n| range.contains(n) && n.to_string() == *s)
            .map(Some)
            .ok_or(format!("data[{i}]: {name} không hợp lệ")),
        Some(Value::Number(_)) => Err(format!("data[{i}]: {name} phải là chuỗi (\"4\"), không phải số")),
        Some(_) => Err(format!("data[{i}]: {name} phải là chuỗi số")),
    }
}

/// `TaiLieuNop[].IsDeleted`: `"True"` or `"False"`, the strings public clients send.
pub(super) fn tai_lieu_flags(item: &Value, i: usize) -> Result<(), String> {
    let Some(Value::Array(files)) = item.get("TaiLieuNop") else {
        return Ok(());
    };
    for (j, f) in files.iter().enumerate() {
        match f.get("IsDeleted") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "True" || s == "False" => {}
            Some(Value::Bool(_)) => {
                return Err(format!(
                    "data[{i}].TaiLieuNop[{j}]: IsDeleted phải là chuỗi \"True\"/\"False\", không phải kiểu boolean"
                ));
            }
            Some(_) => return Err(format!("data[{i}].TaiLieuNop[{j}]: IsDeleted không hợp lệ")),
        }
    }
    Ok(())
}

/// The fee lines' numbers, `DanhSachLePhi[].Gia`, `LoaiPhiLePhi` and `HinhThucThu`: strings of
/// digits, as the public client that sends fee lines writes them (the notes, evidence 2026-12);
/// a JSON number or a non-canonical string (`"0100"`) is refused like bad data.
pub(super) fn fee_lines(item: &Value, i: usize) -> Result<(), String> {
    let Some(Value::Array(fees)) = item.get("DanhSachLePhi") else {
        return Ok(());
    };
    for (j, fee) in fees.iter().enumerate() {
        for name in ["Gia", "LoaiPhiLePhi", "HinhThucThu"] {
            match fee.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) if v.parse::<u64>().is_ok_and(|n| n.to_string() == *v) => {}
                Some(Value::Number(_)) => {
                    return Err(format!("data[{i}].DanhSachLePhi[{j}]: {name} phải là chuỗi số, không phải số"));
                }
                Some(_) => return Err(format!("data[{i}].DanhSachLePhi[{j}]: {name} không hợp lệ")),
            }
        }
    }
    Ok(())
}

/// `yyyyMMddHHmmss`, a real calendar time.
pub(crate) fn real_date(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let p = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap_or(99);
    let (y, mo, d, h, mi, se) = (p(0, 4), p(4, 6), p(6, 8), p(8, 10), p(10, 12), p(12, 14));
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12).contains(&mo) && d >= 1 && d <= days[(mo - 1) as usize] && h < 24 && mi < 60 && se < 60
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_and_moves() {
        assert!(real_date(&json!("20240229235959")));
        assert!(!real_date(&json!("20241340250000")));
        assert!(!real_date(&json!(20240229235959u64)));
        assert!(allowed(5, 4) && allowed(9, 10) && allowed(4, 4));
        assert!(!allowed(10, 4) && !allowed(9, 4));
    }

    #[test]
    fn codes_must_be_the_strings_public_clients_send() {
        let item = json!({"TrangThaiHoSo": "4", "HinhThuc": "0", "LoaiDoiTuong": 2, "TrangThai": "04"});
        assert_eq!(digit_code(&item, "TrangThaiHoSo", 1..=10, 0), Ok(Some(4)));
        assert_eq!(digit_code(&item, "HinhThuc", 0..=1, 0), Ok(Some(0)));
        assert_eq!(digit_code(&item, "Absent", 0..=1, 0), Ok(None));
        assert!(digit_code(&item, "LoaiDoiTuong", 1..=2, 0).unwrap_err().contains("không phải số"));
        assert!(digit_code(&item, "TrangThai", 1..=10, 0).is_err(), "not the canonical form");
        for bad in [json!("11"), json!("0"), json!("4.0"), json!(" 4"), json!(true), json!(4)] {
            assert!(digit_code(&json!({"T": bad}), "T", 1..=10, 0).is_err(), "{bad}");
        }
        assert!(tai_lieu_flags(&json!({"TaiLieuNop": [{"IsDeleted": "False"}, {"IsDeleted": "True"}, {}]}), 0).is_ok());
        assert!(tai_lieu_flags(&json!({"TaiLieuNop": [{"IsDeleted": false}]}), 0).is_err());
        assert!(tai_lieu_flags(&json!({"TaiLieuNop": [{"IsDeleted": "false"}]}), 0).is_err());
    }
}
