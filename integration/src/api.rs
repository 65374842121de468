//! The region API for end-to-end tests: the real `ferrinet-api` binary on loopback (or in a
//! network namespace, [`ApiProc::start_in`]) with its embedded store in a temporary directory
//! (or another store, [`ApiOpts`]), mutual TLS with the kit's PKI (or plaintext), and
//! `ferrinetctl --api` runs against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::Context as _;

use crate::{ChildGuard, Pki, WAIT, ctl_bin, poll, workspace_bin};

/// The identity of the admin certificate the kit makes for `ferrinetctl --api`.
pub const ADMIN: &str = "admin";

/// The `ferrinet-api` binary (`FERRINET_API_BIN` overrides).
pub fn api_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_bin(
            "FERRINET_API_BIN",
            "ferrinet-api",
            "ferrinet-api",
            &["Cargo.toml", "Cargo.lock", "api", "proto", "route-client"],
        )
    })
}

/// How to run a replica beyond what [`ApiProc::start`] sets (mutual TLS with the kit's PKI,
/// the embedded store in its directory, a free port).
#[derive(Debug, Clone, Default)]
pub struct ApiOpts {
    /// `api.listen`; default `127.0.0.1:0`. Replicas that name each other need a fixed port:
    /// the address a replica advertises is derived from it, and a restart keeps it.
    pub listen: Option<String>,
    /// The keys of the `[store]` table, as TOML lines (e.g. `backend = "etcd"`); default: the
    /// embedded store in the replica's directory.
    pub store: Option<String>,
    /// TOML appended to the configuration.
    pub extra: String,
}

/// A running `ferrinet-api`.
#[derive(Debug)]
pub struct ApiProc {
    /// The process.
    pub child: ChildGuard,
    /// Its gRPC address.
    pub addr: String,
    /// Its DNS address (UDP and TCP).
    pub dns: String,
    log: PathBuf,
    /// The log's length when the current process started.
    log_start: u64,
    config: PathBuf,
    ready: PathBuf,
    /// `None`: plaintext.
    pki: Option<Pki>,
    netns: Option<String>,
}

impl ApiProc {
    /// Starts `ferrinet-api` with its store under `dir`, TLS from `pki` (whose server
    /// certificate names localhost and 127.0.0.1), `admin` as admin and every `node` as a node,
    /// and `extra` TOML appended. Returns once it serves (its ready file is written).
    pub fn start(dir: &Path, pki: &Pki, nodes: &[&str], extra: &str) -> anyhow::Result<Self> {
        let opts = ApiOpts {
            extra: extra.to_owned(),
            ..ApiOpts::default()
        };
        Self::launch(None, dir, Some((pki, nodes)), &opts)
    }

    /// [`ApiProc::start`] configured by `opts`, inside network namespace `netns` (`ip netns
    /// exec`; `opts.listen` should then name an address there). [`ApiProc::ctl`] runs
    /// `ferrinetctl` in the same namespace.
    pub fn start_in(
        netns: Option<&str>,
        dir: &Path,
        pki: &Pki,
        nodes: &[&str],
        opts: &ApiOpts,
    ) -> anyhow::Result<Self> {
        Self::launch(netns, dir, Some((pki, nodes)), opts)
    }

    /// Starts a plaintext `ferrinet-api` (every caller is an admin) configured by `opts`, with
    /// its files under `dir` (one replica per directory). Returns once it serves.
    pub fn start_plain(dir: &Path, opts: &ApiOpts) -> anyhow::Result<Self> {
        Self::launch(None, dir, None, opts)
    }

