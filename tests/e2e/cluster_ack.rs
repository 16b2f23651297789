//! The gateway on a Redis Cluster (three masters, one replica each) with `min_replicas 1`:
//! scripts and their acknowledgement go to the master owning the queue's slot.

use std::time::{Duration, Instant};

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_tests::deployment::ClusterDeployment;
use hcc_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_delivers_in_order_and_waits_for_the_replica_of_the_master_that_took_the_write() {
    let mut cluster = tokio::task::spawn_blocking(ClusterDeployment::start).await.unwrap();
    let (p, state) = portal();
    let s = settings(
        QueueBackendKind::Redis,
        &[
            ("HCC__DVCQG__BASE_URL", p.url()),
            ("HCC__QUEUE__REDIS_MODE", "cluster".into()),
            ("HCC__QUEUE__REDIS_NODES", cluster.seed_urls().join(",")),
            ("HCC__QUEUE__MIN_REPLICAS", "1".into()),
            ("HCC__QUEUE__REPLICA_TIMEOUT_MS", "500".into()),
        ],
    );
    let prefix = s.queue.key_prefix.clone();
    let app = spawn_app(s, Workers::On).await;
    let expected: Vec<(String, u8)> = life_cycle().iter().map(|u| (u.expected().0.to_string(), u.expected().1)).collect();
    for d in 0..3 {
        let ma = format!("000.00.22.H46-241127-{d:04}");
        for (i, u) in life_cycle().iter().enumerate() {
            post_until_accepted(&app.client, &app.address, &ma, u, &format!("c{d}-{i}"), Duration::from_secs(10)).await;
        }
    }
    eventually("every update at the portal, in order", Duration::from_secs(30), || async {
        (0..3)
            .all(|d| {
                let ma = format!("000.00.22.H46-241127-{d:04}");
                state
                    .arrivals_of(&ma)
                    .into_iter()
                    .map(|a| (a.service, a.status))
                    .collect::<Vec<_>>()
                    == expected
            })
            .then_some(())
    })
    .await;

    // The master holding the portal queue's messages, and the others.
    let owners = cluster.masters_holding(&format!("{prefix}:{{dvcqg*:m:*"));
    assert_eq!(owners.len(), 1, "one partition, one master: {owners:?}");
    let owner = owners[0];
    let other = cluster
        .masters()
        .into_iter()
        .find(|m| *m != owner)
        .unwrap_or_else(|| panic!("no other master"));

    let post = |key: &'static str| {
        let (path, body) = life_cycle()[0].path_and_body("000.00.22.H46-241127-0100");
        app.client
            .post(app.url(&path))
            .bearer_auth(CENTRE_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    // Another master losing its replica does not matter: WAIT asks the owner only.
    let replica = cluster.replica_of(other).unwrap_or_else(|| panic!("{other} has no replica"));
    cluster.kill(replica);
    assert_eq!(post("other-replica-down").await.unwrap().status(), 202);
    // The owner losing its replica does.
    let replica = cluster.replica_of(owner).unwrap_or_else(|| panic!("{owner} has no replica"));
    cluster.kill(replica);
    let started = Instant::now();
    let r = post("owner-replica-down").await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    app.stop().await;
    p.stop().await;
}
