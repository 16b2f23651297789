//! The CMS verifiers (signing/src/cades.rs `verify`, cms.rs `verify_detached`): a detached
//! signature over fixed content, with its certificates, signed attributes and an optional
//! signature timestamp, read from untrusted DER.
#![no_main]

use hcc_fuzz::CONTENT;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trust = hcc_fuzz::trust();
    if let Ok(v) = hcc_signing::cades::verify(data, CONTENT, &trust.store) {
        assert!(v.valid || !v.trusted, "{v:?}");
    }
    if let Ok(v) = hcc_signing::cms::verify_detached(data, CONTENT, &trust.store) {
        assert!(v.valid || !v.trusted, "{v:?}");
    }
});
