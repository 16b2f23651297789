//! RFC 3161 time-stamp protocol: the `TimeStampReq` the gateway sends (SHA-256 imprint, a
//! random nonce, certReq true), the acceptance of a `TimeStampResp` (a token is returned only
//! when the status is granted, its signature is sound and its imprint and nonce are the
//! request's), and the inspection of a token already carried in a signature.
//!
//! The request and response envelopes are `x509-tsp`'s. `TSTInfo` is decoded with our own
//! structure because `der` 0.7's `GeneralizedTime` refuses fractional seconds, which many real
//! authorities put in `genTime`; here `genTime` is read by hand, fraction kept.

use cms::content_info::ContentInfo;
use cms::signed_data::SignerIdentifier;
use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::{MessageDigest, hash};
use openssl::x509::X509;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

use crate::ct_eq;

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

/// What a token says and whether its own signature holds (trust is the caller's question).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// `genTime` as RFC 3339 (UTC, fraction kept).
    pub gen_time: String,
    pub imprint_algorithm: ObjectIdentifier,
    pub imprint: Vec<u8>,
    pub nonce: Option<Vec<u8>>,
    /// The token's SignedData verifies (openssl `CMS_verify`, content = the TSTInfo) with the
    /// certificate it names as signer.
    pub signature_valid: bool,
    /// The authority's certificate, when the token carries it.
    pub tsa_cert: Option<X509>,
    /// The other certificates the token carries (candidate intermediates).
    pub other_certs: Vec<X509>,
    /// The authority's certificate has the extended key usage id-kp-timeStamping.
    pub tsa_cert_for_timestamping: bool,
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
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct ReadSignedData {
    pub version: cms::content_info::CmsVersion,
    /// Not used: each SignerInfo names its own digest algorithm.
    pub digest_algorithms: Any,
    pub encap_content_info: cms::signed_data::EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub certificates: Option<Vec<cms::cert::CertificateChoices>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true", optional = "true")]
    pub crls: Option<Vec<Any>>,
    pub signer_infos: cms::signed_data::SignerInfos,
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
    let sd: ReadSignedData = ci.content.decode_as().map_err(|_| "SignedData")?;
    if sd.certificates.as_ref().map_or(0, Vec::len) > MAX_CERTIFICATES {
        return Err("too many certificates");
    }
    Ok(sd)
}

/// The certificates a SignedData carries, the one `sid` names apart from the others.
pub(crate) fn split_certificates(sd: &ReadSignedData, sid: &SignerIdentifier) -> (Option<(Certificate, X509)>, Vec<X509>) {
    let mut signer = None;
    let mut others = Vec::new();
    for choice in sd.certificates.iter().flatten() {
        let cms::cert::CertificateChoices::Certificate(cert) = choice else {
            continue;
        };
        let Some(x509) = cert.to_der().ok().and_then(|d| X509::from_der(&d).ok()) else {
            continue;
        };
        if signer.is_none() && names(cert, sid) {
            signer = Some((cert.clone(), x509));
        } else {
            others.push(x509);
        }
    }
    (signer, others)
}

fn names(cert: &Certificate, sid: &SignerIdentifier) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            cert.tbs_certificate.issuer == ias.issuer && cert.tbs_certificate.serial_number == ias.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            extension::<SubjectKeyIdentifier>(cert, ID_CE_SUBJECT_KEY_IDENTIFIER).is_some_and(|own| own.0.as_bytes() == ski.0.as_bytes())
        }
    }
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
/// token's signature verifies. A token that is not a SignedData over a TSTInfo is malformed.
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

    let mut signer_cert = None;
    let mut other_certs = Vec::new();
    let mut for_timestamping = false;
    // A token has one signer; take the first SignerInfo's identifier.
    if let Some(si) = sd.signer_infos.0.iter().next() {
        let (signer, others) = split_certificates(&sd, &si.sid);
        if let Some((cert, x509)) = signer {
            for_timestamping =
                extension::<ExtendedKeyUsage>(&cert, ID_CE_EXT_KEY_USAGE).is_some_and(|eku| eku.0.contains(&ID_KP_TIME_STAMPING));
            signer_cert = Some(x509);
        }
        other_certs = others;
    }
    let signature_valid = sd.signer_infos.0.len() == 1 && signer_cert.is_some() && {
        let mut out = Vec::new();
        CmsContentInfo::from_der(token_der)
            .and_then(|mut ci| {
                ci.verify(
                    None,
                    None,
                    None,
                    Some(&mut out),
                    CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
                )
            })
            .is_ok()
            // What openssl checked must be what we read.
            && out == tst_der.as_bytes()
    };
    Ok(TokenInfo {
        gen_time,
        imprint_algorithm: tst.message_imprint.hash_algorithm.oid,
        imprint: tst.message_imprint.hashed_message.as_bytes().to_vec(),
        nonce: tst.nonce.map(|n| n.as_bytes().to_vec()),
        signature_valid,
        tsa_cert: signer_cert,
        other_certs,
        tsa_cert_for_timestamping: for_timestamping,
    })
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
