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
//! Control API (`/_mock/...`): `faults`, `sessions`, `catalogue`, `dstcode`
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
//! their status back up (`DongBoTrangThaiHoSo`) live in [`crate::dvcqg_push`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::{Faults, Injected};

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
    catalogue: HashSet<String>,
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
}

#[derive(Clone)]
pub struct PortalState {
    inner: Arc<Mutex<Inner>>,
    /// The payment platform the portal also plays.
    pub paygov: crate::paygov::PaygovState,
    /// Dossiers pushed down, the file service, their status back up (`dvcqg_push`).
    pub push: crate::dvcqg_push::PushState,
}

/// Catalogue codes the mock knows from the start (the fixture's, and a few more).
pub const DEFAULT_CATALOGUE: &[&str] = &[
    "1.004227.000.00.00.H46",
    "1.001612.000.00.00.H46",
    "2.000889.000.00.00.H46",
    "1.003003.000.00.00.H46",
];

impl PortalState {
    pub fn new(cfg: PortalConfig) -> Self {
        PortalState {
            paygov: crate::paygov::PaygovState::new(&cfg.paygov_partner, &cfg.paygov_secret),
            push: crate::dvcqg_push::PushState::default(),
            inner: Arc::new(Mutex::new(Inner {
                cfg,
                sessions: HashMap::new(),
                catalogue: DEFAULT_CATALOGUE.iter().map(|s| s.to_string()).collect(),
                faults: Faults::default(),
                arrivals: Vec::new(),
                last_status: HashMap::new(),
                last_progress_time: HashMap::new(),
                seen_items: HashSet::new(),
                dossiers: HashMap::new(),
                counters: PortalCounters::default(),
                required_dstcode: None,
                lookup_answer: None,
                per_second: BTreeMap::new(),
                exists_code: None,
                refusals: HashMap::new(),
                stale_answer: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counters(&self) -> PortalCounters {
        self.lock().counters.clone()
    }

    /// `/integration` calls per Unix second, every second that had one.
    pub fn per_second(&self) -> BTreeMap<u64, u64> {
        self.lock().per_second.clone()
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.lock().arrivals.clone()
    }

    /// Writes accepted more than once, as (service, `MaHoSo`, times), sorted: what made
    /// `duplicates` count, named.
    pub fn repeated_writes(&self) -> Vec<(String, String, usize)> {
        let mut times: HashMap<(String, String), (String, usize)> = HashMap::new();
        for a in &self.lock().arrivals {
            let e = times
                .entry((a.service.clone(), a.item.to_string()))
                .or_insert_with(|| (a.ma_ho_so.clone(), 0));
            e.1 += 1;
        }
        let mut out: Vec<(String, String, usize)> = times
            .into_iter()
            .filter(|(_, (_, n))| *n > 1)
            .map(|((service, _), (ma, n))| (service, ma, n))
            .collect();
        out.sort();
        out
    }

    /// Arrivals of one dossier, in order.
    pub fn arrivals_of(&self, ma: &str) -> Vec<Arrival> {
        self.lock().arrivals.iter().filter(|a| a.ma_ho_so == ma).cloned().collect()
    }

    pub fn set_faults(&self, f: Faults) {
        self.lock().faults = f;
    }

    pub fn set_session_lifetime(&self, d: Duration) {
        self.lock().cfg.session_lifetime = d;
    }

    pub fn add_catalogue(&self, code: &str) {
        self.lock().catalogue.insert(code.to_string());
    }

    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Makes the LGSP require `dstcode` on every call (`None`: no requirement, the default).
    pub fn require_dstcode(&self, code: Option<String>) {
        self.lock().required_dstcode = code;
    }

    /// Makes every `TraCuuHoSo` answer `answer` verbatim (HTTP 200); `None` restores the truth.
    pub fn set_lookup_answer(&self, answer: Option<Value>) {
        self.lock().lookup_answer = answer;
    }

    /// Makes a create of a dossier the portal already has answer `error_code` `code` with
    /// "Hồ sơ ... đã tồn tại" (`None`: the default refusal, code 2).
    pub fn set_exists_code(&self, code: Option<Value>) {
        self.lock().exists_code = code;
    }

    /// Makes every write of `ma` (`DongBoHoSoMC`, `CapNhatTienDoHoSoMC`) answer `answer`
    /// (HTTP 200) before any other check but the session's; `None` lifts it.
    pub fn set_refusal(&self, ma: &str, answer: Option<Value>) {
        let mut s = self.lock();
        match answer {
            Some(a) => s.refusals.insert(ma.to_string(), a),
            None => s.refusals.remove(ma),
        };
    }

    /// Makes a call on a stale session answer `answer` (HTTP 200) instead of a random one of
    /// the stale-session forms; `None` restores those.
    pub fn set_stale_answer(&self, answer: Option<Value>) {
        self.lock().stale_answer = answer;
    }

    /// The portal has this dossier already, as if another system had synced it. It is not an
    /// arrival: nothing came through the integration endpoint.
    pub fn seed_dossier(&self, item: Value) -> Result<(), String> {
        let ma = item
            .get("MaHoSo")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or("MaHoSo is required")?
            .to_string();
        self.lock().dossiers.insert(ma, item);
        Ok(())
    }
}

/// The life-cycle's allowed moves; anything else seen on the wire counts as "backwards".
fn allowed(from: u8, to: u8) -> bool {
    from == to
        || matches!(
            (from, to),
            (1, 2 | 3 | 7) | (2, 4..=9) | (4, 5..=9) | (5, 4 | 7 | 8) | (6, 4 | 7 | 8 | 9) | (9, 6 | 10)
        )
}

/// A code public clients send as a string of digits: the canonical decimal of a number in
/// `range` (`"4"`, not `4`, `"04"` or `"4.0"`). `Err` is the refusal's message.
fn digit_code(item: &Value, name: &str, range: std::ops::RangeInclusive<u8>, i: usize) -> Result<Option<u8>, String> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse::<u8>()
            .ok()
            .filter(|n| range.contains(n) && n.to_string() == *s)
            .map(Some)
            .ok_or(format!("data[{i}]: {name} không hợp lệ")),
        Some(Value::Number(_)) => Err(format!("data[{i}]: {name} phải là chuỗi (\"4\"), không phải số")),
        Some(_) => Err(format!("data[{i}]: {name} phải là chuỗi số")),
    }
}

/// `TaiLieuNop[].IsDeleted`: `"True"` or `"False"`, the strings public clients send.
fn tai_lieu_flags(item: &Value, i: usize) -> Result<(), String> {
    let Some(Value::Array(files)) = item.get("TaiLieuNop") else {
        return Ok(());
    };
    for (j, f) in files.iter().enumerate() {
        match f.get("IsDeleted") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "True" || s == "False" => {}
            Some(Value::Bool(_)) => {
                return Err(format!(
                    "data[{i}].TaiLieuNop[{j}]: IsDeleted phải là chuỗi \"True\"/\"False\", không phải kiểu boolean"
                ));
            }
            Some(_) => return Err(format!("data[{i}].TaiLieuNop[{j}]: IsDeleted không hợp lệ")),
        }
    }
    Ok(())
}

/// The fee lines' numbers, `DanhSachLePhi[].Gia`, `LoaiPhiLePhi` and `HinhThucThu`: strings of
/// digits, as the public client that sends fee lines writes them (the notes, evidence 2026-12);
/// a JSON number or a non-canonical string (`"0100"`) is refused like bad data.
fn fee_lines(item: &Value, i: usize) -> Result<(), String> {
    let Some(Value::Array(fees)) = item.get("DanhSachLePhi") else {
        return Ok(());
    };
    for (j, fee) in fees.iter().enumerate() {
        for name in ["Gia", "LoaiPhiLePhi", "HinhThucThu"] {
            match fee.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) if v.parse::<u64>().is_ok_and(|n| n.to_string() == *v) => {}
                Some(Value::Number(_)) => {
                    return Err(format!("data[{i}].DanhSachLePhi[{j}]: {name} phải là chuỗi số, không phải số"));
                }
                Some(_) => return Err(format!("data[{i}].DanhSachLePhi[{j}]: {name} không hợp lệ")),
            }
        }
    }
    Ok(())
}

