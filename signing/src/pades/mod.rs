//! PAdES signatures on PDF documents (ETSI EN 319 142, baseline B-B, and B-T when a signature
//! timestamp is added): signing appends an incremental update carrying a detached CAdES
//! signature in a new signature field, and verifying reports every signature a PDF holds.
//!
//! The PDF is read with `lopdf`; the update is written here, object by object, with lopdf's own
//! object serialiser, because a signature needs what a general PDF writer does not give: the
//! original bytes kept byte for byte, and the exact offsets of `/ByteRange` and `/Contents`.
//! The CMS itself is built by [`crate::cades`], which signs through the identity's key (a
//! software key or a PKCS#11 token alike). See `docs/pades.md` for the layout.

mod changes;
mod sign;
mod stamp;
mod verify;
mod writer;

use std::collections::HashSet;

use lopdf::{Document, LoadOptions, Object, ObjectId};

use crate::cms::CmsError;

pub use sign::{Prepared, SignOptions, contents_reserve, prepare, sign};
pub use verify::{PdfSignature, verify};

/// How large any one stream of an uploaded PDF may decompress to while it is read (object
/// streams and cross-reference streams are decoded eagerly): a small body cannot become a
/// gigabyte.
const MAX_DECOMPRESSED: usize = 32 * 1024 * 1024;
/// Bounds on the walk of the form field tree, which the document's author controls.
const MAX_FIELDS: usize = 4096;
const MAX_FIELD_DEPTH: usize = 32;
/// The most signatures one verification reports; a PDF with more is refused.
pub const MAX_SIGNATURES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PadesError {
    #[error("the PDF is encrypted; only unencrypted PDFs can be signed or verified")]
    Encrypted,
    /// The body is not a PDF this module can work on; the text says why, never quoting it.
    #[error("the body is not a readable PDF: {0}")]
    Malformed(&'static str),
    #[error("the signature ({needed} bytes) does not fit the {reserved} bytes reserved for it")]
    SignatureTooLarge { needed: usize, reserved: usize },
    #[error("the stamp cannot be drawn: {0}")]
    Stamp(String),
    #[error(transparent)]
    Sign(#[from] CmsError),
}

/// Reads an untrusted PDF: refuses encrypted files, and files whose cross-reference data had to
/// be repaired (truncated or damaged): an update appended to such a file would point at a
/// structure that is not there.
pub(crate) fn load(pdf: &[u8]) -> Result<Document, PadesError> {
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_DECOMPRESSED),
        ..LoadOptions::default()
    };
    let doc = match Document::load_mem_with_options(pdf, options) {
        Ok(doc) => doc,
        // A file lopdf cannot open for want of a password is encrypted, not malformed.
        Err(_) if contains(pdf, b"/Encrypt") => return Err(PadesError::Encrypted),
        Err(_) => return Err(PadesError::Malformed("its structure cannot be parsed (damaged or truncated)")),
    };
    if doc.trailer.has(b"Encrypt") || doc.was_encrypted() || doc.is_encrypted() {
        return Err(PadesError::Encrypted);
    }
    if doc.xref_recovery.is_some() || doc.xref_start == 0 {
        return Err(PadesError::Malformed(
            "its cross-reference data is damaged or the file is truncated",
        ));
    }
    if doc.catalog().is_err() {
        return Err(PadesError::Malformed("it has no document catalog"));
    }
    Ok(doc)
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle, 0).is_some()
}

/// The first position of `needle` in `haystack` at or after `from`.
pub(crate) fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    // memchr's searcher, not a window-by-window comparison: a signature's `/Contents` is tens
    // of kilobytes to walk through, on every verification.
    memchr::memmem::find(&haystack[from..], needle).map(|p| p + from)
}

/// A signature field's value as found in the form: the signature dictionary is normally an
/// indirect object (its bytes must be findable in the file); a direct one cannot be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigValue {
    Indirect(ObjectId),
    Direct,
}

/// What the form of a document holds: its signature values in field order, and the names of
/// its top-level fields (a new field needs a name none of them has).
#[derive(Debug, Default)]
pub(crate) struct Form {
    pub signatures: Vec<SigValue>,
    pub names: HashSet<Vec<u8>>,
}

/// Walks `/AcroForm /Fields` and their `/Kids`, with `/FT` inherited as the PDF specification
/// says, bounded in depth and in the number of nodes, and never visiting a node twice (a
/// crafted tree may be cyclic).
pub(crate) fn form(doc: &Document) -> Result<Form, PadesError> {
    let mut out = Form::default();
    let Ok(catalog) = doc.catalog() else {
        return Ok(out);
    };
    let Some(acroform) = catalog.get(b"AcroForm").ok().and_then(|o| deref(doc, o)) else {
        return Ok(out);
    };
    let Some(fields) = acroform
        .as_dict()
        .ok()
        .and_then(|d| d.get(b"Fields").ok())
        .and_then(|o| deref(doc, o))
        .and_then(|o| o.as_array().ok())
    else {
        return Ok(out);
    };
    let mut seen = HashSet::new();
    let mut visited = 0usize;
    let mut stack: Vec<(&Object, Option<Vec<u8>>, usize, bool)> = fields.iter().rev().map(|f| (f, None, 0, true)).collect();
    while let Some((node, inherited_ft, depth, top)) = stack.pop() {
        visited += 1;
        if visited > MAX_FIELDS || depth > MAX_FIELD_DEPTH {
            return Err(PadesError::Malformed("its form has too many or too deeply nested fields"));
        }
        if let Object::Reference(id) = node
            && !seen.insert(*id)
        {
            continue;
        }
        let Some(dict) = deref(doc, node).and_then(|o| o.as_dict().ok()) else {
            continue;
        };
        if top && let Ok(name) = dict.get(b"T").and_then(Object::as_str) {
            out.names.insert(name.to_vec());
        }
        let ft = dict.get(b"FT").and_then(Object::as_name).map(<[u8]>::to_vec).ok().or(inherited_ft);
        if ft.as_deref() == Some(b"Sig".as_slice()) {
            match dict.get(b"V") {
                Ok(Object::Reference(id)) => {
                    let value = SigValue::Indirect(*id);
                    if !out.signatures.contains(&value) {
                        out.signatures.push(value);
                    }
                }
                Ok(Object::Dictionary(_)) => out.signatures.push(SigValue::Direct),
                _ => {}
            }
        }
        if let Some(kids) = dict.get(b"Kids").ok().and_then(|o| deref(doc, o)).and_then(|o| o.as_array().ok()) {
            for kid in kids.iter().rev() {
                stack.push((kid, ft.clone(), depth + 1, false));
            }
        }
    }
    Ok(out)
}

