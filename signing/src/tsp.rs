//! RFC 3161 time-stamp protocol: the `TimeStampReq` the gateway sends (SHA-256 imprint, a
//! random nonce, certReq true), the acceptance of a `TimeStampResp` (a token is returned only
//! when the status is granted, its signature is sound and its imprint and nonce are the
//! request's), and the inspection of a token already carried in a signature.
//!
//! The request and response envelopes are `x509-tsp`'s. `TSTInfo` is decoded with our own
//! structure because `der` 0.7's `GeneralizedTime` refuses fractional seconds, which many real
//! authorities put in `genTime`; here `genTime` is read by hand, fraction kept.

use std::sync::{Arc, Mutex, OnceLock};

use cms::content_info::ContentInfo;
use cms::signed_data::SignerIdentifier;
use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::{MessageDigest, hash};
use openssl::x509::X509;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

use crate::ct_eq;
use crate::pki::Bounded;

pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo, the eContentType of a timestamp token.
pub const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const ID_CE_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// The largest `TimeStampResp` or token accepted: a token with a chain of a few certificates
/// is a handful of kilobytes.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// Certificates a token (or a signature) may carry before it is refused as malformed.
pub const MAX_CERTIFICATES: usize = 16;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TspError {
    #[error("the timestamp response is larger than {MAX_RESPONSE_LEN} bytes")]
    TooLarge,
    #[error("not a DER RFC 3161 structure: {0}")]
    Malformed(&'static str),
    #[error("the authority did not grant the timestamp (status {status}, failure info {fail_info})")]
    Rejected { status: String, fail_info: String },
    #[error("the response grants a timestamp but carries no token")]
    NoToken,
    #[error("the token's message imprint is not the requested one")]
    ImprintMismatch,
    #[error("the token's nonce is not the request's")]
    NonceMismatch,
    #[error("the token's own signature does not verify")]
    BadSignature,
    #[error("the token is refused: {0}")]
    Refused(&'static str),
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// A request as sent, kept to check the answer against.
#[derive(Debug, Clone)]
pub struct TimestampRequest {
    der: Vec<u8>,
    imprint: [u8; 32],
    nonce: Vec<u8>,
}

impl TimestampRequest {
    /// A request over SHA-256 of `data`, with a fresh random 64-bit nonce.
    pub fn for_data(data: &[u8]) -> Result<Self, TspError> {
        let mut nonce = [0u8; 8];
        crate::random_bytes(&mut nonce).map_err(|e| TspError::Build(e.to_string()))?;
        // Positive and minimally encoded: top bit clear, second bit set.
        nonce[0] = (nonce[0] & 0x7f) | 0x40;
        Self::with_nonce(crate::sha256(data), &nonce)
    }

    /// A request over a given SHA-256 digest with a given nonce (a positive big-endian
    /// integer, minimally encoded).
    pub fn with_nonce(imprint: [u8; 32], nonce: &[u8]) -> Result<Self, TspError> {
        let build = |e: der::Error| TspError::Build(e.to_string());
        let req = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: sha256_imprint(&imprint).map_err(build)?,
            req_policy: None,
            nonce: Some(Int::new(nonce).map_err(build)?),
            cert_req: true,
            extensions: None,
        };
        Ok(TimestampRequest {
            der: req.to_der().map_err(build)?,
            imprint,
            nonce: nonce.to_vec(),
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The token (DER `TimeStampToken`) from `response`, when the authority granted it and it
    /// answers this request.
    pub fn accept(&self, response: &[u8]) -> Result<Vec<u8>, TspError> {
        if response.len() > MAX_RESPONSE_LEN {
            return Err(TspError::TooLarge);
        }
        let resp = TimeStampResp::from_der(response).map_err(|_| TspError::Malformed("TimeStampResp"))?;
        // granted (0) and grantedWithMods (1) carry a token; everything else is a refusal.
        let status = resp.status.status as u8;
        if status > 1 {
            return Err(TspError::Rejected {
                status: format!("{:?}", resp.status.status),
                fail_info: resp.status.fail_info.map(|f| format!("{f:?}")).unwrap_or_else(|| "none".into()),
            });
        }
        let token = resp.time_stamp_token.ok_or(TspError::NoToken)?;
        let token_der = token.to_der().map_err(|_| TspError::Malformed("TimeStampToken"))?;
        let info = inspect_token(&token_der)?;
        if info.imprint_algorithm != ID_SHA256 || !ct_eq(&info.imprint, &self.imprint) {
            return Err(TspError::ImprintMismatch);
        }
        match info.nonce {
            Some(n) if ct_eq(&n, &self.nonce) => {}
            _ => return Err(TspError::NonceMismatch),
        }
        if !info.signature_valid {
            return Err(TspError::BadSignature);
        }
        if let Some(why) = info.refusal {
            return Err(TspError::Refused(why));
        }
        Ok(token_der)
    }
}

fn sha256_imprint(digest: &[u8; 32]) -> der::Result<MessageImprint> {
    Ok(MessageImprint {
        // With NULL parameters, as `openssl ts -query` writes it.
        hash_algorithm: x509_cert::spki::AlgorithmIdentifier {
            oid: ID_SHA256,
            parameters: Some(Any::null()),
        },
        hashed_message: OctetString::new(digest.as_slice())?,
    })
}

/// `TSTInfo` as RFC 3161 section 2.4.2 defines it, `genTime` kept raw (see the module note).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// The DER TSTInfo of a token over SHA-256 of `data` at `gen_time` (`YYYYMMDDHHMMSSZ`), for
/// the development PKI's hand-made tokens.
pub(crate) fn tst_info_der(gen_time: &str, data: &[u8], serial: u64) -> der::Result<Vec<u8>> {
    TstInfo {
        version: TspVersion::V1,
        policy: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.1.1"),
        message_imprint: sha256_imprint(&crate::sha256(data))?,
        serial_number: Int::new(&serial.to_be_bytes()[serial.leading_zeros() as usize / 8..])?,
        gen_time: Any::new(Tag::GeneralizedTime, gen_time.as_bytes())?,
        accuracy: None,
        ordering: false,
        nonce: None,
        tsa: None,
        extensions: None,
    }
    .to_der()
}

/// What a token says and whether its own signature holds (trust is the caller's question).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// `genTime` as RFC 3339 (UTC, fraction kept).
    pub gen_time: String,
    /// `genTime` in whole seconds since 1970.
    pub gen_time_unix: i64,
    pub imprint_algorithm: ObjectIdentifier,
    pub imprint: Vec<u8>,
    pub nonce: Option<Vec<u8>>,
    /// The token's SignedData verifies (openssl `CMS_verify`, content = the TSTInfo) with the
    /// one certificate it names as signer (passed explicitly, OpenSSL's own search off).
    pub signature_valid: bool,
    /// The authority's certificate, when the token carries it.
    pub tsa_cert: Option<X509>,
    /// The other certificates the token carries (candidate intermediates).
    pub other_certs: Vec<X509>,
    /// The authority's certificate has the extended key usage id-kp-timeStamping.
    pub tsa_cert_for_timestamping: bool,
    /// Why the token cannot be relied on, whoever its authority: no single signer certificate
    /// (none, or more than one OpenSSL could pick), a signature that does not verify, or a
    /// `genTime` outside the authority certificate's validity. None when it can.
    pub refusal: Option<&'static str>,
}

impl TokenInfo {
    /// Whether the imprint is the digest of `data` under the token's own hash algorithm.
    pub fn covers(&self, data: &[u8]) -> bool {
        let md = if self.imprint_algorithm == ID_SHA256 {
            MessageDigest::sha256()
        } else if self.imprint_algorithm == ID_SHA384 {
            MessageDigest::sha384()
        } else if self.imprint_algorithm == ID_SHA512 {
            MessageDigest::sha512()
        } else {
            return false;
        };
        hash(md, data).map(|d| ct_eq(&d, &self.imprint)).unwrap_or(false)
    }
}

/// `SignedData` as read from others (RFC 5652 5.1). Unlike `cms::signed_data::SignedData`, the
/// certificates are read as a plain list: `der` refuses a SET OF with two equal elements, and
/// OpenSSL's TSA (like others) sends its certificate twice when it is both signer and chain.
/// Each certificate is kept raw here and read by [`carried_certificate`].
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SignedDataFields {
    version: cms::content_info::CmsVersion,
    /// Not used: each SignerInfo names its own digest algorithm.
    digest_algorithms: Any,
    encap_content_info: cms::signed_data::EncapsulatedContentInfo,
    /// `CertificateChoices`, each as received.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    certificates: Option<Vec<Any>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    crls: Option<Vec<Any>>,
    signer_infos: cms::signed_data::SignerInfos,
}

/// What [`signed_data`] reads of a `SignedData`.
#[derive(Clone, Debug)]
pub(crate) struct ReadSignedData {
    pub encap_content_info: cms::signed_data::EncapsulatedContentInfo,
    /// The certificates carried, in order (the other `CertificateChoices` left out).
    pub certificates: Vec<Arc<CarriedCertificate>>,
    pub signer_infos: cms::signed_data::SignerInfos,
}

/// A certificate as a message carries it: as `der` reads it, its DER as `der` writes it back,
/// and OpenSSL's reading of that DER (None when OpenSSL cannot read it).
#[derive(Debug)]
pub(crate) struct CarriedCertificate {
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub x509: Option<X509>,
}

/// How many certificates read from messages are kept read, and the largest one kept.
const CARRIED_CERTIFICATES: usize = 64;
const MAX_CARRIED_CERTIFICATE_LEN: usize = 16 * 1024;

static CARRIED: OnceLock<Mutex<Bounded<Arc<CarriedCertificate>>>> = OnceLock::new();

/// One `CertificateChoices` of a `SignedData` (`choice`, as received), read as a certificate;
/// `Ok(None)` for the other choices and for a certificate `der` cannot write back (left out, as
/// OpenSSL could not use them either), an error when it is not a `CertificateChoices`.
///
/// The reading is remembered by the exact bytes of `choice`: a signer sends the same
/// certificates with every message, and reading them (`der`'s decoding, its re-encoding, and
/// OpenSSL's parsing, which costs several RSA verifications in OpenSSL 3.0) was most of what a
/// verification did besides its two RSA verifications (docs/performance-verify.md). A hit is
/// what reading those same bytes again would give, nothing is trusted for being here, and the
/// memory is bounded ([`CARRIED_CERTIFICATES`] entries, large ones not kept).
fn carried_certificate(choice: &Any) -> der::Result<Option<Arc<CarriedCertificate>>> {
    let raw = choice.to_der()?;
    let cache = CARRIED.get_or_init(|| Mutex::new(Bounded::new(CARRIED_CERTIFICATES)));
    if let Some(hit) = cache.lock().ok().and_then(|carried| carried.get(&raw)) {
        return Ok(Some(hit));
    }
    let cms::cert::CertificateChoices::Certificate(cert) = cms::cert::CertificateChoices::from_der(&raw)? else {
        return Ok(None);
    };
    let Ok(der) = cert.to_der() else {
        return Ok(None);
    };
    let x509 = crate::pki::certificate_from_der(&der).ok();
    let read = Arc::new(CarriedCertificate { cert, der, x509 });
    if raw.len() <= MAX_CARRIED_CERTIFICATE_LEN
        && let Ok(mut carried) = cache.lock()
    {
        carried.insert(&raw, read.clone());
    }
    Ok(Some(read))
}

/// Parses a `SignedData` from a `ContentInfo`, bounded in size and certificate count.
pub(crate) fn signed_data(der_bytes: &[u8], max_len: usize) -> Result<ReadSignedData, &'static str> {
    if der_bytes.len() > max_len {
        return Err("too large");
    }
    let ci = ContentInfo::from_der(der_bytes).map_err(|_| "ContentInfo")?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err("not SignedData");
    }
    let sd: SignedDataFields = ci.content.decode_as().map_err(|_| "SignedData")?;
    let choices = sd.certificates.unwrap_or_default();
    if choices.len() > MAX_CERTIFICATES {
        return Err("too many certificates");
    }
    let mut certificates = Vec::with_capacity(choices.len());
    for choice in &choices {
        if let Some(c) = carried_certificate(choice).map_err(|_| "SignedData")? {
            certificates.push(c);
        }
    }
    Ok(ReadSignedData {
        encap_content_info: sd.encap_content_info,
        certificates,
        signer_infos: sd.signer_infos,
    })
}

/// Why no one signer certificate could be chosen from what a SignedData carries.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum SignerChoiceError {
    #[error("no certificate in the message matches its signer identifier")]
    Missing,
    /// Two different certificates answer the identifier as OpenSSL compares it (issuer names
    /// without regard to case or spacing, and the serial; or the subject key identifier): which
    /// key signed would depend on who looks, so nothing is believed.
    #[error(
        "more than one certificate in the message matches its signer identifier (as OpenSSL compares issuer names, \
         without regard to case or spacing): the signer is ambiguous"
    )]
    Ambiguous,
}

