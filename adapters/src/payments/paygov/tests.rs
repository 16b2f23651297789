//! Unit tests for the PayGov provider and its messages.

use super::*;
use hcc_config::Section;
use serde_json::{Map, json};

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
        ("MaThamChieu", "HCC241126ABCDEFGH"),
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

fn sample_init() -> Value {
    let fees = [
        FeeLine {
            kind: FeeKind::LePhi,
            code: "LP01".into(),
            name: "Lệ phí cấp giấy chứng nhận".into(),
            amount: 80_000,
        },
        FeeLine {
            kind: FeeKind::Phi,
            code: "P02".into(),
            name: "Phí thẩm định".into(),
            amount: 20_000,
        },
    ];
    init_message(
        &InitRequest {
            partner_code: "HCC-DEV",
            reference: "HCC241126ABCDEFGH",
            amount: 100_000,
            description: "Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001",
            timestamp: "20241126133005",
            bank_code: "PAYMENT",
            server_ip: "203.0.113.10",
            ma_ho_so: "000.00.22.H46-241125-0001",
            ma_tthc: "1.004227",
            ten_tthc: "Cấp giấy chứng nhận quyền sử dụng đất",
            ma_dvc: &ma_dvc(None, "1.004227"),
            ten_dvc: None,
            beneficiary: Beneficiary {
                ma_don_vi: "000.00.22.H46",
                ten_don_vi: "Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh",
                tk_thu_huong: "0011004123456",
                ma_nh_thu_huong: "970436",
                ten_tk_thu_huong: "VAN PHONG UBND TINH QUANG NINH",
            },
            fees: &fees,
            payer: Payer {
                ho_ten: "Nguyễn Thị Lan",
                so_cmnd: "022190000123",
                dia_chi: "Hạ Long, Quảng Ninh",
                huyen: None,
                tinh: None,
            },
        },
        "paygov-dev-secret",
    )
}

