//! `mock-dvclt`: the national civil-registration link-up (DVCLT, birth "KS" and death "KT"
//! registration) as `shared/domain/dvcqg.md` ("Civil-registration link-up") and
//! `docs/inbound.md` describe it, written from those notes alone, never from the adapters. The
//! paths are the project's defaults (only the detail path is public code; the rest are guesses).
//!
//! | call | method, path | body → answer |
//! |---|---|---|
//! | token | `POST /api/tokens` | `{"userName","password"}` → `{"token","refreshToken","refreshTokenExpiryTime"}`, 401 when wrong |
//! | list | `GET /api/lienthongdvclt/hosolienthong` | `{}` → `{"data": [{"id","maDonVi","maTTHC","module","maHoSo","ngayTiepNhan","techId"}]}`, the dossiers not yet acknowledged |
//! | detail | `GET /api/lienthongdvclt/hosolienthong/{id}` | `{}` → `{"data": {..., "data": "<JSON string of the inner dossier>", "fileDinhKem": []}}` |
//! | ack | `PUT /api/lienthongdvclt/hosolienthong/danhan` | `{"maHoSo","daNhan": true}` → "Cập nhật thành công" |
//! | status | `POST /api/lienthongdvclt/hosolienthong/trangthai` | the status fields → "Cập nhật trạng thái thành công", or "Hồ sơ đã tồn tại trạng thái" for a repeat |
//!
//! Refused as the fork's client never is: without `Accept: application/json`, 406; but for the
//! token call, without `Authorization: Bearer <a live token>`, 401; without a JSON object body
//! (`Content-Type: application/json`; a GET sends `{}`), 400. The inner dossier carries the
//! `hoTich` XML string and the files `fileDinhKem[{id, loaiGiayTo, tenGiayTo, tenTepDinhKem,
//! huyGiayTo, duLieuTepDinhKem}]` (or the outer object does, when the dossier was added with
//! `"files_in": "outer"`). Text answers take one of several forms at random (see
//! [`wire::AnswerForm`]): a client must look for the words, as the fork's does.
//!
//! Control API (`/_mock/dvclt/...`): `POST dossiers` ([`NewDossier`]), `POST expire_tokens`,
//! `POST faults` ([`DvcltFaults`], replacing the last), `GET acks` (`{"acks": [{maHoSo,
//! at_ms}], "counts": {maHoSo: n}}`), `GET statuses` ([`wire::StatusRecord`] in order), `GET
//! calls` ([`DvcltCalls`]).

mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use thiserror::Error;

pub use wire::{AnswerForm, StatusRecord};

pub const TOKEN_PATH: &str = "/api/tokens";
pub const LIST_PATH: &str = "/api/lienthongdvclt/hosolienthong";
pub const ACK_PATH: &str = "/api/lienthongdvclt/hosolienthong/danhan";
pub const STATUS_PATH: &str = "/api/lienthongdvclt/hosolienthong/trangthai";
/// The most dossiers the mock holds, and the most acks and statuses it keeps.
pub const MAX_RECORDS: usize = 100_000;
/// The longest `hold_acks_ms` (a fault must not hang a test forever).
const MAX_HOLD_MS: u64 = 120_000;

#[derive(Debug, Clone)]
pub struct DvcltConfig {
    pub username: String,
    pub password: String,
}

impl Default for DvcltConfig {
    fn default() -> Self {
        DvcltConfig {
            username: "hcc-dev".into(),
            password: "hcc-dev-dvclt-password".into(),
        }
    }
}

/// A file of a dossier added through the control API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewFile {
    pub name: String,
    pub base64: String,
    #[serde(rename = "loaiGiayTo", default)]
    pub loai_giay_to: Option<String>,
    #[serde(rename = "tenGiayTo", default)]
    pub ten_giay_to: Option<String>,
}

