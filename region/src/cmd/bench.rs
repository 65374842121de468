//! `ferrinet-region bench`: load tool that prints the server's figures.
//!
//! For each transport (TLS, plaintext) it starts a fresh `ferrinet-region serve` child process
//! (this same executable) on 127.0.0.1 with a throw-away PKI, then measures:
//!
//! - ingest: one announcer writes N routes (pre-encoded, unpaced); time until the server's
//!   `ferrinet_region_routes` gauge (`/metrics`) reaches N;
//! - memory: the server's RSS growth over that ingest, divided by N;
//! - dump: a new subscriber SUBSCRIBEs to a VNI of 100k routes, then one of N routes; time until
//!   it has received every UPDATE;
//! - fan-out: 100 subscribers of one VNI; one announcer writes 10k routes; time until every
//!   subscriber has received all of them.
//!
//! The load side never decodes protobuf: it writes pre-encoded buffers and counts UPDATE frames
//! by their headers, so that it costs far less CPU than the server it measures. Both share the
//! machine, which makes the figures conservative.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use ferrinet_proto::frame::{self, HEADER_LEN, Message, MessageType};
use ferrinet_proto::route::{Hello, Subscription};
use ferrinet_region::conn::encode_route;
use ferrinet_region::route::{Action, NextHop, NextHopType, Route};
use ferrinet_region::{certs, tls};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Which listeners to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transports {
    /// TLS 1.3 with client certificates.
    Tls,
    /// The plaintext (metalbond-compatible) listener.
    Plaintext,
    /// Both, one after the other, each with a fresh server.
    Both,
}

/// Options of `ferrinet-region bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transports to measure.
    #[arg(long, value_enum, default_value = "both")]
    transport: Transports,
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
    /// Server executable to measure (default: this one).
    #[arg(long, value_name = "FILE")]
    server_binary: Option<PathBuf>,
    /// Give up on a phase after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    phase_timeout: u64,
    /// Print the figures as one JSON object per transport.
    #[arg(long)]
    json: bool,
}

/// The figures of one transport.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    transport: &'static str,
    routes: u32,
    ingest_updates_per_sec: f64,
    ingest_secs: f64,
    rss_bytes_per_route: f64,
    small_dump_routes: u32,
    small_dump_secs: f64,
    large_dump_secs: f64,
    fanout_routes: u32,
    fanout_subscribers: u32,
    fanout_secs: f64,
}

const VNI_LARGE: u32 = 1;
const VNI_SMALL: u32 = 2;
const VNI_FANOUT: u32 = 3;

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::cmd::client::init_tracing();
    if args.routes == 0 || args.small_dump == 0 || args.fanout_routes == 0 || args.subscribers == 0
    {
        bail!("--routes, --small-dump, --fanout-routes, --subscribers: must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let kinds: &[bool] = match args.transport {
        Transports::Tls => &[true],
        Transports::Plaintext => &[false],
        Transports::Both => &[true, false],
    };
    for &use_tls in kinds {
        let f = rt.block_on(bench_one(&args, use_tls))?;
        if args.json {
            println!("{}", serde_json::to_string(&f)?);
        } else {
            print_figures(&f);
        }
    }
    Ok(())
}

fn print_figures(f: &Figures) {
    println!("== {} ==", f.transport);
    println!(
        "ingest, one announcer:        {:>12.0} updates/s  ({} routes in {:.3} s)",
        f.ingest_updates_per_sec, f.routes, f.ingest_secs
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
        "server memory per route:      {:>12.1} bytes (RSS growth / routes)",
        f.rss_bytes_per_route
    );
}

