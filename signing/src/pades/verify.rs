//! Verification: every signature field of the form, in the order the signatures were made (by
//! where their `/Contents` sit in the file). For each, the `/ByteRange` is checked against the
//! raw bytes before anything is hashed: it must start at 0, stay inside the file, and leave out
//! exactly the `/Contents` hex string of that signature's own dictionary. A range that lies is
//! reported invalid, whatever the CMS says. `covers_whole_document` is whether the second range
//! ends at the end of the file: false when anything was appended after the signature.
//! `modified_after_signing` is whether what was appended changed the signed document beyond
//! further signatures and document-security data (`changes`); `valid` stays "the CMS verifies
//! over the byte range".

use lopdf::xref::XrefEntry;
use lopdf::{Dictionary, Document, Object, ObjectId};
use serde::Serialize;

use super::{MAX_SIGNATURES, PadesError, SigValue, find, form, load, pdf_date_to_rfc3339};
use crate::cades::{self, TimestampCheck};
use crate::pki::{SignerInfo, TrustStore};

/// One signature as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PdfSignature {
    /// The CMS verifies over the byte range, and the byte range is sound.
    pub valid: bool,
    /// The signer chains to the configured trust store.
    pub trusted: bool,
    pub signer: Option<SignerInfo>,
    pub reason: Option<String>,
    /// The CMS signing-time attribute, or else the dictionary's `/M` (inside the signed
    /// range), RFC 3339.
    pub signed_at: Option<String>,
    #[serde(serialize_with = "timestamp_json")]
    pub timestamp: Option<TimestampCheck>,
    /// Nothing was added to the file after this signature.
    pub covers_whole_document: bool,
    /// What was added after this signature changed the document beyond further signatures
    /// and document-security data (see `changes`); the `reason` names what.
    pub modified_after_signing: bool,
}

fn timestamp_json<S: serde::Serializer>(t: &Option<TimestampCheck>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Ts<'a> {
        time: &'a str,
        valid: bool,
        trusted: bool,
    }
    match t {
        None => s.serialize_none(),
        Some(t) => s.serialize_some(&Ts {
            time: &t.time,
            valid: t.valid,
            trusted: t.trusted,
        }),
    }
}

fn invalid(reason: &str) -> PdfSignature {
    PdfSignature {
        valid: false,
        trusted: false,
        signer: None,
        reason: Some(reason.to_string()),
        signed_at: None,
        timestamp: None,
        covers_whole_document: false,
        modified_after_signing: false,
    }
}

/// Every signature in `pdf`, in signing order; none for an unsigned PDF.
pub fn verify(pdf: &[u8], trust: &TrustStore) -> Result<Vec<PdfSignature>, PadesError> {
    let doc = load(pdf)?;
    let form = form(&doc)?;
    if form.signatures.len() > MAX_SIGNATURES {
        return Err(PadesError::Malformed("it holds more signatures than are checked (64)"));
    }
    let mut found: Vec<(usize, PdfSignature)> = form
        .signatures
        .iter()
        .map(|value| match value {
            SigValue::Indirect(id) => check(pdf, &doc, *id, trust),
            SigValue::Direct => (
                usize::MAX,
                invalid("the signature dictionary is not an indirect object, so its bytes cannot be located"),
            ),
        })
        .collect();
    found.sort_by_key(|(at, _)| *at);
    Ok(found.into_iter().map(|(_, s)| s).collect())
}

/// The four numbers of a `/ByteRange`, when it is four non-negative integers.
fn byte_range(dict: &Dictionary) -> Option<[usize; 4]> {
    let items = dict.get(b"ByteRange").ok()?.as_array().ok()?;
    if items.len() != 4 {
        return None;
    }
    let mut out = [0usize; 4];
    for (slot, item) in out.iter_mut().zip(items) {
        *slot = usize::try_from(item.as_i64().ok()?).ok()?;
    }
    Some(out)
}

/// Where the object `id` starts in the file and where its `endobj` is, when it is stored as a
/// plain object (a signature dictionary inside a compressed object stream cannot have a byte
/// range of its own).
fn object_span(pdf: &[u8], doc: &Document, id: ObjectId) -> Option<(usize, usize)> {
    let Some(XrefEntry::Normal { offset, .. }) = doc.reference_table.get(id.0) else {
        return None;
    };
    let start = usize::try_from(*offset).ok()?;
    let end = find(pdf, b"endobj", start)?;
    Some((start, end))
}

