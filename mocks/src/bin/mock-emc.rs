//! `mock-emc --bind ADDR [--token TOKEN]`: the Ministry's EMC tracking (`POST /TrackingMCDT`),
//! recording what it accepts (`GET /_mock/emc/received`).

use clap::Parser;

#[derive(Parser)]
#[command(about = "A stand-in for the Ministry's EMC tracking (TrackingMCDT) for hcc-gateway tests and demos")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9107")]
    bind: String,
    /// When set, every call must carry `Authorization: Bearer <token>`.
    #[arg(long, env = "MOCK_EMC_TOKEN")]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state = match args.token.as_deref() {
        Some(t) if !t.is_empty() => hcc_mocks::emc::EmcState::with_token(t),
        _ => hcc_mocks::emc::EmcState::new(),
    };
    let running = hcc_mocks::emc::spawn(&args.bind, state)?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
