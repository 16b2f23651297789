//! The dossier and progress parsers (adapters/src/dvcqg/model.rs), as the ingest routes use
//! them (adapters/src/dvcqg/ingest.rs): JSON into the portal's types at the edge. Beyond
//! "no panic": a parsed object parses again from what is stored (`raw`), the wire form
//! ([`to_wire`]) is idempotent, and a portal date prints as the text it was read from.
#![no_main]

use hcc_adapters::dvcqg::model::{Dossier, MaHoSo, PortalDateTime, Progress, to_wire};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn wire_is_idempotent(raw: &serde_json::Map<String, Value>) {
    let mut once = raw.clone();
    to_wire(&mut once);
    let mut twice = once.clone();
    to_wire(&mut twice);
    assert_eq!(once, twice, "to_wire is not idempotent");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = PortalDateTime::parse(s) {
            assert_eq!(t.to_string(), s);
        }
        if let Ok(m) = MaHoSo::parse(s) {
            assert_eq!(m.as_str(), s);
        }
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(d) = Dossier::parse(&v) {
        let again = Dossier::parse(&Value::Object(d.raw.clone())).expect("the stored dossier parses again");
        assert_eq!(again.ma_ho_so, d.ma_ho_so);
        assert_eq!(again.trang_thai, d.trang_thai);
        wire_is_idempotent(&d.raw);
    }
    let ma = MaHoSo::parse("000.00.22.H46-241125-0001").expect("a valid MaHoSo");
    if let Ok(p) = Progress::parse(&v, &ma) {
        assert_eq!(p.ma_ho_so, ma);
        let again = Progress::parse(&Value::Object(p.raw.clone()), &ma).expect("the stored progress parses again");
        assert_eq!(again.trang_thai, p.trang_thai);
        wire_is_idempotent(&p.raw);
    }
});
