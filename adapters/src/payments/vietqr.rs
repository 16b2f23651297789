//! VietQR at the counter (`docs/vietqr.md`): one dynamic NAPAS 247 QR per fee, naming the
//! agency's account at its bank, the amount, and the payment reference in the transfer note.
//! The citizen's banking app pays by instant transfer; the agency's bank then reports the credit
//! in its signed camt.054, which the gateway already matches by reference, account and amount.
//! So this provider creates payments but takes no callback of its own, and nobody can be asked
//! about one: its "query" is the bank's silence (see [`Reconciler`] below), which is what lets a
//! payment past its lifetime expire, while a late credit still pays it.
//!
//! The payload is an EMVCo merchant-presented QR: fields of a two-digit ID, a two-digit length
//! and an ASCII value, ending with a CRC-16/CCITT-FALSE over everything up to and including
//! `6304`. Everything here that builds it is pure, so the tests pin it against the public test
//! vectors, and the mock bank decodes it with its own reader.

use std::sync::Arc;
use std::time::Duration;

use hcc_config::Problem;

use super::{
    Agency, BuildContext, CreateError, Handoff, Notice, PaymentCreator, PaymentOrder, PaymentProvider, PendingPayment, ProviderKind,
    ProviderSettings, Reconciler, Schedule, problem, settings_if_on,
};
use crate::BoxFuture;

/// The provider's id: `"provider": "vietqr"` and the `[vietqr]` section.
pub const ID: &str = "vietqr";

pub const KIND: ProviderKind = ProviderKind {
    id: ID,
    // The bank's camt.054 confirms (the `banks` provider's route); VietQR has no callback.
    routes: &[],
    creates: Some(&[]),
    build: build_provider,
};

/// NAPAS's application identifier, `38/00`.
pub const NAPAS_GUID: &str = "A000000727";
/// `38/02`: a transfer to an account (`QRIBFTTC` would be to a card).
pub const SERVICE_TO_ACCOUNT: &str = "QRIBFTTA";
/// The longest value of one field: two decimal digits of length.
const MAX_FIELD: usize = 99;
/// `62/01`, `62/05`, `62/08` each hold at most this many characters.
const MAX_ADDITIONAL: usize = 25;
/// The longest account number `38/01/01` takes.
const MAX_ACCOUNT: usize = 19;
/// The longest label: the reference (17), one space and the label fill `62/08`'s 25.
pub const MAX_LABEL: usize = MAX_ADDITIONAL - super::REFERENCE_LEN - 1;
/// `vietqr.expire_minutes` when unset.
const DEFAULT_EXPIRE_MINUTES: u64 = 15;
/// The longest lifetime taken: a day (a counter QR is for the citizen standing there).
const MAX_EXPIRE_MINUTES: u64 = 24 * 60;
/// `vietqr.reconcile_interval_secs` when unset: how often due payments are looked at
/// (looking costs no call to anyone).
const DEFAULT_LOOK_EVERY_SECS: u64 = 60;
/// How long after its lifetime a payment is still looked at: past any grace the gateway takes
/// (`payments.expire_grace_minutes` is at most a week), so that every payment can expire.
const LOOK_AFTER_LIFETIME: Duration = Duration::from_secs(8 * 24 * 3600);

/// The `[vietqr]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VietqrSettings {
    pub enabled: bool,
    /// How long a QR is meant to be paid in; after it and `payments.expire_grace_minutes`
    /// without the bank reporting a credit, the payment is `expired`.
    pub expire_minutes: u64,
    /// The short text after the reference in the transfer note, made ASCII.
    pub label: String,
    /// How often pending VietQR payments are looked at, to expire those past their lifetime
    /// and the grace that the bank never reported paid.
    pub reconcile_interval_secs: u64,
}

impl Default for VietqrSettings {
    fn default() -> Self {
        VietqrSettings {
            enabled: false,
            expire_minutes: DEFAULT_EXPIRE_MINUTES,
            label: "LEPHI".into(),
            reconcile_interval_secs: DEFAULT_LOOK_EVERY_SECS,
        }
    }
}

impl ProviderSettings for VietqrSettings {
    fn is_on(&self) -> bool {
        self.enabled
    }

    /// The label must fit `62/08` beside the reference, and every agency a QR can name must
    /// have a NAPAS BIN and an account number a payer's app takes.
    fn problems(&self, ctx: &BuildContext<'_>) -> Vec<Problem> {
        let mut p = Vec::new();
        if !self.enabled {
            return p;
        }
        if !(1..=MAX_EXPIRE_MINUTES).contains(&self.expire_minutes) {
            p.push(problem("vietqr.expire_minutes", format!("must be from 1 to {MAX_EXPIRE_MINUTES}")));
        }
        if let Err(e) = Label::parse(&self.label) {
            p.push(problem("vietqr.label", e.to_string()));
        }
        if ctx.agencies.is_empty() {
            p.push(problem(
                "agencies",
                "VietQR pays to an agency's account: configure at least one agencies.<id>",
            ));
        }
        for a in &ctx.agencies {
            if !is_bin(a.ma_nh_thu_huong.trim()) {
                p.push(problem(
                    format!("agencies.{}.ma_nh_thu_huong", a.id),
                    "must be the bank's 6-digit NAPAS BIN when vietqr.enabled (e.g. 970415 for VietinBank)",
                ));
            }
            if account_number(&a.tk_thu_huong).is_none() {
                p.push(problem(
                    format!("agencies.{}.tk_thu_huong", a.id),
                    format!("must be an account number of 1 to {MAX_ACCOUNT} letters or digits (spaces and dashes are dropped) when vietqr.enabled"),
                ));
            }
        }
        p
    }
}