/// A dossier waiting at the link-up (`POST /_mock/dvclt/dossiers`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NewDossier {
    pub id: String,
    #[serde(rename = "maHoSo")]
    pub ma_ho_so: String,
    #[serde(rename = "maTTHC")]
    pub ma_tthc: String,
    /// `KS` (birth) or `KT` (death).
    pub module: String,
    pub files: Vec<NewFile>,
    #[serde(rename = "maDonVi")]
    pub ma_don_vi: Option<i64>,
    /// `dd/MM/yyyy HH:mm:ss`; now by default.
    #[serde(rename = "ngayTiepNhan")]
    pub ngay_tiep_nhan: Option<String>,
    #[serde(rename = "techId")]
    pub tech_id: Option<String>,
    /// The `<hoTich>` XML string; a made-up one for the module by default.
    #[serde(rename = "hoTich")]
    pub ho_tich: Option<String>,
    /// `"outer"` puts `fileDinhKem` in the outer `data` instead of the inner dossier.
    pub files_in: Option<String>,
    /// Merged into the inner dossier last.
    pub extra: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DvcltError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("module must be KS or KT, not {0:?}")]
    Module(String),
    #[error("a dossier with id {0} or its maHoSo is there already")]
    Duplicate(String),
    #[error("at most {MAX_RECORDS} dossiers")]
    Full,
}

/// One acknowledgement recorded (after any `hold_acks_ms`).
#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    #[serde(rename = "maHoSo")]
    pub ma_ho_so: String,
    pub at_ms: u64,
}

/// Faults, replaced whole by each `POST /_mock/dvclt/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DvcltFaults {
    /// Every link-up call answers 503.
    pub down: bool,
    /// An acknowledgement of a known dossier is answered (and recorded) only after this long.
    pub hold_acks_ms: u64,
    /// How ack and status answers are worded (random by default).
    pub answer_form: AnswerForm,
}

/// Calls by kind, counted as they arrive whatever their answer, and the refusals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DvcltCalls {
    pub token: u64,
    pub list: u64,
    pub detail: u64,
    pub ack: u64,
    pub status: u64,
    /// Statuses that repeated one already taken ("đã tồn tại").
    pub status_repeats: u64,
    /// Held acks whose client went away before the answer: not recorded.
    pub acks_abandoned: u64,
    pub refused_401: u64,
    pub refused_406: u64,
    pub refused_400: u64,
    pub refused_503: u64,
}

struct Dossier {
    d: NewDossier,
    acked: bool,
}

#[derive(Default)]
struct Inner {
    dossiers: Vec<Dossier>,
    tokens: HashSet<String>,
    acks: Vec<Ack>,
    ack_counts: BTreeMap<String, u64>,
    statuses: Vec<StatusRecord>,
    status_keys: HashSet<(String, i64, String)>,
    faults: DvcltFaults,
    calls: DvcltCalls,
}

#[derive(Clone)]
pub struct DvcltState {
    cfg: Arc<DvcltConfig>,
    inner: Arc<Mutex<Inner>>,
}

