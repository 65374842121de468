//! The underlay between nodes: one bridge, a namespace per node on it, static routes to every
//! other node's underlay /64. IPv6 forwarding stays off: a node's prefix is its own (the
//! dataplane makes it local), nothing is routed through a node.

use std::net::Ipv6Addr;

use anyhow::{Context as _, ensure};
use ipnet::Ipv6Net;

use super::Netns;
use crate::poll;

/// The name of each node's underlay link.
const LINK: &str = "ul0";

/// One node on a [`Fabric`].
#[derive(Debug)]
pub struct FabricNode {
    /// The node's namespace, where its dataplane runs.
    pub netns: Netns,
    /// 1-based.
    pub index: u16,
    /// The node's underlay /64, `fc00:{i}::/64`, routed to it by every other node.
    pub prefix: Ipv6Net,
    /// The node's host underlay address, `fc00:{i}::1` (the dataplane's `--ipv6`; the
    /// dataplane itself makes the prefix local).
    pub host_addr: Ipv6Addr,
    /// The node's address on the bridge, `fd99::{i}`: the next hop to its prefix.
    pub fabric_addr: Ipv6Addr,
    /// The underlay link inside `netns`, `ul0`.
    pub link: &'static str,
    /// The underlay MTU.
    pub mtu: u32,
}

/// The underlay for N nodes: a bridge `br0` in its own namespace and, for node i, a namespace
/// with a veth `ul0` on the bridge (`fd99::{i}/64`) and routes `fc00:{j}::/64 via fd99::{j}`
/// to every other node j.
#[derive(Debug)]
pub struct Fabric {
    nodes: Vec<FabricNode>,
    bridge: Netns,
}

impl Fabric {
    /// Builds the fabric and waits until every node's links are up and its routes resolve
    /// through `ul0`.
    pub fn new(n: u16, underlay_mtu: u32) -> anyhow::Result<Self> {
        ensure!(n >= 1, "a fabric needs at least one node");
        let mtu = underlay_mtu.to_string();
        let bridge = Netns::new("fab")?;
        // br_netfilter (loaded on this host) would send every bridged frame through ip6tables:
        // a real fabric switches without it, and it costs the dataplane and the kernel
        // baseline the same per packet. Without the module there is nothing to turn off.
        if std::path::Path::new("/proc/sys/net/bridge").exists() {
            bridge.sysctl(&[
                "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-ip6tables=0",
                "net.bridge.bridge-nf-call-arptables=0",
            ])?;
        }
        // Without snooping the bridge floods all multicast: neighbour discovery needs no
        // MLD state.
        bridge.ip(&[
            "link",
            "add",
            "br0",
            "mtu",
            &mtu,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        bridge.ip(&["link", "set", "br0", "up"])?;
        let mut nodes = Vec::new();
        for i in 1..=n {
            let netns = Netns::new(&format!("n{i}"))?;
            let port = format!("p{i}");
            netns.ip(&[
                "link",
                "add",
                LINK,
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "mtu",
                &mtu,
                "netns",
                bridge.name(),
            ])?;
            bridge.ip(&["link", "set", &port, "master", "br0", "up"])?;
            let fabric_addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, i);
            netns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{fabric_addr}/64"),
                "dev",
                LINK,
                "nodad",
            ])?;
            netns.ip(&["link", "set", LINK, "up"])?;
            let host_addr = Ipv6Addr::new(0xfc00, i, 0, 0, 0, 0, 0, 1);
            nodes.push(FabricNode {
                netns,
                index: i,
                prefix: Ipv6Net::new(host_addr, 64)?.trunc(),
                host_addr,
                fabric_addr,
                link: LINK,
                mtu: underlay_mtu,
            });
        }
        for a in &nodes {
            for b in nodes.iter().filter(|b| b.index != a.index) {
                a.netns.ip(&[
                    "-6",
                    "route",
                    "add",
                    &b.prefix.to_string(),
                    "via",
                    &b.fabric_addr.to_string(),
                    "dev",
                    LINK,
                ])?;
            }
        }
        let fabric = Self { nodes, bridge };
        fabric.wait_ready()?;
        Ok(fabric)
    }

    /// Node `i`, 1-based. Panics when there is no such node (a mistake in the test).
    pub fn node(&self, i: usize) -> &FabricNode {
        assert!(
            (1..=self.nodes.len()).contains(&i),
            "fabric node {i} of {}",
            self.nodes.len()
        );
        &self.nodes[i - 1]
    }

    /// Every node, in order.
    pub fn nodes(&self) -> &[FabricNode] {
        &self.nodes
    }

    /// The namespace holding the bridge `br0`.
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }

    /// Every `ul0` operationally up (veth carrier on both ends) and every other node's host
    /// address routed via its fabric address on `ul0`.
    fn wait_ready(&self) -> anyhow::Result<()> {
        for a in &self.nodes {
            poll(&format!("{}: {LINK} up", a.netns.name()), || {
                let state = a
                    .netns
                    .run(&["cat", &format!("/sys/class/net/{LINK}/operstate")])?;
                Ok((state.trim() == "up").then_some(()))
            })?;
            for b in self.nodes.iter().filter(|b| b.index != a.index) {
                let want = format!("via {} dev {LINK}", b.fabric_addr);
                poll(
                    &format!("{}: route to {}", a.netns.name(), b.host_addr),
                    || {
                        let r = a
                            .netns
                            .ip(&["-6", "route", "get", &b.host_addr.to_string()]);
                        Ok(r.is_ok_and(|r| r.contains(&want)).then_some(()))
                    },
                )
                .with_context(|| format!("fabric node {} -> {}", a.index, b.index))?;
            }
        }
        Ok(())
    }
}
