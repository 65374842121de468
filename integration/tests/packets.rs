//! Real packets between VMs on different nodes, set up only through the node API: namespaces
//! as VMs, a bridge as the underlay, the real `ferrinet-node` with its embedded dataplane
//! moving packets (see `ferrinet_integration::packets`). Needs root.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Context as _;
use ferrinet_integration::netns::Vm;
use ferrinet_integration::packets::probe::{
    counters, drops, eventually, offload, ping, ping_until_reply, received, verdicts,
};
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
    // The transfers took the offload path: the senders' kernels handed their TAPs TCP
    // super-segments, and bursts towards the receivers were merged.
    for (node, id) in [(0, "vma"), (1, "vmb")] {
        let c = counters(&r.nodes[node])?;
        let (reads, writes) = offload(&c, id);
        assert!(
            reads > 0 && writes > 0,
            "{id}: offload reads {reads}, writes {writes}: {c}"
        );
    }

    // The VM goes away with its namespace, and its TAP with it: the dataplane opens a fresh
    // TAP for the port, which a new VM takes over as the first one did.
    drop(a);
    let mut tries = 0;
    let a = loop {
        match r.vm(0, "vma").await {
            Ok((vm, _)) => break vm,
            Err(_) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context(r.logs())),
        }
    };
    a.configure_v4(Ipv4Addr::new(10, 0, 0, 1))?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;
    assert!(
        r.nodes[0]
            .proc
            .log()
            .contains("TAP failed; closed to open it anew"),
        "{}",
        r.logs()
    );
    Ok(())
}

fn ingress_rule(id: &str, proto: &str) -> String {
    format!(
        "    - firewallRuleID: {id}\n      direction: Ingress\n      action: Accept\n      ipFamily: IPv4\n      protocolMatch:\n{proto}"
    )
}

const TCP_5001: &str = "        protocolType: TCP\n        portRange:\n          dstPort: 5001\n";
const ICMP_ECHO: &str =
    "        protocolType: ICMP\n        icmp:\n          icmpType: 8\n          icmpCode: -1\n";

