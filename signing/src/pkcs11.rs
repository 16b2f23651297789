//! The gateway's signing key in a PKCS#11 token (an HSM, a USB token, SoftHSM in tests),
//! through the `cryptoki` crate. The key never leaves the token: the gateway hands it data (RSA,
//! `CKM_SHA256_RSA_PKCS`) or a SHA-256 digest computed with openssl (RSA `CKM_RSA_PKCS` over a
//! DigestInfo when the token lacks the former; ECDSA P-256 `CKM_ECDSA`, whose raw `r || s` is
//! turned into the DER `Ecdsa-Sig-Value` every signature format expects).
//!
//! A token can go away while the gateway runs (unplugged, an HSM restarted, a network HSM
//! unreachable). A signer keeps one logged-in session; when an operation fails because the
//! session or the token is gone, the session is dropped and the next call opens a new one and
//! logs in again, re-initialising the module when the token cannot be found any more (modules
//! such as SoftHSM only look for tokens in `C_Initialize`). While that fails the signer answers
//! [`SignError::Unavailable`] naming the key, never the PIN. A PIN the token refuses is tried
//! once and never again until a restart: retrying it would lock the token.
//!
//! One module is loaded and initialised once per process, whatever the number of signers on it
//! ([`Module`]); every call into it holds a read lock and a re-initialisation the write lock, so
//! `C_Finalize` never runs under another thread's operation.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{PKey, Public};
use openssl::x509::X509;

use crate::key::{KeyAlgorithm, SignError, SigningKey, TokenSigner};
use crate::pki::Identity;

/// Where the key is: the module, the token's label, the user PIN and the key's `CKA_LABEL`.
pub struct TokenConfig {
    pub module: PathBuf,
    pub token: String,
    pub pin: String,
    pub key_label: String,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

/// Why a token key cannot be opened. Every message names the token and the key (labels the
/// operator configured, never the PIN), so a refused start-up says which key to look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("cannot load the PKCS#11 module {module} for the signing key {key:?}: {reason}")]
    Module { module: String, key: String, reason: String },
    #[error("no token labelled {token:?} is present (it should hold the signing key {key:?})")]
    TokenNotFound { token: String, key: String },
    #[error("the token {token:?} refused the PIN for the signing key {key:?} (CKR_PIN_INCORRECT)")]
    PinIncorrect { token: String, key: String },
    #[error(
        "the user PIN of token {token:?} is locked (CKR_PIN_LOCKED): the signing key {key:?} cannot be used until the token's officer unlocks it"
    )]
    PinLocked { token: String, key: String },
    #[error("the token {token:?} holds no private key labelled {key:?}")]
    KeyNotFound { token: String, key: String },
    #[error("the token {token:?} holds more than one private key labelled {key:?}")]
    KeyAmbiguous { token: String, key: String },
    #[error("the signing key {key:?} in token {token:?} cannot be used: {reason}")]
    Unsupported { token: String, key: String, reason: String },
    #[error("the token {token:?} failed while opening the signing key {key:?}: {reason}")]
    Device { token: String, key: String, reason: String },
    #[error("signing.certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("the signing key {key:?} in token {token:?} is not the private key of the certificate in {path}")]
    NotTheCertificatesKey { token: String, key: String, path: String },
}

impl TokenError {
    /// The configuration key an operator fixes for this error.
    pub fn setting(&self) -> &'static str {
        match self {
            TokenError::Module { .. } => "signing.pkcs11_module",
            TokenError::TokenNotFound { .. } | TokenError::Device { .. } => "signing.pkcs11_token",
            TokenError::PinIncorrect { .. } | TokenError::PinLocked { .. } => "signing.pkcs11_pin",
            TokenError::KeyNotFound { .. } | TokenError::KeyAmbiguous { .. } | TokenError::Unsupported { .. } => "signing.pkcs11_key_label",
            TokenError::Certificate { .. } | TokenError::NotTheCertificatesKey { .. } => "signing.certificate",
        }
    }

    /// Whether re-initialising the module could help: the token or its key was not found, or
    /// the device failed (a module that scans for tokens only in `C_Initialize`).
    fn worth_reinit(&self) -> bool {
        matches!(
            self,
            TokenError::TokenNotFound { .. } | TokenError::KeyNotFound { .. } | TokenError::Device { .. }
        )
    }
}

