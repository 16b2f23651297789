//! Dossiers that come down: one place for every source (the portal's push, the link-up's
//! poll) to hand a dossier to the centre, and for the centre's status to go back up.
//!
//! - [`Inbound::take`]: the files are checked (size, type by their first bytes, a URL only on
//!   the source's own host) and fetched before anything is stored; then stored on disk
//!   ([`files`]); then the record and its `dossier.received` webhook are written in one step
//!   (`storage::inbound`), which is also what makes a second hand-down a duplicate.
//! - [`PushGate`]: who may push, checked before a byte of the body is read.
//! - [`Inbound::queue_status`]: the centre's status, queued to the dossier's source's own
//!   destination, ordered by the dossier's code.
//! - [`poll`]: the loop that lists, fetches and acknowledges a polled source's dossiers, only
//!   once the centre's endpoint has taken each.

pub mod files;
pub mod poll;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hcc_adapters::domain::MaHoSo;
use hcc_adapters::inbound::{FileContent, FileType, InboundDossier, InboundSource, KIND_RECEIVED, MAX_FILES, SourceError};
use hcc_config::{Problem, Secret, Settings};
use ipnet::IpNet;
use serde_json::{Value, json};

use self::files::{FileError, FileStore, StoredFile};
use crate::storage::{InboundBook, InboundRecord, NewMessage, StorageError, Store, now_ms};

/// The `[inbound]` section.
pub const SECTION: &str = "inbound";
/// The queue of `dossier.received` webhooks, delivered by the centre's webhook destination and
/// kept whole: the book's scripts write it in the book's slot.
pub const EVENTS_QUEUE: &str = "inbound";

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct InboundSettings {
    /// CIDRs a push may come from; empty: no push is taken. A list, or in the environment
    /// one comma-separated string.
    #[serde(deserialize_with = "hcc_config::strings_or_commas")]
    allowed_ips: Vec<String>,
    /// The key the portal presents in `key_header`; empty: no push is taken.
    dvcqg_key: Secret,
    key_header: String,
    max_file_bytes: usize,
    max_body_bytes: usize,
    files_dir: String,
}

impl Default for InboundSettings {
    fn default() -> Self {
        InboundSettings {
            allowed_ips: Vec::new(),
            dvcqg_key: Secret::default(),
            key_header: "X-DVCQG-Key".into(),
            max_file_bytes: 10 * 1024 * 1024,
            max_body_bytes: 32 * 1024 * 1024,
            files_dir: "data/inbound-files".into(),
        }
    }
}

/// The shortest push key production takes.
const MIN_PRODUCTION_KEY_LEN: usize = 24;

/// Who may push: the peer's address in one of the networks, and the source's key in the named
/// header. Both are checked before the body is read.
#[derive(Clone)]
pub struct PushGate {
    networks: Vec<IpNet>,
    header: actix_web::http::header::HeaderName,
    /// By source id: only the portal pushes (`inbound.dvcqg_key`).
    keys: HashMap<&'static str, Secret>,
}

/// Why a push was turned away at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not from an allowed address (403), or pushes are off.
    Address,
    /// Without the right key (401).
    Key,
}

impl PushGate {
    /// `Ok` when `peer` may push for `source` with these headers.
    pub fn admit(&self, source: &str, peer: Option<IpAddr>, headers: &actix_web::http::header::HeaderMap) -> Result<(), Refused> {
        let Some(key) = self.keys.get(source).filter(|k| !k.is_empty()) else {
            return Err(Refused::Address);
        };
        let peer = peer.map(|ip| ip.to_canonical()).ok_or(Refused::Address)?;
        if !self.networks.iter().any(|n| n.contains(&peer)) {
            return Err(Refused::Address);
        }
        let presented = headers.get(&self.header).map(|v| v.as_bytes()).unwrap_or_default();
        if hcc_signing::ct_eq(presented, key.expose().as_bytes()) {
            Ok(())
        } else {
            Err(Refused::Key)
        }
    }
}

/// Why a dossier was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// Its files break a rule (422); the reason names the file by position, never its content.
    #[error("{0}")]
    Invalid(String),
    /// A file behind a URL could not be fetched (502).
    #[error("a file could not be fetched: {0}")]
    Fetch(SourceError),
    /// The centre has no webhook here: nothing could be handed on (503).
    #[error("the centre's webhook is not configured on this gateway (centre.webhook_url)")]
    NoCentre,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Files(#[from] FileError),
}

/// What became of a dossier handed down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Recorded; its webhook is this message.
    Created(String),
    Duplicate,
}

pub struct Inbound {
    pub(crate) book: InboundBook,
    pub(crate) files: FileStore,
    pub(crate) gate: PushGate,
    pub(crate) sources: HashMap<&'static str, Arc<dyn InboundSource>>,
    pub(crate) max_file_bytes: usize,
    pub(crate) max_body_bytes: usize,
    /// The centre's webhook is configured: there is somewhere to hand dossiers on to.
    centre: bool,
}

