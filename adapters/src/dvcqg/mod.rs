//! The National Public Service Portal (DVCQG), as `shared/domain/dvcqg.md` describes it:
//! JSON over HTTP POST, a session token from the auth endpoint, `DongBoHoSoMC` to create or
//! update a dossier and `CapNhatTienDoHoSoMC` to append progress.
//!
//! Classification: transport errors, timeouts, 5xx and 429 are retried; LGSP 401/403 and a
//! refused login are configuration faults, retried with an alarm and never blamed on the
//! message; any other non-zero `error_code` is the portal refusing the data, a rejection. A
//! stale session is known by its codes or a whole phrase, never a bare word
//! ([`is_session_expiry`]); a create answered "already exists" (3/-3, "đã tồn tại") is sent
//! again as an update in the same attempt.
//!
//! What the adapter relies on from the portal, and why (public clients, OpenCPS first), is in
//! `docs/dvcqg.md`: objects go out in the public clients' wire form ([`model::to_wire`]); the
//! `dstcode` header rides on every call when configured; and `TraCuuHoSo` is read from
//! `result` or `data`, an answer that shows neither a hit nor a miss being retried with an
//! alarm rather than guessed.
//!
//! One attempt has one time budget, the configured timeout, counted from the start of
//! [`Adapter::deliver`]: every request gets what is left of it, so login, look-up and write
//! together stay under the engine's lease. Inside it the idempotent sub-calls (the login and
//! `TraCuuHoSo`) are tried again after a short jittered pause when they fail transiently, so one
//! lost look-up does not cost the whole attempt and the engine's backoff; the writes are never
//! repeated that way (see [`Attempt`] and `docs/dvcqg.md`).
//!
//! # Layout
//!
//! - this file: the `[dvcqg]` section and its build, the adapter, one call's time budget and
//!   transport, and the delivery of a sync or a progress entry;
//! - `session`: the shared portal session, its renewal and the learned lifetime;
//! - `answer`: reading the portal's answers (success, stale session, already exists,
//!   `TraCuuHoSo` hit or miss), pure functions;
//! - [`model`]: the dossier's fields, their checks and their wire form;
//! - `ingest`: the API routes that queue dossiers and progress for this destination.

mod answer;
mod ingest;
pub mod model;
mod session;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use hcc_config::Secret;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use self::answer::{
    Answer, Lookup, classify_lookup, code_text, is_already_exists, is_not_found, is_session_expiry, message_of, success_code,
};
use self::session::Session;
use crate::registry::{BuildContext, BuiltDestination, DestinationSpec};
use crate::{Adapter, BoxFuture, CentreEvent, Delivery, Outcome, http};

pub const DESTINATION: &str = "dvcqg";
pub const KIND_SYNC: &str = "dossier.sync";
pub const KIND_PROGRESS: &str = "dossier.progress";

/// How many dossiers the adapter remembers as existing on the portal (see [`KnownDossiers`]).
const KNOWN_CAPACITY: usize = 100_000;
/// Answers are small JSON documents; anything bigger is not the portal.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Tries of an idempotent sub-call inside one attempt, the first included. Three tries turn a
/// 30% fault rate per call into under 3% per sub-call.
const SUBCALL_TRIES: usize = 3;
/// The pause before trying a sub-call again: short, because the attempt's budget is small,
/// and jittered, so workers that failed together do not retry together.
const SUBCALL_MIN_PAUSE: Duration = Duration::from_millis(50);
const SUBCALL_MAX_PAUSE: Duration = Duration::from_millis(400);

/// The `[dvcqg]` section. An empty `base_url` leaves the destination off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvcqgSettings {
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    pub madonvi: String,
    pub auth_path: String,
    pub integration_path: String,
    pub share_path: String,
    /// The `dstcode` header the LGSP routes on, sent on every call when non-empty.
    pub dstcode: String,
}

impl Default for DvcqgSettings {
    fn default() -> Self {
        DvcqgSettings {
            base_url: String::new(),
            username: String::new(),
            password: Secret::default(),
            madonvi: String::new(),
            auth_path: "/auth".into(),
            integration_path: "/integration".into(),
            share_path: "/share".into(),
            dstcode: String::new(),
        }
    }
}

const DSTCODE_RULE: &str = "must be visible ASCII without spaces: it is sent as an HTTP header";

/// The portal destination: its section, its build, and the dossier routes.
pub fn spec() -> DestinationSpec {
    DestinationSpec {
        name: DESTINATION,
        build,
        ingest: &ingest::ROUTES,
        event_sink: false,
    }
}

