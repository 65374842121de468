//! `ferrinet-converge`: how fast routes converge across a region, measured end to end on
//! loopback with the real daemons: two route servers and `--nodes` `ferrinet-node` processes,
//! each programming its own software dataplane served by this process (see
//! `ferrinet_integration::cluster`). Prints:
//!
//! - (a) interface created on node a -> its route installed in node b's dataplane (and in every
//!   other node's), p50/p99/max over `--interfaces` creates through a's admin API, with the
//!   stages on the way (API confirmed, route fanned out by a route server);
//! - (b) `--routes` routes announced into a VNI (by a raw route-protocol peer) -> installed at a
//!   running node, at a node restarted over an empty dataplane, and after a dataplane restart
//!   under a running node;
//! - (c) node a dies -> every other node has removed its routes, measured from the death, for a
//!   `kill -9` (the kernel closes its sessions) and a `SIGSTOP` (silent: only the servers' hold
//!   timer notices), with the hold time in force and the time after it.
//!
//! Route installs and removals are timed by the dataplanes' change observer
//! (`DataplaneService::route_changes`), which stamps each change when it is applied. The figures
//! are printed next to the project's targets and never fail the run.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use ferrinet_dataplane::{DataplaneService, RouteChange};
use ferrinet_integration::cluster::{Cluster, ClusterOpts};
use ferrinet_integration::manifest::{Interface, docs, network};
use ferrinet_integration::raw::{self, RawConn, Recv};
use ferrinet_proto::frame::Message;
use ferrinet_proto::node::v1 as pb;
use ferrinet_region::route::{Action, Route};
use ipnet::IpNet;
use tokio::sync::broadcast::error::RecvError;

/// Network of (a) and (c).
const VNI: u32 = 4711;
/// Network of (b), used by node b only.
const BULK_VNI: u32 = 4712;
/// How long one phase may take before the run gives up: far beyond any target, only a bound
/// against hanging on a broken build.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

#[derive(Parser, Debug)]
#[command(name = "ferrinet-converge")]
struct Args {
    /// Nodes (at least 2): a creates, b is measured, the others add fan-out.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Interfaces created on a for (a).
    #[arg(long, default_value_t = 1000)]
    interfaces: u32,
    /// Create requests in flight at once: 1 times each change on its own, more adds load.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Routes announced into one VNI for (b).
    #[arg(long, default_value_t = 10_000)]
    routes: u32,
    /// `routes.keepalive_secs` of the nodes (the hold time is 2.5 times this); default as in
    /// production.
    #[arg(long, default_value_t = 5)]
    keepalive_secs: u64,
    /// Dotted TOML keys added to every node's configuration, to try settings, e.g.
    /// "dataplane.check_interval_ms = 100\nreconcile.backoff_min_ms = 20" (`\n` separates).
    #[arg(long, default_value = "")]
    node_toml: String,
}

/// Every route change of one dataplane, recorded by a task of its own.
struct Recorder {
    log: Arc<Mutex<Vec<RouteChange>>>,
    lagged: Arc<AtomicU64>,
}

