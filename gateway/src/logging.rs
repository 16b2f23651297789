//! Structured logs through `tracing`: text for people, JSON for log shippers. The filter comes
//! from `RUST_LOG` when set, else from `log.level`.
//!
//! Every log line is made safe here, in one place, whatever a call site passes: text from
//! outside (an XML attribute, a URL, a header, a portal's or a provider's answer) reaches many
//! log statements, and one forgotten escape would let a newline forge a whole log line.
//! - Text: [`SafeFields`] formats every field value and every message, of events and of spans,
//!   with identity numbers masked and control characters escaped (`crate::redact`), and cuts a
//!   value after [`MAX_FIELD_CHARS`] characters. Numbers recorded as numbers (`elapsed_ms`,
//!   `amount`) are the gateway's own and are written as they are.
//! - JSON: the JSON writer escapes control characters itself; [`MaskedJson`] masks identity
//!   numbers inside the line's strings, leaving its numbers alone.

use std::fmt;

use hcc_config::{LogFormat, LogSettings};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::redact;

/// Longest value one text log field carries, in characters; a longer one is cut with `…`, so a
/// megabyte of outside text makes no megabyte log line.
pub const MAX_FIELD_CHARS: usize = 4096;

pub fn init(log: &LogSettings) {
    init_with_traces(log, None);
}

/// [`init`], with the spans also sent as traces by `tracer` when there is one
/// (`crate::telemetry`). The log filter decides for both: a span the log leaves out is no trace.
pub fn init_with_traces(log: &LogSettings, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    // A second init (tests, the demo) keeps the first subscriber; that is fine.
    let _ = tracing::subscriber::set_global_default(subscriber_with_traces(log.format, filter, std::io::stderr, tracer));
    install_panic_hook();
}

/// Replaces the default panic hook, which writes raw lines (the message as it is, and with
/// `RUST_BACKTRACE` a multi-line backtrace) to stderr, with one error event through the log:
/// the message, where, the thread, and the backtrace when `RUST_BACKTRACE` asks for one, each a
/// field, escaped and masked as every field is. A panic message can quote outside text (a
/// value that broke an assumption), so it must not reach stderr unescaped.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| log_panic(info.payload(), info.location())));
}

/// The event [`install_panic_hook`] logs for one panic.
fn log_panic(payload: &(dyn std::any::Any + Send), location: Option<&std::panic::Location<'_>>) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let location = location
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        tracing::error!(panic = %message, %location, %thread, backtrace = %backtrace, "panic");
    } else {
        tracing::error!(panic = %message, %location, %thread, "panic");
    }
}

/// The gateway's subscriber, writing to `writer`: what [`init`] installs, and what the tests
/// below read back.
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber_with_traces(format, filter, writer, None)
}

/// [`subscriber`], with `tracing-opentelemetry`'s layer beside the log when `tracer` is given.
///
/// With traces, each layer has its own filter: the log keeps `filter` (`log.level`,
/// `RUST_LOG`), and traces take the gateway's own spans at info whatever the log level, so that
/// quieting the log does not silence traces. The layer records no code locations or thread
/// names: they say nothing an operator reads a trace for, and cost bytes on every span.
fn subscriber_with_traces<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let Some(tracer) = tracer else {
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
        return match format {
            LogFormat::Json => Box::new(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .map_event_format(MaskedJson)
                    .finish(),
            ),
            LogFormat::Text => Box::new(builder.fmt_fields(SafeFields).finish()),
        };
    };
    let log = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Json => {
            let log = log
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .map_event_format(MaskedJson)
                .with_filter(filter);
            let registry = tracing_subscriber::registry().with(log);
            Box::new(registry.with(trace_layer(tracer)))
        }
        LogFormat::Text => {
            let registry = tracing_subscriber::registry().with(log.fmt_fields(SafeFields).with_filter(filter));
            Box::new(registry.with(trace_layer(tracer)))
        }
    }
}

/// `tracing-opentelemetry`'s layer for `tracer`, over the log subscriber `S`, taking the
/// gateway's spans and events at info and above.
fn trace_layer<S>(tracer: opentelemetry_sdk::trace::Tracer) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_filter(
            Targets::new()
                .with_target("hcc_gateway", LevelFilter::INFO)
                .with_target("hcc_adapters", LevelFilter::INFO),
        )
}

/// Formats the fields of text log lines safely (see the module docs). Otherwise the lines look
/// as `tracing-subscriber`'s default fields make them: `name=value`, a string field quoted.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFields;

impl<'w> FormatFields<'w> for SafeFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = SafeVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct SafeVisitor<'w> {
    writer: Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl SafeVisitor<'_> {
    /// `name=` (nothing for the message), italic and dimmed as the default fields are when the
    /// writer takes ANSI colours.
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.empty) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name == "message" {
            return Ok(());
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.writer.has_ansi_escapes() {
            write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")
        } else {
            write!(self.writer, "{name}=")
        }
    }

    /// A value that may come from outside: masked, escaped, cut.
    fn text(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self
                .name(field)
                .and_then(|()| redact::push_escaped(&mut self.writer, &redact::mask_identity_numbers(value), MAX_FIELD_CHARS));
        }
    }

    /// A value the gateway itself computed as a number or a flag.
    fn plain(&mut self, field: &Field, value: &dyn fmt::Display) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| write!(self.writer, "{value}"));
        }
    }
}

