//! One line of the evidence log, and the file it lives in: the format the writer makes, the
//! verifier checks and an auditor reads with nothing but `sha256sum` and `openssl`.
//!
//! A line is `HASH JSON\n`: `HASH` is the lowercase hex SHA-256 of the exact `JSON` bytes, and
//! `JSON` holds, last, `"prev"`: the `HASH` of the record before it in the same chain (64 zeros
//! for a chain's first record). A chain is one process's records, across its daily files.
//! Every field but `prev` is optional after the first four, and absent rather than null.

use serde::{Deserialize, Serialize};

/// The `prev` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record is.
pub mod kind {
    /// A chain's first record: the process that writes it.
    pub const START: &str = "start";
    /// One exchange with the outside.
    pub const EXCHANGE: &str = "exchange";
    /// An RFC 3161 token over an earlier record's hash (and so over every record before it).
    pub const STAMP: &str = "stamp";
    /// Records the writer could not take (its memory budget was full), counted.
    pub const GAP: &str = "gap";
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// When the record was made, RFC 3339 UTC with milliseconds.
    pub time: String,
    pub instance: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterpart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Hex SHA-256 of the exact request bytes; absent when the request carried a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_len: Option<usize>,
    /// Hex SHA-256 of the exact answer bytes; absent when no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What the gateway made of the exchange (the delivery's outcome, the callback's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The request, base64, when the counterpart signed it (a camt.054, a confirmation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kept: Option<String>,
    /// The answer, base64, when the counterpart signed it (a query's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_kept: Option<String>,
    /// A stamp: the hash of the record its token covers, that record's seq, the token's time
    /// and the token (base64 DER `TimeStampToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A gap: how many records were not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    pub prev: String,
}

/// A line that is not `HASH JSON`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("the line is not `HASH JSON`")]
    Shape,
    #[error("its hash does not match its content")]
    Hash,
    #[error("its content is not a record: {0}")]
    Content(String),
}

impl Record {
    /// The line for this record, and its hash.
    pub fn line(&self) -> (String, [u8; 32]) {
        let mut out = Vec::new();
        let hash = self.line_into(&mut out, &mut Vec::new());
        (String::from_utf8_lossy(&out).into_owned(), hash)
    }

    /// Appends this record's line to `out`, serialising through `scratch` (both reused by the
    /// writer, so that a record costs no allocation of its own); gives the line's hash.
    pub fn line_into(&self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> [u8; 32] {
        scratch.clear();
        // Serialising a struct of strings and numbers into memory cannot fail.
        let _ = serde_json::to_writer(&mut *scratch, self);
        let hash = hcc_core::sha256(scratch);
        let mut hex_hash = [0u8; 64];
        // 64 bytes for 32: the sizes match, so this cannot fail.
        let _ = hex::encode_to_slice(hash, &mut hex_hash);
        out.extend_from_slice(&hex_hash);
        out.push(b' ');
        out.extend_from_slice(scratch);
        out.push(b'\n');
        hash
    }
}

/// Reads one line (without its newline): its hash is checked against its content before the
/// content is parsed.
pub fn parse_line(line: &str) -> Result<(Record, [u8; 32]), LineError> {
    let (hash_hex, json) = line.split_once(' ').ok_or(LineError::Shape)?;
    let mut hash = [0u8; 32];
    if hash_hex.len() != 64 || hex::decode_to_slice(hash_hex, &mut hash).is_err() {
        return Err(LineError::Shape);
    }
    if !hcc_core::ct_eq(&hcc_core::sha256(json.as_bytes()), &hash) {
        return Err(LineError::Hash);
    }
    let record: Record = serde_json::from_str(json).map_err(|e| LineError::Content(e.to_string()))?;
    Ok((record, hash))
}

/// The file of `instance`'s chain for `date` (`YYYY-MM-DD`, Vietnam's day).
pub fn file_name(instance: &str, date: &str) -> String {
    format!("evidence-{instance}-{date}.jsonl")
}

/// The instance and the date of a file of the log, or None for any other file.
pub fn parse_file_name(name: &str) -> Option<(String, String)> {
    let stem = name.strip_prefix("evidence-")?.strip_suffix(".jsonl")?;
    // The date is the last 10 characters, after a dash.
    let (instance, date) = stem.split_at(stem.len().checked_sub(11)?);
    let date = date.strip_prefix('-')?;
    let ok_date = date.len() == 10
        && date
            .bytes()
            .enumerate()
            .all(|(i, c)| if i == 4 || i == 7 { c == b'-' } else { c.is_ascii_digit() });
    (ok_date && is_instance(instance)).then(|| (instance.to_string(), date.to_string()))
}

/// An instance id: 1 to 64 of `[a-z0-9-]`, so that it is safe in a file name.
pub fn is_instance(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Vietnam's date (UTC+7) of Unix milliseconds, `YYYY-MM-DD`: the day a file holds.
pub fn vn_date(ms: i64) -> String {
    let days = (ms.div_euclid(1000) + 7 * 3600).div_euclid(86_400);
    let (y, m, d) = hcc_core::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_hash_of_its_json_then_the_json() {
        let r = Record {
            seq: 1,
            time: "2026-12-07T00:00:00.000Z".into(),
            instance: "i1".into(),
            kind: kind::EXCHANGE.into(),
            counterpart: Some("dvcqg".into()),
            prev: GENESIS.into(),
            ..Record::default()
        };
        let (line, hash) = r.line();
        let json = r#"{"seq":1,"time":"2026-12-07T00:00:00.000Z","instance":"i1","type":"exchange","counterpart":"dvcqg","prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
        // Pinned by hand: `printf '%s' "$json" | sha256sum` is the line's first field.
        assert_eq!(line, format!("{} {json}\n", hcc_core::sha256_hex(json.as_bytes())));
        assert_eq!(hash, hcc_core::sha256(json.as_bytes()));
        let (back, h) = parse_line(line.trim_end_matches('\n')).expect("parses");
        assert_eq!((back, h), (r, hash));
    }

    #[test]
    fn a_changed_byte_breaks_the_line() {
        let (line, _) = Record {
            seq: 2,
            kind: kind::EXCHANGE.into(),
            outcome: Some("delivered".into()),
            prev: GENESIS.into(),
            ..Record::default()
        }
        .line();
        let changed = line.trim_end().replace("delivered", "dElivered");
        assert_eq!(parse_line(&changed), Err(LineError::Hash));
        assert_eq!(parse_line("nothing"), Err(LineError::Shape));
        assert_eq!(parse_line(&format!("{} {{}}", "zz".repeat(32))), Err(LineError::Shape));
    }

    #[test]
    fn file_names_carry_the_instance_and_the_day() {
        assert_eq!(file_name("a1-b2", "2026-12-07"), "evidence-a1-b2-2026-12-07.jsonl");
        assert_eq!(
            parse_file_name("evidence-a1-b2-2026-12-07.jsonl"),
            Some(("a1-b2".into(), "2026-12-07".into()))
        );
        for bad in [
            "evidence-2026-12-07.jsonl",
            "evidence-x-2026-12-7.jsonl",
            "evidence-X-2026-12-07.jsonl",
            "other.jsonl",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        // 2026-12-06T17:00:00Z is midnight of the 7th in Vietnam.
        assert_eq!(vn_date(1_796_576_400_000), "2026-12-07");
        assert_eq!(vn_date(1_796_576_399_999), "2026-12-06");
    }
}
