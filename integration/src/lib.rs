//! Helpers for the end-to-end tests in tests/: locate (and if needed build) the real
//! `ferrinet-region` binary, make PKIs, start servers on loopback with port 0 from a typed
//! configuration and learn their addresses from the ready file, and talk to them with the client
//! library, raw frames or HTTP. The tools the `bench` command shares with the tests (raw
//! connection, HTTP GET, route generation, ready file) live in `ferrinet_region::loadgen`.
//!
//! Everything listens on 127.0.0.1 only. Every child process is killed when its guard drops.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ferrinet_region::config::{CompatMode, Config, NodeEntry};
use ferrinet_region::loadgen::{Ready, http};
use ferrinet_route_client::client::TlsClient;

pub mod api;
pub mod cluster;
pub mod dataplane;
pub mod etcd;
pub mod manifest;
pub mod netns;
pub mod node;
pub mod packets;
pub mod raw;
pub mod watch;

/// How long a test waits for something that should happen (generous: CI is a loaded 2-core
/// machine running debug builds). Tests never assert how long anything took.
pub use ferrinet_region::loadgen::WAIT;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The cargo profile of the binaries this kit starts: its own, so that the release load tool
/// drives release daemons and the (debug) tests debug ones.
const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// A workspace binary: `env` if set, else `<target>/<profile>/<bin>`, built first (once per
/// process) when it is missing or older than the sources it is made from (`inputs`, relative
/// to the workspace root).
///
/// The staleness check avoids a nested `cargo build` when the binary is fresh: that build
/// resolves features for the package alone, differently from `cargo test`, and would relink on
/// every test run.
pub(crate) fn workspace_bin(env: &str, package: &str, bin: &str, inputs: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let path = target_dir().join(PROFILE).join(bin);
    if is_fresh(&path, inputs) {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let release: &[&str] = if PROFILE == "release" {
        &["--release"]
    } else {
        &[]
    };
    let status = Command::new(cargo)
        .args(["build", "-p", package, "--bin", bin])
        .args(release)
        .current_dir(workspace_root())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("cargo build of {bin} failed: {s}"),
        Err(e) => panic!("cannot run cargo to build {bin}: {e}"),
    }
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// The `ferrinet-region` binary (`FERRINET_REGION_BIN` overrides).
pub fn region_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_bin(
            "FERRINET_REGION_BIN",
            "ferrinet-region",
            "ferrinet-region",
            &[
                "Cargo.toml",
                "Cargo.lock",
                "region",
                "route-client",
                "proto",
            ],
        )
    })
}

const NODE_INPUTS: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "node",
    "route-client",
    "dataplane",
    "proto",
];

/// The `ferrinet-node` binary (`FERRINET_NODE_BIN` overrides).
pub fn node_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_bin(
            "FERRINET_NODE_BIN",
            "ferrinet-node",
            "ferrinet-node",
            NODE_INPUTS,
        )
    })
}

/// The `ferrinetctl` binary (`FERRINETCTL_BIN` overrides).
pub fn ctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_bin(
            "FERRINETCTL_BIN",
            "ferrinet-node",
            "ferrinetctl",
            NODE_INPUTS,
        )
    })
}

fn is_fresh(bin: &Path, inputs: &[&str]) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    let root = workspace_root();
    inputs
        .iter()
        .all(|p| newest(&root.join(p)).is_some_and(|t| t <= built))
}

/// The newest modification time under `p` (a file or a directory, recursively).
fn newest(p: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(p).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    let mut t = meta.modified().ok()?;
    for entry in std::fs::read_dir(p).ok()? {
        let entry = entry.ok()?;
        t = t.max(newest(&entry.path())?);
    }
    Some(t)
}

/// A PKI made by `ferrinet-region certs` in a directory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// Where the PEM files are.
    pub dir: PathBuf,
}

