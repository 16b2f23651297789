//! Makes the signed seeds of the fuzz corpora (docs/fuzzing.md): what the fixtures in
//! tests/fixtures cannot give, because a signature must be made with a key. Run by
//! scripts/fuzz.sh as `cargo run -p hcc-signing --example fuzz_seeds -- FUZZ_DIR`; it writes:
//!
//! - `FUZZ_DIR/pki/`: a development PKI (kept when it is already there, so seeds from earlier
//!   runs stay trusted); the fuzz targets read `root.pem`, `bank.pem` and `gateway.pem`;
//! - `FUZZ_DIR/corpus/<target>/gen-*`: XML signed by the bank (camt054, xml_c14n, xml_dsig),
//!   CAdES and OpenSSL CMS signatures over [`CONTENT`] (cms_verify), timestamp responses and
//!   tokens from `openssl ts -reply` for the request over [`TSP_DATA`] with [`TSP_NONCE`]
//!   (tsp_response), and the PDF fixtures signed once, twice and visibly, also rewritten with
//!   a cross-reference stream by qpdf when it is installed (pdf_verify, pades_prepare).
//!
//! The fixed inputs are also in fuzz/src/lib.rs: keep them equal. The openssl command line is
//! the TSA (as in the tests, tokens are made by OpenSSL's own implementation); without it, or
//! without qpdf, those seeds are left out with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

use hcc_signing::devpki::{CertSpec, DevPki, KeyKind, Role, issue};
use hcc_signing::pades::{self, SignOptions};
use hcc_signing::pki::Identity;
use hcc_signing::tsp::TimestampRequest;
use hcc_signing::xml::dsig;
use hcc_signing::{cades, sha256};

const CONTENT: &[u8] = b"hcc-gateway fuzz seed: detached content\n";
const TSP_DATA: &[u8] = b"hcc-gateway fuzz seed: timestamped data\n";
const TSP_NONCE: [u8; 8] = [0x42, 0x13, 0x57, 0x9b, 0xdf, 0x02, 0x46, 0x8a];
/// 2026-01-01T00:00:00Z, the `/M` of the signed PDFs.
const SIGNING_TIME: i64 = 1_767_225_600;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn identity(dir: &Path, name: &str) -> Result<Identity> {
    let mut certs = std::fs::read(dir.join(format!("{name}.pem")))?;
    certs.extend(std::fs::read(dir.join("root.pem"))?);
    Ok(Identity::from_pem(&std::fs::read(dir.join(format!("{name}.key")))?, &certs)?)
}

/// The PKI in `dir`, made there first when any part of it is missing.
fn pki(dir: &Path) -> Result<(Identity, Identity)> {
    let loaded = identity(dir, "gateway").and_then(|g| Ok((g, identity(dir, "bank")?)));
    if let (Ok(ids), true, true) = (loaded, dir.join("tsa.key").exists(), dir.join("root.key").exists()) {
        return Ok(ids);
    }
    let p = DevPki::generate()?;
    p.write(dir)?;
    // The root's key too, which issues the EC signer below.
    std::fs::write(dir.join("root.key"), p.root_key.private_key_to_pem_pkcs8()?)?;
    Ok((p.gateway, p.bank))
}

struct Out {
    corpus: PathBuf,
    written: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("gen-{name}")), bytes)?;
        self.written += 1;
        Ok(())
    }
}

/// Runs a tool; `None` (with a note) when it is missing or fails.
fn tool(program: &str, args: &[&str]) -> Option<()> {
    match Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => {
            eprintln!(
                "fuzz_seeds: {program} {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("fuzz_seeds: {program} is not available ({e}); its seeds are left out");
            None
        }
    }
}

