//! Node daemons for end-to-end tests: the real `ferrinet-node` binary on loopback with its
//! state and admin socket in a temporary directory, a software dataplane served from the test
//! process (so it outlives a killed node), and `ferrinetctl` runs.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrinet_node::ctl::client::{NodeAddr, connect};
use ferrinet_proto::node::v1 as pb;
use ferrinet_proto::node::v1::node_admin_client::NodeAdminClient;
use tonic::transport::Channel;

use crate::dataplane::{Dataplane, lazy_client};
use crate::{ChildGuard, WAIT, ctl_bin, node_bin};

/// A software dataplane served from the test process on 127.0.0.1 (underlay fc00:5::1, 126
/// VFs): its address and the instance. [`crate::dataplane::Dataplane`] chooses the underlay.
pub async fn dataplane() -> anyhow::Result<(String, ferrinet_dataplane::DataplaneService)> {
    let d = Dataplane::start(Ipv6Addr::new(0xfc00, 5, 0, 0, 0, 0, 0, 1), 126).await?;
    Ok(d.detach())
}

/// The interfaces the dataplane at `addr` holds: `(id, vni, device)`, sorted.
pub async fn dataplane_interfaces(addr: &str) -> anyhow::Result<Vec<(String, u32, String)>> {
    crate::dataplane::interfaces(lazy_client(addr)?).await
}

/// The external routes of `vni` in the dataplane at `addr`: `(prefix, next hop)`.
pub async fn dataplane_routes(addr: &str, vni: u32) -> anyhow::Result<BTreeSet<(String, String)>> {
    crate::dataplane::routes(lazy_client(addr)?, vni).await
}

/// A running `ferrinet-node`; killed when dropped.
#[derive(Debug)]
pub struct NodeProc {
    /// The process.
    pub child: ChildGuard,
    /// Its admin socket.
    pub socket: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    netns: Option<String>,
}

impl NodeProc {
    /// Starts `ferrinet-node --node-name NAME` with state and socket under `dir`, and `extra`
    /// flags (`--dataplane`, `--route-server`, ...). Returns once its admin API answers.
    pub async fn start(dir: &Path, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_in(None, dir, name, extra).await
    }

    /// [`NodeProc::start`] inside network namespace `netns` (`ip netns exec`); its admin socket
    /// is a file, so the test reaches it from any namespace.
    pub async fn start_in(
        netns: Option<&str>,
        dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let socket = dir.join(format!("{name}.sock"));
        let mut args: Vec<String> = vec![
            "--node-name".into(),
            name.into(),
            "--state-dir".into(),
            dir.join(format!("{name}-state")).display().to_string(),
            "--admin".into(),
            socket.display().to_string(),
            "--http".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(format!("{name}.log"));
        let netns = netns.map(str::to_string);
        let child = Self::spawn(netns.as_deref(), &args, &log)?;
        let mut n = Self {
            child,
            socket,
            args,
            log,
            netns,
        };
        n.client().await?;
        Ok(n)
    }

    fn spawn(netns: Option<&str>, args: &[String], log: &Path) -> anyhow::Result<ChildGuard> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(node_bin());
                c
            }
            None => Command::new(node_bin()),
        };
        let child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("spawning ferrinet-node")?;
        Ok(ChildGuard(child))
    }

    /// Kills the node with SIGKILL and starts it again with the same flags.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.restart().await
    }

    /// Kills the node with SIGKILL (no goodbye to its route servers or its dataplane).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts the node again with the same flags (after [`kill`](Self::kill)); returns once its
    /// admin API answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.child.kill();
        self.child = Self::spawn(self.netns.as_deref(), &self.args, &self.log)?;
        self.client().await?;
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Sends `signal` (a `kill -s` name such as `STOP` or `CONT`) with kill(1): no signal crate
    /// among the dependencies.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let st = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(st.success(), "kill -s {signal} failed: {st}");
        Ok(())
    }

    /// The node's status.
    pub async fn status(&mut self) -> anyhow::Result<pb::NodeStatusResponse> {
        let mut c = self.client().await?;
        Ok(c.node_status(pb::NodeStatusRequest {}).await?.into_inner())
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The HTTP listener (`/metrics`) it reported when it last started.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        let log = self.log();
        let line = log.lines().rev().find(|l| l.contains("node started"))?;
        let rest = line.split_once(" http=Some(")?.1;
        rest.split_once(')')?.0.parse().ok()
    }

    /// `unix:SOCKET`, for `ferrinetctl --node`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// An admin client (waits for the socket to answer).
    pub async fn client(&mut self) -> anyhow::Result<NodeAdminClient<Channel>> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(s)) = self.child.0.try_wait() {
                bail!("ferrinet-node exited ({s}):\n{}", self.log());
            }
            match connect(&NodeAddr::Unix(self.socket.clone()), Duration::from_secs(5)).await {
                Ok(mut c) => {
                    if c.node_status(pb::NodeStatusRequest {}).await.is_ok() {
                        return Ok(c);
                    }
                }
                Err(_) if Instant::now() < deadline => {}
                Err(e) => bail!("node not reachable: {e}\n{}", self.log()),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the node reports its first resync done.
    pub async fn synced(&mut self) -> anyhow::Result<pb::NodeStatusResponse> {
        let mut c = self.client().await?;
        let deadline = Instant::now() + WAIT;
        loop {
            let s = c.node_status(pb::NodeStatusRequest {}).await?.into_inner();
            if s.synced {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("node not synced: {s:?}\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `ferrinetctl --node <this node> ARGS` with `stdin`; returns (exit code, stdout,
    /// stderr).
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<(i32, String, String)> {
        ctl(&self.addr(), args, stdin)
    }
}

/// Runs `ferrinetctl --node NODE ARGS` with `stdin`; returns (exit code, stdout, stderr).
pub fn ctl(
    node: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<(i32, String, String)> {
    use std::io::Write as _;
    let mut child = Command::new(ctl_bin())
        .arg("--node")
        .arg(node)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning ferrinetctl")?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.unwrap_or("").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

/// The status of interface `name` on `node`.
pub async fn interface(
    node: &mut NodeProc,
    name: &str,
) -> anyhow::Result<pb::NetworkInterfaceStatus> {
    let mut c = node.client().await?;
    let o = c
        .get(pb::GetRequest {
            r#ref: Some(pb::ObjectRef {
                kind: pb::Kind::NetworkInterface.into(),
                name: name.into(),
            }),
        })
        .await?
        .into_inner();
    match o.object {
        Some(pb::object::Object::NetworkInterface(i)) => Ok(i.status.unwrap_or_default()),
        other => bail!("not an interface: {other:?}"),
    }
}

/// Waits until interface `name` on `node` is Ready; returns its status.
pub async fn until_ready(
    node: &mut NodeProc,
    name: &str,
) -> anyhow::Result<pb::NetworkInterfaceStatus> {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = interface(node, name).await?;
        if s.phase == pb::Phase::Ready as i32 {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("{name} not ready: {s:?}\n{}", node.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
