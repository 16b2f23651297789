//! The gateway's private key, wherever it lives. A software key (from PKCS#12 or PEM) is an
//! openssl `PKey` in memory; a token key (an HSM, a USB token, SoftHSM in tests) is reached
//! through PKCS#11 and never leaves its device. Every signer in this crate (CMS, CAdES/PAdES,
//! XML-DSig) signs through [`SigningKey::sign_sha256`], so it works the same for both.

use std::fmt;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;

/// The public-key algorithm of a signing key; the digest is always SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA with PKCS#1 v1.5 padding (`sha256WithRSAEncryption`, XML-DSig `rsa-sha256`).
    Rsa,
    /// ECDSA on P-256 (`ecdsa-with-SHA256`); the signature is DER `Ecdsa-Sig-Value`.
    EcdsaP256,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The key cannot be reached now (a token was unplugged, an HSM session was lost). The
    /// request may be retried later; the API answers 503.
    #[error("the signing key {key} is unavailable: {reason}")]
    Unavailable { key: String, reason: String },
    /// The key refused or the operation failed for another reason.
    #[error("signing failed: {0}")]
    Failed(String),
}

/// A key held by a device: signs SHA-256 digests of data without ever giving the key out.
pub trait TokenSigner: Send + Sync {
    fn algorithm(&self) -> KeyAlgorithm;
    /// The signature of `data` with SHA-256 hashing, in the form [`KeyAlgorithm`] names.
    fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, SignError>;
    /// A label for messages (the token and key labels); never a secret.
    fn describe(&self) -> String;
}

/// A private key in memory or in a token.
#[derive(Clone)]
pub enum SigningKey {
    Software(PKey<Private>),
    Token(Arc<dyn TokenSigner>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKey::Software(_) => f.write_str("SigningKey::Software(..)"),
            SigningKey::Token(t) => write!(f, "SigningKey::Token({})", t.describe()),
        }
    }
}

impl From<PKey<Private>> for SigningKey {
    fn from(key: PKey<Private>) -> Self {
        SigningKey::Software(key)
    }
}

impl SigningKey {
    /// `None` for a software key of a type we do not sign with (neither RSA nor P-256).
    pub fn algorithm(&self) -> Option<KeyAlgorithm> {
        match self {
            SigningKey::Software(k) => match k.id() {
                Id::RSA => Some(KeyAlgorithm::Rsa),
                Id::EC => k
                    .ec_key()
                    .ok()
                    .and_then(|ec| ec.group().curve_name())
                    .filter(|n| *n == openssl::nid::Nid::X9_62_PRIME256V1)
                    .map(|_| KeyAlgorithm::EcdsaP256),
                _ => None,
            },
            SigningKey::Token(t) => Some(t.algorithm()),
        }
    }

    /// SHA-256 then RSA PKCS#1 v1.5 or ECDSA, over `data`.
    pub fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            SigningKey::Software(k) => {
                let failed = |e: openssl::error::ErrorStack| SignError::Failed(e.to_string());
                let mut signer = Signer::new(MessageDigest::sha256(), k).map_err(failed)?;
                signer.update(data).map_err(failed)?;
                signer.sign_to_vec().map_err(failed)
            }
            SigningKey::Token(t) => t.sign_sha256(data),
        }
    }

    /// Whether this key is the private half of `public` (checked at start-up, so a token key
    /// and a configured certificate that do not belong together stop the gateway).
    pub fn matches(&self, public: &PKey<openssl::pkey::Public>) -> Result<bool, SignError> {
        match self {
            SigningKey::Software(k) => Ok(k.public_eq(public)),
            SigningKey::Token(_) => {
                // A token key cannot be compared directly: sign a probe and verify it.
                let probe = b"hcc-gateway key check";
                let sig = self.sign_sha256(probe)?;
                let failed = |e: openssl::error::ErrorStack| SignError::Failed(e.to_string());
                let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), public).map_err(failed)?;
                v.update(probe).map_err(failed)?;
                Ok(v.verify(&sig).unwrap_or(false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::rsa::Rsa;

    #[test]
    fn software_keys_name_their_algorithm_and_sign_verifiably() {
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let key = SigningKey::from(rsa.clone());
        assert_eq!(key.algorithm(), Some(KeyAlgorithm::Rsa));
        let public = PKey::public_key_from_der(&rsa.public_key_to_der().unwrap()).unwrap();
        assert!(key.matches(&public).unwrap());

        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let ec_key = SigningKey::from(ec);
        assert_eq!(ec_key.algorithm(), Some(KeyAlgorithm::EcdsaP256));
        assert!(!ec_key.matches(&public).unwrap());
        let sig = key.sign_sha256(b"data").unwrap();
        let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), &public).unwrap();
        v.update(b"data").unwrap();
        assert!(v.verify(&sig).unwrap());
    }

    #[test]
    fn other_curves_are_not_signing_keys() {
        let group = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        assert_eq!(SigningKey::from(ec).algorithm(), None);
    }
}
