//! The national procedure catalogue as the mock portal serves it, restated from the notes
//! (`shared/domain/dvcqg.md`, "Beyond DongBoHoSoMC", the "Procedure catalogue" bullet):
//! `LayDanhSachTTHC`, `LayDanhMucLinhVuc` and `LayDanhMucCoQuan` on the **share** endpoint,
//! `LayThuTuc` `{maTTHC}` on the **integration** endpoint (OpenCPS sends it there, like
//! `TraCuuHoSo`); answers `{error_code, result: [...]}` with upper-case fields.
//!
//! The procedures come from `mocks/fixtures/catalogue.json`: real national codes and names, with
//! documents, results and fees in the shape the notes give. What no public code shows, and the
//! fixture therefore guesses: the field codes (`MALINHVUC`, `MANGANH`), the `KENH` values
//! ("1" in person, "2" online, "3" by post), the fee lines' inner names (`MUCPHI`, `MOTA`) and
//! the agencies' `CAPDONVI` ("1" province, "2" district, "3" commune).
//!
//! The codes a `DongBoHoSoMC` may name are the fixture's, plus `DEFAULT_CATALOGUE` and those
//! added through `add_catalogue`, minus the withdrawn ones. Only the fixture's procedures are
//! listed: the others have no detail to give. A withdrawn procedure leaves the list, and
//! `LayThuTuc` and the dossier check refuse it until restored; the Thanh Hóa fork marks such a
//! procedure unused, which is what a client should do with one that vanished.
//!
//! Control: `POST /_mock/catalogue/withdraw {"MaTTHC"}`, `/_mock/catalogue/restore {"MaTTHC"}`
//! (204, or 404 for a code the mock never knew) and `/_mock/catalogue/down {"down": bool}`
//! (`LayDanhSachTTHC` and `LayThuTuc` answer 503 while down, so a failed sync can be shown).

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::session::refused;
use super::{Inner, PortalState};

/// The fixture, read once. A fixture that does not parse gives an empty catalogue (a unit test
/// holds it to 6 to 10 procedures), never a panic in a running mock.
static FIXTURE: LazyLock<Fixture> =
    LazyLock::new(|| serde_json::from_str(include_str!("../../fixtures/catalogue.json")).unwrap_or_default());

#[derive(Deserialize, Default)]
struct Fixture {
    /// The procedures as `LayThuTuc` gives them.
    procedures: Vec<Value>,
    /// `MALINHVUC` → `MANGANH`: the sector a field belongs to, for `LayDanhMucLinhVuc`.
    sectors: BTreeMap<String, String>,
    /// `LayDanhMucCoQuan`'s entries.
    agencies: Vec<Value>,
}

/// What the control API changes about the catalogue, and the calls it got.
#[derive(Debug, Default)]
pub(super) struct CatalogueState {
    /// Codes withdrawn; only codes the mock knows get in, so the set stays bounded.
    withdrawn: HashSet<String>,
    /// `LayDanhSachTTHC` and `LayThuTuc` answer 503 while set.
    down: bool,
    list_calls: u64,
    detail_calls: u64,
}

fn code_of(p: &Value) -> &str {
    p.get("MATTHC").and_then(Value::as_str).unwrap_or("")
}

fn in_fixture(code: &str) -> bool {
    FIXTURE.procedures.iter().any(|p| code_of(p) == code)
}

/// A code the mock has ever known (withdrawn or not).
fn ever_known(s: &Inner, code: &str) -> bool {
    in_fixture(code) || s.catalogue.contains(code)
}

/// A `MaTTHC` the dossier check takes: known and not withdrawn.
pub(super) fn knows(s: &Inner, code: &str) -> bool {
    !s.cat.withdrawn.contains(code) && ever_known(s, code)
}

/// The fixture's procedures not withdrawn, in the fixture's order.
fn listed(s: &Inner) -> impl Iterator<Item = &'static Value> + '_ {
    FIXTURE.procedures.iter().filter(|p| !s.cat.withdrawn.contains(code_of(p)))
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({"message": "Service Unavailable"}))
}

/// The share endpoint's catalogue services; `None` for any other service.
pub(super) fn share_service(s: &mut Inner, service: &str) -> Option<HttpResponse> {
    let result: Vec<Value> = match service {
        "LayDanhSachTTHC" => {
            s.cat.list_calls += 1;
            if s.cat.down {
                return Some(unavailable());
            }
            listed(s)
                .map(|p| json!({"MATTHC": code_of(p), "TENTTHC": p.get("TENTTHC").cloned().unwrap_or(Value::Null)}))
                .collect()
        }
        "LayDanhMucLinhVuc" => fields(),
        "LayDanhMucCoQuan" => FIXTURE.agencies.clone(),
        _ => return None,
    };
    Some(HttpResponse::Ok().json(json!({"error_code": 0, "result": result})))
}

