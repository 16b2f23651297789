//! What the Redis layout and the partitions must keep: corrupt values are errors, hash tags, fairness and views across partitions, the rate limit, partition counts, key histories and the outbox.

use super::*;

/// A stored value that does not parse is an error, never a default: an amount of `abc` must
/// not read as a payment of 0 VND, nor a broken attempts count as 0 attempts.
#[tokio::test]
pub(super) async fn corrupt_stored_values_are_errors_on_redis() {
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
pub(super) async fn the_ledger_and_its_events_queue_share_one_hash_tag() {
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
pub(super) fn keys_in(part: u16, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| hcc_gateway::storage::partition_of(k, P4) == part)
        .take(n)
        .collect()
}

/// A crowded partition cannot starve a quiet one: each claim starts one partition further on,
/// so within `P4` claims of one message each, the quiet partition's message comes out, and
/// when every partition has work, `P4` claims take one from each.
pub(super) async fn claims_visit_every_partition_in_turn(q: Queue) {
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
pub(super) async fn dead_letters_of_every_partition_list_in_order_of_death(q: Queue) {
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

pub(super) async fn stats_pause_and_lookups_span_every_partition(q: Queue) {
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
pub(super) async fn rate_permits_follow_the_gcra(s: Store) {
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
pub(super) async fn partition_count_changes_only_on_an_empty_queue(s: Store) {
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
pub(super) async fn each_partition_has_its_own_hash_tag() {
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
pub(super) async fn startup_refuses_a_new_partition_count_on_a_live_queue() {
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

pub(super) async fn a_keys_history_and_its_dead_letter_are_read_from_its_index(q: Queue) {
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

pub(super) fn event(kind: &str, key: &str) -> OutboxEvent {
    OutboxEvent {
        kind: kind.into(),
        ordering_key: key.into(),
        payload: format!("{{\"type\":\"{kind}\"}}"),
        traceparent: None,
    }
}

const SINK: &str = "sink";

pub(super) async fn sink_kinds(q: &Queue, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    for c in q.claim(SINK, 100, now + LEASE, now).await.unwrap() {
        out.push(c.kind.clone());
        assert!(q.settle(SINK, &c, &Disposition::Delivered, now, KEEP).await.unwrap());
    }
    out
}

pub(super) async fn settlement_events_go_to_the_outbox_once_and_are_relayed_once(q: Queue) {
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
