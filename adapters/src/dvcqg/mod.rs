//! The National Public Service Portal (DVCQG), as `shared/domain/dvcqg.md` describes it:
//! JSON over HTTP POST, a session token from the auth endpoint, `DongBoHoSoMC` to create or
//! update a dossier and `CapNhatTienDoHoSoMC` to append progress.
//!
//! Classification: transport errors, timeouts, 5xx and 429 are retried; LGSP 401/403 and a
//! refused login are configuration faults, retried with an alarm and never blamed on the
//! message; any other non-zero `error_code` is the portal refusing the data, a rejection.
//!
//! What the adapter relies on from the portal, and why (public clients, OpenCPS first), is in
//! `docs/dvcqg.md`: objects go out in the public clients' wire form ([`model::to_wire`]); the
//! `dstcode` header rides on every call when configured; and `TraCuuHoSo` is read from
//! `result` or `data`, an answer that shows neither a hit nor a miss being retried with an
//! alarm rather than guessed.

pub mod model;

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;

use crate::{Adapter, BoxFuture, Delivery, Outcome, http};

pub const DESTINATION: &str = "dvcqg";
pub const KIND_SYNC: &str = "dossier.sync";
pub const KIND_PROGRESS: &str = "dossier.progress";

/// How many dossiers the adapter remembers as existing on the portal (see [`KnownDossiers`]).
const KNOWN_CAPACITY: usize = 100_000;
/// Answers are small JSON documents; anything bigger is not the portal.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct DvcqgConfig {
    pub base_url: String,
    pub auth_path: String,
    pub integration_path: String,
    pub username: String,
    pub password: String,
    pub madonvi: String,
    /// The `dstcode` header the LGSP routes on; empty: not sent.
    pub dstcode: String,
    pub timeout: Duration,
}

/// Why the adapter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the portal's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("dvcqg.dstcode must be visible ASCII without spaces: it is sent as an HTTP header")]
    Dstcode,
}

pub struct DvcqgAdapter {
    client: reqwest::Client,
    cfg: DvcqgConfig,
    /// The `dstcode` header, checked once here; `None` when not configured.
    dstcode: Option<HeaderValue>,
    auth_url: String,
    integration_url: String,
    /// The portal session, shared by every worker of this process.
    session: RwLock<Option<String>>,
    known: KnownDossiers,
}

