//! The message queue's conformance: claims, retries, order per key, idempotency, dead letters, replays, leases, pause, retention and counters.

use super::*;

pub(super) async fn enqueue_claim_ack(q: Queue) {
    let id = put(&q, "A", 1, T0).await;
    assert_eq!(status(&q, &id).await, MessageStatus::Queued);
    let got = claim(&q, 10, T0).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].attempts, 1);
    assert_eq!(got[0].payload, msg("A", 1).payload);
    assert_eq!(status(&q, &id).await, MessageStatus::InFlight);
    assert!(claim(&q, 10, T0).await.is_empty(), "an in-flight message is not claimable");
    assert!(q.settle(Q, &got[0], &Disposition::Delivered, T0 + 5, KEEP).await.unwrap());
    let rec = q.get(Q, &id).await.unwrap().unwrap();
    assert_eq!(rec.status, MessageStatus::Delivered);
    assert_eq!(rec.delivered_at, Some(T0 + 5));
    assert!(claim(&q, 10, T0 + 10).await.is_empty());
    let s = q.stats(Q, T0 + 10).await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.dead, s.delivered_total), (0, 0, 0, 1));
    // Settling twice is refused: the lease is gone.
    assert!(!q.settle(Q, &got[0], &Disposition::Delivered, T0 + 11, KEEP).await.unwrap());
}

pub(super) async fn retry_is_scheduled(q: Queue) {
    let id = put(&q, "A", 1, T0).await;
    let c = claim(&q, 1, T0).await.remove(0);
    assert!(
        q.settle(
            Q,
            &c,
            &Disposition::Retry {
                at: T0 + 500,
                error: "HTTP 503".into()
            },
            T0,
            KEEP
        )
        .await
        .unwrap()
    );
    let rec = q.get(Q, &id).await.unwrap().unwrap();
    assert_eq!(rec.status, MessageStatus::Retrying);
    assert_eq!(rec.next_attempt_at, Some(T0 + 500));
    assert_eq!(rec.last_error.as_deref(), Some("HTTP 503"));
    let s = q.stats(Q, T0 + 1).await.unwrap();
    assert_eq!((s.scheduled, s.ready), (1, 0));
    assert!(claim(&q, 1, T0 + 499).await.is_empty(), "not before its time");
    let again = claim(&q, 1, T0 + 500).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2, "the attempt count survives in the queue, not in a worker");
}

pub(super) async fn per_key_fifo_one_at_a_time(q: Queue) {
    let mut expected = std::collections::HashMap::new();
    for n in 0..5 {
        for key in ["A", "B", "C"] {
            let id = put(&q, key, n, T0 + n as i64).await;
            expected.entry(key).or_insert_with(Vec::new).push(id);
        }
    }
    assert_eq!(q.stats(Q, T0 + 10).await.unwrap().ready, 15);
    let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
    for round in 0..10 {
        let now = T0 + 100 + round;
        let batch = claim(&q, 100, now).await;
        if batch.is_empty() {
            break;
        }
        let keys: std::collections::HashSet<_> = batch.iter().map(|c| c.ordering_key.clone()).collect();
        assert_eq!(keys.len(), batch.len(), "one message per key at a time");
        // Settle in reverse to show order does not depend on settlement order across keys.
        for c in batch.iter().rev() {
            seen.entry(c.ordering_key.clone()).or_default().push(c.id.clone());
            assert!(q.settle(Q, c, &Disposition::Delivered, now, KEEP).await.unwrap());
        }
    }
    for (key, ids) in expected {
        assert_eq!(seen.get(key), Some(&ids), "key {key} delivered out of order");
    }
}

