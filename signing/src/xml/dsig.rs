//! Enveloped XML-DSig: exclusive C14N 1.0, RSA-SHA256, SHA-256 digests, the signer's X.509
//! certificate in `KeyInfo`, as banks sign ISO 20022 documents and as `xmlsec1` checks them.
//!
//! Verification is strict about what it accepts, because the verified element must be the
//! element that is processed: exactly one signature, a direct child of the document root; one
//! reference, to the whole document (`URI=""`) or to the root's own ID; no duplicate IDs; only
//! the algorithms above. The signing key comes from configuration (a pinned certificate or a
//! certificate that chains to the trust store), never from the message alone.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;

use super::c14n::{self, Scope, element_ns};
use super::dom::{self, Document, Element, XmlError};
use crate::pki::{CertError, Identity, SignerInfo, TrustStore, signer_info};

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DsigError {
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("the document carries no XML signature")]
    NoSignature,
    #[error("signature wrapping refused: the document carries more than one signature")]
    MultipleSignatures,
    #[error("signature wrapping refused: the signature is not a direct child of the document root")]
    NotEnveloped,
    #[error("signature wrapping refused: the ID {0:?} appears more than once")]
    DuplicateId(String),
    #[error("signature wrapping refused: the reference {0:?} does not cover the document root")]
    ReferenceNotRoot(String),
    #[error("the signature must have exactly one reference")]
    ReferenceCount,
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("the signature lacks {0}")]
    Missing(&'static str),
    #[error("{0} is not valid base64")]
    BadBase64(&'static str),
    #[error("the certificate in KeyInfo cannot be read")]
    BadCertificate,
    #[error("certificate refused: {0}")]
    Certificate(CertError),
    #[error("the digest does not match: the signed content was altered")]
    DigestMismatch,
    #[error("the signature value does not verify: SignedInfo was altered or another key signed")]
    SignatureMismatch,
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// Where the signing key's authority comes from.
pub enum XmlTrust<'a> {
    /// Any certificate that chains to the store (the signature API).
    Store(&'a TrustStore),
    /// Exactly this certificate (a configured bank's), which must also chain to the store when
    /// one is given.
    Pinned { cert: &'a X509, store: Option<&'a TrustStore> },
}

/// A verified document: process `document.root`, nothing else.
#[derive(Debug)]
pub struct VerifiedXml {
    pub signer: SignerInfo,
    pub document: Document,
}

fn opensslerr(e: openssl::error::ErrorStack) -> DsigError {
    DsigError::Sign(e.to_string())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    crate::sha256(data)
}

/// Signs `xml` with an enveloped signature appended as the root's last child. The rest of the
/// document is left byte for byte as it was.
pub fn sign_enveloped(xml: &[u8], id: &Identity) -> Result<Vec<u8>, DsigError> {
    if id.key.rsa().is_err() {
        return Err(DsigError::UnsupportedAlgorithm(
            "XML-DSig signing needs an RSA key (rsa-sha256)".into(),
        ));
    }
    let doc = dom::parse(xml)?;
    if find_signatures(&doc).iter().any(|_| true) {
        return Err(DsigError::Sign("the document is already signed".into()));
    }
    let digest = STANDARD.encode(sha256(&c14n::document(&doc, None)));
    let signed_info = format!(
        "<ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/><ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"/>\
         <ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"/><ds:Transform Algorithm=\"{EXC_C14N}\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"{SHA256}\"/><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>"
    );
    // Canonicalize SignedInfo exactly as a verifier will find it: inside ds:Signature.
    let probe = format!("<ds:Signature xmlns:ds=\"{DSIG_NS}\">{signed_info}</ds:Signature>");
    let probe = dom::parse(probe.as_bytes())?;
    let si = probe.root.child_elements().next().ok_or(DsigError::Missing("SignedInfo"))?;
    let canonical = c14n::subtree(si, &probe.root.ns_decls, None);
    let mut signer = Signer::new(MessageDigest::sha256(), &id.key).map_err(opensslerr)?;
    signer.update(&canonical).map_err(opensslerr)?;
    let value = STANDARD.encode(signer.sign_to_vec().map_err(opensslerr)?);
    let cert = STANDARD.encode(id.cert.to_der().map_err(opensslerr)?);
    let signature = format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\">{signed_info}<ds:SignatureValue>{value}</ds:SignatureValue>\
         <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
    );
    let mut out = Vec::with_capacity(xml.len() + signature.len() + 64);
    if doc.root_empty {
        // `<root .../>` becomes `<root ...>SIGNATURE</root>`.
        out.extend_from_slice(&xml[..doc.root_end]);
        out.push(b'>');
        out.extend_from_slice(signature.as_bytes());
        out.extend_from_slice(format!("</{}>", doc.root.qname()).as_bytes());
        out.extend_from_slice(&xml[doc.root_end + 2..]);
    } else {
        out.extend_from_slice(&xml[..doc.root_end]);
        out.extend_from_slice(signature.as_bytes());
        out.extend_from_slice(&xml[doc.root_end..]);
    }
    Ok(out)
}

/// Every `ds:Signature` in the document with its depth (0 = the root itself).
fn find_signatures(doc: &Document) -> Vec<(usize, &Element)> {
    fn walk<'a>(e: &'a Element, depth: usize, scope: &mut Scope, out: &mut Vec<(usize, &'a Element)>) {
        let mark = scope.len();
        scope.extend(e.ns_decls.iter().cloned());
        if e.local == "Signature" && element_ns(e, scope) == DSIG_NS {
            out.push((depth, e));
        }
        for c in e.child_elements() {
            walk(c, depth + 1, scope, out);
        }
        scope.truncate(mark);
    }
    let mut out = Vec::new();
    walk(&doc.root, 0, &mut Vec::new(), &mut out);
    out
}

fn collect_ids<'a>(e: &'a Element, seen: &mut std::collections::HashSet<&'a str>) -> Result<(), DsigError> {
    for a in &e.attrs {
        if a.prefix.is_none() && matches!(a.local.as_str(), "Id" | "ID" | "id") && !seen.insert(a.value.as_str()) {
            return Err(DsigError::DuplicateId(a.value.clone()));
        }
    }
    for c in e.child_elements() {
        collect_ids(c, seen)?;
    }
    Ok(())
}