fn build(ctx: &BuildContext<'_>) -> BuiltDestination {
    let s: DvcqgSettings = ctx.settings()?;
    if s.base_url.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    ctx.check_http_url(&mut problems, "base_url", &s.base_url);
    if dstcode_header(&s.dstcode).is_err() {
        problems.push(ctx.problem("dstcode", DSTCODE_RULE));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let cfg = DvcqgConfig {
        base_url: s.base_url,
        auth_path: s.auth_path,
        integration_path: s.integration_path,
        username: s.username,
        password: s.password,
        madonvi: s.madonvi,
        dstcode: s.dstcode,
        timeout: ctx.timeout(),
    };
    DvcqgAdapter::new(cfg).map(|a| Some(Arc::new(a) as Arc<dyn Adapter>)).map_err(|e| {
        vec![match e {
            SetupError::Dstcode => ctx.problem("dstcode", DSTCODE_RULE),
            SetupError::Client(_) => ctx.problem("base_url", e.to_string()),
        }]
    })
}

#[derive(Debug, Clone)]
pub struct DvcqgConfig {
    pub base_url: String,
    pub auth_path: String,
    pub integration_path: String,
    pub username: String,
    /// Sent in the login body, the one place it is exposed.
    pub password: Secret,
    pub madonvi: String,
    /// The `dstcode` header the LGSP routes on; empty: not sent.
    pub dstcode: String,
    pub timeout: Duration,
}

/// Why the adapter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
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
    /// The portal session, shared by every worker of this process, and when it was issued.
    session: RwLock<Option<Session>>,
    /// The youngest age at which the portal has called a session of ours stale: its session
    /// lifetime, learned (see [`Session::is_due`]).
    lifetime: Mutex<Option<Duration>>,
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

/// Why a call failed, and whether trying the same request again may help: the request was
/// not heard, not processed, or its answer was lost (transport errors, timeouts, 408, 425, 429,
/// 5xx). Only idempotent sub-calls act on `transient`; refusals and configuration faults are
/// never transient.
struct Failure {
    outcome: Outcome,
    transient: bool,
}

impl Failure {
    fn transient(outcome: Outcome) -> Self {
        Failure { outcome, transient: true }
    }
    fn fault(outcome: Outcome) -> Self {
        Failure { outcome, transient: false }
    }
}

/// Why a POST did not give a JSON answer. HTTP 401 is kept apart: from an operation it means
/// the session is stale, from the login that the credentials are wrong.
enum PostError {
    Unauthorized,
    Failed(Failure),
}

impl PostError {
    fn is_transient(&self) -> bool {
        matches!(self, PostError::Failed(Failure { transient: true, .. }))
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            PostError::Failed(Failure {
                outcome: Outcome::Retry { after, .. },
                ..
            }) => *after,
            _ => None,
        }
    }
}

/// One delivery attempt's time budget: the configured timeout, from the start of `deliver`.
/// The engine's lease is longer than that timeout (the configuration checks it), so an attempt
/// ends before another worker may take the message.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    deadline: Instant,
    budget: Duration,
}

impl Attempt {
    fn starting_now(budget: Duration) -> Self {
        Attempt {
            deadline: Instant::now() + budget,
            budget,
        }
    }

    /// What is left for the next request; `None` once the budget is spent.
    fn remaining(&self) -> Option<Duration> {
        self.deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// The pause before a sub-call is tried again, or `None` to give up: after the pause half
    /// the budget must remain, for the repeated sub-call and the write that follows. A
    /// `Retry-After` from the portal lengthens the pause, so it is honoured or the attempt ends.
    fn pause(&self, backoff: Option<Duration>, retry_after: Option<Duration>) -> Option<Duration> {
        let pause = backoff?.max(retry_after.unwrap_or_default());
        (Instant::now() + pause + self.budget / 2 <= self.deadline).then_some(pause)
    }
}

/// The in-attempt retry of an idempotent sub-call: [`SUBCALL_TRIES`] tries, jittered pauses.
fn subcall_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(SUBCALL_MIN_PAUSE)
        .with_max_delay(SUBCALL_MAX_PAUSE)
        .with_max_times(SUBCALL_TRIES - 1)
        .with_jitter()
}

fn alarm(what: &str) -> Outcome {
    tracing::error!(alarm = true, destination = DESTINATION, "{what}");
    Outcome::retry(format!("configuration fault (alarm raised): {what}"))
}

/// The `dstcode` header value, or `None` when the setting is empty. An LGSP routing code is
/// a short code; anything but visible ASCII is a typo that would break every call.
fn dstcode_header(dstcode: &str) -> Result<Option<HeaderValue>, SetupError> {
    if dstcode.is_empty() {
        return Ok(None);
    }
    if !dstcode.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SetupError::Dstcode);
    }
    HeaderValue::from_str(dstcode).map(Some).map_err(|_| SetupError::Dstcode)
}

