//! A development PKI: a root CA, the gateway's signing certificate (PEM and PKCS#12) and a
//! bank's certificate, for the demo and the tests (`hcc-gateway keys dev DIR`). Also the
//! certificate factory the tests use to make the awkward ones: expired, self-signed, EC.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};

use crate::pki::Identity;

pub const DEV_PKCS12_PASSWORD: &str = "dev-p12-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ca,
    /// digitalSignature + nonRepudiation.
    Signer,
    /// keyEncipherment only: a certificate that must not sign.
    EnciphermentOnly,
    /// A time-stamping authority: digitalSignature + nonRepudiation and the critical extended
    /// key usage timeStamping that RFC 3161 2.3 requires.
    Tsa,
}

pub struct CertSpec<'a> {
    pub common_name: &'a str,
    pub key: KeyKind,
    pub role: Role,
    /// Validity relative to now, in days (negative = in the past).
    pub from_days: i64,
    pub to_days: i64,
}

fn err(e: openssl::error::ErrorStack) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

pub fn new_key(kind: KeyKind) -> Result<PKey<Private>, openssl::error::ErrorStack> {
    match kind {
        KeyKind::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?),
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
    }
}

fn days_from_now(days: i64) -> Result<Asn1Time, openssl::error::ErrorStack> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Asn1Time::from_unix(now + days * 86_400)
}

/// Issues a certificate; `issuer` None makes it self-signed.
pub fn issue(spec: &CertSpec<'_>, issuer: Option<(&X509, &PKey<Private>)>) -> Result<(PKey<Private>, X509), openssl::error::ErrorStack> {
    let key = new_key(spec.key)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COUNTRYNAME, "VN")?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "hcc-gateway development")?;
    name.append_entry_by_nid(Nid::COMMONNAME, spec.common_name)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))?;
    b.set_pubkey(&key)?;
    let (from, to) = (days_from_now(spec.from_days)?, days_from_now(spec.to_days)?);
    b.set_not_before(&from)?;
    b.set_not_after(&to)?;
    match spec.role {
        Role::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        }
        Role::Signer => {
            b.append_extension(BasicConstraints::new().build()?)?;
            b.append_extension(KeyUsage::new().critical().digital_signature().non_repudiation().build()?)?;
        }
        Role::Tsa => {
            b.append_extension(BasicConstraints::new().build()?)?;
            b.append_extension(KeyUsage::new().critical().digital_signature().non_repudiation().build()?)?;
            b.append_extension(ExtendedKeyUsage::new().critical().time_stamping().build()?)?;
        }
        Role::EnciphermentOnly => {
            b.append_extension(BasicConstraints::new().build()?)?;
            b.append_extension(KeyUsage::new().critical().key_encipherment().build()?)?;
        }
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))?;
    b.append_extension(ski)?;
    let signing_key = issuer.map_or(&key, |(_, k)| k);
    b.sign(signing_key, MessageDigest::sha256())?;
    Ok((key, b.build()))
}

pub struct DevPki {
    pub root_key: PKey<Private>,
    pub root: X509,
    pub gateway: Identity,
    pub bank: Identity,
    /// The mock time-stamping authority's identity (`mock-tsa`).
    pub tsa: Identity,
    /// The private halves of `gateway`, `bank` and `tsa`, for writing them out as PEM and
    /// PKCS#12.
    pub gateway_key: PKey<Private>,
    pub bank_key: PKey<Private>,
    pub tsa_key: PKey<Private>,
}

impl DevPki {
    pub fn generate() -> Result<Self, openssl::error::ErrorStack> {
        let (root_key, root) = issue(
            &CertSpec {
                common_name: "HCC Dev Root CA",
                key: KeyKind::Rsa2048,
                role: Role::Ca,
                from_days: -1,
                to_days: 3650,
            },
            None,
        )?;
        let (gk, gc) = issue(
            &CertSpec {
                common_name: "hcc-gateway (dev)",
                key: KeyKind::Rsa2048,
                role: Role::Signer,
                from_days: -1,
                to_days: 825,
            },
            Some((&root, &root_key)),
        )?;
        let (bk, bc) = issue(
            &CertSpec {
                common_name: "Dev Bank host-to-host",
                key: KeyKind::Rsa2048,
                role: Role::Signer,
                from_days: -1,
                to_days: 825,
            },
            Some((&root, &root_key)),
        )?;
        let (tk, tc) = issue(
            &CertSpec {
                common_name: "HCC Dev Time-Stamping Authority",
                key: KeyKind::Rsa2048,
                role: Role::Tsa,
                from_days: -1,
                to_days: 825,
            },
            Some((&root, &root_key)),
        )?;
        Ok(DevPki {
            tsa: Identity {
                key: tk.clone().into(),
                cert: tc,
                chain: vec![root.clone()],
            },
            tsa_key: tk,
            gateway: Identity {
                key: gk.clone().into(),
                cert: gc,
                chain: vec![root.clone()],
            },
            bank: Identity {
                key: bk.clone().into(),
                cert: bc,
                chain: vec![root.clone()],
            },
            gateway_key: gk,
            bank_key: bk,
            root_key,
            root,
        })
    }

