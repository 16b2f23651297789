//! The portal answer classifier (adapters/src/dvcqg/mod.rs): what the adapter reads from a
//! DVCQG answer (success, error code, message, a stale session, a `TraCuuHoSo` hit or miss).
#![no_main]

use hcc_adapters::dvcqg::fuzzing::{Lookup, read_answer};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let r = read_answer(&v);
    assert!(r.message.chars().count() <= 500);
    let has_hits = ["result", "data"]
        .iter()
        .any(|k| v.get(*k).and_then(Value::as_array).is_some_and(|l| !l.is_empty()));
    // A hit is never missed and never invented.
    assert_eq!(has_hits, r.lookup == Lookup::Found, "{v} read as {r:?}");
    if r.success {
        assert!(matches!(r.code.as_str(), "0" | "00"), "{r:?}");
    }
});
