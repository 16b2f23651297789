//! What a payer's banking app does with a scanned VietQR code, for the mock bank's
//! `POST /_mock/bank/vietqr`: read the EMVCo merchant-presented payload (NAPAS 247 "VietQR")
//! and check it field by field before booking the transfer. Written from the VietQR notes
//! (`shared/domain/vietqr.md`: the field table, the CRC algorithm and its public test vectors),
//! never from the gateway's adapter, so that a mistake in the gateway's encoder is refused here
//! instead of mirrored.
//!
//! The checks, in the order an app would meet them: the payload is ASCII; every field is an ID
//! (2 digits), a length (2 digits) and exactly that many characters, with nothing left over, at
//! every level; `00`=`01` comes first and `63` last; the IDs in between ascend; `63` is 4
//! upper-case hex digits equal to the CRC-16/CCITT-FALSE of everything through `6304`; then the
//! VietQR fields themselves (`01`, `38`, `53`, `54`, `58`, `59`, `60`, `62`).

use thiserror::Error;

/// The NAPAS GUID that makes a merchant account template (ID 38) a VietQR one.
pub const NAPAS_GUID: &str = "A000000727";
/// Transfer to an account (`38/02`); `QRIBFTTC` (to a card) is not booked by this mock.
pub const SERVICE_TO_ACCOUNT: &str = "QRIBFTTA";
const SERVICE_TO_CARD: &str = "QRIBFTTC";
/// The longest account number `38/01/01` may carry.
const MAX_ACCOUNT: usize = 19;
/// The longest amount `54` may carry (whole đồng, digits only).
const MAX_AMOUNT: usize = 13;
/// The longest `62/01`, `62/05` and `62/08`.
const MAX_ADDITIONAL: usize = 25;
/// Far more than any payload that fits a QR code: a bound on the work done for one request.
const MAX_PAYLOAD: usize = 4096;

/// Why a payer's app would refuse the code. The messages name the field and what is wrong,
/// because they are the mock bank's `{"error"}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QrError {
    #[error("the payload is empty")]
    Empty,
    #[error("the payload is {0} characters long; no QR code holds that much")]
    TooLong(usize),
    #[error("the payload is not printable ASCII (character {0} is not): VietQR payloads are ASCII only")]
    NotAscii(usize),
    #[error("{within}: at character {at}, {what}")]
    Structure {
        /// Where: `payload`, or the template being read (`38`, `38/01`, `62`).
        within: String,
        at: usize,
        what: String,
    },
    #[error("field 00 (payload format indicator) must come first and be \"01\", found {0}")]
    FormatIndicator(String),
    #[error("field 63 (CRC) must be the last field, found {0}")]
    CrcNotLast(String),
    #[error("field 63 (CRC) must be 4 upper-case hex digits, found {0:?}")]
    CrcFormat(String),
    #[error("bad CRC: field 63 is {found}, but the CRC-16/CCITT-FALSE of the payload through 6304 is {computed}")]
    BadCrc { found: String, computed: String },
    #[error("field {id} appears after field {after}: the fields must come in ascending ID order, each once")]
    Order { id: String, after: String },
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {field}: {what}")]
    Field { field: &'static str, what: String },
    #[error("wrong GUID in 38/00: {0:?}, where VietQR (NAPAS) is \"A000000727\"")]
    WrongGuid(String),
}

/// How the code was initiated (`01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiation {
    /// `11`: a reusable code; the payer types the amount.
    Static,
    /// `12`: one payment, the amount fixed by `54`.
    Dynamic,
}