    /// Writes `root.pem`, `trust/root.pem`, `gateway.pem`, `gateway.key`, `gateway.p12`
    /// (password [`DEV_PKCS12_PASSWORD`]), `bank.pem`, `bank.key`, `tsa.pem`, `tsa.key`.
    /// Returns the paths.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir.join("trust"))?;
        let mut written = Vec::new();
        let mut put = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
            let p = dir.join(name);
            std::fs::write(&p, bytes)?;
            written.push(p);
            Ok(())
        };
        let root_pem = self.root.to_pem().map_err(err)?;
        put("root.pem", &root_pem)?;
        put("trust/root.pem", &root_pem)?;
        put("gateway.pem", &self.gateway.cert.to_pem().map_err(err)?)?;
        put("gateway.key", &self.gateway_key.private_key_to_pem_pkcs8().map_err(err)?)?;
        put("gateway.p12", &self.gateway_pkcs12(DEV_PKCS12_PASSWORD).map_err(err)?)?;
        put("bank.pem", &self.bank.cert.to_pem().map_err(err)?)?;
        put("bank.key", &self.bank_key.private_key_to_pem_pkcs8().map_err(err)?)?;
        put("tsa.pem", &self.tsa.cert.to_pem().map_err(err)?)?;
        put("tsa.key", &self.tsa_key.private_key_to_pem_pkcs8().map_err(err)?)?;
        Ok(written)
    }

    pub fn gateway_pkcs12(&self, password: &str) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut ca = openssl::stack::Stack::new()?;
        ca.push(self.root.clone())?;
        Pkcs12::builder()
            .name("hcc-gateway")
            .pkey(&self.gateway_key)
            .cert(&self.gateway.cert)
            .ca(ca)
            .build2(password)?
            .to_der()
    }
}

/// The forgery of the signer-selection attack, for tests: a certificate for a fresh key of the
/// same kind with `genuine`'s serial, subject, validity and extension profile, and an issuer
/// name that differs from `genuine`'s only in letter case (the first lowercase letter of its
/// organisation made uppercase, so that it sorts before `genuine` in a DER SET OF, where
/// OpenSSL meets it first). Self-signed with the fresh key: it chains nowhere.
pub fn lookalike(genuine: &X509, role: Role) -> Result<(PKey<Private>, X509), openssl::error::ErrorStack> {
    let kind = if genuine.public_key()?.ec_key().is_ok() {
        KeyKind::EcP256
    } else {
        KeyKind::Rsa2048
    };
    let key = new_key(kind)?;
    let mut issuer = X509NameBuilder::new()?;
    let mut changed = false;
    for e in genuine.issuer_name().entries() {
        let mut value = e.data().to_string()?;
        if !changed
            && e.object().nid() == Nid::ORGANIZATIONNAME
            && let Some(i) = value.find(|c: char| c.is_ascii_lowercase())
        {
            let upper = value[i..=i].to_ascii_uppercase();
            value.replace_range(i..=i, &upper);
            changed = true;
        }
        issuer.append_entry_by_nid(e.object().nid(), &value)?;
    }
    let issuer = issuer.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(genuine.serial_number())?;
    b.set_subject_name(genuine.subject_name())?;
    b.set_issuer_name(&issuer)?;
    b.set_pubkey(&key)?;
    b.set_not_before(genuine.not_before())?;
    b.set_not_after(genuine.not_after())?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().non_repudiation().build()?)?;
    if role == Role::Tsa {
        b.append_extension(ExtendedKeyUsage::new().critical().time_stamping().build()?)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((key, b.build()))
}

/// A timestamp token over SHA-256 of `data` made by hand, with any `genTime`
/// (`YYYYMMDDHHMMSSZ`): signed with `signer.key`, naming `signer.cert` as its signer and
/// carrying `signer.cert` and `signer.chain`. With the authority's own identity it is a
/// back-dated token; with the authority's certificate and another key (and a [`lookalike`] in
/// the chain), the forgery of the signer-selection attack.
pub fn timestamp_token(signer: &Identity, gen_time: &str, data: &[u8]) -> Result<Vec<u8>, crate::cms::CmsError> {
    let tst =
        crate::tsp::tst_info_der(gen_time, data, 0x0102_0304_0506).map_err(|e| crate::cms::CmsError::Sign(format!("TSTInfo: {e}")))?;
    crate::cades::sign_as(signer, &tst, crate::tsp::ID_CT_TST_INFO, true).map(crate::cades::CadesSignature::into_der)
}