impl DvcltState {
    pub fn new(cfg: DvcltConfig) -> Self {
        DvcltState {
            cfg: Arc::new(cfg),
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A dossier now waits at the link-up, listed until it is acknowledged.
    pub fn add_dossier(&self, d: NewDossier) -> Result<(), DvcltError> {
        if d.id.is_empty() {
            return Err(DvcltError::Missing("id"));
        }
        if d.ma_ho_so.is_empty() {
            return Err(DvcltError::Missing("maHoSo"));
        }
        if d.ma_tthc.is_empty() {
            return Err(DvcltError::Missing("maTTHC"));
        }
        if d.module != "KS" && d.module != "KT" {
            return Err(DvcltError::Module(d.module));
        }
        let mut s = self.lock();
        if s.dossiers.len() >= MAX_RECORDS {
            return Err(DvcltError::Full);
        }
        if s.dossiers.iter().any(|x| x.d.id == d.id || x.d.ma_ho_so == d.ma_ho_so) {
            return Err(DvcltError::Duplicate(d.id));
        }
        s.dossiers.push(Dossier { d, acked: false });
        Ok(())
    }

    /// Every acknowledgement recorded, in order (repeats included).
    pub fn acks(&self) -> Vec<Ack> {
        self.lock().acks.clone()
    }

    /// Acknowledgements per `maHoSo`.
    pub fn ack_counts(&self) -> BTreeMap<String, u64> {
        self.lock().ack_counts.clone()
    }

    /// The statuses taken, in order; a repeat is not taken again.
    pub fn statuses(&self) -> Vec<StatusRecord> {
        self.lock().statuses.clone()
    }

    pub fn calls(&self) -> DvcltCalls {
        self.lock().calls.clone()
    }

    pub fn set_faults(&self, f: DvcltFaults) {
        self.lock().faults = f;
    }

    /// Every token issued so far stops working.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// The `maHoSo` of the dossiers not yet acknowledged, in the order they were added.
    pub fn waiting(&self) -> Vec<String> {
        let s = self.lock();
        s.dossiers.iter().filter(|x| !x.acked).map(|x| x.d.ma_ho_so.clone()).collect()
    }
}

pub fn routes(state: DvcltState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route(TOKEN_PATH, web::post().to(token))
            .route(LIST_PATH, web::get().to(list))
            .route(ACK_PATH, web::put().to(ack))
            .route(STATUS_PATH, web::post().to(status))
            .route(&format!("{LIST_PATH}/{{id}}"), web::get().to(detail))
            .route("/_mock/dvclt/dossiers", web::post().to(control_add))
            .route("/_mock/dvclt/expire_tokens", web::post().to(control_expire))
            .route("/_mock/dvclt/faults", web::post().to(control_faults))
            .route("/_mock/dvclt/acks", web::get().to(control_acks))
            .route("/_mock/dvclt/statuses", web::get().to(control_statuses))
            .route("/_mock/dvclt/calls", web::get().to(control_calls));
    }
}

/// Binds `bind` (port 0 for any free port) and spawns the mock on the current runtime. Unlike
/// the other mocks it keeps each connection's socket at hand, so a held ack can notice its
/// client going away (actix-web does not cancel a handler when the peer disconnects).
pub fn spawn(bind: &str, state: DvcltState) -> std::io::Result<crate::Running> {
    let listener = std::net::TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let configure = routes(state);
    let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
        .on_connect(remember_peer)
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(crate::Running { addr, handle })
}

/// The connection a request came on (a duplicate of its socket), to peek at.
struct Peer(std::net::TcpStream);

fn remember_peer(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Ok(fd) = tcp.as_fd().try_clone_to_owned()
        {
            ext.insert(Peer(std::net::TcpStream::from(fd)));
        }
    }
    #[cfg(not(unix))]
    let _ = (conn, ext);
}

/// Whether the client of `req` closed its connection. The socket is non-blocking (the server's
/// is, and a duplicate shares that), so a live, quiet peer answers `WouldBlock`.
fn peer_gone(req: &HttpRequest) -> bool {
    let Some(Peer(socket)) = req.conn_data::<Peer>() else {
        return false;
    };
    match socket.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Token,
    List,
    Detail,
    Ack,
    Status,
}

/// The checks every call passes before its own: the fault, `Accept`, the bearer token (but
/// for the token call), the JSON body. `Ok` is the body.
fn gate(state: &DvcltState, req: &HttpRequest, body: &[u8], kind: Kind) -> Result<Map<String, Value>, Box<HttpResponse>> {
    let mut s = state.lock();
    let c = &mut s.calls;
    match kind {
        Kind::Token => c.token += 1,
        Kind::List => c.list += 1,
        Kind::Detail => c.detail += 1,
        Kind::Ack => c.ack += 1,
        Kind::Status => c.status += 1,
    }
    if s.faults.down {
        s.calls.refused_503 += 1;
        return Err(Box::new(
            HttpResponse::ServiceUnavailable().json(json!({"message": "Service Unavailable"})),
        ));
    }
    if !wire::accepts_json(req) {
        s.calls.refused_406 += 1;
        return Err(Box::new(HttpResponse::NotAcceptable().finish()));
    }
    if kind != Kind::Token {
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !s.tokens.contains(bearer) {
            s.calls.refused_401 += 1;
            return Err(Box::new(
                HttpResponse::Unauthorized().json(json!({"message": "Authentication Failed."})),
            ));
        }
    }
    wire::json_object(req, body).map_err(|m| {
        s.calls.refused_400 += 1;
        Box::new(HttpResponse::BadRequest().json(json!({"message": m})))
    })
}