/// A payload that passed every check, as the payer's app shows it before the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQr {
    pub initiation: Initiation,
    /// `38/01/00`: the beneficiary bank's NAPAS BIN (6 digits).
    pub bin: String,
    /// `38/01/01`: the beneficiary account.
    pub account: String,
    /// `38/02`.
    pub service: String,
    /// `54`, whole đồng.
    pub amount: Option<u64>,
    /// `59`, `60`.
    pub merchant_name: Option<String>,
    pub city: Option<String>,
    /// `62/01`: bill number.
    pub bill: Option<String>,
    /// `62/05`: reference label.
    pub reference_label: Option<String>,
    /// `62/08`: purpose of transaction, which the app pre-fills as the transfer note.
    pub purpose: Option<String>,
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Splits one level of ID-length-value fields, refusing anything that is not exactly that.
/// `within` names the level in errors; `base` is its offset in the whole payload.
fn fields<'a>(text: &'a str, within: &str, base: usize) -> Result<Vec<(&'a str, &'a str)>, QrError> {
    let bad = |at: usize, what: String| QrError::Structure {
        within: within.to_string(),
        at: base + at,
        what,
    };
    let mut out = Vec::new();
    let mut at = 0;
    // Each field takes at least 4 characters, so this bounds the loop.
    while at < text.len() {
        let rest = &text[at..];
        if rest.len() < 4 {
            return Err(bad(
                at,
                format!("{:?} is left over, too short for a field (ID 2 digits, length 2 digits)", rest),
            ));
        }
        let (id, len) = (&rest[..2], &rest[2..4]);
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(at, format!("the field ID {id:?} is not 2 digits")));
        }
        if !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(at, format!("field {id}: the length {len:?} is not 2 digits")));
        }
        let n: usize = len.parse().unwrap_or(0);
        if n == 0 {
            return Err(bad(at, format!("field {id} has length 00")));
        }
        if rest.len() - 4 < n {
            return Err(bad(
                at,
                format!("field {id} says {n} characters but only {} remain", rest.len() - 4),
            ));
        }
        out.push((id, &rest[4..4 + n]));
        at += 4 + n;
    }
    Ok(out)
}

/// Reads and checks a VietQR payload as a payer's banking app would.
pub fn decode(payload: &str) -> Result<VietQr, QrError> {
    if payload.is_empty() {
        return Err(QrError::Empty);
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(QrError::TooLong(payload.len()));
    }
    if let Some(i) = payload.chars().position(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(QrError::NotAscii(i));
    }
    let top = fields(payload, "payload", 0)?;
    match top.first() {
        Some(("00", "01")) => {}
        Some((id, value)) => return Err(QrError::FormatIndicator(format!("{id}={value:?}"))),
        None => return Err(QrError::Empty),
    }
    match top.last() {
        Some(("63", crc)) => {
            if crc.len() != 4 || !crc.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
                return Err(QrError::CrcFormat((*crc).to_string()));
            }
            // The CRC covers everything before its 4 digits, i.e. through "6304".
            let computed = format!("{:04X}", crc16(&payload.as_bytes()[..payload.len() - 4]));
            if computed != *crc {
                return Err(QrError::BadCrc {
                    found: (*crc).to_string(),
                    computed,
                });
            }
        }
        Some((id, _)) => return Err(QrError::CrcNotLast(format!("field {id}"))),
        None => return Err(QrError::Missing("63")),
    }
    for pair in top.windows(2) {
        if pair[1].0 <= pair[0].0 {
            return Err(QrError::Order {
                id: pair[1].0.to_string(),
                after: pair[0].0.to_string(),
            });
        }
    }
    let get = |id: &str| top.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    let field = |field: &'static str, what: String| QrError::Field { field, what };

    let initiation = match get("01") {
        Some("12") => Initiation::Dynamic,
        Some("11") => Initiation::Static,
        Some(other) => {
            return Err(field("01", format!("point of initiation {other:?}: 12 (dynamic) or 11 (static)")));
        }
        None => return Err(QrError::Missing("01")),
    };

    let (bin, account, service) = merchant_account(payload, get("38").ok_or(QrError::Missing("38"))?)?;

    match get("53") {
        Some("704") => {}
        Some(other) => return Err(field("53", format!("currency {other:?}: VND is 704"))),
        None => return Err(QrError::Missing("53")),
    }
    let amount = match get("54") {
        Some(a) if a.len() <= MAX_AMOUNT && a.bytes().all(|b| b.is_ascii_digit()) => match a.parse::<u64>() {
            Ok(0) => return Err(field("54", "the amount is zero".into())),
            Ok(n) => Some(n),
            Err(_) => return Err(field("54", format!("amount {a:?} is not a number"))),
        },
        Some(a) => {
            return Err(field("54", format!("amount {a:?}: whole đồng, digits only, at most {MAX_AMOUNT}")));
        }
        None if initiation == Initiation::Dynamic => {
            return Err(field("54", "a dynamic code (01=12) must carry the amount".into()));
        }
        None => None,
    };
    match get("58") {
        Some("VN") => {}
        Some(other) => return Err(field("58", format!("country {other:?}: VN"))),
        None => return Err(QrError::Missing("58")),
    }
    let merchant_name = match get("59") {
        Some(n) if n.len() > 25 => return Err(field("59", format!("merchant name of {} characters: at most 25", n.len()))),
        n => n.map(str::to_string),
    };
    let city = match get("60") {
        Some(c) if c.len() > 15 => return Err(field("60", format!("city of {} characters: at most 15", c.len()))),
        c => c.map(str::to_string),
    };
    let (mut bill, mut reference_label, mut purpose) = (None, None, None);
    if let Some(additional) = get("62") {
        let base = value_offset(payload, additional);
        for (id, value) in fields(additional, "62", base)? {
            let slot = match id {
                "01" => &mut bill,
                "05" => &mut reference_label,
                "08" => &mut purpose,
                _ => continue,
            };
            if value.len() > MAX_ADDITIONAL {
                return Err(field(
                    "62",
                    format!("62/{id} has {} characters: at most {MAX_ADDITIONAL}", value.len()),
                ));
            }
            if slot.is_some() {
                return Err(field("62", format!("62/{id} appears twice")));
            }
            *slot = Some(value.to_string());
        }
    }
    Ok(VietQr {
        initiation,
        bin,
        account,
        service,
        amount,
        merchant_name,
        city,
        bill,
        reference_label,
        purpose,
    })
}

