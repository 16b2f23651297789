//! Dossiers that come *down*: what a counterpart hands the province (the portal's push, the
//! civil-registration link-up's list), and the status the centre sends back up for them.
//!
//! A counterpart that hands dossiers down describes itself with a [`SourceKind`] in the
//! registry: its id, which is also its settings section's and the name of the destination whose
//! queue carries the centre's status back to it, the push route it is reached by (if it pushes)
//! and how to build it. The built [`InboundSource`] turns the counterpart's wire into an
//! [`InboundDossier`] (push: [`InboundSource::parse_push`]; poll: [`InboundSource::list`] and
//! [`InboundSource::fetch`]) and acknowledges it ([`InboundSource::acknowledge`]). The gateway
//! does the rest in one place for every source: authentication of pushes, file checks and
//! storage, the record, the `dossier.received` webhook, and acknowledging only what the centre
//! took.
//!
//! What is guessed about each wire is kept in the source's own module and named in
//! `docs/inbound.md`.

use std::sync::Arc;

use hcc_config::Problem;
use serde_json::{Map, Value};

use crate::BoxFuture;
use crate::domain::MaHoSo;
use crate::fields::{FieldError, Fields};
use crate::registry::BuildContext;

/// The kind of the webhook that hands an inbound dossier to the centre.
pub const KIND_RECEIVED: &str = "dossier.received";
/// The kind of the message that carries the centre's status of an inbound dossier back up, in
/// the queue of the dossier's source.
pub const KIND_STATUS: &str = "dossier.status";

/// The most files one inbound dossier may carry (its form and its attachments).
pub const MAX_FILES: usize = 50;

/// A counterpart that hands dossiers down, as its module describes it.
#[derive(Clone, Copy)]
pub struct SourceKind {
    /// The counterpart's id: its settings section's, and the destination whose queue takes the
    /// centre's status back to it (`dvcqg`, `dvclt`).
    pub id: &'static str,
    /// The route the counterpart pushes dossiers to (`/v1/inbound/dvcqg/dossiers`); `None` for
    /// a source that is polled.
    pub push_path: Option<&'static str>,
    /// Builds the source from its section; `None` when the section leaves it off.
    pub build: fn(&BuildContext<'_>) -> BuiltSource,
}

/// What a source's `build` gives: the source, `None` when its section leaves it off, or every
/// problem with the section, each named `section.key`.
pub type BuiltSource = Result<Option<Arc<dyn InboundSource>>, Vec<Problem>>;

/// A dossier a counterpart handed down, parsed at the edge.
#[derive(Debug, Clone)]
pub struct InboundDossier {
    /// The code the centre and the counterpart name the dossier by: the portal's `MaHoSo` (or
    /// `MaHoSoQG`), the link-up's `maHoSo`. Inbound dossiers are idempotent on it.
    pub code: MaHoSo,
    /// The procedure (`MaTTHC`), when the counterpart gives one.
    pub procedure: Option<String>,
    /// The dossier's fields as the counterpart sent them, without the files' contents.
    pub fields: Map<String, Value>,
    /// What the counterpart needs back with the status later (the link-up's record id, its
    /// `maTTHC`): kept with the record and put in every status message, never shown to the
    /// centre as the dossier.
    pub link: Map<String, Value>,
    pub files: Vec<InboundFile>,
}

/// One file of an inbound dossier, before the gateway has checked and stored it.
#[derive(Debug, Clone)]
pub struct InboundFile {
    /// The file's name as the counterpart gave it (made safe by [`safe_file_name`]).
    pub name: String,
    /// What the document is, when the counterpart says (`loaiGiayTo`, `TepDonDangKy`).
    pub label: Option<String>,
    pub content: FileContent,
}

#[derive(Debug, Clone)]
pub enum FileContent {
    /// The bytes, decoded from the message.
    Inline(Vec<u8>),
    /// A URL to fetch through the counterpart's file service ([`InboundSource::fetch_file`]).
    Url(String),
}

/// Why a pushed dossier is refused, before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefusal {
    /// The body is not a JSON object (HTTP 400); quotes no input.
    #[error("{0}")]
    Malformed(String),
    /// Fields that do not parse (HTTP 422), each named. `code` is the dossier's code when it
    /// could be read, for the answer's `message`.
    #[error("the dossier has invalid fields")]
    Invalid { code: Option<String>, errors: Vec<FieldError> },
}