fn build_provider(ctx: &BuildContext<'_>) -> Result<Option<Arc<dyn PaymentProvider>>, Vec<Problem>> {
    let Some(s) = settings_if_on::<VietqrSettings>(ctx)? else {
        return Ok(None);
    };
    let label = Label::parse(&s.label).map_err(|e| vec![problem("vietqr.label", e.to_string())])?;
    let lifetime = Duration::from_secs(s.expire_minutes * 60);
    Ok(Some(Arc::new(Vietqr {
        label,
        schedule: Schedule {
            every: Duration::from_secs(s.reconcile_interval_secs.max(1)),
            min_age: lifetime,
            max_age: lifetime.saturating_add(LOOK_AFTER_LIFETIME),
            lifetime,
        },
    })))
}

/// The VietQR provider.
pub struct Vietqr {
    label: Label,
    schedule: Schedule,
}

impl PaymentProvider for Vietqr {
    fn id(&self) -> &'static str {
        ID
    }

    fn creator(&self) -> Option<&dyn PaymentCreator> {
        Some(self)
    }

    fn reconciler(&self) -> Option<&dyn Reconciler> {
        Some(self)
    }

    /// VietQR has no callback route; the gateway never calls this.
    fn parse<'a>(&'a self, _head: super::CallbackHead<'a>, _body: Vec<u8>) -> BoxFuture<'a, Result<super::Parsed, super::Refused>> {
        Box::pin(async {
            Err(super::Refused::new(
                super::Reply::Problem(super::CallbackProblem::NotFound("VietQR takes no callback".into())),
                "VietQR takes no callback",
            ))
        })
    }
}

impl PaymentCreator for Vietqr {
    /// The QR's payload; nothing is sent anywhere, so this cannot be unreachable.
    fn create<'a>(&'a self, order: &'a PaymentOrder<'a>) -> BoxFuture<'a, Result<Handoff, CreateError>> {
        Box::pin(async move { payment_payload(order.agency, order.reference, order.amount, &self.label).map(Handoff::Qr) })
    }

    fn lifetime(&self) -> Duration {
        self.schedule.lifetime
    }
}

