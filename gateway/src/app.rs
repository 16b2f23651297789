//! Builds the whole service from its settings (queue, engine, adapters, HTTP server) the same
//! way for the binary, the demo and the tests, in the manner of zero2prod's
//! `Application::build`: bind first (port 0 picks a free port), then run until told to stop.
//!
//! The destinations come from a [`Registry`]: each one is built from its own settings section,
//! gets a lane in the engine, and has its ingest routes served and documented. Nothing here
//! names one.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use hcc_adapters::Adapter;
use hcc_adapters::registry::Registry;
use hcc_config::{Problem, QueueBackendKind, RedisMode, Settings};

use crate::background::Background;
use crate::engine::{Engine, EngineBuilder, EngineHandle, LaneConfig};
use crate::http::{self, auth::Keyring, body::BodyLimit, body::BodyReading};
use crate::storage::{RedisAccess, RedisOptions, RedisTopology, StorageError, Store};

/// How long shutdown waits for the background tasks after cancelling them. Each stops at its
/// next select; the longest step one may be in is a store call, which its own timeouts bound.
const TASKS_STOP_WITHIN: Duration = Duration::from_secs(10);
/// How long shutdown waits for the audit writer to write the lines queued before it, retries
/// included (five tries of one batch take about 6 s).
const AUDIT_FLUSH_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error("{0}")]
    Partitions(crate::storage::PartitionError),
    #[error("configuration problems:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Settings(Vec<Problem>),
}

/// Sections no counterpart of `registry` claims (`[payments]` is the payments' own).
fn unclaimed_sections(settings: &Settings, registry: &Registry) -> Vec<Problem> {
    let mut claimed = registry.names();
    claimed.push(crate::payments::SECTION);
    claimed.push(crate::inbound::SECTION);
    claimed.push(crate::catalogue::SECTION);
    claimed.push(crate::evidence::SECTION);
    settings.unclaimed_sections(&claimed)
}

/// Everything wrong with the sections the registry's counterparts own, the `[payments]`
/// section, and every section nobody claims, all at once (for `config check` and start-up).
pub fn check_sections(settings: &Settings, registry: &Registry) -> Vec<Problem> {
    let mut problems = unclaimed_sections(settings, registry);
    problems.extend(crate::inbound::settings_problems(settings));
    problems.extend(crate::catalogue::settings_problems(settings));
    problems.extend(crate::evidence::settings_problems(settings));
    match registry.build(settings) {
        Ok(built) => problems.extend(crate::payments::settings_problems(settings, &built.providers)),
        Err(p) => problems.extend(p),
    }
    problems
}

/// Every queue with a lane is stored in the configured partition count, or start-up stops
/// (`queue.partitions` changed under a queue that still holds messages). With Redis out of
/// reach the check cannot run; the process starts (not ready) and says so.
async fn check_partitions(handle: &EngineHandle) -> Result<(), BuildError> {
    for name in handle.destinations() {
        match handle.queue.check_partitions(name, crate::storage::now_ms()).await {
            Ok(()) => {}
            Err(crate::storage::PartitionError::Storage(e)) => {
                tracing::warn!(queue = name, error = %e, "cannot check the queue's partition count at start-up");
            }
            Err(e) => return Err(BuildError::Partitions(e)),
        }
    }
    Ok(())
}

/// Whether this process runs delivery workers. Tests of the API alone, and operators who split
/// API and workers, run without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    On,
    Off,
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    engine: Option<Engine>,
    handle: EngineHandle,
    grace: Duration,
    /// Every long-lived task of the process, and the audit writer.
    background: Background,
}

pub fn build_store(settings: &Settings) -> Result<Store, StorageError> {
    Ok(match settings.queue.backend {
        QueueBackendKind::Redis => {
            let q = &settings.queue;
            let nodes = || q.redis_nodes.iter().map(|n| n.expose().to_string()).collect();
            Store::redis_with(&RedisOptions {
                topology: match q.redis_mode {
                    RedisMode::Standalone => RedisTopology::Standalone {
                        url: q.redis_url.expose().to_string(),
                    },
                    RedisMode::Sentinel => RedisTopology::Sentinel {
                        sentinels: nodes(),
                        master: q.sentinel_master.clone(),
                    },
                    RedisMode::Cluster => RedisTopology::Cluster { nodes: nodes() },
                },
                pool_size: q.pool_size,
                prefix: q.key_prefix.clone(),
                min_replicas: q.min_replicas,
                replica_timeout: Duration::from_millis(q.replica_timeout_ms),
                access: RedisAccess {
                    username: q.redis_username.clone(),
                    password: q.redis_password.clone(),
                    sentinel_password: q.sentinel_password.clone(),
                    ca_file: q.redis_ca.clone(),
                },
            })?
        }
        QueueBackendKind::Memory => Store::memory(),
    })
}

