//! Tests of the portal's data: parsing the fixtures, the field checks and their paths, the
//! forms codes and flags are read in, and the wire form.

use serde_json::json;

use super::*;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../../../../tests/fixtures/dossier.json")).unwrap()
}

fn fields_of(r: Result<Dossier, Vec<FieldError>>) -> Vec<String> {
    r.err().unwrap_or_default().into_iter().map(|e| e.field).collect()
}

#[test]
fn the_fixture_parses_and_keeps_unknown_fields() {
    let mut v = fixture();
    v["TruongMoiCuaTinh"] = json!({"x": 1});
    let d = Dossier::parse(&v).unwrap();
    assert_eq!(d.ma_ho_so.as_str(), "000.00.22.H46-241125-0001");
    assert_eq!(d.trang_thai, DossierStatus::DuocTiepNhan);
    assert_eq!(d.ngay_tiep_nhan.to_string(), "20241125083000");
    assert_eq!(d.le_phi[0].gia.vnd(), 100_000);
    assert_eq!(d.loai_doi_tuong, Some(LoaiDoiTuong::CongDan));
    assert_eq!(d.raw["TruongMoiCuaTinh"], json!({"x": 1}));
}

#[test]
fn errors_name_their_field_paths() {
    let mut v = fixture();
    v.as_object_mut().unwrap().remove("MaHoSo");
    v["TrangThaiHoSo"] = json!(11);
    v["NgayTiepNhan"] = json!("20241340250000");
    v["DanhSachLePhi"][0]["Gia"] = json!(-5);
    v["LoaiDoiTuong"] = json!(5);
    let fields = fields_of(Dossier::parse(&v));
    assert_eq!(
        fields,
        vec![
            "/MaHoSo",
            "/TrangThaiHoSo",
            "/NgayTiepNhan",
            "/LoaiDoiTuong",
            "/DanhSachLePhi/0/Gia"
        ]
    );
}

#[test]
fn fee_prices_have_one_bound_in_either_form() {
    for (gia, ok) in [
        (json!(999_999_999_999_999u64), true),
        (json!(1e14), true),
        (json!(1_000_000_000_000_000u64), false),
        (json!(u64::MAX), false),
        (json!(1e15), false),
        (json!(1e300), false),
        (json!(0.5), false),
        (json!("999999999999999"), true),
        (json!("000999999999999999"), true),
        (json!("1000000000000000"), false),
        (json!("0000000000000000001"), false),
    ] {
        let mut v = fixture();
        v["DanhSachLePhi"][0]["Gia"] = gia.clone();
        assert_eq!(Dossier::parse(&v).is_ok(), ok, "{gia}");
    }
}

#[test]
fn dates_must_be_real() {
    assert!(PortalDateTime::parse("20240229120000").is_ok());
    assert!(PortalDateTime::parse("20230229120000").is_err());
    assert!(PortalDateTime::parse("20241340250000").is_err());
    assert!(PortalDateTime::parse("20241131000000").is_err());
    assert!(PortalDateTime::parse("20241130240000").is_err());
    assert!(PortalDateTime::parse("20241130236000").is_err());
    assert!(PortalDateTime::parse("2024113023000").is_err());
    assert!(PortalDateTime::parse("2024-11-30 23:00").is_err());
    assert!(PortalDateTime::parse("20241130235959").is_ok());
}

#[test]
fn statuses_are_one_to_ten() {
    for n in 1..=10 {
        assert_eq!(DossierStatus::from_code(n).map(|s| s.code() as i64), Some(n));
    }
    assert!(DossierStatus::from_code(0).is_none());
    assert!(DossierStatus::from_code(11).is_none());
    assert_eq!(status(&json!("4")), Ok(DossierStatus::DangXuLy));
    assert_eq!(DossierStatus::from_json(&json!("10")), Some(DossierStatus::DaTraKetQua));
    assert_eq!(DossierStatus::from_json(&json!(10)), Some(DossierStatus::DaTraKetQua));
    for bad in [
        json!("abc"),
        json!(4.5),
        json!("11"),
        json!(true),
        json!("0"),
        json!(""),
        json!("4.0"),
    ] {
        assert!(status(&bad).is_err(), "{bad}");
    }
}

/// The fixture as a centre whose software writes every code as a string would send it.
fn stringly_fixture() -> Value {
    let mut v = fixture();
    v["TrangThaiHoSo"] = json!("4");
    v["LoaiDoiTuong"] = json!("2");
    v["HinhThuc"] = json!("1");
    v["TaiLieuNop"][0]["IsDeleted"] = json!("True");
    v["DanhSachLePhi"][0]["HinhThucThu"] = json!("2");
    v["DanhSachLePhi"][0]["LoaiPhiLePhi"] = json!("1");
    v["DanhSachTepDinhKemKhac"] = json!([{"TenGiayTo": "Bản sao CCCD", "SoLuong": "2", "LoaiGiayTo": "BS"}]);
    v["DanhSachHoSoBoSung"] = json!([{"HoSoBoSungId": "bs-1", "TrangThaiBoSung": "1", "NgayBoSung": ""}]);
    v
}