/// The one certificate a SignerInfo names, and the others the message carries (candidate
/// intermediates, never signers).
#[derive(Debug, Clone)]
pub(crate) struct ChosenSigner {
    pub cert: Certificate,
    pub x509: X509,
    pub others: Vec<X509>,
}

/// Chooses the signer certificate once, by OpenSSL's own rule, so that the certificate whose
/// key is checked (by `CMS_verify` with [`verify_with_signer`]) is the certificate whose chain
/// is checked. Byte-identical copies count once (an authority may send its certificate twice);
/// two different certificates that could match are refused as ambiguous.
pub(crate) fn select_signer(sd: &ReadSignedData, sid: &SignerIdentifier) -> Result<ChosenSigner, SignerChoiceError> {
    let wanted = SidMatcher::new(sid);
    let mut signer: Option<(&Certificate, &X509, &[u8])> = None;
    let mut others = Vec::new();
    for carried in &sd.certificates {
        let Some(x509) = &carried.x509 else {
            continue;
        };
        if wanted.matches(&carried.cert, x509) {
            match signer {
                None => signer = Some((&carried.cert, x509, &carried.der)),
                Some((_, _, first)) if *first == carried.der[..] => {}
                Some(_) => return Err(SignerChoiceError::Ambiguous),
            }
        } else {
            others.push(x509.clone());
        }
    }
    let (cert, x509, _) = signer.ok_or(SignerChoiceError::Missing)?;
    Ok(ChosenSigner {
        cert: cert.clone(),
        x509: x509.clone(),
        others,
    })
}