/// The adapters the settings switch on, or every problem with the counterparts' sections.
pub fn build_adapters(settings: &Settings, registry: &Registry) -> Result<Vec<Arc<dyn Adapter>>, BuildError> {
    registry.build(settings).map(|b| b.adapters).map_err(BuildError::Settings)
}

impl Application {
    /// The gateway with the standard counterparts ([`hcc_adapters::standard`]).
    pub async fn build(settings: Settings, workers: Workers) -> Result<Self, BuildError> {
        Self::build_with_registry(settings, hcc_adapters::standard(), workers).await
    }

    /// The gateway with the counterparts of `registry`: tests add their own.
    pub async fn build_with_registry(settings: Settings, registry: Registry, workers: Workers) -> Result<Self, BuildError> {
        let store = build_store(&settings)?;
        Self::build_with(settings, store, registry, workers).await
    }

    /// Like `build_with_registry`, with the store given. Every section is checked before
    /// anything starts: those nobody claims, and each destination's own (the payment
    /// providers' are checked as payments are built, below).
    pub async fn build_with(settings: Settings, store: Store, registry: Registry, workers: Workers) -> Result<Self, BuildError> {
        let mut problems = unclaimed_sections(&settings, &registry);
        let built = registry.build(&settings).unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        if !problems.is_empty() {
            return Err(BuildError::Settings(problems));
        }
        startup_checks(&store).await?;
        let mut signing = signing_state(&settings)?;
        let background = Background::new();
        let monitoring = crate::monitoring::Monitoring::start_in(store.audit_log(), &background);
        monitoring.attach_store(store.clone());
        if signing.tsa.is_some() {
            signing.tsa_outage = Some(monitoring.outages().dependency("tsa", "the timestamp authority (signing.tsa_url)"));
        }
        let evidence = crate::evidence::Evidence::start(&settings, &background).map_err(BuildError::Settings)?;
        if let Some(e) = &evidence {
            monitoring.attach_evidence(e.shared().clone());
        }
        let adapters = built.adapters;
        let event_sink = registry.event_sink();
        let centre = adapters.iter().any(|a| event_sink == Some(a.destination()));
        let inbound =
            Arc::new(crate::inbound::Inbound::from_settings(&settings, &store, built.sources, centre).map_err(BuildError::Settings)?);
        let catalogue = Arc::new(
            crate::catalogue::Catalogue::from_settings(&settings, &store)
                .map_err(BuildError::Settings)?
                .with_evidence(crate::evidence::recorder(&evidence))
                .with_redis(monitoring.outages().redis()),
        );
        // The destination that serves the national catalogue (the portal), through its session.
        let catalogue_source = adapters.iter().find(|a| a.catalogue().is_some()).cloned();
        let payments = crate::payments::Payments::from_settings(
            &settings,
            built.providers,
            store.ledger(crate::payments::EVENTS_QUEUE),
            monitoring.clone(),
        )
        .map_err(BuildError::Settings)?
        .map(|p| Arc::new(p.with_evidence(crate::evidence::recorder(&evidence))));
        if let Some(p) = &payments {
            let (overdue, grace) = p.overdue_terms();
            monitoring.attach_ledger(p.ledger.clone(), overdue, grace);
            // The open unmatched counts are recounted once for data kept before they existed,
            // and that writes: done here, so that a scrape only ever reads. Should Redis not
            // answer now, the first scrape does it instead.
            if let Err(e) = p.ledger.unmatched_open_by_reason().await {
                tracing::debug!(error = %e, "open unmatched counts not read at start-up");
            }
        }
        // The payment and inbound events queues stay whole: the ledger's and the book's scripts
        // write them in their own slots.
        let queue = store.queue().with_partitions(
            settings.queue.partitions,
            [crate::payments::EVENTS_QUEUE, crate::inbound::EVENTS_QUEUE],
        );
        let mut builder = EngineBuilder::new(queue, Duration::from_millis(settings.queue.reaper_interval_ms))
            .observer(monitoring.clone())
            .outages(monitoring.outages().clone())
            .evidence(crate::evidence::recorder(&evidence))
            .background(background.clone());
        for adapter in adapters {
            let cfg = LaneConfig::from_settings(&settings, adapter.destination());
            // The payment events have a queue of their own (beside the ledger, in its slot),
            // delivered by the destination that takes the gateway's events to the centre.
            if payments.is_some() && event_sink == Some(adapter.destination()) {
                builder = builder.lane(crate::payments::EVENTS_QUEUE, adapter.clone(), cfg.clone());
            }
            if event_sink == Some(adapter.destination()) {
                // Dossiers handed down reach the centre through their own queue too.
                builder = builder.lane(crate::inbound::EVENTS_QUEUE, adapter.clone(), cfg.clone());
                builder = builder.events_to(adapter.destination());
            }
            builder = builder.destination(adapter, cfg);
        }
        check_partitions(&builder.handle()).await?;
        let (engine, handle) = match workers {
            Workers::On => {
                let e = builder.start();
                let h = e.handle();
                (Some(e), h)
            }
            Workers::Off => (None, builder.handle()),
        };
        let listener = TcpListener::bind(&settings.server.bind).map_err(|source| BuildError::Bind {
            addr: settings.server.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| BuildError::Bind {
                addr: settings.server.bind.clone(),
                source,
            })?
            .port();
        if let (Some(p), Workers::On) = (&payments, workers) {
            for id in p.reconciling() {
                background.spawn(crate::payments::reconcile_loop(p.clone(), id, background.token()));
            }
        }
        if workers == Workers::On {
            background.spawn(crate::replay::supervise(handle.clone()));
            if let Some(portal) = catalogue_source {
                background.spawn(crate::catalogue::sync::run(
                    catalogue.clone(),
                    portal,
                    uuid::Uuid::new_v4().to_string(),
                    handle.redis().clone(),
                    background.token(),
                ));
            }
            for source in inbound.polled() {
                background.spawn(crate::inbound::poll::run(
                    inbound.clone(),
                    source,
                    handle.queue.clone(),
                    handle.redis().clone(),
                    crate::evidence::recorder(&evidence),
                    background.token(),
                ));
            }
        }
        let history = Arc::new(crate::monitoring::History::default());
        background.spawn(crate::monitoring::sample_history(
            history.clone(),
            handle.clone(),
            monitoring.outages().redis(),
            background.token(),
        ));
        // One body budget for every worker, and its watcher.
        let reading = BodyReading::new(
            Duration::from_millis(settings.server.body_read_timeout_ms),
            settings.server.inflight_body_bytes,
        );
        background.spawn(http::body::return_memory_after_bursts(reading.budget.clone(), background.token()));
        let server = http_server(
            &settings,
            handle.clone(),
            signing,
            payments,
            inbound,
            catalogue,
            evidence,
            monitoring,
            history,
            registry,
            reading,
            listener,
        )
        .map_err(|source| BuildError::Bind {
            addr: settings.server.bind.clone(),
            source,
        })?;
        tracing::info!(port, backend = handle.queue.backend_name(), destinations = ?handle.destinations().collect::<Vec<_>>(), "hcc-gateway listening");
        Ok(Application {
            port,
            server,
            engine,
            handle,
            grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The owner of the process's background work: after [`Application::run`] returns,
    /// `running()` is 0 unless a task outlived its time to stop.
    pub fn background(&self) -> Background {
        self.background.clone()
    }

    /// Serves until `shutdown` resolves, then, in this order: stops taking requests and lets
    /// in-flight requests finish; cancels the background work; lets in-flight deliveries finish
    /// (or hands them back after the grace period); waits for every background task; and lets
    /// the audit writer write every line queued until then. Nothing the process started is
    /// left running when it returns, barring a task that outlives its bounded wait (logged).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let server_handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let served = tokio::select! {
            r = &mut server => Some(r),
            _ = shutdown => None,
        };
        tracing::info!("shutting down: no new requests, finishing in-flight work");
        server_handle.stop(true).await;
        if served.is_none() {
            // Stopped: the server's own task ends now; it is awaited so that it is not left behind.
            let _ = tokio::time::timeout(self.grace + Duration::from_secs(1), &mut server).await;
        }
        // No request can start work any more. Cancelling first stops the claim loops, the
        // reconciliation and replay runs, and the sampler (which also spares the store its
        // reads while the engine hands back in-flight deliveries).
        self.background.cancel();
        if let Some(engine) = self.engine {
            engine.shutdown(self.grace).await;
        }
        // Every task was told to stop above and stops at its next select; the audit writer then
        // writes what the deliveries and requests audited until now.
        let unfinished = self.background.shutdown(TASKS_STOP_WITHIN, AUDIT_FLUSH_WITHIN).await;
        tracing::info!(unfinished, "stopped");
        match served {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(std::io::Error::other(e)),
            None => Ok(()),
        }
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        self.run(shutdown_signal()).await
    }
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Warns of what puts durability at risk. Redis refusing the gateway's credentials, or the
/// gateway Redis's certificate, stops start-up naming the setting: that never heals by waiting.
/// Redis out of reach does not: the process starts, not ready, and waits for it.
async fn startup_checks(store: &Store) -> Result<(), BuildError> {
    match store {
        Store::Memory(_) => tracing::warn!(
            "queue.backend = memory: the embedded queue is NOT durable; everything queued is lost when this process stops. Use redis in production."
        ),
        Store::Redis(r) => match r.check_access().await {
            Err(e @ StorageError::Access { .. }) => return Err(BuildError::Storage(e)),
            Err(e) => {
                tracing::error!(error = %e, "Redis is not reachable at start-up; /readyz answers 503 until it is")
            }
            Ok(()) => match r.durability_warnings().await {
                Ok(w) => {
                    for line in w {
                        tracing::error!("DURABILITY AT RISK: {line}");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "Redis is not reachable at start-up; /readyz answers 503 until it is")
                }
            },
        },
    }
    Ok(())
}

/// Loads the signing identity and the trust store. A wrong password, an expired certificate or
/// one the trust store does not vouch for stops start-up with a message naming the key.
pub fn signing_state(settings: &Settings) -> Result<http::signatures::SigningState, BuildError> {
    let trust = if settings.trust.ca_dir.is_empty() {
        None
    } else {
        let t = hcc_signing::pki::TrustStore::from_dir(std::path::Path::new(&settings.trust.ca_dir)).map_err(|e| BuildError::Setting {
            key: "trust.ca_dir",
            message: e.to_string(),
        })?;
        if t.is_empty() {
            return Err(BuildError::Setting {
                key: "trust.ca_dir",
                message: "holds no certificates".into(),
            });
        }
        Some(t)
    };
    let identity = if settings.signing.uses_pkcs11() {
        Some(token_identity(&settings.signing, trust.as_ref())?)
    } else if settings.signing.pkcs12.is_empty() {
        None
    } else {
        let id = hcc_signing::pki::Identity::from_pkcs12_file(
            std::path::Path::new(&settings.signing.pkcs12),
            settings.signing.pkcs12_password.expose(),
        )
        .map_err(|e| BuildError::Setting {
            key: "signing.pkcs12",
            message: e.to_string(),
        })?;
        let checked = match &trust {
            Some(t) => t.check(&id.cert, &id.chain),
            None => hcc_signing::pki::check_validity(&id.cert).and_then(|()| hcc_signing::pki::check_key_usage(&id.cert)),
        };
        checked.map_err(|e| BuildError::Setting {
            key: "signing.pkcs12",
            message: e.to_string(),
        })?;
        Some(id)
    };
    let tsa = if settings.signing.tsa_url.is_empty() {
        None
    } else {
        let client =
            crate::tsa::TsaClient::try_new(&settings.signing.tsa_url, crate::tsa::DEFAULT_TIMEOUT).map_err(|e| BuildError::Setting {
                key: "signing.tsa_url",
                message: e.to_string(),
            })?;
        Some(client.with_anchor(tsa_anchor(settings)?))
    };
    Ok(http::signatures::SigningState {
        identity,
        trust,
        tsa,
        tsa_outage: None,
    })
}

/// What the timestamp authority's tokens must chain to: `signing.tsa_ca` (pinned: the chain
/// may end at it), else the trust store; with neither, `signing.tsa_url` is refused.
fn tsa_anchor(settings: &Settings) -> Result<hcc_signing::pki::TrustStore, BuildError> {
    use hcc_signing::pki::TrustStore;
    let setting = |key: &'static str| {
        move |e: hcc_signing::pki::KeyError| BuildError::Setting {
            key,
            message: e.to_string(),
        }
    };
    if !settings.signing.tsa_ca.trim().is_empty() {
        return TrustStore::pinned_from_file(std::path::Path::new(settings.signing.tsa_ca.trim())).map_err(setting("signing.tsa_ca"));
    }
    if settings.trust.ca_dir.is_empty() {
        return Err(BuildError::Setting {
            key: "signing.tsa_url",
            message: "needs signing.tsa_ca or trust.ca_dir: its tokens must chain to a configured certificate".into(),
        });
    }
    TrustStore::from_dir(std::path::Path::new(&settings.trust.ca_dir)).map_err(setting("trust.ca_dir"))
}

/// The identity whose key is in a PKCS#11 token (`signing.pkcs11_*`, `signing.certificate`).
/// A missing module or token, a wrong or locked PIN, a missing key, or a key that is not the
/// certificate's stops start-up, naming the token and the key.
fn token_identity(
    signing: &hcc_config::SigningSettings,
    trust: Option<&hcc_signing::pki::TrustStore>,
) -> Result<hcc_signing::pki::Identity, BuildError> {
    use hcc_signing::pkcs11::{TokenConfig, token_identity};
    let config = TokenConfig {
        module: signing.pkcs11_module.clone().into(),
        token: signing.pkcs11_token.clone(),
        pin: signing.pkcs11_pin.expose().to_string(),
        key_label: signing.pkcs11_key_label.clone(),
    };
    let (id, protection) = token_identity(&config, std::path::Path::new(&signing.certificate)).map_err(|e| BuildError::Setting {
        key: e.setting(),
        message: e.to_string(),
    })?;
    let checked = match trust {
        Some(t) => t.check(&id.cert, &id.chain),
        None => hcc_signing::pki::check_validity(&id.cert).and_then(|()| hcc_signing::pki::check_key_usage(&id.cert)),
    };
    checked.map_err(|e| BuildError::Setting {
        key: "signing.certificate",
        message: e.to_string(),
    })?;
    if !protection.never_leaves_the_token() {
        tracing::warn!(
            key = ?config.key_label,
            token = ?config.token,
            sensitive = protection.sensitive,
            extractable = protection.extractable,
            "the signing key can leave its token (CKA_EXTRACTABLE or not CKA_SENSITIVE): generate or import it as sensitive and non-extractable"
        );
    }
    tracing::info!(key = ?config.key_label, token = ?config.token, "signing with a key in a PKCS#11 token");
    Ok(id)
}

// One argument per piece of shared state the handlers read.
#[allow(clippy::too_many_arguments)]
fn http_server(
    settings: &Settings,
    handle: EngineHandle,
    signing: http::signatures::SigningState,
    payments: Option<Arc<crate::payments::Payments>>,
    inbound: Arc<crate::inbound::Inbound>,
    catalogue: Arc<crate::catalogue::Catalogue>,
    evidence: Option<Arc<crate::evidence::Evidence>>,
    monitoring: Arc<crate::monitoring::Monitoring>,
    history: Arc<crate::monitoring::History>,
    registry: Registry,
    reading: BodyReading,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let ingest: Vec<http::ingest::Route> = registry.ingest_routes().collect();
    let doc = web::Data::new(http::openapi::ApiDocument::for_registry(&registry));
    let registry = web::Data::new(registry);
    let history = web::Data::from(history);
    let monitoring = web::Data::from(monitoring);
    let payments = web::Data::new(payments);
    let inbound = web::Data::new(inbound);
    let catalogue = web::Data::new(catalogue);
    let evidence = web::Data::new(evidence);
    let signing = web::Data::new(signing);
    let keyring = web::Data::new(Keyring::from_config(&settings.auth.keys));
    let limit = web::Data::new(BodyLimit(settings.server.body_limit_bytes));
    let reading = web::Data::new(reading);
    let handle = web::Data::new(handle);
    let idem_ttl = web::Data::new(http::ingest::IdempotencyTtl(settings.queue.idempotency_ttl_secs));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(keyring.clone())
            .app_data(limit.clone())
            .app_data(reading.clone())
            .app_data(handle.clone())
            .app_data(idem_ttl.clone())
            .app_data(signing.clone())
            .app_data(payments.clone())
            .app_data(inbound.clone())
            .app_data(catalogue.clone())
            .app_data(evidence.clone())
            .app_data(monitoring.clone())
            .app_data(history.clone())
            .app_data(doc.clone())
            .app_data(registry.clone())
            .wrap(actix_web::middleware::from_fn(http::request_id))
            // The ingest routes first: actix tries resources in order, matching each dynamic
            // path's pattern (a regex) before its method, and the busiest route, behind twenty
            // dynamic ones, spent about 5% of the ingest CPU there. No other route takes a POST
            // to these paths, so the order changes no answer.
            .configure(|cfg| http::ingest::routes(cfg, &ingest))
            .configure(http::routes)
            .configure(|cfg| http::payments::callback_routes(cfg, &registry))
            .configure(|cfg| http::inbound::routes(cfg, &registry))
            .default_service(web::to(http::not_found))
    })
    .disable_signals()
    .max_connections(settings.server.max_connections)
    .client_request_timeout(Duration::from_millis(settings.server.client_request_timeout_ms))
    .shutdown_timeout(settings.server.shutdown_grace_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server.listen(listener)?.run())
}
