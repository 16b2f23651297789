//! Signing: [`prepare`] appends the update with a zero-filled `/Contents` of a reserved size
//! and the final `/ByteRange`; the CMS is then made over [`Prepared::signed_content`] (the two
//! ranges), a timestamp may be added to it, and [`Prepared::embed`] writes its hex into the
//! placeholder. Splitting the steps lets the HTTP layer ask the timestamp authority between
//! them without holding a thread.

use lopdf::{Dictionary, Document, Object, ObjectId};
use openssl::nid::Nid;
use openssl::x509::X509Ref;

use super::writer::{Body, Ids, append};
use super::{PadesError, VnTime, form, load, stamp};
use crate::cades;
use crate::pki::Identity;

/// How the signature is made.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Draw a stamp on page 1 naming the signer, the organisation and the time.
    pub visible: bool,
    /// The signing time, Unix seconds: `/M` and the stamp's time.
    pub time: i64,
    /// Bytes reserved in `/Contents` for the DER CMS (see [`contents_reserve`]).
    pub reserve: usize,
}

/// Room for the CMS: 16 KiB for the signed attributes and the signature, plus the certificates
/// it carries, plus 16 KiB for a signature timestamp token when one will be added.
pub fn contents_reserve(id: &Identity, with_timestamp: bool) -> usize {
    let certs: usize = std::iter::once(&id.cert)
        .chain(&id.chain)
        .map(|c| c.to_der().map(|d| d.len()).unwrap_or(4096))
        .sum();
    16 * 1024 + certs + if with_timestamp { 16 * 1024 } else { 0 }
}

/// The width of the `/ByteRange` array as written: four numbers of up to 14 digits each fit,
/// and the array is padded with spaces to this width so its final values change no offset.
const BYTE_RANGE_WIDTH: usize = 64;

/// A PDF with its signature update in place, `/Contents` still zeros.
#[derive(Debug, Clone)]
pub struct Prepared {
    pdf: Vec<u8>,
    /// The `<` of the `/Contents` hex string.
    gap_start: usize,
    /// Just past its `>`.
    gap_end: usize,
}

impl Prepared {
    /// `[0, gap_start, gap_end, rest]`: what the signature covers.
    pub fn byte_range(&self) -> [usize; 4] {
        [0, self.gap_start, self.gap_end, self.pdf.len() - self.gap_end]
    }

    /// The bytes the signature covers: everything but the `/Contents` hex string.
    pub fn signed_content(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pdf.len() - (self.gap_end - self.gap_start));
        out.extend_from_slice(&self.pdf[..self.gap_start]);
        out.extend_from_slice(&self.pdf[self.gap_end..]);
        out
    }

    /// How many bytes of DER fit in `/Contents`.
    pub fn capacity(&self) -> usize {
        (self.gap_end - self.gap_start - 2) / 2
    }

    /// The signed PDF: `der` in hex in the placeholder, the rest zeros.
    pub fn embed(mut self, der: &[u8]) -> Result<Vec<u8>, PadesError> {
        if der.len() > self.capacity() {
            return Err(PadesError::SignatureTooLarge {
                needed: der.len(),
                reserved: self.capacity(),
            });
        }
        let hex = hex::encode_upper(der);
        let at = self.gap_start + 1;
        self.pdf[at..at + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.pdf)
    }

    /// The PDF as prepared, for tests that build a signature by other means.
    pub fn pdf(&self) -> &[u8] {
        &self.pdf
    }
}

/// B-B in one step: prepare, sign with CAdES over the ranges, embed.
pub fn sign(pdf: &[u8], id: &Identity, options: &SignOptions) -> Result<Vec<u8>, PadesError> {
    let prepared = prepare(pdf, &id.cert, options)?;
    let signature = cades::sign(id, &prepared.signed_content())?;
    prepared.embed(signature.to_der())
}

fn entry(cert: &X509Ref, nid: Nid) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(nid)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// The stamp's lines: who signed, for which organisation, when.
pub(crate) fn stamp_lines(cert: &X509Ref, time: i64) -> Vec<String> {
    let mut lines = vec![format!(
        "Ký bởi: {}",
        entry(cert, Nid::COMMONNAME).unwrap_or_else(|| "(không rõ)".into())
    )];
    if let Some(org) = entry(cert, Nid::ORGANIZATIONNAME) {
        lines.push(format!("Cơ quan: {org}"));
    }
    lines.push(format!("Thời gian: {}", VnTime::from_unix(time).display()));
    lines
}

fn name(s: &str) -> Object {
    Object::Name(s.as_bytes().to_vec())
}

