//! `ferrinet-api`: the region API. Reads `--config` (TOML, see `config/api.toml`), applies the
//! flags on top, starts, tells systemd READY=1 once it serves, and runs until SIGTERM or SIGINT.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ferrinet_api::config::{Config, Settings};

/// ferrinet region API: networks, interfaces, virtual IPs, NAT gateways, load balancers,
/// policies and peerings of a region; allocation; placement on nodes; DNS.
#[derive(Parser, Debug)]
#[command(name = "ferrinet-api", version)]
struct Args {
    /// TOML configuration; without it the defaults of config/api.toml apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// gRPC listener HOST:PORT (replaces api.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Embedded store file (replaces store.path).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// DNS listener HOST:PORT (replaces dns.listen; "" turns it off).
    #[arg(long, value_name = "ADDR")]
    dns: Option<String>,
    /// Write `{"api":"ADDR","dns":"ADDR"|null,"pid":N}` to this file once serving.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Validate the configuration, print `config ok`, exit.
    #[arg(long)]
    check_config: bool,
}

fn settings(a: &Args) -> anyhow::Result<Settings> {
    let (mut c, base) = match &a.config {
        Some(p) => (
            Config::load(p)?,
            p.parent().unwrap_or(Path::new(".")).to_owned(),
        ),
        None => (Config::default(), PathBuf::from(".")),
    };
    if let Some(v) = &a.listen {
        c.api.listen = v.clone();
    }
    if let Some(v) = &a.state {
        c.store.path = v.display().to_string();
    }
    if let Some(v) = &a.dns {
        c.dns.listen = v.clone();
    }
    Ok(c.validate(&base)?)
}

fn init_logging(s: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&s.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if s.log_json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn run(s: Settings, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let api = ferrinet_api::daemon::start(&s).await?;
    if let Some(path) = ready_file {
        let dns = api
            .dns_addr
            .map(|a| format!("\"{a}\""))
            .unwrap_or_else(|| "null".into());
        let text = format!(
            "{{\"api\":\"{}\",\"dns\":{dns},\"pid\":{}}}\n",
            api.addr,
            std::process::id()
        );
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
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
    api.shutdown().await;
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
            .thread_name("ferrinet-api")
            .build()
            .context("starting the tokio runtime")?
            .block_on(run(s, args.ready_file.clone()))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinet-api: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
