//! Table-driven tests of the FIFO line rules (`line.rs`): one at a time in event
//! order, the head keeping its place through retries, final outcomes freeing the
//! line, other webhooks never held up, refills and restarts in order, and changes
//! of `ordering`. "Disk" is a model of the `pending` and `due` indexes that the test
//! reads back as the store would and updates as the recorder would.

use std::collections::BTreeMap;

use super::*;

/// What the receiver does with an attempt of a delivery (by its number).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Out {
    Ok,
    /// Fails; retried after this many ms (the schedule or `Retry-After`).
    Retry(i64),
    /// Fails for the last time (exhausted) or the webhook is gone (cancelled).
    Final,
    /// Nothing written (a read or commit failed).
    Unchanged,
}

/// The dispatcher with a model of the store's unfinished deliveries.
struct Sim {
    t: T,
    /// `delivery number -> (webhook, due)`: the pending index.
    disk: BTreeMap<u32, (String, u64)>,
    /// Every start, in order, as (webhook, delivery number).
    started: Vec<(String, u32)>,
    /// Attempts made per delivery number.
    tries: HashMap<u32, u32>,
}

fn num(id: &str) -> u32 {
    id.trim_start_matches("dlv_").parse().expect("test id")
}

impl Sim {
    fn new(l: Limits, fifo: &[&str]) -> Sim {
        let mut t = T::new(l);
        t.fifo = fifo.iter().map(|s| (*s).to_owned()).collect();
        Sim {
            t,
            disk: BTreeMap::new(),
            started: Vec::new(),
            tries: HashMap::new(),
        }
    }

    /// `count` new deliveries of `webhook` committed and handed over (fast path).
    fn ingest(&mut self, webhook: &str, count: usize) {
        for _ in 0..count {
            self.t.n += 1;
            let e = entry(webhook, self.t.now as u64, self.t.n);
            self.disk
                .insert(self.t.n, (webhook.to_owned(), self.t.now as u64));
            let fifo = self.t.fifo.contains(webhook);
            self.t.d.offer(
                Work {
                    entry: e,
                    loaded: None,
                },
                Some(tenant_of(webhook)),
                fifo,
            );
        }
    }

    /// Does every read the dispatcher asks for, against the model.
    fn reads(&mut self) {
        while let Some(read) = self.t.d.next_read() {
            match read {
                Read::Refill {
                    webhook_id,
                    after,
                    limit,
                    line,
                    ..
                } => {
                    let from = after.as_deref().map_or(0, num);
                    let now = self.t.now as u64;
                    let mut taken = Vec::new();
                    let mut next = None;
                    for (n, (wh, due)) in self.disk.range(from + 1..) {
                        if *wh != webhook_id || (!line && *due > now) {
                            continue;
                        }
                        if taken.len() == limit {
                            next = taken.last().map(|e: &DueEntry| e.delivery_id.clone());
                            break;
                        }
                        taken.push(entry(wh, *due, *n));
                    }
                    self.t.d.refilled(&webhook_id, taken, next);
                }
                Read::Sweep { after, limit } => {
                    let now = self.t.now as u64;
                    let mut due: Vec<(u64, u32, String)> = self
                        .disk
                        .iter()
                        .filter(|(_, (_, d))| *d <= now)
                        .map(|(n, (wh, d))| (*d, *n, wh.clone()))
                        .filter(|(d, n, _)| {
                            after
                                .as_ref()
                                .is_none_or(|(ad, aid)| (*d, *n) > (*ad, num(aid)))
                        })
                        .collect();
                    due.sort();
                    let found: Vec<Found> = due
                        .into_iter()
                        .take(limit)
                        .map(|(d, n, wh)| {
                            let fifo = self.t.fifo.contains(&wh);
                            let tenant = Some(Arc::from(tenant_of(&wh)));
                            (entry(&wh, d, n), tenant, fifo)
                        })
                        .collect();
                    if self.t.d.swept(found, limit) {
                        let next = self
                            .disk
                            .values()
                            .map(|(_, d)| *d as i64)
                            .filter(|d| *d > self.t.now)
                            .min();
                        self.t.d.set_next_due(next);
                    }
                }
            }
        }
    }

