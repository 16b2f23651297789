//! The XML-DSig verifier (signing/src/xml/dsig.rs) as a bank's camt.054 meets it (the bank's
//! certificate pinned, chained to the store) and as the signature API meets it (`report`,
//! any certificate that chains). A document the pinned check accepts must also be reported
//! valid and trusted.
#![no_main]

use hcc_signing::xml::dsig::{self, XmlTrust};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trust = hcc_fuzz::trust();
    let pinned = dsig::verify_enveloped(
        data,
        &XmlTrust::Pinned {
            cert: &trust.bank,
            store: Some(&trust.store),
        },
    );
    let _ = dsig::verify_enveloped(data, &XmlTrust::Store(&trust.store));
    let report = dsig::report(data, &trust.store);
    if report.trusted {
        assert!(report.valid, "{report:?}");
    }
    if pinned.is_ok() {
        assert!(report.valid, "the pinned check accepted what report calls invalid: {report:?}");
    }
});
