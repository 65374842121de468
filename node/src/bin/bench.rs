//! `ferrinet-node-bench`: load tool of the node daemon. Starts a software dataplane in this
//! process and the real `ferrinet-node` binary (next to this one) against it, then prints:
//!
//! - interface create -> Ready (programmed in the dataplane), p50/p99, over `--count`
//!   interfaces created as fast as the API accepts them (`--in-flight` requests at a time);
//! - creates confirmed per second;
//! - daemon memory per interface (RSS growth of the node process / count);
//! - full resync time after a dataplane restart (until the dataplane holds every interface
//!   again) and after a node restart (until the node reports its first resync done).
//!
//! Only loopback and a temporary directory are used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use ferrinet_node::ctl::client::{NodeAddr, connect};
use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;
use ferrinet_proto::node::v1 as pb;
use ferrinet_proto::node::v1::node_admin_client::NodeAdminClient;
use tokio::sync::Mutex;
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(name = "ferrinet-node-bench")]
struct Args {
    /// Interfaces to create.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Create requests in flight at once. The node confirms about 4,000 creates/s on 2 cores;
    /// more in flight than needed for that only adds queueing to each create's latency.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// The ferrinet-node binary (default: next to this one).
    #[arg(long)]
    node_bin: Option<PathBuf>,
}

