//! `mock-dvclt --bind ADDR`: a stand-in civil-registration link-up (DVCLT) that dossiers are
//! polled from, acknowledged to and given status on.

use clap::Parser;
use hcc_mocks::dvclt::{DvcltConfig, DvcltState};

#[derive(Parser)]
#[command(about = "A stand-in DVCLT civil-registration link-up for hcc-gateway tests and demos")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9105")]
    bind: String,
    #[arg(long, default_value = "hcc-dev")]
    username: String,
    #[arg(long, env = "MOCK_DVCLT_PASSWORD", default_value = "hcc-dev-dvclt-password")]
    password: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let state = DvcltState::new(DvcltConfig {
        username: a.username,
        password: a.password,
    });
    let running = hcc_mocks::dvclt::spawn(&a.bind, state)?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
