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

mod layout;
mod ledger;
mod queue;

use layout::*;
use ledger::*;
use queue::*;

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
