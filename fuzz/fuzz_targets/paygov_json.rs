//! The PayGov readers (adapters/src/payments/paygov/wire.rs): the confirmation the platform posts,
//! and the INIT and QUERY answers with their two envelopes. Each object is also given a correct
//! `MaXacThuc` (PayGov's rule, docs/paygov.md: SHA-256 of the confirmation fields and the secret, joined with
//! `|`) and read again, so the reader past the checksum is reached: it must then accept the
//! checksum, and what it reads must be the signed values.
#![no_main]

use hcc_adapters::payments::paygov::{self, CONFIRM_FIELDS, ConfirmationError};
use hcc_fuzz::{PARTNER_CODE, SECRET};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = paygov::unwrap_answer(&v);
    let _ = paygov::parse_init_answer(&v);
    let _ = paygov::parse_query_answer(&v);
    let _ = paygov::parse_confirmation(&v, PARTNER_CODE, SECRET);
    let Some(m) = v.as_object_mut() else {
        return;
    };
    let mut parts: Vec<String> = CONFIRM_FIELDS.iter().map(|f| text(&Value::Object(m.clone()), f)).collect();
    parts.push(SECRET.into());
    let sum = hcc_signing::sha256_hex(parts.join("|").as_bytes());
    assert_eq!(sum, paygov::checksum(m, CONFIRM_FIELDS, SECRET));
    m.insert("MaXacThuc".into(), Value::String(sum.to_uppercase()));
    match paygov::parse_confirmation(&v, PARTNER_CODE, SECRET) {
        Err(ConfirmationError::BadChecksum) => panic!("a correctly summed confirmation was refused: {v}"),
        Ok(c) => {
            assert_eq!(c.reference, text(&v, "MaThamChieu"));
            assert_eq!(c.amount.to_string(), text(&v, "SoTien"));
            assert_eq!(c.paid, text(&v, "MaLoi") == "00");
            assert!(!c.ma_loi.is_empty());
            if c.paid {
                assert_eq!(c.transaction, text(&v, "MaGiaoDich"));
            }
            assert_eq!(c.checksum, sum);
            let _ = paygov::reply("00", "ok", PARTNER_CODE, &c.reference, &c.time, &c.checksum);
        }
        Err(_) => {}
    }
});