/// How the key is protected, as the token reports it. A key worth the name is sensitive
/// (`CKA_SENSITIVE`: its value is never revealed) and not extractable (`CKA_EXTRACTABLE` false:
/// it cannot be wrapped out either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    pub sensitive: bool,
    pub extractable: bool,
}

impl KeyProtection {
    pub fn never_leaves_the_token(self) -> bool {
        self.sensitive && !self.extractable
    }
}

/// A module loaded once per process. `gate` is read-held by every call into the module and
/// write-held to re-initialise it; its generation tells a session whether it predates a
/// re-initialisation (and is then dead, with a handle that may now be another's).
struct Module {
    ctx: Pkcs11,
    gate: RwLock<Generation>,
}

struct Generation {
    n: u64,
    last_reinit: Option<Instant>,
}

/// At most one re-initialisation per module in this interval: while a token is missing, every
/// signing request would otherwise finalise and re-initialise the module.
const REINIT_INTERVAL: Duration = Duration::from_millis(500);

fn modules() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-done that matters here.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn initialize(ctx: &Pkcs11) -> Result<(), CkError> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Module {
    /// The module at `path`, loaded and initialised on first use. The same library under two
    /// names is one library to the loader, so the canonical path is the key.
    fn load(path: &Path) -> Result<Arc<Module>, CkError> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut map = lock(modules());
        if let Some(m) = map.get(&canonical) {
            return Ok(m.clone());
        }
        let ctx = Pkcs11::new(&canonical)?;
        initialize(&ctx)?;
        let module = Arc::new(Module {
            ctx,
            gate: RwLock::new(Generation { n: 0, last_reinit: None }),
        });
        map.insert(canonical, module.clone());
        Ok(module)
    }

    fn read(&self) -> RwLockReadGuard<'_, Generation> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Finalises and re-initialises the module so that it looks for its tokens again, unless
    /// someone did since generation `seen`, or did so too recently. True when the module is
    /// now newer than `seen`. Every session opened before is dead afterwards.
    fn reinit(&self, seen: u64) -> bool {
        let mut g = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if g.n != seen {
            return true;
        }
        if g.last_reinit.is_some_and(|t| t.elapsed() < REINIT_INTERVAL) {
            return false;
        }
        g.last_reinit = Some(Instant::now());
        // Finalize may fail (a module already torn down by its device); initialising is what
        // matters, and a failure there leaves the next attempt to try again.
        let _ = self.ctx.clone().finalize();
        let ok = initialize(&self.ctx).is_ok();
        g.n += 1;
        ok
    }
}

/// An open, logged-in session and the key's handle in it, from one generation of the module.
struct Open {
    session: Session,
    key: ObjectHandle,
    generation: u64,
}

/// What the key is, read once at start-up.
#[derive(Debug, Clone, Copy)]
struct KeyFacts {
    algorithm: KeyAlgorithm,
    rsa_mechanism: RsaMechanism,
    protection: KeyProtection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RsaMechanism {
    /// The token hashes: `CKM_SHA256_RSA_PKCS` over the data.
    Sha256RsaPkcs,
    /// The gateway hashes: `CKM_RSA_PKCS` over the SHA-256 DigestInfo.
    RsaPkcsDigestInfo,
}

/// A [`TokenSigner`] over a key in a PKCS#11 token.
pub struct Pkcs11Signer {
    module: Arc<Module>,
    token: String,
    key_label: String,
    pin: AuthPin,
    facts: KeyFacts,
    /// Set when the token refused the PIN after start-up: never tried again.
    pin_refused: AtomicBool,
    /// The certificate's public key, when known: a key found again after the token came back
    /// must still be the certificate's (a token swapped for another with the same labels).
    expected: Option<PKey<Public>>,
    state: Mutex<Option<Open>>,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("token", &self.token)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

fn rv_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{rv:?} in {f:?}"),
        other => other.to_string(),
    }
}

/// Failures that mean the session, the login or the token is gone: worth a new session.
fn is_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::SlotIdInvalid
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::GeneralError,
            _
        )
    )
}

/// The DER `DigestInfo` prefix of a SHA-256 digest (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
];

