//! The link-up's wire, without I/O (`docs/inbound.md`; public code: the Thanh Hóa fork's
//! `KhaiSinhKhaiTuService.cs`): the token, list and detail answers read, the acknowledgement
//! and the status built, and the answers' text judged by whole phrases.

use serde_json::{Map, Value, json};

use crate::domain::MaHoSo;
use crate::dvcqg::{folded, has_phrase};
use crate::inbound::{FileContent, InboundDossier, InboundFile, InboundStatus, Listed, MAX_FILES, decode_base64, safe_file_name};

/// `dvclt.status_map` when unset (a guess): the portal's `TrangThai` 1..10 (index 0 is 1) as
/// the link-up's `trangThai` (1 created, 2 supplement requested, 3 accepted, 4 result, 5
/// returned, 6 refused, 7 sent to the Ministry).
pub const DEFAULT_STATUS_MAP: [u8; 10] = [1, 3, 6, 3, 2, 2, 5, 6, 4, 4];
/// The link-up's highest `trangThai`.
pub const MAX_LINK_STATUS: u8 = 7;
/// The longest record id taken: it is a segment of the detail's path.
const MAX_HANDLE: usize = 100;

/// The token call's body; the one place the password is exposed.
pub fn token_body(username: &str, password: &str) -> Value {
    json!({"userName": username, "password": password})
}

/// The token from `{"token", "refreshToken", "refreshTokenExpiryTime"}`.
pub fn read_token(answer: &[u8]) -> Result<String, &'static str> {
    let v: Value = serde_json::from_slice(answer).map_err(|_| "the token answer is not JSON")?;
    v.get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .map(str::to_string)
        .ok_or("the token answer has no token")
}

/// A string, or a number written out (ids and codes come as either).
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A record id usable as one path segment: letters, digits, `-` and `_` only.
fn is_handle(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_HANDLE && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The waiting dossiers from `{"data": [{"id", "maHoSo", ...}]}`, at most `max`. An entry
/// whose code or id cannot be used is skipped with a warning naming its position only (the
/// entries name citizens' records).
pub fn read_list(answer: &[u8], max: usize) -> Result<Vec<Listed>, &'static str> {
    let v: Value = serde_json::from_slice(answer).map_err(|_| "the list answer is not JSON")?;
    let items = v.get("data").and_then(Value::as_array).ok_or("the list answer has no data list")?;
    let mut listed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if listed.len() >= max {
            break;
        }
        let handle = text_of(item.get("id")).filter(|h| is_handle(h));
        let code = text_of(item.get("maHoSo")).and_then(|c| MaHoSo::parse(&c).ok());
        match (code, handle) {
            (Some(code), Some(handle)) => listed.push(Listed { code, handle }),
            _ => tracing::warn!(source = "dvclt", entry = i, "a listed dossier has no usable maHoSo or id; skipped"),
        }
    }
    Ok(listed)
}

/// One dossier from its detail, `{"data": {..., "data": "<JSON string>", "fileDinhKem": [...]}}`:
/// the centre gets the inner dossier without its files' bytes; the files come from the inner
/// `fileDinhKem`, else the outer one.
pub fn read_detail(answer: &[u8], listed: &Listed) -> Result<InboundDossier, String> {
    let v: Value = serde_json::from_slice(answer).map_err(|_| "the detail answer is not JSON".to_string())?;
    let outer = v
        .get("data")
        .and_then(Value::as_object)
        .ok_or("the detail answer has no data object")?;
    if let Some(named) = text_of(outer.get("maHoSo"))
        && named != listed.code.as_str()
    {
        return Err("the detail names another dossier than the list did".into());
    }
    let inner_text = outer
        .get("data")
        .and_then(Value::as_str)
        .ok_or("the detail's data.data is not a JSON string")?;
    let Ok(Value::Object(mut inner)) = serde_json::from_str::<Value>(inner_text) else {
        return Err("the detail's data.data does not hold a JSON object".into());
    };
    let from_inner = inner.get("fileDinhKem").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let files = match if from_inner {
        inner.get("fileDinhKem")
    } else {
        outer.get("fileDinhKem")
    } {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => read_files(items)?,
        Some(_) => return Err("the detail's fileDinhKem is not a list".into()),
    };
    if let Some(Value::Array(items)) = inner.get_mut("fileDinhKem") {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.remove("duLieuTepDinhKem");
        }
    }
    let procedure = text_of(outer.get("maTTHC")).or_else(|| text_of(inner.get("maTTHC")));
    let module = text_of(outer.get("module")).or_else(|| text_of(inner.get("module")));
    let mut link = Map::new();
    link.insert("id".into(), Value::from(listed.handle.clone()));
    link.insert("maTTHC".into(), procedure.clone().map_or(Value::Null, Value::from));
    link.insert("maHoSo".into(), Value::from(listed.code.as_str()));
    link.insert("module".into(), module.map_or(Value::Null, Value::from));
    Ok(InboundDossier {
        code: listed.code.clone(),
        procedure,
        fields: inner,
        link,
        files,
    })
}