/// A signer identifier, ready to be compared as OpenSSL's `CMS_SignerInfo_cert_cmp` does.
enum SidMatcher<'a> {
    IssuerSerial {
        /// The issuer as the identifier encodes it.
        name: &'a x509_cert::name::Name,
        /// The same as an OpenSSL name, read only when a certificate's issuer is not encoded
        /// alike (None when OpenSSL cannot read it: then no certificate can match in OpenSSL
        /// either, and nothing matches here).
        issuer: std::cell::OnceCell<Option<openssl::x509::X509Name>>,
        serial: &'a [u8],
    },
    KeyId(&'a [u8]),
}

impl<'a> SidMatcher<'a> {
    fn new(sid: &'a SignerIdentifier) -> Self {
        match sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => SidMatcher::IssuerSerial {
                name: &ias.issuer,
                issuer: std::cell::OnceCell::new(),
                serial: ias.serial_number.as_bytes(),
            },
            SignerIdentifier::SubjectKeyIdentifier(ski) => SidMatcher::KeyId(ski.0.as_bytes()),
        }
    }

    fn matches(&self, cert: &Certificate, x509: &X509) -> bool {
        match self {
            SidMatcher::IssuerSerial { name, issuer, serial } => {
                // `x509` was parsed from `cert`'s own encoding, so an issuer equal in every
                // field is byte for byte the name OpenSSL holds, and X509_NAME_cmp finds it
                // equal: the common case, decided without parsing a name for OpenSSL.
                let same_issuer = cert.tbs_certificate.issuer == **name || {
                    let parsed = issuer.get_or_init(|| name.to_der().ok().and_then(|d| openssl::x509::X509Name::from_der(&d).ok()));
                    let Some(issuer) = parsed else { return false };
                    // X509_NAME_cmp compares the canonical encodings (case folded, spaces
                    // collapsed); a failed comparison counts as a match, so that it can only make
                    // a message ambiguous, never pick a signer OpenSSL would not.
                    !matches!(x509.issuer_name().try_cmp(issuer), Ok(o) if o != std::cmp::Ordering::Equal)
                };
                same_issuer && same_serial(cert, x509, serial)
            }
            SidMatcher::KeyId(id) => {
                extension::<SubjectKeyIdentifier>(cert, ID_CE_SUBJECT_KEY_IDENTIFIER).is_some_and(|own| own.0.as_bytes() == *id)
                    || x509.subject_key_id().is_some_and(|own| own.as_slice() == *id)
            }
        }
    }
}

