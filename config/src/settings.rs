//! The typed configuration. Every field has the default `config/default.toml` documents, so a
//! missing section is never a crash; `Settings::problems` catches what types cannot.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{DEV_KEYS, Problem, Secret, TelemetrySettings, check_addr, check_url};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub queue: QueueSettings,
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Per-destination overrides of `delivery`, e.g. `[destinations.dvcqg] concurrency = 32`.
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationOverrides>,
    /// Receiving agencies and their beneficiary accounts, for PayGov receipts.
    #[serde(default)]
    pub agencies: BTreeMap<String, AgencySettings>,
    #[serde(default)]
    pub signing: SigningSettings,
    #[serde(default)]
    pub trust: TrustSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    /// Sections the core does not type (see [`crate::CORE_SECTIONS`]), by name.
    #[serde(skip)]
    pub sections: BTreeMap<String, crate::Section>,
    /// Set by the loader from `HCC_ENV`, never read from a file.
    #[serde(skip)]
    pub env_name: String,
}

macro_rules! defaults {
    ($ty:ident { $($field:ident : $value:expr),* $(,)? }) => {
        impl Default for $ty {
            fn default() -> Self { $ty { $($field: $value),* } }
        }
    };
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub body_limit_bytes: usize,
    /// How long reading one request body may take, start to end; then 408.
    pub body_read_timeout_ms: u64,
    /// Body bytes being received by all requests together; a chunk past it is answered 503
    /// with `Retry-After`.
    pub inflight_body_bytes: usize,
    /// Open connections per worker (actix `max_connections`); more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's head (actix `client_request_timeout`).
    pub client_request_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
    pub workers: usize,
}
defaults!(ServerSettings {
    bind: "127.0.0.1:8080".into(),
    body_limit_bytes: 1024 * 1024,
    body_read_timeout_ms: 10_000,
    inflight_body_bytes: 64 * 1024 * 1024,
    max_connections: 1024,
    client_request_timeout_ms: 5_000,
    shutdown_grace_secs: 20,
    workers: 0
});