impl DvcqgAdapter {
    pub fn new(cfg: DvcqgConfig) -> Result<Self, SetupError> {
        let base = cfg.base_url.trim_end_matches('/');
        Ok(DvcqgAdapter {
            client: http::client(cfg.timeout)?,
            dstcode: dstcode_header(&cfg.dstcode)?,
            auth_url: format!("{base}{}", cfg.auth_path),
            integration_url: format!("{base}{}", cfg.integration_path),
            cfg,
            session: RwLock::new(None),
            lifetime: Mutex::new(None),
            known: KnownDossiers::new(),
        })
    }

    /// Every call goes through here, the login included, so the `dstcode` header the LGSP
    /// routes on is on all of them, and each gets what is left of the attempt's budget.
    async fn post_json(&self, url: &str, body: &Value, attempt: Attempt) -> Result<Value, PostError> {
        let transient = |o: Outcome| PostError::Failed(Failure::transient(o));
        let fault = |o: Outcome| PostError::Failed(Failure::fault(o));
        let Some(left) = attempt.remaining() else {
            return Err(fault(Outcome::retry("the attempt's time budget is spent")));
        };
        let mut req = self
            .client
            .post(url)
            .timeout(left)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(dstcode) = &self.dstcode {
            req = req.header("dstcode", dstcode.clone());
        }
        let resp = req.json(body).send().await.map_err(|e| transient(http::classify_error(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| transient(http::classify_error(&e)))?;
        match status.as_u16() {
            200..=299 => {}
            401 => return Err(PostError::Unauthorized),
            403 => {
                return Err(fault(alarm("the LGSP answered 403: this account may not call the portal")));
            }
            429 | 408 | 425 | 500..=599 => {
                return Err(transient(Outcome::Retry {
                    reason: format!("portal answered HTTP {}", status.as_u16()),
                    after: http::retry_after(&headers, SystemTime::now()),
                }));
            }
            other => {
                return Err(fault(alarm(&format!(
                    "the portal answered HTTP {other}: check dvcqg.base_url and the paths"
                ))));
            }
        }
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(fault(Outcome::retry("the portal's answer is too large")));
        }
        serde_json::from_slice(&bytes).map_err(|_| fault(Outcome::retry("the portal's answer is not JSON")))
    }

    /// One operation, sent once. A stale session is renewed once and the call repeated at once,
    /// inside the same attempt; a fresh session refused the same way is a configuration fault.
    ///
    /// The repeat is safe for a write too: it happens only when the portal answered that the
    /// session is stale (HTTP 401, or an `error_code` saying so), that is when it refused the
    /// call and applied nothing. A call whose answer is lost or is a 5xx is never repeated
    /// here; it comes back as a transient [`Failure`], which only the look-up tries again.
    /// A login failure has had its own tries already and is not transient for the caller.
    async fn call(&self, service: &str, fields: &Map<String, Value>, attempt: Attempt) -> Result<Answer, Failure> {
        let mut session = self.current_session(attempt).await.map_err(Failure::fault)?;
        for round in 0..2 {
            let mut body = Map::new();
            body.insert("session".into(), Value::String(session.clone()));
            body.insert("madonvi".into(), Value::String(self.cfg.madonvi.clone()));
            body.insert("service".into(), Value::String(service.into()));
            body.extend(fields.clone());
            match self.post_json(&self.integration_url, &Value::Object(body), attempt).await {
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
                }
                Err(PostError::Unauthorized) => {}
                Err(PostError::Failed(f)) => return Err(f),
            }
            // Here the portal refused the call for a stale session, and nothing else.
            if round == 0 {
                tracing::info!(destination = DESTINATION, service, "portal session expired; renewing");
                self.learn_lifetime(&session).await;
                session = self.login(Some(&session), attempt).await.map_err(Failure::fault)?;
            }
        }
        Err(Failure::fault(alarm(
            "the portal refused a freshly issued session (or the LGSP answered 401): check dvcqg.username and dvcqg.password",
        )))
    }

