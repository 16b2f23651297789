//! PayGov's messages, built and read without I/O: INIT and QUERY requests, the answers to them,
//! the confirmation callback and its reply, and the `MaXacThuc` checksum over them. The mocks
//! restate this and the fuzz targets read through it.

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

pub use crate::payments::{FeeKind, FeeLine};

/// The receiving agency and the account the fee is paid into (configuration, per agency).
#[derive(Debug, Clone)]
pub struct Beneficiary<'a> {
    pub ma_don_vi: &'a str,
    pub ten_don_vi: &'a str,
    pub tk_thu_huong: &'a str,
    pub ma_nh_thu_huong: &'a str,
    pub ten_tk_thu_huong: &'a str,
}

/// The citizen who pays, as the receipt names them. Sent to the platform once, never kept.
#[derive(Debug, Clone)]
pub struct Payer<'a> {
    pub ho_ten: &'a str,
    pub so_cmnd: &'a str,
    pub dia_chi: &'a str,
    /// `HuyenNguoiNop`, `TinhNguoiNop`: sent only when given (OpenCPS sends them).
    pub huyen: Option<&'a str>,
    pub tinh: Option<&'a str>,
}

/// `MaDVC` as sent: the centre's, else `MaTTHC` + `.01`, as HuanVu201's
/// `DvcPaymentService.cs` does (both public clients send a non-empty one; docs/paygov.md).
pub fn ma_dvc(given: Option<&str>, ma_tthc: &str) -> String {
    match given {
        Some(m) => m.to_string(),
        None => format!("{ma_tthc}.01"),
    }
}

/// `MaDichVu` 2: fees of an administrative procedure (then `MaDonVi`, `TenDonVi` and `MaHoSo`
/// are mandatory).
pub const MA_DICH_VU_TTHC: &str = "2";

pub struct InitRequest<'a> {
    pub partner_code: &'a str,
    pub reference: &'a str,
    pub amount: u64,
    pub description: &'a str,
    /// `ThoiGianGD`: keep it; QUERY must repeat it.
    pub timestamp: &'a str,
    /// `MaNganHang` (configuration, never empty) and `Ip` (this server's address).
    pub bank_code: &'a str,
    pub server_ip: &'a str,
    pub ma_ho_so: &'a str,
    pub ma_tthc: &'a str,
    pub ten_tthc: &'a str,
    /// `MaDVC` as sent (see [`ma_dvc`]) and `TenDVC` when given.
    pub ma_dvc: &'a str,
    pub ten_dvc: Option<&'a str>,
    pub beneficiary: Beneficiary<'a>,
    pub fees: &'a [FeeLine],
    pub payer: Payer<'a>,
}

fn insert_strings(m: &mut Map<String, Value>, pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        m.insert((*k).into(), Value::String((*v).into()));
    }
}

pub fn init_message(r: &InitRequest<'_>, secret: &str) -> Value {
    let mut m = Map::new();
    let amount = r.amount.to_string();
    insert_strings(
        &mut m,
        &[
            ("LoaiBanTin", "INIT"),
            ("PhienBan", VERSION),
            ("MaDoiTac", r.partner_code),
            ("MaThamChieu", r.reference),
            ("SoTien", &amount),
            ("LoaiHinhThanhToan", "PAY"),
            ("MaKenhThanhToan", "1"),
            ("MaThietBi", "1"),
            ("NgonNgu", "vi-VN"),
            ("MaTienTe", "VND"),
            ("MaNganHang", r.bank_code),
            ("ThongTinGiaoDich", r.description),
            ("ThoiGianGD", r.timestamp),
            ("Ip", r.server_ip),
        ],
    );
    let b = &r.beneficiary;
    let mut receipt = Map::new();
    insert_strings(
        &mut receipt,
        &[
            ("MaDichVu", MA_DICH_VU_TTHC),
            ("MaDonVi", b.ma_don_vi),
            ("TenDonVi", b.ten_don_vi),
            ("MaHoSo", r.ma_ho_so),
            ("MaTTHC", r.ma_tthc),
            ("TenTTHC", r.ten_tthc),
            ("TKThuHuong", b.tk_thu_huong),
            ("MaNHThuHuong", b.ma_nh_thu_huong),
            ("TenTKThuHuong", b.ten_tk_thu_huong),
            ("NoiDungThanhToan", r.description),
            ("HoTenNguoiNop", r.payer.ho_ten),
            ("SoCMNDNguoiNop", r.payer.so_cmnd),
            ("DiaChiNguoiNop", r.payer.dia_chi),
            ("MaDVC", r.ma_dvc),
        ],
    );
    let optional = [
        ("TenDVC", r.ten_dvc),
        ("HuyenNguoiNop", r.payer.huyen),
        ("TinhNguoiNop", r.payer.tinh),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            receipt.insert(k.into(), Value::String(v.into()));
        }
    }
    receipt.insert("PhiLePhi".into(), Value::Array(r.fees.iter().map(FeeLine::wire).collect()));
    m.insert("ThongTinBienLai".into(), Value::Object(receipt));
    let mac = checksum(&m, INIT_FIELDS, secret);
    m.insert("MaXacThuc".into(), Value::String(mac));
    Value::Object(m)
}

