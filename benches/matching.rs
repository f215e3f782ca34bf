//! Subscription matching with 10,000 webhooks in one tenant: the lookup done on every
//! ingest (`Registry::matching`), and the cost of adding a webhook to such a tenant
//! (`Registry::put_webhook`, which rebuilds the tenant's index).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbox::model::Webhook;
use hookbox::registry::Registry;

mod common;

const WEBHOOKS: usize = 10_000;
const TYPES: usize = 100;

/// Webhook `i` subscribed to `filter`; every tenth has a channel filter.
fn webhook(i: usize, filter: String) -> Webhook {
    let channels = if i.is_multiple_of(10) {
        vec![format!("P-{}", i % 7)]
    } else {
        Vec::new()
    };
    Webhook {
        channels,
        ..common::webhook(i, &filter)
    }
}

/// 9,900 webhooks on one of 100 exact types (10 % with a channel filter) and 100
/// wildcards (`*` and `type.*`).
fn mixed() -> Vec<Webhook> {
    (0..WEBHOOKS)
        .map(|i| {
            let filter = match i % 100 {
                0 => "*".to_owned(),
                _ => format!("type{}.created", i % TYPES),
            };
            webhook(i, filter)
        })
        .collect()
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("matching");
    let reg = Registry::load(Vec::new(), Vec::new(), Vec::new(), mixed());
    let channels = vec!["P-3".to_owned()];
    g.bench_function("10k_webhooks_100_types", |b| {
        b.iter(|| {
            reg.matching(
                black_box("acme"),
                black_box("type42.created"),
                black_box(&channels),
            )
        })
    });
    let all = (0..WEBHOOKS)
        .map(|i| webhook(i, "*".to_owned()))
        .collect::<Vec<_>>();
    let reg_all = Registry::load(Vec::new(), Vec::new(), Vec::new(), all);
    g.bench_function("10k_webhooks_all_wildcard", |b| {
        b.iter(|| reg_all.matching(black_box("acme"), black_box("x.y"), black_box(&[])))
    });
    g.bench_function("put_webhook_into_10k", |b| {
        b.iter(|| {
            // Replaces one webhook, so the tenant stays at 10,000.
            reg.put_webhook(black_box(webhook(7, "type7.created".to_owned())));
        })
    });
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