/// A throw-away server process, killed on drop.
struct BenchServer {
    child: Child,
    route_addr: SocketAddr,
    http: SocketAddr,
    client_tls: Option<Arc<rustls::ClientConfig>>,
    _dir: PathBuf,
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start_server(args: &Args, use_tls: bool) -> anyhow::Result<BenchServer> {
    let dir = std::env::temp_dir().join(format!(
        "ferrinet-bench-{}-{}",
        std::process::id(),
        if use_tls { "tls" } else { "plain" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    certs::write_pki(&dir, &[], &["bench".to_string()], true).context("creating a bench PKI")?;
    let config = format!(
        "[server]\nkeepalive_secs = 3600\nqueue_len = 1000000\n\n\
         [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n\
         [compat]\nmode = \"trusted\"\n\n[log]\nlevel = \"warn\"\n\n\
         [[authorization.node]]\nidentity = \"bench\"\nnext_hops = [\"::/0\"]\n",
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    let config_path = dir.join("region.toml");
    std::fs::write(&config_path, config).context("writing the bench server config")?;
    let ready = dir.join("ready.json");
    let log = std::fs::File::create(dir.join("server.log")).context("server log")?;
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
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the server")?;
    let mut server = BenchServer {
        child,
        route_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        client_tls: None,
        _dir: dir.clone(),
    };
    let start = Instant::now();
    let v: serde_json::Value = loop {
        if let Ok(t) = std::fs::read_to_string(&ready)
            && let Ok(v) = serde_json::from_str(&t)
        {
            break v;
        }
        if let Some(s) = server.child.try_wait()? {
            bail!(
                "server exited with {s}: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("server not ready after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let addr = |k: &str| -> anyhow::Result<SocketAddr> {
        v[k].as_str()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("ready file has no {k} address: {v}"))
    };
    server.route_addr = addr(if use_tls { "tls" } else { "compat" })?;
    server.http = addr("http")?;
    if use_tls {
        server.client_tls = Some(tls::client_config_from_files(
            &dir.join("ca.pem"),
            Some(&dir.join("bench.pem")),
            Some(&dir.join("bench.key")),
        )?);
    }
    Ok(server)
}

trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}
type Stream = Pin<Box<dyn Io>>;

/// Connects and establishes a session (HELLO, KEEPALIVE) without over-reading, so that the
/// stream can then be split between a writer and a frame counter.
async fn connect(server: &BenchServer) -> anyhow::Result<Stream> {
    let tcp = TcpStream::connect(server.route_addr)
        .await
        .context("connect")?;
    tcp.set_nodelay(true)?;
    let mut s: Stream = match &server.client_tls {
        None => Box::pin(tcp),
        Some(cfg) => Box::pin(
            tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(tls::server_name("127.0.0.1")?, tcp)
                .await
                .context("tls handshake")?,
        ),
    };
    let hello = Message::Hello(Hello {
        keepalive_interval: 3600,
        is_server: false,
        ferrinet_extensions: 0,
    });
    s.write_all(&frame::encode_to_vec(&hello)?).await?;
    s.flush().await?;
    expect_frame(&mut s, MessageType::Hello).await?;
    s.write_all(&frame::encode_to_vec(&Message::Keepalive)?)
        .await?;
    s.flush().await?;
    expect_frame(&mut s, MessageType::Keepalive).await?;
    Ok(s)
}

async fn expect_frame(s: &mut Stream, want: MessageType) -> anyhow::Result<()> {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h)
        .await
        .context("reading a frame header")?;
    let len = usize::from(u16::from_be_bytes([h[1], h[2]]));
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).await?;
    let got = MessageType::from_byte(h[3]);
    if h[0] != 1 || got != Some(want) {
        bail!("expected {}, got header {h:?}", want.name());
    }
    Ok(())
}

async fn send(s: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> anyhow::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await?;
    Ok(())
}

fn subscribe_frame(vni: u32) -> anyhow::Result<Vec<u8>> {
    Ok(frame::encode_to_vec(&Message::Subscribe(Subscription {
        vni,
    }))?)
}

/// Counts UPDATE frames in a byte stream by their headers alone.
#[derive(Debug, Default)]
struct FrameCounter {
    header: [u8; HEADER_LEN],
    have: usize,
    skip: usize,
    updates: u64,
}

impl FrameCounter {
    fn feed(&mut self, mut b: &[u8]) -> anyhow::Result<()> {
        while !b.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(b.len());
                self.skip -= n;
                b = &b[n..];
                continue;
            }
            let n = (HEADER_LEN - self.have).min(b.len());
            self.header[self.have..self.have + n].copy_from_slice(&b[..n]);
            self.have += n;
            b = &b[n..];
            if self.have == HEADER_LEN {
                let h = self.header;
                if h[0] != 1 {
                    bail!("bad frame from the server: header {h:?}");
                }
                self.skip = usize::from(u16::from_be_bytes([h[1], h[2]]));
                if h[3] == MessageType::Update as u8 {
                    self.updates += 1;
                }
                self.have = 0;
            }
        }
        Ok(())
    }
}

/// Reads until `n` UPDATEs have arrived; returns when the last one did.
async fn count_updates(
    rd: &mut (impl AsyncRead + Unpin),
    counter: &mut FrameCounter,
    n: u64,
) -> anyhow::Result<Instant> {
    let mut buf = vec![0u8; 256 * 1024];
    while counter.updates < n {
        let got = rd.read(&mut buf).await?;
        if got == 0 {
            bail!(
                "server closed the session after {} of {n} updates",
                counter.updates
            );
        }
        counter.feed(&buf[..got])?;
    }
    Ok(Instant::now())
}

fn routes(vni: u32, n: u32) -> Vec<Route> {
    (0..n)
        .map(|i| Route {
            vni,
            destination: ipnet::IpNet::from(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                0x0a00_0000 + i,
            ))),
            next_hop: NextHop {
                address: std::net::Ipv6Addr::from(
                    0xfd00_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(i % 4096) + 1,
                ),
                target_vni: 0,
                kind: NextHopType::Standard,
                port_from: 0,
                port_to: 0,
            },
        })
        .collect()
}

