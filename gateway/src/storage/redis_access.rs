//! How the gateway reaches Redis's nodes: the credentials (`queue.redis_username`,
//! `queue.redis_password`, `queue.sentinel_password`) and TLS (`rediss://` URLs, the CA of
//! `queue.redis_ca`) in each of the three topologies, the connection pools built with them,
//! and which of those settings a refusing node points at, so that start-up can stop naming it.
//!
//! **Credentials.** `redis_password` (with `redis_username` for an ACL user) goes to every data
//! node: the standalone server, the primary the sentinels name, every cluster node. It wins
//! over a password in a URL. The sentinels are a separate service with their own
//! `requirepass`: `sentinel_password`, or else the one in the sentinels' URLs.
//!
//! **TLS.** A `rediss://` URL is reached over TLS, its certificate checked against
//! `redis_ca` (else the system's trust store) and its host name or IP address. In sentinel
//! mode the data nodes are reached the way the sentinels are (TLS for `rediss://` sentinels),
//! at the IP addresses the sentinels report, and the cluster's nodes at the addresses the
//! cluster reports: their certificates must name those addresses. redis-rs takes a private CA
//! for all three topologies only through rustls, hence that backend (ring as its crypto).
//!
//! **Pools.** deadpool-redis's own sentinel and cluster pools are built from URLs alone, which
//! cannot carry a CA or the data nodes' password in sentinel mode, so those two pools are made
//! here from ready redis-rs clients.

use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::{PoolConfig, Runtime};
use hcc_core::Secret;
use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, TlsCertificates, TlsMode};

use super::StorageError;
use super::redis::{is_primary, unavailable};

/// Credentials and TLS for Redis, in every topology. No `Debug`: it holds passwords.
#[derive(Clone, Default)]
pub struct RedisAccess {
    /// The ACL user for the data nodes; empty: the default user.
    pub username: String,
    /// The data nodes' password; empty: the URL's, if any.
    pub password: Secret,
    /// The sentinels' own password; empty: the sentinels' URLs', if any.
    pub sentinel_password: Secret,
    /// The path of a PEM file of the CA(s) for `rediss://`; empty: the system trust store.
    pub ca_file: String,
}

/// What a node's refusal points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Wrong or missing credentials (`WRONGPASS`, `NOAUTH`, `NOPERM`).
    Credentials,
    /// A certificate the gateway does not trust, or a TLS handshake that failed.
    Certificate,
}

impl RedisAccess {
    /// The CA file as redis-rs takes it, read and parsed now so that a missing or malformed
    /// file stops start-up naming `queue.redis_ca` rather than failing every connection.
    pub(super) fn certificates(&self) -> Result<Option<TlsCertificates>, StorageError> {
        if self.ca_file.is_empty() {
            return Ok(None);
        }
        let named = |message: String| StorageError::Access {
            key: "queue.redis_ca",
            message,
        };
        let pem = std::fs::read(&self.ca_file).map_err(|e| named(format!("cannot read {:?}: {e}", self.ca_file)))?;
        let certs = TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        // Parsing happens when a TLS client is built; a throw-away one parses it now.
        redis::Client::build_with_tls("rediss://127.0.0.1/", certs.clone())
            .map_err(|e| named(format!("{:?} is not a PEM CA certificate: {e}", self.ca_file)))?;
        Ok(Some(certs))
    }

    /// The connection info of `url`, with the CA for a `rediss://` URL and the data nodes'
    /// credentials (when configured, over the URL's).
    fn data_node(&self, url: &str, certs: &Option<TlsCertificates>) -> redis::RedisResult<ConnectionInfo> {
        let info = with_ca(url, certs)?;
        let mut redis = info.redis_settings().clone();
        if !self.password.is_empty() {
            redis = redis.set_password(self.password.expose());
            if !self.username.is_empty() {
                redis = redis.set_username(&self.username);
            }
        }
        Ok(info.set_redis_settings(redis))
    }
}

/// `url`'s connection info, carrying `certs` if it is a `rediss://` URL.
fn with_ca(url: &str, certs: &Option<TlsCertificates>) -> redis::RedisResult<ConnectionInfo> {
    match certs {
        Some(c) if url.starts_with("rediss://") => Ok(redis::Client::build_with_tls(url, c.clone())?.get_connection_info().clone()),
        _ => url.into_connection_info(),
    }
}

