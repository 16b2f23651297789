//! What crosses the wire to the portal, end to end (centre → gateway → mock-portal over HTTP,
//! Redis queue): codes and flags taken in either form and sent as public clients send them,
//! the `TraCuuHoSo` answer read from `result` and never guessed, and the LGSP's `dstcode`.
//! The mock refuses numbers where public clients send strings, so a regression in the wire
//! form shows up here as a dead letter, not as a quiet success.

use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_gateway::storage::now_ms;
use hcc_mocks::dvcqg::PortalState;
use hcc_tests::*;
use serde_json::{Value, json};

/// Posts and expects 202; returns the message id.
async fn accepted(app: &TestApp, path: &str, body: &Value) -> String {
    accepted_id(app.post_json(path, Key::Centre, body).await).await
}

/// Waits until a message has failed at least `n` attempts and returns its record.
async fn attempted(app: &TestApp, id: &str, n: u64) -> Value {
    eventually(&format!("{n} attempts of {id}"), Duration::from_secs(20), || async {
        let m = app.message(id).await;
        (m["attempts"].as_u64().unwrap_or(0) >= n).then_some(m)
    })
    .await
}

/// A control call to the mock portal.
async fn control(client: &reqwest::Client, portal_url: &str, path: &str, body: Value) {
    let r = client.post(format!("{portal_url}/_mock/{path}")).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "/_mock/{path}: {}", r.status());
}

/// The fixture as a centre whose software writes every code and flag as a string sends it.
fn stringly(ma: &str, status: &str) -> Value {
    let mut d = dossier(ma, 1);
    d["TrangThaiHoSo"] = json!(status);
    d["LoaiDoiTuong"] = json!("1");
    d["HinhThuc"] = json!("0");
    d["TaiLieuNop"][0]["IsDeleted"] = json!("False");
    d["DanhSachLePhi"][0]["LoaiPhiLePhi"] = json!("2");
    d
}

