//! The VietQR witnesses on their own, before any gateway is involved: the outside judges
//! (`zbarimg`, the npm package `vietnam-qr-pay`) read the public vectors of the VietQR notes as
//! those notes decode them, and the mock bank's `/_mock/bank/vietqr` refuses a damaged code and
//! books a good one with the note a bank would carry.

use hcc_tests::{payment_mocks, vietqr_judge, workspace_dir, zbar_decode};
use serde_json::{Value, json};

/// The dynamic vector of the VietQR notes ([Q1] subiz/vietqr): 40,123 VND, "test text string".
const DYNAMIC: &str =
    "00020101021238570010A00000072701270006970422011300234579234420208QRIBFTTA53037045405401235802VN62200816test text string6304D9C6";
/// The gateway-shaped example of the VietQR notes.
const GATEWAY: &str = "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI63046BA5";
/// [`GATEWAY`] with the last CRC digit flipped.
const BAD_CRC: &str = "00020101021238560010A0000007270126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI63046BA4";
/// [`GATEWAY`] naming VNPAY's GUID (A000000775) in 38/00, with a CRC that holds (computed
/// outside the project with the notes' algorithm).
const WRONG_GUID: &str = "00020101021238560010A0000007750126000697041501121133666688880208QRIBFTTA530370454061500005802VN62270823HCC241126ABCDEFGH LEPHI63049E45";

#[test]
fn vietnam_qr_pay_reads_the_public_vectors() {
    let Some(d) = vietqr_judge(DYNAMIC) else { return };
    assert_eq!(d["valid"], json!(true), "{d}");
    assert_eq!(d["crc_ok"], json!(true), "{d}");
    assert_eq!(d["bank_bin"], "970422", "{d}");
    assert_eq!(d["account"], "0023457923442", "{d}");
    assert_eq!(d["amount"], "40123", "{d}");
    assert_eq!(d["purpose"], "test text string", "{d}");
    assert_eq!(d["init_method"], "12", "{d}");

    let Some(g) = vietqr_judge(GATEWAY) else { return };
    assert_eq!(g["valid"], json!(true), "{g}");
    assert_eq!(g["crc_ok"], json!(true), "{g}");
    assert_eq!(g["provider"], "VIETQR", "{g}");
    assert_eq!(g["guid"], "A000000727", "{g}");
    assert_eq!(g["service"], "QRIBFTTA", "{g}");
    assert_eq!(g["bank_bin"], "970415", "{g}");
    assert_eq!(g["account"], "113366668888", "{g}");
    assert_eq!(g["amount"], "150000", "{g}");
    assert_eq!(g["currency"], "704", "{g}");
    assert_eq!(g["nation"], "VN", "{g}");
    assert_eq!(g["purpose"], "HCC241126ABCDEFGH LEPHI", "{g}");
}

#[test]
fn vietnam_qr_pay_refuses_a_bad_crc() {
    // The judge can say no: otherwise its "valid" above proves nothing.
    let Some(b) = vietqr_judge(BAD_CRC) else { return };
    assert_eq!(b["valid"], json!(false), "{b}");
    assert_eq!(b["crc_ok"], json!(false), "{b}");
    assert_eq!(b["bank_bin"], Value::Null, "{b}");
}

#[test]
fn zbarimg_reads_the_fixture_back_exactly() {
    // Drawn by qrencode, not by the gateway (tests/fixtures/vietqr/README.md).
    let png = std::fs::read(workspace_dir().join("tests/fixtures/vietqr/gateway-example.png")).unwrap();
    let Some(text) = zbar_decode(&png) else { return };
    assert_eq!(text, GATEWAY);
}

