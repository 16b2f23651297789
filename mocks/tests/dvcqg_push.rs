//! The mock portal pushing dossiers down, its file service and the status coming back up, over
//! HTTP in-process, against a stand-in gateway that records what it gets.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use hcc_mocks::dvcqg::{PortalConfig, PortalState};
use serde_json::{Value, json};

const PDF: &str = "JVBERi0xLjQKJcTl8uXrCg==";

type Got = Arc<Mutex<Vec<(Option<String>, String)>>>;

/// A gateway's push endpoint that takes a dossier once and calls the second push a duplicate.
fn fake_gateway(got: Got) -> hcc_mocks::Running {
    hcc_mocks::spawn_server("127.0.0.1:0", move |cfg: &mut web::ServiceConfig| {
        let got = got.clone();
        cfg.route(
            "/v1/inbound/dvcqg/dossiers",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let got = got.clone();
                async move {
                    let key = req.headers().get("X-DVCQG-Key").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let text = String::from_utf8_lossy(&body).to_string();
                    let mut g = got.lock().unwrap();
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        g.push((key, text));
                        return HttpResponse::BadRequest().json(json!({"error_code": -1, "message": "not JSON"}));
                    };
                    let ma = v["MaHoSo"].as_str().unwrap_or("").to_string();
                    let dup = g
                        .iter()
                        .any(|(_, t)| serde_json::from_str::<Value>(t).is_ok_and(|o| o["MaHoSo"] == ma));
                    g.push((key, text));
                    HttpResponse::Ok().json(json!({"error_code": if dup { 1 } else { 0 }, "message": format!("{ma}|ok")}))
                }
            }),
        );
    })
    .unwrap()
}