struct NodeProc {
    child: Child,
    socket: PathBuf,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_node(bin: &Path, dir: &Path, dataplane: &str) -> anyhow::Result<NodeProc> {
    let socket = dir.join("node.sock");
    let child = Command::new(bin)
        .arg("--config")
        .arg(dir.join("node.toml"))
        .args([
            "--node-name",
            "bench",
            "--dataplane",
            dataplane,
            "--vf-mode",
            "tap",
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--admin")
        .arg(&socket)
        .args(["--http", ""])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(NodeProc { child, socket })
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

async fn client(socket: &Path) -> anyhow::Result<NodeAdminClient<Channel>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match connect(&NodeAddr::Unix(socket.to_owned()), Duration::from_secs(10)).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => bail!("node not reachable: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn wait_synced(c: &mut NodeAdminClient<Channel>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c.node_status(pb::NodeStatusRequest {}).await?.into_inner();
        if s.synced {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node did not finish its resync");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn iface(i: u32) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::NetworkInterface(pb::NetworkInterface {
            metadata: Some(pb::Metadata {
                name: format!("if-{i}"),
                ..Default::default()
            }),
            spec: Some(pb::NetworkInterfaceSpec {
                network: "bench".into(),
                ips: vec![format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)],
                ..Default::default()
            }),
            status: None,
        })),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn dp_interfaces(c: &mut DpdKironcoreClient<Channel>) -> usize {
    c.list_interfaces(dp::ListInterfacesRequest {})
        .await
        .map(|r| r.into_inner().interfaces.len())
        .unwrap_or(0)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = match args.node_bin {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this binary")?
            .join("ferrinet-node"),
    };
    let dir = std::env::temp_dir().join(format!("ferrinet-node-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let vf_count = usize::try_from(args.count)? + 8;
    let cfg = ferrinet_dataplane::DataplaneConfig::tap("fc00:b::1".parse()?, vf_count);
    let dataplane = ferrinet_dataplane::DataplaneService::new(&cfg)?;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dp_addr = l.local_addr()?.to_string();
    let served = dataplane.clone();
    tokio::spawn(async move {
        let _ = ferrinet_dataplane::serve_service(l, served, std::future::pending()).await;
    });
    let mut dpc = DpdKironcoreClient::connect(format!("http://{dp_addr}")).await?;

    // The node needs as many VFs as interfaces: TAP mode with --count + 8 devices.
    std::fs::write(
        dir.join("node.toml"),
        format!("[vf]\nmode = \"tap\"\ntap_count = {vf_count}\n"),
    )?;
    let node = spawn_node(&bin, &dir, &dp_addr)?;
    let mut c = client(&node.socket).await?;
    wait_synced(&mut c).await?;
    let pid = node.child.id();
    let rss_before = rss_kib(pid)?;
    c.create(pb::CreateRequest {
        object: Some(pb::Object {
            object: Some(pb::object::Object::Network(pb::Network {
                metadata: Some(pb::Metadata {
                    name: "bench".into(),
                    ..Default::default()
                }),
                spec: Some(pb::NetworkSpec {
                    id: 4242,
                    ..Default::default()
                }),
                status: None,
            })),
        }),
    })
    .await?;

    // Ready times come from a watch started before the first create.
    let mut watch = c
        .watch(pb::WatchRequest {
            kind: pb::Kind::NetworkInterface.into(),
            from_revision: 0,
        })
        .await?
        .into_inner();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let n = args.count;
    let watcher = tokio::spawn(async move {
        let mut ready = HashMap::new();
        while let Ok(Some(ev)) = watch.message().await {
            if let Some(pb::object::Object::NetworkInterface(i)) = ev.object.and_then(|o| o.object)
                && i.status
                    .as_ref()
                    .is_some_and(|s| s.phase == pb::Phase::Ready as i32)
                && let Some(m) = i.metadata
            {
                ready.entry(m.name).or_insert_with(Instant::now);
                if ready.len() as u32 == n {
                    break;
                }
            }
        }
        ready
    });
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<()>>(args.in_flight);
    let sem = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let mut c = c.clone();
        let sent = sent.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let o = iface(i);
            sent.lock().await.insert(format!("if-{i}"), Instant::now());
            let r = c
                .create(pb::CreateRequest { object: Some(o) })
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from);
            drop(permit);
            let _ = tx.send(r).await;
        });
    }
    drop(tx);
    let mut failed = 0;
    while let Some(r) = rx.recv().await {
        if r.is_err() {
            failed += 1;
        }
    }
    let confirmed = start.elapsed();
    let ready = tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .context("not every interface became Ready")??;
    let all_ready = start.elapsed();
    let sent = sent.lock().await;
    let mut lat: Vec<Duration> = ready
        .iter()
        .filter_map(|(name, t)| sent.get(name).map(|s| t.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let rss_after = rss_kib(pid)?;

    // Dataplane restart: until the dataplane holds every interface again.
    let t = Instant::now();
    dataplane.restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    while dp_interfaces(&mut dpc).await < n as usize {
        if Instant::now() > deadline {
            bail!("interfaces not re-created after the dataplane restart");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let dp_resync = t.elapsed();

    // Node restart over the same state and dataplane.
    drop(c);
    drop(node);
    let t = Instant::now();
    let node = spawn_node(&bin, &dir, &dp_addr)?;
    let mut c = client(&node.socket).await?;
    wait_synced(&mut c).await?;
    let node_resync = t.elapsed();
    let st = c.node_status(pb::NodeStatusRequest {}).await?.into_inner();
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "ferrinet-node bench: {n} interfaces, {} in flight, node pid {pid}",
        args.in_flight
    );
    println!(
        "  create -> Ready   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} measured, {failed} create errors)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len()
    );
    println!(
        "  creates/s         {:>10.0}   (all confirmed after {:.3} s, all Ready after {:.3} s)",
        f64::from(n) / confirmed.as_secs_f64(),
        confirmed.as_secs_f64(),
        all_ready.as_secs_f64()
    );
    println!(
        "  memory/interface  {:>10.1} KiB (node RSS {} -> {} KiB)",
        (rss_after.saturating_sub(rss_before)) as f64 / f64::from(n),
        rss_before,
        rss_after
    );
    println!(
        "  resync after dataplane restart {:>8.3} s",
        dp_resync.as_secs_f64()
    );
    println!(
        "  resync after node restart      {:>8.3} s   ({} interfaces, {} ready)",
        node_resync.as_secs_f64(),
        st.network_interfaces,
        st.ready
    );
    Ok(())
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
            eprintln!("ferrinet-node-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
