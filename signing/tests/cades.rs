//! CAdES signatures and RFC 3161 timestamps judged by OpenSSL's command line: what
//! `cades::sign` makes verifies with `openssl cms -verify` and shows its ESS
//! signing-certificate-v2; tokens made by `openssl ts -reply` are accepted by `tsp`, embedded by
//! `with_timestamp`, verified by `openssl ts -verify`, and checked by `cades::verify`; a token
//! for something else is refused; what `openssl cms -sign -cades` makes verifies here.

mod common;

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use common::{Pki, ec_identity, openssl_cms_verify, pki, run, s};
use der::{Any, Decode, Encode};
use hcc_signing::cades;
use hcc_signing::devpki::{CertSpec, KeyKind, Role, issue};
use hcc_signing::tsp::{TimestampRequest, TspError};

/// An OpenSSL TSA configuration in the PKI folder, signing with the dev TSA (`tsa.key`,
/// `tsa.pem`) or, with `self_signed`, with a TSA certificate no trust store knows.
fn tsa_config(p: &Pki, self_signed: bool) -> std::path::PathBuf {
    let (cert, key) = if self_signed {
        let (key, cert) = issue(
            &CertSpec {
                common_name: "Stranger TSA",
                key: KeyKind::Rsa2048,
                role: Role::Tsa,
                from_days: -1,
                to_days: 30,
            },
            None,
        )
        .unwrap();
        std::fs::write(p.dir.join("stranger-tsa.pem"), cert.to_pem().unwrap()).unwrap();
        std::fs::write(p.dir.join("stranger-tsa.key"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        ("stranger-tsa.pem", "stranger-tsa.key")
    } else {
        ("tsa.pem", "tsa.key")
    };
    let cnf = p.dir.join(format!("tsa-{cert}.cnf"));
    std::fs::write(p.dir.join("tsaserial"), "01\n").unwrap();
    std::fs::write(
        &cnf,
        format!(
            "[ tsa ]\ndefault_tsa = t\n[ t ]\ndir = {dir}\nserial = $dir/tsaserial\nsigner_cert = $dir/{cert}\n\
             certs = $dir/{cert}\nsigner_key = $dir/{key}\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.32473.1.1\n\
             digests = sha256\naccuracy = secs:1\nclock_precision_digits = 3\ness_cert_id_alg = sha256\n",
            dir = s(&p.dir)
        ),
    )
    .unwrap();
    cnf
}

/// `openssl ts -reply` on the DER request `query`: the whole `TimeStampResp`.
fn openssl_ts_reply(p: &Pki, cnf: &std::path::Path, query: &[u8], name: &str) -> Vec<u8> {
    let (q, r) = (p.dir.join(format!("{name}.tsq")), p.dir.join(format!("{name}.tsr")));
    std::fs::write(&q, query).unwrap();
    let (ok, log) = run("openssl", &["ts", "-reply", "-config", s(cnf), "-queryfile", s(&q), "-out", s(&r)]);
    assert!(ok, "openssl ts -reply: {log}");
    std::fs::read(r).unwrap()
}

/// A token over SHA-256 of `data` from OpenSSL's TSA, through our request and acceptance.
fn token_for(p: &Pki, cnf: &std::path::Path, data: &[u8], name: &str) -> Vec<u8> {
    let req = TimestampRequest::for_data(data).unwrap();
    req.accept(&openssl_ts_reply(p, cnf, req.der(), name)).unwrap()
}

#[test]
fn cades_by_the_gateway_verifies_with_openssl_rsa_and_ecdsa() {
    let p = pki();
    let content = "Giấy chứng nhận quyền sử dụng đất\r\n\x00\x01".as_bytes();
    for (name, id) in [("rsa", &p.pki.gateway), ("ec", &ec_identity(&p))] {
        let sig = cades::sign(id, content).unwrap();
        let (ok, log) = openssl_cms_verify(&p, sig.to_der(), content, name, &["-purpose", "any"]);
        assert!(ok, "openssl refused the gateway's {name} CAdES signature: {log}");
        let (ok, printed) = run(
            "openssl",
            &[
                "cms",
                "-cmsout",
                "-print",
                "-inform",
                "DER",
                "-in",
                s(&p.dir.join(format!("{name}.p7s"))),
            ],
        );
        assert!(ok, "{printed}");
        for wanted in ["signingCertificateV2", "signingTime", "messageDigest", "contentType", "sha256"] {
            assert!(printed.contains(wanted), "{name}: {wanted} not in\n{printed}");
        }
        // The judge is awake: one changed byte of content and openssl refuses.
        let mut tampered = content.to_vec();
        tampered[3] ^= 1;
        let (ok, _) = openssl_cms_verify(&p, sig.to_der(), &tampered, &format!("{name}-tampered"), &["-purpose", "any"]);
        assert!(!ok, "openssl accepted tampered content");
        let v = cades::verify(sig.to_der(), &tampered, &p.trust).unwrap();
        assert!(!v.valid && !v.trusted, "{v:?}");
        let v = cades::verify(sig.to_der(), content, &p.trust).unwrap();
        assert!(v.valid && v.trusted && v.timestamp.is_none(), "{v:?}");
        assert!(v.signer.unwrap().subject.contains("hcc-gateway"));
    }
}

#[test]
fn a_signature_timestamp_from_openssl_ts_is_embedded_and_checked_by_both_sides() {
    let p = pki();
    let cnf = tsa_config(&p, false);
    let content = b"Quyet dinh 123/QD-UBND";
    let sig = cades::sign(&p.pki.gateway, content).unwrap();
    let token = token_for(&p, &cnf, sig.signature_value(), "sv");

    // openssl ts -verify agrees the token covers the signature value and chains to the root.
    let (tok_path, sv_path) = (p.dir.join("sv.tst"), p.dir.join("sv.bin"));
    std::fs::write(&tok_path, &token).unwrap();
    std::fs::write(&sv_path, sig.signature_value()).unwrap();
    let root = p.dir.join("root.pem");
    let (ok, log) = run(
        "openssl",
        &[
            "ts",
            "-verify",
            "-data",
            s(&sv_path),
            "-in",
            s(&tok_path),
            "-token_in",
            "-CAfile",
            s(&root),
        ],
    );
    assert!(ok, "openssl ts -verify refused the token: {log}");
    let (ok, _) = run(
        "openssl",
        &[
            "ts",
            "-verify",
            "-data",
            s(&p.dir.join("root.pem")),
            "-in",
            s(&tok_path),
            "-token_in",
            "-CAfile",
            s(&root),
        ],
    );
    assert!(!ok, "openssl ts -verify accepted the token for other data");

    let stamped = sig.with_timestamp(&token).unwrap();
    // Still a valid CMS signature for openssl (the token is an unsigned attribute)...
    let (ok, log) = openssl_cms_verify(&p, stamped.to_der(), content, "stamped", &["-purpose", "any"]);
    assert!(ok, "{log}");
    let (_, printed) = run(
        "openssl",
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", s(&p.dir.join("stamped.p7s"))],
    );
    assert!(printed.contains("id-smime-aa-timeStampToken"), "{printed}");
    // ...and for us, with a valid, trusted timestamp whose time is near now.
    let v = cades::verify(stamped.to_der(), content, &p.trust).unwrap();
    assert!(v.valid && v.trusted, "{v:?}");
    let ts = v.timestamp.clone().unwrap();
    assert!(ts.valid && ts.trusted, "{ts:?}");
    assert!(ts.time.ends_with('Z') && ts.time.len() >= 20, "{}", ts.time);
    assert_eq!(
        ts.time[..16],
        v.signed_at.clone().unwrap()[..16],
        "genTime and signingTime differ a lot: {v:?}"
    );
    // Tampered content: the signature is invalid whatever the timestamp says.
    let v = cades::verify(stamped.to_der(), b"Quyet dinh 124/QD-UBND", &p.trust).unwrap();
    assert!(!v.valid);
}

/// `der` with its SignerInfo's unsigned attributes' token value replaced by `token`.
fn swap_token(der_bytes: &[u8], token: &[u8]) -> Vec<u8> {
    let mut ci = ContentInfo::from_der(der_bytes).unwrap();
    let mut sd: SignedData = ci.content.decode_as().unwrap();
    let mut infos = sd.signer_infos.0.into_vec();
    let attrs = infos[0].unsigned_attrs.take().unwrap();
    let mut attrs = attrs.into_vec();
    attrs[0].values = der::asn1::SetOfVec::try_from(vec![Any::from_der(token).unwrap()]).unwrap();
    infos[0].unsigned_attrs = Some(der::asn1::SetOfVec::try_from(attrs).unwrap());
    sd.signer_infos = cms::signed_data::SignerInfos::try_from(infos).unwrap();
    ci.content = Any::encode_from(&sd).unwrap();
    ci.to_der().unwrap()
}

#[test]
fn a_token_for_something_else_or_from_a_stranger_is_refused() {
    let p = pki();
    let cnf = tsa_config(&p, false);
    let sig = cades::sign(&p.pki.gateway, b"A").unwrap();
    let other = cades::sign(&p.pki.gateway, b"B").unwrap();
    let wrong = token_for(&p, &cnf, other.signature_value(), "other");
    // with_timestamp refuses a token whose imprint is not this signature value.
    let e = sig.clone().with_timestamp(&wrong).unwrap_err();
    assert!(e.to_string().contains("does not cover"), "{e}");

    // Smuggled in anyway: verify says the timestamp is not valid (the signature still is).
    let right = token_for(&p, &cnf, sig.signature_value(), "right");
    let stamped = sig.clone().with_timestamp(&right).unwrap();
    let smuggled = swap_token(stamped.to_der(), &wrong);
    let v = cades::verify(&smuggled, b"A", &p.trust).unwrap();
    assert!(v.valid, "{v:?}");
    let ts = v.timestamp.clone().unwrap();
    assert!(!ts.valid && !ts.trusted, "{v:?}");
    assert!(v.reason.unwrap().contains("timestamp"));

    // A token made by a TSA the trust store does not know: valid, not trusted.
    let stranger = tsa_config(&p, true);
    let token = token_for(&p, &stranger, sig.signature_value(), "stranger");
    let v = cades::verify(sig.with_timestamp(&token).unwrap().to_der(), b"A", &p.trust).unwrap();
    assert!(v.valid && v.trusted, "{v:?}");
    let ts = v.timestamp.unwrap();
    assert!(ts.valid && !ts.trusted, "{ts:?}");
}

#[test]
fn tsp_accepts_only_the_answer_to_its_own_request() {
    let p = pki();
    let cnf = tsa_config(&p, false);
    let mine = TimestampRequest::for_data(b"mine").unwrap();
    let theirs = TimestampRequest::for_data(b"theirs").unwrap();
    let same_data = TimestampRequest::for_data(b"mine").unwrap();
    let answer = openssl_ts_reply(&p, &cnf, mine.der(), "mine");
    mine.accept(&answer).unwrap();
    assert_eq!(theirs.accept(&answer).unwrap_err(), TspError::ImprintMismatch);
    // Same imprint, another nonce: a replayed answer.
    assert_eq!(same_data.accept(&answer).unwrap_err(), TspError::NonceMismatch);
    // A request for a digest the authority does not offer: openssl's own rejection.
    let q = p.dir.join("sha1.tsq");
    let data = p.dir.join("root.pem");
    let (ok, log) = run("openssl", &["ts", "-query", "-data", s(&data), "-sha1", "-cert", "-out", s(&q)]);
    assert!(ok, "{log}");
    let answer = openssl_ts_reply(&p, &cnf, &std::fs::read(&q).unwrap(), "sha1");
    assert!(
        matches!(mine.accept(&answer), Err(TspError::Rejected { .. })),
        "{:?}",
        mine.accept(&answer)
    );
    // Our request is one openssl reads back as we meant it.
    std::fs::write(p.dir.join("mine.tsq"), mine.der()).unwrap();
    let (ok, text) = run("openssl", &["ts", "-query", "-in", s(&p.dir.join("mine.tsq")), "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("sha256") && text.contains("Certificate required: yes"), "{text}");
    // openssl prints the imprint as "0000 - 98 ea 6e 4f ...": our SHA-256 of the data.
    let d = hcc_signing::sha256(b"mine");
    let first = format!("0000 - {:02x} {:02x} {:02x} {:02x}", d[0], d[1], d[2], d[3]);
    assert!(text.contains(&first), "{first} not in {text}");
    assert!(text.contains("Nonce: 0x"), "{text}");
}

#[test]
fn cades_made_by_openssl_cms_sign_verifies_here() {
    let p = pki();
    let content = p.dir.join("c.txt");
    std::fs::write(&content, b"camt.054 2026-11-26").unwrap();
    let out = p.dir.join("openssl-cades.p7s");
    let (ok, log) = run(
        "openssl",
        &[
            "cms",
            "-sign",
            "-cades",
            "-binary",
            "-md",
            "sha256",
            "-in",
            s(&content),
            "-signer",
            s(&p.dir.join("bank.pem")),
            "-inkey",
            s(&p.dir.join("bank.key")),
            "-outform",
            "DER",
            "-out",
            s(&out),
        ],
    );
    assert!(ok, "{log}");
    let der = std::fs::read(&out).unwrap();
    let (_, printed) = run("openssl", &["cms", "-cmsout", "-print", "-inform", "DER", "-in", s(&out)]);
    assert!(
        printed.contains("signingCertificateV2"),
        "openssl -cades made no ESS v2:\n{printed}"
    );
    let v = cades::verify(&der, b"camt.054 2026-11-26", &p.trust).unwrap();
    assert!(v.valid && v.trusted, "{v:?}");
    assert!(v.signed_at.is_some());
    assert!(v.signer.unwrap().subject.contains("Dev Bank"));
    let v = cades::verify(&der, b"camt.054 2026-11-27", &p.trust).unwrap();
    assert!(!v.valid);
}
