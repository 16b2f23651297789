//! The VietQR payload, built without I/O: an EMVCo merchant-presented QR, fields of a two-digit
//! ID, a two-digit length and an ASCII value, ending with a CRC-16/CCITT-FALSE over everything
//! up to and including `6304`. Everything here is pure, so the tests pin it against the public
//! test vectors, and the mock bank decodes it with its own reader.

use crate::payments::{Agency, CreateError};

/// NAPAS's application identifier, `38/00`.
pub const NAPAS_GUID: &str = "A000000727";
/// `38/02`: a transfer to an account (`QRIBFTTC` would be to a card).
pub const SERVICE_TO_ACCOUNT: &str = "QRIBFTTA";
/// The longest value of one field: two decimal digits of length.
pub(super) const MAX_FIELD: usize = 99;
/// `62/01`, `62/05`, `62/08` each hold at most this many characters.
pub(super) const MAX_ADDITIONAL: usize = 25;
/// The longest account number `38/01/01` takes.
pub(super) const MAX_ACCOUNT: usize = 19;
/// The longest label: the reference (17), one space and the label fill `62/08`'s 25.
pub const MAX_LABEL: usize = MAX_ADDITIONAL - crate::payments::REFERENCE_LEN - 1;

/// The payload of one payment's QR, to `agency`'s account at its bank.
pub fn payment_payload(agency: &Agency, reference: &str, amount: u64, label: &Label) -> Result<String, CreateError> {
    let account = account_number(&agency.tk_thu_huong)
        .ok_or_else(|| CreateError::Refused(format!("agency {} has no account number a VietQR can name", agency.ma_don_vi)))?;
    let purpose = format!("{reference} {}", label.as_str());
    payload(&QrFields {
        bin: agency.ma_nh_thu_huong.trim(),
        account: &account,
        amount,
        bill: Some(reference),
        purpose: &purpose,
    })
    .map_err(|e| CreateError::Refused(e.to_string()))
}

/// What a payment's QR says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrFields<'a> {
    /// The beneficiary bank's NAPAS BIN, 6 digits (`38/01/00`).
    pub bin: &'a str,
    /// The beneficiary account (`38/01/01`).
    pub account: &'a str,
    /// Whole đồng (`54`).
    pub amount: u64,
    /// `62/01`, the bill number.
    pub bill: Option<&'a str>,
    /// `62/08`, the purpose of the transaction: the transfer note the payer's app fills in.
    pub purpose: &'a str,
}

/// Why a payload could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the bank must be named by its 6-digit NAPAS BIN")]
    Bin,
    #[error("the account number must be 1 to {MAX_ACCOUNT} ASCII letters or digits")]
    Account,
    #[error("the amount must be at least 1 đồng")]
    Amount,
    #[error("field {0} must be printable ASCII of at most {1} characters")]
    Field(&'static str, usize),
}

/// The EMVCo payload: `00` `01` `38` `53` `54` `58` `62` in that order, then `63` with the CRC.
pub fn payload(f: &QrFields<'_>) -> Result<String, PayloadError> {
    if !is_bin(f.bin) {
        return Err(PayloadError::Bin);
    }
    if f.account.is_empty() || f.account.len() > MAX_ACCOUNT || !f.account.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(PayloadError::Account);
    }
    if f.amount == 0 {
        return Err(PayloadError::Amount);
    }
    let beneficiary = field("00", f.bin)? + &field("01", f.account)?;
    let merchant = field("00", NAPAS_GUID)? + &field("01", &beneficiary)? + &field("02", SERVICE_TO_ACCOUNT)?;
    let mut additional = String::new();
    if let Some(bill) = f.bill {
        additional += &short_field("01", bill)?;
    }
    additional += &short_field("08", f.purpose)?;
    let mut out = field("00", "01")?;
    out += &field("01", "12")?;
    out += &field("38", &merchant)?;
    out += &field("53", "704")?;
    out += &field("54", &f.amount.to_string())?;
    out += &field("58", "VN")?;
    out += &field("62", &additional)?;
    out += "6304";
    let crc = crc16_ccitt_false(out.as_bytes());
    out += &format!("{crc:04X}");
    Ok(out)
}

/// One field: ID, two-digit length, value. Printable ASCII only, so characters are bytes.
fn field(id: &'static str, value: &str) -> Result<String, PayloadError> {
    if value.len() > MAX_FIELD || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(PayloadError::Field(id, MAX_FIELD));
    }
    Ok(format!("{id}{:02}{value}", value.len()))
}

/// A field of `62`, which holds at most [`MAX_ADDITIONAL`] characters.
fn short_field(id: &'static str, value: &str) -> Result<String, PayloadError> {
    if value.is_empty() || value.len() > MAX_ADDITIONAL {
        return Err(PayloadError::Field(id, MAX_ADDITIONAL));
    }
    field(id, value)
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR.
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Six ASCII digits.
pub fn is_bin(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An account number as a QR names it: spaces and dashes, which people write for reading,
/// dropped; then 1 to 19 ASCII letters or digits, or nothing.
pub fn account_number(raw: &str) -> Option<String> {
    let s: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (!s.is_empty() && s.len() <= MAX_ACCOUNT && s.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(s)
}

/// The label after the reference in the transfer note: ASCII letters, digits and single spaces,
/// 1 to [`MAX_LABEL`] characters, made from what configuration says by dropping diacritics
/// (`Lệ phí` is `Le phi`), since payers' apps and banks carry only ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

/// Why a label is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("is empty once made ASCII; give a short label such as LEPHI")]
    Empty,
    #[error("{0:?} (made ASCII) is {1} characters; the transfer note holds the reference, a space and at most {MAX_LABEL}")]
    TooLong(String, usize),
    #[error("may hold only letters, digits and spaces (diacritics are dropped); {0:?} is not one")]
    Character(char),
}

impl Label {
    pub fn parse(raw: &str) -> Result<Label, LabelError> {
        let ascii = crate::text::without_diacritics(raw);
        let words: Vec<&str> = ascii.split_whitespace().collect();
        let s = words.join(" ");
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == ' ')) {
            return Err(LabelError::Character(c));
        }
        match s.len() {
            0 => Err(LabelError::Empty),
            n if n > MAX_LABEL => Err(LabelError::TooLong(s, n)),
            _ => Ok(Label(s)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
