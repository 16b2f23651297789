//! The mock portal's side of "dossiers down" (issue 25), written from `shared/domain/dvcqg.md`
//! ("Beyond DongBoHoSoMC") and `docs/inbound.md`, never from the gateway's adapters: the portal
//! pushing a dossier to the province, the portal's file service a pushed URL is fetched through,
//! and the status of a pushed dossier coming back up.
//!
//! **Pushing.** The mock sends only what it is told; building hostile bodies is the test's job.
//! `POST /_mock/push` with
//! ```json
//! {"target": "http://GW/v1/inbound/dvcqg/dossiers",
//!  "key_header": "X-DVCQG-Key",            // optional, this by default
//!  "key": "...",                           // optional: absent, no key header is sent
//!  "repeat": 1,                            // optional, 1..=100 sends in a row (duplicates)
//!  // exactly one of:
//!  "dossier": {...},                       // the JSON body, sent as is
//!  "raw_body": "...",                      // a body sent byte for byte (not JSON, say)
//!  "generate": {"MaHoSo": "...", "MaTTHC": "...",
//!               "form": {"name": "don.pdf", "base64": "..."}   // inline: TenTepDonDangKy + TepDonDangKy
//!                     | {"url_path": "/files/x.pdf"}            // URLTepDangKy on this portal's host
//!                     | {"url": "http://elsewhere/x.pdf"},      // URLTepDangKy verbatim
//!               "attachments": [{"name": "...", "base64": "..."}],  // TaiLieuNop
//!               "extra": {...}}}                                    // merged into the body last
//! ```
//! POSTs it (`Content-Type: application/json`) and answers `{"status": <HTTP status, 0 when no
//! answer came>, "answer": <the gateway's JSON or null>, "results": [{"status", "answer"}, ...
//! one per send]}`. Every send is kept: `GET /_mock/pushes` (the last [`KEPT`]).
//!
//! **File service** (a *guess* in both documents: `getfile` on the share endpoint).
//! `POST /_mock/files` `{"path": "/files/x.pdf", "base64": "..."}` stores a file. The share
//! endpoint's `service: "getfile"` with `DuongDan` (a full `http://` URL whose host and port are
//! this portal's, as the caller reached it, and whose path is a stored file) answers
//! `{"error_code": 0, "data": "<base64>"}`; an unknown path, a URL on another host, or anything
//! but a plain `http://host:port/path` URL is refused with a non-zero `error_code`. It needs a
//! live session like every share call. `GET /_mock/getfile` counts the calls.
//!
//! **Status back up.** The integration endpoint's `service: "DongBoTrangThaiHoSo"`, `type: "2"`
//! (the string), `data` one object (an array is refused): `MaHoSo`, `TrangThai` (a digit string
//! `"1"`..`"10"`), `NgayXuLy` (`yyyyMMddHHmmss`, a real time) and `NoiDung` (a non-empty string)
//! are required; `MaHoSoDonVi` is a string when present, `TaiLieuXuLy` an array. Each one taken
//! is kept in order: `GET /_mock/inbound_status`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// How many pushes, statuses and getfile URLs are kept (the oldest go first).
pub const KEPT: usize = 10_000;
/// The most sends one `/_mock/push` makes.
const MAX_REPEAT: u32 = 100;
/// The most files the file service stores.
const MAX_FILES: usize = 10_000;

/// Milliseconds since the Unix epoch, the `at_ms` of every record.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn keep<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= KEPT {
        list.pop_front();
    }
    list.push_back(item);
}

/// One send to the gateway and what came back.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub target: String,
    /// The dossier's code as sent (`MaHoSo`, else `MaHoSoQG`), when the body had one.
    pub ma_ho_so: Option<String>,
    /// The body: the JSON sent, or the raw string.
    pub body: Value,
    /// The HTTP status; 0 when no answer came (then `error` says why).
    pub status: u16,
    pub answer: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at_ms: u64,
}

