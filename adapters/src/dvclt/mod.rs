//! The civil-registration link-up (DVCLT: birth and death registration), as
//! `docs/inbound.md` describes it: a source the gateway polls for the dossiers waiting for the
//! province (list, detail, acknowledge), and a destination whose queue carries the centre's
//! status of each back up. Both are built from the `[dvclt]` section, each with its own
//! client and token (the link-up takes two).
//!
//! Classification of a status: an answer whose text says "thành công" or "đã tồn tại" is
//! delivered; a 401 fetches a new token and sends it once more; transport errors, timeouts,
//! 408, 425, 429 and 5xx are retried; a redirect, a refused login or an answer over its bound
//! is retried with an alarm; any other answer is the link-up refusing the status, a rejection.
//!
//! # Layout
//!
//! - this file: the section and its build, the destination and the source;
//! - `client`: the calls, the token and its renewal, the bounds;
//! - `wire`: the answers read and the bodies built, without I/O.

mod client;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hcc_config::{Problem, Secret};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use self::client::{CallError, Client, MAX_ANSWER_BYTES, MAX_DETAIL_BYTES};
use crate::domain::MaHoSo;
use crate::inbound::{InboundDossier, InboundSource, KIND_STATUS, Listed, SourceError, SourceKind, read_status_payload};
use crate::registry::{BuildContext, BuiltDestination, DestinationSpec};
use crate::{Adapter, BoxFuture, Delivery, Outcome};

/// The link-up's id: its section's, its queue's, and its source's.
pub const ID: &str = "dvclt";

/// The detail's path, fixed in the public code; the record id is appended.
pub const DETAIL_PATH: &str = "/api/lienthongdvclt/hosolienthong";

/// The longest poll interval taken: a day.
const MAX_POLL_SECS: u64 = 24 * 3600;

/// The `[dvclt]` section. An empty `base_url` leaves the link-up off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvcltSettings {
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    /// How often the waiting dossiers are listed; 0: never.
    pub poll_every_secs: u64,
    pub token_path: String,
    pub list_path: String,
    pub ack_path: String,
    pub status_path: String,
    /// The portal's `TrangThai` (`"1"` to `"10"`) as the link-up's `trangThai` (1 to 7), over
    /// [`wire::DEFAULT_STATUS_MAP`].
    pub status_map: BTreeMap<String, u8>,
}

impl Default for DvcltSettings {
    fn default() -> Self {
        DvcltSettings {
            base_url: String::new(),
            username: String::new(),
            password: Secret::default(),
            poll_every_secs: 60,
            token_path: "/api/tokens".into(),
            list_path: "/api/lienthongdvclt/hosolienthong".into(),
            ack_path: "/api/lienthongdvclt/hosolienthong/danhan".into(),
            status_path: "/api/lienthongdvclt/hosolienthong/trangthai".into(),
            status_map: BTreeMap::new(),
        }
    }
}

/// The link-up as a destination: the queue of the centre's statuses; no ingest route of its
/// own (the gateway's status route queues to it).
pub fn spec() -> DestinationSpec {
    DestinationSpec {
        name: ID,
        build: build_destination,
        ingest: &[],
        event_sink: false,
        copies: &[],
    }
}

/// The link-up as a source, polled.
pub const SOURCE: SourceKind = SourceKind {
    id: ID,
    push_path: None,
    build: build_source,
};

fn build_destination(ctx: &BuildContext<'_>) -> BuiltDestination {
    Ok(build(ctx)?.map(|l| Arc::new(l) as Arc<dyn Adapter>))
}

fn build_source(ctx: &BuildContext<'_>) -> crate::inbound::BuiltSource {
    Ok(build(ctx)?.map(|l| Arc::new(l) as Arc<dyn InboundSource>))
}

/// A path of the section: absolute, visible ASCII.
fn is_path(p: &str) -> bool {
    p.starts_with('/') && p.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'?' && b != b'#')
}

