//! Payments end to end: the gateway, mock-portal playing PayGov, mock-bank playing VNPAY and a
//! host-to-host bank, and mock-centre receiving the signed webhooks.

use std::time::Duration;

use hcc_gateway::app::Workers;
use hcc_mocks::centre::CentreState;
use hcc_signing::webhook::WebhookSecret;
use hcc_tests::*;
use serde_json::{Value, json};

mod banks;
mod listing;
mod providers;
mod rules;

/// The environment of these tests: the payment mocks and a mock centre.
pub(crate) fn env() -> PaymentEnv {
    payment_env("pay")
}

pub(crate) async fn create(app: &TestApp, provider: &str, amount: u64) -> String {
    let v = app.new_payment(provider, amount).await;
    assert_eq!(v["status"], "pending");
    assert!(v["payment_url"].as_str().unwrap().starts_with("http"));
    v["MaThamChieu"].as_str().unwrap().to_string()
}

/// Waits for `n` webhooks, then gives stragglers a moment, and checks there are exactly `n`.
pub(crate) async fn exactly_webhooks(state: &CentreState, n: u64) {
    eventually(&format!("{n} webhooks"), Duration::from_secs(20), || async {
        (state.counters().received >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = state.counters();
    assert_eq!((c.received, c.unique, c.bad_signatures), (n, n, 0), "{c:?}");
}

/// The outcome the gateway gave each transaction of the document the mock bank sent.
pub(crate) fn outcomes(r: &Value) -> Vec<String> {
    outcomes_of(r, 0)
}

/// The outcomes of the `reply`-th copy the mock bank sent.
pub(crate) fn outcomes_of(r: &Value, reply: usize) -> Vec<String> {
    r["replies"][reply]["body"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|x| x["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Loads the payment page as the citizen's browser would: the mock VNPAY checks the URL the
/// gateway signed (merchant, signature, `vnp_IpAddr`, `vnp_ExpireDate`) and records the order.
pub(crate) async fn open_vnpay_page(app: &TestApp, reference: &str) -> Value {
    let url = app.payment(reference).await["payment_url"].as_str().unwrap().to_string();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200, "the mock VNPAY refused the gateway's URL: {url}");
    r.json().await.unwrap()
}
