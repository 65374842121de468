//! Measures the route table's memory per route: inserts 1,000,000 routes from one session in
//! 1,000 VNIs and reports the growth of the process RSS. Run in release:
//! `cargo run --release -p ferrinet-region --example table_memory`.

#[path = "../benches/common/mod.rs"]
mod common;
use std::time::Instant;

use common::route;
use ferrinet_region::loadgen::rss_bytes;
use ferrinet_region::route::Route;
use ferrinet_region::table::RouteTable;

const ROUTES: u32 = 1_000_000;

fn main() -> anyhow::Result<()> {
    // Build the routes first so that only the table's memory is measured.
    let routes: Vec<Route> = (0..ROUTES).map(route).collect();
    let before = rss_bytes(std::process::id())?;
    let start = Instant::now();
    let mut table = RouteTable::new();
    let mut adds = 0usize;
    for r in &routes {
        adds += usize::from(table.announce(1, *r).is_some());
    }
    let elapsed = start.elapsed();
    let after = rss_bytes(std::process::id())?;
    assert_eq!(adds, ROUTES as usize);
    let grown = after.saturating_sub(before);
    println!(
        "size_of::<Route>() = {} bytes",
        std::mem::size_of::<Route>()
    );
    println!(
        "{} routes in {} VNIs: RSS grew {:.1} MiB = {:.1} bytes/route",
        table.route_count(),
        table.vnis().len(),
        grown as f64 / (1 << 20) as f64,
        grown as f64 / f64::from(ROUTES)
    );
    println!(
        "estimate from capacities (RouteTable::heap_bytes): {:.1} bytes/route",
        table.heap_bytes() as f64 / f64::from(ROUTES)
    );
    println!(
        "announce: {:.2} M/s",
        f64::from(ROUTES) / elapsed.as_secs_f64() / 1e6
    );
    let start = Instant::now();
    let changes = table.remove_session(1);
    println!(
        "remove_session of {} routes: {:.1} ms",
        changes.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    drop(changes);
    println!(
        "after remove_session: table heap {} bytes, RSS {:.1} MiB above the start",
        table.heap_bytes(),
        rss_bytes(std::process::id())?.saturating_sub(before) as f64 / (1 << 20) as f64
    );
    Ok(())
}
