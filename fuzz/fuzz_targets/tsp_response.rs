//! The RFC 3161 readers (signing/src/tsp.rs): a `TimeStampResp` checked against the request
//! it answers, a `TimeStampToken` inspected, and a signature timestamp checked (cades.rs).
//! A token that is accepted must inspect as signed and covering the request's data.
#![no_main]

use std::sync::OnceLock;

use hcc_fuzz::{TSP_DATA, TSP_NONCE};
use hcc_signing::tsp::{self, TimestampRequest};
use libfuzzer_sys::fuzz_target;

fn request() -> &'static TimestampRequest {
    static REQUEST: OnceLock<TimestampRequest> = OnceLock::new();
    REQUEST.get_or_init(|| TimestampRequest::with_nonce(hcc_signing::sha256(TSP_DATA), &TSP_NONCE).expect("a request"))
}

fuzz_target!(|data: &[u8]| {
    let trust = hcc_fuzz::trust();
    // The signature the token would cover: the fixed data, signed by the gateway's certificate
    // at no particular time (the token's time is then checked against its notBefore only).
    let signature = hcc_signing::cades::SignatureContext {
        signature_value: TSP_DATA,
        signer: &trust.gateway,
        signing_time: None,
    };
    if let Ok(token) = request().accept(data) {
        let info = tsp::inspect_token(&token).expect("an accepted token inspects");
        assert!(info.signature_valid && info.covers(TSP_DATA), "{info:?}");
        let _ = hcc_signing::cades::check_timestamp(&token, &signature, &trust.store);
    }
    if let Ok(info) = tsp::inspect_token(data) {
        let _ = info.covers(TSP_DATA);
    }
    if let Ok(check) = hcc_signing::cades::check_timestamp(data, &signature, &trust.store) {
        assert!(check.valid || !check.trusted, "{check:?}");
    }
});
