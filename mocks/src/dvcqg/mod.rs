//! `mock-portal`: the National Public Service Portal as `shared/domain/dvcqg.md` describes it,
//! written from those notes alone. Auth, integration and share endpoints; sessions that expire;
//! strict checks of what arrives, refused the way the portal refuses (`error_code` and a
//! message); injected faults; and an inspection API that lists arrivals per `MaHoSo` and
//! counts duplicates and statuses that went backwards.
//!
//! Where the notes' evidence section says what public clients send, the mock takes only that:
//! `TrangThaiHoSo`, progress `TrangThai`, `LoaiDoiTuong` (1 to 4) and `HinhThuc` as strings of
//! digits, the fee lines' `Gia`, `LoaiPhiLePhi` and `HinhThucThu` as strings of digits too, and
//! `IsDeleted` as `"True"`/`"False"`. The real portal is only known to take those forms, so a
//! JSON number or boolean there is refused like bad data (`error_code` 2 and a message): a
//! client that slips back to numbers fails here rather than in production. `TraCuuHoSo`
//! answers in `result`, an array, empty when the dossier is unknown. And the LGSP in front can
//! be made to require a `dstcode` header: then any call without the right one, the login
//! included, gets HTTP 403 (the LGSP's "no permission"), before the portal sees it.
//!
//! Control API (`/_mock/...`): `faults`, `sessions`, `catalogue` (`{"add": [codes]}`: codes a
//! dossier may name), `catalogue/withdraw`, `catalogue/restore` and `catalogue/down` (see
//! `catalogue`), `dstcode`
//! (`{"required": "CODE"}` or `{"required": null}`), `lookup` (`{"answer": {...}}` makes every
//! `TraCuuHoSo` answer exactly that, `{"answer": null}` restores the real answer), `dossiers`
//! (POST a dossier object: the portal has it already, as if another system had created it),
//! `already_exists` (`{"error_code": -3}`: a create of a dossier the portal has is answered with
//! that code and "Hồ sơ ... đã tồn tại", as a second public client reads it; `null` restores
//! the default refusal, code 2), `refusals` (`{"MaHoSo": "X", "answer": {...}}`: every write of
//! that dossier is answered with exactly that JSON; `"answer": null` lifts it), `stale_answer`
//! (`{"answer": {...}}`: what a call on a stale session gets, instead of a random form);
//! inspection: `received` (`?MaHoSo=`), `stats`, and `per_second`: how many `/integration`
//! calls arrived in each Unix second (`{"1764122887": 50, ...}`), whatever their answer, to
//! hold a client to a portal's calls-per-second limit.
//!
//! Dossiers pushed down to the province, the file service (`getfile` on the share endpoint) and
//! their status back up (`DongBoTrangThaiHoSo`) live in [`push`] (also `crate::dvcqg_push`).
//!
//! The parts: this file holds the portal's state and its routes; `state` the methods tests
//! and tools call on it; `session` the LGSP gate, injected faults, the login and the envelope
//! every call shares; `integration` the writes and the look-up; `checks` the field checks they
//! apply; `share` the share endpoint; `catalogue` the procedure catalogue (from
//! `mocks/fixtures/catalogue.json`) on both endpoints; `control` the `/_mock/...` handlers.

mod catalogue;
mod checks;
mod control;
mod integration;
pub mod push;
mod session;
mod share;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web;
use serde::Serialize;
use serde_json::Value;

use crate::faults::Faults;

pub(crate) use checks::real_date;

#[derive(Debug, Clone)]
pub struct PortalConfig {
    pub username: String,
    pub password: String,
    pub madonvi: String,
    pub session_lifetime: Duration,
    pub paygov_partner: String,
    pub paygov_secret: String,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            username: "hcc-dev".into(),
            password: "hcc-dev-password".into(),
            madonvi: "000.00.22.H46".into(),
            session_lifetime: Duration::from_secs(30 * 60),
            paygov_partner: "HCC-DEV".into(),
            paygov_secret: "paygov-dev-secret".into(),
        }
    }
}

