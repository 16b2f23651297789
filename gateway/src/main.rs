//! The `hcc-gateway` binary: the service and its operator commands.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hcc_gateway::app::{Application, Workers};

#[derive(Parser)]
#[command(
    name = "hcc-gateway",
    version,
    about = "Connects public administrative service centres to the national portal, payment providers and banks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery workers.
    Serve {
        /// Serve the API only, without delivery workers.
        #[arg(long)]
        no_workers: bool,
    },
    /// Queue statistics of a running gateway, as a table.
    Queues {
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Dead letters of a running gateway: list, replay, discard.
    Dead {
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// One dossier's messages to the portal, its portal status and whether it is blocked.
    Dossier {
        /// The dossier's MaHoSo.
        ma_ho_so: String,
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Print the gateway's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The national procedure catalogue: `sync` (ask for a pull now; `--wait` follows it),
    /// `status`, `show MATTHC`, `search [--q WORDS] [--linh-vuc CODE]`.
    Catalogue {
        #[command(subcommand)]
        command: CatalogueCommand,
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// The evidence log: `verify [--from RFC3339] [--to RFC3339]` recomputes every chain in
    /// `evidence.dir` and checks every timestamp token against `evidence.tsa_ca`; exits 1 at
    /// any break, naming the first broken record.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Dossiers handed down by the portal's push or the link-up, newest first, with their
    /// source, files and acknowledgement; `dossier MAHOSO` shows one with its messages.
    Inbound {
        /// Only this source's: dvcqg or dvclt.
        #[arg(long)]
        source: Option<String>,
        /// How many, at most 500.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Print the gateway's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Payments of a running gateway, newest change first, filtered; `payments qr
    /// MaThamChieu` draws a VietQR payment's code for the citizen at the counter.
    Payments {
        #[command(subcommand)]
        command: Option<PaymentsCommand>,
        /// pending, paid, failed, amount_mismatch, reversed, expired or duplicate.
        #[arg(long)]
        status: Option<String>,
        /// Only this dossier's payments.
        #[arg(long = "ma-ho-so")]
        ma_ho_so: Option<String>,
        /// Only payments changed at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Print the gateway's JSON answers instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Bank credits and reversals that paid or reversed nothing (the unmatched list), newest
    /// first; assign or return them through the API (docs/operations.md).
    Unmatched {
        /// open (default), assigned or returned.
        #[arg(long, default_value = "open")]
        state: String,
        /// Only this configured bank's entries.
        #[arg(long)]
        bank: Option<String>,
        #[arg(long, env = "HCC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Print the gateway's JSON answers instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Key material commands.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    Verify {
        /// Only the days from this time on (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only the days up to this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum CatalogueCommand {
    /// Asks for a sync now (admin key); `--wait` follows it to the end (at most 30 minutes).
    Sync {
        #[arg(long)]
        wait: bool,
    },
    /// The sync's state and the catalogue's size.
    Status,
    /// One procedure as the portal sent it.
    Show {
        #[arg(value_name = "MaTTHC")]
        code: String,
    },
    /// Procedures whose code or name has these words (case and diacritics aside), of a field.
    Search {
        #[arg(long)]
        q: Option<String>,
        #[arg(long = "linh-vuc")]
        linh_vuc: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PaymentsCommand {
    /// Draws a VietQR payment's code in the terminal, with its amount, agency and time left.
    Qr {
        /// The payment's MaThamChieu.
        #[arg(value_name = "MaThamChieu")]
        reference: String,
    },
}

#[derive(Subcommand)]
enum DeadCommand {
    /// List the dead letters of a queue.
    List {
        #[arg(long, default_value = "dvcqg")]
        queue: String,
    },
    /// Replay one dead letter, or all of them with --all.
    Replay {
        #[arg(long, default_value = "dvcqg")]
        queue: String,
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Discard one dead letter for good.
    Discard {
        #[arg(long, default_value = "dvcqg")]
        queue: String,
        id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a development PKI to DIR: a root CA, the gateway's certificate (PEM and PKCS#12)
    /// and a bank's certificate. Never for production.
    Dev { dir: std::path::PathBuf },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration; print every problem; exit non-zero on any.
    Check,
}

fn load_settings() -> anyhow::Result<hcc_config::Settings> {
    Ok(hcc_config::load(&hcc_config::Source::from_process_env())?)
}

type CliFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, hcc_gateway::cli::CliError>>>>;

/// Runs one operator command against the gateway at `url`; errors go to stderr, exit 1.
fn operator(url: &str, f: impl FnOnce(hcc_gateway::cli::Client) -> CliFuture) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = hcc_gateway::cli::Client::new(url, std::env::var("HCC_API_KEY").ok()).map(f);
    let outcome = match result {
        Ok(fut) => rt.block_on(fut),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Queues { url } => operator(&url, |c| Box::pin(async move { c.queues().await })),
        Command::Dead { url, command } => match command {
            DeadCommand::List { queue } => operator(&url, |c| Box::pin(async move { c.dead_list(&queue).await })),
            DeadCommand::Replay { queue, id, all } => {
                if id.is_none() && !all {
                    anyhow::bail!("give a dead letter's ID, or --all to replay every one");
                }
                operator(&url, |c| Box::pin(async move { c.dead_replay(&queue, id.as_deref()).await }))
            }
            DeadCommand::Discard { queue, id } => operator(&url, |c| Box::pin(async move { c.dead_discard(&queue, &id).await })),
        },
        Command::Dossier { ma_ho_so, url, json } => operator(&url, |c| Box::pin(async move { c.dossier(&ma_ho_so, json).await })),
        Command::Catalogue { command, url } => match command {
            CatalogueCommand::Sync { wait } => operator(&url, |c| {
                Box::pin(async move { c.catalogue_sync(wait, std::time::Duration::from_secs(1800)).await })
            }),
            CatalogueCommand::Status => operator(&url, |c| Box::pin(async move { c.catalogue_status().await })),
            CatalogueCommand::Show { code } => operator(&url, |c| Box::pin(async move { c.catalogue_show(&code).await })),
            CatalogueCommand::Search { q, linh_vuc, json } => operator(&url, |c| {
                Box::pin(async move { c.catalogue_search(q.as_deref(), linh_vuc.as_deref(), json).await })
            }),
        },
        Command::Evidence {
            command: EvidenceCommand::Verify { from, to },
        } => {
            let settings = load_settings()?;
            let code = hcc_gateway::evidence::verify::command(&settings, from.as_deref(), to.as_deref())?;
            std::process::exit(code);
        }
        Command::Inbound { source, limit, url, json } => {
            operator(&url, |c| Box::pin(async move { c.inbound(source.as_deref(), limit, json).await }))
        }
        Command::Payments {
            command: Some(PaymentsCommand::Qr { reference }),
            url,
            ..
        } => operator(&url, |c| Box::pin(async move { c.payment_qr(&reference).await })),
        Command::Payments {
            command: None,
            status,
            ma_ho_so,
            since,
            url,
            json,
        } => operator(&url, |c| {
            Box::pin(async move {
                let filter = hcc_gateway::cli::PaymentFilter { status, ma_ho_so, since };
                c.payments(&filter, json).await
            })
        }),
        Command::Unmatched { state, bank, url, json } => {
            operator(&url, |c| Box::pin(async move { c.unmatched(&state, bank.as_deref(), json).await }))
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => match hcc_config::load(&hcc_config::Source::from_process_env()) {
            Ok(s) => {
                // The sections the core keeps raw are typed and checked by their owners, the
                // destinations and the payment providers: build each (nothing is started) and
                // report every problem, as start-up does.
                let problems = hcc_gateway::app::check_sections(&s, &hcc_adapters::standard());
                if !problems.is_empty() {
                    for p in problems {
                        eprintln!("{p}");
                    }
                    std::process::exit(1);
                }
                println!(
                    "configuration OK (HCC_ENV={}, queue.backend={:?}, {} API keys)",
                    s.env_name,
                    s.queue.backend,
                    s.auth.keys.len()
                );
                Ok(())
            }
            Err(e) => {
                for p in e.problems() {
                    eprintln!("{p}");
                }
                std::process::exit(1);
            }
        },
        Command::Keys {
            command: KeysCommand::Dev { dir },
        } => {
            let pki = hcc_signing::devpki::DevPki::generate().context("cannot generate keys")?;
            let written = pki.write(&dir).with_context(|| format!("cannot write to {}", dir.display()))?;
            for p in &written {
                println!("wrote {}", p.display());
            }
            println!();
            println!("To use them:");
            println!("  HCC__SIGNING__PKCS12={}", dir.join("gateway.p12").display());
            println!("  HCC__SIGNING__PKCS12_PASSWORD={}", hcc_signing::devpki::DEV_PKCS12_PASSWORD);
            println!("  HCC__TRUST__CA_DIR={}", dir.join("trust").display());
            println!("  HCC__BANKS__DEVBANK__CERT={}", dir.join("bank.pem").display());
            Ok(())
        }
        Command::Serve { no_workers } => {
            let settings = load_settings()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(async move {
                // Traces start first, so that the subscriber has their layer from the start.
                let telemetry = hcc_gateway::telemetry::Telemetry::start(&settings.telemetry);
                let tracer = telemetry.as_ref().ok().and_then(Option::as_ref).map(|t| t.tracer());
                hcc_gateway::logging::init_with_traces(&settings.log, tracer);
                let telemetry = telemetry?;
                if telemetry.is_some() {
                    hcc_adapters::http::propagate_traces(hcc_gateway::telemetry::traceparent_of, settings.trace_withheld_from());
                }
                let workers = if no_workers { Workers::Off } else { Workers::On };
                let served = async {
                    let app = Application::build(settings, workers).await?;
                    app.run_until_signalled().await?;
                    anyhow::Ok(())
                }
                .await;
                if let Some(t) = telemetry {
                    t.shutdown().await;
                }
                served
            })
        }
    }
}