fn encode_adds(vni: u32, n: u32) -> anyhow::Result<BytesMut> {
    let mut b = BytesMut::with_capacity(n as usize * 40);
    for r in routes(vni, n) {
        encode_route(Action::Add, &r, &mut b)?;
    }
    Ok(b)
}

/// The server's stored route count, from `/metrics`.
async fn route_count(http: SocketAddr) -> anyhow::Result<u64> {
    let mut s = TcpStream::connect(http)
        .await
        .context("connect to /metrics")?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    body.lines()
        .find_map(|l| l.strip_prefix("ferrinet_region_routes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("no ferrinet_region_routes in /metrics")
}

async fn wait_routes(http: SocketAddr, n: u64, limit: Duration) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if route_count(http).await? >= n {
            return Ok(Instant::now());
        }
        if start.elapsed() > limit {
            bail!("server stored fewer than {n} routes after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Resident set size of a process, bytes (Linux).
fn rss(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the server's /proc status")?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmRSS in /proc status")
}

async fn within<T>(
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .with_context(|| format!("{what}: not done within {limit:?}"))?
        .with_context(|| what.to_string())
}

async fn bench_one(args: &Args, use_tls: bool) -> anyhow::Result<Figures> {
    let transport = if use_tls { "tls" } else { "plaintext" };
    let limit = Duration::from_secs(args.phase_timeout);
    let server = start_server(args, use_tls)?;
    let pid = server.child.id();
    eprintln!(
        "bench {transport}: server pid {pid} on {}",
        server.route_addr
    );

    // Pre-encode everything before measuring anything.
    let large = encode_adds(VNI_LARGE, args.routes)?;
    let small = encode_adds(VNI_SMALL, args.small_dump)?;
    let fan = encode_adds(VNI_FANOUT, args.fanout_routes)?;
    let marker = encode_adds(VNI_FANOUT, 1)?;
    // The marker is the first fan-out route; the burst is the others.

    let mut announcer = connect(&server).await?;
    // Let the allocator settle after startup and the first session.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss(pid)?;

    // Ingest.
    let n = u64::from(args.routes);
    let t0 = Instant::now();
    let (ingest_done, ()) = within("ingest", limit, async {
        let done = wait_routes(server.http, n, limit);
        let write = send(&mut announcer, &large);
        let (d, w) = tokio::join!(done, write);
        Ok((d?, w?))
    })
    .await?;
    let ingest = ingest_done - t0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss(pid)?;
    drop(large);

    // Small VNI, then the dumps to new subscribers.
    send(&mut announcer, &small).await?;
    within(
        "small ingest",
        limit,
        wait_routes(server.http, n + u64::from(args.small_dump), limit),
    )
    .await?;
    let small_dump = dump(&server, VNI_SMALL, args.small_dump, limit).await?;
    let large_dump = dump(&server, VNI_LARGE, args.routes, limit).await?;

    // Fan-out: all subscribers confirmed by a first route, then the burst.
    let mut subs = Vec::new();
    for _ in 0..args.subscribers {
        let mut s = within("subscriber connect", limit, connect(&server)).await?;
        send(&mut s, &subscribe_frame(VNI_FANOUT)?).await?;
        subs.push(s);
    }
    send(&mut announcer, &marker).await?;
    let mut counters: Vec<(Stream, FrameCounter)> = Vec::new();
    for mut s in subs {
        let mut c = FrameCounter::default();
        within("fan-out marker", limit, count_updates(&mut s, &mut c, 1)).await?;
        counters.push((s, c));
    }
    let total = u64::from(args.fanout_routes);
    let t0 = Instant::now();
    let readers: Vec<_> = counters
        .into_iter()
        .map(|(mut s, mut c)| {
            tokio::spawn(async move {
                let r = count_updates(&mut s, &mut c, total).await;
                drop(s);
                r
            })
        })
        .collect();
    // Skip the marker: it is already there.
    let marker_len = marker.len();
    send(&mut announcer, &fan[marker_len..]).await?;
    let mut last = t0;
    for r in readers {
        let done = within("fan-out", limit, async move {
            r.await.context("fan-out reader")?
        })
        .await?;
        last = last.max(done);
    }
    let fanout = last - t0;

    Ok(Figures {
        transport,
        routes: args.routes,
        ingest_updates_per_sec: n as f64 / ingest.as_secs_f64(),
        ingest_secs: ingest.as_secs_f64(),
        rss_bytes_per_route: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        small_dump_routes: args.small_dump,
        small_dump_secs: small_dump.as_secs_f64(),
        large_dump_secs: large_dump.as_secs_f64(),
        fanout_routes: args.fanout_routes,
        fanout_subscribers: args.subscribers,
        fanout_secs: fanout.as_secs_f64(),
    })
}

/// A new session subscribes to `vni` holding `n` routes; time from SUBSCRIBE to the last UPDATE.
async fn dump(server: &BenchServer, vni: u32, n: u32, limit: Duration) -> anyhow::Result<Duration> {
    let mut s = within("dump subscriber connect", limit, connect(server)).await?;
    let sub = subscribe_frame(vni)?;
    let t0 = Instant::now();
    send(&mut s, &sub).await?;
    let mut c = FrameCounter::default();
    let done = within("dump", limit, count_updates(&mut s, &mut c, u64::from(n))).await?;
    Ok(done - t0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_updates_in_any_chunking() {
        let mut wire = Vec::new();
        wire.extend(frame::encode_to_vec(&Message::Keepalive).unwrap_or_default());
        wire.extend(encode_adds(7, 50).map(|b| b.to_vec()).unwrap_or_default());
        for chunk in [1, 3, 4, 7, 64, 4096] {
            let mut c = FrameCounter::default();
            for piece in wire.chunks(chunk) {
                assert!(c.feed(piece).is_ok());
            }
            assert_eq!(c.updates, 50, "chunk {chunk}");
            assert_eq!((c.have, c.skip), (0, 0));
        }
        assert!(FrameCounter::default().feed(&[2, 0, 0, 2]).is_err());
    }
}
