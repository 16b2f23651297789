//! Interoperability with `xmlsec1`, the reference implementation: documents it signs with
//! the algorithms banks use (inclusive C14N, rsa-sha512, sha512 digests, an unprefixed .NET
//! style `Signature`) verify here, and one changed byte makes them fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::devpki::DevPki;

const DOC_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xml:lang=\"vi\"{ID}>\n\
  <BkToCstmrDbtCdtNtfctn>\n\
<GrpHdr><MsgId>VCB20261125000001</MsgId><CreDtTm>2026-11-25T09:15:00+07:00</CreDtTm></GrpHdr>\n\
<Ntfctn><Id>N1</Id><Acct><Id><Othr><Id>0011004123456</Id></Othr></Id><Ccy>VND</Ccy></Acct>\n\
  <Ntry><Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\n\
    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd>\n\
    <NtryDtls><TxDtls><Refs><AcctSvcrRef>FT26329ABC</AcctSvcrRef><EndToEndId>HCC261125AB12CD34</EndToEndId></Refs>\n\
      <Amt Ccy=\"VND\">100000</Amt><RmtInf><Ustrd>HCC261125AB12CD34 lệ phí cấp GCN &amp; &lt;hồ sơ&gt;</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n\
</Ntfctn>\n\
  </BkToCstmrDbtCdtNtfctn>\n";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup() -> (Dir, DevPki, TrustStore) {
    let mut r = [0u8; 8];
    crate::random_bytes(&mut r).unwrap();
    let dir = std::env::temp_dir().join(format!("hcc-dsig-{}-{}", std::process::id(), hex::encode(r)));
    let pki = DevPki::generate().unwrap();
    pki.write(&dir).unwrap();
    let trust = TrustStore::from_dir(&dir.join("trust")).unwrap();
    (Dir(dir), pki, trust)
}