/// What became of a pushed dossier, to be answered in the counterpart's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Created,
    Duplicate,
    /// Refused or failed; `reason` names why, with no input quoted but the code.
    Error {
        reason: String,
    },
}

/// A dossier a polled source lists as waiting for the province.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The code the dossier will be recorded under (see [`InboundDossier::code`]).
    pub code: MaHoSo,
    /// The source's own handle to fetch it by (the link-up's record `id`).
    pub handle: String,
}

/// Why a call to a source failed. Every failure is retried at the next round; `alarm` says a
/// person should look (credentials refused, answers of an unknown shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SourceError {
    pub reason: String,
    pub alarm: bool,
}

impl SourceError {
    pub fn transient(reason: impl Into<String>) -> Self {
        SourceError {
            reason: reason.into(),
            alarm: false,
        }
    }
    pub fn alarm(reason: impl Into<String>) -> Self {
        SourceError {
            reason: reason.into(),
            alarm: true,
        }
    }
}

/// A built source. Every call is bounded in time by the source; none is retried inside.
pub trait InboundSource: Send + Sync + 'static {
    /// The source's id ([`SourceKind::id`]).
    fn id(&self) -> &'static str;

    /// Reads a pushed body. Only for sources with a push route.
    fn parse_push(&self, _body: &[u8]) -> Result<InboundDossier, PushRefusal> {
        Err(PushRefusal::Malformed("this source does not push".into()))
    }

    /// The answer to a push, in the counterpart's terms: the JSON body (the HTTP status is the
    /// gateway's). `code` is the dossier's code when known.
    fn push_reply(&self, _code: Option<&str>, _outcome: &PushOutcome) -> Value {
        Value::Null
    }

    /// Whether a file URL may be fetched at all: only on the counterpart's own host.
    fn may_fetch(&self, _url: &str) -> bool {
        false
    }

    /// Fetches a file named by URL through the counterpart's file service; at most `max_bytes`
    /// (a larger file is an error, never truncated).
    fn fetch_file<'a>(&'a self, _url: &'a str, _max_bytes: usize) -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
        Box::pin(async { Err(SourceError::alarm("this source serves no files")) })
    }

    /// Polled sources: how often to ask (`None`: never; a push-only source).
    fn poll_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// The dossiers waiting for the province, at most `max`.
    fn list(&self, _max: usize) -> BoxFuture<'_, Result<Vec<Listed>, SourceError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// One listed dossier, whole, with its files inline.
    fn fetch<'a>(&'a self, _listed: &'a Listed) -> BoxFuture<'a, Result<InboundDossier, SourceError>> {
        Box::pin(async { Err(SourceError::alarm("this source is not polled")) })
    }

    /// Tells the source the province has the dossier (after the centre took it). `link` is
    /// [`InboundDossier::link`] as recorded. Repeating it is harmless.
    fn acknowledge<'a>(&'a self, _code: &'a MaHoSo, _link: &'a Map<String, Value>) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The status the centre sends up for an inbound dossier (`POST
/// /v1/inbound/dossiers/{MaHoSo}/status`), in the portal's vocabulary. The queued message's
/// payload is `{"status": <this, as JSON>, "link": <the record's link>}`; the source's
/// destination adapter maps it to its own wire at delivery, so a changed mapping applies to
/// what is queued.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundStatus {
    /// The portal's status code 1..10 (`TrangThai`).
    pub trang_thai: u8,
    /// What was done (`NoiDung`), up to 2,000 characters.
    pub noi_dung: String,
    /// When, `yyyyMMddHHmmss` (a real calendar time).
    pub ngay_xu_ly: String,
    /// The province's own code for the dossier (`MaHoSoDonVi`), when it has one.
    pub ma_ho_so_don_vi: Option<String>,
    /// The result documents (`TaiLieuXuLy`), as the centre sent them (at most [`MAX_FILES`]
    /// objects).
    pub tai_lieu_xu_ly: Vec<Value>,
    /// Who handled it, for the link-up (`NguoiXuLy`, `ChucDanh`, `PhongBanXuLy`), optional.
    pub nguoi_xu_ly: Option<String>,
    pub chuc_danh: Option<String>,
    pub phong_ban_xu_ly: Option<String>,
}