/// The checksum string written out by hand from the notes' field order.
#[test]
fn init_carries_the_receipt_and_a_checksum_over_the_notes_field_order() {
    let m = sample_init();
    let by_hand = "INIT|1.0.6|HCC-DEV|HCC241126ABCDEFGH|100000|PAY|1|1|vi-VN|VND|PAYMENT|\
                       Thanh toan phi, le phi ho so 000.00.22.H46-241125-0001|20241126133005|203.0.113.10|paygov-dev-secret";
    assert_eq!(m["MaXacThuc"], json!(hcc_signing::sha256_hex(by_hand.as_bytes())));
    assert_eq!(m["SoTien"], json!("100000"), "amounts travel as strings");
    let r = &m["ThongTinBienLai"];
    for (k, v) in [
        ("MaDichVu", "2"),
        ("MaDonVi", "000.00.22.H46"),
        ("TenDonVi", "Trung tâm Phục vụ hành chính công tỉnh Quảng Ninh"),
        ("MaHoSo", "000.00.22.H46-241125-0001"),
        ("MaTTHC", "1.004227"),
        ("TenTTHC", "Cấp giấy chứng nhận quyền sử dụng đất"),
        ("TKThuHuong", "0011004123456"),
        ("MaNHThuHuong", "970436"),
        ("TenTKThuHuong", "VAN PHONG UBND TINH QUANG NINH"),
        ("HoTenNguoiNop", "Nguyễn Thị Lan"),
        ("SoCMNDNguoiNop", "022190000123"),
        ("DiaChiNguoiNop", "Hạ Long, Quảng Ninh"),
        // Absent MaDVC: MaTTHC + ".01" (HuanVu201's DvcPaymentService.cs).
        ("MaDVC", "1.004227.01"),
    ] {
        assert_eq!(r[k], json!(v), "{k}");
    }
    // Optional receipt fields not given are not sent at all.
    for k in ["TenDVC", "HuyenNguoiNop", "TinhNguoiNop"] {
        assert!(r.get(k).is_none(), "{k}");
    }
    assert_eq!(ma_dvc(Some("2.001234.000.00.00.H46"), "1.004227"), "2.001234.000.00.00.H46");
    assert_eq!(
        r["PhiLePhi"][0],
        json!({"LoaiPhiLePhi": "2", "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "SoTien": "80000"})
    );
    assert_eq!(r["PhiLePhi"][1]["LoaiPhiLePhi"], json!("1"));
}

#[test]
fn query_repeats_the_original_time_and_its_checksum_is_pinned() {
    let q = query_message("HCC-DEV", "HCC241126ABCDEFGH", "20241126133005", "paygov-dev-secret");
    let by_hand = "QUERY|1.0.6|HCC-DEV|HCC241126ABCDEFGH|20241126133005|paygov-dev-secret";
    assert_eq!(q["MaXacThuc"], json!(hcc_signing::sha256_hex(by_hand.as_bytes())));
    assert_eq!(q["ThoiGianGD"], json!("20241126133005"));
}

#[test]
fn both_answer_envelopes_are_understood() {
    let plain = json!({"MaLoi": "00", "UrlThanhToan": "https://pay.example/x"});
    assert_eq!(parse_init_answer(&plain).unwrap(), "https://pay.example/x");
    let wrapped = json!({"error_code": "0", "message": "{\"MaLoi\":\"00\",\"UrlThanhToan\":\"https://pay.example/y\"}"});
    assert_eq!(parse_init_answer(&wrapped).unwrap(), "https://pay.example/y");
    assert!(parse_init_answer(&json!({"error_code": "1", "message": "Sai ma doi tac"})).is_err());
    assert!(parse_init_answer(&json!({"MaLoi": "02", "MoTaLoi": "Sai mã xác thực"})).is_err());
    assert!(parse_init_answer(&json!({"MaLoi": "00"})).is_err());
    assert!(parse_init_answer(&json!({"MaLoi": "00", "UrlThanhToan": "javascript:alert(1)"})).is_err());
}

#[test]
fn query_answers_are_trusted_only_with_maloi_00() {
    assert_eq!(
        parse_query_answer(&json!({"MaLoi": "00", "TrangThaiGD": "1", "SoTien": "5000", "MaGiaoDich": "T9"})),
        Some(QueryState::Paid {
            amount: 5000,
            transaction: "T9".into()
        })
    );
    assert_eq!(
        parse_query_answer(&json!({"MaLoi": "05", "TrangThaiGD": "1", "SoTien": "5000", "MaGiaoDich": "T9"})),
        None
    );
    assert_eq!(parse_query_answer(&json!({"TrangThaiGD": "1", "SoTien": "5000"})), None);
    assert_eq!(
        parse_query_answer(&json!({"MaLoi": "00", "TrangThaiGD": "1", "SoTien": "5000"})),
        None
    );
    assert_eq!(
        parse_query_answer(&json!({"MaLoi": "00", "TrangThaiGD": "4"})),
        Some(QueryState::Failed)
    );
    let wrapped = json!({"error_code": 0, "message": "{\"MaLoi\":\"00\",\"TrangThaiGD\":\"3\"}"});
    assert_eq!(parse_query_answer(&wrapped), Some(QueryState::Pending));
}

/// Re-signs a confirmation after a field was changed, as the platform (or anyone holding
/// the secret) would: the checks below are about shape, not the checksum.
fn resigned(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    let m = v.as_object().unwrap().clone();
    v["MaXacThuc"] = json!(checksum(&m, CONFIRM_FIELDS, "s"));
    v
}

#[test]
fn a_signed_confirmation_with_a_loose_amount_or_reference_is_refused() {
    // The checksum string of one, written out by hand: the amount is hashed as its text.
    let v = resigned(confirmation("s", 100_000), "SoTien", json!("0100000"));
    let by_hand = "CONFIRM|00|P1|HCC241126ABCDEFGH|0100000|VND|T1|VCB|20241126133005|le phi|s";
    assert_eq!(v["MaXacThuc"], json!(hcc_signing::sha256_hex(by_hand.as_bytes())));
    assert_eq!(parse_confirmation(&v, "P1", "s").unwrap_err(), ConfirmationError::Field("SoTien"));
    for amount in [
        json!("+100000"),
        json!("-100000"),
        json!(" 100000"),
        json!("100000.0"),
        json!(100000.0),
        json!(-5),
        json!(""),
    ] {
        let v = resigned(confirmation("s", 100_000), "SoTien", amount.clone());
        assert_eq!(
            parse_confirmation(&v, "P1", "s").unwrap_err(),
            ConfirmationError::Field("SoTien"),
            "{amount}"
        );
    }
    // A JSON integer is hashed and read as its decimal digits.
    let v = resigned(confirmation("s", 100_000), "SoTien", json!(100000));
    assert_eq!(parse_confirmation(&v, "P1", "s").unwrap().amount, 100_000);
    for reference in [
        "pending",
        "",
        "R1",
        "hcc241126abcdefgh",
        "HCC241126ABCDEFGH:x",
        "../HCC241126ABCDEFGH",
    ] {
        let v = resigned(confirmation("s", 100_000), "MaThamChieu", json!(reference));
        assert_eq!(
            parse_confirmation(&v, "P1", "s").unwrap_err(),
            ConfirmationError::Field("MaThamChieu"),
            "{reference}"
        );
    }
}

#[test]
fn query_amounts_are_strict_digit_strings() {
    for amount in ["+5000", "05000", "-5000", "5000.0", " 5000"] {
        assert_eq!(
            parse_query_answer(&json!({"MaLoi": "00", "TrangThaiGD": "1", "SoTien": amount, "MaGiaoDich": "T9"})),
            None,
            "{amount}"
        );
    }
}

#[test]
fn init_answers_give_only_a_safe_payment_page() {
    for url in [
        "http://paygov.example.vn/pay/x",
        "javascript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "//attacker.example/pay",
        "https://user:pw@paygov.example.vn/pay",
    ] {
        let e = parse_init_answer(&json!({"MaLoi": "00", "UrlThanhToan": url})).unwrap_err();
        assert!(e.contains("UrlThanhToan refused"), "{url}: {e}");
    }
    assert_eq!(
        parse_init_answer(&json!({"MaLoi": "00", "UrlThanhToan": "http://127.0.0.1:9101/pay/x"})).unwrap(),
        "http://127.0.0.1:9101/pay/x"
    );
}

#[test]
fn a_failed_confirmation_never_pays_and_may_lack_a_transaction() {
    let mut v = confirmation("s", 100_000);
    v["MaLoi"] = json!("24");
    v["MaGiaoDich"] = json!("");
    let m = v.as_object().unwrap().clone();
    v["MaXacThuc"] = json!(checksum(&m, CONFIRM_FIELDS, "s"));
    let c = parse_confirmation(&v, "P1", "s").unwrap();
    assert!(!c.paid);
    assert_eq!(c.ma_loi, "24");
    v["MaLoi"] = json!("00");
    let m = v.as_object().unwrap().clone();
    v["MaXacThuc"] = json!(checksum(&m, CONFIRM_FIELDS, "s"));
    assert_eq!(
        parse_confirmation(&v, "P1", "s").unwrap_err(),
        ConfirmationError::Field("MaGiaoDich")
    );
}

fn section(text: &str) -> Section {
    Section::from_toml("paygov", text).expect("toml")
}

fn keys(text: &str, production: bool, agencies: usize) -> Vec<String> {
    let agencies = vec![super::super::test_agency(); agencies];
    match super::super::test_build(&KIND, Some(&section(text)), production, "", agencies) {
        Ok(_) => vec![],
        Err(p) => p.into_iter().map(|p| p.key).collect(),
    }
}

const ON: &str = "init_url = \"https://paygov.example.vn/init\"\nserver_ip = \"203.0.113.10\"\npartner_code = \"P\"\n";

#[test]
fn production_refuses_a_short_secret_only_while_paygov_is_on() {
    assert_eq!(keys(ON, true, 1), vec!["paygov.secret"]);
    assert_eq!(keys(&format!("{ON}secret = \" \"\n"), true, 1), vec!["paygov.secret"]);
    // Under 16 bytes is within reach of guessing (issue 20); 16 is taken.
    assert_eq!(keys(&format!("{ON}secret = \"s3cret\"\n"), true, 1), vec!["paygov.secret"]);
    assert_eq!(keys(&format!("{ON}secret = \"0123456789abcdef\"\n"), true, 1), Vec::<String>::new());
    assert_eq!(
        keys(&format!("{ON}secret = \"0123456789abcdef\"\nbearer_token = \"short\"\n"), true, 1),
        vec!["paygov.bearer_token"]
    );
    assert_eq!(
        keys(ON, false, 1),
        Vec::<String>::new(),
        "outside production an empty secret is allowed"
    );
    assert_eq!(keys("secret = \"\"\n", true, 0), Vec::<String>::new(), "off: nothing to forge");
}

#[test]
fn settings_are_checked_by_key() {
    let k = keys(
        "init_url = \"ftp://x\"\nquery_url = \"nowhere\"\nbank_code = \" \"\nserver_ip = \"here\"\n",
        false,
        0,
    );
    assert_eq!(
        k,
        vec![
            "paygov.init_url",
            "paygov.query_url",
            "paygov.bank_code",
            "paygov.server_ip",
            "agencies"
        ]
    );
    assert_eq!(keys(&format!("{ON}expire_minutes = 0\n"), false, 1), vec!["paygov.expire_minutes"]);
    // A URL is checked even while PayGov is off.
    assert_eq!(keys("query_url = \"nowhere\"\n", false, 0), vec!["paygov.query_url"]);
    // Unknown keys and wrong types name the section.
    assert!(keys("secrett = \"x\"\n", false, 0)[0].starts_with("paygov"));
    assert!(keys("init_deadline_ms = \"soon\"\n", false, 0)[0].starts_with("paygov"));
}

#[test]
fn paygov_is_built_only_when_an_endpoint_is_set() {
    let build = |section: Option<&Section>| super::super::test_build(&KIND, section, false, "", vec![super::super::test_agency()]);
    assert!(build(Some(&section("partner_code = \"P\"\n"))).expect("valid").is_none());
    assert!(build(None).expect("valid").is_none());
    let built = build(Some(&section(ON))).expect("valid").expect("on");
    assert_eq!(built.id(), "paygov");
    assert!(built.creator().is_some() && built.reconciler().is_some());
    assert_eq!(
        built.reconciler().map(|r| r.schedule().lifetime),
        Some(Duration::from_secs(15 * 60)),
        "paygov.expire_minutes, 15 by default"
    );
    let longer = build(Some(&section(&format!("{ON}expire_minutes = 60\n"))))
        .expect("valid")
        .expect("on");
    assert_eq!(longer.reconciler().map(|r| r.schedule().lifetime), Some(Duration::from_secs(3600)));
    let secret = Secret::new("paygov-dev-secret");
    let parsed: PaygovSettings = section(&format!("{ON}secret = \"paygov-dev-secret\"\n")).parse().expect("parses");
    assert!(parsed.secret == secret && !format!("{parsed:?}").contains("paygov-dev-secret"));
}
