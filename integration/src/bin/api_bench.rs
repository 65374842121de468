//! `ferrinet-api-bench`: load tool of the region API, measured end to end on loopback with the
//! real binaries of this build's profile (built first when missing or stale). Prints:
//!
//! - (a) interface creates per second, each with an IPv4 address allocated, `--in-flight` at a
//!   time, against one replica on the embedded store;
//! - (b) the same against the leader of two replicas on a 3-member etcd cluster;
//! - (d) leader failover on etcd, on the region of (b) and on a fresh one with few objects:
//!   the leader is killed (`kill -9`), then writes are sent through the other replica until
//!   one succeeds; `--failovers` times, each and the max;
//! - (c) user call -> interface Ready on its node: the Create sent to the API until a Watch of
//!   the API's network interfaces shows the object's `status.state` "Available", with two real
//!   `ferrinet-node` processes registered at an embedded-store API (and one route server),
//!   p50/p99.
//!
//! The figures are printed next to the project's targets and never fail the run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use ferrinet_integration::api::{ApiOpts, ApiProc};
use ferrinet_integration::cluster::{Check, Cluster, ClusterOpts};
use ferrinet_integration::etcd::region::{Created, EtcdRegion, RegionOpts, Retry, Writer};
use ferrinet_integration::etcd::{EtcdCluster, EtcdOpts};
use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use pb::object::Object as O;
use tonic::transport::Channel;

/// Namespace of every object the tool creates.
const NS: &str = "bench";
/// Room for every interface of a run.
const SUBNET: &str = "10.128.0.0/16";
/// How long one phase may take before the run gives up: far beyond any target, only a bound
/// against hanging on a broken build.
const PHASE_LIMIT: Duration = Duration::from_secs(300);
/// Interfaces of the region (d) runs on a second time: below the 128 objects at which a
/// takeover's first write no longer fits one etcd transaction.
const SMALL_REGION: usize = 50;

#[derive(Parser, Debug)]
#[command(name = "ferrinet-api-bench")]
struct Args {
    /// Interfaces created for (a) and (b).
    #[arg(long, default_value_t = 2000)]
    interfaces: usize,
    /// Creates in flight at once for (a) and (b).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Interfaces created for (c), alternately on the two nodes.
    #[arg(long, default_value_t = 500)]
    ready_interfaces: usize,
    /// Creates in flight at once for (c): each latency includes the queueing of the others.
    #[arg(long, default_value_t = 8)]
    ready_in_flight: usize,
    /// `region_api.status_interval_ms` of the nodes: how long a node batches status reports,
    /// part of every (c) latency (the node's default is 200).
    #[arg(long, default_value_t = 20)]
    status_interval_ms: u64,
    /// Leader kills for (d).
    #[arg(long, default_value_t = 3)]
    failovers: usize,
    /// `store.lease_s` of the etcd replicas: a dead leader blocks writes this long.
    #[arg(long, default_value_t = 2)]
    lease_s: u64,
}

fn meta(name: &str) -> Option<pb::ObjectMeta> {
    Some(pb::ObjectMeta {
        namespace: NS.into(),
        name: name.into(),
        ..Default::default()
    })
}