    fn launch(
        netns: Option<&str>,
        dir: &Path,
        tls: Option<(&Pki, &[&str])>,
        opts: &ApiOpts,
    ) -> anyhow::Result<Self> {
        let listen = opts.listen.as_deref().unwrap_or("127.0.0.1:0");
        let mut config = format!("[api]\nlisten = {listen:?}\n");
        if let Some((pki, nodes)) = tls {
            let quoted: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
            config += &format!(
                "ca = {:?}\ncert = {:?}\nkey = {:?}\n[access]\nadmins = [\"{ADMIN}\"]\nnodes = [{}]\n",
                pki.ca(),
                pki.dir.join("server.pem"),
                pki.dir.join("server.key"),
                quoted.join(", "),
            );
        }
        let store = match &opts.store {
            Some(s) => s.clone(),
            None => format!("path = {:?}", dir.join("api-state.redb")),
        };
        config += &format!(
            "[store]\n{store}\n[dns]\nlisten = \"127.0.0.1:0\"\nzone = \"test.ferrinet\"\n{}\n",
            opts.extra
        );
        let path = dir.join("api.toml");
        std::fs::write(&path, config).context("writing the API config")?;
        let log = dir.join("api.log");
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
        let netns = netns.map(str::to_owned);
        let mut api = Self {
            child: ChildGuard(spawn(
                netns.as_deref(),
                &path,
                &dir.join("api.ready"),
                &log,
            )?),
            addr: String::new(),
            dns: String::new(),
            log,
            log_start,
            config: path,
            ready: dir.join("api.ready"),
            pki: tls.map(|(p, _)| p.clone()),
            netns,
        };
        api.wait_ready()?;
        Ok(api)
    }

    /// Waits for the ready file of the current process; learns its addresses.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let text = poll("ferrinet-api ready file", || {
            // A replica that cannot start (a fixed port taken) exits: no use waiting.
            if let Some(st) = self.child.0.try_wait()? {
                anyhow::bail!("ferrinet-api exited ({st}) before it was ready");
            }
            Ok(std::fs::read_to_string(&self.ready)
                .ok()
                .filter(|t| t.ends_with('\n')))
        })
        .with_context(|| self.log_since_start())?;
        let v: serde_json::Value = serde_json::from_str(&text).context("ready file")?;
        let field = |k: &str| v[k].as_str().map(str::to_owned).context("ready file field");
        self.addr = field("api")?;
        self.dns = field("dns")?;
        Ok(())
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Kills the process (if it runs) and starts it again with the same configuration (and so
    /// the same store and, with a fixed `listen`, the same address).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        self.child = ChildGuard(spawn(
            self.netns.as_deref(),
            &self.config,
            &self.ready,
            &self.log,
        )?);
        self.wait_ready()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// What the current process logged (not the runs before a restart).
    pub fn log_since_start(&self) -> String {
        let log = self.log();
        let start = usize::try_from(self.log_start).unwrap_or(0);
        log.get(start..).unwrap_or(&log).to_owned()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ferrinetctl --api` as the admin (inside the API's namespace, if it has one); returns
    /// the exit code, stdout and stderr.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<(i32, String, String)> {
        use std::io::Write as _;
        let mut cmd = command(self.netns.as_deref(), ctl_bin());
        match &self.pki {
            Some(pki) => {
                let api = format!("https://{}", self.addr.replace("127.0.0.1", "localhost"));
                cmd.args(["--api", &api])
                    .args(["--ca", &pki.ca().display().to_string()])
                    .args(["--cert", &pki.cert(ADMIN).display().to_string()])
                    .args(["--key", &pki.key(ADMIN).display().to_string()]);
            }
            None => {
                cmd.args(["--api", &format!("http://{}", self.addr)]);
            }
        }
        let mut child = cmd
            .args(["--timeout", &WAIT.as_secs().to_string()])
            .args(args)
            .env_remove("FERRINET_API")
            .env_remove("FERRINET_NODE")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning ferrinetctl")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// `program`, inside `netns` if given (`ip netns exec`, which execs it: the child's pid is the
/// program's).
fn command(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Spawns `ferrinet-api --config CONFIG --ready-file READY` (removed first) inside `netns` if
/// given, logging (appended) to `log`.
fn spawn(
    netns: Option<&str>,
    config: &Path,
    ready: &Path,
    log: &Path,
) -> anyhow::Result<std::process::Child> {
    let _ = std::fs::remove_file(ready);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    command(netns, api_bin())
        .args(["--config", &config.display().to_string()])
        .args(["--ready-file", &ready.display().to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .context("spawning ferrinet-api")
}
