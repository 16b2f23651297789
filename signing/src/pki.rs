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
    /// The earliest `nextUpdate` of the configured CRLs (Unix seconds), when one has any: a
    /// chain found trusted must be checked again by then, when OpenSSL would find that CRL
    /// expired.
    crls_next_update: Option<i64>,
    /// Chains found trusted, by the certificates checked ([`chain_key`]); see [`TrustStore::check`].
    trusted: Mutex<Bounded<Trusted>>,
}

/// How many trusted chains a store remembers, the largest key remembered (a signer, a few
/// intermediates: a few kilobytes), and for how long at most: at most 2 MiB, and a chain is
/// handed to OpenSSL again at least every five minutes whatever its certificates say.
const TRUSTED_CHAINS: usize = 64;
const MAX_TRUSTED_CHAIN_KEY_LEN: usize = 32 * 1024;
const TRUSTED_CHAIN_SECONDS: i64 = 300;

/// When a chain was found trusted and until when that answer holds (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trusted {
    checked_at: i64,
    until: i64,
}

impl Trusted {
    /// Whether OpenSSL would still find the chain trusted at `now` without being asked again.
    /// Never before `checked_at` (a clock set back could put a certificate's notBefore in the
    /// future again), and never at or after `until`.
    fn holds_at(self, now: i64) -> bool {
        self.checked_at <= now && now < self.until
    }
}

/// The key under which a chain is remembered: every certificate OpenSSL was given, the signer's
/// first, each as its length and its DER, so that two different inputs never share a key. None
/// (not remembered) when one cannot be encoded or the whole is larger than
/// [`MAX_TRUSTED_CHAIN_KEY_LEN`].
fn chain_key(cert: &X509Ref, untrusted: &[X509]) -> Option<Vec<u8>> {
    let mut key = Vec::new();
    for c in std::iter::once(cert).chain(untrusted.iter().map(|c| c.as_ref())) {
        let der = c.to_der().ok()?;
        key.extend_from_slice(&u32::try_from(der.len()).ok()?.to_be_bytes());
        key.extend_from_slice(&der);
        if key.len() > MAX_TRUSTED_CHAIN_KEY_LEN {
            return None;
        }
    }
    Some(key)
}

fn unix_now() -> Option<i64> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(now.as_secs()).ok()
}