/// A standalone server's pool.
pub(super) fn standalone(url: &str, access: &RedisAccess, config: PoolConfig) -> Result<deadpool_redis::Pool, StorageError> {
    crypto();
    let certs = access.certificates()?;
    let manager = deadpool_redis::Manager::new(access.data_node(url, &certs).map_err(unavailable)?).map_err(unavailable)?;
    deadpool_redis::Pool::builder(manager)
        .config(config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(unavailable)
}

pub(super) type SentinelPool = managed::Pool<SentinelManager>;
pub(super) type SentinelConnection = managed::Object<SentinelManager>;
pub(super) type ClusterPool = managed::Pool<ClusterManager>;
pub(super) type ClusterPooled = managed::Object<ClusterManager>;

/// Makes connections to the primary the sentinels name; an idle one whose node is no longer
/// the primary is dropped instead of handed out (a connection may outlive its node's primacy).
pub(super) struct SentinelManager {
    client: tokio::sync::Mutex<SentinelClient>,
}

impl managed::Manager for SentinelManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.client.lock().await.get_async_connection().await
    }

    async fn recycle(&self, conn: &mut MultiplexedConnection, _: &Metrics) -> RecycleResult<RedisError> {
        match is_primary(conn).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(RecycleError::message("no longer the primary")),
            Err(e) => Err(RecycleError::Backend(e)),
        }
    }
}

