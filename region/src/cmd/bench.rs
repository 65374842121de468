//! `ferrinet-region bench`: load tool that prints a route server's figures.
//!
//! By default, for each transport (TLS, plaintext) it starts a fresh `ferrinet-region serve`
//! child process (this same executable) on 127.0.0.1 with a throw-away PKI. With `--server ADDR`
//! it measures a server that is already running instead, over the one transport given. Then:
//!
//! - ingest: one announcer writes N routes (pre-encoded, unpaced); time until the server's
//!   `ferrinet_region_routes` gauge (`/metrics`) has grown by N;
//! - memory: the server's RSS growth over that ingest, divided by N;
//! - dump: a new subscriber SUBSCRIBEs to a VNI of 100k routes, then one of N routes; time until
//!   it has received every UPDATE;
//! - fan-out: 100 subscribers of one VNI; one announcer writes 10k routes; time until every
//!   subscriber has received all of them.
//!
//! The ingest figure needs the server's gauge, so a running server's HTTP address (`--http`);
//! memory also needs its process (`--pid`, on this machine). Without them those figures are
//! skipped with the reason, never guessed, and a subscriber that watches the routes arrive tells
//! when an ingest is complete.
//!
//! The load side never decodes protobuf: it writes pre-encoded buffers and counts UPDATE frames
//! by their headers, so that it costs far less CPU than the server it measures. Both share the
//! machine, which makes the figures conservative.

use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrinet_region::config::{CompatMode, Config, NodeEntry};
use ferrinet_region::loadgen::raw::RawConn;
use ferrinet_region::loadgen::{Ready, encode_updates, http, routes, rss_bytes};
use ferrinet_region::route::Action;
use ferrinet_region::{certs, tls};
use rustls_pki_types::ServerName;

/// Which listeners to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transports {
    /// TLS 1.3 with client certificates.
    Tls,
    /// The plaintext (metalbond-compatible) listener.
    Plaintext,
    /// Both, one after the other, each with a fresh server (not with --server).
    Both,
}

/// Options of `ferrinet-region bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transports to measure (default: both; with --server, say which one it is).
    #[arg(long, value_enum)]
    transport: Option<Transports>,
    /// Routes of the ingest phase and of the large dump.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    routes: u32,
    /// Routes of the small dump.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    small_dump: u32,
    /// Routes sent in the fan-out phase.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    fanout_routes: u32,
    /// Subscribers in the fan-out phase.
    #[arg(long, value_name = "N", default_value_t = 100)]
    subscribers: u32,
    /// Server executable to start and measure (default: this one).
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    server_binary: Option<PathBuf>,
    /// Measure the running server at `HOST:PORT` (its TLS or plaintext route listener, as
    /// --transport says) instead of starting one.
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
    /// With --server: its HTTP status address, for the ingest figure (the stored-route gauge).
    #[arg(long, value_name = "ADDR", requires = "server")]
    http: Option<SocketAddr>,
    /// With --server and --http: its process id (same machine), for memory per route.
    #[arg(long, value_name = "PID", requires = "server")]
    pid: Option<u32>,
    /// With --server over TLS: CA certificate (PEM) the server's certificate must chain to.
    #[arg(long, value_name = "FILE", requires = "server")]
    ca: Option<PathBuf>,
    /// With --server over TLS: the bench's certificate (PEM); its identity must be allowed to
    /// announce next hops in --underlay.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// With --server over TLS: the bench's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the host part of --server).
    #[arg(long, value_name = "NAME", requires = "server")]
    server_name: Option<String>,
    /// Next hops of the announced routes are the 4096 addresses after this one.
    #[arg(long, value_name = "ADDR", default_value = "fd00::")]
    underlay: Ipv6Addr,
    /// The bench uses VNIs N, N+1 and N+2, which must hold no routes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    vni_base: u32,
    /// Give up on a phase after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    phase_timeout: u64,
    /// Print the figures as one JSON object per transport.
    #[arg(long)]
    json: bool,
}

