//! `mock-portal --bind ADDR`: a stand-in DVCQG portal (auth, integration, share endpoints).

use std::time::Duration;

use clap::Parser;
use hcc_mocks::dvcqg::{PortalConfig, PortalState};

#[derive(Parser)]
#[command(about = "A stand-in National Public Service Portal for hcc-gateway tests and demos")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9101")]
    bind: String,
    #[arg(long, default_value = "hcc-dev")]
    username: String,
    #[arg(long, env = "MOCK_PORTAL_PASSWORD", default_value = "hcc-dev-password")]
    password: String,
    #[arg(long, default_value = "000.00.22.H46")]
    madonvi: String,
    #[arg(long, default_value = "HCC-DEV")]
    paygov_partner: String,
    #[arg(long, env = "MOCK_PAYGOV_SECRET", default_value = "paygov-dev-secret")]
    paygov_secret: String,
    /// How long a portal session lives.
    #[arg(long, default_value_t = 1_800_000)]
    session_lifetime_ms: u64,
    /// Refuse (HTTP 403, as an LGSP) every call without this `dstcode` header.
    #[arg(long)]
    required_dstcode: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let state = PortalState::new(PortalConfig {
        username: a.username,
        password: a.password,
        madonvi: a.madonvi,
        session_lifetime: Duration::from_millis(a.session_lifetime_ms),
        paygov_partner: a.paygov_partner,
        paygov_secret: a.paygov_secret,
    });
    state.require_dstcode(a.required_dstcode);
    let running = hcc_mocks::dvcqg::spawn(&a.bind, state)?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