/// The section, checked, or every problem with it by key.
fn settings(s: &Settings) -> Result<InboundSettings, Vec<Problem>> {
    let i: InboundSettings = hcc_adapters::payments::parse_section(s.section(SECTION))?;
    let mut problems = Vec::new();
    let problem = |key: &str, message: &str| Problem {
        key: format!("{SECTION}.{key}"),
        message: message.into(),
    };
    for (n, cidr) in i.allowed_ips.iter().enumerate() {
        if parse_network(cidr).is_none() {
            problems.push(problem(
                &format!("allowed_ips[{n}]"),
                "must be an IP address or a CIDR (10.0.0.0/8, 2001:db8::/32)",
            ));
        }
    }
    if actix_web::http::header::HeaderName::from_bytes(i.key_header.as_bytes()).is_err() {
        problems.push(problem("key_header", "must be an HTTP header name"));
    }
    if s.is_production() && !i.dvcqg_key.is_empty() && i.dvcqg_key.expose().len() < MIN_PRODUCTION_KEY_LEN {
        problems.push(problem("dvcqg_key", "is shorter than 24 characters"));
    }
    if i.max_file_bytes == 0 || i.max_file_bytes > i.max_body_bytes {
        problems.push(problem("max_file_bytes", "must be from 1 to inbound.max_body_bytes"));
    }
    // A push is read within the same budget and deadline as every body (`server.*`).
    if i.max_body_bytes > s.server.inflight_body_bytes {
        problems.push(problem(
            "max_body_bytes",
            "must be at most server.inflight_body_bytes (a push is read within that budget)",
        ));
    }
    if i.files_dir.is_empty() {
        problems.push(problem("files_dir", "must name a directory"));
    }
    if problems.is_empty() { Ok(i) } else { Err(problems) }
}