/// The one child element named `local` in the signature namespace.
fn child<'a>(e: &'a Element, scope: &Scope, local: &'static str) -> Result<(&'a Element, Scope), DsigError> {
    let mut found = None;
    for c in e.child_elements() {
        let mut s = scope.clone();
        s.extend(c.ns_decls.iter().cloned());
        if c.local == local && element_ns(c, &s) == DSIG_NS {
            if found.is_some() {
                return Err(DsigError::Missing(local));
            }
            found = Some((c, s));
        }
    }
    found.ok_or(DsigError::Missing(local))
}

fn algorithm(e: &Element) -> &str {
    e.attr("Algorithm").unwrap_or("")
}

fn base64(text: &str, what: &'static str) -> Result<Vec<u8>, DsigError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| DsigError::BadBase64(what))
}

pub fn verify_enveloped(xml: &[u8], trust: &XmlTrust<'_>) -> Result<VerifiedXml, DsigError> {
    verify_with(xml, |embedded| authorised_certificate(trust, embedded))
}

/// What the signature API reports: is the signature valid for the key in `KeyInfo`, and
/// does that key's certificate chain to the trust store. Only `trusted` means anything for
/// acting on the document; `valid` alone says the bytes are intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub valid: bool,
    pub trusted: bool,
    pub signer: Option<SignerInfo>,
    pub reason: Option<String>,
}

pub fn report(xml: &[u8], store: &TrustStore) -> Report {
    let mut candidate: Option<(X509, Vec<X509>)> = None;
    let checked = verify_with(xml, |embedded| {
        let first = embedded.first().ok_or(DsigError::Missing("an X509Certificate in KeyInfo"))?;
        candidate = Some((first.clone(), embedded[1..].to_vec()));
        Ok(first.clone())
    });
    match (checked, candidate) {
        (Ok(v), Some((cert, rest))) => match store.check(&cert, &rest) {
            Ok(()) => Report {
                valid: true,
                trusted: true,
                signer: Some(v.signer),
                reason: None,
            },
            Err(e) => Report {
                valid: true,
                trusted: false,
                signer: Some(v.signer),
                reason: Some(format!("signature is valid but not trusted: {e}")),
            },
        },
        (Err(e), cert) => Report {
            valid: false,
            trusted: false,
            signer: cert.map(|(c, _)| signer_info(&c)),
            reason: Some(e.to_string()),
        },
        (Ok(_), None) => Report {
            valid: false,
            trusted: false,
            signer: None,
            reason: Some("no certificate".into()),
        },
    }
}

