//! The shared rate limit of a destination: two gateway processes on one Redis (two
//! `Application`s sharing one key prefix), `destinations.dvcqg.rate_limit_per_sec = 50`, and a
//! mock portal that counts the calls arriving in each second. The whole fleet stays within
//! the limit plus its burst (a tenth of the rate), in every second.

use std::time::Duration;

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_gateway::storage::rate_burst;
use hcc_tests::*;

const RATE: u32 = 50;
/// More than five seconds' worth: unlimited, the two gateways would send them in well under
/// one second.
const UPDATES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_share_one_rate_limit_to_the_portal() {
    let (p, state) = portal();
    let prefix = unique_prefix();
    let overrides = [
        ("HCC__DVCQG__BASE_URL", p.url()),
        ("HCC__QUEUE__KEY_PREFIX", prefix),
        ("HCC__QUEUE__PARTITIONS", "2".to_string()),
        ("HCC__DESTINATIONS__DVCQG__RATE_LIMIT_PER_SEC", RATE.to_string()),
        ("HCC__DELIVERY__CONCURRENCY", "16".to_string()),
        ("HCC__DELIVERY__LEASE_MS", "10000".to_string()),
    ];
    let a = spawn_app(settings(QueueBackendKind::Redis, &overrides), Workers::On).await;
    let b = spawn_app(settings(QueueBackendKind::Redis, &overrides), Workers::On).await;
    // Progress entries of dossiers the portal knows: exactly one portal call each.
    let mut posts = tokio::task::JoinSet::new();
    for n in 0..UPDATES {
        let ma = format!("000.00.22.H46-241126-{n:04}");
        state.seed_dossier(dossier(&ma, 1)).unwrap();
        let app = if n % 2 == 0 { &a } else { &b };
        let req = app
            .client
            .post(app.url(&format!("/v1/dossiers/{ma}/progress")))
            .bearer_auth(CENTRE_KEY)
            .json(&progress(&ma, 2, 1));
        posts.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(r) = posts.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 202);
    }
    eventually("every update delivered", Duration::from_secs(30), || async {
        (state.counters().accepted as usize >= UPDATES).then_some(())
    })
    .await;
    let per_second = state.per_second();
    let total: u64 = per_second.values().sum();
    assert_eq!(total as usize, UPDATES, "one call per update: {per_second:?}");
    let ceiling = u64::from(RATE + rate_burst(RATE));
    assert!(
        per_second.values().all(|n| *n <= ceiling),
        "a second above {RATE} + burst {}: {per_second:?}",
        rate_burst(RATE)
    );
    // Limited, not stalled: the fleet ran near the rate.
    assert!(per_second.len() <= UPDATES / RATE as usize + 3, "{per_second:?}");
    a.stop().await;
    b.stop().await;
}
