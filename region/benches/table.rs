//! Route table throughput: announces into a growing table, announce/withdraw churn on a full
//! table, subscribe snapshots and session removal. Run with
//! `cargo bench -p ferrinet-region --bench table`.

mod common;
use std::hint::black_box;

use common::route;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferrinet_region::route::Route;
use ferrinet_region::table::RouteTable;

fn table_with(n: u32) -> RouteTable {
    let mut t = RouteTable::new();
    for i in 0..n {
        t.announce(1, route(i));
    }
    t
}

fn bench(c: &mut Criterion) {
    const N: u32 = 100_000;
    let routes: Vec<Route> = (0..N).map(route).collect();
    let mut g = c.benchmark_group("table");
    g.sample_size(20);

    g.throughput(Throughput::Elements(u64::from(N)));
    g.bench_function("announce 100k into empty table", |b| {
        b.iter_batched(
            RouteTable::new,
            |mut t| {
                for r in &routes {
                    black_box(t.announce(1, *r));
                }
                t
            },
            BatchSize::LargeInput,
        );
    });

    // Steady state: a table of 1M routes where one session withdraws and re-announces.
    let mut full = table_with(1_000_000);
    g.bench_function("withdraw + announce 100k pairs on 1M table", |b| {
        b.iter(|| {
            for r in &routes {
                black_box(full.withdraw(1, r));
                black_box(full.announce(1, *r));
            }
        });
    });

    // A second owner of existing routes (a reconnecting client) makes no broadcast.
    g.bench_function("second owner announces 100k", |b| {
        b.iter_batched(
            || table_with(N),
            |mut t| {
                for r in &routes {
                    black_box(t.announce(2, *r));
                }
                t
            },
            BatchSize::LargeInput,
        );
    });

    g.bench_function("remove_session of 100k routes", |b| {
        b.iter_batched(
            || table_with(N),
            |mut t| black_box(t.remove_session(1)),
            BatchSize::LargeInput,
        );
    });

    // 1M routes in 1,000 VNIs: a subscribe snapshot is 1,000 routes.
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("subscribe snapshot of 1k routes", |b| {
        b.iter(|| {
            let snap = full.subscribe(2, 7);
            full.unsubscribe(2, 7);
            black_box(snap)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
