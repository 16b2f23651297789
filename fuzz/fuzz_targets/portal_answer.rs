//! The portal answer classifier (adapters/src/dvcqg/mod.rs): what the adapter reads from a
//! DVCQG answer (success, error code, message, a stale session, a `TraCuuHoSo` hit or miss),
//! and the catalogue's answers (adapters/src/dvcqg/catalogue.rs: `LayDanhSachTTHC`, `LayThuTuc`):
//! a list holds at most what was asked, only codes the gateway may keep, and a procedure's
//! details are the entry naming it (or the only one).
#![no_main]

use hcc_adapters::catalogue::is_procedure_code;
use hcc_adapters::dvcqg::catalogue::{read_list, read_procedure};
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
    if let Ok(list) = read_list(&v, 100) {
        assert!(list.len() <= 100);
        assert!(list.iter().all(|p| is_procedure_code(&p.code)));
    }
    if let Ok(p) = read_procedure(&v, "1.001193") {
        assert!(p.is_object());
    }
});
