//! Unit tests of the portal's push: the body, the answer, which URLs may be fetched, and the
//! file service against a scripted portal.

use std::time::Duration;

use hcc_config::Secret;

use super::*;
use crate::testing::{self, Reply};

fn fields_of(r: &Result<InboundDossier, PushRefusal>) -> Vec<String> {
    match r {
        Err(PushRefusal::Invalid { errors, .. }) => errors.iter().map(|e| e.field.clone()).collect(),
        other => panic!("invalid fields expected, got {other:?}"),
    }
}

fn inline(f: &InboundFile) -> &[u8] {
    match &f.content {
        FileContent::Inline(b) => b,
        FileContent::Url(u) => panic!("inline expected, got {u}"),
    }
}

#[test]
fn a_push_becomes_a_dossier_with_its_files_apart_from_its_fields() {
    let body = json!({
        "MaHoSoQG": "G22.99-261207-0001",
        "MaTTHC": " 1.001234 ",
        "MaSoThue": "0101234567",
        "TenThuongNhan": "Công ty A",
        "DiaChiDoanhNghiep": {"MaTinh": "22"},
        "TenTepDonDangKy": "../../etc/don\u{0}.pdf",
        "TepDonDangKy": "JVBE\nRi0x",
        "TaiLieuNop": [{"TenTepDinhKem": "a.pdf", "Base64": "JVBERi0xLjc="}, {"TenTepDinhKem": "b.png", "Base64": "iVBORw0KGgo"}],
        "Khac": 1
    });
    let d = parse_push(body.to_string().as_bytes()).expect("parses");
    assert_eq!(d.code.as_str(), "G22.99-261207-0001");
    assert_eq!(d.procedure.as_deref(), Some("1.001234"));
    assert_eq!(d.files.len(), 3);
    assert_eq!(
        (d.files[0].name.as_str(), d.files[0].label.as_deref()),
        ("don.pdf", Some("TepDonDangKy"))
    );
    assert_eq!(inline(&d.files[0]), b"%PDF-1");
    assert_eq!(inline(&d.files[1]), b"%PDF-1.7");
    assert_eq!(inline(&d.files[2]), b"\x89PNG\r\n\x1a\n");
    assert_eq!(d.files[2].label.as_deref(), Some("TaiLieuNop"));
    // The fields are the body without the bytes, names kept.
    assert!(!d.fields.contains_key("TepDonDangKy"));
    assert_eq!(
        d.fields["TaiLieuNop"],
        json!([{"TenTepDinhKem": "a.pdf"}, {"TenTepDinhKem": "b.png"}])
    );
    assert_eq!(d.fields["Khac"], 1);
    assert_eq!(d.fields["TenTepDonDangKy"], "../../etc/don\u{0}.pdf");
    assert!(d.link.is_empty());
}

#[test]
fn ma_ho_so_wins_and_a_form_may_come_as_a_url() {
    let body = json!({"MaHoSo": "A-1", "MaHoSoQG": "B-2", "MaTTHC": "1.1", "URLTepDangKy": "https://dvc.example/files/x/don%20dk.pdf"});
    let d = parse_push(body.to_string().as_bytes()).expect("parses");
    assert_eq!(d.code.as_str(), "A-1");
    assert_eq!(d.files.len(), 1);
    assert_eq!(d.files[0].name, "don%20dk.pdf");
    assert!(matches!(&d.files[0].content, FileContent::Url(u) if u == "https://dvc.example/files/x/don%20dk.pdf"));
    // Empty strings are absent: the code falls to MaHoSoQG, and no form at all.
    let body = json!({"MaHoSo": "", "MaHoSoQG": "B-2", "MaTTHC": "1.1", "TepDonDangKy": "", "URLTepDangKy": ""});
    let d = parse_push(body.to_string().as_bytes()).expect("parses");
    assert_eq!((d.code.as_str(), d.files.len()), ("B-2", 0));
}

