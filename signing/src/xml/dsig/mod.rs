//! Enveloped XML-DSig, as banks sign ISO 20022 documents and as `xmlsec1` checks them.
//!
//! **Signing** (the contract): exclusive C14N 1.0, RSA-SHA256, SHA-256 digests, the signer's
//! X.509 certificate in `KeyInfo`.
//!
//! **Verifying** accepts a little more, because banks' signers differ (docs/bank-xml.md):
//! `SignedInfo` canonicalized by exclusive C14N or inclusive C14N 1.0 (the .NET default);
//! `rsa-sha256` or `rsa-sha512`; `sha256` or `sha512` digests; and a reference whose transforms
//! are the enveloped-signature transform, optionally followed by one C14N transform (without one,
//! XML-DSig converts the node-set to octets with inclusive C14N 1.0). An exclusive C14N method
//! (on `SignedInfo` or as the reference's transform) may carry an `InclusiveNamespaces
//! PrefixList`, as Apache Santuario (the Java default) writes it; its prefixes are canonicalized
//! as the specification says. Nothing else: no `#WithComments`, no XPath, no other parameters,
//! no SHA-1.
//!
//! Verification is strict about what it accepts, because the verified element must be the
//! element that is processed: exactly one signature, a direct child of the document root; one
//! reference, to the whole document (`URI=""`) or to the root's own ID; no duplicate IDs. The
//! signing key comes from configuration (a pinned certificate or a certificate that chains to
//! the trust store), never from the message alone.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use openssl::x509::X509;

use super::c14n::{self, Ancestry, Bindings, Method, Scope};
use super::dom::{self, Document, Element, XmlError};
use crate::pki::{CertError, Identity, SignerInfo, TrustStore, signer_info};

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const EXC_C14N: &str = c14n::EXCLUSIVE;
/// Canonical XML 1.0 (inclusive), accepted when verifying.
pub const C14N: &str = c14n::INCLUSIVE;
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// Accepted when verifying.
pub const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// Accepted when verifying.
pub const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";

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
    #[error("the signer is ambiguous: {0}")]
    AmbiguousSigner(&'static str),
    #[error("certificate refused: {0}")]
    Certificate(CertError),
    #[error("the digest does not match: the signed content was altered")]
    DigestMismatch,
    #[error("the signature value does not verify: SignedInfo was altered or another key signed")]
    SignatureMismatch,
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("{0}")]
    Key(#[from] crate::key::SignError),
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
    if id.key.algorithm() != Some(crate::key::KeyAlgorithm::Rsa) {
        return Err(DsigError::UnsupportedAlgorithm(
            "XML-DSig signing needs an RSA key (rsa-sha256)".into(),
        ));
    }
    let doc = dom::parse(xml)?;
    if !find_signatures(&doc).is_empty() {
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
    let value = STANDARD.encode(id.key.sign_sha256(&canonical)?);
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
    fn walk<'a>(e: &'a Element, depth: usize, scope: &mut Bindings, out: &mut Vec<(usize, &'a Element)>) {
        scope.enter(e);
        if e.local == "Signature" && scope.element_ns(e) == DSIG_NS {
            out.push((depth, e));
        }
        for c in e.child_elements() {
            walk(c, depth + 1, scope, out);
        }
        scope.leave(e);
    }
    let mut out = Vec::new();
    walk(&doc.root, 0, &mut Bindings::default(), &mut out);
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
/// The namespace URI of `c`, a child of an element whose bindings are `scope`: its own
/// declarations first, without copying the scope.
fn child_ns<'a>(c: &'a Element, scope: &'a Scope) -> &'a str {
    let prefix = c.prefix.as_deref().unwrap_or("");
    c.ns_decls
        .iter()
        .rev()
        .chain(scope.iter().rev())
        .find(|(p, _)| p == prefix)
        .map(|(_, u)| u.as_str())
        .unwrap_or("")
}

/// The one child element named `local` in the signature namespace, with its scope.
fn child<'a>(e: &'a Element, scope: &Scope, local: &'static str) -> Result<(&'a Element, Scope), DsigError> {
    let mut found = None;
    for c in e.child_elements() {
        if c.local == local && child_ns(c, scope) == DSIG_NS {
            if found.is_some() {
                return Err(DsigError::Missing(local));
            }
            found = Some(c);
        }
    }
    let c = found.ok_or(DsigError::Missing(local))?;
    let mut s = scope.clone();
    s.extend(c.ns_decls.iter().cloned());
    Ok((c, s))
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

/// A digest algorithm accepted when verifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn md(self) -> MessageDigest {
        match self {
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha512 => MessageDigest::sha512(),
        }
    }

    fn digest(self, data: &[u8]) -> Result<Vec<u8>, DsigError> {
        openssl::hash::hash(self.md(), data)
            .map(|d| d.to_vec())
            .map_err(|e| DsigError::Sign(e.to_string()))
    }
}