fn network() -> pb::Object {
    pb::Object {
        object: Some(O::Network(pb::Network {
            metadata: meta("net"),
            spec: Some(pb::NetworkSpec {
                subnets: vec![pb::Subnet {
                    cidr: SUBNET.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        })),
    }
}

/// An interface with one IPv4 address allocated, on `node` ("" for none).
fn interface(name: &str, node: &str) -> pb::Object {
    pb::Object {
        object: Some(O::NetworkInterface(pb::NetworkInterface {
            metadata: meta(name),
            spec: Some(pb::NetworkInterfaceSpec {
                network_ref: Some(pb::ObjectRef {
                    name: "net".into(),
                    namespace: String::new(),
                }),
                node_name: node.into(),
                ip_families: vec!["IPv4".into()],
                ..Default::default()
            }),
            status: None,
        })),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// `n` creates named `PREFIX-i`, `in_flight` at a time, through `writer` starting at replica
/// `first`. Returns the wall time and the creates that failed (with the first error).
async fn burst(
    writer: &Writer,
    prefix: &str,
    n: usize,
    in_flight: usize,
    first: usize,
) -> anyhow::Result<(Duration, usize, Option<String>)> {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut calls = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..n {
        let slot = slots.clone().acquire_owned().await?;
        let (writer, name) = (writer.clone(), format!("{prefix}-{i}"));
        calls.spawn(async move {
            let r = writer.create(interface(&name, ""), first).await;
            drop(slot);
            r
        });
    }
    let (mut failed, mut first_error) = (0, None);
    while let Some(r) = calls.join_next().await {
        if let Err(e) = r? {
            failed += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    }
    Ok((start.elapsed(), failed, first_error))
}

fn print_rate(
    label: &str,
    n: usize,
    took: Duration,
    failed: usize,
    err: Option<String>,
    target: f64,
) {
    let rate = (n - failed) as f64 / took.as_secs_f64();
    println!(
        "    {label:<32} {rate:>8.0} creates/s  ({n} in {}, {failed} failed)   target >= {target:.0}/s: {}",
        secs(took),
        verdict(rate >= target)
    );
    if let Some(e) = err {
        println!("      first error: {e}");
    }
}

async fn phase_a(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api =
        tokio::task::block_in_place(|| ApiProc::start_plain(dir.path(), &ApiOpts::default()))?;
    let writer = Writer::new(std::slice::from_ref(&api.addr), Retry::default())?;
    writer.create(network(), 0).await?;
    let (took, failed, err) = burst(&writer, "if", args.interfaces, args.in_flight, 0).await?;
    println!(
        "(a)/(b) interface creates with an address allocated, {} in flight",
        args.in_flight
    );
    print_rate(
        "embedded store, one replica",
        args.interfaces,
        took,
        failed,
        err,
        5000.0,
    );
    Ok(())
}

/// (b) on a fresh etcd region, which (d) then uses.
async fn phase_b(args: &Args) -> anyhow::Result<EtcdRegion> {
    let opts = RegionOpts {
        lease_s: args.lease_s,
        ..RegionOpts::default()
    };
    let mut region = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let etcd = EtcdCluster::start(EtcdOpts::default())?;
        EtcdRegion::start(etcd, &opts)
    })?;
    let leader = region.wait_leader().await?;
    let writer = Writer::new(&region.addrs(), Retry::default())?;
    writer.create(network(), leader).await?;
    let (took, failed, err) = burst(&writer, "if", args.interfaces, args.in_flight, leader).await?;
    print_rate(
        "etcd (3 members), to the leader",
        args.interfaces,
        took,
        failed,
        err,
        1000.0,
    );
    Ok(region)
}

/// The first moment each interface of the namespace was seen Available, from a Watch.
fn watch_available(mut client: RegionApiClient<Channel>) -> Arc<Mutex<HashMap<String, Instant>>> {
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        let stream = client
            .watch(pb::WatchRequest {
                kind: pb::Kind::NetworkInterface.into(),
                namespace: NS.into(),
                from_revision: 0,
            })
            .await;
        let Ok(stream) = stream else { return };
        let mut stream = stream.into_inner();
        while let Ok(Some(ev)) = stream.message().await {
            let at = Instant::now();
            if let Some(O::NetworkInterface(ni)) = ev.object.and_then(|o| o.object)
                && ni.status.as_ref().is_some_and(|s| s.state == "Available")
                && let Some(m) = ni.metadata
            {
                lock(&s).entry(m.name).or_insert(at);
            }
        }
    });
    seen
}

async fn phase_c(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api =
        tokio::task::block_in_place(|| ApiProc::start_plain(dir.path(), &ApiOpts::default()))?;
    let extra = format!(
        "region_api.address = {:?}\nregion_api.underlay_prefix = \"{{underlay}}\"\n\
         region_api.heartbeat_ms = 1000\nregion_api.status_interval_ms = {}",
        api.addr, args.status_interval_ms
    );
    let cluster = Cluster::start(ClusterOpts {
        servers: 1,
        nodes: 2,
        vf_count: args.ready_interfaces + 8,
        extra_toml: extra,
        ..ClusterOpts::default()
    })
    .await?;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let writer = Writer::new(std::slice::from_ref(&api.addr), Retry::default())?;
    let mut reader = writer.client(0);
    cluster
        .until("both nodes registered and Ready", async || {
            let list = reader
                .list(pb::ListRequest {
                    kind: pb::Kind::Node.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let ready = list
                .objects
                .iter()
                .filter(|o| matches!(&o.object, Some(O::Node(n)) if n.status.as_ref().is_some_and(|s| s.state == "Ready")))
                .count();
            Ok(Check::when(ready == names.len(), (), ready))
        })
        .await?;
    writer.create(network(), 0).await?;
    let available = watch_available(writer.client(0));

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(args.ready_in_flight.max(1)));
    let mut calls = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..args.ready_interfaces {
        let slot = slots.clone().acquire_owned().await?;
        let name = format!("ready-{i}");
        let node = names[i % names.len()].clone();
        let (writer, sent) = (writer.clone(), sent.clone());
        calls.spawn(async move {
            lock(&sent).insert(name.clone(), Instant::now());
            let r = writer.create(interface(&name, &node), 0).await;
            drop(slot);
            r.map(|_| ())
        });
    }
    let mut failed = 0;
    while let Some(r) = calls.join_next().await {
        failed += usize::from(r?.is_err());
    }
    let n = args.ready_interfaces - failed;
    let deadline = Instant::now() + PHASE_LIMIT;
    while lock(&available).len() < n {
        if Instant::now() > deadline {
            bail!(
                "(c) {} of {n} interfaces Available within {PHASE_LIMIT:?}\n{}--- api log (tail):\n{}",
                lock(&available).len(),
                cluster.logs(),
                api.log()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = start.elapsed();
    let sent = lock(&sent).clone();
    let mut lat: Vec<Duration> = lock(&available)
        .iter()
        .filter_map(|(name, t)| sent.get(name).map(|s| t.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let p99 = percentile(&lat, 0.99);
    println!(
        "(c) create at the API -> Available (Ready on its node, seen by a Watch): {} nodes, {} in flight, node status_interval_ms {}",
        names.len(),
        args.ready_in_flight,
        args.status_interval_ms
    );
    println!(
        "    p50 {}  p99 {}  max {}  (n={}, {failed} creates failed, all Available after {})",
        ms(percentile(&lat, 0.5)),
        ms(p99),
        ms(lat.last().copied().unwrap_or_default()),
        lat.len(),
        secs(all)
    );
    println!(
        "    target p99 <= 100 ms: {}",
        verdict(p99 <= Duration::from_millis(100))
    );
    Ok(())
}

/// How long (d) waits for a write after a kill before it reports the failover as failed.
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);

/// (d) on `region`, which holds `objects` objects; a round that sees no write within
/// [`FAILOVER_LIMIT`] is reported and ends the phase (the region has no working leader).
async fn phase_d(args: &Args, region: &mut EtcdRegion, objects: usize) -> anyhow::Result<()> {
    let addrs = region.addrs();
    // Tight retries: the figure is how soon a write succeeds, not how politely it asks.
    let retry = Retry {
        attempts: u32::try_from(FAILOVER_LIMIT.as_millis() / 10).unwrap_or(u32::MAX),
        pause: Duration::from_millis(10),
        call_timeout: Duration::from_secs(5),
    };
    println!(
        "(d) leader failover on etcd (lease {} s, {objects} objects): kill -9 the leader -> a write through the other replica succeeds",
        args.lease_s
    );
    let mut times = Vec::new();
    for round in 0..args.failovers {
        let leader = region.wait_leader().await?;
        let other = (leader + 1) % addrs.len();
        let survivor = Writer::new(std::slice::from_ref(&addrs[other]), retry)?;
        let t0 = Instant::now();
        region.replicas[leader].kill();
        let done = match survivor
            .create(interface(&format!("failover-{round}"), ""), 0)
            .await
        {
            Ok(d) => d,
            Err(s) => {
                let log = region.replicas[other].log_since_start();
                let last_error = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("ERROR"))
                    .unwrap_or("");
                println!(
                    "    round {round}: FAILED: no write within {} ({}); the survivor's last error:\n      {last_error}",
                    secs(t0.elapsed()),
                    s.message()
                );
                return Ok(());
            }
        };
        let took = t0.elapsed();
        if matches!(done.value, Created::Existed) {
            println!("    (round {round}: the write was found done by its retry)");
        }
        println!(
            "    round {round}: {}  ({} attempts)",
            secs(took),
            done.attempts
        );
        times.push(took);
        tokio::task::block_in_place(|| region.replicas[leader].restart())?;
        // The restarted replica's candidacy must be in the election before the next kill, or
        // that round would time its campaign too: give it a lease's time.
        tokio::time::sleep(Duration::from_secs(args.lease_s)).await;
    }
    let max = times.iter().max().copied().unwrap_or_default();
    println!(
        "    max {}   target <= 5 s: {}",
        secs(max),
        verdict(max <= Duration::from_secs(5))
    );
    Ok(())
}

/// A fresh etcd region with `n` interfaces (and their network), for (d) with few objects.
async fn small_region(args: &Args, n: usize) -> anyhow::Result<EtcdRegion> {
    let opts = RegionOpts {
        lease_s: args.lease_s,
        ..RegionOpts::default()
    };
    let mut region = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let etcd = EtcdCluster::start(EtcdOpts::default())?;
        EtcdRegion::start(etcd, &opts)
    })?;
    let leader = region.wait_leader().await?;
    let writer = Writer::new(&region.addrs(), Retry::default())?;
    writer.create(network(), leader).await?;
    burst(&writer, "if", n, 8, leader).await?;
    Ok(region)
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Fail early, naming the fix, rather than after (a).
    ferrinet_integration::etcd::etcd_bin()?;
    println!(
        "ferrinet-api-bench ({} build, {} cores, loopback)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    phase_a(&args).await?;
    let mut region = phase_b(&args).await?;
    phase_d(&args, &mut region, args.interfaces + 1).await?;
    // Stopped, so that its processes take no CPU from what follows.
    drop(region);
    let mut small = small_region(&args, SMALL_REGION).await?;
    phase_d(&args, &mut small, SMALL_REGION + 1).await?;
    drop(small);
    phase_c(&args).await
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let r = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)));
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinet-api-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