/// The length of the DER SEQUENCE at the start of `b` (a `/Contents` is zero-padded after it),
/// or `None` when it does not start with one of definite length.
fn der_length(b: &[u8]) -> Option<usize> {
    if b.len() < 2 || b[0] != 0x30 {
        return None;
    }
    let first = usize::from(b[1]);
    let (header, len) = if first < 0x80 {
        (2, first)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 || b.len() < 2 + n {
            return None;
        }
        (2 + n, b[2..2 + n].iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    };
    let total = header.checked_add(len)?;
    (total <= b.len()).then_some(total)
}

/// Whether `[gap_start, gap_end)` of the raw file is exactly a hex string whose value is
/// `contents`, inside the object spanning `[start, end)`.
fn gap_is_contents(pdf: &[u8], span: (usize, usize), gap: (usize, usize), contents: &[u8]) -> bool {
    let (start, end) = span;
    let (gap_start, gap_end) = gap;
    if gap_start <= start || gap_end > end || gap_end < gap_start + 2 {
        return false;
    }
    let raw = &pdf[gap_start..gap_end];
    if raw[0] != b'<' || raw[raw.len() - 1] != b'>' {
        return false;
    }
    let digits = &raw[1..raw.len() - 1];
    // Two hex digits (either case, nothing else) per byte of `contents`, compared pair by pair
    // rather than decoded into a copy: the string is tens of kilobytes on every verification.
    digits.len() == 2 * contents.len()
        && digits.chunks_exact(2).zip(contents).all(|(pair, byte)| {
            hex_digit(pair[0])
                .zip(hex_digit(pair[1]))
                .is_some_and(|(hi, lo)| (hi << 4 | lo) == *byte)
        })
}

/// The value of one hex digit, either case.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One signature: `(where its /Contents starts, the report)`.
fn check(pdf: &[u8], doc: &Document, id: ObjectId, trust: &TrustStore) -> (usize, PdfSignature) {
    let Ok(dict) = doc.get_dictionary(id) else {
        return (usize::MAX, invalid("the signature value is not a dictionary"));
    };
    let sub_filter = dict.get(b"SubFilter").and_then(Object::as_name).unwrap_or(b"");
    if sub_filter != b"ETSI.CAdES.detached" && sub_filter != b"adbe.pkcs7.detached" {
        return (
            usize::MAX,
            invalid("the /SubFilter is not a detached CMS signature (ETSI.CAdES.detached or adbe.pkcs7.detached)"),
        );
    }
    let Some(range) = byte_range(dict) else {
        return (usize::MAX, invalid("the /ByteRange is not four non-negative integers"));
    };
    let Ok(contents) = dict.get(b"Contents").and_then(Object::as_str) else {
        return (usize::MAX, invalid("the signature dictionary has no /Contents string"));
    };
    let Some(span) = object_span(pdf, doc, id) else {
        return (
            usize::MAX,
            invalid("the signature dictionary is not stored as a plain object in the file"),
        );
    };
    let [first, first_len, second, second_len] = range;
    let sound = first == 0
        && second.checked_add(second_len).is_some_and(|end| end <= pdf.len())
        && gap_is_contents(pdf, span, (first_len, second), contents);
    if !sound {
        return (
            first_len,
            invalid("the /ByteRange does not cover the file except exactly this signature's /Contents"),
        );
    }
    let signed_end = second + second_len;
    let covers_whole_document = signed_end == pdf.len();
    // Only what follows the signed revision can modify it: the revision is read on its own
    // and compared with the document as it stands.
    let modified = if covers_whole_document {
        None
    } else {
        match super::load(&pdf[..signed_end]) {
            Ok(then) => super::changes::modification(&then, doc),
            Err(_) => Some("the signed revision cannot be read on its own, so what followed it cannot be judged".into()),
        }
    };
    let mut content = Vec::with_capacity(first_len + second_len);
    content.extend_from_slice(&pdf[..first_len]);
    content.extend_from_slice(&pdf[second..second + second_len]);
    let der = &contents[..der_length(contents).unwrap_or(contents.len())];
    let claimed = dict.get(b"M").and_then(Object::as_str).ok().and_then(pdf_date_to_rfc3339);
    let modified_after_signing = modified.is_some();
    let with_modification = |reason: Option<String>| match (&modified, reason) {
        (None, r) => r,
        (Some(m), None) => Some(format!("the document was modified after signing: {m}")),
        (Some(m), Some(r)) => Some(format!("{r}; the document was modified after signing: {m}")),
    };
    let report = match cades::verify(der, &content, trust) {
        Ok(v) => PdfSignature {
            valid: v.valid,
            trusted: v.trusted,
            signer: v.signer,
            reason: with_modification(v.reason),
            signed_at: v.signed_at.or(claimed),
            timestamp: v.timestamp,
            covers_whole_document,
            modified_after_signing,
        },
        Err(e) => PdfSignature {
            covers_whole_document,
            modified_after_signing,
            ..invalid(&with_modification(Some(e.to_string())).unwrap_or_default())
        },
    };
    (first_len, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_length_reads_short_and_long_forms() {
        assert_eq!(der_length(&[0x30, 0x03, 1, 2, 3, 0, 0]), Some(5));
        assert_eq!(der_length(&[0x30, 0x82, 0x00, 0x02, 9, 9, 0]), Some(6));
        assert_eq!(der_length(&[0x30, 0x82, 0x01, 0x00, 9]), None);
        assert_eq!(der_length(&[0x31, 0x01, 0]), None);
        assert_eq!(der_length(&[0x30, 0x80, 0]), None);
    }

    #[test]
    fn the_gap_must_be_exactly_the_contents_string() {
        let pdf = b"7 0 obj\n<</Contents<0A0B00>/X<0A0B00>>>\nendobj\n";
        let span = (0, find(pdf, b"endobj", 0).unwrap());
        let at = find(pdf, b"<0A", 0).unwrap();
        assert!(gap_is_contents(pdf, span, (at, at + 8), &[0x0a, 0x0b, 0]));
        // One byte more or less, a different value, or outside the object: refused.
        assert!(!gap_is_contents(pdf, span, (at, at + 9), &[0x0a, 0x0b, 0]));
        assert!(!gap_is_contents(pdf, span, (at - 1, at + 8), &[0x0a, 0x0b, 0]));
        assert!(!gap_is_contents(pdf, span, (at, at + 8), &[0x0a, 0x0b, 1]));
        assert!(!gap_is_contents(pdf, (0, at + 4), (at, at + 8), &[0x0a, 0x0b, 0]));
    }
}