/// The DER OID of P-256 (`prime256v1`), as `CKA_EC_PARAMS` names the curve.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A raw PKCS#11 ECDSA signature (`r || s`, each as long as the curve's order) as the DER
/// `Ecdsa-Sig-Value` (`SEQUENCE { r INTEGER, s INTEGER }`) X.509, CMS and XML-DSig carry.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, SignError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(SignError::Failed(format!(
            "the token returned an ECDSA signature of {} bytes, not r || s",
            raw.len()
        )));
    }
    let failed = |e: openssl::error::ErrorStack| SignError::Failed(e.to_string());
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = EcdsaSig::from_private_components(BigNum::from_slice(r).map_err(failed)?, BigNum::from_slice(s).map_err(failed)?)
        .map_err(failed)?;
    sig.to_der().map_err(failed)
}

impl Pkcs11Signer {
    /// Loads the module, finds the token and the key, logs in and keeps the session. Every
    /// failure names the token and the key.
    pub fn open(config: &TokenConfig) -> Result<Self, TokenError> {
        let module = Module::load(&config.module).map_err(|e| TokenError::Module {
            module: config.module.display().to_string(),
            key: config.key_label.clone(),
            reason: rv_name(&e),
        })?;
        let mut signer = Pkcs11Signer {
            module,
            token: config.token.clone(),
            key_label: config.key_label.clone(),
            pin: AuthPin::from(config.pin.clone()),
            facts: KeyFacts {
                algorithm: KeyAlgorithm::Rsa,
                rsa_mechanism: RsaMechanism::Sha256RsaPkcs,
                protection: KeyProtection {
                    sensitive: false,
                    extractable: true,
                },
            },
            pin_refused: AtomicBool::new(false),
            expected: None,
            state: Mutex::new(None),
        };
        // A token added after this process first initialised the module is only seen after a
        // re-initialisation (SoftHSM scans in C_Initialize), hence one more try.
        let seen = signer.module.read().n;
        let (open, facts) = match signer.try_open(true) {
            Ok(found) => found,
            Err(e) if e.worth_reinit() && signer.module.reinit(seen) => signer.try_open(true)?,
            Err(e) => return Err(e),
        };
        if let Some(facts) = facts {
            signer.facts = facts;
        }
        *lock(&signer.state) = Some(open);
        Ok(signer)
    }

    /// After this, a key found again after the token came back must belong to `public`.
    pub fn expect_public_key(mut self, public: PKey<Public>) -> Self {
        self.expected = Some(public);
        self
    }

    /// Signs RSA as with a token that lacks `CKM_SHA256_RSA_PKCS`: `CKM_RSA_PKCS` over the
    /// DigestInfo the gateway computes. For the tests of that path on a token that has both.
    #[doc(hidden)]
    pub fn with_rsa_pkcs_over_digest_info(mut self) -> Self {
        self.facts.rsa_mechanism = RsaMechanism::RsaPkcsDigestInfo;
        self
    }

    /// How the token protects the key (read at start-up).
    pub fn protection(&self) -> KeyProtection {
        self.facts.protection
    }

    fn who(&self) -> (String, String) {
        (self.token.clone(), self.key_label.clone())
    }

    fn device(&self, e: &CkError) -> TokenError {
        let (token, key) = self.who();
        TokenError::Device {
            token,
            key,
            reason: rv_name(e),
        }
    }

    /// Opens a session on the token, logs in and finds the key; with `learn`, also reads what
    /// the key is. Holds the module's read lock throughout.
    fn try_open(&self, learn: bool) -> Result<(Open, Option<KeyFacts>), TokenError> {
        let gate = self.module.read();
        let ctx = &self.module.ctx;
        let (token, key) = self.who();
        let slots = ctx.get_slots_with_token().map_err(|e| self.device(&e))?;
        let mut found: Option<Slot> = None;
        for slot in slots {
            // A slot whose token went away between the listing and this call is not ours.
            if let Ok(info) = ctx.get_token_info(slot)
                && info.label().trim_end() == self.token
            {
                if info.user_pin_locked() {
                    return Err(TokenError::PinLocked { token, key });
                }
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| TokenError::TokenNotFound {
            token: token.clone(),
            key: key.clone(),
        })?;
        let session = ctx.open_ro_session_no_drop(slot).map_err(|e| self.device(&e))?;
        let opened = self.login_and_find(&session, slot, learn);
        match opened {
            Ok((handle, facts)) => Ok((
                Open {
                    session,
                    key: handle,
                    generation: gate.n,
                },
                facts,
            )),
            Err(e) => {
                let _ = session.close();
                Err(e)
            }
        }
    }

    fn login_and_find(&self, session: &Session, slot: Slot, learn: bool) -> Result<(ObjectHandle, Option<KeyFacts>), TokenError> {
        let (token, key) = self.who();
        match session.login(UserType::User, Some(&self.pin)) {
            // Login state is per application and token: another session may already hold it.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(TokenError::PinIncorrect { token, key });
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(TokenError::PinLocked { token, key }),
            Err(e) => return Err(self.device(&e)),
        }
        let template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(self.key_label.as_bytes().to_vec()),
        ];
        let handles = session.find_objects(&template).map_err(|e| self.device(&e))?;
        let handle = match handles.as_slice() {
            [] => return Err(TokenError::KeyNotFound { token, key }),
            [one] => *one,
            _ => return Err(TokenError::KeyAmbiguous { token, key }),
        };
        let facts = if learn {
            Some(self.key_facts(session, slot, handle)?)
        } else {
            None
        };
        Ok((handle, facts))
    }