/// The serials are the same integer: byte for byte, or in magnitude as OpenSSL reads them
/// (which forgives a non-minimal encoding).
fn same_serial(cert: &Certificate, x509: &X509, sid_serial: &[u8]) -> bool {
    if cert.tbs_certificate.serial_number.as_bytes() == sid_serial {
        return true;
    }
    let magnitude = |b: &[u8]| -> Vec<u8> { b.iter().skip_while(|x| **x == 0).copied().collect() };
    x509.serial_number()
        .to_bn()
        .is_ok_and(|bn| magnitude(&bn.to_vec()) == magnitude(sid_serial))
}

/// The DER `ContentInfo` of a `SignedData` without its `certificates` field, every other byte
/// as received (the signed attributes above all). OpenSSL is given this: it checks the
/// signature with the one certificate we pass it (`NOINTERN`), never with one from the message,
/// so the set is of no use to it, and parsing it cost more than all the rest of a verification
/// (OpenSSL 3.0 decodes each certificate's public key at great expense; see
/// docs/performance-verify.md). The certificates are read once, by [`select_signer`]. None when
/// `der_bytes` is not a DER `ContentInfo` holding a `SignedData` (its fields are not re-read
/// here: OpenSSL still parses what is left).
pub(crate) fn without_certificates(der_bytes: &[u8]) -> Option<Vec<u8>> {
    let ci = ContentInfo::from_der(der_bytes).ok()?;
    if ci.content_type != ID_SIGNED_DATA || ci.content.tag() != Tag::Sequence {
        return None;
    }
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    //     certificates [0] IMPLICIT CertificateSet OPTIONAL, crls [1] ..., signerInfos }
    let certificates = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N0,
    };
    let mut fields = SliceReader::new(ci.content.value()).ok()?;
    let mut kept = Vec::with_capacity(ci.content.value().len());
    while !fields.is_finished() {
        let field = Any::decode(&mut fields).ok()?;
        if field.tag() != certificates {
            field.encode_to_vec(&mut kept).ok()?;
        }
    }
    ContentInfo {
        content_type: ci.content_type,
        content: Any::new(Tag::Sequence, kept).ok()?,
    }
    .to_der()
    .ok()
}

