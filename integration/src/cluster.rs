//! A region in miniature: route servers and nodes on loopback, each node the real
//! `ferrinet-node` process programming its OWN software dataplane served from this process. The
//! dataplane therefore outlives a `kill -9` of its node (as dpservice outlives metalnet) and can
//! be restarted in-process ([`ferrinet_dataplane::DataplaneService::restart`]) under a running
//! node. Every node connects to every server over plaintext (the servers' trusted compat
//! listener), node `i` has underlay `fc00:<i+1>::/64`.
//!
//! Checks poll what the dataplanes hold through the dpservice API with [`Cluster::until`],
//! which on failure shows the last state seen and the tail of every log.

use std::fmt::Debug;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ferrinet_proto::node::v1 as pb;

use crate::dataplane::{Dataplane, DataplaneView};
use crate::node::NodeProc;
use crate::{Pki, RegionServer, ServerOpts, WAIT};

/// How to build a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    /// Route servers.
    pub servers: usize,
    /// Nodes.
    pub nodes: usize,
    /// `routes.keepalive_secs` of every node; the hold time is 2.5 times this.
    pub keepalive_secs: u64,
    /// VFs of every dataplane and node (`vf.tap_count`).
    pub vf_count: usize,
    /// Appended to every node's configuration, as dotted keys (the kit writes its own that
    /// way, so any key can be added): e.g. `reconcile.backoff_min_ms = 20`. `{node}` stands
    /// for the node's name (per-node certificates), `{underlay}` for its underlay /64.
    pub extra_toml: String,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            servers: 2,
            nodes: 3,
            // Short, for quick reaction to dead sessions, but with a hold time (5 s) that a
            // debug node on a loaded 2-core machine does not miss by accident.
            keepalive_secs: 2,
            vf_count: 126,
            extra_toml: String::new(),
        }
    }
}

/// One node of a cluster: the process and the dataplane it programs.
#[derive(Debug)]
pub struct ClusterNode {
    /// `a`, `b`, `c`, ... (`n27` and on after `z`).
    pub name: String,
    /// The `ferrinet-node` process.
    pub proc: NodeProc,
    /// Its dataplane, served here.
    pub dataplane: Dataplane,
}

impl ClusterNode {
    /// `ferrinetctl --node <this node> ARGS`, which must exit 0; returns its stdout.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let (code, out, err) = self.proc.ctl(args, stdin)?;
        ensure!(
            code == 0,
            "ferrinetctl {args:?} on {} exited {code}: {out}{err}",
            self.name
        );
        Ok(out)
    }

    /// `ferrinetctl apply -f -` with `manifest`.
    pub fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        self.ctl(&["apply", "-f", "-"], Some(manifest))
    }

    /// `ferrinetctl delete KIND NAME`.
    pub fn delete(&self, kind: &str, name: &str) -> anyhow::Result<String> {
        self.ctl(&["delete", kind, name], None)
    }

    /// Waits until interface `name` is Ready; returns its status (underlay IPs and so on).
    pub async fn until_ready(&mut self, name: &str) -> anyhow::Result<pb::NetworkInterfaceStatus> {
        crate::node::until_ready(&mut self.proc, name).await
    }

    /// What the dataplane holds, read through its API.
    pub async fn view(&self) -> anyhow::Result<DataplaneView> {
        self.dataplane.view().await
    }
}

/// The outcome of one poll of [`until`]: done with a value, or not yet, with what was seen.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds.
    Done(T),
    /// Not yet; the state seen, for the failure message.
    Pending(String),
}

impl<T> Check<T> {
    /// `Done(value)` if `ok`, else `Pending` showing `state`.
    pub fn when(ok: bool, value: T, state: impl Debug) -> Self {
        if ok {
            Self::Done(value)
        } else {
            Self::Pending(format!("{state:#?}"))
        }
    }
}

