//! `mock-tsa --bind ADDR --keys DIR`: an RFC 3161 time-stamping authority whose tokens are
//! made by `openssl ts -reply` (which must be installed). `DIR` is what `hcc-gateway keys dev
//! DIR` wrote; the authority signs with `tsa.key`/`tsa.pem` and sends `root.pem` as its chain.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "A stand-in RFC 3161 time-stamping authority for hcc-gateway tests and demos")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9104")]
    bind: String,
    /// The development PKI folder (tsa.key, tsa.pem, root.pem).
    #[arg(long)]
    keys: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let read = |name: &str| std::fs::read(a.keys.join(name)).map_err(|e| anyhow::anyhow!("{}: {e}", a.keys.join(name).display()));
    let state = hcc_mocks::tsa::TsaState::new(&read("tsa.key")?, &read("tsa.pem")?, &read("root.pem")?)?;
    let running = hcc_mocks::tsa::spawn(&a.bind, state).await?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
