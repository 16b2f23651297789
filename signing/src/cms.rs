//! CMS (PKCS#7) detached signatures, SHA-256, with RSA or ECDSA P-256 keys: what
//! `openssl cms -sign -binary -outform DER` makes and `openssl cms -verify` checks. Signing
//! is the CAdES builder's (`crate::cades`), which works with software and token keys alike.
//! Verification answers two questions apart: is the signature mathematically valid for this
//! content (`valid`), and does its signer chain to the configured trust store (`trusted`).

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use crate::pki::{CertError, Identity, SignerInfo, TrustStore, signer_info};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmsError {
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("the signature is not a DER CMS/PKCS#7 SignedData")]
    Malformed,
    /// The key itself failed (a token away is [`crate::key::SignError::Unavailable`]).
    #[error("{0}")]
    Key(#[from] crate::key::SignError),
}

/// The outcome of a verification that could be attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub valid: bool,
    pub trusted: bool,
    pub signer: Option<SignerInfo>,
    pub reason: Option<String>,
}

/// A detached DER signature over `content`, carrying the signer's certificate and chain.
pub fn sign_detached(id: &Identity, content: &[u8]) -> Result<Vec<u8>, CmsError> {
    // The CAdES builder signs through `SigningKey`, so a token key works here too; its signed
    // attributes are a superset of what plain CMS carries.
    crate::cades::sign(id, content).map(crate::cades::CadesSignature::into_der)
}

pub fn verify_detached(signature_der: &[u8], content: &[u8], trust: &TrustStore) -> Result<Verified, CmsError> {
    let p7 = Pkcs7::from_der(signature_der).map_err(|_| CmsError::Malformed)?;
    let none = Stack::<X509>::new().map_err(|_| CmsError::Malformed)?;
    let signers = p7.signers(&none, Pkcs7Flags::empty()).map_err(|_| CmsError::Malformed)?;
    let Some(signer) = signers.iter().next().map(|c| c.to_owned()) else {
        return Ok(Verified {
            valid: false,
            trusted: false,
            signer: None,
            reason: Some("no signer certificate in the signature".into()),
        });
    };
    let info = signer_info(&signer);
    // First the mathematics alone, with an empty store and no chain check.
    let empty = X509StoreBuilder::new().map_err(|_| CmsError::Malformed)?.build();
    let valid = p7
        .verify(&none, &empty, Some(content), None, Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY)
        .is_ok();
    if !valid {
        return Ok(Verified {
            valid: false,
            trusted: false,
            signer: Some(info),
            reason: Some("the signature does not match the content".into()),
        });
    }
    // Then trust, from the configured store only; certificates in the message are merely
    // candidate intermediates.
    let embedded: Vec<X509> = p7
        .signed()
        .and_then(|s| s.certificates())
        .map(|st| st.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    match trust.check(&signer, &embedded) {
        Ok(()) => Ok(Verified {
            valid: true,
            trusted: true,
            signer: Some(info),
            reason: None,
        }),
        Err(e) => Ok(Verified {
            valid: true,
            trusted: false,
            signer: Some(info),
            reason: Some(cert_reason(&e)),
        }),
    }
}

fn cert_reason(e: &CertError) -> String {
    format!("signature is valid but not trusted: {e}")
}
