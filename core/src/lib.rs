//! The bottom of the workspace: the few primitives every other crate needs, and nothing that
//! pulls in a protocol. `hcc-config` depends on this crate alone of the workspace, so reading
//! the settings does not link the signature stack (CMS, PDF, PKCS#11).
//!
//! # Layout
//!
//! - [`digest`]: SHA-256, constant-time comparison, HMAC-SHA256/512 and random bytes, all on
//!   openssl (nothing hand-rolled); `hcc-signing` re-exports them at its root.
//! - [`time`]: the one calendar (days to dates and back, without a date library) and the time
//!   formats the workspace speaks: RFC 3339 for the API, `yyyyMMddHHmmss` in Vietnam's civil
//!   time for the portal and the payment platforms; Unix clocks and duration conversions.
//! - [`secret`]: [`Secret`], a configured value that never prints.

pub mod digest;
pub mod secret;
pub mod time;

pub use digest::{CryptoError, ct_eq, hmac_sha256, hmac_sha512, random_bytes, sha256, sha256_hex};
pub use secret::Secret;
