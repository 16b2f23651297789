//! The parsers of dossiers handed down (adapters/src/dvcqg/push.rs, adapters/src/dvclt/wire.rs,
//! adapters/src/inbound.rs): the portal's push body, the link-up's token, list and detail
//! answers, the centre's status, file types by first bytes and file names. Beyond "no panic":
//! a parsed push's code is a valid MaHoSo, no file content stays among its fields, a safe file
//! name has no path separator or control character, and a parsed status reads back the same.
#![no_main]

use hcc_adapters::domain::MaHoSo;
use hcc_adapters::dvclt::wire;
use hcc_adapters::dvcqg::push::parse_push;
use hcc_adapters::inbound::{FileType, InboundStatus, Listed, read_status_payload, safe_file_name, status_payload};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let _ = FileType::sniff(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let name = safe_file_name(s);
        assert!(!name.is_empty() && !name.contains(['/', '\\']) && !name.chars().any(char::is_control), "{name:?}");
        let _ = wire::link_up_time(s);
    }
    if let Ok(d) = parse_push(data) {
        assert!(MaHoSo::parse(d.code.as_str()).is_ok());
        assert!(d.fields.get("TepDonDangKy").is_none(), "file content kept among the fields");
    }
    let _ = wire::read_token(data);
    let _ = wire::read_list(data, 500).map(|l| assert!(l.len() <= 500));
    if let Ok(code) = MaHoSo::parse("KS-H46-0001") {
        let listed = Listed {
            code: code.clone(),
            handle: "1".into(),
        };
        if let Ok(d) = wire::read_detail(data, &listed) {
            assert_eq!(d.code, code, "a detail is read only for the dossier asked for");
        }
    }
    let _ = wire::ack_taken(data);
    let _ = wire::status_taken(data);
    if let Ok(v) = serde_json::from_slice::<Value>(data)
        && let Ok(s) = InboundStatus::parse(&v)
    {
        let payload = serde_json::to_vec(&status_payload(&s, &Map::new())).expect("encodes");
        assert_eq!(read_status_payload(&payload).map(|(back, _)| back), Ok(s));
    }
});