impl Pki {
    /// Runs `ferrinet-region certs --out DIR --node NAME...`.
    pub fn create(dir: &Path, nodes: &[&str]) -> anyhow::Result<Self> {
        Self::create_with_server_names(dir, nodes, &[])
    }

    /// [`Pki::create`] whose server certificate also names `server_names` (DNS names or IP
    /// addresses, `--server-name`) besides localhost, 127.0.0.1 and ::1: for servers that
    /// clients reach on another address, such as the bridge of a [`netns::Fabric`].
    pub fn create_with_server_names(
        dir: &Path,
        nodes: &[&str],
        server_names: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(region_bin());
        cmd.arg("certs").arg("--out").arg(dir);
        for n in nodes {
            cmd.args(["--node", n]);
        }
        for n in server_names {
            cmd.args(["--server-name", n]);
        }
        let out = cmd.output().context("running ferrinet-region certs")?;
        if !out.status.success() {
            bail!(
                "ferrinet-region certs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A node's certificate.
    pub fn cert(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.pem"))
    }

    /// A node's key.
    pub fn key(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.key"))
    }

    /// A TLS client config trusting this CA, presenting `node`'s certificate (or none).
    pub fn client_config(&self, node: Option<&str>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let (cert, key) = match node {
            Some(n) => (Some(self.cert(n)), Some(self.key(n))),
            None => (None, None),
        };
        Ok(ferrinet_region::tls::client_config_from_files(
            &self.ca(),
            cert.as_deref(),
            key.as_deref(),
        )?)
    }

    /// Client-library TLS settings for `node` (server name 127.0.0.1, a SAN of the server).
    pub fn tls_client(&self, node: &str) -> anyhow::Result<TlsClient> {
        Ok(TlsClient {
            config: self.client_config(Some(node))?,
            server_name: ferrinet_region::tls::server_name("127.0.0.1")?,
        })
    }
}

/// How to configure a test server.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    /// `[compat] mode`.
    pub compat_mode: CompatMode,
    /// `[[authorization.node]]` entries: identity and allowed next-hop prefixes.
    pub nodes: Vec<(&'static str, Vec<&'static str>)>,
    /// Largest keepalive the server accepts: high, so raw test sockets that send no keepalives
    /// survive a slow machine.
    pub keepalive_secs: u64,
}

impl Default for ServerOpts {
    fn default() -> Self {
        Self {
            compat_mode: CompatMode::Trusted,
            nodes: vec![
                ("node-a", vec!["fd00:a::/64"]),
                ("node-b", vec!["fd00:b::/64"]),
            ],
            keepalive_secs: 3600,
        }
    }
}

impl ServerOpts {
    /// The server configuration: these options, the PKI's certificates, every listener on
    /// 127.0.0.1 with port 0, unlisted identities read-only. Tests adjust it further as typed
    /// values.
    pub fn config(&self, pki: &Pki) -> Config {
        let any = "127.0.0.1:0".to_string();
        let mut c = Config::default();
        c.server.listen = any.clone();
        c.server.keepalive_secs = self.keepalive_secs;
        c.tls.cert = Some(pki.dir.join("server.pem"));
        c.tls.key = Some(pki.dir.join("server.key"));
        c.tls.client_ca = Some(pki.ca());
        c.compat.listen = any.clone();
        c.compat.mode = self.compat_mode;
        c.http.listen = any;
        c.authorization.node = self
            .nodes
            .iter()
            .map(|(identity, hops)| NodeEntry {
                identity: (*identity).to_string(),
                next_hops: hops.iter().map(|h| (*h).to_string()).collect(),
            })
            .collect();
        c
    }
}

/// How to start the server process, beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Environment variables to set; those of systemd that the test process may have are
    /// removed first.
    pub env: Vec<(String, OsString)>,
    /// Start through `sh`, so that `WATCHDOG_PID` can name the server's own pid as systemd does.
    pub watchdog_pid_self: bool,
    /// Start inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

/// A running `ferrinet-region serve`, killed on drop.
#[derive(Debug)]
pub struct RegionServer {
    child: ChildGuard,
    /// TLS route listener.
    pub tls: SocketAddr,
    /// Plaintext route listener.
    pub compat: SocketAddr,
    /// HTTP status listener, if it is on.
    pub http: Option<SocketAddr>,
    launch: Launch,
    log: PathBuf,
    config: PathBuf,
    ready: PathBuf,
    _dir: tempfile::TempDir,
}

impl RegionServer {
    /// Starts a server configured by `opts` with the PKI's certificates and waits until its
    /// ready file names the bound addresses.
    pub fn start(pki: &Pki, opts: &ServerOpts) -> anyhow::Result<Self> {
        Self::start_config(&opts.config(pki), Launch::default())
    }

    /// Starts `serve --config <config>` and waits until its ready file names the bound
    /// addresses; both route listeners must be on.
    pub fn start_config(config: &Config, launch: Launch) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let path = dir.path().join("region.toml");
        std::fs::write(&path, config.to_toml()?).context("writing the server config")?;
        let ready = dir.path().join("ready.json");
        let log = dir.path().join("server.log");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut server = Self {
            child: ChildGuard(spawn_server(&path, &ready, &log, &launch, None)?),
            tls: any,
            compat: any,
            http: None,
            launch,
            log,
            config: path,
            ready,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Kills the server and starts it again on the same route ports (a server restart as
    /// clients see it: same addresses, empty table).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let _ = std::fs::remove_file(&self.ready);
        let same = Some((self.tls, self.compat));
        self.child.0 = spawn_server(&self.config, &self.ready, &self.log, &self.launch, same)?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let r = Ready::wait(&self.ready, &mut self.child.0, WAIT)
            .map_err(|e| e.context(format!("server log:\n{}", self.log())))?;
        self.tls = r.tls.context("the ready file names no tls listener")?;
        self.compat = r
            .compat
            .context("the ready file names no compat listener")?;
        self.http = r.http;
        Ok(())
    }

    /// The ready file (removed by a clean exit).
    pub fn ready_file(&self) -> &Path {
        &self.ready
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server at once (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Sends SIGTERM (with kill(1): no signal crate among the dependencies).
    pub fn sigterm(&self) -> anyhow::Result<()> {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill")?;
        ensure!(st.success(), "kill -TERM failed: {st}");
        Ok(())
    }

    /// Waits for the process to exit (killing it after [`WAIT`]).
    pub fn wait_exit(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let log = self.log.clone();
        self.child.wait_exit().map_err(|e| {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            e.context(format!("server log:\n{log}"))
        })
    }

    /// GET `path` on the HTTP listener.
    pub fn get(&self, path: &str) -> anyhow::Result<http::Response> {
        let addr = self.http.context("the server's HTTP listener is off")?;
        http::get(addr, path, WAIT)
    }

    /// GET `path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.get(path)?;
        ensure!(r.status == 200, "GET {path}: status {}", r.status);
        serde_json::from_str(&r.body).with_context(|| format!("GET {path}: not JSON: {}", r.body))
    }

    /// The routes the server holds in `vni`, `(prefix, next hop)`, from every page of
    /// `/routes.json?vni=`.
    pub fn routes(&self, vni: u32) -> anyhow::Result<BTreeSet<(String, String)>> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/routes.json?vni={vni}&limit=10000"),
                Some(c) => format!("/routes.json?vni={vni}&limit=10000&cursor={c}"),
            };
            let v = self.get_json(&path)?;
            for vni in v["vnis"].as_array().into_iter().flatten() {
                for r in vni["routes"].as_array().into_iter().flatten() {
                    out.insert((
                        r["prefix"].as_str().unwrap_or_default().to_string(),
                        r["next_hop"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
            match &v["next"] {
                serde_json::Value::Null => return Ok(out),
                n => cursor = Some(n.as_str().map_or_else(|| n.to_string(), str::to_string)),
            }
        }
    }

    /// The value of an unlabelled counter or gauge in `/metrics`.
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let r = self.get("/metrics")?;
        ensure!(r.status == 200, "GET /metrics: status {}", r.status);
        http::metric_value(&r.body, name)
            .with_context(|| format!("no {name} in /metrics:\n{}", r.body))
    }

    /// Polls `/sessions.json` until `cond` holds.
    pub fn sessions_until(
        &self,
        what: &str,
        cond: impl Fn(&[serde_json::Value]) -> bool,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        poll(what, || {
            let v = self.get_json("/sessions.json")?;
            let list = v
                .as_array()
                .context("sessions.json is not an array")?
                .clone();
            Ok(cond(&list).then_some(list))
        })
    }
}

/// Starts `ferrinet-region serve --config <config>`, logging (appended) to `log`; `listen`
/// overrides the route listeners of the config.
fn spawn_server(
    config: &Path,
    ready: &Path,
    log: &Path,
    launch: &Launch,
    listen: Option<(SocketAddr, SocketAddr)>,
) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .context("opening the server log")?;
    let mut cmd = if launch.watchdog_pid_self {
        // `exec` keeps the shell's pid, so $$ is the server's pid.
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("export WATCHDOG_PID=$$; exec \"$0\" \"$@\"")
            .arg(region_bin());
        c
    } else if let Some(ns) = &launch.netns {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(region_bin());
        c
    } else {
        Command::new(region_bin())
    };
    cmd.arg("serve").arg("--config").arg(config);
    if let Some((tls, compat)) = listen {
        cmd.args(["--listen", &tls.to_string()])
            .args(["--compat-listen", &compat.to_string()]);
    }
    cmd.arg("--ready-file")
        .arg(ready)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().context("log file")?)
        .stderr(log_file);
    cmd.spawn().context("starting ferrinet-region serve")
}

/// Calls `f` until it returns `Some`, at most [`WAIT`].
pub fn poll<T>(what: &str, mut f: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > WAIT {
            bail!("{what}: not within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test environment: a temporary directory with a PKI for `node-a`, `node-b` and `node-c`
/// (the last one without an authorization entry), and a second, foreign PKI.
#[derive(Debug)]
pub struct Env {
    /// The region's PKI.
    pub pki: Pki,
    /// A PKI the servers do not trust.
    pub foreign: Pki,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Makes both PKIs.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let pki = Pki::create(&dir.path().join("pki"), &["node-a", "node-b", "node-c"])?;
        let foreign = Pki::create(&dir.path().join("foreign"), &["node-a"])?;
        Ok(Self {
            pki,
            foreign,
            _dir: dir,
        })
    }
}

/// A child process killed when dropped (a `ferrinet-region client`, for instance).
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Waits for the process to exit, at most [`WAIT`]; kills it and fails after that.
    pub fn wait_exit(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > WAIT {
                self.kill();
                bail!("process did not exit within {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ferrinet-region client` with `args`, stdout piped (route lines), stderr piped (status lines).
pub fn spawn_cli_client(args: &[&str]) -> anyhow::Result<ChildGuard> {
    let child = Command::new(region_bin())
        .arg("client")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ferrinet-region client")?;
    Ok(ChildGuard(child))
}

/// Runs `ferrinet-region client` with `args` to completion (it must exit on its own, e.g. with
/// --count or --exit-on-established plus --timeout). Returns status, stdout, stderr.
pub fn run_cli_client(args: &[&str]) -> anyhow::Result<(std::process::ExitStatus, String, String)> {
    use std::io::Read as _;
    let mut g = spawn_cli_client(args)?;
    // Read both pipes on threads so that a chatty child never blocks on a full pipe.
    let mut out = g.0.stdout.take().context("stdout")?;
    let mut err = g.0.stderr.take().context("stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = g.wait_exit()?;
    let out = t_out.join().unwrap_or_default();
    let err = t_err.join().unwrap_or_default();
    Ok((status, out, err))
}