/// One `DongBoTrangThaiHoSo` the portal took, spelled as it came.
#[derive(Debug, Clone, Serialize)]
pub struct InboundStatus {
    #[serde(rename = "MaHoSo")]
    pub ma_ho_so: String,
    #[serde(rename = "TrangThai")]
    pub trang_thai: String,
    #[serde(rename = "NoiDung")]
    pub noi_dung: String,
    #[serde(rename = "NgayXuLy")]
    pub ngay_xu_ly: String,
    #[serde(rename = "MaHoSoDonVi")]
    pub ma_ho_so_don_vi: Option<String>,
    #[serde(rename = "TaiLieuXuLy")]
    pub tai_lieu_xu_ly: Value,
    /// Whether the mock ever pushed a dossier with this code.
    pub pushed: bool,
    pub at_ms: u64,
}

/// The file service's calls: all that reached it with a live session, served or not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GetfileStats {
    pub calls: u64,
    pub served: u64,
    pub refused: u64,
    /// The `DuongDan` of each call, in order (the last [`KEPT`]).
    pub urls: Vec<String>,
}

#[derive(Default)]
struct Inner {
    pushes: VecDeque<Push>,
    pushed_codes: HashSet<String>,
    files: HashMap<String, String>,
    getfile: GetfileStats,
    getfile_urls: VecDeque<String>,
    statuses: VecDeque<InboundStatus>,
}

/// The push side of the mock portal; a field of [`crate::dvcqg::PortalState`].
#[derive(Clone)]
pub struct PushState {
    inner: Arc<Mutex<Inner>>,
    client: reqwest::Client,
}

impl Default for PushState {
    fn default() -> Self {
        PushState {
            inner: Arc::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
        }
    }
}

/// What `/_mock/push` is asked to send.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushRequest {
    pub target: String,
    pub key_header: Option<String>,
    pub key: Option<String>,
    pub dossier: Option<Value>,
    pub raw_body: Option<String>,
    pub generate: Option<Generate>,
    pub repeat: Option<u32>,
}

/// A dossier the mock writes itself, the shape of the public code's pushes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Generate {
    #[serde(rename = "MaHoSo")]
    pub ma_ho_so: String,
    #[serde(rename = "MaTTHC")]
    pub ma_tthc: String,
    pub form: Option<Form>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub extra: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Form {
    Inline { name: String, base64: String },
    UrlPath { url_path: String },
    Url { url: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub base64: String,
}

/// The answer of one send.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub status: u16,
    pub answer: Option<Value>,
}

impl Generate {
    /// The body, with `own_base` (`http://host:port` of this portal) for a `url_path` form.
    pub fn body(&self, own_base: &str) -> Value {
        let mut b = json!({
            "MaHoSo": self.ma_ho_so,
            "MaTTHC": self.ma_tthc,
            "MaSoThue": "0109999999",
            "TenThuongNhan": "Công ty TNHH Thử Nghiệm",
            "DiaChiDoanhNghiep": {"MaTinh": "22", "MaHuyen": "193", "MaXa": "06652",
                "DiaChiChiTiet": "Số 1 đường Thử Nghiệm"},
            "TaiLieuNop": self.attachments.iter()
                .map(|a| json!({"TenTepDinhKem": a.name, "Base64": a.base64}))
                .collect::<Vec<_>>(),
        });
        match &self.form {
            Some(Form::Inline { name, base64 }) => {
                b["TenTepDonDangKy"] = json!(name);
                b["TepDonDangKy"] = json!(base64);
            }
            Some(Form::UrlPath { url_path }) => b["URLTepDangKy"] = json!(format!("{own_base}{url_path}")),
            Some(Form::Url { url }) => b["URLTepDangKy"] = json!(url),
            None => {}
        }
        if let (Some(extra), Some(obj)) = (&self.extra, b.as_object_mut()) {
            obj.extend(extra.clone());
        }
        b
    }
}

