//! EMC as a second destination (issue 26): every dossier step the centre hands the portal also
//! reaches the mock EMC, in order, with EMC's status codes; each destination's outage leaves
//! the other's deliveries alone; an EMC dead letter replays like the portal's.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_mocks::emc::{EmcState, Tracking};
use hcc_mocks::faults::Faults;
use hcc_tests::*;
use serde_json::Value;

const SITE: i64 = 31;
const WAIT: Duration = Duration::from_secs(20);

/// Four steps the mock portal takes in this order (2 → 4 → 6 → 9), one per EMC code.
fn steps(ma: &str) -> Vec<(String, Value)> {
    vec![
        ("/v1/dossiers".to_string(), dossier(ma, 2)),
        (format!("/v1/dossiers/{ma}/progress"), progress(ma, 4, 1)),
        (format!("/v1/dossiers/{ma}/progress"), progress(ma, 6, 2)),
        ("/v1/dossiers".to_string(), dossier(ma, 9)),
    ]
}

/// The EMC codes of [`steps`]: received, processing, other, result returned.
const CODES: [&str; 4] = ["1", "2", "0", "3"];
const PORTAL: [u8; 4] = [2, 4, 6, 9];

struct Setup {
    portal: hcc_mocks::Running,
    portal_state: hcc_mocks::dvcqg::PortalState,
    emc: hcc_mocks::Running,
    emc_state: EmcState,
    app: TestApp,
}

async fn setup() -> Setup {
    let (portal, portal_state) = portal();
    let emc_state = EmcState::new();
    let emc = hcc_mocks::emc::spawn("127.0.0.1:0", emc_state.clone()).expect("mock EMC");
    let app = spawn_app(
        settings(
            QueueBackendKind::Redis,
            &[
                ("HCC__DVCQG__BASE_URL", portal.url()),
                ("HCC__EMC__URL", format!("{}/TrackingMCDT", emc.url())),
                ("HCC__EMC__SITE_ID", SITE.to_string()),
            ],
        ),
        Workers::On,
    )
    .await;
    Setup {
        portal,
        portal_state,
        emc,
        emc_state,
        app,
    }
}

impl Setup {
    async fn post_steps(&self, ma: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for (path, body) in steps(ma) {
            ids.push(accepted_id(self.app.post_json(&path, Key::Centre, &body).await).await);
        }
        ids
    }

    fn at_emc(&self, ma: &str) -> Vec<Tracking> {
        self.emc_state.received().into_iter().filter(|t| t.code_profile == ma).collect()
    }

    fn at_portal(&self, ma: &str) -> Vec<u8> {
        self.portal_state.arrivals_of(ma).iter().map(|a| a.status).collect()
    }

    async fn emc_gets_all(&self, ma: &str) -> Vec<Tracking> {
        eventually(&format!("EMC hears the four steps of {ma}"), WAIT, || async {
            let seen = self.at_emc(ma);
            (seen.len() >= CODES.len()).then_some(seen)
        })
        .await
    }

    async fn portal_gets_all(&self, ma: &str) {
        eventually(&format!("the portal gets the four steps of {ma}"), WAIT, || async {
            (self.at_portal(ma).len() >= PORTAL.len()).then_some(())
        })
        .await;
        assert_eq!(self.at_portal(ma), PORTAL, "{ma} at the portal");
    }

    async fn stop(self) {
        self.app.stop().await;
        self.portal.stop().await;
        self.emc.stop().await;
    }
}