/// The figures of one transport; `None` for one that could not be measured.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    transport: &'static str,
    server: String,
    routes: u32,
    ingest_updates_per_sec: Option<f64>,
    ingest_secs: Option<f64>,
    rss_bytes_per_route: Option<f64>,
    small_dump_routes: u32,
    small_dump_secs: f64,
    large_dump_secs: f64,
    fanout_routes: u32,
    fanout_subscribers: u32,
    fanout_secs: f64,
    /// Why figures are missing.
    skipped: Vec<String>,
}

/// A server to measure and how to reach it.
struct Target {
    label: String,
    route_addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    http: Option<SocketAddr>,
    pid: Option<u32>,
}

/// A throw-away server process, killed on drop.
struct OwnServer {
    child: Child,
    dir: PathBuf,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::cmd::client::init_tracing();
    if args.routes == 0 || args.small_dump == 0 || args.fanout_routes == 0 || args.subscribers == 0
    {
        bail!("--routes, --small-dump, --fanout-routes, --subscribers: must be at least 1");
    }
    if args.vni_base > ferrinet_region::route::MAX_VNI - 2 {
        bail!(
            "--vni-base: VNIs are 24 bits; at most {}",
            ferrinet_region::route::MAX_VNI - 2
        );
    }
    let kinds: &[bool] = match (args.transport, &args.server) {
        (Some(Transports::Tls), _) => &[true],
        (Some(Transports::Plaintext), _) => &[false],
        (None | Some(Transports::Both), None) => &[true, false],
        (_, Some(_)) => bail!("--transport: with --server, say tls or plaintext"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    for &use_tls in kinds {
        let (target, _own) = match &args.server {
            Some(addr) => (running_server(&args, addr, use_tls)?, None),
            None => {
                let (t, own) = start_server(&args, use_tls)?;
                (t, Some(own))
            }
        };
        let f = rt.block_on(bench_one(&args, &target, use_tls))?;
        if args.json {
            println!("{}", serde_json::to_string(&f)?);
        } else {
            print_figures(&f);
        }
    }
    Ok(())
}

fn print_figures(f: &Figures) {
    let or_skipped = |v: Option<String>| v.unwrap_or_else(|| "skipped (see below)".into());
    println!("== {} ({}) ==", f.transport, f.server);
    println!(
        "ingest, one announcer:        {}",
        or_skipped(
            f.ingest_updates_per_sec
                .zip(f.ingest_secs)
                .map(|(rate, secs)| {
                    format!(
                        "{rate:>12.0} updates/s  ({} routes in {secs:.3} s)",
                        f.routes
                    )
                })
        )
    );
    println!(
        "dump {:>9} routes:         {:>12.3} s",
        f.small_dump_routes, f.small_dump_secs
    );
    println!(
        "dump {:>9} routes:         {:>12.3} s",
        f.routes, f.large_dump_secs
    );
    println!(
        "fan-out {} routes x {} subs: {:>9.3} s",
        f.fanout_routes, f.fanout_subscribers, f.fanout_secs
    );
    println!(
        "server memory per route:      {}",
        or_skipped(
            f.rss_bytes_per_route
                .map(|b| format!("{b:>12.1} bytes (RSS growth / routes)"))
        )
    );
    for why in &f.skipped {
        println!("skipped: {why}");
    }
}

/// The host part of `HOST:PORT` or `[V6]:PORT`, for the default TLS server name.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn running_server(args: &Args, addr: &str, use_tls: bool) -> anyhow::Result<Target> {
    let route_addr = addr
        .to_socket_addrs()
        .with_context(|| format!("--server: {addr:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("--server: {addr:?} resolves to no address"))?;
    let tls = if use_tls {
        let ca = args
            .ca
            .as_deref()
            .context("--ca: needed with --server over TLS")?;
        let config = tls::client_config_from_files(ca, args.cert.as_deref(), args.key.as_deref())
            .context("--ca/--cert/--key")?;
        let name = args.server_name.as_deref().unwrap_or_else(|| host_of(addr));
        Some((config, tls::server_name(name).context("--server-name")?))
    } else {
        None
    };
    Ok(Target {
        label: format!("server {addr}"),
        route_addr,
        tls,
        http: args.http,
        pid: args.pid,
    })
}

fn start_server(args: &Args, use_tls: bool) -> anyhow::Result<(Target, OwnServer)> {
    let dir = std::env::temp_dir().join(format!(
        "ferrinet-bench-{}-{}",
        std::process::id(),
        if use_tls { "tls" } else { "plain" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    certs::write_pki(&dir, &[], &["bench".to_string()], true).context("creating a bench PKI")?;
    let mut config = Config::default();
    // A long keepalive and a deep queue: the load side sends no keepalives while it floods,
    // and a subscriber that reads a 1M-route dump must not be cut off as slow.
    config.server.keepalive_secs = 3600;
    config.server.queue_len = 1_000_000;
    config.tls.cert = Some(dir.join(certs::SERVER_CERT));
    config.tls.key = Some(dir.join(certs::SERVER_KEY));
    config.tls.client_ca = Some(dir.join(certs::CA_CERT));
    config.compat.mode = CompatMode::Trusted;
    config.log.level = "warn".into();
    config.authorization.node.push(NodeEntry {
        identity: "bench".into(),
        next_hops: vec!["::/0".into()],
    });
    let config_path = dir.join("region.toml");
    let toml = config
        .to_toml()
        .context("writing the bench server config")?;
    std::fs::write(&config_path, toml).context("writing the bench server config")?;
    let ready_path = dir.join("ready.json");
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).context("server log")?;
    let exe = match &args.server_binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating this executable")?,
    };
    let child = Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .args(["--listen", "127.0.0.1:0", "--compat-listen", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the server")?;
    let mut own = OwnServer { child, dir };
    let ready = Ready::wait(&ready_path, &mut own.child, Duration::from_secs(30)).map_err(|e| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        e.context(format!("server log:\n{log}"))
    })?;
    let route_addr = if use_tls { ready.tls } else { ready.compat };
    let tls = if use_tls {
        let config = tls::client_config_from_files(
            &own.dir.join(certs::CA_CERT),
            Some(&own.dir.join("bench.pem")),
            Some(&own.dir.join("bench.key")),
        )?;
        Some((config, tls::server_name("127.0.0.1")?))
    } else {
        None
    };
    let target = Target {
        label: format!(
            "own server {}, pid {}",
            route_addr.map_or_else(|| "-".into(), |a| a.to_string()),
            ready.pid
        ),
        route_addr: route_addr.context("the ready file names no route listener")?,
        tls,
        http: ready.http,
        pid: Some(ready.pid),
    };
    Ok((target, own))
}

/// Connects and establishes a session; keepalives keep it up however long it is idle.
async fn connect(t: &Target) -> anyhow::Result<RawConn> {
    let mut c = match &t.tls {
        None => RawConn::plain(t.route_addr).await?,
        Some((config, name)) => {
            RawConn::tls_named(t.route_addr, config.clone(), name.clone()).await?
        }
    };
    let hello = c.establish(3600).await?;
    c.keep_alive(Duration::from_secs(u64::from(hello.keepalive_interval.max(1))) / 2)?;
    Ok(c)
}

/// GET `path` on the status listener, off the runtime's threads: the load tasks keep running.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<http::Response> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || http::get(addr, &path, Duration::from_secs(10)))
        .await
        .context("http task")?
}

/// The server's stored route count, from `/metrics`.
async fn route_count(addr: SocketAddr) -> anyhow::Result<u64> {
    let r = get(addr, "/metrics").await?;
    http::metric_value(&r.body, "ferrinet_region_routes")
        .map(|v| v as u64)
        .context("no ferrinet_region_routes in /metrics")
}

/// Refused updates (any reason) so far, from `/metrics`.
async fn refused_count(addr: SocketAddr) -> anyhow::Result<f64> {
    let r = get(addr, "/metrics").await?;
    Ok(http::metric_sum(
        &r.body,
        "ferrinet_region_updates_refused_total",
    ))
}

/// Waits until the gauge reaches `n`; fails as soon as the server refuses an update, which
/// would otherwise only show as a phase that never ends.
async fn wait_routes(addr: SocketAddr, n: u64) -> anyhow::Result<Instant> {
    let refused = refused_count(addr).await?;
    for i in 0u64.. {
        if route_count(addr).await? >= n {
            break;
        }
        if i % 64 == 63 && refused_count(addr).await? > refused {
            bail!(
                "the server refuses the bench's updates (ferrinet_region_updates_refused_total \
                 grew): its next hops (--underlay) must be allowed for the bench's identity, or \
                 the plaintext listener must be trusted"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Instant::now())
}

/// Fails unless the bench's VNIs hold no routes (their dumps would count them).
async fn check_vnis_empty(addr: SocketAddr, vnis: &[u32]) -> anyhow::Result<()> {
    for vni in vnis {
        let r = get(addr, &format!("/routes.json?vni={vni}&limit=1")).await?;
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .with_context(|| format!("/routes.json: status {}: {}", r.status, r.body))?;
        if v["vnis"].as_array().is_some_and(|a| !a.is_empty()) {
            bail!("VNI {vni} holds routes on that server; choose other VNIs with --vni-base");
        }
    }
    Ok(())
}

async fn within<T>(
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .with_context(|| {
            format!(
                "{what}: not done within {limit:?} (are next hops in --underlay allowed for the \
                 bench's identity?)"
            )
        })?
        .with_context(|| what.to_string())
}

/// Announces `updates` (`n` routes of `vni`) and waits until the server stored them: by its
/// gauge reaching `gauge_target` when there is one, else by a subscriber receiving all of them.
/// Returns the time from the first byte to the stored routes, when measured by the gauge.
async fn ingest(
    t: &Target,
    announcer: &mut RawConn,
    updates: &[u8],
    (vni, n): (u32, u32),
    gauge_target: Option<u64>,
    limit: Duration,
) -> anyhow::Result<Option<Duration>> {
    match (t.http, gauge_target) {
        (Some(addr), Some(target)) => {
            let t0 = Instant::now();
            let (done, ()) = within("ingest", limit, async {
                let (d, w) = tokio::join!(wait_routes(addr, target), announcer.send_bytes(updates));
                Ok((d?, w?))
            })
            .await?;
            Ok(Some(done - t0))
        }
        _ => {
            let mut witness = connect(t).await?;
            witness.subscribe(vni).await?;
            announcer.send_bytes(updates).await?;
            within("ingest", limit, witness.count_updates(u64::from(n))).await?;
            Ok(None)
        }
    }
}

async fn bench_one(args: &Args, t: &Target, use_tls: bool) -> anyhow::Result<Figures> {
    let transport = if use_tls { "tls" } else { "plaintext" };
    let limit = Duration::from_secs(args.phase_timeout);
    let (vni_large, vni_small, vni_fanout) = (args.vni_base, args.vni_base + 1, args.vni_base + 2);
    eprintln!("bench {transport}: {}", t.label);
    let mut skipped = Vec::new();
    if let Some(addr) = t.http {
        check_vnis_empty(addr, &[vni_large, vni_small, vni_fanout]).await?;
    } else {
        skipped.push(
            "ingest rate: needs the server's stored-route gauge: give its status address \
             with --http ADDR"
                .to_string(),
        );
    }
    let rss_pid = match (t.http, t.pid) {
        (Some(_), Some(pid)) => Some(pid),
        _ => {
            skipped.push(
                "memory per route: needs the server's RSS growth over the ingest: give --http \
                 ADDR and --pid PID of a server on this machine"
                    .to_string(),
            );
            None
        }
    };

    // Pre-encode everything before measuring anything.
    let large = encode_updates(Action::Add, &routes(vni_large, args.routes, args.underlay))?;
    let small = encode_updates(
        Action::Add,
        &routes(vni_small, args.small_dump, args.underlay),
    )?;
    let fan = encode_updates(
        Action::Add,
        &routes(vni_fanout, args.fanout_routes, args.underlay),
    )?;
    // The marker is the first fan-out route; the burst is the others.
    let marker_len = encode_updates(Action::Add, &routes(vni_fanout, 1, args.underlay))?.len();

    let mut announcer = connect(t).await?;
    // Let the allocator settle after startup and the first session.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_pid.map(rss_bytes).transpose()?;
    let base = match t.http {
        Some(addr) => Some(route_count(addr).await?),
        None => None,
    };

    let n = u64::from(args.routes);
    let ingest_time = ingest(
        t,
        &mut announcer,
        &large,
        (vni_large, args.routes),
        base.map(|b| b + n),
        limit,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_pid.map(rss_bytes).transpose()?;
    drop(large);

    // Small VNI, then the dumps to new subscribers.
    ingest(
        t,
        &mut announcer,
        &small,
        (vni_small, args.small_dump),
        base.map(|b| b + n + u64::from(args.small_dump)),
        limit,
    )
    .await?;
    let small_dump = dump(t, vni_small, args.small_dump, limit).await?;
    let large_dump = dump(t, vni_large, args.routes, limit).await?;

    // Fan-out: all subscribers confirmed by a first route, then the burst.
    let mut subs = Vec::new();
    for _ in 0..args.subscribers {
        let mut s = within("subscriber connect", limit, connect(t)).await?;
        s.subscribe(vni_fanout).await?;
        subs.push(s);
    }
    announcer.send_bytes(&fan[..marker_len]).await?;
    for s in &mut subs {
        within("fan-out marker", limit, s.count_updates(1)).await?;
    }
    let rest = u64::from(args.fanout_routes) - 1;
    let t0 = Instant::now();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                s.count_updates(rest).await?;
                Ok::<_, anyhow::Error>(Instant::now())
            })
        })
        .collect();
    announcer.send_bytes(&fan[marker_len..]).await?;
    let mut last = t0;
    for r in readers {
        let done = within("fan-out", limit, async move {
            r.await.context("fan-out reader")?
        })
        .await?;
        last = last.max(done);
    }
    let fanout = last - t0;

    let per_route = |d: Duration| n as f64 / d.as_secs_f64();
    Ok(Figures {
        transport,
        server: t.label.clone(),
        routes: args.routes,
        ingest_updates_per_sec: ingest_time.map(per_route),
        ingest_secs: ingest_time.map(|d| d.as_secs_f64()),
        rss_bytes_per_route: rss_before
            .zip(rss_after)
            .map(|(b, a)| a.saturating_sub(b) as f64 / n as f64),
        small_dump_routes: args.small_dump,
        small_dump_secs: small_dump.as_secs_f64(),
        large_dump_secs: large_dump.as_secs_f64(),
        fanout_routes: args.fanout_routes,
        fanout_subscribers: args.subscribers,
        fanout_secs: fanout.as_secs_f64(),
        skipped,
    })
}

/// A new session subscribes to `vni` holding `n` routes; time from SUBSCRIBE to the last UPDATE.
async fn dump(t: &Target, vni: u32, n: u32, limit: Duration) -> anyhow::Result<Duration> {
    let mut s = within("dump subscriber connect", limit, connect(t)).await?;
    let t0 = Instant::now();
    s.subscribe(vni).await?;
    within("dump", limit, s.count_updates(u64::from(n))).await?;
    Ok(t0.elapsed())
}