/// One accepted item, in arrival order.
#[derive(Debug, Clone, Serialize)]
pub struct Arrival {
    pub service: String,
    pub ma_ho_so: String,
    pub status: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_updating: Option<String>,
    pub item: Value,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PortalCounters {
    pub logins: u64,
    pub accepted: u64,
    pub refused: u64,
    /// Writes applied more than once: the same service with the same item (its `MaHoSo`
    /// included) accepted again. A client that repeats a write the portal applied shows here.
    pub duplicates: u64,
    /// A status change the life-cycle does not allow (e.g. 10 then 4), or progress whose
    /// `ThoiDiemXuLy` went back in time: what crossed wires would look like.
    pub backwards: u64,
    pub stale_session_answers: u64,
    pub failed_by_fault: u64,
    pub lookups: u64,
    /// Calls the LGSP turned away for a missing or wrong `dstcode` header.
    pub dstcode_refused: u64,
}

struct Inner {
    cfg: PortalConfig,
    sessions: HashMap<String, Instant>,
    /// Codes a dossier may name beside the fixture's: `DEFAULT_CATALOGUE` and `add_catalogue`'s.
    catalogue: HashSet<String>,
    /// Withdrawn procedures, the catalogue's fault switch and its call counters.
    cat: catalogue::CatalogueState,
    faults: Faults,
    arrivals: Vec<Arrival>,
    last_status: HashMap<String, u8>,
    last_progress_time: HashMap<String, String>,
    seen_items: HashSet<String>,
    dossiers: HashMap<String, Value>,
    counters: PortalCounters,
    /// When set, the `dstcode` header every call must carry.
    required_dstcode: Option<String>,
    /// When set, what every `TraCuuHoSo` answers instead of the truth.
    lookup_answer: Option<Value>,
    /// `/integration` calls by the Unix second they arrived in.
    per_second: BTreeMap<u64, u64>,
    /// When set, the `error_code` a create of a dossier the portal already has is answered
    /// with, beside the message "Hồ sơ ... đã tồn tại" (the notes, evidence 2026-12: 3 or -3);
    /// unset, the default refusal (2).
    exists_code: Option<Value>,
    /// Writes of these dossiers are answered with this JSON (a refusal the test chose).
    refusals: HashMap<String, Value>,
    /// When set, what a call on a stale session is answered with (HTTP 200), instead of one
    /// of the stale-session forms at random.
    stale_answer: Option<Value>,
    /// Every `/integration` call as it arrived, the newest 100,000 (what a client's evidence
    /// log must prove it sent; which trace each call said it belonged to).
    bodies: std::collections::VecDeque<Received>,
}

/// One `/integration` call as it arrived.
struct Received {
    /// The SHA-256 (hex) of its body.
    sha256: String,
    /// The `MaHoSo` it names.
    codes: Vec<String>,
    /// Its W3C `traceparent` header, if any.
    traceparent: Option<String>,
}

#[derive(Clone)]
pub struct PortalState {
    inner: Arc<Mutex<Inner>>,
    /// The payment platform the portal also plays.
    pub paygov: crate::paygov::PaygovState,
    /// Dossiers pushed down, the file service, their status back up (`dvcqg_push`).
    pub push: push::PushState,
}

/// Codes a dossier may name from the start, beside the catalogue fixture's (local variants the
/// existing tests use; they are not listed by `LayDanhSachTTHC`).
pub const DEFAULT_CATALOGUE: &[&str] = &[
    "1.004227.000.00.00.H46",
    "1.001612.000.00.00.H46",
    "2.000889.000.00.00.H46",
    "1.003003.000.00.00.H46",
];

pub fn routes(state: PortalState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
            .route("/auth", web::post().to(session::auth))
            .route("/integration", web::post().to(integration::integration))
            .route("/share", web::post().to(share::share))
            .route("/_mock/faults", web::post().to(control::set_faults))
            .route("/_mock/sessions", web::post().to(control::set_sessions))
            .route("/_mock/catalogue", web::post().to(control::add_catalogue))
            .route("/_mock/catalogue/withdraw", web::post().to(catalogue::withdraw))
            .route("/_mock/catalogue/restore", web::post().to(catalogue::restore))
            .route("/_mock/catalogue/down", web::post().to(catalogue::set_down))
            .route("/_mock/dstcode", web::post().to(control::set_dstcode))
            .route("/_mock/lookup", web::post().to(control::set_lookup))
            .route("/_mock/dossiers", web::post().to(control::seed_dossier))
            .route("/_mock/already_exists", web::post().to(control::set_exists_code))
            .route("/_mock/refusals", web::post().to(control::set_refusal))
            .route("/_mock/stale_answer", web::post().to(control::set_stale_answer))
            .route("/_mock/received", web::get().to(control::received))
            .route("/_mock/stats", web::get().to(control::stats))
            .route("/_mock/per_second", web::get().to(control::per_second))
            .configure(crate::paygov::routes(state.paygov.clone()))
            .configure(push::routes(state.push.clone()));
    }
}