/// `yyyyMMddHHmmss`, a real calendar time.
pub(crate) fn real_date(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let p = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap_or(99);
    let (y, mo, d, h, mi, se) = (p(0, 4), p(4, 6), p(6, 8), p(8, 10), p(10, 12), p(12, 14));
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12).contains(&mo) && d >= 1 && d <= days[(mo - 1) as usize] && h < 24 && mi < 60 && se < 60
}

fn refused(code: i64, message: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"error_code": code, "message": message}))
}

/// The portal's ways of saying "stale session", chosen at random so clients must know them all.
fn stale_session() -> HttpResponse {
    match fastrand::u8(0..4) {
        0 => HttpResponse::Unauthorized().json(json!({"message": "Unauthorized"})),
        1 => refused(401, "Unauthorized"),
        2 => refused(-1, "Session expired"),
        _ => refused(99, "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"),
    }
}

pub fn routes(state: PortalState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
            .route("/auth", web::post().to(auth))
            .route("/integration", web::post().to(integration))
            .route("/share", web::post().to(share))
            .route("/_mock/faults", web::post().to(set_faults))
            .route("/_mock/sessions", web::post().to(set_sessions))
            .route("/_mock/catalogue", web::post().to(add_catalogue))
            .route("/_mock/dstcode", web::post().to(set_dstcode))
            .route("/_mock/lookup", web::post().to(set_lookup))
            .route("/_mock/dossiers", web::post().to(seed_dossier))
            .route("/_mock/already_exists", web::post().to(set_exists_code))
            .route("/_mock/refusals", web::post().to(set_refusal))
            .route("/_mock/stale_answer", web::post().to(set_stale_answer))
            .route("/_mock/received", web::get().to(received))
            .route("/_mock/stats", web::get().to(stats))
            .route("/_mock/per_second", web::get().to(per_second))
            .configure(crate::paygov::routes(state.paygov.clone()))
            .configure(crate::dvcqg_push::routes(state.push.clone()));
    }
}