#[test]
fn every_bad_field_is_named_and_the_code_given_when_read() {
    let body = json!({
        "MaHoSo": "A-1",
        "MaTTHC": "x".repeat(51),
        "TepDonDangKy": "not base64!",
        "TaiLieuNop": [{"TenTepDinhKem": "a.pdf", "Base64": "%%%"}, {"Base64": "JVBE"}, 3]
    });
    let r = parse_push(body.to_string().as_bytes());
    assert_eq!(
        fields_of(&r),
        [
            "/MaTTHC",
            "/TepDonDangKy",
            "/TaiLieuNop/0/Base64",
            "/TaiLieuNop/1/TenTepDinhKem",
            "/TaiLieuNop/2"
        ]
    );
    assert!(matches!(r, Err(PushRefusal::Invalid { code: Some(c), .. }) if c == "A-1"));
    let r = parse_push(
        json!({"MaHoSo": "a/b", "URLTepDangKy": "file:///etc/passwd"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(fields_of(&r), ["/MaHoSo", "/MaTTHC", "/URLTepDangKy"]);
    assert!(matches!(r, Err(PushRefusal::Invalid { code: None, .. })));
    let r = parse_push(json!({"MaTTHC": "1"}).to_string().as_bytes());
    assert_eq!(fields_of(&r), ["/MaHoSo"]);
    let r = parse_push(json!({"MaHoSoQG": 7, "MaTTHC": "1"}).to_string().as_bytes());
    assert_eq!(fields_of(&r), ["/MaHoSoQG"]);
    // Too many files are refused before any is decoded.
    let many: Vec<Value> = (0..MAX_FILES)
        .map(|i| json!({"TenTepDinhKem": format!("{i}.pdf"), "Base64": "%"}))
        .collect();
    let r = parse_push(
        json!({"MaHoSo": "A-1", "MaTTHC": "1", "TepDonDangKy": "JVBE", "TaiLieuNop": many})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(fields_of(&r), ["/TaiLieuNop"]);
    assert!(matches!(parse_push(b"[1]"), Err(PushRefusal::Malformed(_))));
    assert!(matches!(parse_push(b"{\"MaHoSo\": "), Err(PushRefusal::Malformed(m)) if m.contains("line 1")));
}

#[test]
fn the_answer_is_the_portals() {
    assert_eq!(
        push_reply(Some("A-1"), &PushOutcome::Created),
        json!({"error_code": 0, "message": "A-1|Tiếp nhận hồ sơ thành công"})
    );
    assert_eq!(push_reply(Some("A-1"), &PushOutcome::Duplicate)["error_code"], 1);
    assert_eq!(
        push_reply(
            None,
            &PushOutcome::Error {
                reason: "Tệp không hợp lệ".into()
            }
        ),
        json!({"error_code": -1, "message": "|Tệp không hợp lệ"})
    );
}

fn section(toml: &str) -> hcc_config::Section {
    hcc_config::Section::from_toml(DESTINATION, toml).expect("toml")
}

fn source(toml: &str) -> Arc<dyn InboundSource> {
    let s = section(toml);
    build(&BuildContext::bare(DESTINATION, Some(&s)))
        .expect("builds")
        .expect("always built")
}

#[test]
fn only_urls_on_the_portals_host_may_be_fetched() {
    let s = source("base_url = \"https://dvcqg.example:8443/api\"\n");
    assert!(s.may_fetch("https://dvcqg.example:8443/files/a.pdf"));
    assert!(s.may_fetch("https://DVCQG.example:8443/x?y=1"));
    for other in [
        "http://dvcqg.example:8443/files/a.pdf",
        "https://dvcqg.example/files/a.pdf",
        "https://dvcqg.example.evil:8443/a",
        "https://user:pw@dvcqg.example:8443/a",
        "https://169.254.169.254/latest",
        "file:///etc/passwd",
        "not a url",
    ] {
        assert!(!s.may_fetch(other), "{other}");
    }
    let default_port = source("base_url = \"https://dvcqg.example\"\n");
    assert!(default_port.may_fetch("https://dvcqg.example:443/a"));
    // Without the portal, pushes are read but no URL is fetched.
    let off = build(&BuildContext::bare(DESTINATION, None))
        .expect("builds")
        .expect("always built");
    assert!(!off.may_fetch("https://dvcqg.example/a"));
    assert!(
        off.parse_push(json!({"MaHoSo": "A-1", "MaTTHC": "1"}).to_string().as_bytes())
            .is_ok()
    );
}

#[test]
fn the_file_services_base64_is_bounded_before_it_is_decoded() {
    assert_eq!(decode_file("JVBERi0xLjc=", 8).expect("fits"), b"%PDF-1.7");
    assert!(!decode_file("JVBERi0xLjc=", 7).expect_err("too large").alarm);
    assert!(!decode_file(&"A".repeat(4000), 100).expect_err("refused unread").alarm);
    assert!(decode_file("***", 100).expect_err("bad").alarm);
}

fn portal_source(url: &str) -> PortalPush {
    let adapter = DvcqgAdapter::new(super::super::DvcqgConfig {
        base_url: url.into(),
        auth_path: "/auth".into(),
        integration_path: "/integration".into(),
        share_path: "/share".into(),
        share_url: String::new(),
        inbound_status: super::super::status::IDENTITY,
        username: "u".into(),
        password: Secret::new("p"),
        madonvi: "000.00.22.H46".into(),
        dstcode: String::new(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let origins = vec![Origin::of(url).unwrap()];
    PortalPush {
        portal: Some(Portal { adapter, origins }),
    }
}

#[tokio::test]
async fn a_file_comes_through_getfile_on_the_share_endpoint_in_the_session() {
    let (url, seen) = testing::serve(Arc::new(|r: &testing::Request, _| match r.path.as_str() {
        "/auth" => testing::json(200, json!({"error_code": 0, "session": "S-1"})),
        "/share" if r.json()["DuongDan"].as_str().is_some_and(|u| u.ends_with("/big.pdf")) => {
            testing::json(200, json!({"error_code": "00", "result": "JVBERi0xLjcK".repeat(100)}))
        }
        "/share" if r.json()["DuongDan"].as_str().is_some_and(|u| u.ends_with("/gone.pdf")) => {
            testing::json(200, json!({"error_code": 2, "message": "Không tìm thấy tệp"}))
        }
        "/share" => testing::json(200, json!({"error_code": 0, "data": "JVBE\r\nRi0x"})),
        _ => Reply::Drop,
    }))
    .await;
    let s = portal_source(&url);
    let file = format!("{url}/files/don.pdf");
    assert_eq!(s.fetch_file(&file, 1000).await.expect("fetched"), b"%PDF-1");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].json(),
        json!({"session": "S-1", "madonvi": "000.00.22.H46", "service": "getfile", "DuongDan": file})
    );
    let big = s.fetch_file(&format!("{url}/big.pdf"), 100).await.expect_err("too large");
    assert!(big.reason.contains("larger than 100"), "{}", big.reason);
    assert!(s.fetch_file(&format!("{url}/gone.pdf"), 100).await.is_err());
    let elsewhere = s.fetch_file("http://127.0.0.1:1/x.pdf", 100).await.expect_err("not the portal");
    assert!(elsewhere.alarm);
    assert_eq!(seen.lock().unwrap().len(), 4, "no request for a URL off the portal");
}
