//! `ferrinet-dataplane-bench`: load figures for the software dataplane over loopback gRPC from
//! one client (one HTTP/2 connection, many calls in flight), plus memory per stored route.
//!
//! Run in release: `cargo run --release -p ferrinet-dataplane --bin ferrinet-dataplane-bench`.

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Parser;
use ferrinet_dataplane::{DataplaneConfig, DataplaneService, State, config};
use ferrinet_proto::dpservice::v1 as pb;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;
use futures::StreamExt as _;
use tokio::net::TcpListener;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(name = "ferrinet-dataplane-bench")]
struct Args {
    /// CreateRoute calls to time.
    #[arg(long, default_value_t = 200_000)]
    routes: u32,
    /// CreateInterface calls to time (the dataplane gets this many VF ports).
    #[arg(long, default_value_t = 20_000)]
    interfaces: u32,
    /// Calls in flight on the one client connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Routes stored in-process for the memory figure.
    #[arg(long, default_value_t = 1_000_000)]
    memory_routes: u32,
}

fn ip4(a: Ipv4Addr) -> pb::IpAddress {
    pb::IpAddress {
        ipver: pb::IpVersion::Ipv4 as i32,
        address: a.to_string().into_bytes(),
    }
}

fn route_req(vni: u32, i: u32) -> pb::CreateRouteRequest {
    // Distinct /32s in 11.0.0.0/8 and up, clear of the interface addresses in 10.0.0.0/8.
    let addr = Ipv4Addr::from(0x0b00_0000u32.wrapping_add(i));
    pb::CreateRouteRequest {
        vni,
        route: Some(pb::Route {
            prefix: Some(pb::Prefix {
                ip: Some(ip4(addr)),
                length: 32,
                underlay_route: vec![],
            }),
            nexthop_vni: vni,
            nexthop_address: Some(pb::IpAddress {
                ipver: pb::IpVersion::Ipv6 as i32,
                address: b"fc00:2::1".to_vec(),
            }),
            weight: 100,
        }),
    }
}

fn iface_req(i: u32, vni: u32) -> pb::CreateInterfaceRequest {
    pb::CreateInterfaceRequest {
        interface_type: pb::InterfaceType::Virtual as i32,
        interface_id: format!("bench-{i}").into_bytes(),
        vni,
        ipv4_config: Some(pb::IpConfig {
            primary_address: Ipv4Addr::from(0x0a00_0000u32 + i + 1)
                .to_string()
                .into_bytes(),
        }),
        ipv6_config: Some(pb::IpConfig {
            primary_address: b"::".to_vec(),
        }),
        device_name: format!("net_tap{}", i + 2),
        ..Default::default()
    }
}

fn rss_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("read /proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("statm has no rss field")?
        .parse()
        .context("statm rss")?;
    // Linux on x86_64 and aarch64 as deployed uses 4 KiB pages.
    Ok(pages * 4096)
}

/// Runs `n` calls with `concurrency` in flight; returns calls per second.
async fn pipelined<F, Fut>(n: u32, concurrency: usize, call: F) -> anyhow::Result<f64>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u32>>,
{
    let start = Instant::now();
    let mut results = futures::stream::iter(0..n)
        .map(call)
        .buffer_unordered(concurrency);
    let mut failures = 0u32;
    while let Some(code) = results.next().await {
        if code? != 0 {
            failures += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if failures > 0 {
        bail!("{failures} of {n} calls answered a service error");
    }
    Ok(f64::from(n) / secs)
}

fn memory_per_route(n: u32) -> anyhow::Result<(f64, u64)> {
    let mut state = State::new(&DataplaneConfig::tap(config::DEFAULT_UNDERLAY, 1));
    state.initialize(pb::InitializeRequest {})?;
    state.create_interface(iface_req(0, 1))?;
    let before = rss_bytes()?;
    for i in 0..n {
        state.create_route(route_req(1, i))?;
    }
    let after = rss_bytes()?;
    let stored = state.counts().routes;
    let per = after.saturating_sub(before) as f64 / stored as f64;
    drop(state);
    Ok((per, stored))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();

    let (per_route, stored) = memory_per_route(args.memory_routes)?;
    println!(
        "memory: {per_route:.1} bytes per stored route (RSS delta over {stored} routes, in-process state)"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = DataplaneConfig::tap(config::DEFAULT_UNDERLAY, args.interfaces as usize + 1);
    let dp = DataplaneService::new(&cfg)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ferrinet_dataplane::serve_service(
        listener,
        dp.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let client = DpdKironcoreClient::new(channel);
    client.clone().initialize(pb::InitializeRequest {}).await?;
    // The route VNI needs a table: one interface holds it.
    let base = client
        .clone()
        .create_interface(iface_req(args.interfaces, 1))
        .await?
        .into_inner();
    if base.status.map(|s| s.code) != Some(0) {
        bail!("cannot create the interface holding the route VNI");
    }

    // Warm-up: connection, allocator, page faults.
    let warm = args.routes / 20;
    pipelined(warm, args.concurrency, |i| {
        let mut c = client.clone();
        async move {
            let r = c.create_route(route_req(1, i)).await?.into_inner();
            Ok(r.status.map_or(u32::MAX, |s| s.code))
        }
    })
    .await?;

    let rate = pipelined(args.routes - warm, args.concurrency, |i| {
        let mut c = client.clone();
        async move {
            let r = c.create_route(route_req(1, warm + i)).await?.into_inner();
            Ok(r.status.map_or(u32::MAX, |s| s.code))
        }
    })
    .await?;
    println!(
        "CreateRoute: {rate:.0} calls/s ({} calls, {} in flight, one connection)",
        args.routes - warm,
        args.concurrency
    );

    // One call at a time: the latency-bound rate a naive client sees. Fresh prefixes after the
    // pipelined ones, so every call really stores a route.
    let n_seq = (args.routes / 20).max(1);
    let seq = pipelined(n_seq, 1, |i| {
        let mut c = client.clone();
        async move {
            let r = c
                .create_route(route_req(1, args.routes + i))
                .await?
                .into_inner();
            Ok(r.status.map_or(u32::MAX, |s| s.code))
        }
    })
    .await?;
    println!("CreateRoute, one call at a time: {seq:.0} calls/s ({n_seq} calls)");

    let rate = pipelined(args.interfaces, args.concurrency, |i| {
        let mut c = client.clone();
        async move {
            let r = c
                .create_interface(iface_req(i, 1000 + i % 100))
                .await?
                .into_inner();
            Ok(r.status.map_or(u32::MAX, |s| s.code))
        }
    })
    .await?;
    println!(
        "CreateInterface: {rate:.0} calls/s ({} calls, {} in flight, one connection)",
        args.interfaces, args.concurrency
    );
    println!("state: {}", dp.counts());

    let _ = stop.send(());
    server.await??;
    Ok(())
}
