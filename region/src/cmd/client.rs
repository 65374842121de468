//! `ferrinet-region client`: connect to route servers, subscribe, announce, print what arrives.
//!
//! Each change of the merged route view is one line on stdout (`ADD 23#10.0.23.0/24#2001:db8::1#STD`
//! or, with `--json`, one JSON object), flushed as soon as no further event is waiting, so that
//! scripts and tests can follow it. Session changes and "initial set complete" per VNI go to
//! stderr.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferrinet_region::route::{Action, Route};
use ferrinet_region::tls;
use ferrinet_route_client::client::{
    self, ClientConfig, RouteEvent, ServerConfig, ServerState, TlsClient, VniEvent, error_chain,
};
use tokio::sync::mpsc;

/// Options of `ferrinet-region client`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Route server `HOST:PORT`; repeat (or list) to connect to several.
    #[arg(long = "server", value_name = "ADDR", required = true, num_args = 1..)]
    servers: Vec<String>,
    /// VNI to subscribe to; repeat or list.
    #[arg(long = "subscribe", value_name = "VNI", num_args = 1..)]
    subscribe: Vec<u32>,
    /// Route to announce, `VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]`; repeat or list.
    #[arg(long = "announce", value_name = "ROUTE", num_args = 1.., value_parser = parse_route)]
    announce: Vec<Route>,
    /// Connect without TLS (to a plaintext, metalbond-compatible listener).
    #[arg(long, conflicts_with_all = ["ca", "cert", "key", "server_name"])]
    plaintext: bool,
    /// CA certificate (PEM) the servers' certificates must chain to.
    #[arg(long, value_name = "FILE", required_unless_present = "plaintext")]
    ca: Option<PathBuf>,
    /// This node's certificate (PEM); the server requires one.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Name the servers' certificates must carry (default: the host part of each --server).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Keepalive interval to propose, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    keepalive: u64,
    /// Smallest reconnect delay ceiling, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 0.5)]
    backoff_min: f64,
    /// Largest reconnect delay, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    backoff_max: f64,
    /// Print route changes as JSON objects, one per line.
    #[arg(long)]
    json: bool,
    /// Exit (status 0) after this many route changes.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Exit (status 0) once a session with every server is established.
    #[arg(long)]
    exit_on_established: bool,
    /// Exit with an error if not done (--count, --exit-on-established) within this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
}

fn parse_route(s: &str) -> Result<Route, String> {
    s.parse::<Route>().map_err(|e| e.to_string())
}

fn secs(field: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{field}: {v} is not a positive number of seconds"))
}

/// The host part of `HOST:PORT` or `[V6]:PORT`, for the default TLS server name.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn config(args: &Args) -> anyhow::Result<ClientConfig> {
    let tls_config = match (&args.plaintext, &args.ca) {
        (true, _) => None,
        (false, Some(ca)) => Some(
            tls::client_config_from_files(ca, args.cert.as_deref(), args.key.as_deref())
                .context("--ca/--cert/--key")?,
        ),
        (false, None) => bail!("--ca: needed unless --plaintext is given"),
    };
    let mut servers = Vec::new();
    for addr in &args.servers {
        if !addr.contains(':') {
            bail!("--server: {addr:?} is not HOST:PORT");
        }
        servers.push(match &tls_config {
            None => ServerConfig::plaintext(addr.clone()),
            Some(config) => {
                let name = args.server_name.as_deref().unwrap_or_else(|| host_of(addr));
                let server_name = tls::server_name(name).context("--server-name")?;
                ServerConfig::tls(
                    addr.clone(),
                    TlsClient {
                        config: config.clone(),
                        server_name,
                    },
                )
            }
        });
    }
    let mut c = ClientConfig::new(servers);
    c.keepalive = Duration::from_secs(args.keepalive);
    c.backoff_min = secs("backoff-min", args.backoff_min)?;
    c.backoff_max = secs("backoff-max", args.backoff_max)?;
    if c.backoff_max < c.backoff_min {
        bail!("--backoff-max: must not be below --backoff-min");
    }
    Ok(c)
}

fn json_line(e: &RouteEvent) -> serde_json::Value {
    let r = &e.route;
    let nh = &r.next_hop;
    serde_json::json!({
        "action": action_name(e.action),
        "vni": r.vni,
        "prefix": r.destination.to_string(),
        "nexthop": nh.address.to_string(),
        "type": nh.kind.short_name(),
        "target_vni": nh.target_vni,
        "port_from": nh.port_from,
        "port_to": nh.port_to,
        "route": r.to_string(),
    })
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Add => "ADD",
        Action::Remove => "REMOVE",
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = config(&args)?;
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(args, config))
}

