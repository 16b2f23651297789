//! Modification analysis: what the bytes after a signature did to the document it signed.
//!
//! The revision a signature covers (the file up to the end of its `/ByteRange`) is read on its
//! own and compared, object by object, with the whole file as it stands. New objects alone
//! change nothing a reader sees unless an object of the signed revision points at them, so
//! the question is which objects of the signed revision changed, and how. Allowed, as further
//! signatures and document-security data need (what pyHanko's modification analysis calls
//! signature and DSS updates):
//! - the catalog: only `/AcroForm`, `/DSS` and `/Extensions`;
//! - the form (`/AcroForm`): only `/Fields`, `/SigFlags` and `/DR`; its fields list only
//!   grows, and only by signature fields;
//! - a page: only `/Annots`, which only grows, and only by signature widgets;
//! - an empty signature field: only `/V` and `/AP` (being signed);
//! - the document security store (`/DSS`) and what it lists directly, the document
//!   information dictionary (`/Info`) and the XMP metadata stream (`/Metadata`).
//!
//! Anything else changed, deleted or renumbered is a modification, named in the reason.

use std::collections::HashSet;

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::deref;

/// What changed in `now` compared with the signed revision `then`, beyond further signatures
/// and document-security data; None when nothing did.
pub(crate) fn modification(then: &Document, now: &Document) -> Option<String> {
    let root = |d: &Document| d.trailer.get(b"Root").and_then(Object::as_reference).ok();
    let Some(catalog) = root(then) else {
        return Some("the signed revision has no document catalog".into());
    };
    if root(now) != Some(catalog) {
        return Some("the document catalog was replaced".into());
    }
    let allowed = Allowed::of(then, catalog);
    for (id, before) in &then.objects {
        let Some(after) = now.objects.get(id) else {
            return Some(format!("object {} {} was deleted", id.0, id.1));
        };
        if before == after || allowed.free.contains(id) {
            continue;
        }
        let (Ok(b), Ok(a)) = (before.as_dict(), after.as_dict()) else {
            return Some(format!("object {} {} was changed", id.0, id.1));
        };
        let problem = if *id == catalog {
            catalog_change(now, b, a)
        } else if allowed.acroform == Some(*id) {
            acroform_dict_change(now, b, a)
        } else if allowed.fields == Some(*id) {
            grows_by(now, before, after, is_signature_field, "the form's fields")
        } else if allowed.pages.contains(id) {
            page_change(now, b, a)
        } else if allowed.annots.contains(id) {
            grows_by(now, before, after, is_signature_widget, "a page's annotations")
        } else if is_signature_field(then, before) && !b.has(b"V") {
            only_keys_differ(b, a, &[b"V", b"AP"]).map(|k| format!("an empty signature field changed {k}"))
        } else {
            Some(format!("object {} {} was changed", id.0, id.1))
        };
        if let Some(p) = problem {
            return Some(p);
        }
    }
    None
}

/// The objects of the signed revision that further signatures and DSS updates may change.
struct Allowed {
    acroform: Option<ObjectId>,
    fields: Option<ObjectId>,
    pages: HashSet<ObjectId>,
    annots: HashSet<ObjectId>,
    /// Changed freely: the DSS and what it lists directly, `/Info`, `/Metadata`.
    free: HashSet<ObjectId>,
}

impl Allowed {
    fn of(doc: &Document, catalog: ObjectId) -> Self {
        let reference = |d: &Dictionary, key: &[u8]| d.get(key).and_then(Object::as_reference).ok();
        let cat = doc.get_dictionary(catalog).ok();
        let acroform = cat.and_then(|c| reference(c, b"AcroForm"));
        let fields = acroform
            .and_then(|id| doc.get_dictionary(id).ok())
            .or_else(|| cat.and_then(|c| c.get(b"AcroForm").and_then(Object::as_dict).ok()))
            .and_then(|af| reference(af, b"Fields"));
        let pages: HashSet<ObjectId> = doc.get_pages().into_values().collect();
        let annots = pages
            .iter()
            .filter_map(|p| doc.get_dictionary(*p).ok())
            .filter_map(|p| reference(p, b"Annots"))
            .collect();
        let mut free = HashSet::new();
        free.extend(reference(&doc.trailer, b"Info"));
        if let Some(c) = cat {
            free.extend(reference(c, b"Metadata"));
            if let Some(dss) = reference(c, b"DSS") {
                free.insert(dss);
                if let Ok(d) = doc.get_dictionary(dss) {
                    free.extend(d.iter().filter_map(|(_, v)| v.as_reference().ok()));
                }
            }
        }
        Allowed {
            acroform,
            fields,
            pages,
            annots,
            free,
        }
    }
}

