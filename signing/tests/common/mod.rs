//! What the signature tests share, here and in the end-to-end signature API test (which takes
//! this file by `#[path]`): a fresh development PKI in a scratch folder, and the real tools
//! (`openssl`, `xmlsec1`) as judges. A missing tool fails the test rather than skipping it.
// Each test crate that takes this file uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hcc_signing::devpki::DevPki;
use hcc_signing::pki::TrustStore;

pub struct Pki {
    pub dir: PathBuf,
    pub pki: DevPki,
    pub trust: TrustStore,
}

pub fn pki() -> Pki {
    let mut tag = [0u8; 8];
    hcc_signing::random_bytes(&mut tag).unwrap();
    let dir = std::env::temp_dir().join(format!("hcc-sig-{:016x}", u64::from_le_bytes(tag)));
    let pki = DevPki::generate().unwrap();
    pki.write(&dir).unwrap();
    let trust = TrustStore::from_dir(&dir.join("trust")).unwrap();
    Pki { dir, pki, trust }
}

/// A P-256 signer issued by the development root, beside the RSA gateway identity.
pub fn ec_identity(p: &Pki) -> hcc_signing::pki::Identity {
    use hcc_signing::devpki::{CertSpec, KeyKind, Role, issue};
    let (key, cert) = issue(
        &CertSpec {
            common_name: "hcc-gateway EC (dev)",
            key: KeyKind::EcP256,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        Some((&p.pki.root, &p.pki.root_key)),
    )
    .unwrap();
    hcc_signing::pki::Identity {
        key: key.into(),
        cert,
        chain: vec![p.pki.root.clone()],
    }
}

/// `openssl cms -verify -binary -inform DER -content FILE -CAfile ROOT` (the contract's command)
/// on `sig` over `content`, written as `NAME.p7s` and `NAME.bin` in the PKI folder, with `extra`
/// arguments; whether openssl accepted it, and what it printed.
pub fn openssl_cms_verify(p: &Pki, sig: &[u8], content: &[u8], name: &str, extra: &[&str]) -> (bool, String) {
    let (sig_path, content_path) = (p.dir.join(format!("{name}.p7s")), p.dir.join(format!("{name}.bin")));
    std::fs::write(&sig_path, sig).unwrap();
    std::fs::write(&content_path, content).unwrap();
    let root = p.dir.join("root.pem");
    let mut args = vec![
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        s(&sig_path),
        "-content",
        s(&content_path),
        "-CAfile",
        s(&root),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-out", "/dev/null"]);
    run("openssl", &args)
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install it: see scripts/test.sh): {e}"));
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const TEMPLATE: &str = r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <ds:SignedInfo>
    <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
    <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
    <ds:Reference URI="">
      <ds:Transforms>
        <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      </ds:Transforms>
      <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
      <ds:DigestValue></ds:DigestValue>
    </ds:Reference>
  </ds:SignedInfo>
  <ds:SignatureValue/>
  <ds:KeyInfo><ds:X509Data/></ds:KeyInfo>
</ds:Signature>"#;

/// The document with an unsigned signature template as the root's last child.
fn with_template(xml: &[u8]) -> Vec<u8> {
    let doc = hcc_signing::xml::dom::parse(xml).unwrap();
    let mut out = Vec::new();
    if doc.root_empty {
        out.extend_from_slice(&xml[..doc.root_end]);
        out.extend_from_slice(format!(">{TEMPLATE}</{}>", doc.root.qname()).as_bytes());
        out.extend_from_slice(&xml[doc.root_end + 2..]);
    } else {
        out.extend_from_slice(&xml[..doc.root_end]);
        out.extend_from_slice(TEMPLATE.as_bytes());
        out.extend_from_slice(&xml[doc.root_end..]);
    }
    out
}

/// `xml` signed by `xmlsec1` with the development bank's key.
pub fn xmlsec_sign(p: &Pki, name: &str, xml: &[u8]) -> Vec<u8> {
    let tmpl = p.dir.join(format!("tmpl-{name}"));
    let out = p.dir.join(format!("xmlsec-{name}"));
    std::fs::write(&tmpl, with_template(xml)).unwrap();
    let keys = format!("{},{}", s(&p.dir.join("bank.key")), s(&p.dir.join("bank.pem")));
    let (ok, log) = run("xmlsec1", &["--sign", "--privkey-pem", &keys, "--output", s(&out), s(&tmpl)]);
    assert!(ok, "xmlsec1 could not sign {name}: {log}");
    std::fs::read(out).unwrap()
}

/// `xmlsec1`'s verdict on `signed`, trusting the development root.
pub fn xmlsec_verify(p: &Pki, name: &str, signed: &[u8]) -> (bool, String) {
    let path = p.dir.join(format!("gw-{name}"));
    std::fs::write(&path, signed).unwrap();
    run("xmlsec1", &["--verify", "--trusted-pem", s(&p.dir.join("root.pem")), s(&path)])
}

/// `doc` with the first `from` replaced by `to`; `from` must be there.
pub fn replace(doc: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(doc.to_vec()).unwrap();
    assert!(s.contains(from), "{from} not in document");
    s.replacen(from, to, 1).into_bytes()
}

/// `pdf` with an incremental update that redefines object `number` (generation 0) as `body`,
/// written by hand as any PDF editor would (a classic cross-reference section, `/Prev` the
/// last one). The fixture's catalog is object 1.
pub fn redefine_object(pdf: &[u8], number: u32, body: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(pdf);
    let at = text.rfind("startxref").unwrap() + "startxref".len();
    let prev: u64 = text[at..].split_whitespace().next().unwrap().parse().unwrap();
    let mut out = pdf.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let offset = out.len();
    out.extend_from_slice(format!("{number} 0 obj\n{body}\nendobj\n").as_bytes());
    let xref = out.len();
    out.extend_from_slice(
        format!(
            "xref\n0 1\n0000000000 65535 f \n{number} 1\n{offset:010} 00000 n \ntrailer\n<< /Size 1000 /Root 1 0 R /Prev {prev} >>\nstartxref\n{xref}\n%%EOF\n"
        )
        .as_bytes(),
    );
    out
}

/// The fixture's page content (object 4) as an editor would change it after signing.
pub const REVOKED_CONTENT: &str = "<< /Length 55 >>\nstream\nBT /F1 24 Tf 72 760 Td (REVOKED. Pay 9999999 VND) Tj ET\nendstream";
