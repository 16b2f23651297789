//! How a document is signed: the bank's usual signer, or (when a request names an algorithm)
//! `xmlsec1 --sign` on a template, as a third party would.

use std::path::PathBuf;

use hcc_signing::pki::Identity;

use super::{Credit, DSIG_NS, ENVELOPED, EXC_C14N, INC_C14N, RSA_SHA256, RSA_SHA512, SHA256, SHA512, Signing, XMLSEC_TIMEOUT};

pub(super) fn signing(c: &Credit) -> Result<Signing, String> {
    if c.c14n.is_none() && c.signature.is_none() && c.digest.is_none() {
        return Ok(Signing { xmlsec: None });
    }
    let c14n = match c.c14n.as_deref().unwrap_or("exclusive") {
        "exclusive" => EXC_C14N,
        "inclusive" => INC_C14N,
        "exclusive_prefixlist" => EXC_PREFIXLIST,
        other => return Err(format!("c14n {other:?}: exclusive, inclusive or exclusive_prefixlist")),
    };
    let (sig, default_digest) = match c.signature.as_deref().unwrap_or("rsa-sha256") {
        "rsa-sha256" => (RSA_SHA256, SHA256),
        "rsa-sha512" => (RSA_SHA512, SHA512),
        other => return Err(format!("signature {other:?}: rsa-sha256 or rsa-sha512")),
    };
    let digest = match c.digest.as_deref() {
        None => default_digest,
        Some("sha256") => SHA256,
        Some("sha512") => SHA512,
        Some(other) => return Err(format!("digest {other:?}: sha256 or sha512")),
    };
    Ok(Signing {
        xmlsec: Some((c14n, sig, digest)),
    })
}

/// Not an algorithm: the mock's name for exclusive C14N with an `InclusiveNamespaces
/// PrefixList`, as Apache Santuario (the Java default) writes it (payments notes, evidence
/// 2026-12). The document then carries, like a JAXB-marshalled one, a namespace declared on the
/// root that nothing uses ([`JAVA_NS`]); exclusive C14N keeps it only because it is listed.
const EXC_PREFIXLIST: &str = "exclusive_prefixlist";
/// The extra root declaration of [`EXC_PREFIXLIST`] documents.
const JAVA_NS: &str = "xmlns:ns2=\"urn:example:mock-bank:jaxb\"";

/// An unsigned XML-DSig template for `xmlsec1 --sign`, as the root's last child. Inclusive:
/// the shape .NET's SignedXml writes (unprefixed, only the enveloped transform, so the
/// reference is canonicalized by XML-DSig's default, inclusive C14N).
fn template(c14n: &str, sig: &str, digest: &str) -> String {
    if c14n == EXC_PREFIXLIST {
        let list = |l: &str| format!("<ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N}\" PrefixList=\"{l}\"/>");
        return format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\">{si}</ds:CanonicalizationMethod>\
             <ds:SignatureMethod Algorithm=\"{sig}\"/><ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"/>\
             <ds:Transform Algorithm=\"{EXC_C14N}\">{r}</ds:Transform></ds:Transforms>\
             <ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>\
             <ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>",
            si = list("#default"),
            r = list("ns2 #default"),
        );
    }
    let (p, decl, transform) = if c14n == INC_C14N {
        ("", format!("xmlns=\"{DSIG_NS}\""), String::new())
    } else {
        (
            "ds:",
            format!("xmlns:ds=\"{DSIG_NS}\""),
            format!("<ds:Transform Algorithm=\"{EXC_C14N}\"/>"),
        )
    };
    format!(
        "<{p}Signature {decl}><{p}SignedInfo><{p}CanonicalizationMethod Algorithm=\"{c14n}\"/><{p}SignatureMethod Algorithm=\"{sig}\"/>\
         <{p}Reference URI=\"\"><{p}Transforms><{p}Transform Algorithm=\"{ENVELOPED}\"/>{transform}</{p}Transforms>\
         <{p}DigestMethod Algorithm=\"{digest}\"/><{p}DigestValue/></{p}Reference></{p}SignedInfo><{p}SignatureValue/>\
         <{p}KeyInfo><{p}X509Data/></{p}KeyInfo></{p}Signature>"
    )
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Signs with `xmlsec1 --sign`, the bank key and certificate written to a scratch folder.
pub(super) async fn xmlsec_sign(xml: &str, signer: &Identity, algorithms: (&str, &str, &str)) -> Result<String, String> {
    let at = xml.rfind("</Document>").ok_or("the document has no </Document>")?;
    let mut tmpl = format!("{}{}{}", &xml[..at], template(algorithms.0, algorithms.1, algorithms.2), &xml[at..]);
    if algorithms.0 == EXC_PREFIXLIST {
        tmpl = tmpl.replacen("<Document xmlns=", &format!("<Document {JAVA_NS} xmlns="), 1);
    }
    let dir = Scratch(std::env::temp_dir().join(format!("mock-bank-{}-{}", std::process::id(), fastrand::u64(..))));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let hcc_signing::key::SigningKey::Software(key) = &signer.key else {
        return Err("xmlsec1 needs the bank's key as a file: a token key cannot be used here".into());
    };
    let key = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
    let cert = signer.cert.to_pem().map_err(|e| e.to_string())?;
    let (key_path, cert_path, tmpl_path, out_path) = (
        dir.0.join("key.pem"),
        dir.0.join("cert.pem"),
        dir.0.join("tmpl.xml"),
        dir.0.join("out.xml"),
    );
    for (p, b) in [(&key_path, &key), (&cert_path, &cert), (&tmpl_path, &tmpl.clone().into_bytes())] {
        std::fs::write(p, b).map_err(|e| e.to_string())?;
    }
    let keys = format!("{},{}", key_path.display(), cert_path.display());
    let run = tokio::process::Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &keys, "--output"])
        .arg(&out_path)
        .arg(&tmpl_path)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(XMLSEC_TIMEOUT, run).await {
        Err(_) => return Err("xmlsec1 --sign timed out".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("this signing variant needs xmlsec1 (apt-get install -y xmlsec1), which is not installed".into());
        }
        Ok(Err(e)) => return Err(format!("cannot run xmlsec1: {e}")),
        Ok(Ok(o)) => o,
    };
    if !out.status.success() {
        return Err(format!("xmlsec1 --sign failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::read_to_string(&out_path).map_err(|e| e.to_string())
}