/// Nobody can be asked about a VietQR payment: the bank reports credits, it answers no
/// questions. A payment still pending when it is looked at is one the bank has not reported:
/// that silence is the only answer there is, and it is what lets the payment expire after its
/// lifetime and the grace. A credit reported later still pays it (a late payment).
impl Reconciler for Vietqr {
    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn query<'a>(&'a self, payment: &'a PendingPayment) -> BoxFuture<'a, Option<Notice>> {
        Box::pin(async move {
            Some(Notice::Undecided {
                reference: payment.reference.clone(),
                amount: payment.amount,
            })
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The public test vectors of docs/vietqr.md, computed by hand with the algorithm there.
    #[test]
    fn the_crc_matches_the_public_vectors() {
        assert_eq!(crc16_ccitt_false(b"00"), 0x2EC9);
        assert_eq!(crc16_ccitt_false(b"01"), 0x3EE8);
        assert_eq!(
            crc16_ccitt_false(b"123456789"),
            0x29B1,
            "the catalogue check value of CRC-16/CCITT-FALSE"
        );
        let dynamic =
            "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN62200816test text string6304";
        assert_eq!(format!("{:04X}", crc16_ccitt_false(dynamic.as_bytes())), "D9C6");
    }

    #[test]
    fn a_dynamic_payload_matches_the_public_vector_field_for_field() {
        let p = payload(&QrFields {
            bin: "970422",
            account: "0023457923442",
            amount: 40_123,
            bill: None,
            purpose: "test text string",
        })
        .expect("valid");
        assert_eq!(
            p,
            "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN62200816test text string6304D9C6"
        );
        let p = payload(&QrFields {
            bin: "970415",
            account: "113366668888",
            amount: 150_000,
            bill: None,
            purpose: "HCC241126ABCDEFGH LEPHI",
        })
        .expect("valid");
        assert_eq!(
            p,
            "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI63046BA5"
        );
    }

    #[test]
    fn the_gateway_payload_names_the_reference_twice_and_pads_a_small_crc() {
        let agency = Agency {
            tk_thu_huong: "1133 6666-8888".into(),
            ..super::super::test_agency()
        };
        let label = Label::parse("Lệ phí").expect("label");
        let p = payment_payload(&agency, "HCC241126ABCDEFGH", 150_000, &label).expect("payload");
        // 62: 01 (17) + 08 (17 + 1 + 6): 21 + 28 = 49.
        assert!(p.contains("62490117HCC241126ABCDEFGH0824HCC241126ABCDEFGH Le phi6304"), "{p}");
        assert!(p.contains("0112113366668888"), "the account without spaces or dashes: {p}");
        let (body, crc) = p.split_at(p.len() - 4);
        assert_eq!(crc, format!("{:04X}", crc16_ccitt_false(body.as_bytes())));
        // A CRC below 0x1000 is written with its leading zeros (one public library does not).
        let mut found = false;
        for amount in 1..5_000u64 {
            let p = payment_payload(&agency, "HCC241126ABCDEFGH", amount, &label).expect("payload");
            let (body, crc) = p.split_at(p.len() - 4);
            if crc16_ccitt_false(body.as_bytes()) < 0x1000 {
                assert!(body.ends_with("6304") && crc.starts_with('0'), "{p}");
                found = true;
                break;
            }
        }
        assert!(found, "some amount gives a CRC with a leading zero");
    }

    #[test]
    fn labels_are_made_ascii_and_bounded() {
        assert_eq!(Label::parse("Lệ phí").expect("ok").as_str(), "Le phi");
        assert_eq!(
            Label::parse("  ĐÓNG  PHÍ ").map(|l| l.as_str().to_string()),
            Err(LabelError::TooLong("DONG PHI".into(), 8))
        );
        assert_eq!(Label::parse(" Phí  HT ").expect("ok").as_str(), "Phi HT");
        assert_eq!(Label::parse("LEPHI").expect("ok").as_str(), "LEPHI");
        assert_eq!(Label::parse(" "), Err(LabelError::Empty));
        assert!(matches!(Label::parse("Thanh toán lệ phí"), Err(LabelError::TooLong(_, 17))));
        assert_eq!(Label::parse("LE/PHI"), Err(LabelError::Character('/')));
        assert_eq!(Label::parse("phí✓"), Err(LabelError::Character('✓')));
        assert_eq!(MAX_LABEL, 7);
    }

    #[test]
    fn fields_a_payer_app_refuses_are_never_written() {
        let ok = QrFields {
            bin: "970415",
            account: "113366668888",
            amount: 1,
            bill: None,
            purpose: "x",
        };
        assert!(payload(&ok).is_ok());
        assert_eq!(
            payload(&QrFields {
                bin: "97041",
                ..ok.clone()
            }),
            Err(PayloadError::Bin)
        );
        assert_eq!(
            payload(&QrFields {
                bin: "VCB123",
                ..ok.clone()
            }),
            Err(PayloadError::Bin)
        );
        assert_eq!(payload(&QrFields { account: "", ..ok.clone() }), Err(PayloadError::Account));
        assert_eq!(
            payload(&QrFields {
                account: "12345678901234567890",
                ..ok.clone()
            }),
            Err(PayloadError::Account)
        );
        assert_eq!(payload(&QrFields { amount: 0, ..ok.clone() }), Err(PayloadError::Amount));
        assert_eq!(
            payload(&QrFields {
                purpose: "phí",
                ..ok.clone()
            }),
            Err(PayloadError::Field("08", MAX_FIELD))
        );
        assert_eq!(
            payload(&QrFields {
                purpose: &"x".repeat(26),
                ..ok.clone()
            }),
            Err(PayloadError::Field("08", MAX_ADDITIONAL))
        );
        assert_eq!(account_number(" 0011-0041 23456 "), Some("0011004123456".into()));
        assert_eq!(account_number("số 1"), None);
    }

    #[test]
    fn configuration_is_checked_by_key() {
        let agency = |bin: &str, account: &str| Agency {
            tk_thu_huong: account.into(),
            ma_nh_thu_huong: bin.into(),
            ..super::super::test_agency()
        };
        let ctx = BuildContext {
            agencies: vec![agency("ICB", "113366668888")],
            ..BuildContext::bare(ID, None)
        };
        let s = VietqrSettings {
            enabled: true,
            label: "Thanh toán".into(),
            expire_minutes: 0,
            ..Default::default()
        };
        let keys: Vec<String> = s.problems(&ctx).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["vietqr.expire_minutes", "vietqr.label", "agencies.ubnd.ma_nh_thu_huong"]);
        let ctx = BuildContext {
            agencies: vec![agency("970415", "1133 6666 8888")],
            ..ctx
        };
        assert!(
            VietqrSettings {
                enabled: true,
                ..Default::default()
            }
            .problems(&ctx)
            .is_empty()
        );
        assert!(
            VietqrSettings {
                label: "far too long a label".into(),
                ..Default::default()
            }
            .problems(&ctx)
            .is_empty(),
            "a section that leaves VietQR off is not judged"
        );
    }
}
