//! The portal's data, parsed at the edge: `MaHoSo`, the status codes, portal dates, and the
//! dossier and progress objects with their nested lists. A value of these types is valid; code
//! past the API never re-checks. Each object also keeps the original JSON, unknown fields
//! included, because centres send more than the notes list and the portal should get it all.
//!
//! Codes and flags are read in either form a centre's software sends (`4` or `"4"`, `false` or
//! `"False"`), and [`to_wire`] is the one place that rewrites an object into the form the
//! portal's public clients send (`"4"`, `"False"`); see `docs/dvcqg.md`.

use std::fmt;

use serde_json::{Map, Value};

use crate::fields::{FieldError, Fields, flag, non_empty_text, text, whole_in};

pub use crate::domain::MaHoSo;

fn ma_ho_so(v: &Value) -> Result<MaHoSo, String> {
    MaHoSo::parse(v.as_str().ok_or("must be a string")?)
}

/// `TrangThaiHoSo` / progress `TrangThai`: the ten status codes of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DossierStatus {
    MoiDangKy = 1,
    DuocTiepNhan = 2,
    KhongDuocTiepNhan = 3,
    DangXuLy = 4,
    YeuCauBoSungGiayTo = 5,
    YeuCauThucHienNghiaVuTaiChinh = 6,
    CongDanYeuCauRutHoSo = 7,
    DungXuLy = 8,
    DaXuLyXong = 9,
    DaTraKetQua = 10,
}

