//! Dossiers pushed down by the portal (`POST /v1/inbound/dvcqg/dossiers`): taken once, handed to
//! the mock centre with their files byte-identical, refused at the door without the address
//! and the key (before the body is read), refused whole for a file too large or of the wrong
//! kind, and kept while the centre is down. The centre's status goes back up to the mock portal
//! in order.

use std::time::Duration;

use base64::Engine as _;
use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::centre::CentreState;
use hcc_mocks::faults::Faults;
use hcc_tests::{CENTRE_SECRET, Key, TestApp, eventually, portal, settings, spawn_app};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PUSH_KEY: &str = "portal-push-key-0123456789abcdef";
pub const PUSH: &str = "/v1/inbound/dvcqg/dossiers";

/// A PDF and a PNG as a scanner makes them (the first bytes are what counts).
pub fn pdf(n: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend((0..n).map(|i| (i * 7 % 251) as u8));
    v
}

pub fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend((0..300).map(|i| (i * 13 % 256) as u8));
    v
}

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A push as the portal's public clients show it.
pub fn pushed(ma: &str, form: &[u8], attachments: &[(&str, Vec<u8>)]) -> Value {
    json!({
        "MaHoSo": ma,
        "MaTTHC": "1.001234",
        "MaSoThue": "0101234567",
        "TenThuongNhan": "Công ty TNHH Ánh Dương",
        "DiaChiDoanhNghiep": {"MaTinh": "22", "MaHuyen": "193", "MaXa": "06652", "DiaChiChiTiet": "Số 1, Hạ Long"},
        "TenTepDonDangKy": "Đơn đăng ký.pdf",
        "TepDonDangKy": b64(form),
        "TaiLieuNop": attachments.iter().map(|(n, b)| json!({"TenTepDinhKem": n, "Base64": b64(b)})).collect::<Vec<_>>(),
    })
}

pub struct Env {
    pub app: TestApp,
    /// Kept for the test's length: the mock centre serves while it lives.
    pub _centre: hcc_mocks::Running,
    pub centre_state: CentreState,
    pub files_dir: std::path::PathBuf,
}

pub fn centre() -> (hcc_mocks::Running, CentreState) {
    let secret = hcc_signing::webhook::WebhookSecret::parse(CENTRE_SECRET).unwrap_or_else(|e| panic!("{e}"));
    hcc_mocks::centre::spawn("127.0.0.1:0", secret).unwrap_or_else(|e| panic!("mock centre: {e}"))
}

pub fn temp_dir(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hcc-{what}-{}", uuid::Uuid::new_v4().simple()))
}

/// A gateway taking pushes from `allowed` with [`PUSH_KEY`], files at most 64 KiB, a mock
/// centre, and the extra overrides.
pub async fn env(allowed: &str, extra: &[(&str, String)]) -> Env {
    let (centre, centre_state) = centre();
    let files_dir = temp_dir("inbound-files");
    let mut o = vec![
        ("HCC__INBOUND__ALLOWED_IPS", allowed.to_string()),
        ("HCC__INBOUND__DVCQG_KEY", PUSH_KEY.to_string()),
        ("HCC__INBOUND__MAX_FILE_BYTES", "65536".to_string()),
        ("HCC__INBOUND__FILES_DIR", files_dir.to_string_lossy().into_owned()),
        ("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", centre.url())),
    ];
    o.extend(extra.iter().cloned());
    let app = spawn_app(settings(QueueBackendKind::Redis, &o), Workers::On).await;
    Env {
        app,
        _centre: centre,
        centre_state,
        files_dir,
    }
}