    /// Reads, then starts what may start now; records the starts.
    fn pump(&mut self) -> Vec<Work> {
        self.reads();
        let started = self.t.pump();
        for w in &started {
            let n = num(&w.entry.delivery_id);
            self.started.push((w.entry.webhook_id.clone(), n));
            *self.tries.entry(n).or_default() += 1;
        }
        started
    }

    /// Ends an attempt with `out`, committing it to the model as the recorder does.
    fn settle(&mut self, w: &Work, out: Out) {
        let n = num(&w.entry.delivery_id);
        let settled = match out {
            Out::Ok | Out::Final => {
                self.disk.remove(&n);
                Settled::Final
            }
            Out::Retry(after) => {
                let at = self.t.now + after;
                if let Some(e) = self.disk.get_mut(&n) {
                    e.1 = at as u64;
                }
                Settled::RetryAt(at)
            }
            Out::Unchanged => Settled::Unchanged,
        };
        self.t.d.finished(&w.entry.webhook_id);
        self.t.d.done(
            &w.entry.delivery_id,
            &w.entry.webhook_id,
            settled,
            self.t.now,
        );
    }

    /// Runs until nothing is left on disk (or `steps` rounds): each round starts
    /// what it can, checks `each`, settles by `outcome(number, try)`, and jumps the
    /// clock to the next wake-up when nothing started.
    fn run(
        &mut self,
        steps: usize,
        outcome: &dyn Fn(u32, u32) -> Out,
        each: &mut dyn FnMut(&Sim, &[Work]),
    ) {
        for _ in 0..steps {
            if self.disk.is_empty() {
                return;
            }
            let started = self.pump();
            each(self, &started);
            if started.is_empty() {
                let wake = self.t.d.next_wake(self.t.now);
                self.t.now = wake.max(self.t.now + 1);
                self.t.d.woke();
                continue;
            }
            for w in &started {
                let n = num(&w.entry.delivery_id);
                let out = outcome(n, self.tries[&n]);
                self.settle(w, out);
            }
        }
        panic!("not finished after {steps} rounds: {:?} left", self.disk);
    }

