//! Dossiers the portal pushes down (`POST /v1/inbound/dvcqg/dossiers`, `docs/inbound.md`): the
//! body read into an [`InboundDossier`], the answer in the portal's terms, and files named by
//! URL fetched through the portal's file service.
//!
//! The source is always built, configured portal or not: reading a push needs no setting, and
//! whether the route takes pushes at all is the gateway's (`inbound.allowed_ips`,
//! `inbound.dvcqg_key`). Only a form sent as a URL needs the portal: with `dvcqg.base_url`
//! empty no URL may be fetched ([`InboundSource::may_fetch`] is false), so such a push is
//! refused while pushes with inline files are taken.
//!
//! Sizes and file types are not checked here: the gateway checks every source's files in one
//! place. What is guessed (the file service's request and answer) lives in
//! [`DvcqgAdapter::get_file`].

use std::sync::Arc;

use reqwest::Url;
use serde_json::{Map, Value, json};

use super::answer::Answer;
use super::{Attempt, DESTINATION, DvcqgAdapter};
use crate::BoxFuture;
use crate::domain::MaHoSo;
use crate::fields::{FieldError, Fields, non_empty_text};
use crate::inbound::{
    FileContent, InboundDossier, InboundFile, InboundSource, MAX_FILES, PushOutcome, PushRefusal, SourceError, SourceKind, decode_base64,
    safe_file_name,
};
use crate::registry::BuildContext;

/// The route the portal pushes dossiers to.
pub const PUSH_PATH: &str = "/v1/inbound/dvcqg/dossiers";

/// The portal as a source of dossiers: the `[dvcqg]` section's, and the `dvcqg` queue carries
/// the centre's status back up.
pub const SOURCE: SourceKind = SourceKind {
    id: DESTINATION,
    push_path: Some(PUSH_PATH),
    build,
};

/// The longest `MaTTHC` taken.
const MAX_PROCEDURE: usize = 50;
/// The longest attachment name taken before it is made safe.
const MAX_NAME: usize = 1000;

fn build(ctx: &BuildContext<'_>) -> crate::inbound::BuiltSource {
    let portal = super::portal(ctx)?.map(|adapter| {
        // The share endpoint is the base URL with a path today; both are listed so a share
        // endpoint elsewhere would be allowed too.
        let origins = [adapter.cfg.base_url.as_str(), adapter.share_url.as_str()]
            .iter()
            .filter_map(|u| Origin::of(u))
            .collect();
        Portal { adapter, origins }
    });
    Ok(Some(Arc::new(PortalPush { portal })))
}

/// The push source; `portal` is `None` when `dvcqg.base_url` is empty.
pub struct PortalPush {
    portal: Option<Portal>,
}

struct Portal {
    adapter: DvcqgAdapter,
    origins: Vec<Origin>,
}

/// A URL's scheme, host and port, the parts that say whom a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// `None` for anything but an absolute http(s) URL without credentials in it.
    fn of(url: &str) -> Option<Origin> {
        let u = Url::parse(url).ok()?;
        if !matches!(u.scheme(), "http" | "https") || !u.username().is_empty() || u.password().is_some() {
            return None;
        }
        Some(Origin {
            scheme: u.scheme().to_string(),
            host: u.host_str()?.to_ascii_lowercase(),
            port: u.port_or_known_default(),
        })
    }
}

impl InboundSource for PortalPush {
    fn id(&self) -> &'static str {
        DESTINATION
    }

    fn parse_push(&self, body: &[u8]) -> Result<InboundDossier, PushRefusal> {
        parse_push(body)
    }

    fn push_reply(&self, code: Option<&str>, outcome: &PushOutcome) -> Value {
        push_reply(code, outcome)
    }

    fn may_fetch(&self, url: &str) -> bool {
        let Some(portal) = &self.portal else {
            return false;
        };
        Origin::of(url).is_some_and(|o| portal.origins.contains(&o))
    }

    fn fetch_file<'a>(&'a self, url: &'a str, max_bytes: usize) -> BoxFuture<'a, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            let Some(portal) = &self.portal else {
                return Err(SourceError::alarm(
                    "the portal is not configured (dvcqg.base_url): no file can be fetched",
                ));
            };
            if !self.may_fetch(url) {
                return Err(SourceError::alarm("the file's URL is not on the portal's host"));
            }
            portal.adapter.get_file(url, max_bytes).await
        })
    }
}

