//! The `[emc]` section's checks, the tracking body and the status mapping, and delivery against
//! a scripted EMC.

use std::sync::Arc;
use std::time::Duration;

use hcc_config::Section;
use serde_json::{Value, json};

use super::wire::{self, Procedure, Step, WireError};
use super::*;
use crate::dvcqg::model::DossierStatus;
use crate::testing::{self, Reply};

fn built(production: bool, toml: &str) -> Result<bool, Vec<String>> {
    let section = Section::from_toml(DESTINATION, toml).expect("toml");
    let ctx = BuildContext {
        production,
        ..BuildContext::bare(DESTINATION, Some(&section))
    };
    build(&ctx).map(|a| a.is_some()).map_err(|p| p.into_iter().map(|p| p.key).collect())
}

#[test]
fn the_section_is_off_without_a_url_and_checked_by_key_with_one() {
    assert_eq!(built(true, "url = \"\"\n"), Ok(false));
    assert_eq!(built(false, "url = \"http://127.0.0.1:9/TrackingMCDT\"\nsite_id = 12\n"), Ok(true));
    assert_eq!(
        built(false, "url = \"http://127.0.0.1:9/TrackingMCDT\"\n"),
        Err(vec!["emc.site_id".to_string()]),
        "a configured EMC needs its site"
    );
    assert_eq!(
        built(false, "url = \"ftp://x\"\nsite_id = -1\n"),
        Err(vec!["emc.url".to_string(), "emc.site_id".to_string()])
    );
    assert_eq!(
        built(true, "url = \"http://f-emc.example/TrackingMCDT\"\nsite_id = 3\n"),
        Err(vec!["emc.url".to_string()]),
        "production sends over https"
    );
    assert!(built(false, "url = \"http://x\"\nsite = 1\n").is_err(), "an unknown key is refused");
    let absent = BuildContext::bare(DESTINATION, None);
    assert!(matches!(build(&absent), Ok(None)));
}

#[test]
fn spec_copies_the_portal_dossier_kinds() {
    let s = spec();
    assert_eq!(s.name, "emc");
    assert_eq!(s.copies, [KIND_SYNC, KIND_PROGRESS]);
    assert!(s.ingest.is_empty() && !s.event_sink);
    let r = crate::standard();
    assert!(r.copying(KIND_SYNC).any(|d| d == DESTINATION));
    assert!(r.copying(KIND_PROGRESS).any(|d| d == DESTINATION));
}

#[test]
fn portal_statuses_map_to_emc_codes_as_the_public_client_does() {
    let expected = [
        (1, "1"),
        (2, "1"),
        (3, "0"),
        (4, "2"),
        (5, "0"),
        (6, "0"),
        (7, "0"),
        (8, "0"),
        (9, "3"),
        (10, "3"),
    ];
    for (code, emc) in expected {
        let status = DossierStatus::from_code(code).expect("a portal code");
        assert_eq!(wire::status_code(status), emc, "TrangThai {code}");
    }
}

fn dossier() -> Value {
    json!({
        "MaHoSo": "H46.1-2412-0001",
        "MaTTHC": "1.001612",
        "TenTTHC": "Đăng ký khai sinh",
        "TrangThaiHoSo": "2",
        "NgayTiepNhan": "20241126080000",
        "MaDoiTuong": "acc-77",
        "DanhSachLePhi": [{"Gia": "50000"}]
    })
}

#[test]
fn a_sync_becomes_a_tracking_body_in_emcs_vocabulary() {
    let step = wire::read(KIND_SYNC, dossier().to_string().as_bytes()).expect("reads");
    let Step::Sync {
        ma_ho_so,
        status,
        procedure,
    } = step
    else {
        panic!("a sync")
    };
    let body = wire::body(31, &ma_ho_so, status, &procedure);
    assert_eq!(
        body,
        json!({
            "codeProfile": "H46.1-2412-0001",
            "siteId": 31,
            "codeTTHC": "1.001612",
            "nameTTHC": "Đăng ký khai sinh",
            "maHoSo": "H46.1-2412-0001",
            "status": "1",
            "formsReception": "2",
            "formsPayments": "2",
            "level": "3",
            "isFromDVCQG": "0",
            "isDVCBC": "0",
            "data": "",
            "user": "{\"ID_QG\":\"acc-77\",\"ID_local\":\"acc-77\"}"
        })
    );
}

#[test]
fn handling_fields_follow_the_forks_fields_when_sent_and_default_otherwise() {
    let mut d = dossier();
    d["KenhThucHien"] = json!(2);
    d["MucDo"] = json!("4");
    d["DanhSachLePhi"] = json!([{"Gia": 0}]);
    d.as_object_mut().unwrap().remove("TenTTHC");
    d.as_object_mut().unwrap().remove("MaDoiTuong");
    let Ok(Step::Sync { procedure, .. }) = wire::read(KIND_SYNC, d.to_string().as_bytes()) else {
        panic!("a sync")
    };
    assert_eq!(
        procedure,
        Procedure {
            code: "1.001612".into(),
            name: String::new(),
            forms_reception: "1",
            forms_payments: "0",
            level: "4",
            user: String::new(),
        }
    );
    let named = Procedure::named("2.1".into(), "X".into());
    assert_eq!((named.forms_reception, named.forms_payments, named.level), ("2", "0", "3"));
}