/// `fileDinhKem[{tenTepDinhKem, loaiGiayTo, tenGiayTo, duLieuTepDinhKem}]`, each file's bytes
/// decoded; a file without bytes, or with bad ones, fails the dossier (named by position).
fn read_files(items: &[Value]) -> Result<Vec<InboundFile>, String> {
    if items.len() > MAX_FILES {
        return Err(format!("the dossier has more than {MAX_FILES} files"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let data = item
                .get("duLieuTepDinhKem")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| format!("fileDinhKem/{i} has no duLieuTepDinhKem"))?;
            let bytes = decode_base64(data).map_err(|_| format!("fileDinhKem/{i}/duLieuTepDinhKem is not base64"))?;
            Ok(InboundFile {
                name: safe_file_name(item.get("tenTepDinhKem").and_then(Value::as_str).unwrap_or("")),
                label: text_of(item.get("loaiGiayTo")).or_else(|| text_of(item.get("tenGiayTo"))),
                content: FileContent::Inline(bytes),
            })
        })
        .collect()
}

/// The acknowledgement: the link-up's code, taken.
pub fn ack_body(code: &MaHoSo) -> Value {
    json!({"maHoSo": code.as_str(), "daNhan": true})
}

/// An answer's text: a JSON string's value, a JSON document written out (so escaped letters
/// read as letters), else the bytes as UTF-8.
pub fn answer_text(answer: &[u8]) -> String {
    match serde_json::from_slice::<Value>(answer) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from_utf8_lossy(answer).into_owned(),
    }
}

/// Whether the acknowledgement was taken: "cập nhật thành công", in any case, with or
/// without diacritics.
pub fn ack_taken(answer: &[u8]) -> bool {
    has_phrase(&folded(&answer_text(answer)), "cap nhat thanh cong")
}

/// Whether the status was taken: "thành công" (not "không/chưa thành công"), or "đã tồn
/// tại", the link-up's word for a status it already has.
pub fn status_taken(answer: &[u8]) -> bool {
    let text = folded(&answer_text(answer));
    let success = has_phrase(&text, "thanh cong") && !has_phrase(&text, "khong thanh cong") && !has_phrase(&text, "chua thanh cong");
    success || has_phrase(&text, "da ton tai")
}

/// The first characters of an answer, for a rejection's reason.
pub fn answer_excerpt(answer: &[u8]) -> String {
    answer_text(answer).chars().filter(|c| !c.is_control()).take(120).collect()
}

/// `yyyyMMddHHmmss` as the link-up writes times, `dd/MM/yyyy HH:mm:ss`.
pub fn link_up_time(portal: &str) -> Result<String, String> {
    let t = crate::dvcqg::model::PortalDateTime::parse(portal)?;
    Ok(format!(
        "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
        t.day, t.month, t.year, t.hour, t.minute, t.second
    ))
}

/// The status call's body (public code for the fields, `docs/inbound.md`): `code` is the
/// dossier's code (the link-up's `maHoSo`), `link` the record's, `table` `dvclt.status_map`.
pub fn status_body(code: &str, status: &InboundStatus, link: &Map<String, Value>, table: &[u8; 10]) -> Result<Value, String> {
    let ma_tthc = text_of(link.get("maTTHC")).ok_or("the record's link has no maTTHC")?;
    let trang_thai = table
        .get(usize::from(status.trang_thai).wrapping_sub(1))
        .copied()
        .ok_or("the status is not 1 to 10")?;
    let tai_lieu = serde_json::to_string(&status.tai_lieu_xu_ly).map_err(|_| "TaiLieuXuLy cannot be written")?;
    let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(json!({
        "maTTHC": ma_tthc,
        "soHoSoLT": code,
        "coQuanXuLy": 5,
        "maHoSo": status.ma_ho_so_don_vi.clone().unwrap_or_else(|| code.to_string()),
        "trangThai": trang_thai,
        "thoiGianThucHien": link_up_time(&status.ngay_xu_ly)?,
        "ghiChu": status.noi_dung,
        "noiDungXuLy": status.noi_dung,
        "ketQuaXuLy": tai_lieu,
        "nguoiXuLy": or_empty(&status.nguoi_xu_ly),
        "chucDanh": or_empty(&status.chuc_danh),
        "phongBanXuLy": or_empty(&status.phong_ban_xu_ly),
        "ngayBatDau": null,
        "ngayKetThucTheoQuyDinh": null,
        "ngayHenTraTruoc": null,
        "ngayHenTraMoi": null,
        "hanBoSungHoSo": null
    }))
}
