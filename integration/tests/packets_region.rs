//! Real packets between VMs on two nodes, set up only through the region API: `ferrinet-api`
//! runs in the fabric's bridge namespace on `[fd99::ff]`, the nodes register with it, and the
//! network, interfaces and policy are applied with `ferrinetctl --api`. The region places the
//! interfaces, allocates their addresses and compiles their firewall rules; the nodes' embedded
//! dataplanes move the packets (see `ferrinet_integration::packets`). Needs root.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Context as _;
use ferrinet_integration::netns::Vm;
use ferrinet_integration::packets::probe::{counters, drops, eventually, ping, received};
use ferrinet_integration::packets::{PacketOpts, PacketRegion};
use serde_json::Value;

/// The tenant namespace of every region object here.
const TENANT: &str = "tenant";
const V4_SUBNET: &str = "10.1.0.0/24";
const V6_SUBNET: &str = "fd00:1::/64";
/// The id of the rule the region gives an interface no policy isolates for IPv4 ingress.
const ALLOW_ALL_V4: &str = "allow-all-ingress-v4";

/// A dual-stack network and one interface on each node, labelled for the policy below. No
/// NetworkPolicy: the region gives both interfaces allow-all ingress rules.
fn manifests() -> String {
    let network = format!(
        "apiVersion: networking.ferrinet.dev/v1alpha1\nkind: Network\nmetadata:\n  namespace: {TENANT}\n  name: net\nspec:\n  subnets:\n  - cidr: {V4_SUBNET}\n  - cidr: \"{V6_SUBNET}\"\n"
    );
    let interface = |name: &str, node: &str| {
        format!(
            "---\napiVersion: networking.ferrinet.dev/v1alpha1\nkind: NetworkInterface\nmetadata:\n  namespace: {TENANT}\n  name: {name}\n  labels:\n    vm: {name}\nspec:\n  networkRef:\n    name: net\n  nodeName: {node}\n  ipFamilies: [IPv4, IPv6]\n  hostname: {name}\n"
        )
    };
    network + &interface("vm-a", "a") + &interface("vm-b", "b")
}

/// Selects vm-b for ingress and lets in only TCP to port 5001 from the network's subnets.
fn policy_b_tcp_5001() -> String {
    format!(
        "apiVersion: networking.ferrinet.dev/v1alpha1\nkind: NetworkPolicy\nmetadata:\n  namespace: {TENANT}\n  name: b-tcp-5001\nspec:\n  networkRef:\n    name: net\n  networkInterfaceSelector:\n    matchLabels:\n      vm: vm-b\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: {V4_SUBNET}\n    - ipBlock:\n        cidr: \"{V6_SUBNET}\"\n    ports:\n    - protocol: TCP\n      port: 5001\n"
    )
}

/// `ferrinetctl --api ARGS` in the region, which must exit 0; its stdout.
fn rctl(r: &PacketRegion, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let (code, out, err) = r.api()?.ctl(args, stdin)?;
    anyhow::ensure!(
        code == 0,
        "ferrinetctl --api {args:?} exited {code}: {out}{err}"
    );
    Ok(out)
}

/// What the region says of one of its interfaces, once it is Available (Ready on its node).
struct RegionInterface {
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    tap: String,
}

/// The region's interface `name`, `-o json`.
fn region_interface(r: &PacketRegion, name: &str) -> anyhow::Result<Value> {
    let out = rctl(r, &["get", "ni", name, "-n", TENANT, "-o", "json"], None)?;
    serde_json::from_str(&out).with_context(|| format!("get ni {name}: {out}"))
}

