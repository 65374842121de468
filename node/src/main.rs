//! `ferrinet-node`: the node daemon. Reads `--config` (TOML, see `config/node.toml`), applies
//! the flags on top, starts, tells systemd READY=1 after the first full resync, and runs until
//! SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ferrinet_node::config::{Config, LogFormat, Settings};
use ferrinet_node::daemon::Node;

/// ferrinet node daemon: programs this hypervisor's dataplane and announces its routes.
#[derive(Parser, Debug)]
#[command(name = "ferrinet-node", version)]
struct Args {
    /// TOML configuration; without it the defaults of config/node.toml apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's name (objects naming another node are refused).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// State directory (holds state.redb).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Admin API: a Unix socket path (replaces admin.socket), or HOST:PORT (replaces
    /// admin.listen; mutual TLS when admin.ca/cert/key are set).
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// dpservice HOST:PORT, or `embedded` for the in-process software dataplane.
    #[arg(long, value_name = "ADDR|embedded")]
    dataplane: Option<String>,
    /// Where VFs come from.
    #[arg(long, value_name = "sysfs|tap")]
    vf_mode: Option<String>,
    /// A route server HOST:PORT; repeat for several (replaces the file's list).
    #[arg(long = "route-server", value_name = "ADDR")]
    route_servers: Vec<String>,
    /// Speak metalbond v1 without TLS to the route servers.
    #[arg(long)]
    route_plaintext: bool,
    /// The region API's HOST:PORT (replaces region_api.address; "" turns the region sync off).
    #[arg(long, value_name = "ADDR")]
    region_api: Option<String>,
    /// HTTP listener for /metrics, /healthz, /readyz ("" turns it off).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Validate the configuration, print `config ok`, exit.
    #[arg(long)]
    check_config: bool,
}

fn settings(a: &Args) -> anyhow::Result<Settings> {
    let mut c = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(v) = &a.node_name {
        c.node_name = v.clone();
    }
    if let Some(v) = &a.state_dir {
        c.state_dir = v.clone();
    }
    if let Some(v) = &a.admin {
        // Each form overrides its own key: a path the socket, HOST:PORT the TCP listener.
        if v.starts_with('/') || v.starts_with("unix:") {
            c.admin.socket = v.trim_start_matches("unix:").to_string();
        } else {
            c.admin.listen = v.clone();
        }
    }
    if let Some(v) = &a.dataplane {
        c.dataplane.address = v.clone();
    }
    if let Some(v) = &a.vf_mode {
        c.vf.mode = v.clone();
    }
    if !a.route_servers.is_empty() {
        c.routes.servers = a.route_servers.clone();
    }
    if a.route_plaintext {
        c.routes.plaintext = true;
    }
    if let Some(v) = &a.http {
        c.http.listen = v.clone();
    }
    if let Some(v) = &a.region_api {
        c.region_api.address = v.clone();
    }
    Ok(c.validate()?)
}

fn init_logging(s: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&s.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match s.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

async fn run(s: Settings) -> anyhow::Result<()> {
    let node = Node::start(&s).await?;
    let mut synced = node.synced.clone();
    tokio::spawn(async move {
        if synced.wait_for(|v| *v).await.is_ok() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        }
    });
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) {
        let period = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
    }
    tracing::info!("shutting down");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    node.shutdown().await;
    tracing::info!("shutdown complete");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = settings(&args).and_then(|s| {
        if args.check_config {
            println!("config ok");
            return Ok(());
        }
        init_logging(&s);
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ferrinet-node")
            .build()
            .context("starting the tokio runtime")?
            .block_on(run(s))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinet-node: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
