//! `hcc-demo`: the gateway with a mock portal, PayGov, VNPAY, bank and centre in one process,
//! on the embedded queue unless `--redis URL` (see the README's first command).

use anyhow::Context;
use clap::Parser;

/// Gateway and mocks in one process: a province's centre syncing dossiers, live progress.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Use this Redis instead of the embedded queue, e.g. redis://127.0.0.1:6379/0.
    #[arg(long)]
    redis: Option<String>,
    /// Exit when done: 0 when everything was delivered in order, non-zero otherwise.
    #[arg(long)]
    once: bool,
    /// How many dossiers the centre syncs.
    #[arg(long, default_value_t = 300)]
    dossiers: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { redis, once, dossiers } = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(hcc_tools::demo::run(hcc_tools::demo::DemoOptions { redis, once, dossiers }))?;
    Ok(())
}