fn build(ctx: &BuildContext<'_>) -> Result<Option<LinkUp>, Vec<Problem>> {
    let s: DvcltSettings = ctx.settings()?;
    if s.base_url.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    ctx.check_http_url(&mut problems, "base_url", &s.base_url);
    if s.username.trim().is_empty() {
        problems.push(ctx.problem("username", "is required when dvclt.base_url is set"));
    }
    if s.password.is_empty() {
        problems.push(ctx.problem("password", "is required when dvclt.base_url is set"));
    }
    if s.poll_every_secs > MAX_POLL_SECS {
        problems.push(ctx.problem("poll_every_secs", format!("must be at most {MAX_POLL_SECS} (0: never)")));
    }
    for (key, path) in [
        ("token_path", &s.token_path),
        ("list_path", &s.list_path),
        ("ack_path", &s.ack_path),
        ("status_path", &s.status_path),
    ] {
        if !is_path(path) {
            problems.push(ctx.problem(key, "must be a path starting with / (visible ASCII, no ? or #)"));
        }
    }
    let status_map = crate::inbound::status_table(ctx, "status_map", &s.status_map, wire::DEFAULT_STATUS_MAP, wire::MAX_LINK_STATUS)
        .unwrap_or_else(|p| {
            problems.extend(p);
            wire::DEFAULT_STATUS_MAP
        });
    if !problems.is_empty() {
        return Err(problems);
    }
    let client = Client::new(&s.base_url, &s.token_path, &s.username, s.password, ctx.timeout())
        .map_err(|e| vec![ctx.problem("base_url", format!("cannot build the link-up's HTTP client: {e}"))])?;
    Ok(Some(LinkUp {
        client,
        list_path: s.list_path,
        ack_path: s.ack_path,
        status_path: s.status_path,
        poll_every: (s.poll_every_secs > 0).then(|| Duration::from_secs(s.poll_every_secs)),
        status_map,
    }))
}

/// The link-up, as a destination and as a source.
pub struct LinkUp {
    client: Client,
    list_path: String,
    ack_path: String,
    status_path: String,
    poll_every: Option<Duration>,
    status_map: [u8; 10],
}

impl LinkUp {
    async fn status(&self, d: Delivery<'_>) -> Outcome {
        let body = match read_status_payload(d.payload)
            .and_then(|(status, link)| wire::status_body(d.ordering_key, &status, &link, &self.status_map))
        {
            Ok(b) => b,
            Err(why) => return Outcome::reject(why),
        };
        match self.client.call(Method::POST, &self.status_path, &body, MAX_ANSWER_BYTES).await {
            Ok(answer) if wire::status_taken(&answer) => Outcome::Delivered,
            Ok(answer) => Outcome::reject(format!("the link-up did not take the status: {}", wire::answer_excerpt(&answer))),
            Err(e) => e.outcome(),
        }
    }
}

impl Adapter for LinkUp {
    fn destination(&self) -> &str {
        ID
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match d.kind {
                KIND_STATUS => self.status(d).await,
                other => Outcome::reject(format!("the link-up adapter does not handle {other}")),
            }
        })
    }
}

impl InboundSource for LinkUp {
    fn id(&self) -> &'static str {
        ID
    }

    fn poll_every(&self) -> Option<Duration> {
        self.poll_every
    }

    fn list(&self, max: usize) -> BoxFuture<'_, Result<Vec<Listed>, SourceError>> {
        Box::pin(async move {
            let answer = self
                .client
                .call(Method::GET, &self.list_path, &Value::Object(Map::new()), MAX_ANSWER_BYTES)
                .await
                .map_err(CallError::source_error)?;
            wire::read_list(&answer, max).map_err(SourceError::alarm)
        })
    }

    fn fetch<'a>(&'a self, listed: &'a Listed) -> BoxFuture<'a, Result<InboundDossier, SourceError>> {
        Box::pin(async move {
            // `handle` was checked to be one path segment when listed; a caller's own is
            // checked again here.
            if listed.handle.is_empty() || !listed.handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(SourceError::alarm("a link-up record id that is not one path segment"));
            }
            let path = format!("{DETAIL_PATH}/{}", listed.handle);
            let answer = self
                .client
                .call(Method::GET, &path, &Value::Object(Map::new()), MAX_DETAIL_BYTES)
                .await
                .map_err(CallError::source_error)?;
            wire::read_detail(&answer, listed).map_err(SourceError::alarm)
        })
    }

    fn acknowledge<'a>(&'a self, code: &'a MaHoSo, _link: &'a Map<String, Value>) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let answer = self
                .client
                .call(Method::PUT, &self.ack_path, &wire::ack_body(code), MAX_ANSWER_BYTES)
                .await
                .map_err(CallError::source_error)?;
            if wire::ack_taken(&answer) {
                Ok(())
            } else {
                Err(SourceError::alarm(format!(
                    "the link-up did not confirm the acknowledgement: {}",
                    wire::answer_excerpt(&answer)
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests;