fn signature_method(uri: &str) -> Result<Hash, DsigError> {
    match uri {
        RSA_SHA256 => Ok(Hash::Sha256),
        RSA_SHA512 => Ok(Hash::Sha512),
        other => Err(DsigError::UnsupportedAlgorithm(other.into())),
    }
}

fn digest_method(uri: &str) -> Result<Hash, DsigError> {
    match uri {
        SHA256 => Ok(Hash::Sha256),
        SHA512 => Ok(Hash::Sha512),
        other => Err(DsigError::UnsupportedAlgorithm(other.into())),
    }
}

/// A canonicalization and, for exclusive C14N, its `InclusiveNamespaces PrefixList` (`""`
/// standing for `#default`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Canonicalization {
    method: Method,
    prefixes: Vec<String>,
}

/// At most this many prefixes in a `PrefixList`: a real one names a handful.
const MAX_INCLUSIVE_PREFIXES: usize = 64;

/// An XML prefix as a `PrefixList` token may name it (an NCName, ASCII letters, digits, `-`,
/// `_`, `.`, and any non-ASCII letter, not starting with a digit, `-` or `.`).
fn is_prefix(t: &str) -> bool {
    let mut chars = t.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A canonicalization method element (`CanonicalizationMethod` or a `Transform`), whose own
/// bindings are `scope`. Exclusive C14N may carry exactly one parameter, `InclusiveNamespaces`
/// in the exclusive C14N namespace with a `PrefixList` of prefixes and `#default`; any other
/// parameter (or one on inclusive C14N) changes the output in ways not supported, so it is
/// refused rather than ignored.
fn c14n_method(e: &Element, scope: &Scope) -> Result<Canonicalization, DsigError> {
    let method = Method::from_uri(algorithm(e)).ok_or_else(|| DsigError::UnsupportedAlgorithm(algorithm(e).into()))?;
    let refused = || {
        DsigError::UnsupportedAlgorithm("canonicalization parameters other than an exclusive C14N InclusiveNamespaces PrefixList".into())
    };
    let params: Vec<&Element> = e.child_elements().collect();
    let prefixes = match params.as_slice() {
        [] => Vec::new(),
        [p] if method == Method::Exclusive
            && p.local == "InclusiveNamespaces"
            && child_ns(p, scope) == c14n::EXCLUSIVE
            && p.child_elements().next().is_none()
            && p.attrs.len() == 1 =>
        {
            let list = p.attr("PrefixList").ok_or_else(refused)?;
            let mut prefixes = Vec::new();
            for token in list.split_ascii_whitespace() {
                let prefix = match token {
                    "#default" => "",
                    t if is_prefix(t) => t,
                    _ => return Err(refused()),
                };
                if prefixes.len() == MAX_INCLUSIVE_PREFIXES {
                    return Err(refused());
                }
                if !prefixes.iter().any(|p| p == prefix) {
                    prefixes.push(prefix.to_string());
                }
            }
            prefixes
        }
        _ => return Err(refused()),
    };
    Ok(Canonicalization { method, prefixes })
}

/// The reference's transforms: the enveloped-signature transform first, then at most one
/// canonicalization. Without one, XML-DSig turns the node-set into octets with inclusive C14N.
fn reference_c14n(reference: &Element, ref_scope: &Scope) -> Result<Canonicalization, DsigError> {
    let (transforms, t_scope) =
        child(reference, ref_scope, "Transforms").map_err(|_| DsigError::Missing("the enveloped-signature transform"))?;
    if !transforms.child_elements().any(|t| algorithm(t) == ENVELOPED) {
        return Err(DsigError::Missing("the enveloped-signature transform"));
    }
    let mut enveloped = false;
    let mut method = None;
    for t in transforms.child_elements() {
        if t.local != "Transform" || child_ns(t, &t_scope) != DSIG_NS {
            return Err(DsigError::UnsupportedAlgorithm(format!("transform element {}", t.qname())));
        }
        if algorithm(t) == ENVELOPED && !enveloped && method.is_none() {
            if t.child_elements().next().is_some() {
                return Err(DsigError::UnsupportedAlgorithm("enveloped-signature transform parameters".into()));
            }
            enveloped = true;
        } else if enveloped && method.is_none() && Method::from_uri(algorithm(t)).is_some() {
            let mut t_own = t_scope.clone();
            t_own.extend(t.ns_decls.iter().cloned());
            method = Some(c14n_method(t, &t_own)?);
        } else {
            // Anything else, a repeat, or an order other than enveloped-then-C14N.
            return Err(DsigError::UnsupportedAlgorithm(format!("transform {} here", algorithm(t))));
        }
    }
    if !enveloped {
        return Err(DsigError::Missing("the enveloped-signature transform"));
    }
    Ok(method.unwrap_or(Canonicalization {
        method: Method::Inclusive,
        prefixes: Vec::new(),
    }))
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
    let (c14n_el, c14n_scope) = child(signed_info, &si_scope, "CanonicalizationMethod")?;
    let si_method = c14n_method(c14n_el, &c14n_scope)?;
    let (sig_method, _) = child(signed_info, &si_scope, "SignatureMethod")?;
    let sig_hash = signature_method(algorithm(sig_method))?;
    let references: Vec<&Element> = signed_info.child_elements().filter(|c| c.local == "Reference").collect();
    let [reference] = references.as_slice() else {
        return Err(DsigError::ReferenceCount);
    };
    let uri = reference.attr("URI").unwrap_or("");
    let root_id = ["Id", "ID", "id"].iter().find_map(|k| doc.root.attr(k));
    let by_id = uri.strip_prefix('#').is_some_and(|id| Some(id) == root_id);
    if !uri.is_empty() && !by_id {
        return Err(DsigError::ReferenceNotRoot(uri.to_string()));
    }
    let mut ref_scope = si_scope.clone();
    ref_scope.extend(reference.ns_decls.iter().cloned());
    let ref_method = reference_c14n(reference, &ref_scope)?;
    let (digest_el, _) = child(reference, &ref_scope, "DigestMethod")?;
    let digest_hash = digest_method(algorithm(digest_el))?;
    let (digest_value, _) = child(reference, &ref_scope, "DigestValue")?;
    let claimed_digest = base64(&digest_value.text(), "DigestValue")?;
    let (sig_value, _) = child(sig, &scope, "SignatureValue")?;
    let signature = base64(&sig_value.text(), "SignatureValue")?;

    let embedded: Vec<X509> = match child(sig, &scope, "KeyInfo") {
        Ok((key_info, ki_scope)) => match child(key_info, &ki_scope, "X509Data") {
            Ok((data, _)) => data
                .child_elements()
                .filter(|c| c.local == "X509Certificate")
                .map(|c| {
                    base64(&c.text(), "X509Certificate")
                        .and_then(|der| crate::pki::certificate_from_der(&der).map_err(|_| DsigError::BadCertificate))
                })
                .collect::<Result<_, _>>()?,
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    one_signer_in_key_info(&embedded)?;
    let signer_cert = authorise(&embedded)?;
    let public: PKey<Public> = signer_cert.public_key().map_err(|_| DsigError::BadCertificate)?;
    if public.rsa().is_err() {
        return Err(DsigError::UnsupportedAlgorithm("an RSA signature method with a non-RSA key".into()));
    }

    // The signature over SignedInfo first: it is small, and a document whose SignedInfo the
    // configured key did not sign is refused before its (possibly large) content is
    // canonicalized.
    let mut ancestry = Ancestry::default();
    ancestry.push(&doc.root);
    ancestry.push(sig);
    let canonical_si = c14n::subtree_with_prefixes(si_method.method, &si_method.prefixes, signed_info, &ancestry, None);
    let mut verifier = Verifier::new(sig_hash.md(), &public).map_err(|_| DsigError::SignatureMismatch)?;
    let ok = verifier
        .update(&canonical_si)
        .and_then(|_| verifier.verify(&signature))
        .unwrap_or(false);
    if !ok {
        return Err(DsigError::SignatureMismatch);
    }
    // URI="" is the whole document without comments (processing instructions outside the root
    // included); "#id" is the root element's subtree only. Either way without the signature.
    let content = if by_id {
        c14n::subtree_with_prefixes(ref_method.method, &ref_method.prefixes, &doc.root, &Ancestry::default(), Some(sig))
    } else {
        c14n::document_with_prefixes(ref_method.method, &ref_method.prefixes, &doc, Some(sig))
    };
    let actual = digest_hash.digest(&content)?;
    if !crate::ct_eq(&actual, &claimed_digest) {
        return Err(DsigError::DigestMismatch);
    }
    let signer = signer_info(&signer_cert);
    Ok(VerifiedXml { signer, document: doc })
}

/// `KeyInfo` names one signer: its first certificate, and every other certificate carried is an
/// issuer of another one there (a chain), so no verifier can take another certificate as the
/// signer. Issuers are matched by subject and issuer names as OpenSSL compares them (without
/// regard to case or spacing), which can only find more issuers, never fewer leaves.
fn one_signer_in_key_info(embedded: &[X509]) -> Result<(), DsigError> {
    let issues_another = |i: usize| {
        embedded.iter().enumerate().any(|(j, other)| {
            i != j
                && !matches!(
                    embedded[i].subject_name().try_cmp(other.issuer_name()),
                    Ok(o) if o != std::cmp::Ordering::Equal
                )
        })
    };
    let leaves: Vec<usize> = (0..embedded.len()).filter(|i| !issues_another(*i)).collect();
    match leaves.as_slice() {
        [] | [0] => Ok(()),
        [_] => Err(DsigError::AmbiguousSigner("the signer's certificate must come first in KeyInfo")),
        _ => Err(DsigError::AmbiguousSigner(
            "KeyInfo carries more than one certificate that could be the signer",
        )),
    }
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

#[cfg(test)]
mod tests;