/// Reads a pushed body (`docs/inbound.md`, public code): every bad field is named by its JSON
/// Pointer; no size or type is judged here.
pub fn parse_push(body: &[u8]) -> Result<InboundDossier, PushRefusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| PushRefusal::Malformed(format!("the body is not JSON (line {}, column {})", e.line(), e.column())))?;
    let Value::Object(mut obj) = value else {
        return Err(PushRefusal::Malformed("the body must be a JSON object".into()));
    };
    let mut errors = Vec::new();
    let code = read_code(&obj, &mut errors);
    let mut files = Vec::new();
    let mut f = Fields::new(&obj, String::new(), &mut errors);
    let procedure = f.required("MaTTHC", non_empty_text(MAX_PROCEDURE));
    if let Some(form) = read_form(&mut f) {
        files.push(form);
    }
    let room = MAX_FILES - files.len();
    // Counted before any is decoded: a thousand attachments are refused, not decoded.
    let too_many = matches!(f.get("TaiLieuNop"), Some(Value::Array(items)) if items.len() > room);
    if too_many {
        f.error(
            "TaiLieuNop",
            format!("may hold at most {room} files (a dossier has at most {MAX_FILES})"),
        );
    } else {
        files.extend(f.list("TaiLieuNop", |item| {
            let name = item.required("TenTepDinhKem", non_empty_text(MAX_NAME));
            let content = item.required("Base64", inline_content);
            Some(InboundFile {
                name: safe_file_name(&name?),
                label: Some("TaiLieuNop".into()),
                content: FileContent::Inline(content?),
            })
        }));
    }
    if !errors.is_empty() {
        return Err(PushRefusal::Invalid {
            code: code.map(|c| c.to_string()),
            errors,
        });
    }
    let (Some(code), Some(procedure)) = (code, procedure) else {
        // Both missing would have been named above.
        return Err(PushRefusal::Malformed("the dossier has no code or no procedure".into()));
    };
    // The centre gets the dossier as sent, without the files' bytes (kept as files).
    obj.remove("TepDonDangKy");
    if let Some(Value::Array(items)) = obj.get_mut("TaiLieuNop") {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.remove("Base64");
        }
    }
    Ok(InboundDossier {
        code,
        procedure: Some(procedure),
        fields: obj,
        link: Map::new(),
        files,
    })
}

/// `MaHoSo`, else `MaHoSoQG`; `MaHoSo` wins when both are given. An empty string is read as
/// absent, the way the portal's clients leave a field out.
fn read_code(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<MaHoSo> {
    let error = |errors: &mut Vec<FieldError>, name: &str, message: String| {
        errors.push(FieldError {
            field: format!("/{name}"),
            message,
        });
    };
    for name in ["MaHoSo", "MaHoSoQG"] {
        match obj.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => {
                return MaHoSo::parse(s).map_err(|m| error(errors, name, m)).ok();
            }
            Some(_) => {
                error(errors, name, "must be a string".into());
                return None;
            }
        }
    }
    error(errors, "MaHoSo", "is required (or MaHoSoQG)".into());
    None
}

/// The application form: inline (`TepDonDangKy`, base64) or as a URL (`URLTepDangKy`), named by
/// `TenTepDonDangKy`; inline wins when both are given. `None` when there is none (or it is bad,
/// which is named).
fn read_form(f: &mut Fields<'_>) -> Option<InboundFile> {
    let given = |f: &Fields<'_>, name: &str| !matches!(f.get(name), None | Some(Value::Null)) && f.get(name) != Some(&json!(""));
    let name = if given(f, "TenTepDonDangKy") {
        f.optional("TenTepDonDangKy", non_empty_text(MAX_NAME))
    } else {
        None
    };
    let content = if given(f, "TepDonDangKy") {
        FileContent::Inline(f.optional("TepDonDangKy", inline_content)?)
    } else if given(f, "URLTepDangKy") {
        FileContent::Url(f.optional("URLTepDangKy", file_url)?)
    } else {
        return None;
    };
    let name = match (&name, &content) {
        (Some(n), _) => n.clone(),
        // A URL's last segment names the form when the push does not.
        (None, FileContent::Url(u)) => Url::parse(u)
            .ok()
            .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
            .unwrap_or_default(),
        (None, FileContent::Inline(_)) => String::new(),
    };
    Some(InboundFile {
        name: safe_file_name(&name),
        label: Some("TepDonDangKy".into()),
        content,
    })
}