/// The first key (other than `allowed`) whose value differs between `b` and `a`, named.
fn only_keys_differ(b: &Dictionary, a: &Dictionary, allowed: &[&[u8]]) -> Option<String> {
    let keys: HashSet<&Vec<u8>> = b.iter().map(|(k, _)| k).chain(a.iter().map(|(k, _)| k)).collect();
    let mut changed: Vec<String> = keys
        .into_iter()
        .filter(|k| !allowed.contains(&k.as_slice()) && b.get(k).ok() != a.get(k).ok())
        .map(|k| format!("/{}", String::from_utf8_lossy(k).escape_default()))
        .collect();
    changed.sort();
    (!changed.is_empty()).then(|| changed.join(", "))
}

fn catalog_change(now: &Document, b: &Dictionary, a: &Dictionary) -> Option<String> {
    if let Some(k) = only_keys_differ(b, a, &[b"AcroForm", b"DSS", b"Extensions"]) {
        return Some(format!("the document catalog changed {k}"));
    }
    // A form written directly in the catalog follows the form's rules.
    match (
        b.get(b"AcroForm").and_then(Object::as_dict),
        a.get(b"AcroForm").and_then(Object::as_dict),
    ) {
        (Ok(fb), Ok(fa)) => acroform_dict_change(now, fb, fa),
        _ => None,
    }
}

fn acroform_dict_change(now: &Document, b: &Dictionary, a: &Dictionary) -> Option<String> {
    if let Some(k) = only_keys_differ(b, a, &[b"Fields", b"SigFlags", b"DR"]) {
        return Some(format!("the form changed {k}"));
    }
    match (b.get(b"Fields"), a.get(b"Fields")) {
        (Ok(fb @ Object::Array(_)), Ok(fa @ Object::Array(_))) => grows_by(now, fb, fa, is_signature_field, "the form's fields"),
        _ => None,
    }
}

fn page_change(now: &Document, b: &Dictionary, a: &Dictionary) -> Option<String> {
    if let Some(k) = only_keys_differ(b, a, &[b"Annots"]) {
        return Some(format!("a page changed {k}"));
    }
    let empty = Object::Array(Vec::new());
    let before = match b.get(b"Annots") {
        Err(_) => &empty,
        Ok(Object::Reference(x)) if a.get(b"Annots").and_then(Object::as_reference).is_ok_and(|y| y == *x) => return None,
        Ok(before @ Object::Array(_)) => before,
        Ok(_) => return Some("a page's annotations were replaced".into()),
    };
    match a.get(b"Annots").ok().and_then(|o| deref(now, o)) {
        Some(after) => grows_by(now, before, after, is_signature_widget, "a page's annotations"),
        None => Some("a page's annotations were removed".into()),
    }
}

/// `after` is the array `before` with only entries that pass `kind` appended.
fn grows_by(now: &Document, before: &Object, after: &Object, kind: fn(&Document, &Object) -> bool, what: &str) -> Option<String> {
    let (Ok(b), Ok(a)) = (before.as_array(), after.as_array()) else {
        return Some(format!("{what} are no longer an array"));
    };
    if a.len() < b.len() || a[..b.len()] != b[..] {
        return Some(format!("{what} were changed, not only added to"));
    }
    a[b.len()..]
        .iter()
        .all(|o| kind(now, o))
        .then_some(())
        .map_or_else(|| Some(format!("{what} gained something other than a signature")), |()| None)
}

/// A signature field: `/FT /Sig` (a widget merged with its field carries it too).
fn is_signature_field(doc: &Document, o: &Object) -> bool {
    deref(doc, o)
        .and_then(|o| o.as_dict().ok())
        .is_some_and(|d| d.get(b"FT").and_then(Object::as_name).is_ok_and(|ft| ft == b"Sig"))
}

/// A signature widget: a signature field itself, or a widget whose `/Parent` is one.
fn is_signature_widget(doc: &Document, o: &Object) -> bool {
    is_signature_field(doc, o)
        || deref(doc, o)
            .and_then(|o| o.as_dict().ok())
            .filter(|d| d.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Widget"))
            .and_then(|d| d.get(b"Parent").ok())
            .is_some_and(|p| is_signature_field(doc, p))
}
