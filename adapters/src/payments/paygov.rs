//! The national payment platform (PayGov): INIT to create a payment, QUERY to reconcile, and
//! the platform's confirmation callback. Every message carries `MaXacThuc`: lowercase hex
//! SHA-256 of the listed fields joined with `|`, the shared secret appended last (plain SHA-256,
//! not HMAC, as the platform defines it), compared in constant time.

use serde_json::{Map, Value, json};

pub const VERSION: &str = "1.0.6";

fn field(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `MaXacThuc` over `fields` of `m`, in that order, then the secret.
pub fn checksum(m: &Map<String, Value>, fields: &[&str], secret: &str) -> String {
    let mut parts: Vec<String> = fields.iter().map(|f| field(m, f)).collect();
    parts.push(secret.to_string());
    hcc_signing::sha256_hex(parts.join("|").as_bytes())
}

pub const INIT_FIELDS: &[&str] = &[
    "LoaiBanTin",
    "PhienBan",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "LoaiHinhThanhToan",
    "MaKenhThanhToan",
    "MaThietBi",
    "NgonNgu",
    "MaTienTe",
    "MaNganHang",
    "ThongTinGiaoDich",
    "ThoiGianGD",
    "Ip",
];
pub const CONFIRM_FIELDS: &[&str] = &[
    "LoaiBanTin",
    "MaLoi",
    "MaDoiTac",
    "MaThamChieu",
    "SoTien",
    "MaTienTe",
    "MaGiaoDich",
    "MaNganHang",
    "ThoiGianGD",
    "ThongTinGiaoDich",
];
pub const QUERY_FIELDS: &[&str] = &["LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD"];

/// One fee line of a payment, as the receipt lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FeeLine {
    #[serde(rename = "LoaiPhiLePhi")]
    pub loai: u8,
    #[serde(rename = "MaPhiLePhi")]
    pub ma: String,
    #[serde(rename = "TenPhiLePhi")]
    pub ten: String,
    #[serde(rename = "SoTien")]
    pub so_tien: u64,
}

pub struct InitRequest<'a> {
    pub partner_code: &'a str,
    pub reference: &'a str,
    pub amount: u64,
    pub description: &'a str,
    pub timestamp: &'a str,
    pub ma_ho_so: &'a str,
    pub fees: &'a [FeeLine],
    pub payer_name: &'a str,
}

pub fn init_message(r: &InitRequest<'_>, secret: &str) -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("LoaiBanTin", "INIT"),
        ("PhienBan", VERSION),
        ("MaDoiTac", r.partner_code),
        ("MaThamChieu", r.reference),
        ("LoaiHinhThanhToan", "PAY"),
        ("MaKenhThanhToan", "1"),
        ("MaThietBi", "1"),
        ("NgonNgu", "vi-VN"),
        ("MaTienTe", "VND"),
        ("MaNganHang", ""),
        ("ThongTinGiaoDich", r.description),
        ("ThoiGianGD", r.timestamp),
        ("Ip", "127.0.0.1"),
    ] {
        m.insert(k.into(), Value::String(v.into()));
    }
    m.insert("SoTien".into(), json!(r.amount));
    m.insert(
        "ThongTinBienLai".into(),
        json!({"MaHoSo": r.ma_ho_so, "PhiLePhi": r.fees, "NoiDungThanhToan": r.description, "HoTenNguoiNop": r.payer_name}),
    );
    let mac = checksum(&m, INIT_FIELDS, secret);
    m.insert("MaXacThuc".into(), Value::String(mac));
    Value::Object(m)
}

pub fn query_message(partner_code: &str, reference: &str, timestamp: &str, secret: &str) -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("LoaiBanTin", "QUERY"),
        ("PhienBan", VERSION),
        ("MaDoiTac", partner_code),
        ("MaThamChieu", reference),
        ("ThoiGianGD", timestamp),
    ] {
        m.insert(k.into(), Value::String(v.into()));
    }
    let mac = checksum(&m, QUERY_FIELDS, secret);
    m.insert("MaXacThuc".into(), Value::String(mac));
    Value::Object(m)
}

