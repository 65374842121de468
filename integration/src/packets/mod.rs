//! Nodes that move real packets, for the packet-path tests and benchmark: a [`Fabric`] of node
//! namespaces on a bridge, a route server in the bridge's namespace, and in each node namespace
//! a real `ferrinet-node` with its embedded dataplane moving packets (`dataplane.packets`),
//! its underlay on `ul0`. The test reaches each node through its admin socket (a file, so from
//! any namespace); a VM is a namespace that takes over the TAP of an interface.
//!
//! ```text
//!   test ──unix socket──► ferrinet-node (ns node-i) ── TAP dtapvf_N ──► VM namespace
//!                               │ raw IPv6 (4/41) on ul0
//!   ferrinet-region (ns fab, [fd99::ff]) ◄── br0 ──► other nodes
//! ```
//!
//! With [`PacketOpts::region_api`] the bridge's namespace also runs `ferrinet-api` on
//! `[fd99::ff]` and every node registers with it, so that tests can drive the nodes through the
//! region API instead.

pub mod probe;

use std::net::Ipv6Addr;

use anyhow::Context as _;
use ferrinet_proto::node::v1 as pb;

use crate::api::{ADMIN, ApiOpts, ApiProc};
use crate::netns::{Fabric, FabricNode, Vm};
use crate::node::NodeProc;
use crate::{Launch, Pki, RegionServer, ServerOpts, WAIT};

/// The route server's address on the bridge.
pub const SERVER_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0xff);

/// How to build a [`PacketRegion`].
#[derive(Debug, Clone)]
pub struct PacketOpts {
    /// Nodes.
    pub nodes: u16,
    /// MTU of the underlay links.
    pub underlay_mtu: u32,
    /// `dataplane.firewall_mode`.
    pub firewall_mode: &'static str,
    /// Appended to every node's configuration (dotted keys).
    pub extra_toml: String,
    /// Also start `ferrinet-api` in the bridge's namespace on `[fd99::ff]` (mutual TLS; the
    /// server certificate names fd99::ff) and register every node with it
    /// ([`PacketRegion::api`]).
    pub region_api: bool,
}

impl Default for PacketOpts {
    fn default() -> Self {
        Self {
            nodes: 2,
            // Room for a 1500-byte overlay packet and its 40-byte outer header.
            underlay_mtu: 1600,
            firewall_mode: "enforce",
            extra_toml: String::new(),
            region_api: false,
        }
    }
}

/// One node.
#[derive(Debug)]
pub struct PacketNode {
    /// `a`, `b`, ...
    pub name: String,
    /// The process.
    pub proc: NodeProc,
}

impl PacketNode {
    /// `ferrinetctl --node <this node> ARGS`, which must exit 0.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let (code, out, err) = self.proc.ctl(args, stdin)?;
        anyhow::ensure!(
            code == 0,
            "ferrinetctl {args:?} on {} exited {code}: {out}{err}",
            self.name
        );
        Ok(out)
    }

    /// `ferrinetctl apply -f -`, again when an update raced the node's own status write (a
    /// stale resource version).
    pub fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        let mut last = None;
        for _ in 0..5 {
            match self.ctl(&["apply", "-f", "-"], Some(manifest)) {
                Err(e) if format!("{e:#}").contains("is not the current") => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("apply: no attempt made")))
    }
}

/// The whole setup; dropping it stops the processes, then removes the namespaces.
#[derive(Debug)]
pub struct PacketRegion {
    /// The nodes, in fabric order (node `i` is fabric node `i + 1`).
    pub nodes: Vec<PacketNode>,
    /// The region API, with [`PacketOpts::region_api`].
    pub api: Option<ApiProc>,
    /// The route server.
    pub server: RegionServer,
    /// The underlay.
    pub fabric: Fabric,
    pki: Pki,
    dir: tempfile::TempDir,
}