impl PushState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends what `r` says (`own_base` builds a generated `url_path` form's URL), `repeat`
    /// times in a row, and records each send. `Err` names what is wrong with the request.
    pub async fn push(&self, r: &PushRequest, own_base: &str) -> Result<Vec<Sent>, String> {
        if !(r.target.starts_with("http://") || r.target.starts_with("https://")) {
            return Err("target must be an http(s) URL".into());
        }
        let (body, bytes) = match (&r.dossier, &r.raw_body, &r.generate) {
            (Some(d), None, None) => (d.clone(), d.to_string().into_bytes()),
            (None, Some(raw), None) => (json!(raw), raw.clone().into_bytes()),
            (None, None, Some(g)) => {
                let d = g.body(own_base);
                (d.clone(), d.to_string().into_bytes())
            }
            _ => return Err("give exactly one of dossier, raw_body, generate".into()),
        };
        let repeat = r.repeat.unwrap_or(1);
        if !(1..=MAX_REPEAT).contains(&repeat) {
            return Err(format!("repeat must be 1..={MAX_REPEAT}"));
        }
        let ma = ["MaHoSo", "MaHoSoQG"]
            .iter()
            .find_map(|k| body.get(k).and_then(Value::as_str).filter(|m| !m.is_empty()))
            .map(str::to_string);
        if let Some(ma) = &ma {
            self.lock().pushed_codes.insert(ma.clone());
        }
        let header = r.key_header.clone().unwrap_or_else(|| "X-DVCQG-Key".into());
        let mut sent = Vec::new();
        for _ in 0..repeat {
            let mut req = self
                .client
                .post(&r.target)
                .header("Content-Type", "application/json")
                .body(bytes.clone());
            if let Some(key) = &r.key {
                req = req.header(header.as_str(), key.as_str());
            }
            let (status, answer, error) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(b) => (status, serde_json::from_slice::<Value>(&b).ok(), None),
                        Err(e) => (status, None, Some(format!("reading the answer: {e}"))),
                    }
                }
                Err(e) => (0, None, Some(e.to_string())),
            };
            let push = Push {
                target: r.target.clone(),
                ma_ho_so: ma.clone(),
                body: body.clone(),
                status,
                answer: answer.clone(),
                error,
                at_ms: now_ms(),
            };
            keep(&mut self.lock().pushes, push);
            sent.push(Sent { status, answer });
        }
        Ok(sent)
    }

    /// Every send so far, oldest first.
    pub fn pushes(&self) -> Vec<Push> {
        self.lock().pushes.iter().cloned().collect()
    }

    /// Stores a file for the file service at `path` (`/files/x.pdf`).
    pub fn add_file(&self, path: &str, base64: &str) -> Result<(), String> {
        if !path.starts_with('/') {
            return Err("path must start with /".into());
        }
        let mut s = self.lock();
        if s.files.len() >= MAX_FILES && !s.files.contains_key(path) {
            return Err(format!("at most {MAX_FILES} files"));
        }
        s.files.insert(path.to_string(), base64.to_string());
        Ok(())
    }

    pub fn getfile_stats(&self) -> GetfileStats {
        let s = self.lock();
        GetfileStats {
            urls: s.getfile_urls.iter().cloned().collect(),
            ..s.getfile.clone()
        }
    }

    /// The statuses taken, in arrival order.
    pub fn inbound_statuses(&self) -> Vec<InboundStatus> {
        self.lock().statuses.iter().cloned().collect()
    }

    /// `getfile` on the share endpoint (the session already checked). A URL is on this portal
    /// when its `host:port` is the one the caller reached it by (the `Host` header, never a
    /// forwarded one) or its listening address.
    pub fn getfile(&self, b: &Map<String, Value>, req: &HttpRequest) -> HttpResponse {
        let own = req
            .headers()
            .get(actix_web::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let local = req.app_config().local_addr().to_string();
        let local = local.as_str();
        let url = b.get("DuongDan").and_then(Value::as_str).unwrap_or("");
        let mut s = self.lock();
        s.getfile.calls += 1;
        let url_kept: String = url.chars().take(2048).collect();
        keep(&mut s.getfile_urls, url_kept);
        let found = own_path(url, own, local).and_then(|p| s.files.get(p).cloned());
        match found {
            Some(data) => {
                s.getfile.served += 1;
                HttpResponse::Ok().json(json!({"error_code": 0, "message": "Thành công", "data": data}))
            }
            None => {
                s.getfile.refused += 1;
                let message = if url.is_empty() {
                    "Thiếu DuongDan"
                } else if own_path(url, own, local).is_none() {
                    "Đường dẫn không thuộc hệ thống"
                } else {
                    "Không tìm thấy tệp"
                };
                HttpResponse::Ok().json(json!({"error_code": 2, "message": message}))
            }
        }
    }

    /// `DongBoTrangThaiHoSo` on the integration endpoint (the session already checked): `Ok`
    /// is the number of records taken (1), `Err` the refusal's message.
    pub fn inbound_status(&self, b: &Map<String, Value>) -> Result<usize, String> {
        if b.get("type") != Some(&json!("2")) {
            return Err("type phải là \"2\"".into());
        }
        let item = match b.get("data") {
            Some(Value::Object(o)) => o,
            Some(Value::Array(_)) => return Err("data phải là một đối tượng, không phải danh sách".into()),
            _ => return Err("Thiếu data".into()),
        };
        let text = |name: &str| item.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
        let ma = text("MaHoSo").ok_or("Thiếu MaHoSo")?;
        let trang_thai = text("TrangThai")
            .filter(|t| t.parse::<u8>().is_ok_and(|n| (1..=10).contains(&n) && n.to_string() == *t))
            .ok_or("TrangThai phải là chuỗi số từ \"1\" đến \"10\"")?;
        let ngay = item.get("NgayXuLy").unwrap_or(&Value::Null);
        if !crate::dvcqg::real_date(ngay) {
            return Err("NgayXuLy không đúng định dạng yyyyMMddHHmmss".into());
        }
        let noi_dung = text("NoiDung").ok_or("Thiếu NoiDung")?;
        let don_vi = match item.get("MaHoSoDonVi") {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) => Some(v.clone()),
            Some(_) => return Err("MaHoSoDonVi phải là chuỗi".into()),
        };
        let tai_lieu = match item.get("TaiLieuXuLy") {
            None | Some(Value::Null) => Value::Null,
            Some(v @ Value::Array(_)) => v.clone(),
            Some(_) => return Err("TaiLieuXuLy phải là danh sách".into()),
        };
        let mut s = self.lock();
        let record = InboundStatus {
            ma_ho_so: ma.to_string(),
            trang_thai: trang_thai.to_string(),
            noi_dung: noi_dung.to_string(),
            ngay_xu_ly: ngay.as_str().unwrap_or("").to_string(),
            ma_ho_so_don_vi: don_vi,
            tai_lieu_xu_ly: tai_lieu,
            pushed: s.pushed_codes.contains(ma),
            at_ms: now_ms(),
        };
        keep(&mut s.statuses, record);
        Ok(1)
    }
}

