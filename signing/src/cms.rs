//! CMS (PKCS#7) detached signatures, SHA-256, with RSA or ECDSA P-256 keys: what
//! `openssl cms -sign -binary -outform DER` makes and `openssl cms -verify` checks. Signing
//! is done one level up, by the CAdES builder (its `sign_detached`), which works with software
//! and token keys alike: CAdES is a profile of CMS, so it is built above this module, which
//! knows nothing of it. Verification answers two questions apart: is the signature mathematically valid for this
//! content (`valid`), and does its signer chain to the configured trust store (`trusted`).

use cms::content_info::ContentInfo;
use der::asn1::Int;
use der::{Any, Decode, Reader, SliceReader, Tag, Tagged};
use openssl::asn1::Asn1Object;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::pki::{CertError, SignerInfo, TrustStore, signer_info};

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

/// The largest signature accepted for verification. A CAdES-T signature with a chain and a
/// token is some kilobytes; PAdES reserves 16-32 KiB for it.
pub const MAX_SIGNATURE_LEN: usize = 256 * 1024;

/// Verifies a detached signature with one SignerInfo. The signer certificate is chosen once,
/// by OpenSSL's own matching rule ([`crate::tsp`]), and refused when more than one carried
/// certificate could match; OpenSSL then checks the signature with that certificate alone
/// (`PKCS7_NOINTERN`), and the trust store judges that same certificate.
pub fn verify_detached(signature_der: &[u8], content: &[u8], trust: &TrustStore) -> Result<Verified, CmsError> {
    let sd = crate::tsp::signed_data(signature_der, MAX_SIGNATURE_LEN).map_err(|_| CmsError::Malformed)?;
    // OpenSSL checks the signature with the certificate chosen below alone, so it is given
    // the message without its certificate set, which it would otherwise parse again at great
    // cost (see `tsp::without_certificates`).
    let stripped = crate::tsp::without_certificates(signature_der).ok_or(CmsError::Malformed)?;
    let p7 = Pkcs7::from_der(&stripped).map_err(|_| CmsError::Malformed)?;
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
    // A digest OpenSSL cannot set up makes it leak the content buffer (fuzzing found it); such
    // a signature could never verify. `stripped` is what OpenSSL parsed, and it is DER (the
    // `der` crate wrote it), which `digests_computable` reads: no re-encoding by OpenSSL needed.
    if !digests_computable(&stripped) {
        return Ok(refused("unsupported digest algorithm", Some(info)));
    }
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

/// Whether OpenSSL can compute every digest the `digestAlgorithms` of a DER `ContentInfo`
/// holding a `SignedData` names (false when they cannot be read). OpenSSL 3.0's `CMS_verify`
/// and `PKCS7_verify` set up one digest per entry before checking anything, and when one
/// cannot be set up they return without freeing the BIO they wrapped the detached content in:
/// every such call leaks it (found by fuzzing, docs/fuzzing.md). Such a signature can never
/// verify, so the verifiers refuse it before OpenSSL sees it.
pub(crate) fn digests_computable(content_info_der: &[u8]) -> bool {
    let read = || -> der::Result<Vec<AlgorithmIdentifierOwned>> {
        let ci = ContentInfo::from_der(content_info_der)?;
        // SignedData ::= SEQUENCE { version, digestAlgorithms SET OF AlgorithmIdentifier, ... }
        ci.content.tag().assert_eq(Tag::Sequence)?;
        let mut sd = SliceReader::new(ci.content.value())?;
        Int::decode(&mut sd)?;
        let set = Any::decode(&mut sd)?;
        set.tag().assert_eq(Tag::Set)?;
        let mut r = SliceReader::new(set.value())?;
        let mut algs = Vec::new();
        while !r.is_finished() {
            algs.push(AlgorithmIdentifierOwned::decode(&mut r)?);
        }
        Ok(algs)
    };
    let Ok(algs) = read() else {
        return false;
    };
    algs.iter().all(|a| {
        Asn1Object::from_str(&a.oid.to_string())
            .ok()
            .and_then(|o| MessageDigest::from_nid(o.nid()))
            .is_some_and(|md| Hasher::new(md).is_ok())
    })
}

fn cert_reason(e: &CertError) -> String {
    format!("signature is valid but not trusted: {e}")
}
