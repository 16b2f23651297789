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
//! - `ingest`: the API routes that queue dossiers and progress for this destination;
//! - [`push`]: the portal as a source: the dossiers it pushes down, and its file service;
//! - `status`: the centre's status of a pushed dossier, sent back up (`DongBoTrangThaiHoSo`);
//! - `tests`: the unit tests, against a scripted portal among others.

mod answer;
pub mod catalogue;
mod ingest;
pub mod model;
pub mod push;
mod session;
mod status;

use std::collections::{BTreeMap, HashSet, VecDeque};
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
/// Reading counterparts' Vietnamese answers by whole phrases, shared with the link-up.
pub(crate) use self::answer::{folded, has_phrase};
use self::session::Session;
use crate::evidence::Label;
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
    /// The full URL of the share endpoint (catalogues, the file service); empty: `share_path`
    /// under `base_url` (contract v3 `dvcqg.share_url`).
    pub share_url: String,
    /// The `dstcode` header the LGSP routes on, sent on every call when non-empty.
    pub dstcode: String,
    /// The centre's status of a dossier the portal pushed (`"1"` to `"10"`) as the portal is
    /// sent it in `DongBoTrangThaiHoSo`; a code not listed is sent as it is (a guess:
    /// `docs/inbound.md`).
    pub inbound_status_map: BTreeMap<String, u8>,
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
            share_url: String::new(),
            dstcode: String::new(),
            inbound_status_map: BTreeMap::new(),
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
        copies: &[],
    }
}

fn build(ctx: &BuildContext<'_>) -> BuiltDestination {
    Ok(portal(ctx)?.map(|a| Arc::new(a) as Arc<dyn Adapter>))
}

/// The portal client the section configures, `None` when `base_url` is empty: the
/// destination's adapter, and the push source's file service (`push`), each built from it.
fn portal(ctx: &BuildContext<'_>) -> Result<Option<DvcqgAdapter>, Vec<hcc_config::Problem>> {
    let s: DvcqgSettings = ctx.settings()?;
    if s.base_url.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    ctx.check_http_url(&mut problems, "base_url", &s.base_url);
    if !s.share_url.is_empty() {
        ctx.check_http_url(&mut problems, "share_url", &s.share_url);
    }
    if dstcode_header(&s.dstcode).is_err() {
        problems.push(ctx.problem("dstcode", DSTCODE_RULE));
    }
    let inbound_status = crate::inbound::status_table(ctx, "inbound_status_map", &s.inbound_status_map, status::IDENTITY, 10)
        .unwrap_or_else(|p| {
            problems.extend(p);
            status::IDENTITY
        });
    if !problems.is_empty() {
        return Err(problems);
    }
    let cfg = DvcqgConfig {
        base_url: s.base_url,
        auth_path: s.auth_path,
        integration_path: s.integration_path,
        share_path: s.share_path,
        share_url: s.share_url,
        inbound_status,
        username: s.username,
        password: s.password,
        madonvi: s.madonvi,
        dstcode: s.dstcode,
        timeout: ctx.timeout(),
    };
    DvcqgAdapter::new(cfg).map(Some).map_err(|e| {
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
    /// The share endpoint (catalogues, the file service), under `base_url`...
    pub share_path: String,
    /// ...unless this full URL is given (`dvcqg.share_url`; empty: not given).
    pub share_url: String,
    /// The portal's status (index 0 is `TrangThai` 1) sent for the centre's status of a pushed
    /// dossier.
    pub inbound_status: [u8; 10],
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
    share_url: String,
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
///
/// Each code is kept as the first 128 bits of its SHA-256, not as text: 100,000 codes of 26
/// characters take 3.8 MiB of RSS instead of 16.1 MiB (measured, 2026-12-07: two copies of
/// each string and their allocations), and no one can choose a code that collides with
/// another's digest.
struct KnownDossiers {
    inner: Mutex<(HashSet<u128>, VecDeque<u128>)>,
}

impl KnownDossiers {
    fn new() -> Self {
        KnownDossiers {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    fn digest(ma: &str) -> u128 {
        let full = openssl::sha::sha256(ma.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&full[..16]);
        u128::from_le_bytes(first)
    }

    fn contains(&self, ma: &str) -> bool {
        let d = Self::digest(ma);
        self.inner.lock().map(|g| g.0.contains(&d)).unwrap_or(false)
    }

    fn insert(&self, ma: &str) {
        let d = Self::digest(ma);
        if let Ok(mut g) = self.inner.lock()
            && g.0.insert(d)
        {
            g.1.push_back(d);
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
            share_url: if cfg.share_url.is_empty() {
                format!("{base}{}", cfg.share_path)
            } else {
                cfg.share_url.clone()
            },
            cfg,
            session: RwLock::new(None),
            lifetime: Mutex::new(None),
            known: KnownDossiers::new(),
        })
    }

    /// Every call goes through here, the login included, so the `dstcode` header the LGSP
    /// routes on is on all of them, and each gets what is left of the attempt's budget.
    async fn post_json(&self, url: &str, body: &Value, label: Label, attempt: Attempt) -> Result<Value, PostError> {
        self.post_json_within(url, body, label, attempt, MAX_ANSWER_BYTES).await
    }

    /// [`Self::post_json`] taking an answer of at most `max_answer` bytes (a file from the
    /// file service is bigger than any other answer).
    async fn post_json_within(
        &self,
        url: &str,
        body: &Value,
        label: Label,
        attempt: Attempt,
        max_answer: usize,
    ) -> Result<Value, PostError> {
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
        let resp = http::send(req.json(body), label, max_answer)
            .await
            .map_err(|e| transient(http::classify_error(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = match http::read_bounded(resp, max_answer).await {
            Ok(b) => b,
            Err(http::ReadError::Transport(e)) => return Err(transient(http::classify_error(&e))),
            Err(http::ReadError::TooLarge(_)) => return Err(fault(Outcome::retry("the portal's answer is too large"))),
        };
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
        self.call_at(&self.integration_url, service, fields, attempt, MAX_ANSWER_BYTES)
            .await
    }

    /// [`Self::call`] to another of the portal's endpoints (the share endpoint), taking an
    /// answer of at most `max_answer` bytes.
    async fn call_at(
        &self,
        url: &str,
        service: &str,
        fields: &Map<String, Value>,
        attempt: Attempt,
        max_answer: usize,
    ) -> Result<Answer, Failure> {
        let mut session = self.current_session(attempt).await.map_err(Failure::fault)?;
        for round in 0..2 {
            let mut body = Map::new();
            body.insert("session".into(), Value::String(session.clone()));
            body.insert("madonvi".into(), Value::String(self.cfg.madonvi.clone()));
            body.insert("service".into(), Value::String(service.into()));
            body.extend(fields.clone());
            let label = Label::new(DESTINATION, service);
            match self.post_json_within(url, &Value::Object(body), label, attempt, max_answer).await {
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
            // A status of a pushed dossier has its own payload (`inbound::status_payload`).
            if d.kind == crate::inbound::KIND_STATUS {
                return self.inbound_status(d, attempt).await;
            }
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

    fn catalogue(&self) -> Option<&dyn crate::catalogue::CatalogueSource> {
        Some(self)
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
mod tests;