/// The path of `url` when it is a plain `http://host:port/path` on this portal, `None` for
/// any other host, scheme, user part, query or fragment.
fn own_path<'a>(url: &'a str, own: &str, local: &str) -> Option<&'a str> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
        return None;
    }
    let ours = authority.eq_ignore_ascii_case(own) || authority.eq_ignore_ascii_case(local);
    ours.then_some(path)
}

pub fn routes(state: PushState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/_mock/push", web::post().to(push))
            .route("/_mock/pushes", web::get().to(pushes))
            .route("/_mock/files", web::post().to(add_file))
            .route("/_mock/getfile", web::get().to(getfile_stats))
            .route("/_mock/inbound_status", web::get().to(inbound_statuses));
    }
}

/// `http://host:port` of this portal as the caller of a control call reached it.
pub fn own_base(req: &HttpRequest) -> String {
    format!("http://{}", req.connection_info().host())
}

async fn push(state: web::Data<PushState>, req: HttpRequest, b: web::Json<PushRequest>) -> HttpResponse {
    match state.push(&b, &own_base(&req)).await {
        Ok(sent) => {
            let last = sent.last().cloned();
            HttpResponse::Ok().json(json!({
                "status": last.as_ref().map_or(0, |s| s.status),
                "answer": last.and_then(|s| s.answer),
                "results": sent,
            }))
        }
        Err(m) => HttpResponse::BadRequest().json(json!({"message": m})),
    }
}