/// OpenSSL's `CMS_verify` of the one signer we chose: the certificate is passed explicitly and
/// OpenSSL's own search among the message's certificates is off (`CMS_NOINTERN`), so the key
/// checked is the key of the certificate whose chain is checked; the message's certificates are
/// not even given to OpenSSL ([`without_certificates`]). The chain is the caller's question
/// (`CMS_NO_SIGNER_CERT_VERIFY`). `content` is the detached content, or None for an
/// encapsulated one, which is then written to `out`.
pub(crate) fn verify_with_signer(der_bytes: &[u8], signer: &X509, content: Option<&[u8]>, out: Option<&mut Vec<u8>>) -> bool {
    let Ok(mut certs) = openssl::stack::Stack::<X509>::new() else {
        return false;
    };
    if certs.push(signer.clone()).is_err() {
        return false;
    }
    let Some(der_bytes) = without_certificates(der_bytes) else {
        return false;
    };
    CmsContentInfo::from_der(&der_bytes)
        .and_then(|mut ci| {
            ci.verify(
                Some(&certs),
                None,
                content,
                out,
                CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
            )
        })
        .is_ok()
}

fn extension<'a, T: Decode<'a>>(cert: &'a Certificate, oid: ObjectIdentifier) -> Option<T> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .and_then(|e| T::from_der(e.extn_value.as_bytes()).ok())
}