impl Recorder {
    fn start(dp: &DataplaneService) -> Self {
        let mut rx = dp.route_changes();
        let log: Arc<Mutex<Vec<RouteChange>>> = Arc::default();
        let lagged: Arc<AtomicU64> = Arc::default();
        let (l, g) = (log.clone(), lagged.clone());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(c) => lock(&l).push(c),
                    Err(RecvError::Lagged(n)) => {
                        g.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Self { log, lagged }
    }

    /// When each prefix of `vni` in `want` was first installed at or after `since`.
    fn installed(
        &self,
        vni: u32,
        want: &HashMap<IpNet, Instant>,
        since: Instant,
    ) -> HashMap<IpNet, Instant> {
        let mut out = HashMap::new();
        for c in lock(&self.log).iter() {
            if c.vni == vni && c.next_hop.is_some() && c.at >= since && want.contains_key(&c.prefix)
            {
                out.entry(c.prefix).or_insert(c.at);
            }
        }
        out
    }

    /// The last time one of `prefixes` of `vni` was removed at or after `since`, if all were.
    fn all_removed(&self, vni: u32, prefixes: &BTreeSet<IpNet>, since: Instant) -> Option<Instant> {
        let mut gone = BTreeSet::new();
        let mut last = since;
        for c in lock(&self.log).iter() {
            if c.vni == vni && c.next_hop.is_none() && c.at >= since && prefixes.contains(&c.prefix)
            {
                gone.insert(c.prefix);
                last = last.max(c.at);
            }
        }
        (gone.len() == prefixes.len()).then_some(last)
    }

    /// Distinct prefixes of `vni` installed at or after `since`: (count, first, last).
    fn distinct_installed(&self, vni: u32, since: Instant) -> (usize, Option<Instant>, Instant) {
        let mut seen = BTreeSet::new();
        let (mut first, mut last) = (None, since);
        for c in lock(&self.log).iter() {
            if c.vni == vni && c.next_hop.is_some() && c.at >= since && seen.insert(c.prefix) {
                first = first.or(Some(c.at));
                last = c.at;
            }
        }
        (seen.len(), first, last)
    }

    fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }
}

/// CPU seconds a process used so far (user + system), from /proc.
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may hold spaces: utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    ticks(11).unwrap_or_default() + ticks(12).unwrap_or_default()
}

/// Where CPU went and what node b asked its dataplane, at one moment.
struct Usage {
    at: Instant,
    /// This process (every dataplane, the observers), node a, the other nodes, the servers.
    cpu: [f64; 4],
    /// Busiest node other than a.
    node_max: f64,
    /// Node b's dpservice calls by RPC: (count, seconds, errors).
    b_calls: HashMap<String, (f64, f64, f64)>,
}

impl Usage {
    fn take(c: &Cluster) -> Self {
        let node_cpu: Vec<f64> = c
            .nodes
            .iter()
            .map(|n| cpu_secs(&n.proc.pid().to_string()))
            .collect();
        let servers = c
            .servers
            .iter()
            .map(|s| cpu_secs(&s.pid().to_string()))
            .sum();
        let mut b_calls = HashMap::new();
        let metrics = c.nodes[1]
            .proc
            .http_addr()
            .and_then(|a| ferrinet_region::loadgen::http::get(a, "/metrics", PHASE_LIMIT).ok());
        for l in metrics.iter().flat_map(|m| m.body.lines()) {
            let Some((series, v)) = l.rsplit_once(' ') else {
                continue;
            };
            let Some((name, labels)) = series.split_once('{') else {
                continue;
            };
            let Some(rpc) = labels
                .split(',')
                .find_map(|kv| kv.strip_prefix("rpc=\""))
                .map(|r| r.trim_end_matches('}').trim_end_matches('"').to_string())
            else {
                continue;
            };
            let v: f64 = v.parse().unwrap_or_default();
            let e = b_calls.entry(rpc).or_insert((0.0, 0.0, 0.0));
            match name {
                "ferrinet_node_dpservice_call_seconds_count" => e.0 = v,
                "ferrinet_node_dpservice_call_seconds_sum" => e.1 = v,
                "ferrinet_node_dpservice_errors_total" => e.2 += v,
                _ => {}
            }
        }
        Self {
            at: Instant::now(),
            cpu: [
                cpu_secs("self"),
                node_cpu.first().copied().unwrap_or_default(),
                node_cpu.iter().skip(1).sum(),
                servers,
            ],
            node_max: node_cpu.iter().skip(1).copied().fold(0.0, f64::max),
            b_calls,
        }
    }