impl ServerSettings {
    /// The bounds on reading requests: each must hold something, and the budget must fit at
    /// least one body of the largest size taken.
    fn problems(&self, push: &mut impl FnMut(&str, &str)) {
        if !(100..=600_000).contains(&self.body_read_timeout_ms) {
            push("server.body_read_timeout_ms", "must be between 100 and 600000");
        }
        if self.inflight_body_bytes < self.body_limit_bytes {
            push(
                "server.inflight_body_bytes",
                "must be at least server.body_limit_bytes, or a body of the largest size could never be read",
            );
        }
        if self.max_connections == 0 {
            push("server.max_connections", "must be at least 1");
        }
        if !(100..=600_000).contains(&self.client_request_timeout_ms) {
            push(
                "server.client_request_timeout_ms",
                "must be between 100 and 600000 (0 would let a client hold a connection without sending)",
            );
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}
defaults!(LogSettings {
    format: LogFormat::Text,
    level: "info".into()
});

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackendKind {
    Redis,
    Memory,
}

/// How the gateway reaches Redis: one server, a Sentinel-managed primary, or a Cluster.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Standalone,
    Sentinel,
    Cluster,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    pub backend: QueueBackendKind,
    pub redis_mode: RedisMode,
    /// `standalone` only.
    pub redis_url: Secret,
    /// The sentinels (`sentinel`) or the seed nodes (`cluster`): a TOML list, or in the
    /// environment one comma-separated string. URLs may carry a password, hence secrets.
    #[serde(deserialize_with = "list_or_commas")]
    pub redis_nodes: Vec<Secret>,
    pub sentinel_master: String,
    /// The ACL user the gateway logs in to every data node as (empty: the default user).
    pub redis_username: String,
    /// The data nodes' password (`redis_password_file` for a file holding it), in every mode;
    /// when set it wins over one in a URL.
    pub redis_password: Secret,
    /// The sentinels' own password (`requirepass` on the sentinels), `sentinel` mode only.
    pub sentinel_password: Secret,
    /// A PEM file of the CA(s) that sign the Redis servers' certificates, for `rediss://`
    /// URLs; empty: the system's trust store.
    pub redis_ca: String,
    /// Replicas that must hold an acknowledged write (`WAIT`) before the caller hears of it.
    pub min_replicas: u32,
    pub replica_timeout_ms: u64,
    pub key_prefix: String,
    pub pool_size: usize,
    pub idempotency_ttl_secs: u64,
    pub delivered_retention_secs: u64,
    pub poll_interval_ms: u64,
    pub reaper_interval_ms: u64,
    /// Partitions per destination queue, each with its own hash tag (`{dvcqg:3}`), so that a
    /// Redis Cluster spreads one destination over its masters. 1 keeps the unpartitioned keys.
    pub partitions: u16,
}
defaults!(QueueSettings {
    backend: QueueBackendKind::Redis,
    redis_mode: RedisMode::Standalone,
    redis_url: Secret::new("redis://127.0.0.1:6379/0"),
    redis_nodes: Vec::new(),
    sentinel_master: String::new(),
    redis_username: String::new(),
    redis_password: Secret::default(),
    sentinel_password: Secret::default(),
    redis_ca: String::new(),
    min_replicas: 0,
    replica_timeout_ms: 1_000,
    key_prefix: "hcc".into(),
    pool_size: 32,
    idempotency_ttl_secs: 86_400,
    delivered_retention_secs: 7 * 86_400,
    poll_interval_ms: 100,
    reaper_interval_ms: 1_000,
    partitions: 1,
});

impl QueueSettings {
    /// The URLs the gateway is given: `redis_url`, or the sentinels or cluster seeds.
    fn urls(&self) -> Vec<&str> {
        match self.redis_mode {
            RedisMode::Standalone => vec![self.redis_url.expose()],
            _ => self.redis_nodes.iter().map(Secret::expose).collect(),
        }
    }

    /// Credentials and TLS: a setting that could not take effect is refused rather than
    /// ignored, so that a misplaced one is found at start-up, not by an intruder.
    fn access_problems(&self, p: &mut Vec<Problem>) {
        let mut push = |key: &str, message: &str| {
            p.push(Problem {
                key: key.into(),
                message: message.into(),
            })
        };
        if !self.redis_username.is_empty() && self.redis_password.is_empty() {
            push(
                "queue.redis_username",
                "an ACL user needs queue.redis_password (or queue.redis_password_file)",
            );
        }
        if !self.sentinel_password.is_empty() && self.redis_mode != RedisMode::Sentinel {
            push("queue.sentinel_password", "is used in sentinel mode only");
        }
        let urls = self.urls();
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if !self.redis_ca.is_empty() && tls == 0 {
            push("queue.redis_ca", "is set but no Redis URL is rediss://, so it would never be used");
        }
        // One client setting covers every node: a mix would send some nodes the password in
        // the clear (and in sentinel mode the data nodes follow the sentinels' scheme).
        if self.redis_mode != RedisMode::Standalone && tls > 0 && tls < urls.len() {
            push("queue.redis_nodes", "mixes redis:// and rediss://: use one scheme for every node");
        }
    }
}

/// A list given either as a list or as one comma-separated string (the environment's only
/// way to say a list); empty items are dropped.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    Ok(strings_or_commas(d)?.into_iter().map(Secret::new).collect())
}