pub(super) async fn concurrent_claimers_never_share_a_key(q: Queue) {
    for n in 0..20 {
        for key in 0..10 {
            put(&q, &format!("k{key}"), n, T0).await;
        }
    }
    let holding = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
    let order = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<String, Vec<u64>>::new()));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (q, holding, order) = (q.clone(), holding.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..400 {
                let now = T0 + 1 + round;
                let batch = q.claim(Q, 3, now + LEASE, now).await.unwrap();
                for c in &batch {
                    assert!(
                        holding.lock().unwrap().insert(c.ordering_key.clone()),
                        "worker {worker}: key {} claimed twice at once",
                        c.ordering_key
                    );
                    let body: serde_json::Value = serde_json::from_slice(&c.payload).unwrap();
                    order
                        .lock()
                        .unwrap()
                        .entry(c.ordering_key.clone())
                        .or_default()
                        .push(body["seq"].as_u64().unwrap());
                }
                tokio::task::yield_now().await;
                for c in &batch {
                    holding.lock().unwrap().remove(&c.ordering_key);
                    assert!(q.settle(Q, c, &Disposition::Delivered, now, KEEP).await.unwrap());
                }
                if batch.is_empty() && q.stats(Q, now).await.unwrap().ready == 0 {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 10);
    for (key, seqs) in order.iter() {
        assert_eq!(seqs, &(0..20).collect::<Vec<u64>>(), "key {key}");
    }
}

pub(super) async fn idempotency_keys(q: Queue) {
    let idem = |fp: &str| Idempotency {
        scope: "dossiers:centre".into(),
        key: "abc-1".into(),
        fingerprint: fp.into(),
        ttl_secs: 86_400,
    };
    let first = q.enqueue(Q, msg("A", 1), Some(&idem("fp1")), T0).await.unwrap();
    let Enqueued::Accepted(id) = first else { panic!("{first:?}") };
    assert_eq!(
        q.enqueue(Q, msg("A", 1), Some(&idem("fp1")), T0 + 1).await.unwrap(),
        Enqueued::Replayed(id.clone())
    );
    assert_eq!(
        q.enqueue(Q, msg("A", 2), Some(&idem("fp2")), T0 + 2).await.unwrap(),
        Enqueued::Conflict
    );
    // Another scope may use the same key.
    let other = Idempotency {
        scope: "dossiers:other".into(),
        ..idem("fp1")
    };
    assert!(matches!(
        q.enqueue(Q, msg("A", 1), Some(&other), T0 + 3).await.unwrap(),
        Enqueued::Accepted(_)
    ));
    let s = q.stats(Q, T0 + 4).await.unwrap();
    assert_eq!(s.ready, 2, "the replay and the conflict enqueued nothing");
}

pub(super) async fn kill_head(q: &Queue) -> (String, String) {
    let m1 = put(q, "A", 1, T0).await;
    let m2 = put(q, "A", 2, T0 + 1).await;
    put(q, "B", 1, T0 + 2).await;
    let batch = claim(q, 10, T0 + 10).await;
    assert_eq!(batch.len(), 2);
    for c in &batch {
        let how = if c.id == m1 {
            Disposition::Dead {
                error: "portal refused: invalid MaTTHC".into(),
            }
        } else {
            Disposition::Delivered
        };
        assert!(q.settle(Q, c, &how, T0 + 20, KEEP).await.unwrap());
    }
    (m1, m2)
}

pub(super) async fn dead_letter_blocks_its_key(q: Queue) {
    let (m1, m2) = kill_head(&q).await;
    assert_eq!(status(&q, &m1).await, MessageStatus::Dead);
    assert_eq!(status(&q, &m2).await, MessageStatus::Blocked);
    assert!(
        claim(&q, 10, T0 + 1_000_000).await.is_empty(),
        "nothing behind a dead message is delivered"
    );
    let s = q.stats(Q, T0 + 30).await.unwrap();
    assert_eq!((s.dead, s.blocked, s.ready, s.delivered_total), (1, 1, 0, 1));
    let dead = q.list_dead(Q, 0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, m1);
    assert_eq!(dead[0].last_error.as_deref(), Some("portal refused: invalid MaTTHC"));
}

pub(super) async fn replay_unblocks(q: Queue) {
    let (m1, m2) = kill_head(&q).await;
    assert!(q.replay(Q, &m1, T0 + 100).await.unwrap());
    assert!(!q.replay(Q, &m1, T0 + 100).await.unwrap(), "only dead messages replay");
    let c = claim(&q, 10, T0 + 100).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].id, m1, "the replayed message goes first, before the one it blocked");
    assert_eq!(c[0].attempts, 1, "a replay starts a fresh budget");
    assert!(q.settle(Q, &c[0], &Disposition::Delivered, T0 + 101, KEEP).await.unwrap());
    let c = claim(&q, 10, T0 + 102).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].id, m2);
    assert_eq!(q.stats(Q, T0 + 103).await.unwrap().dead, 0);
}