pub fn spawn(bind: &str, state: PortalState) -> std::io::Result<crate::Running> {
    crate::spawn_server(bind, routes(state))
}

/// The LGSP's gate: with a `dstcode` required, a call without exactly that header is turned
/// away with 403 before the portal sees it (the login too).
fn lgsp_gate(state: &PortalState, req: &HttpRequest) -> Option<HttpResponse> {
    let mut s = state.lock();
    let required = s.required_dstcode.as_deref()?;
    if req.headers().get("dstcode").and_then(|v| v.to_str().ok()) == Some(required) {
        return None;
    }
    s.counters.dstcode_refused += 1;
    Some(HttpResponse::Forbidden().json(json!({"message": "Forbidden: missing or unknown dstcode"})))
}

/// Faults apply to the portal's own endpoints, never to the control API.
async fn inject(state: &PortalState) -> Option<HttpResponse> {
    let faults = state.lock().faults.clone();
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match faults.roll() {
        Injected::Pass => None,
        Injected::Fail(code) => {
            state.lock().counters.failed_by_fault += 1;
            let status = actix_web::http::StatusCode::from_u16(code).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            Some(HttpResponse::build(status).json(json!({"message": "injected failure"})))
        }
        Injected::Drop => {
            state.lock().counters.failed_by_fault += 1;
            Some(crate::centre::dropped_connection())
        }
    }
}