/// Where `value` (a slice of `payload`) starts in it, for error positions.
fn value_offset(payload: &str, value: &str) -> usize {
    (value.as_ptr() as usize).saturating_sub(payload.as_ptr() as usize)
}

/// `38`: the NAPAS GUID, the beneficiary (`01`: `00` BIN, `01` account) and the service.
fn merchant_account(payload: &str, value: &str) -> Result<(String, String, String), QrError> {
    let field = |what: String| QrError::Field { field: "38", what };
    let sub = fields(value, "38", value_offset(payload, value))?;
    let get = |id: &str| sub.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    match get("00") {
        Some(NAPAS_GUID) => {}
        Some(other) => return Err(QrError::WrongGuid(other.to_string())),
        None => return Err(QrError::Missing("38/00")),
    }
    let beneficiary = get("01").ok_or(QrError::Missing("38/01"))?;
    let inner = fields(beneficiary, "38/01", value_offset(payload, beneficiary))?;
    let inner_get = |id: &str| inner.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    let bin = match inner_get("00") {
        Some(b) if b.len() == 6 && b.bytes().all(|c| c.is_ascii_digit()) => b.to_string(),
        Some(b) => return Err(field(format!("38/01/00 (bank BIN) {b:?}: 6 digits"))),
        None => return Err(QrError::Missing("38/01/00")),
    };
    let account = match inner_get("01") {
        Some(a) if a.len() <= MAX_ACCOUNT && a.bytes().all(|c| c.is_ascii_digit()) => a.to_string(),
        Some(a) => {
            return Err(field(format!("38/01/01 (account) {a:?}: digits only, at most {MAX_ACCOUNT}")));
        }
        None => return Err(QrError::Missing("38/01/01")),
    };
    let service = match get("02") {
        Some(SERVICE_TO_ACCOUNT) => SERVICE_TO_ACCOUNT.to_string(),
        Some(SERVICE_TO_CARD) => {
            return Err(field(format!(
                "38/02 is {SERVICE_TO_CARD} (to a card), but 38/01/01 is an account: {SERVICE_TO_ACCOUNT}"
            )));
        }
        Some(other) => return Err(field(format!("38/02 (service) {other:?}: {SERVICE_TO_ACCOUNT}"))),
        None => return Err(QrError::Missing("38/02")),
    };
    Ok((bin, account, service))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The public vectors of the VietQR notes ([Q1] subiz/vietqr, and the gateway-shaped example).
    const STATIC: &str = "00020101021138540010A00000072701240006970423011000999999990208QRIBFTTA53037045802VN6304CBB4";
    const DYNAMIC: &str =
        "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN62200816test text string6304D9C6";
    const GATEWAY: &str = "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI63046BA5";

    /// `body` (ending in "6304") with its CRC, for payloads made wrong on purpose but with a
    /// CRC that holds, so that the check under test is the one that refuses them.
    fn with_crc(body: &str) -> String {
        format!("{body}{:04X}", crc16(body.as_bytes()))
    }

    #[test]
    fn crc_vectors() {
        assert_eq!(format!("{:04X}", crc16(b"00")), "2EC9");
        assert_eq!(format!("{:04X}", crc16(b"01")), "3EE8");
        assert_eq!(crc16(b"123456789"), 0x29B1, "the CRC-16/CCITT-FALSE check value");
        for p in [STATIC, DYNAMIC, GATEWAY] {
            assert_eq!(with_crc(&p[..p.len() - 4]), p);
        }
    }

    #[test]
    fn the_static_vector() {
        let q = decode(STATIC).unwrap();
        assert_eq!(q.initiation, Initiation::Static);
        assert_eq!((q.bin.as_str(), q.account.as_str()), ("970423", "0099999999"));
        assert_eq!(q.service, "QRIBFTTA");
        assert_eq!(q.amount, None);
        assert_eq!(q.purpose, None);
    }

    #[test]
    fn the_dynamic_vector() {
        let q = decode(DYNAMIC).unwrap();
        assert_eq!(q.initiation, Initiation::Dynamic);
        assert_eq!((q.bin.as_str(), q.account.as_str()), ("970422", "0023457923442"));
        assert_eq!(q.amount, Some(40123));
        assert_eq!(q.purpose.as_deref(), Some("test text string"));
        assert_eq!(q.bill, None);
    }

    #[test]
    fn the_gateway_shaped_example() {
        let q = decode(GATEWAY).unwrap();
        assert_eq!(q.initiation, Initiation::Dynamic);
        assert_eq!((q.bin.as_str(), q.account.as_str()), ("970415", "113366668888"));
        assert_eq!(q.amount, Some(150_000));
        assert_eq!(q.purpose.as_deref(), Some("HCC241126ABCDEFGH LEPHI"));
    }

    #[test]
    fn the_bill_number_and_the_purpose_both_read() {
        let p = with_crc(
            "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN\
             62480117HCC241126ABCDEFGH0823HCC241126ABCDEFGH LEPHI6304",
        );
        let q = decode(&p).unwrap();
        assert_eq!(q.bill.as_deref(), Some("HCC241126ABCDEFGH"));
        assert_eq!(q.purpose.as_deref(), Some("HCC241126ABCDEFGH LEPHI"));
    }

    #[test]
    fn a_flipped_crc_digit_is_refused() {
        let p = GATEWAY.replace("6BA5", "6BA4");
        assert_eq!(
            decode(&p),
            Err(QrError::BadCrc {
                found: "6BA4".into(),
                computed: "6BA5".into()
            })
        );
        // A changed character anywhere else breaks it too.
        let p = GATEWAY.replace("150000", "150001");
        assert!(matches!(decode(&p), Err(QrError::BadCrc { .. })), "{:?}", decode(&p));
    }

    #[test]
    fn a_lowercase_crc_is_refused() {
        let p = GATEWAY.replace("6BA5", "6ba5");
        assert_eq!(decode(&p), Err(QrError::CrcFormat("6ba5".into())));
    }

    #[test]
    fn a_truncated_payload_is_refused() {
        for cut in [1, 2, 3, 4, 10, 40] {
            let p = &GATEWAY[..GATEWAY.len() - cut];
            assert!(decode(p).is_err(), "cut {cut}");
        }
        // Cut inside the CRC digits: the field says 4 characters, fewer remain.
        assert!(matches!(decode(&GATEWAY[..GATEWAY.len() - 1]), Err(QrError::Structure { .. })));
        // Cut at a field boundary: the CRC is missing.
        assert!(matches!(decode(&GATEWAY[..GATEWAY.len() - 8]), Err(QrError::CrcNotLast(_))));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let p = format!("{GATEWAY}00");
        assert!(matches!(decode(&p), Err(QrError::Structure { .. })), "{:?}", decode(&p));
    }

    #[test]
    fn a_wrong_guid_is_refused() {
        let p = with_crc(
            "00020101021238560010A0000007750126000697041501121133666688880208QRIBFTTA530370454061500005802VN\
             62270823HCC241126ABCDEFGH LEPHI6304",
        );
        assert_eq!(decode(&p), Err(QrError::WrongGuid("A000000775".into())));
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        // 62 says 28 characters where 27 are there: it swallows the start of "6304", and the
        // payload no longer splits into whole fields.
        let p = with_crc(
            "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN\
             62280823HCC241126ABCDEFGH LEPHI6304",
        );
        assert!(matches!(decode(&p), Err(QrError::Structure { .. })), "{:?}", decode(&p));
        // Inside a template: 62/08 says 24 where 62 holds 23 after its header.
        let p = with_crc(
            "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN\
             62270824HCC241126ABCDEFGH LEPHI6304",
        );
        match decode(&p) {
            Err(QrError::Structure { within, .. }) => assert_eq!(within, "62"),
            other => panic!("{other:?}"),
        }
        // The account template: 38/01/01 says 13 digits where 12 are there.
        let p = with_crc(
            "00020101021238560010A0000007270126000697041501131133666688880208QRIBFTTA530370454061500005802VN\
             62270823HCC241126ABCDEFGH LEPHI6304",
        );
        match decode(&p) {
            Err(QrError::Structure { within, .. }) => assert_eq!(within, "38/01"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_values_are_checked() {
        let base = "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI6304";
        let cases: [(&str, &str, &str); 7] = [
            ("010212", "010213", "01"),
            ("5303704", "5303840", "53"),
            ("5802VN", "5802US", "58"),
            ("0208QRIBFTTA", "0208QRIBFTTC", "38"),
            ("000697041501", "0006970A1501", "38"),
            ("54061500005802", "5406150.005802", "54"),
            ("54061500005802", "54060000005802", "54"),
        ];
        for (from, to, want) in cases {
            let p = with_crc(&base.replace(from, to));
            match decode(&p) {
                Err(QrError::Field { field, .. }) => assert_eq!(field, want, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        // A dynamic code without its amount.
        let p = with_crc(&base.replace("5406150000", ""));
        assert!(matches!(decode(&p), Err(QrError::Field { field: "54", .. })));
        // Out of order: 58 before 54.
        let p = with_crc(&base.replace("54061500005802VN", "5802VN5406150000"));
        assert!(matches!(decode(&p), Err(QrError::Order { .. })), "{:?}", decode(&p));
        // 00 not first.
        let p = with_crc(&base.replace("000201010212", "010212000201"));
        assert!(matches!(decode(&p), Err(QrError::FormatIndicator(_))));
        // An account with a letter.
        let p = with_crc(&base.replace("0112113366668888", "011211336666888X"));
        assert!(matches!(decode(&p), Err(QrError::Field { field: "38", .. })));
    }

    #[test]
    fn not_ascii_is_refused() {
        let p = GATEWAY.replace("LEPHI", "LỆPHI");
        assert!(matches!(decode(&p), Err(QrError::NotAscii(_))));
        assert_eq!(decode(""), Err(QrError::Empty));
    }
}
