//! `mock-bank --bind ADDR --keys DIR`: VNPAY (IPN sender) and a host-to-host bank (signed
//! camt.054 sender). `DIR` is what `hcc-gateway keys dev DIR` wrote; the bank signs with
//! `bank.key`/`bank.pem` from it. The bank's inclusive-C14N, rsa-sha512 and sha512 signing
//! variants are made by `xmlsec1 --sign`, which must then be installed (`mocks/src/bank.rs`).

use std::path::PathBuf;

use clap::Parser;
use hcc_signing::devpki::{CertSpec, KeyKind, Role, issue};
use hcc_signing::pki::Identity;

#[derive(Parser)]
#[command(about = "A stand-in VNPAY and host-to-host bank for hcc-gateway tests and demos")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9102")]
    bind: String,
    #[arg(long, default_value = "HCCDEV01")]
    tmn_code: String,
    #[arg(long, env = "MOCK_VNPAY_HASH_SECRET", default_value = "vnpay-dev-hash-secret")]
    hash_secret: String,
    /// The development PKI folder (bank.key and bank.pem).
    #[arg(long)]
    keys: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let bank = Identity::from_pem(&std::fs::read(a.keys.join("bank.key"))?, &std::fs::read(a.keys.join("bank.pem"))?)?;
    let (key, cert) = issue(
        &CertSpec {
            common_name: "Stranger Bank",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        None,
    )?;
    let state = hcc_mocks::bank::BankState::new(
        &a.tmn_code,
        &a.hash_secret,
        bank,
        Identity {
            key: key.into(),
            cert,
            chain: vec![],
        },
    );
    let running = hcc_mocks::bank::spawn(&a.bind, state)?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