impl InboundStatus {
    /// Parses the centre's object, naming every bad field.
    pub fn parse(body: &Value) -> Result<InboundStatus, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError {
                field: "".into(),
                message: "must be a JSON object".into(),
            }]);
        };
        let mut f = Fields::new(obj, String::new(), &mut errors);
        let trang_thai = f.required("TrangThai", crate::fields::whole_in(1, 10));
        let noi_dung = f.required("NoiDung", crate::fields::non_empty_text(2000));
        let ngay_xu_ly = f.required("NgayXuLy", |v| {
            let s = v.as_str().ok_or("must be a string yyyyMMddHHmmss")?;
            crate::dvcqg::model::PortalDateTime::parse(s).map(|t| t.to_string())
        });
        let ma_ho_so_don_vi = f.optional("MaHoSoDonVi", crate::fields::non_empty_text(100));
        let tai_lieu_xu_ly = f
            .optional("TaiLieuXuLy", |v| match v {
                Value::Array(items) if items.len() > MAX_FILES => Err(format!("may hold at most {MAX_FILES} documents")),
                Value::Array(items) if items.iter().all(Value::is_object) => Ok(items.clone()),
                _ => Err("must be a list of objects".into()),
            })
            .unwrap_or_default();
        let nguoi_xu_ly = f.optional("NguoiXuLy", crate::fields::non_empty_text(200));
        let chuc_danh = f.optional("ChucDanh", crate::fields::non_empty_text(200));
        let phong_ban_xu_ly = f.optional("PhongBanXuLy", crate::fields::non_empty_text(200));
        match (trang_thai, noi_dung, ngay_xu_ly) {
            (Some(t), Some(noi_dung), Some(ngay_xu_ly)) if errors.is_empty() => Ok(InboundStatus {
                trang_thai: t as u8,
                noi_dung,
                ngay_xu_ly,
                ma_ho_so_don_vi,
                tai_lieu_xu_ly,
                nguoi_xu_ly,
                chuc_danh,
                phong_ban_xu_ly,
            }),
            _ => Err(errors),
        }
    }

    /// The status as queued (and as [`InboundStatus::from_json`] reads it back).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("TrangThai".into(), Value::from(self.trang_thai));
        m.insert("NoiDung".into(), Value::from(self.noi_dung.clone()));
        m.insert("NgayXuLy".into(), Value::from(self.ngay_xu_ly.clone()));
        m.insert("TaiLieuXuLy".into(), Value::Array(self.tai_lieu_xu_ly.clone()));
        for (name, v) in [
            ("MaHoSoDonVi", &self.ma_ho_so_don_vi),
            ("NguoiXuLy", &self.nguoi_xu_ly),
            ("ChucDanh", &self.chuc_danh),
            ("PhongBanXuLy", &self.phong_ban_xu_ly),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), Value::from(v.clone()));
            }
        }
        Value::Object(m)
    }

    /// Reads a queued status back (the same checks as at the edge).
    pub fn from_json(v: &Value) -> Result<InboundStatus, Vec<FieldError>> {
        InboundStatus::parse(v)
    }
}

/// A queued status message's payload: the status and the record's link.
pub fn status_payload(status: &InboundStatus, link: &Map<String, Value>) -> Value {
    serde_json::json!({"status": status.to_json(), "link": Value::Object(link.clone())})
}