fn json_body(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

async fn auth(state: web::Data<PortalState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(r) = lgsp_gate(&state, &req) {
        return r;
    }
    if let Some(r) = inject(&state).await {
        return r;
    }
    let Some(b) = json_body(&body) else {
        return refused(1, "Dữ liệu không hợp lệ");
    };
    let mut s = state.lock();
    let ok = b.get("username").and_then(Value::as_str) == Some(s.cfg.username.as_str())
        && b.get("password").and_then(Value::as_str) == Some(s.cfg.password.as_str());
    if !ok {
        return refused(1, "Sai tên đăng nhập hoặc mật khẩu");
    }
    let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let until = Instant::now() + s.cfg.session_lifetime;
    s.sessions.insert(token.clone(), until);
    s.counters.logins += 1;
    HttpResponse::Ok().json(json!({"error_code": 0, "message": "Thành công", "session": token}))
}

/// Checks the envelope every operation shares; `Err` is the answer to give.
fn envelope(s: &mut Inner, b: &serde_json::Map<String, Value>) -> Result<String, Box<HttpResponse>> {
    let session = b.get("session").and_then(Value::as_str).unwrap_or("");
    let live = s.sessions.get(session).is_some_and(|until| *until > Instant::now());
    if !live {
        s.counters.stale_session_answers += 1;
        if let Some(answer) = &s.stale_answer {
            return Err(Box::new(HttpResponse::Ok().json(answer)));
        }
        return Err(Box::new(stale_session()));
    }
    if b.get("madonvi").and_then(Value::as_str) != Some(s.cfg.madonvi.as_str()) {
        s.counters.refused += 1;
        return Err(Box::new(refused(3, "Mã đơn vị không hợp lệ")));
    }
    b.get("service")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Box::new(refused(4, "Thiếu tên dịch vụ (service)")))
}

async fn integration(state: web::Data<PortalState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    *state.lock().per_second.entry(second).or_default() += 1;
    if let Some(r) = lgsp_gate(&state, &req) {
        return r;
    }
    if let Some(r) = inject(&state).await {
        return r;
    }
    let Some(b) = json_body(&body) else {
        return refused(1, "Dữ liệu không hợp lệ: không phải JSON");
    };
    let mut s = state.lock();
    let service = match envelope(&mut s, &b) {
        Ok(sv) => sv,
        Err(r) => return *r,
    };
    if matches!(service.as_str(), "DongBoHoSoMC" | "CapNhatTienDoHoSoMC")
        && let Some(answer) = chosen_refusal(&s, &b)
    {
        s.counters.refused += 1;
        return HttpResponse::Ok().json(answer);
    }
    let answer = match service.as_str() {
        "DongBoHoSoMC" => sync(&mut s, &b),
        "CapNhatTienDoHoSoMC" => progress(&mut s, &b).map_err(Refusal::from),
        "TraCuuHoSo" => return lookup(&mut s, &b),
        "DongBoTrangThaiHoSo" => state.push.inbound_status(&b).map_err(Refusal::from),
        _ => Err(Refusal::from(format!("Dịch vụ {service} không được hỗ trợ"))),
    };
    match answer {
        Ok(n) => HttpResponse::Ok().json(json!({"error_code": 0, "message": format!("Đồng bộ thành công {n} bản ghi")})),
        Err(r) => {
            s.counters.refused += 1;
            HttpResponse::Ok().json(json!({"error_code": r.code, "message": r.message}))
        }
    }
}

/// A refusal of a write: `error_code` and message. Most are code 2, "bad data".
struct Refusal {
    code: Value,
    message: String,
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal { code: json!(2), message }
    }
}

/// The answer the control API chose for a write naming one of its dossiers, if any.
fn chosen_refusal(s: &Inner, b: &serde_json::Map<String, Value>) -> Option<Value> {
    let items = b.get("data")?.as_array()?;
    items
        .iter()
        .filter_map(|i| i.get("MaHoSo")?.as_str())
        .find_map(|ma| s.refusals.get(ma).cloned())
}

fn data_items(b: &serde_json::Map<String, Value>) -> Result<&Vec<Value>, String> {
    match b.get("data") {
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_object) => Ok(a),
        _ => Err("Dữ liệu không hợp lệ: data phải là danh sách đối tượng".into()),
    }
}

fn record(s: &mut Inner, service: &str, ma: &str, status: u8, is_updating: Option<String>, item: &Value) {
    let fingerprint = format!("{service}|{item}");
    if !s.seen_items.insert(fingerprint) {
        s.counters.duplicates += 1;
    }
    if let Some(prev) = s.last_status.insert(ma.to_string(), status)
        && !allowed(prev, status)
    {
        s.counters.backwards += 1;
    }
    s.counters.accepted += 1;
    s.arrivals.push(Arrival {
        service: service.into(),
        ma_ho_so: ma.into(),
        status,
        is_updating,
        item: item.clone(),
    });
}

