//! One environment for every payment test: the payment mocks ([`PaymentMocks`]: the portal
//! playing PayGov, the bank playing VNPAY and a host-to-host bank), a mock centre taking the
//! signed webhooks, and a key prefix of its own; with methods that drive the mocks the way the
//! counterparts would.

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::centre::CentreState;
use hcc_signing::webhook::WebhookSecret;
use serde_json::Value;

use crate::{CENTRE_SECRET, PaymentMocks, TestApp, payment_mocks, settings, spawn_app, unique_prefix};

pub struct PaymentEnv {
    mocks: PaymentMocks,
    pub centre: hcc_mocks::Running,
    pub centre_state: CentreState,
    pub prefix: String,
}

impl std::ops::Deref for PaymentEnv {
    type Target = PaymentMocks;
    fn deref(&self) -> &PaymentMocks {
        &self.mocks
    }
}

/// A fresh environment; `name` names the mocks' scratch folder.
pub fn payment_env(name: &str) -> PaymentEnv {
    let mocks = payment_mocks(name);
    let secret = WebhookSecret::parse(CENTRE_SECRET).unwrap_or_else(|e| panic!("centre secret: {e}"));
    let (centre, centre_state) = hcc_mocks::centre::spawn("127.0.0.1:0", secret).unwrap_or_else(|e| panic!("mock centre: {e}"));
    PaymentEnv {
        mocks,
        centre,
        centre_state,
        prefix: unique_prefix(),
    }
}

impl PaymentEnv {
    /// The gateway's settings against these mocks, on Redis under this prefix, with `extra`.
    pub fn settings(&self, extra: &[(&str, String)]) -> hcc_config::Settings {
        let mut o = self.mocks.overrides(&self.prefix);
        o.push(("HCC__CENTRE__WEBHOOK_URL", format!("{}/webhooks", self.centre.url())));
        o.extend(extra.iter().cloned());
        settings(QueueBackendKind::Redis, &o)
    }

    /// A gateway with delivery workers and reconciliation.
    pub async fn gateway(&self) -> TestApp {
        spawn_app(self.settings(&[]), Workers::On).await
    }

    /// A gateway without delivery workers or reconciliation: nothing changes the store but the
    /// requests a test sends.
    pub async fn quiet_gateway(&self, extra: &[(&str, String)]) -> TestApp {
        spawn_app(self.settings(extra), Workers::Off).await
    }

    /// POSTs a mock's control request; its JSON answer (`null` for 204).
    pub async fn control(&self, url: String, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("mock control: {e}"));
        if r.status() == 204 {
            return Value::Null;
        }
        r.json().await.unwrap_or_else(|e| panic!("mock control answer: {e}"))
    }

    /// The citizen pays on PayGov (`/_mock/paygov/pay`).
    pub async fn paygov_pay(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/paygov/pay", self.portal.url()), body).await
    }

    /// Switches the mock platform's answers (`/_mock/paygov/config`).
    pub async fn paygov_config(&self, body: Value) {
        self.control(format!("{}/_mock/paygov/config", self.portal.url()), body).await;
    }

    /// How many INITs the mock platform took.
    pub fn paygov_inits(&self) -> usize {
        self.paygov.paygov.inits().len()
    }

    /// The citizen pays on VNPAY (`/_mock/vnpay/pay`).
    pub async fn vnpay_pay(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/vnpay/pay", self.bank.url()), body).await
    }

    /// The bank books a credit and sends its signed camt.054 (`/_mock/bank/credit`).
    pub async fn bank_credit(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/bank/credit", self.bank.url()), body).await
    }

    /// One signed document holding several notifications (`/_mock/bank/statement`).
    pub async fn bank_statement(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/bank/statement", self.bank.url()), body).await
    }

    /// The citizen's banking app scans a VietQR code and the bank books the transfer
    /// (`/_mock/bank/vietqr`).
    pub async fn vietqr_scan(&self, body: Value) -> Value {
        self.control(format!("{}/_mock/bank/vietqr", self.bank.url()), body).await
    }
}
