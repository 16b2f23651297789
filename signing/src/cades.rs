//! CAdES-BES detached signatures (CMS SignedData, SHA-256, with the signed attributes PAdES
//! asks for: content type, message digest, signing time, ESS signing-certificate-v2), and
//! their signature timestamps (CAdES-T, RFC 3161 token as an unsigned attribute). The key signs
//! through [`crate::key::SigningKey`], so the same code serves a PKCS#12 key and a PKCS#11
//! token.
//!
//! The ASN.1 structures are RustCrypto's `cms`/`x509-cert`; the cryptography is openssl: the
//! signature through the key, and on verification openssl's own `CMS_verify` over the message
//! exactly as received (a decoded SET OF is re-sorted by `der`, so re-encoding what a foreign
//! signer sent could change the signed bytes).

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo as CmsSignerInfo, SignerInfos};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Any, Decode, Encode, Sequence};
use openssl::hash::{MessageDigest, hash};
use openssl::x509::X509;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;

use crate::cms::CmsError;
use crate::key::KeyAlgorithm;
use crate::pki::{Identity, SignerInfo, TrustStore, signer_info};
use crate::tsp::{self, ID_SHA256, ID_SIGNED_DATA};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// id-aa-signingCertificateV2 (RFC 5035).
const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-signatureTimeStampToken (RFC 3161 appendix A).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

pub use crate::cms::MAX_SIGNATURE_LEN;

/// ESS `SigningCertificateV2` (RFC 5035 section 3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Vec<Any>>,
}

/// `ESSCertIDv2`; `hashAlgorithm` DEFAULT id-sha256, so DER leaves it out for SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// A signature made, before or after its timestamp is added.
#[derive(Debug, Clone)]
pub struct CadesSignature {
    der: Vec<u8>,
    signature_value: Vec<u8>,
}

fn der_err(e: der::Error) -> CmsError {
    CmsError::Sign(format!("DER encoding: {e}"))
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CmsError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(der_err)?,
    })
}

impl CadesSignature {
    /// The SignerInfo's signature value: what an RFC 3161 signature timestamp covers.
    pub fn signature_value(&self) -> &[u8] {
        &self.signature_value
    }

    /// Adds `token` (a DER TimeStampToken) as the signature-time-stamp unsigned attribute.
    /// The token must be a timestamp over this signature value (its imprint is checked), so a
    /// token for another signature is refused rather than embedded.
    pub fn with_timestamp(self, token: &[u8]) -> Result<Self, CmsError> {
        let info = tsp::inspect_token(token).map_err(|e| CmsError::Sign(format!("timestamp token refused: {e}")))?;
        if let Some(why) = info.refusal {
            return Err(CmsError::Sign(format!("timestamp token refused: {why}")));
        }
        if !info.covers(&self.signature_value) {
            return Err(CmsError::Sign("timestamp token refused: it does not cover this signature".into()));
        }
        let token_any = Any::from_der(token).map_err(|_| CmsError::Sign("timestamp token refused: not DER".into()))?;
        let mut ci = ContentInfo::from_der(&self.der).map_err(|_| CmsError::Malformed)?;
        let mut sd: SignedData = ci.content.decode_as().map_err(|_| CmsError::Malformed)?;
        let mut infos: Vec<CmsSignerInfo> = sd.signer_infos.0.into_vec();
        let [si] = infos.as_mut_slice() else {
            return Err(CmsError::Malformed);
        };
        let mut unsigned: Vec<Attribute> = si
            .unsigned_attrs
            .take()
            .map(|a| a.into_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.oid != ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
            .collect();
        unsigned.push(attribute(ID_AA_SIGNATURE_TIME_STAMP_TOKEN, token_any)?);
        si.unsigned_attrs = Some(SetOfVec::try_from(unsigned).map_err(der_err)?);
        sd.signer_infos = SignerInfos::try_from(infos).map_err(der_err)?;
        ci.content = Any::encode_from(&sd).map_err(der_err)?;
        Ok(CadesSignature {
            der: ci.to_der().map_err(der_err)?,
            signature_value: self.signature_value,
        })
    }

    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    pub fn into_der(self) -> Vec<u8> {
        self.der
    }
}

/// The signed attributes, DER-sorted as a SET OF must be (`SetOfVec::try_from` sorts).
fn signed_attributes(
    id: &Identity,
    signer: &Certificate,
    content: &[u8],
    content_type: ObjectIdentifier,
) -> Result<SetOfVec<Attribute>, CmsError> {
    let now = der::DateTime::from_system_time(std::time::SystemTime::now()).map_err(der_err)?;
    // RFC 5652 11.3: UTCTime for dates 1950-2049.
    let time = Time::UtcTime(UtcTime::from_date_time(now).map_err(der_err)?);
    let cert_der = id.cert.to_der().map_err(|e| CmsError::Sign(e.to_string()))?;
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(crate::sha256(&cert_der).as_slice()).map_err(der_err)?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(signer.tbs_certificate.issuer.clone())],
                serial_number: signer.tbs_certificate.serial_number.clone(),
            }),
        }],
        policies: None,
    };
    let attrs = vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&content_type).map_err(der_err)?)?,
        attribute(ID_SIGNING_TIME, Any::encode_from(&time).map_err(der_err)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(crate::sha256(content).as_slice()).map_err(der_err)?).map_err(der_err)?,
        )?,
        attribute(ID_AA_SIGNING_CERTIFICATE_V2, Any::encode_from(&ess).map_err(der_err)?)?,
    ];
    SetOfVec::try_from(attrs).map_err(der_err)
}

