//! Unit tests of the portal destination: its section, the answers it reads, and deliveries
//! against a scripted portal.

use serde_json::json;

use super::answer::folded;
use super::*;

fn built(toml: &str) -> Result<bool, Vec<String>> {
    let section = hcc_config::Section::from_toml(DESTINATION, toml).expect("toml");
    build(&BuildContext::bare(DESTINATION, Some(&section)))
        .map(|a| a.is_some())
        .map_err(|p| p.into_iter().map(|p| p.key).collect())
}

#[test]
fn the_section_is_checked_by_key_and_an_empty_base_url_leaves_the_portal_off() {
    assert_eq!(built("base_url = \"\"\n"), Ok(false));
    assert_eq!(built("base_url = \"http://portal.example\"\npassword = \"pw\"\n"), Ok(true));
    assert_eq!(
        built("base_url = \"portal.example\"\ndstcode = \"a b\"\n"),
        Err(vec!["dvcqg.base_url".to_string(), "dvcqg.dstcode".to_string()])
    );
    assert!(
        built("base_url = \"http://portal.example\"\nbase_uri = \"x\"\n").is_err(),
        "unknown key"
    );
    // The share endpoint may live elsewhere (contract v3 `dvcqg.share_url`).
    assert_eq!(
        built("base_url = \"http://portal.example\"\nshare_url = \"portal.example/share\"\n"),
        Err(vec!["dvcqg.share_url".to_string()])
    );
    assert_eq!(
        built("base_url = \"http://portal.example\"\nshare_url = \"http://share.example/api/share\"\n"),
        Ok(true)
    );
    // A password is a secret from the section on: it never prints.
    let s: DvcqgSettings = hcc_config::Section::from_toml(DESTINATION, "password = \"hunter2\"\n")
        .expect("toml")
        .parse()
        .expect("parses");
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn success_codes_are_read_liberally() {
    assert!(success_code(&json!({"error_code": 0})));
    assert!(success_code(&json!({"error_code": "00"})));
    assert!(success_code(&json!({"error_code": "0"})));
    assert!(!success_code(&json!({"error_code": 1})));
    assert!(!success_code(&json!({"error_code": "-1"})));
    assert!(!success_code(&json!({})));
}

/// Real refusals, which must be dead-lettered, and stale-session answers, which must renew
/// the session: with and without diacritics, composed (NFC) and decomposed (NFD).
#[test]
fn stale_sessions_are_told_from_refusals_by_code_and_whole_phrase() {
    use unicode_normalization::UnicodeNormalization;
    let refusals = [
        ("2", "Phiên bản dữ liệu không hợp lệ"),
        ("2", "Phien ban du lieu khong hop le"),
        ("2", "Ngày hẹn trả đã hết hạn"),
        ("2", "Ngay hen tra da het han"),
        ("5", "Hồ sơ đã hết hạn xử lý"),
        ("2", "Phiên bản thủ tục đã hết hạn sử dụng"),
        ("2", "Mã thủ tục hành chính không tồn tại"),
        ("4", "Phiên họp thẩm định chưa được tạo"),
        ("2", "Token hồ sơ trùng lặp"),
        ("2", "Sessionexpired"),
        ("2", "Tokens không hợp lệ"),
        ("99", "Dữ liệu không hợp lệ: session_id thiếu"),
        ("3", "Mã đơn vị không hợp lệ"),
    ];
    let stale = [
        ("401", ""),
        ("-1", ""),
        ("-1", "Session expired"),
        ("99", "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"),
        ("99", "PHIEN LAM VIEC DA HET HAN"),
        ("5", "Phiên làm việc hết hạn"),
        ("5", "phien lam viec het han!"),
        ("5", "Session expired"),
        ("5", "Your session expired. Please log in"),
        ("5", "Token không hợp lệ"),
        ("5", "token khong hop le"),
        ("5", "TOKEN KHÔNG HỢP LỆ."),
        ("5", "Invalid token"),
        ("5", "Lỗi: invalid  token"),
        ("5", "ĐĂNG NHẬP LỖI: Phiên làm việc đã hết hạn"),
    ];
    for (code, message) in refusals {
        for form in [message.to_string(), message.nfd().collect(), message.nfc().collect()] {
            assert!(!is_session_expiry(code, &form), "a refusal, not a stale session: {code} {form:?}");
        }
    }
    for (code, message) in stale {
        for form in [message.to_string(), message.nfd().collect(), message.nfc().collect()] {
            assert!(is_session_expiry(code, &form), "a stale session: {code} {form:?}");
        }
    }
    assert_eq!(folded("Đã  TỒN tại!"), " da ton tai ");
    assert_eq!(folded("Ðã tồn tại"), " da ton tai ");
}

#[test]
fn already_exists_needs_the_code_and_the_words() {
    use unicode_normalization::UnicodeNormalization;
    for (code, message) in [
        ("3", "Hồ sơ đã tồn tại"),
        ("-3", "Hồ sơ 000.00.22.H46-241125-0001 đã tồn tại trên hệ thống"),
        ("-3", "Ho so da ton tai"),
        ("3", "HỒ SƠ ĐÃ TỒN TẠI"),
    ] {
        assert!(is_already_exists(code, message), "{code} {message}");
        assert!(
            is_already_exists(code, &message.nfd().collect::<String>()),
            "{code} {message} (NFD)"
        );
    }
    for (code, message) in [
        ("2", "Hồ sơ đã tồn tại"),
        ("3", "Mã đơn vị không hợp lệ"),
        ("-3", "Hồ sơ không tồn tại"),
        ("3", "Hồ sơ tồn tại"),
        ("0", "Đã tồn tại"),
        ("33", "Đã tồn tại"),
    ] {
        assert!(!is_already_exists(code, message), "{code} {message}");
    }
}

#[test]
fn lookups_read_result_or_data_and_never_guess() {
    use Lookup::*;
    let hit = json!([{"MaHoSo": "000.00.22.H46-241125-0001"}]);
    assert_eq!(classify_lookup(&json!({"result": []})), Missing);
    assert_eq!(classify_lookup(&json!({"result": hit})), Found);
    assert_eq!(classify_lookup(&json!({"data": hit})), Found);
    assert_eq!(classify_lookup(&json!({"data": []})), Missing);
    assert_eq!(
        classify_lookup(&json!({"error_code": 0, "message": "Thành công", "result": []})),
        Missing
    );
    assert_eq!(classify_lookup(&json!({"error_code": "00", "result": hit})), Found);
    assert_eq!(classify_lookup(&json!({"error_code": 0, "result": [], "data": hit})), Found);
    // Like OpenCPS, error_code does not hide a hit.
    assert_eq!(classify_lookup(&json!({"error_code": 2, "message": "Lỗi", "result": hit})), Found);
    // A known "not found" refusal is a miss; other refusals are not.
    assert_eq!(
        classify_lookup(&json!({"error_code": 2, "message": "Không tìm thấy hồ sơ"})),
        Missing
    );
    assert_eq!(
        classify_lookup(&json!({"error_code": 2, "message": "Không tìm thấy hồ sơ", "result": []})),
        Missing
    );
    for unclear in [
        json!({"error_code": 0}),
        json!({"error_code": 0, "message": "Thành công"}),
        json!({}),
        json!({"result": null}),
        json!({"result": {}}),
        json!({"result": {"MaHoSo": "X"}}),
        json!({"data": "X"}),
        json!({"error_code": 0, "data": 1}),
        json!({"error_code": 5, "message": "Lỗi hệ thống"}),
        json!({"error_code": 5, "message": "Lỗi hệ thống", "result": []}),
        json!([]),
    ] {
        assert!(matches!(classify_lookup(&unclear), Unclear(_)), "{unclear} must be neither");
    }
    let Unclear(why) = classify_lookup(&json!({"error_code": 0, "result": {"ChuHoSo": "Nguyễn Thị Lan"}})) else {
        panic!("unclear expected");
    };
    assert!(why.contains("result an object") && why.contains("no data"), "{why}");
    assert!(!why.contains("Nguyễn"), "the answer's data is not echoed: {why}");
}

#[test]
fn dstcode_is_checked_once() {
    assert!(dstcode_header("").unwrap().is_none());
    assert_eq!(dstcode_header("000.00.00.H46").unwrap().unwrap(), "000.00.00.H46");
    assert!(dstcode_header("a b").is_err());
    assert!(dstcode_header("x\r\ny").is_err());
    assert!(dstcode_header("mã").is_err());
}

#[test]
fn known_dossiers_are_bounded() {
    let k = KnownDossiers::new();
    for i in 0..(KNOWN_CAPACITY + 10) {
        k.insert(&i.to_string());
    }
    assert!(!k.contains("0"));
    assert!(k.contains(&(KNOWN_CAPACITY + 9).to_string()));
}

/// A scripted portal on loopback: each request is answered by `script(service, n)`, `n`
/// counting that service's calls from 1 (the login is service `"login"`); every request
/// is recorded. One request per connection, so a dropped answer is one lost call.
mod scripted {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub enum Reply {
        Json(u16, serde_json::Value),
        /// The request was read, then the connection closes with no answer.
        Drop,
    }

    pub type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

    pub async fn serve(script: Script) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (script, log) = (script.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, length) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
                    let service = body["service"].as_str().unwrap_or("login").to_string();
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push(service.clone());
                        l.iter().filter(|s| **s == service).count()
                    };
                    match script(&service, n) {
                        Reply::Drop => {}
                        Reply::Json(status, v) => {
                            let text = v.to_string();
                            let answer = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                                text.len()
                            );
                            let _ = sock.write_all(answer.as_bytes()).await;
                        }
                    }
                });
            }
        });
        (url, seen)
    }
}

