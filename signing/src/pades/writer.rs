//! Writes an incremental update (ISO 32000-1, 7.5.6): the original bytes, untouched, then the
//! new and changed objects, a cross-reference section for exactly those objects and a trailer
//! whose `/Prev` points at the previous section. The section is a classic `xref` table, or a
//! cross-reference stream when the file's last section is one (a reader of a file written with
//! streams need not read tables).

use std::collections::BTreeMap;

use lopdf::xref::XrefType;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, Writer};

use super::PadesError;

/// An object of the update: serialised by lopdf, or written here byte for byte (the signature
/// dictionary, whose placeholders must sit at known offsets).
pub(crate) enum Body {
    Object(Object),
    Raw(Vec<u8>),
}

/// The update as written: the whole file, and where each object of the update starts.
pub(crate) struct Written {
    pub pdf: Vec<u8>,
    pub offsets: BTreeMap<ObjectId, usize>,
}

/// The highest object number a PDF may use (ISO 32000-1, annex C: 8,388,607 indirect
/// objects); a file claiming more is refused rather than numbered past it.
pub(crate) const MAX_OBJECT_NUMBER: u32 = 8_388_607;

/// The trailer's `/Size`: absent is None, anything but an integer in `0..=MAX_OBJECT_NUMBER + 1`
/// is refused (a larger one would make the new objects' numbers wrap or collide).
fn declared_size(doc: &Document) -> Result<Option<u32>, PadesError> {
    let Ok(size) = doc.trailer.get(b"Size") else {
        return Ok(None);
    };
    size.as_i64()
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .filter(|s| *s <= MAX_OBJECT_NUMBER + 1)
        .map(Some)
        .ok_or(PadesError::Malformed(
            "its trailer's /Size is not an object count a PDF may have (at most 8388608)",
        ))
}

/// Object numbers for new objects: above every number the file has used, as its trailer's
/// `/Size` and its objects say, and never above [`MAX_OBJECT_NUMBER`].
pub(crate) struct Ids {
    next: u32,
}

impl Ids {
    pub fn new(doc: &Document) -> Result<Self, PadesError> {
        let size = declared_size(doc)?.unwrap_or(0);
        if doc.max_id > MAX_OBJECT_NUMBER {
            return Err(PadesError::Malformed(
                "it numbers an object above 8388607, more than a PDF may hold (/Size)",
            ));
        }
        Ok(Ids {
            next: size.max(doc.max_id + 1).max(1),
        })
    }

    /// The next free number; running past [`MAX_OBJECT_NUMBER`] is refused, never wrapped.
    pub fn next(&mut self) -> Result<ObjectId, PadesError> {
        if self.next > MAX_OBJECT_NUMBER {
            return Err(PadesError::Malformed(
                "its /Size leaves no object numbers for the signature (a PDF holds at most 8388607 objects)",
            ));
        }
        let id = (self.next, 0);
        self.next += 1;
        Ok(id)
    }
}

fn io(_: std::io::Error) -> PadesError {
    PadesError::Malformed("an object of the document cannot be written back")
}