/// Waits until the region reports interface `name` Available, at most ~60 s.
async fn until_available(r: &PacketRegion, name: &str) -> anyhow::Result<RegionInterface> {
    let mut last = Value::Null;
    for _ in 0..240 {
        last = region_interface(r, name)?;
        let st = &last["status"];
        if st["state"] == "Available" {
            let ips: Vec<&str> = st["ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let v4 = ips.iter().find_map(|ip| ip.parse::<Ipv4Addr>().ok());
            let v6 = ips.iter().find_map(|ip| ip.parse::<Ipv6Addr>().ok());
            let (Some(v4), Some(v6)) = (v4, v6) else {
                anyhow::bail!("{name}: Available without an address of each family: {last}");
            };
            return Ok(RegionInterface {
                v4,
                v6,
                tap: st["tapDevice"].as_str().unwrap_or_default().to_owned(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    anyhow::bail!("{name} not Available in the region: {last}\n{}", r.logs())
}

/// The node object the region places for its interface `name` (`<namespace>_<name>`).
fn node_name(name: &str) -> String {
    format!("{TENANT}_{name}")
}

/// Waits for region interface `name` on node `i`: Available in the region, Ready on the node
/// with the same TAP; moves the TAP into a new VM.
async fn vm(r: &mut PacketRegion, i: usize, name: &str) -> anyhow::Result<(Vm, RegionInterface)> {
    let iface = until_available(r, name).await?;
    let (vm, status) = r.vm(i, &node_name(name)).await?;
    assert_eq!(
        iface.tap, status.tap_device,
        "the region reports the node's TAP of {name}"
    );
    Ok((vm, iface))
}

/// `tcp-serve` on `server` at `listen`, `tcp-send` of `bytes` from `client` to `to` (`timeout`:
/// its connect timeout and longest stall, ms): the bytes the server counted, or `None` when the
/// client could not connect.
fn tcp_transfer(
    server: &Vm,
    client: &Vm,
    (listen, to): (&str, &str),
    bytes: u64,
    timeout: u32,
) -> anyhow::Result<Option<u64>> {
    let mut srv = server.spawn_vmtool(&["tcp-serve", "--listen", listen, "--announce"])?;
    srv.wait_listening()?;
    let sent = client.vmtool(&[
        "tcp-send",
        "--to",
        to,
        "--bytes",
        &bytes.to_string(),
        "--timeout-ms",
        &timeout.to_string(),
    ])?;
    if sent["connected"] != Value::Bool(true) {
        return Ok(None);
    }
    anyhow::ensure!(sent["bytes"].as_u64() == Some(bytes), "tcp-send: {sent}");
    // The server's one line per connection; `finish_last` could miss it (it reads only the
    // lines already forwarded when the tool exits).
    let got = srv.next_json()?;
    Ok(got["bytes"].as_u64())
}

/// Interface `id`'s packets dropped by the firewall, from node `i`'s counters.
fn firewall_drops(r: &PacketRegion, i: usize, id: &str) -> anyhow::Result<u64> {
    Ok(drops(&counters(&r.nodes[i])?, id, "firewall"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_on_two_nodes_set_up_through_the_region_api() -> anyhow::Result<()> {
    let mut r = PacketRegion::start(PacketOpts {
        region_api: true,
        ..PacketOpts::default()
    })
    .await?;
    let out = rctl(&r, &["apply", "-f", "-"], Some(&manifests()))?;
    assert!(
        out.contains("networkinterface/tenant/vm-b created"),
        "{out}"
    );

    let (a, ra) = vm(&mut r, 0, "vm-a").await?;
    let (b, rb) = vm(&mut r, 1, "vm-b").await?;
    // No policy: the region gave vm-b allow-all ingress rules, and they are on node b.
    let on_b = r.nodes[1].ctl(&["get", "ni", &node_name("vm-b"), "-o", "json"], None)?;
    assert!(on_b.contains(ALLOW_ALL_V4), "{on_b}");
    // IPv4 by DHCP from the node: the address the region allocated. IPv6 statically.
    for (vm, iface, name) in [(&a, &ra, "vm-a"), (&b, &rb, "vm-b")] {
        let lease = vm.dhcp().with_context(|| r.logs())?;
        assert_eq!(lease.ip, iface.v4, "{name}: {lease:?}");
        assert_eq!(lease.hostname.as_deref(), Some(name), "{lease:?}");
        vm.configure_v6(iface.v6)?;
    }

    let logs = || r.logs();
    eventually("a reaches b", || Ok(received(&ping(&a, rb.v4, 1)?) == 1)).with_context(logs)?;
    let p = ping(&a, rb.v4, 20)?;
    assert_eq!(received(&p), 20, "{p}");
    eventually("b reaches a", || Ok(received(&ping(&b, ra.v6, 1)?) == 1)).with_context(logs)?;
    let p = ping(&b, ra.v6, 20)?;
    assert_eq!(received(&p), 20, "{p}");

    // 20 MB each way round, IPv4 and IPv6.
    let to_b = format!("{}:5001", rb.v4);
    let got = tcp_transfer(&b, &a, ("0.0.0.0:5001", &to_b), 20_000_000, 5000)?;
    assert_eq!(got, Some(20_000_000), "a to b over IPv4");
    let to_a = format!("[{}]:5002", ra.v6);
    let got = tcp_transfer(&a, &b, ("[::]:5002", &to_a), 20_000_000, 5000)?;
    assert_eq!(got, Some(20_000_000), "b to a over IPv6");

    // A policy isolates vm-b for ingress but TCP to 5001: its rules reach b's dataplane.
    let out = rctl(&r, &["apply", "-f", "-"], Some(&policy_b_tcp_5001()))?;
    assert!(out.contains("created"), "{out}");
    eventually("ping to vm-b blocked", || {
        Ok(received(&ping(&a, rb.v4, 1)?) == 0)
    })
    .with_context(logs)?;
    let on_b = r.nodes[1].ctl(&["get", "ni", &node_name("vm-b"), "-o", "json"], None)?;
    assert!(
        !on_b.contains(ALLOW_ALL_V4),
        "the policy's rules replace allow-all: {on_b}"
    );
    let before = firewall_drops(&r, 1, &node_name("vm-b"))?;
    assert_eq!(received(&ping(&a, rb.v4, 3)?), 0, "IPv4 echo to vm-b");
    assert_eq!(received(&ping(&a, rb.v6, 3)?), 0, "IPv6 echo to vm-b");
    let after = firewall_drops(&r, 1, &node_name("vm-b"))?;
    assert!(
        after >= before + 6,
        "b's firewall dropped them: {before} -> {after}"
    );

    let got = tcp_transfer(&b, &a, ("0.0.0.0:5001", &to_b), 1_000_000, 5000)?;
    assert_eq!(got, Some(1_000_000), "TCP to 5001 is allowed");
    let to_b6 = format!("[{}]:5001", rb.v6);
    let got = tcp_transfer(&b, &a, ("[::]:5001", &to_b6), 1_000_000, 5000)?;
    assert_eq!(got, Some(1_000_000), "TCP to 5001 over IPv6 is allowed");
    let other = format!("{}:5002", rb.v4);
    let got = tcp_transfer(&b, &a, ("0.0.0.0:5002", &other), 10, 1500)?;
    assert_eq!(got, None, "TCP to another port of vm-b is not");
    // vm-a keeps its allow-all ingress, and b's echo replies come back through b's flow.
    let p = ping(&b, ra.v4, 3)?;
    assert_eq!(received(&p), 3, "vm-b still reaches vm-a: {p}");
    Ok(())
}