/// Reads a queued status message's payload back: the status and the link.
pub fn read_status_payload(payload: &[u8]) -> Result<(InboundStatus, Map<String, Value>), String> {
    let v: Value = serde_json::from_slice(payload).map_err(|_| "stored payload is not JSON".to_string())?;
    let status = InboundStatus::from_json(&v["status"]).map_err(|e| {
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        format!("stored status has invalid fields: {}", fields.join(", "))
    })?;
    let link = v["link"].as_object().cloned().unwrap_or_default();
    Ok((status, link))
}

/// The file types an inbound dossier may carry, told by their first bytes, never by their name
/// or a declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    /// Office Open XML (`.docx`, `.xlsx`, `.pptx`): a ZIP whose first entry is
    /// `[Content_Types].xml` or `_rels/` or `docProps/`, or any ZIP naming `word/`, `xl/`,
    /// `ppt/` in its first entry.
    OfficeOpenXml,
    /// Legacy Office (`.doc`, `.xls`): an OLE2 compound file.
    OfficeLegacy,
}

impl FileType {
    /// The type of a file by its first bytes, or `None` when it is none of the accepted ones.
    pub fn sniff(bytes: &[u8]) -> Option<FileType> {
        const OLE: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        if bytes.starts_with(b"%PDF-") {
            Some(FileType::Pdf)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(FileType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(FileType::Jpeg)
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            Some(FileType::Tiff)
        } else if bytes.starts_with(OLE) {
            Some(FileType::OfficeLegacy)
        } else if bytes.starts_with(b"PK\x03\x04") && is_office_zip(bytes) {
            Some(FileType::OfficeOpenXml)
        } else {
            None
        }
    }

    /// The media type the file is served with.
    pub fn media_type(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Png => "image/png",
            FileType::Jpeg => "image/jpeg",
            FileType::Tiff => "image/tiff",
            FileType::OfficeOpenXml => "application/vnd.openxmlformats-officedocument",
            FileType::OfficeLegacy => "application/x-ole-storage",
        }
    }

    /// What the type is called in a refusal or a listing.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Pdf => "PDF",
            FileType::Png => "PNG",
            FileType::Jpeg => "JPEG",
            FileType::Tiff => "TIFF",
            FileType::OfficeOpenXml => "Office Open XML",
            FileType::OfficeLegacy => "Office (OLE2)",
        }
    }
}

/// A ZIP is taken as an Office document only when its first local file header names one of
/// the parts every Office Open XML package has near its start: a plain ZIP, a JAR or an APK is
/// refused.
fn is_office_zip(bytes: &[u8]) -> bool {
    // Local file header: name length at offset 26 (2 bytes LE), extra length at 28, name at 30.
    let (Some(n), Some(name_at)) = (bytes.get(26..28), Some(30usize)) else {
        return false;
    };
    let len = u16::from_le_bytes([n[0], n[1]]) as usize;
    let Some(name) = bytes.get(name_at..name_at + len) else {
        return false;
    };
    [&b"[Content_Types].xml"[..], b"_rels/", b"docProps/", b"word/", b"xl/", b"ppt/"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// A file name as the counterpart gave it, made safe to keep, list and serve: the last path
/// segment, control characters, quotes and separators dropped, at most 200 characters; an empty
/// result becomes `file`.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let kept: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\'' | '<' | '>' | ':' | '*' | '?' | '|' | ';'))
        .take(200)
        .collect();
    let kept = kept.trim().trim_start_matches('.').to_string();
    if kept.is_empty() { "file".into() } else { kept }
}

/// Decodes a file's base64 (standard alphabet, padding optional), tolerating the line breaks
/// and spaces mail-style encoders put in. Decoded once, into one buffer: the whitespace is
/// dropped first only when there is any, so a large file costs one pass and one copy at most.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, &'static str> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let refused = "must be base64 (standard alphabet)";
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        LENIENT.decode(compact).map_err(|_| refused)
    } else {
        LENIENT.decode(text).map_err(|_| refused)
    }
}

