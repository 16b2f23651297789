//! How a payment platform's API answer (PayGov's INIT and QUERY, VNPAY's `querydr`) is read:
//! bounded, then parsed as JSON.

use serde_json::Value;

/// The largest answer taken from a payment platform's API: each is a small JSON object; more
/// is not the platform's answer.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A payment platform's answer read as JSON, at most [`MAX_ANSWER_BYTES`].
pub async fn read_json(resp: reqwest::Response) -> Result<Value, String> {
    let bytes = crate::http::read_bounded(resp, MAX_ANSWER_BYTES).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_string())
}
