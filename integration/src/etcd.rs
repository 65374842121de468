//! etcd clusters for end-to-end tests and the load tool: `N` members of the real `etcd` binary
//! on 127.0.0.1 (free ports, data dirs in a temporary directory, one `--initial-cluster` of all
//! members, short election timeouts), which can be killed and restarted member by member and
//! are all killed on drop. [`region`] runs `ferrinet-api` replicas on such a cluster.
//!
//! etcd is a system package, not a workspace binary: when it is missing the kit fails, naming
//! the fix, and never skips.

pub mod region;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrinet_region::loadgen::http;

use crate::{ChildGuard, WAIT};

/// Times etcd is started anew on fresh ports when a member cannot bind (another process took a
/// probed port before etcd bound it).
const START_ATTEMPTS: usize = 5;

/// The `etcd` binary: `FERRINET_ETCD_BIN`, else the first `etcd` on `PATH`, `/usr/bin` or
/// `/usr/local/bin`; an error naming the fix when there is none.
pub fn etcd_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FERRINET_ETCD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .context(
            "etcd not found on PATH (nor in /usr/bin, /usr/local/bin): these tests need a real \
             etcd. Install it with `apt-get install etcd-server`, or run scripts/test, which \
             installs it",
        )
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct EtcdOpts {
    /// Members.
    pub members: usize,
    /// `--heartbeat-interval`, milliseconds.
    pub heartbeat_ms: u64,
    /// `--election-timeout`, milliseconds; etcd's shortest lease TTL is 1.5 times this,
    /// rounded up to whole seconds.
    pub election_ms: u64,
}

impl Default for EtcdOpts {
    fn default() -> Self {
        // Fast failover, yet a leader that a loaded 2-core machine delays by a few heartbeats
        // keeps its term.
        Self {
            members: 3,
            heartbeat_ms: 50,
            election_ms: 500,
        }
    }
}

/// One member: its name, ports and process (`None` while it is killed).
#[derive(Debug)]
struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<ChildGuard>,
}

/// A running etcd cluster on loopback; every member is killed when this is dropped.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    opts: EtcdOpts,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts every member and waits until each answers `/health` (a leader is elected and
    /// the member serves).
    pub fn start(opts: EtcdOpts) -> anyhow::Result<Self> {
        if opts.members == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        let bin = etcd_bin()?;
        let mut dir = tempfile::tempdir().context("tempdir")?;
        let mut last = None;
        for attempt in 0..START_ATTEMPTS {
            let ports = free_ports(2 * opts.members)?;
            let members = (0..opts.members)
                .map(|i| Member {
                    name: format!("m{i}-{attempt}"),
                    client: ports[2 * i],
                    peer: ports[2 * i + 1],
                    child: None,
                })
                .collect();
            let mut cluster = Self {
                members,
                opts: opts.clone(),
                bin: bin.clone(),
                dir,
            };
            match cluster.start_all() {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    last = Some(e.context(cluster.logs()));
                    for m in &mut cluster.members {
                        m.child = None;
                    }
                    dir = cluster.dir;
                }
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!("etcd did not start in {START_ATTEMPTS} attempts")))
    }

    fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.members.len() {
            let child = self.spawn(i)?;
            self.members[i].child = Some(child);
        }
        for i in 0..self.members.len() {
            self.wait_listening(i)?;
        }
        self.wait_healthy()
    }

    /// The members' client URLs (`http://127.0.0.1:PORT`), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client)
    }

    /// Members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never: [`EtcdCluster::start`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills member `i` at once (SIGKILL, as a crash), keeping its data dir.
    pub fn kill(&mut self, i: usize) {
        self.members[i].child = None;
    }

    /// Whether member `i` runs (was not killed, and has not exited).
    pub fn running(&mut self, i: usize) -> bool {
        self.members[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.0.try_wait(), Ok(None)))
    }

    /// Starts member `i` again on its data dir and ports (it rejoins with what it had) and
    /// waits until it answers `/health`.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        let deadline = Instant::now() + WAIT;
        loop {
            let child = self.spawn(i)?;
            self.members[i].child = Some(child);
            // Its old sockets may linger a moment: a member that exits at once is retried.
            match self.wait_listening(i) {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(self.log(i)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        self.wait_member_healthy(i)
    }

    /// Waits until every running member answers `/health` with `true`.
    pub fn wait_healthy(&mut self) -> anyhow::Result<()> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_some() {
                self.wait_member_healthy(i)?;
            }
        }
        Ok(())
    }

    fn wait_member_healthy(&mut self, i: usize) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.members[i].client));
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match http::get(addr, "/health", Duration::from_secs(5)) {
                Ok(r) if r.status == 200 && r.body.contains("\"true\"") => return Ok(()),
                Ok(r) => format!("status {}: {}", r.status, r.body),
                Err(e) => format!("{e:#}"),
            };
            if !self.running(i) {
                bail!("etcd member {i} exited; log:\n{}", self.log(i));
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd member {i} not healthy within {WAIT:?} (last: {last}); log:\n{}",
                    self.log(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until member `i` accepts connections on its client port; fails at once if it
    /// exited (a port taken).
    fn wait_listening(&mut self, i: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            if !self.running(i) {
                bail!("etcd member {i} exited at start");
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.members[i].client)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("etcd member {i} does not listen within {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("member-{i}.log"))
    }

    /// The last lines member `i` logged (every run of it).
    pub fn log(&self, i: usize) -> String {
        tail(
            &std::fs::read_to_string(self.log_path(i)).unwrap_or_default(),
            30,
        )
    }

    /// The last lines of every member's log.
    pub fn logs(&self) -> String {
        (0..self.members.len())
            .map(|i| format!("--- etcd member {i} log (tail):\n{}\n", self.log(i)))
            .collect()
    }

    fn spawn(&self, i: usize) -> anyhow::Result<ChildGuard> {
        let m = &self.members[i];
        let peer_url = |m: &Member| format!("http://127.0.0.1:{}", m.peer);
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, peer_url(m)))
            .collect();
        let client = format!("http://127.0.0.1:{}", m.client);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .context("etcd log file")?;
        let child = Command::new(&self.bin)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(data_dir(self.dir.path(), &m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer_url(m)])
            .args(["--initial-advertise-peer-urls", &peer_url(m)])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "ferrinet-test"])
            .args(["--heartbeat-interval", &self.opts.heartbeat_ms.to_string()])
            .args(["--election-timeout", &self.opts.election_ms.to_string()])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("etcd log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        Ok(ChildGuard(child))
    }
}

fn data_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.etcd"))
}

/// `n` distinct loopback ports that were free a moment ago (all probed at once, so distinct).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("probing free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
