//! Helpers for the end-to-end tests: settings loaded from the real `config/` folder with a
//! unique Redis key prefix per test, `spawn_app()` on a random port, the mocks, and bounded
//! waiting. Every wait here is bounded by a deadline; nothing loops forever.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hcc_config::{QueueBackendKind, Settings, Source};
use hcc_gateway::app::{Application, Workers};
use hcc_gateway::engine::EngineHandle;

pub mod deployment;
pub mod judges;
pub mod payment_env;
pub mod secured;
pub mod softhsm;
pub mod traffic;

pub use judges::{vietqr_judge, zbar_decode};
pub use payment_env::{PaymentEnv, payment_env};
pub use traffic::*;

pub const CENTRE_KEY: &str = "dev-centre-key";
pub const OPERATOR_KEY: &str = "dev-operator-key";
pub const ADMIN_KEY: &str = "dev-admin-key";
pub const CENTRE_SECRET: &str = "whsec_ZGV2LWNlbnRyZS13ZWJob29rLXNlY3JldA==";

pub fn redis_url() -> String {
    std::env::var("HCC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A prefix no other test uses, so tests share one Redis without meeting.
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// The local profile with fast timings, on a random port, with the given backend and extra
/// `HCC__...` overrides.
pub fn settings(backend: QueueBackendKind, overrides: &[(&str, String)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("HCC__SERVER__BIND", "127.0.0.1:0".to_string()),
        ("HCC__SERVER__WORKERS", "2".into()),
        ("HCC__SERVER__SHUTDOWN_GRACE_SECS", "5".into()),
        ("HCC__LOG__LEVEL", "warn".into()),
        (
            "HCC__QUEUE__BACKEND",
            match backend {
                QueueBackendKind::Redis => "redis",
                QueueBackendKind::Memory => "memory",
            }
            .into(),
        ),
        ("HCC__QUEUE__REDIS_URL", redis_url()),
        ("HCC__QUEUE__KEY_PREFIX", unique_prefix()),
        ("HCC__QUEUE__POLL_INTERVAL_MS", "20".into()),
        ("HCC__QUEUE__REAPER_INTERVAL_MS", "100".into()),
        ("HCC__DELIVERY__UPSTREAM_TIMEOUT_MS", "2000".into()),
        ("HCC__DELIVERY__LEASE_MS", "3000".into()),
        ("HCC__DELIVERY__BACKOFF_BASE_MS", "20".into()),
        ("HCC__DELIVERY__BACKOFF_MAX_MS", "500".into()),
        ("HCC__DELIVERY__BREAKER_FAILURE_THRESHOLD", "50".into()),
        ("HCC__DELIVERY__BREAKER_COOLDOWN_MS", "300".into()),
        ("HCC__CENTRE__WEBHOOK_URL", String::new()),
        ("HCC__DVCQG__BASE_URL", String::new()),
        // The catalogue is pulled only where a test asks for it (tests/e2e/catalogue.rs).
        ("HCC__CATALOGUE__SYNC_EVERY_SECS", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.clone());
    }
    let source = Source {
        dir: workspace_dir().join("config"),
        env_name: "local".into(),
        vars,
    };
    match hcc_config::load(&source) {
        Ok(s) => s,
        Err(e) => panic!("test settings are invalid: {e}"),
    }
}

/// A gateway in this test process: its engine handle, its shutdown, and (through `Deref`) the
/// typed requests of [`Gateway`].
pub struct TestApp {
    gateway: Gateway,
    pub port: u16,
    pub handle: EngineHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    joined: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::ops::Deref for TestApp {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

/// A gateway reached over HTTP at `address`, in this process or in a child process: the API's
/// requests with the key each needs, so that tests read like the calls they make.
pub struct Gateway {
    pub address: String,
    pub client: reqwest::Client,
}

impl Gateway {
    /// The gateway at `address` (`http://host:port`), with a bounded request timeout.
    pub fn at(address: &str) -> Gateway {
        Gateway {
            address: address.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Waits (bounded) until `/readyz` answers 200, as for a gateway process just started.
    pub async fn wait_ready(&self) {
        eventually("gateway ready", Duration::from_secs(20), || {
            let req = self.get("/readyz", Key::None);
            async move { req.send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
    }
}

/// Builds and starts the gateway on a random port, with or without delivery workers.
pub async fn spawn_app(settings: Settings, workers: Workers) -> TestApp {
    let app = match Application::build(settings, workers).await {
        Ok(a) => a,
        Err(e) => panic!("gateway failed to build: {e}"),
    };
    start(app)
}

pub fn start(app: Application) -> TestApp {
    let port = app.port();
    let handle = app.handle();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let joined = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        gateway: Gateway::at(&format!("http://127.0.0.1:{port}")),
        port,
        handle,
        stop: Some(tx),
        joined: Some(joined),
    }
}

/// The bearer key a request carries: a role's development key from `config/local.toml`, no
/// key at all, or any other token (a wrong key, a key with odd bytes).
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Centre,
    Operator,
    Admin,
    None,
    Raw(&'a str),
}

impl Key<'_> {
    fn token(&self) -> Option<&str> {
        match self {
            Key::Centre => Some(CENTRE_KEY),
            Key::Operator => Some(OPERATOR_KEY),
            Key::Admin => Some(ADMIN_KEY),
            Key::None => None,
            Key::Raw(k) => Some(k),
        }
    }
}

/// Sends a request; a transport failure fails the test with what was being sent.
pub async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    match req.send().await {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

/// The body as JSON; a body that is not JSON fails the test.
pub async fn json(r: reqwest::Response) -> serde_json::Value {
    let status = r.status();
    match r.json().await {
        Ok(v) => v,
        Err(e) => panic!("answer {status} is not JSON: {e}"),
    }
}

/// The status and the body as JSON (`null` when there is none or it is not JSON).
pub async fn status_json(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Asserts a 202 and returns the accepted message's id.
pub async fn accepted_id(r: reqwest::Response) -> String {
    let status = r.status();
    assert_eq!(status, 202, "{:?}", r.text().await);
    json(r).await["id"].as_str().unwrap_or_default().to_string()
}

/// A problem+json answer with the given status; returns its body.
pub async fn problem(r: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v = json(r).await;
    assert_eq!(v["status"], status);
    assert!(v["title"].is_string() && v["type"].is_string() && v["detail"].is_string());
    v
}

impl Gateway {
    /// A request to `path` on this gateway, carrying `key`.
    pub fn request(&self, method: reqwest::Method, path: &str, key: Key<'_>) -> reqwest::RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match key.token() {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    pub fn get(&self, path: &str, key: Key<'_>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path, key)
    }

    pub fn post(&self, path: &str, key: Key<'_>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path, key)
    }

    /// `POST path` with a JSON body with `key`.
    pub async fn post_json(&self, path: &str, key: Key<'_>, body: &serde_json::Value) -> reqwest::Response {
        send(self.post(path, key).json(body)).await
    }

    /// `POST path` with a raw body (and its content type, when one is sent) with `key`.
    pub async fn post_raw(
        &self,
        path: &str,
        key: Key<'_>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let req = self.post(path, key).body(body);
        send(match content_type {
            Some(ct) => req.header("content-type", ct),
            None => req,
        })
        .await
    }

    /// `GET path` with `key`, read as JSON.
    pub async fn get_json(&self, path: &str, key: Key<'_>) -> serde_json::Value {
        json(send(self.get(path, key)).await).await
    }

    // --- Dossiers, as the centre sends them.

    pub async fn post_dossier(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post_json("/v1/dossiers", Key::Centre, body).await
    }

    pub async fn post_dossier_with_key(&self, body: &serde_json::Value, idempotency_key: &str) -> reqwest::Response {
        send(
            self.post("/v1/dossiers", Key::Centre)
                .header("Idempotency-Key", idempotency_key)
                .json(body),
        )
        .await
    }

    pub async fn post_progress(&self, ma: &str, body: &serde_json::Value) -> reqwest::Response {
        self.post_json(&format!("/v1/dossiers/{ma}/progress"), Key::Centre, body).await
    }

    /// A message's record as the centre reads it.
    pub async fn message(&self, id: &str) -> serde_json::Value {
        self.get_json(&format!("/v1/messages/{id}"), Key::Centre).await
    }

    /// Waits (bounded) until message `id` has status `want`.
    pub async fn wait_message(&self, id: &str, want: &str) {
        eventually(&format!("{id} {want}"), Duration::from_secs(15), || async {
            (self.message(id).await["status"] == want).then_some(())
        })
        .await;
    }

    /// Waits (bounded) until every message in `ids` is delivered.
    pub async fn all_delivered(&self, ids: &[String]) {
        eventually("all delivered", Duration::from_secs(20), || async {
            for id in ids {
                if self.message(id).await["status"] != "delivered" {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    // --- The operators' API.

    pub async fn queues(&self, key: Key<'_>) -> reqwest::Response {
        send(self.get("/v1/queues", key)).await
    }

    pub async fn dead(&self, queue: &str, key: Key<'_>) -> reqwest::Response {
        send(self.get(&format!("/v1/queues/{queue}/dead"), key)).await
    }

    pub async fn replay(&self, queue: &str, id: &str, key: Key<'_>) -> reqwest::Response {
        send(self.post(&format!("/v1/queues/{queue}/dead/{id}/replay"), key)).await
    }

    /// Replays every dead letter the filter (raw JSON text) selects.
    pub async fn replay_all(&self, queue: &str, filter: &str, key: Key<'_>) -> reqwest::Response {
        self.post_raw(
            &format!("/v1/queues/{queue}/dead/replay"),
            key,
            Some("application/json"),
            filter.to_string(),
        )
        .await
    }

    pub async fn discard(&self, queue: &str, id: &str, key: Key<'_>) -> reqwest::Response {
        send(self.request(reqwest::Method::DELETE, &format!("/v1/queues/{queue}/dead/{id}"), key)).await
    }

    pub async fn pause(&self, queue: &str, key: Key<'_>) -> reqwest::Response {
        send(self.post(&format!("/v1/queues/{queue}/pause"), key)).await
    }

    pub async fn resume(&self, queue: &str, key: Key<'_>) -> reqwest::Response {
        send(self.post(&format!("/v1/queues/{queue}/resume"), key)).await
    }

    pub async fn audit(&self, key: Key<'_>) -> reqwest::Response {
        send(self.get("/v1/audit", key)).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = send(self.get("/metrics", Key::None)).await;
        assert_eq!(r.status(), 200, "/metrics");
        match r.text().await {
            Ok(t) => t,
            Err(e) => panic!("/metrics unreadable: {e}"),
        }
    }

    pub async fn openapi(&self) -> serde_json::Value {
        self.get_json("/openapi.json", Key::None).await
    }

    // --- Payments and the providers' callbacks (which carry no key).

    pub async fn create_payment(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post_json("/v1/payments", Key::Centre, body).await
    }

    /// Creates a payment of `amount` through `provider`; asserts 201 and returns the answer.
    pub async fn new_payment(&self, provider: &str, amount: u64) -> serde_json::Value {
        let r = self.create_payment(&payment_body(provider, amount)).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        json(r).await
    }

    /// Creates a payment of `amount` through `provider`; returns its reference.
    pub async fn new_payment_reference(&self, provider: &str, amount: u64) -> String {
        self.new_payment(provider, amount).await["MaThamChieu"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn get_payment(&self, reference: &str) -> reqwest::Response {
        send(self.get(&format!("/v1/payments/{reference}"), Key::Centre)).await
    }

    /// A payment's record as the centre reads it.
    pub async fn payment(&self, reference: &str) -> serde_json::Value {
        json(self.get_payment(reference).await).await
    }

    /// The unmatched bank money a finance officer sees (`GET /v1/payments/unmatched{query}`).
    pub async fn unmatched_credits(&self, query: &str) -> Vec<serde_json::Value> {
        let v = self.get_json(&format!("/v1/payments/unmatched{query}"), Key::Operator).await;
        v["unmatched"].as_array().unwrap_or_else(|| panic!("{v}")).clone()
    }

    /// Waits (bounded) until payment `reference` has status `want`.
    pub async fn wait_payment(&self, reference: &str, want: &str) {
        eventually(&format!("payment {want}"), Duration::from_secs(15), || async {
            (self.payment(reference).await["status"] == want).then_some(())
        })
        .await;
    }

    pub async fn paygov_callback(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post_json("/v1/callbacks/paygov", Key::None, body).await
    }

    /// A VNPAY IPN with `query` (without the leading `?`).
    pub async fn vnpay_ipn(&self, query: &str) -> reqwest::Response {
        send(self.get(&format!("/v1/callbacks/vnpay/ipn?{query}"), Key::None)).await
    }

    /// A camt.054 document from bank `bank`.
    pub async fn camt054(&self, bank: &str, xml: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_raw(
            &format!("/v1/callbacks/banks/{bank}/camt054"),
            Key::None,
            Some("application/xml"),
            xml,
        )
        .await
    }

    // --- Signatures.

    /// Signs `bytes` in `format` (`cms`, `xmldsig`) as the centre.
    pub async fn sign(&self, format: &str, content_type: Option<&str>, bytes: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_raw(&format!("/v1/signatures?format={format}"), Key::Centre, content_type, bytes)
            .await
    }

    /// Verifies a CMS signature given as JSON (`content_base64`, `signature_base64`).
    pub async fn verify(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post_json("/v1/signatures/verify", Key::Centre, body).await
    }

    /// Verifies a signed XML document sent as itself.
    pub async fn verify_xml(&self, content_type: &str, xml: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_raw("/v1/signatures/verify", Key::Centre, Some(content_type), xml).await
    }
}

impl TestApp {
    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(j) = self.joined.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), j).await;
        }
    }
}

/// The value of the series `series` (name and labels as written) in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

/// Polls `check` until it returns `Some`, at most until `limit`; panics with `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A private `redis-server` on a free port, for tests that stop and restart Redis.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        Self::start_with(&[])
    }

    /// Starts one with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("hcc-redis-{port}-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::create_dir_all(&dir);
        let mut r = PrivateRedis {
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again) with AOF on, as production runs it, and waits until it answers.
    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match child {
            Ok(c) => self.child = Some(c),
            Err(e) => panic!("cannot start redis-server (is it installed?): {e}"),
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    /// Kills it hard (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Path of a workspace binary built by cargo for this test run.
/// A port nobody listens on now (the OS's choice), for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Every key and value under `prefix` in the test Redis ([`redis_snapshot`]).
pub async fn store_snapshot(prefix: &str) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    redis_snapshot(&redis_url(), prefix).await
}

/// Runs `hcc-gateway ARGS` against the gateway at `url` with the operator's key: whether it
/// succeeded, its stdout and its stderr.
pub fn operator_cli(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary("hcc-gateway"))
        .args(args)
        .env("HCC_URL", url)
        .env("HCC_API_KEY", OPERATOR_KEY)
        .output()
        .unwrap_or_else(|e| panic!("cannot run hcc-gateway: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hcc-gateway serve` as a real process on `port`, its queue in the test Redis under `prefix`,
/// with the test timings (fast polling, no catalogue pull, errors only in the log); the portal
/// and the centre are the caller's to set (empty here). For the tests that `kill -9` it.
pub fn serve_command(port: u16, prefix: &str) -> std::process::Command {
    let bin = binary("hcc-gateway");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        bin.display()
    );
    let mut command = std::process::Command::new(bin);
    command
        .arg("serve")
        .env("HCC_CONFIG_DIR", workspace_dir().join("config"))
        .env("HCC_ENV", "local")
        .env("HCC__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("HCC__QUEUE__BACKEND", "redis")
        .env("HCC__QUEUE__REDIS_URL", redis_url())
        .env("HCC__QUEUE__KEY_PREFIX", prefix)
        .env("HCC__QUEUE__POLL_INTERVAL_MS", "20")
        .env("HCC__QUEUE__REAPER_INTERVAL_MS", "200")
        .env("HCC__DVCQG__BASE_URL", "")
        .env("HCC__CENTRE__WEBHOOK_URL", "")
        .env("HCC__LOG__LEVEL", "error")
        .env("HCC__CATALOGUE__SYNC_EVERY_SECS", "0")
        .stdout(std::process::Stdio::null());
    command
}

pub fn binary(name: &str) -> PathBuf {
    // Tests live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    dir.join(name)
}

/// A mock portal on a free port.
pub fn portal() -> (hcc_mocks::Running, hcc_mocks::dvcqg::PortalState) {
    let state = hcc_mocks::dvcqg::PortalState::new(hcc_mocks::dvcqg::PortalConfig::default());
    match hcc_mocks::dvcqg::spawn("127.0.0.1:0", state.clone()) {
        Ok(running) => (running, state),
        Err(e) => panic!("cannot start mock-portal: {e}"),
    }
}

/// A gateway on Redis that delivers to the portal at `portal_url`, with extra overrides.
pub async fn portal_gateway(portal_url: &str, extra: &[(&str, String)], workers: Workers) -> TestApp {
    let mut o = vec![("HCC__DVCQG__BASE_URL", portal_url.to_string())];
    o.extend(extra.iter().cloned());
    spawn_app(settings(QueueBackendKind::Redis, &o), workers).await
}

/// A mock portal and a gateway with workers that delivers to it.
pub async fn with_portal(backend: QueueBackendKind) -> (hcc_mocks::Running, hcc_mocks::dvcqg::PortalState, TestApp) {
    let (running, state) = portal();
    let app = spawn_app(settings(backend, &[("HCC__DVCQG__BASE_URL", running.url())]), Workers::On).await;
    (running, state, app)
}

/// Every key under `prefix` with its `DUMP`, from the Redis at `url`: equal snapshots mean
/// byte-for-byte equal stored state. Bounded by a count of SCAN rounds.
pub async fn redis_snapshot(url: &str, prefix: &str) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let client = redis::Client::open(url).unwrap_or_else(|e| panic!("bad Redis URL {url}: {e}"));
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!("cannot reach Redis at {url}: {e}"),
    };
    let mut out = std::collections::BTreeMap::new();
    let mut cursor: u64 = 0;
    for _ in 0..100_000 {
        let (next, keys): (u64, Vec<Vec<u8>>) = match redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
        {
            Ok(r) => r,
            Err(e) => panic!("SCAN failed: {e}"),
        };
        for k in keys {
            let dump: Vec<u8> = match redis::cmd("DUMP").arg(&k).query_async(&mut conn).await {
                Ok(d) => d,
                Err(e) => panic!("DUMP failed: {e}"),
            };
            out.insert(k, dump);
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    out
}

/// A contract v2 payment request for `amount`, in the portal's vocabulary.
pub fn payment_body(provider: &str, amount: u64) -> serde_json::Value {
    serde_json::json!({"MaHoSo": "000.00.22.H46-241125-0001", "SoTien": amount, "provider": provider, "MaDonVi": "000.00.22.H46",
           "MaTTHC": "1.004227", "TenTTHC": "Cấp giấy chứng nhận quyền sử dụng đất",
           "PhiLePhi": [{"LoaiPhiLePhi": 2, "MaPhiLePhi": "LP01", "TenPhiLePhi": "Lệ phí cấp giấy chứng nhận", "SoTien": amount}],
           "HoTenNguoiNop": "Nguyễn Thị Lan", "SoCMNDNguoiNop": "022190000123", "DiaChiNguoiNop": "Hạ Long, Quảng Ninh",
           "IpNguoiNop": "198.51.100.23"})
}

/// The counterparts of the payment tests, on random ports: a development PKI on disk, the mock
/// portal (which plays PayGov), and the mock bank (VNPAY and a host-to-host bank that signs with
/// the PKI's bank key, or with a stranger's key the gateway does not trust).
pub struct PaymentMocks {
    pub dir: PathBuf,
    pub portal: hcc_mocks::Running,
    pub paygov: hcc_mocks::dvcqg::PortalState,
    pub bank: hcc_mocks::Running,
}

impl Drop for PaymentMocks {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The VNPAY hash secret the mock bank and `config/local.toml` share.
pub const VNPAY_SECRET: &str = "vnpay-dev-hash-secret";

pub fn payment_mocks(tag: &str) -> PaymentMocks {
    use hcc_signing::devpki::{CertSpec, DevPki, KeyKind, Role, issue};
    use hcc_signing::pki::Identity;
    let dir = std::env::temp_dir().join(format!("hcc-{tag}-{}", uuid::Uuid::new_v4().simple()));
    let pki = DevPki::generate().unwrap_or_else(|e| panic!("dev PKI: {e}"));
    pki.write(&dir).unwrap_or_else(|e| panic!("dev PKI: {e}"));
    let paygov = hcc_mocks::dvcqg::PortalState::new(hcc_mocks::dvcqg::PortalConfig::default());
    let portal = hcc_mocks::dvcqg::spawn("127.0.0.1:0", paygov.clone()).unwrap_or_else(|e| panic!("mock portal: {e}"));
    let (key, cert) = issue(
        &CertSpec {
            common_name: "Stranger Bank",
            key: KeyKind::Rsa2048,
            role: Role::Signer,
            from_days: -1,
            to_days: 30,
        },
        Some((&pki.root, &pki.root_key)),
    )
    .unwrap_or_else(|e| panic!("stranger certificate: {e}"));
    let bank_state = hcc_mocks::bank::BankState::new(
        "HCCDEV01",
        VNPAY_SECRET,
        Identity {
            key: pki.bank_key.clone().into(),
            cert: pki.bank.cert.clone(),
            chain: vec![],
        },
        Identity {
            key: key.into(),
            cert,
            chain: vec![],
        },
    );
    let bank = hcc_mocks::bank::spawn("127.0.0.1:0", bank_state).unwrap_or_else(|e| panic!("mock bank: {e}"));
    PaymentMocks { dir, portal, paygov, bank }
}

impl PaymentMocks {
    /// Settings that point the gateway at these mocks (bank `devbank`), under `prefix`.
    pub fn overrides(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("HCC__QUEUE__KEY_PREFIX", prefix.to_string()),
            ("HCC__PAYGOV__BASE_URL", String::new()),
            ("HCC__PAYGOV__INIT_URL", format!("{}/paygov/init", self.portal.url())),
            ("HCC__PAYGOV__QUERY_URL", format!("{}/paygov/query", self.portal.url())),
            ("HCC__VNPAY__PAY_URL", format!("{}/vnpay/pay", self.bank.url())),
            (
                "HCC__VNPAY__API_URL",
                format!("{}/merchant_webapi/api/transaction", self.bank.url()),
            ),
            (
                "HCC__BANKS__DEVBANK__CERT",
                self.dir.join("bank.pem").to_string_lossy().into_owned(),
            ),
            ("HCC__TRUST__CA_DIR", self.dir.join("trust").to_string_lossy().into_owned()),
        ]
    }
}