/// The pool of connections to the primary of `master`, found through `sentinels`, and the
/// sentinels' connection infos with their credentials.
pub(super) fn sentinel(
    sentinels: &[String],
    master: &str,
    access: &RedisAccess,
    config: PoolConfig,
) -> Result<(SentinelPool, Vec<ConnectionInfo>), StorageError> {
    crypto();
    let certs = access.certificates()?;
    let mut infos = sentinels
        .iter()
        .map(|u| with_ca(u, &certs))
        .collect::<redis::RedisResult<Vec<_>>>()
        .map_err(unavailable)?;
    let tls = infos.iter().any(|i| matches!(i.addr(), ConnectionAddr::TcpTls { .. }));
    let mut builder =
        SentinelClientBuilder::new(infos.iter().map(|i| i.addr().clone()), master, SentinelServerType::Master).map_err(unavailable)?;
    // One password for all sentinels: the setting, or else the first one a URL carries.
    let from_url = infos.iter().map(ConnectionInfo::redis_settings).find(|r| r.password().is_some());
    match (access.sentinel_password.is_empty(), from_url) {
        (false, _) => builder = builder.set_client_to_sentinel_password(access.sentinel_password.expose()),
        (true, Some(r)) => {
            if let Some(user) = r.username() {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = r.password() {
                builder = builder.set_client_to_sentinel_password(password);
            }
        }
        (true, None) => {}
    }
    if !access.password.is_empty() {
        builder = builder.set_client_to_redis_password(access.password.expose());
        if !access.username.is_empty() {
            builder = builder.set_client_to_redis_username(&access.username);
        }
    }
    if tls {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(c) = certs {
            builder = builder
                .set_client_to_redis_certificates(c.clone())
                .set_client_to_sentinel_certificates(c);
        }
    }
    if !access.sentinel_password.is_empty() {
        infos = infos
            .into_iter()
            .map(|i| {
                let r = i.redis_settings().clone().set_password(access.sentinel_password.expose());
                i.set_redis_settings(r)
            })
            .collect();
    }
    let manager = SentinelManager {
        client: tokio::sync::Mutex::new(builder.build().map_err(unavailable)?),
    };
    let pool = managed::Pool::builder(manager)
        .config(config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(unavailable)?;
    Ok((pool, infos))
}

/// Makes cluster connections (each one multiplexed over every node).
pub(super) struct ClusterManager {
    client: ClusterClient,
    pings: AtomicUsize,
}

impl managed::Manager for ClusterManager {
    type Type = ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    async fn recycle(&self, conn: &mut ClusterConnection, _: &Metrics) -> RecycleResult<RedisError> {
        let n = self.pings.fetch_add(1, Ordering::Relaxed).to_string();
        let echoed: String = redis::cmd("PING").arg(&n).query_async(conn).await?;
        if echoed == n {
            Ok(())
        } else {
            Err(RecycleError::message("wrong PING reply"))
        }
    }
}

/// The pool of cluster connections, from the seed `nodes`.
pub(super) fn cluster(nodes: &[String], access: &RedisAccess, config: PoolConfig) -> Result<ClusterPool, StorageError> {
    crypto();
    let certs = access.certificates()?;
    let infos = nodes
        .iter()
        .map(|u| with_ca(u, &certs))
        .collect::<redis::RedisResult<Vec<_>>>()
        .map_err(unavailable)?;
    let tls = infos.iter().any(|i| matches!(i.addr(), ConnectionAddr::TcpTls { .. }));
    let mut builder = ClusterClientBuilder::new(infos);
    if !access.password.is_empty() {
        builder = builder.password(access.password.expose());
        if !access.username.is_empty() {
            builder = builder.username(&access.username);
        }
    }
    // The nodes the cluster reports are reached with the seeds' TLS and this CA.
    if tls && let Some(c) = certs {
        builder = builder.certs(c);
    }
    let manager = ClusterManager {
        client: builder.build().map_err(unavailable)?,
        pings: AtomicUsize::new(0),
    };
    managed::Pool::builder(manager)
        .config(config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(unavailable)
}

/// Makes ring rustls's crypto for the process: rustls needs one chosen before the first TLS
/// connection, and choosing it here keeps a second provider some other crate might switch on
/// from turning the first connection into a panic. Choosing it again is harmless. rustls
/// deprecates ring's provider for lacking post-quantum key exchange, which a Redis inside the
/// data centre can do without (aws-lc-rs, which has it, needs cmake and a large C build).
#[allow(deprecated)]
fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The error that names the setting behind `refusal`. A refused login in sentinel mode is
/// the sentinels' (`queue.sentinel_password`) if a sentinel refuses one on its own, else the
/// data nodes'. The error's text is redis-rs's, which never holds the password.
pub(super) async fn blame(refused: Refusal, e: &RedisError, sentinels: Option<&[ConnectionInfo]>) -> StorageError {
    let (key, what) = match refused {
        Refusal::Certificate => (
            "queue.redis_ca",
            "the TLS connection to Redis failed; is the server's certificate signed by this CA and does it name the address used?",
        ),
        Refusal::Credentials => (
            "queue.redis_password",
            "Redis refused the gateway's login (queue.redis_username and queue.redis_password)",
        ),
    };
    let mut blamed = (key, what);
    if refused == Refusal::Credentials {
        for info in sentinels.unwrap_or_default() {
            let attempt = async {
                redis::Client::open(info.clone())?
                    .get_multiplexed_async_connection()
                    .await
                    .map(drop)
            };
            if let Ok(Err(e)) = tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await
                && refusal(&e) == Some(Refusal::Credentials)
            {
                blamed = (
                    "queue.sentinel_password",
                    "a sentinel refused the gateway's login (queue.sentinel_password)",
                );
                break;
            }
        }
    }
    StorageError::Access {
        key: blamed.0,
        message: format!("{}: {e}", blamed.1),
    }
}

/// Whether `e` is a node refusing the gateway's credentials or the gateway refusing a node's
/// certificate, rather than Redis being out of reach. Cluster and sentinel lookups pass an
/// underlying error on as text, hence the look at the text as well as at the kind.
pub(super) fn refusal(e: &RedisError) -> Option<Refusal> {
    if e.kind() == redis::ErrorKind::AuthenticationFailed || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM")) {
        return Some(Refusal::Credentials);
    }
    if caused_by_tls(e) {
        return Some(Refusal::Certificate);
    }
    let text = e.to_string();
    if [
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "authentication failed",
        "Password authentication failed",
    ]
    .iter()
    .any(|w| text.contains(w))
    {
        return Some(Refusal::Credentials);
    }
    if ["invalid peer certificate", "certificate"].iter().any(|w| text.contains(w)) {
        return Some(Refusal::Certificate);
    }
    None
}

/// Whether a rustls error is among `e`'s causes (it arrives wrapped in an I/O error).
fn caused_by_tls(e: &RedisError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    for _ in 0..8 {
        let Some(c) = cause else {
            return false;
        };
        if c.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cause = c.source();
    }
    false
}