/// `original` followed by the update holding `objects`.
pub(crate) fn append(original: &[u8], doc: &Document, objects: Vec<(ObjectId, Body)>, ids: &mut Ids) -> Result<Written, PadesError> {
    let mut pdf = Vec::with_capacity(original.len() + 64 * 1024);
    pdf.extend_from_slice(original);
    if !original.ends_with(b"\n") && !original.ends_with(b"\r") {
        pdf.push(b'\n');
    }
    let mut offsets = BTreeMap::new();
    for (id, body) in objects {
        // Two objects of one number in one section would make the file ambiguous.
        if offsets.insert(id, pdf.len()).is_some() {
            return Err(PadesError::Malformed("the update would hold two objects of one number"));
        }
        pdf.extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
        match body {
            Body::Object(o) => Writer::write_object(&mut pdf, &o).map_err(io)?,
            Body::Raw(bytes) => pdf.extend_from_slice(&bytes),
        }
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let prev = i64::try_from(doc.xref_start).map_err(|_| PadesError::Malformed("the file is too large"))?;
    let mut trailer = Dictionary::new();
    for key in [b"Root".as_slice(), b"Info", b"ID"] {
        if let Ok(v) = doc.trailer.get(key) {
            trailer.set(key, v.clone());
        }
    }
    trailer.set("Prev", prev);
    match doc.reference_table.cross_reference_type {
        XrefType::CrossReferenceTable => {
            let size = size_after(doc, &offsets)?;
            trailer.set("Size", i64::from(size));
            let start = pdf.len();
            pdf.extend_from_slice(b"xref\n");
            for run in runs(&offsets) {
                pdf.extend_from_slice(format!("{} {}\n", run[0].0.0, run.len()).as_bytes());
                for ((_, generation), offset) in run {
                    pdf.extend_from_slice(format!("{offset:010} {generation:05} n\r\n").as_bytes());
                }
            }
            pdf.extend_from_slice(b"trailer\n");
            Writer::write_object(&mut pdf, &Object::Dictionary(trailer)).map_err(io)?;
            pdf.extend_from_slice(format!("\nstartxref\n{start}\n%%EOF\n").as_bytes());
        }
        XrefType::CrossReferenceStream => {
            let id = ids.next()?;
            let start = pdf.len();
            if offsets.insert(id, start).is_some() {
                return Err(PadesError::Malformed("the update would hold two objects of one number"));
            }
            let size = size_after(doc, &offsets)?;
            // Type 1 entries (in use, at an offset): type, offset, generation, big-endian.
            let wide = offsets.values().any(|o| u32::try_from(*o).is_err());
            let width: usize = if wide { 8 } else { 4 };
            let mut index = Vec::new();
            let mut data = Vec::new();
            for run in runs(&offsets) {
                index.push(Object::Integer(i64::from(run[0].0.0)));
                index.push(Object::Integer(run.len() as i64));
                for ((_, generation), offset) in run {
                    data.push(1u8);
                    data.extend_from_slice(&(*offset as u64).to_be_bytes()[8 - width..]);
                    data.extend_from_slice(&generation.to_be_bytes());
                }
            }
            trailer.set("Type", Object::Name(b"XRef".to_vec()));
            trailer.set("Size", i64::from(size));
            trailer.set("Index", Object::Array(index));
            trailer.set("W", Object::Array(vec![1.into(), Object::Integer(width as i64), 2.into()]));
            let stream = Stream::new(trailer, data).with_compression(false);
            pdf.extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
            Writer::write_object(&mut pdf, &Object::Stream(stream)).map_err(io)?;
            pdf.extend_from_slice(format!("\nendobj\nstartxref\n{start}\n%%EOF\n").as_bytes());
        }
    }
    Ok(Written { pdf, offsets })
}

/// The trailer's `/Size` after the update: one more than the highest object number in use.
fn size_after(doc: &Document, offsets: &BTreeMap<ObjectId, usize>) -> Result<u32, PadesError> {
    let before = declared_size(doc)?.unwrap_or(0);
    let highest = offsets.keys().map(|(n, _)| n.saturating_add(1)).max().unwrap_or(0);
    Ok(before.max(highest).max(doc.max_id.saturating_add(1)))
}

/// The objects grouped in runs of consecutive numbers: one subsection each.
fn runs(offsets: &BTreeMap<ObjectId, usize>) -> Vec<Vec<(&ObjectId, &usize)>> {
    let mut out: Vec<Vec<(&ObjectId, &usize)>> = Vec::new();
    for entry in offsets {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|(id, _)| id.0.checked_add(1) == Some(entry.0.0)) => run.push(entry),
            _ => out.push(vec![entry]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_numbers() {
        let offsets: BTreeMap<ObjectId, usize> = [((3, 0), 10), ((4, 0), 20), ((7, 0), 30), ((9, 0), 40), ((10, 0), 50)]
            .into_iter()
            .collect();
        let lens: Vec<(u32, usize)> = runs(&offsets).iter().map(|r| (r[0].0.0, r.len())).collect();
        assert_eq!(lens, vec![(3, 2), (7, 1), (9, 2)]);
    }
}
