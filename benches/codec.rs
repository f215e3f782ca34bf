//! Record codec cost: encoding and decoding the two records written on every ingest
//! (an event with a 1 KiB payload that lists its one delivery, and the delivery).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbox::model::{Delivery, DeliveryState, Event};
use hookbox::store::records::{Keyed, decode_event, encode_event};

fn event() -> Event {
    Event {
        id: "evt_01JABCDEFGHJKMNPQRSTVWXYZ0".into(),
        tenant: "acme".into(),
        event_type: "shift.created".into(),
        payload: format!(r#"{{"blob":"{}"}}"#, "x".repeat(1000)),
        channels: vec!["P-1".into()],
        idempotency_key: Some("order-1234".into()),
        created_at: 1_763_790_000_000,
    }
}

fn delivery() -> Delivery {
    Delivery {
        id: "dlv_01JABCDEFGHJKMNPQRSTVWXYZ0".into(),
        tenant: "acme".into(),
        event_id: "evt_01JABCDEFGHJKMNPQRSTVWXYZ0".into(),
        webhook_id: "wh_01JABCDEFGHJKMNPQRSTVWXYZ0".into(),
        event_type: "shift.created".into(),
        state: DeliveryState::Failed,
        attempts: 3,
        schedule_step: 3,
        next_attempt_at: Some(1_763_790_005_000),
        last_status: Some(503),
        last_error: None,
        created_at: 1_763_790_000_000,
        updated_at: 1_763_790_001_000,
    }
}

fn codec(c: &mut Criterion) {
    let e = event();
    let d = delivery();
    let eb = encode_event(&e, [d.id.as_str()]).expect("encodes");
    let db = d.to_bytes().expect("encodes");
    let mut g = c.benchmark_group("codec");
    g.bench_function("encode_event_1KiB", |b| {
        b.iter(|| encode_event(black_box(&e), [d.id.as_str()]))
    });
    g.bench_function("decode_event_1KiB", |b| {
        b.iter(|| decode_event(&e.id, black_box(&eb)))
    });
    g.bench_function("encode_delivery", |b| b.iter(|| black_box(&d).to_bytes()));
    g.bench_function("decode_delivery", |b| {
        b.iter(|| Delivery::from_bytes(&d.id, black_box(&db)))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
