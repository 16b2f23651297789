//! Signatures for hcc-gateway, all on openssl with RustCrypto's ASN.1 types: CMS and CAdES
//! detached signatures with their RFC 3161 timestamps, PAdES on PDF documents, XML-DSig on the
//! bank's camt.054 statements, Standard Webhooks signatures, and the keys and trust they need
//! (PKCS#12, PEM, PKCS#11 tokens, a trust store with CRLs). Nothing here is hand-rolled
//! cryptography.
//!
//! The primitives below the signatures (SHA-256, constant-time comparison, HMAC, random bytes)
//! and the calendar live in `hcc-core`, which the settings depend on without linking this
//! crate; they are re-exported here so that `hcc_signing::sha256_hex` and
//! `hcc_signing::calendar` keep working.
//!
//! # Layout
//!
//! - [`key`]: the private key, in memory or in a token; [`pkcs11`]: the token itself;
//! - [`pki`]: identities (PKCS#12, PEM), the trust store, certificate checks; [`devpki`]: a
//!   development PKI for the demo and the tests;
//! - [`cms`]: CMS (PKCS#7) detached signatures, as `openssl cms` makes them;
//! - [`cades`]: CAdES-BES/-T, the profile of CMS that PAdES embeds, and its verification;
//! - [`tsp`]: RFC 3161 requests and responses (the timestamp authority's tokens);
//! - [`pades`]: PAdES on PDF (sign, verify, the visible stamp, the incremental writer);
//! - [`xml`]: canonicalisation and XML-DSig, for the bank's statements;
//! - [`webhook`]: Standard Webhooks signatures;
//! - [`calendar`]: the calendar, re-exported from `hcc-core`.

pub mod cades;
pub mod cms;
pub mod devpki;
pub mod key;
pub mod pades;
pub mod pkcs11;
pub mod pki;
pub mod tsp;
pub mod webhook;
pub mod xml;

/// The calendar lives in `hcc-core` (`hcc_core::time`); this path stays for the callers that
/// name it here.
pub mod calendar {
    pub use hcc_core::time::civil_from_days;
}

pub use hcc_core::digest::{CryptoError, ct_eq, hmac_sha256, hmac_sha512, random_bytes, sha256, sha256_hex};
