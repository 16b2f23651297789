//! The client of an RFC 3161 time-stamping authority (`signing.tsa_url`): asks for a signature
//! timestamp over a CMS signature value, for PAdES-B-T.
//!
//! SKELETON: the interface the PAdES handler builds against; to be replaced by the real client.

#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    #[error("the timestamp authority cannot be reached: {0}")]
    Unavailable(String),
    #[error("the timestamp authority's answer is refused: {0}")]
    BadResponse(String),
}

/// A configured authority.
#[derive(Clone)]
pub struct TsaClient {
    url: String,
}

impl TsaClient {
    pub fn new(url: &str) -> Self {
        TsaClient { url: url.to_string() }
    }

    /// A timestamp token (DER `TimeStampToken`) over SHA-256 of `data`.
    pub async fn timestamp(&self, _data: &[u8]) -> Result<Vec<u8>, TsaError> {
        Err(TsaError::Unavailable(format!("not built yet ({})", self.url.len())))
    }
}