    fn key_facts(&self, session: &Session, slot: Slot, handle: ObjectHandle) -> Result<KeyFacts, TokenError> {
        let (token, key) = self.who();
        let unsupported = |reason: String| TokenError::Unsupported {
            token: token.clone(),
            key: key.clone(),
            reason,
        };
        let attrs = session
            .get_attributes(
                handle,
                &[AttributeType::KeyType, AttributeType::Sensitive, AttributeType::Extractable],
            )
            .map_err(|e| self.device(&e))?;
        let mut key_type = None;
        // A token that does not say is taken at its least protective.
        let mut protection = KeyProtection {
            sensitive: false,
            extractable: true,
        };
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::Sensitive(v) => protection.sensitive = v,
                Attribute::Extractable(v) => protection.extractable = v,
                _ => {}
            }
        }
        let mechanisms = self.module.ctx.get_mechanism_list(slot).map_err(|e| self.device(&e))?;
        let algorithm = match key_type {
            Some(t) if t == KeyType::RSA => KeyAlgorithm::Rsa,
            Some(t) if t == KeyType::EC => {
                let params = session
                    .get_attributes(handle, &[AttributeType::EcParams])
                    .map_err(|e| self.device(&e))?;
                let on_p256 = params
                    .iter()
                    .any(|a| matches!(a, Attribute::EcParams(p) if p.as_slice() == P256_OID));
                if !on_p256 {
                    return Err(unsupported("an EC key on a curve other than P-256".into()));
                }
                if !mechanisms.contains(&MechanismType::ECDSA) {
                    return Err(unsupported("the token does not offer CKM_ECDSA".into()));
                }
                KeyAlgorithm::EcdsaP256
            }
            Some(t) => return Err(unsupported(format!("a {t} key; RSA or EC P-256 are supported"))),
            None => return Err(unsupported("the token does not say the key's type".into())),
        };
        let rsa_mechanism = if mechanisms.contains(&MechanismType::SHA256_RSA_PKCS) {
            RsaMechanism::Sha256RsaPkcs
        } else {
            RsaMechanism::RsaPkcsDigestInfo
        };
        if algorithm == KeyAlgorithm::Rsa
            && rsa_mechanism == RsaMechanism::RsaPkcsDigestInfo
            && !mechanisms.contains(&MechanismType::RSA_PKCS)
        {
            return Err(unsupported("the token offers neither CKM_SHA256_RSA_PKCS nor CKM_RSA_PKCS".into()));
        }
        Ok(KeyFacts {
            algorithm,
            rsa_mechanism,
            protection,
        })
    }

    fn unavailable(&self, reason: impl Into<String>) -> SignError {
        SignError::Unavailable {
            key: self.describe(),
            reason: reason.into(),
        }
    }

    /// A new session after the last one was lost, re-initialising the module when the token
    /// or key is not found. Never tries a PIN the token refused once.
    fn reconnect(&self) -> Result<Open, SignError> {
        if self.pin_refused.load(Ordering::Relaxed) {
            return Err(self.unavailable("the token refused the PIN; fix signing.pkcs11_pin and restart the gateway"));
        }
        let seen = self.module.read().n;
        let attempt = match self.try_open(false) {
            Err(e) if e.worth_reinit() && self.module.reinit(seen) => self.try_open(false),
            other => other,
        };
        match attempt {
            Ok((open, _)) => {
                if let Err(e) = self.check_expected(&open) {
                    self.discard(open);
                    return Err(e);
                }
                Ok(open)
            }
            Err(e) => {
                if matches!(e, TokenError::PinIncorrect { .. }) {
                    self.pin_refused.store(true, Ordering::Relaxed);
                }
                Err(self.unavailable(e.to_string()))
            }
        }
    }

    /// The key found again must still be the certificate's.
    fn check_expected(&self, open: &Open) -> Result<(), SignError> {
        let Some(public) = &self.expected else {
            return Ok(());
        };
        let probe = b"hcc-gateway key check";
        let sig = {
            let gate = self.module.read();
            if gate.n != open.generation {
                return Err(self.unavailable("the module was re-initialised"));
            }
            self.raw_sign(open, probe).map_err(|e| self.unavailable(rv_name(&e)))?
        };
        let failed = |e: openssl::error::ErrorStack| SignError::Failed(e.to_string());
        let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), public).map_err(failed)?;
        v.update(probe).map_err(failed)?;
        if v.verify(&sig).unwrap_or(false) {
            Ok(())
        } else {
            Err(self.unavailable("the key found under this label is not the certificate's any more"))
        }
    }

    /// Closes a session that is still the module's; one from before a re-initialisation is
    /// only forgotten (its handle may now name another signer's session).
    fn discard(&self, open: Open) {
        let gate = self.module.read();
        if gate.n == open.generation {
            let _ = open.session.close();
        }
    }

    /// The signature itself, in the session; the caller holds the module's read lock.
    fn raw_sign(&self, open: &Open, data: &[u8]) -> Result<Vec<u8>, CkError> {
        match self.facts.algorithm {
            KeyAlgorithm::Rsa => match self.facts.rsa_mechanism {
                RsaMechanism::Sha256RsaPkcs => open.session.sign(&Mechanism::Sha256RsaPkcs, open.key, data),
                RsaMechanism::RsaPkcsDigestInfo => {
                    let mut info = SHA256_DIGEST_INFO.to_vec();
                    info.extend_from_slice(&crate::sha256(data));
                    open.session.sign(&Mechanism::RsaPkcs, open.key, &info)
                }
            },
            KeyAlgorithm::EcdsaP256 => open.session.sign(&Mechanism::Ecdsa, open.key, &crate::sha256(data)),
        }
    }
}