/// Turns one subscription's event into the route changes to print, keeping `held` (the routes
/// printed as present) in step, so that a resync prints only what changed.
fn changes(held: &mut BTreeSet<Route>, e: VniEvent) -> Vec<RouteEvent> {
    let ev = |action, route| RouteEvent { action, route };
    match e {
        VniEvent::Added(r) => {
            held.insert(r);
            vec![ev(Action::Add, r)]
        }
        VniEvent::Removed(r) => {
            held.remove(&r);
            vec![ev(Action::Remove, r)]
        }
        VniEvent::Complete | VniEvent::Incomplete => Vec::new(),
        VniEvent::Snapshot { routes, .. } => {
            let new: BTreeSet<Route> = routes.into_iter().collect();
            let mut out: Vec<RouteEvent> = held
                .difference(&new)
                .map(|r| ev(Action::Remove, *r))
                .collect();
            out.extend(new.difference(held).map(|r| ev(Action::Add, *r)));
            *held = new;
            out
        }
    }
}

async fn run_async(args: Args, config: ClientConfig) -> anyhow::Result<()> {
    let n_servers = config.servers.len();
    let handle = client::start(config).context("cannot start the route client")?;
    // One forwarding task per VNI merges the subscriptions into one ordered-per-VNI stream.
    let (tx, mut events) = mpsc::channel::<(u32, VniEvent)>(1024);
    for &vni in args.subscribe.iter().collect::<BTreeSet<_>>() {
        let mut sub = handle.subscribe(vni).context("--subscribe")?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = sub.next().await {
                if tx.send((vni, e)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    for r in &args.announce {
        handle.announce(*r).context("--announce")?;
    }
    let deadline = args
        .timeout
        .map(|t| secs("timeout", t))
        .transpose()?
        .map(|d| tokio::time::Instant::now() + d);
    let mut status = handle.watch_status();
    let mut last: Vec<(ServerState, u64)> = vec![(ServerState::Connecting, 0); n_servers];
    let mut up = vec![false; n_servers];
    let mut held: HashMap<u32, BTreeSet<Route>> = HashMap::new();
    let mut seen: u64 = 0;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());

    let result: anyhow::Result<()> = 'run: loop {
        if args.count.is_some_and(|n| seen >= n) {
            break Ok(());
        }
        if args.exit_on_established && up.iter().all(|u| *u) {
            break Ok(());
        }
        tokio::select! {
            Some((vni, e)) = events.recv() => {
                if e == VniEvent::Complete {
                    eprintln!("ferrinet-region client: vni {vni}: initial set complete");
                }
                for e in changes(held.entry(vni).or_default(), e) {
                    seen += 1;
                    let line = if args.json {
                        json_line(&e).to_string()
                    } else {
                        format!("{} {}", action_name(e.action), e.route)
                    };
                    if writeln!(out, "{line}").is_err() {
                        // stdout closed (e.g. piped into head): nothing more to do.
                        break 'run Ok(());
                    }
                }
                if events.is_empty() && out.flush().is_err() {
                    break Ok(());
                }
            },
            changed = status.changed() => {
                if changed.is_err() {
                    break Err(anyhow::anyhow!("the route client stopped"));
                }
                let s = status.borrow_and_update().clone();
                for (i, srv) in s.servers.iter().enumerate() {
                    let now = (srv.state, srv.sessions);
                    if now == last[i] {
                        continue;
                    }
                    let was_up = last[i].0 == ServerState::Established;
                    last[i] = now;
                    up[i] = srv.state == ServerState::Established;
                    let why = || srv.last_error.as_deref().map_or_else(String::new, |e| error_chain(e));
                    match srv.state {
                        ServerState::Established => eprintln!("ferrinet-region client: {}: established", srv.addr),
                        ServerState::Backoff if was_up => eprintln!("ferrinet-region client: {}: session ended: {}", srv.addr, why()),
                        // Failed attempts never reach ESTABLISHED, so report them here.
                        ServerState::Backoff => eprintln!("ferrinet-region client: {}: down: {}", srv.addr, why()),
                        ServerState::Connecting => {}
                    }
                }
            },
            () = sleep_until_opt(deadline) => {
                break Err(anyhow::anyhow!("--timeout: not done in time ({seen} route changes, {} of {n_servers} servers established)", up.iter().filter(|u| **u).count()));
            },
            r = tokio::signal::ctrl_c() => {
                r.context("cannot listen for ctrl-c")?;
                break Ok(());
            },
        }
    };
    let _ = out.flush();
    drop(out);
    handle.shutdown().await;
    result
}

/// Logs to stderr, `warn` unless `RUST_LOG` says otherwise: the status lines above already tell
/// what happens to sessions.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only if a subscriber is already set, which is then good enough.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part() {
        assert_eq!(host_of("127.0.0.1:4711"), "127.0.0.1");
        assert_eq!(host_of("[::1]:4711"), "::1");
        assert_eq!(host_of("region-a.example:4711"), "region-a.example");
    }
}