/// QUERY for a payment, with the `ThoiGianGD` its INIT carried: the platform finds a payment
/// by reference and that time, not the time of the query.
pub fn query_message(partner_code: &str, reference: &str, original_time: &str, secret: &str) -> Value {
    let mut m = Map::new();
    insert_strings(
        &mut m,
        &[
            ("LoaiBanTin", "QUERY"),
            ("PhienBan", VERSION),
            ("MaDoiTac", partner_code),
            ("MaThamChieu", reference),
            ("ThoiGianGD", original_time),
        ],
    );
    let mac = checksum(&m, QUERY_FIELDS, secret);
    m.insert("MaXacThuc".into(), Value::String(mac));
    Value::Object(m)
}

/// Unwraps the platform's two answer envelopes: the plain `{"MaLoi": ...}` and
/// `{"error_code": "0", "message": "<JSON text>"}` (the answer as a JSON string). A non-zero
/// `error_code` is the platform's refusal, kept as text.
pub fn unwrap_answer(v: &Value) -> Result<Map<String, Value>, String> {
    let m = v.as_object().ok_or("the answer is not a JSON object")?;
    if m.contains_key("MaLoi") {
        return Ok(m.clone());
    }
    let Some(code) = m.get("error_code") else {
        return Err("the answer has neither MaLoi nor error_code".into());
    };
    let ok = match code {
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => matches!(s.trim(), "0" | "00"),
        _ => false,
    };
    let message = m.get("message").and_then(Value::as_str).unwrap_or("");
    if !ok {
        return Err(format!("error_code {code}: {}", message.chars().take(200).collect::<String>()));
    }
    match serde_json::from_str::<Value>(message) {
        Ok(Value::Object(inner)) => Ok(inner),
        _ => match m.get("message").or_else(|| m.get("data")) {
            Some(Value::Object(inner)) => Ok(inner.clone()),
            _ => Err("error_code 0 without an answer in message".into()),
        },
    }
}

/// INIT's answer: the payment page, or why not. The page is where the citizen's browser is
/// sent, so it must pass [`crate::payments::check_payment_url`] (https, or http to loopback only).
pub fn parse_init_answer(v: &Value) -> Result<String, String> {
    let m = unwrap_answer(v)?;
    match (field(&m, "MaLoi").as_str(), m.get("UrlThanhToan").and_then(Value::as_str)) {
        ("00", Some(u)) => match crate::payments::check_payment_url(u) {
            Ok(u) => Ok(u.to_string()),
            Err(e) => Err(format!("MaLoi 00 but UrlThanhToan refused: {e}")),
        },
        ("00", None) => Err("MaLoi 00 without a usable UrlThanhToan".into()),
        (code, _) => Err(format!(
            "MaLoi {code} {}",
            m.get("MoTaLoi")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        )),
    }
}

/// A confirmation whose checksum holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub reference: String,
    /// `MaLoi` as received: `00` is paid, anything else a failure that never pays.
    pub ma_loi: String,
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
    // Only a reference of the gateway's own shape is ever looked up.
    let reference = field(m, "MaThamChieu");
    if !crate::payments::is_reference(&reference) {
        return Err(ConfirmationError::Field("MaThamChieu"));
    }
    let amount = crate::payments::strict_amount(&field(m, "SoTien")).ok_or(ConfirmationError::Field("SoTien"))?;
    let ma_loi = field(m, "MaLoi");
    if ma_loi.is_empty() {
        return Err(ConfirmationError::Field("MaLoi"));
    }
    let paid = ma_loi == "00";
    let transaction = field(m, "MaGiaoDich");
    // A failed payment may come without a bank transaction; a paid one never does.
    if paid && transaction.is_empty() {
        return Err(ConfirmationError::Field("MaGiaoDich"));
    }
    let transaction = if transaction.is_empty() {
        format!("no-transaction:{}", field(m, "ThoiGianGD"))
    } else {
        transaction
    };
    Ok(Confirmation {
        reference,
        ma_loi,
        paid,
        amount,
        transaction,
        time: field(m, "ThoiGianGD"),
        partner_code: partner_code.into(),
        checksum: claimed,
    })
}

/// The reply to a confirmation, echoing the incoming checksum as public clients do. `ma_loi`
/// is `00` (taken), `99` (refused or not taken), or, for a confirmation of a failed payment,
/// its own `MaLoi` echoed (one public client's choice): never `00` for a failure.
pub fn reply(ma_loi: &str, description: &str, partner_code: &str, reference: &str, time: &str, echoed_checksum: &str) -> Value {
    json!({"MaLoi": ma_loi, "MoTaLoi": description, "MaDoiTac": partner_code, "MaThamChieu": reference, "ThoiGianGD": time, "MaXacThuc": echoed_checksum})
}

/// QUERY's answer: `TrangThaiGD` 1 = paid, 3 = pending, 4 = failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryState {
    Paid { amount: u64, transaction: String },
    Pending,
    Failed,
}

/// QUERY's answer, trusted only when `MaLoi` is `00`; `None` when it says nothing usable (the
/// payment stays pending and is asked about again).
pub fn parse_query_answer(v: &Value) -> Option<QueryState> {
    let m = unwrap_answer(v).ok()?;
    if field(&m, "MaLoi") != "00" {
        return None;
    }
    match field(&m, "TrangThaiGD").as_str() {
        "1" => {
            let transaction = field(&m, "MaGiaoDich");
            (!transaction.is_empty()).then_some(())?;
            Some(QueryState::Paid {
                amount: crate::payments::strict_amount(&field(&m, "SoTien"))?,
                transaction,
            })
        }
        "3" => Some(QueryState::Pending),
        "4" => Some(QueryState::Failed),
        _ => None,
    }
}
