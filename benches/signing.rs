//! Signing cost: one Standard Webhooks `webhook-signature` header with one and with
//! two active secrets (rotation), for 1 KiB and 64 KiB bodies.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookbox::delivery::signer::sign;

fn signing(c: &mut Criterion) {
    let k1 = [1u8; 32];
    let k2 = [2u8; 32];
    let mut g = c.benchmark_group("sign");
    for size in [1024usize, 64 * 1024] {
        let body = vec![b'x'; size];
        g.throughput(Throughput::Bytes(size as u64));
        for (n, keys) in [(1, vec![&k1[..]]), (2, vec![&k1[..], &k2[..]])] {
            g.bench_with_input(
                BenchmarkId::new(format!("{n}_secret"), format!("{}KiB", size / 1024)),
                &body,
                |b, body| {
                    b.iter(|| {
                        sign(
                            black_box(&keys),
                            black_box("evt_01JABCDEFGHJKMNPQRSTVWXYZ0"),
                            black_box(1_763_790_000),
                            black_box(body),
                        )
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