pub(super) async fn discard_unblocks_and_never_returns(q: Queue) {
    let (m1, m2) = kill_head(&q).await;
    assert!(q.discard(Q, &m1, T0 + 100, KEEP).await.unwrap());
    assert!(!q.discard(Q, &m1, T0 + 100, KEEP).await.unwrap());
    assert!(!q.replay(Q, &m1, T0 + 100).await.unwrap(), "a discarded message cannot come back");
    assert_eq!(status(&q, &m1).await, MessageStatus::Discarded);
    let c = claim(&q, 10, T0 + 101).await;
    assert_eq!(c.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![m2.clone()]);
    assert!(q.settle(Q, &c[0], &Disposition::Delivered, T0 + 102, KEEP).await.unwrap());
    assert!(claim(&q, 10, T0 + 10_000_000).await.is_empty());
    let s = q.stats(Q, T0 + 103).await.unwrap();
    assert_eq!((s.ready, s.dead, s.blocked), (0, 0, 0));
}

pub(super) async fn lease_expiry_returns_the_message(q: Queue) {
    let id = put(&q, "A", 1, T0).await;
    let lost = q.claim(Q, 1, T0 + 100, T0).await.unwrap().remove(0);
    assert_eq!(q.reap(Q, T0 + 50).await.unwrap(), 0, "lease still running");
    assert!(claim(&q, 1, T0 + 50).await.is_empty());
    assert_eq!(q.reap(Q, T0 + 100).await.unwrap(), 1);
    let rec = q.get(Q, &id).await.unwrap().unwrap();
    assert_eq!(rec.status, MessageStatus::Retrying);
    let again = claim(&q, 1, T0 + 101).await.remove(0);
    assert_eq!((again.id.as_str(), again.attempts), (id.as_str(), 2));
    assert!(
        !q.settle(Q, &lost, &Disposition::Delivered, T0 + 102, KEEP).await.unwrap(),
        "the lost worker's late ack is ignored"
    );
    assert!(q.settle(Q, &again, &Disposition::Delivered, T0 + 103, KEEP).await.unwrap());
}

pub(super) async fn pause_stops_claims(q: Queue) {
    put(&q, "A", 1, T0).await;
    q.set_paused(Q, true).await.unwrap();
    assert!(q.stats(Q, T0).await.unwrap().paused);
    assert!(claim(&q, 1, T0).await.is_empty());
    q.set_paused(Q, false).await.unwrap();
    assert_eq!(claim(&q, 1, T0).await.len(), 1);
}

pub(super) async fn release_does_not_count_an_attempt(q: Queue) {
    let id = put(&q, "A", 1, T0).await;
    let c = claim(&q, 1, T0).await.remove(0);
    assert!(q.settle(Q, &c, &Disposition::Release, T0 + 1, KEEP).await.unwrap());
    assert_eq!(status(&q, &id).await, MessageStatus::Queued);
    let c = claim(&q, 1, T0 + 2).await.remove(0);
    assert_eq!(c.attempts, 1);
}

