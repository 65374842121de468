//! `ferrinet-dev`: the development setup in one process. A region route server and the region
//! API (embedded store, DNS) with dev certificates (TLS, mutual authentication), and `--nodes`
//! node daemons, each with its own embedded software dataplane, state directory and admin
//! socket, all connected to both. Prints the `ferrinetctl` commands to try, runs until Ctrl-C.
//!
//! With `--packets` (root) the dataplanes move real packets and [`vms`] gives every interface
//! a network namespace as its VM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use ferrinet_node::config::Config;
use ferrinet_node::daemon::Node;
use ferrinet_region::server::authz::{Authz, Permission, Unlisted};
use ferrinet_region::server::{self, Listeners, ServerConfig};
use ferrinet_region::{certs, tls};
use tokio::net::TcpListener;

mod vms;

/// ferrinet dev mode: a route server and several nodes with embedded dataplanes.
#[derive(Parser, Debug)]
#[command(name = "ferrinet-dev", version)]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
    /// Where certificates, node state and admin sockets live (created if missing).
    #[arg(long, default_value = "ferrinet-dev")]
    dir: PathBuf,
    /// Route server TLS listener.
    #[arg(long, default_value = "[::1]:4711")]
    listen: String,
    /// Route server status page.
    #[arg(long, default_value = "127.0.0.1:4712")]
    http: String,
    /// Region API (gRPC, mutual TLS).
    #[arg(long, default_value = "[::1]:4730")]
    api: String,
    /// Region DNS server (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:4731")]
    dns: String,
    /// Move real packets (needs root): a TAP per interface, each moved into a network
    /// namespace named after the interface and configured by DHCP (udhcpc).
    #[arg(long)]
    packets: bool,
    /// With --packets: enforce the firewall rules, or only count what they would drop.
    #[arg(long, default_value = "enforce", value_parser = ["enforce", "monitor"], requires = "packets")]
    firewall_mode: String,
}

/// The identity of the dev PKI's admin certificate (for ferrinetctl --api).
const ADMIN: &str = "admin";

fn node_name(i: u16) -> String {
    format!("node-{i}")
}

/// Each node's dataplane underlay, which is also what it may announce as next hops.
fn underlay(i: u16) -> String {
    format!("fc00:{i}::/64")
}

fn node_config(
    dir: &Path,
    pki: &Path,
    i: u16,
    server: &str,
    api: &str,
    packets: Option<&str>,
) -> anyhow::Result<ferrinet_node::config::Settings> {
    let name = node_name(i);
    let home = dir.join(&name);
    // No underlay_interface: the underlay is loopback here, and lo's MTU (65536) is not what a
    // real fabric carries; 1500 is assumed (the VMs' DHCP MTU is 1460).
    let packets = packets
        .map(|mode| format!("packets = true\nfirewall_mode = \"{mode}\"\n"))
        .unwrap_or_default();
    let text = format!(
        r#"node_name = "{name}"
state_dir = {state:?}
ipv6 = true
[admin]
socket = {socket:?}
[dataplane]
address = "embedded"
embedded_underlay = "{ul}"
{packets}[routes]
servers = ["{server}"]
ca = {ca:?}
cert = {cert:?}
key = {key:?}
server_name = "localhost"
[http]
listen = "127.0.0.1:0"
[region_api]
address = "{api}"
ca = {ca:?}
cert = {cert:?}
key = {key:?}
server_name = "localhost"
"#,
        state = home.join("state"),
        socket = home.join("node.sock"),
        ul = underlay(i),
        ca = pki.join(certs::CA_CERT),
        cert = pki.join(format!("{}.pem", certs::file_stem(&name))),
        key = pki.join(format!("{}.key", certs::file_stem(&name))),
    );
    Ok(Config::parse(&text, Path::new("dev"))?.validate()?)
}