/// The fields every fixture procedure names, once each, with their sector.
fn fields() -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in &FIXTURE.procedures {
        let Some(Value::Array(fs)) = p.get("LINHVUCTHUCHIEN") else {
            continue;
        };
        for f in fs {
            let code = f.get("MALINHVUC").and_then(Value::as_str).unwrap_or("");
            if code.is_empty() || !seen.insert(code) {
                continue;
            }
            let sector = FIXTURE.sectors.get(code).map_or("", String::as_str);
            out.push(json!({"MALINHVUC": code, "TENLINHVUC": f.get("TENLINHVUC").cloned().unwrap_or(Value::Null), "MANGANH": sector}));
        }
    }
    out
}

/// `LayThuTuc` `{maTTHC}` on the integration endpoint: the whole procedure in `result`, or a
/// refusal for a code unknown or withdrawn.
pub(super) fn detail(s: &mut Inner, b: &Map<String, Value>) -> HttpResponse {
    s.cat.detail_calls += 1;
    if s.cat.down {
        return unavailable();
    }
    let code = b.get("maTTHC").and_then(Value::as_str).unwrap_or("");
    if code.is_empty() {
        s.counters.refused += 1;
        return refused(2, "Thiếu mã thủ tục hành chính (maTTHC)");
    }
    let found = listed(s).find(|p| code_of(p) == code);
    match found {
        Some(p) => HttpResponse::Ok().json(json!({"error_code": 0, "result": [p]})),
        None => {
            s.counters.refused += 1;
            refused(2, &format!("Không tìm thấy thủ tục hành chính {code}"))
        }
    }
}

impl PortalState {
    /// Withdraws a procedure: it leaves `LayDanhSachTTHC`, and `LayThuTuc` and `DongBoHoSoMC`
    /// refuse it. `false` when the mock never knew the code (nothing changes).
    pub fn withdraw_procedure(&self, code: &str) -> bool {
        let mut s = self.lock();
        if !ever_known(&s, code) {
            return false;
        }
        s.cat.withdrawn.insert(code.to_string());
        true
    }

    /// Brings a withdrawn procedure back. `false` when the mock never knew the code.
    pub fn restore_procedure(&self, code: &str) -> bool {
        let mut s = self.lock();
        s.cat.withdrawn.remove(code);
        ever_known(&s, code)
    }

    /// The codes `LayDanhSachTTHC` lists now, in its order.
    pub fn catalogue_codes(&self) -> Vec<String> {
        let s = self.lock();
        listed(&s).map(|p| code_of(p).to_string()).collect()
    }

    /// `(LayDanhSachTTHC, LayThuTuc)` calls on a live session, answered or failed by
    /// `set_catalogue_down`.
    pub fn catalogue_calls(&self) -> (u64, u64) {
        let s = self.lock();
        (s.cat.list_calls, s.cat.detail_calls)
    }

    /// While `true`, `LayDanhSachTTHC` and `LayThuTuc` answer HTTP 503; nothing else changes.
    pub fn set_catalogue_down(&self, down: bool) {
        self.lock().cat.down = down;
    }
}

#[derive(Deserialize)]
pub(super) struct Code {
    #[serde(rename = "MaTTHC")]
    ma_tthc: String,
}

fn done(known: bool, code: &str) -> HttpResponse {
    if known {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound().json(json!({"message": format!("unknown MaTTHC {code}")}))
    }
}

pub(super) async fn withdraw(state: web::Data<PortalState>, b: web::Json<Code>) -> HttpResponse {
    done(state.withdraw_procedure(&b.ma_tthc), &b.ma_tthc)
}

pub(super) async fn restore(state: web::Data<PortalState>, b: web::Json<Code>) -> HttpResponse {
    done(state.restore_procedure(&b.ma_tthc), &b.ma_tthc)
}

#[derive(Deserialize)]
pub(super) struct Down {
    down: bool,
}