#[test]
fn codes_and_flags_are_read_as_numbers_or_strings() {
    let n = Dossier::parse(&fixture()).unwrap();
    assert_eq!(
        (n.trang_thai, n.loai_doi_tuong, n.hinh_thuc, n.tai_lieu_nop[0].is_deleted),
        (DossierStatus::DuocTiepNhan, Some(LoaiDoiTuong::CongDan), Some(0), Some(false))
    );
    assert_eq!((n.le_phi[0].hinh_thuc_thu, n.le_phi[0].loai_phi_le_phi), (Some(2), Some(2)));
    let s = Dossier::parse(&stringly_fixture()).unwrap();
    assert_eq!(
        (s.trang_thai, s.loai_doi_tuong, s.hinh_thuc, s.tai_lieu_nop[0].is_deleted),
        (DossierStatus::DangXuLy, Some(LoaiDoiTuong::DoanhNghiep), Some(1), Some(true))
    );
    assert_eq!((s.le_phi[0].hinh_thuc_thu, s.le_phi[0].loai_phi_le_phi), (Some(2), Some(1)));
    assert_eq!(s.tep_dinh_kem_khac[0].so_luong, Some(2));
    // What is stored is what the centre sent; only the wire form changes it.
    assert_eq!(s.raw["TrangThaiHoSo"], json!("4"));
    assert_eq!(n.raw["TrangThaiHoSo"], json!(2));
    let mut lower = fixture();
    lower["TaiLieuNop"][0]["IsDeleted"] = json!("false");
    assert_eq!(Dossier::parse(&lower).unwrap().tai_lieu_nop[0].is_deleted, Some(false));
    let mut p: Value = serde_json::from_str(include_str!("../../../../tests/fixtures/progress.json")).unwrap();
    let ma = MaHoSo::parse("000.00.22.H46-241125-0001").unwrap();
    p["TrangThai"] = json!("9");
    assert_eq!(Progress::parse(&p, &ma).unwrap().trang_thai, DossierStatus::DaXuLyXong);
}

#[test]
fn other_forms_of_codes_and_flags_are_refused_with_their_paths() {
    for bad in [json!("abc"), json!(4.5), json!("11"), json!(true), json!(" 4"), json!([4])] {
        let mut v = fixture();
        v["TrangThaiHoSo"] = bad.clone();
        assert_eq!(fields_of(Dossier::parse(&v)), vec!["/TrangThaiHoSo"], "TrangThaiHoSo {bad}");
    }
    let mut v = stringly_fixture();
    v["LoaiDoiTuong"] = json!("5");
    v["HinhThuc"] = json!(true);
    v["TaiLieuNop"][0]["IsDeleted"] = json!("yes");
    v["DanhSachLePhi"][0]["HinhThucThu"] = json!("hai");
    v["DanhSachLePhi"][0]["LoaiPhiLePhi"] = json!(1.5);
    v["DanhSachTepDinhKemKhac"][0]["SoLuong"] = json!("-1");
    v["DanhSachHoSoBoSung"][0]["TrangThaiBoSung"] = json!("1.0");
    assert_eq!(
        fields_of(Dossier::parse(&v)),
        vec![
            "/LoaiDoiTuong",
            "/HinhThuc",
            "/TaiLieuNop/0/IsDeleted",
            "/DanhSachLePhi/0/HinhThucThu",
            "/DanhSachLePhi/0/LoaiPhiLePhi",
            "/DanhSachTepDinhKemKhac/0/SoLuong",
            "/DanhSachHoSoBoSung/0/TrangThaiBoSung",
        ]
    );
    let mut tai_lieu = fixture();
    for bad in [json!(2), json!("01"), json!(-1), json!(1.0), json!("2"), json!("")] {
        tai_lieu["TaiLieuNop"][0]["IsDeleted"] = bad.clone();
        assert_eq!(fields_of(Dossier::parse(&tai_lieu)), vec!["/TaiLieuNop/0/IsDeleted"], "{bad}");
    }
    for bad in [
        json!("1e5"),
        json!("1 000"),
        json!("-5"),
        json!(" 5"),
        json!("5.0"),
        json!(""),
        json!("1000000000000000"),
    ] {
        let mut gia = fixture();
        gia["DanhSachLePhi"][0]["Gia"] = bad.clone();
        assert_eq!(fields_of(Dossier::parse(&gia)), vec!["/DanhSachLePhi/0/Gia"], "{bad}");
    }
    let mut p: Value = serde_json::from_str(include_str!("../../../../tests/fixtures/progress.json")).unwrap();
    p["TrangThai"] = json!("abc");
    let errs = Progress::parse(&p, &MaHoSo::parse("000.00.22.H46-241125-0001").unwrap()).unwrap_err();
    assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), vec!["/TrangThai"]);
}