/// Starts a region of two nodes with `vma` (10.0.0.1) on node a and `vmb` (10.0.0.2) on node b
/// in network 1001, with the given rules (None: allow-all ingress), both configured statically.
async fn pair(
    opts: PacketOpts,
    rules_a: Option<&str>,
    rules_b: Option<&str>,
) -> anyhow::Result<(PacketRegion, Vm, Vm)> {
    let mut r = PacketRegion::start(opts).await?;
    r.nodes[0].apply(
        &(network("net", 1001) + &interface("vma", "net", "10.0.0.1", "fd00::1", rules_a)),
    )?;
    r.nodes[1].apply(
        &(network("net", 1001) + &interface("vmb", "net", "10.0.0.2", "fd00::2", rules_b)),
    )?;
    let (a, _) = r.vm(0, "vma").await?;
    let (b, _) = r.vm(1, "vmb").await?;
    a.configure_v4(Ipv4Addr::new(10, 0, 0, 1))?;
    b.configure_v4(Ipv4Addr::new(10, 0, 0, 2))?;
    a.configure_v6("fd00::1".parse::<Ipv6Addr>()?)?;
    b.configure_v6("fd00::2".parse::<Ipv6Addr>()?)?;
    Ok((r, a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnis_are_isolated_until_peered_and_withdrawn_routes_stop_traffic() -> anyhow::Result<()> {
    let mut r = PacketRegion::start(PacketOpts::default()).await?;
    let net2 = "---\n".to_string() + &network("other", 1002);
    r.nodes[0]
        .apply(&(network("net", 1001) + &interface("vma", "net", "10.0.0.1", "fd00::1", None)))?;
    r.nodes[1].apply(
        &(network("net", 1001)
            + &interface("vmb", "net", "10.0.0.2", "fd00::2", None)
            + &net2
            + &interface("vmc", "other", "10.0.0.2", "fd00::2", None)),
    )?;
    let (a, _) = r.vm(0, "vma").await?;
    let (b, _) = r.vm(1, "vmb").await?;
    let (c, _) = r.vm(1, "vmc").await?;
    a.configure_v4(Ipv4Addr::new(10, 0, 0, 1))?;
    b.configure_v4(Ipv4Addr::new(10, 0, 0, 2))?;
    c.configure_v4(Ipv4Addr::new(10, 0, 0, 2))?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;

    // vmb and vmc have the same address in two VNIs: only vmb (VNI 1001) hears vma.
    let mut on_b = b.spawn_vmtool(&[
        "udp-recv",
        "--listen",
        "0.0.0.0:7000",
        "--timeout-ms",
        "3000",
        "--announce",
    ])?;
    let mut on_c = c.spawn_vmtool(&[
        "udp-recv",
        "--listen",
        "0.0.0.0:7000",
        "--timeout-ms",
        "3000",
        "--announce",
    ])?;
    on_b.wait_listening()?;
    on_c.wait_listening()?;
    a.vmtool(&["udp-send", "--to", "10.0.0.2:7000", "--payload", "hello"])?;
    let got_b = on_b.finish_last()?;
    let got_c = on_c.finish_last()?;
    assert_eq!(got_b["received"], Value::Bool(true), "{got_b}");
    assert_eq!(got_c["received"], Value::Bool(false), "{got_c}");

    // vmc's VNI is not reachable from vma's: no route.
    let d_addr = "10.1.0.3";
    r.nodes[1].apply(&(net2.clone() + &interface("vmd", "other", d_addr, "fd01::3", None)))?;
    let (d, _) = r.vm(1, "vmd").await?;
    d.configure_v4(d_addr.parse()?)?;
    assert_eq!(received(&ping(&a, d_addr, 3)?), 0);
    assert!(drops(&counters(&r.nodes[0])?, "vma", "no_route") >= 3);

    // Peered, both networks on both nodes: now it is. vmc goes first, its address would
    // clash with vmb's across the peering.
    r.nodes[1].ctl(&["delete", "ni", "vmc"], None)?;
    drop(c);
    let peered = |vni: u32, peer: u32, name: &str| {
        format!(
            "---\napiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: Network\nmetadata:\n  name: {name}\nspec:\n  id: {vni}\n  peeredIDs: [{peer}]\n"
        )
    };
    let both = peered(1001, 1002, "net") + &peered(1002, 1001, "other");
    r.nodes[0].apply(&both)?;
    r.nodes[1].apply(&both)?;
    ping_until_reply(&a, d_addr).with_context(|| r.logs())?;

    // vmb goes away: its route is withdrawn at node a and the traffic stops.
    r.nodes[1].ctl(&["delete", "ni", "vmb"], None)?;
    eventually("vmb's route withdrawn at node a", || {
        Ok(received(&ping(&a, "10.0.0.2", 1)?) == 0)
    })?;
    let before = drops(&counters(&r.nodes[0])?, "vma", "no_route");
    assert_eq!(received(&ping(&a, "10.0.0.2", 3)?), 0);
    assert!(drops(&counters(&r.nodes[0])?, "vma", "no_route") >= before + 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_gives_the_configured_values() -> anyhow::Result<()> {
    let opts = PacketOpts {
        underlay_mtu: 1500,
        extra_toml: "dataplane.dhcp_dns = [\"192.0.2.53\"]".into(),
        ..PacketOpts::default()
    };
    let mut r = PacketRegion::start(opts).await?;
    r.nodes[0]
        .apply(&(network("net", 1001) + &interface("vma", "net", "10.0.0.1", "fd00::1", None)))?;
    r.nodes[1]
        .apply(&(network("net", 1001) + &interface("vmb", "net", "10.0.0.2", "fd00::2", None)))?;
    let (a, _) = r.vm(0, "vma").await?;
    let (b, _) = r.vm(1, "vmb").await?;
    let lease = a.dhcp().with_context(|| r.logs())?;
    assert_eq!(lease.ip, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(lease.mask_len, 32);
    // The underlay's 1500 less the 40-byte outer header.
    assert_eq!(lease.mtu, Some(1460));
    assert_eq!(lease.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
    assert_eq!(lease.hostname.as_deref(), Some("vma"));
    assert_eq!(lease.server_id, Some(Ipv4Addr::new(169, 254, 0, 1)));
    let routes: Vec<String> = lease
        .static_routes
        .iter()
        .map(|(n, g)| format!("{n} via {g}"))
        .collect();
    assert!(
        routes.contains(&"0.0.0.0/0 via 169.254.0.1".to_string()),
        "{routes:?}"
    );
    assert!(
        routes.contains(&"169.254.0.0/16 via 0.0.0.0".to_string()),
        "{routes:?}"
    );
    // The lease works: vmb (static) answers.
    b.configure_v4(Ipv4Addr::new(10, 0, 0, 2))?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_firewall_admits_only_what_rules_accept_and_their_replies() -> anyhow::Result<()> {
    // vma has no rules at all: nothing may start towards it, but replies to what it starts
    // come back. vmb accepts TCP to port 5001 only.
    let rules_b = "  firewallRules:\n".to_string() + &ingress_rule("tcp-5001", TCP_5001);
    let (r, a, b) = pair(PacketOpts::default(), Some(""), Some(&rules_b)).await?;

    let mut srv = b.spawn_vmtool(&[
        "tcp-serve",
        "--listen",
        "0.0.0.0:5001",
        "--announce",
        "--echo",
    ])?;
    srv.wait_listening()?;
    let mut sent = Value::Null;
    eventually("TCP to an allowed port", || {
        sent = a.vmtool(&[
            "tcp-send",
            "--to",
            "10.0.0.2:5001",
            "--bytes",
            "100000",
            "--timeout-ms",
            "1000",
        ])?;
        Ok(sent["connected"] == Value::Bool(true))
    })
    .with_context(|| r.logs())?;
    assert_eq!(sent["bytes"].as_u64(), Some(100_000), "{sent}");
    drop(srv);

    let mut other = b.spawn_vmtool(&["tcp-serve", "--listen", "0.0.0.0:5002", "--announce"])?;
    other.wait_listening()?;
    let denied = a.vmtool(&[
        "tcp-send",
        "--to",
        "10.0.0.2:5002",
        "--bytes",
        "10",
        "--timeout-ms",
        "1500",
    ])?;
    assert_eq!(denied["connected"], Value::Bool(false), "{denied}");
    assert_eq!(received(&ping(&a, "10.0.0.2", 3)?), 0, "no ICMP rule yet");
    // Nothing starts towards vma either.
    assert_eq!(received(&ping(&b, "10.0.0.1", 2)?), 0);

    let c = counters(&r.nodes[1])?;
    assert!(verdicts(&c, "vmb", "ingress", "dropped") >= 4, "{c}");
    assert!(drops(&c, "vmb", "firewall") >= 4, "{c}");

    // An ICMP echo rule opens ping (and only the echo: its replies follow the flow).
    let rules_b = rules_b + &ingress_rule("ping", ICMP_ECHO);
    r.nodes[1].apply(
        &(network("net", 1001) + &interface("vmb", "net", "10.0.0.2", "fd00::2", Some(&rules_b))),
    )?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_forwards_everything_and_counts_verdicts() -> anyhow::Result<()> {
    let opts = PacketOpts {
        firewall_mode: "monitor",
        ..PacketOpts::default()
    };
    let (r, a, b) = pair(opts, Some(""), Some("")).await?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;
    ping_until_reply(&b, "10.0.0.1").with_context(|| r.logs())?;
    let c = counters(&r.nodes[1])?;
    assert_eq!(c["firewall_mode"], "monitor", "{c}");
    assert!(verdicts(&c, "vmb", "ingress", "would_drop") >= 1, "{c}");
    assert_eq!(verdicts(&c, "vmb", "ingress", "dropped"), 0, "{c}");
    assert_eq!(drops(&c, "vmb", "firewall"), 0, "{c}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_big_for_the_underlay_gets_the_right_icmp_error() -> anyhow::Result<()> {
    let opts = PacketOpts {
        underlay_mtu: 1500,
        ..PacketOpts::default()
    };
    let (r, a, _b) = pair(opts, None, None).await?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;
    ping_until_reply(&a, "fd00::2").with_context(|| r.logs())?;
    // 1472 bytes of ICMP payload: a 1500-byte packet, 1540 encapsulated.
    let big = a.vmtool(&["ping", "--to", "10.0.0.2", "--count", "1", "--size", "1472"])?;
    assert_eq!(received(&big), 0, "{big}");
    let errors = big["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors
            .iter()
            .any(|e| e["type"] == 3 && e["code"] == 4 && e["mtu"] == 1460),
        "{big}"
    );
    let big6 = a.vmtool(&["ping", "--to", "fd00::2", "--count", "1", "--size", "1452"])?;
    assert_eq!(received(&big6), 0, "{big6}");
    let errors = big6["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["type"] == 2 && e["mtu"] == 1460),
        "{big6}"
    );
    // What fits still passes.
    let fits = a.vmtool(&["ping", "--to", "10.0.0.2", "--count", "2", "--size", "1400"])?;
    assert_eq!(received(&fits), 2, "{fits}");
    assert!(drops(&counters(&r.nodes[0])?, "vma", "too_big") >= 2);
    Ok(())
}

/// A UDP frame from `src` to 10.0.0.2:7000, as the VM's kernel would build it.
fn udp_frame(src: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    use ferrinet_dataplane::packet::{MacAddr, ether, ipv4::Ipv4Header, udp};
    let mut f = Vec::new();
    ether::write_header(
        &mut f,
        MacAddr([2, 0xfe, 0, 0, 0, 0]),
        MacAddr([2, 0, 0, 0, 0, 1]),
        ether::ETHERTYPE_IPV4,
    );
    udp::write_ipv4_udp(
        &mut f,
        &Ipv4Header::new(src, Ipv4Addr::new(10, 0, 0, 2), 17),
        40000,
        7000,
        |o| o.extend_from_slice(payload),
    );
    f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_spoofed_frames_are_dropped_and_counted() -> anyhow::Result<()> {
    let (r, a, b) = pair(PacketOpts::default(), None, None).await?;
    ping_until_reply(&a, "10.0.0.2").with_context(|| r.logs())?;

    let spoofed = udp_frame(Ipv4Addr::new(10, 0, 0, 99), b"spoofed");
    let good = udp_frame(Ipv4Addr::new(10, 0, 0, 1), b"good");
    let truncated = good[..14 + 12].to_vec();
    let mut bad_length = good.clone();
    bad_length[14 + 2] = 0xff; // IPv4 total length beyond the frame
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x4f; // a 60-byte header in a 48-byte packet
    let header_only = good[..14].to_vec(); // an Ethernet header and nothing behind it

    let mut on_b = b.spawn_vmtool(&[
        "udp-recv",
        "--listen",
        "0.0.0.0:7000",
        "--timeout-ms",
        "3000",
        "--announce",
    ])?;
    on_b.wait_listening()?;
    let frames: Vec<String> = [&spoofed, &truncated, &bad_length, &bad_ihl, &header_only]
        .iter()
        .map(|f| hex(f))
        .collect();
    let mut args = vec!["frames"];
    for f in &frames {
        args.extend(["--hex", f.as_str()]);
    }
    let sent = a.vmtool(&args)?;
    assert_eq!(sent["sent"].as_u64(), Some(5), "{sent}");
    let got = on_b.finish_last()?;
    assert_eq!(
        got["received"],
        Value::Bool(false),
        "nothing may get through: {got}"
    );

    let c = counters(&r.nodes[0])?;
    assert!(drops(&c, "vma", "spoofed_source") >= 1, "{c}");
    assert!(drops(&c, "vma", "malformed") >= 4, "{c}");
    // The dataplane carries on; a well-formed frame from the VM's own address gets through.
    let mut on_b = b.spawn_vmtool(&[
        "udp-recv",
        "--listen",
        "0.0.0.0:7000",
        "--timeout-ms",
        "3000",
        "--announce",
    ])?;
    on_b.wait_listening()?;
    a.vmtool(&["frames", "--hex", &hex(&good)])?;
    let got = on_b.finish_last()?;
    assert_eq!(got["received"], Value::Bool(true), "{got}");
    assert_eq!(received(&ping(&a, "10.0.0.2", 3)?), 3);
    Ok(())
}
