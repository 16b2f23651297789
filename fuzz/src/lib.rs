//! What the fuzz targets share: the trust material the verifiers are given, and the fixed
//! inputs the seed corpora were made for (docs/fuzzing.md).
//!
//! The seeds (signed XML, CMS, PDF, timestamp responses) are made at run time by
//! `cargo run -p hcc-signing --example fuzz_seeds`, which also writes the development PKI that
//! signed them to `fuzz/pki/`. A target reads that PKI, so a seed's signature verifies and
//! the fuzzer starts from the deep end of each verifier; without it (a target run by hand on an
//! empty corpus) a fresh PKI is generated and the verifiers still run, only less deep.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hcc_signing::devpki::DevPki;
use hcc_signing::pki::TrustStore;
use openssl::x509::X509;

/// The detached content every CMS seed signs; the CMS target verifies against it. Keep it
/// equal to `CONTENT` in signing/examples/fuzz_seeds.rs.
pub const CONTENT: &[u8] = b"hcc-gateway fuzz seed: detached content\n";
/// The data and nonce of the timestamp request every TSP seed answers. Keep them equal to
/// `TSP_DATA` and `TSP_NONCE` in signing/examples/fuzz_seeds.rs.
pub const TSP_DATA: &[u8] = b"hcc-gateway fuzz seed: timestamped data\n";
pub const TSP_NONCE: [u8; 8] = [0x42, 0x13, 0x57, 0x9b, 0xdf, 0x02, 0x46, 0x8a];
/// VNPAY and PayGov merchant settings the payment targets check against (the committed seeds
/// use them too).
pub const TMN_CODE: &str = "HCCFUZZ1";
pub const PARTNER_CODE: &str = "HCCFUZZ";
pub const SECRET: &str = "fuzzing-secret-of-32-bytes-long!";

pub struct Trust {
    /// Trusts the PKI's root.
    pub store: TrustStore,
    /// The bank's certificate (pinned for camt.054 documents).
    pub bank: X509,
    /// The gateway's certificate (the PAdES preparer writes its name into the stamp).
    pub gateway: X509,
}

fn pki_dir() -> PathBuf {
    std::env::var_os("HCC_FUZZ_PKI")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("pki"))
}

fn load(dir: &Path) -> Option<(X509, X509, X509)> {
    let pem = |name: &str| std::fs::read(dir.join(name)).ok().and_then(|b| X509::from_pem(&b).ok());
    Some((pem("root.pem")?, pem("bank.pem")?, pem("gateway.pem")?))
}

/// The trust material, read once per process.
pub fn trust() -> &'static Trust {
    static TRUST: OnceLock<Trust> = OnceLock::new();
    TRUST.get_or_init(|| {
        let dir = pki_dir();
        let (root, bank, gateway) = load(&dir).unwrap_or_else(|| {
            eprintln!(
                "hcc-fuzz: no PKI in {} (run scripts/fuzz.sh, which writes it with the seeds); using a fresh one",
                dir.display()
            );
            let p = DevPki::generate().expect("openssl generates a development PKI");
            (p.root, p.bank.cert, p.gateway.cert)
        });
        Trust {
            store: TrustStore::from_certs(vec![root]).expect("a trust store of one root"),
            bank,
            gateway,
        }
    })
}