fn sync(s: &mut Inner, b: &serde_json::Map<String, Value>) -> Result<usize, Refusal> {
    let updating = match b.get("isUpdating").and_then(Value::as_str) {
        Some("True") => true,
        Some("False") => false,
        _ => return Err(Refusal::from("isUpdating phải là \"True\" hoặc \"False\"".to_string())),
    };
    let items = data_items(b)?;
    // Check every item before storing any: the portal takes a batch whole or not at all.
    let mut checked = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ma = item
            .get("MaHoSo")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or(format!("data[{i}]: thiếu MaHoSo"))?;
        let tthc = item.get("MaTTHC").and_then(Value::as_str).unwrap_or("");
        if !s.catalogue.contains(tthc) {
            return Err(format!("data[{i}]: Mã thủ tục hành chính {tthc} không tồn tại").into());
        }
        let status = digit_code(item, "TrangThaiHoSo", 1..=10, i)?.ok_or(format!("data[{i}]: thiếu TrangThaiHoSo"))?;
        if !real_date(item.get("NgayTiepNhan").unwrap_or(&Value::Null)) {
            return Err(format!("data[{i}]: NgayTiepNhan không đúng định dạng yyyyMMddHHmmss").into());
        }
        digit_code(item, "LoaiDoiTuong", 1..=4, i)?;
        digit_code(item, "HinhThuc", 0..=1, i)?;
        tai_lieu_flags(item, i)?;
        fee_lines(item, i)?;
        let exists = s.dossiers.contains_key(ma);
        if updating && !exists {
            return Err(format!("Hồ sơ {ma} không tồn tại, không thể cập nhật").into());
        }
        if !updating && exists {
            let message = format!("Hồ sơ {ma} đã tồn tại");
            return Err(match &s.exists_code {
                Some(code) => Refusal {
                    code: code.clone(),
                    message,
                },
                None => message.into(),
            });
        }
        checked.push((ma.to_string(), status, item.clone()));
    }
    let n = checked.len();
    for (ma, status, item) in checked {
        s.dossiers.insert(ma.clone(), item.clone());
        record(
            s,
            "DongBoHoSoMC",
            &ma,
            status,
            Some(if updating { "True" } else { "False" }.into()),
            &item,
        );
    }
    Ok(n)
}

fn progress(s: &mut Inner, b: &serde_json::Map<String, Value>) -> Result<usize, String> {
    let items = data_items(b)?;
    let mut checked = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ma = item.get("MaHoSo").and_then(Value::as_str).unwrap_or("");
        if !s.dossiers.contains_key(ma) {
            return Err(format!("data[{i}]: Hồ sơ {ma} không tồn tại"));
        }
        let status = digit_code(item, "TrangThai", 1..=10, i)?.ok_or(format!("data[{i}]: thiếu TrangThai"))?;
        let at = item.get("ThoiDiemXuLy").unwrap_or(&Value::Null);
        if !real_date(at) {
            return Err(format!("data[{i}]: ThoiDiemXuLy không đúng định dạng yyyyMMddHHmmss"));
        }
        checked.push((ma.to_string(), status, at.as_str().unwrap_or("").to_string(), item.clone()));
    }
    let n = checked.len();
    for (ma, status, at, item) in checked {
        if let Some(prev) = s.last_progress_time.insert(ma.clone(), at.clone())
            && prev > at
        {
            s.counters.backwards += 1;
        }
        record(s, "CapNhatTienDoHoSoMC", &ma, status, None, &item);
    }
    Ok(n)
}

/// `TraCuuHoSo`: the dossier in `result`, an array, which is empty for an unknown dossier (the
/// shape OpenCPS reads), unless the control API set another answer.
fn lookup(s: &mut Inner, b: &serde_json::Map<String, Value>) -> HttpResponse {
    s.counters.lookups += 1;
    if let Some(answer) = &s.lookup_answer {
        return HttpResponse::Ok().json(answer);
    }
    let ma = b.get("mahoso").and_then(Value::as_str).unwrap_or("");
    let result: Vec<&Value> = s.dossiers.get(ma).into_iter().collect();
    HttpResponse::Ok().json(json!({"error_code": 0, "message": "Thành công", "result": result}))
}