/// A confirmation whose checksum holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub reference: String,
    pub paid: bool,
    pub amount: u64,
    pub transaction: String,
    pub time: String,
    pub partner_code: String,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfirmationError {
    #[error("the confirmation is not a JSON object")]
    NotAnObject,
    #[error("MaXacThuc does not match")]
    BadChecksum,
    #[error("the confirmation is for another partner")]
    WrongPartner,
    #[error("{0} is missing or invalid")]
    Field(&'static str),
}

pub fn parse_confirmation(v: &Value, partner_code: &str, secret: &str) -> Result<Confirmation, ConfirmationError> {
    let m = v.as_object().ok_or(ConfirmationError::NotAnObject)?;
    let claimed = field(m, "MaXacThuc").to_ascii_lowercase();
    let expected = checksum(m, CONFIRM_FIELDS, secret);
    if !hcc_signing::ct_eq(claimed.as_bytes(), expected.as_bytes()) {
        return Err(ConfirmationError::BadChecksum);
    }
    if field(m, "MaDoiTac") != partner_code {
        return Err(ConfirmationError::WrongPartner);
    }
    let reference = field(m, "MaThamChieu");
    if reference.is_empty() {
        return Err(ConfirmationError::Field("MaThamChieu"));
    }
    let amount = field(m, "SoTien").parse::<u64>().map_err(|_| ConfirmationError::Field("SoTien"))?;
    let transaction = field(m, "MaGiaoDich");
    if transaction.is_empty() {
        return Err(ConfirmationError::Field("MaGiaoDich"));
    }
    Ok(Confirmation {
        reference,
        paid: field(m, "MaLoi") == "00",
        amount,
        transaction,
        time: field(m, "ThoiGianGD"),
        partner_code: partner_code.into(),
        checksum: claimed,
    })
}

/// The reply to a confirmation: `00` or `99`, echoing the incoming checksum as public clients do.
pub fn reply(success: bool, description: &str, partner_code: &str, reference: &str, time: &str, echoed_checksum: &str) -> Value {
    json!({"MaLoi": if success { "00" } else { "99" }, "MoTaLoi": description, "MaDoiTac": partner_code, "MaThamChieu": reference, "ThoiGianGD": time, "MaXacThuc": echoed_checksum})
}

/// QUERY's answer: `TrangThaiGD` 1 = paid, 3 = pending, 4 = failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryState {
    Paid { amount: u64, transaction: String },
    Pending,
    Failed,
}

pub fn parse_query_answer(v: &Value) -> Option<QueryState> {
    let m = v.as_object()?;
    match field(m, "TrangThaiGD").as_str() {
        "1" => Some(QueryState::Paid {
            amount: field(m, "SoTien").parse().ok()?,
            transaction: field(m, "MaGiaoDich"),
        }),
        "3" => Some(QueryState::Pending),
        "4" => Some(QueryState::Failed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_sha256_of_the_fields_in_order_with_the_secret_last() {
        let mut m = Map::new();
        m.insert("LoaiBanTin".into(), json!("QUERY"));
        m.insert("PhienBan".into(), json!("1.0.6"));
        m.insert("MaDoiTac".into(), json!("P1"));
        m.insert("MaThamChieu".into(), json!("R1"));
        m.insert("ThoiGianGD".into(), json!("20241126133005"));
        assert_eq!(
            checksum(&m, QUERY_FIELDS, "s3cret"),
            hcc_signing::sha256_hex(b"QUERY|1.0.6|P1|R1|20241126133005|s3cret")
        );
    }

    fn confirmation(secret: &str, amount: u64) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("LoaiBanTin", "CONFIRM"),
            ("MaLoi", "00"),
            ("MaDoiTac", "P1"),
            ("MaThamChieu", "R1"),
            ("MaTienTe", "VND"),
            ("MaGiaoDich", "T1"),
            ("MaNganHang", "VCB"),
            ("ThoiGianGD", "20241126133005"),
            ("ThongTinGiaoDich", "le phi"),
        ] {
            m.insert(k.into(), json!(v));
        }
        m.insert("SoTien".into(), json!(amount));
        let mac = checksum(&m, CONFIRM_FIELDS, secret);
        m.insert("MaXacThuc".into(), json!(mac));
        Value::Object(m)
    }

    #[test]
    fn confirmations_are_checked() {
        let c = parse_confirmation(&confirmation("s", 100_000), "P1", "s").unwrap();
        assert!(c.paid && c.amount == 100_000 && c.transaction == "T1");
        assert_eq!(
            parse_confirmation(&confirmation("other", 100_000), "P1", "s").unwrap_err(),
            ConfirmationError::BadChecksum
        );
        let mut tampered = confirmation("s", 100_000);
        tampered["SoTien"] = json!(1);
        assert_eq!(
            parse_confirmation(&tampered, "P1", "s").unwrap_err(),
            ConfirmationError::BadChecksum
        );
        assert_eq!(
            parse_confirmation(&confirmation("s", 5), "P2", "s").unwrap_err(),
            ConfirmationError::WrongPartner
        );
    }
}
