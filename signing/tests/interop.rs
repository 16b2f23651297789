//! Signatures judged by the real tools, on the signing library alone: whatever it signs must
//! verify with the `openssl` and `xmlsec1` command lines, and whatever they sign must verify
//! here; forged, tampered, expired, revoked and misused signatures are refused with their reason.
//! The fixtures are the repository's (`tests/fixtures/xml`). The signature API over HTTP is
//! tested end to end in the `hcc-tests` crate.

mod common;

use common::{Pki, ec_identity, openssl_cms_verify, pki, replace, run, s, xmlsec_sign, xmlsec_verify};
use hcc_signing::devpki::{CertSpec, KeyKind, Role, issue};
use hcc_signing::pki::{CertError, Identity, TrustStore};
use hcc_signing::xml::dom::XmlError;
use hcc_signing::xml::dsig::{DsigError, XmlTrust, sign_enveloped, verify_enveloped};
use hcc_signing::{cades, cms};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/xml");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(FIXTURES).join(name)).unwrap_or_else(|e| panic!("{FIXTURES}/{name}: {e}"))
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(FIXTURES).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v.into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn cms_signed_by_the_gateway_verifies_with_openssl_rsa_and_ecdsa() {
    let p = pki();
    let content = p.dir.join("content.bin");
    std::fs::write(
        &content,
        "Kết quả giải quyết hồ sơ 000.00.22.H46-241125-0001\r\n\x00binary\x01".as_bytes(),
    )
    .unwrap();
    for (name, id) in [("rsa", &p.pki.gateway), ("ec", &ec_identity(&p))] {
        let data = std::fs::read(&content).unwrap();
        let sig = cades::sign_detached(id, &data).unwrap();
        let (ok, out) = openssl_cms_verify(&p, &sig, &data, name, &[]);
        assert!(ok, "openssl refused the gateway's {name} CMS signature: {out}");
        let sig_path = p.dir.join(format!("{name}.p7s"));
        // And openssl sees SHA-256.
        let (_, printed) = run("openssl", &["cms", "-cmsout", "-print", "-inform", "DER", "-in", s(&sig_path)]);
        assert!(printed.contains("sha256"), "{printed}");
    }
}

