//! Real packets between VMs on different nodes, set up only through the node API: namespaces
//! as VMs, a bridge as the underlay, the real `ferrinet-node` with its embedded dataplane
//! moving packets (see `ferrinet_integration::packets`). Needs root.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Context as _;
use ferrinet_integration::netns::Vm;
use ferrinet_integration::packets::{PacketOpts, PacketRegion};
use serde_json::Value;

fn network(name: &str, vni: u32) -> String {
    format!(
        "apiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: Network\nmetadata:\n  name: {name}\nspec:\n  id: {vni}\n"
    )
}

/// An interface with an allow-all ingress rule per family (what the region API gives
/// interfaces no policy selects), or with `rules` instead.
fn interface(name: &str, net: &str, v4: &str, v6: &str, rules: Option<&str>) -> String {
    let allow_all = "  firewallRules:\n    - firewallRuleID: all-v4\n      direction: Ingress\n      action: Accept\n      ipFamily: IPv4\n    - firewallRuleID: all-v6\n      direction: Ingress\n      action: Accept\n      ipFamily: IPv6\n";
    format!(
        "---\napiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata:\n  name: {name}\nspec:\n  networkRef:\n    name: {net}\n  ipFamilies: [IPv4, IPv6]\n  ips: [{v4}, \"{v6}\"]\n  hostname: {name}\n{}",
        rules.unwrap_or(allow_all)
    )
}

fn ping(vm: &Vm, to: &str, count: u32) -> anyhow::Result<Value> {
    vm.vmtool(&[
        "ping",
        "--to",
        to,
        "--count",
        &count.to_string(),
        "--interval-ms",
        "50",
        "--timeout-ms",
        "1000",
    ])
}

fn received(v: &Value) -> u64 {
    v["received"].as_u64().unwrap_or(0)
}

/// Pings until one reply comes (routes take a moment to spread), at most ~20 s.
fn ping_until_reply(vm: &Vm, to: &str) -> anyhow::Result<()> {
    for _ in 0..40 {
        if received(&ping(vm, to, 1)?) == 1 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    anyhow::bail!("no echo reply from {to}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_on_two_nodes_ping_and_transfer() -> anyhow::Result<()> {
    let mut r = PacketRegion::start(PacketOpts::default()).await?;
    let manifest_a = network("net", 1001) + &interface("vma", "net", "10.0.0.1", "fd00::1", None);
    let manifest_b = network("net", 1001) + &interface("vmb", "net", "10.0.0.2", "fd00::2", None);
    r.nodes[0].apply(&manifest_a)?;
    r.nodes[1].apply(&manifest_b)?;
    let (a, _) = r.vm(0, "vma").await?;
    let (b, _) = r.vm(1, "vmb").await?;
    a.configure_v4(Ipv4Addr::new(10, 0, 0, 1))?;
    b.configure_v4(Ipv4Addr::new(10, 0, 0, 2))?;
    a.configure_v6("fd00::1".parse::<Ipv6Addr>()?)?;
    b.configure_v6("fd00::2".parse::<Ipv6Addr>()?)?;

    let logs = || r.logs();
    ping_until_reply(&a, "10.0.0.2").with_context(logs)?;
    let p = ping(&a, "10.0.0.2", 20)?;
    assert_eq!(received(&p), 20, "{p}");
    ping_until_reply(&b, "fd00::1").with_context(logs)?;
    let p = ping(&b, "fd00::1", 20)?;
    assert_eq!(received(&p), 20, "{p}");

    // A TCP transfer both ways round, IPv4 and IPv6.
    for (server, client, addr) in [(&b, &a, "10.0.0.2:5001"), (&a, &b, "[fd00::1]:5002")] {
        let mut srv = server.spawn_vmtool(&["tcp-serve", "--listen", addr, "--announce"])?;
        srv.wait_listening()?;
        let sent = client.vmtool(&["tcp-send", "--to", addr, "--bytes", "20000000"])?;
        assert_eq!(sent["connected"], Value::Bool(true), "{sent}");
        let got = srv.finish_last()?;
        assert_eq!(got["bytes"].as_u64(), Some(20_000_000), "{got}");
    }
    Ok(())
}
