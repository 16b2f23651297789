//! The client of an RFC 3161 time-stamping authority (`signing.tsa_url`): asks for a signature
//! timestamp over a CMS signature value, for PAdES-B-T and CAdES-T. The request is
//! `hcc_signing::tsp`'s (SHA-256 imprint, random nonce, certReq); the answer is read up to
//! [`hcc_signing::tsp::MAX_RESPONSE_LEN`] bytes and its token accepted only when granted and
//! matching the request (imprint, nonce, the token's own signature checked with the one
//! certificate it names, its time inside that certificate's validity), and only when that
//! certificate is a time-stamping certificate chaining to the configured anchor:
//! `signing.tsa_ca` when set, else the trust store. A client without an anchor takes no token.

use std::sync::Arc;
use std::time::Duration;

use hcc_signing::pki::TrustStore;
use hcc_signing::tsp::{MAX_RESPONSE_LEN, TimestampRequest};

/// How long one timestamp may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    /// The authority cannot be reached, times out or answers 5xx: the caller may retry later
    /// (the API answers 503).
    #[error("the timestamp authority cannot be reached: {0}")]
    Unavailable(String),
    /// The authority answered, but not with a token for this request (the API answers 502).
    #[error("the timestamp authority's answer is refused: {0}")]
    BadResponse(String),
}

/// The anchor of signature timestamps, as refusals name it.
const SIGNING_ANCHOR: &str = "signing.tsa_ca or the trust store";

/// A configured authority.
#[derive(Clone)]
pub struct TsaClient {
    /// An unusable URL given to [`TsaClient::new`] is kept as its error, answered on each call.
    url: Result<reqwest::Url, String>,
    http: reqwest::Client,
    /// What the authority's certificate must chain to (see the module note).
    anchor: Option<Arc<TrustStore>>,
    /// The setting the anchor comes from, for the refusals.
    anchor_name: &'static str,
}

impl std::fmt::Debug for TsaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is configuration, but may carry credentials in its user-info: host only.
        f.debug_struct("TsaClient")
            .field("host", &self.url.as_ref().ok().and_then(|u| u.host_str()).unwrap_or(""))
            .finish_non_exhaustive()
    }
}

impl TsaClient {
    /// An authority at `url`. A URL that is not http(s) makes a client whose every call fails;
    /// configuration uses [`TsaClient::try_new`] to refuse it at start-up instead.
    pub fn new(url: &str) -> Self {
        Self::try_new(url, DEFAULT_TIMEOUT).unwrap_or_else(|e| TsaClient {
            url: Err(e.to_string()),
            http: reqwest::Client::new(),
            anchor: None,
            anchor_name: SIGNING_ANCHOR,
        })
    }