fn items(state: &PortalState, ma: &str) -> Vec<Value> {
    state.arrivals_of(ma).into_iter().map(|a| a.item).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_strings_from_the_centre_reach_the_portal_as_strings() {
    let (p, state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let (numeric, textual) = ("WIRE-N", "WIRE-S");
    // Each dossier moves 2 → 4, a change the life-cycle allows.
    let mut with_flag = dossier(numeric, 2);
    with_flag["TaiLieuNop"][0]["IsDeleted"] = json!(true);
    let mut progress_text = progress(textual, 4, 1);
    progress_text["TrangThai"] = json!("4");
    let ids = vec![
        accepted(&app, "/v1/dossiers", &with_flag).await,
        accepted(&app, &format!("/v1/dossiers/{numeric}/progress"), &progress(numeric, 4, 1)).await,
        accepted(&app, "/v1/dossiers", &stringly(textual, "2")).await,
        accepted(&app, &format!("/v1/dossiers/{textual}/progress"), &progress_text).await,
        accepted(&app, "/v1/dossiers", &stringly(textual, "4")).await,
    ];
    app.all_delivered(&ids).await;
    let n = items(&state, numeric);
    assert_eq!(n.len(), 2);
    assert_eq!(
        (
            &n[0]["TrangThaiHoSo"],
            &n[0]["LoaiDoiTuong"],
            &n[0]["HinhThuc"],
            &n[0]["TaiLieuNop"][0]["IsDeleted"]
        ),
        (&json!("2"), &json!("1"), &json!("0"), &json!("True"))
    );
    assert_eq!(n[1]["TrangThai"], json!("4"));
    // The fee line's numbers go as strings too, the form a public client sends them in.
    assert_eq!(n[0]["DanhSachLePhi"][0]["LoaiPhiLePhi"], json!("2"));
    assert_eq!(n[0]["DanhSachLePhi"][0]["Gia"], json!("100000"));
    let s = items(&state, textual);
    assert_eq!(s.len(), 3);
    assert_eq!(
        (
            &s[0]["TrangThaiHoSo"],
            &s[0]["LoaiDoiTuong"],
            &s[0]["HinhThuc"],
            &s[0]["TaiLieuNop"][0]["IsDeleted"]
        ),
        (&json!("2"), &json!("1"), &json!("0"), &json!("False"))
    );
    assert_eq!((&s[1]["TrangThai"], &s[2]["TrangThaiHoSo"]), (&json!("4"), &json!("4")));
    assert_eq!(s[0]["DanhSachLePhi"][0]["LoaiPhiLePhi"], json!("2"));
    let c = state.counters();
    assert_eq!((c.refused, c.backwards), (0, 0), "{c:?}");
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_in_other_forms_are_422_with_their_pointers_and_nothing_is_queued() {
    let (p, _state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::Off).await;
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for bad in [json!("abc"), json!(4.5), json!("11"), json!(true), json!("4.0"), json!(" 4")] {
        let mut d = dossier("BAD-FORM", 1);
        d["TrangThaiHoSo"] = bad;
        cases.push((d, "/TrangThaiHoSo"));
    }
    for (field, bad, pointer) in [
        ("LoaiDoiTuong", json!("5"), "/LoaiDoiTuong"),
        ("LoaiDoiTuong", json!(0), "/LoaiDoiTuong"),
        ("HinhThuc", json!("2"), "/HinhThuc"),
        ("HinhThuc", json!(false), "/HinhThuc"),
    ] {
        let mut d = dossier("BAD-FORM", 1);
        d[field] = bad;
        cases.push((d, pointer));
    }
    let mut d = dossier("BAD-FORM", 1);
    d["TaiLieuNop"][0]["IsDeleted"] = json!("yes");
    cases.push((d, "/TaiLieuNop/0/IsDeleted"));
    let mut d = dossier("BAD-FORM", 1);
    d["TaiLieuNop"][0]["IsDeleted"] = json!(2);
    cases.push((d, "/TaiLieuNop/0/IsDeleted"));
    let mut d = dossier("BAD-FORM", 1);
    d["TaiLieuNop"][0]["IsDeleted"] = json!("01");
    cases.push((d, "/TaiLieuNop/0/IsDeleted"));
    for bad in [json!("1e5"), json!("100.000"), json!("-1"), json!("1000000000000000")] {
        let mut d = dossier("BAD-FORM", 1);
        d["DanhSachLePhi"][0]["Gia"] = bad;
        cases.push((d, "/DanhSachLePhi/0/Gia"));
    }
    let mut d = dossier("BAD-FORM", 1);
    d["DanhSachLePhi"][0]["LoaiPhiLePhi"] = json!("ba");
    cases.push((d, "/DanhSachLePhi/0/LoaiPhiLePhi"));
    for (body, pointer) in &cases {
        let r = app.post_dossier(body).await;
        assert_eq!(r.status(), 422, "{pointer}");
        let v: Value = r.json().await.unwrap();
        let fields: Vec<&str> = v["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, vec![*pointer], "{v}");
    }
    for bad in [json!("abc"), json!(4.5), json!("11"), json!(true)] {
        let mut pr = progress("BAD-FORM", 4, 1);
        pr["TrangThai"] = bad;
        let r = app.post_progress("BAD-FORM", &pr).await;
        assert_eq!(r.status(), 422);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["field"], "/TrangThai", "{v}");
    }
    let s = app.handle.queue.stats("dvcqg", now_ms()).await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.scheduled, s.dead, s.delivered_total),
        (0, 0, 0, 0, 0),
        "nothing was queued"
    );
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_already_on_the_portal_is_updated_not_created() {
    let (p, state) = portal();
    // Another system created it: the portal has it, the gateway never sent it.
    control(&reqwest::Client::new(), &p.url(), "dossiers", stringly("PRE-1", "2")).await;
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let id = accepted(&app, "/v1/dossiers", &dossier("PRE-1", 4)).await;
    app.all_delivered(&[id]).await;
    let a = state.arrivals_of("PRE-1");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].is_updating.as_deref(), Some("True"), "the look-up's result said it exists");
    assert_eq!(a[0].item["TrangThaiHoSo"], json!("4"));
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_answer_that_shows_neither_hit_nor_miss_is_retried_never_guessed() {
    let (p, state) = portal();
    let client = reqwest::Client::new();
    state.seed_dossier(stringly("ODD-OLD", "2")).unwrap();
    // Success, and no list at all: neither a hit nor a miss.
    control(
        &client,
        &p.url(),
        "lookup",
        json!({"answer": {"error_code": 0, "message": "Thành công"}}),
    )
    .await;
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let old = accepted(&app, "/v1/dossiers", &dossier("ODD-OLD", 4)).await;
    let new = accepted(&app, "/v1/dossiers", &dossier("ODD-NEW", 1)).await;
    for id in [&old, &new] {
        let m = attempted(&app, id, 3).await;
        assert_ne!(m["status"], "delivered");
        assert_ne!(m["status"], "dead", "an unclear answer is not the message's fault: {m}");
        let err = m["last_error"].as_str().unwrap_or_default();
        assert!(err.contains("neither a hit nor a miss") && err.contains("alarm"), "{m}");
    }
    assert!(state.arrivals_of("ODD-OLD").is_empty() && state.arrivals_of("ODD-NEW").is_empty());
    // Each message asked the portal (an attempt whose session call timed out on a loaded
    // machine asks nothing, so the count is not attempts times two).
    assert!(state.counters().lookups >= 2, "{:?}", state.counters());
    // An answer in a list shape that is not a list is no better.
    control(
        &client,
        &p.url(),
        "lookup",
        json!({"answer": {"error_code": 0, "result": {"MaHoSo": "ODD-OLD"}}}),
    )
    .await;
    let before = app.message(&old).await["attempts"].as_u64().unwrap_or(0);
    attempted(&app, &old, before + 2).await;
    assert!(state.arrivals_of("ODD-OLD").is_empty());
    // The real answer again: each goes out with the right isUpdating.
    control(&client, &p.url(), "lookup", json!({"answer": null})).await;
    app.all_delivered(&[old, new]).await;
    assert_eq!(state.arrivals_of("ODD-OLD")[0].is_updating.as_deref(), Some("True"));
    assert_eq!(state.arrivals_of("ODD-NEW")[0].is_updating.as_deref(), Some("False"));
    assert_eq!(state.counters().refused, 0);
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lgsp_dstcode_rides_on_every_call_when_configured() {
    let (p, state) = portal();
    control(&reqwest::Client::new(), &p.url(), "dstcode", json!({"required": "000.00.00.H46"})).await;
    let with = portal_gateway(&p.url(), &[("HCC__DVCQG__DSTCODE", "000.00.00.H46".into())], Workers::On).await;
    let without = portal_gateway(&p.url(), &[], Workers::On).await;
    let ok = accepted(&with, "/v1/dossiers", &dossier("DST-WITH", 1)).await;
    let ok_progress = accepted(&with, "/v1/dossiers/DST-WITH/progress", &progress("DST-WITH", 2, 1)).await;
    let refused = accepted(&without, "/v1/dossiers", &dossier("DST-WITHOUT", 1)).await;
    with.all_delivered(&[ok, ok_progress]).await;
    let m = attempted(&without, &refused, 3).await;
    assert_ne!(m["status"], "delivered");
    assert_ne!(m["status"], "dead", "a configuration fault is not the message's fault: {m}");
    assert!(m["last_error"].as_str().unwrap_or_default().contains("403"), "{m}");
    assert!(state.arrivals_of("DST-WITHOUT").is_empty());
    let c = state.counters();
    // The gateway without the header never got past the LGSP, not even to log in.
    assert_eq!(c.logins, 1, "{c:?}");
    assert!(c.dstcode_refused >= 3, "{c:?}");
    assert_eq!(state.arrivals_of("DST-WITH").len(), 2);
    with.stop().await;
    without.stop().await;
    p.stop().await;
}

/// A dossier as HuanVu201/DichVuCong_KhoaLuan_PASETO (`SyncLocalDataToDVCQGService.cs`) writes
/// one: `LoaiDoiTuong` 3 or 4, fee numbers as strings, `IsDeleted` from an SQL bit.
fn second_client(ma: &str, loai: Value) -> Value {
    let mut d = dossier(ma, 1);
    d["LoaiDoiTuong"] = loai;
    d["TaiLieuNop"] = json!([
        {"TepDinhKemId": "f-1", "TenTepDinhKem": "Don.pdf", "IsDeleted": "0"},
        {"TepDinhKemId": "f-2", "TenTepDinhKem": "Cu.pdf", "IsDeleted": "1"},
        {"TepDinhKemId": "f-3", "TenTepDinhKem": "Ban sao.pdf", "IsDeleted": 0},
        {"TepDinhKemId": "f-4", "TenTepDinhKem": "Huy.pdf", "IsDeleted": 1}
    ]);
    d["DanhSachLePhi"] = json!([
        {"TenPhiLePhi": "Lệ phí cấp giấy", "MaPhiLePhi": "LP01", "Gia": "100000", "LoaiPhiLePhi": "2", "HinhThucThu": "1"},
        {"TenPhiLePhi": "Phí thẩm định", "MaPhiLePhi": "P02", "Gia": 50000, "LoaiPhiLePhi": 1, "HinhThucThu": 2}
    ]);
    d["DanhSachTepDinhKemKhac"] = json!([{"TenGiayTo": "Bản sao CCCD", "SoLuong": "02", "LoaiGiayTo": "BS"}]);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_public_clients_dossier_is_taken_and_reaches_the_portal_in_one_form() {
    let (p, state) = portal();
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let ids = vec![
        accepted(&app, "/v1/dossiers", &second_client("SECOND-3", json!("3"))).await,
        accepted(&app, "/v1/dossiers", &second_client("SECOND-4", json!(4))).await,
    ];
    app.all_delivered(&ids).await;
    for (ma, loai) in [("SECOND-3", "3"), ("SECOND-4", "4")] {
        let sent = items(&state, ma);
        assert_eq!(sent.len(), 1, "{ma}");
        let d = &sent[0];
        assert_eq!(d["LoaiDoiTuong"], json!(loai));
        let flags: Vec<&Value> = d["TaiLieuNop"].as_array().unwrap().iter().map(|t| &t["IsDeleted"]).collect();
        assert_eq!(flags, vec!["False", "True", "False", "True"]);
        assert_eq!(
            d["DanhSachLePhi"],
            json!([
                {"TenPhiLePhi": "Lệ phí cấp giấy", "MaPhiLePhi": "LP01", "Gia": "100000", "LoaiPhiLePhi": "2", "HinhThucThu": "1"},
                {"TenPhiLePhi": "Phí thẩm định", "MaPhiLePhi": "P02", "Gia": "50000", "LoaiPhiLePhi": "1", "HinhThucThu": "2"}
            ])
        );
        assert_eq!(d["DanhSachTepDinhKemKhac"][0]["SoLuong"], json!("2"));
    }
    // What still does not fit is a 422 naming it.
    for (field, bad, pointer) in [
        ("LoaiDoiTuong", json!(5), "/LoaiDoiTuong"),
        ("IsDeleted", json!("2"), "/TaiLieuNop/0/IsDeleted"),
        ("Gia", json!("100 000"), "/DanhSachLePhi/0/Gia"),
        ("HinhThucThu", json!("một"), "/DanhSachLePhi/1/HinhThucThu"),
    ] {
        let mut d = second_client("SECOND-BAD", json!("3"));
        match field {
            "LoaiDoiTuong" => d[field] = bad,
            "IsDeleted" => d["TaiLieuNop"][0][field] = bad,
            "Gia" => d["DanhSachLePhi"][0][field] = bad,
            _ => d["DanhSachLePhi"][1][field] = bad,
        }
        let r = app.post_dossier(&d).await;
        assert_eq!(r.status(), 422, "{pointer}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["field"], pointer, "{v}");
    }
    let c = state.counters();
    assert_eq!((c.accepted, c.refused), (2, 0), "{c:?}");
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_portal_says_already_exists_is_sent_again_as_an_update_in_the_same_attempt() {
    let (p, state) = portal();
    let client = reqwest::Client::new();
    // Another system created both; the look-up wrongly says "miss", so the gateway creates.
    for ma in ["EXISTS-1", "EXISTS-2"] {
        control(&client, &p.url(), "dossiers", stringly(ma, "2")).await;
    }
    control(
        &client,
        &p.url(),
        "lookup",
        json!({"answer": {"error_code": 0, "message": "Thành công", "result": []}}),
    )
    .await;
    control(&client, &p.url(), "already_exists", json!({"error_code": -3})).await;
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let id = accepted(&app, "/v1/dossiers", &dossier("EXISTS-1", 4)).await;
    app.all_delivered(std::slice::from_ref(&id)).await;
    assert_eq!(app.message(&id).await["attempts"], 1, "the update went in the same attempt");
    let a = state.arrivals_of("EXISTS-1");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].is_updating.as_deref(), Some("True"));
    assert_eq!(a[0].item["TrangThaiHoSo"], json!("4"));
    assert_eq!(state.counters().refused, 1, "the create was refused once");
    // Any other refusal of the create is dead-lettered as before: here the default code 2.
    control(&client, &p.url(), "already_exists", json!({"error_code": null})).await;
    let other = accepted(&app, "/v1/dossiers", &dossier("EXISTS-2", 4)).await;
    let m = eventually("dead", Duration::from_secs(15), || async {
        let m = app.message(&other).await;
        (m["status"] == "dead").then_some(m)
    })
    .await;
    assert_eq!(m["attempts"], 1, "{m}");
    assert!(m["last_error"].as_str().unwrap_or_default().contains("đã tồn tại"), "{m}");
    assert!(state.arrivals_of("EXISTS-2").is_empty());
    app.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_about_versions_and_due_dates_are_dead_lettered_and_a_stale_session_renewed() {
    let (p, state) = portal();
    let client = reqwest::Client::new();
    let refusals = [
        ("REFUSE-VER", "Phiên bản hồ sơ không hợp lệ"),
        ("REFUSE-DUE", "Ngày hẹn trả đã hết hạn"),
        ("REFUSE-DUE-ASCII", "Ngay hen tra da het han"),
    ];
    for (ma, message) in refusals {
        control(
            &client,
            &p.url(),
            "refusals",
            json!({"MaHoSo": ma, "answer": {"error_code": 2, "message": message}}),
        )
        .await;
    }
    let app = portal_gateway(&p.url(), &[], Workers::On).await;
    let first = accepted(&app, "/v1/dossiers", &dossier("STALE-0", 1)).await;
    app.all_delivered(&[first]).await;
    for (ma, message) in refusals {
        let id = accepted(&app, "/v1/dossiers", &dossier(ma, 1)).await;
        let m = eventually(&format!("{ma} dead"), Duration::from_secs(15), || async {
            let m = app.message(&id).await;
            (m["status"] == "dead").then_some(m)
        })
        .await;
        assert_eq!(m["attempts"], 1, "a refusal, not a stale session: {m}");
        assert!(m["last_error"].as_str().unwrap_or_default().contains(message), "{m}");
    }
    assert_eq!(state.counters().logins, 1, "no refusal was taken for a stale session");
    // A stale session said in a whole phrase, without diacritics, is renewed.
    control(
        &client,
        &p.url(),
        "stale_answer",
        json!({"answer": {"error_code": 99, "message": "Phien lam viec da het han"}}),
    )
    .await;
    control(&client, &p.url(), "sessions", json!({"expire_all": true})).await;
    let id = accepted(&app, "/v1/dossiers", &dossier("STALE-1", 1)).await;
    app.all_delivered(std::slice::from_ref(&id)).await;
    assert_eq!(app.message(&id).await["attempts"], 1);
    let c = state.counters();
    assert_eq!((c.logins, c.stale_session_answers), (2, 1), "{c:?}");
    app.stop().await;
    p.stop().await;
}