pub async fn push(app: &TestApp, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = app.client.post(app.url(PUSH)).json(body);
    if let Some(k) = key {
        req = req.header("X-DVCQG-Key", k);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("push: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `dossier.received` webhooks the centre got for `ma`, by webhook id.
pub fn received_for(state: &CentreState, ma: &str) -> Vec<hcc_mocks::centre::Received> {
    let mut seen = std::collections::BTreeMap::new();
    for r in state.received() {
        if r.body["type"] == "dossier.received" && r.body["data"]["MaHoSo"] == ma {
            seen.entry(r.webhook_id.clone()).or_insert(r);
        }
    }
    seen.into_values().collect()
}

async fn inbound_total(app: &TestApp) -> u64 {
    app.get_json("/v1/inbound/dossiers", Key::Operator).await["total"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_dossier_reaches_the_centre_once_with_its_files_byte_identical() {
    let e = env("127.0.0.1", &[]).await;
    let (form, scan) = (pdf(40_000), png());
    let body = pushed("H46-IN-0001", &form, &[("CCCD mặt trước.png", scan.clone())]);
    let (status, answer) = push(&e.app, Some(PUSH_KEY), &body).await;
    assert_eq!((status, answer["error_code"].clone()), (200, json!(0)), "{answer}");
    assert!(answer["message"].as_str().unwrap_or("").starts_with("H46-IN-0001|"), "{answer}");
    // The portal pushes again (its answer was lost, say): a duplicate, nothing sent twice.
    let (status, again) = push(&e.app, Some(PUSH_KEY), &body).await;
    assert_eq!((status, again["error_code"].clone()), (200, json!(1)), "{again}");

    let got = eventually("the centre has the dossier", Duration::from_secs(10), || async {
        let r = received_for(&e.centre_state, "H46-IN-0001");
        (!r.is_empty()).then_some(r)
    })
    .await;
    let data = got[0].body["data"].clone();
    assert_eq!(data["source"], "dvcqg");
    assert_eq!(data["MaTTHC"], "1.001234");
    assert_eq!(
        data["dossier"]["TenThuongNhan"], "Công ty TNHH Ánh Dương",
        "the dossier's own fields, as sent"
    );
    assert!(data["dossier"].get("TepDonDangKy").is_none(), "no file content in the webhook");
    let files = data["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), 2, "{data}");
    for (f, want) in files.iter().zip([&form, &scan]) {
        let url = f["url"].as_str().unwrap_or("");
        let r = e.app.get(url, Key::Centre).send().await.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(r.status().as_u16(), 200, "{url}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let bytes = r.bytes().await.unwrap_or_default();
        assert_eq!(&bytes[..], &want[..], "byte-identical: {}", f["name"]);
        assert_eq!(f["sha256"], hcc_signing::sha256_hex(want));
        // Citizens' files are the centre's: an operator key is refused.
        assert_eq!(
            e.app.get(url, Key::Operator).send().await.map(|r| r.status().as_u16()).unwrap_or(0),
            403
        );
    }
    assert_eq!(files[0]["content_type"], "application/pdf");
    assert_eq!(files[1]["content_type"], "image/png");
    // A while later, still one webhook for the dossier, and the operators see it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received_for(&e.centre_state, "H46-IN-0001").len(), 1);
    assert_eq!(e.centre_state.counters().duplicates, 0);
    let view = e.app.get_json("/v1/dossiers/H46-IN-0001", Key::Operator).await;
    assert_eq!(view["inbound"]["source"], "dvcqg", "{view}");
    assert_eq!(view["messages"][0]["kind"], "dossier.received");
    assert_eq!(view["messages"][0]["status"], "delivered");
    let list = e.app.get_json("/v1/inbound/dossiers?source=dvcqg", Key::Operator).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(inbound_total(&e.app).await, 1);
    let _ = std::fs::remove_dir_all(&e.files_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_without_the_address_the_key_or_with_a_bad_file_are_refused_and_nothing_is_stored() {
    // Not from an allowed address: 403, whatever the key.
    let far = env("10.0.0.0/8", &[]).await;
    let body = pushed("H46-IN-0100", &pdf(100), &[]);
    let (status, answer) = push(&far.app, Some(PUSH_KEY), &body).await;
    assert_eq!((status, answer["error_code"].clone()), (403, json!(-1)), "{answer}");
    assert_eq!(inbound_total(&far.app).await, 0);

    let e = env("127.0.0.1/32", &[]).await;
    // Without the key, or with another: 401.
    for key in [None, Some("portal-push-key-0123456789abcdeX"), Some("")] {
        let (status, answer) = push(&e.app, key, &body).await;
        assert_eq!((status, answer["error_code"].clone()), (401, json!(-1)), "{key:?}: {answer}");
    }
    // A file over inbound.max_file_bytes (64 KiB), a file that is no document, a file behind a
    // URL on another host: 422, and the whole dossier is refused (its good file is not kept).
    let too_big = pushed("H46-IN-0101", &pdf(70_000), &[]);
    let exe = pushed(
        "H46-IN-0102",
        &pdf(100),
        &[("setup.pdf", b"MZ\x90\0\x03\0\0\0this program".to_vec())],
    );
    let html = pushed("H46-IN-0103", b"<html><script>alert(1)</script>", &[]);
    let mut foreign = pushed("H46-IN-0104", &pdf(100), &[]);
    foreign
        .as_object_mut()
        .map(|o| {
            o.remove("TepDonDangKy");
            o.insert("URLTepDangKy".into(), json!("http://203.0.113.9/files/don.pdf"))
        })
        .unwrap_or_default();
    for (what, b) in [
        ("too big", &too_big),
        ("executable", &exe),
        ("html", &html),
        ("foreign url", &foreign),
    ] {
        let (status, answer) = push(&e.app, Some(PUSH_KEY), b).await;
        assert_eq!((status, answer["error_code"].clone()), (422, json!(-1)), "{what}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or("")
                .starts_with(b["MaHoSo"].as_str().unwrap_or("?")),
            "{what}: {answer}"
        );
    }
    // Not JSON, and JSON without a code.
    let r = e
        .app
        .client
        .post(e.app.url(PUSH))
        .header("X-DVCQG-Key", PUSH_KEY)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 400);
    let (status, _) = push(&e.app, Some(PUSH_KEY), &json!({"MaTTHC": "1.001234"})).await;
    assert_eq!(status, 422);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbound_total(&e.app).await, 0, "nothing recorded");
    assert_eq!(files_in(&e.files_dir), 0, "no file kept");
    assert!(e.centre_state.received().is_empty(), "nothing sent to the centre");

    // The key is checked before the body is read: a wrong key with a body declared at 100 MB
    // that never comes is answered at once.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", e.app.port))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let head = format!(
        "POST {PUSH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-DVCQG-Key: wrong\r\nContent-Length: 100000000\r\n\r\n{{"
    );
    tcp.write_all(head.as_bytes()).await.unwrap_or_else(|err| panic!("{err}"));
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer: the body was waited for"))
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let _ = std::fs::remove_dir_all(&e.files_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_pushed_while_the_centre_is_down_reaches_it_when_it_is_back() {
    let e = env("127.0.0.1", &[]).await;
    e.centre_state.set_faults(Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Faults::default()
    });
    let (status, answer) = push(&e.app, Some(PUSH_KEY), &pushed("H46-IN-0200", &pdf(1000), &[])).await;
    assert_eq!((status, answer["error_code"].clone()), (200, json!(0)), "{answer}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(e.centre_state.counters().failed_by_fault > 0, "the centre was asked and failed");
    assert!(received_for(&e.centre_state, "H46-IN-0200").iter().all(|r| r.body.is_null()));
    e.centre_state.set_faults(Faults::default());
    eventually("the centre has it after its outage", Duration::from_secs(15), || async {
        (!received_for(&e.centre_state, "H46-IN-0200").is_empty()).then_some(())
    })
    .await;
    assert_eq!(received_for(&e.centre_state, "H46-IN-0200").len(), 1);
    let _ = std::fs::remove_dir_all(&e.files_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_of_a_pushed_dossier_goes_back_to_the_portal_in_order() {
    let (portal_mock, portal_state) = portal();
    let e = env("127.0.0.1", &[("HCC__DVCQG__BASE_URL", portal_mock.url())]).await;
    let (status, _) = push(&e.app, Some(PUSH_KEY), &pushed("H46-IN-0300", &pdf(500), &[])).await;
    assert_eq!(status, 200);
    let path = "/v1/inbound/dossiers/H46-IN-0300/status";
    for (n, code) in [2, 4, 9, 10].into_iter().enumerate() {
        let body = json!({"TrangThai": code.to_string(), "NoiDung": format!("Bước {n}"), "NgayXuLy": format!("2026120709{n:02}00"), "MaHoSoDonVi": "000.00.22.H46-261207-0001"});
        let r = e.app.post_json(path, Key::Centre, &body).await;
        assert_eq!(r.status().as_u16(), 202);
    }
    // Refusals: an unknown dossier, a bad status, another role.
    let ok = json!({"TrangThai": 2, "NoiDung": "x", "NgayXuLy": "20261207090000"});
    assert_eq!(
        e.app
            .post_json("/v1/inbound/dossiers/H46-NEVER/status", Key::Centre, &ok)
            .await
            .status()
            .as_u16(),
        404
    );
    let bad = json!({"TrangThai": 11, "NoiDung": "", "NgayXuLy": "20261332000000"});
    assert_eq!(e.app.post_json(path, Key::Centre, &bad).await.status().as_u16(), 422);
    assert_eq!(e.app.post_json(path, Key::Operator, &ok).await.status().as_u16(), 403);
    let seen = eventually("the portal has the four statuses", Duration::from_secs(15), || async {
        let s = portal_state.push.inbound_statuses();
        (s.len() >= 4).then_some(s)
    })
    .await;
    let codes: Vec<String> = seen.iter().map(|s| s.trang_thai.clone()).collect();
    assert_eq!(codes, vec!["2", "4", "9", "10"], "in the order the centre sent them");
    assert!(seen.iter().all(|s| s.ma_ho_so == "H46-IN-0300"));
    let _ = std::fs::remove_dir_all(&e.files_dir);
}