async fn pushes(state: web::Data<PushState>) -> HttpResponse {
    HttpResponse::Ok().json(state.pushes())
}

#[derive(Deserialize)]
struct NewFile {
    path: String,
    base64: String,
}

async fn add_file(state: web::Data<PushState>, b: web::Json<NewFile>) -> HttpResponse {
    match state.add_file(&b.path, &b.base64) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(m) => HttpResponse::BadRequest().json(json!({"message": m})),
    }
}

async fn getfile_stats(state: web::Data<PushState>) -> HttpResponse {
    HttpResponse::Ok().json(state.getfile_stats())
}

async fn inbound_statuses(state: web::Data<PushState>) -> HttpResponse {
    HttpResponse::Ok().json(state.inbound_statuses())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_urls_on_this_portal_name_a_file() {
        let (own, local) = ("127.0.0.1:9101", "127.0.0.1:9101");
        assert_eq!(own_path("http://127.0.0.1:9101/files/x.pdf", own, local), Some("/files/x.pdf"));
        assert_eq!(own_path("http://LOCALHOST:9101/f", "localhost:9101", local), Some("/f"));
        for bad in [
            "https://127.0.0.1:9101/files/x.pdf",
            "http://127.0.0.1:9102/files/x.pdf",
            "http://127.0.0.1/files/x.pdf",
            "http://evil.example/files/x.pdf",
            "http://127.0.0.1:9101@evil.example/files/x.pdf",
            "http://evil.example@127.0.0.1:9101/files/x.pdf",
            "http://127.0.0.1:9101/files/x.pdf?a=1",
            "http://127.0.0.1:9101",
            "/files/x.pdf",
            "",
        ] {
            assert_eq!(own_path(bad, own, local), None, "{bad}");
        }
    }

    #[test]
    fn status_back_up_is_one_object_with_the_strings_opencps_sends() {
        let state = PushState::default();
        let good = json!({"type": "2", "data": {"MaHoSo": "G-1", "TrangThai": "2", "NoiDung": "Đã tiếp nhận",
            "NgayXuLy": "20261201083000", "MaHoSoDonVi": "QN-1", "TaiLieuXuLy": []}});
        assert_eq!(state.inbound_status(good.as_object().unwrap()), Ok(1));
        let cases: Vec<(&str, Value)> = vec![
            ("type", json!(2)),
            ("type", json!("1")),
            ("type", Value::Null),
            ("data", json!([good["data"].clone()])),
            ("data.TrangThai", json!(2)),
            ("data.TrangThai", json!("11")),
            ("data.TrangThai", json!("02")),
            ("data.NgayXuLy", json!("2026-12-01 08:30:00")),
            ("data.NgayXuLy", json!("20261301083000")),
            ("data.NoiDung", Value::Null),
            ("data.MaHoSo", json!("")),
            ("data.MaHoSoDonVi", json!(5)),
            ("data.TaiLieuXuLy", json!("x")),
        ];
        for (field, v) in cases {
            let mut b = good.clone();
            match field.strip_prefix("data.") {
                Some(f) if v.is_null() => {
                    b["data"].as_object_mut().unwrap().remove(f);
                }
                Some(f) => b["data"][f] = v.clone(),
                None if v.is_null() => {
                    b.as_object_mut().unwrap().remove(field);
                }
                None => b[field] = v.clone(),
            }
            assert!(state.inbound_status(b.as_object().unwrap()).is_err(), "{field} = {v}");
        }
        let taken = state.inbound_statuses();
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].trang_thai.as_str(), taken[0].pushed), ("2", false));
    }
}