    /// Whether the portal already has the dossier. A stale session was renewed inside
    /// [`Self::call`]; the look-up changes nothing, so a transient failure is tried again inside
    /// the attempt. An answer that shows neither a hit nor a miss is retried with an alarm,
    /// because the portal's answers have changed shape or the look-up is failing, and either
    /// needs a person.
    async fn exists_on_portal(&self, ma: &str, attempt: Attempt) -> Result<bool, Outcome> {
        let mut fields = Map::new();
        fields.insert("mahoso".into(), Value::String(ma.into()));
        let answer = (|| self.call("TraCuuHoSo", &fields, attempt))
            .retry(subcall_backoff())
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| f.transient)
            .adjust(|f, backoff| {
                let after = match &f.outcome {
                    Outcome::Retry { after, .. } => *after,
                    _ => None,
                };
                attempt.pause(backoff, after)
            })
            .notify(|_, pause| tracing::debug!(destination = DESTINATION, ?pause, "TraCuuHoSo failed; trying again"))
            .await
            .map_err(|f| f.outcome)?;
        let answer = match answer {
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

    /// The writes are sent once per attempt (apart from the stale-session repeat in
    /// [`Self::call`]): a write whose answer was lost may have been applied, and only the
    /// engine, with its backoff and dead-letter rules, decides to send it again.
    async fn sync(&self, d: Delivery<'_>, item: Value, attempt: Attempt) -> Outcome {
        let ma = d.ordering_key;
        let exists = if self.known.contains(ma) {
            true
        } else {
            match self.exists_on_portal(ma, attempt).await {
                Ok(e) => e,
                Err(o) => return o,
            }
        };
        let mut fields = Map::new();
        fields.insert("data".into(), Value::Array(vec![item]));
        let mut updating = exists;
        // At most two sends: a create the portal refused as "already exists", then the update.
        for _ in 0..2 {
            fields.insert("isUpdating".into(), Value::String(if updating { "True" } else { "False" }.into()));
            match self.call("DongBoHoSoMC", &fields, attempt).await {
                Ok(Answer::Ok(_)) => {
                    self.known.insert(ma);
                    return Outcome::Delivered;
                }
                Ok(Answer::Refused { code, message, .. }) if !updating && is_already_exists(&code, &message) => {
                    // The look-up raced another sender, or said "miss" wrongly. The portal
                    // refused the create and applied nothing, so sending the update now cannot
                    // apply the dossier twice.
                    tracing::info!(
                        destination = DESTINATION,
                        ma_ho_so = ma,
                        "the portal already has the dossier; sending it as an update"
                    );
                    updating = true;
                }
                Ok(Answer::Refused { code, message, .. }) => {
                    return Outcome::reject(format!("portal refused DongBoHoSoMC (error_code {code}): {message}"));
                }
                Err(f) => return f.outcome,
            }
        }
        Outcome::reject("portal refused DongBoHoSoMC twice: as a create, then as an update")
    }

    async fn progress(&self, item: Value, attempt: Attempt) -> Outcome {
        let mut fields = Map::new();
        fields.insert("data".into(), Value::Array(vec![item]));
        match self.call("CapNhatTienDoHoSoMC", &fields, attempt).await {
            Ok(Answer::Ok(_)) => Outcome::Delivered,
            Ok(Answer::Refused { code, message, .. }) => {
                Outcome::reject(format!("portal refused CapNhatTienDoHoSoMC (error_code {code}): {message}"))
            }
            Err(f) => f.outcome,
        }
    }
}

impl Adapter for DvcqgAdapter {
    fn destination(&self) -> &str {
        DESTINATION
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let attempt = Attempt::starting_now(self.cfg.timeout);
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
                KIND_SYNC => self.sync(d, item, attempt).await,
                KIND_PROGRESS => self.progress(item, attempt).await,
                other => Outcome::reject(format!("the portal adapter does not handle {other}")),
            }
        })
    }

    /// The dossier's status as the portal receives it: the wire form of the sync's
    /// `TrangThaiHoSo` or the progress entry's `TrangThai` (the same ten codes).
    fn carried_status(&self, d: &Delivery<'_>) -> Option<String> {
        let field = match d.kind {
            KIND_SYNC => "TrangThaiHoSo",
            KIND_PROGRESS => "TrangThai",
            _ => return None,
        };
        let Ok(Value::Object(mut item)) = serde_json::from_slice(d.payload) else {
            return None;
        };
        model::to_wire(&mut item);
        match item.get(field)? {
            Value::String(s) if !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()) => Some(s.clone()),
            _ => None,
        }
    }

    fn tells_centre(&self) -> bool {
        true
    }

    /// `dossier.rejected`: the dossier, the message and the reason the portal (or the engine,
    /// giving up) gave.
    fn dead_letter_event(&self, d: &Delivery<'_>, reason: &str) -> Option<CentreEvent> {
        Some(CentreEvent {
            kind: "dossier.rejected",
            data: serde_json::json!({"MaHoSo": d.ordering_key, "id": d.id, "reason": reason}),
        })
    }

    /// `dossier.delivered`: a dossier the centre was told was rejected reached the portal after
    /// a replay.
    fn redelivered_event(&self, d: &Delivery<'_>) -> Option<CentreEvent> {
        Some(CentreEvent {
            kind: "dossier.delivered",
            data: serde_json::json!({"MaHoSo": d.ordering_key, "id": d.id}),
        })
    }
}

/// A door to the private answer classifier for the fuzz targets (fuzz/, docs/fuzzing.md), and
/// for nothing else: it calls the functions the adapter uses, unchanged, on one answer.
#[doc(hidden)]
pub mod fuzzing {
    use serde_json::Value;