async fn post(url: String, body: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_pushes_what_it_is_told_and_records_the_answers() {
    let portal = PortalState::new(PortalConfig::default());
    let p = hcc_mocks::dvcqg::spawn("127.0.0.1:0", portal.clone()).unwrap();
    let got: Got = Arc::default();
    let gw = fake_gateway(got.clone());
    let target = format!("{}/v1/inbound/dvcqg/dossiers", gw.url());
    let a = post(
        format!("{}/_mock/push", p.url()),
        json!({"target": target, "key": "k-1", "generate": {"MaHoSo": "G-1", "MaTTHC": "2.002155",
            "form": {"url_path": "/files/don.pdf"}, "attachments": [{"name": "a.pdf", "base64": PDF}]}}),
    )
    .await;
    assert_eq!(
        (a["status"].clone(), a["answer"]["error_code"].clone()),
        (json!(200), json!(0)),
        "{a}"
    );
    {
        let g = got.lock().unwrap();
        assert_eq!(g[0].0.as_deref(), Some("k-1"));
        let body: Value = serde_json::from_str(&g[0].1).unwrap();
        assert_eq!(body["URLTepDangKy"], format!("{}/files/don.pdf", p.url()));
        assert_eq!(body["TaiLieuNop"], json!([{"TenTepDinhKem": "a.pdf", "Base64": PDF}]));
        assert!(body["DiaChiDoanhNghiep"]["MaTinh"].is_string());
    }
    let a = post(
        format!("{}/_mock/push", p.url()),
        json!({"target": target, "repeat": 3, "dossier": {"MaHoSoQG": "G-2", "MaHoSo": "G-2", "MaTTHC": "x"}}),
    )
    .await;
    let codes: Vec<Value> = a["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["answer"]["error_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(0), json!(1), json!(1)], "{a}");
    let a = post(
        format!("{}/_mock/push", p.url()),
        json!({"target": target, "raw_body": "{not json"}),
    )
    .await;
    assert_eq!(a["status"], 400, "{a}");
    assert!(got.lock().unwrap()[4].0.is_none(), "no key given, none sent");
    let bad = reqwest::Client::new()
        .post(format!("{}/_mock/push", p.url()))
        .json(&json!({"target": target, "raw_body": "x", "dossier": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "two bodies at once");
    let pushes = portal.push.pushes();
    assert_eq!(pushes.len(), 5);
    assert_eq!((pushes[1].ma_ho_so.as_deref(), pushes[3].status), (Some("G-2"), 200));
    let listed: Value = reqwest::get(format!("{}/_mock/pushes", p.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_service_and_the_status_back_up() {
    let portal = PortalState::new(PortalConfig::default());
    let p = hcc_mocks::dvcqg::spawn("127.0.0.1:0", portal.clone()).unwrap();
    let login: Value = post(
        format!("{}/auth", p.url()),
        json!({"username": "hcc-dev", "password": "hcc-dev-password"}),
    )
    .await;
    let session = login["session"].as_str().unwrap().to_string();
    let call = |endpoint: &str, service: &str, extra: Value| {
        let mut b = json!({"session": session, "madonvi": "000.00.22.H46", "service": service});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        post(format!("{}/{endpoint}", p.url()), b)
    };
    let own = format!("{}/files/don.pdf", p.url());
    let a = call("share", "getfile", json!({"DuongDan": own})).await;
    assert_ne!(a["error_code"], 0, "not stored yet: {a}");
    let stored = reqwest::Client::new()
        .post(format!("{}/_mock/files", p.url()))
        .json(&json!({"path": "/files/don.pdf", "base64": PDF}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);
    let a = call("share", "getfile", json!({"DuongDan": own})).await;
    assert_eq!((a["error_code"].clone(), a["data"].clone()), (json!(0), json!(PDF)), "{a}");
    for foreign in [
        "http://evil.example/files/don.pdf".to_string(),
        format!("https://{}/files/don.pdf", p.addr),
        format!("http://{}@evil.example/files/don.pdf", p.addr),
    ] {
        let a = call("share", "getfile", json!({"DuongDan": foreign})).await;
        assert_ne!(a["error_code"], 0, "{foreign}: {a}");
    }
    let stale = post(
        format!("{}/share", p.url()),
        json!({"session": "made-up", "madonvi": "000.00.22.H46", "service": "getfile", "DuongDan": own}),
    )
    .await;
    assert!(
        stale.get("data").is_none_or(Value::is_null),
        "a stale session gets no file: {stale}"
    );
    let stats = portal.push.getfile_stats();
    assert_eq!((stats.calls, stats.served, stats.refused), (5, 1, 4), "{stats:?}");

    let status = json!({"MaHoSo": "G-1", "MaHoSoDonVi": "QN-1", "TrangThai": "2", "NoiDung": "Đã tiếp nhận",
        "NgayXuLy": "20261201083000", "TaiLieuXuLy": []});
    let a = call("integration", "DongBoTrangThaiHoSo", json!({"type": "2", "data": [status]})).await;
    assert_ne!(a["error_code"], 0, "an array is refused: {a}");
    let a = call("integration", "DongBoTrangThaiHoSo", json!({"data": status})).await;
    assert_ne!(a["error_code"], 0, "no type: {a}");
    let a = call("integration", "DongBoTrangThaiHoSo", json!({"type": "2", "data": status})).await;
    assert_eq!(a["error_code"], 0, "{a}");
    let mut later = status.clone();
    later["TrangThai"] = json!("5");
    assert_eq!(
        call("integration", "DongBoTrangThaiHoSo", json!({"type": "2", "data": later})).await["error_code"],
        0
    );
    let taken: Value = reqwest::get(format!("{}/_mock/inbound_status", p.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = taken.as_array().unwrap().iter().map(|s| s["TrangThai"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["2", "5"]);
    assert_eq!(taken[0]["MaHoSoDonVi"], "QN-1");
    assert!(taken[0]["at_ms"].as_u64().unwrap() > 0);
    let lookup = call("integration", "TraCuuHoSo", json!({"mahoso": "G-1"})).await;
    assert_eq!(lookup["result"], json!([]), "the other services still work");
}
