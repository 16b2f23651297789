//! The civil-registration link-up (DVCLT), polled: each dossier is handed to the mock centre
//! and only then acknowledged to the mock link-up, exactly once, whether the centre was down
//! meanwhile or the gateway was killed (`kill -9`) between delivery and acknowledgement; the
//! centre's statuses go back to the link-up in order with the mapped codes.

use std::process::{Child, Stdio};
use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::dvclt::{DvcltConfig, DvcltState, NewDossier, NewFile};
use hcc_mocks::faults::Faults;
use hcc_tests::{Gateway, Key, eventually, free_port, serve_command, settings, spawn_app, unique_prefix};
use serde_json::json;

use crate::inbound::{b64, centre, pdf, received_for, temp_dir};

fn link_up(codes: &[&str]) -> (hcc_mocks::Running, DvcltState) {
    let state = DvcltState::new(DvcltConfig::default());
    for (n, code) in codes.iter().enumerate() {
        state
            .add_dossier(NewDossier {
                id: format!("{}", 7000 + n),
                ma_ho_so: code.to_string(),
                ma_tthc: "1.001193".into(),
                module: "KS".into(),
                files: vec![NewFile {
                    name: "To khai khai sinh.pdf".into(),
                    base64: b64(&pdf(2000 + n)),
                    loai_giay_to: Some("TK".into()),
                    ten_giay_to: Some("Tờ khai".into()),
                }],
                ..NewDossier::default()
            })
            .unwrap_or_else(|e| panic!("seed {code}: {e:?}"));
    }
    let running = hcc_mocks::dvclt::spawn("127.0.0.1:0", state.clone()).unwrap_or_else(|e| panic!("mock link-up: {e}"));
    (running, state)
}

fn dvclt_overrides(url: &str, every_secs: u64) -> Vec<(&'static str, String)> {
    let c = DvcltConfig::default();
    vec![
        ("HCC__DVCLT__BASE_URL", url.to_string()),
        ("HCC__DVCLT__USERNAME", c.username),
        ("HCC__DVCLT__PASSWORD", c.password),
        ("HCC__DVCLT__POLL_EVERY_SECS", every_secs.to_string()),
    ]
}