fn algorithm(oid: ObjectIdentifier, null_parameters: bool) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_parameters.then(Any::null),
    }
}

/// Signs `content` (detached: the content is not carried).
pub fn sign(id: &Identity, content: &[u8]) -> Result<CadesSignature, CmsError> {
    sign_as(id, content, ID_DATA, false)
}

/// A CMS detached DER signature over `content`, carrying the signer's certificate and chain,
/// as `openssl cms -sign -binary` makes one and [`crate::cms::verify_detached`] checks it. The
/// CAdES builder signs through `SigningKey`, so a token key works here too; its signed
/// attributes are a superset of what plain CMS carries.
pub fn sign_detached(id: &Identity, content: &[u8]) -> Result<Vec<u8>, CmsError> {
    sign(id, content).map(CadesSignature::into_der)
}

/// Signs `content` of the type `content_type`, carried in the message when `encapsulate`
/// (the development PKI makes timestamp tokens so, `id-ct-TSTInfo` encapsulated).
pub(crate) fn sign_as(
    id: &Identity,
    content: &[u8],
    content_type: ObjectIdentifier,
    encapsulate: bool,
) -> Result<CadesSignature, CmsError> {
    let signature_algorithm = match id.key.algorithm() {
        Some(KeyAlgorithm::Rsa) => algorithm(RSA_ENCRYPTION, true),
        Some(KeyAlgorithm::EcdsaP256) => algorithm(ECDSA_WITH_SHA256, false),
        None => return Err(CmsError::Sign("the key is neither RSA nor ECDSA P-256".into())),
    };
    let to_cert = |x: &X509| -> Result<Certificate, CmsError> {
        let d = x.to_der().map_err(|e| CmsError::Sign(e.to_string()))?;
        Certificate::from_der(&d).map_err(der_err)
    };
    let signer = to_cert(&id.cert)?;
    let signed_attrs = signed_attributes(id, &signer, content, content_type)?;
    // RFC 5652 5.4: the signature covers the DER of the attributes with the SET OF tag.
    let signature_value = id.key.sign_sha256(&signed_attrs.to_der().map_err(der_err)?)?;

    let mut certs = vec![CertificateChoices::Certificate(signer.clone())];
    for c in &id.chain {
        let choice = CertificateChoices::Certificate(to_cert(c)?);
        // A DER SET OF holds no two equal elements (and a PKCS#12 chain may repeat the signer).
        if !certs.contains(&choice) {
            certs.push(choice);
        }
    }
    let digest_algorithm = algorithm(ID_SHA256, false);
    let signer_info = CmsSignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.tbs_certificate.issuer.clone(),
            serial_number: signer.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature_value.clone()).map_err(der_err)?,
        unsigned_attrs: None,
    };
    let econtent = if encapsulate {
        Some(Any::encode_from(&OctetString::new(content).map_err(der_err)?).map_err(der_err)?)
    } else {
        None
    };
    let sd = SignedData {
        // RFC 5652 5.1: version 3 when the content is not id-data.
        version: if content_type == ID_DATA { CmsVersion::V1 } else { CmsVersion::V3 },
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm]).map_err(der_err)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: content_type,
            econtent,
        },
        certificates: Some(CertificateSet::try_from(certs).map_err(der_err)?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).map_err(der_err)?,
    };
    let ci = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(der_err)?,
    };
    Ok(CadesSignature {
        der: ci.to_der().map_err(der_err)?,
        signature_value,
    })
}

