//! One conformance suite for storage, run against both backends: the memory backend must
//! behave exactly like Redis, for the message queues, the payment ledger and the audit log.
//! Times are passed in explicitly, so no test depends on the clock.

use hcc_gateway::storage::ledger::{
    ConfirmOutcome, Confirmation, ExpireOutcome, Handoff, ListStatus, PaymentEvents, PaymentFilter, PaymentRecord, PaymentState, Reversal,
    ReverseOutcome,
};
use hcc_gateway::storage::{
    Claimed, Disposition, Enqueued, Idempotency, MessageQueue as Queue, MessageStatus, NewMessage, OutboxEvent, PaymentLedger, SettleNotes,
    StorageError, Store,
};
use hcc_tests::{redis_url, unique_prefix};

const Q: &str = "conformance";
const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;
const KEEP: u64 = 3600;

/// The ledger's events queue, as the service names it.
const EVENTS: &str = "payments";

fn redis_at(prefix: &str) -> Store {
    match Store::redis(&redis_url(), 8, prefix) {
        Ok(s) => s,
        Err(e) => panic!("redis store: {e}"),
    }
}

fn redis() -> Store {
    redis_at(&unique_prefix())
}

fn memory() -> Store {
    Store::memory()
}

fn msg(key: &str, n: u32) -> NewMessage {
    NewMessage {
        kind: "test".into(),
        ordering_key: key.into(),
        payload: format!("{{\"ordering_key\":\"{key}\",\"seq\":{n}}}").into_bytes(),
    }
}

async fn put(q: &Queue, key: &str, n: u32, now: i64) -> String {
    match q.enqueue(Q, msg(key, n), None, now).await.unwrap() {
        Enqueued::Accepted(id) => id,
        other => panic!("expected Accepted, got {other:?}"),
    }
}

async fn claim(q: &Queue, max: usize, now: i64) -> Vec<Claimed> {
    q.claim(Q, max, now + LEASE, now).await.unwrap()
}

async fn status(q: &Queue, id: &str) -> MessageStatus {
    q.get(Q, id)
        .await
        .unwrap()
        .map(|r| r.status)
        .unwrap_or_else(|| panic!("no record for {id}"))
}

/// Each test gets a fresh store of each backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_memory { $( #[tokio::test] async fn $name() { super::$name(super::Backend(super::memory()).into()).await } )* }
        mod on_redis { $( #[tokio::test] async fn $name() { super::$name(super::Backend(super::redis()).into()).await } )* }
    };
}