/// Reads a DER `TimeStampToken`: its TSTInfo, the authority's certificate, and whether the
/// token can be relied on (see [`TokenInfo::refusal`]). A token that is not a SignedData over a
/// TSTInfo is malformed.
pub fn inspect_token(token_der: &[u8]) -> Result<TokenInfo, TspError> {
    let sd = signed_data(token_der, MAX_RESPONSE_LEN).map_err(TspError::Malformed)?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(TspError::Malformed("not a TSTInfo token"));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or(TspError::Malformed("the token has no TSTInfo"))?;
    let tst_der: OctetString = econtent.decode_as().map_err(|_| TspError::Malformed("eContent"))?;
    let tst = TstInfo::from_der(tst_der.as_bytes()).map_err(|_| TspError::Malformed("TSTInfo"))?;
    let gen_time = generalized_time_rfc3339(&tst.gen_time).ok_or(TspError::Malformed("genTime"))?;
    let gen_time_unix = generalized_time_unix(&tst.gen_time).ok_or(TspError::Malformed("genTime"))?;

    let mut infos = sd.signer_infos.0.iter();
    let chosen = match (infos.next(), infos.next()) {
        (Some(si), None) => select_signer(&sd, &si.sid).map_err(|e| match e {
            SignerChoiceError::Missing => "the token carries no certificate matching its signer",
            SignerChoiceError::Ambiguous => {
                "more than one certificate in the token matches its signer identifier (as OpenSSL compares \
                 issuer names): the authority is ambiguous"
            }
        }),
        _ => Err("the token must have exactly one signer"),
    };
    let (signer_cert, other_certs, for_timestamping, mut refusal) = match chosen {
        Ok(c) => {
            let eku = extension::<ExtendedKeyUsage>(&c.cert, ID_CE_EXT_KEY_USAGE).is_some_and(|eku| eku.0.contains(&ID_KP_TIME_STAMPING));
            (Some(c.x509), c.others, eku, None)
        }
        Err(why) => (None, Vec::new(), false, Some(why)),
    };
    let signature_valid = signer_cert.as_ref().is_some_and(|cert| {
        let mut out = Vec::new();
        // What openssl checked must be what we read.
        verify_with_signer(token_der, cert, None, Some(&mut out)) && out == tst_der.as_bytes()
    });
    if refusal.is_none() && !signature_valid {
        refusal = Some("the token's own signature does not verify");
    }
    if refusal.is_none()
        && let Some(cert) = &signer_cert
        && !within_validity(cert, gen_time_unix)
    {
        refusal = Some("the token's time lies outside its authority certificate's validity");
    }
    Ok(TokenInfo {
        gen_time,
        gen_time_unix,
        imprint_algorithm: tst.message_imprint.hash_algorithm.oid,
        imprint: tst.message_imprint.hashed_message.as_bytes().to_vec(),
        nonce: tst.nonce.map(|n| n.as_bytes().to_vec()),
        signature_valid,
        tsa_cert: signer_cert,
        other_certs,
        tsa_cert_for_timestamping: for_timestamping,
        refusal,
    })
}

