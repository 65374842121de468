//! `ferrinet-dataplane`: the software dataplane as a standalone gRPC server.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use ferrinet_dataplane::forward::Settings;
use ferrinet_dataplane::{DataplaneConfig, DataplaneService, PacketConfig, VfPort, config};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Software dataplane serving the dpservice gRPC API (dpdkironcore.v1) from memory.
#[derive(Debug, Parser)]
#[command(name = "ferrinet-dataplane", version)]
struct Args {
    /// gRPC port, as dpservice's --grpc-port.
    #[arg(long, default_value_t = 1337, env = "FERRINET_DATAPLANE_GRPC_PORT")]
    grpc_port: u16,

    /// Address to listen on. dpservice binds every address; this defaults to loopback so a
    /// development dataplane is not reachable from the network by accident.
    #[arg(
        long,
        default_value = "127.0.0.1",
        env = "FERRINET_DATAPLANE_LISTEN_ADDRESS"
    )]
    listen_address: IpAddr,

    /// Host underlay IPv6 address, as dpservice's --ipv6; its /64 prefixes every generated
    /// underlay address.
    #[arg(long, default_value_t = config::DEFAULT_UNDERLAY, env = "FERRINET_DATAPLANE_IPV6")]
    ipv6: Ipv6Addr,

    /// Number of TAP-style VF ports: net_tap2 .. net_tap{N+1} (netdevs dtapN); net_tap0 and
    /// net_tap1 are the PFs.
    #[arg(long, default_value_t = config::DEFAULT_VF_COUNT, conflicts_with = "vf_names")]
    vf_count: usize,

    /// Explicit VF port names instead of --vf-count, comma separated; each `name` or
    /// `name=netdev` (e.g. `0000:3b:00.0_representor_vf2=enp59s0f0v2`).
    #[arg(long, value_delimiter = ',')]
    vf_names: Vec<String>,

    /// PF port names (giving one as device_name is ALREADY_EXISTS).
    #[arg(long, value_delimiter = ',', default_value = "net_tap0,net_tap1")]
    pf_names: Vec<String>,

    /// Move real packets: each VF port handed out is backed by a TAP device named after its
    /// netdev, and traffic between nodes goes over raw IPv6 sockets (IPv4/IPv6-in-IPv6). Off:
    /// the API only, as before. Needs root (CAP_NET_ADMIN, CAP_NET_RAW).
    #[arg(long, env = "FERRINET_DATAPLANE_PACKETS")]
    packets: bool,

    /// With --packets: the Linux interface carrying the underlay; its MTU bounds what can be
    /// encapsulated (bigger packets get an ICMP error back).
    #[arg(long, requires = "packets")]
    underlay_interface: Option<String>,

    /// With --packets: the underlay MTU, overriding --underlay-interface's (default 1500).
    #[arg(long, requires = "packets")]
    underlay_mtu: Option<u16>,

    /// With --packets: `enforce` firewall verdicts, or `monitor` (forward everything and count
    /// what would have been dropped: dpservice's behaviour).
    #[arg(long, default_value = "enforce")]
    firewall_mode: String,

    /// With --packets: the MTU DHCP hands out, as dpservice's --dhcp-mtu (68..1500); capped
    /// at what fits the underlay.
    #[arg(long, default_value_t = 1500)]
    dhcp_mtu: u16,

    /// With --packets: a DNS server for DHCP, as dpservice's --dhcp-dns (repeatable).
    #[arg(long)]
    dhcp_dns: Vec<std::net::Ipv4Addr>,

    /// With --packets: a DNS server for DHCPv6, as dpservice's --dhcpv6-dns (repeatable).
    #[arg(long)]
    dhcpv6_dns: Vec<Ipv6Addr>,

    /// With --packets: leave the underlay /64 alone instead of making it local
    /// (`ip -6 route replace local <prefix> dev lo`), when the operator routes it.
    #[arg(long)]
    no_local_prefix: bool,

    /// With --packets: plain TAPs, one frame per read and write, instead of TAPs with
    /// virtio-net headers that take and give TCP super-segments (TSO/GRO).
    #[arg(long)]
    no_tap_offload: bool,

    /// With --packets: microseconds a packet loop keeps polling its empty queue before it
    /// sleeps (0: sleep at once; at most 10000). Saves a wakeup per burst and per hop of a
    /// round trip, for up to this much CPU time per wakeup.
    #[arg(long, default_value_t = config::DEFAULT_POLL_SPIN.as_micros() as u64)]
    poll_spin_us: u64,

    /// With --packets: the packet loop never sleeps, as dpservice's worker owns its core;
    /// it takes a CPU and spares every wakeup (dear on a VM). --poll-spin-us then no longer
    /// applies to it.
    #[arg(long)]
    busy_poll: bool,

    /// Log format. The level comes from RUST_LOG (default info; debug logs every call).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }

    let mut cfg = DataplaneConfig::tap(args.ipv6, args.vf_count);
    cfg.pf_ports = args.pf_names.clone();
    if !args.vf_names.is_empty() {
        cfg.vf_ports = args.vf_names.iter().map(|s| VfPort::parse(s)).collect();
    }
    if args.packets {
        let firewall =
            args.firewall_mode
                .parse()
                .map_err(|e: ferrinet_dataplane::flow::ModeError| {
                    anyhow::anyhow!("--firewall-mode: {}", e.0)
                })?;
        cfg.packets = Some(PacketConfig {
            underlay_interface: args.underlay_interface.clone(),
            underlay_mtu: args.underlay_mtu,
            make_prefix_local: !args.no_local_prefix,
            tap_offload: !args.no_tap_offload,
            poll_spin: std::time::Duration::from_micros(args.poll_spin_us),
            busy_poll: args.busy_poll,
            settings: Settings {
                firewall,
                dhcp_mtu: args.dhcp_mtu,
                dhcp_dns: args.dhcp_dns.clone(),
                dhcpv6_dns: args.dhcpv6_dns.clone(),
                ..Settings::default()
            },
            ..PacketConfig::default()
        });
    }
    let dataplane = DataplaneService::new(&cfg).context("invalid configuration")?;
    dataplane
        .start_packets()
        .context("cannot start the packet path")?;

    let addr = SocketAddr::new(args.listen_address, args.grpc_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        addr = %bound,
        underlay = %args.ipv6,
        vf_ports = cfg.vf_ports.len(),
        uuid = %dataplane.uuid(),
        "ferrinet-dataplane serving dpdkironcore.v1"
    );

    let counts_on_signal = dataplane.clone();
    tokio::spawn(async move {
        // SIGUSR1 logs the object counts, for operators without a gRPC client at hand.
        let Ok(mut usr1) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        else {
            return;
        };
        while usr1.recv().await.is_some() {
            tracing::info!(counts = %counts_on_signal.counts(), "object counts");
        }
    });

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
    };
    ferrinet_dataplane::serve_service(listener, dataplane.clone(), shutdown).await?;
    tracing::info!(counts = %dataplane.counts(), "stopped");
    Ok(())
}
