//! Digests, constant-time comparison, HMAC and random bytes, all on openssl: nothing here is
//! hand-rolled cryptography, only one narrow, typed door to openssl for the rest of the
//! workspace (API key hashes, webhook and payment signatures, references).

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("openssl: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// SHA-256 of `data`.
///
/// openssl's one-shot SHA-256 rather than `hash(MessageDigest::sha256(), ..)`: with OpenSSL 3
/// the latter looks the algorithm up (a locked table) and builds a context on every call, which
/// showed as a few percent of the gateway's CPU once every exchange was digested for the
/// evidence log.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// Compares two byte strings in time that depends only on their lengths, never on where they
/// first differ. Lengths are not secret (a digest's length is public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

fn hmac(md: MessageDigest, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let pkey = PKey::hmac(key)?;
    let mut signer = Signer::new(md, &pkey)?;
    signer.update(data)?;
    Ok(signer.sign_to_vec()?)
}

/// HMAC-SHA256 (Standard Webhooks).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    hmac(MessageDigest::sha256(), key, data)
}

/// HMAC-SHA512 (VNPAY's `vnp_SecureHash`).
pub fn hmac_sha512(key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    hmac(MessageDigest::sha512(), key, data)
}

/// Fills a buffer from openssl's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    openssl::rand::rand_bytes(buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"same", b"same"));
        assert!(!ct_eq(b"same", b"sama"));
        assert!(!ct_eq(b"same", b"same-longer"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn hmac_sha512_matches_rfc4231_case_2() {
        let mac = hmac_sha512(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert!(hex::encode(mac).starts_with("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd6"));
    }
}
