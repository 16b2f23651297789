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

/// Verifies a detached signature with one SignerInfo. The signer certificate is chosen once,
/// by OpenSSL's own matching rule ([`crate::tsp`]), and refused when more than one carried
/// certificate could match; OpenSSL then checks the signature with that certificate alone
/// (`PKCS7_NOINTERN`), and the trust store judges that same certificate.
pub fn verify_detached(signature_der: &[u8], content: &[u8], trust: &TrustStore) -> Result<Verified, CmsError> {
    let sd = crate::tsp::signed_data(signature_der, crate::cades::MAX_SIGNATURE_LEN).map_err(|_| CmsError::Malformed)?;
    let p7 = Pkcs7::from_der(signature_der).map_err(|_| CmsError::Malformed)?;
    let refused = |reason: &str, signer: Option<SignerInfo>| Verified {
        valid: false,
        trusted: false,
        signer,
        reason: Some(reason.into()),
    };
    let mut infos = sd.signer_infos.0.iter();
    let (Some(si), None) = (infos.next(), infos.next()) else {
        return Ok(refused("the signature must have exactly one signer", None));
    };
    let chosen = match crate::tsp::select_signer(&sd, &si.sid) {
        Ok(c) => c,
        Err(crate::tsp::SignerChoiceError::Missing) => return Ok(refused("no signer certificate in the signature", None)),
        Err(e) => return Ok(refused(&e.to_string(), None)),
    };
    let info = signer_info(&chosen.x509);
    // First the mathematics alone, with the chosen certificate only, an empty store and no
    // chain check.
    let mut only = Stack::<X509>::new().map_err(|_| CmsError::Malformed)?;
    only.push(chosen.x509.clone()).map_err(|_| CmsError::Malformed)?;
    let empty = X509StoreBuilder::new().map_err(|_| CmsError::Malformed)?.build();
    let valid = p7
        .verify(
            &only,
            &empty,
            Some(content),
            None,
            Pkcs7Flags::NOINTERN | Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
        )
        .is_ok();
    if !valid {
        return Ok(refused("the signature does not match the content", Some(info)));
    }
    // Then trust, from the configured store only; the other certificates in the message are
    // merely candidate intermediates.
    match trust.check(&chosen.x509, &chosen.others) {
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