fn verify_with(xml: &[u8], authorise: impl FnOnce(&[X509]) -> Result<X509, DsigError>) -> Result<VerifiedXml, DsigError> {
    let doc = dom::parse(xml)?;
    let signatures = find_signatures(&doc);
    let (depth, sig) = match signatures.as_slice() {
        [] => return Err(DsigError::NoSignature),
        [one] => *one,
        _ => return Err(DsigError::MultipleSignatures),
    };
    if depth != 1 {
        return Err(DsigError::NotEnveloped);
    }
    collect_ids(&doc.root, &mut Default::default())?;

    let mut scope: Scope = doc.root.ns_decls.clone();
    scope.extend(sig.ns_decls.iter().cloned());
    let (signed_info, si_scope) = child(sig, &scope, "SignedInfo")?;
    let (c14n_method, _) = child(signed_info, &si_scope, "CanonicalizationMethod")?;
    if algorithm(c14n_method) != EXC_C14N {
        return Err(DsigError::UnsupportedAlgorithm(algorithm(c14n_method).into()));
    }
    let (sig_method, _) = child(signed_info, &si_scope, "SignatureMethod")?;
    if algorithm(sig_method) != RSA_SHA256 {
        return Err(DsigError::UnsupportedAlgorithm(algorithm(sig_method).into()));
    }
    let references: Vec<&Element> = signed_info.child_elements().filter(|c| c.local == "Reference").collect();
    let [reference] = references.as_slice() else {
        return Err(DsigError::ReferenceCount);
    };
    let uri = reference.attr("URI").unwrap_or("");
    let root_id = ["Id", "ID", "id"].iter().find_map(|k| doc.root.attr(k));
    let covers_root = uri.is_empty() || uri.strip_prefix('#').is_some_and(|id| Some(id) == root_id);
    if !covers_root {
        return Err(DsigError::ReferenceNotRoot(uri.to_string()));
    }
    let mut ref_scope = si_scope.clone();
    ref_scope.extend(reference.ns_decls.iter().cloned());
    let mut enveloped = false;
    if let Ok((transforms, t_scope)) = child(reference, &ref_scope, "Transforms") {
        for t in transforms.child_elements() {
            let mut s = t_scope.clone();
            s.extend(t.ns_decls.iter().cloned());
            if t.local != "Transform" || element_ns(t, &s) != DSIG_NS {
                return Err(DsigError::UnsupportedAlgorithm(format!("transform element {}", t.qname())));
            }
            if t.child_elements().next().is_some() {
                return Err(DsigError::UnsupportedAlgorithm(
                    "transform parameters (e.g. InclusiveNamespaces)".into(),
                ));
            }
            match algorithm(t) {
                ENVELOPED => enveloped = true,
                EXC_C14N => {}
                other => return Err(DsigError::UnsupportedAlgorithm(other.into())),
            }
        }
    }
    if !enveloped {
        return Err(DsigError::Missing("the enveloped-signature transform"));
    }
    let (digest_method, _) = child(reference, &ref_scope, "DigestMethod")?;
    if algorithm(digest_method) != SHA256 {
        return Err(DsigError::UnsupportedAlgorithm(algorithm(digest_method).into()));
    }
    let (digest_value, _) = child(reference, &ref_scope, "DigestValue")?;
    let claimed_digest = base64(&digest_value.text(), "DigestValue")?;
    let (sig_value, _) = child(sig, &scope, "SignatureValue")?;
    let signature = base64(&sig_value.text(), "SignatureValue")?;

    let embedded: Vec<X509> = match child(sig, &scope, "KeyInfo") {
        Ok((key_info, ki_scope)) => match child(key_info, &ki_scope, "X509Data") {
            Ok((data, _)) => data
                .child_elements()
                .filter(|c| c.local == "X509Certificate")
                .map(|c| base64(&c.text(), "X509Certificate").and_then(|der| X509::from_der(&der).map_err(|_| DsigError::BadCertificate)))
                .collect::<Result<_, _>>()?,
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    let signer_cert = authorise(&embedded)?;
    let public: PKey<Public> = signer_cert.public_key().map_err(|_| DsigError::BadCertificate)?;

    let actual = sha256(&c14n::document(&doc, Some(sig)));
    if !crate::ct_eq(&actual, &claimed_digest) {
        return Err(DsigError::DigestMismatch);
    }
    let canonical_si = c14n::subtree(signed_info, &scope, None);
    let mut verifier = Verifier::new(MessageDigest::sha256(), &public).map_err(|_| DsigError::SignatureMismatch)?;
    let ok = verifier
        .update(&canonical_si)
        .and_then(|_| verifier.verify(&signature))
        .unwrap_or(false);
    if !ok {
        return Err(DsigError::SignatureMismatch);
    }
    let signer = signer_info(&signer_cert);
    Ok(VerifiedXml { signer, document: doc })
}

/// The certificate whose key may have signed, decided by configuration.
fn authorised_certificate(trust: &XmlTrust<'_>, embedded: &[X509]) -> Result<X509, DsigError> {
    match trust {
        XmlTrust::Pinned { cert, store } => {
            let pinned_der = cert.to_der().map_err(|_| DsigError::BadCertificate)?;
            if let Some(first) = embedded.first() {
                let der = first.to_der().map_err(|_| DsigError::BadCertificate)?;
                if !crate::ct_eq(&der, &pinned_der) {
                    return Err(DsigError::Certificate(CertError::NotTheConfiguredCertificate));
                }
            }
            match store {
                Some(s) => s.check(cert, embedded).map_err(DsigError::Certificate)?,
                None => {
                    crate::pki::check_validity(cert).map_err(DsigError::Certificate)?;
                    crate::pki::check_key_usage(cert).map_err(DsigError::Certificate)?;
                }
            }
            Ok((*cert).clone())
        }
        XmlTrust::Store(store) => {
            let first = embedded.first().ok_or(DsigError::Missing("an X509Certificate in KeyInfo"))?;
            store.check(first, &embedded[1..]).map_err(DsigError::Certificate)?;
            Ok(first.clone())
        }
    }
}