fn codes(seen: &[Tracking]) -> Vec<&str> {
    seen.iter().map(|t| t.status.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossiers_four_steps_reach_emc_in_order_with_emc_codes_and_the_portal_too() {
    let s = setup().await;
    let ma = "000.00.22.H46-261201-0001";
    let ids = s.post_steps(ma).await;
    let seen = s.emc_gets_all(ma).await;
    assert_eq!(codes(&seen), CODES);
    let fixture = dossier(ma, 2);
    for t in &seen {
        assert_eq!(t.site_id, SITE);
        assert_eq!(t.code_tthc, fixture["MaTTHC"].as_str().unwrap(), "progress too names the procedure");
        assert_eq!(t.body["maHoSo"], ma);
        assert_eq!(t.body["nameTTHC"], fixture["TenTTHC"]);
    }
    s.portal_gets_all(ma).await;
    // The 202 names the main message: the portal's.
    for id in &ids {
        assert_eq!(s.app.message(id).await["destination"], "dvcqg");
    }
    assert_eq!(s.portal_state.counters().backwards, 0);
    // EMC heard each step once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.at_emc(ma).len(), CODES.len());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emc_down_does_not_delay_the_portal_nor_the_portal_down_emc() {
    let s = setup().await;

    // EMC answers 503 to everything: the portal still gets every step, EMC none until back.
    s.emc_state.set_down(true);
    let first = "000.00.22.H46-261201-0002";
    s.post_steps(first).await;
    s.portal_gets_all(first).await;
    assert!(s.at_emc(first).is_empty(), "EMC was down");
    s.emc_state.set_down(false);
    assert_eq!(codes(&s.emc_gets_all(first).await), CODES);

    // The portal fails every call: EMC still gets every step, the portal none until back.
    s.portal_state.set_faults(Faults {
        fail_rate: 1.0,
        fail_status: 503,
        ..Faults::default()
    });
    let second = "000.00.22.H46-261201-0003";
    s.post_steps(second).await;
    assert_eq!(codes(&s.emc_gets_all(second).await), CODES);
    assert!(s.at_portal(second).is_empty(), "the portal was down");
    s.portal_state.set_faults(Faults::default());
    s.portal_gets_all(second).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emc_dead_letter_replays_like_the_portals() {
    let s = setup().await;
    s.emc_state.set_refuse(true);
    let ma = "000.00.22.H46-261201-0004";
    let main = accepted_id(s.app.post_dossier(&dossier(ma, 2)).await).await;
    s.app.wait_message(&main, "delivered").await;
    let dead = eventually("the copy is dead at EMC", WAIT, || async {
        let (code, list) = status_json(s.app.dead("emc", Key::Operator).await).await;
        assert_eq!(code, 200);
        list["dead"]
            .as_array()?
            .iter()
            .find(|m| m["ordering_key"] == ma)
            .map(|m| m["id"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(s.at_emc(ma).is_empty());
    assert_eq!(s.app.message(&dead).await["destination"], "emc");

    s.emc_state.set_refuse(false);
    assert_eq!(s.app.replay("emc", &dead, Key::Admin).await.status(), 200);
    s.app.wait_message(&dead, "delivered").await;
    assert_eq!(codes(&s.at_emc(ma)), ["1"]);
    assert_eq!(s.at_portal(ma), [2], "the portal heard it once, never replayed");
    s.stop().await;
}

/// A centre retrying with the same `Idempotency-Key` gets neither the main message nor the
/// copy twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_queues_neither_copy_nor_main_twice() {
    let s = setup().await;
    let ma = "000.00.22.H46-261201-0005";
    let body = dossier(ma, 2);
    let first = accepted_id(s.app.post_dossier_with_key(&body, "k-emc-1").await).await;
    let again = s.app.post_dossier_with_key(&body, "k-emc-1").await;
    assert_eq!(
        again.headers().get("Idempotent-Replayed").and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(accepted_id(again).await, first);
    eventually("EMC hears the dossier", WAIT, || async { (!s.at_emc(ma).is_empty()).then_some(()) }).await;
    s.app.wait_message(&first, "delivered").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.at_emc(ma).len(), 1);
    assert_eq!(s.at_portal(ma), [2]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_entry_after_a_restart_still_tells_emc_its_procedure() {
    let (portal, _portal_state) = portal();
    let emc_state = EmcState::new();
    let emc = hcc_mocks::emc::spawn("127.0.0.1:0", emc_state.clone()).expect("mock EMC");
    let prefix = unique_prefix();
    let overrides = [
        ("HCC__DVCQG__BASE_URL", portal.url()),
        ("HCC__EMC__URL", format!("{}/TrackingMCDT", emc.url())),
        ("HCC__EMC__SITE_ID", SITE.to_string()),
        ("HCC__QUEUE__KEY_PREFIX", prefix.clone()),
    ];
    let ma = "H46-EMC-RESTART";
    let first = spawn_app(settings(QueueBackendKind::Redis, &overrides), Workers::On).await;
    let id = accepted_id(first.post_json("/v1/dossiers", Key::Centre, &dossier(ma, 2)).await).await;
    first.wait_message(&id, "delivered").await;
    first.stop().await;
    // A new process, which has delivered no sync of this dossier: the progress entry's copy
    // carries the procedure the store remembered.
    let second = spawn_app(settings(QueueBackendKind::Redis, &overrides), Workers::On).await;
    accepted_id(
        second
            .post_json(&format!("/v1/dossiers/{ma}/progress"), Key::Centre, &progress(ma, 4, 1))
            .await,
    )
    .await;
    let got = eventually("EMC has both steps", WAIT, || async {
        let t: Vec<Tracking> = emc_state.received().into_iter().filter(|t| t.code_profile == ma).collect();
        (t.len() >= 2).then_some(t)
    })
    .await;
    let procedure = dossier(ma, 2)["MaTTHC"].as_str().unwrap_or("").to_string();
    assert!(got.iter().all(|t| t.code_tthc == procedure), "{got:?}");
    assert_eq!(got.iter().map(|t| t.status.as_str()).collect::<Vec<_>>(), vec!["1", "2"]);
}