/// The dictionary of the catalog, a page or a form, as it stands in the document.
fn dict_of(doc: &Document, id: ObjectId, what: &'static str) -> Result<Dictionary, PadesError> {
    doc.get_dictionary(id).cloned().map_err(|_| PadesError::Malformed(what))
}

/// The page's media box (inherited through `/Parent`, as the specification allows), or A4.
fn media_box(doc: &Document, page: ObjectId) -> [f32; 4] {
    let mut id = Some(page);
    for _ in 0..super::MAX_FIELD_DEPTH {
        let Some(dict) = id.and_then(|i| doc.get_dictionary(i).ok()) else {
            break;
        };
        if let Some(b) = dict
            .get(b"MediaBox")
            .ok()
            .and_then(|o| super::deref(doc, o))
            .and_then(|o| o.as_array().ok())
            && b.len() == 4
        {
            let v: Vec<f32> = b.iter().filter_map(|n| n.as_float().ok()).collect();
            if v.len() == 4 {
                return [v[0].min(v[2]), v[1].min(v[3]), v[0].max(v[2]), v[1].max(v[3])];
            }
        }
        id = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    [0.0, 0.0, 595.0, 842.0]
}

/// Appends the signature update to `pdf` (see the module documentation); `cert` is the
/// signer's, for the stamp.
pub fn prepare(pdf: &[u8], cert: &X509Ref, options: &SignOptions) -> Result<Prepared, PadesError> {
    let doc = load(pdf)?;
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| PadesError::Malformed("its trailer names no document catalog"))?;
    let page = *doc.get_pages().get(&1).ok_or(PadesError::Malformed("it has no pages"))?;
    let existing = form(&doc)?;
    let field_name = (1..=existing.names.len() + 1)
        .map(|n| format!("Signature{n}"))
        .find(|n| !existing.names.contains(n.as_bytes()))
        .unwrap_or_else(|| "Signature".into());

    let mut ids = Ids::new(&doc)?;
    let sig_id = ids.next()?;
    let field_id = ids.next()?;
    let mut objects: Vec<(ObjectId, Body)> = Vec::new();

    // The field and its widget in one dictionary, as a signature field with one widget may be.
    let mut field = Dictionary::new();
    field.set("Type", name("Annot"));
    field.set("Subtype", name("Widget"));
    field.set("FT", name("Sig"));
    field.set("T", stamp::text_string(&field_name));
    field.set("V", Object::Reference(sig_id));
    // Print + Locked.
    field.set("F", 132);
    field.set("P", Object::Reference(page));
    if options.visible {
        let lines = stamp_lines(cert, options.time);
        let drawn = stamp::build(&lines, || ids.next())?;
        let [x1, y1, x2, _] = media_box(&doc, page);
        let right = (x2 - 36.0).max(x1 + drawn.width);
        let bottom = y1 + 36.0;
        field.set(
            "Rect",
            Object::Array(vec![
                Object::Real(right - drawn.width),
                Object::Real(bottom),
                Object::Real(right),
                Object::Real(bottom + drawn.height),
            ]),
        );
        let mut ap = Dictionary::new();
        ap.set("N", Object::Reference(drawn.appearance));
        field.set("AP", Object::Dictionary(ap));
        objects.extend(drawn.objects.into_iter().map(|(id, o)| (id, Body::Object(o))));
    } else {
        field.set("Rect", Object::Array(vec![0.into(), 0.into(), 0.into(), 0.into()]));
    }

    // The page lists the widget among its annotations.
    let mut page_dict = dict_of(&doc, page, "its first page is not a dictionary")?;
    match page_dict.get(b"Annots") {
        Ok(Object::Reference(annots_id)) => {
            let annots_id = *annots_id;
            let mut annots = doc
                .get_object(annots_id)
                .and_then(Object::as_array)
                .cloned()
                .map_err(|_| PadesError::Malformed("the annotations of its first page are not an array"))?;
            annots.push(Object::Reference(field_id));
            objects.push((annots_id, Body::Object(Object::Array(annots))));
        }
        Ok(Object::Array(annots)) => {
            let mut annots = annots.clone();
            annots.push(Object::Reference(field_id));
            page_dict.set("Annots", Object::Array(annots));
            objects.push((page, Body::Object(Object::Dictionary(page_dict))));
        }
        _ => {
            page_dict.set("Annots", Object::Array(vec![Object::Reference(field_id)]));
            objects.push((page, Body::Object(Object::Dictionary(page_dict))));
        }
    }

    // The form lists the field, and says it holds signatures (SignaturesExist | AppendOnly).
    let mut catalog = dict_of(&doc, root, "its document catalog is not a dictionary")?;
    let add_field = |af: &mut Dictionary, objects: &mut Vec<(ObjectId, Body)>| -> Result<(), PadesError> {
        match af.get(b"Fields") {
            Ok(Object::Reference(fields_id)) => {
                let fields_id = *fields_id;
                let mut fields = doc
                    .get_object(fields_id)
                    .and_then(Object::as_array)
                    .cloned()
                    .map_err(|_| PadesError::Malformed("its form's fields are not an array"))?;
                fields.push(Object::Reference(field_id));
                objects.push((fields_id, Body::Object(Object::Array(fields))));
            }
            Ok(Object::Array(fields)) => {
                let mut fields = fields.clone();
                fields.push(Object::Reference(field_id));
                af.set("Fields", Object::Array(fields));
            }
            _ => af.set("Fields", Object::Array(vec![Object::Reference(field_id)])),
        }
        af.set("SigFlags", 3);
        Ok(())
    };
    match catalog.get(b"AcroForm") {
        Ok(Object::Reference(af_id)) => {
            let af_id = *af_id;
            let mut af = dict_of(&doc, af_id, "its form is not a dictionary")?;
            add_field(&mut af, &mut objects)?;
            objects.push((af_id, Body::Object(Object::Dictionary(af))));
        }
        Ok(Object::Dictionary(af)) => {
            let mut af = af.clone();
            add_field(&mut af, &mut objects)?;
            catalog.set("AcroForm", Object::Dictionary(af));
            objects.push((root, Body::Object(Object::Dictionary(catalog))));
        }
        _ => {
            let af_id = ids.next()?;
            let mut af = Dictionary::new();
            add_field(&mut af, &mut objects)?;
            objects.push((af_id, Body::Object(Object::Dictionary(af))));
            catalog.set("AcroForm", Object::Reference(af_id));
            objects.push((root, Body::Object(Object::Dictionary(catalog))));
        }
    }

    objects.push((field_id, Body::Object(Object::Dictionary(field))));
    let (raw, byte_range_at, contents_at) = signature_dictionary(options);
    objects.push((sig_id, Body::Raw(raw)));

    let written = append(pdf, &doc, objects, &mut ids)?;
    let mut out = written.pdf;
    let sig_at = *written
        .offsets
        .get(&sig_id)
        .ok_or(PadesError::Malformed("the signature dictionary was not written"))?;
    // "N 0 obj\n" precedes the dictionary's own bytes.
    let header = format!("{} {} obj\n", sig_id.0, sig_id.1).len();
    // Checked arithmetic, and the placeholders must be where they were written: a number that
    // does not add up is a refusal, never a slice out of bounds.
    let misplaced = PadesError::Malformed("the signature placeholder is not where it was written");
    let dict_at = sig_at.checked_add(header).ok_or(PadesError::Malformed("the file is too large"))?;
    let gap_start = dict_at
        .checked_add(contents_at)
        .ok_or(PadesError::Malformed("the file is too large"))?;
    let gap_end = options
        .reserve
        .checked_mul(2)
        .and_then(|hex| gap_start.checked_add(hex + 2))
        .ok_or(PadesError::Malformed("the file is too large"))?;
    if gap_end > out.len() || out.get(gap_start) != Some(&b'<') || out.get(gap_end - 1) != Some(&b'>') {
        return Err(misplaced);
    }
    let range = format!("[0 {} {} {}]", gap_start, gap_end, out.len() - gap_end);
    if range.len() > BYTE_RANGE_WIDTH {
        return Err(PadesError::Malformed("the file is too large"));
    }
    let slot = dict_at + byte_range_at;
    out.get_mut(slot..slot + range.len())
        .ok_or(misplaced)?
        .copy_from_slice(range.as_bytes());
    Ok(Prepared {
        pdf: out,
        gap_start,
        gap_end,
    })
}

/// The signature dictionary as bytes, with where its `/ByteRange` array and its `/Contents`
/// string start (relative to the dictionary).
fn signature_dictionary(options: &SignOptions) -> (Vec<u8>, usize, usize) {
    let mut d = Vec::with_capacity(2 * options.reserve + 256);
    d.extend_from_slice(b"<</Type/Sig/Filter/Adobe.PPKLite/SubFilter/ETSI.CAdES.detached/M(");
    d.extend_from_slice(VnTime::from_unix(options.time).pdf_date().as_bytes());
    d.extend_from_slice(b")/ByteRange");
    let byte_range_at = d.len();
    d.extend_from_slice(format!("{:<width$}", "[0 0 0 0]", width = BYTE_RANGE_WIDTH).as_bytes());
    d.extend_from_slice(b"/Contents");
    let contents_at = d.len();
    d.push(b'<');
    d.resize(d.len() + 2 * options.reserve, b'0');
    d.extend_from_slice(b">>>");
    (d, byte_range_at, contents_at)
}