/// Seconds since 1970 of an OpenSSL time (None when OpenSSL cannot compare it).
pub(crate) fn asn1_unix(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Whether `unix` (whole seconds) lies within the certificate's `notBefore..=notAfter`.
pub(crate) fn within_validity(cert: &X509, unix: i64) -> bool {
    match (asn1_unix(cert.not_before()), asn1_unix(cert.not_after())) {
        (Some(from), Some(to)) => from <= unix && unix <= to,
        _ => false,
    }
}

/// `genTime` in whole seconds since 1970 (a fraction is dropped: certificate times have none).
fn generalized_time_unix(any: &Any) -> Option<i64> {
    let s = std::str::from_utf8(any.value()).ok()?;
    let whole = s.get(..14)?;
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = openssl::asn1::Asn1Time::from_str(&format!("{whole}Z")).ok()?;
    asn1_unix(&t)
}

/// `YYYYMMDDHHMMSS[.f+]Z` (RFC 5280/3161 profile of GeneralizedTime) as
/// `YYYY-MM-DDTHH:MM:SS[.f+]Z`; anything else is None.
fn generalized_time_rfc3339(any: &Any) -> Option<String> {
    if any.tag() != Tag::GeneralizedTime {
        return None;
    }
    let s = std::str::from_utf8(any.value()).ok()?;
    let body = s.strip_suffix('Z')?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => (w, Some(f)),
        Some(_) => return None,
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<u32>().ok();
    let (mo, d, h, mi, se) = (n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut out = format!(
        "{}-{}-{}T{}:{}:{}",
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14]
    );
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out.push('Z');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_is_given_the_signed_data_without_its_certificates_and_nothing_else_changed() {
        let pki = crate::devpki::DevPki::generate().unwrap();
        let content = b"detached content";
        let der = crate::cades::sign_detached(&pki.gateway, content).unwrap();
        let stripped = without_certificates(&der).unwrap();
        assert!(stripped.len() < der.len());
        let (before, after) = (signed_data(&der, usize::MAX).unwrap(), signed_data(&stripped, usize::MAX).unwrap());
        assert_eq!(before.certificates.len(), 2, "the gateway's certificate and the root");
        assert!(after.certificates.is_empty());
        assert_eq!(before.signer_infos, after.signer_infos);
        assert_eq!(before.encap_content_info, after.encap_content_info);
        // The signature still verifies with the chosen certificate, and only over its content.
        let si = before.signer_infos.0.iter().next().unwrap();
        let chosen = select_signer(&before, &si.sid).unwrap();
        assert_eq!(chosen.x509.to_der().unwrap(), pki.gateway.cert.to_der().unwrap());
        assert!(verify_with_signer(&der, &chosen.x509, Some(content), None));
        assert!(!verify_with_signer(&der, &chosen.x509, Some(b"other content"), None));
        assert!(!verify_with_signer(&der, &pki.root, Some(content), None));
        // Without certificates already: unchanged. Not a SignedData: nothing.
        assert_eq!(without_certificates(&stripped).unwrap(), stripped);
        assert_eq!(without_certificates(&TimestampRequest::for_data(b"x").unwrap().der), None);
        assert_eq!(without_certificates(&der[..der.len() - 1]), None);
    }

    #[test]
    fn certificates_read_again_are_those_read_first() {
        let pki = crate::devpki::DevPki::generate().unwrap();
        let der = crate::cades::sign_detached(&pki.gateway, b"content").unwrap();
        let (first, again) = (signed_data(&der, usize::MAX).unwrap(), signed_data(&der, usize::MAX).unwrap());
        for (a, b) in first.certificates.iter().zip(&again.certificates) {
            assert_eq!(a.der, b.der);
            assert_eq!(a.cert, b.cert);
            assert_eq!(a.x509.as_ref().map(|x| x.to_der().unwrap()), Some(a.der.clone()));
        }
        assert_eq!(first.certificates[0].der, pki.gateway.cert.to_der().unwrap());
        assert_eq!(first.certificates[1].der, pki.root.to_der().unwrap());
    }

    #[test]
    fn the_request_is_the_hand_encoded_der() {
        // SHA-256("abc") and nonce 0x314CFCE4E0651827, certReq TRUE, encoded by hand:
        // SEQUENCE { INTEGER 1, SEQUENCE { SEQUENCE { OID sha256, NULL }, OCTET STRING(32) },
        //            INTEGER nonce, BOOLEAN TRUE }
        let expected = concat!(
            "3043",
            "020101",
            "3031",
            "300d0609608648016503040201",
            "0500",
            "0420ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "0208314cfce4e0651827",
            "0101ff"
        );
        let req = TimestampRequest::with_nonce(crate::sha256(b"abc"), &hex::decode("314cfce4e0651827").unwrap()).unwrap();
        assert_eq!(hex::encode(req.der()), expected);
    }

    #[test]
    fn random_requests_differ_in_their_nonce_only() {
        let a = TimestampRequest::for_data(b"x").unwrap();
        let b = TimestampRequest::for_data(b"x").unwrap();
        assert_eq!(a.imprint, b.imprint);
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 8);
        assert!(a.nonce[0] & 0x80 == 0 && a.nonce[0] != 0);
    }

    #[test]
    fn a_rejection_is_refused_with_its_status() {
        // TimeStampResp { PKIStatusInfo { rejection(2), failInfo badAlg(bit 0) } }
        let resp = hex::decode("3009300702010203020780").unwrap();
        let req = TimestampRequest::for_data(b"x").unwrap();
        match req.accept(&resp) {
            Err(TspError::Rejected { status, fail_info }) => {
                assert!(status.contains("Rejection"), "{status}");
                assert!(fail_info.contains("BadAlg"), "{fail_info}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_and_oversized_responses_are_refused() {
        let req = TimestampRequest::for_data(b"x").unwrap();
        assert!(matches!(req.accept(b"\x30\x03\x02\x01"), Err(TspError::Malformed(_))));
        assert!(matches!(req.accept(&[]), Err(TspError::Malformed(_))));
        assert_eq!(req.accept(&vec![0x30; MAX_RESPONSE_LEN + 1]), Err(TspError::TooLarge));
        // Granted, but no token.
        assert_eq!(req.accept(&hex::decode("30053003020100").unwrap()), Err(TspError::NoToken));
    }

    #[test]
    fn generalized_times_keep_their_fraction_and_refuse_nonsense() {
        let t = |s: &str| generalized_time_rfc3339(&Any::new(Tag::GeneralizedTime, s.as_bytes()).unwrap());
        assert_eq!(t("20261126043000Z").as_deref(), Some("2026-11-26T04:30:00Z"));
        assert_eq!(t("20261126043000.123Z").as_deref(), Some("2026-11-26T04:30:00.123Z"));
        for bad in [
            "20261126043000",
            "20261326043000Z",
            "2026112604300Z",
            "20261126043000.Z",
            "20261126043000+0700",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(
            generalized_time_rfc3339(&Any::new(Tag::UtcTime, b"261126043000Z".as_slice()).unwrap()),
            None
        );
    }
}
