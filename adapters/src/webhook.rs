//! Events for the centre's software, POSTed as JSON to `centre.webhook_url` and signed with the
//! Standard Webhooks headers. The message id is the `webhook-id`, so a centre that sees the same
//! id twice (delivery is at least once) knows it is a repeat.
//!
//! This destination is the registry's event sink: the gateway's own events (payment
//! confirmations and reversals) are queued for it. It takes no ingest routes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hcc_config::Secret;
use hcc_signing::webhook::WebhookSecret;
use serde::Deserialize;

use crate::evidence::Label;
use crate::registry::{BuildContext, BuiltDestination, DestinationSpec};
use crate::{Adapter, BoxFuture, Delivery, Outcome, http};

pub const DESTINATION: &str = "centre";

/// The shortest webhook key production takes, in bytes: the Standard Webhooks guidance, and
/// short enough to write by hand is short enough to guess.
const MIN_PRODUCTION_KEY_BYTES: usize = 24;

/// The `[centre]` section. An empty `webhook_url` leaves the destination off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CentreSettings {
    pub webhook_url: String,
    /// `whsec_<base64>`, shared with the centre, which checks every signature with it.
    pub webhook_secret: Secret,
}

pub fn spec() -> DestinationSpec {
    DestinationSpec {
        name: DESTINATION,
        build,
        ingest: &[],
        event_sink: true,
        copies: &[],
    }
}

fn build(ctx: &BuildContext<'_>) -> BuiltDestination {
    let s: CentreSettings = ctx.settings()?;
    if s.webhook_url.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    ctx.check_http_url(&mut problems, "webhook_url", &s.webhook_url);
    let secret = match WebhookSecret::parse(s.webhook_secret.expose()) {
        // A short key is refused in production only, where anyone who guesses it could forge
        // the gateway's events; development configs ship a short, published one.
        Ok(k) if ctx.production && k.key_len() < MIN_PRODUCTION_KEY_BYTES => {
            problems.push(ctx.problem(
                "webhook_secret",
                "is shorter than 24 bytes; write at least 24 random bytes as whsec_<base64>",
            ));
            None
        }
        Ok(k) => Some(k),
        Err(_) => {
            problems.push(ctx.problem("webhook_secret", "must be written whsec_<base64>"));
            None
        }
    };
    match secret {
        Some(secret) if problems.is_empty() => WebhookAdapter::new(s.webhook_url, secret, ctx.timeout())
            .map(|a| Some(Arc::new(a) as Arc<dyn Adapter>))
            .map_err(|e| vec![ctx.problem("webhook_url", e.to_string())]),
        _ => Err(problems),
    }
}

pub struct WebhookAdapter {
    client: reqwest::Client,
    url: String,
    secret: WebhookSecret,
}

impl WebhookAdapter {
    pub fn new(url: impl Into<String>, secret: WebhookSecret, timeout: Duration) -> reqwest::Result<Self> {
        Ok(WebhookAdapter {
            client: http::client(timeout)?,
            url: url.into(),
            secret,
        })
    }
}

impl Adapter for WebhookAdapter {
    fn destination(&self) -> &str {
        DESTINATION
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|t| t.as_secs() as i64)
                .unwrap_or(0);
            let signature = match self.secret.sign(d.id, ts, d.payload) {
                Ok(s) => s,
                Err(e) => return Outcome::retry(format!("cannot sign the webhook: {e}")),
            };
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", d.id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(d.payload.to_vec());
            let sent = http::send(sent, Label::new(DESTINATION, d.kind), http::MAX_PLAIN_ANSWER).await;
            match sent {
                Ok(resp) => http::classify_response(resp).await,
                Err(e) => http::classify_error(&e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use hcc_config::Section;

    use super::*;

    fn problems(production: bool, toml: &str) -> Result<bool, Vec<String>> {
        let section = Section::from_toml(DESTINATION, toml).expect("toml");
        let ctx = BuildContext {
            production,
            ..BuildContext::bare(DESTINATION, Some(&section))
        };
        build(&ctx).map(|a| a.is_some()).map_err(|p| p.into_iter().map(|p| p.key).collect())
    }

    const SHORT: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes of key
    const LONG: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

    #[test]
    fn production_refuses_a_short_webhook_key_by_its_key() {
        let with = |secret: &str| format!("webhook_url = \"https://centre.example/hooks\"\nwebhook_secret = \"{secret}\"\n");
        assert_eq!(problems(true, &with(SHORT)), Err(vec!["centre.webhook_secret".to_string()]));
        assert_eq!(problems(true, &with(LONG)), Ok(true));
        assert_eq!(problems(false, &with(SHORT)), Ok(true));
        // Production sends events over https only (issue 20); http to a loopback host stays.
        let plain = format!("webhook_url = \"http://centre.example/hooks\"\nwebhook_secret = \"{LONG}\"\n");
        assert_eq!(problems(true, &plain), Err(vec!["centre.webhook_url".to_string()]));
        let local = format!("webhook_url = \"http://127.0.0.1:9103/hooks\"\nwebhook_secret = \"{LONG}\"\n");
        assert_eq!(problems(true, &local), Ok(true));
        assert_eq!(
            problems(false, &with("not-a-secret")),
            Err(vec!["centre.webhook_secret".to_string()])
        );
    }

    #[test]
    fn an_empty_url_leaves_the_destination_off_and_a_bad_one_is_named() {
        assert_eq!(problems(true, "webhook_url = \"\"\n"), Ok(false));
        let bad = format!("webhook_url = \"ftp://x\"\nwebhook_secret = \"{LONG}\"\n");
        assert_eq!(problems(false, &bad), Err(vec!["centre.webhook_url".to_string()]));
        assert!(problems(false, "webhook_ur = \"http://x\"\n").is_err(), "an unknown key is refused");
    }
}