#[test]
fn cms_signed_by_openssl_verifies_in_the_gateway_rsa_and_ecdsa() {
    let p = pki();
    let content = b"camt.054 batch 2024-11-26".to_vec();
    let content_path = p.dir.join("c.txt");
    std::fs::write(&content_path, &content).unwrap();
    let ec = ec_identity(&p);
    std::fs::write(p.dir.join("ec.pem"), ec.cert.to_pem().unwrap()).unwrap();
    let hcc_signing::key::SigningKey::Software(ec_key) = &ec.key else {
        unreachable!()
    };
    std::fs::write(p.dir.join("ec.key"), ec_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    for (cert, key) in [("bank.pem", "bank.key"), ("ec.pem", "ec.key")] {
        let out_path = p.dir.join(format!("{cert}.p7s"));
        let (ok, out) = run(
            "openssl",
            &[
                "cms",
                "-sign",
                "-binary",
                "-md",
                "sha256",
                "-in",
                s(&content_path),
                "-signer",
                s(&p.dir.join(cert)),
                "-inkey",
                s(&p.dir.join(key)),
                "-outform",
                "DER",
                "-out",
                s(&out_path),
            ],
        );
        assert!(ok, "{out}");
        let v = cms::verify_detached(&std::fs::read(&out_path).unwrap(), &content, &p.trust).unwrap();
        assert!(v.valid && v.trusted, "{cert}: {v:?}");
        assert!(v.signer.unwrap().subject.contains("CN="));
        // One changed byte and it is no longer valid.
        let mut tampered = content.clone();
        tampered[0] ^= 1;
        let v = cms::verify_detached(&std::fs::read(&out_path).unwrap(), &tampered, &p.trust).unwrap();
        assert!(!v.valid && !v.trusted);
    }
}

#[test]
fn cms_from_an_untrusted_or_expired_signer_is_valid_but_not_trusted() {
    let p = pki();
    let (key, cert) = issue(
        &CertSpec {
            common_name: "self-signed",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        None,
    )
    .unwrap();
    let v = cms::verify_detached(
        &cades::sign_detached(
            &Identity {
                key: key.into(),
                cert,
                chain: vec![],
            },
            b"x",
        )
        .unwrap(),
        b"x",
        &p.trust,
    )
    .unwrap();
    assert!(v.valid && !v.trusted);
    assert!(v.reason.unwrap().contains("trusted root"));
    let (key, cert) = issue(
        &CertSpec {
            common_name: "expired",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -30,
            to_days: -1,
        },
        Some((&p.pki.root, &p.pki.root_key)),
    )
    .unwrap();
    let v = cms::verify_detached(
        &cades::sign_detached(
            &Identity {
                key: key.into(),
                cert,
                chain: vec![],
            },
            b"x",
        )
        .unwrap(),
        b"x",
        &p.trust,
    )
    .unwrap();
    assert!(v.valid && !v.trusted);
    assert!(v.reason.unwrap().contains("expired"));
    assert!(cms::verify_detached(b"not der", b"x", &p.trust).is_err());
}

#[test]
fn pkcs12_loads_and_a_wrong_password_says_so() {
    let p = pki();
    let der = std::fs::read(p.dir.join("gateway.p12")).unwrap();
    let id = Identity::from_pkcs12_der(&der, hcc_signing::devpki::DEV_PKCS12_PASSWORD).unwrap();
    assert_eq!(id.cert.to_der().unwrap(), p.pki.gateway.cert.to_der().unwrap());
    assert_eq!(
        Identity::from_pkcs12_der(&der, "wrong").unwrap_err(),
        hcc_signing::pki::KeyError::WrongPassword
    );
    // openssl reads the same file with the same password.
    let (ok, out) = run(
        "openssl",
        &[
            "pkcs12",
            "-in",
            s(&p.dir.join("gateway.p12")),
            "-passin",
            &format!("pass:{}", hcc_signing::devpki::DEV_PKCS12_PASSWORD),
            "-nokeys",
            "-noout",
        ],
    );
    assert!(ok, "{out}");
    // PEM works too.
    let pem = Identity::from_pem(
        &std::fs::read(p.dir.join("gateway.key")).unwrap(),
        &std::fs::read(p.dir.join("gateway.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(pem.cert.to_der().unwrap(), id.cert.to_der().unwrap());
}

#[test]
fn xmldsig_by_the_gateway_verifies_with_xmlsec1_on_every_fixture() {
    let p = pki();
    let docs = fixtures();
    assert!(docs.len() >= 10);
    for (name, xml) in docs {
        let signed = sign_enveloped(&xml, &p.pki.gateway).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (ok, log) = xmlsec_verify(&p, &name, &signed);
        assert!(ok, "xmlsec1 refused the gateway's signature on {name}: {log}");
        // And our own verifier agrees.
        verify_enveloped(&signed, &XmlTrust::Store(&p.trust)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The judge is awake: one changed character inside the signed content and it refuses.
        let text = String::from_utf8(signed.clone()).unwrap();
        let at = text.find("<ds:Signature").unwrap();
        let tampered = text[..at].replacen('>', " data-x=\"1\">", 1) + &text[at..];
        if tampered.contains("data-x") && !name.starts_with("09") {
            let (ok, _) = xmlsec_verify(&p, &format!("tampered-{name}"), tampered.as_bytes());
            assert!(!ok, "xmlsec1 accepted a tampered {name}");
        }
    }
}

#[test]
fn xmldsig_by_xmlsec1_verifies_in_the_gateway_on_every_fixture() {
    let p = pki();
    for (name, xml) in fixtures() {
        let signed = xmlsec_sign(&p, &name, &xml);
        let v = verify_enveloped(
            &signed,
            &XmlTrust::Pinned {
                cert: &p.pki.bank.cert,
                store: Some(&p.trust),
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v.signer.subject.contains("Dev Bank"), "{name}");
        verify_enveloped(&signed, &XmlTrust::Store(&p.trust)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn camt(p: &Pki) -> Vec<u8> {
    let xml = fixture("01-camt054-v08.xml");
    xmlsec_sign(p, "camt-neg.xml", &xml)
}

fn bank_trust(p: &Pki) -> XmlTrust<'_> {
    XmlTrust::Pinned {
        cert: &p.pki.bank.cert,
        store: Some(&p.trust),
    }
}

#[test]
fn xmldsig_negative_cases_are_refused_with_their_reason() {
    let p = pki();
    let signed = camt(&p);
    let trust = bank_trust(&p);
    assert!(verify_enveloped(&signed, &trust).is_ok());

    // A tampered byte of content, and a tampered attribute.
    let err = verify_enveloped(
        &replace(&signed, "<Amt Ccy=\"VND\">100000</Amt>", "<Amt Ccy=\"VND\">900000</Amt>"),
        &trust,
    )
    .unwrap_err();
    assert_eq!(err, DsigError::DigestMismatch);
    let err = verify_enveloped(&replace(&signed, "<Amt Ccy=\"VND\">", "<Amt Ccy=\"USD\">"), &trust).unwrap_err();
    assert_eq!(err, DsigError::DigestMismatch);
    // SignedInfo itself altered (digest algorithm text kept, reference URI changed to a root id would not match).
    let err = verify_enveloped(&replace(&signed, "<ds:DigestValue>", "<ds:DigestValue>AAAA"), &trust).unwrap_err();
    assert!(
        matches!(
            err,
            DsigError::DigestMismatch | DsigError::BadBase64(_) | DsigError::SignatureMismatch
        ),
        "{err}"
    );

    // A moved signature: inside a child instead of at the root.
    let text = String::from_utf8(signed.clone()).unwrap();
    let start = text.find("<ds:Signature").unwrap();
    let end = text.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &text[start..end];
    let moved = format!("{}{}", &text[..start], &text[end..]).replacen("<GrpHdr>", &format!("<GrpHdr>{sig}"), 1);
    assert_eq!(verify_enveloped(moved.as_bytes(), &trust).unwrap_err(), DsigError::NotEnveloped);

    // Wrapping: the signed document tucked inside a forged one with a second signature.
    let wrapped = format!(
        "<Wrapper>{}<Forged/></Wrapper>",
        text.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
    );
    assert_eq!(verify_enveloped(wrapped.as_bytes(), &trust).unwrap_err(), DsigError::NotEnveloped);
    let two = text.replacen("</Document>", &format!("{sig}</Document>"), 1);
    assert_eq!(verify_enveloped(two.as_bytes(), &trust).unwrap_err(), DsigError::MultipleSignatures);
    // Wrapping through IDs: a reference to an element that is not the root, duplicate IDs.
    let by_id = replace(&signed, "<GrpHdr>", "<GrpHdr Id=\"h1\">");
    let by_id = String::from_utf8(by_id).unwrap().replacen("URI=\"\"", "URI=\"#h1\"", 1);
    assert_eq!(
        verify_enveloped(by_id.as_bytes(), &trust).unwrap_err(),
        DsigError::ReferenceNotRoot("#h1".into())
    );
    let dup = replace(&signed, "<GrpHdr>", "<GrpHdr Id=\"x\"><MsgId Id=\"x\"/>");
    assert_eq!(verify_enveloped(&dup, &trust).unwrap_err(), DsigError::DuplicateId("x".into()));

    // A DOCTYPE with entities.
    let doctype = replace(&signed, "<Document ", "<!DOCTYPE Document [<!ENTITY x \"y\">]><Document ");
    assert_eq!(verify_enveloped(&doctype, &trust).unwrap_err(), DsigError::Xml(XmlError::Doctype));

    // The wrong bank's certificate: signed by the gateway key, checked against the bank.
    let xml = fixture("02-camt054-v02.xml");
    let other_bank = sign_enveloped(&xml, &p.pki.gateway).unwrap();
    assert_eq!(
        verify_enveloped(&other_bank, &trust).unwrap_err(),
        DsigError::Certificate(CertError::NotTheConfiguredCertificate)
    );

    // A self-signed certificate not in the trust store.
    let (key, cert) = issue(
        &CertSpec {
            common_name: "Dev Bank host-to-host",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        None,
    )
    .unwrap();
    let forged = sign_enveloped(
        &xml,
        &Identity {
            key: key.into(),
            cert,
            chain: vec![],
        },
    )
    .unwrap();
    assert_eq!(
        verify_enveloped(&forged, &XmlTrust::Store(&p.trust)).unwrap_err(),
        DsigError::Certificate(CertError::Untrusted)
    );

    // An expired certificate, even from the right root.
    let (key, cert) = issue(
        &CertSpec {
            common_name: "expired bank",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -60,
            to_days: -1,
        },
        Some((&p.pki.root, &p.pki.root_key)),
    )
    .unwrap();
    let old = sign_enveloped(
        &xml,
        &Identity {
            key: key.into(),
            cert: cert.clone(),
            chain: vec![],
        },
    )
    .unwrap();
    assert_eq!(
        verify_enveloped(&old, &XmlTrust::Store(&p.trust)).unwrap_err(),
        DsigError::Certificate(CertError::Expired)
    );
    assert_eq!(
        verify_enveloped(
            &old,
            &XmlTrust::Pinned {
                cert: &cert,
                store: Some(&p.trust)
            }
        )
        .unwrap_err(),
        DsigError::Certificate(CertError::Expired)
    );

    // A certificate whose key usage forbids signing.
    let (key, cert) = issue(
        &CertSpec {
            common_name: "encipher only",
            key: KeyKind::Rsa2048,
            role: Role::EnciphermentOnly,
            from_days: -1,
            to_days: 30,
        },
        Some((&p.pki.root, &p.pki.root_key)),
    )
    .unwrap();
    let wrong_use = sign_enveloped(
        &xml,
        &Identity {
            key: key.into(),
            cert,
            chain: vec![],
        },
    )
    .unwrap();
    assert_eq!(
        verify_enveloped(&wrong_use, &XmlTrust::Store(&p.trust)).unwrap_err(),
        DsigError::Certificate(CertError::WrongKeyUsage)
    );

    // No signature at all.
    assert_eq!(verify_enveloped(&xml, &trust).unwrap_err(), DsigError::NoSignature);
}

#[test]
fn a_revoked_certificate_is_refused_when_the_trust_folder_holds_a_crl() {
    let p = pki();
    let d = &p.dir;
    std::fs::write(d.join("root.key"), p.pki.root_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    let cnf = format!(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ndefault_md = sha256\ndefault_crl_days = 30\n",
        s(&d.join("index.txt")),
        s(&d.join("crlnumber"))
    );
    std::fs::write(d.join("ca.cnf"), cnf).unwrap();
    let (cnf_path, key_path, root_path) = (d.join("ca.cnf"), d.join("root.key"), d.join("root.pem"));
    let ca = |extra: &[&str]| {
        let mut args = vec!["ca", "-config", s(&cnf_path), "-keyfile", s(&key_path), "-cert", s(&root_path)];
        args.extend_from_slice(extra);
        run("openssl", &args)
    };
    let (ok, log) = ca(&["-revoke", s(&d.join("bank.pem"))]);
    assert!(ok, "{log}");
    let crl = d.join("trust").join("root.crl");
    let (ok, log) = ca(&["-gencrl", "-out", s(&crl)]);
    assert!(ok, "{log}");
    let with_crl = TrustStore::from_dir(&d.join("trust")).unwrap();
    // Twice each: the second answer may come from the store's memory of trusted chains, and
    // must be the same.
    for _ in 0..2 {
        assert_eq!(with_crl.check(&p.pki.bank.cert, &[]), Err(CertError::Revoked));
        assert_eq!(
            with_crl.check(&p.pki.gateway.cert, &[]),
            Ok(()),
            "an unrevoked certificate still passes"
        );
    }
    // Without the CRL the same certificate passes: the refusal really comes from the CRL.
    std::fs::remove_file(&crl).unwrap();
    assert_eq!(TrustStore::from_dir(&d.join("trust")).unwrap().check(&p.pki.bank.cert, &[]), Ok(()));
}

#[test]
fn a_pinned_certificate_without_a_trust_store_must_still_be_in_date() {
    let p = pki();
    let (key, cert) = issue(
        &CertSpec {
            common_name: "expired pinned bank",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -60,
            to_days: -1,
        },
        None,
    )
    .unwrap();
    let xml = fixture("02-camt054-v02.xml");
    let signed = sign_enveloped(
        &xml,
        &Identity {
            key: key.into(),
            cert: cert.clone(),
            chain: vec![],
        },
    )
    .unwrap();
    assert_eq!(
        verify_enveloped(&signed, &XmlTrust::Pinned { cert: &cert, store: None }).unwrap_err(),
        DsigError::Certificate(CertError::Expired)
    );
    let fresh = sign_enveloped(&xml, &p.pki.bank).unwrap();
    assert!(
        verify_enveloped(
            &fresh,
            &XmlTrust::Pinned {
                cert: &p.pki.bank.cert,
                store: None
            }
        )
        .is_ok()
    );
}