pub(super) async fn delivered_records_expire_after_their_retention(q: Queue) {
    // Real time here: Redis expires keys on its own clock.
    let now = hcc_gateway::storage::now_ms();
    let id = match q.enqueue(Q, msg("A", 1), None, now).await.unwrap() {
        Enqueued::Accepted(id) => id,
        other => panic!("{other:?}"),
    };
    let c = q.claim(Q, 1, now + LEASE, now).await.unwrap().remove(0);
    assert!(q.settle(Q, &c, &Disposition::Delivered, now, 1).await.unwrap());
    assert_eq!(status(&q, &id).await, MessageStatus::Delivered, "kept for its retention");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let later = hcc_gateway::storage::now_ms();
    q.reap(Q, later).await.unwrap();
    assert!(q.get(Q, &id).await.unwrap().is_none(), "gone after its retention");
}

/// `(dead, blocked)` as `stats` reports them, after checking that the maintained counters equal
/// a count from scratch over the dead letters.
pub(super) async fn counters(q: &Queue, now: i64) -> (u64, u64) {
    let audit = q.audit_counters(Q).await.unwrap();
    assert!(audit.exact(), "maintained counters differ from a recount: {audit:?}");
    let s = q.stats(Q, now).await.unwrap();
    assert_eq!((s.dead, s.blocked), (audit.counted_dead, audit.counted_blocked), "{s:?}");
    (s.dead, s.blocked)
}

pub(super) fn dead(error: &str) -> Disposition {
    Disposition::Dead { error: error.into() }
}

/// Claims the heads due at `now` and settles each as `how` says (by its ordering key).
pub(super) async fn settle_heads(q: &Queue, now: i64, how: impl Fn(&str) -> Disposition) -> Vec<String> {
    let mut ids = Vec::new();
    for c in claim(q, 100, now).await {
        assert!(q.settle(Q, &c, &how(&c.ordering_key), now, KEEP).await.unwrap());
        ids.push(c.id);
    }
    ids
}

pub(super) async fn counters_follow_every_transition(q: Queue) {
    let a1 = put(&q, "A", 1, T0).await;
    let a2 = put(&q, "A", 2, T0).await;
    put(&q, "A", 3, T0).await;
    let b1 = put(&q, "B", 1, T0).await;
    let c1 = put(&q, "C", 1, T0).await;
    let c2 = put(&q, "C", 2, T0).await;
    assert_eq!(counters(&q, T0).await, (0, 0));

    // A and B die, C waits for a retry.
    settle_heads(&q, T0 + 10, |k| match k {
        "C" => Disposition::Retry {
            at: T0 + 50,
            error: "HTTP 503".into(),
        },
        _ => dead("refused"),
    })
    .await;
    assert_eq!(counters(&q, T0 + 11).await, (2, 2), "A2 and A3 wait behind dead A1");
    assert_eq!(status(&q, &a2).await, MessageStatus::Blocked);
    let s = q.stats(Q, T0 + 11).await.unwrap();
    assert_eq!((s.ready, s.scheduled), (1, 1), "C2 is ready behind C1, which is scheduled");

    // Queued behind a dead head: blocked at once. A new key is not.
    put(&q, "A", 4, T0 + 20).await;
    let b2 = put(&q, "B", 2, T0 + 20).await;
    put(&q, "D", 1, T0 + 20).await;
    assert_eq!(counters(&q, T0 + 21).await, (2, 4));
    assert_eq!(status(&q, &b2).await, MessageStatus::Blocked);

    // C dies on its retry, D is delivered.
    settle_heads(
        &q,
        T0 + 60,
        |k| if k == "C" { dead("refused again") } else { Disposition::Delivered },
    )
    .await;
    assert_eq!(counters(&q, T0 + 61).await, (3, 5));

    // A lost lease and a release change nothing about dead letters.
    let e1 = put(&q, "E", 1, T0 + 62).await;
    put(&q, "E", 2, T0 + 62).await;
    let lost = q.claim(Q, 10, T0 + 70, T0 + 63).await.unwrap();
    assert_eq!(lost.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![e1.as_str()]);
    assert_eq!(q.reap(Q, T0 + 70).await.unwrap(), 1);
    assert_eq!(counters(&q, T0 + 71).await, (3, 5));
    let e = claim(&q, 10, T0 + 72).await.remove(0);
    assert!(q.settle(Q, &e, &Disposition::Release, T0 + 73, KEEP).await.unwrap());
    assert_eq!(counters(&q, T0 + 74).await, (3, 5));

    // A replay unblocks A's three followers; a second replay is refused and counts nothing.
    assert!(q.replay(Q, &a1, T0 + 100).await.unwrap());
    assert!(!q.replay(Q, &a1, T0 + 100).await.unwrap());
    assert_eq!(counters(&q, T0 + 101).await, (2, 2));
    assert_eq!(status(&q, &a2).await, MessageStatus::Queued);

    // A discard unblocks B2, which then dies itself, with B3 queued behind it.
    assert!(q.discard(Q, &b1, T0 + 110, KEEP).await.unwrap());
    assert!(!q.discard(Q, &b1, T0 + 110, KEEP).await.unwrap());
    assert_eq!(counters(&q, T0 + 111).await, (1, 1), "only C2 is still blocked");
    assert_eq!(status(&q, &b2).await, MessageStatus::Queued);
    settle_heads(&q, T0 + 120, |k| if k == "B" { dead("refused") } else { Disposition::Delivered }).await;
    assert_eq!(counters(&q, T0 + 121).await, (2, 1), "B2 is dead with nothing behind it");
    put(&q, "B", 3, T0 + 122).await;
    assert_eq!(counters(&q, T0 + 123).await, (2, 2));

    assert!(q.discard(Q, &c1, T0 + 130, KEEP).await.unwrap());
    assert_eq!(status(&q, &c2).await, MessageStatus::Queued);
    assert_eq!(counters(&q, T0 + 131).await, (1, 1));
    assert!(q.replay(Q, &b2, T0 + 132).await.unwrap());
    assert_eq!(counters(&q, T0 + 133).await, (0, 0));

    // Everything left is delivered (twelve accepted, two discarded); the queue ends empty.
    for round in 0..20 {
        if settle_heads(&q, T0 + 200 + round, |_| Disposition::Delivered).await.is_empty() {
            break;
        }
    }
    assert_eq!(counters(&q, T0 + 300).await, (0, 0));
    let s = q.stats(Q, T0 + 300).await.unwrap();
    assert_eq!((s.ready, s.scheduled, s.in_flight, s.delivered_total), (0, 0, 0, 10), "{s:?}");
}

