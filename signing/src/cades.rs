//! CAdES-BES detached signatures (CMS SignedData, SHA-256, with the signed attributes PAdES
//! asks for: content type, message digest, signing time, ESS signing-certificate-v2), and
//! their signature timestamps (CAdES-T, RFC 3161 token as an unsigned attribute). The key signs
//! through [`crate::key::SigningKey`], so the same code serves a PKCS#12 key and a PKCS#11
//! token.
//!
//! SKELETON: the interface other modules build against; the bodies are placeholders to be
//! replaced by the real builder and verifier.

use crate::cms::{self, CmsError};
use crate::pki::{Identity, SignerInfo, TrustStore};

/// A signature made, before or after its timestamp is added.
#[derive(Debug, Clone)]
pub struct CadesSignature {
    der: Vec<u8>,
    signature_value: Vec<u8>,
}

impl CadesSignature {
    /// The SignerInfo's signature value: what an RFC 3161 signature timestamp covers.
    pub fn signature_value(&self) -> &[u8] {
        &self.signature_value
    }

    /// Adds `token` (a DER TimeStampToken) as the signature-time-stamp unsigned attribute.
    pub fn with_timestamp(self, _token: &[u8]) -> Result<Self, CmsError> {
        Err(CmsError::Sign("signature timestamps are not built yet".into()))
    }

    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    pub fn into_der(self) -> Vec<u8> {
        self.der
    }
}

/// Signs `content` (detached: the content is not carried).
pub fn sign(id: &Identity, content: &[u8]) -> Result<CadesSignature, CmsError> {
    Ok(CadesSignature {
        der: cms::sign_detached(id, content)?,
        signature_value: Vec::new(),
    })
}

/// A signature timestamp as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampCheck {
    /// `genTime`, RFC 3339.
    pub time: String,
    /// The token's own signature verifies and its imprint matches the signature value.
    pub valid: bool,
    /// The authority's certificate chains to the trust store.
    pub trusted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CadesVerified {
    pub valid: bool,
    pub trusted: bool,
    pub signer: Option<SignerInfo>,
    pub reason: Option<String>,
    /// The signing-time attribute, RFC 3339, when present.
    pub signed_at: Option<String>,
    pub timestamp: Option<TimestampCheck>,
}

/// Verifies a detached signature over `content` against `trust`.
pub fn verify(der: &[u8], content: &[u8], trust: &TrustStore) -> Result<CadesVerified, CmsError> {
    let v = cms::verify_detached(der, content, trust)?;
    Ok(CadesVerified {
        valid: v.valid,
        trusted: v.trusted,
        signer: v.signer,
        reason: v.reason,
        signed_at: None,
        timestamp: None,
    })
}