fn inline_content(v: &Value) -> Result<Vec<u8>, String> {
    let s = v.as_str().ok_or("must be a string of base64")?;
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    decode_base64(s).map_err(str::to_string)
}

/// Any absolute http(s) URL; whether it may be fetched is [`InboundSource::may_fetch`]'s, asked
/// by the gateway, which refuses the push otherwise.
fn file_url(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or("must be a string")?;
    match Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(s.to_string()),
        _ => Err("must be an absolute http or https URL".into()),
    }
}

/// The answer to a push (public code): `error_code` 0 created, 1 already taken, -1 an error,
/// and `message` the dossier's code, `|`, and what happened.
pub fn push_reply(code: Option<&str>, outcome: &PushOutcome) -> Value {
    let (error_code, text) = match outcome {
        PushOutcome::Created => (0, "Tiếp nhận hồ sơ thành công"),
        PushOutcome::Duplicate => (1, "Hồ sơ đã được tiếp nhận trước đó"),
        PushOutcome::Error { reason } => (-1, reason.as_str()),
    };
    json!({"error_code": error_code, "message": format!("{}|{text}", code.unwrap_or(""))})
}

/// How many bytes of answer a file of `max_bytes` may take: base64 is 4/3 of the bytes, and
/// line breaks escaped in JSON add a little more.
fn answer_bound(max_bytes: usize) -> usize {
    max_bytes.saturating_mul(3) / 2 + 64 * 1024
}

impl DvcqgAdapter {
    /// A file through the portal's file service (guess, `docs/inbound.md`): `getfile` with
    /// `DuongDan` on the share endpoint, in the portal session, answered `{error_code: 0,
    /// data: <base64>}` (`result` is read too). One call within the configured timeout;
    /// the session's renewal is the adapter's usual one.
    pub(super) async fn get_file(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>, SourceError> {
        let attempt = Attempt::starting_now(self.cfg.timeout);
        let mut fields = Map::new();
        fields.insert("DuongDan".into(), Value::from(url));
        let answer = match self
            .call_at(&self.share_url, "getfile", &fields, attempt, answer_bound(max_bytes))
            .await
        {
            Ok(Answer::Ok(v)) => v,
            Ok(Answer::Refused { code, .. }) => {
                return Err(SourceError::transient(format!(
                    "the portal's file service refused the file (error_code {code})"
                )));
            }
            Err(f) => {
                let reason = match f.outcome {
                    crate::Outcome::Retry { reason, .. } | crate::Outcome::Reject { reason } => reason,
                    crate::Outcome::Delivered => "the file service failed".into(),
                };
                return Err(SourceError {
                    reason,
                    alarm: !f.transient,
                });
            }
        };
        let text = ["data", "result"].iter().find_map(|k| answer.get(*k).and_then(Value::as_str));
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Err(SourceError::alarm(
                "the portal's file service answered without a file (data or result)",
            ));
        };
        decode_file(text, max_bytes)
    }
}

/// The file service's base64, refused before decoding when it must decode to more than
/// `max_bytes`, and after when it does.
fn decode_file(text: &str, max_bytes: usize) -> Result<Vec<u8>, SourceError> {
    let too_large = || SourceError::transient(format!("the file is larger than {max_bytes} bytes"));
    let encoded = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    if encoded.saturating_sub(2) / 4 * 3 > max_bytes {
        return Err(too_large());
    }
    let bytes = decode_base64(text).map_err(|_| SourceError::alarm("the portal's file service answered with bad base64"))?;
    if bytes.len() > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
