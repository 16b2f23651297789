//! `mock-centre --bind ADDR --secret whsec_...`: receives and verifies the gateway's webhooks.

use clap::Parser;
use hcc_signing::webhook::WebhookSecret;

#[derive(Parser)]
#[command(about = "A stand-in centre that receives and verifies Standard Webhooks from hcc-gateway")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9103")]
    bind: String,
    /// The shared secret, `whsec_<base64>` (the local profile's by default).
    #[arg(long, env = "MOCK_CENTRE_SECRET", default_value = "whsec_ZGV2LWNlbnRyZS13ZWJob29rLXNlY3JldA==")]
    secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = WebhookSecret::parse(&args.secret)?;
    let (running, _state) = hcc_mocks::centre::spawn(&args.bind, secret)?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