    /// What a `TraCuuHoSo` answer says about the dossier.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Lookup {
        Found,
        Missing,
        Unclear(String),
    }

    /// What the adapter reads from one portal answer.
    #[derive(Debug)]
    pub struct Reading {
        pub success: bool,
        pub code: String,
        pub message: String,
        pub session_expired: bool,
        pub not_found: bool,
        pub lookup: Lookup,
    }

    pub fn read_answer(answer: &Value) -> Reading {
        let (code, message) = (super::code_text(answer), super::message_of(answer));
        Reading {
            success: super::success_code(answer),
            session_expired: super::is_session_expiry(&code, &message),
            not_found: super::is_not_found(&message),
            lookup: match super::classify_lookup(answer) {
                super::Lookup::Found => Lookup::Found,
                super::Lookup::Missing => Lookup::Missing,
                super::Lookup::Unclear(why) => Lookup::Unclear(why),
            },
            code,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::answer::folded;
    use super::*;

    fn built(toml: &str) -> Result<bool, Vec<String>> {
        let section = hcc_config::Section::from_toml(DESTINATION, toml).expect("toml");
        build(&BuildContext::bare(DESTINATION, Some(&section)))
            .map(|a| a.is_some())
            .map_err(|p| p.into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn the_section_is_checked_by_key_and_an_empty_base_url_leaves_the_portal_off() {
        assert_eq!(built("base_url = \"\"\n"), Ok(false));
        assert_eq!(built("base_url = \"http://portal.example\"\npassword = \"pw\"\n"), Ok(true));
        assert_eq!(
            built("base_url = \"portal.example\"\ndstcode = \"a b\"\n"),
            Err(vec!["dvcqg.base_url".to_string(), "dvcqg.dstcode".to_string()])
        );
        assert!(
            built("base_url = \"http://portal.example\"\nbase_uri = \"x\"\n").is_err(),
            "unknown key"
        );
        // A password is a secret from the section on: it never prints.
        let s: DvcqgSettings = hcc_config::Section::from_toml(DESTINATION, "password = \"hunter2\"\n")
            .expect("toml")
            .parse()
            .expect("parses");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn success_codes_are_read_liberally() {
        assert!(success_code(&json!({"error_code": 0})));
        assert!(success_code(&json!({"error_code": "00"})));
        assert!(success_code(&json!({"error_code": "0"})));
        assert!(!success_code(&json!({"error_code": 1})));
        assert!(!success_code(&json!({"error_code": "-1"})));
        assert!(!success_code(&json!({})));
    }

    /// Real refusals, which must be dead-lettered, and stale-session answers, which must renew
    /// the session: with and without diacritics, composed (NFC) and decomposed (NFD).
    #[test]
    fn stale_sessions_are_told_from_refusals_by_code_and_whole_phrase() {
        use unicode_normalization::UnicodeNormalization;
        let refusals = [
            ("2", "Phiên bản dữ liệu không hợp lệ"),
            ("2", "Phien ban du lieu khong hop le"),
            ("2", "Ngày hẹn trả đã hết hạn"),
            ("2", "Ngay hen tra da het han"),
            ("5", "Hồ sơ đã hết hạn xử lý"),
            ("2", "Phiên bản thủ tục đã hết hạn sử dụng"),
            ("2", "Mã thủ tục hành chính không tồn tại"),
            ("4", "Phiên họp thẩm định chưa được tạo"),
            ("2", "Token hồ sơ trùng lặp"),
            ("2", "Sessionexpired"),
            ("2", "Tokens không hợp lệ"),
            ("99", "Dữ liệu không hợp lệ: session_id thiếu"),
            ("3", "Mã đơn vị không hợp lệ"),
        ];
        let stale = [
            ("401", ""),
            ("-1", ""),
            ("-1", "Session expired"),
            ("99", "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"),
            ("99", "PHIEN LAM VIEC DA HET HAN"),
            ("5", "Phiên làm việc hết hạn"),
            ("5", "phien lam viec het han!"),
            ("5", "Session expired"),
            ("5", "Your session expired. Please log in"),
            ("5", "Token không hợp lệ"),
            ("5", "token khong hop le"),
            ("5", "TOKEN KHÔNG HỢP LỆ."),
            ("5", "Invalid token"),
            ("5", "Lỗi: invalid  token"),
            ("5", "ĐĂNG NHẬP LỖI: Phiên làm việc đã hết hạn"),
        ];
        for (code, message) in refusals {
            for form in [message.to_string(), message.nfd().collect(), message.nfc().collect()] {
                assert!(!is_session_expiry(code, &form), "a refusal, not a stale session: {code} {form:?}");
            }
        }
        for (code, message) in stale {
            for form in [message.to_string(), message.nfd().collect(), message.nfc().collect()] {
                assert!(is_session_expiry(code, &form), "a stale session: {code} {form:?}");
            }
        }
        assert_eq!(folded("Đã  TỒN tại!"), " da ton tai ");
        assert_eq!(folded("Ðã tồn tại"), " da ton tai ");
    }

    #[test]
    fn already_exists_needs_the_code_and_the_words() {
        use unicode_normalization::UnicodeNormalization;
        for (code, message) in [
            ("3", "Hồ sơ đã tồn tại"),
            ("-3", "Hồ sơ 000.00.22.H46-241125-0001 đã tồn tại trên hệ thống"),
            ("-3", "Ho so da ton tai"),
            ("3", "HỒ SƠ ĐÃ TỒN TẠI"),
        ] {
            assert!(is_already_exists(code, message), "{code} {message}");
            assert!(
                is_already_exists(code, &message.nfd().collect::<String>()),
                "{code} {message} (NFD)"
            );
        }
        for (code, message) in [
            ("2", "Hồ sơ đã tồn tại"),
            ("3", "Mã đơn vị không hợp lệ"),
            ("-3", "Hồ sơ không tồn tại"),
            ("3", "Hồ sơ tồn tại"),
            ("0", "Đã tồn tại"),
            ("33", "Đã tồn tại"),
        ] {
            assert!(!is_already_exists(code, message), "{code} {message}");
        }
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

    /// A scripted portal on loopback: each request is answered by `script(service, n)`, `n`
    /// counting that service's calls from 1 (the login is service `"login"`); every request
    /// is recorded. One request per connection, so a dropped answer is one lost call.
    mod scripted {
        use std::sync::{Arc, Mutex};

        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        pub enum Reply {
            Json(u16, serde_json::Value),
            /// The request was read, then the connection closes with no answer.
            Drop,
        }

        pub type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

        pub async fn serve(script: Script) -> (String, Arc<Mutex<Vec<String>>>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::<String>::new()));
            let log = seen.clone();
            tokio::spawn(async move {
                while let Ok((mut sock, _)) = listener.accept().await {
                    let (script, log) = (script.clone(), log.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 8192];
                        let (head_end, length) = loop {
                            let n = sock.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                break (i + 4, length);
                            }
                        };
                        while buf.len() < head_end + length {
                            let n = sock.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let body: serde_json::Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
                        let service = body["service"].as_str().unwrap_or("login").to_string();
                        let n = {
                            let mut l = log.lock().unwrap();
                            l.push(service.clone());
                            l.iter().filter(|s| **s == service).count()
                        };
                        match script(&service, n) {
                            Reply::Drop => {}
                            Reply::Json(status, v) => {
                                let text = v.to_string();
                                let answer = format!(
                                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                                    text.len()
                                );
                                let _ = sock.write_all(answer.as_bytes()).await;
                            }
                        }
                    });
                }
            });
            (url, seen)
        }
    }

    use std::sync::Arc;

    use scripted::Reply;

    fn ok(v: Value) -> Reply {
        Reply::Json(200, v)
    }

    /// A portal that answers every call well, except where `fault` says otherwise.
    fn portal_with(fault: impl Fn(&str, usize) -> Option<Reply> + Send + Sync + 'static) -> scripted::Script {
        Arc::new(move |service: &str, n: usize| {
            if let Some(r) = fault(service, n) {
                return r;
            }
            match service {
                "login" => ok(json!({"error_code": 0, "session": "S-1"})),
                "TraCuuHoSo" => ok(json!({"error_code": 0, "result": []})),
                _ => ok(json!({"error_code": 0, "message": "Thành công"})),
            }
        })
    }

    fn adapter(url: &str, timeout: Duration) -> DvcqgAdapter {
        DvcqgAdapter::new(DvcqgConfig {
            base_url: url.into(),
            auth_path: "/auth".into(),
            integration_path: "/integration".into(),
            username: "u".into(),
            password: Secret::new("p"),
            madonvi: "000.00.22.H46".into(),
            dstcode: String::new(),
            timeout,
        })
        .unwrap()
    }

    #[test]
    fn the_carried_status_is_the_wire_form_of_the_kinds_own_field() {
        let a = adapter("http://127.0.0.1:9", Duration::from_secs(1));
        let status = |kind: &str, v: Value| {
            let payload = v.to_string();
            a.carried_status(&Delivery {
                id: "1",
                kind,
                ordering_key: "M-1",
                payload: payload.as_bytes(),
                attempt: 1,
            })
        };
        assert_eq!(status(KIND_SYNC, json!({"TrangThaiHoSo": 4, "TrangThai": 9})), Some("4".into()));
        assert_eq!(status(KIND_SYNC, json!({"TrangThaiHoSo": "04"})), Some("4".into()));
        assert_eq!(
            status(KIND_PROGRESS, json!({"TrangThaiHoSo": 4, "TrangThai": "10"})),
            Some("10".into())
        );
        assert_eq!(status(KIND_PROGRESS, json!({"TrangThaiHoSo": 4})), None);
        assert_eq!(status("other", json!({"TrangThaiHoSo": 4})), None);
        assert_eq!(status(KIND_SYNC, json!({"TrangThaiHoSo": "bốn"})), None);
        assert!(a.tells_centre());
    }

    /// The centre's events about a dossier name it by `MaHoSo`: the adapter words them, the
    /// engine only queues them.
    #[test]
    fn the_centre_hears_of_a_dead_dossier_and_of_its_delivery_after_a_replay() {
        let a = adapter("http://127.0.0.1:9", Duration::from_secs(1));
        let d = Delivery {
            id: "m-1",
            kind: KIND_SYNC,
            ordering_key: "000.00.22.H46-241125-0001",
            payload: b"{}",
            attempt: 3,
        };
        let dead = a.dead_letter_event(&d, "portal refused").expect("an event");
        assert_eq!(dead.kind, "dossier.rejected");
        assert_eq!(
            dead.data,
            json!({"MaHoSo": "000.00.22.H46-241125-0001", "id": "m-1", "reason": "portal refused"})
        );
        let delivered = a.redelivered_event(&d).expect("an event");
        assert_eq!(delivered.kind, "dossier.delivered");
        assert_eq!(delivered.data, json!({"MaHoSo": "000.00.22.H46-241125-0001", "id": "m-1"}));
    }

    async fn deliver(a: &DvcqgAdapter, kind: &str) -> Outcome {
        let payload = json!({"MaHoSo": "M-1", "TrangThaiHoSo": 1, "TrangThai": 1}).to_string();
        a.deliver(Delivery {
            id: "m-1",
            kind,
            ordering_key: "M-1",
            payload: payload.as_bytes(),
            attempt: 1,
        })
        .await
    }

    fn count(seen: &std::sync::Mutex<Vec<String>>, service: &str) -> usize {
        seen.lock().unwrap().iter().filter(|s| *s == service).count()
    }

    #[tokio::test]
    async fn a_failing_lookup_is_tried_again_and_the_write_goes_once() {
        let (url, seen) = scripted::serve(portal_with(|service, n| match (service, n) {
            ("TraCuuHoSo", 1) => Some(Reply::Json(503, json!({"message": "busy"}))),
            ("TraCuuHoSo", 2) => Some(Reply::Drop),
            _ => None,
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered);
        assert_eq!(count(&seen, "TraCuuHoSo"), 3);
        assert_eq!(count(&seen, "DongBoHoSoMC"), 1, "{:?}", seen.lock().unwrap());
    }

    #[tokio::test]
    async fn a_failing_login_is_tried_again() {
        let (url, seen) = scripted::serve(portal_with(|service, n| {
            (service == "login" && n == 1).then(|| Reply::Json(502, json!({"message": "bad gateway"})))
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
        assert_eq!((count(&seen, "login"), count(&seen, "CapNhatTienDoHoSoMC")), (2, 1));
    }

    #[tokio::test]
    async fn a_write_whose_answer_is_lost_is_not_sent_again_in_the_attempt() {
        for (service, kind) in [("DongBoHoSoMC", KIND_SYNC), ("CapNhatTienDoHoSoMC", KIND_PROGRESS)] {
            for reply in [|| Reply::Drop, || Reply::Json(503, json!({})), || Reply::Json(429, json!({}))] {
                let (url, seen) = scripted::serve(portal_with(move |s, _| (s == service).then(reply))).await;
                let a = adapter(&url, Duration::from_secs(5));
                assert!(matches!(deliver(&a, kind).await, Outcome::Retry { .. }));
                assert_eq!(count(&seen, service), 1, "{service} was repeated: {:?}", seen.lock().unwrap());
            }
        }
    }

    #[tokio::test]
    async fn a_create_refused_as_already_existing_is_sent_again_as_an_update_once() {
        let exists = |code: i64| {
            move |service: &str, n: usize| {
                (service == "DongBoHoSoMC" && n == 1).then(|| ok(json!({"error_code": code, "message": "Hồ sơ đã tồn tại"})))
            }
        };
        for code in [3, -3] {
            let (url, seen) = scripted::serve(portal_with(exists(code))).await;
            let a = adapter(&url, Duration::from_secs(5));
            assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered, "error_code {code}");
            assert_eq!(count(&seen, "DongBoHoSoMC"), 2);
            // Known from now on: the next sync goes as an update without a look-up.
            assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered);
            assert_eq!((count(&seen, "TraCuuHoSo"), count(&seen, "DongBoHoSoMC")), (1, 3));
        }
        // Refused again as the update: dead-lettered, not sent a third time.
        let (url, seen) = scripted::serve(portal_with(|service, _| {
            (service == "DongBoHoSoMC").then(|| ok(json!({"error_code": "-3", "message": "Hồ sơ đã tồn tại"})))
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Reject { .. }));
        assert_eq!(count(&seen, "DongBoHoSoMC"), 2);
        // Other refusals of a create are dead-lettered after one send.
        for answer in [
            json!({"error_code": 2, "message": "Hồ sơ đã tồn tại"}),
            json!({"error_code": 3, "message": "Mã đơn vị không hợp lệ"}),
        ] {
            let (url, seen) = scripted::serve(portal_with(move |service, _| {
                (service == "DongBoHoSoMC").then(|| ok(answer.clone()))
            }))
            .await;
            let a = adapter(&url, Duration::from_secs(5));
            assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Reject { .. }));
            assert_eq!(count(&seen, "DongBoHoSoMC"), 1);
        }
    }

    #[tokio::test]
    async fn a_write_refused_for_a_stale_session_is_repeated_once_after_a_login() {
        let (url, seen) = scripted::serve(portal_with(|service, n| {
            (service == "DongBoHoSoMC" && n == 1).then(|| ok(json!({"error_code": -1, "message": "Session expired"})))
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert_eq!(deliver(&a, KIND_SYNC).await, Outcome::Delivered);
        assert_eq!((count(&seen, "login"), count(&seen, "DongBoHoSoMC")), (2, 2));
    }

    #[tokio::test]
    async fn refusals_are_not_tried_again_and_transient_faults_only_so_often() {
        let (url, seen) = scripted::serve(portal_with(|service, _| {
            (service == "TraCuuHoSo").then(|| Reply::Json(403, json!({"message": "Forbidden"})))
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Retry { .. }));
        assert_eq!((count(&seen, "TraCuuHoSo"), count(&seen, "DongBoHoSoMC")), (1, 0));

        let (url, seen) = scripted::serve(portal_with(|service, _| (service == "TraCuuHoSo").then_some(Reply::Drop))).await;
        let a = adapter(&url, Duration::from_secs(5));
        assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Retry { .. }));
        assert_eq!((count(&seen, "TraCuuHoSo"), count(&seen, "DongBoHoSoMC")), (SUBCALL_TRIES, 0));
    }

    #[tokio::test]
    async fn retries_stay_inside_the_attempts_budget() {
        // Tries stop once less than half the budget would be left after the pause; a
        // Retry-After longer than that ends the attempt instead of being waited out.
        let (url, seen) = scripted::serve(portal_with(|service, _| (service == "login").then(|| Reply::Json(503, json!({}))))).await;
        let a = adapter(&url, Duration::from_millis(600));
        let started = Instant::now();
        assert!(matches!(deliver(&a, KIND_SYNC).await, Outcome::Retry { .. }));
        assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
        assert!(count(&seen, "login") >= 1);
        let attempt = Attempt::starting_now(Duration::from_millis(600));
        assert_eq!(attempt.pause(Some(Duration::from_millis(50)), Some(Duration::from_secs(3))), None);
        assert_eq!(attempt.pause(None, None), None);
        assert!(attempt.pause(Some(Duration::from_millis(50)), None).is_some());
    }

    #[tokio::test]
    async fn sessions_are_renewed_ahead_of_the_lifetime_the_portal_showed() {
        // The portal calls the first session stale on its second write (at 1.2 s or more).
        let (url, seen) = scripted::serve(Arc::new(|service: &str, n: usize| match (service, n) {
            ("login", n) => ok(json!({"error_code": 0, "session": format!("S-{n}")})),
            ("CapNhatTienDoHoSoMC", 2) => ok(json!({"error_code": -1, "message": "Session expired"})),
            _ => ok(json!({"error_code": 0})),
        }))
        .await;
        let a = adapter(&url, Duration::from_secs(5));
        assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
        let learned = a.learned_lifetime().unwrap();
        assert!(learned >= Duration::from_millis(1200), "{learned:?}");
        assert_eq!((count(&seen, "login"), count(&seen, "CapNhatTienDoHoSoMC")), (2, 3));
        // Past three quarters of that, the next write goes on a fresh session, not a stale one.
        tokio::time::sleep(learned * 3 / 4).await;
        assert_eq!(deliver(&a, KIND_PROGRESS).await, Outcome::Delivered);
        assert_eq!((count(&seen, "login"), count(&seen, "CapNhatTienDoHoSoMC")), (3, 4));
    }
}