async fn token(state: web::Data<DvcltState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let b = match gate(&state, &req, &body, Kind::Token) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let ok = b.get("userName").and_then(Value::as_str) == Some(state.cfg.username.as_str())
        && b.get("password").and_then(Value::as_str) == Some(state.cfg.password.as_str());
    if !ok {
        state.lock().calls.refused_401 += 1;
        return HttpResponse::Unauthorized().json(json!({"message": "Authentication Failed."}));
    }
    let random = || format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let (token, refresh) = (random(), random());
    let mut s = state.lock();
    // A bound: old tokens go when too many are live (a client logging in in a loop).
    if s.tokens.len() >= MAX_RECORDS {
        s.tokens.clear();
    }
    s.tokens.insert(token.clone());
    HttpResponse::Ok().json(json!({
        "token": token,
        "refreshToken": refresh,
        "refreshTokenExpiryTime": wire::iso(wire::unix_now() + 7 * 86_400),
    }))
}

/// The list's and the detail's outer fields of a dossier.
fn outer(d: &NewDossier) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(d.id));
    m.insert("maDonVi".into(), json!(d.ma_don_vi.unwrap_or(38)));
    m.insert("maTTHC".into(), json!(d.ma_tthc));
    m.insert("module".into(), json!(d.module));
    m.insert("maHoSo".into(), json!(d.ma_ho_so));
    m.insert(
        "ngayTiepNhan".into(),
        json!(d.ngay_tiep_nhan.clone().unwrap_or_else(|| wire::dmy(wire::unix_now()))),
    );
    m.insert(
        "techId".into(),
        json!(d.tech_id.clone().unwrap_or_else(|| format!("tech-{}", d.id))),
    );
    m
}

fn files(d: &NewDossier) -> Vec<Value> {
    d.files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"id": format!("{}-{}", d.id, i + 1), "loaiGiayTo": f.loai_giay_to.clone().unwrap_or_else(|| "GT01".into()),
            "tenGiayTo": f.ten_giay_to.clone().unwrap_or_else(|| f.name.clone()), "tenTepDinhKem": f.name,
            "huyGiayTo": false, "duLieuTepDinhKem": f.base64})
        })
        .collect()
}

/// A made-up `hoTich` XML for the module: names only, never an identity number.
fn ho_tich(module: &str) -> String {
    if module == "KT" {
        "<hoTich><khaiTu><nktHoTen>Trần Văn Thử</nktHoTen><nktNgayChet>01/11/2026</nktNgayChet></khaiTu></hoTich>".into()
    } else {
        "<hoTich><khaiSinh><nksHoTen>Nguyễn Thị Thử</nksHoTen><nksNgaySinh>20/11/2026</nksNgaySinh><nksGioiTinh>2</nksGioiTinh></khaiSinh></hoTich>".into()
    }
}

async fn list(state: web::Data<DvcltState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Err(r) = gate(&state, &req, &body, Kind::List) {
        return *r;
    }
    let s = state.lock();
    let data: Vec<Value> = s.dossiers.iter().filter(|x| !x.acked).map(|x| Value::Object(outer(&x.d))).collect();
    HttpResponse::Ok().json(json!({"data": data}))
}

async fn detail(state: web::Data<DvcltState>, req: HttpRequest, body: web::Bytes, id: web::Path<String>) -> HttpResponse {
    if let Err(r) = gate(&state, &req, &body, Kind::Detail) {
        return *r;
    }
    let s = state.lock();
    let Some(x) = s.dossiers.iter().find(|x| x.d.id == *id) else {
        return HttpResponse::NotFound().json(json!({"data": null, "message": "Không tìm thấy hồ sơ"}));
    };
    let d = &x.d;
    let in_outer = d.files_in.as_deref() == Some("outer");
    let mut inner = outer(d);
    inner.insert("hoTich".into(), json!(d.ho_tich.clone().unwrap_or_else(|| ho_tich(&d.module))));
    if !in_outer {
        inner.insert("fileDinhKem".into(), json!(files(d)));
    }
    if let Some(extra) = &d.extra {
        inner.extend(extra.clone());
    }
    let mut o = outer(d);
    o.insert("data".into(), json!(Value::Object(inner).to_string()));
    o.insert("fileDinhKem".into(), json!(if in_outer { files(d) } else { Vec::new() }));
    HttpResponse::Ok().json(json!({"data": o}))
}

