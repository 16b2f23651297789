//! Unit tests for the VietQR provider and its payload.

use super::*;
use crate::payments::Agency;

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