pub fn spawn(bind: &str, state: PortalState) -> std::io::Result<crate::Running> {
    crate::spawn_server(bind, routes(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every `/integration` call counts in its second, refused or not; logins do not.
    #[actix_web::test]
    async fn integration_calls_are_counted_per_second() {
        use actix_web::test::{TestRequest, call_service, init_service, read_body_json};
        let state = PortalState::new(PortalConfig::default());
        let app = init_service(actix_web::App::new().configure(routes(state.clone()))).await;
        let login = json!({"username": "hcc-dev", "password": "hcc-dev-password"});
        call_service(&app, TestRequest::post().uri("/auth").set_json(&login).to_request()).await;
        for _ in 0..3 {
            call_service(&app, TestRequest::post().uri("/integration").set_payload("not json").to_request()).await;
        }
        let counts: BTreeMap<String, u64> =
            read_body_json(call_service(&app, TestRequest::get().uri("/_mock/per_second").to_request()).await).await;
        assert_eq!(counts.values().sum::<u64>(), 3, "{counts:?}");
        assert!((1..=2).contains(&counts.len()), "{counts:?}");
    }

    /// The portal over HTTP, in-process: the LGSP gate, the strict types, the look-up's shape.
    #[actix_web::test]
    async fn the_portal_over_http() {
        use actix_web::test::{TestRequest, call_service, init_service, read_body_json};
        let state = PortalState::new(PortalConfig::default());
        let app = init_service(actix_web::App::new().configure(routes(state.clone()))).await;
        let login = json!({"username": "hcc-dev", "password": "hcc-dev-password"});
        state.require_dstcode(Some("LGSP-QN".into()));
        for header in [None, Some("OTHER")] {
            let mut req = TestRequest::post().uri("/auth").set_json(&login);
            if let Some(h) = header {
                req = req.insert_header(("dstcode", h));
            }
            assert_eq!(call_service(&app, req.to_request()).await.status(), 403, "dstcode {header:?}");
        }
        let post = |uri: &str, body: &Value| {
            TestRequest::post()
                .uri(uri)
                .insert_header(("dstcode", "LGSP-QN"))
                .set_json(body)
                .to_request()
        };
        let answer: Value = read_body_json(call_service(&app, post("/auth", &login)).await).await;
        let session = answer["session"].as_str().unwrap().to_string();
        let call = |service: &str, extra: Value| {
            let mut b = json!({"session": session, "madonvi": "000.00.22.H46", "service": service});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            post("/integration", &b)
        };
        let lookup: Value = read_body_json(call_service(&app, call("TraCuuHoSo", json!({"mahoso": "M-1"}))).await).await;
        assert_eq!(lookup["result"], json!([]));
        let item = json!({"MaHoSo": "M-1", "MaTTHC": "1.004227.000.00.00.H46", "TrangThaiHoSo": "1",
            "NgayTiepNhan": "20241125083000", "LoaiDoiTuong": "1", "HinhThuc": "0",
            "TaiLieuNop": [{"TepDinhKemId": "f-1", "IsDeleted": "False"}]});
        for (field, number) in [("TrangThaiHoSo", json!(1)), ("LoaiDoiTuong", json!(1)), ("HinhThuc", json!(0))] {
            let mut bad = item.clone();
            bad[field] = number;
            let a: Value =
                read_body_json(call_service(&app, call("DongBoHoSoMC", json!({"isUpdating": "False", "data": [bad]}))).await).await;
            assert_eq!(a["error_code"], 2, "{field} as a number: {a}");
        }
        let mut bad = item.clone();
        bad["TaiLieuNop"][0]["IsDeleted"] = json!(false);
        let a: Value = read_body_json(call_service(&app, call("DongBoHoSoMC", json!({"isUpdating": "False", "data": [bad]}))).await).await;
        assert_eq!(a["error_code"], 2, "IsDeleted as a boolean: {a}");
        let a: Value = read_body_json(call_service(&app, call("DongBoHoSoMC", json!({"isUpdating": "False", "data": [item]}))).await).await;
        assert_eq!(a["error_code"], 0, "{a}");
        let lookup: Value = read_body_json(call_service(&app, call("TraCuuHoSo", json!({"mahoso": "M-1"}))).await).await;
        assert_eq!(lookup["result"][0]["MaHoSo"], "M-1");
        let progress = json!({"MaHoSo": "M-1", "TrangThai": 2, "ThoiDiemXuLy": "20241126091500"});
        let a: Value = read_body_json(call_service(&app, call("CapNhatTienDoHoSoMC", json!({"data": [progress]}))).await).await;
        assert_eq!(a["error_code"], 2, "TrangThai as a number: {a}");
        state.set_lookup_answer(Some(json!({"error_code": 0})));
        let lookup: Value = read_body_json(call_service(&app, call("TraCuuHoSo", json!({"mahoso": "M-1"}))).await).await;
        assert_eq!(lookup, json!({"error_code": 0}));
        let c = state.counters();
        assert_eq!((c.dstcode_refused, c.accepted, c.refused, c.logins), (2, 1, 5, 1));
        assert_eq!(state.arrivals_of("M-1")[0].status, 1);
    }
}