    /// Prints what was used since `before`: CPU by process group against the wall time and
    /// the two cores, and node b's busiest dpservice calls.
    fn report(&self, before: &Usage) {
        // A process that died in between counts as having used nothing.
        let d = |i: usize| ((self.cpu[i] - before.cpu[i]) / 100.0).max(0.0);
        println!(
            "    CPU: this process (dataplanes) {:.2} s, node a {:.2} s, other nodes {:.2} s (busiest {:.2} s), servers {:.2} s; wall {}",
            d(0),
            d(1),
            d(2),
            (self.node_max - before.node_max).max(0.0) / 100.0,
            d(3),
            secs(self.at - before.at)
        );
        let mut calls: Vec<(String, f64, f64, f64)> = self
            .b_calls
            .iter()
            .map(|(rpc, (n, t, e))| {
                let (n0, t0, e0) = before.b_calls.get(rpc).copied().unwrap_or_default();
                (rpc.clone(), n - n0, t - t0, e - e0)
            })
            .filter(|(_, n, _, _)| *n > 0.0)
            .collect();
        calls.sort_by(|a, b| b.2.total_cmp(&a.2));
        // The summed latency above the wall time tells how many calls were in flight at once.
        let text: Vec<String> = calls
            .iter()
            .take(4)
            .map(|(rpc, n, t, e)| format!("{rpc} {n:.0} calls ({e:.0} failed) summing {t:.3} s"))
            .collect();
        println!("    node b's dpservice calls: {}", text.join(", "));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `f` returns something. Polled slowly: the figures come from the recorded
/// timestamps, and scanning the logs often would take CPU from what is measured.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {PHASE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// One line of p50/p99/max over `lat`.
fn spread(label: &str, mut lat: Vec<Duration>) -> String {
    lat.sort();
    format!(
        "    {label:<34} p50 {}  p99 {}  max {}  (n={})",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        lat.len()
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The interface a's `i`-th create makes, and the prefix its route has.
fn iface_ip(i: u32) -> String {
    format!("10.1.{}.{}", i / 250, i % 250 + 1)
}

fn host(ip: &str) -> anyhow::Result<IpNet> {
    Ok(IpNet::from(ip.parse::<std::net::IpAddr>()?))
}

fn iface_object(i: u32) -> pb::Object {
    pb::Object {
        object: Some(pb::object::Object::NetworkInterface(pb::NetworkInterface {
            metadata: Some(pb::Metadata {
                name: format!("if-{i}"),
                ..Default::default()
            }),
            spec: Some(pb::NetworkInterfaceSpec {
                network: "blue".into(),
                ips: vec![iface_ip(i)],
                ..Default::default()
            }),
            status: None,
        })),
    }
}

/// A plain subscriber of `vni` at a route server, recording when each added prefix arrived:
/// the moment the server fanned the route out.
async fn server_watch(
    addr: std::net::SocketAddr,
    vni: u32,
) -> anyhow::Result<Arc<Mutex<HashMap<IpNet, Instant>>>> {
    let mut conn = RawConn::established_plain(addr).await?;
    conn.subscribe(vni).await?;
    let seen: Arc<Mutex<HashMap<IpNet, Instant>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok(Recv::Frame(m)) = conn.recv().await {
            if let Message::Update(u) = m
                && let Ok((Action::Add, r)) = Route::from_update(&u)
            {
                lock(&s).entry(r.destination).or_insert_with(Instant::now);
            }
        }
    });
    Ok(seen)
}

async fn phase_a(c: &mut Cluster, args: &Args, recs: &[Recorder]) -> anyhow::Result<()> {
    let fanout = server_watch(c.servers[0].compat, VNI).await?;
    let api = c.nodes[0].proc.client().await?;
    let mut sent: HashMap<IpNet, Instant> = HashMap::new();
    let mut confirmed = Vec::new();
    let usage = Usage::take(c);
    let since = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..args.interfaces {
        let permit = sem.clone().acquire_owned().await?;
        let mut api = api.clone();
        let t = Instant::now();
        sent.insert(host(&iface_ip(i))?, t);
        calls.spawn(async move {
            let r = api
                .create(pb::CreateRequest {
                    object: Some(iface_object(i)),
                })
                .await;
            drop(permit);
            r.map(|_| t.elapsed())
        });
    }
    while let Some(r) = calls.join_next().await {
        confirmed.push(r?.context("create")?);
    }
    let n = sent.len();
    wait_for("(a) every route at every other node", || {
        recs[1..]
            .iter()
            .all(|r| r.installed(VNI, &sent, since).len() == n)
            .then_some(())
    })
    .await?;
    let used = Usage::take(c);
    let at_b = recs[1].installed(VNI, &sent, since);
    let lat_b: Vec<Duration> = at_b.iter().map(|(p, t)| *t - sent[p]).collect();
    let mut last_at: HashMap<IpNet, Instant> = HashMap::new();
    for r in &recs[1..] {
        for (p, t) in r.installed(VNI, &sent, since) {
            let e = last_at.entry(p).or_insert(t);
            *e = (*e).max(t);
        }
    }
    let lat_all: Vec<Duration> = last_at.iter().map(|(p, t)| *t - sent[p]).collect();
    let fanned = lock(&fanout).clone();
    let lat_fanout: Vec<Duration> = sent
        .iter()
        .filter_map(|(p, t0)| fanned.get(p).map(|t| *t - *t0))
        .collect();
    let mut sorted_b = lat_b.clone();
    sorted_b.sort();
    let p99 = percentile(&sorted_b, 0.99);
    println!(
        "(a) interface created on a -> route installed at b: {n} interfaces, {} create(s) in flight",
        args.in_flight
    );
    println!("{}", spread("create -> API confirmed", confirmed));
    println!("{}", spread("create -> fanned out by server 0", lat_fanout));
    println!("{}", spread("create -> installed at b", lat_b));
    println!(
        "{}",
        spread(
            &format!("create -> installed at all {} others", recs.len() - 1),
            lat_all
        )
    );
    println!(
        "    target p99 <= 50 ms at b: {} ({})",
        verdict(p99 <= Duration::from_millis(50)),
        ms(p99).trim()
    );
    used.report(&usage);
    Ok(())
}

/// Returns the announcers of the bulk routes: dropping them withdraws 10,000 routes, which
/// would load node b while (c) is timed.
async fn phase_b(c: &mut Cluster, args: &Args, recs: &[Recorder]) -> anyhow::Result<Vec<RawConn>> {
    let n = usize::try_from(args.routes)?;
    c.nodes[1].apply(&docs(&[
        network("bulk", BULK_VNI),
        Interface::new("b-bulk", "bulk", "192.168.0.2").yaml(),
    ]))?;
    c.nodes[1].until_ready("b-bulk").await?;
    let routes = raw::routes(BULK_VNI, args.routes, "fd00:99::");
    let frames = raw::encode_all(Action::Add, &routes)?;
    // Announced to both servers, as a node would; kept open for the whole phase.
    let mut announcers = Vec::new();
    let t0 = Instant::now();
    for s in &c.servers {
        let mut a = RawConn::established_plain(s.compat).await?;
        a.send_bytes(&frames).await?;
        announcers.push(a);
    }
    let rec = &recs[1];
    let (_, _, last) = wait_for("(b) routes at the running node", || {
        let r = rec.distinct_installed(BULK_VNI, t0);
        (r.0 >= n).then_some(r)
    })
    .await?;
    let running = last - t0;

    // A node restart over an empty dataplane (a rebooted hypervisor): from the spawn.
    c.nodes[1].proc.kill();
    c.nodes[1].dataplane.service.restart();
    let t0 = Instant::now();
    c.nodes[1].proc.restart().await?;
    let api_up = t0.elapsed();
    let (_, first, last) = wait_for("(b) routes after the node restart", || {
        let r = rec.distinct_installed(BULK_VNI, t0);
        (r.0 >= n).then_some(r)
    })
    .await?;
    let restarted = last - t0;
    let first = first.map_or(Duration::ZERO, |f| f - t0);

    // A dataplane restart under the running node.
    c.nodes[1].proc.synced().await?;
    let t0 = Instant::now();
    c.nodes[1].dataplane.service.restart();
    let (_, dp_first, last) = wait_for("(b) routes after the dataplane restart", || {
        let r = rec.distinct_installed(BULK_VNI, t0);
        (r.0 >= n).then_some(r)
    })
    .await?;
    let dp_restarted = last - t0;
    let dp_first = dp_first.map_or(Duration::ZERO, |f| f - t0);

    println!("(b) {n} routes announced into VNI {BULK_VNI} -> all installed at b");
    println!(
        "    announced -> installed at running b      {}",
        secs(running)
    );
    println!(
        "    b restarted over an empty dataplane      {}  (admin API up {}, first route {})",
        secs(restarted),
        secs(api_up),
        secs(first)
    );
    println!(
        "    b's dataplane restarted, node running    {}  (first route {})",
        secs(dp_restarted),
        secs(dp_first)
    );
    println!(
        "    target <= 1 s to a (re)started node: {} (node restart), {} (dataplane restart)",
        verdict(restarted <= Duration::from_secs(1)),
        verdict(dp_restarted <= Duration::from_secs(1)),
    );
    Ok(announcers)
}

/// Bytes each server has read from a's session (the one owning `a_routes` routes).
fn a_bytes(c: &Cluster, a_routes: usize) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for s in &c.servers {
        let v = s.get_json("/sessions.json")?;
        let a = v
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["routes_owned"].as_u64() == Some(a_routes as u64))
            .context("no session of a at a server")?;
        out.push(a["bytes_received"].as_u64().unwrap_or_default());
    }
    Ok(out)
}

