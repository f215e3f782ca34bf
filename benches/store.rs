//! Store cost on a real redb file: the durable ingest commit (one event, 64 concurrent
//! single events sharing group commits, a batch of 1,000) and popping the due index
//! (`due_entries` + `record_attempts`, 100 per transaction, as the scheduler and
//! recorder do).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookbox::model::{Attempt, Delivery, DeliveryState, Event, Trigger, new_id, now_ms};
use hookbox::secrets::Cipher;
use hookbox::store::{AttemptWrite, IngestItem, Next, Store};

/// One event with a ~200 B payload fanned out to `fanout` webhooks, due now.
fn item(fanout: usize) -> IngestItem {
    let now = now_ms();
    let event = Event {
        id: new_id("evt"),
        tenant: "acme".into(),
        event_type: "shift.created".into(),
        payload: format!(r#"{{"shift":"{}","n":1}}"#, "s".repeat(180)),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: now,
    };
    let deliveries = (0..fanout)
        .map(|i| Delivery {
            id: new_id("dlv"),
            tenant: "acme".into(),
            event_id: event.id.clone(),
            webhook_id: format!("wh_{i:026}"),
            event_type: event.event_type.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_step: 0,
            next_attempt_at: Some(now),
            last_status: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    IngestItem {
        event,
        deliveries,
        body_hash: [0; 32],
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(
        &dir.path().join("bench.redb"),
        Cipher::new(&[7; 32]),
        // The page cache the server uses by default (`cache_mib`).
        hookbox::config::Config::default().cache_mib << 20,
    )
    .expect("store opens");
    (dir, store)
}

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, store) = open();
    let mut g = c.benchmark_group("ingest");
    g.sample_size(20);

    g.throughput(Throughput::Elements(1));
    g.bench_function("1_event_1_delivery", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(store.ingest(vec![item(1)]).await.expect("ingest"));
        })
    });

    // 64 callers at once: what the API sees under concurrent load (group commit).
    g.throughput(Throughput::Elements(64));
    g.bench_function("64_concurrent_single_events", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let s = store.clone();
                            tokio::spawn(async move { s.ingest(vec![item(1)]).await })
                        })
                        .collect();
                    for t in tasks {
                        black_box(t.await.expect("join").expect("ingest"));
                    }
                }
                start.elapsed()
            }
        })
    });

    for fanout in [1usize, 10] {
        g.throughput(Throughput::Elements(1000));
        g.bench_with_input(
            BenchmarkId::new("batch_1000_events", format!("{fanout}_deliveries_each")),
            &fanout,
            |b, &fanout| {
                b.to_async(&rt).iter_custom(|iters| {
                    let store = store.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let items: Vec<_> = (0..1000).map(|_| item(fanout)).collect();
                            let start = Instant::now();
                            black_box(store.ingest(items).await.expect("ingest"));
                            total += start.elapsed();
                        }
                        total
                    }
                })
            },
        );
    }
    g.finish();
    store.close();
}

fn due_pop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, store) = open();
    let refill = |store: &Store| {
        rt.block_on(async {
            for _ in 0..20 {
                let items: Vec<_> = (0..1000).map(|_| item(1)).collect();
                store.ingest(items).await.expect("ingest");
            }
        })
    };
    refill(&store);
    let mut g = c.benchmark_group("due");
    g.sample_size(20);
    g.throughput(Throughput::Elements(100));
    g.bench_function("pop_100_and_record", |b| {
        // Due entries left in the index; refilled (untimed) before it runs dry.
        let mut left = 20_000usize;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if left < 100 {
                    refill(&store);
                    left += 20_000;
                }
                left -= 100;
                let start = Instant::now();
                let now = now_ms();
                let entries = store.due_entries(now, None, 100).expect("scan");
                let writes: Vec<_> = entries
                    .into_iter()
                    .map(|entry| AttemptWrite {
                        attempt: Attempt {
                            delivery_id: entry.delivery_id.clone(),
                            number: 0,
                            at: now,
                            trigger: Trigger::Scheduled,
                            status: Some(200),
                            error: None,
                            latency_ms: 1,
                            response_body: String::new(),
                        },
                        entry,
                        next: Next::Succeeded,
                    })
                    .collect();
                black_box(rt.block_on(store.record_attempts(writes)).expect("record"));
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    store.close();
}

criterion_group!(benches, ingest, due_pop);
criterion_main!(benches);