impl DossierStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        use DossierStatus::*;
        Some(match code {
            1 => MoiDangKy,
            2 => DuocTiepNhan,
            3 => KhongDuocTiepNhan,
            4 => DangXuLy,
            5 => YeuCauBoSungGiayTo,
            6 => YeuCauThucHienNghiaVuTaiChinh,
            7 => CongDanYeuCauRutHoSo,
            8 => DungXuLy,
            9 => DaXuLyXong,
            10 => DaTraKetQua,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// A status as a stored object carries it (`4` or `"4"`): for code that reads payloads
    /// the API accepted, in whichever form.
    pub fn from_json(v: &Value) -> Option<Self> {
        status(v).ok()
    }
}

fn status(v: &Value) -> Result<DossierStatus, String> {
    let refuse = || "must be a status code from 1 to 10, as a number or a string of digits".to_string();
    let n = whole_in(1, 10)(v).map_err(|_| refuse())?;
    DossierStatus::from_code(n).ok_or_else(refuse)
}

/// A portal date-time, `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh (UTC+7, no daylight saving), and
/// only real calendar times: `20241340250000` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortalDateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

impl PortalDateTime {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be yyyyMMddHHmmss (14 digits)".into());
        }
        let n = |a: usize, b: usize| s[a..b].parse::<u16>().unwrap_or(u16::MAX);
        let (year, month, day, hour, minute, second) = (
            n(0, 4),
            n(4, 6) as u8,
            n(6, 8) as u8,
            n(8, 10) as u8,
            n(10, 12) as u8,
            n(12, 14) as u8,
        );
        if !(1900..=2999).contains(&year) {
            return Err("year must be between 1900 and 2999".into());
        }
        if !(1..=12).contains(&month) {
            return Err("is not a real date: month must be 01 to 12".into());
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err("is not a real date: no such day in that month".into());
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("is not a real time: hours 00-23, minutes and seconds 00-59".into());
        }
        Ok(PortalDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

impl fmt::Display for PortalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn date(v: &Value) -> Result<PortalDateTime, String> {
    PortalDateTime::parse(v.as_str().ok_or("must be a string yyyyMMddHHmmss")?)
}

/// An empty string is how many centres say "no date yet"; anything else must be a real date.
fn optional_date(f: &mut Fields<'_>, name: &str) -> Option<PortalDateTime> {
    if f.get(name).and_then(Value::as_str) == Some("") {
        return None;
    }
    f.optional(name, date)
}

/// Who the applicant is. 3 and 4 are sent by a second public client
/// (HuanVu201/DichVuCong_KhoaLuan_PASETO, `SyncLocalDataToDVCQGService.cs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaiDoiTuong {
    CongDan = 1,
    DoanhNghiep = 2,
    CoQuanNhaNuoc = 3,
    ToChucKhac = 4,
}

fn loai_doi_tuong(v: &Value) -> Result<LoaiDoiTuong, String> {
    match whole_in(1, 4)(v) {
        Ok(1) => Ok(LoaiDoiTuong::CongDan),
        Ok(2) => Ok(LoaiDoiTuong::DoanhNghiep),
        Ok(3) => Ok(LoaiDoiTuong::CoQuanNhaNuoc),
        Ok(4) => Ok(LoaiDoiTuong::ToChucKhac),
        _ => Err(
            "must be 1 (citizen), 2 (business), 3 (state agency) or 4 (organisation or other), as a number or a string of digits".into(),
        ),
    }
}

/// `TaiLieuNop[].IsDeleted`: a flag ([`flag`]: a boolean, `"True"`/`"False"` in any ASCII case)
/// or `0`/`1`, `"0"`/`"1"`, as a client that reads it from an SQL bit into a string sends it
/// (HuanVu201/DichVuCong_KhoaLuan_PASETO). Nothing else (`2`, `"01"`, `"yes"`).
fn is_deleted(v: &Value) -> Result<bool, String> {
    match v {
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::String(s) if s == "0" => Ok(false),
        Value::String(s) if s == "1" => Ok(true),
        _ => flag(v).map_err(|_| "must be true or false: a boolean, \"True\"/\"False\", 0/1 or \"0\"/\"1\"".to_string()),
    }
}

/// An amount of đồng: a whole, non-negative number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u64);

impl Amount {
    pub fn vnd(self) -> u64 {
        self.0
    }
}

/// The largest `Gia` taken: below 10^15 đồng, whether sent as an integer or as a whole float
/// (`1e5`), so the two forms have one bound and any later sum of fees stays far from overflow.
const MAX_GIA: u64 = 999_999_999_999_999;

/// The longest digit string read as an amount (leading zeros included), as for the codes.
const MAX_AMOUNT_DIGITS: usize = 18;

/// An amount as a JSON number (an integer, or a whole float such as `1e5`) or as a string of
/// ASCII digits (`"100000"`, the form a second public client sends; leading zeros read as
/// decimal, no sign, spaces, separators or decimal point).
fn amount(v: &Value) -> Result<Amount, String> {
    let refuse = || "must be a whole, non-negative amount in VND, below 10^15, as a number or a string of digits".to_string();
    if let Value::String(s) = v {
        if s.is_empty() || s.len() > MAX_AMOUNT_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse());
        }
        return match s.parse::<u64>() {
            Ok(n) if n <= MAX_GIA => Ok(Amount(n)),
            _ => Err(refuse()),
        };
    }
    if let Some(n) = v.as_u64() {
        return if n <= MAX_GIA { Ok(Amount(n)) } else { Err(refuse()) };
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(Amount(f as u64)),
        _ => Err(refuse()),
    }
}