impl PacketRegion {
    /// Builds the fabric, starts the route server (and the region API) and the nodes, and waits
    /// until every node has synced (and is Ready in the region). Needs root.
    pub async fn start(opts: PacketOpts) -> anyhow::Result<Self> {
        crate::netns::require_tools()?;
        let fabric = Fabric::new(opts.nodes, opts.underlay_mtu)?;
        let server_ip = format!("{SERVER_ADDR}/64");
        fabric
            .bridge()
            .ip(&["addr", "add", &server_ip, "dev", "br0", "nodad"])?;
        let dir = tempfile::tempdir().context("tempdir")?;
        let names: Vec<String> = (0..usize::from(opts.nodes))
            .map(crate::cluster::node_name)
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let pki = if opts.region_api {
            let ids: Vec<&str> = std::iter::once(ADMIN)
                .chain(names.iter().copied())
                .collect();
            let san = SERVER_ADDR.to_string();
            Pki::create_with_server_names(&dir.path().join("pki"), &ids, &[&san])?
        } else {
            Pki::create(&dir.path().join("pki"), &[])?
        };
        let mut config = ServerOpts {
            nodes: Vec::new(),
            ..ServerOpts::default()
        }
        .config(&pki);
        let listen = format!("[{SERVER_ADDR}]:0");
        config.server.listen = listen.clone();
        config.compat.listen = listen;
        let server = RegionServer::start_config(
            &config,
            Launch {
                netns: Some(fabric.bridge().name().to_string()),
                ..Launch::default()
            },
        )?;
        let api = if opts.region_api {
            let api_dir = dir.path().join("api");
            std::fs::create_dir(&api_dir).context("creating the API's directory")?;
            let api_opts = ApiOpts {
                listen: Some(format!("[{SERVER_ADDR}]:0")),
                ..ApiOpts::default()
            };
            Some(ApiProc::start_in(
                Some(fabric.bridge().name()),
                &api_dir,
                &pki,
                &names,
                &api_opts,
            )?)
        } else {
            None
        };
        let mut region = Self {
            nodes: Vec::new(),
            api,
            server,
            fabric,
            pki,
            dir,
        };
        for i in 0..usize::from(opts.nodes) {
            let node = region.start_node(i, &opts).await?;
            region.nodes.push(node);
        }
        for i in 0..region.nodes.len() {
            if let Err(e) = region.nodes[i].proc.synced().await {
                anyhow::bail!("{e:#}\n{}", region.logs());
            }
        }
        if region.api.is_some() {
            region.until_registered().await?;
        }
        Ok(region)
    }

    /// Waits until the region API lists every node as Ready.
    async fn until_registered(&self) -> anyhow::Result<()> {
        let api = self.api()?;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (code, out, err) = api.ctl(&["get", "nodes"], None)?;
            let ready = out.lines().filter(|l| l.contains("Ready")).count();
            if code == 0 && ready == self.nodes.len() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("nodes not Ready in the region: {out}{err}\n{}", self.logs());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The region API ([`PacketOpts::region_api`]).
    pub fn api(&self) -> anyhow::Result<&ApiProc> {
        self.api
            .as_ref()
            .context("no region API: start with PacketOpts::region_api")
    }

    async fn start_node(&self, i: usize, opts: &PacketOpts) -> anyhow::Result<PacketNode> {
        let name = crate::cluster::node_name(i);
        let f = self.fabric.node(i + 1);
        // The server name is the address's host, fd99::ff, which the certificate names.
        let region_api = match &self.api {
            Some(api) => format!(
                "region_api.address = \"{addr}\"\n\
                 region_api.ca = {ca:?}\n\
                 region_api.cert = {cert:?}\n\
                 region_api.key = {key:?}\n\
                 region_api.heartbeat_ms = 500\n\
                 region_api.status_interval_ms = 100\n",
                addr = api.addr,
                ca = self.pki.ca(),
                cert = self.pki.cert(&name),
                key = self.pki.key(&name),
            ),
            None => String::new(),
        };
        let config = format!(
            "ipv6 = true\n\
             dataplane.address = \"embedded\"\n\
             dataplane.embedded_underlay = \"{prefix}\"\n\
             dataplane.packets = true\n\
             dataplane.underlay_interface = \"{link}\"\n\
             dataplane.firewall_mode = \"{mode}\"\n\
             vf.mode = \"tap\"\n\
             vf.tap_count = 16\n\
             routes.servers = [\"{server}\"]\n\
             routes.plaintext = true\n\
             routes.keepalive_secs = 2\n\
             {region_api}\
             {extra}\n",
            prefix = f.prefix,
            link = f.link,
            mode = opts.firewall_mode,
            server = self.server.compat,
            extra = opts.extra_toml,
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).context("writing a node config")?;
        let path = path.display().to_string();
        let proc = NodeProc::start_in(
            Some(f.netns.name()),
            self.dir.path(),
            &name,
            &["--config", &path],
        )
        .await?;
        Ok(PacketNode { name, proc })
    }

    /// Fabric node of node `i`.
    pub fn fabric_node(&self, i: usize) -> &FabricNode {
        self.fabric.node(i + 1)
    }

    /// Waits until interface `name` on node `i` is Ready and moves its TAP into a new VM
    /// namespace (link and `lo` up, no addresses yet).
    pub async fn vm(
        &mut self,
        i: usize,
        name: &str,
    ) -> anyhow::Result<(Vm, pb::NetworkInterfaceStatus)> {
        let status = crate::node::until_ready(&mut self.nodes[i].proc, name).await?;
        anyhow::ensure!(
            !status.tap_device.is_empty(),
            "interface {name} on node {i} has no TAP device: {status:?}"
        );
        let vm = Vm::adopt(
            name,
            &status.tap_device,
            Some(&self.fabric.node(i + 1).netns),
        )
        .with_context(|| format!("taking over {} of {name}", status.tap_device))?;
        Ok((vm, status))
    }

    /// The last lines of every node's and the server's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = n.proc.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            out += &format!("--- node {} log (tail):\n{tail}\n", n.name);
        }
        out += &format!("--- server log:\n{}\n", self.server.log());
        if let Some(api) = &self.api {
            let log = api.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            out += &format!("--- region API log (tail):\n{tail}\n");
        }
        out
    }
}
