//! Scale-out and failover on Redis Cluster: three masters with a replica each, two gateways
//! sharing one key prefix, the portal queue in 8 partitions, `min_replicas 1`. A master is
//! killed mid-storm; nothing accepted is lost and every dossier keeps its order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hcc_config::QueueBackendKind;
use hcc_gateway::app::Workers;
use hcc_gateway::storage::partition_of;
use hcc_tests::deployment::{ClusterDeployment, connected_replicas};
use hcc_tests::*;

const DOSSIERS: usize = 30;
const PARTITIONS: u16 = 8;

fn ma(d: usize) -> String {
    format!("000.00.22.H46-241128-{d:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_master_killed_mid_storm_two_gateways_lose_nothing_accepted_and_keep_order() {
    let mut cluster = tokio::task::spawn_blocking(|| ClusterDeployment::start_with_node_timeout(1000))
        .await
        .unwrap();
    let (p, state) = portal();
    let overrides = [
        ("HCC__DVCQG__BASE_URL", p.url()),
        ("HCC__QUEUE__KEY_PREFIX", unique_prefix()),
        ("HCC__QUEUE__REDIS_MODE", "cluster".into()),
        ("HCC__QUEUE__REDIS_NODES", cluster.seed_urls().join(",")),
        ("HCC__QUEUE__PARTITIONS", PARTITIONS.to_string()),
        ("HCC__QUEUE__MIN_REPLICAS", "1".into()),
        ("HCC__QUEUE__REPLICA_TIMEOUT_MS", "500".into()),
    ];
    let s = settings(QueueBackendKind::Redis, &overrides);
    let prefix = s.queue.key_prefix.clone();
    // Two gateways on one queue, as two processes behind a load balancer would be.
    let gateways = [
        Arc::new(spawn_app(s, Workers::On).await),
        Arc::new(spawn_app(settings(QueueBackendKind::Redis, &overrides), Workers::On).await),
    ];

    // Where each partition lives: the 8 hash tags spread over all three masters.
    let owners: BTreeMap<u16, u16> = (0..PARTITIONS)
        .map(|i| {
            let owner = cluster
                .owner_of(&format!("dvcqg:{i}"))
                .unwrap_or_else(|| panic!("no master serves partition {i}"));
            (i, owner)
        })
        .collect();
    let masters: BTreeSet<u16> = cluster.masters().into_iter().collect();
    assert_eq!(masters.len(), 3);
    assert_eq!(
        owners.values().copied().collect::<BTreeSet<_>>(),
        masters,
        "8 partitions should spread over the 3 masters: {owners:?}"
    );

    let accepted = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut storm = Vec::new();
    for d in 0..DOSSIERS {
        let (gateways, accepted) = (gateways.clone(), accepted.clone());
        storm.push(tokio::spawn(async move {
            let ma = ma(d);
            let mut sent = Vec::new();
            for (i, u) in life_cycle().iter().enumerate() {
                // Consecutive updates of one dossier through different gateways: order must
                // hold across instances, not only within one.
                let g = &gateways[(d + i) % 2];
                sent.push(post_until_202(&g.client, &g.address, &ma, u, &format!("k{d}-{i}"), deadline).await);
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            sent
        }));
    }
    while accepted.load(Ordering::Relaxed) < DOSSIERS * 10 / 3 {
        assert!(Instant::now() < deadline, "the storm stalled before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Keys land on every master: each holds some partitions' messages.
    for m in &masters {
        let n = cluster.count_keys(*m, &format!("{prefix}:{{dvcqg:*"));
        assert!(n > 0, "master {m} holds none of the queue's keys; owners {owners:?}");
    }

    // Kill the master that serves dossier 0's partition.
    let victim = owners[&partition_of(&ma(0), PARTITIONS)];
    let hit: Vec<usize> = (0..DOSSIERS)
        .filter(|d| owners[&partition_of(&ma(*d), PARTITIONS)] == victim)
        .collect();
    // A probe on another master's partition keeps posting through the failover, to see whether
    // the masters that did not fail go on accepting while the cluster marks one failed.
    let probe_ma = (1000..2000)
        .map(ma)
        .find(|m| owners[&partition_of(m, PARTITIONS)] != victim)
        .unwrap_or_else(|| panic!("no dossier on another master"));
    let probing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    cluster.kill(victim);
    let killed_at = Instant::now();
    let probe = {
        let (g, probing) = (gateways[0].clone(), probing.clone());
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            for n in 0..2000u32 {
                if !probing.load(Ordering::Relaxed) {
                    break;
                }
                let (path, body) = Update::Sync(1, n).path_and_body(&probe_ma);
                let sent_at = Instant::now();
                let r = g
                    .client
                    .post(g.url(&path))
                    .bearer_auth(CENTRE_KEY)
                    .header("Idempotency-Key", format!("probe-{n}"))
                    .json(&body)
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(202) => accepted.push(sent_at),
                    _ => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (accepted, refused)
        })
    };
    // A supervisor restarts the crashed process once its replica has taken over; it comes back
    // as that replica's replica. Until then the promoted master has no replica and, with
    // `min_replicas 1`, its partitions answer 503 rather than acknowledge an unreplicated write.
    let promoted_by = killed_at + Duration::from_secs(30);
    loop {
        let m = cluster.masters();
        if m.len() == 3 && !m.contains(&victim) {
            break;
        }
        assert!(Instant::now() < promoted_by, "no replica took over from {victim}: masters {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted = killed_at.elapsed();
    let successor = cluster
        .owner_of(&format!("dvcqg:{}", partition_of(&ma(0), PARTITIONS)))
        .unwrap_or_else(|| panic!("no master took over from {victim}"));
    tokio::task::block_in_place(|| cluster.restart(victim));
    // When the restarted node holds the successor's data again: from then on WAIT can succeed.
    let resynced_by = Instant::now() + Duration::from_secs(30);
    while tokio::task::block_in_place(|| connected_replicas(successor)) == 0 {
        assert!(Instant::now() < resynced_by, "{victim} never came back as {successor}'s replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resynced = killed_at.elapsed();
    probing.store(false, Ordering::Relaxed);
    let (probe_accepted, probe_refused) = probe.await.unwrap();
    let probe_pause = probe_accepted
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .chain(probe_accepted.first().map(|f| f.duration_since(killed_at)))
        .max()
        .unwrap_or_else(|| panic!("the probe on another master was never accepted"));

    let mut sent: Vec<Vec<Instant>> = Vec::new();
    for t in storm {
        sent.push(t.await.unwrap());
    }
    let first_after = |ds: &mut dyn Iterator<Item = usize>| -> Option<Duration> {
        ds.flat_map(|d| sent[d].iter().copied())
            .filter(|s| *s > killed_at)
            .min()
            .map(|s| s.duration_since(killed_at))
    };
    let any_gap = first_after(&mut (0..DOSSIERS)).unwrap_or_else(|| panic!("nothing accepted after the kill"));
    let hit_gap = first_after(&mut hit.iter().copied())
        .unwrap_or_else(|| panic!("nothing accepted after the kill on the killed master's partitions {hit:?}"));
    println!(
        "cluster failover gap: {} ms on the killed master's partitions ({} dossiers), {} ms anywhere, \
         probe on another master: longest pause {} ms, {} accepted, {} refused; \
         replica promoted after {} ms, old master back as its replica after {} ms (master on port {victim} killed)",
        hit_gap.as_millis(),
        hit.len(),
        any_gap.as_millis(),
        probe_pause.as_millis(),
        probe_accepted.len(),
        probe_refused,
        promoted.as_millis(),
        resynced.as_millis()
    );
    assert!(hit_gap < Duration::from_secs(30), "accepting again took {hit_gap:?}");

    let dossiers: Vec<String> = (0..DOSSIERS).map(ma).collect();
    let wrong = not_in_order_after(&state, &dossiers, Duration::from_secs(60)).await;
    if !wrong.is_empty() {
        let stats = gateways[0].handle.queue.stats("dvcqg", hcc_gateway::storage::now_ms()).await;
        panic!("dossiers not delivered whole and in order: {wrong:?}\nqueue: {stats:?}");
    }
    assert_eq!(state.counters().backwards, 0, "the portal saw a dossier go backwards");
    // Both gateways recovered by themselves: ready, and accepting on the killed master's slots.
    for (n, g) in gateways.iter().enumerate() {
        let status = g
            .client
            .get(g.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 200, "gateway {n} not ready after the failover");
        let late = Instant::now() + Duration::from_secs(10);
        post_until_202(&g.client, &g.address, &ma(hit[0]), &life_cycle()[9], &format!("late-{n}"), late).await;
    }
    for g in gateways {
        match Arc::try_unwrap(g) {
            Ok(g) => g.stop().await,
            Err(_) => panic!("a storm task still holds a gateway"),
        }
    }
    p.stop().await;
    drop(cluster);
}