/// The same tests on queues of `P4` partitions each.
macro_rules! both_partitioned {
    ($($name:ident),* $(,)?) => {
        mod on_memory_p4 { $( #[tokio::test] async fn $name() { super::$name(super::Partitioned(super::memory()).into()).await } )* }
        mod on_redis_p4 { $( #[tokio::test] async fn $name() { super::$name(super::Partitioned(super::redis()).into()).await } )* }
    };
}

const P4: u16 = 4;

/// A store whose queues have `P4` partitions (the ledger's events queue stays whole).
struct Partitioned(Store);

impl From<Partitioned> for Queue {
    fn from(p: Partitioned) -> Self {
        p.0.queue().with_partitions(P4, [EVENTS])
    }
}

/// What a test takes: the queue alone, or the whole store (ledger and audit log tests).
struct Backend(Store);

impl From<Backend> for Queue {
    fn from(b: Backend) -> Self {
        b.0.queue()
    }
}

impl From<Backend> for Store {
    fn from(b: Backend) -> Self {
        b.0
    }
}

both!(
    enqueue_claim_ack,
    retry_is_scheduled,
    per_key_fifo_one_at_a_time,
    concurrent_claimers_never_share_a_key,
    idempotency_keys,
    dead_letter_blocks_its_key,
    replay_unblocks,
    discard_unblocks_and_never_returns,
    lease_expiry_returns_the_message,
    pause_stops_claims,
    release_does_not_count_an_attempt,
    delivered_records_expire_after_their_retention,
    counters_follow_every_transition,
    counters_stay_exact_across_a_thousand_dead_letters,
    payment_reference_pending_is_a_reference_like_any_other,
    payment_markers_of_each_kind_stay_apart,
    payment_events_go_to_the_events_queue_in_the_same_step,
    a_reversal_queues_one_event_and_only_when_it_matches,
    a_payment_url_is_set_only_on_a_payment,
    audit_log_keeps_the_newest_lines_newest_first,
    rate_permits_follow_the_gcra,
    partition_count_changes_only_on_an_empty_queue,
    a_keys_history_and_its_dead_letter_are_read_from_its_index,
    settlement_events_go_to_the_outbox_once_and_are_relayed_once,
    payments_are_listed_from_their_indexes_with_their_history,
    failures_belong_to_their_payment_whatever_transaction_number_they_carry,
    pending_payments_are_asked_on_their_providers_schedule_and_expire,
    an_expired_payment_still_takes_late_money_once,
    pending_payments_from_before_the_schedules_are_adopted_once,
);

// Every queue behaviour holds unchanged when the queue is split, plus what only a split queue
// can get wrong: fairness between partitions, and views gathered from all of them.
both_partitioned!(
    enqueue_claim_ack,
    retry_is_scheduled,
    per_key_fifo_one_at_a_time,
    concurrent_claimers_never_share_a_key,
    idempotency_keys,
    dead_letter_blocks_its_key,
    replay_unblocks,
    discard_unblocks_and_never_returns,
    lease_expiry_returns_the_message,
    pause_stops_claims,
    release_does_not_count_an_attempt,
    delivered_records_expire_after_their_retention,
    counters_follow_every_transition,
    claims_visit_every_partition_in_turn,
    dead_letters_of_every_partition_list_in_order_of_death,
    stats_pause_and_lookups_span_every_partition,
    a_keys_history_and_its_dead_letter_are_read_from_its_index,
    settlement_events_go_to_the_outbox_once_and_are_relayed_once,
);

async fn enqueue_claim_ack(q: Queue) {
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

async fn retry_is_scheduled(q: Queue) {
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

async fn per_key_fifo_one_at_a_time(q: Queue) {
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

async fn concurrent_claimers_never_share_a_key(q: Queue) {
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

async fn idempotency_keys(q: Queue) {
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

async fn kill_head(q: &Queue) -> (String, String) {
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

async fn dead_letter_blocks_its_key(q: Queue) {
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

async fn replay_unblocks(q: Queue) {
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

async fn discard_unblocks_and_never_returns(q: Queue) {
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

async fn lease_expiry_returns_the_message(q: Queue) {
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

async fn pause_stops_claims(q: Queue) {
    put(&q, "A", 1, T0).await;
    q.set_paused(Q, true).await.unwrap();
    assert!(q.stats(Q, T0).await.unwrap().paused);
    assert!(claim(&q, 1, T0).await.is_empty());
    q.set_paused(Q, false).await.unwrap();
    assert_eq!(claim(&q, 1, T0).await.len(), 1);
}

async fn release_does_not_count_an_attempt(q: Queue) {
    let id = put(&q, "A", 1, T0).await;
    let c = claim(&q, 1, T0).await.remove(0);
    assert!(q.settle(Q, &c, &Disposition::Release, T0 + 1, KEEP).await.unwrap());
    assert_eq!(status(&q, &id).await, MessageStatus::Queued);
    let c = claim(&q, 1, T0 + 2).await.remove(0);
    assert_eq!(c.attempts, 1);
}

async fn delivered_records_expire_after_their_retention(q: Queue) {
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
async fn counters(q: &Queue, now: i64) -> (u64, u64) {
    let audit = q.audit_counters(Q).await.unwrap();
    assert!(audit.exact(), "maintained counters differ from a recount: {audit:?}");
    let s = q.stats(Q, now).await.unwrap();
    assert_eq!((s.dead, s.blocked), (audit.counted_dead, audit.counted_blocked), "{s:?}");
    (s.dead, s.blocked)
}

fn dead(error: &str) -> Disposition {
    Disposition::Dead { error: error.into() }
}

/// Claims the heads due at `now` and settles each as `how` says (by its ordering key).
async fn settle_heads(q: &Queue, now: i64, how: impl Fn(&str) -> Disposition) -> Vec<String> {
    let mut ids = Vec::new();
    for c in claim(q, 100, now).await {
        assert!(q.settle(Q, &c, &how(&c.ordering_key), now, KEEP).await.unwrap());
        ids.push(c.id);
    }
    ids
}

async fn counters_follow_every_transition(q: Queue) {
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

async fn counters_stay_exact_across_a_thousand_dead_letters(q: Queue) {
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

fn payment(reference: &str, amount: u64, created_at: i64) -> PaymentRecord {
    PaymentRecord {
        reference: reference.into(),
        ma_ho_so: "000.00.22.H46-241126-0001".into(),
        amount,
        provider: "vnpay".into(),
        status: PaymentState::Pending,
        payment_url: String::new(),
        agency: "000.00.22.H46".into(),
        fees_json: "[]".into(),
        created_at,
        provider_created: "20241126100000".into(),
        provider_transaction: None,
        provider_time: None,
        confirmed_by: None,
        settled_at: None,
        duplicates: 0,
        updated_at: None,
        bank_refs: None,
        qr_payload: None,
        expires_at: Some(created_at + 15 * 60_000),
    }
}

fn events(reference: &str) -> PaymentEvents {
    PaymentEvents {
        ordering_key: reference.into(),
        confirmed: msg(reference, 1),
        duplicate: msg(reference, 2),
    }
}

fn confirmation(reference: &str, provider: &str, transaction: &str, paid: bool, amount: u64) -> Confirmation {
    Confirmation {
        reference: reference.into(),
        provider: provider.into(),
        transaction: transaction.into(),
        amount,
        paid,
        provider_time: "20241126100500".into(),
        bank_refs: None,
    }
}

/// A reference spelled like the pending index is a payment of its own: it neither overwrites
/// the index nor is taken for it, and the index keeps every pending payment.
async fn payment_reference_pending_is_a_reference_like_any_other(s: Store) {
    let l = s.ledger(EVENTS);
    assert!(l.create(&payment("HCC241126EARLY234", 100_000, T0)).await.unwrap());
    assert!(
        l.create(&payment("pending", 200_000, T0 + 1)).await.unwrap(),
        "a payment named `pending` is a new payment"
    );
    assert!(l.create(&payment("HCC241126LATER234", 300_000, T0 + 2)).await.unwrap());
    assert!(!l.create(&payment("pending", 1, T0 + 3)).await.unwrap(), "it exists");
    let all = vec!["HCC241126EARLY234", "pending", "HCC241126LATER234"];
    assert_eq!(l.pending(T0, T0 + 10, 10).await.unwrap(), all);
    let p = l.get("pending").await.unwrap().expect("the payment named pending");
    assert_eq!((p.amount, p.status), (200_000, PaymentState::Pending));

    let outcome = l
        .confirm(
            &confirmation("pending", "vnpay", "14000001", true, 200_000),
            "",
            &events("pending"),
            T0 + 5,
        )
        .await
        .unwrap();
    assert_eq!(outcome, ConfirmOutcome::Paid);
    assert_eq!(
        l.pending(T0, T0 + 10, 10).await.unwrap(),
        vec!["HCC241126EARLY234", "HCC241126LATER234"]
    );
    assert_eq!(l.get("pending").await.unwrap().unwrap().status, PaymentState::Paid);
    let early = l.get("HCC241126EARLY234").await.unwrap().unwrap();
    assert_eq!((early.amount, early.status), (100_000, PaymentState::Pending));
}

/// A transaction id cannot pass for another kind of marker: a failure `T` and a success
/// `T:failed` are two transactions, and a bank credit whose id reads `reversal:K` does not
/// stand in for the bank's reversal `K`.
async fn payment_markers_of_each_kind_stay_apart(s: Store) {
    let l = s.ledger(EVENTS);
    assert!(l.create(&payment("HCC241126FAIL2345", 100_000, T0)).await.unwrap());
    let failed = confirmation("HCC241126FAIL2345", "vnpay", "T", false, 100_000);
    let ev = events("HCC241126FAIL2345");
    assert_eq!(l.confirm(&failed, "", &ev, T0 + 1).await.unwrap(), ConfirmOutcome::Failed);
    let paid = confirmation("HCC241126FAIL2345", "vnpay", "T:failed", true, 100_000);
    assert_eq!(l.confirm(&paid, "", &ev, T0 + 2).await.unwrap(), ConfirmOutcome::Paid);

    assert!(l.create(&payment("HCC241126BANK2345", 100_000, T0)).await.unwrap());
    let credit = confirmation("HCC241126BANK2345", "bank:devbank", "reversal:K", true, 100_000);
    let ev = events("HCC241126BANK2345");
    assert_eq!(l.confirm(&credit, "", &ev, T0 + 3).await.unwrap(), ConfirmOutcome::Paid);
    let reversal = Reversal {
        reference: "HCC241126BANK2345".into(),
        provider: "bank:devbank".into(),
        key: "K".into(),
        amount: 100_000,
        original_transaction: None,
    };
    assert_eq!(
        l.reverse(&reversal, &msg("HCC241126BANK2345", 3), T0 + 4).await.unwrap(),
        ReverseOutcome::Reversed
    );
    assert_eq!(
        l.reverse(&reversal, &msg("HCC241126BANK2345", 3), T0 + 5).await.unwrap(),
        ReverseOutcome::Duplicate,
        "the reversal itself is still applied once"
    );
}

/// Every claimable message of the events queue, as (kind, ordering key), settled as delivered.
async fn drain_events(q: &Queue, now: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let claimed = q.claim(EVENTS, 100, now + LEASE, now).await.unwrap();
        if claimed.is_empty() {
            return out;
        }
        for c in claimed {
            out.push((c.kind.clone(), c.ordering_key.clone()));
            assert!(q.settle(EVENTS, &c, &Disposition::Delivered, now, KEEP).await.unwrap());
        }
    }
}

fn kinds(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(k, _)| k.as_str()).collect()
}

/// A payment's events, with kinds of their own so the test can tell which one was queued.
fn named_events(reference: &str) -> PaymentEvents {
    let event = |kind: &str| NewMessage {
        kind: kind.into(),
        ordering_key: reference.into(),
        payload: b"{}".to_vec(),
    };
    PaymentEvents {
        ordering_key: reference.into(),
        confirmed: event("payment.confirmed"),
        duplicate: event("payment.duplicate"),
    }
}

/// The ledger queues its events in the queue it was made with, in the same step as the change:
/// one `payment.confirmed` for the first paid confirmation, nothing for a repeat, a failure or a
/// wrong amount, one `payment.duplicate` for money paid twice, and `stale` (nothing queued)
/// when the caller saw another transaction standing. The queue's counters stay exact.
async fn payment_events_go_to_the_events_queue_in_the_same_step(s: Store) {
    let (l, q) = (s.ledger(EVENTS), s.queue());
    let reference = "HCC241126EVNT2345";
    assert!(l.create(&payment(reference, 100_000, T0)).await.unwrap());
    let ev = named_events(reference);
    let other = payment("HCC241126WRNG2345", 100_000, T0);
    assert!(l.create(&other).await.unwrap());
    assert_eq!(
        l.confirm(
            &confirmation(&other.reference, "vnpay", "W", true, 99_999),
            "",
            &named_events(&other.reference),
            T0 + 1
        )
        .await
        .unwrap(),
        ConfirmOutcome::AmountMismatch
    );
    assert_eq!(l.get(&other.reference).await.unwrap().unwrap().status, PaymentState::AmountMismatch);
    let failed = confirmation(reference, "vnpay", "F", false, 100_000);
    assert_eq!(l.confirm(&failed, "", &ev, T0 + 1).await.unwrap(), ConfirmOutcome::Failed);
    assert!(
        drain_events(&q, T0 + 1).await.is_empty(),
        "a failure or a wrong amount queues nothing"
    );

    let paid = confirmation(reference, "vnpay", "P1", true, 100_000);
    assert_eq!(l.confirm(&paid, "", &ev, T0 + 2).await.unwrap(), ConfirmOutcome::Paid);
    assert_eq!(
        l.confirm(&paid, "", &ev, T0 + 3).await.unwrap(),
        ConfirmOutcome::Duplicate(PaymentState::Paid),
        "a repeat gets the first answer"
    );
    let again = confirmation(reference, "vnpay", "P2", true, 100_000);
    assert_eq!(
        l.confirm(&again, "someone else", &ev, T0 + 3).await.unwrap(),
        ConfirmOutcome::Stale,
        "the caller saw another transaction standing"
    );
    assert_eq!(l.confirm(&again, "P1", &ev, T0 + 4).await.unwrap(), ConfirmOutcome::PaidTwice);
    assert_eq!(
        l.confirm(&again, "P1", &ev, T0 + 4).await.unwrap(),
        ConfirmOutcome::Duplicate(PaymentState::Paid),
        "money paid twice is answered once"
    );
    let third = confirmation(reference, "vnpay", "P3", true, 100_000);
    assert_eq!(l.confirm(&third, "P1", &ev, T0 + 4).await.unwrap(), ConfirmOutcome::PaidTwice);
    assert_eq!(
        l.confirm(&failed, "", &ev, T0 + 4).await.unwrap(),
        ConfirmOutcome::Duplicate(PaymentState::Failed)
    );
    let late_failure = confirmation(reference, "vnpay", "F2", false, 100_000);
    assert_eq!(
        l.confirm(&late_failure, "", &ev, T0 + 4).await.unwrap(),
        ConfirmOutcome::AlreadySettled(PaymentState::Paid)
    );

    let p = l.get(reference).await.unwrap().unwrap();
    assert_eq!(
        (
            p.status,
            p.provider_transaction.as_deref(),
            p.confirmed_by.as_deref(),
            p.duplicates,
            p.settled_at
        ),
        (PaymentState::Paid, Some("P1"), Some("vnpay"), 2, Some(T0 + 2))
    );
    let stats = q.stats(EVENTS, T0 + 5).await.unwrap();
    assert_eq!((stats.ready, stats.dead, stats.blocked), (3, 0, 0), "{stats:?}");
    let events = drain_events(&q, T0 + 5).await;
    assert_eq!(kinds(&events), ["payment.confirmed", "payment.duplicate", "payment.duplicate"]);
    assert!(events.iter().all(|(_, okey)| okey == reference), "{events:?}");
    assert_eq!(q.stats(EVENTS, T0 + 6).await.unwrap().delivered_total, 3);
    assert!(q.audit_counters(EVENTS).await.unwrap().exact());
    assert!(l.pending(T0, T0 + 10, 10).await.unwrap().is_empty(), "nothing is pending any more");
}

/// A reversal undoes only the payment that stands (same route, amount and transaction), once,
/// with one `payment.reversed` event.
async fn a_reversal_queues_one_event_and_only_when_it_matches(s: Store) {
    let (l, q) = (s.ledger(EVENTS), s.queue());
    let reference = "HCC241126RVRS2345";
    let event = NewMessage {
        kind: "payment.reversed".into(),
        ordering_key: reference.into(),
        payload: b"{}".to_vec(),
    };
    let reversal = |provider: &str, amount: u64, original: Option<&str>| Reversal {
        reference: reference.into(),
        provider: provider.into(),
        key: "R1".into(),
        amount,
        original_transaction: original.map(Into::into),
    };
    let ok = reversal("bank:devbank", 100_000, Some("B1"));
    assert_eq!(l.reverse(&ok, &event, T0).await.unwrap(), ReverseOutcome::Unknown);
    assert!(l.create(&payment(reference, 100_000, T0)).await.unwrap());
    assert_eq!(l.reverse(&ok, &event, T0 + 1).await.unwrap(), ReverseOutcome::NotPaid);
    let credit = confirmation(reference, "bank:devbank", "B1", true, 100_000);
    assert_eq!(
        l.confirm(&credit, "", &named_events(reference), T0 + 2).await.unwrap(),
        ConfirmOutcome::Paid
    );
    for (mismatch, why) in [
        (reversal("bank:other", 100_000, Some("B1")), "another route paid it"),
        (reversal("bank:devbank", 5, Some("B1")), "another amount was paid"),
        (reversal("bank:devbank", 100_000, Some("B2")), "it names another transaction"),
    ] {
        assert_eq!(l.reverse(&mismatch, &event, T0 + 3).await.unwrap(), ReverseOutcome::Mismatch(why));
    }
    assert_eq!(l.get(reference).await.unwrap().unwrap().status, PaymentState::Paid);
    assert_eq!(l.reverse(&ok, &event, T0 + 4).await.unwrap(), ReverseOutcome::Reversed);
    assert_eq!(l.reverse(&ok, &event, T0 + 5).await.unwrap(), ReverseOutcome::Duplicate);
    assert_eq!(l.get(reference).await.unwrap().unwrap().status, PaymentState::Reversed);
    assert_eq!(kinds(&drain_events(&q, T0 + 6).await), ["payment.confirmed", "payment.reversed"]);
}

/// The payment page, or the code to scan, is set on a payment that exists, and on nothing
/// else; its lifetime is kept from its creation.
async fn a_payment_url_is_set_only_on_a_payment(s: Store) {
    let l = s.ledger(EVENTS);
    let url = Handoff::Url("https://pay.example/x".into());
    l.set_handoff("HCC241126NONE2345", &url).await.unwrap();
    assert!(l.get("HCC241126NONE2345").await.unwrap().is_none(), "no payment appears");
    assert!(l.create(&payment("HCC241126URLS2345", 100_000, T0)).await.unwrap());
    l.set_handoff("HCC241126URLS2345", &Handoff::Url("https://pay.example/y".into()))
        .await
        .unwrap();
    let got = l.get("HCC241126URLS2345").await.unwrap().unwrap();
    assert_eq!(got.payment_url, "https://pay.example/y");
    assert_eq!((got.qr_payload, got.expires_at), (None, Some(T0 + 15 * 60_000)));
    assert!(l.create(&payment("HCC241126QRQR2345", 100_000, T0)).await.unwrap());
    l.set_handoff("HCC241126QRQR2345", &Handoff::Qr("000201010212".into()))
        .await
        .unwrap();
    let got = l.get("HCC241126QRQR2345").await.unwrap().unwrap();
    assert_eq!((got.payment_url.as_str(), got.qr_payload.as_deref()), ("", Some("000201010212")));
}

async fn audit_log_keeps_the_newest_lines_newest_first(s: Store) {
    let log = s.audit_log();
    assert!(log.read(0, 10).await.unwrap().is_empty());
    let lines = |r: std::ops::Range<u32>| r.map(|i| format!("{{\"n\":{i}}}")).collect::<Vec<_>>();
    log.append(&lines(0..3), 5).await.unwrap();
    log.append(&[], 5).await.unwrap();
    log.append(&lines(3..7), 5).await.unwrap();
    let newest_first: Vec<String> = lines(2..7).into_iter().rev().collect();
    assert_eq!(log.read(0, 10).await.unwrap(), newest_first, "the newest five, newest first");
    assert_eq!(log.read(1, 2).await.unwrap(), newest_first[1..3]);
    assert!(log.read(5, 10).await.unwrap().is_empty());
}

/// A stored value that does not parse is an error, never a default: an amount of `abc` must
/// not read as a payment of 0 VND, nor a broken attempts count as 0 attempts.
#[tokio::test]
async fn corrupt_stored_values_are_errors_on_redis() {
    let prefix = unique_prefix();
    let s = redis_at(&prefix);
    let (l, q) = (s.ledger(EVENTS), s.queue());
    let reference = "HCC241126CRPT2345";
    assert!(l.create(&payment(reference, 100_000, T0)).await.unwrap());
    let id = put(&q, "A", 1, T0).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let payment_key = format!("{prefix}:{{{EVENTS}}}:payment:r:{reference}");
    let () = redis::cmd("HSET")
        .arg(&payment_key)
        .arg("amount")
        .arg("abc")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(l.get(reference).await, Err(StorageError::Corrupt(_))), "a corrupt amount");
    let message_key = format!("{prefix}:{{{Q}}}:m:{id}");
    let () = redis::cmd("HSET")
        .arg(&message_key)
        .arg("attempts")
        .arg("many")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        matches!(q.get(Q, &id).await, Err(StorageError::Corrupt(_))),
        "a corrupt attempts count"
    );
    let stats_key = format!("{prefix}:{{{Q}}}:stats");
    let () = redis::cmd("HSET")
        .arg(&stats_key)
        .arg("blocked")
        .arg("-x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(q.stats(Q, T0).await, Err(StorageError::Corrupt(_))), "a corrupt counter");
}

/// The ledger's events share its keys' hash tag: one slot for the script that writes both.
#[tokio::test]
async fn the_ledger_and_its_events_queue_share_one_hash_tag() {
    let prefix = unique_prefix();
    let s = redis_at(&prefix);
    let l: PaymentLedger = s.ledger(EVENTS);
    let reference = "HCC241126SLOT2345";
    assert!(l.create(&payment(reference, 100_000, T0)).await.unwrap());
    let paid = confirmation(reference, "vnpay", "S1", true, 100_000);
    assert_eq!(
        l.confirm(&paid, "", &named_events(reference), T0 + 1).await.unwrap(),
        ConfirmOutcome::Paid
    );
    let keys = hcc_tests::redis_snapshot(&redis_url(), &prefix).await;
    let names: Vec<String> = keys.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert!(names.len() >= 5, "{names:?}");
    let tag = format!("{prefix}:{{{EVENTS}}}:");
    assert!(names.iter().all(|k| k.starts_with(&tag)), "{names:?}");
    assert!(names.iter().any(|k| k.starts_with(&format!("{tag}payment:r:"))), "{names:?}");
    assert!(names.iter().any(|k| k.starts_with(&format!("{tag}m:"))), "{names:?}");
}

/// `n` ordering keys that fall in partition `part` of `P4` (by the documented hash).
fn keys_in(part: u16, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| hcc_gateway::storage::partition_of(k, P4) == part)
        .take(n)
        .collect()
}

/// A crowded partition cannot starve a quiet one: each claim starts one partition further on,
/// so within `P4` claims of one message each, the quiet partition's message comes out, and
/// when every partition has work, `P4` claims take one from each.
async fn claims_visit_every_partition_in_turn(q: Queue) {
    assert_eq!(q.partitions(Q), P4);
    for k in keys_in(0, 30) {
        put(&q, &k, 1, T0).await;
    }
    let quiet = keys_in(3, 1).remove(0);
    let quiet_id = put(&q, &quiet, 1, T0).await;
    let mut got = Vec::new();
    for i in 0..P4 as i64 {
        got.extend(claim(&q, 1, T0 + 1 + i).await);
    }
    assert_eq!(got.len(), P4 as usize);
    assert!(
        got.iter().any(|c| c.id == quiet_id),
        "the quiet partition waited behind the crowded one"
    );
    for c in &got {
        assert!(q.settle(Q, c, &Disposition::Delivered, T0 + 10, KEEP).await.unwrap());
    }
    for part in 1..P4 {
        for k in keys_in(part, 5) {
            put(&q, &k, 1, T0 + 20).await;
        }
    }
    let mut parts = std::collections::BTreeSet::new();
    for i in 0..P4 as i64 {
        for c in claim(&q, 1, T0 + 30 + i).await {
            parts.insert(hcc_gateway::storage::partition_of(&c.ordering_key, P4));
        }
    }
    assert_eq!(parts.len(), P4 as usize, "{parts:?}");
}

/// Dead letters from four partitions list as one, oldest death first, and page by offset and
/// limit; replay and discard find each by its id alone.
async fn dead_letters_of_every_partition_list_in_order_of_death(q: Queue) {
    // One key in each partition, killed at times that interleave the partitions: 3, 1, 0, 2.
    let order = [3u16, 1, 0, 2];
    let mut ids = Vec::new();
    for (i, part) in order.iter().enumerate() {
        let key = keys_in(*part, 1).remove(0);
        let id = put(&q, &key, 1, T0).await;
        let t = T0 + 100 * (i as i64 + 1);
        let c = q.claim(Q, 10, t + LEASE, t).await.unwrap();
        assert_eq!(c.len(), 1, "only the new head is due");
        assert!(q.settle(Q, &c[0], &dead("refused"), t, KEEP).await.unwrap());
        ids.push(id);
    }
    let listed: Vec<String> = q.list_dead(Q, 0, 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(listed, ids, "oldest death first, across partitions");
    let page: Vec<String> = q.list_dead(Q, 1, 2).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(page, ids[1..3].to_vec());
    assert!(q.list_dead(Q, 4, 10).await.unwrap().is_empty());
    let rec = q.list_dead(Q, 0, 1).await.unwrap().remove(0);
    assert_eq!(rec.destination, Q, "a record names the queue, not its partition");
    assert!(q.replay(Q, &ids[2], T0 + 1000).await.unwrap());
    assert!(q.discard(Q, &ids[0], T0 + 1000, KEEP).await.unwrap());
    assert!(!q.discard(Q, "0190f3a2-7b4c-7def-8123-456789012345", T0 + 1000, KEEP).await.unwrap());
    let left: Vec<String> = q.list_dead(Q, 0, 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec![ids[1].clone(), ids[3].clone()]);
    assert_eq!(q.stats(Q, T0 + 1001).await.unwrap().dead, 2);
}

async fn stats_pause_and_lookups_span_every_partition(q: Queue) {
    let mut ids = Vec::new();
    for part in 0..P4 {
        for k in keys_in(part, 2) {
            ids.push(put(&q, &k, 1, T0).await);
        }
    }
    let s = q.stats(Q, T0).await.unwrap();
    assert_eq!(s.ready, 2 * P4 as u64);
    for id in &ids {
        let r = q.get(Q, id).await.unwrap().unwrap_or_else(|| panic!("{id} not found"));
        assert_eq!((r.status, r.destination.as_str()), (MessageStatus::Queued, Q));
    }
    assert!(q.get(Q, "0190f3a2-7b4c-7def-8123-456789012345").await.unwrap().is_none());
    q.set_paused(Q, true).await.unwrap();
    assert!(q.stats(Q, T0).await.unwrap().paused);
    for i in 0..P4 as i64 {
        assert!(
            claim(&q, 100, T0 + i).await.is_empty(),
            "a paused queue gives nothing from any partition"
        );
    }
    q.set_paused(Q, false).await.unwrap();
    let got = claim(&q, 100, T0 + 10).await;
    assert_eq!(got.len(), ids.len());
    let s = q.stats(Q, T0 + 10).await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.paused), (0, ids.len() as u64, false));
    assert_eq!(
        q.reap(Q, T0 + 10 + LEASE).await.unwrap(),
        ids.len(),
        "every partition's leases are reaped"
    );
}

/// The shared rate limit, as the engine asks it: a rate of 1/s has a burst of 1; a peek never
/// takes; a denied ask says how long until the next permit, within one interval.
async fn rate_permits_follow_the_gcra(s: Store) {
    use hcc_gateway::storage::{Permit, PermitAsk};
    let q = s.queue();
    assert_eq!(hcc_gateway::storage::rate_burst(1), 1);
    for _ in 0..3 {
        assert_eq!(
            q.permit("slow", 1, PermitAsk::Peek).await.unwrap(),
            Permit::Granted,
            "a peek takes nothing"
        );
    }
    assert_eq!(q.permit("slow", 1, PermitAsk::Take).await.unwrap(), Permit::Granted);
    for ask in [PermitAsk::Take, PermitAsk::Peek] {
        match q.permit("slow", 1, ask).await.unwrap() {
            Permit::Wait(d) => assert!(d > std::time::Duration::ZERO && d <= std::time::Duration::from_secs(1), "{d:?}"),
            Permit::Granted => panic!("a second permit within the second ({ask:?})"),
        }
    }
    // Destinations do not share a budget.
    assert_eq!(q.permit("other", 1, PermitAsk::Take).await.unwrap(), Permit::Granted);
    // A burst of rate/10: 50/s lets 5 through at once, not 6.
    let granted = {
        let mut n = 0;
        for _ in 0..6 {
            if q.permit("fast", 50, PermitAsk::Take).await.unwrap() == Permit::Granted {
                n += 1;
            }
        }
        n
    };
    assert!((5..=6).contains(&granted), "{granted}");
}

/// A queue's partition count is recorded; another count is refused while the queue holds
/// anything (naming `queue.partitions`), and taken once it is empty.
async fn partition_count_changes_only_on_an_empty_queue(s: Store) {
    use hcc_gateway::storage::PartitionError;
    let one = s.queue();
    let four = s.queue().with_partitions(P4, [EVENTS]);
    one.check_partitions(Q, T0).await.unwrap();
    let id = put(&one, "A", 1, T0).await;
    let err = four.check_partitions(Q, T0).await.unwrap_err();
    assert!(
        matches!(
            err,
            PartitionError::Changed {
                stored: 1,
                configured: P4,
                waiting: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("queue.partitions"), "{err}");
    // Dead still counts as holding something.
    let c = claim(&one, 1, T0).await.remove(0);
    assert!(one.settle(Q, &c, &dead("refused"), T0, KEEP).await.unwrap());
    assert!(four.check_partitions(Q, T0).await.is_err());
    assert!(one.discard(Q, &id, T0, KEEP).await.unwrap());
    four.check_partitions(Q, T0).await.unwrap();
    // Recorded: going back needs the four partitions empty.
    put(&four, "B", 1, T0).await;
    assert!(matches!(
        one.check_partitions(Q, T0).await,
        Err(PartitionError::Changed {
            stored: 4,
            configured: 1,
            ..
        })
    ));
    four.check_partitions(Q, T0).await.unwrap();
    // The events queue stays whole whatever the count.
    assert_eq!(four.partitions(EVENTS), 1);
}

/// Each partition has its own hash tag, `{q:i}`, holding every key of its messages; one
/// partition keeps the plain `{q}` of an unsplit queue.
#[tokio::test]
async fn each_partition_has_its_own_hash_tag() {
    let prefix = unique_prefix();
    let q: Queue = redis_at(&prefix).queue().with_partitions(P4, [EVENTS]);
    for part in 0..P4 {
        put(&q, &keys_in(part, 1).remove(0), 1, T0).await;
    }
    let keys = hcc_tests::redis_snapshot(&redis_url(), &prefix).await;
    let names: Vec<String> = keys.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    for part in 0..P4 {
        let tag = format!("{prefix}:{{{Q}:{part}}}:");
        for family in ["m:", "k:", "due", "stats", "dx:"] {
            assert!(
                names.iter().any(|k| k.starts_with(&format!("{tag}{family}"))),
                "no {family} key under {tag}: {names:?}"
            );
        }
    }
    assert!(names.iter().all(|k| k.starts_with(&format!("{prefix}:{{{Q}:"))), "{names:?}");
    let one_prefix = unique_prefix();
    let one: Queue = redis_at(&one_prefix).queue().with_partitions(1, []);
    put(&one, "A", 1, T0).await;
    let keys = hcc_tests::redis_snapshot(&redis_url(), &one_prefix).await;
    assert!(
        keys.keys().all(|k| k.starts_with(format!("{one_prefix}:{{{Q}}}:").as_bytes())),
        "one partition keeps the queue's own tag"
    );
}

/// Start-up refuses a partition count other than the one a live queue is laid out in, and
/// says which setting; once the queue is empty the new count is taken.
#[tokio::test]
async fn startup_refuses_a_new_partition_count_on_a_live_queue() {
    use hcc_config::QueueBackendKind;
    use hcc_gateway::app::{Application, Workers};
    let prefix = unique_prefix();
    let with = |partitions: u16| {
        hcc_tests::settings(
            QueueBackendKind::Redis,
            &[
                ("HCC__QUEUE__KEY_PREFIX", prefix.clone()),
                ("HCC__QUEUE__PARTITIONS", partitions.to_string()),
                ("HCC__DVCQG__BASE_URL", "http://127.0.0.1:9".into()),
            ],
        )
    };
    let app = hcc_tests::start(Application::build(with(1), Workers::Off).await.unwrap());
    assert!(app.handle.has_destination("dvcqg"));
    let Enqueued::Accepted(id) = app.handle.queue.enqueue("dvcqg", msg("A", 1), None, T0).await.unwrap() else {
        panic!("not accepted")
    };
    app.stop().await;
    let err = match Application::build(with(4), Workers::Off).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a live queue was split"),
    };
    assert!(err.contains("queue.partitions") && err.contains("dvcqg"), "{err}");
    // Emptied (delivered), the queue takes the new count.
    let q = redis_at(&prefix).queue();
    let c = q.claim("dvcqg", 1, T0 + LEASE, T0).await.unwrap().remove(0);
    assert_eq!(c.id, id);
    assert!(q.settle("dvcqg", &c, &Disposition::Delivered, T0, KEEP).await.unwrap());
    let app = hcc_tests::start(Application::build(with(4), Workers::Off).await.unwrap());
    assert_eq!(app.handle.queue.partitions("dvcqg"), 4);
    app.stop().await;
}

async fn a_keys_history_and_its_dead_letter_are_read_from_its_index(q: Queue) {
    assert!(q.key_history(Q, "A").await.unwrap().is_none(), "nothing of a key never seen");
    let (m1, m2) = kill_head(&q).await;
    let h = q.key_history(Q, "A").await.unwrap().expect("A's history");
    let seen: Vec<(&str, MessageStatus)> = h.messages.iter().map(|m| (m.id.as_str(), m.status)).collect();
    assert_eq!(seen, [(m1.as_str(), MessageStatus::Dead), (m2.as_str(), MessageStatus::Blocked)]);
    assert!(h.blocked());
    assert_eq!(h.status, None);
    let b = q.key_history(Q, "B").await.unwrap().expect("B's history");
    assert_eq!(b.messages.len(), 1);
    assert_eq!(b.messages[0].status, MessageStatus::Delivered);
    assert!(!b.blocked());
    assert_eq!(q.dead_of_key(Q, "A").await.unwrap().map(|r| r.id), Some(m1.clone()));
    assert!(q.dead_of_key(Q, "B").await.unwrap().is_none());
    assert!(q.dead_of_key(Q, "nope").await.unwrap().is_none());
    // Replayed and delivered with a status: the key's status is recorded, nothing is blocked.
    assert!(q.replay(Q, &m1, T0 + 100).await.unwrap());
    let notes = SettleNotes {
        status: Some("4".into()),
        ..SettleNotes::default()
    };
    for round in 0..2 {
        let now = T0 + 200 + round;
        for c in claim(&q, 10, now).await {
            assert!(q.settle_noted(Q, &c, &Disposition::Delivered, now, KEEP, &notes).await.unwrap());
        }
    }
    let h = q.key_history(Q, "A").await.unwrap().expect("A's history");
    assert_eq!(h.status.as_deref(), Some("4"));
    assert!(!h.blocked());
    assert!(h.messages.iter().all(|m| m.status == MessageStatus::Delivered), "{:?}", h.messages);
}

fn event(kind: &str, key: &str) -> OutboxEvent {
    OutboxEvent {
        kind: kind.into(),
        ordering_key: key.into(),
        payload: format!("{{\"type\":\"{kind}\"}}"),
    }
}

const SINK: &str = "sink";

async fn sink_kinds(q: &Queue, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for c in q.claim(SINK, 100, now + LEASE, now).await.unwrap() {
        out.push(c.kind.clone());
        assert!(q.settle(SINK, &c, &Disposition::Delivered, now, KEEP).await.unwrap());
    }
    out
}

async fn settlement_events_go_to_the_outbox_once_and_are_relayed_once(q: Queue) {
    let m1 = put(&q, "A", 1, T0).await;
    let notes = SettleNotes {
        status: None,
        on_dead: Some(event("dossier.rejected", "A")),
        on_redelivered: Some(event("dossier.delivered", "A")),
    };
    let c = claim(&q, 10, T0 + 1).await;
    assert!(
        q.settle_noted(Q, &c[0], &Disposition::Dead { error: "refused".into() }, T0 + 2, KEEP, &notes)
            .await
            .unwrap()
    );
    assert_eq!(q.relay_outbox(Q, SINK, 100, 3600, T0 + 3).await.unwrap(), 1);
    assert_eq!(
        q.relay_outbox(Q, SINK, 100, 3600, T0 + 4).await.unwrap(),
        0,
        "an event is relayed once"
    );
    assert_eq!(sink_kinds(&q, T0 + 5).await, ["dossier.rejected"]);
    // A delivery that follows no replay makes no event; one that follows a replay makes one.
    put(&q, "B", 1, T0 + 6).await;
    let c = claim(&q, 10, T0 + 7).await;
    assert!(
        q.settle_noted(Q, &c[0], &Disposition::Delivered, T0 + 8, KEEP, &notes)
            .await
            .unwrap()
    );
    assert_eq!(q.relay_outbox(Q, SINK, 100, 3600, T0 + 9).await.unwrap(), 0);
    assert!(q.replay(Q, &m1, T0 + 10).await.unwrap());
    let c = claim(&q, 10, T0 + 11).await;
    assert_eq!(c[0].id, m1);
    // A second death after the replay is a second dead letter: its own event.
    assert!(
        q.settle_noted(Q, &c[0], &Disposition::Dead { error: "again".into() }, T0 + 12, KEEP, &notes)
            .await
            .unwrap()
    );
    assert!(q.replay(Q, &m1, T0 + 13).await.unwrap());
    let c = claim(&q, 10, T0 + 14).await;
    assert!(
        q.settle_noted(Q, &c[0], &Disposition::Delivered, T0 + 15, KEEP, &notes)
            .await
            .unwrap()
    );
    assert_eq!(q.relay_outbox(Q, SINK, 100, 3600, T0 + 16).await.unwrap(), 2);
    assert_eq!(sink_kinds(&q, T0 + 17).await, ["dossier.rejected"]);
    assert_eq!(
        sink_kinds(&q, T0 + 18).await,
        ["dossier.delivered"],
        "the key's FIFO keeps them in order"
    );
    assert!(sink_kinds(&q, T0 + 19).await.is_empty());
}

async fn payments_are_listed_from_their_indexes_with_their_history(s: Store) {
    let ledger: PaymentLedger = s.ledger(EVENTS);
    let mut a = payment("HCC241126AAAAAAAA", 100, T0);
    a.ma_ho_so = "M-1".into();
    let mut b = payment("HCC241126BBBBBBBB", 200, T0 + 1);
    b.ma_ho_so = "M-1".into();
    let mut c = payment("HCC241126CCCCCCCC", 300, T0 + 2);
    c.ma_ho_so = "M-2".into();
    for p in [&a, &b, &c] {
        assert!(ledger.create(p).await.unwrap());
    }
    let paid = confirmation(b.reference.as_str(), "vnpay", "T1", true, 200);
    assert_eq!(
        ledger.confirm(&paid, "", &events(&b.reference), T0 + 10).await.unwrap(),
        ConfirmOutcome::Paid
    );
    let again = confirmation(b.reference.as_str(), "vnpay", "T2", true, 200);
    assert_eq!(
        ledger.confirm(&again, "T1", &events(&b.reference), T0 + 11).await.unwrap(),
        ConfirmOutcome::PaidTwice
    );
    let short = confirmation(c.reference.as_str(), "vnpay", "T3", true, 1);
    assert_eq!(
        ledger.confirm(&short, "", &events(&c.reference), T0 + 12).await.unwrap(),
        ConfirmOutcome::AmountMismatch
    );
    let refs = |v: Vec<PaymentRecord>| v.into_iter().map(|p| p.reference).collect::<Vec<_>>();
    let list = |status: Option<&str>, ma: Option<&str>, since: Option<i64>| PaymentFilter {
        status: status.map(|s| ListStatus::parse(s).unwrap()),
        ma_ho_so: ma.map(str::to_string),
        since,
    };
    assert_eq!(
        refs(ledger.list(&list(None, None, None), 0, 10).await.unwrap()),
        [c.reference.as_str(), b.reference.as_str(), a.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(None, None, None), 1, 1).await.unwrap()),
        [b.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(Some("pending"), None, None), 0, 10).await.unwrap()),
        [a.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(Some("paid"), None, None), 0, 10).await.unwrap()),
        [b.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(Some("duplicate"), None, None), 0, 10).await.unwrap()),
        [b.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(Some("amount_mismatch"), None, None), 0, 10).await.unwrap()),
        [c.reference.as_str()]
    );
    assert!(ledger.list(&list(Some("failed"), None, None), 0, 10).await.unwrap().is_empty());
    assert_eq!(
        refs(ledger.list(&list(None, Some("M-1"), None), 0, 10).await.unwrap()),
        [b.reference.as_str(), a.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(Some("pending"), Some("M-1"), None), 0, 10).await.unwrap()),
        [a.reference.as_str()]
    );
    assert_eq!(
        refs(ledger.list(&list(None, None, Some(T0 + 11)), 0, 10).await.unwrap()),
        [c.reference.as_str(), b.reference.as_str()]
    );
    let b_now = ledger.get(&b.reference).await.unwrap().unwrap();
    assert_eq!(b_now.updated_at, Some(T0 + 11));
    let h = ledger.history(&b.reference).await.unwrap();
    let steps: Vec<(i64, &str)> = h.iter().map(|e| (e.at, e.event.as_str())).collect();
    assert_eq!(
        steps,
        [
            (T0 + 1, "created"),
            (T0 + 10, "paid"),
            (T0 + 10, "webhook_queued"),
            (T0 + 11, "duplicate"),
            (T0 + 11, "webhook_queued")
        ]
    );
    assert!(h[1].detail.contains("T1") && h[3].detail.contains("T2"), "{h:?}");
    assert!(ledger.history("HCC241126ZZZZZZZZ").await.unwrap().is_empty());
}

/// VNPAY answers every cancelled payment with `vnp_TransactionNo=0`: each is recorded failed on
/// its own payment, a repeat of one is answered as before, and a later success still pays.
async fn failures_belong_to_their_payment_whatever_transaction_number_they_carry(s: Store) {
    let (l, q) = (s.ledger(EVENTS), s.queue());
    let (a, b) = ("HCC241126CANCELAA", "HCC241126CANCELBB");
    for r in [a, b] {
        assert!(l.create(&payment(r, 100_000, T0)).await.unwrap());
    }
    for r in [a, b] {
        let cancelled = confirmation(r, "vnpay", "0", false, 100_000);
        assert_eq!(
            l.confirm(&cancelled, "", &named_events(r), T0 + 1).await.unwrap(),
            ConfirmOutcome::Failed,
            "{r}: a second payment's cancel is its own"
        );
        assert_eq!(l.get(r).await.unwrap().unwrap().status, PaymentState::Failed);
    }
    assert_eq!(
        l.confirm(&confirmation(a, "vnpay", "0", false, 100_000), "", &named_events(a), T0 + 2)
            .await
            .unwrap(),
        ConfirmOutcome::Duplicate(PaymentState::Failed),
        "the same answer again is a repeat"
    );
    assert_eq!(
        l.confirm(&confirmation(b, "vnpay", "14000123", true, 100_000), "", &named_events(b), T0 + 3)
            .await
            .unwrap(),
        ConfirmOutcome::Paid
    );
    assert_eq!(l.get(a).await.unwrap().unwrap().status, PaymentState::Failed);
    assert_eq!(l.get(b).await.unwrap().unwrap().status, PaymentState::Paid);
    assert_eq!(kinds(&drain_events(&q, T0 + 4).await), ["payment.confirmed"]);
}

/// Each provider has its own schedule: the longest due first, a payment asked moves back, one
/// that settled leaves it, and an expired one is out of it and of the pending index.
async fn pending_payments_are_asked_on_their_providers_schedule_and_expire(s: Store) {
    let l = s.ledger(EVENTS);
    let mut paygov = payment("HCC241126PAYGOVAA", 100, T0);
    paygov.provider = "paygov".into();
    assert!(l.create_scheduled(&paygov, T0 + 5).await.unwrap());
    // Created in this order, due in another.
    for (r, first) in [
        ("HCC241126VNPAYAAA", T0 + 30),
        ("HCC241126VNPAYBBB", T0 + 10),
        ("HCC241126VNPAYCCC", T0 + 20),
    ] {
        assert!(l.create_scheduled(&payment(r, 100, T0), first).await.unwrap());
    }
    assert!(!l.create_scheduled(&payment("HCC241126VNPAYAAA", 1, T0), T0).await.unwrap());
    assert_eq!(l.due("vnpay", T0 + 9, 10).await.unwrap(), Vec::<String>::new(), "nothing due yet");
    assert_eq!(
        l.due("vnpay", T0 + 25, 10).await.unwrap(),
        ["HCC241126VNPAYBBB", "HCC241126VNPAYCCC"]
    );
    assert_eq!(l.due("vnpay", T0 + 99, 1).await.unwrap(), ["HCC241126VNPAYBBB"], "the batch limit");
    assert_eq!(
        l.due("paygov", T0 + 99, 10).await.unwrap(),
        ["HCC241126PAYGOVAA"],
        "its own schedule"
    );
    // Asked: it moves back, behind the others.
    l.reschedule("vnpay", "HCC241126VNPAYBBB", T0 + 60).await.unwrap();
    assert_eq!(
        l.due("vnpay", T0 + 99, 10).await.unwrap(),
        ["HCC241126VNPAYCCC", "HCC241126VNPAYAAA", "HCC241126VNPAYBBB"]
    );
    l.unschedule("vnpay", "HCC241126VNPAYCCC").await.unwrap();
    l.reschedule("vnpay", "HCC241126VNPAYCCC", T0).await.unwrap();
    assert_eq!(
        l.due("vnpay", T0 + 99, 10).await.unwrap(),
        ["HCC241126VNPAYAAA", "HCC241126VNPAYBBB"],
        "a payment out of the schedule is not put back by a reschedule"
    );

    assert_eq!(
        l.expire("vnpay", "HCC241126VNPAYAAA", "unpaid after its lifetime", T0 + 100)
            .await
            .unwrap(),
        ExpireOutcome::Expired
    );
    let p = l.get("HCC241126VNPAYAAA").await.unwrap().unwrap();
    assert_eq!(p.status, PaymentState::Expired);
    assert_eq!(l.due("vnpay", T0 + 999, 10).await.unwrap(), ["HCC241126VNPAYBBB"]);
    assert!(!l.pending(T0, T0 + 10, 10).await.unwrap().contains(&"HCC241126VNPAYAAA".to_string()));
    assert_eq!(
        l.expire("vnpay", "HCC241126VNPAYAAA", "again", T0 + 101).await.unwrap(),
        ExpireOutcome::NotPending(PaymentState::Expired)
    );
    let expired = PaymentFilter {
        status: ListStatus::parse("expired"),
        ..PaymentFilter::default()
    };
    let listed: Vec<String> = l.list(&expired, 0, 10).await.unwrap().into_iter().map(|p| p.reference).collect();
    assert_eq!(listed, ["HCC241126VNPAYAAA"]);
    let history = l.history("HCC241126VNPAYAAA").await.unwrap();
    assert_eq!(
        history.last().map(|h| (h.event.as_str(), h.detail.as_str())),
        Some(("expired", "unpaid after its lifetime"))
    );
    // A payment settled meanwhile is not expired; it only leaves the schedule.
    assert_eq!(
        l.confirm(
            &confirmation("HCC241126VNPAYBBB", "vnpay", "T1", true, 100),
            "",
            &events("HCC241126VNPAYBBB"),
            T0 + 102
        )
        .await
        .unwrap(),
        ConfirmOutcome::Paid
    );
    assert_eq!(
        l.expire("vnpay", "HCC241126VNPAYBBB", "late", T0 + 103).await.unwrap(),
        ExpireOutcome::NotPending(PaymentState::Paid)
    );
    assert!(l.due("vnpay", T0 + 999, 10).await.unwrap().is_empty());
    assert_eq!(
        l.expire("vnpay", "HCC241126NOSUCHXX", "", T0 + 104).await.unwrap(),
        ExpireOutcome::Unknown
    );
}

/// Money that arrives for an expired payment pays it, once, with one `payment.confirmed` event,
/// answered `PaidLate`; a failure reported after the expiry changes nothing.
async fn an_expired_payment_still_takes_late_money_once(s: Store) {
    let (l, q) = (s.ledger(EVENTS), s.queue());
    let r = "HCC241126LATEPAYS";
    assert!(l.create(&payment(r, 100_000, T0)).await.unwrap());
    assert_eq!(l.expire("vnpay", r, "unpaid", T0 + 1).await.unwrap(), ExpireOutcome::Expired);
    let ev = named_events(r);
    assert_eq!(
        l.confirm(&confirmation(r, "vnpay", "ipn-failed:24:02", false, 100_000), "", &ev, T0 + 2)
            .await
            .unwrap(),
        ConfirmOutcome::AlreadySettled(PaymentState::Expired)
    );
    let late = confirmation(r, "bank:devbank", "FT1", true, 100_000);
    assert_eq!(l.confirm(&late, "", &ev, T0 + 3).await.unwrap(), ConfirmOutcome::PaidLate);
    assert_eq!(
        l.confirm(&late, "", &ev, T0 + 4).await.unwrap(),
        ConfirmOutcome::Duplicate(PaymentState::Paid)
    );
    let p = l.get(r).await.unwrap().unwrap();
    assert_eq!(
        (p.status, p.provider_transaction.as_deref(), p.confirmed_by.as_deref()),
        (PaymentState::Paid, Some("FT1"), Some("bank:devbank"))
    );
    let history = l.history(r).await.unwrap();
    let paid = history.iter().find(|h| h.event == "paid").expect("a paid step");
    assert_eq!(paid.detail, "bank:devbank transaction FT1, 100000 VND, after it expired");
    assert_eq!(kinds(&drain_events(&q, T0 + 5).await), ["payment.confirmed"]);
    // Another amount after the expiry is for a person, as before it.
    let r2 = "HCC241126LATESHRT";
    assert!(l.create(&payment(r2, 100_000, T0)).await.unwrap());
    assert_eq!(l.expire("vnpay", r2, "unpaid", T0 + 1).await.unwrap(), ExpireOutcome::Expired);
    assert_eq!(
        l.confirm(&confirmation(r2, "vnpay", "T9", true, 90_000), "", &named_events(r2), T0 + 2)
            .await
            .unwrap(),
        ConfirmOutcome::AmountMismatch
    );
    assert!(drain_events(&q, T0 + 6).await.is_empty());
}

/// Pending payments made before the ask schedules existed (here: taken out of it) join their
/// provider's schedule, due now; those of another provider, already in it, settled, or created
/// before `created_from` do not.
async fn pending_payments_from_before_the_schedules_are_adopted_once(s: Store) {
    let l = s.ledger(EVENTS);
    let mut legacy = Vec::new();
    for (i, r) in ["HCC241126LEGACYAA", "HCC241126LEGACYBB", "HCC241126LEGACYCC", "HCC241126LEGACYDD"]
        .iter()
        .enumerate()
    {
        assert!(l.create(&payment(r, 100, T0 + i as i64)).await.unwrap());
        l.unschedule("vnpay", r).await.unwrap();
        legacy.push(*r);
    }
    let mut other = payment("HCC241126LEGACYPG", 100, T0 + 1);
    other.provider = "paygov".into();
    assert!(l.create(&other).await.unwrap());
    l.unschedule("paygov", &other.reference).await.unwrap();
    // Still scheduled, later: keeps its place.
    assert!(
        l.create_scheduled(&payment("HCC241126SCHEDULD", 100, T0 + 2), T0 + 500)
            .await
            .unwrap()
    );
    // Settled: not pending any more.
    assert_eq!(
        l.confirm(&confirmation(legacy[2], "vnpay", "T1", true, 100), "", &events(legacy[2]), T0 + 3)
            .await
            .unwrap(),
        ConfirmOutcome::Paid
    );
    assert!(l.due("vnpay", T0 + 100, 10).await.unwrap().is_empty());
    // From T0 + 1: the first one is older than the reconciler's maximum age.
    assert_eq!(l.adopt_pending("vnpay", T0 + 100, T0 + 1).await.unwrap(), 2);
    assert_eq!(l.due("vnpay", T0 + 100, 10).await.unwrap(), [legacy[1], legacy[3]]);
    assert_eq!(l.adopt_pending("vnpay", T0 + 200, T0 + 1).await.unwrap(), 0, "once");
    assert_eq!(
        l.due("vnpay", T0 + 999, 10).await.unwrap(),
        [legacy[1], legacy[3], "HCC241126SCHEDULD"],
        "adopted ones are due when adopted; a scheduled one keeps its time"
    );
    assert!(
        l.due("paygov", T0 + 999, 10).await.unwrap().is_empty(),
        "another provider's stays out"
    );
    assert_eq!(l.adopt_pending("paygov", T0 + 100, T0).await.unwrap(), 1);
}
