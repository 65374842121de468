//! `ferrinet-dataplane`: the software dataplane as a standalone gRPC server.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use ferrinet_dataplane::{DataplaneConfig, DataplaneService, VfPort, config};
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
    let dataplane = DataplaneService::new(&cfg).context("invalid port configuration")?;

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