/// What one attempt with a session gave.
enum Attempt {
    Signed(Vec<u8>),
    /// The session is dead: drop it and try a new one.
    Lost(String),
    Failed(SignError),
}

impl TokenSigner for Pkcs11Signer {
    fn algorithm(&self) -> KeyAlgorithm {
        self.facts.algorithm
    }

    fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut state = lock(&self.state);
        let mut last = String::from("no session");
        // The kept session, and when it turns out lost, one new one: a token that came back
        // answers the first request after it did.
        for _ in 0..2 {
            let open = match state.take() {
                Some(open) => open,
                None => self.reconnect()?,
            };
            let attempt = {
                let gate = self.module.read();
                if gate.n != open.generation {
                    Attempt::Lost("the module was re-initialised".into())
                } else {
                    match self.raw_sign(&open, data) {
                        Ok(sig) => Attempt::Signed(sig),
                        Err(e) if is_lost(&e) => Attempt::Lost(rv_name(&e)),
                        Err(e) => Attempt::Failed(SignError::Failed(format!("the token refused to sign: {}", rv_name(&e)))),
                    }
                }
            };
            match attempt {
                Attempt::Signed(sig) => {
                    *state = Some(open);
                    return match self.facts.algorithm {
                        KeyAlgorithm::Rsa => Ok(sig),
                        KeyAlgorithm::EcdsaP256 => ecdsa_raw_to_der(&sig),
                    };
                }
                Attempt::Failed(e) => {
                    *state = Some(open);
                    return Err(e);
                }
                Attempt::Lost(why) => {
                    self.discard(open);
                    last = why;
                }
            }
        }
        Err(self.unavailable(last))
    }

    fn describe(&self) -> String {
        format!("{:?} in token {:?}", self.key_label, self.token)
    }
}

impl Drop for Pkcs11Signer {
    fn drop(&mut self) {
        if let Some(open) = lock(&self.state).take() {
            self.discard(open);
        }
    }
}