fn text(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn xml_seeds(out: &mut Out, fixtures: &Path, bank: &Identity) -> Result<()> {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures.join("xml"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x.xml").to_string();
        match dsig::sign_enveloped(&std::fs::read(&path)?, bank) {
            Ok(signed) => {
                for target in ["camt054", "xml_c14n", "xml_dsig"] {
                    out.put(target, &format!("signed-{name}"), &signed)?;
                }
            }
            Err(e) => eprintln!("fuzz_seeds: {name} cannot be signed ({e}); only the fixture itself is a seed"),
        }
    }
    Ok(())
}

fn cms_seeds(out: &mut Out, pki_dir: &Path, work: &Path, gateway: &Identity, cnf: Option<&Path>) -> Result<()> {
    let sig = cades::sign(gateway, CONTENT)?;
    out.put("cms_verify", "cades.der", sig.to_der())?;
    let (ec_key, ec_cert) = {
        let root = openssl::x509::X509::from_pem(&std::fs::read(pki_dir.join("root.pem"))?)?;
        let root_key = openssl::pkey::PKey::private_key_from_pem(&std::fs::read(pki_dir.join("root.key"))?)?;
        let spec = CertSpec {
            common_name: "hcc-gateway (dev, EC)",
            key: KeyKind::EcP256,
            role: Role::Signer,
            from_days: -1,
            to_days: 825,
        };
        issue(&spec, Some((&root, &root_key)))?
    };
    let ec = Identity {
        key: ec_key.into(),
        cert: ec_cert,
        chain: Vec::new(),
    };
    out.put("cms_verify", "cades-ec.der", cades::sign(&ec, CONTENT)?.to_der())?;
    if let Some(cnf) = cnf {
        let req = TimestampRequest::for_data(sig.signature_value())?;
        if let Some(resp) = ts_reply(work, cnf, req.der(), "cades")
            && let Ok(token) = req.accept(&resp)
        {
            out.put("cms_verify", "cades-t.der", sig.clone().with_timestamp(&token)?.to_der())?;
        }
    }
    // OpenSSL's own CMS: other attributes (SMIMECapabilities), other encodings.
    let content = work.join("content.bin");
    std::fs::write(&content, CONTENT)?;
    let p7s = work.join("openssl.p7s");
    let (signer, key, root) = (pki_dir.join("gateway.pem"), pki_dir.join("gateway.key"), pki_dir.join("root.pem"));
    #[rustfmt::skip]
    let args = ["cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256", "-in", text(&content),
        "-signer", text(&signer), "-inkey", text(&key), "-certfile", text(&root), "-out", text(&p7s)];
    if tool("openssl", &args).is_some() {
        out.put("cms_verify", "openssl-cms.der", &std::fs::read(&p7s)?)?;
    }
    Ok(())
}

/// An OpenSSL TSA configuration signing with the PKI's `tsa.pem`/`tsa.key`.
fn tsa_config(dir: &Path) -> Result<PathBuf> {
    let cnf = dir.join("tsa.cnf");
    std::fs::write(dir.join("work/tsaserial"), "01\n")?;
    std::fs::write(
        &cnf,
        format!(
            "[ tsa ]\ndefault_tsa = t\n[ t ]\ndir = {dir}\nserial = $dir/work/tsaserial\nsigner_cert = $dir/tsa.pem\n\
             certs = $dir/root.pem\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.32473.1.1\n\
             digests = sha256, sha384, sha512\naccuracy = secs:1, millisecs:500\nclock_precision_digits = 3\ness_cert_id_alg = sha256\n",
            dir = text(dir)
        ),
    )?;
    Ok(cnf)
}

/// `openssl ts -reply` to the DER request `query` (with `-token_out`, the bare token).
fn ts_reply_with(dir: &Path, cnf: &Path, query: &[u8], name: &str, token_out: bool) -> Option<Vec<u8>> {
    let (q, r) = (dir.join(format!("{name}.tsq")), dir.join(format!("{name}.tsr")));
    std::fs::write(&q, query).ok()?;
    let mut args = vec!["ts", "-reply", "-config", text(cnf), "-queryfile", text(&q), "-out", text(&r)];
    if token_out {
        args.push("-token_out");
    }
    tool("openssl", &args)?;
    std::fs::read(r).ok()
}

fn ts_reply(dir: &Path, cnf: &Path, query: &[u8], name: &str) -> Option<Vec<u8>> {
    ts_reply_with(dir, cnf, query, name, false)
}

fn tsp_seeds(out: &mut Out, dir: &Path, cnf: &Path) -> Result<()> {
    let req = TimestampRequest::with_nonce(sha256(TSP_DATA), &TSP_NONCE)?;
    if let Some(resp) = ts_reply(dir, cnf, req.der(), "granted") {
        out.put("tsp_response", "granted.tsr", &resp)?;
    }
    if let Some(token) = ts_reply_with(dir, cnf, req.der(), "token", true) {
        out.put("tsp_response", "token.der", &token)?;
    }
    // The same request over other data: a granted response whose imprint is not ours.
    let other = TimestampRequest::with_nonce(sha256(b"other data"), &TSP_NONCE)?;
    if let Some(resp) = ts_reply(dir, cnf, other.der(), "other") {
        out.put("tsp_response", "other-imprint.tsr", &resp)?;
    }
    // rejection / badDataFormat, as mock-tsa answers a request it cannot read.
    out.put(
        "tsp_response",
        "rejection.tsr",
        &[0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x02, 0x04],
    )?;
    Ok(())
}

fn pdf_seeds(out: &mut Out, fixtures: &Path, gateway: &Identity, work: &Path) -> Result<()> {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures.join("pdf"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    for path in paths {
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("x").to_string();
        let bytes = std::fs::read(&path)?;
        // The same document with object streams and a cross-reference stream.
        let xref = work.join(format!("{name}-xref-stream.pdf"));
        if tool("qpdf", &["--object-streams=generate", text(&path), text(&xref)]).is_some() {
            let x = std::fs::read(&xref)?;
            out.put("pdf_verify", &format!("{name}-xref-stream.pdf"), &x)?;
            out.put("pades_prepare", &format!("{name}-xref-stream.pdf"), &x)?;
            sources.push((format!("{name}-xref-stream"), x));
        }
        sources.push((name, bytes));
    }
    for (name, bytes) in sources {
        for visible in [false, true] {
            let options = SignOptions {
                visible,
                time: SIGNING_TIME,
                reserve: pades::contents_reserve(gateway, false),
            };
            let kind = if visible { "visible" } else { "invisible" };
            let once = match pades::sign(&bytes, gateway, &options) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("fuzz_seeds: {name} cannot be signed ({e})");
                    continue;
                }
            };
            out.put("pdf_verify", &format!("{name}-signed-{kind}.pdf"), &once)?;
            out.put("pades_prepare", &format!("{name}-signed-{kind}.pdf"), &once)?;
            if !visible {
                let twice = pades::sign(&once, gateway, &options)?;
                out.put("pdf_verify", &format!("{name}-signed-twice.pdf"), &twice)?;
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let fuzz_dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: fuzz_seeds FUZZ_DIR")?);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let pki_dir = fuzz_dir.join("pki");
    let (gateway, bank) = pki(&pki_dir)?;
    let mut out = Out {
        corpus: fuzz_dir.join("corpus"),
        written: 0,
    };
    xml_seeds(&mut out, &fixtures, &bank)?;
    // Requests, responses and rewritten files on the way.
    let work = pki_dir.join("work");
    std::fs::create_dir_all(&work)?;
    let cnf = tsa_config(&pki_dir)?;
    let has_openssl = tool("openssl", &["version"]).is_some();
    cms_seeds(&mut out, &pki_dir, &work, &gateway, has_openssl.then_some(cnf.as_path()))?;
    if has_openssl {
        tsp_seeds(&mut out, &work, &cnf)?;
    }
    pdf_seeds(&mut out, &fixtures, &gateway, &work)?;
    println!("fuzz_seeds: {} signed seeds in {}", out.written, out.corpus.display());
    Ok(())
}
