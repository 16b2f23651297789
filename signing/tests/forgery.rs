//! The signer-selection forgery (issue 20) and back-dated timestamps, built here and judged by
//! our verifiers and by `openssl cms -verify`.
//!
//! The forgery: an attacker's key, a certificate A′ with the genuine certificate's serial and
//! an issuer name differing only in letter case, and a message carrying both A′ and the genuine
//! certificate T whose signer identifier names T. OpenSSL compares issuer names without regard
//! to case and meets A′ first; a verifier that chose T by exact comparison would check the
//! attacker's signature with A′'s key and the chain of T.

mod common;

use common::{Pki, openssl_cms_verify, pki, run, s};
use hcc_signing::cades::{self, SignatureContext};
use hcc_signing::devpki::{CertSpec, KeyKind, Role, issue, lookalike, timestamp_token};
use hcc_signing::pki::Identity;

/// An identity that signs with `key` but names `named` as its certificate, carrying `carried`.
fn forger(key: openssl::pkey::PKey<openssl::pkey::Private>, named: &openssl::x509::X509, carried: Vec<openssl::x509::X509>) -> Identity {
    Identity {
        key: key.into(),
        cert: named.clone(),
        chain: carried,
    }
}

/// `YYYYMMDDHHMMSSZ` for Unix seconds.
fn generalized(unix: i64) -> String {
    let (y, mo, d) = hcc_signing::calendar::civil_from_days(unix.div_euclid(86_400));
    let sod = unix.rem_euclid(86_400);
    format!("{y:04}{mo:02}{d:02}{:02}{:02}{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `openssl cms -verify` on a token (the TSTInfo is encapsulated), any purpose: the question is
/// the signer, not the extended key usage.
fn openssl_token_verify(p: &Pki, token: &[u8], name: &str) -> (bool, String) {
    let path = p.dir.join(format!("{name}.tst"));
    std::fs::write(&path, token).unwrap();
    let root = p.dir.join("root.pem");
    run(
        "openssl",
        &[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&path),
            "-CAfile",
            s(&root),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
    )
}

#[test]
fn a_lookalike_signer_certificate_makes_a_cms_invalid_and_openssl_agrees() {
    let p = pki();
    let genuine = &p.pki.gateway.cert;
    let (attacker_key, a_prime) = lookalike(genuine, Role::Signer).unwrap();
    // The forgery is what the issue describes: same serial, issuer equal but for case, and A′
    // ahead of T in the certificate SET (OpenSSL meets it first).
    assert_eq!(a_prime.serial_number().to_bn().unwrap(), genuine.serial_number().to_bn().unwrap());
    let (ai, gi) = (
        hcc_signing::pki::name_text(a_prime.issuer_name()),
        hcc_signing::pki::name_text(genuine.issuer_name()),
    );
    assert!(ai != gi && ai.to_lowercase() == gi.to_lowercase(), "{ai} / {gi}");
    assert!(a_prime.to_der().unwrap() < genuine.to_der().unwrap());

    let content = "ĐÃ THU HỒI. Nộp 9.999.999 VND".as_bytes();
    let forged = forger(attacker_key, genuine, vec![a_prime, p.pki.root.clone()]);
    let der = cades::sign(&forged, content).unwrap().into_der();

    let v = cades::verify(&der, content, &p.trust).unwrap();
    assert!(!v.valid && !v.trusted, "{v:?}");
    assert!(v.reason.as_deref().is_some_and(|r| r.contains("ambiguous")), "{v:?}");
    let v = hcc_signing::cms::verify_detached(&der, content, &p.trust).unwrap();
    assert!(!v.valid && !v.trusted, "{v:?}");
    assert!(v.reason.as_deref().is_some_and(|r| r.contains("ambiguous")), "{v:?}");
    let (ok, log) = openssl_cms_verify(&p, &der, content, "forged", &[]);
    assert!(!ok, "openssl cms -verify accepted the forgery: {log}");

    // The genuine signature over the same content still verifies, here and in openssl.
    let genuine_der = cades::sign(&p.pki.gateway, content).unwrap().into_der();
    let v = cades::verify(&genuine_der, content, &p.trust).unwrap();
    assert!(v.valid && v.trusted, "{v:?}");
    assert!(hcc_signing::cms::verify_detached(&genuine_der, content, &p.trust).unwrap().trusted);
    let (ok, log) = openssl_cms_verify(&p, &genuine_der, content, "genuine", &[]);
    assert!(ok, "{log}");
}

#[test]
fn a_lookalike_authority_certificate_makes_a_token_invalid_and_openssl_agrees() {
    let p = pki();
    let content = b"a signed document";
    let sig = cades::sign(&p.pki.gateway, content).unwrap();
    let (attacker_key, t_prime) = lookalike(&p.pki.tsa.cert, Role::Tsa).unwrap();
    assert!(t_prime.to_der().unwrap() < p.pki.tsa.cert.to_der().unwrap());
    let forged_tsa = forger(attacker_key, &p.pki.tsa.cert, vec![t_prime, p.pki.root.clone()]);
    let token = timestamp_token(&forged_tsa, &generalized(now()), sig.signature_value()).unwrap();

    let info = hcc_signing::tsp::inspect_token(&token).unwrap();
    assert!(!info.signature_valid, "{info:?}");
    assert!(info.refusal.is_some_and(|r| r.contains("ambiguous")), "{info:?}");
    let context = SignatureContext {
        signature_value: sig.signature_value(),
        signer: &p.pki.gateway.cert,
        signing_time: None,
    };
    let checked = cades::check_timestamp(&token, &context, &p.trust).unwrap();
    assert!(!checked.valid && !checked.trusted, "{checked:?}");
    assert!(checked.reason.as_deref().is_some_and(|r| r.contains("ambiguous")), "{checked:?}");
    assert!(sig.clone().with_timestamp(&token).is_err());
    let (ok, log) = openssl_token_verify(&p, &token, "forged");
    assert!(!ok, "openssl cms -verify accepted the forged token: {log}");

    // The same token made with the authority's own key is sound, here and in openssl.
    let token = timestamp_token(&p.pki.tsa, &generalized(now()), sig.signature_value()).unwrap();
    let checked = cades::check_timestamp(&token, &context, &p.trust).unwrap();
    assert!(checked.valid && checked.trusted, "{checked:?}");
    let (ok, log) = openssl_token_verify(&p, &token, "genuine");
    assert!(ok, "{log}");
}

#[test]
fn back_dated_tokens_are_refused_and_a_genuine_one_verifies() {
    let p = pki();
    let content = b"a signed document";
    let sig = cades::sign(&p.pki.gateway, content).unwrap();
    let signed_at = now();
    // An authority certificate valid since 2017, so that a 2020 token is inside its validity
    // and only the signer's notBefore (yesterday) refuses it.
    let (old_key, old_cert) = issue(
        &CertSpec {
            common_name: "HCC Dev Old TSA",
            key: KeyKind::Rsa2048,
            role: Role::Tsa,
            from_days: -3300,
            to_days: 30,
        },
        Some((&p.pki.root, &p.pki.root_key)),
    )
    .unwrap();
    let old_tsa = Identity {
        key: old_key.into(),
        cert: old_cert,
        chain: vec![p.pki.root.clone()],
    };
    let check = |token: &[u8]| {
        let stamped = sig.clone().with_timestamp(token).unwrap();
        cades::verify(stamped.to_der(), content, &p.trust).unwrap()
    };

    // 2020-01-01: six years before the signer's certificate.
    let v = check(&timestamp_token(&old_tsa, "20200101000000Z", sig.signature_value()).unwrap());
    let ts = v.timestamp.clone().unwrap();
    assert!(!ts.valid && !ts.trusted, "{v:?}");
    assert_eq!(ts.time, "2020-01-01T00:00:00Z");
    assert!(v.reason.as_deref().is_some_and(|r| r.contains("notBefore")), "{v:?}");

    // An hour before the signature's signing time (inside the signer's validity).
    let v = check(&timestamp_token(&old_tsa, &generalized(signed_at - 3600), sig.signature_value()).unwrap());
    assert!(!v.timestamp.as_ref().unwrap().valid, "{v:?}");
    assert!(v.reason.as_deref().is_some_and(|r| r.contains("signing time")), "{v:?}");

    // A time outside the authority certificate's own validity: the token itself is refused.
    let token = timestamp_token(&p.pki.tsa, "20200101000000Z", sig.signature_value()).unwrap();
    let info = hcc_signing::tsp::inspect_token(&token).unwrap();
    assert!(info.refusal.is_some_and(|r| r.contains("validity")), "{info:?}");
    assert!(sig.clone().with_timestamp(&token).is_err());

    // A genuine token, now: valid and trusted, and the signature reads clean.
    let v = check(&timestamp_token(&old_tsa, &generalized(now()), sig.signature_value()).unwrap());
    let ts = v.timestamp.clone().unwrap();
    assert!(ts.valid && ts.trusted && ts.reason.is_none(), "{v:?}");
    assert!(v.valid && v.trusted && v.reason.is_none(), "{v:?}");
}
