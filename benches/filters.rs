//! Payload-filter matching on ingest: one event against 10,000 webhooks of one
//! tenant that all want its type and each have a filter (`Registry::matching` then
//! `plan::wanted`, the ingest path), against the same without filters, and the
//! filters alone on an already parsed event. Also the cost of compiling a filter.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbox::delivery::wanted;
use hookbox::filter::{Filter, Subject};
use hookbox::model::{Event, Webhook};
use hookbox::registry::Registry;
use serde_json::json;

mod common;

const WEBHOOKS: usize = 10_000;

fn webhook(i: usize, filter: Option<Filter>) -> Webhook {
    Webhook {
        filter,
        ..common::webhook(i, "order.paid")
    }
}

/// Four shapes of filter with varying thresholds (9,050 of the 10,000 pass the event).
fn filter(i: usize) -> Filter {
    let v = match i % 4 {
        0 => json!({"data.amount": {"$gte": i % 200}, "data.currency": {"$in": ["EUR", "USD"]}}),
        1 => json!({"data.customer.country": {"$in": ["FR", "DE", "NL"]},
                    "data.customer.tier": {"$ne": "free"}}),
        2 => json!({"$or": [{"data.amount": {"$lt": i % 200}},
                            {"data.tags.0": {"$prefix": "vip"}}]}),
        _ => json!({"type": {"$prefix": "order."}, "$not": {"data.test": true},
                    "data.items.1.sku": {"$exists": true}}),
    };
    Filter::parse(&v).expect("bench filters are valid")
}

fn event() -> Event {
    let payload = json!({
        "amount": 120, "currency": "EUR", "test": false,
        "customer": {"id": "cus_123", "country": "FR", "tier": "pro", "email": "a@example.com"},
        "tags": ["vip-gold", "returning"],
        "items": [{"sku": "A-1", "qty": 2, "price": 10.5}, {"sku": "B-2", "qty": 1, "price": 99}],
        "note": "x".repeat(400),
    });
    Event {
        id: "evt_1".into(),
        tenant: "acme".into(),
        event_type: "order.paid".into(),
        payload: payload.to_string(),
        channels: Vec::new(),
        idempotency_key: None,
        created_at: 1_796_046_872_123,
    }
}

fn filters(c: &mut Criterion) {
    let mut g = c.benchmark_group("filters");
    let event = event();
    let with: Vec<Webhook> = (0..WEBHOOKS).map(|i| webhook(i, Some(filter(i)))).collect();
    let without: Vec<Webhook> = (0..WEBHOOKS).map(|i| webhook(i, None)).collect();
    let reg = Registry::load(Vec::new(), Vec::new(), Vec::new(), with);
    let reg_plain = Registry::load(Vec::new(), Vec::new(), Vec::new(), without);
    let matched = wanted(&event, reg.matching("acme", "order.paid", &[])).len();
    eprintln!("filters: {matched} of {WEBHOOKS} webhooks pass their filter");

    g.bench_function("ingest_match_10k_webhooks_with_filters", |b| {
        b.iter(|| {
            let candidates = reg.matching(black_box("acme"), black_box("order.paid"), &[]);
            wanted(black_box(&event), candidates).len()
        })
    });
    g.bench_function("ingest_match_10k_webhooks_without_filters", |b| {
        b.iter(|| {
            let candidates = reg_plain.matching(black_box("acme"), black_box("order.paid"), &[]);
            wanted(black_box(&event), candidates).len()
        })
    });
    let compiled: Vec<Filter> = (0..WEBHOOKS).map(filter).collect();
    g.bench_function("evaluate_10k_filters_one_parse", |b| {
        b.iter(|| {
            let s = Subject::of(black_box(&event));
            compiled.iter().filter(|f| f.matches(&s)).count()
        })
    });
    g.bench_function("parse_event_data_once", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&event.payload)))
    });
    let source = json!({"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]},
                        "$or": [{"data.customer.tier": "pro"}, {"type": {"$prefix": "order."}}]});
    g.bench_function("compile_one_filter", |b| {
        b.iter(|| Filter::parse(black_box(&source)))
    });
    g.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
