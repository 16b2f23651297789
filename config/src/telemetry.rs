//! `[telemetry]`: traces over OTLP/HTTP, what they are sent to and how much of them is kept.

use serde::Deserialize;

use crate::Problem;

/// Traces over OTLP/HTTP (`[telemetry]`). Off while `otlp_endpoint` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The collector: its base URL (`http://collector:4318`, to which `/v1/traces` is added) or
    /// the whole traces URL (ending in `/v1/traces`). Empty: no traces are made or sent.
    pub otlp_endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// `service.instance.id`; empty: a new UUID each time the process starts.
    pub instance_id: String,
    /// The share of new traces kept (0 to 1); a trace continued from a caller's `traceparent`
    /// follows the caller's decision.
    pub sample_ratio: f64,
    /// How long one export to the collector may take; then its spans are dropped and counted.
    pub export_timeout_ms: u64,
    /// Finished spans waiting for export, at most; more are dropped and counted, so a slow or
    /// absent collector costs memory up to this bound and never slows a request or a delivery.
    pub max_queued_spans: usize,
}
impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: String::new(),
            service_name: "hcc-gateway".into(),
            instance_id: String::new(),
            sample_ratio: 1.0,
            export_timeout_ms: 5_000,
            max_queued_spans: 4_096,
        }
    }
}

impl TelemetrySettings {
    /// Whether traces are made and sent.
    pub fn enabled(&self) -> bool {
        !self.otlp_endpoint.is_empty()
    }

    /// The URL spans are posted to: `otlp_endpoint` when it names the traces path, else with
    /// `/v1/traces` added (as the `OTEL_EXPORTER_OTLP_ENDPOINT` convention has it).
    pub fn traces_url(&self) -> String {
        let base = self.otlp_endpoint.trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        }
    }

    /// Production sends spans over `https`, or to a collector on this machine (a local agent).
    pub(crate) fn problems(&self, p: &mut Vec<Problem>, production: bool) {
        if self.enabled() {
            crate::check_outside_url(p, "telemetry.otlp_endpoint", &self.otlp_endpoint, production);
        }
        let mut push = |key: &str, message: &str| {
            p.push(Problem {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.service_name.trim().is_empty() {
            push("telemetry.service_name", "must not be empty");
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            push("telemetry.sample_ratio", "must be between 0 and 1");
        }
        if self.export_timeout_ms == 0 {
            push("telemetry.export_timeout_ms", "must be above 0");
        }
        if !(1..=1_000_000).contains(&self.max_queued_spans) {
            push("telemetry.max_queued_spans", "must be between 1 and 1000000");
        }
    }
}
