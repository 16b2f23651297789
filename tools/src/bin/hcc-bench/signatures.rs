//! The signatures phase: CMS and XML-DSig sign and verify per second on a 2 KB document, with
//! the key in a PKCS#12 file and in a SoftHSM token, beside `openssl speed rsa2048`.

use super::*;

/// Calls `f` repeatedly for about a second; returns calls per second.
/// Stops at the first failure: a signature that failed fast would flatter the figure.
pub(super) fn per_second(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) || n < 10 {
        f()?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `openssl speed rsa2048` on this machine: (sign/s, verify/s).
pub(super) fn openssl_speed_rsa2048() -> Option<(f64, f64)> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa2048"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000700s 0.000021s   1428.6  47619.0"
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("rsa 2048") || l.trim_start().starts_with("rsa  2048"))?;
    let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let n = nums.len();
    (n >= 2).then(|| (nums[n - 2], nums[n - 1]))
}

pub(super) fn signature_figures(softhsm: &std::path::Path) -> anyhow::Result<Value> {
    use hcc_signing::devpki::{CertSpec, DevPki, KeyKind, Role, issue};
    use hcc_signing::pki::{Identity, TrustStore};
    use hcc_signing::xml::dsig::{XmlTrust, sign_enveloped, verify_enveloped};
    let pki = DevPki::generate()?;
    let trust = TrustStore::from_certs(vec![pki.root.clone()])?;
    let (ek, ec) = issue(
        &CertSpec {
            common_name: "bench EC",
            key: KeyKind::EcP256,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        Some((&pki.root, &pki.root_key)),
    )?;
    let ec_id = Identity {
        key: ek.into(),
        cert: ec,
        chain: vec![],
    };
    let mut entries = String::new();
    let mut i = 0;
    while entries.len() < 1900 {
        entries.push_str(&format!("<Ntry><NtryRef>{i}</NtryRef><Amt Ccy=\"VND\">100000</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><RmtInf>HCC24112600{i:02}</RmtInf></Ntry>"));
        i += 1;
    }
    let xml = format!(
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\"><BkToCstmrDbtCdtNtfctn>{entries}</BkToCstmrDbtCdtNtfctn></Document>"
    );
    let content = xml.as_bytes().to_vec();
    let mut out = serde_json::Map::new();
    for (name, id) in [("rsa2048", &pki.gateway), ("p256", &ec_id)] {
        let sig = hcc_signing::cades::sign_detached(id, &content)?;
        out.insert(
            format!("cms_sign_{name}_per_s"),
            json!(per_second(|| {
                hcc_signing::cades::sign_detached(id, &content)?;
                Ok(())
            })?),
        );
        out.insert(
            format!("cms_verify_{name}_per_s"),
            json!(per_second(|| {
                let v = hcc_signing::cms::verify_detached(&sig, &content, &trust)?;
                anyhow::ensure!(v.valid && v.trusted, "the bench's own CMS signature does not verify: {v:?}");
                Ok(())
            })?),
        );
    }
    let signed = sign_enveloped(&content, &pki.gateway)?;
    out.insert(
        "xmldsig_sign_rsa2048_per_s".into(),
        json!(per_second(|| {
            sign_enveloped(&content, &pki.gateway)?;
            Ok(())
        })?),
    );
    out.insert(
        "xmldsig_verify_rsa2048_per_s".into(),
        json!(per_second(|| {
            verify_enveloped(&signed, &XmlTrust::Store(&trust))?;
            Ok(())
        })?),
    );
    out.insert("document_bytes".into(), json!(content.len()));

    // PAdES on a one-page result PDF: sign (parse, incremental update, CMS) and verify (find
    // every signature, check its byte range, verify the CMS, chain to the root).
    let pdf: &[u8] = include_bytes!("../../../../tests/fixtures/pdf/result-classic.pdf");
    let pades_sign = |id: &Identity, visible: bool| -> anyhow::Result<Vec<u8>> {
        let options = hcc_signing::pades::SignOptions {
            visible,
            time: 1_764_000_000,
            reserve: hcc_signing::pades::contents_reserve(id, false),
        };
        Ok(hcc_signing::pades::sign(pdf, id, &options)?)
    };
    let signed_pdf = pades_sign(&pki.gateway, false)?;
    out.insert(
        "pades_sign_rsa2048_per_s".into(),
        json!(per_second(|| pades_sign(&pki.gateway, false).map(drop))?),
    );
    out.insert(
        "pades_sign_visible_rsa2048_per_s".into(),
        json!(per_second(|| pades_sign(&pki.gateway, true).map(drop))?),
    );
    out.insert(
        "pades_verify_rsa2048_per_s".into(),
        json!(per_second(|| {
            let report = hcc_signing::pades::verify(&signed_pdf, &trust)?;
            anyhow::ensure!(
                report.len() == 1 && report[0].valid && report[0].trusted,
                "the bench's own PDF does not verify"
            );
            Ok(())
        })?),
    );
    out.insert("pdf_bytes".into(), json!(pdf.len()));

    // The same key in a SoftHSM2 token (PKCS#11) against the PKCS#12 key above, when SoftHSM2 is
    // installed: the cost of the round trip through the module.
    match softhsm_identity(&pki, softhsm) {
        Ok(Some(token_id)) => {
            out.insert(
                "cms_sign_rsa2048_pkcs11_per_s".into(),
                json!(per_second(|| {
                    hcc_signing::cades::sign_detached(&token_id, &content)?;
                    Ok(())
                })?),
            );
            out.insert(
                "pades_sign_rsa2048_pkcs11_per_s".into(),
                json!(per_second(|| pades_sign(&token_id, false).map(drop))?),
            );
        }
        Ok(None) => eprintln!("softhsm2 is not installed: no PKCS#11 figures"),
        Err(e) => eprintln!("no PKCS#11 figures: {e:#}"),
    }
    if let Some((s, v)) = openssl_speed_rsa2048() {
        out.insert("openssl_speed_rsa2048_sign_per_s".into(), json!(s));
        out.insert("openssl_speed_rsa2048_verify_per_s".into(), json!(v));
    }
    Ok(Value::Object(out))
}

/// A folder removed when dropped.
pub(super) struct ScratchDir(pub(super) std::path::PathBuf);

impl ScratchDir {
    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A token in the bench's private SoftHSM2 (folder `dir`, set up by `main`) holding the
/// development gateway key (imported, so it is sensitive and not extractable), and the identity
/// that signs through it. `None` without SoftHSM2.
pub(super) fn softhsm_identity(
    pki: &hcc_signing::devpki::DevPki,
    dir: &std::path::Path,
) -> anyhow::Result<Option<hcc_signing::pki::Identity>> {
    use anyhow::Context as _;
    let Some(module) = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file()) else {
        return Ok(None);
    };
    let key_pem = dir.join("gateway.key");
    std::fs::write(&key_pem, pki.gateway_key.private_key_to_pem_pkcs8()?)?;
    let cert_pem = dir.join("gateway.pem");
    std::fs::write(&cert_pem, pki.gateway.cert.to_pem()?)?;
    for args in [
        vec![
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "123456",
            "--so-pin",
            "12345678",
        ],
        vec![
            "--import",
            key_pem.to_str().unwrap_or_default(),
            "--token",
            "bench",
            "--label",
            "gateway",
            "--id",
            "01",
            "--pin",
            "123456",
        ],
    ] {
        let out = std::process::Command::new("softhsm2-util")
            .args(&args)
            .output()
            .context("softhsm2-util")?;
        anyhow::ensure!(
            out.status.success(),
            "softhsm2-util {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = hcc_signing::pkcs11::TokenConfig {
        module,
        token: "bench".into(),
        pin: "123456".into(),
        key_label: "gateway".into(),
    };
    let (id, _) = hcc_signing::pkcs11::token_identity(&config, &cert_pem)?;
    Ok(Some(id))
}

pub(super) fn print_signatures(v: &Value) {
    println!("{:<46} {:>12}", "signature figure (one core)", "per second");
    if let Some(m) = v.as_object() {
        for (k, val) in m {
            println!("{:<46} {:>12.0}", k, val.as_f64().unwrap_or(0.0));
        }
    }
}