/// The gateway's identity with its key in a token: the certificate and chain from the PEM file
/// at `certificate` (the certificate first), and the key, which must be the certificate's.
pub fn token_identity(config: &TokenConfig, certificate: &Path) -> Result<(Identity, KeyProtection), TokenError> {
    let cert_error = |reason: String| TokenError::Certificate {
        path: certificate.display().to_string(),
        reason,
    };
    let pem = std::fs::read(certificate).map_err(|e| cert_error(e.to_string()))?;
    let mut certs = X509::stack_from_pem(&pem)
        .map_err(|_| cert_error("not a PEM certificate file".into()))?
        .into_iter();
    let cert = certs.next().ok_or_else(|| cert_error("holds no certificate".into()))?;
    let chain: Vec<X509> = certs.collect();
    let public = cert.public_key().map_err(|e| cert_error(e.to_string()))?;
    let signer = Pkcs11Signer::open(config)?.expect_public_key(public.clone());
    let protection = signer.protection();
    let key = SigningKey::Token(Arc::new(signer));
    let mismatch = || TokenError::NotTheCertificatesKey {
        token: config.token.clone(),
        key: config.key_label.clone(),
        path: certificate.display().to_string(),
    };
    match key.matches(&public) {
        Ok(true) => {}
        Ok(false) => return Err(mismatch()),
        Err(e) => {
            return Err(TokenError::Device {
                token: config.token.clone(),
                key: config.key_label.clone(),
                reason: e.to_string(),
            });
        }
    }
    Ok((Identity { key, cert, chain }, protection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_becomes_der_with_minimal_integers() {
        // r = 1 (31 zero bytes, then 01): one content byte after stripping the leading zeros.
        // s = 0x80 then 31 zero bytes: its top bit is set, so DER prepends 00 to keep it
        // positive, 33 content bytes. SEQUENCE length = (2 + 1) + (2 + 33) = 38 = 0x26.
        let mut raw = vec![0u8; 64];
        raw[31] = 0x01;
        raw[32] = 0x80;
        let mut want = vec![0x30, 0x26, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00, 0x80];
        want.extend_from_slice(&[0u8; 31]);
        assert_eq!(ecdsa_raw_to_der(&raw).unwrap(), want);
    }

    #[test]
    fn raw_ecdsa_of_full_width_values_keeps_every_byte() {
        // r = 7f ff .. ff (top bit clear: 32 content bytes, no padding); s = 01 02 .. 20.
        let mut raw = vec![0xffu8; 32];
        raw[0] = 0x7f;
        raw.extend(1u8..=32);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        // SEQUENCE of (2 + 32) + (2 + 32) = 68 = 0x44 bytes.
        assert_eq!(&der[..4], &[0x30, 0x44, 0x02, 0x20]);
        assert_eq!(&der[4..36], &raw[..32]);
        assert_eq!(&der[36..38], &[0x02, 0x20]);
        assert_eq!(&der[38..], &raw[32..]);
    }

    #[test]
    fn raw_ecdsa_of_odd_or_no_length_is_refused() {
        assert!(matches!(ecdsa_raw_to_der(&[1, 2, 3]), Err(SignError::Failed(_))));
        assert!(matches!(ecdsa_raw_to_der(&[]), Err(SignError::Failed(_))));
    }

    #[test]
    fn the_digest_info_prefix_is_the_der_of_sha256() {
        // Independently: openssl's own encoding of AlgorithmIdentifier sha256 with NULL
        // parameters and an OCTET STRING of 32 bytes begins with exactly these bytes.
        let obj = openssl::asn1::Asn1Object::from_str("2.16.840.1.101.3.4.2.1").unwrap();
        assert_eq!(obj.as_slice(), &SHA256_DIGEST_INFO[6..15]);
        assert_eq!(SHA256_DIGEST_INFO.len() + 32, 0x33);
        assert_eq!(SHA256_DIGEST_INFO[1] as usize + 2, 0x33);
    }

    #[test]
    fn a_missing_module_names_the_module_and_the_key() {
        let err = Pkcs11Signer::open(&TokenConfig {
            module: "/nonexistent/libvendor-pkcs11.so".into(),
            token: "VNPT-CA".into(),
            pin: "123456".into(),
            key_label: "gateway-key".into(),
        })
        .expect_err("must fail");
        assert_eq!(err.setting(), "signing.pkcs11_module");
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/libvendor-pkcs11.so") && text.contains("gateway-key"),
            "{text}"
        );
        assert!(!text.contains("123456"), "{text}");
    }
}
