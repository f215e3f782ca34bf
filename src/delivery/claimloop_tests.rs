//! The claim loop's books (pure): slots, each tenant's share on this node, the
//! waiting queue and what a claim may ask for.

use super::*;
use crate::model::{Delivery, DeliveryState, Event};

fn claimed(id: &str, tenant: &str, webhook: &str) -> Claimed {
    Claimed {
        delivery: Delivery {
            id: id.into(),
            tenant: tenant.into(),
            event_id: format!("evt_{id}"),
            webhook_id: webhook.into(),
            event_type: "t".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(1),
            last_status: None,
            last_error: None,
            created_at: 1,
            updated_at: 1,
        },
        event: Arc::new(Event {
            id: format!("evt_{id}"),
            tenant: tenant.into(),
            event_type: "t".into(),
            payload: "{}".into(),
            channels: vec![],
            idempotency_key: None,
            created_at: 1,
        }),
        lease_until: 60_001,
    }
}

fn ids(c: &[Claimed]) -> Vec<&str> {
    c.iter().map(|c| c.delivery.id.as_str()).collect()
}

#[test]
fn work_over_a_tenants_share_waits_leased_and_starts_when_a_slot_frees() {
    // 4 slots, 2 per tenant on this node.
    let mut b = Books::new(4, 10, 2);
    assert_eq!(b.free(), 4);
    let started = b.accept(vec![
        claimed("d1", "a", "w1"),
        claimed("d2", "a", "w1"),
        claimed("d3", "a", "w2"),
        claimed("d4", "b", "w3"),
    ]);
    assert_eq!(ids(&started), ["d1", "d2", "d4"]);
    assert_eq!(ids(b.queued.make_contiguous()), ["d3"]);
    // Three running and one waiting fill the four slots.
    assert_eq!(b.free(), 0);
    assert!(b.constrained());
    // A claim looks ahead: a tenant's room is its share less what waits for it
    // (a: 1 waiting, b: none), whatever runs; both are told.
    let l = b.limits(60_000);
    let mut room = l.tenant_room.clone();
    room.sort();
    assert_eq!(room, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
    assert_eq!((l.slots, l.per_webhook, l.tenant_share), (0, 10, 2));
    // b's exchange ends: nothing of a may start yet.
    b.finished("w3");
    assert!(b.startable().is_empty());
    assert_eq!(b.free(), 1);
    // One of a's ends: the waiting one starts.
    b.finished("w1");
    assert_eq!(ids(&b.startable()), ["d3"]);
    assert_eq!((b.in_flight, b.queued.len()), (2, 0));
    // a is at its share again: its freed slots are a reason to claim.
    assert!(b.constrained());
    b.finished("w1");
    b.finished("w2");
    assert!(!b.constrained());
}

#[test]
fn a_claim_looks_ahead_by_what_runs_and_never_runs_more_than_the_share() {
    // 8 slots, 2 per tenant on this node; two of a's run.
    let mut b = Books::new(8, 10, 2);
    let started = b.accept(vec![claimed("d1", "a", "w1"), claimed("d2", "a", "w1")]);
    assert_eq!(started.len(), 2);
    // The next claim may bring a's whole share again (the running two end soon)...
    let room = |b: &Books| {
        b.limits(60_000)
            .tenant_room
            .into_iter()
            .find(|(t, _)| t == "a")
            .map(|(_, r)| r)
    };
    assert_eq!(room(&b), Some(2));
    // ...which waits leased, not running, while the share runs.
    assert!(
        b.accept(vec![claimed("d3", "a", "w2"), claimed("d4", "a", "w2")])
            .is_empty()
    );
    assert_eq!((b.in_flight, b.queued.len()), (2, 2));
    // Nothing more of a until what waits has started.
    assert_eq!(room(&b), Some(0));
    b.finished("w1");
    assert_eq!(ids(&b.startable()), ["d3"]);
    assert_eq!(room(&b), Some(1));
    assert_eq!(b.in_flight, 2);
}

#[test]
fn outcomes_awaiting_their_commit_bound_the_claims() {
    // 64 at least: with 2 slots, 64 unsettled outcomes stop further claims.
    let mut b = Books::new(2, 2, 2);
    for i in 0..64 {
        let c = claimed(&format!("d{i}"), "a", "w");
        assert_eq!(b.accept(vec![c]).len(), 1);
        b.finished("w");
    }
    assert_eq!(b.in_flight, 0);
    assert_eq!(b.free(), 0);
    b.done("d0", Settled::Final);
    assert_eq!(b.free(), 1);
    // An unknown webhook's `Finished` (not ours) changes nothing.
    b.finished("elsewhere");
    assert_eq!(b.in_flight, 0);
}

#[test]
fn the_next_look_follows_why_a_claim_left_work() {
    let mut b = Books::new(4, 10, 4);
    // Only this node's own leases or room hold it: its own Done/Finished wakes it.
    let own = Left {
        bound: true,
        fifo: true,
        room: true,
        ..Left::default()
    };
    assert_eq!(b.look_again(own, false), None);
    // Held elsewhere (other nodes' leases, a locked row, unseen work): a short look
    // again, doubling while such looks claim nothing, never past the backstop.
    let elsewhere = Left {
        bound: true,
        elsewhere: true,
        ..Left::default()
    };
    let start = Instant::now();
    let first = b.look_again(elsewhere, false).expect("a look again");
    let second = b
        .look_again(
            Left {
                locked: true,
                ..Left::default()
            },
            false,
        )
        .unwrap();
    assert!(first - start >= BLOCKED_PAUSE && first - start < BACKSTOP);
    assert!(second - start >= 2 * (first - start) - Duration::from_millis(1));
    for _ in 0..20 {
        let at = b
            .look_again(
                Left {
                    unseen: true,
                    ..Left::default()
                },
                false,
            )
            .unwrap();
        assert!(at - Instant::now() <= BACKSTOP);
    }
    // A look that claimed something starts the pause over.
    let again = b.look_again(elsewhere, true).unwrap();
    assert!(again - Instant::now() <= BLOCKED_PAUSE * 2);
}

#[test]
fn an_outcome_is_a_reason_to_claim_only_when_the_last_claim_left_work() {
    let mut b = Books::new(4, 10, 4);
    // Before any claim: every outcome is a reason.
    assert!(b.done("d0", Settled::Final));
    // The last claim took everything due: a delivered or exhausted outcome releases
    // nothing (new work wakes the loop itself), and a retry only sets the timer.
    b.left_behind = false;
    assert!(!b.done("d1", Settled::Final));
    assert_eq!(b.retry_timer(), None);
    let at = now_ms() + 60_000;
    assert!(!b.done("d2", Settled::RetryAt(at + 5_000)));
    assert!(!b.done("d3", Settled::RetryAt(at)));
    assert_eq!(b.retry_at, Some(at), "the earliest retry");
    let timer = b.retry_timer().expect("a timer");
    assert!(
        timer > Instant::now() + Duration::from_secs(50),
        "{timer:?}"
    );
    // The loop's next look is the earliest of the claim's wake, the retry and the
    // backstop.
    let soon = Instant::now() + Duration::from_millis(100);
    assert_eq!(b.until(soon), soon);
    let later = Instant::now() + Duration::from_secs(3600);
    assert!(b.until(later) <= Instant::now() + BACKSTOP, "the backstop");
    b.retry_at = Some(now_ms() + 200);
    let until = b.until(later);
    assert!(
        until <= Instant::now() + Duration::from_millis(200) && until > soon,
        "the retry: {until:?}"
    );
    // Nothing written: the delivery is still due as before.
    assert!(b.done("d4", Settled::Unchanged));
    // Work left behind a bound, a FIFO head or elsewhere: a lease given back may
    // release it.
    b.left_behind = true;
    assert!(b.done("d5", Settled::Final));
    // Held back by this node's own bounds: the freed outcome slot is a reason.
    b.left_behind = false;
    b.starved = true;
    assert!(b.done("d6", Settled::Final));
}