use std::sync::Arc;

use scripted::Reply;

fn ok(v: Value) -> Reply {
    Reply::Json(200, v)
}

/// A portal that answers every call well, except where `fault` says otherwise.
fn portal_with(fault: impl Fn(&str, usize) -> Option<Reply> + Send + Sync + 'static) -> scripted::Script {
    Arc::new(move |service: &str, n: usize| {
        if let Some(r) = fault(service, n) {
            return r;
        }
        match service {
            "login" => ok(json!({"error_code": 0, "session": "S-1"})),
            "TraCuuHoSo" => ok(json!({"error_code": 0, "result": []})),
            _ => ok(json!({"error_code": 0, "message": "Thành công"})),
        }
    })
}

fn adapter(url: &str, timeout: Duration) -> DvcqgAdapter {
    DvcqgAdapter::new(DvcqgConfig {
        base_url: url.into(),
        auth_path: "/auth".into(),
        integration_path: "/integration".into(),
        share_path: "/share".into(),
        share_url: String::new(),
        inbound_status: super::status::IDENTITY,
        username: "u".into(),
        password: Secret::new("p"),
        madonvi: "000.00.22.H46".into(),
        dstcode: String::new(),
        timeout,
    })
    .unwrap()
}

#[test]
fn the_carried_status_is_the_wire_form_of_the_kinds_own_field() {
    let a = adapter("http://127.0.0.1:9", Duration::from_secs(1));
    let status = |kind: &str, v: Value| {
        let payload = v.to_string();
        a.carried_status(&Delivery {
            id: "1",
            kind,
            ordering_key: "M-1",
            payload: payload.as_bytes(),
            attempt: 1,
        })
    };
    assert_eq!(status(KIND_SYNC, json!({"TrangThaiHoSo": 4, "TrangThai": 9})), Some("4".into()));
    assert_eq!(status(KIND_SYNC, json!({"TrangThaiHoSo": "04"})), Some("4".into()));
    assert_eq!(
        status(KIND_PROGRESS, json!({"TrangThaiHoSo": 4, "TrangThai": "10"})),
        Some("10".into())
    );
    assert_eq!(status(KIND_PROGRESS, json!({"TrangThaiHoSo": 4})), None);
    assert_eq!(status("other", json!({"TrangThaiHoSo": 4})), None);
    assert_eq!(status(KIND_SYNC, json!({"TrangThaiHoSo": "bốn"})), None);
    assert!(a.tells_centre());
}