#[derive(Debug, Clone)]
pub struct TaiLieuNop {
    pub tep_dinh_kem_id: Option<String>,
    pub ten_tep_dinh_kem: Option<String>,
    pub is_deleted: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct GiayToKetQua {
    pub ten_giay_to: Option<String>,
    pub giay_to_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LePhi {
    pub ten_phi_le_phi: Option<String>,
    pub ma_phi_le_phi: Option<String>,
    pub hinh_thuc_thu: Option<i64>,
    pub gia: Amount,
    pub loai_phi_le_phi: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TepDinhKemKhac {
    pub ten_giay_to: Option<String>,
    pub so_luong: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct HoSoBoSung {
    pub ho_so_bo_sung_id: Option<String>,
    pub ngay_bo_sung: Option<PortalDateTime>,
    pub ngay_tiep_nhan_bo_sung: Option<PortalDateTime>,
    pub ngay_hen_tra_moi: Option<PortalDateTime>,
}

fn le_phi_list(f: &mut Fields<'_>, name: &str) -> Vec<LePhi> {
    f.list(name, |i| {
        i.texts(&["TenPhiLePhi", "MaPhiLePhi"]);
        let gia = i.required("Gia", amount);
        Some(LePhi {
            ten_phi_le_phi: i.optional("TenPhiLePhi", text),
            ma_phi_le_phi: i.optional("MaPhiLePhi", text),
            hinh_thuc_thu: i.optional("HinhThucThu", whole_in(0, 99)),
            loai_phi_le_phi: i.optional("LoaiPhiLePhi", whole_in(1, 2)),
            gia: gia?,
        })
    })
}

/// A dossier as `DongBoHoSoMC` takes it.
#[derive(Debug, Clone)]
pub struct Dossier {
    pub ma_ho_so: MaHoSo,
    pub ma_tthc: String,
    pub trang_thai: DossierStatus,
    pub ngay_tiep_nhan: PortalDateTime,
    pub ngay_hen_tra: Option<PortalDateTime>,
    pub ngay_tra: Option<PortalDateTime>,
    pub ngay_ket_thuc_xu_ly: Option<PortalDateTime>,
    pub loai_doi_tuong: Option<LoaiDoiTuong>,
    pub hinh_thuc: Option<i64>,
    pub tai_lieu_nop: Vec<TaiLieuNop>,
    pub giay_to_ket_qua: Vec<GiayToKetQua>,
    pub le_phi: Vec<LePhi>,
    pub tep_dinh_kem_khac: Vec<TepDinhKemKhac>,
    pub ho_so_bo_sung: Vec<HoSoBoSung>,
    /// The object as received, unknown fields included: what is queued, and what the portal
    /// is sent once [`to_wire`] has put its codes and flags in the portal's form.
    pub raw: Map<String, Value>,
}

const DOSSIER_TEXTS: &[&str] = &[
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "SoBienNhan",
    "ChuHoSo",
    "MaDoiTuong",
    "ThongTinKhac",
    "Email",
    "Fax",
    "SoDienThoai",
    "TrichYeuHoSo",
    "ThongTinTra",
    "DonViXuLy",
    "GhiChu",
];

fn as_object(v: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    v.as_object().ok_or_else(|| {
        vec![FieldError {
            field: String::new(),
            message: "the body must be a JSON object".into(),
        }]
    })
}

impl Dossier {
    pub fn parse(v: &Value) -> Result<Self, Vec<FieldError>> {
        let obj = as_object(v)?;
        let mut errors = Vec::new();
        let mut f = Fields::new(obj, String::new(), &mut errors);
        let ma_ho_so = f.required("MaHoSo", ma_ho_so);
        let ma_tthc = f.required("MaTTHC", non_empty_text(100));
        let trang_thai = f.required("TrangThaiHoSo", status);
        let ngay_tiep_nhan = f.required("NgayTiepNhan", date);
        let ngay_hen_tra = optional_date(&mut f, "NgayHenTra");
        let ngay_tra = optional_date(&mut f, "NgayTra");
        let ngay_ket_thuc_xu_ly = optional_date(&mut f, "NgayKetThucXuLy");
        let loai_doi_tuong = f.optional("LoaiDoiTuong", loai_doi_tuong);
        let hinh_thuc = f.optional("HinhThuc", whole_in(0, 1));
        f.texts(DOSSIER_TEXTS);
        let tai_lieu_nop = f.list("TaiLieuNop", |i| {
            i.texts(&["MaThanhPhanHoSo", "DuongDanTaiTepTin"]);
            Some(TaiLieuNop {
                tep_dinh_kem_id: i.optional("TepDinhKemId", text),
                ten_tep_dinh_kem: i.optional("TenTepDinhKem", text),
                is_deleted: i.optional("IsDeleted", is_deleted),
            })
        });
        let giay_to_ket_qua = f.list("DanhSachGiayToKetQua", |i| {
            i.texts(&["MaThanhPhanHoSo", "DuongDanTepTinKetQua"]);
            Some(GiayToKetQua {
                ten_giay_to: i.optional("TenGiayTo", text),
                giay_to_id: i.optional("GiayToId", text),
            })
        });
        let le_phi = le_phi_list(&mut f, "DanhSachLePhi");
        let tep_dinh_kem_khac = f.list("DanhSachTepDinhKemKhac", |i| {
            i.texts(&["LoaiGiayTo"]);
            Some(TepDinhKemKhac {
                ten_giay_to: i.optional("TenGiayTo", text),
                so_luong: i.optional("SoLuong", whole_in(0, 100_000)),
            })
        });
        let ho_so_bo_sung = f.list("DanhSachHoSoBoSung", |i| {
            i.texts(&["NguoiYeuCauBoSung", "NoiDungBoSung", "NguoiTiepNhanBoSung", "ThongTinTiepNhan"]);
            i.optional("TrangThaiBoSung", whole_in(0, 99));
            optional_date(i, "NgayHenTraTruoc");
            i.list("DanhSachGiayToBoSung", |_| Some(()));
            le_phi_list(i, "DanhSachLePhiBoSung");
            Some(HoSoBoSung {
                ho_so_bo_sung_id: i.optional("HoSoBoSungId", text),
                ngay_bo_sung: optional_date(i, "NgayBoSung"),
                ngay_tiep_nhan_bo_sung: optional_date(i, "NgayTiepNhanBoSung"),
                ngay_hen_tra_moi: optional_date(i, "NgayHenTraMoi"),
            })
        });
        match (ma_ho_so, ma_tthc, trang_thai, ngay_tiep_nhan) {
            (Some(ma_ho_so), Some(ma_tthc), Some(trang_thai), Some(ngay_tiep_nhan)) if errors.is_empty() => Ok(Dossier {
                ma_ho_so,
                ma_tthc,
                trang_thai,
                ngay_tiep_nhan,
                ngay_hen_tra,
                ngay_tra,
                ngay_ket_thuc_xu_ly,
                loai_doi_tuong,
                hinh_thuc,
                tai_lieu_nop,
                giay_to_ket_qua,
                le_phi,
                tep_dinh_kem_khac,
                ho_so_bo_sung,
                raw: obj.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// A processing-progress entry as `CapNhatTienDoHoSoMC` takes it.
#[derive(Debug, Clone)]
pub struct Progress {
    pub ma_ho_so: MaHoSo,
    pub trang_thai: DossierStatus,
    pub thoi_diem_xu_ly: PortalDateTime,
    pub ngay_bat_dau: Option<PortalDateTime>,
    pub ngay_ket_thuc_theo_quy_dinh: Option<PortalDateTime>,
    pub raw: Map<String, Value>,
}

impl Progress {
    /// `path_ma_ho_so` is the dossier the URL names; the body must agree with it or leave
    /// `MaHoSo` out, in which case it is filled in.
    pub fn parse(v: &Value, path_ma_ho_so: &MaHoSo) -> Result<Self, Vec<FieldError>> {
        let obj = as_object(v)?;
        let mut errors = Vec::new();
        let mut f = Fields::new(obj, String::new(), &mut errors);
        let body_ma = f.optional("MaHoSo", ma_ho_so);
        if body_ma.as_ref().is_some_and(|m| m != path_ma_ho_so) {
            f.error("MaHoSo", "does not match the dossier in the URL");
        }
        let trang_thai = f.required("TrangThai", status);
        let thoi_diem_xu_ly = f.required("ThoiDiemXuLy", date);
        let ngay_bat_dau = optional_date(&mut f, "NgayBatDau");
        let ngay_ket_thuc_theo_quy_dinh = optional_date(&mut f, "NgayKetThucTheoQuyDinh");
        f.texts(&["NguoiXuLy", "ChucDanh", "PhongBanXuLy", "NoiDungXuLy"]);
        match (trang_thai, thoi_diem_xu_ly) {
            (Some(trang_thai), Some(thoi_diem_xu_ly)) if errors.is_empty() => {
                let mut raw = obj.clone();
                raw.insert("MaHoSo".into(), Value::String(path_ma_ho_so.as_str().to_string()));
                Ok(Progress {
                    ma_ho_so: path_ma_ho_so.clone(),
                    trang_thai,
                    thoi_diem_xu_ly,
                    ngay_bat_dau,
                    ngay_ket_thuc_theo_quy_dinh,
                    raw,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Codes public clients send as strings of digits: the dossier's `TrangThaiHoSo`,
/// `LoaiDoiTuong` and `HinhThuc`, and the progress entry's `TrangThai` (no object has both
/// status names, so one list serves both kinds).
const WIRE_DIGIT_FIELDS: &[&str] = &["TrangThaiHoSo", "TrangThai", "LoaiDoiTuong", "HinhThuc"];

/// The fee lines' numbers: a second public client (HuanVu201/DichVuCong_KhoaLuan_PASETO,
/// `LePhiDongBoDVC`) sends `Gia`, `LoaiPhiLePhi` and `HinhThucThu` as strings.
const FEE_DIGIT_FIELDS: &[&str] = &["Gia", "HinhThucThu", "LoaiPhiLePhi"];

/// The other numbers in the dossier's lists. No public client shows their form; they go as
/// strings like every other number a public client is seen sending, so that the portal gets
/// one form whatever the centre sent.
const LIST_DIGIT_FIELDS: &[(&str, &[&str])] = &[
    ("DanhSachLePhi", FEE_DIGIT_FIELDS),
    ("DanhSachTepDinhKemKhac", &["SoLuong"]),
    ("DanhSachHoSoBoSung", &["TrangThaiBoSung"]),
];

/// Rewrites `names` of `obj` that read as whole numbers into decimal strings (`4`, `"04"`,
/// `1e5` become `"4"`, `"4"`, `"100000"`); a value that does not read is left as it is.
fn digits_to_wire(obj: &mut Map<String, Value>, names: &[&str]) {
    let code = whole_in(0, i64::MAX);
    for name in names {
        if let Some(v) = obj.get_mut(*name) {
            let n = if *name == "Gia" {
                amount(v).map(|a| a.vnd().to_string()).ok()
            } else {
                code(v).map(|n| n.to_string()).ok()
            };
            if let Some(n) = n {
                *v = Value::String(n);
            }
        }
    }
}

fn list_items_mut<'a>(obj: &'a mut Map<String, Value>, list: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    obj.get_mut(list)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Rewrites a dossier or progress object, in place, into the one form the portal is sent,
/// the form public clients send: every number the gateway reads as a decimal string (the codes
/// in [`WIRE_DIGIT_FIELDS`], and the numbers of the lists: [`LIST_DIGIT_FIELDS`] and the
/// supplements' fee lines, `DanhSachHoSoBoSung[].DanhSachLePhiBoSung[]`), so `4`, `"04"` and
/// `"4"` all go as `"4"`; and `TaiLieuNop[].IsDeleted` as `"True"`/`"False"` (from `true`,
/// `"true"`, `1` or `"1"` alike). Everything else, unknown fields included, is left exactly as
/// the centre sent it.
///
/// The adapter calls this on every object just before sending, so messages queued before it
/// existed, in the numeric form, go out right too; the API stores what the centre sent. It is
/// idempotent, and a value it cannot read (impossible after [`Dossier::parse`] or
/// [`Progress::parse`]) is left untouched for the portal to judge.
pub fn to_wire(item: &mut Map<String, Value>) {
    let digits = whole_in(0, i64::MAX);
    for name in WIRE_DIGIT_FIELDS {
        if let Some(v) = item.get_mut(*name)
            && let Ok(n) = digits(v)
        {
            *v = Value::String(n.to_string());
        }
    }
    for (list, names) in LIST_DIGIT_FIELDS {
        for entry in list_items_mut(item, list) {
            digits_to_wire(entry, names);
            if *list == "DanhSachHoSoBoSung" {
                for fee in list_items_mut(entry, "DanhSachLePhiBoSung") {
                    digits_to_wire(fee, FEE_DIGIT_FIELDS);
                }
            }
        }
    }
    for file in list_items_mut(item, "TaiLieuNop") {
        if let Some(v) = file.get_mut("IsDeleted")
            && let Ok(b) = is_deleted(v)
        {
            *v = Value::String(if b { "True" } else { "False" }.into());
        }
    }
}

#[cfg(test)]
mod tests;