/// `o` itself, or the object it refers to (one level: a reference to a reference is not
/// followed further, which no valid file needs).
pub(crate) fn deref<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Object> {
    match o {
        Object::Reference(id) => doc.get_object(*id).ok(),
        other => Some(other),
    }
}

/// Local time in Vietnam (UTC+07:00 all year, no daylight saving): the PDF date of `/M`
/// (`D:YYYYMMDDHHmmSS+07'00'`) and the stamp's `dd/mm/yyyy HH:MM:SS`.
pub(crate) struct VnTime {
    pub y: i64,
    pub mo: u32,
    pub d: u32,
    pub h: i64,
    pub mi: i64,
    pub s: i64,
}

impl VnTime {
    pub fn from_unix(secs: i64) -> Self {
        let local = secs + 7 * 3600;
        let (y, mo, d) = crate::calendar::civil_from_days(local.div_euclid(86_400));
        let sod = local.rem_euclid(86_400);
        VnTime {
            y,
            mo,
            d,
            h: sod / 3600,
            mi: sod % 3600 / 60,
            s: sod % 60,
        }
    }

    pub fn pdf_date(&self) -> String {
        format!(
            "D:{:04}{:02}{:02}{:02}{:02}{:02}+07'00'",
            self.y, self.mo, self.d, self.h, self.mi, self.s
        )
    }

    pub fn display(&self) -> String {
        format!(
            "{:02}/{:02}/{:04} {:02}:{:02}:{:02} (UTC+07:00)",
            self.d, self.mo, self.y, self.h, self.mi, self.s
        )
    }
}

/// A PDF date (`D:YYYYMMDDHHmmSSOHH'mm'`, every part after the year optional) as RFC 3339, or
/// `None` when it is not one.
pub(crate) fn pdf_date_to_rfc3339(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits = |from: usize, len: usize, default: u32| -> Option<u32> {
        match s.get(from..from + len) {
            Some(part) if part.bytes().all(|b| b.is_ascii_digit()) => part.parse().ok(),
            Some(_) => None,
            None => Some(default),
        }
    };
    let year = digits(0, 4, 0)?;
    if s.len() < 4 {
        return None;
    }
    let (mo, d, h, mi, sec) = (
        digits(4, 2, 1)?,
        digits(6, 2, 1)?,
        digits(8, 2, 0)?,
        digits(10, 2, 0)?,
        digits(12, 2, 0)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let zone = match s.get(14..) {
        None | Some("") | Some("Z") => "Z".to_string(),
        Some(z) => {
            let sign = z.chars().next()?;
            if sign == 'Z' {
                "Z".to_string()
            } else if sign == '+' || sign == '-' {
                let rest: String = z[1..].chars().filter(char::is_ascii_digit).collect();
                let zh = rest.get(0..2)?;
                let zm = rest.get(2..4).unwrap_or("00");
                format!("{sign}{zh}:{zm}")
            } else {
                return None;
            }
        }
    };
    Some(format!("{year:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnam_time_is_utc_plus_seven() {
        // 2026-11-25T20:30:05Z is 26 November, 03:30:05 in Hanoi.
        let t = VnTime::from_unix(1_795_638_605);
        assert_eq!(t.pdf_date(), "D:20261126033005+07'00'");
        assert_eq!(t.display(), "26/11/2026 03:30:05 (UTC+07:00)");
    }

    #[test]
    fn pdf_dates_read_as_rfc3339() {
        assert_eq!(
            pdf_date_to_rfc3339(b"D:20261126033005+07'00'").as_deref(),
            Some("2026-11-26T03:30:05+07:00")
        );
        assert_eq!(pdf_date_to_rfc3339(b"D:20261126033005Z").as_deref(), Some("2026-11-26T03:30:05Z"));
        assert_eq!(pdf_date_to_rfc3339(b"D:2026").as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(pdf_date_to_rfc3339(b"D:2026-1-1"), None);
        assert_eq!(pdf_date_to_rfc3339(b"D:20261399"), None);
        assert_eq!(pdf_date_to_rfc3339(b"yesterday"), None);
    }

    #[test]
    fn find_locates_needles() {
        assert_eq!(find(b"abcabc", b"bc", 0), Some(1));
        assert_eq!(find(b"abcabc", b"bc", 2), Some(4));
        assert_eq!(find(b"abc", b"x", 0), None);
        assert_eq!(find(b"abc", b"a", 9), None);
    }
}
