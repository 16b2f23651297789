//! Events for the centre's software, POSTed as JSON to `centre.webhook_url` and signed with the
//! Standard Webhooks headers. The message id is the `webhook-id`, so a centre that sees the same
//! id twice (delivery is at least once) knows it is a repeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hcc_signing::webhook::WebhookSecret;

use crate::{Adapter, BoxFuture, Delivery, Outcome, http};

pub const DESTINATION: &str = "centre";

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
                .body(d.payload.to_vec())
                .send()
                .await;
            match sent {
                Ok(resp) => http::classify_response(resp).await,
                Err(e) => http::classify_error(&e),
            }
        })
    }
}