/// A table of the settings mapping the portal's status codes (`"1"` to `"10"`) to a
/// counterpart's (`1..=max`), laid over `defaults`. Every bad entry is a problem named
/// `<section>.<key>.<code>`.
pub(crate) fn status_table(
    ctx: &BuildContext<'_>,
    key: &str,
    entries: &std::collections::BTreeMap<String, u8>,
    defaults: [u8; 10],
    max: u8,
) -> Result<[u8; 10], Vec<Problem>> {
    let mut table = defaults;
    let mut problems = Vec::new();
    for (code, &to) in entries {
        let from = match code.parse::<usize>() {
            Ok(n) if (1..=10).contains(&n) && !code.starts_with('0') => n,
            _ => {
                problems.push(ctx.problem(&format!("{key}.{code}"), "is not a portal status: the keys are \"1\" to \"10\""));
                continue;
            }
        };
        if !(1..=max).contains(&to) {
            problems.push(ctx.problem(&format!("{key}.{code}"), format!("must be a status from 1 to {max}")));
            continue;
        }
        table[from - 1] = to;
    }
    if problems.is_empty() { Ok(table) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn file_types_are_told_by_their_first_bytes() {
        assert_eq!(FileType::sniff(b"%PDF-1.7\n..."), Some(FileType::Pdf));
        assert_eq!(FileType::sniff(b"\x89PNG\r\n\x1a\n...."), Some(FileType::Png));
        assert_eq!(FileType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Some(FileType::Jpeg));
        assert_eq!(FileType::sniff(b"II*\0...."), Some(FileType::Tiff));
        assert_eq!(
            FileType::sniff(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]),
            Some(FileType::OfficeLegacy)
        );
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0u8; 22]);
        docx.extend_from_slice(&(19u16).to_le_bytes());
        docx.extend_from_slice(&[0, 0]);
        docx.extend_from_slice(b"[Content_Types].xml");
        assert_eq!(FileType::sniff(&docx), Some(FileType::OfficeOpenXml));
        let mut jar = b"PK\x03\x04".to_vec();
        jar.extend_from_slice(&[0u8; 22]);
        jar.extend_from_slice(&(20u16).to_le_bytes());
        jar.extend_from_slice(&[0, 0]);
        jar.extend_from_slice(b"META-INF/MANIFEST.MF");
        assert_eq!(FileType::sniff(&jar), None, "a ZIP that is no Office document");
        assert_eq!(FileType::sniff(b"PK\x03\x04"), None, "a truncated header");
        assert_eq!(FileType::sniff(b"MZ\x90\0"), None, "an executable");
        assert_eq!(FileType::sniff(b"<html>"), None);
        assert_eq!(FileType::sniff(b""), None);
    }

    #[test]
    fn file_names_keep_only_their_last_segment_and_no_dangerous_characters() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\x\\Đơn đăng ký.pdf"), "Đơn đăng ký.pdf");
        assert_eq!(safe_file_name("a\r\nb\"c.pdf"), "abc.pdf");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(safe_file_name(".hidden"), "hidden");
        assert_eq!(safe_file_name(""), "file");
        assert_eq!(safe_file_name(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn a_status_is_parsed_with_every_bad_field_named_and_reads_back_the_same() {
        let ok = json!({"TrangThai": "4", "NoiDung": "Đang xử lý", "NgayXuLy": "20261207093000", "MaHoSoDonVi": "H56-1"});
        let s = InboundStatus::parse(&ok).expect("valid");
        assert_eq!(s.trang_thai, 4);
        let link = Map::from_iter([("id".to_string(), json!("42"))]);
        let payload = serde_json::to_vec(&status_payload(&s, &link)).expect("encodes");
        assert_eq!(read_status_payload(&payload), Ok((s, link)));
        let bad = json!({"TrangThai": 11, "NgayXuLy": "20261332000000", "TaiLieuXuLy": [1]});
        let fields: Vec<String> = InboundStatus::parse(&bad)
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["/TrangThai", "/NoiDung", "/NgayXuLy", "/TaiLieuXuLy"]);
        assert!(InboundStatus::parse(&json!([])).is_err());
    }
}