/// Polls the servers until a frame of a's arrives at one of them; returns the poll before
/// that, the earliest the frame can have arrived.
fn keepalive_arrived(c: &Cluster, a_routes: usize) -> anyhow::Result<Instant> {
    let first = a_bytes(c, a_routes)?;
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut prev = Instant::now();
    while Instant::now() < deadline {
        let now = a_bytes(c, a_routes)?;
        if now != first {
            return Ok(prev);
        }
        prev = Instant::now();
    }
    bail!("no keepalive from a within {PHASE_LIMIT:?}")
}

/// Waits until every node but a has removed all of `prefixes`; returns the time from `t0`.
async fn removed_everywhere(
    recs: &[Recorder],
    prefixes: &BTreeSet<IpNet>,
    t0: Instant,
) -> anyhow::Result<Duration> {
    let last = wait_for("(c) a's routes removed everywhere", || {
        let mut last = t0;
        for r in &recs[1..] {
            last = last.max(r.all_removed(VNI, prefixes, t0)?);
        }
        Some(last)
    })
    .await?;
    Ok(last - t0)
}

fn after_hold(d: Duration, hold: Duration) -> String {
    match d.checked_sub(hold) {
        Some(after) => format!("{} after the hold time", secs(after)),
        None => format!("{} before the hold time ran out", secs(hold - d)),
    }
}