/// The centre's events about a dossier name it by `MaHoSo`: the adapter words them, the
/// engine only queues them.
#[test]
fn the_centre_hears_of_a_dead_dossier_and_of_its_delivery_after_a_replay() {
    let a = adapter("http://127.0.0.1:9", Duration::from_secs(1));
    let d = Delivery {
        id: "m-1",
        kind: KIND_SYNC,
        ordering_key: "000.00.22.H46-241125-0001",
        payload: b"{}",
        attempt: 3,
    };
    let dead = a.dead_letter_event(&d, "portal refused").expect("an event");
    assert_eq!(dead.kind, "dossier.rejected");
    assert_eq!(
        dead.data,
        json!({"MaHoSo": "000.00.22.H46-241125-0001", "id": "m-1", "reason": "portal refused"})
    );
    let delivered = a.redelivered_event(&d).expect("an event");
    assert_eq!(delivered.kind, "dossier.delivered");
    assert_eq!(delivered.data, json!({"MaHoSo": "000.00.22.H46-241125-0001", "id": "m-1"}));
}

async fn deliver(a: &DvcqgAdapter, kind: &str) -> Outcome {
    let payload = json!({"MaHoSo": "M-1", "TrangThaiHoSo": 1, "TrangThai": 1}).to_string();
    a.deliver(Delivery {
        id: "m-1",
        kind,
        ordering_key: "M-1",
        payload: payload.as_bytes(),
        attempt: 1,
    })
    .await
}