async fn ack(state: web::Data<DvcltState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let b = match gate(&state, &req, &body, Kind::Ack) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let (form, hold) = {
        let s = state.lock();
        (s.faults.answer_form, s.faults.hold_acks_ms.min(MAX_HOLD_MS))
    };
    let ma = b.get("maHoSo").and_then(Value::as_str).unwrap_or("").to_string();
    if b.get("daNhan") != Some(&json!(true)) {
        return wire::worded(form, false, "Dữ liệu không hợp lệ: daNhan phải là true");
    }
    if !state.lock().dossiers.iter().any(|x| x.d.ma_ho_so == ma) {
        return wire::worded(form, false, &format!("Không tìm thấy hồ sơ {ma}"));
    }
    // Held before anything is recorded: a client gone meanwhile leaves no ack behind, as a
    // link-up that never finished the request would.
    let until = Instant::now() + Duration::from_millis(hold);
    loop {
        if peer_gone(&req) {
            state.lock().calls.acks_abandoned += 1;
            return HttpResponse::Gone().finish();
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_millis(20))).await;
    }
    let mut s = state.lock();
    if let Some(x) = s.dossiers.iter_mut().find(|x| x.d.ma_ho_so == ma) {
        x.acked = true;
    }
    if s.acks.len() < MAX_RECORDS {
        s.acks.push(Ack {
            ma_ho_so: ma.clone(),
            at_ms: crate::dvcqg_push::now_ms(),
        });
    }
    *s.ack_counts.entry(ma).or_default() += 1;
    wire::worded(form, true, "Cập nhật thành công")
}

async fn status(state: web::Data<DvcltState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let b = match gate(&state, &req, &body, Kind::Status) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut s = state.lock();
    let form = s.faults.answer_form;
    let tthc: HashMap<&str, &str> = s.dossiers.iter().map(|x| (x.d.ma_ho_so.as_str(), x.d.ma_tthc.as_str())).collect();
    let checked = wire::check_status(&b, |so| tthc.get(so).map(|t| t.to_string()));
    drop(tthc);
    let record = match checked {
        Ok(r) => r,
        Err(m) => return HttpResponse::BadRequest().json(json!({"succeeded": false, "message": m})),
    };
    if !s.status_keys.insert(record.key()) {
        s.calls.status_repeats += 1;
        return wire::worded(form, false, "Hồ sơ đã tồn tại trạng thái");
    }
    if s.statuses.len() < MAX_RECORDS {
        s.statuses.push(record);
    }
    wire::worded(form, true, "Cập nhật trạng thái thành công")
}

async fn control_add(state: web::Data<DvcltState>, b: web::Json<NewDossier>) -> HttpResponse {
    match state.add_dossier(b.into_inner()) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => HttpResponse::BadRequest().json(json!({"message": e.to_string()})),
    }
}

async fn control_expire(state: web::Data<DvcltState>) -> HttpResponse {
    state.expire_tokens();
    HttpResponse::NoContent().finish()
}

async fn control_faults(state: web::Data<DvcltState>, f: web::Json<DvcltFaults>) -> HttpResponse {
    state.set_faults(f.into_inner());
    HttpResponse::NoContent().finish()
}

async fn control_acks(state: web::Data<DvcltState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"acks": state.acks(), "counts": state.ack_counts()}))
}

async fn control_statuses(state: web::Data<DvcltState>) -> HttpResponse {
    HttpResponse::Ok().json(state.statuses())
}

async fn control_calls(state: web::Data<DvcltState>) -> HttpResponse {
    HttpResponse::Ok().json(state.calls())
}
