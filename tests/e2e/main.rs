//! End-to-end tests, one binary: the gateway and the mocks over real HTTP on 127.0.0.1, and a
//! real Redis (127.0.0.1:6379, or `HCC_TEST_REDIS_URL`; tests that stop Redis start their own).

mod bank_money;
mod bank_xml;
mod catalogue;
mod cluster;
mod cluster_ack;
// The signature tests' helpers, shared with the signing crate's own interop tests.
#[path = "../../signing/tests/common/mod.rs"]
mod common;
mod crash;
mod dashboard;
mod demo;
mod deploy;
mod dossier_view;
mod dossiers;
mod emc;
mod engine;
mod evidence;
mod flaky_portal;
mod hostile_http;
mod hostile_payments;
mod inbound;
mod inbound_dvclt;
mod log_injection;
mod ops;
mod outage_logs;
mod pades;
mod payment_lifetimes;
mod payments;
mod pkcs11;
mod portal_wire;
mod production_config;
mod queue_conformance;
mod queue_counters;
mod rate_limit;
mod redis_auth;
mod registry;
mod replay_cancel;
mod schema;
mod sentinel;
mod service;
mod signatures;
mod slow_bodies;
mod timestamps;
mod traces;
mod vietqr;
mod vietqr_judges;
