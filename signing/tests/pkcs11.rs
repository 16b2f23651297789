//! The PKCS#11 signer against a real module, SoftHSM2, with keys imported by `softhsm2-util`
//! or generated in the token by `pkcs11-tool`; signatures checked by openssl. SoftHSM reads
//! `SOFTHSM2_CONF` once per process and this (multi-threaded) test process's environment is
//! not safe to change, so each test runs itself again as a child process given a private
//! SoftHSM ([`in_child`]); the body runs in the child.

// Shared with the end-to-end tests, each of which takes what it needs.
#[allow(dead_code)]
#[path = "../../tests/support/softhsm.rs"]
mod softhsm;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hcc_signing::devpki::DevPki;
use hcc_signing::key::{KeyAlgorithm, SignError, SigningKey, TokenSigner};
use hcc_signing::pkcs11::{Pkcs11Signer, TokenConfig, TokenError, token_identity};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use softhsm::{SoftHsm, USER_PIN, module_path};

/// Names the child's SoftHSM folder; set only in the child.
const CHILD: &str = "HCC_TEST_SOFTHSM_DIR";

/// In the test process: runs `test` again in a child process pointed at a fresh SoftHSM, checks
/// that it passed, and returns `None`. In that child: the SoftHSM, for the test's body.
fn in_child(test: &str) -> Option<SoftHsm> {
    if let Some(dir) = std::env::var_os(CHILD) {
        return Some(SoftHsm::at(Path::new(&dir)));
    }
    let hsm = SoftHsm::fresh();
    let out = hsm.dir.join("child.out");
    let mut child = hsm
        .command(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &hsm.dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{test} did not finish in its child process");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success() && printed.contains("1 passed"),
        "{test} failed in its child process:\n{printed}"
    );
    None
}

fn config(token: &str, key_label: &str, pin: &str) -> TokenConfig {
    TokenConfig {
        module: module_path(),
        token: token.into(),
        pin: pin.into(),
        key_label: key_label.into(),
    }
}

fn verifies(public: &PKey<Public>, data: &[u8], sig: &[u8]) -> bool {
    let mut v = Verifier::new(MessageDigest::sha256(), public).unwrap();
    v.update(data).unwrap();
    v.verify(sig).unwrap_or(false)
}

/// `openssl dgst -sha256 -verify`: the outside judge of a raw signature.
fn openssl_verifies(dir: &Path, public: &PKey<Public>, data: &[u8], sig: &[u8]) -> bool {
    let (pubf, dataf, sigf) = (dir.join("v.pub.pem"), dir.join("v.data"), dir.join("v.sig"));
    std::fs::write(&pubf, public.public_key_to_pem().unwrap()).unwrap();
    std::fs::write(&dataf, data).unwrap();
    std::fs::write(&sigf, sig).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubf)
        .arg("-signature")
        .arg(&sigf)
        .arg(&dataf)
        .output()
        .expect("openssl must be installed");
    out.status.success()
}

/// The development PKI, written into the SoftHSM's folder.
fn dev_pki(hsm: &SoftHsm) -> (DevPki, std::path::PathBuf) {
    let pki = DevPki::generate().unwrap();
    let dir = hsm.dir.join("pki");
    pki.write(&dir).unwrap();
    (pki, dir)
}

#[test]
fn an_imported_rsa_key_signs_verifiably_and_never_leaves_the_token() {
    let Some(hsm) = in_child("an_imported_rsa_key_signs_verifiably_and_never_leaves_the_token") else {
        return;
    };
    let (pki, dir) = dev_pki(&hsm);
    hsm.init_token("rsa-token");
    hsm.import_key("rsa-token", &dir.join("gateway.key"), "gateway", "01");
    let public = pki.gateway.cert.public_key().unwrap();

    let signer = Pkcs11Signer::open(&config("rsa-token", "gateway", USER_PIN)).unwrap();
    assert_eq!(signer.algorithm(), KeyAlgorithm::Rsa);
    let protection = signer.protection();
    assert!(protection.sensitive && !protection.extractable, "{protection:?}");
    assert!(protection.never_leaves_the_token());
    assert!(signer.describe().contains("gateway") && signer.describe().contains("rsa-token"));
    let data = "Giấy chứng nhận quyền sử dụng đất".as_bytes();
    let sig = signer.sign_sha256(data).unwrap();
    assert!(verifies(&public, data, &sig));
    assert!(openssl_verifies(&hsm.dir, &public, data, &sig));
    assert!(!verifies(&public, b"other data", &sig));

    // The same key signing as a token without CKM_SHA256_RSA_PKCS would: PKCS#1 v1.5 is
    // deterministic, so the signature is the very same bytes.
    let raw = Pkcs11Signer::open(&config("rsa-token", "gateway", USER_PIN))
        .unwrap()
        .with_rsa_pkcs_over_digest_info();
    assert_eq!(raw.sign_sha256(data).unwrap(), sig);

    // As the gateway's identity, with its certificate.
    let (id, protection) = token_identity(&config("rsa-token", "gateway", USER_PIN), &dir.join("gateway.pem")).unwrap();
    assert!(protection.never_leaves_the_token());
    assert!(matches!(id.key, SigningKey::Token(_)));
    assert!(id.key.matches(&public).unwrap());
    let sig = id.key.sign_sha256(data).unwrap();
    assert!(verifies(&public, data, &sig));
    // With another certificate: refused, naming the key.
    let err = token_identity(&config("rsa-token", "gateway", USER_PIN), &dir.join("bank.pem"))
        .expect_err("the bank's certificate is not the token key's");
    assert!(matches!(err, TokenError::NotTheCertificatesKey { .. }), "{err}");
    assert_eq!(err.setting(), "signing.certificate");
}

