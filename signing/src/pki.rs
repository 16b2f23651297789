//! Key material and trust: the gateway's own identity from PKCS#12 (as Vietnamese CAs issue
//! it) or PEM, a trust store from a folder of PEM certificates with optional CRLs, and the
//! checks a signing certificate must pass: chain to a configured root, validity period, and
//! key usage (digitalSignature or nonRepudiation). Trust is configured, never taken from a
//! message.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509KeyUsage, X509Ref, X509StoreContext, X509VerifyResult};
use serde::Serialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("wrong PKCS#12 password, or not a PKCS#12 file")]
    WrongPassword,
    #[error("the PKCS#12 file holds no private key and certificate")]
    Incomplete,
    #[error("not a PEM {what}")]
    BadPem { what: &'static str },
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CertError {
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("the certificate does not chain to a trusted root")]
    Untrusted,
    #[error("the certificate has been revoked")]
    Revoked,
    #[error("the certificate's key usage allows neither digitalSignature nor nonRepudiation")]
    WrongKeyUsage,
    #[error("the certificate is not the one configured for this signer")]
    NotTheConfiguredCertificate,
    #[error("certificate verification failed: {0}")]
    Other(String),
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A private key with its certificate and the chain above it.
pub struct Identity {
    pub key: crate::key::SigningKey,
    pub cert: X509,
    pub chain: Vec<X509>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &name_text(self.cert.subject_name()))
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn from_pkcs12_der(der: &[u8], password: &str) -> Result<Self, KeyError> {
        let p12 = Pkcs12::from_der(der).map_err(|_| KeyError::WrongPassword)?;
        let parsed = p12.parse2(password).map_err(|_| KeyError::WrongPassword)?;
        let (Some(key), Some(cert)) = (parsed.pkey, parsed.cert) else {
            return Err(KeyError::Incomplete);
        };
        let chain = parsed.ca.map(|s| s.into_iter().collect()).unwrap_or_default();
        Self::checked(key, cert, chain)
    }

    pub fn from_pkcs12_file(path: &Path, password: &str) -> Result<Self, KeyError> {
        Self::from_pkcs12_der(&read(path)?, password)
    }

    /// A PEM private key and a PEM file with the certificate first, then its chain.
    pub fn from_pem(key_pem: &[u8], certs_pem: &[u8]) -> Result<Self, KeyError> {
        let key = PKey::private_key_from_pem(key_pem).map_err(|_| KeyError::BadPem { what: "private key" })?;
        let mut certs = X509::stack_from_pem(certs_pem)
            .map_err(|_| KeyError::BadPem { what: "certificate" })?
            .into_iter();
        let cert = certs.next().ok_or(KeyError::BadPem { what: "certificate" })?;
        Self::checked(key, cert, certs.collect())
    }

    fn checked(key: PKey<Private>, cert: X509, chain: Vec<X509>) -> Result<Self, KeyError> {
        let public = cert.public_key().map_err(|_| KeyError::KeyMismatch)?;
        if !key.public_eq(&public) {
            return Err(KeyError::KeyMismatch);
        }
        Ok(Identity {
            key: key.into(),
            cert,
            chain,
        })
    }
}

/// Who signed, as the API reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignerInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
}

