//! The payment ledger's conformance: references and markers, events queued in the same step, reversals, handoffs, lists and histories, failures, schedules, expiry and adoption.

use super::*;

pub(super) fn payment(reference: &str, amount: u64, created_at: i64) -> PaymentRecord {
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

pub(super) fn events(reference: &str) -> PaymentEvents {
    PaymentEvents {
        ordering_key: reference.into(),
        confirmed: msg(reference, 1),
        duplicate: msg(reference, 2),
    }
}

pub(super) fn confirmation(reference: &str, provider: &str, transaction: &str, paid: bool, amount: u64) -> Confirmation {
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
pub(super) async fn payment_reference_pending_is_a_reference_like_any_other(s: Store) {
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
pub(super) async fn payment_markers_of_each_kind_stay_apart(s: Store) {
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
pub(super) async fn drain_events(q: &Queue, now: i64) -> Vec<(String, String)> {
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

pub(super) fn kinds(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(k, _)| k.as_str()).collect()
}

/// A payment's events, with kinds of their own so the test can tell which one was queued.
pub(super) fn named_events(reference: &str) -> PaymentEvents {
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
pub(super) async fn payment_events_go_to_the_events_queue_in_the_same_step(s: Store) {
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
pub(super) async fn a_reversal_queues_one_event_and_only_when_it_matches(s: Store) {
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
pub(super) async fn a_payment_url_is_set_only_on_a_payment(s: Store) {
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

pub(super) async fn audit_log_keeps_the_newest_lines_newest_first(s: Store) {
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

pub(super) async fn payments_are_listed_from_their_indexes_with_their_history(s: Store) {
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
pub(super) async fn failures_belong_to_their_payment_whatever_transaction_number_they_carry(s: Store) {
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
pub(super) async fn pending_payments_are_asked_on_their_providers_schedule_and_expire(s: Store) {
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
pub(super) async fn an_expired_payment_still_takes_late_money_once(s: Store) {
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
pub(super) async fn pending_payments_from_before_the_schedules_are_adopted_once(s: Store) {
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