pub(super) async fn set_down(state: web::Data<PortalState>, b: web::Json<Down>) -> HttpResponse {
    state.set_catalogue_down(b.down);
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvcqg::{DEFAULT_CATALOGUE, PortalConfig, routes};
    use actix_web::test::{TestRequest, call_service, init_service, read_body_json};

    const BIRTH: &str = "1.001193";

    fn call(session: &str, service: &str, extra: Value) -> Value {
        let mut b = json!({"session": session, "madonvi": "000.00.22.H46", "service": service});
        if let (Some(m), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        b
    }

    fn dossier(ma: &str, tthc: &str) -> Value {
        json!({"isUpdating": "False", "data": [{"MaHoSo": ma, "MaTTHC": tthc, "TrangThaiHoSo": "1",
            "NgayTiepNhan": "20241125083000", "LoaiDoiTuong": "1", "HinhThuc": "0"}]})
    }

    macro_rules! post {
        ($app:expr, $uri:expr, $body:expr) => {{
            let resp = call_service(&$app, TestRequest::post().uri($uri).set_json($body).to_request()).await;
            let status = resp.status().as_u16();
            let body: Value = if status == 204 { Value::Null } else { read_body_json(resp).await };
            (status, body)
        }};
    }

    macro_rules! app_and_session {
        ($state:expr) => {{
            let app = init_service(actix_web::App::new().configure(routes($state.clone()))).await;
            let (_, a) = post!(app, "/auth", json!({"username": "hcc-dev", "password": "hcc-dev-password"}));
            let session = a["session"].as_str().unwrap().to_string();
            (app, session)
        }};
    }

    #[test]
    fn the_fixture_is_real_shaped() {
        let n = FIXTURE.procedures.len();
        assert!((6..=10).contains(&n), "{n} procedures");
        let codes: HashSet<&str> = FIXTURE.procedures.iter().map(code_of).collect();
        assert_eq!(codes.len(), n, "codes are unique");
        for p in &FIXTURE.procedures {
            for field in [
                "MATTHC",
                "TENTTHC",
                "LINHVUCTHUCHIEN",
                "CACHTHUCTHUCHIEN",
                "THANHPHANHOSO",
                "KETQUATHUCHIEN",
                "CANCUPHAPLY",
                "COQUANTHUCHIEN",
            ] {
                assert!(p.get(field).is_some(), "{} lacks {field}", code_of(p));
            }
            assert!(p["CACHTHUCTHUCHIEN"][0]["THOIGIAN"][0]["PHILEPHI"].is_array());
            assert!(p["THANHPHANHOSO"][0]["GIAYTO"][0]["MAGIAYTO"].is_string());
            assert!(p["KETQUATHUCHIEN"][0]["MAKETQUA"].is_string());
        }
        assert!(fields().iter().all(|f| f["MANGANH"].as_str().is_some_and(|s| !s.is_empty())));
    }

    #[actix_web::test]
    async fn list_on_share_detail_on_integration() {
        let state = PortalState::new(PortalConfig::default());
        let (app, session) = app_and_session!(state);
        let (_, list) = post!(app, "/share", call(&session, "LayDanhSachTTHC", json!({})));
        assert_eq!(list["error_code"], 0, "{list}");
        let entries = list["result"].as_array().unwrap();
        assert_eq!(entries.len(), FIXTURE.procedures.len());
        for e in entries {
            let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["MATTHC", "TENTTHC"], "{e}");
        }
        assert!(
            entries
                .iter()
                .any(|e| e == &json!({"MATTHC": BIRTH, "TENTTHC": "Đăng ký khai sinh"}))
        );

        let (_, one) = post!(app, "/integration", call(&session, "LayThuTuc", json!({"maTTHC": BIRTH})));
        assert_eq!(one["error_code"], 0, "{one}");
        let p = &one["result"][0];
        assert_eq!(
            (p["MATTHC"].as_str(), p["LINHVUCTHUCHIEN"][0]["TENLINHVUC"].as_str()),
            (Some(BIRTH), Some("Hộ tịch"))
        );
        assert_eq!(p["KETQUATHUCHIEN"][0]["TENKETQUA"], "Giấy khai sinh (bản chính)");
        assert_eq!(p["CACHTHUCTHUCHIEN"][0]["THOIGIAN"][0]["DONVITINH"], "Ngày làm việc");

        let (_, on_share) = post!(app, "/share", call(&session, "LayThuTuc", json!({"maTTHC": BIRTH})));
        assert_eq!(on_share["error_code"], 4, "{on_share}");
        assert!(on_share["message"].as_str().unwrap().contains("không được hỗ trợ"));
        for extra in [json!({"maTTHC": "9.999999"}), json!({})] {
            let (_, a) = post!(app, "/integration", call(&session, "LayThuTuc", extra));
            assert_ne!(a["error_code"], 0, "{a}");
            assert!(a["result"].is_null() && a["message"].is_string(), "{a}");
        }

        let (_, lv) = post!(app, "/share", call(&session, "LayDanhMucLinhVuc", json!({})));
        assert!(
            lv["result"]
                .as_array()
                .unwrap()
                .contains(&json!({"MALINHVUC": "HOTICH", "TENLINHVUC": "Hộ tịch", "MANGANH": "TUPHAP"}))
        );
        let (_, cq) = post!(app, "/share", call(&session, "LayDanhMucCoQuan", json!({})));
        assert!(cq["result"].as_array().unwrap().len() >= 2);
        assert!(
            cq["result"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["MADONVI"].is_string() && a["CAPDONVI"].is_string())
        );
        assert_eq!(state.catalogue_calls(), (1, 3), "LayThuTuc on share is not a catalogue call");
    }

    #[actix_web::test]
    async fn withdraw_and_restore() {
        let state = PortalState::new(PortalConfig::default());
        let (app, session) = app_and_session!(state);
        assert_eq!(post!(app, "/_mock/catalogue/withdraw", json!({"MaTTHC": BIRTH})).0, 204);
        assert!(!state.catalogue_codes().contains(&BIRTH.to_string()));
        let (_, list) = post!(app, "/share", call(&session, "LayDanhSachTTHC", json!({})));
        assert!(list["result"].as_array().unwrap().iter().all(|e| e["MATTHC"] != BIRTH), "{list}");
        let (_, one) = post!(app, "/integration", call(&session, "LayThuTuc", json!({"maTTHC": BIRTH})));
        assert_eq!(one["error_code"], 2, "{one}");
        let (_, a) = post!(app, "/integration", call(&session, "DongBoHoSoMC", dossier("W-1", BIRTH)));
        assert_eq!(a["error_code"], 2, "{a}");
        assert!(a["message"].as_str().unwrap().contains("không tồn tại"), "{a}");

        // A code known only to the dossier check can be withdrawn too.
        assert!(state.withdraw_procedure(DEFAULT_CATALOGUE[0]));
        let (_, a) = post!(
            app,
            "/integration",
            call(&session, "DongBoHoSoMC", dossier("W-2", DEFAULT_CATALOGUE[0]))
        );
        assert_eq!(a["error_code"], 2, "{a}");
        assert!(state.restore_procedure(DEFAULT_CATALOGUE[0]));
        assert_eq!(post!(app, "/_mock/catalogue/withdraw", json!({"MaTTHC": "9.999999"})).0, 404);

        assert_eq!(post!(app, "/_mock/catalogue/restore", json!({"MaTTHC": BIRTH})).0, 204);
        assert_eq!(state.catalogue_codes().len(), FIXTURE.procedures.len());
        let (_, one) = post!(app, "/integration", call(&session, "LayThuTuc", json!({"maTTHC": BIRTH})));
        assert_eq!(one["result"][0]["MATTHC"], BIRTH, "{one}");
        for (ma, tthc) in [("W-1", BIRTH), ("W-2", DEFAULT_CATALOGUE[0])] {
            let (_, a) = post!(app, "/integration", call(&session, "DongBoHoSoMC", dossier(ma, tthc)));
            assert_eq!(a["error_code"], 0, "{tthc}: {a}");
        }
        state.add_catalogue("1.999999.000.00.00.H46");
        let (_, a) = post!(
            app,
            "/integration",
            call(&session, "DongBoHoSoMC", dossier("W-3", "1.999999.000.00.00.H46"))
        );
        assert_eq!(a["error_code"], 0, "added through add_catalogue: {a}");
    }

    #[actix_web::test]
    async fn no_session_and_down() {
        let state = PortalState::new(PortalConfig::default());
        let (app, session) = app_and_session!(state);
        state.set_stale_answer(Some(json!({"error_code": 401, "message": "Unauthorized"})));
        let (_, a) = post!(app, "/share", call("not-a-session", "LayDanhSachTTHC", json!({})));
        assert_eq!(a["error_code"], 401, "{a}");
        let (_, a) = post!(app, "/integration", call("not-a-session", "LayThuTuc", json!({"maTTHC": BIRTH})));
        assert_eq!(a["error_code"], 401, "{a}");
        assert_eq!(state.catalogue_calls(), (0, 0), "refused before the catalogue");

        assert_eq!(post!(app, "/_mock/catalogue/down", json!({"down": true})).0, 204);
        assert_eq!(post!(app, "/share", call(&session, "LayDanhSachTTHC", json!({}))).0, 503);
        assert_eq!(
            post!(app, "/integration", call(&session, "LayThuTuc", json!({"maTTHC": BIRTH}))).0,
            503
        );
        let (status, lv) = post!(app, "/share", call(&session, "LayDanhMucLinhVuc", json!({})));
        assert_eq!((status, &lv["error_code"]), (200, &json!(0)), "the other lists stay up");
        state.set_catalogue_down(false);
        let (status, _) = post!(app, "/share", call(&session, "LayDanhSachTTHC", json!({})));
        assert_eq!(status, 200);
        assert_eq!(state.catalogue_calls(), (2, 1));
    }
}
