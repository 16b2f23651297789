//! The strict XML parser and both canonicalizations (signing/src/xml/dom.rs, c14n.rs). Beyond
//! "no panic": canonical XML is well-formed XML the same parser reads, and canonicalizing it
//! again changes nothing (C14N is idempotent), for the whole document and for every subtree
//! with its ancestry (what a `Reference` to an element digests).
#![no_main]

use hcc_signing::xml::c14n::{self, Ancestry, Method};
use hcc_signing::xml::dom::{self, Element};
use libfuzzer_sys::fuzz_target;

/// Subtrees checked per input at most: the walk is bounded like everything else.
const MAX_SUBTREES: usize = 64;

fn subtrees<'a>(e: &'a Element, ancestry: &Ancestry, out: &mut Vec<(&'a Element, Ancestry)>) {
    if out.len() >= MAX_SUBTREES {
        return;
    }
    out.push((e, ancestry.clone()));
    let mut inner = ancestry.clone();
    inner.push(e);
    for c in e.child_elements() {
        subtrees(c, &inner, out);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = dom::parse(data) else {
        return;
    };
    for method in [Method::Exclusive, Method::Inclusive] {
        let once = c14n::document_with(method, &doc, None);
        let reparsed = match dom::parse(&once) {
            Ok(d) => d,
            Err(e) => panic!("{method:?} canonical form does not parse ({e}): {}", String::from_utf8_lossy(&once)),
        };
        let twice = c14n::document_with(method, &reparsed, None);
        assert!(
            once == twice,
            "{method:?} C14N is not idempotent:\n{}\n---\n{}",
            String::from_utf8_lossy(&once),
            String::from_utf8_lossy(&twice)
        );
        let mut all = Vec::new();
        subtrees(&doc.root, &Ancestry::default(), &mut all);
        for (e, ancestry) in &all {
            let sub = c14n::subtree_with(method, e, ancestry, None);
            let Ok(sub_doc) = dom::parse(&sub) else {
                panic!("{method:?} canonical subtree does not parse: {}", String::from_utf8_lossy(&sub));
            };
            // The subtree's canonical form declares what it uses: as a document it reads the same.
            let again = c14n::subtree_with(method, &sub_doc.root, &Ancestry::default(), None);
            assert!(
                sub == again,
                "{method:?} subtree C14N is not idempotent:\n{}\n---\n{}",
                String::from_utf8_lossy(&sub),
                String::from_utf8_lossy(&again)
            );
        }
    }
});
