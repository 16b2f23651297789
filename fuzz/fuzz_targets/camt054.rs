//! The camt.054 reader: the cheap root check a bank's body meets first, then the strict XML
//! parser and the transaction reader (adapters/src/payments/bank/camt054.rs). The signature is the
//! xml_dsig target's; here the document is read as if it had verified.
#![no_main]

use hcc_adapters::payments::bank::camt054::{self, Direction, MAX_REFERENCES, MAX_TRANSACTIONS};
use hcc_signing::xml::dom;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = camt054::check_root(data);
    let Ok(doc) = dom::parse(data) else {
        return;
    };
    let Ok(transactions) = camt054::transactions(&doc) else {
        return;
    };
    assert!(transactions.len() <= MAX_TRANSACTIONS);
    for t in &transactions {
        assert!(t.references_found <= MAX_REFERENCES);
        // A reference is reported only when one was found, and it is the gateway's shape.
        assert_eq!(t.reference.is_some(), t.references_found > 0, "{t:?}");
        if let Some(r) = &t.reference {
            // The reader's shape is find_reference's (HCC, six digits, eight of A-Z0-9).
            assert_eq!(hcc_adapters::payments::find_reference(r).as_deref(), Some(r.as_str()), "{t:?}");
        }
        assert!(matches!(t.direction, Direction::Credit | Direction::Debit));
    }
});
