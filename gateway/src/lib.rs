//! hcc-gateway: the HTTP API, the delivery engine and the operator CLI, as a library so the
//! binary, the demo and the end-to-end tests all build the same [`app::Application`].

pub mod app;
pub mod background;
pub mod bank_money;
pub mod cli;
#[cfg(feature = "demo")]
pub mod demo;
pub mod engine;
pub mod http;
pub mod logging;
pub mod memory;
pub mod monitoring;
pub mod payments;
pub mod plain;
pub mod qr;
pub mod redact;
pub mod replay;
pub mod storage;
pub mod timefmt;
pub mod tsa;