impl Visit for SafeVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` and `?x` values and the message all arrive here.
        self.text(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text(field, value);
        } else {
            // Quoted, as the default fields write a string.
            self.text(field, &format!("{value:?}"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, &value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.plain(field, &value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.plain(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.plain(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value.to_string());
    }
}

/// Wraps the JSON event format: the line is written whole, then identity numbers in its strings
/// are masked (`redact::mask_json_strings`); the JSON stays valid and its numbers stay numbers.
pub struct MaskedJson<E>(pub E);

impl<S, N, E> FormatEvent<S, N> for MaskedJson<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&redact::mask_json_strings(&line))
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use hcc_config::LogFormat;
    use tracing_subscriber::EnvFilter;

    use super::subscriber;
    use crate::redact::Escaped;

    /// Everything the subscriber writes, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const FORGED: &str = "x\n2026-11-25T00:00:00.000000Z  INFO hcc_gateway: forged line\r\u{1b}[2K\u{2028}";

    /// Logs hostile values every way call sites do, and returns the output.
    fn log_hostile(format: LogFormat) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let sub = subscriber(format, EnvFilter::new("debug"), move || writer.clone());
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("request", path = %FORGED, id = "0190f3a2-7b4c-7def-8123-456789012345");
            let _enter = span.enter();
            let error = std::io::Error::other(format!("portal said: CCCD 001 203 004 567{FORGED}"));
            tracing::warn!(error = %error, "camt.054 refused");
            tracing::warn!(reason = ?FORGED, cmnd = "123-456-789", "debug and str values");
            tracing::error!("alarm: {FORGED} 0912 345 678");
            tracing::warn!(error = &error as &(dyn std::error::Error + 'static), "an error value");
            tracing::info!(already = %Escaped(FORGED), amount = 100_000_000u64, elapsed_us = 123_456_789i64, ok = true, "numbers stay");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    /// The text without the formatter's own colour sequences (`ESC [ … m`).
    fn without_colours(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("\u{1b}[") {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            match rest.find('m') {
                Some(end) if rest[2..end].chars().all(|c| c.is_ascii_digit() || c == ';') => rest = &rest[end + 1..],
                _ => {
                    out.push_str(&rest[..1]);
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn text_lines_cannot_be_forged_and_identity_numbers_are_masked() {
        let out = without_colours(&log_hostile(LogFormat::Text));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        for line in &lines {
            assert!(!line.contains("forged line") || line.contains("\\n2026-11-25"), "{line}");
            assert!(!line.chars().any(|c| c.is_control() || c == '\u{2028}'), "{line:?}");
            for id in ["001 203 004 567", "123-456-789", "0912 345 678", "001203004567"] {
                assert!(!line.contains(id), "{line}");
            }
        }
        assert!(
            out.contains("*** *** *** *67") && out.contains("***-***-*89") && out.contains("**** *** *78"),
            "{out}"
        );
        // The request id is a machine id, and numbers recorded as numbers are the gateway's own.
        assert!(out.contains("0190f3a2-7b4c-7def-8123-456789012345"), "{out}");
        assert!(
            out.contains("amount=100000000") && out.contains("elapsed_us=123456789") && out.contains("ok=true"),
            "{out}"
        );
        // Values escaped at the call site are not escaped twice.
        assert!(out.contains("already=x\\n2026"), "{out}");
    }

    #[test]
    fn json_lines_stay_json_with_identity_numbers_masked() {
        let out = log_hostile(LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let text = v.to_string();
            for id in ["001 203 004 567", "123-456-789", "0912 345 678"] {
                assert!(!text.contains(id), "{line}");
            }
            assert_eq!(v["span"]["id"], "0190f3a2-7b4c-7def-8123-456789012345");
        }
        let last: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
        assert_eq!(
            (last["amount"].as_u64(), last["elapsed_us"].as_i64()),
            (Some(100_000_000), Some(123_456_789))
        );
    }

    #[test]
    fn a_panic_is_one_escaped_json_line() {
        let out = Captured::default();
        let writer = out.clone();
        let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), move || writer.clone());
        let payload: Box<dyn std::any::Any + Send> = Box::new(format!("bad index for CCCD 001203004567{FORGED}"));
        tracing::subscriber::with_default(sub, || super::log_panic(payload.as_ref(), Some(std::panic::Location::caller())));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!((v["level"].as_str(), v["message"].as_str()), (Some("ERROR"), Some("panic")));
        let panic = v["panic"].as_str().unwrap();
        assert!(panic.contains("forged line") && !panic.contains("001203004567"), "{panic}");
        assert!(v["location"].as_str().unwrap().contains("logging.rs"), "{v}");
    }

    #[test]
    fn a_huge_value_is_cut() {
        let out = Captured::default();
        let writer = out.clone();
        let sub = subscriber(LogFormat::Text, EnvFilter::new("info"), move || writer.clone());
        let huge = "y".repeat(1_000_000);
        tracing::subscriber::with_default(sub, || tracing::info!(body = %huge, "big"));
        let written = out.0.lock().unwrap().len();
        assert!(written < super::MAX_FIELD_CHARS + 300, "{written}");
    }
}