#[test]
fn a_progress_entry_reads_its_status_and_any_procedure_it_names() {
    let p = json!({"MaHoSo": "H1", "TrangThai": 9, "ThoiDiemXuLy": "20241126090000"});
    assert_eq!(
        wire::read(KIND_PROGRESS, p.to_string().as_bytes()),
        Ok(Step::Progress {
            ma_ho_so: "H1".into(),
            status: "3",
            named: None
        })
    );
    let named = json!({"MaHoSo": "H1", "TrangThai": "4", "MaTTHC": "1.2"});
    assert!(matches!(
        wire::read(KIND_PROGRESS, named.to_string().as_bytes()),
        Ok(Step::Progress { status: "2", named: Some((c, n)), .. }) if c == "1.2" && n.is_empty()
    ));
    assert_eq!(
        wire::read("other.kind", p.to_string().as_bytes()),
        Err(WireError::Kind("other.kind".into()))
    );
    assert_eq!(wire::read(KIND_PROGRESS, b"[1]"), Err(WireError::NotAnObject));
    assert_eq!(
        wire::read(KIND_PROGRESS, br#"{"MaHoSo": "H1", "TrangThai": 11}"#),
        Err(WireError::Field("TrangThai"))
    );
}

fn delivery<'a>(kind: &'a str, payload: &'a [u8]) -> Delivery<'a> {
    Delivery {
        id: "m-1",
        kind,
        ordering_key: "H46.1-2412-0001",
        payload,
        attempt: 1,
    }
}

async fn adapter(token: &str, script: testing::Script) -> (EmcAdapter, testing::Seen) {
    let (url, seen) = testing::serve(script).await;
    let a = EmcAdapter::new(format!("{url}/TrackingMCDT"), 31, Secret::new(token), Duration::from_secs(5)).expect("client");
    (a, seen)
}

#[tokio::test]
async fn a_sync_then_its_progress_reach_emc_with_the_procedure_and_a_bearer_only_when_set() {
    let (a, seen) = adapter("", Arc::new(|_, _| testing::json(200, json!({})))).await;
    let sync = dossier().to_string();
    assert_eq!(a.deliver(delivery(KIND_SYNC, sync.as_bytes())).await, Outcome::Delivered);
    let progress = json!({"MaHoSo": "H46.1-2412-0001", "TrangThai": 4, "ThoiDiemXuLy": "20241126090000"}).to_string();
    assert_eq!(a.deliver(delivery(KIND_PROGRESS, progress.as_bytes())).await, Outcome::Delivered);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/TrackingMCDT"));
    assert!(seen[0].header("content-type").is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(seen[0].header("authorization"), None);
    let second = seen[1].json();
    assert_eq!(
        (second["status"].as_str(), second["codeTTHC"].as_str()),
        (Some("2"), Some("1.001612"))
    );
    assert_eq!(second["nameTTHC"], "Đăng ký khai sinh");
    assert_eq!(second["formsPayments"], "2", "the handling fields of the sync");

    let (a, seen) = adapter("s3cret", Arc::new(|_, _| testing::text(204, ""))).await;
    assert_eq!(a.deliver(delivery(KIND_SYNC, sync.as_bytes())).await, Outcome::Delivered);
    assert_eq!(seen.lock().unwrap()[0].header("authorization"), Some("Bearer s3cret"));
}

#[tokio::test]
async fn a_progress_of_an_unseen_dossier_naming_no_procedure_is_refused_unsent() {
    let (a, seen) = adapter("", Arc::new(|_, _| testing::json(200, json!({})))).await;
    let progress = json!({"MaHoSo": "H9", "TrangThai": 4}).to_string();
    let out = a.deliver(delivery(KIND_PROGRESS, progress.as_bytes())).await;
    assert!(matches!(&out, Outcome::Reject { reason } if reason.contains("MaTTHC")), "{out:?}");
    assert!(seen.lock().unwrap().is_empty());
    // Naming the procedure is enough.
    let named = json!({"MaHoSo": "H9", "TrangThai": 4, "MaTTHC": "1.2"}).to_string();
    assert_eq!(a.deliver(delivery(KIND_PROGRESS, named.as_bytes())).await, Outcome::Delivered);
}

#[tokio::test]
async fn answers_are_classified_like_any_http_destination() {
    let sync = dossier().to_string();
    for (status, retried) in [
        (503, true),
        (500, true),
        (429, true),
        (408, true),
        (400, false),
        (401, false),
        (404, false),
    ] {
        let (a, _) = adapter("", Arc::new(move |_, _| testing::text(status, "no"))).await;
        let out = a.deliver(delivery(KIND_SYNC, sync.as_bytes())).await;
        match out {
            Outcome::Retry { .. } => assert!(retried, "{status} retried"),
            Outcome::Reject { .. } => assert!(!retried, "{status} refused"),
            Outcome::Delivered => panic!("{status} delivered"),
        }
    }
    let (a, _) = adapter("", Arc::new(|_, _| Reply::Drop)).await;
    assert!(matches!(
        a.deliver(delivery(KIND_SYNC, sync.as_bytes())).await,
        Outcome::Retry { .. }
    ));
}

#[test]
fn procedures_forget_the_oldest_dossier_first() {
    let p = Procedures::new(2);
    let proc_ = |c: &str| Procedure::named(c.into(), String::new());
    p.remember("a", proc_("1"));
    p.remember("b", proc_("2"));
    p.remember("a", proc_("3"));
    p.remember("c", proc_("4"));
    assert_eq!(p.get("a"), None);
    assert_eq!(p.get("b").map(|p| p.code), Some("2".into()));
    assert_eq!(p.get("c").map(|p| p.code), Some("4".into()));
}