#[test]
fn an_ec_key_generated_in_the_token_signs_der_ecdsa_openssl_verifies() {
    let Some(hsm) = in_child("an_ec_key_generated_in_the_token_signs_der_ecdsa_openssl_verifies") else {
        return;
    };
    hsm.init_token("ec-token");
    let public_der = hsm.generate_key("ec-token", "EC:prime256v1", "ec-key", "0e", false);
    let public = PKey::public_key_from_der(&public_der).unwrap();
    let access = hsm.private_key_access("ec-token", "ec-key");
    assert!(access.contains("never extractable"), "{access}");

    let signer = Pkcs11Signer::open(&config("ec-token", "ec-key", USER_PIN)).unwrap();
    assert_eq!(signer.algorithm(), KeyAlgorithm::EcdsaP256);
    assert!(signer.protection().never_leaves_the_token());
    for i in 0..3 {
        let data = format!("hồ sơ {i}");
        let sig = signer.sign_sha256(data.as_bytes()).unwrap();
        // DER Ecdsa-Sig-Value: a SEQUENCE, never the token's raw 64 bytes.
        assert_eq!(sig[0], 0x30, "{sig:02x?}");
        assert!(openssl::ecdsa::EcdsaSig::from_der(&sig).is_ok());
        assert!(verifies(&public, data.as_bytes(), &sig));
        assert!(openssl_verifies(&hsm.dir, &public, data.as_bytes(), &sig));
    }

    // A key made extractable is reported so (the gateway then warns at start-up).
    hsm.generate_key("ec-token", "EC:prime256v1", "loose-key", "0f", true);
    let access = hsm.private_key_access("ec-token", "loose-key");
    assert!(access.split(", ").any(|a| a == "extractable"), "{access}");
    let loose = Pkcs11Signer::open(&config("ec-token", "loose-key", USER_PIN)).unwrap();
    assert!(loose.protection().extractable, "{:?}", loose.protection());
    assert!(!loose.protection().never_leaves_the_token());
}

#[test]
fn opening_fails_naming_the_token_and_the_key() {
    let Some(hsm) = in_child("opening_fails_naming_the_token_and_the_key") else {
        return;
    };
    let (_pki, dir) = dev_pki(&hsm);
    hsm.init_token("main");
    hsm.import_key("main", &dir.join("gateway.key"), "gateway", "01");
    hsm.init_token("twice");
    hsm.import_key("twice", &dir.join("gateway.key"), "gateway", "01");
    hsm.import_key("twice", &dir.join("bank.key"), "gateway", "02");
    hsm.init_token("locked");
    hsm.import_key("locked", &dir.join("gateway.key"), "gateway", "01");
    // Locked before this process first loads the module, which then reads the flag.
    hsm.lock_user_pin("locked");

    let fails = |token: &str, key: &str, pin: &str| {
        let err = Pkcs11Signer::open(&config(token, key, pin)).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains(token) && text.contains(key), "{text}");
        assert!(!text.contains(pin), "{text}");
        err
    };
    let e = fails("main", "gateway", "999999");
    assert!(matches!(e, TokenError::PinIncorrect { .. }), "{e}");
    assert_eq!(e.setting(), "signing.pkcs11_pin");
    let e = fails("absent", "gateway", USER_PIN);
    assert!(matches!(e, TokenError::TokenNotFound { .. }), "{e}");
    assert_eq!(e.setting(), "signing.pkcs11_token");
    let e = fails("main", "absent-key", USER_PIN);
    assert!(matches!(e, TokenError::KeyNotFound { .. }), "{e}");
    assert_eq!(e.setting(), "signing.pkcs11_key_label");
    let e = fails("twice", "gateway", USER_PIN);
    assert!(matches!(e, TokenError::KeyAmbiguous { .. }), "{e}");
    let e = fails("locked", "gateway", USER_PIN);
    assert!(matches!(e, TokenError::PinLocked { .. }), "{e}");
    // The good settings still open after all that.
    assert!(Pkcs11Signer::open(&config("main", "gateway", USER_PIN)).is_ok());
}

#[test]
fn a_lost_token_is_unavailable_then_signs_again_when_it_is_back() {
    let Some(hsm) = in_child("a_lost_token_is_unavailable_then_signs_again_when_it_is_back") else {
        return;
    };
    let (pki, dir) = dev_pki(&hsm);
    hsm.init_token("usb");
    hsm.import_key("usb", &dir.join("gateway.key"), "gateway", "01");
    let public = pki.gateway.cert.public_key().unwrap();
    let signer = Pkcs11Signer::open(&config("usb", "gateway", USER_PIN))
        .unwrap()
        .expect_public_key(public.clone());
    assert!(verifies(&public, b"before", &signer.sign_sha256(b"before").unwrap()));

    let token_dir = hsm.token_dir("usb");
    let away = hsm.dir.join("away");
    std::fs::rename(&token_dir, &away).unwrap();
    for _ in 0..3 {
        match signer.sign_sha256(b"while away") {
            Err(SignError::Unavailable { key, reason }) => {
                assert!(key.contains("gateway") && key.contains("usb"), "{key}");
                assert!(!reason.contains(USER_PIN), "{reason}");
            }
            other => panic!("a lost token must be unavailable, not {other:?}"),
        }
    }

    std::fs::rename(&away, &token_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let sig = loop {
        match signer.sign_sha256(b"after") {
            Ok(sig) => break sig,
            Err(SignError::Unavailable { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("the token came back but signing still fails: {e}"),
        }
    };
    assert!(verifies(&public, b"after", &sig));
}
