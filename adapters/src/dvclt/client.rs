//! The link-up's HTTP calls: a JSON body on every call (`{}` on a GET), `Accept:
//! application/json`, and `Authorization: Bearer <token>` on all but the token call. The token
//! is kept until a call answers 401; then one new token is fetched, once however many callers
//! saw the 401, and the call made once more. Each call, the re-login included, stays within
//! one configured timeout, and every answer is read to a bound.

use std::time::{Duration, Instant, SystemTime};

use hcc_config::Secret;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::Mutex;

use super::wire;
use crate::evidence::Label;
use crate::{Outcome, http};

/// The bound on every answer but a detail.
pub(super) const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// A detail carries the dossier's files inline.
pub(super) const MAX_DETAIL_BYTES: usize = 64 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    /// The link-up refused the gateway's credentials, or a fresh token: a person must look.
    Credentials(String),
    /// Not heard, not processed, or the answer lost: transport, timeouts, 408, 425, 429, 5xx.
    Transient { reason: String, after: Option<Duration> },
    /// The link-up refused the call with this status.
    Refused(u16),
    /// The answer is not what the link-up answers (too large, a token answer without a token,
    /// a redirect): a person must look.
    Unexpected(String),
}

impl CallError {
    /// What a failed status delivery comes to: refusals are rejections, the rest is retried,
    /// with an alarm when a person must look.
    pub(super) fn outcome(self) -> Outcome {
        match self {
            CallError::Transient { reason, after } => Outcome::Retry { reason, after },
            CallError::Refused(status) => Outcome::reject(format!("the link-up refused the status: HTTP {status}")),
            CallError::Credentials(why) | CallError::Unexpected(why) => {
                tracing::error!(alarm = true, destination = super::ID, "{why}");
                Outcome::retry(format!("configuration fault (alarm raised): {why}"))
            }
        }
    }

    /// What a failed source call comes to; the round tries again, with an alarm raised when a
    /// person must look.
    pub(super) fn source_error(self) -> crate::inbound::SourceError {
        use crate::inbound::SourceError;
        match self {
            CallError::Transient { reason, .. } => SourceError::transient(reason),
            CallError::Refused(status) => SourceError::alarm(format!("the link-up refused the call: HTTP {status}")),
            CallError::Credentials(why) | CallError::Unexpected(why) => SourceError::alarm(why),
        }
    }
}

/// What one request came to, before the 401 is acted on.
enum Sent {
    Answer(Vec<u8>),
    Unauthorized,
}

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token_path: String,
    username: String,
    password: Secret,
    timeout: Duration,
    token: Mutex<Option<String>>,
}

impl Client {
    pub(super) fn new(base: &str, token_path: &str, username: &str, password: Secret, timeout: Duration) -> reqwest::Result<Self> {
        Ok(Client {
            http: http::client(timeout)?,
            base: base.trim_end_matches('/').to_string(),
            token_path: token_path.to_string(),
            username: username.to_string(),
            password,
            timeout,
            token: Mutex::new(None),
        })
    }

    /// One call with the token: a 401 fetches a new token and sends the call once more. The
    /// repeat is safe for a write: a 401 means the call was refused, not applied.
    pub(super) async fn call(&self, method: Method, path: &str, body: &Value, max: usize) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now() + self.timeout;
        let url = format!("{}{path}", self.base);
        let mut token = self.token(None, deadline).await?;
        for round in 0..2 {
            match self.send(method.clone(), &url, Some(&token), body, max, deadline).await? {
                Sent::Answer(bytes) => return Ok(bytes),
                Sent::Unauthorized if round == 0 => {
                    tracing::info!(destination = super::ID, "link-up token refused; fetching a new one");
                    token = self.token(Some(&token), deadline).await?;
                }
                Sent::Unauthorized => {}
            }
        }
        Err(CallError::Credentials(
            "the link-up refused a freshly issued token (HTTP 401): check dvclt.username and dvclt.password".into(),
        ))
    }

    /// The current token, or a new one when there is none or it is `stale`; fetched once
    /// however many callers ask at the same moment.
    async fn token(&self, stale: Option<&str>, deadline: Instant) -> Result<String, CallError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Some(t.as_str()) != stale
        {
            return Ok(t.clone());
        }
        let url = format!("{}{}", self.base, self.token_path);
        let body = wire::token_body(&self.username, self.password.expose());
        let answer = match self.send(Method::POST, &url, None, &body, MAX_ANSWER_BYTES, deadline).await {
            Ok(Sent::Answer(a)) => a,
            Ok(Sent::Unauthorized) | Err(CallError::Refused(403)) => {
                return Err(CallError::Credentials(
                    "the link-up refused the gateway's credentials: check dvclt.username and dvclt.password".into(),
                ));
            }
            Err(CallError::Refused(status)) => {
                return Err(CallError::Unexpected(format!(
                    "the link-up's token call answered HTTP {status}: check dvclt.base_url and dvclt.token_path"
                )));
            }
            Err(e) => return Err(e),
        };
        let token = wire::read_token(&answer).map_err(|why| CallError::Unexpected(why.into()))?;
        *slot = Some(token.clone());
        tracing::info!(destination = super::ID, "link-up token issued");
        Ok(token)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: &Value,
        max: usize,
        deadline: Instant,
    ) -> Result<Sent, CallError> {
        // The evidence log's name for the call: a call without a token is the token call, whose
        // body holds the password.
        let label = match token {
            None => Label::new(super::ID, "token").with_credentials(),
            Some(_) => Label::new(
                super::ID,
                format!("{method} {}", url.strip_prefix(self.base.as_str()).unwrap_or(url)),
            ),
        };
        let transient = |reason: String| CallError::Transient { reason, after: None };
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return Err(transient("the call's time budget is spent".into()));
        };
        let mut req = self
            .http
            .request(method, url)
            .timeout(left)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = http::send(req, label, max).await.map_err(|e| reason_of(http::classify_error(&e)))?;
        let status = resp.status();
        match status.as_u16() {
            200..=299 => {}
            401 => return Ok(Sent::Unauthorized),
            408 | 425 | 429 | 500..=599 => {
                return Err(CallError::Transient {
                    reason: format!("the link-up answered HTTP {}", status.as_u16()),
                    after: http::retry_after(resp.headers(), SystemTime::now()),
                });
            }
            300..=399 => {
                return Err(CallError::Unexpected(format!(
                    "the link-up answered a redirect (HTTP {}), which is not followed: check dvclt.base_url",
                    status.as_u16()
                )));
            }
            other => return Err(CallError::Refused(other)),
        }
        match http::read_bounded(resp, max).await {
            Ok(bytes) => Ok(Sent::Answer(bytes)),
            Err(http::ReadError::TooLarge(n)) => Err(CallError::Unexpected(format!("the link-up's answer is larger than {n} bytes"))),
            Err(http::ReadError::Transport(e)) => Err(reason_of(http::classify_error(&e))),
        }
    }
}

fn reason_of(outcome: Outcome) -> CallError {
    match outcome {
        Outcome::Retry { reason, after } => CallError::Transient { reason, after },
        Outcome::Reject { reason } => CallError::Transient { reason, after: None },
        Outcome::Delivered => CallError::Transient {
            reason: "the call failed".into(),
            after: None,
        },
    }
}