async fn phase_c(c: &mut Cluster, args: &Args, recs: &[Recorder]) -> anyhow::Result<()> {
    let mut prefixes: BTreeSet<IpNet> = (0..args.interfaces)
        .map(|i| host(&iface_ip(i)))
        .collect::<anyhow::Result<_>>()?;
    prefixes.insert(host("10.200.0.1")?);
    let hold = c.hold_time();
    // (b) restarted b's dataplane and waited for its bulk routes only: every node must hold
    // all of a's routes again before their removal can be timed.
    let want: BTreeSet<String> = prefixes.iter().map(ToString::to_string).collect();
    c.until("every node holds a's routes", async || {
        let mut missing = Vec::new();
        for n in &c.nodes[1..] {
            let held: BTreeSet<String> = n
                .view()
                .await?
                .routes_of(VNI)
                .into_iter()
                .map(|r| r.0)
                .collect();
            missing.push(want.difference(&held).count());
        }
        let ok = missing.iter().all(|&m| m == 0);
        Ok(ferrinet_integration::cluster::Check::when(ok, (), missing))
    })
    .await?;

    let usage = Usage::take(c);
    let t0 = Instant::now();
    c.nodes[0].proc.kill();
    let killed = removed_everywhere(recs, &prefixes, t0).await?;
    let used = Usage::take(c);

    // Back, re-announcing everything from its store; then frozen, so that its sessions stay
    // open and silent.
    let t1 = Instant::now();
    c.nodes[0].proc.restart().await?;
    let want: HashMap<IpNet, Instant> = prefixes.iter().map(|p| (*p, t1)).collect();
    let last = wait_for("(c) a's routes back everywhere", || {
        let mut last = t1;
        for r in &recs[1..] {
            let got = r.installed(VNI, &want, t1);
            if got.len() < want.len() {
                return None;
            }
            last = last.max(got.values().copied().max().unwrap_or(t1));
        }
        Some(last)
    })
    .await?;
    let back = last - t1;
    // The servers' hold timers run from a's last frame, up to a keepalive interval before the
    // stop: stopping right after a keepalive arrived makes "after the death" start the timer.
    let fresh = keepalive_arrived(c, prefixes.len())?;
    let t2 = Instant::now();
    c.nodes[0].proc.signal("STOP")?;
    let stopped = removed_everywhere(recs, &prefixes, t2).await;
    // Resumed, so that the kill at the end is not held up by a stopped process.
    let _ = c.nodes[0].proc.signal("CONT");
    let stopped = stopped?;

    println!(
        "(c) node a dies -> its {} routes removed at all {} other nodes (hold time {})",
        prefixes.len(),
        recs.len() - 1,
        secs(hold)
    );
    println!(
        "    kill -9 (sessions closed by the kernel)  {} after the death = {}",
        secs(killed),
        after_hold(killed, hold)
    );
    used.report(&usage);
    println!(
        "    SIGSTOP (silent, hold timer only)        {} after the death = {}",
        secs(stopped),
        after_hold(stopped, hold)
    );
    println!(
        "      (stopped within {} of a's last keepalive reaching a server)",
        ms(t2 - fresh).trim()
    );
    println!(
        "    target <= 1 s after the hold time: {} (SIGSTOP), {} (kill -9)",
        verdict(stopped <= hold + Duration::from_secs(1)),
        verdict(killed <= hold + Duration::from_secs(1))
    );
    println!(
        "    (a restarted, routes back everywhere after {})",
        secs(back)
    );
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let opts = ClusterOpts {
        nodes: args.nodes,
        keepalive_secs: args.keepalive_secs,
        vf_count: usize::try_from(args.interfaces)? + 8,
        extra_toml: args.node_toml.replace("\\n", "\n"),
        ..ClusterOpts::default()
    };
    let started = Instant::now();
    let mut c = Cluster::start(opts).await?;
    let recs: Vec<Recorder> = c
        .nodes
        .iter()
        .map(|n| Recorder::start(&n.dataplane.service))
        .collect();
    // Every node uses the network, so that every node installs a's routes.
    for i in 0..c.nodes.len() {
        let ip = format!("10.200.{}.{}", i / 250, i % 250 + 1);
        let name = format!("{}-0", c.nodes[i].name);
        c.nodes[i].apply(&docs(&[
            network("blue", VNI),
            Interface::new(&name, "blue", &ip).yaml(),
        ]))?;
        c.nodes[i].until_ready(&name).await?;
    }
    let peers = c.nodes.len() - 1;
    c.until("every node holds the others' routes", async || {
        let mut counts = Vec::new();
        for n in &c.nodes {
            counts.push(n.view().await?.routes_of(VNI).len());
        }
        let ok = counts.iter().all(|&k| k == peers);
        Ok(ferrinet_integration::cluster::Check::when(ok, (), counts))
    })
    .await?;
    println!(
        "ferrinet-converge: {} route servers, {} nodes ({} build), keepalive {} s, loopback; set up in {}",
        c.servers.len(),
        c.nodes.len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        args.keepalive_secs,
        secs(started.elapsed())
    );
    phase_a(&mut c, &args, &recs).await?;
    let _bulk = phase_b(&mut c, &args, &recs).await?;
    phase_c(&mut c, &args, &recs).await?;
    let lagged: u64 = recs.iter().map(Recorder::lagged).sum();
    if lagged > 0 {
        println!("note: the route observers missed {lagged} changes (lagged); figures may be off");
    }
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
            eprintln!("ferrinet-converge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