async fn share(state: web::Data<PortalState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(r) = lgsp_gate(&state, &req) {
        return r;
    }
    if let Some(r) = inject(&state).await {
        return r;
    }
    let Some(b) = json_body(&body) else {
        return refused(1, "Dữ liệu không hợp lệ");
    };
    let mut s = state.lock();
    let service = match envelope(&mut s, &b) {
        Ok(sv) => sv,
        Err(r) => return *r,
    };
    match service.as_str() {
        "LayDanhSachTTHC" => {
            let mut codes: Vec<&String> = s.catalogue.iter().collect();
            codes.sort();
            HttpResponse::Ok().json(json!({"error_code": 0, "data": codes.iter().map(|c| json!({"MaTTHC": c})).collect::<Vec<_>>()}))
        }
        "LayThuTuc" => {
            let code = b.get("maTTHC").and_then(Value::as_str).unwrap_or("");
            if s.catalogue.contains(code) {
                HttpResponse::Ok().json(json!({"error_code": 0, "data": {"MaTTHC": code}}))
            } else {
                refused(2, "Không tìm thấy thủ tục")
            }
        }
        "getfile" => state.push.getfile(&b, &req),
        "LayDanhMucCoQuan" | "LayDanhMucLinhVuc" => HttpResponse::Ok().json(json!({"error_code": 0, "data": []})),
        other => refused(4, &format!("Dịch vụ {other} không được hỗ trợ")),
    }
}