/// The earliest `nextUpdate` of the CRLs in a PEM file (Unix seconds), None when none has one.
/// Every `X509 CRL` block counts, as OpenSSL loads them all; one that cannot be read gives
/// `i64::MIN`, so that nothing is remembered rather than remembered too long.
fn crls_next_update_of(pem: &[u8]) -> Option<i64> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    let mut earliest: Option<i64> = None;
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&pem[from..], BEGIN) {
        let start = from + at;
        let next = match openssl::x509::X509Crl::from_pem(&pem[start..]) {
            Ok(crl) => crl.next_update().map(|t| crate::tsp::asn1_unix(t).unwrap_or(i64::MIN)),
            Err(_) => Some(i64::MIN),
        };
        earliest = match (earliest, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        from = start + BEGIN.len();
    }
    earliest
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
        let mut crls_next_update: Option<i64> = None;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            match path.extension().and_then(|e| e.to_str()) {
                Some("pem" | "crt") => {
                    let found = X509::stack_from_pem(&read(&path)?).map_err(|_| KeyError::BadPem { what: "certificate" })?;
                    certs.extend(found);
                }
                Some("crl") => {
                    let pem = read(&path)?;
                    openssl::x509::X509Crl::from_pem(&pem).map_err(|_| KeyError::BadPem { what: "CRL" })?;
                    crls_next_update = match (crls_next_update, crls_next_update_of(&pem)) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    crls.push(path);
                }
                _ => {}
            }
        }
        let mut store = Self::build(certs, crls)?;
        store.crls_next_update = crls_next_update;
        Ok(store)
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
        Ok(TrustStore {
            store: b.build(),
            count,
            crls_next_update: None,
            trusted: Mutex::new(Bounded::new(TRUSTED_CHAINS)),
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Checks a signing certificate: chain (with `untrusted` as candidate intermediates),
    /// validity now, revocation when CRLs are configured, and key usage.
    ///
    /// A chain OpenSSL found trusted is remembered, by the exact certificates it was given, and
    /// not handed to it again while the answer cannot have changed: the store is fixed once
    /// built (its certificates, its CRLs, its flags), so for the same input only time can change
    /// OpenSSL's answer, and the answer is kept only until the earliest notAfter of the chain
    /// it built, the earliest nextUpdate of the CRLs, and [`TRUSTED_CHAIN_SECONDS`], whichever
    /// comes first. This saves an RSA verification per certificate above the signer (the
    /// certificate's own signature) on every call. Refusals are never remembered; key usage is
    /// checked every time.
    pub fn check(&self, cert: &X509Ref, untrusted: &[X509]) -> Result<(), CertError> {
        check_key_usage(cert)?;
        let key = chain_key(cert, untrusted);
        if let (Some(key), Some(now)) = (&key, unix_now())
            && let Ok(trusted) = self.trusted.lock()
            && trusted.get(key).is_some_and(|t| t.holds_at(now))
        {
            return Ok(());
        }
        let mut chain = Stack::new().map_err(|e| CertError::Other(e.to_string()))?;
        for c in untrusted {
            chain.push(c.clone()).map_err(|e| CertError::Other(e.to_string()))?;
        }
        let mut ctx = X509StoreContext::new().map_err(|e| CertError::Other(e.to_string()))?;
        let (result, not_after) = ctx
            .init(&self.store, cert, &chain, |c| {
                c.verify_cert()?;
                // The earliest notAfter of the chain OpenSSL built (None if one cannot be read).
                let not_after = c.chain().and_then(|built| {
                    built
                        .iter()
                        .map(|x| crate::tsp::asn1_unix(x.not_after()))
                        .try_fold(i64::MAX, |earliest, t| t.map(|t| earliest.min(t)))
                });
                Ok((c.error(), not_after))
            })
            .map_err(|e| CertError::Other(e.to_string()))?;
        map_verify_result(result)?;
        // Taken after OpenSSL's check, so that every notBefore it accepted is at or before it.
        if let (Some(key), Some(not_after), Some(now)) = (key, not_after, unix_now())
            && let Ok(mut trusted) = self.trusted.lock()
        {
            let until = not_after
                .min(self.crls_next_update.unwrap_or(i64::MAX))
                .min(now.saturating_add(TRUSTED_CHAIN_SECONDS));
            trusted.insert(&key, Trusted { checked_at: now, until });
        }
        Ok(())
    }
}

/// A map from exact byte strings to values, holding at most `capacity` entries: when full, the
/// oldest entry goes. For the caches of this crate, whose keys come from messages (anyone can send new
/// ones, so memory must not grow with them).
pub(crate) struct Bounded<V> {
    capacity: usize,
    by_key: HashMap<Arc<[u8]>, V>,
    order: VecDeque<Arc<[u8]>>,
}

impl<V: Clone> Bounded<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Bounded {
            capacity,
            by_key: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<V> {
        self.by_key.get(key).cloned()
    }

    pub(crate) fn insert(&mut self, key: &[u8], value: V) {
        if let Some(slot) = self.by_key.get_mut(key) {
            *slot = value;
            return;
        }
        while self.order.len() >= self.capacity.max(1) {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.by_key.remove(&oldest);
                }
                None => break,
            }
        }
        let key: Arc<[u8]> = key.into();
        self.order.push_back(key.clone());
        self.by_key.insert(key, value);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// How many certificates read from messages are kept parsed, and the largest one kept (real
/// certificates are one to a few kilobytes): at most about 1 MiB of DER.
const PARSED_CERTIFICATES: usize = 64;
const MAX_PARSED_CERTIFICATE_LEN: usize = 16 * 1024;

static PARSED: OnceLock<Mutex<Bounded<X509>>> = OnceLock::new();

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
    let cache = PARSED.get_or_init(|| Mutex::new(Bounded::new(PARSED_CERTIFICATES)));
    if let Some(x509) = cache.lock().ok().and_then(|parsed| parsed.get(der)) {
        return Ok(x509);
    }
    let x509 = X509::from_der(der)?;
    if der.len() <= MAX_PARSED_CERTIFICATE_LEN
        && let Ok(mut parsed) = cache.lock()
    {
        parsed.insert(der, x509.clone());
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

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::x509::X509NameBuilder;
    use openssl::x509::extension::KeyUsage;

    use super::*;
    use crate::devpki::{CertSpec, KeyKind, Role, issue};

    fn ec_ca(name: &str) -> (PKey<Private>, X509) {
        let spec = CertSpec {
            common_name: name,
            key: KeyKind::EcP256,
            role: Role::Ca,
            from_days: -1,
            to_days: 30,
        };
        issue(&spec, None).unwrap()
    }

    /// A signer certificate under `issuer` valid from a minute ago until `not_after` (Unix).
    fn signer_until(issuer: (&X509, &PKey<Private>), not_after: i64) -> X509 {
        let key = crate::devpki::new_key(KeyKind::EcP256).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, "short-lived signer").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.0.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(unix_now().unwrap() - 60).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(not_after).unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().digital_signature().build().unwrap())
            .unwrap();
        b.sign(issuer.1, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn remembered(store: &TrustStore) -> usize {
        store.trusted.lock().unwrap().len()
    }

    #[test]
    fn the_bounded_map_keeps_the_newest_entries() {
        let mut m = Bounded::new(2);
        m.insert(b"a", 1);
        m.insert(b"b", 2);
        m.insert(b"a", 3);
        assert_eq!(m.get(b"a"), Some(3));
        m.insert(b"c", 4);
        assert_eq!(m.len(), 2);
        assert_eq!((m.get(b"a"), m.get(b"b"), m.get(b"c")), (None, Some(2), Some(4)));
    }

    #[test]
    fn a_remembered_certificate_is_the_one_its_bytes_give() {
        let (_, ca) = ec_ca("parsed once");
        let der = ca.to_der().unwrap();
        for _ in 0..2 {
            assert_eq!(certificate_from_der(&der).unwrap().to_der().unwrap(), der);
        }
        assert!(certificate_from_der(&der[..der.len() - 1]).is_err());
    }

    #[test]
    fn a_remembered_chain_holds_only_from_its_check_until_its_limit() {
        let t = Trusted {
            checked_at: 100,
            until: 200,
        };
        assert!(t.holds_at(100) && t.holds_at(199));
        assert!(!t.holds_at(99) && !t.holds_at(200));
    }

    #[test]
    fn only_trusted_chains_are_remembered_and_never_past_their_certificates() {
        let (root_key, root) = ec_ca("chain cache root");
        let store = TrustStore::from_certs(vec![root.clone()]).unwrap();
        // Refusals are never remembered: each one is OpenSSL's answer of the moment.
        let spec = CertSpec {
            common_name: "a self-signed stranger",
            key: KeyKind::EcP256,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        };
        let (_, stranger) = issue(&spec, None).unwrap();
        for _ in 0..2 {
            assert_eq!(store.check(&stranger, &[]), Err(CertError::Untrusted));
        }
        assert_eq!(remembered(&store), 0);
        // A certificate two seconds from its end: trusted now (and remembered)...
        let not_after = unix_now().unwrap() + 2;
        let short = signer_until((&root, &root_key), not_after);
        assert_eq!(store.check(&short, &[]), Ok(()));
        assert_eq!(store.check(&short, &[]), Ok(()));
        assert_eq!(remembered(&store), 1);
        // ...and expired once its notAfter has passed, remembered or not.
        while unix_now().unwrap() <= not_after {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_eq!(store.check(&short, &[]), Err(CertError::Expired));
        // Another set of candidate intermediates is another question.
        assert_eq!(store.check(&short, std::slice::from_ref(&stranger)), Err(CertError::Expired));
    }

    /// Two CRLs made by `openssl ca -gencrl` (a P-256 CA), nextUpdate 2026-12-07T08:07:16Z
    /// (1796630836) and 2027-01-06T07:07:16Z (1799219236).
    const CRL_HOUR: &str = "-----BEGIN X509 CRL-----
MIGvMFgCAQEwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOY3JsIGZpeHR1cmUgQ0EX
DTI2MTIwNzA3MDcxNloXDTI2MTIwNzA4MDcxNlqgDjAMMAoGA1UdFAQDAgEBMAoG
CCqGSM49BAMCA0cAMEQCICrpLqTHDnnFXvgeSlv5s0muWX7kvGkjZxvNJIxf0/Et
AiAVZ3tvV06wPZGjJrMunyLY8I15T1OJCNbM6Iy7PyhWeA==
-----END X509 CRL-----
";
    const CRL_MONTH: &str = "-----BEGIN X509 CRL-----
MIGxMFgCAQEwCgYIKoZIzj0EAwIwGTEXMBUGA1UEAwwOY3JsIGZpeHR1cmUgQ0EX
DTI2MTIwNzA3MDcxNloXDTI3MDEwNjA3MDcxNlqgDjAMMAoGA1UdFAQDAgECMAoG
CCqGSM49BAMCA0kAMEYCIQDqfJvEQZw92r3Hkgg3RIoY7z1e+SVU2VqRxR/VvoYl
iwIhANugst7mFVwNvR21fDvVilQ1d4gAqTyo5EJqMQV4X1Za
-----END X509 CRL-----
";

    #[test]
    fn every_crl_of_a_file_bounds_how_long_a_chain_is_remembered() {
        assert_eq!(crls_next_update_of(CRL_MONTH.as_bytes()), Some(1_799_219_236));
        // The earliest wins, wherever it is in the file.
        let both = format!("{CRL_MONTH}{CRL_HOUR}");
        assert_eq!(crls_next_update_of(both.as_bytes()), Some(1_796_630_836));
        // One that cannot be read: remember nothing.
        let broken = format!("{CRL_MONTH}-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n");
        assert_eq!(crls_next_update_of(broken.as_bytes()), Some(i64::MIN));
        assert_eq!(crls_next_update_of(b"no CRL here"), None);
    }
}