fn acked_once_each(state: &DvcltState, codes: &[&str]) -> bool {
    let counts = state.ack_counts();
    codes.iter().all(|c| counts.get(*c) == Some(&1)) && counts.len() == codes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_until_the_centre_has_it_and_then_each_once_and_statuses_go_back_in_order() {
    let codes = ["KS-H46-0001", "KS-H46-0002", "KS-H46-0003"];
    let (link, link_state) = link_up(&codes);
    let (centre_mock, centre_state) = centre();
    centre_state.set_faults(Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Faults::default()
    });
    let files_dir = temp_dir("dvclt-files");
    let mut o = dvclt_overrides(&link.url(), 1);
    o.push(("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", centre_mock.url())));
    o.push(("HCC__INBOUND__FILES_DIR", files_dir.to_string_lossy().into_owned()));
    let app = spawn_app(settings(QueueBackendKind::Redis, &o), Workers::On).await;

    // The gateway fetches every dossier; the centre refuses them; nothing is acknowledged.
    eventually("every dossier fetched", Duration::from_secs(10), || async {
        (link_state.calls().detail >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(centre_state.counters().failed_by_fault > 0, "the centre was asked");
    assert!(
        link_state.acks().is_empty(),
        "acknowledged while the centre had nothing: {:?}",
        link_state.acks()
    );
    let list = app.get_json("/v1/inbound/dossiers?source=dvclt", Key::Operator).await;
    assert_eq!(list["total"], 3, "{list}");

    // The centre comes back: each dossier is delivered, then acknowledged, once.
    centre_state.set_faults(Faults::default());
    eventually("each dossier acknowledged", Duration::from_secs(20), || async {
        acked_once_each(&link_state, &codes).then_some(())
    })
    .await;
    for code in codes {
        let got = received_for(&centre_state, code);
        assert_eq!(got.len(), 1, "{code}");
        assert_eq!(got[0].body["data"]["source"], "dvclt");
        assert_eq!(got[0].body["data"]["files"].as_array().map(Vec::len), Some(1));
    }
    // Later rounds change nothing: the link-up lists none of them any more.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(acked_once_each(&link_state, &codes), "{:?}", link_state.ack_counts());
    let view = app.get_json("/v1/inbound/dossiers/KS-H46-0001", Key::Operator).await;
    assert!(view["acknowledged_at"].is_string(), "{view}");

    // The centre's statuses go back to the link-up in order, mapped (2 -> 3, 10 -> 4).
    let path = "/v1/inbound/dossiers/KS-H46-0002/status";
    for (code, minute) in [(2, 10), (10, 20)] {
        let body = json!({"TrangThai": code, "NoiDung": "Đã xử lý", "NgayXuLy": format!("2026120709{minute}00"), "MaHoSoDonVi": "000.00.22.H46-261207-0009"});
        assert_eq!(app.post_json(path, Key::Centre, &body).await.status().as_u16(), 202);
    }
    let statuses = eventually("the link-up has both statuses", Duration::from_secs(15), || async {
        let s = link_state.statuses();
        (s.len() >= 2).then_some(s)
    })
    .await;
    let seen: Vec<(String, i64, String)> = statuses
        .iter()
        .map(|s| (s.so_ho_so_lt.clone(), s.trang_thai, s.thoi_gian_thuc_hien.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("KS-H46-0002".to_string(), 3, "07/12/2026 09:10:00".to_string()),
            ("KS-H46-0002".to_string(), 4, "07/12/2026 09:20:00".to_string())
        ]
    );
    assert!(
        statuses
            .iter()
            .all(|s| s.ma_ho_so == "000.00.22.H46-261207-0009" && s.ma_tthc == "1.001193")
    );
    let _ = std::fs::remove_dir_all(files_dir);
}

/// `hcc-gateway serve` polling the link-up every `every_secs`.
fn serve(port: u16, prefix: &str, link: &str, centre: &str, files: &str, every_secs: u64) -> Child {
    let mut c = serve_command(port, prefix);
    c.env("HCC__CENTRE__WEBHOOK_URL", centre)
        .env("HCC__INBOUND__FILES_DIR", files)
        .stderr(Stdio::null());
    for (k, v) in dvclt_overrides(link, every_secs) {
        c.env(k, v);
    }
    c.spawn().unwrap_or_else(|e| panic!("cannot start hcc-gateway: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_delivery_and_acknowledgement_ends_with_each_acknowledged_once() {
    let codes = ["KT-H46-0101", "KT-H46-0102"];
    let (link, link_state) = link_up(&codes);
    let (centre_mock, centre_state) = centre();
    let (prefix, files) = (unique_prefix(), temp_dir("dvclt-kill"));
    let files_s = files.to_string_lossy().into_owned();
    let webhook = format!("{}/webhooks", centre_mock.url());
    // A round now, the next in a minute: the webhooks are delivered at once, the
    // acknowledgements would wait for the next round, and the process dies before it.
    let port = free_port();
    let mut child = serve(port, &prefix, &link.url(), &webhook, &files_s, 60);
    Gateway::at(&format!("http://127.0.0.1:{port}")).wait_ready().await;
    eventually("the centre has both", Duration::from_secs(15), || async {
        codes.iter().all(|c| !received_for(&centre_state, c).is_empty()).then_some(())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(link_state.acks().is_empty(), "killed before any acknowledgement");

    // Restarted: the next rounds acknowledge what the centre holds, once each.
    let port = free_port();
    let mut child = serve(port, &prefix, &link.url(), &webhook, &files_s, 1);
    Gateway::at(&format!("http://127.0.0.1:{port}")).wait_ready().await;
    eventually("each acknowledged after the restart", Duration::from_secs(20), || async {
        acked_once_each(&link_state, &codes).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(acked_once_each(&link_state, &codes), "{:?}", link_state.ack_counts());
    for code in codes {
        assert_eq!(received_for(&centre_state, code).len(), 1, "{code}: handed to the centre once");
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(files);
}
