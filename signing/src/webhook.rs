//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): HMAC-SHA256 over
//! `{id}.{timestamp}.{body}` with a `whsec_<base64>` secret, sent as `v1,<base64>`. The gateway
//! signs with it and `mock-centre` verifies with it; the test suite also checks the result with
//! an independent implementation, so a shared mistake here would not go unnoticed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{CryptoError, ct_eq, hmac_sha256};

/// How far a receiver lets `webhook-timestamp` drift from its own clock.
pub const TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the webhook secret must be written whsec_<base64>")]
    BadSecret,
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than 5 minutes away from now")]
    TimestampOutOfTolerance,
    #[error("no webhook-signature matches")]
    NoMatchingSignature,
    #[error("crypto failure")]
    Crypto,
}

impl From<CryptoError> for WebhookError {
    fn from(_: CryptoError) -> Self {
        WebhookError::Crypto
    }
}

/// A parsed `whsec_...` secret. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let b64 = text.trim().strip_prefix("whsec_").ok_or(WebhookError::BadSecret)?;
        let key = STANDARD.decode(b64).map_err(|_| WebhookError::BadSecret)?;
        if key.is_empty() {
            return Err(WebhookError::BadSecret);
        }
        Ok(WebhookSecret(key))
    }

    /// The key's length in bytes (production refuses short keys).
    pub fn key_len(&self) -> usize {
        self.0.len()
    }

    /// The `v1,<base64>` value of a `webhook-signature` header.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookError> {
        let mac = self.mac(id, timestamp, body)?;
        Ok(format!("v1,{}", STANDARD.encode(mac)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
        let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
        signed.extend_from_slice(id.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(timestamp.to_string().as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(body);
        Ok(hmac_sha256(&self.0, &signed)?)
    }

    /// Checks the headers of a received webhook. `signatures` is the whole header value, which
    /// may hold several space-separated signatures during key rotation.
    pub fn verify(&self, id: &str, timestamp: &str, signatures: &str, body: &[u8], now_secs: i64) -> Result<(), WebhookError> {
        let ts: i64 = timestamp.trim().parse().map_err(|_| WebhookError::BadTimestamp)?;
        if (now_secs - ts).abs() > TOLERANCE_SECS {
            return Err(WebhookError::TimestampOutOfTolerance);
        }
        let expected = self.mac(id, ts, body)?;
        let mut matched = false;
        for candidate in signatures.split_whitespace() {
            if let Some(b64) = candidate.strip_prefix("v1,")
                && let Ok(sig) = STANDARD.decode(b64)
            {
                // Keep looping after a match so timing does not reveal which one matched.
                matched |= ct_eq(&sig, &expected);
            }
        }
        if matched { Ok(()) } else { Err(WebhookError::NoMatchingSignature) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference tests.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_like_the_reference_implementation() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TS, BODY).unwrap(), EXPECTED);
    }

    #[test]
    fn verifies_any_of_several_signatures() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let header = format!("v1,bm90LXRoaXM= {EXPECTED}");
        assert_eq!(secret.verify(ID, &TS.to_string(), &header, BODY, TS + 10), Ok(()));
    }

    #[test]
    fn rejects_tampering_and_stale_timestamps() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        assert_eq!(
            secret.verify(ID, &ts, EXPECTED, b"{\"test\": 1}", TS),
            Err(WebhookError::NoMatchingSignature)
        );
        assert_eq!(
            secret.verify(ID, &ts, EXPECTED, BODY, TS + TOLERANCE_SECS + 1),
            Err(WebhookError::TimestampOutOfTolerance)
        );
        assert_eq!(secret.verify(ID, "soon", EXPECTED, BODY, TS), Err(WebhookError::BadTimestamp));
        assert_eq!(WebhookSecret::parse("MfKQ9r8").unwrap_err(), WebhookError::BadSecret);
    }
}
