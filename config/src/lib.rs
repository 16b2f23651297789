//! Layered configuration for hcc-gateway, exactly as the contract orders it:
//! `config/default.toml`, then `config/$HCC_ENV.toml` (`HCC_ENV` defaults to `local`), then
//! environment variables `HCC__SECTION__KEY`. `HCC_CONFIG_DIR` moves the folder.
//!
//! Any key `name_file` is read from that file into `name`, so secrets can live in mounted files
//! instead of the environment. Every problem names the key it is about.
//!
//! # Layout
//!
//! - this file: loading the layers, [`Section`] (a destination's or a provider's own section,
//!   read by its module), [`Problem`], the URL and address checks the sections share, and
//!   [`Secret`] (from `hcc-core`);
//! - `settings`: the core's own sections ([`Settings`]: server, queue, delivery, auth,
//!   signing, trust, log) and their checks, development keys refused in production;
//! - `tests`: the layering and every check.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod settings;
mod telemetry;
pub use settings::*;
pub use telemetry::TelemetrySettings;

/// The API keys `config/local.toml` ships with. They are public, so production refuses them.
pub const DEV_KEYS: [&str; 3] = ["dev-centre-key", "dev-operator-key", "dev-admin-key"];

/// One thing wrong with the configuration, tied to the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration problems:\n{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
        }
    }
    fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid(vec![Problem {
            key: key.into(),
            message: message.into(),
        }])
    }
}

/// Where to read the configuration from. `from_process_env` is what the binaries use; tests
/// build one by hand so they never depend on the environment they run in.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    pub env_name: String,
    pub vars: HashMap<String, String>,
}

