//! The demo's dossier handed down: the mock portal pushes one dossier (its form and a scanned
//! attachment) to the gateway, as the portal does for procedures filed on it; the centre gets
//! it as a `dossier.received` webhook with links to its files, fetches them, and sends its
//! status back up, which reaches the portal as `DongBoTrangThaiHoSo` (`type: "2"`).

use std::time::{Duration, Instant};

use hcc_mocks::centre::CentreState;
use hcc_mocks::dvcqg::PortalState;
use hcc_mocks::dvcqg_push::{Attachment, Form, Generate, PushRequest};

/// The code of the dossier the portal hands down, and the key the demo's portal pushes with.
pub const CODE: &str = "000.00.22.H46-241125-PUSH";
pub const PUSH_KEY: &str = "demo-portal-push-key-0123456789";

/// What became of it.
pub struct HandedDown {
    /// The portal's answer: `error_code` 0 created.
    pub error_code: i64,
    /// The files the centre fetched from the gateway, byte-identical to what was pushed.
    pub files_identical: usize,
    /// The status the portal recorded for it.
    pub status_back: Option<String>,
}

/// A tiny PDF and PNG: what the gateway checks is their first bytes.
fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend_from_slice(&[0u8; 64]);
    v
}

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Pushes the dossier, follows it to the centre, and sends a status back up; bounded by `limit`.
pub async fn hand_down(base: &str, portal: &PortalState, centre: &CentreState, limit: Duration) -> Result<HandedDown, String> {
    let started = Instant::now();
    let (form, scan) = (pdf(), png());
    let request = PushRequest {
        target: format!("{base}/v1/inbound/dvcqg/dossiers"),
        key_header: Some("X-DVCQG-Key".into()),
        key: Some(PUSH_KEY.into()),
        generate: Some(Generate {
            ma_ho_so: CODE.into(),
            ma_tthc: "1.001234".into(),
            form: Some(Form::Inline {
                name: "Đơn đề nghị.pdf".into(),
                base64: b64(&form),
            }),
            attachments: vec![Attachment {
                name: "Giấy tờ.png".into(),
                base64: b64(&scan),
            }],
            extra: None,
        }),
        ..PushRequest::default()
    };
    let sent = portal.push.push(&request, "").await?;
    let error_code = sent
        .first()
        .and_then(|s| s.answer.as_ref())
        .and_then(|a| a["error_code"].as_i64())
        .unwrap_or(-1);
    let client = reqwest::Client::new();
    let mut handed = HandedDown {
        error_code,
        files_identical: 0,
        status_back: None,
    };
    // The centre's webhook, then its files.
    let files = loop {
        let got = centre
            .received()
            .into_iter()
            .find(|r| r.body["type"] == "dossier.received" && r.body["data"]["MaHoSo"] == CODE);
        if let Some(r) = got {
            break r.body["data"]["files"].as_array().cloned().unwrap_or_default();
        }
        if started.elapsed() > limit {
            return Ok(handed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (f, want) in files.iter().zip([&form, &scan]) {
        let url = format!("{base}{}", f["url"].as_str().unwrap_or(""));
        let bytes = client
            .get(url)
            .bearer_auth("dev-centre-key")
            .send()
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await;
        if bytes.is_ok_and(|b| b[..] == want[..]) {
            handed.files_identical += 1;
        }
    }
    // The centre has received it: its status goes back up.
    let status = serde_json::json!({"TrangThai": "2", "NoiDung": "Đã tiếp nhận hồ sơ", "NgayXuLy": "20241125100000"});
    client
        .post(format!("{base}/v1/inbound/dossiers/{CODE}/status"))
        .bearer_auth("dev-centre-key")
        .json(&status)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    while started.elapsed() < limit {
        if let Some(s) = portal.push.inbound_statuses().into_iter().find(|s| s.ma_ho_so == CODE) {
            handed.status_back = Some(s.trang_thai);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(handed)
}