/// `isUpdating` must be `"False"` the first time the portal hears of a dossier and `"True"`
/// afterwards. The portal itself is the source of truth: before a dossier's first sync from
/// this process the adapter asks `TraCuuHoSo`, then remembers the answer. The gateway's own
/// delivery record was the alternative, but it would be wrong for a dossier another system
/// created on the portal, after a delivery whose answer was lost, and after records expire;
/// one look-up per dossier per process is cheap next to those failures. Per-key FIFO means no
/// two syncs of one dossier run at once, so the remembered answer cannot race.
struct KnownDossiers {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl KnownDossiers {
    fn new() -> Self {
        KnownDossiers {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    fn contains(&self, ma: &str) -> bool {
        self.inner.lock().map(|g| g.0.contains(ma)).unwrap_or(false)
    }

    fn insert(&self, ma: &str) {
        if let Ok(mut g) = self.inner.lock()
            && g.0.insert(ma.to_string())
        {
            g.1.push_back(ma.to_string());
            if g.1.len() > KNOWN_CAPACITY
                && let Some(old) = g.1.pop_front()
            {
                g.0.remove(&old);
            }
        }
    }
}

/// Why a POST did not give a JSON answer. HTTP 401 is kept apart: from an operation it means
/// the session is stale, from the login that the credentials are wrong.
enum PostError {
    Unauthorized,
    Failed(Outcome),
}

impl From<PostError> for Outcome {
    fn from(e: PostError) -> Self {
        match e {
            PostError::Unauthorized => alarm("the LGSP answered 401"),
            PostError::Failed(o) => o,
        }
    }
}

/// What one portal call came to, before it becomes an [`Outcome`]. A refusal keeps the whole
/// answer: `TraCuuHoSo` is read from its lists whatever `error_code` says.
enum Answer {
    Ok(Value),
    Refused { code: String, message: String, body: Value },
}

fn success_code(v: &Value) -> bool {
    match v.get("error_code") {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => matches!(s.trim(), "0" | "00"),
        _ => false,
    }
}

fn code_text(v: &Value) -> String {
    match v.get("error_code") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => other.to_string(),
        None => "missing".into(),
    }
}

fn message_of(v: &Value) -> String {
    ["message", "Message", "error_message", "msg"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .chars()
        .take(500)
        .collect()
}

/// The notes leave the stale-session answer open; these are all the forms seen.
fn is_session_expiry(code: &str, message: &str) -> bool {
    if matches!(code, "401" | "-1") {
        return true;
    }
    let m = message.to_lowercase();
    ["session", "token", "phiên", "phien", "het han", "hết hạn"]
        .iter()
        .any(|w| m.contains(w))
}

fn is_not_found(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "không tìm thấy",
        "khong tim thay",
        "không tồn tại",
        "khong ton tai",
        "not found",
        "not exist",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// What a `TraCuuHoSo` answer says about the dossier.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Found,
    Missing,
    /// Neither a hit nor a miss; the reason, without the answer's data.
    Unclear(String),
}

/// The lists a `TraCuuHoSo` answer may carry its hits in: OpenCPS reads `result`; some
/// DVCQG-hosted look-ups answer in `data`.
const LOOKUP_LISTS: [&str; 2] = ["result", "data"];

/// Reads a `TraCuuHoSo` answer as OpenCPS does, and no further:
/// - a non-empty array in `result` or `data` is a hit, whatever `error_code` says;
/// - otherwise an empty array there is a miss, unless the answer is an error;
/// - an error whose message says the dossier was not found is a miss;
/// - anything else (no list at all, `null` or an object where the list should be, an error
///   that is not "not found", `{"error_code": 0}` alone) shows neither, and is not guessed:
///   a wrong guess would send `isUpdating` the portal then refuses, or worse, accepts.
fn classify_lookup(answer: &Value) -> Lookup {
    let lists: Vec<&Vec<Value>> = LOOKUP_LISTS.iter().filter_map(|k| answer.get(*k)?.as_array()).collect();
    if lists.iter().any(|l| !l.is_empty()) {
        return Lookup::Found;
    }
    let is_error = answer.get("error_code").is_some() && !success_code(answer);
    let message = message_of(answer);
    if !lists.is_empty() && !is_error {
        return Lookup::Missing;
    }
    if is_error && is_not_found(&message) {
        return Lookup::Missing;
    }
    let shape: Vec<String> = LOOKUP_LISTS
        .iter()
        .map(|k| match answer.get(*k) {
            None => format!("no {k}"),
            Some(Value::Array(_)) => format!("{k} empty"),
            Some(Value::Null) => format!("{k} null"),
            Some(Value::Object(_)) => format!("{k} an object"),
            Some(_) => format!("{k} not a list"),
        })
        .collect();
    Lookup::Unclear(format!(
        "the portal's TraCuuHoSo answer shows neither a hit nor a miss (error_code {}, {}{}{})",
        code_text(answer),
        shape.join(", "),
        if message.is_empty() { "" } else { ": " },
        message
    ))
}

fn alarm(what: &str) -> Outcome {
    tracing::error!(alarm = true, destination = DESTINATION, "{what}");
    Outcome::retry(format!("configuration fault (alarm raised): {what}"))
}

/// The `dstcode` header value, or `None` when the setting is empty. An LGSP routing code is
/// a short code; anything but visible ASCII is a typo that would break every call.
fn dstcode_header(dstcode: &str) -> Result<Option<HeaderValue>, BuildError> {
    if dstcode.is_empty() {
        return Ok(None);
    }
    if !dstcode.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(BuildError::Dstcode);
    }
    HeaderValue::from_str(dstcode).map(Some).map_err(|_| BuildError::Dstcode)
}

impl DvcqgAdapter {
    pub fn new(cfg: DvcqgConfig) -> Result<Self, BuildError> {
        let base = cfg.base_url.trim_end_matches('/');
        Ok(DvcqgAdapter {
            client: http::client(cfg.timeout)?,
            dstcode: dstcode_header(&cfg.dstcode)?,
            auth_url: format!("{base}{}", cfg.auth_path),
            integration_url: format!("{base}{}", cfg.integration_path),
            cfg,
            session: RwLock::new(None),
            known: KnownDossiers::new(),
        })
    }

