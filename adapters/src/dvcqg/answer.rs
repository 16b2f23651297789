//! Reading the portal's answers: whether one is a success, its code and message, whether it
//! says the session is stale or the dossier already exists, and what a `TraCuuHoSo` answer
//! says about the dossier. Pure functions of one JSON answer, no I/O: the part the fuzz targets
//! drive (through [`super::fuzzing`]) and the mock restates on its side.

use serde_json::Value;

/// What one portal call came to, before it becomes an [`Outcome`]. A refusal keeps the whole
/// answer: `TraCuuHoSo` is read from its lists whatever `error_code` says.
pub(super) enum Answer {
    Ok(Value),
    Refused { code: String, message: String, body: Value },
}

pub(super) fn success_code(v: &Value) -> bool {
    match v.get("error_code") {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => matches!(s.trim(), "0" | "00"),
        _ => false,
    }
}

pub(super) fn code_text(v: &Value) -> String {
    match v.get("error_code") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => other.to_string(),
        None => "missing".into(),
    }
}

pub(super) fn message_of(v: &Value) -> String {
    ["message", "Message", "error_message", "msg"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .chars()
        .take(500)
        .collect()
}

/// A portal message made comparable: Unicode canonical decomposition (NFD) with the combining
/// marks dropped, so `"phiên"`, `"phiên"` (decomposed) and `"phien"` are one word; `đ`/`Đ`
/// (and `Ð`, the look-alike some keyboards type) folded to `d`, which NFD leaves alone; lower
/// case; every run of anything but letters and digits one space; a space at each end, so that
/// a phrase is found as whole words by looking for `" phrase "`.
pub(crate) fn folded(message: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let mut out = String::with_capacity(message.len() + 2);
    out.push(' ');
    for c in message.nfd().filter(|c| !is_combining_mark(*c)) {
        let c = if matches!(c, 'đ' | 'Đ' | 'Ð') { 'd' } else { c };
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// Whether a [`folded`] message holds `phrase` (itself folded, without the end spaces) as
/// whole words.
pub(crate) fn has_phrase(folded: &str, phrase: &str) -> bool {
    folded.contains(&format!(" {phrase} "))
}

/// The portal's stale-session codes (the notes: `error_code` 401 or -1; HTTP 401 is handled
/// where the status is read).
pub(super) const STALE_SESSION_CODES: &[&str] = &["401", "-1"];

/// The whole phrases that say a session is stale, folded (the notes, evidence 2026-12: "phiên
/// làm việc (đã) hết hạn", "session expired", "token không hợp lệ", "invalid token"). Never a
/// bare word: "phiên bản" (version) and "ngày hẹn trả đã hết hạn" (the due date has passed)
/// are refusals of the data, and a refusal taken for a stale session is retried for ever.
pub(super) const STALE_SESSION_PHRASES: &[&str] = &[
    "phien lam viec het han",
    "phien lam viec da het han",
    "session expired",
    "token khong hop le",
    "invalid token",
];

/// A stale session: one of the portal's codes for it, or a whole phrase saying so, compared
/// after [`folded`], so with or without diacritics, in either Unicode form, in any case.
pub(super) fn is_session_expiry(code: &str, message: &str) -> bool {
    if STALE_SESSION_CODES.contains(&code) {
        return true;
    }
    let m = folded(message);
    STALE_SESSION_PHRASES.iter().any(|p| has_phrase(&m, p))
}

/// The portal's "the dossier already exists" answer to a create (`isUpdating: "False"`), as
/// HuanVu201/DichVuCong_KhoaLuan_PASETO (`SyncLocalDataToDVCQGService.cs`) reads it:
/// `error_code` 3 or -3 with a message saying "đã tồn tại" (compared after [`folded`]). Both
/// must hold: code 3 alone is also the mock's (and possibly the portal's) "wrong agency code".
pub(super) fn is_already_exists(code: &str, message: &str) -> bool {
    matches!(code, "3" | "-3") && has_phrase(&folded(message), "da ton tai")
}

pub(super) fn is_not_found(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "không tìm thấy",
        "khong tim thay",
        "không tồn tại",
        "khong ton tai",
        "not found",
        "not exist",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// What a `TraCuuHoSo` answer says about the dossier.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    Found,
    Missing,
    /// Neither a hit nor a miss; the reason, without the answer's data.
    Unclear(String),
}

/// The lists a `TraCuuHoSo` answer may carry its hits in: OpenCPS reads `result`; some
/// DVCQG-hosted look-ups answer in `data`.
pub(super) const LOOKUP_LISTS: [&str; 2] = ["result", "data"];

/// Reads a `TraCuuHoSo` answer as OpenCPS does, and no further:
/// - a non-empty array in `result` or `data` is a hit, whatever `error_code` says;
/// - otherwise an empty array there is a miss, unless the answer is an error;
/// - an error whose message says the dossier was not found is a miss;
/// - anything else (no list at all, `null` or an object where the list should be, an error
///   that is not "not found", `{"error_code": 0}` alone) shows neither, and is not guessed:
///   a wrong guess would send `isUpdating` the portal then refuses, or worse, accepts.
pub(super) fn classify_lookup(answer: &Value) -> Lookup {
    let lists: Vec<&Vec<Value>> = LOOKUP_LISTS.iter().filter_map(|k| answer.get(*k)?.as_array()).collect();
    if lists.iter().any(|l| !l.is_empty()) {
        return Lookup::Found;
    }
    let is_error = answer.get("error_code").is_some() && !success_code(answer);
    let message = message_of(answer);
    if !lists.is_empty() && !is_error {
        return Lookup::Missing;
    }
    if is_error && is_not_found(&message) {
        return Lookup::Missing;
    }
    let shape: Vec<String> = LOOKUP_LISTS
        .iter()
        .map(|k| match answer.get(*k) {
            None => format!("no {k}"),
            Some(Value::Array(_)) => format!("{k} empty"),
            Some(Value::Null) => format!("{k} null"),
            Some(Value::Object(_)) => format!("{k} an object"),
            Some(_) => format!("{k} not a list"),
        })
        .collect();
    Lookup::Unclear(format!(
        "the portal's TraCuuHoSo answer shows neither a hit nor a miss (error_code {}, {}{}{})",
        code_text(answer),
        shape.join(", "),
        if message.is_empty() { "" } else { ": " },
        message
    ))
}