fn xmlsec1(args: &[&str]) -> (bool, String) {
    let out = Command::new("xmlsec1")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xmlsec1 (apt-get install -y xmlsec1): {e}"));
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// An unsigned signature template for xmlsec1: `si` canonicalizes SignedInfo, `transform`
/// follows the enveloped transform (None: no C14N transform at all).
fn template(prefix: &str, si: &str, sig: &str, transform: Option<&str>, digest: &str, uri: &str) -> String {
    let (p, decl) = if prefix.is_empty() {
        (String::new(), format!("xmlns=\"{DSIG_NS}\""))
    } else {
        (format!("{prefix}:"), format!("xmlns:{prefix}=\"{DSIG_NS}\""))
    };
    let t = transform
        .map(|t| format!("\n        <{p}Transform Algorithm=\"{t}\"/>"))
        .unwrap_or_default();
    format!(
        "<{p}Signature {decl}>\n  <{p}SignedInfo>\n    <{p}CanonicalizationMethod Algorithm=\"{si}\"/>\n    \
         <{p}SignatureMethod Algorithm=\"{sig}\"/>\n    <{p}Reference URI=\"{uri}\">\n      <{p}Transforms>\n        \
         <{p}Transform Algorithm=\"{ENVELOPED}\"/>{t}\n      </{p}Transforms>\n      <{p}DigestMethod Algorithm=\"{digest}\"/>\n      \
         <{p}DigestValue/>\n    </{p}Reference>\n  </{p}SignedInfo>\n  <{p}SignatureValue/>\n  \
         <{p}KeyInfo><{p}X509Data/></{p}KeyInfo>\n</{p}Signature>"
    )
}

fn xmlsec_sign(dir: &Path, name: &str, doc: &str, extra: &[&str]) -> Vec<u8> {
    let tmpl = dir.join(format!("{name}.tmpl.xml"));
    let out = dir.join(format!("{name}.signed.xml"));
    std::fs::write(&tmpl, doc).unwrap();
    let keys = format!("{},{}", dir.join("bank.key").display(), dir.join("bank.pem").display());
    let mut args = vec!["--sign", "--privkey-pem", &keys];
    args.extend_from_slice(extra);
    let (out_s, tmpl_s) = (out.display().to_string(), tmpl.display().to_string());
    args.extend_from_slice(&["--output", &out_s, &tmpl_s]);
    let (ok, log) = xmlsec1(&args);
    assert!(ok, "xmlsec1 could not sign {name}: {log}");
    std::fs::read(out).unwrap()
}

fn tamper(doc: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(doc.to_vec()).unwrap();
    assert!(s.contains(from), "{from:?} is not in the document");
    s.replacen(from, to, 1).into_bytes()
}

#[test]
fn documents_signed_by_xmlsec1_verify_with_every_accepted_algorithm() {
    let (dir, pki, trust) = setup();
    let pinned = XmlTrust::Pinned {
        cert: &pki.bank.cert,
        store: Some(&trust),
    };
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>, &'a str);
    let cases: [Case<'_>; 7] = [
        // (name, prefix, SignedInfo C14N, signature, reference C14N transform, digest)
        ("inc-sha512", "ds", C14N, RSA_SHA512, Some(C14N), SHA512),
        ("inc-sha512-no-c14n-transform", "ds", C14N, RSA_SHA512, None, SHA256),
        ("inc-dotnet-unprefixed", "", C14N, RSA_SHA256, None, SHA256),
        ("inc-unprefixed-sha512", "", C14N, RSA_SHA512, Some(C14N), SHA512),
        ("exc-sha256", "ds", EXC_C14N, RSA_SHA256, Some(EXC_C14N), SHA256),
        ("exc-unprefixed-sha512", "", EXC_C14N, RSA_SHA512, Some(EXC_C14N), SHA512),
        ("mixed", "ds", C14N, RSA_SHA256, Some(EXC_C14N), SHA512),
    ];
    for (name, prefix, si, sig, transform, digest) in cases {
        let doc = format!(
            "{}{}</Document>\n",
            DOC_HEAD.replace("{ID}", ""),
            template(prefix, si, sig, transform, digest, "")
        );
        let signed = xmlsec_sign(&dir.0, name, &doc, &[]);
        let v = verify_enveloped(&signed, &pinned).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v.signer.subject.contains("Dev Bank"), "{name}");
        assert_eq!(v.document.root.local, "Document");
        verify_enveloped(&signed, &XmlTrust::Store(&trust)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // One byte of content changed: the digest no longer matches.
        let amount = tamper(&signed, ">100000</Amt>", ">900000</Amt>");
        assert_eq!(verify_enveloped(&amount, &pinned).unwrap_err(), DsigError::DigestMismatch, "{name}");
        let remittance = tamper(&signed, "lệ phí", "lệ phi");
        assert_eq!(
            verify_enveloped(&remittance, &pinned).unwrap_err(),
            DsigError::DigestMismatch,
            "{name}"
        );
        // The root's xml:lang is signed content (and, inclusive, inherited into the canonical
        // SignedInfo, which is checked by every inclusive case verifying at all).
        let lang = tamper(&signed, "xml:lang=\"vi\"", "xml:lang=\"en\"");
        let err = verify_enveloped(&lang, &pinned).unwrap_err();
        assert!(
            matches!(err, DsigError::DigestMismatch | DsigError::SignatureMismatch),
            "{name}: {err}"
        );
        // SignedInfo changed while the content is intact (a space inside it): the digest
        // still matches, the signature value no longer does.
        let text = String::from_utf8(signed.clone()).unwrap();
        let si = format!(
            "<{}SignedInfo>",
            if prefix.is_empty() { String::new() } else { format!("{prefix}:") }
        );
        let forged = text.replacen(&si, &format!("{si} "), 1);
        assert_ne!(forged, text, "{name}");
        assert_eq!(
            verify_enveloped(forged.as_bytes(), &pinned).unwrap_err(),
            DsigError::SignatureMismatch,
            "{name}"
        );
        // xmlsec1 agrees with itself on the untampered document, and refuses the tampered one.
        let path = dir.0.join(format!("{name}.check.xml"));
        let root = dir.0.join("root.pem").display().to_string();
        std::fs::write(&path, &signed).unwrap();
        let (ok, log) = xmlsec1(&["--verify", "--trusted-pem", &root, &path.display().to_string()]);
        assert!(ok, "{name}: {log}");
        std::fs::write(&path, &amount).unwrap();
        assert!(
            !xmlsec1(&["--verify", "--trusted-pem", &root, &path.display().to_string()]).0,
            "{name}"
        );
    }
}

#[test]
fn a_reference_to_the_root_id_verifies_without_the_prolog() {
    let (dir, pki, _) = setup();
    let pinned = XmlTrust::Pinned {
        cert: &pki.bank.cert,
        store: None,
    };
    let doc = format!(
        "<?xml version=\"1.0\"?>\n<?bank batch=\"7\"?>\n{}{}</Document>\n",
        DOC_HEAD
            .replace("{ID}", " Id=\"doc1\"")
            .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        template("ds", C14N, RSA_SHA512, None, SHA512, "#doc1")
    );
    let signed = xmlsec_sign(&dir.0, "by-id", &doc, &["--id-attr:Id", "Document"]);
    verify_enveloped(&signed, &pinned).unwrap();
    // The processing instruction before the root is outside "#doc1": changing it is harmless.
    verify_enveloped(&tamper(&signed, "batch=\"7\"", "batch=\"8\""), &pinned).unwrap();
    assert_eq!(
        verify_enveloped(&tamper(&signed, ">100000</Amt>", ">100001</Amt>"), &pinned).unwrap_err(),
        DsigError::DigestMismatch
    );
}

/// Exclusive C14N with an `InclusiveNamespaces PrefixList`, as Apache Santuario writes it,
/// on the reference's transform and on `SignedInfo`. The root declares `bk`, used only in
/// an attribute value (a QName), so exclusive C14N without the list would drop it: with the
/// list it is signed content, and changing that one declaration breaks the signature for
/// the gateway and for xmlsec1 alike.
#[test]
fn an_inclusive_prefix_list_is_canonicalized_as_xmlsec1_signs_it() {
    let (dir, pki, _) = setup();
    let pinned = XmlTrust::Pinned {
        cert: &pki.bank.cert,
        store: None,
    };
    let root = dir.0.join("root.pem").display().to_string();
    let ec = |list: &str| format!("><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"{list}\"/>");
    let head = DOC_HEAD
        .replace("{ID}", " xmlns:bk=\"urn:example:bank-extension\"")
        .replace("<RmtInf>", "<RmtInf xsi:type=\"bk:Remittance\">");
    for (name, ref_list, si_list) in [
        ("prefixlist-ref", "bk #default", None),
        ("prefixlist-both", "bk xsi", Some("xsi #default")),
    ] {
        let mut tmpl = template("ds", EXC_C14N, RSA_SHA256, Some(EXC_C14N), SHA256, "");
        let t = format!("<ds:Transform Algorithm=\"{EXC_C14N}\"/>");
        tmpl = tmpl.replacen(
            &t,
            &format!("<ds:Transform Algorithm=\"{EXC_C14N}\"{}</ds:Transform>", ec(ref_list)),
            1,
        );
        if let Some(list) = si_list {
            let m = format!("<ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>");
            tmpl = tmpl.replacen(
                &m,
                &format!(
                    "<ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"{}</ds:CanonicalizationMethod>",
                    ec(list)
                ),
                1,
            );
        }
        let signed = xmlsec_sign(&dir.0, name, &format!("{head}{tmpl}</Document>\n"), &[]);
        assert!(String::from_utf8_lossy(&signed).contains("PrefixList"), "{name}");
        verify_enveloped(&signed, &pinned).unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = dir.0.join(format!("{name}.check.xml"));
        std::fs::write(&path, &signed).unwrap();
        let (ok, log) = xmlsec1(&["--verify", "--trusted-pem", &root, &path.display().to_string()]);
        assert!(ok, "{name}: {log}");
        // The list makes a difference: the canonical form keeps bk only with it.
        let doc = dom::parse(&signed).unwrap();
        let with = c14n::document_with_prefixes(Method::Exclusive, &["bk".into()], &doc, None);
        let without = c14n::document_with(Method::Exclusive, &doc, None);
        let has_bk = |b: &[u8]| String::from_utf8_lossy(b).contains("xmlns:bk=");
        assert!(has_bk(&with) && !has_bk(&without), "{name}");
        // One namespace declaration changed: refused here and by xmlsec1.
        let changed = tamper(&signed, "urn:example:bank-extension", "urn:example:bank-other");
        assert_eq!(
            verify_enveloped(&changed, &pinned).unwrap_err(),
            DsigError::DigestMismatch,
            "{name}"
        );
        std::fs::write(&path, &changed).unwrap();
        assert!(
            !xmlsec1(&["--verify", "--trusted-pem", &root, &path.display().to_string()]).0,
            "{name}"
        );
    }
}

#[test]
fn the_gateway_still_signs_exclusive_rsa_sha256_and_xmlsec1_agrees() {
    let (dir, pki, trust) = setup();
    let doc = format!("{}</Document>\n", DOC_HEAD.replace("{ID}", ""));
    let signed = sign_enveloped(doc.as_bytes(), &pki.gateway).unwrap();
    let text = String::from_utf8(signed.clone()).unwrap();
    assert!(text.contains(&format!("<ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>")));
    assert!(text.contains(&format!("<ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"/>")));
    assert!(text.contains(&format!("<ds:DigestMethod Algorithm=\"{SHA256}\"/>")));
    verify_enveloped(&signed, &XmlTrust::Store(&trust)).unwrap();
    let path = dir.0.join("ours.xml");
    std::fs::write(&path, &signed).unwrap();
    let root = dir.0.join("root.pem").display().to_string();
    let (ok, log) = xmlsec1(&["--verify", "--trusted-pem", &root, &path.display().to_string()]);
    assert!(ok, "{log}");
}

#[test]
fn what_is_not_accepted_is_refused_by_name() {
    let (dir, pki, _) = setup();
    let pinned = XmlTrust::Pinned {
        cert: &pki.bank.cert,
        store: None,
    };
    let signed = xmlsec_sign(
        &dir.0,
        "base",
        &format!(
            "{}{}</Document>\n",
            DOC_HEAD.replace("{ID}", ""),
            template("ds", C14N, RSA_SHA512, Some(C14N), SHA512, "")
        ),
        &[],
    );
    verify_enveloped(&signed, &pinned).unwrap();
    let unsupported = |from: &str, to: &str| match verify_enveloped(&tamper(&signed, from, to), &pinned).unwrap_err() {
        DsigError::UnsupportedAlgorithm(a) => a,
        other => panic!("{to}: {other}"),
    };
    // SHA-1 and the with-comments variants are not accepted.
    let sha1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    assert_eq!(unsupported(RSA_SHA512, sha1), sha1);
    let with_comments = format!("{C14N}#WithComments");
    assert_eq!(
        unsupported(
            &format!("CanonicalizationMethod Algorithm=\"{C14N}\""),
            &format!("CanonicalizationMethod Algorithm=\"{with_comments}\"")
        ),
        with_comments
    );
    assert_eq!(
        unsupported(SHA512, "http://www.w3.org/2000/09/xmldsig#sha1"),
        "http://www.w3.org/2000/09/xmldsig#sha1"
    );
    // A C14N transform before the enveloped one, two C14N transforms, an XPath transform.
    let enveloped = format!("<ds:Transform Algorithm=\"{ENVELOPED}\"/>");
    let c14n_t = format!("<ds:Transform Algorithm=\"{C14N}\"/>");
    unsupported(&format!("{enveloped}\n        {c14n_t}"), &format!("{c14n_t}{enveloped}"));
    unsupported(&c14n_t, &format!("{c14n_t}{c14n_t}"));
    unsupported(
        &c14n_t,
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"/>",
    );
    // Parameters other than exclusive C14N's PrefixList are refused, not ignored: on
    // inclusive C14N, in another namespace, with another attribute, a token that is no
    // prefix, two parameters, or an XPath-like child.
    let si_c14n = format!("CanonicalizationMethod Algorithm=\"{C14N}\"/>");
    for param in [
        format!("Algorithm=\"{C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"xsi\"/>"),
        format!("Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"urn:other\" PrefixList=\"xsi\"/>"),
        format!("Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"xsi\" Extra=\"1\"/>"),
        format!("Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"x:y\"/>"),
        format!("Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\"/>"),
        format!(
            "Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"a\"/><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"b\"/>"
        ),
        format!("Algorithm=\"{EXC_C14N}#WithComments\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"xsi\"/>"),
    ] {
        unsupported(&si_c14n, &format!("CanonicalizationMethod {param}</ds:CanonicalizationMethod>"));
    }
    // No enveloped transform at all.
    assert_eq!(
        verify_enveloped(&tamper(&signed, &enveloped, ""), &pinned).unwrap_err(),
        DsigError::Missing("the enveloped-signature transform")
    );
    // A reference to something that is not the root.
    assert_eq!(
        verify_enveloped(&tamper(&signed, "URI=\"\"", "URI=\"#other\""), &pinned).unwrap_err(),
        DsigError::ReferenceNotRoot("#other".into())
    );
    // An EC certificate pinned for an RSA signature method.
    let (key, cert) = crate::devpki::issue(
        &crate::devpki::CertSpec {
            common_name: "EC bank",
            key: crate::devpki::KeyKind::EcP256,
            role: crate::devpki::Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        None,
    )
    .unwrap();
    drop(key);
    let no_keyinfo = String::from_utf8(signed.clone()).unwrap();
    let (a, b) = (no_keyinfo.find("<ds:KeyInfo>").unwrap(), no_keyinfo.find("</ds:KeyInfo>").unwrap());
    let no_keyinfo = format!("{}{}", &no_keyinfo[..a], &no_keyinfo[b + "</ds:KeyInfo>".len()..]);
    // Without KeyInfo the pinned certificate still decides...
    verify_enveloped(no_keyinfo.as_bytes(), &pinned).unwrap();
    // ...and an EC one cannot check an RSA signature.
    assert!(matches!(
        verify_enveloped(no_keyinfo.as_bytes(), &XmlTrust::Pinned { cert: &cert, store: None }).unwrap_err(),
        DsigError::UnsupportedAlgorithm(_)
    ));
}

#[test]
fn key_info_with_two_possible_signers_is_refused_and_a_chain_is_not() {
    let (_dir, pki, trust) = setup();
    let doc = format!("{}</Document>\n", DOC_HEAD.replace("{ID}", ""));
    let signed = String::from_utf8(sign_enveloped(doc.as_bytes(), &pki.gateway).unwrap()).unwrap();
    let b64 = |c: &X509| STANDARD.encode(c.to_der().unwrap());
    let with_certs = |extra: &str| signed.replacen("</ds:X509Certificate>", &format!("</ds:X509Certificate>{extra}"), 1);
    // Another end-entity certificate beside the signer's: refused, whoever comes first.
    let two = with_certs(&format!("<ds:X509Certificate>{}</ds:X509Certificate>", b64(&pki.bank.cert)));
    let r = report(two.as_bytes(), &trust);
    assert!(!r.valid && !r.trusted, "{r:?}");
    assert!(r.reason.as_deref().is_some_and(|m| m.contains("ambiguous")), "{r:?}");
    // The signer's chain after it is no ambiguity.
    let chained = with_certs(&format!("<ds:X509Certificate>{}</ds:X509Certificate>", b64(&pki.root)));
    let r = report(chained.as_bytes(), &trust);
    assert!(r.valid && r.trusted, "{r:?}");
}