/// The region API of the dev mode: embedded store in `DIR/api`, the dev PKI, the admin
/// certificate as admin and every node certificate as a node.
fn api_settings(
    dir: &Path,
    pki: &Path,
    args: &Args,
) -> anyhow::Result<ferrinet_api::config::Settings> {
    let text = format!(
        r#"[api]
listen = "{listen}"
http = "127.0.0.1:4732"
ca = {ca:?}
cert = {cert:?}
key = {key:?}
[store]
path = {store:?}
[allocation]
vni_first = 100
vni_last = 999
public_pools = ["198.51.100.0/24", "2001:db8:100::/120"]
[region]
lb_replicas = 1
[dns]
listen = "{dns}"
zone = "dev.ferrinet.internal"
[access]
admins = ["{ADMIN}"]
nodes = ["node-*"]
"#,
        listen = args.api,
        dns = args.dns,
        ca = pki.join(certs::CA_CERT),
        cert = pki.join(certs::SERVER_CERT),
        key = pki.join(certs::SERVER_KEY),
        store = dir.join("api").join("state.redb"),
    );
    let c: ferrinet_api::config::Config = toml::from_str(&text).context("dev region API config")?;
    Ok(c.validate(dir)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.dir).context("resolving --dir")?;
    let pki = dir.join("pki");
    if args.packets {
        check_root()?;
    }
    let mut names: Vec<String> = (1..=args.nodes).map(node_name).collect();
    names.push(ADMIN.into());
    certs::write_pki(&pki, &[], &names, false)
        .with_context(|| format!("creating dev certificates in {}", pki.display()))?;

    let mut grants = HashMap::new();
    for i in 1..=args.nodes {
        grants.insert(
            node_name(i),
            Permission::NextHops(vec![underlay(i).parse().context("dev underlay")?]),
        );
    }
    let cfg = ServerConfig {
        tls: Some(tls::server_config_from_files(
            &pki.join(certs::SERVER_CERT),
            &pki.join(certs::SERVER_KEY),
            &pki.join(certs::CA_CERT),
        )?),
        authz: Authz::new(grants, Unlisted::ReadOnly),
        ..ServerConfig::default()
    };
    let tls_l = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let http_l = TcpListener::bind(&args.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", args.http))?;
    let server_addr = tls_l.local_addr()?;
    let http_addr = http_l.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(
        Listeners {
            tls: Some(tls_l),
            compat: None,
            http: Some(http_l),
        },
        cfg,
        async move {
            let _ = stop_rx.await;
        },
    ));

    let api = ferrinet_api::daemon::start(&api_settings(&dir, &pki, &args)?)
        .await
        .context("starting the region API")?;
    api.leading().await;
    let api_addr = api.addr;

    let mut nodes = Vec::new();
    for i in 1..=args.nodes {
        let s = node_config(
            &dir,
            &pki,
            i,
            &server_addr.to_string(),
            &api_addr.to_string(),
            args.packets.then_some(args.firewall_mode.as_str()),
        )?;
        let node = Node::start(&s)
            .await
            .with_context(|| format!("starting {}", node_name(i)))?;
        nodes.push((node_name(i), node));
    }
    for (_, n) in &nodes {
        n.ready().await;
    }
    let vms = if args.packets {
        Some(vms::Vms::start(&dir, &nodes).context("starting the VM manager")?)
    } else {
        None
    };

    println!("\nferrinet dev mode is up ({} nodes)\n", nodes.len());
    println!("  route server   tls={server_addr}  status=http://{http_addr}/");
    println!(
        "  region API     https://{api_addr}  dns={}  (store {})",
        api.dns_addr.map(|a| a.to_string()).unwrap_or_default(),
        dir.join("api").display()
    );
    for (name, n) in &nodes {
        println!(
            "  {name:<12}   admin=unix:{}  metrics=http://{}/metrics",
            n.admin_socket
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            n.http.map(|h| h.to_string()).unwrap_or_default()
        );
    }
    let first = nodes
        .first()
        .and_then(|(_, n)| n.admin_socket.clone())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("\nTry (in another terminal):\n");
    println!("  export FERRINET_NODE=unix:{first}");
    println!("  cargo run -q -p ferrinet-node --bin ferrinetctl -- status");
    println!(
        "  cargo run -q -p ferrinet-node --bin ferrinetctl -- apply -f node/examples/manifests.yaml"
    );
    println!("  cargo run -q -p ferrinet-node --bin ferrinetctl -- get interfaces");
    println!("  cargo run -q -p ferrinet-node --bin ferrinetctl -- get interface web-0 -o yaml");
    println!("  cargo run -q -p ferrinet-node --bin ferrinetctl -- watch interfaces");
    println!("  curl -s http://{http_addr}/routes.json   # the routes the nodes announced");
    if let Some(second) = nodes.get(1).and_then(|(_, n)| n.admin_socket.clone()) {
        let second = second.display();
        println!(
            "\n  # A second node's interface, and each node's routes in the other's dataplane:"
        );
        println!(
            "  cargo run -q -p ferrinet-node --bin ferrinetctl -- --node unix:{second} apply -f node/examples/second-node.yaml"
        );
        println!(
            "  cargo run -q -p ferrinet-node --bin ferrinetctl -- --node unix:{second} routes 1001"
        );
        println!("  cargo run -q -p ferrinet-node --bin ferrinetctl -- routes 1001");
        println!("  cargo run -q -p ferrinet-node --bin ferrinetctl -- get networks -o wide");
    }
    println!(
        "\n  # The region API: tenants' networks, interfaces, NAT, load balancers, policies, peering:"
    );
    let api_flags = format!(
        "--api https://{api_addr} --ca {} --cert {} --key {}",
        pki.join(certs::CA_CERT).display(),
        pki.join(format!("{ADMIN}.pem")).display(),
        pki.join(format!("{ADMIN}.key")).display()
    );
    println!(
        "  rctl() {{ cargo run -q -p ferrinet-node --bin ferrinetctl -- {api_flags} \"$@\"; }}"
    );
    println!("  rctl apply -f api/examples/region.yaml");
    println!("  rctl get ni -A -o wide");
    println!("  rctl describe network blue -n team-a");
    if let Some(dns) = api.dns_addr {
        println!(
            "  dig @{} -p {} +short web-1.blue.team-a.dev.ferrinet.internal",
            dns.ip(),
            dns.port()
        );
    }
    println!("  curl -s http://127.0.0.1:4732/metrics   # the region API's counters");
    println!(
        "  cargo run -q -p ferrinet-node --bin ferrinetctl -- --node unix:{first} get ni   # placed by the region"
    );
    if vms.is_some() {
        print_packets(&nodes, &args.firewall_mode);
    } else {
        println!("\n  # Real packets between VMs (network namespaces), as root:");
        println!("  sudo cargo run --release -p ferrinet-dev -- --packets");
    }
    println!(
        "\nCtrl-C stops everything; state stays in {}.\n",
        dir.display()
    );

    stopped().await?;
    tracing::info!("stopping");
    for (_, n) in nodes {
        n.shutdown().await;
    }
    // After the nodes: deleting a namespace destroys the TAP in it, which a running dataplane
    // would keep trying to read.
    if let Some(v) = vms {
        v.shutdown().await;
    }
    api.shutdown().await;
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

/// Ctrl-C or SIGTERM (`sudo kill`): both leave through the same clean-up.
async fn stopped() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

/// TAP devices, raw sockets and `ip netns` need root; say so before anything starts.
fn check_root() -> anyhow::Result<()> {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .context("--packets: running id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        anyhow::bail!(
            "--packets needs root (TAP devices, raw IPv6 sockets, ip netns): \
             sudo cargo run --release -p ferrinet-dev -- --packets"
        );
    }
    Ok(())
}