    /// Every call goes through here, the login included, so the `dstcode` header the LGSP
    /// routes on is on all of them.
    async fn post_json(&self, url: &str, body: &Value) -> Result<Value, PostError> {
        let failed = |o: Outcome| PostError::Failed(o);
        let mut req = self.client.post(url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(dstcode) = &self.dstcode {
            req = req.header("dstcode", dstcode.clone());
        }
        let resp = req.json(body).send().await.map_err(|e| failed(http::classify_error(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| failed(http::classify_error(&e)))?;
        match status.as_u16() {
            200..=299 => {}
            401 => return Err(PostError::Unauthorized),
            403 => {
                return Err(failed(alarm("the LGSP answered 403: this account may not call the portal")));
            }
            429 | 408 | 425 | 500..=599 => {
                return Err(failed(Outcome::Retry {
                    reason: format!("portal answered HTTP {}", status.as_u16()),
                    after: http::retry_after(&headers, SystemTime::now()),
                }));
            }
            other => {
                return Err(failed(alarm(&format!(
                    "the portal answered HTTP {other}: check dvcqg.base_url and the paths"
                ))));
            }
        }
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(failed(Outcome::retry("the portal's answer is too large")));
        }
        serde_json::from_slice(&bytes).map_err(|_| failed(Outcome::retry("the portal's answer is not JSON")))
    }

    /// A fresh session, fetched once however many workers ask at the same moment.
    async fn login(&self, stale: Option<&str>) -> Result<String, Outcome> {
        let mut slot = self.session.write().await;
        if let Some(current) = slot.as_deref()
            && Some(current) != stale
        {
            return Ok(current.to_string());
        }
        let body = json!({"username": self.cfg.username, "password": self.cfg.password});
        let answer = match self.post_json(&self.auth_url, &body).await {
            Ok(v) => v,
            Err(PostError::Unauthorized) => {
                return Err(alarm("the portal refused the gateway's credentials (HTTP 401 on login)"));
            }
            Err(other) => return Err(other.into()),
        };
        let token = answer.get("session").and_then(Value::as_str).filter(|s| !s.is_empty());
        match token {
            Some(t) if success_code(&answer) => {
                *slot = Some(t.to_string());
                tracing::info!(destination = DESTINATION, "portal session established");
                Ok(t.to_string())
            }
            _ => Err(alarm(&format!(
                "the portal refused the login: error_code {} {}",
                code_text(&answer),
                message_of(&answer)
            ))),
        }
    }

    async fn current_session(&self) -> Result<String, Outcome> {
        if let Some(s) = self.session.read().await.clone() {
            return Ok(s);
        }
        self.login(None).await
    }

    /// One operation. A stale session is renewed once and the call repeated at once, inside the
    /// same attempt; a fresh session refused the same way is a configuration fault.
    async fn call(&self, service: &str, fields: Map<String, Value>) -> Result<Answer, Outcome> {
        let mut session = self.current_session().await?;
        for round in 0..2 {
            let mut body = Map::new();
            body.insert("session".into(), Value::String(session.clone()));
            body.insert("madonvi".into(), Value::String(self.cfg.madonvi.clone()));
            body.insert("service".into(), Value::String(service.into()));
            body.extend(fields.clone());
            let expired = match self.post_json(&self.integration_url, &Value::Object(body)).await {
                Ok(answer) if success_code(&answer) => return Ok(Answer::Ok(answer)),
                Ok(answer) => {
                    let (code, message) = (code_text(&answer), message_of(&answer));
                    if !is_session_expiry(&code, &message) {
                        return Ok(Answer::Refused {
                            code,
                            message,
                            body: answer,
                        });
                    }
                    true
                }
                Err(PostError::Unauthorized) => true,
                Err(other) => return Err(other.into()),
            };
            if expired && round == 0 {
                tracing::info!(destination = DESTINATION, service, "portal session expired; renewing");
                session = self.login(Some(&session)).await?;
            }
        }
        Err(alarm(
            "the portal refused a freshly issued session (or the LGSP answered 401): check dvcqg.username and dvcqg.password",
        ))
    }

    /// Whether the portal already has the dossier. A stale session was renewed inside
    /// [`Self::call`]; an answer that shows neither a hit nor a miss is retried with an alarm,
    /// because the portal's answers have changed shape or the look-up is failing, and either
    /// needs a person.
    async fn exists_on_portal(&self, ma: &str) -> Result<bool, Outcome> {
        let mut fields = Map::new();
        fields.insert("mahoso".into(), Value::String(ma.into()));
        let answer = match self.call("TraCuuHoSo", fields).await? {
            Answer::Ok(v) | Answer::Refused { body: v, .. } => v,
        };
        match classify_lookup(&answer) {
            Lookup::Found => Ok(true),
            Lookup::Missing => Ok(false),
            Lookup::Unclear(why) => {
                tracing::error!(
                    alarm = true,
                    destination = DESTINATION,
                    service = "TraCuuHoSo",
                    ma_ho_so = ma,
                    "{why}"
                );
                Err(Outcome::retry(format!("{why}; isUpdating is not guessed (alarm raised)")))
            }
        }
    }

    async fn sync(&self, d: Delivery<'_>, item: Value) -> Outcome {
        let ma = d.ordering_key;
        let exists = if self.known.contains(ma) {
            true
        } else {
            match self.exists_on_portal(ma).await {
                Ok(e) => e,
                Err(o) => return o,
            }
        };
        let mut fields = Map::new();
        fields.insert("isUpdating".into(), Value::String(if exists { "True" } else { "False" }.into()));
        fields.insert("data".into(), Value::Array(vec![item]));
        match self.call("DongBoHoSoMC", fields).await {
            Ok(Answer::Ok(_)) => {
                self.known.insert(ma);
                Outcome::Delivered
            }
            Ok(Answer::Refused { code, message, .. }) => {
                Outcome::reject(format!("portal refused DongBoHoSoMC (error_code {code}): {message}"))
            }
            Err(o) => o,
        }
    }

    async fn progress(&self, item: Value) -> Outcome {
        let mut fields = Map::new();
        fields.insert("data".into(), Value::Array(vec![item]));
        match self.call("CapNhatTienDoHoSoMC", fields).await {
            Ok(Answer::Ok(_)) => Outcome::Delivered,
            Ok(Answer::Refused { code, message, .. }) => {
                Outcome::reject(format!("portal refused CapNhatTienDoHoSoMC (error_code {code}): {message}"))
            }
            Err(o) => o,
        }
    }
}

impl Adapter for DvcqgAdapter {
    fn destination(&self) -> &str {
        DESTINATION
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            // The API stored a validated object; anything else is a bug upstream of here, and
            // retrying would not fix it.
            let mut item = match serde_json::from_slice(d.payload) {
                Ok(Value::Object(m)) => m,
                _ => return Outcome::reject("stored payload is not a JSON object"),
            };
            // The API stores what the centre sent; the wire form is made here, on every
            // attempt, so messages queued in any form go out in the public clients' form.
            model::to_wire(&mut item);
            let item = Value::Object(item);
            match d.kind {
                KIND_SYNC => self.sync(d, item).await,
                KIND_PROGRESS => self.progress(item).await,
                other => Outcome::reject(format!("the portal adapter does not handle {other}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_codes_are_read_liberally() {
        assert!(success_code(&json!({"error_code": 0})));
        assert!(success_code(&json!({"error_code": "00"})));
        assert!(success_code(&json!({"error_code": "0"})));
        assert!(!success_code(&json!({"error_code": 1})));
        assert!(!success_code(&json!({"error_code": "-1"})));
        assert!(!success_code(&json!({})));
    }

    #[test]
    fn stale_sessions_are_recognised_in_every_documented_form() {
        assert!(is_session_expiry("401", ""));
        assert!(is_session_expiry("-1", ""));
        assert!(is_session_expiry("5", "Phiên làm việc đã hết hạn"));
        assert!(is_session_expiry("5", "Invalid token"));
        assert!(is_session_expiry("5", "session het han"));
        assert!(!is_session_expiry("2", "Mã thủ tục hành chính không tồn tại"));
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
}