pub fn name_text(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_string();
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn signer_info(cert: &X509Ref) -> SignerInfo {
    SignerInfo {
        subject: name_text(cert.subject_name()),
        issuer: name_text(cert.issuer_name()),
        serial: cert
            .serial_number()
            .to_bn()
            .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
            .unwrap_or_default(),
        not_before: cert.not_before().to_string(),
        not_after: cert.not_after().to_string(),
    }
}

/// The configured roots (and intermediates) a signature may chain to, with optional CRLs.
pub struct TrustStore {
    store: X509Store,
    count: usize,
}

impl TrustStore {
    /// Every `*.pem`/`*.crt` in `dir` is a trusted certificate; every `*.crl` (PEM) a CRL, in
    /// which case revocation is checked for the whole chain.
    pub fn from_dir(dir: &Path) -> Result<Self, KeyError> {
        let entries = std::fs::read_dir(dir).map_err(|e| KeyError::Read {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut certs = Vec::new();
        let mut crls = Vec::new();
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            match path.extension().and_then(|e| e.to_str()) {
                Some("pem" | "crt") => {
                    let found = X509::stack_from_pem(&read(&path)?).map_err(|_| KeyError::BadPem { what: "certificate" })?;
                    certs.extend(found);
                }
                Some("crl") => {
                    openssl::x509::X509Crl::from_pem(&read(&path)?).map_err(|_| KeyError::BadPem { what: "CRL" })?;
                    crls.push(path);
                }
                _ => {}
            }
        }
        Self::build(certs, crls)
    }

    pub fn from_certs(certs: Vec<X509>) -> Result<Self, KeyError> {
        Self::build(certs, Vec::new())
    }

    /// A store of pinned certificates (a PEM file of one or more): a chain may end at any of
    /// them, a CA or an end-entity certificate alike (`X509_V_FLAG_PARTIAL_CHAIN`).
    pub fn pinned_from_file(path: &Path) -> Result<Self, KeyError> {
        let certs = X509::stack_from_pem(&read(path)?).map_err(|_| KeyError::BadPem { what: "certificate" })?;
        if certs.is_empty() {
            return Err(KeyError::BadPem { what: "certificate" });
        }
        Self::pinned(certs)
    }

    pub fn pinned(certs: Vec<X509>) -> Result<Self, KeyError> {
        Self::build_with(certs, Vec::new(), X509VerifyFlags::PARTIAL_CHAIN)
    }

    fn build(certs: Vec<X509>, crls: Vec<std::path::PathBuf>) -> Result<Self, KeyError> {
        Self::build_with(certs, crls, X509VerifyFlags::empty())
    }

    fn build_with(certs: Vec<X509>, crls: Vec<std::path::PathBuf>, flags: X509VerifyFlags) -> Result<Self, KeyError> {
        let bad = |_| KeyError::BadPem { what: "certificate" };
        let mut b = X509StoreBuilder::new().map_err(bad)?;
        if !flags.is_empty() {
            b.set_flags(flags).map_err(bad)?;
        }
        let count = certs.len();
        for c in certs {
            b.add_cert(c).map_err(bad)?;
        }
        if !crls.is_empty() {
            // The crate has no add_crl; a file lookup is its supported door for CRLs.
            let lookup = b.add_lookup(openssl::x509::store::X509Lookup::file()).map_err(bad)?;
            for crl in crls {
                lookup
                    .load_crl_file(&crl, openssl::ssl::SslFiletype::PEM)
                    .map_err(|_| KeyError::BadPem { what: "CRL" })?;
            }
            b.set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
                .map_err(bad)?;
        }
        Ok(TrustStore { store: b.build(), count })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Checks a signing certificate: chain (with `untrusted` as candidate intermediates),
    /// validity now, revocation when CRLs are configured, and key usage.
    pub fn check(&self, cert: &X509Ref, untrusted: &[X509]) -> Result<(), CertError> {
        check_key_usage(cert)?;
        let mut chain = Stack::new().map_err(|e| CertError::Other(e.to_string()))?;
        for c in untrusted {
            chain.push(c.clone()).map_err(|e| CertError::Other(e.to_string()))?;
        }
        let mut ctx = X509StoreContext::new().map_err(|e| CertError::Other(e.to_string()))?;
        let result = ctx
            .init(&self.store, cert, &chain, |c| {
                c.verify_cert()?;
                Ok(c.error())
            })
            .map_err(|e| CertError::Other(e.to_string()))?;
        map_verify_result(result)
    }
}

/// How many certificates read from messages are kept parsed, and the largest one kept (real
/// certificates are one to a few kilobytes): at most about 1 MiB of DER.
const PARSED_CERTIFICATES: usize = 64;
const MAX_PARSED_CERTIFICATE_LEN: usize = 16 * 1024;

/// Certificates already parsed, by their exact DER, oldest first in `order`.
#[derive(Default)]
struct ParsedCertificates {
    by_der: HashMap<Arc<[u8]>, X509>,
    order: VecDeque<Arc<[u8]>>,
}

static PARSED: OnceLock<Mutex<ParsedCertificates>> = OnceLock::new();

/// `X509::from_der`, remembered for the certificates messages carry again and again (a signer's
/// certificate and its chain). With OpenSSL 3.0 parsing a certificate costs several RSA
/// verifications (decoding its public key sets up a provider decoder each time; see
/// docs/performance-verify.md), so re-parsing them dominated every verification.
///
/// Safe to share: the key is the whole DER, compared byte for byte, and parsing is a function
/// of those bytes alone, so a hit is the certificate a fresh parse would give; nothing is
/// trusted because it is here (trust is still judged on every call). OpenSSL's `X509` objects
/// may be read from several threads (they lock their own lazily computed fields). Bounded:
/// [`PARSED_CERTIFICATES`] entries, oldest evicted first, large ones not kept. A poisoned lock
/// only means no caching.
pub(crate) fn certificate_from_der(der: &[u8]) -> Result<X509, openssl::error::ErrorStack> {
    let cache = PARSED.get_or_init(Default::default);
    if let Ok(parsed) = cache.lock()
        && let Some(x509) = parsed.by_der.get(der)
    {
        return Ok(x509.clone());
    }
    let x509 = X509::from_der(der)?;
    if der.len() <= MAX_PARSED_CERTIFICATE_LEN
        && let Ok(mut parsed) = cache.lock()
        && !parsed.by_der.contains_key(der)
    {
        if parsed.order.len() >= PARSED_CERTIFICATES
            && let Some(oldest) = parsed.order.pop_front()
        {
            parsed.by_der.remove(&oldest);
        }
        let key: Arc<[u8]> = der.into();
        parsed.order.push_back(key.clone());
        parsed.by_der.insert(key, x509.clone());
    }
    Ok(x509)
}

/// Validity period alone, for a pinned certificate checked without a trust store.
pub fn check_validity(cert: &X509Ref) -> Result<(), CertError> {
    let now = openssl::asn1::Asn1Time::days_from_now(0).map_err(|e| CertError::Other(e.to_string()))?;
    let cmp = |t: &openssl::asn1::Asn1TimeRef| t.compare(&now).map_err(|e| CertError::Other(e.to_string()));
    if cmp(cert.not_before())? == std::cmp::Ordering::Greater {
        return Err(CertError::NotYetValid);
    }
    if cmp(cert.not_after())? == std::cmp::Ordering::Less {
        return Err(CertError::Expired);
    }
    Ok(())
}

pub fn check_key_usage(cert: &X509Ref) -> Result<(), CertError> {
    match cert.key_usage() {
        None => Ok(()),
        Some(ku) if ku.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION) => Ok(()),
        Some(_) => Err(CertError::WrongKeyUsage),
    }
}

fn map_verify_result(r: X509VerifyResult) -> Result<(), CertError> {
    if r == X509VerifyResult::OK {
        return Ok(());
    }
    // Codes from openssl/x509_vfy.h.
    Err(match r.as_raw() {
        10 => CertError::Expired,
        9 => CertError::NotYetValid,
        23 => CertError::Revoked,
        2 | 18 | 19 | 20 | 21 | 27 => CertError::Untrusted,
        _ => CertError::Other(r.error_string().to_string()),
    })
}