fn count(seen: &std::sync::Mutex<Vec<String>>, service: &str) -> usize {
    seen.lock().unwrap().iter().filter(|s| *s == service).count()
}

#[tokio::test]
async fn a_failing_lookup_is_tried_again_and_the_write_goes_once() {
    let (url, seen) = scripted::serve(portal_with(|service, n| match (service, n) {
        ("TraCuuHoSo", 1) => Some(Reply::Json(503, json!({"message": "busy"}))),
        ("TraCuuHoSo", 2) => Some(Reply::Drop),
        _ => None,
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered);
    assert_eq!(count(&seen, "TraCuuHoSo"), 3);
    assert_eq!(count(&seen, "DongBoHoSoMC"), 1, "{:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn a_failing_login_is_tried_again() {
    let (url, seen) = scripted::serve(portal_with(|service, n| {
        (service == "login" && n == 1).then(|| Reply::Json(502, json!({"message": "bad gateway"})))
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
    assert_eq!((count(&seen, "login"), count(&seen, "CapNhatTienDoHoSoMC")), (2, 1));
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_not_sent_again_in_the_attempt() {
    for (service, kind) in [("DongBoHoSoMC", KIND_SYNC), ("CapNhatTienDoHoSoMC", KIND_PROGRESS)] {
        for reply in [|| Reply::Drop, || Reply::Json(503, json!({})), || Reply::Json(429, json!({}))] {
            let (url, seen) = scripted::serve(portal_with(move |s, _| (s == service).then(reply))).await;
            let a = adapter(&url, Duration::from_secs(5));
            assert!(matches!(deliver(&a, kind).await, Outcome::Retry { .. }));
            assert_eq!(count(&seen, service), 1, "{service} was repeated: {:?}", seen.lock().unwrap());
        }
    }
}

#[tokio::test]
async fn a_create_refused_as_already_existing_is_sent_again_as_an_update_once() {
    let exists = |code: i64| {
        move |service: &str, n: usize| {
            (service == "DongBoHoSoMC" && n == 1).then(|| ok(json!({"error_code": code, "message": "Hồ sơ đã tồn tại"})))
        }
    };
    for code in [3, -3] {
        let (url, seen) = scripted::serve(portal_with(exists(code))).await;
        let a = adapter(&url, Duration::from_secs(5));
        assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered, "error_code {code}");
        assert_eq!(count(&seen, "DongBoHoSoMC"), 2);
        // Known from now on: the next sync goes as an update without a look-up.
        assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered);
        assert_eq!((count(&seen, "TraCuuHoSo"), count(&seen, "DongBoHoSoMC")), (1, 3));
    }
    // Refused again as the update: dead-lettered, not sent a third time.
    let (url, seen) = scripted::serve(portal_with(|service, _| {
        (service == "DongBoHoSoMC").then(|| ok(json!({"error_code": "-3", "message": "Hồ sơ đã tồn tại"})))
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Reject { .. }));
    assert_eq!(count(&seen, "DongBoHoSoMC"), 2);
    // Other refusals of a create are dead-lettered after one send.
    for answer in [
        json!({"error_code": 2, "message": "Hồ sơ đã tồn tại"}),
        json!({"error_code": 3, "message": "Mã đơn vị không hợp lệ"}),
    ] {
        let (url, seen) = scripted::serve(portal_with(move |service, _| {
            (service == "DongBoHoSoMC").then(|| ok(answer.clone()))
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Reject { .. }));
        assert_eq!(count(&seen, "DongBoHoSoMC"), 1);
    }
}

#[tokio::test]
async fn a_write_refused_for_a_stale_session_is_repeated_once_after_a_login() {
    let (url, seen) = scripted::serve(portal_with(|service, n| {
        (service == "DongBoHoSoMC" && n == 1).then(|| ok(json!({"error_code": -1, "message": "Session expired"})))
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered);
    assert_eq!((count(&seen, "login"), count(&seen, "DongBoHoSoMC")), (2, 2));
}

#[tokio::test]
async fn refusals_are_not_tried_again_and_transient_faults_only_so_often() {
    let (url, seen) = scripted::serve(portal_with(|service, _| {
        (service == "TraCuuHoSo").then(|| Reply::Json(403, json!({"message": "Forbidden"})))
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Retry { .. }));
    assert_eq!((count(&seen, "TraCuuHoSo"), count(&seen, "DongBoHoSoMC")), (1, 0));

    let (url, seen) = scripted::serve(portal_with(|service, _| (service == "TraCuuHoSo").then_some(Reply::Drop))).await;
    let a = adapter(&url, Duration::from_secs(5));
    assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Retry { .. }));
    assert_eq!((count(&seen, "TraCuuHoSo"), count(&seen, "DongBoHoSoMC")), (SUBCALL_TRIES, 0));
}

#[tokio::test]
async fn retries_stay_inside_the_attempts_budget() {
    // Tries stop once less than half the budget would be left after the pause; a
    // Retry-After longer than that ends the attempt instead of being waited out.
    let (url, seen) = scripted::serve(portal_with(|service, _| (service == "login").then(|| Reply::Json(503, json!({}))))).await;
    let a = adapter(&url, Duration::from_millis(600));
    let started = Instant::now();
    assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Retry { .. }));
    assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
    assert!(count(&seen, "login") >= 1);
    let attempt = Attempt::starting_now(Duration::from_millis(600));
    assert_eq!(attempt.pause(Some(Duration::from_millis(50)), Some(Duration::from_secs(3))), None);
    assert_eq!(attempt.pause(None, None), None);
    assert!(attempt.pause(Some(Duration::from_millis(50)), None).is_some());
}

#[tokio::test]
async fn sessions_are_renewed_ahead_of_the_lifetime_the_portal_showed() {
    // The portal calls the first session stale on its second write (at 1.2 s or more).
    let (url, seen) = scripted::serve(Arc::new(|service: &str, n: usize| match (service, n) {
        ("login", n) => ok(json!({"error_code": 0, "session": format!("S-{n}")})),
        ("CapNhatTienDoHoSoMC", 2) => ok(json!({"error_code": -1, "message": "Session expired"})),
        _ => ok(json!({"error_code": 0})),
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
    let learned = a.learned_lifetime().unwrap();
    assert!(learned >= Duration::from_millis(1200), "{learned:?}");
    assert_eq!((count(&seen, "login"), count(&seen, "CapNhatTienDoHoSoMC")), (2, 3));
    // Past three quarters of that, the next write goes on a fresh session, not a stale one.
    tokio::time::sleep(learned * 3 / 4).await;
    assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
    assert_eq!((count(&seen, "login"), count(&seen, "CapNhatTienDoHoSoMC")), (3, 4));
}

#[test]
fn the_inbound_status_map_is_checked_by_key() {
    assert_eq!(
        built("base_url = \"http://portal.example\"\n[inbound_status_map]\n\"9\" = 10\n\"0\" = 1\n\"5\" = 11\n\"x\" = 2\n"),
        Err(vec![
            "dvcqg.inbound_status_map.0".to_string(),
            "dvcqg.inbound_status_map.5".to_string(),
            "dvcqg.inbound_status_map.x".to_string(),
        ])
    );
    assert_eq!(
        built("base_url = \"http://portal.example\"\n[inbound_status_map]\n\"9\" = 10\n"),
        Ok(true)
    );
}

#[tokio::test]
async fn an_inbound_status_goes_as_dong_bo_trang_thai_ho_so() {
    use crate::inbound::{InboundStatus, KIND_STATUS, status_payload};
    let (url, seen) = scripted::serve(portal_with(|service, n| {
        (service == "DongBoTrangThaiHoSo" && n == 2).then(|| ok(json!({"error_code": 2, "message": "Trạng thái không hợp lệ"})))
    }))
    .await;
    let a = adapter(&url, Duration::from_secs(5));
    let status = InboundStatus::parse(&json!({"TrangThai": 2, "NoiDung": "Đã tiếp nhận", "NgayXuLy": "20261207093000"})).unwrap();
    let payload = status_payload(&status, &Map::new()).to_string();
    let d = Delivery {
        id: "m-1",
        kind: KIND_STATUS,
        ordering_key: "G22.99-261207-0001",
        payload: payload.as_bytes(),
        attempt: 1,
    };
    assert_eq!(a.deliver(d).await, Outcome::Delivered);
    assert!(matches!(a.deliver(d).await, Outcome::Reject { .. }));
    assert_eq!(a.carried_status(&d), None);
    assert_eq!(count(&seen, "DongBoTrangThaiHoSo"), 2);
    let bad = Delivery { payload: b"{}", ..d };
    assert!(matches!(a.deliver(bad).await, Outcome::Reject { .. }));
}

#[test]
fn the_share_endpoint_is_its_own_url_when_given_else_the_path_under_the_base() {
    let under = adapter("http://portal.example/", Duration::from_secs(1));
    assert_eq!(under.share_url, "http://portal.example/share");
    let mut cfg = under.cfg.clone();
    cfg.share_url = "https://share.example/api/share".into();
    let apart = DvcqgAdapter::new(cfg).expect("builds");
    assert_eq!(apart.share_url, "https://share.example/api/share");
}