pub(super) async fn counters_stay_exact_across_a_thousand_dead_letters(q: Queue) {
    const KEYS: usize = 1000;
    for k in 0..KEYS {
        put(&q, &format!("k{k}"), 0, T0).await;
    }
    let mut heads = std::collections::HashMap::new();
    for round in 0..5 {
        let batch = q.claim(Q, KEYS, T0 + LEASE, T0 + 1 + round).await.unwrap();
        for c in &batch {
            assert!(q.settle(Q, c, &dead("refused"), T0 + 2, KEEP).await.unwrap());
            heads.insert(c.ordering_key.clone(), c.id.clone());
        }
        if heads.len() == KEYS {
            break;
        }
    }
    assert_eq!(counters(&q, T0 + 3).await, (1000, 0));
    // One follower behind each of k0..k599, a second one behind k0..k99.
    for k in 0..600 {
        put(&q, &format!("k{k}"), 1, T0 + 4).await;
    }
    for k in 0..100 {
        put(&q, &format!("k{k}"), 2, T0 + 4).await;
    }
    assert_eq!(counters(&q, T0 + 5).await, (1000, 700));
    // Replay k0..k199 (300 followers), discard k200..k399 (200 followers).
    for k in 0..200 {
        assert!(q.replay(Q, &heads[&format!("k{k}")], T0 + 6).await.unwrap());
    }
    for k in 200..400 {
        assert!(q.discard(Q, &heads[&format!("k{k}")], T0 + 6, KEEP).await.unwrap());
    }
    assert_eq!(counters(&q, T0 + 7).await, (600, 200));
    let s = q.stats(Q, T0 + 7).await.unwrap();
    assert_eq!(s.ready, 700, "200 replayed heads, their 300 followers, 200 followers now heads");
}