/// A list of strings given either as a list or as one comma-separated string (the
/// environment's only way to say a list), trimmed, empty items dropped: for
/// `#[serde(deserialize_with)]` in any section.
pub fn strings_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    let items = match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Text(t) => t.split(',').map(str::to_string).collect(),
    };
    Ok(items.into_iter().map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    pub concurrency: usize,
    pub upstream_timeout_ms: u64,
    pub lease_ms: u64,
    pub max_age_secs: u64,
    /// 0 means no limit: `max_age_secs` alone decides.
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    /// The retry cap while the destination as a whole is failing.
    pub backoff_max_ms: u64,
    /// The retry cap while other deliveries to the destination succeed (at most
    /// `backoff_max_ms`): one message's failures are then the destination's noise.
    pub backoff_healthy_max_ms: u64,
    /// The breaker opens when at least this percentage of the attempts in the window failed ...
    pub breaker_failure_rate_percent: u32,
    /// ... and the window holds at least this many attempts.
    pub breaker_min_calls: u32,
    /// The breaker's sliding window.
    pub breaker_window_ms: u64,
    /// Attempts let through while half-open; a majority of them succeeding closes the breaker.
    pub breaker_half_open_probes: u32,
    /// Optional second rule: this many failures in a row open the breaker whatever the rate.
    /// 0 (the default) = off. Before the rate rule this was the only rule (default 10).
    pub breaker_failure_threshold: u32,
    pub breaker_cooldown_ms: u64,
}
defaults!(DeliverySettings {
    concurrency: 32,
    upstream_timeout_ms: 10_000,
    lease_ms: 30_000,
    max_age_secs: 72 * 3600,
    max_attempts: 0,
    backoff_base_ms: 1_000,
    backoff_max_ms: 600_000,
    backoff_healthy_max_ms: 30_000,
    breaker_failure_rate_percent: 50,
    breaker_min_calls: 40,
    breaker_window_ms: 10_000,
    breaker_half_open_probes: 3,
    breaker_failure_threshold: 0,
    breaker_cooldown_ms: 30_000,
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DestinationOverrides {
    pub concurrency: Option<usize>,
    pub upstream_timeout_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    pub max_age_secs: Option<u64>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub backoff_healthy_max_ms: Option<u64>,
    pub breaker_failure_rate_percent: Option<u32>,
    pub breaker_min_calls: Option<u32>,
    pub breaker_window_ms: Option<u64>,
    pub breaker_half_open_probes: Option<u32>,
    pub breaker_failure_threshold: Option<u32>,
    pub breaker_cooldown_ms: Option<u64>,
    /// Deliveries per second to this destination from all gateway instances together; 0 or
    /// absent: no limit. Not a `delivery` setting: a limit is a property of one counterpart.
    pub rate_limit_per_sec: Option<u32>,
    /// `false`: calls to this counterpart (a destination or a payment provider, by its section
    /// name) carry no `traceparent`, for one that does not want to see the gateway's trace ids.
    /// Absent: they do, while traces are on.
    pub propagate_trace: Option<bool>,
}

impl Settings {
    /// The counterparts whose calls carry no `traceparent` (`destinations.<name>.propagate_trace
    /// = false`).
    pub fn trace_withheld_from(&self) -> Vec<String> {
        self.destinations
            .iter()
            .filter(|(_, o)| o.propagate_trace == Some(false))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// `destinations.<name>.rate_limit_per_sec`, 0 when there is none.
    pub fn rate_limit_for(&self, destination: &str) -> u32 {
        self.destinations.get(destination).and_then(|o| o.rate_limit_per_sec).unwrap_or(0)
    }

    /// `delivery` with the overrides of `[destinations.<name>]` applied.
    pub fn delivery_for(&self, destination: &str) -> DeliverySettings {
        let mut d = self.delivery.clone();
        if let Some(o) = self.destinations.get(destination) {
            macro_rules! over { ($($f:ident),*) => { $(if let Some(v) = o.$f { d.$f = v; })* } }
            over!(
                concurrency,
                upstream_timeout_ms,
                lease_ms,
                max_age_secs,
                max_attempts,
                backoff_base_ms,
                backoff_max_ms,
                backoff_healthy_max_ms,
                breaker_failure_rate_percent,
                breaker_min_calls,
                breaker_window_ms,
                breaker_half_open_probes,
                breaker_failure_threshold,
                breaker_cooldown_ms
            );
        }
        d
    }
}

/// A receiving agency (`MaDonVi`) and the account fees for it are paid into.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgencySettings {
    pub ma_don_vi: String,
    pub ten_don_vi: String,
    pub tk_thu_huong: String,
    pub ma_nh_thu_huong: String,
    pub ten_tk_thu_huong: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningSettings {
    pub pkcs12: String,
    pub pkcs12_password: Secret,
    /// The RFC 3161 time-stamping authority for signature timestamps (PAdES-B-T); empty for
    /// none.
    pub tsa_url: String,
    /// A PEM certificate the authority's tokens must chain to (its CA, or the authority's own
    /// certificate pinned); empty: the trust store (`trust.ca_dir`) decides.
    pub tsa_ca: String,
    /// Instead of `pkcs12`, the key in a PKCS#11 token: the module (a vendor `.so`), ...
    pub pkcs11_module: String,
    /// ... the token's label, ...
    pub pkcs11_token: String,
    /// ... the user PIN (`pkcs11_pin_file` for a file holding it), ...
    pub pkcs11_pin: Secret,
    /// ... the private key's `CKA_LABEL`, ...
    pub pkcs11_key_label: String,
    /// ... and a PEM file with its certificate, then the chain.
    pub certificate: String,
}

impl SigningSettings {
    /// Whether any `pkcs11_*` key is set: the key is then meant to be in a token.
    pub fn uses_pkcs11(&self) -> bool {
        !(self.pkcs11_module.is_empty() && self.pkcs11_token.is_empty() && self.pkcs11_pin.is_empty() && self.pkcs11_key_label.is_empty())
    }

    /// Production: a timestamp authority is asked over `https`, or its tokens must chain to a
    /// pinned `tsa_ca`, since on plain `http` anyone on the path could answer. Loopback
    /// addresses stay allowed (a local proxy or a development authority).
    fn production_problems(&self, p: &mut Vec<Problem>) {
        let url = self.tsa_url.trim();
        let Some(rest) = url.strip_prefix("http://") else {
            return;
        };
        if !self.tsa_ca.trim().is_empty() || is_loopback(rest) {
            return;
        }
        p.push(Problem {
            key: "signing.tsa_url".into(),
            message: "must be https when HCC_ENV=production, unless signing.tsa_ca pins the certificate its tokens chain to (loopback addresses stay allowed)".into(),
        });
    }

    /// The token keys come all together or not at all, and never with `pkcs12`.
    fn problems(&self, p: &mut Vec<Problem>) {
        let mut push = |key: &str, message: &str| {
            p.push(Problem {
                key: key.into(),
                message: message.into(),
            })
        };
        if !self.uses_pkcs11() {
            if !self.certificate.is_empty() {
                push(
                    "signing.certificate",
                    "is the certificate of a token key: set it with the signing.pkcs11_* keys (a PKCS#12 file carries its own)",
                );
            }
            return;
        }
        if !self.pkcs12.is_empty() {
            push(
                "signing.pkcs12",
                "set either signing.pkcs12 or the signing.pkcs11_* keys, not both: there is one signing key",
            );
        }
        for (key, empty) in [
            ("signing.pkcs11_module", self.pkcs11_module.trim().is_empty()),
            ("signing.pkcs11_token", self.pkcs11_token.trim().is_empty()),
            ("signing.pkcs11_pin", self.pkcs11_pin.is_empty()),
            ("signing.pkcs11_key_label", self.pkcs11_key_label.trim().is_empty()),
            ("signing.certificate", self.certificate.trim().is_empty()),
        ] {
            if empty {
                push(
                    key,
                    "is required with the other signing.pkcs11_* keys (module, token, pin, key_label and certificate go together)",
                );
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustSettings {
    pub ca_dir: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Centre,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Centre => "centre",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Who holds the key; it appears in the audit log, the key never does.
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub keys: Vec<ApiKeyEntry>,
}

impl Settings {
    pub(crate) fn with_env(mut self, env_name: String) -> Self {
        self.env_name = env_name;
        self
    }

    /// A section the core does not type, for the destination or provider that owns it.
    pub fn section(&self, name: &str) -> Option<&crate::Section> {
        self.sections.get(name)
    }

    /// Sections no owner claimed: a misspelt section name must not be silently ignored.
    pub fn unclaimed_sections(&self, claimed: &[&str]) -> Vec<Problem> {
        self.sections
            .keys()
            .filter(|name| !claimed.contains(&name.as_str()))
            .map(|name| Problem {
                key: name.clone(),
                message: "no destination or payment provider takes a section of this name".into(),
            })
            .collect()
    }

    pub fn is_production(&self) -> bool {
        self.env_name == "production"
    }

    /// Everything types cannot say: addresses, URLs, ranges, and production's stricter rules.
    pub fn problems(&self, production: bool) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut push = |key: &str, message: &str| {
            p.push(Problem {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.server.body_limit_bytes < 1024 {
            push("server.body_limit_bytes", "must be at least 1024");
        }
        self.server.problems(&mut push);
        if self.queue.key_prefix.is_empty() || self.queue.key_prefix.contains(['{', '}', ' ']) {
            push("queue.key_prefix", "must be non-empty, without braces or spaces");
        }
        if self.queue.pool_size == 0 {
            push("queue.pool_size", "must be at least 1");
        }
        if !(1..=1024).contains(&self.queue.partitions) {
            push("queue.partitions", "must be between 1 and 1024");
        }
        if self.queue.idempotency_ttl_secs < 86_400 {
            push(
                "queue.idempotency_ttl_secs",
                "must be at least 86400 (24 h): the contract keeps keys that long",
            );
        }
        let mut names: Vec<&str> = vec!["delivery"];
        names.extend(self.destinations.keys().map(String::as_str));
        for name in names {
            let d = self.delivery_for(name);
            let section = if name == "delivery" {
                "delivery".to_string()
            } else {
                format!("destinations.{name}")
            };
            if d.concurrency == 0 {
                push(&format!("{section}.concurrency"), "must be at least 1");
            }
            if d.upstream_timeout_ms == 0 {
                push(
                    &format!("{section}.upstream_timeout_ms"),
                    "must be above 0: no request goes without a timeout",
                );
            }
            if d.lease_ms <= d.upstream_timeout_ms {
                push(
                    &format!("{section}.lease_ms"),
                    "must be longer than upstream_timeout_ms, or two workers could deliver one message at once",
                );
            }
            if d.backoff_base_ms == 0 || d.backoff_max_ms < d.backoff_base_ms {
                push(&format!("{section}.backoff_max_ms"), "needs 0 < backoff_base_ms <= backoff_max_ms");
            }
            if d.backoff_healthy_max_ms == 0 {
                push(
                    &format!("{section}.backoff_healthy_max_ms"),
                    "must be above 0 (set it to backoff_max_ms for a single cap)",
                );
            }
            if !(1..=100).contains(&d.breaker_failure_rate_percent) {
                push(&format!("{section}.breaker_failure_rate_percent"), "must be between 1 and 100");
            }
            if d.breaker_min_calls == 0 {
                push(&format!("{section}.breaker_min_calls"), "must be at least 1");
            }
            // Ten buckets of at least 10 ms each.
            if d.breaker_window_ms < 100 {
                push(&format!("{section}.breaker_window_ms"), "must be at least 100");
            }
            if d.breaker_half_open_probes == 0 {
                push(&format!("{section}.breaker_half_open_probes"), "must be at least 1");
            }
        }
        let mut p2 = Vec::new();
        check_addr(&mut p2, "server.bind", &self.server.bind);
        self.telemetry.problems(&mut p2, production);
        self.signing.problems(&mut p2);
        if self.queue.backend == QueueBackendKind::Redis {
            match self.queue.redis_mode {
                RedisMode::Standalone => check_url(
                    &mut p2,
                    "queue.redis_url",
                    self.queue.redis_url.expose(),
                    &["redis", "rediss", "redis+unix", "unix"],
                ),
                mode => {
                    if self.queue.redis_nodes.is_empty() {
                        p2.push(Problem {
                            key: "queue.redis_nodes".into(),
                            message: format!("{mode:?} mode needs at least one node").to_lowercase(),
                        });
                    }
                    for (i, n) in self.queue.redis_nodes.iter().enumerate() {
                        check_url(&mut p2, &format!("queue.redis_nodes[{i}]"), n.expose(), &["redis", "rediss"]);
                    }
                    if mode == RedisMode::Sentinel && self.queue.sentinel_master.trim().is_empty() {
                        p2.push(Problem {
                            key: "queue.sentinel_master".into(),
                            message: "sentinel mode needs the master's name".into(),
                        });
                    }
                }
            }
            self.queue.access_problems(&mut p2);
            if self.queue.min_replicas > 0 && self.queue.replica_timeout_ms == 0 {
                p2.push(Problem {
                    key: "queue.replica_timeout_ms".into(),
                    message: "must be above 0 when min_replicas is set: WAIT 0 would wait for ever".into(),
                });
            }
        }
        for (id, a) in &self.agencies {
            let id_ok = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !id_ok {
                p2.push(Problem {
                    key: format!("agencies.{id}"),
                    message: "agency ids are lowercase [a-z0-9_-]+".into(),
                });
            }
            for (field, value) in [
                ("ma_don_vi", &a.ma_don_vi),
                ("ten_don_vi", &a.ten_don_vi),
                ("tk_thu_huong", &a.tk_thu_huong),
                ("ma_nh_thu_huong", &a.ma_nh_thu_huong),
                ("ten_tk_thu_huong", &a.ten_tk_thu_huong),
            ] {
                if value.trim().is_empty() {
                    p2.push(Problem {
                        key: format!("agencies.{id}.{field}"),
                        message: "is required: PayGov receipts carry it".into(),
                    });
                }
            }
        }
        // `MaDonVi` names the agency a payment is for: two agencies with the same one would
        // leave it to chance which account is paid. Each later one is named.
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (id, a) in &self.agencies {
            let m = a.ma_don_vi.trim();
            if m.is_empty() {
                continue;
            }
            if let Some(first) = seen.insert(m, id) {
                seen.insert(m, first);
                p2.push(Problem {
                    key: format!("agencies.{id}.ma_don_vi"),
                    message: format!("is also agencies.{first}.ma_don_vi: each receiving agency needs its own MaDonVi"),
                });
            }
        }
        for (i, k) in self.auth.keys.iter().enumerate() {
            let valid_hex = k.sha256.len() == 64 && k.sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !valid_hex {
                p2.push(Problem {
                    key: format!("auth.keys[{i}].sha256"),
                    message: "must be 64 lowercase hex digits (sha256sum of the key)".into(),
                });
            }
        }
        if production {
            self.signing.production_problems(&mut p2);
            if self.queue.backend == QueueBackendKind::Memory {
                p2.push(Problem {
                    key: "queue.backend".into(),
                    message: "memory is not durable and is refused when HCC_ENV=production; use redis".into(),
                });
            }
            let dev_hashes: Vec<String> = DEV_KEYS.iter().map(|k| hcc_core::sha256_hex(k.as_bytes())).collect();
            for (i, k) in self.auth.keys.iter().enumerate() {
                if dev_hashes.iter().any(|h| hcc_core::ct_eq(h.as_bytes(), k.sha256.as_bytes())) {
                    p2.push(Problem {
                        key: format!("auth.keys[{i}]"),
                        message: format!("{:?} uses a published development key, refused when HCC_ENV=production", k.name),
                    });
                }
            }
            if self.auth.keys.is_empty() {
                p2.push(Problem {
                    key: "auth.keys".into(),
                    message: "no API keys configured".into(),
                });
            }
        }
        p.extend(p2);
        p
    }
}

/// Whether the authority part of a URL (what follows `scheme://`) names a loopback host:
/// `localhost`, `127.0.0.0/8` or `[::1]`.
fn is_loopback(after_scheme: &str) -> bool {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
