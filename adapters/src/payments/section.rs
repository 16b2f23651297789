//! A provider's settings section: reading it, checking it by key, and the client its calls use.

use std::time::Duration;

use hcc_config::{Problem, Section};

use crate::registry::BuildContext;

/// A provider's settings section: whether it switches the provider on, and what is wrong with
/// it by key.
pub trait ProviderSettings: serde::de::DeserializeOwned + Default {
    fn is_on(&self) -> bool;
    fn problems(&self, ctx: &BuildContext<'_>) -> Vec<Problem>;
}

/// The provider's settings when its section switches it on and has nothing wrong with it;
/// `Ok(None)` when it is off; every problem by key otherwise. Every provider's `build` starts
/// here.
pub fn settings_if_on<T: ProviderSettings>(ctx: &BuildContext<'_>) -> Result<Option<T>, Vec<Problem>> {
    let s: T = parse_section(ctx.section)?;
    let problems = s.problems(ctx);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(s.is_on().then_some(s))
}

/// Parses a provider's section into `T`, or says which key is wrong.
pub fn parse_section<T: serde::de::DeserializeOwned + Default>(section: Option<&Section>) -> Result<T, Vec<Problem>> {
    match section {
        Some(s) => s.parse().map_err(|p| vec![p]),
        None => Ok(T::default()),
    }
}

/// Checks that `value` is an `http`/`https` URL with something after the scheme, as the core
/// checks its own URLs; in production, that it is https or names a loopback host
/// ([`hcc_config::check_outside_url`]).
pub fn check_http_url(problems: &mut Vec<Problem>, key: &str, value: &str, production: bool) {
    hcc_config::check_outside_url(problems, key, value, production);
}

/// One problem with a key.
pub fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// A shared HTTP client for a provider's calls, every request bounded by `timeout`.
pub(crate) fn provider_client(key: &str, timeout: Duration) -> Result<reqwest::Client, Vec<Problem>> {
    crate::http::client(timeout).map_err(|e| vec![problem(key, e.to_string())])
}