/// The `--packets` part of "what to try".
fn print_packets(nodes: &[(String, Node)], firewall_mode: &str) {
    let sock = |i: usize| {
        nodes
            .get(i)
            .and_then(|(_, n)| n.admin_socket.as_deref())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    println!(
        "\n  # Real packets (firewall {firewall_mode}): every Ready interface gets a namespace"
    );
    println!("  # named after it, its TAP moved in and configured by DHCP (udhcpc).");
    let ctl = "cargo run -q -p ferrinet-node --bin ferrinetctl --";
    println!(
        "  {ctl} --node unix:{} apply -f dev/examples/packets-node-1.yaml",
        sock(0)
    );
    if nodes.len() > 1 {
        println!(
            "  {ctl} --node unix:{} apply -f dev/examples/packets-node-2.yaml",
            sock(1)
        );
        println!("  sudo ip netns exec vm-1 ping -c 3 10.30.0.2         # node-1 -> node-2");
        println!("  sudo ip netns exec vm-1 ping -c 3 fd00:30::2");
        println!("  sudo ip netns exec vm-2 ping -c 3 10.30.0.1");
    }
    println!("  {ctl} --node unix:{} counters", sock(0));
    if firewall_mode == "enforce" {
        println!(
            "  # node/examples' web-1 and web-2 accept no IPv4 ICMP: with --firewall-mode monitor,"
        );
        println!("  #   sudo ip netns exec web-2 ping -c 3 10.10.0.11");
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,ferrinet_node=info,ferrinet_api=info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinet-dev: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
