//! The portal session: one token shared by every worker of the process, fetched once however
//! many ask at the same moment, and renewed ahead of the lifetime the adapter learns from the
//! ages at which the portal called its sessions stale (the portal does not say how long one
//! lasts).

use std::time::{Duration, Instant};

use backon::Retryable;
use serde_json::{Value, json};

use super::answer::{code_text, message_of, success_code};
use super::{Attempt, DESTINATION, DvcqgAdapter, PostError, alarm, subcall_backoff};
use crate::Outcome;
use crate::evidence::Label;

/// A session token and when the portal issued it.
#[derive(Clone)]
pub(super) struct Session {
    pub(super) token: String,
    pub(super) issued: Instant,
}

/// A session is renewed ahead of time once it reaches this share of the learned lifetime.
const RENEW_AT_PERCENT: u32 = 75;
/// Sessions refused younger than this teach nothing about the lifetime (a portal restart, a
/// revoked session): renewing more often than this would only add logins.
const MIN_LEARNED_LIFETIME: Duration = Duration::from_secs(1);

impl Session {
    /// Whether to log in before using it. The portal does not say how long a session lasts;
    /// the adapter learns it from the ages at which sessions were refused as stale. A write
    /// sent on a stale session is refused and must be sent again after a login, a second
    /// chance for a fault to fail the attempt; a login ahead of time is retried safely
    /// instead, and for a portal whose sessions last 30 minutes it costs one login in 22.
    pub(super) fn is_due(&self, lifetime: Option<Duration>) -> bool {
        lifetime.is_some_and(|l| self.issued.elapsed() >= l * RENEW_AT_PERCENT / 100)
    }
}

impl DvcqgAdapter {
    /// A fresh session, fetched once however many workers ask at the same moment. The login
    /// changes nothing on the portal, so a transient failure is tried again inside the attempt.
    pub(super) async fn login(&self, stale: Option<&str>, attempt: Attempt) -> Result<String, Outcome> {
        let mut slot = self.session.write().await;
        if let Some(current) = slot.as_ref()
            && Some(current.token.as_str()) != stale
            && !current.is_due(self.learned_lifetime())
        {
            return Ok(current.token.clone());
        }
        let body = json!({"username": self.cfg.username, "password": self.cfg.password.expose()});
        let answer = (|| self.post_json(&self.auth_url, &body, Label::new(DESTINATION, "login").with_credentials(), attempt))
            .retry(subcall_backoff())
            .sleep(tokio::time::sleep)
            .when(PostError::is_transient)
            .adjust(|e, backoff| attempt.pause(backoff, e.retry_after()))
            .notify(|_, pause| tracing::debug!(destination = DESTINATION, ?pause, "portal login failed; trying again"))
            .await;
        let answer = match answer {
            Ok(v) => v,
            Err(PostError::Unauthorized) => {
                return Err(alarm("the portal refused the gateway's credentials (HTTP 401 on login)"));
            }
            Err(PostError::Failed(f)) => return Err(f.outcome),
        };
        let token = answer.get("session").and_then(Value::as_str).filter(|s| !s.is_empty());
        match token {
            Some(t) if success_code(&answer) => {
                *slot = Some(Session {
                    token: t.to_string(),
                    issued: Instant::now(),
                });
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

    pub(super) async fn current_session(&self, attempt: Attempt) -> Result<String, Outcome> {
        // Bound first: the read guard must be gone before `login` takes the write lock.
        let current = self.session.read().await.clone();
        if let Some(s) = current {
            if !s.is_due(self.learned_lifetime()) {
                return Ok(s.token);
            }
            return self.login(Some(&s.token), attempt).await;
        }
        self.login(None, attempt).await
    }

    pub(super) fn learned_lifetime(&self) -> Option<Duration> {
        self.lifetime.lock().map(|l| *l).unwrap_or(None)
    }

    /// The portal called `token` stale: its age bounds the session lifetime from above.
    pub(super) async fn learn_lifetime(&self, token: &str) {
        let age = match self.session.read().await.as_ref() {
            Some(s) if s.token == token => s.issued.elapsed(),
            _ => return,
        };
        if age < MIN_LEARNED_LIFETIME {
            return;
        }
        if let Ok(mut l) = self.lifetime.lock()
            && l.is_none_or(|known| age < known)
        {
            *l = Some(age);
            tracing::info!(destination = DESTINATION, lifetime = ?age, "portal sessions last at most this long; renewing ahead of it");
        }
    }
}
