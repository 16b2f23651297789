//! The PDF signature walker (signing/src/pades/verify.rs): lopdf's reading of an uploaded
//! PDF, the form walk, the byte ranges and the CMS each signature carries.
#![no_main]

use hcc_signing::pades::{self, MAX_SIGNATURES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trust = hcc_fuzz::trust();
    if let Ok(signatures) = pades::verify(data, &trust.store) {
        assert!(signatures.len() <= MAX_SIGNATURES);
        for s in &signatures {
            // Trust is only ever claimed for a signature that verifies.
            assert!(s.valid || !s.trusted, "{s:?}");
        }
    }
});
