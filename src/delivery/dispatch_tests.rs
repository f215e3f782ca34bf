//! Table-driven tests of the dispatcher's rules: fairness, every bound, the token
//! bucket, refill from the disk backlog, order, and the byte budget. Pure: no store,
//! no runtime; "disk" is a list the test hands back as the store would.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::*;
use crate::model::{Delivery, DeliveryState, Event};

/// A webhook id's tenant in these tests: the part before the first '-'.
fn tenant_of(webhook: &str) -> &str {
    webhook.split('-').next().unwrap_or("")
}

fn entry(webhook: &str, due: u64, n: u32) -> DueEntry {
    DueEntry {
        due,
        delivery_id: format!("dlv_{n:06}"),
        webhook_id: webhook.to_owned(),
    }
}

fn ids(work: &[Work]) -> Vec<String> {
    work.iter().map(|w| w.entry.delivery_id.clone()).collect()
}

fn hooks(work: &[Work]) -> Vec<&str> {
    work.iter().map(|w| w.entry.webhook_id.as_str()).collect()
}

/// Offers as (webhook, how many).
type Offers<'a> = &'a [(&'a str, usize)];

fn limits(max: usize, per_tenant: usize, per_webhook: usize) -> Limits {
    Limits::new(max, per_tenant, per_webhook, 64 << 20)
}

/// The dispatcher with a clock, rate limits and a helper for each operation.
struct T {
    d: Dispatcher,
    now: i64,
    rates: HashMap<String, u32>,
    /// The FIFO webhooks.
    fifo: HashSet<String>,
    n: u32,
}

impl T {
    fn new(l: Limits) -> T {
        let mut d = Dispatcher::new(l);
        // The start-up sweep finds nothing on disk.
        assert!(matches!(d.next_read(), Some(Read::Sweep { .. })));
        assert!(d.swept(Vec::new(), SCAN_BATCH));
        T {
            d,
            now: 1_000_000,
            rates: HashMap::new(),
            fifo: HashSet::new(),
            n: 0,
        }
    }

    /// Offers `count` new deliveries of `webhook`, due now.
    fn offer(&mut self, webhook: &str, count: usize) {
        for _ in 0..count {
            self.n += 1;
            let e = entry(webhook, self.now as u64, self.n);
            self.d.offer(
                Work {
                    entry: e,
                    loaded: None,
                },
                Some(tenant_of(webhook)),
                false,
            );
        }
    }

    fn pump(&mut self) -> Vec<Work> {
        let rates = self.rates.clone();
        let fifo = self.fifo.clone();
        let mut out = Vec::new();
        self.d.pump(
            self.now,
            &mut |w: &str| Policy {
                rate: rates.get(w).copied(),
                fifo: fifo.contains(w),
            },
            &mut out,
        );
        out
    }

    /// Ends the exchange and commits the outcome of each piece of `work`.
    fn settle(&mut self, work: &[Work]) {
        for w in work {
            self.d.finished(&w.entry.webhook_id);
            self.d.done(
                &w.entry.delivery_id,
                &w.entry.webhook_id,
                Settled::Final,
                self.now,
            );
        }
    }
}

#[test]
fn slots_go_round_robin_by_tenant_then_by_webhook() {
    // (offers as (webhook, count), max in flight, expected webhooks started in order)
    let cases: &[(Offers, usize, &[&str])] = &[
        // One tenant: its webhooks take turns.
        (
            &[("a-1", 3), ("a-2", 3), ("a-3", 3)],
            6,
            &["a-1", "a-2", "a-3", "a-1", "a-2", "a-3"],
        ),
        // Tenant a has three webhooks, b has one: tenants alternate first, so b
        // gets half the slots, and a's webhooks share a's half.
        (
            &[("a-1", 5), ("a-2", 5), ("a-3", 5), ("b-1", 5)],
            6,
            &["a-1", "b-1", "a-2", "b-1", "a-3", "b-1"],
        ),
        // Three tenants, one webhook each.
        (
            &[("a-1", 2), ("b-1", 2), ("c-1", 2)],
            6,
            &["a-1", "b-1", "c-1", "a-1", "b-1", "c-1"],
        ),
    ];
    for (offers, max, want) in cases {
        let mut t = T::new(limits(*max, *max, 16));
        for (wh, n) in *offers {
            t.offer(wh, *n);
        }
        let started = t.pump();
        assert_eq!(hooks(&started), *want, "offers {offers:?}");
    }
}

#[test]
fn each_in_flight_bound_holds_until_an_exchange_ends() {
    // (limits (max, per tenant, per webhook), offers, how many start, who waits)
    let cases: &[((usize, usize, usize), Offers, usize)] = &[
        // Global.
        ((3, 10, 10), &[("a-1", 5), ("b-1", 5)], 3),
        // Per webhook: 2 of a-1's 5.
        ((10, 10, 2), &[("a-1", 5)], 2),
        // Per tenant: a's 4 over its three webhooks, then nothing more of a.
        ((10, 4, 10), &[("a-1", 5), ("a-2", 5), ("a-3", 5)], 4),
        // Per tenant with two tenants: 4 of a and 3 of b (b has 3).
        ((10, 4, 10), &[("a-1", 5), ("a-2", 5), ("b-1", 3)], 7),
    ];
    for ((max, per_t, per_w), offers, n) in cases {
        let mut t = T::new(limits(*max, *per_t, *per_w));
        for (wh, c) in *offers {
            t.offer(wh, *c);
        }
        let started = t.pump();
        assert_eq!(started.len(), *n, "{offers:?}");
        assert!(
            t.pump().is_empty(),
            "nothing more starts while all are in flight"
        );
        let mut per_tenant: HashMap<&str, usize> = HashMap::new();
        let mut per_hook: HashMap<&str, usize> = HashMap::new();
        for w in &started {
            *per_tenant
                .entry(tenant_of(&w.entry.webhook_id))
                .or_default() += 1;
            *per_hook.entry(w.entry.webhook_id.as_str()).or_default() += 1;
        }
        assert!(per_tenant.values().all(|c| c <= per_t), "{per_tenant:?}");
        assert!(per_hook.values().all(|c| c <= per_w), "{per_hook:?}");
        // One exchange ends: exactly one more starts (everyone had more waiting
        // except in the last case's b), and from the same bound's owner.
        let first = started[0].clone();
        t.d.finished(&first.entry.webhook_id);
        let next = t.pump();
        assert_eq!(next.len(), 1, "{offers:?}");
        if *per_t < *max {
            assert_eq!(
                tenant_of(&next[0].entry.webhook_id),
                tenant_of(&first.entry.webhook_id)
            );
        }
    }
}

#[test]
fn a_hanging_tenant_cannot_take_another_tenants_slot() {
    // Hole 3 of issue 18: 20 webhooks of tenant "bad" that never answer, global
    // bound 256, per tenant 64: a healthy delivery of "good" starts at once.
    let mut t = T::new(limits(256, 64, 16));
    for i in 0..20 {
        t.offer(&format!("bad-{i}"), 16);
    }
    let bad = t.pump();
    assert_eq!(bad.len(), 64);
    t.offer("good-1", 1);
    let good = t.pump();
    assert_eq!(hooks(&good), ["good-1"]);
}

#[test]
fn the_token_bucket_limits_starts_per_second() {
    // (rate, ms elapsed before each pump, starts expected at each pump)
    let cases: &[(u32, &[i64], &[usize])] = &[
        // A full bucket allows a burst of one second's worth, then one per 1/rate.
        (2, &[0, 0, 499, 1, 500, 1000], &[2, 0, 0, 1, 1, 2]),
        (1, &[0, 999, 1], &[1, 0, 1]),
        (10, &[0, 100, 50, 50], &[10, 1, 0, 1]),
    ];
    for (rate, steps, want) in cases {
        let mut t = T::new(limits(100, 100, 100));
        t.rates.insert("a-1".into(), *rate);
        t.offer("a-1", 50);
        let mut got = Vec::new();
        for dt in *steps {
            t.now += dt;
            let started = t.pump();
            t.settle(&started);
            got.push(started.len());
            if started.is_empty() {
                // It says when the next token comes.
                assert!(t.d.next_wake(t.now) > t.now, "rate {rate}");
            }
        }
        assert_eq!(got, *want, "rate {rate}");
    }
}

#[test]
fn outcomes_awaiting_commit_are_bounded() {
    let mut l = limits(4, 4, 4);
    l.max_recording = 6;
    let mut t = T::new(l);
    t.offer("a-1", 20);
    let first = t.pump();
    assert_eq!(first.len(), 4);
    // The exchanges end but nothing is committed: 2 more may start (6 awaiting).
    for w in &first {
        t.d.finished(&w.entry.webhook_id);
    }
    let second = t.pump();
    assert_eq!(second.len(), 2);
    for w in &second {
        t.d.finished(&w.entry.webhook_id);
    }
    assert!(t.pump().is_empty(), "6 outcomes wait for their commit");
    // One commit: one more starts.
    t.d.done(&first[0].entry.delivery_id, "a-1", Settled::Final, t.now);
    assert_eq!(t.pump().len(), 1);
}

#[test]
fn a_webhooks_work_leaves_oldest_first() {
    // (offers as (due, n), expected start order of n)
    type Due<'a> = &'a [(u64, u32)];
    let cases: &[(Due, &[u32])] = &[
        (&[(10, 1), (11, 2), (12, 3)], &[1, 2, 3]),
        // Found out of order (a sweep, a retry): due time first, then id.
        (&[(12, 3), (10, 4), (11, 2), (10, 1)], &[1, 4, 2, 3]),
    ];
    for (offers, want) in cases {
        let mut t = T::new(limits(1, 1, 1));
        for (due, n) in *offers {
            t.d.offer(
                Work {
                    entry: entry("a-1", *due, *n),
                    loaded: None,
                },
                Some("a"),
                false,
            );
        }
        let mut order = Vec::new();
        loop {
            let started = t.pump();
            if started.is_empty() {
                break;
            }
            order.extend(ids(&started));
            t.settle(&started);
        }
        let want: Vec<String> = want.iter().map(|n| format!("dlv_{n:06}")).collect();
        assert_eq!(order, want, "{offers:?}");
    }
}

#[test]
fn work_on_disk_is_refilled_in_order_and_fresh_work_waits_behind_it() {
    let mut l = limits(2, 2, 2);
    l.queue_per_webhook = 4;
    let mut t = T::new(l);
    // Ten deliveries arrive; four fit in memory, the rest stay on disk.
    t.offer("a-1", 10);
    assert_eq!(t.d.queued(), 4);
    let mut disk: Vec<DueEntry> = (5..=10).map(|n| entry("a-1", t.now as u64, n)).collect();
    let mut order = Vec::new();
    let mut fresh = 10;
    for round in 0..20 {
        let started = t.pump();
        order.extend(ids(&started));
        t.settle(&started);
        // Fresh work keeps arriving from the fast path while the backlog drains: it
        // is already on disk, and must not overtake what waits there.
        if round < 3 {
            t.offer("a-1", 1);
            fresh += 1;
            disk.push(entry("a-1", t.now as u64, fresh));
        }
        while let Some(read) = t.d.next_read() {
            match read {
                Read::Refill {
                    webhook_id,
                    after,
                    limit,
                    ..
                } => {
                    assert_eq!(webhook_id, "a-1");
                    // The store's pending index: creation order after the cursor.
                    let from: Vec<DueEntry> = disk
                        .iter()
                        .filter(|e| after.as_ref().is_none_or(|a| e.delivery_id > *a))
                        .cloned()
                        .collect();
                    let taken: Vec<DueEntry> = from.iter().take(limit).cloned().collect();
                    let next = (from.len() > limit).then(|| taken[limit - 1].delivery_id.clone());
                    disk.retain(|e| !taken.contains(e));
                    t.d.refilled(&webhook_id, taken, next);
                }
                Read::Sweep { .. } => {
                    assert!(t.d.swept(Vec::new(), SCAN_BATCH));
                }
            }
        }
    }
    let want: Vec<String> = (1..=13).map(|n| format!("dlv_{n:06}")).collect();
    assert_eq!(order, want);
    assert!(disk.is_empty());
}

#[test]
fn the_sweep_resumes_from_its_cursor_and_ends() {
    let mut t = T::new(limits(10, 10, 10));
    t.d.want_sweep();
    let entries: Vec<Found> = (1..=SCAN_BATCH as u32)
        .map(|n| (entry("a-1", 5, n), Some(Arc::from("a")), false))
        .collect();
    assert_eq!(
        t.d.next_read(),
        Some(Read::Sweep {
            after: None,
            limit: SCAN_BATCH
        })
    );
    // A full batch: not the end; the next read continues after its last entry.
    assert!(!t.d.swept(entries, SCAN_BATCH));
    // The per-webhook queue (1,024) holds them all.
    assert_eq!(t.d.queued(), SCAN_BATCH);
    assert_eq!(
        t.d.next_read(),
        Some(Read::Sweep {
            after: Some((5, format!("dlv_{SCAN_BATCH:06}"))),
            limit: SCAN_BATCH
        })
    );
    assert!(t.d.swept(Vec::new(), SCAN_BATCH));
    assert_eq!(t.d.next_read(), None);
    t.d.set_next_due(Some(t.now + 300));
    assert_eq!(t.d.next_wake(t.now), t.now + 300);
}

fn loaded(webhook: &str, n: u32, payload: usize) -> Work {
    let e = entry(webhook, 1, n);
    let event = Event {
        id: format!("evt_{n}"),
        tenant: tenant_of(webhook).to_owned(),
        event_type: "t".into(),
        payload: "x".repeat(payload),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: 0,
    };
    let delivery = Delivery {
        id: e.delivery_id.clone(),
        tenant: event.tenant.clone(),
        event_id: event.id.clone(),
        webhook_id: webhook.to_owned(),
        event_type: "t".into(),
        state: DeliveryState::Pending,
        attempts: 0,
        schedule_step: 0,
        next_attempt_at: Some(1),
        last_status: None,
        last_error: None,
        created_at: 0,
        updated_at: 0,
    };
    Work {
        entry: e,
        loaded: Some((delivery, Arc::new(event))),
    }
}

#[test]
fn waiting_work_past_the_byte_budget_waits_as_ids() {
    // (budget, payload size, offered, expected loaded among the queued)
    let cases: &[(usize, usize, u32, usize)] = &[
        (10_000, 900, 20, 7),   // 7 x (900 + 512) = 9,884 <= 10,000
        (1 << 20, 900, 20, 20), // all fit
        (100, 900, 5, 0),       // none fits: all wait as ids
    ];
    for (budget, size, count, want) in cases {
        let mut l = limits(1, 1, 1);
        l.max_queued_bytes = *budget;
        let mut t = T::new(l);
        for n in 1..=*count {
            t.d.offer(loaded("a-1", n, *size), None, false);
        }
        assert_eq!(t.d.queued(), *count as usize);
        assert!(t.d.queued_bytes() <= *budget, "budget {budget}");
        assert_eq!(t.d.queued_bytes(), want * (size + 512), "budget {budget}");
        // Every piece of work still starts, in order, with or without its records.
        let mut started = Vec::new();
        for _ in 0..*count {
            let s = t.pump();
            t.settle(&s);
            started.extend(s);
        }
        let with: usize = started.iter().filter(|w| w.loaded.is_some()).count();
        assert_eq!(with, *want);
        assert_eq!(started.len(), *count as usize);
        assert_eq!(t.d.queued_bytes(), 0);
    }
}

/// A refill asks for the records within what is left of the byte budget, and the
/// records it brings start with their work (no read at attempt time); past the
/// budget the refilled work waits as ids, in order.
#[test]
fn a_refill_loads_records_within_the_byte_budget_left() {
    let mut l = limits(1, 1, 1);
    l.queue_per_webhook = 4;
    l.max_queued_bytes = 3 * (100 + 512);
    let mut t = T::new(l);
    // Four loaded fit the queue (three within the budget); the rest wait on disk.
    for n in 1..=8 {
        t.d.offer(loaded("a-1", n, 100), None, false);
    }
    assert_eq!(t.d.queued(), 4);
    assert_eq!(t.d.queued_bytes(), 3 * 612);
    let mut order = Vec::new();
    let mut with = 0;
    for _ in 0..20 {
        let s = t.pump();
        with += s.iter().filter(|w| w.loaded.is_some()).count();
        order.extend(ids(&s));
        t.settle(&s);
        while let Some(read) = t.d.next_read() {
            match read {
                Read::Refill {
                    webhook_id,
                    after,
                    limit,
                    budget,
                    ..
                } => {
                    assert_eq!(budget, 3 * 612 - t.d.queued_bytes());
                    let from = after.as_deref().map_or(5, |a| {
                        a.trim_start_matches("dlv_").parse::<u32>().expect("id") + 1
                    });
                    let mut left = budget;
                    let mut work = Vec::new();
                    for n in (from..=8).take(limit) {
                        let mut w = loaded("a-1", n, 100);
                        if left >= 612 {
                            left -= 612;
                        } else {
                            w.loaded = None;
                        }
                        work.push(w);
                    }
                    let next = (from + limit as u32 <= 8)
                        .then(|| work.last().map(|w| w.entry.delivery_id.clone()))
                        .flatten();
                    t.d.refilled_work(&webhook_id, work, next);
                }
                Read::Sweep { .. } => {
                    assert!(t.d.swept(Vec::new(), SCAN_BATCH));
                }
            }
        }
    }
    let want: Vec<String> = (1..=8).map(|n| format!("dlv_{n:06}")).collect();
    assert_eq!(order, want);
    assert!(with > 3, "refilled work came with its records ({with})");
    assert!(t.d.queued_bytes() == 0);
}

#[path = "line_tests.rs"]
mod line_tests;