impl Source {
    pub fn from_process_env() -> Self {
        let dir = std::env::var("HCC_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| "config".into());
        let env_name = std::env::var("HCC_ENV").unwrap_or_else(|_| "local".to_string());
        let vars = std::env::vars().filter(|(k, _)| k.starts_with("HCC__")).collect();
        Source { dir, env_name, vars }
    }
}

/// Loads, resolves `*_file` secrets, deserializes and validates.
pub fn load(source: &Source) -> Result<Settings, ConfigError> {
    let env_name = source.env_name.trim().to_ascii_lowercase();
    if env_name.is_empty() || !env_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ConfigError::one("HCC_ENV", "must be a plain name such as local or production"));
    }
    let default_file = source.dir.join("default.toml");
    if !default_file.is_file() {
        return Err(ConfigError::one(
            "HCC_CONFIG_DIR",
            format!("{} not found (set HCC_CONFIG_DIR to the config folder)", default_file.display()),
        ));
    }
    let raw = config::Config::builder()
        .add_source(config::File::from(default_file))
        .add_source(config::File::from(source.dir.join(format!("{env_name}.toml"))).required(false))
        .add_source(
            config::Environment::with_prefix("HCC")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(source.vars.clone().into_iter().collect())),
        )
        .build()
        .map_err(|e| ConfigError::one(key_of(&e), e.to_string()))?;
    let mut table = raw
        .try_deserialize::<BTreeMap<String, config::Value>>()
        .map_err(|e| ConfigError::one(key_of(&e), e.to_string()))?;
    resolve_secret_files(&mut table, "")?;
    // Sections the core does not type are kept raw for the destination or payment provider that
    // owns them (`Section::parse`); which of them are claimed is the registry's to say.
    let mut sections = BTreeMap::new();
    for name in table
        .keys()
        .filter(|k| !CORE_SECTIONS.contains(&k.as_str()))
        .cloned()
        .collect::<Vec<_>>()
    {
        if let Some(value) = table.remove(&name) {
            sections.insert(name.clone(), Section { name, value });
        }
    }
    let resolved = config::Config::builder()
        .add_source(TableSource(table))
        .build()
        .map_err(|e| ConfigError::one(key_of(&e), e.to_string()))?;
    let settings: Settings = resolved
        .try_deserialize()
        .map_err(|e| ConfigError::one(key_of(&e), e.to_string()))?;
    let mut settings = settings;
    settings.sections = sections;
    let problems = settings.problems(env_name == "production");
    if problems.is_empty() {
        Ok(settings.with_env(env_name))
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// The key a `config` error is about, when it says; otherwise the whole configuration.
fn key_of(e: &config::ConfigError) -> String {
    let text = e.to_string();
    // config's messages end with "for key `a.b`" or "in `file`"; fall back to a generic label.
    if let Some(start) = text.find("for key `") {
        let rest = &text[start + 9..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    match e {
        config::ConfigError::Type { key: Some(k), .. } => k.clone(),
        config::ConfigError::NotFound(k) => k.clone(),
        _ => "configuration".to_string(),
    }
}

fn resolve_secret_files(table: &mut BTreeMap<String, config::Value>, prefix: &str) -> Result<(), ConfigError> {
    let file_keys: Vec<String> = table.keys().filter(|k| k.ends_with("_file")).cloned().collect();
    for file_key in file_keys {
        let full = format!("{prefix}{file_key}");
        let Some(value) = table.remove(&file_key) else {
            continue;
        };
        let path = value.into_string().map_err(|e| ConfigError::one(full.clone(), e.to_string()))?;
        if path.is_empty() {
            continue;
        }
        let text =
            std::fs::read_to_string(Path::new(&path)).map_err(|e| ConfigError::one(full.clone(), format!("cannot read {path}: {e}")))?;
        let target = file_key.trim_end_matches("_file").to_string();
        table.insert(target, config::Value::from(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    for (k, v) in table.iter_mut() {
        if let config::ValueKind::Table(inner) = &mut v.kind {
            let mut sub: BTreeMap<String, config::Value> = std::mem::take(inner).into_iter().collect();
            resolve_secret_files(&mut sub, &format!("{prefix}{k}."))?;
            *inner = sub.into_iter().collect();
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct TableSource(BTreeMap<String, config::Value>);

impl config::Source for TableSource {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }
    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self.0.clone().into_iter().collect())
    }
}

/// The top-level sections the core types itself. Every other section belongs to a destination
/// or a payment provider, which types it with [`Section::parse`].
pub const CORE_SECTIONS: &[&str] = &[
    "server",
    "log",
    "telemetry",
    "queue",
    "delivery",
    "destinations",
    "signing",
    "trust",
    "auth",
    // Receiving agencies are the payments core's, whatever the provider.
    "agencies",
];

/// One top-level section of the configuration, as loaded (files, then environment, with
/// `*_file` secrets resolved), for the module that owns it to type. `Debug` shows the name
/// only: the raw values hold the section's secrets, which only its owner's types can mark.
#[derive(Clone)]
pub struct Section {
    name: String,
    value: config::Value,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Section {
    /// A section built from TOML text, for unit tests of an owner's parsing.
    pub fn from_toml(name: &str, text: &str) -> Result<Section, Problem> {
        let value = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<config::Value>())
            .map_err(|e| Problem {
                key: name.to_string(),
                message: e.to_string(),
            })?;
        Ok(Section {
            name: name.to_string(),
            value,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The section as `T`. Values from the environment arrive as strings and are converted as
    /// for the core's own sections; an error names the key (`section.field`).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        self.value.clone().try_deserialize().map_err(|e| {
            let inner = key_of(&e);
            Problem {
                key: if inner == "configuration" {
                    self.name.clone()
                } else {
                    format!("{}.{inner}", self.name)
                },
                message: e.to_string(),
            }
        })
    }
}

/// A value that must never be printed; it lives in `hcc-core` so that every crate can hold
/// one without depending on the settings.
pub use hcc_core::Secret;

pub(crate) fn check_addr(problems: &mut Vec<Problem>, key: &str, value: &str) {
    if value.parse::<SocketAddr>().is_err() {
        problems.push(Problem {
            key: key.into(),
            message: format!("{value:?} is not an address like 127.0.0.1:8080"),
        });
    }
}

/// A problem unless `value` is a URL of one of `schemes` with something after `://`.
pub fn check_url(problems: &mut Vec<Problem>, key: &str, value: &str, schemes: &[&str]) {
    let ok = schemes.iter().any(|s| {
        value
            .strip_prefix(s)
            .and_then(|r| r.strip_prefix("://"))
            .is_some_and(|rest| !rest.is_empty())
    });
    if !ok {
        problems.push(Problem {
            key: key.into(),
            message: format!("must be a {} URL", schemes.join(" or ")),
        });
    }
}

/// The shortest shared secret (an HMAC key, a checksum key) production takes, in bytes: a
/// shorter one is within reach of guessing, and with it anyone could forge the counterpart's
/// confirmations.
pub const MIN_PRODUCTION_SECRET_BYTES: usize = 16;

/// A URL of a counterpart outside this machine (a portal, a payment platform, a centre): an
/// `http` or `https` URL; with `production`, `https` only, except to a loopback host
/// (`127.0.0.0/8`, `::1`, `localhost`), which stays allowed for development and for a local
/// TLS-terminating proxy. Plain http out to the network would carry passwords, bearer tokens
/// and payment confirmations in the clear.
pub fn check_outside_url(problems: &mut Vec<Problem>, key: &str, value: &str, production: bool) {
    let before = problems.len();
    check_url(problems, key, value, &["http", "https"]);
    if problems.len() > before || !production || value.starts_with("https://") {
        return;
    }
    if !is_loopback_url(value) {
        problems.push(Problem {
            key: key.into(),
            message: "must be https when HCC_ENV=production (http only to a loopback host: 127.0.0.0/8, ::1, localhost)".into(),
        });
    }
}

/// Whether `value` parses (as the HTTP client parses it) to a URL whose host is a loopback
/// address or `localhost`. `http://127.0.0.1.example.com`, `http://example.com\@127.0.0.1`
/// and the like name another host and are not loopback.
pub fn is_loopback_url(value: &str) -> bool {
    match url::Url::parse(value).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
        None => false,
    }
}

/// With `production`, a problem unless `secret` has at least [`MIN_PRODUCTION_SECRET_BYTES`]
/// bytes (surrounding white space not counted). `what` says what a guessed secret would let
/// anyone forge. Outside production development configs ship short, published ones.
pub fn check_shared_secret(problems: &mut Vec<Problem>, key: &str, secret: &Secret, production: bool, what: &str) {
    if production && secret.expose().trim().len() < MIN_PRODUCTION_SECRET_BYTES {
        problems.push(Problem {
            key: key.into(),
            message: format!(
                "is shorter than {MIN_PRODUCTION_SECRET_BYTES} bytes, refused when HCC_ENV=production: anyone who guesses it could forge {what}"
            ),
        });
    }
}

#[cfg(test)]
mod tests;
