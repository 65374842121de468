//! `ferrinet-region serve`: run a region route server.
//!
//! Startup: read and validate the config (flags override it), bind every listener, log
//! `listening tls=ADDR compat=ADDR http=ADDR` (`off` for a disabled one), write `--ready-file`,
//! tell systemd READY=1, then serve until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ferrinet_region::certs;
use ferrinet_region::config::{Config, LogFormat, NodeEntry, Settings, parse_listen};
use ferrinet_region::loadgen::Ready;
use ferrinet_region::server::{self, Listeners, ServerConfig};
use tokio::net::TcpListener;

/// Options of `ferrinet-region serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Config file (TOML); without it the built-in defaults apply (see config/region.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// TLS listener address, overrides server.listen ("" turns it off; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Plaintext listener address for metalbond v1 peers, overrides compat.listen.
    #[arg(long, value_name = "ADDR")]
    compat_listen: Option<String>,
    /// HTTP status address, overrides http.listen ("" turns it off).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Development certificates: create a CA, server and node-a/node-b certificates in DIR if
    /// it has no CA yet, and use them (overrides [tls]). When the config authorizes no node,
    /// node-a may announce next hops in fd00:a::/64 and node-b in fd00:b::/64.
    #[arg(long, value_name = "DIR")]
    dev_certs: Option<PathBuf>,
    /// Once listening, write the bound addresses as JSON to this file:
    /// {"tls":"127.0.0.1:4711","compat":null,"http":"127.0.0.1:4712","pid":123}.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Validate the configuration (and load the certificates), then exit.
    #[arg(long)]
    check_config: bool,
}

fn settings(args: &Args) -> anyhow::Result<Settings> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    for (flag, value, slot) in [
        ("--listen", &args.listen, &mut cfg.server.listen),
        (
            "--compat-listen",
            &args.compat_listen,
            &mut cfg.compat.listen,
        ),
        ("--http", &args.http, &mut cfg.http.listen),
    ] {
        if let Some(v) = value {
            parse_listen(flag, v)?;
            *slot = v.clone();
        }
    }
    if let Some(dir) = &args.dev_certs {
        cfg.tls.cert = Some(dir.join(certs::SERVER_CERT));
        cfg.tls.key = Some(dir.join(certs::SERVER_KEY));
        cfg.tls.client_ca = Some(dir.join(certs::CA_CERT));
        // Without grants the dev nodes could only subscribe; give each its own underlay /64 so
        // the README's announce example works with the embedded defaults.
        if cfg.authorization.node.is_empty() {
            cfg.authorization.node = DEV_GRANTS
                .iter()
                .map(|(identity, prefix)| NodeEntry {
                    identity: (*identity).to_string(),
                    next_hops: vec![(*prefix).to_string()],
                })
                .collect();
        }
    }
    Ok(cfg.validate()?)
}

/// Next-hop grants of the development node certificates, used when the config has none.
const DEV_GRANTS: [(&str, &str); 2] = [("node-a", "fd00:a::/64"), ("node-b", "fd00:b::/64")];

fn dev_certs(dir: &Path) -> anyhow::Result<()> {
    if certs::ca_exists(dir) {
        return Ok(());
    }
    let nodes = ["node-a".to_string(), "node-b".to_string()];
    let files = certs::write_pki(dir, &[], &nodes, false)
        .with_context(|| format!("creating development certificates in {}", dir.display()))?;
    tracing::info!(
        dir = %dir.display(),
        files = files.len(),
        "created development certificates (CA, server, node-a, node-b)"
    );
    Ok(())
}

fn init_logging(s: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&s.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: journald and tests parse plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match s.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let s = settings(&args)?;
    if args.check_config {
        // Dev certificates that `serve` would create are not there to load yet; existing ones
        // must load, or the check would pass a PKI that `serve` then refuses.
        let certs_pending = args
            .dev_certs
            .as_deref()
            .is_some_and(|d| !certs::ca_exists(d));
        if !certs_pending {
            s.server_config()?;
        }
        if s.addresses.tls.is_some() && s.tls.is_none() && !certs_pending {
            return Err(server::ServerError::NoTls.into());
        }
        println!("config ok");
        return Ok(());
    }
    init_logging(&s);
    if let Some(dir) = &args.dev_certs {
        dev_certs(dir)?;
    }
    let cfg = s.server_config()?;
    if s.addresses.tls.is_some() && cfg.tls.is_none() {
        return Err(server::ServerError::NoTls.into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferrinet-region")
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(serve(s, cfg, args.ready_file))
}

async fn bind(key: &str, addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        None => Ok(None),
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .with_context(|| format!("cannot listen on {a} ({key})")),
    }
}

fn shown(l: &Option<TcpListener>) -> anyhow::Result<Option<SocketAddr>> {
    l.as_ref()
        .map(|l| l.local_addr().context("reading a bound address"))
        .transpose()
}

async fn serve(s: Settings, cfg: ServerConfig, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let listeners = Listeners {
        tls: bind("server.listen", s.addresses.tls).await?,
        compat: bind("compat.listen", s.addresses.compat).await?,
        http: bind("http.listen", s.addresses.http).await?,
    };
    let (tls, compat, http) = (
        shown(&listeners.tls)?,
        shown(&listeners.compat)?,
        shown(&listeners.http)?,
    );
    let fmt = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
    // Tests parse this exact line; keep its shape.
    tracing::info!(
        "listening tls={} compat={} http={}",
        fmt(tls),
        fmt(compat),
        fmt(http)
    );
    if let Some(path) = &ready_file {
        let ready = Ready {
            tls,
            compat,
            http,
            pid: std::process::id(),
        };
        ready
            .write(path)
            .with_context(|| format!("writing --ready-file {}", path.display()))?;
    }
    notify_systemd();

    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    };
    server::run(listeners, cfg, shutdown).await?;
    if let Some(path) = &ready_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// READY=1 now that the listeners are bound, then watchdog pings at half the interval systemd
/// asked for. Both are no-ops outside systemd.
fn notify_systemd() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "sd_notify READY failed");
    }
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let every = Duration::from_micros(usec / 2);
        tracing::info!(?every, "systemd watchdog enabled");
        // Pinged from a runtime task: a wedged runtime stops the pings and systemd restarts us.
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}