async fn scan(bank: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{bank}/_mock/bank/vietqr"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The one `Ustrd` of a document the mock bank built.
fn ustrd(answer: &Value) -> String {
    let doc = answer["document"].as_str().unwrap();
    let start = doc.find("<Ustrd>").unwrap_or_else(|| panic!("no Ustrd in {doc}")) + "<Ustrd>".len();
    let end = doc[start..].find("</Ustrd>").unwrap() + start;
    assert!(!doc[end..].contains("<Ustrd>"), "one Ustrd line: {doc}");
    doc[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_bank_checks_a_vietqr_code_and_books_it() {
    let mocks = payment_mocks("vietqr-mock");
    let bank = mocks.bank.url();

    // Refused as a payer's app would, each naming what is wrong.
    let (status, e) = scan(&bank, json!({"payload": BAD_CRC})).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("CRC"), "{e}");
    let (status, e) = scan(&bank, json!({"payload": WRONG_GUID})).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("GUID"), "{e}");
    let (status, e) = scan(&bank, json!({"payload": &GATEWAY[..GATEWAY.len() - 6]})).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = scan(&bank, json!({"payload": GATEWAY.replace("6BA5", "6ba5")})).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("upper-case"), "{e}");
    let (status, e) = scan(&bank, json!({"payload": GATEWAY, "bin": "970436"})).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("970415"), "{e}");

    // A good code: the credit to the code's account, for its amount, with its note. No `url`:
    // the document is only built.
    let (status, a) = scan(&bank, json!({"payload": GATEWAY, "bin": "970415", "bank_ref": "FTQR0001"})).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        a["decoded"],
        json!({"bin": "970415", "account": "113366668888", "amount": 150000,
               "purpose": "HCC241126ABCDEFGH LEPHI", "bill": null})
    );
    assert_eq!(a["bank_ref"], "FTQR0001");
    assert_eq!(a["replies"], json!([]));
    let doc = a["document"].as_str().unwrap();
    assert!(doc.contains("<Othr><Id>113366668888</Id></Othr>"), "{doc}");
    assert!(doc.contains("<Amt Ccy=\"VND\">150000</Amt><CdtDbtInd>CRDT</CdtDbtInd>"), "{doc}");
    assert!(doc.contains("<Sts><Cd>BOOK</Cd></Sts>"), "{doc}");
    assert!(doc.contains("<Signature") || doc.contains("<ds:Signature"), "signed: {doc}");
    assert_eq!(ustrd(&a), "HCC241126ABCDEFGH LEPHI");
    assert_eq!(a["ustrd"], "HCC241126ABCDEFGH LEPHI");

    // Wrapped as a bank writes its statement lines: <prefix>.<trace>.<note>.
    let (status, a) = scan(&bank, json!({"payload": GATEWAY, "note_prefix": "MBVCB"})).await;
    assert_eq!(status, 200, "{a}");
    let line = ustrd(&a);
    let parts: Vec<&str> = line.splitn(3, '.').collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert_eq!(parts[0], "MBVCB", "{line}");
    assert!(!parts[1].is_empty() && parts[1].bytes().all(|b| b.is_ascii_digit()), "{line}");
    assert_eq!(parts[2], "HCC241126ABCDEFGH LEPHI", "{line}");

    // The citizen edits the note and pays another amount.
    let (status, a) = scan(
        &bank,
        json!({"payload": GATEWAY, "edit_note": "NGUYEN THI LAN chuyen tien", "amount_vnd": 100000, "version": "02", "bank_ref": "FTQR0002"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(ustrd(&a), "NGUYEN THI LAN chuyen tien");
    let doc = a["document"].as_str().unwrap();
    assert!(doc.contains("camt.054.001.02"), "{doc}");
    assert!(doc.contains("<Amt Ccy=\"VND\">100000</Amt>"), "{doc}");
    assert!(!doc.contains("150000"), "{doc}");
    assert!(!doc.contains("HCC241126ABCDEFGH"), "{doc}");

    // The public dynamic vector books too (another bank, when no `bin` is given).
    let (status, a) = scan(&bank, json!({"payload": DYNAMIC})).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(ustrd(&a), "test text string");
    assert!(a["document"].as_str().unwrap().contains("<Amt Ccy=\"VND\">40123</Amt>"));
}