/// An address alone is a network of one.
fn parse_network(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// What `config check` adds for the `[inbound]` section.
pub fn settings_problems(s: &Settings) -> Vec<Problem> {
    settings(s).err().unwrap_or_default()
}

impl Inbound {
    /// The inbound side under these settings, with the sources the registry built.
    pub fn from_settings(
        s: &Settings,
        store: &Store,
        sources: HashMap<&'static str, Arc<dyn InboundSource>>,
        centre: bool,
    ) -> Result<Inbound, Vec<Problem>> {
        let i = settings(s)?;
        let header = actix_web::http::header::HeaderName::from_bytes(i.key_header.as_bytes()).map_err(|_| Vec::new())?;
        Ok(Inbound {
            book: store.inbound(EVENTS_QUEUE),
            files: FileStore::new(&i.files_dir),
            gate: PushGate {
                networks: i.allowed_ips.iter().filter_map(|c| parse_network(c)).collect(),
                header,
                keys: HashMap::from([("dvcqg", i.dvcqg_key)]),
            },
            sources,
            max_file_bytes: i.max_file_bytes,
            max_body_bytes: i.max_body_bytes,
            centre,
        })
    }

    pub fn source(&self, id: &str) -> Option<&Arc<dyn InboundSource>> {
        self.sources.get(id)
    }

    /// The polled sources, for the background loops.
    pub fn polled(&self) -> Vec<Arc<dyn InboundSource>> {
        self.sources.values().filter(|s| s.poll_every().is_some()).cloned().collect()
    }

    /// Checks, stores, records and hands on one dossier (see the module doc).
    pub async fn take(&self, source: &dyn InboundSource, d: InboundDossier) -> Result<Taken, TakeError> {
        if !self.centre {
            return Err(TakeError::NoCentre);
        }
        // A repeat is answered before any file is fetched or written; the step below decides
        // for good when two copies race.
        if self.book.get(d.code.as_str()).await?.is_some() {
            return Ok(Taken::Duplicate);
        }
        if d.files.len() > MAX_FILES {
            return Err(TakeError::Invalid(format!("a dossier may carry at most {MAX_FILES} files")));
        }
        let mut checked = Vec::with_capacity(d.files.len());
        for (n, f) in d.files.into_iter().enumerate() {
            let bytes = match f.content {
                FileContent::Inline(b) => b,
                FileContent::Url(url) => {
                    if !source.may_fetch(&url) {
                        return Err(TakeError::Invalid(format!(
                            "file {n} is named by a URL that is not on the portal's own host"
                        )));
                    }
                    source.fetch_file(&url, self.max_file_bytes).await.map_err(TakeError::Fetch)?
                }
            };
            if bytes.len() > self.max_file_bytes {
                return Err(TakeError::Invalid(format!(
                    "file {n} is larger than inbound.max_file_bytes ({} bytes)",
                    self.max_file_bytes
                )));
            }
            let Some(kind) = FileType::sniff(&bytes) else {
                return Err(TakeError::Invalid(format!(
                    "file {n} is not a PDF, a PNG, JPEG or TIFF image, or an Office document"
                )));
            };
            checked.push((bytes, f.name, f.label, kind));
        }
        let mut stored = Vec::with_capacity(checked.len());
        for (bytes, name, label, kind) in checked {
            match self.files.put(bytes, name, label, kind).await {
                Ok(f) => stored.push(f),
                Err(e) => {
                    self.files.remove(&stored).await;
                    return Err(e.into());
                }
            }
        }
        let now = now_ms();
        let message_id = uuid::Uuid::now_v7().to_string();
        let files = json!(stored);
        let record = InboundRecord {
            code: d.code.to_string(),
            source: source.id().to_string(),
            procedure: d.procedure.clone(),
            received_at: now,
            message_id: message_id.clone(),
            files: files.clone(),
            link: Value::Object(d.link),
            needs_ack: source.poll_every().is_some(),
            acked_at: None,
        };
        let event = NewMessage {
            kind: KIND_RECEIVED.into(),
            ordering_key: d.code.to_string(),
            payload: received_event(&d.code, source.id(), d.procedure.as_deref(), &d.fields, &stored, now).into_bytes(),
        };
        match self.book.accept(&record, event).await {
            Ok(crate::storage::inbound::Accepted::Created(id)) => {
                tracing::info!(source = source.id(), ma_ho_so = %d.code, files = stored.len(), id = %id, "inbound dossier taken");
                Ok(Taken::Created(id))
            }
            Ok(crate::storage::inbound::Accepted::Duplicate) => {
                self.files.remove(&stored).await;
                Ok(Taken::Duplicate)
            }
            Err(e) => {
                // Not recorded: the files would be orphans. (With min_replicas the write may
                // stand on the primary; the record then names files that are gone, which its
                // webhook would show, so they are kept in that one case.)
                if !matches!(e, StorageError::NotReplicated { .. }) {
                    self.files.remove(&stored).await;
                }
                Err(e.into())
            }
        }
    }
}

/// The `dossier.received` webhook: the envelope every event has, and the dossier as its source
/// sent it, with links to its stored files.
fn received_event(
    code: &MaHoSo,
    source: &str,
    procedure: Option<&str>,
    fields: &serde_json::Map<String, Value>,
    files: &[StoredFile],
    now: i64,
) -> String {
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            let mut v = json!(f);
            v["url"] = Value::String(format!("/v1/inbound/files/{}", f.id));
            v
        })
        .collect();
    json!({
        "type": KIND_RECEIVED,
        "timestamp": crate::timefmt::rfc3339_ms(now),
        "data": {
            "MaHoSo": code.as_str(),
            "source": source,
            "MaTTHC": procedure,
            "received_at": crate::timefmt::rfc3339_ms(now),
            "dossier": fields,
            "files": files,
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn gate(key: &str, nets: &[&str]) -> PushGate {
        PushGate {
            networks: nets.iter().filter_map(|n| parse_network(n)).collect(),
            header: HeaderName::from_static("x-dvcqg-key"),
            keys: HashMap::from([("dvcqg", Secret::new(key))]),
        }
    }

    fn with_key(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static("x-dvcqg-key"), HeaderValue::from_str(k).expect("ascii"));
        h
    }

    #[test]
    fn a_push_needs_an_allowed_address_and_the_key() {
        let g = gate("k-123", &["10.0.0.0/8", "127.0.0.1"]);
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        let outside: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(g.admit("dvcqg", Some(local), &with_key("k-123")), Ok(()));
        assert_eq!(g.admit("dvcqg", Some(mapped), &with_key("k-123")), Ok(()), "IPv4-mapped IPv6");
        assert_eq!(g.admit("dvcqg", Some(outside), &with_key("k-123")), Err(Refused::Address));
        assert_eq!(g.admit("dvcqg", None, &with_key("k-123")), Err(Refused::Address));
        assert_eq!(g.admit("dvcqg", Some(local), &with_key("k-124")), Err(Refused::Key));
        assert_eq!(g.admit("dvcqg", Some(local), &HeaderMap::new()), Err(Refused::Key));
        assert_eq!(
            g.admit("dvclt", Some(local), &with_key("k-123")),
            Err(Refused::Address),
            "no key: no push"
        );
        let off = gate("", &["0.0.0.0/0"]);
        assert_eq!(
            off.admit("dvcqg", Some(local), &with_key("")),
            Err(Refused::Address),
            "no key set: off"
        );
        let nowhere = gate("k-123", &[]);
        assert_eq!(
            nowhere.admit("dvcqg", Some(local), &with_key("k-123")),
            Err(Refused::Address),
            "no networks: off"
        );
    }

    #[test]
    fn networks_are_addresses_or_cidrs() {
        assert!(parse_network("10.0.0.0/8").is_some());
        assert!(parse_network("2001:db8::/32").is_some());
        assert!(parse_network(" 127.0.0.1 ").is_some());
        assert!(parse_network("10.0.0.0/33").is_none());
        assert!(parse_network("localhost").is_none());
    }
}