    /// An authority at `url` (http or https) answering within `timeout`.
    pub fn try_new(url: &str, timeout: Duration) -> Result<Self, TsaError> {
        let bad = |m: String| TsaError::BadResponse(format!("signing.tsa_url: {m}"));
        let url = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("must be an http or https URL".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // An authority answers where it is asked; a redirect is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TsaError::Unavailable(e.to_string()))?;
        Ok(TsaClient {
            url: Ok(url),
            http,
            anchor: None,
            anchor_name: SIGNING_ANCHOR,
        })
    }

    /// Tokens are taken only from an authority whose certificate chains to `anchor`
    /// (`signing.tsa_ca` or the trust store).
    pub fn with_anchor(self, anchor: TrustStore) -> Self {
        self.with_named_anchor(anchor, SIGNING_ANCHOR)
    }

    /// [`Self::with_anchor`], the anchor coming from the setting `name` (said in refusals).
    pub fn with_named_anchor(mut self, anchor: TrustStore, name: &'static str) -> Self {
        self.anchor = Some(Arc::new(anchor));
        self.anchor_name = name;
        self
    }

    /// A timestamp token (DER `TimeStampToken`) over SHA-256 of `data`.
    pub async fn timestamp(&self, data: &[u8]) -> Result<Vec<u8>, TsaError> {
        self.timestamp_digest(hcc_core::sha256(data)).await
    }

    /// A timestamp token whose imprint is `digest`, a SHA-256 the caller computed (the
    /// evidence log's chain head, itself the SHA-256 of a record).
    pub async fn timestamp_digest(&self, digest: [u8; 32]) -> Result<Vec<u8>, TsaError> {
        let url = self.url.clone().map_err(TsaError::BadResponse)?;
        let mut nonce = [0u8; 8];
        hcc_core::random_bytes(&mut nonce).map_err(|e| TsaError::Unavailable(e.to_string()))?;
        // Positive and minimally encoded: top bit clear, second bit set.
        nonce[0] = (nonce[0] & 0x7f) | 0x40;
        let request = TimestampRequest::with_nonce(digest, &nonce).map_err(|e| TsaError::Unavailable(e.to_string()))?;
        let unavailable = |e: reqwest::Error| TsaError::Unavailable(e.without_url().to_string());
        let mut resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/timestamp-query")
            .header(reqwest::header::ACCEPT, "application/timestamp-reply")
            .body(request.der().to_vec())
            .send()
            .await
            .map_err(unavailable)?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(TsaError::Unavailable(format!("the authority answered {status}")));
        }
        if status != reqwest::StatusCode::OK {
            return Err(TsaError::BadResponse(format!("the authority answered {status}")));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if content_type.as_deref() != Some("application/timestamp-reply") {
            return Err(TsaError::BadResponse("the answer is not application/timestamp-reply".into()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_RESPONSE_LEN as u64) {
            return Err(TsaError::BadResponse(format!("the answer is larger than {MAX_RESPONSE_LEN} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unavailable)? {
            if body.len() + chunk.len() > MAX_RESPONSE_LEN {
                return Err(TsaError::BadResponse(format!("the answer is larger than {MAX_RESPONSE_LEN} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let token = request.accept(&body).map_err(|e| TsaError::BadResponse(e.to_string()))?;
        self.authority_is_anchored(&token)?;
        Ok(token)
    }

    /// The token's authority (the one certificate `accept` verified it with) is a
    /// time-stamping certificate that chains to the anchor.
    fn authority_is_anchored(&self, token: &[u8]) -> Result<(), TsaError> {
        let refused = |why: &str| TsaError::BadResponse(format!("the token's authority is refused: {why}"));
        let anchor = self
            .anchor
            .as_ref()
            .ok_or_else(|| refused(&format!("no {} to check it against", self.anchor_name)))?;
        let info = hcc_signing::tsp::inspect_token(token).map_err(|e| TsaError::BadResponse(e.to_string()))?;
        authority_is_anchored(&info, anchor, self.anchor_name).map_err(|why| refused(&why))
    }
}

/// Whether a token's authority may be relied on: its signature holds with the one certificate
/// it names, that certificate is for time-stamping and chains to `anchor`. The certificate
/// judged is the one the signature verified with, never a second look-up.
pub fn authority_is_anchored(info: &hcc_signing::tsp::TokenInfo, anchor: &TrustStore, anchor_name: &str) -> Result<(), String> {
    if let Some(why) = info.refusal {
        return Err(why.to_string());
    }
    if !info.signature_valid {
        return Err("its signature does not verify".into());
    }
    let cert = info.tsa_cert.as_ref().ok_or("the token carries no certificate")?;
    if !info.tsa_cert_for_timestamping {
        return Err("its certificate is not for time-stamping".into());
    }
    anchor
        .check(cert, &info.other_certs)
        .map_err(|e| format!("it does not chain to {anchor_name}: {e}"))
}

impl From<TsaError> for crate::http::problem::ApiError {
    fn from(e: TsaError) -> Self {
        use crate::http::problem::ApiError;
        tracing::warn!(error = %e, "timestamp authority");
        match e {
            TsaError::Unavailable(_) => ApiError::DependencyUnavailable("the timestamp authority is unavailable; try again later".into()),
            TsaError::BadResponse(_) => ApiError::Upstream("the timestamp authority's answer was refused".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_authorities() {
        assert!(TsaClient::try_new("http://127.0.0.1:9104/", DEFAULT_TIMEOUT).is_ok());
        assert!(TsaClient::try_new("https://tsa.example.vn/tsr", DEFAULT_TIMEOUT).is_ok());
        for bad in ["", "tsa.example.vn", "ftp://tsa.example.vn/", "file:///etc/passwd"] {
            assert!(TsaClient::try_new(bad, DEFAULT_TIMEOUT).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_client_made_from_a_bad_url_fails_every_call() {
        let c = TsaClient::new("not a url");
        assert!(matches!(c.timestamp(b"x").await, Err(TsaError::BadResponse(_))));
    }

    #[test]
    fn errors_map_to_503_and_502_problems() {
        use actix_web::ResponseError;
        let e: crate::http::problem::ApiError = TsaError::Unavailable("down".into()).into();
        assert_eq!(e.status_code(), 503);
        let e: crate::http::problem::ApiError = TsaError::BadResponse("x".into()).into();
        assert_eq!(e.status_code(), 502);
    }
}