    fn order_of(&self, webhook: &str) -> Vec<u32> {
        self.started
            .iter()
            .filter(|(w, _)| w == webhook)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Collapses repeats: the order in which deliveries were first attempted, and
/// each retry right after its own earlier attempts.
fn runs(order: &[u32]) -> Vec<(u32, usize)> {
    let mut out: Vec<(u32, usize)> = Vec::new();
    for n in order {
        match out.last_mut() {
            Some((m, c)) if m == n => *c += 1,
            _ => out.push((*n, 1)),
        }
    }
    out
}

#[test]
fn a_fifo_line_goes_one_at_a_time_in_event_order_and_retries_keep_the_head() {
    // (events, attempt outcome by (number, try), expected runs (number, attempts))
    type Case = (usize, fn(u32, u32) -> Out, &'static [(u32, usize)]);
    let cases: &[Case] = &[
        // All succeed: in order, once each.
        (4, |_, _| Out::Ok, &[(1, 1), (2, 1), (3, 1), (4, 1)]),
        // The first attempt of every third event fails: it is retried before the
        // next one starts.
        (
            6,
            |n, t| {
                if n.is_multiple_of(3) && t == 1 {
                    Out::Retry(500)
                } else {
                    Out::Ok
                }
            },
            &[(1, 1), (2, 1), (3, 2), (4, 1), (5, 1), (6, 2)],
        ),
        // Exhausted (or cancelled) frees the line; so does success after retries.
        (
            3,
            |n, t| match (n, t) {
                (1, 1..=2) => Out::Retry(100),
                (1, _) => Out::Final,
                (2, 1) => Out::Retry(3_600_000), // a long Retry-After holds the line
                _ => Out::Ok,
            },
            &[(1, 3), (2, 2), (3, 1)],
        ),
        // A failed read or commit changes nothing: the head is tried again.
        (
            2,
            |n, t| {
                if n == 1 && t == 1 {
                    Out::Unchanged
                } else {
                    Out::Ok
                }
            },
            &[(1, 2), (2, 1)],
        ),
    ];
    for (count, outcome, want) in cases {
        let mut s = Sim::new(limits(8, 8, 8), &["a-1"]);
        s.ingest("a-1", *count);
        s.run(5000, outcome, &mut |s, started| {
            // One at a time, whatever the per-webhook bound, and never before the
            // head's due time (a retry's, `Retry-After` included).
            assert!(started.len() <= 1, "{:?}", ids(started));
            if let Some(w) = started.first() {
                let due = s.disk[&num(&w.entry.delivery_id)].1;
                assert!(s.t.now >= due as i64, "started before it was due");
            }
        });
        assert_eq!(runs(&s.order_of("a-1")), *want);
    }
}

#[test]
fn nothing_else_of_a_line_starts_until_the_head_is_committed() {
    let mut s = Sim::new(limits(8, 8, 8), &["a-1"]);
    s.ingest("a-1", 3);
    let first = s.pump();
    assert_eq!(ids(&first), ["dlv_000001"]);
    // The exchange ended but its outcome is not committed: still nothing.
    s.t.d.finished("a-1");
    assert!(s.pump().is_empty());
    // Committed as a retry in 500 ms: the head waits, the line waits with it.
    s.t.d.done(
        "dlv_000001",
        "a-1",
        Settled::RetryAt(s.t.now + 500),
        s.t.now,
    );
    s.disk.insert(1, ("a-1".into(), (s.t.now + 500) as u64));
    assert!(s.pump().is_empty());
    assert_eq!(s.t.d.next_wake(s.t.now), s.t.now + 500);
    s.t.now += 499;
    assert!(s.pump().is_empty());
    s.t.now += 1;
    assert_eq!(ids(&s.pump()), ["dlv_000001"], "the head keeps its place");
}

#[test]
fn a_fifo_line_holds_one_slot_and_never_holds_up_other_webhooks() {
    // (FIFO a-1's first attempt outcome, plain webhooks' expected starts in the
    // first pump with 4 slots)
    let cases: &[(Out, usize)] = &[(Out::Ok, 3), (Out::Retry(60_000), 3)];
    for (head, want_first) in cases {
        let mut s = Sim::new(limits(4, 4, 4), &["a-1"]);
        s.ingest("a-1", 50);
        s.ingest("a-2", 10);
        s.ingest("b-1", 10);
        let first = s.pump();
        let fifo = first.iter().filter(|w| w.entry.webhook_id == "a-1").count();
        assert_eq!(fifo, 1, "one slot for the line");
        assert_eq!(first.len() - fifo, *want_first);
        for w in &first {
            let out = if w.entry.webhook_id == "a-1" {
                *head
            } else {
                Out::Ok
            };
            s.settle(w, out);
        }
        // With the head waiting on a retry, the others get every slot and finish
        // long before it is due.
        let mut others_done_at = None;
        s.run(
            1000,
            &|n, t| if n == 1 && t == 1 { *head } else { Out::Ok },
            &mut |s, _| {
                let left = s.disk.values().filter(|(w, _)| w != "a-1").count();
                if left == 0 && others_done_at.is_none() {
                    others_done_at = Some(s.t.now);
                }
            },
        );
        if let Out::Retry(ms) = head {
            assert!(
                others_done_at.is_some_and(|at| at < 1_000_000 + ms),
                "{others_done_at:?}"
            );
        }
        let want: Vec<u32> = (1..=50).collect();
        let got: Vec<u32> = runs(&s.order_of("a-1")).iter().map(|r| r.0).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn a_line_too_long_for_memory_is_refilled_from_disk_in_order() {
    // (queue per webhook, events, events arriving while it drains)
    let cases: &[(usize, usize, usize)] = &[(4, 30, 10), (2, 9, 5), (64, 40, 0)];
    for (per_hook, count, late) in cases {
        let mut l = limits(4, 4, 4);
        l.queue_per_webhook = *per_hook;
        let mut s = Sim::new(l, &["a-1"]);
        s.ingest("a-1", *count);
        let mut left = *late;
        let mut rounds = 0;
        while !s.disk.is_empty() && rounds < 1000 {
            rounds += 1;
            let started = s.pump();
            for w in &started {
                let n = num(&w.entry.delivery_id);
                let out = if n.is_multiple_of(3) && s.tries[&n] == 1 {
                    Out::Retry(0)
                } else {
                    Out::Ok
                };
                s.settle(w, out);
            }
            if left > 0 {
                s.ingest("a-1", 1);
                left -= 1;
            }
            if started.is_empty() {
                s.t.now += 1;
            }
        }
        let want: Vec<u32> = (1..=(*count + *late) as u32).collect();
        let got: Vec<u32> = runs(&s.order_of("a-1")).iter().map(|r| r.0).collect();
        assert_eq!(got, want, "queue {per_hook}");
    }
}

#[test]
fn after_a_restart_the_line_is_read_back_in_event_order() {
    // (each delivery's due offset from now on disk; the line's expected order)
    // The first one was retrying when the process died: it is still the head,
    // and nothing younger starts before it, though they are due sooner.
    let cases: &[(&[i64], &[u32])] = &[
        (&[300, 0, 0, 0], &[1, 2, 3, 4]),
        (&[0, 300, -50, 0], &[1, 2, 3, 4]),
        (&[900, 900, 900], &[1, 2, 3]),
    ];
    for (dues, want) in cases {
        let mut s = Sim::new(limits(8, 8, 8), &["a-1"]);
        s.t.d = Dispatcher::new(limits(8, 8, 8));
        let start = s.t.now;
        for (i, d) in dues.iter().enumerate() {
            s.disk
                .insert(i as u32 + 1, ("a-1".into(), (start + d) as u64));
        }
        s.t.n = dues.len() as u32;
        let mut first_at = None;
        s.run(100, &|_, _| Out::Ok, &mut |s, started| {
            if !started.is_empty() && first_at.is_none() {
                first_at = Some(s.t.now);
            }
        });
        assert_eq!(s.order_of("a-1"), *want);
        assert!(
            first_at.is_some_and(|at| at >= start + dues[0]),
            "the head's due time holds the line"
        );
    }
}

#[test]
fn changing_ordering_takes_effect_for_work_not_started() {
    let mut s = Sim::new(limits(8, 8, 3), &[]);
    s.ingest("a-1", 10);
    let first = s.pump();
    assert_eq!(first.len(), 3, "plain: three at once");
    // PATCH ordering=fifo: the three in flight finish as they started; nothing of
    // the line starts before all three are committed.
    s.t.fifo.insert("a-1".into());
    assert!(s.pump().is_empty());
    s.settle(&first[0], Out::Ok);
    s.settle(&first[1], Out::Retry(0));
    assert!(s.pump().is_empty(), "one still in flight");
    s.settle(&first[2], Out::Ok);
    // Then one at a time in event order, the retried one (2) first.
    s.run(100, &|_, _| Out::Ok, &mut |_, started| {
        assert!(started.len() <= 1)
    });
    assert_eq!(s.order_of("a-1")[3..], [2, 4, 5, 6, 7, 8, 9, 10]);
    // And back to plain: several at once again.
    s.t.fifo.clear();
    s.ingest("a-1", 6);
    assert_eq!(s.pump().len(), 3);
}

#[test]
fn recover_and_manual_delivery_keep_the_line_in_order() {
    let mut s = Sim::new(limits(8, 8, 8), &["a-1"]);
    s.ingest("a-1", 6);
    // 1 succeeds, 2 is exhausted, 3 starts.
    let w = s.pump();
    s.settle(&w[0], Out::Ok);
    let w = s.pump();
    s.settle(&w[0], Out::Final);
    let head = s.pump();
    assert_eq!(ids(&head), ["dlv_000003"]);
    // Recover puts 2 back while 3 is in flight: 3 stays the head; 2 comes next,
    // before 4 (event order), not at the end.
    s.disk.insert(2, ("a-1".into(), s.t.now as u64));
    s.t.d.resync("a-1");
    assert!(s.pump().is_empty());
    s.settle(&head[0], Out::Retry(10_000));
    // 3 waits for its retry; a manual retry delivers it: the line moves on now.
    assert!(s.pump().is_empty());
    s.disk.remove(&3);
    s.t.d.delivered("dlv_000003", "a-1");
    s.run(100, &|_, _| Out::Ok, &mut |_, _| {});
    assert_eq!(s.order_of("a-1"), [1, 2, 3, 2, 4, 5, 6]);
}