/// Polls `f` until it is done, at most [`WAIT`]. An error counts as "not yet" (a node may be
/// restarting) and is shown if it is the last thing seen; on failure `logs()` is added.
pub async fn until<T>(
    what: &str,
    logs: impl Fn() -> String,
    mut f: impl AsyncFnMut() -> anyhow::Result<Check<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match f().await {
            Ok(Check::Done(v)) => return Ok(v),
            Ok(Check::Pending(s)) => s,
            Err(e) => format!("error: {e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "{what}: not within {WAIT:?}; last seen:\n{last}\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` for `period` and fails at the first poll that is not done (or fails): for "nothing
/// changes" checks, which no single poll can prove.
pub async fn stays(
    what: &str,
    period: Duration,
    logs: impl Fn() -> String,
    mut f: impl AsyncFnMut() -> anyhow::Result<Check<()>>,
) -> anyhow::Result<()> {
    let end = Instant::now() + period;
    loop {
        match f().await {
            Ok(Check::Done(())) => {}
            Ok(Check::Pending(s)) => bail!("{what}: broken:\n{s}\n{}", logs()),
            Err(e) => bail!("{what}: {e:#}\n{}", logs()),
        }
        if Instant::now() > end {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Route servers and nodes; every process is killed when this is dropped.
#[derive(Debug)]
pub struct Cluster {
    /// The route servers.
    pub servers: Vec<RegionServer>,
    /// The nodes.
    pub nodes: Vec<ClusterNode>,
    opts: ClusterOpts,
    dir: tempfile::TempDir,
}

/// Node `i`'s name.
pub fn node_name(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => char::from(b'a' + i).to_string(),
        _ => format!("n{}", i + 1),
    }
}

/// Node `i`'s host underlay address: `fc00:<i+1>::1`, so its /64 names the node.
pub fn node_underlay(i: usize) -> anyhow::Result<Ipv6Addr> {
    let n = u16::try_from(i + 1).context("too many nodes")?;
    Ok(Ipv6Addr::new(0xfc00, n, 0, 0, 0, 0, 0, 1))
}

impl Cluster {
    /// Starts the servers, then every node against all of them, and waits until each node has
    /// finished its first resync. Must run on a multi-threaded runtime (the dataplanes are
    /// served by its tasks while server starts block).
    pub async fn start(opts: ClusterOpts) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let pki = Pki::create(&dir.path().join("pki"), &[])?;
        let server_opts = ServerOpts {
            nodes: Vec::new(),
            ..ServerOpts::default()
        };
        let mut servers = Vec::new();
        for _ in 0..opts.servers {
            servers.push(RegionServer::start(&pki, &server_opts)?);
        }
        let mut cluster = Self {
            servers,
            nodes: Vec::new(),
            opts,
            dir,
        };
        for i in 0..cluster.opts.nodes {
            let node = cluster.start_node(i).await?;
            cluster.nodes.push(node);
        }
        for i in 0..cluster.nodes.len() {
            if let Err(e) = cluster.nodes[i].proc.synced().await {
                bail!("{e:#}\n{}", cluster.logs());
            }
        }
        Ok(cluster)
    }

    async fn start_node(&self, i: usize) -> anyhow::Result<ClusterNode> {
        let name = node_name(i);
        let dataplane = Dataplane::start(node_underlay(i)?, self.opts.vf_count).await?;
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{:?}", s.compat.to_string()))
            .collect();
        let config = format!(
            "dataplane.address = {:?}\nvf.mode = \"tap\"\nvf.tap_count = {}\nroutes.servers = [{}]\nroutes.plaintext = true\nroutes.keepalive_secs = {}\n{}\n",
            dataplane.addr,
            self.opts.vf_count,
            servers.join(", "),
            self.opts.keepalive_secs,
            self.opts
                .extra_toml
                .replace("{node}", &name)
                .replace("{underlay}", &format!("{}/64", node_underlay(i)?)),
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).context("writing a node config")?;
        let path = path.display().to_string();
        let proc = NodeProc::start(self.dir.path(), &name, &["--config", &path]).await?;
        Ok(ClusterNode {
            name,
            proc,
            dataplane,
        })
    }

    /// The hold time of the nodes' route sessions (2.5 keepalive intervals).
    pub fn hold_time(&self) -> Duration {
        ferrinet_route_client::session::hold_time(Duration::from_secs(self.opts.keepalive_secs))
    }

    /// The last lines of every node's and server's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out += &format!(
                "--- node {} log (tail):\n{}\n",
                n.name,
                tail(&n.proc.log(), 40)
            );
        }
        for (i, s) in self.servers.iter().enumerate() {
            out += &format!("--- server {i} log (tail):\n{}\n", tail(&s.log(), 15));
        }
        out
    }

    /// [`until`] with this cluster's logs.
    pub async fn until<T>(
        &self,
        what: &str,
        f: impl AsyncFnMut() -> anyhow::Result<Check<T>>,
    ) -> anyhow::Result<T> {
        until(what, || self.logs(), f).await
    }

    /// [`stays`] with this cluster's logs.
    pub async fn stays(
        &self,
        what: &str,
        period: Duration,
        f: impl AsyncFnMut() -> anyhow::Result<Check<()>>,
    ) -> anyhow::Result<()> {
        stays(what, period, || self.logs(), f).await
    }

    /// What every node's dataplane holds, in node order.
    pub async fn views(&self) -> anyhow::Result<Vec<DataplaneView>> {
        let mut v = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            v.push(n.view().await?);
        }
        Ok(v)
    }
}