/// A signature timestamp as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampCheck {
    /// `genTime`, RFC 3339.
    pub time: String,
    /// The token's own signature verifies and its imprint matches the signature value.
    pub valid: bool,
    /// The authority's certificate chains to the trust store.
    pub trusted: bool,
    /// Why the timestamp is not valid, when it is not.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CadesVerified {
    pub valid: bool,
    pub trusted: bool,
    pub signer: Option<SignerInfo>,
    pub reason: Option<String>,
    /// The signing-time attribute, RFC 3339, when present.
    pub signed_at: Option<String>,
    pub timestamp: Option<TimestampCheck>,
}

impl CadesVerified {
    fn invalid(signer: Option<SignerInfo>, reason: &str) -> Self {
        CadesVerified {
            valid: false,
            trusted: false,
            signer,
            reason: Some(reason.to_string()),
            signed_at: None,
            timestamp: None,
        }
    }
}

fn digest_for(oid: &ObjectIdentifier) -> Option<MessageDigest> {
    match *oid {
        o if o == ID_SHA256 => Some(MessageDigest::sha256()),
        o if o == ID_SHA384 => Some(MessageDigest::sha384()),
        o if o == ID_SHA512 => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// The single value of the attribute `oid`, when present exactly once with one value.
fn single_value(attrs: &SetOfVec<Attribute>, oid: ObjectIdentifier) -> Option<&Any> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let attr = found.next()?;
    if found.next().is_some() || attr.values.len() != 1 {
        return None;
    }
    attr.values.iter().next()
}

/// Verifies a detached signature over `content` against `trust`.
pub fn verify(der_bytes: &[u8], content: &[u8], trust: &TrustStore) -> Result<CadesVerified, CmsError> {
    let sd = tsp::signed_data(der_bytes, MAX_SIGNATURE_LEN).map_err(|_| CmsError::Malformed)?;
    let mut infos = sd.signer_infos.0.iter();
    let (Some(si), None) = (infos.next(), infos.next()) else {
        return Ok(CadesVerified::invalid(None, "the signature must have exactly one signer"));
    };
    // One signer, chosen once: the certificate whose key is checked below is the one whose
    // chain is checked, and a message where OpenSSL could pick another is refused.
    let chosen = match tsp::select_signer(&sd, &si.sid) {
        Ok(c) => c,
        Err(tsp::SignerChoiceError::Missing) => return Ok(CadesVerified::invalid(None, "no signer certificate in the signature")),
        Err(e @ tsp::SignerChoiceError::Ambiguous) => return Ok(CadesVerified::invalid(None, &e.to_string())),
    };
    let (signer_cert, signer_x509, others) = (chosen.cert, chosen.x509, chosen.others);
    let info = Some(signer_info(&signer_x509));
    if sd.encap_content_info.econtent.is_some() || sd.encap_content_info.econtent_type != ID_DATA {
        return Ok(CadesVerified::invalid(info, "not a detached signature over data"));
    }
    let Some(attrs) = &si.signed_attrs else {
        return Ok(CadesVerified::invalid(info, "the signature has no signed attributes"));
    };

    // Our own reading of the message digest, compared in constant time...
    let Some(md) = digest_for(&si.digest_alg.oid) else {
        return Ok(CadesVerified::invalid(info, "unsupported digest algorithm"));
    };
    // Before OpenSSL sees it: CMS_verify leaks on a digest it cannot set up (crate::cms).
    if !crate::cms::digests_computable(der_bytes) {
        return Ok(CadesVerified::invalid(info, "unsupported digest algorithm"));
    }
    let digest_matches = single_value(attrs, ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .zip(hash(md, content).ok())
        .is_some_and(|(claimed, actual)| crate::ct_eq(claimed.as_bytes(), &actual));
    if !digest_matches {
        return Ok(CadesVerified::invalid(info, "the signature does not match the content"));
    }
    // ...then openssl's full check of the signature over the attributes as received, with the
    // certificate chosen above and no other.
    if !tsp::verify_with_signer(der_bytes, &signer_x509, Some(content), None) {
        return Ok(CadesVerified::invalid(info, "the signature value does not verify"));
    }
    // When the signer names its certificate (ESS v2), it must be the one that signed.
    if let Some(v) = single_value(attrs, ID_AA_SIGNING_CERTIFICATE_V2) {
        if !ess_names(v, &signer_cert) {
            return Ok(CadesVerified::invalid(
                info,
                "the signing-certificate-v2 attribute names another certificate",
            ));
        }
    } else if attrs.iter().any(|a| a.oid == ID_AA_SIGNING_CERTIFICATE_V2) {
        return Ok(CadesVerified::invalid(info, "malformed signing-certificate-v2 attribute"));
    }

    let signing_time = single_value(attrs, ID_SIGNING_TIME)
        .and_then(|v| v.to_der().ok())
        .and_then(|d| Time::from_der(&d).ok());
    let signed_at = signing_time.map(|t| t.to_date_time().to_string());
    let signing_time_unix = signing_time.and_then(|t| i64::try_from(t.to_unix_duration().as_secs()).ok());
    let (trusted, mut reason) = match trust.check(&signer_x509, &others) {
        Ok(()) => (true, None),
        Err(e) => (false, Some(format!("signature is valid but not trusted: {e}"))),
    };
    let timestamp = match si
        .unsigned_attrs
        .as_ref()
        .and_then(|u| u.iter().find(|a| a.oid == ID_AA_SIGNATURE_TIME_STAMP_TOKEN))
        .and_then(|a| a.values.iter().next())
    {
        None => None,
        Some(token) => {
            let token_der = token.to_der().map_err(|_| CmsError::Malformed)?;
            let signer = SignatureContext {
                signature_value: si.signature.as_bytes(),
                signer: &signer_x509,
                signing_time: signing_time_unix,
            };
            let checked = check_timestamp(&token_der, &signer, trust)?;
            let problem = match (&checked.reason, checked.valid && checked.trusted) {
                (Some(why), _) => Some(why.clone()),
                (None, false) => Some("the signature timestamp's authority is not trusted".to_string()),
                (None, true) => None,
            };
            if let Some(problem) = problem {
                reason = Some(match reason {
                    None => problem,
                    Some(r) => format!("{r}; {problem}"),
                });
            }
            Some(checked)
        }
    };
    Ok(CadesVerified {
        valid: true,
        trusted,
        signer: info,
        reason,
        signed_at,
        timestamp,
    })
}

fn ess_names(value: &Any, cert: &Certificate) -> bool {
    let Ok(ess) = value.decode_as::<SigningCertificateV2>() else {
        return false;
    };
    let Some(first) = ess.certs.first() else {
        return false;
    };
    let md = match &first.hash_algorithm {
        None => MessageDigest::sha256(),
        Some(alg) => match digest_for(&alg.oid) {
            Some(md) => md,
            None => return false,
        },
    };
    let Ok(cert_der) = cert.to_der() else { return false };
    let hash_ok = hash(md, &cert_der).is_ok_and(|h| crate::ct_eq(&h, first.cert_hash.as_bytes()));
    let serial_ok = first
        .issuer_serial
        .as_ref()
        .is_none_or(|is| is.serial_number == cert.tbs_certificate.serial_number);
    hash_ok && serial_ok
}

/// What a signature timestamp is checked against: the signature it covers.
pub struct SignatureContext<'a> {
    /// The SignerInfo's signature value, which the token's imprint must be the digest of.
    pub signature_value: &'a [u8],
    /// The signer's certificate: the token may not be older than its `notBefore`.
    pub signer: &'a openssl::x509::X509Ref,
    /// The signed signing-time attribute (Unix seconds), when present: the token may not be
    /// older than it.
    pub signing_time: Option<i64>,
}

/// Checks a signature timestamp token against the signature it should cover: the token itself
/// (one signer certificate, its signature, `genTime` inside that certificate's validity), its
/// imprint, and its time against the signature's (at or after the signer certificate's
/// `notBefore`, and not before the signing-time attribute; both are whole seconds, so the same
/// second counts as after). Any failure is `valid: false` with the reason.
pub fn check_timestamp(token_der: &[u8], signature: &SignatureContext<'_>, trust: &TrustStore) -> Result<TimestampCheck, CmsError> {
    let info = tsp::inspect_token(token_der).map_err(|_| CmsError::Malformed)?;
    let not_before = tsp::asn1_unix(signature.signer.not_before());
    let reason = if let Some(why) = info.refusal {
        Some(format!("the signature timestamp is refused: {why}"))
    } else if !info.covers(signature.signature_value) {
        Some("the signature timestamp covers something else than this signature".to_string())
    } else if not_before.is_none_or(|nb| info.gen_time_unix < nb) {
        Some(format!(
            "the signature timestamp ({}) is older than the signer certificate's notBefore",
            info.gen_time
        ))
    } else if signature.signing_time.is_some_and(|t| info.gen_time_unix < t) {
        Some(format!(
            "the signature timestamp ({}) is older than the signature's signing time",
            info.gen_time
        ))
    } else {
        None
    };
    let valid = reason.is_none();
    let trusted =
        valid && info.tsa_cert_for_timestamping && info.tsa_cert.as_ref().is_some_and(|c| trust.check(c, &info.other_certs).is_ok());
    Ok(TimestampCheck {
        time: info.gen_time,
        valid,
        trusted,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpki::DevPki;

    fn pki() -> &'static DevPki {
        static PKI: std::sync::OnceLock<DevPki> = std::sync::OnceLock::new();
        PKI.get_or_init(|| DevPki::generate().unwrap())
    }

    #[test]
    fn signed_attributes_are_der_sorted_and_complete() {
        let p = pki();
        let signer = Certificate::from_der(&p.gateway.cert.to_der().unwrap()).unwrap();
        let attrs = signed_attributes(&p.gateway, &signer, b"content", ID_DATA).unwrap();
        let encoded: Vec<Vec<u8>> = attrs.iter().map(|a| a.to_der().unwrap()).collect();
        assert_eq!(encoded.len(), 4);
        // DER SET OF: elements in ascending order of their encodings (X.690 11.6).
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "not sorted");
        let oids: Vec<String> = attrs.iter().map(|a| a.oid.to_string()).collect();
        for oid in [
            "1.2.840.113549.1.9.3",
            "1.2.840.113549.1.9.4",
            "1.2.840.113549.1.9.5",
            "1.2.840.113549.1.9.16.2.47",
        ] {
            assert!(oids.contains(&oid.to_string()), "{oid} missing from {oids:?}");
        }
        // The message digest is SHA-256 of the content.
        let md: OctetString = single_value(&attrs, ID_MESSAGE_DIGEST).unwrap().decode_as().unwrap();
        assert_eq!(md.as_bytes(), crate::sha256(b"content"));
        // The ESS certificate hash is SHA-256 of the signer's DER, algorithm left to DEFAULT.
        let ess: SigningCertificateV2 = single_value(&attrs, ID_AA_SIGNING_CERTIFICATE_V2).unwrap().decode_as().unwrap();
        assert_eq!(ess.certs[0].hash_algorithm, None);
        assert_eq!(ess.certs[0].cert_hash.as_bytes(), crate::sha256(&p.gateway.cert.to_der().unwrap()));
        assert!(ess_names(single_value(&attrs, ID_AA_SIGNING_CERTIFICATE_V2).unwrap(), &signer));
        let other = Certificate::from_der(&p.bank.cert.to_der().unwrap()).unwrap();
        assert!(!ess_names(single_value(&attrs, ID_AA_SIGNING_CERTIFICATE_V2).unwrap(), &other));
    }

    #[test]
    fn own_signatures_verify_and_tampering_is_caught() {
        let p = pki();
        let trust = TrustStore::from_certs(vec![p.root.clone()]).unwrap();
        let sig = sign(&p.gateway, b"hello").unwrap();
        let v = verify(sig.to_der(), b"hello", &trust).unwrap();
        assert!(v.valid && v.trusted, "{v:?}");
        assert!(v.signed_at.as_deref().is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{v:?}");
        assert_eq!(v.timestamp, None);
        let v = verify(sig.to_der(), b"hellO", &trust).unwrap();
        assert!(!v.valid && !v.trusted);
        // A flipped bit in the signature value (the last bytes of the message).
        let mut der = sig.to_der().to_vec();
        let n = der.len();
        der[n - 3] ^= 1;
        let v = verify(&der, b"hello", &trust).unwrap();
        assert!(!v.valid, "{v:?}");
    }

    /// A key reached only through `TokenSigner`, as a PKCS#11 key is: the builder never sees
    /// a `PKey`.
    struct OpaqueKey(openssl::pkey::PKey<openssl::pkey::Private>);

    impl crate::key::TokenSigner for OpaqueKey {
        fn algorithm(&self) -> KeyAlgorithm {
            KeyAlgorithm::Rsa
        }
        fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, crate::key::SignError> {
            crate::key::SigningKey::Software(self.0.clone()).sign_sha256(data)
        }
        fn describe(&self) -> String {
            "opaque test key".into()
        }
    }

    #[test]
    fn a_key_behind_token_signer_signs_and_cms_sign_detached_uses_it() {
        let p = pki();
        let trust = TrustStore::from_certs(vec![p.root.clone()]).unwrap();
        let id = Identity {
            key: crate::key::SigningKey::Token(std::sync::Arc::new(OpaqueKey(p.gateway_key.clone()))),
            cert: p.gateway.cert.clone(),
            chain: vec![p.root.clone()],
        };
        let der = sign_detached(&id, b"token-signed").unwrap();
        let v = verify(&der, b"token-signed", &trust).unwrap();
        assert!(v.valid && v.trusted, "{v:?}");
        // The older PKCS#7 verifier agrees.
        assert!(crate::cms::verify_detached(&der, b"token-signed", &trust).unwrap().valid);
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        let trust = TrustStore::from_certs(vec![pki().root.clone()]).unwrap();
        let sig = sign(&pki().gateway, b"x").unwrap().into_der();
        for bad in [
            &b""[..],
            b"\x30\x00",
            b"\x30\x80\x00\x00",
            &sig[..sig.len() / 2],
            &vec![0x30; MAX_SIGNATURE_LEN + 1],
        ] {
            assert_eq!(verify(bad, b"x", &trust), Err(CmsError::Malformed));
        }
        // Single-byte corruptions all over: an answer or Malformed, never a panic; and a
        // corruption inside the signature value itself is never valid.
        for i in (0..sig.len()).step_by(7) {
            let mut d = sig.clone();
            d[i] ^= 0x55;
            let _ = verify(&d, b"x", &trust);
        }
        let mut d = sig.clone();
        let n = d.len();
        d[n - 10] ^= 0x55;
        assert!(!verify(&d, b"x", &trust).unwrap().valid);
    }

    #[test]
    fn a_token_that_is_not_a_token_is_refused() {
        let sig = sign(&pki().gateway, b"x").unwrap();
        // A signature is a SignedData, but over id-data, not a TSTInfo.
        let other = sign(&pki().gateway, b"y").unwrap();
        assert!(sig.clone().with_timestamp(other.to_der()).is_err());
        assert!(sig.with_timestamp(b"\x30\x03\x02\x01\x01").is_err());
    }

    // The CMS verifier's regression, here because the signature is made by this module (CMS
    // sits below CAdES and knows nothing of it).

    /// `der` with the first SHA-256 OID (the one in `digestAlgorithms`, which comes before the
    /// SignerInfo's) turned into 2.16.840.1.101.3.4.2.0, which no one defines.
    fn unknown_digest_algorithm(der: &[u8]) -> Vec<u8> {
        let sha256 = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
        let at = der.windows(sha256.len()).position(|w| w == sha256).unwrap();
        let mut out = der.to_vec();
        out[at + sha256.len() - 1] = 0x00;
        out
    }

    /// Found by fuzzing (cms_verify): OpenSSL 3.0 leaks the content BIO of every
    /// `CMS_verify`/`PKCS7_verify` call on such a signature; both verifiers refuse it first.
    #[test]
    fn a_digest_algorithm_openssl_cannot_compute_is_refused_before_openssl() {
        let p = DevPki::generate().unwrap();
        let trust = TrustStore::from_certs(vec![p.root.clone()]).unwrap();
        let content = b"fuzz regression: unknown digestAlgorithms entry";
        let good = sign_detached(&p.gateway, content).unwrap();
        assert!(crate::cms::digests_computable(&good));
        assert!(crate::cms::verify_detached(&good, content, &trust).unwrap().valid);
        assert!(verify(&good, content, &trust).unwrap().valid);

        let bad = unknown_digest_algorithm(&good);
        assert!(!crate::cms::digests_computable(&bad));
        let v = crate::cms::verify_detached(&bad, content, &trust).unwrap();
        assert!(!v.valid && !v.trusted, "{v:?}");
        assert_eq!(v.reason.as_deref(), Some("unsupported digest algorithm"));
        let c = verify(&bad, content, &trust).unwrap();
        assert!(!c.valid && !c.trusted, "{c:?}");
        assert_eq!(c.reason.as_deref(), Some("unsupported digest algorithm"));
        // Not DER, or not a SignedData: nothing can be said for it.
        assert!(!crate::cms::digests_computable(b"\x30\x00"));
    }
}