async fn set_faults(state: web::Data<PortalState>, f: web::Json<Faults>) -> HttpResponse {
    state.set_faults(f.into_inner());
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Sessions {
    lifetime_ms: Option<u64>,
    #[serde(default)]
    expire_all: bool,
}

async fn set_sessions(state: web::Data<PortalState>, b: web::Json<Sessions>) -> HttpResponse {
    if let Some(ms) = b.lifetime_ms {
        state.set_session_lifetime(Duration::from_millis(ms));
    }
    if b.expire_all {
        state.expire_sessions();
    }
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Catalogue {
    add: Vec<String>,
}

async fn add_catalogue(state: web::Data<PortalState>, b: web::Json<Catalogue>) -> HttpResponse {
    state.lock().catalogue.extend(b.into_inner().add);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Dstcode {
    required: Option<String>,
}

async fn set_dstcode(state: web::Data<PortalState>, b: web::Json<Dstcode>) -> HttpResponse {
    state.require_dstcode(b.into_inner().required.filter(|c| !c.is_empty()));
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct LookupAnswer {
    answer: Option<Value>,
}

async fn set_lookup(state: web::Data<PortalState>, b: web::Json<LookupAnswer>) -> HttpResponse {
    state.set_lookup_answer(b.into_inner().answer);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct ExistsCode {
    error_code: Option<Value>,
}

async fn set_exists_code(state: web::Data<PortalState>, b: web::Json<ExistsCode>) -> HttpResponse {
    state.set_exists_code(b.into_inner().error_code);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct ChosenRefusal {
    #[serde(rename = "MaHoSo")]
    ma_ho_so: String,
    answer: Option<Value>,
}

async fn set_refusal(state: web::Data<PortalState>, b: web::Json<ChosenRefusal>) -> HttpResponse {
    let b = b.into_inner();
    state.set_refusal(&b.ma_ho_so, b.answer);
    HttpResponse::NoContent().finish()
}

async fn set_stale_answer(state: web::Data<PortalState>, b: web::Json<LookupAnswer>) -> HttpResponse {
    state.set_stale_answer(b.into_inner().answer);
    HttpResponse::NoContent().finish()
}

async fn seed_dossier(state: web::Data<PortalState>, b: web::Json<Value>) -> HttpResponse {
    match state.seed_dossier(b.into_inner()) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(m) => HttpResponse::BadRequest().json(json!({"message": m})),
    }
}

#[derive(Deserialize)]
struct ReceivedQuery {
    #[serde(rename = "MaHoSo")]
    ma_ho_so: Option<String>,
}

async fn received(state: web::Data<PortalState>, q: web::Query<ReceivedQuery>) -> HttpResponse {
    match &q.ma_ho_so {
        Some(ma) => HttpResponse::Ok().json(state.arrivals_of(ma)),
        None => HttpResponse::Ok().json(state.arrivals()),
    }
}

async fn stats(state: web::Data<PortalState>) -> HttpResponse {
    HttpResponse::Ok().json(state.counters())
}

async fn per_second(state: web::Data<PortalState>) -> HttpResponse {
    HttpResponse::Ok().json(state.per_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_moves() {
        assert!(real_date(&json!("20240229235959")));
        assert!(!real_date(&json!("20241340250000")));
        assert!(!real_date(&json!(20240229235959u64)));
        assert!(allowed(5, 4) && allowed(9, 10) && allowed(4, 4));
        assert!(!allowed(10, 4) && !allowed(9, 4));
    }

    #[test]
    fn codes_must_be_the_strings_public_clients_send() {
        let item = json!({"TrangThaiHoSo": "4", "HinhThuc": "0", "LoaiDoiTuong": 2, "TrangThai": "04"});
        assert_eq!(digit_code(&item, "TrangThaiHoSo", 1..=10, 0), Ok(Some(4)));
        assert_eq!(digit_code(&item, "HinhThuc", 0..=1, 0), Ok(Some(0)));
        assert_eq!(digit_code(&item, "Absent", 0..=1, 0), Ok(None));
        assert!(digit_code(&item, "LoaiDoiTuong", 1..=2, 0).unwrap_err().contains("không phải số"));
        assert!(digit_code(&item, "TrangThai", 1..=10, 0).is_err(), "not the canonical form");
        for bad in [json!("11"), json!("0"), json!("4.0"), json!(" 4"), json!(true), json!(4)] {
            assert!(digit_code(&json!({"T": bad}), "T", 1..=10, 0).is_err(), "{bad}");
        }
        assert!(tai_lieu_flags(&json!({"TaiLieuNop": [{"IsDeleted": "False"}, {"IsDeleted": "True"}, {}]}), 0).is_ok());
        assert!(tai_lieu_flags(&json!({"TaiLieuNop": [{"IsDeleted": false}]}), 0).is_err());
        assert!(tai_lieu_flags(&json!({"TaiLieuNop": [{"IsDeleted": "false"}]}), 0).is_err());
    }

    #[test]
    fn fee_lines_and_the_already_exists_answer() {
        let ok = json!({"DanhSachLePhi": [{"Gia": "100000", "LoaiPhiLePhi": "2", "HinhThucThu": "1"}, {"TenPhiLePhi": "x"}]});
        assert!(fee_lines(&ok, 0).is_ok());
        for (name, bad) in [
            ("Gia", json!(100000)),
            ("Gia", json!("0100")),
            ("LoaiPhiLePhi", json!(2)),
            ("HinhThucThu", json!("1.0")),
        ] {
            let mut item = ok.clone();
            item["DanhSachLePhi"][0][name] = bad.clone();
            assert!(fee_lines(&item, 0).is_err(), "{name} {bad}");
        }
        let state = PortalState::new(PortalConfig::default());
        let item = json!({"MaHoSo": "E-1", "MaTTHC": DEFAULT_CATALOGUE[0], "TrangThaiHoSo": "1",
            "NgayTiepNhan": "20241125083000", "LoaiDoiTuong": "4"});
        state.seed_dossier(item.clone()).unwrap();
        let create = json!({"isUpdating": "False", "data": [item]});
        let create = create.as_object().unwrap();
        let mut s = state.lock();
        let r = sync(&mut s, create).err().unwrap();
        assert_eq!((r.code, r.message.contains("đã tồn tại")), (json!(2), true));
        s.exists_code = Some(json!("-3"));
        assert_eq!(sync(&mut s, create).err().unwrap().code, json!("-3"));
        let mut update = create.clone();
        update.insert("isUpdating".into(), json!("True"));
        assert_eq!(sync(&mut s, &update).ok(), Some(1), "LoaiDoiTuong 4 is taken");
    }

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
