//! hcc-gateway: the HTTP API, the delivery engine and the operator CLI, as a library so the
//! binary, the tools (`hcc-demo`, `hcc-bench` in `tools/`) and the end-to-end tests all build
//! the same [`app::Application`]. It depends on no mock.
//!
//! # Layout
//!
//! - [`app`]: builds the service from its settings and runs it until told to stop;
//!   [`background`]: the one owner of every long-lived task, and the order they stop in;
//! - [`engine`]: the delivery engine (lanes, settlement, the centre's outbox, breaker, retry
//!   policy); [`replay`]: paced replays of dead letters;
//! - [`storage`]: the queue, the payment ledger and the audit log, in Redis or in memory;
//! - [`http`]: the JSON API, its authentication, body limits and OpenAPI document;
//! - [`payments`] and [`bank_money`]: payments over the providers, a bank's money;
//! - [`monitoring`]: metrics, the audit log's writer, the dashboard's history; [`logging`] and
//!   [`redact`]: safe log lines; [`reason`]: a dead letter's reason in plain words;
//!   [`outage`]: a dependency's outage logged as state changes, its failures counted;
//! - [`tsa`]: the timestamp authority's client; [`memory`]: giving memory back after bursts;
//!   `timefmt`: RFC 3339, from `hcc-core`;
//! - [`cli`]: the operator commands; [`qr`]: a VietQR payment's code as PNG, SVG and text.

pub mod app;
pub mod background;
pub mod bank_money;
pub mod catalogue;
pub mod cli;
pub mod engine;
pub mod evidence;
pub mod http;
pub mod inbound;
pub mod logging;
pub mod memory;
pub mod monitoring;
pub mod outage;
pub mod payments;
pub mod qr;
pub mod reason;
pub mod redact;
pub mod replay;
pub mod storage;
pub mod telemetry;
/// RFC 3339 for the API (`rfc3339_ms`, `parse_rfc3339_ms`): the one time-format module lives in
/// `hcc-core`; this path stays for the callers that name it here.
pub use hcc_core::time as timefmt;
pub mod tsa;
