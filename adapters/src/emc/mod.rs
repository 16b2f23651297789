//! The Ministry's monitoring system (EMC), as `shared/domain/dvcqg.md` ("EMC tracking")
//! describes it: every step of a dossier is POSTed as JSON to `TrackingMCDT` on the national
//! integration platform, with EMC's own status codes.
//!
//! EMC has no ingest route of its own: it takes **copies** of the portal's `dossier.sync` and
//! `dossier.progress` messages ([`crate::registry::DestinationSpec::copies`]), in its own
//! queue, so the portal never waits for EMC nor EMC for the portal, and EMC's dead letters
//! replay like any other. Off unless `emc.url` is set.
//!
//! Classification: any 2xx is delivered (the public client takes any success status, and
//! reads no body); 408, 429, 5xx and transport failures are retried; any other status is a
//! refusal of the message. A progress entry names no procedure: the gateway's core gives a copy
//! the procedure its dossier was last accepted with (kept in the store), and the adapter
//! remembers each dossier's procedure and name from its syncs ([`Procedures`]); a progress
//! entry that names none by either way is refused with a reason that says so (replay it after
//! the dossier's next sync).
//!
//! # Layout
//!
//! - this file: the `[emc]` section and its build, the adapter and its delivery;
//! - [`wire`]: the tracking body from the stored message, pure functions;
//! - `tests`: the unit tests, against a scripted EMC among others.

pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcc_config::Secret;
use serde::Deserialize;

use self::wire::{Procedure, Step};
use crate::dvcqg::{KIND_PROGRESS, KIND_SYNC};
use crate::evidence::Label;
use crate::registry::{BuildContext, BuiltDestination, DestinationSpec};
use crate::{Adapter, BoxFuture, Delivery, Outcome, http};

pub const DESTINATION: &str = "emc";

/// How many dossiers' procedures the adapter remembers (oldest forgotten first).
const PROCEDURES_CAPACITY: usize = 100_000;

/// The `[emc]` section. An empty `url` leaves the destination off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmcSettings {
    /// The full `TrackingMCDT` URL, e.g. `https://f-emc.ngsp.gov.vn/TrackingMCDT`.
    pub url: String,
    /// The province's site id EMC knows it by.
    pub site_id: i64,
    /// Sent as `Authorization: Bearer <token>` when set; the public client sends none.
    pub token: Secret,
}

/// EMC as a destination: a copy of every dossier sync and progress entry.
pub fn spec() -> DestinationSpec {
    DestinationSpec {
        name: DESTINATION,
        build,
        ingest: &[],
        event_sink: false,
        copies: &[KIND_SYNC, KIND_PROGRESS],
    }
}

fn build(ctx: &BuildContext<'_>) -> BuiltDestination {
    let s: EmcSettings = ctx.settings()?;
    if s.url.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    ctx.check_http_url(&mut problems, "url", &s.url);
    if s.site_id <= 0 {
        problems.push(ctx.problem("site_id", "must be the province's EMC site id, a whole number above 0"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    EmcAdapter::new(s.url, s.site_id, s.token, ctx.timeout())
        .map(|a| Some(Arc::new(a) as Arc<dyn Adapter>))
        .map_err(|e| vec![ctx.problem("url", format!("cannot build the HTTP client: {e}"))])
}

pub struct EmcAdapter {
    client: reqwest::Client,
    url: String,
    site_id: i64,
    token: Secret,
    procedures: Procedures,
}

impl EmcAdapter {
    pub fn new(url: String, site_id: i64, token: Secret, timeout: Duration) -> reqwest::Result<Self> {
        Ok(EmcAdapter {
            client: http::client(timeout)?,
            url,
            site_id,
            token,
            procedures: Procedures::new(PROCEDURES_CAPACITY),
        })
    }

    /// The tracking body for one message, or why it cannot be made.
    fn tracking(&self, d: &Delivery<'_>) -> Result<serde_json::Value, String> {
        let (ma_ho_so, status, procedure) = match wire::read(d.kind, d.payload).map_err(|e| e.to_string())? {
            Step::Sync {
                ma_ho_so,
                status,
                procedure,
            } => {
                self.procedures.remember(&ma_ho_so, procedure.clone());
                (ma_ho_so, status, procedure)
            }
            Step::Progress { ma_ho_so, status, named } => {
                let procedure = match (named, self.procedures.get(&ma_ho_so)) {
                    (Some((code, name)), Some(known)) => Procedure {
                        name: if name.is_empty() { known.name.clone() } else { name },
                        code,
                        ..known
                    },
                    (Some((code, name)), None) => Procedure::named(code, name),
                    (None, Some(known)) => known,
                    (None, None) => {
                        return Err("the progress entry names no procedure (MaTTHC) and no sync of its dossier was \
                                    seen since the gateway started: replay it after the dossier's next sync"
                            .into());
                    }
                };
                (ma_ho_so, status, procedure)
            }
        };
        Ok(wire::body(self.site_id, &ma_ho_so, status, &procedure))
    }
}

impl Adapter for EmcAdapter {
    fn destination(&self) -> &str {
        DESTINATION
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let body = match self.tracking(&d) {
                Ok(b) => b,
                Err(reason) => return Outcome::reject(reason),
            };
            let mut request = self.client.post(&self.url).json(&body);
            if !self.token.is_empty() {
                request = request.bearer_auth(self.token.expose());
            }
            match http::send(request, Label::new(DESTINATION, "TrackingMCDT"), http::MAX_PLAIN_ANSWER).await {
                Ok(resp) => http::classify_response(resp).await,
                Err(e) => http::classify_error(&e),
            }
        })
    }
}

/// Each dossier's procedure as its last sync gave it, for its progress entries. Bounded: the
/// oldest dossier is forgotten first. Kept in memory, so a restart forgets it (see the module
/// documentation). Per-key FIFO delivers a dossier's sync before its later progress.
struct Procedures {
    capacity: usize,
    inner: Mutex<(HashMap<String, Procedure>, VecDeque<String>)>,
}

impl Procedures {
    fn new(capacity: usize) -> Self {
        Procedures {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn remember(&self, ma_ho_so: &str, p: Procedure) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(ma_ho_so.to_string(), p).is_none() {
            order.push_back(ma_ho_so.to_string());
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    fn get(&self, ma_ho_so: &str) -> Option<Procedure> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0.get(ma_ho_so).cloned()
    }
}