fn wire(v: &Value) -> Value {
    let mut m = v.as_object().unwrap().clone();
    to_wire(&mut m);
    Value::Object(m)
}

#[test]
fn the_wire_form_is_strings_whatever_the_centre_sent() {
    let from_numbers = wire(&fixture());
    assert_eq!(from_numbers["TrangThaiHoSo"], json!("2"));
    assert_eq!(from_numbers["LoaiDoiTuong"], json!("1"));
    assert_eq!(from_numbers["HinhThuc"], json!("0"));
    assert_eq!(from_numbers["TaiLieuNop"][0]["IsDeleted"], json!("False"));
    // The fee line's numbers go as strings too; everything unknown as the centre sent it.
    assert_eq!(
        from_numbers["DanhSachLePhi"][0],
        json!({"TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "MaPhiLePhi": "LP01", "HinhThucThu": "2", "Gia": "100000", "LoaiPhiLePhi": "2"})
    );
    assert_eq!(from_numbers["ChuHoSo"], json!("Nguyễn Thị Lan"));
    let mut expected = fixture();
    for (k, w) in [("TrangThaiHoSo", "2"), ("LoaiDoiTuong", "1"), ("HinhThuc", "0")] {
        expected[k] = json!(w);
    }
    expected["TaiLieuNop"][0]["IsDeleted"] = json!("False");
    expected["DanhSachLePhi"] = from_numbers["DanhSachLePhi"].clone();
    assert_eq!(from_numbers, expected, "nothing else changes");

    let mut sent = stringly_fixture();
    sent["TrangThaiHoSo"] = json!("04");
    sent["TaiLieuNop"][0]["IsDeleted"] = json!("true");
    let from_strings = wire(&sent);
    assert_eq!(from_strings["TrangThaiHoSo"], json!("4"));
    assert_eq!(from_strings["LoaiDoiTuong"], json!("2"));
    assert_eq!(from_strings["HinhThuc"], json!("1"));
    assert_eq!(from_strings["TaiLieuNop"][0]["IsDeleted"], json!("True"));
    assert_eq!(from_strings["DanhSachTepDinhKemKhac"][0]["SoLuong"], json!("2"));
    assert_eq!(from_strings["DanhSachHoSoBoSung"][0]["TrangThaiBoSung"], json!("1"));
    assert_eq!(wire(&from_strings), from_strings, "idempotent");

    let mut p: Value = serde_json::from_str(include_str!("../../../../tests/fixtures/progress.json")).unwrap();
    assert_eq!(wire(&p)["TrangThai"], json!("4"));
    p["TrangThai"] = json!("10");
    assert_eq!(wire(&p)["TrangThai"], json!("10"));
    // A value it cannot read is the portal's to judge, not silently rewritten.
    let odd = json!({"TrangThaiHoSo": "bốn", "HinhThuc": null, "TaiLieuNop": [{"IsDeleted": "có"}, 7]});
    assert_eq!(wire(&odd), odd);
}

/// What HuanVu201/DichVuCong_KhoaLuan_PASETO's `SyncLocalDataToDVCQGService.cs` sends:
/// `LoaiDoiTuong` 3 and 4, fee numbers as strings, `IsDeleted` from an SQL bit.
#[test]
fn the_second_public_clients_forms_are_read_and_sent_in_the_one_wire_form() {
    let mut v = fixture();
    v["LoaiDoiTuong"] = json!("3");
    v["TaiLieuNop"] = json!([
        {"TepDinhKemId": "f-1", "IsDeleted": "0"},
        {"TepDinhKemId": "f-2", "IsDeleted": 1},
        {"TepDinhKemId": "f-3", "IsDeleted": "1"},
        {"TepDinhKemId": "f-4", "IsDeleted": 0}
    ]);
    v["DanhSachLePhi"] = json!([
        {"TenPhiLePhi": "Lệ phí", "Gia": "100000", "LoaiPhiLePhi": "2", "HinhThucThu": "1"},
        {"TenPhiLePhi": "Phí", "Gia": "0050000", "LoaiPhiLePhi": 1, "HinhThucThu": 3},
        {"TenPhiLePhi": "Phí thẩm định", "Gia": 1e5}
    ]);
    v["DanhSachTepDinhKemKhac"] = json!([{"TenGiayTo": "CCCD", "SoLuong": "02"}]);
    v["DanhSachHoSoBoSung"] = json!([{"HoSoBoSungId": "bs-1", "DanhSachLePhiBoSung": [{"Gia": 20000, "LoaiPhiLePhi": "1"}]}]);
    let d = Dossier::parse(&v).unwrap();
    assert_eq!(d.loai_doi_tuong, Some(LoaiDoiTuong::CoQuanNhaNuoc));
    let flags: Vec<_> = d.tai_lieu_nop.iter().map(|t| t.is_deleted).collect();
    assert_eq!(flags, vec![Some(false), Some(true), Some(true), Some(false)]);
    let gia: Vec<_> = d.le_phi.iter().map(|l| l.gia.vnd()).collect();
    assert_eq!(gia, vec![100_000, 50_000, 100_000]);
    let mut four = fixture();
    four["LoaiDoiTuong"] = json!(4);
    assert_eq!(Dossier::parse(&four).unwrap().loai_doi_tuong, Some(LoaiDoiTuong::ToChucKhac));

    let w = wire(&v);
    assert_eq!(w["LoaiDoiTuong"], json!("3"));
    let flags: Vec<_> = w["TaiLieuNop"].as_array().unwrap().iter().map(|t| t["IsDeleted"].clone()).collect();
    assert_eq!(flags, vec![json!("False"), json!("True"), json!("True"), json!("False")]);
    assert_eq!(
        w["DanhSachLePhi"][0],
        json!({"TenPhiLePhi": "Lệ phí", "Gia": "100000", "LoaiPhiLePhi": "2", "HinhThucThu": "1"})
    );
    assert_eq!(
        w["DanhSachLePhi"][1],
        json!({"TenPhiLePhi": "Phí", "Gia": "50000", "LoaiPhiLePhi": "1", "HinhThucThu": "3"})
    );
    assert_eq!(w["DanhSachLePhi"][2]["Gia"], json!("100000"));
    assert_eq!(w["DanhSachTepDinhKemKhac"][0]["SoLuong"], json!("2"));
    assert_eq!(
        w["DanhSachHoSoBoSung"][0]["DanhSachLePhiBoSung"][0],
        json!({"Gia": "20000", "LoaiPhiLePhi": "1"})
    );
    assert_eq!(wire(&w), w, "idempotent");
}

#[test]
fn ma_ho_so_is_conservative() {
    // Codes as provinces' software issues them: the Decree 61 form and its variants.
    for ok in [
        "000.00.22.H46-241125-0001",
        "000.00.22.H46-20241125-0001",
        "H46.22.08-241126-0001",
        "G22.386-241125-000123",
        "000.00.01.H01_241125_0001",
        "HS-2024-001",
        "QN241125000001",
        "a",
        "7",
        ".env",
        "1..2",
        "-x-",
    ] {
        assert!(MaHoSo::parse(ok).is_ok(), "{ok}");
    }
    assert!(MaHoSo::parse(&"9".repeat(100)).is_ok());
    for (bad, why) in [
        ("", "1 to 100"),
        ("a b", "only letters"),
        ("x\ny", "only letters"),
        ("000.00.22.H46/241125/0001", "path separator"),
        ("../../admin", "path separator"),
        ("..\\..\\admin", "path separator"),
        ("/", "path separator"),
        (".", "dot segment"),
        ("..", "dot segment"),
        ("...", "letter or digit"),
        ("-", "letter or digit"),
        ("_-_.", "letter or digit"),
        ("HS%2F1", "only letters"),
        ("HỒSƠ-1", "only letters"),
    ] {
        let e = MaHoSo::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    assert!(MaHoSo::parse(&"9".repeat(101)).is_err());
}

#[test]
fn progress_takes_its_dossier_from_the_url() {
    let v: Value = serde_json::from_str(include_str!("../../../../tests/fixtures/progress.json")).unwrap();
    let ma = MaHoSo::parse("000.00.22.H46-241125-0001").unwrap();
    let p = Progress::parse(&v, &ma).unwrap();
    assert_eq!(p.trang_thai, DossierStatus::DangXuLy);
    let other = MaHoSo::parse("OTHER-1").unwrap();
    let errs = Progress::parse(&v, &other).unwrap_err();
    assert_eq!(errs[0].field, "/MaHoSo");
    let mut no_ma = v.clone();
    no_ma.as_object_mut().unwrap().remove("MaHoSo");
    assert_eq!(
        Progress::parse(&no_ma, &ma).unwrap().raw["MaHoSo"],
        json!("000.00.22.H46-241125-0001")
    );
}

#[test]
fn non_objects_are_refused() {
    assert!(Dossier::parse(&json!([1, 2])).is_err());
    assert!(fields_of(Dossier::parse(&json!({"TaiLieuNop": "x"}))).contains(&"/TaiLieuNop".to_string()));
}
