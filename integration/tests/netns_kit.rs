//! The network-namespace kit itself, without a dataplane: namespaces joined by a veth with
//! kernel addresses, every vmtool command across them, a DHCP lease from busybox udhcpd, the
//! fabric's routes and the kernel-routed baseline.
//!
//! Needs root, `ip` and `udhcpc` (busybox); every address is inside namespaces made here.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use ferrinet_integration::netns::{Fabric, Netns, Vm, kernel_pair, require_tools};
use serde_json::Value;

/// Two namespaces joined by `va` - `vb`, with 10.250.0.1/24 + fd77::1/64 and .2 / ::2.
fn veth_pair() -> anyhow::Result<(Netns, Netns)> {
    require_tools()?;
    let a = Netns::new("a")?;
    let b = Netns::new("b")?;
    Netns::veth_pair(&a, "va", &b, "vb")?;
    a.ip(&["addr", "add", "10.250.0.1/24", "dev", "va"])?;
    b.ip(&["addr", "add", "10.250.0.2/24", "dev", "vb"])?;
    a.ip(&["-6", "addr", "add", "fd77::1/64", "dev", "va", "nodad"])?;
    b.ip(&["-6", "addr", "add", "fd77::2/64", "dev", "vb", "nodad"])?;
    Ok((a, b))
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("no number {k} in {v}"))
}

#[test]
fn ping_v4_and_v6_over_a_veth() -> anyhow::Result<()> {
    let (a, _b) = veth_pair()?;
    for to in ["10.250.0.2", "fd77::2"] {
        let v = a.vmtool(&["ping", "--to", to, "--count", "3", "--interval-ms", "20"])?;
        assert_eq!((num(&v, "sent"), num(&v, "received")), (3, 3), "{v}");
        assert_eq!(num(&v, "corrupted"), 0, "{v}");
        let rtt = &v["rtt_us"];
        assert!(rtt["min"].as_u64() <= rtt["max"].as_u64(), "{v}");
        assert!(v["errors"].as_array().is_some_and(Vec::is_empty), "{v}");
    }
    Ok(())
}

#[test]
fn ping_to_unrouted_addresses_gets_nothing() -> anyhow::Result<()> {
    let (a, _b) = veth_pair()?;
    for to in ["10.251.0.9", "fd78::9"] {
        let v = a.vmtool(&[
            "ping",
            "--to",
            to,
            "--count",
            "2",
            "--interval-ms",
            "10",
            "--timeout-ms",
            "200",
        ])?;
        assert_eq!(num(&v, "received"), 0, "{v}");
        // No route: the kernel refuses each send.
        assert_eq!(num(&v, "sent"), 0, "{v}");
        assert_eq!(v["local_errors"].as_array().map(Vec::len), Some(2), "{v}");
    }
    // Bad usage is the one failure.
    assert!(a.vmtool(&["ping", "--to", "not-an-address"]).is_err());
    // Routed, but nobody there: sent and lost.
    let v = a.vmtool(&[
        "ping",
        "--to",
        "10.250.0.77",
        "--count",
        "2",
        "--interval-ms",
        "10",
        "--timeout-ms",
        "200",
    ])?;
    assert_eq!(num(&v, "received"), 0, "{v}");
    Ok(())
}

/// A too-big echo with DF through a router with a smaller next hop comes back as "frag
/// needed" / "packet too big" naming the MTU.
#[test]
fn ping_reports_the_path_mtu_error() -> anyhow::Result<()> {
    require_tools()?;
    let (vm, r) = (Netns::new("vm")?, Netns::new("r")?);
    let far = Netns::new("far")?;
    Netns::veth_pair(&vm, "v0", &r, "r0")?;
    Netns::veth_pair(&r, "r1", &far, "f0")?;
    r.ip(&["link", "set", "r1", "mtu", "1280"])?;
    far.ip(&["link", "set", "f0", "mtu", "1280"])?;
    r.sysctl(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
    for (ns, cmds) in [
        (
            &vm,
            vec![
                "addr add 10.252.0.2/24 dev v0",
                "route add default via 10.252.0.1",
                "-6 addr add fd79::2/64 dev v0 nodad",
                "-6 route add default via fd79::1",
            ],
        ),
        (
            &r,
            vec![
                "addr add 10.252.0.1/24 dev r0",
                "addr add 10.253.0.1/24 dev r1",
                "-6 addr add fd79::1/64 dev r0 nodad",
                "-6 addr add fd7a::1/64 dev r1 nodad",
            ],
        ),
        (
            &far,
            vec![
                "addr add 10.253.0.2/24 dev f0",
                "route add default via 10.253.0.1",
                "-6 addr add fd7a::2/64 dev f0 nodad",
                "-6 route add default via fd7a::1",
            ],
        ),
    ] {
        for c in cmds {
            ns.ip(&c.split(' ').collect::<Vec<_>>())?;
        }
    }
    let small = vm.vmtool(&["ping", "--to", "10.253.0.2", "--count", "1"])?;
    assert_eq!(num(&small, "received"), 1, "{small}");
    for (to, kind, code) in [("10.253.0.2", 3, 4), ("fd7a::2", 2, 0)] {
        let v = vm.vmtool(&[
            "ping",
            "--to",
            to,
            "--count",
            "1",
            "--size",
            "1400",
            "--timeout-ms",
            "500",
        ])?;
        assert_eq!(num(&v, "received"), 0, "{v}");
        let errors = v["errors"].as_array().context("errors")?;
        let e = errors
            .first()
            .with_context(|| format!("no ICMP error in {v}"))?;
        assert_eq!(
            (num(e, "type"), num(e, "code"), num(e, "mtu")),
            (kind, code, 1280),
            "{v}"
        );
    }
    Ok(())
}

#[test]
fn tcp_stream_and_echo() -> anyhow::Result<()> {
    let (a, b) = veth_pair()?;
    for (listen, echo) in [("10.250.0.2:0", false), ("[fd77::2]:0", true)] {
        let mut args = vec!["tcp-serve", "--listen", listen, "--announce"];
        if echo {
            args.push("--echo");
        }
        let mut server = b.spawn_vmtool(&args)?;
        let addr = server.wait_listening()?.to_string();
        let sent = a.vmtool(&["tcp-send", "--to", &addr, "--bytes", "3000000"])?;
        assert_eq!(sent["connected"], true, "{sent}");
        assert_eq!(num(&sent, "bytes"), 3_000_000, "{sent}");
        assert_eq!(
            num(&sent, "echoed"),
            if echo { 3_000_000 } else { 0 },
            "{sent}"
        );
        assert!(
            sent["gbit_per_s"].as_f64().is_some_and(|g| g > 0.0),
            "{sent}"
        );
        let got = server.finish_last()?;
        assert_eq!(num(&got, "bytes"), 3_000_000, "{got}");
    }
    // Nobody listening: refused, reported, exit 0.
    let v = a.vmtool(&["tcp-send", "--to", "10.250.0.2:9", "--bytes", "10"])?;
    assert_eq!(v["connected"], false, "{v}");
    Ok(())
}

#[test]
fn udp_flood_sink_and_single_datagrams() -> anyhow::Result<()> {
    let (a, b) = veth_pair()?;
    let mut sink = b.spawn_vmtool(&[
        "udp-sink",
        "--listen",
        "10.250.0.2:0",
        "--seconds",
        "2",
        "--announce",
    ])?;
    let addr = sink.wait_listening()?.to_string();
    let flood = a.vmtool(&[
        "udp-flood",
        "--to",
        &addr,
        "--seconds",
        "0.3",
        "--size",
        "200",
    ])?;
    assert!(num(&flood, "packets") > 0, "{flood}");
    let got = sink.finish_last()?;
    assert!(num(&got, "packets") > 0, "{got}");
    assert!(
        num(&got, "packets") <= num(&flood, "packets"),
        "{got} {flood}"
    );

    let mut recv = b.spawn_vmtool(&["udp-recv", "--listen", "[fd77::2]:0", "--announce"])?;
    let addr = recv.wait_listening()?.to_string();
    let sent = a.vmtool(&["udp-send", "--to", &addr, "--payload", "hello vm"])?;
    assert_eq!(sent["sent"], true, "{sent}");
    let got = recv.finish_last()?;
    assert_eq!(
        (&got["received"], &got["payload"]),
        (&Value::Bool(true), &Value::from("hello vm")),
        "{got}"
    );
    assert!(
        got["from"]
            .as_str()
            .is_some_and(|f| f.starts_with("[fd77::1]:")),
        "{got}"
    );

    let quiet = b.vmtool(&[
        "udp-recv",
        "--listen",
        "10.250.0.2:0",
        "--timeout-ms",
        "100",
    ])?;
    assert_eq!(quiet["received"], false, "{quiet}");
    Ok(())
}

/// A lease from busybox udhcpd is applied (address, MTU, option 121 routes) and parsed.
#[test]
fn dhcp_lease_from_udhcpd() -> anyhow::Result<()> {
    require_tools()?;
    let server = Netns::new("dhcpd")?;
    Netns::veth_pair(&server, "sv", &server, "cl")?;
    server.ip(&["addr", "add", "10.254.0.1/24", "dev", "sv"])?;
    let vm = Vm::adopt("dvm", "cl", Some(&server))?;
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start 10.254.0.10\nend 10.254.0.20\ninterface sv\n\
             lease_file {leases}\npidfile {pid}\n\
             opt subnet 255.255.255.0\nopt router 10.254.0.1\nopt dns 10.254.0.53\n\
             opt mtu 1400\nopt hostname kitvm\nopt lease 600\n\
             opt staticroutes 10.254.0.1/32 0.0.0.0 10.255.0.0/16 10.254.0.1\n",
            leases = dir.path().join("leases").display(),
            pid = dir.path().join("pid").display(),
        ),
    )?;
    std::fs::write(dir.path().join("leases"), "")?;
    let conf = conf.to_str().context("path")?;
    let mut udhcpd = server.command("busybox");
    let _udhcpd = ferrinet_integration::ChildGuard(
        udhcpd
            .args(["udhcpd", "-f", conf])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let lease = vm.dhcp()?;
    assert_eq!(lease.ip.octets()[..3], [10, 254, 0], "{lease:?}");
    assert_eq!((lease.mask_len, lease.mtu), (24, Some(1400)), "{lease:?}");
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 254, 0, 53)], "{lease:?}");
    assert_eq!(lease.hostname.as_deref(), Some("kitvm"));
    assert_eq!(lease.server_id, Some(Ipv4Addr::new(10, 254, 0, 1)));
    assert_eq!(lease.static_routes.len(), 2, "{lease:?}");
    // busybox's own names: the prefix length comes as `mask`, the event is recorded.
    assert_eq!(lease.env.get("mask").map(String::as_str), Some("24"));
    assert_eq!(lease.env.get("event").map(String::as_str), Some("bound"));
    // Applied: the address, the MTU and the classless route.
    let addrs = vm.ip(&["-4", "addr", "show", "dev", "cl"])?;
    assert!(addrs.contains(&format!("inet {}/24", lease.ip)), "{addrs}");
    assert!(addrs.contains("mtu 1400"), "{addrs}");
    let route = vm.ip(&["route", "get", "10.255.1.1"])?;
    assert!(route.contains("via 10.254.0.1 dev cl"), "{route}");
    let ping = vm.vmtool(&["ping", "--to", "10.254.0.1", "--count", "1"])?;
    assert_eq!(num(&ping, "received"), 1, "{ping}");
    Ok(())
}

#[test]
fn fabric_routes_between_nodes() -> anyhow::Result<()> {
    require_tools()?;
    let fabric = Fabric::new(2, 1600)?;
    let (n1, n2) = (fabric.node(1), fabric.node(2));
    assert_eq!(n2.prefix.to_string(), "fc00:2::/64");
    assert_eq!(n2.host_addr.to_string(), "fc00:2::1");
    let route = n1.netns.ip(&["-6", "route", "get", "fc00:2::1"])?;
    assert!(route.contains("via fd99::2 dev ul0"), "{route}");
    let mtu = n1.netns.run(&["cat", "/sys/class/net/ul0/mtu"])?;
    assert_eq!(mtu.trim(), "1600");
    // The bridge carries traffic between the nodes' fabric addresses.
    let v = n1.netns.vmtool(&[
        "ping",
        "--to",
        &n2.fabric_addr.to_string(),
        "--count",
        "2",
        "--interval-ms",
        "20",
    ])?;
    assert_eq!(num(&v, "received"), 2, "{v}");
    // Forwarding stays off on the nodes.
    let fwd = n1
        .netns
        .run(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])?;
    assert_eq!(fwd.trim(), "0");
    Ok(())
}

#[test]
fn kernel_pair_routes_v4_and_v6_end_to_end() -> anyhow::Result<()> {
    require_tools()?;
    let pair = kernel_pair(1500)?;
    let (vm1, vm2) = (pair.vm(1), pair.vm(2));
    for to in [pair.v4(2).to_string(), pair.v6(2).to_string()] {
        let v = vm1.vmtool(&["ping", "--to", &to, "--count", "3", "--interval-ms", "20"])?;
        assert_eq!(num(&v, "received"), 3, "{v}");
    }
    let listen = format!("[{}]:0", pair.v6(2));
    let mut server = vm2.spawn_vmtool(&["tcp-serve", "--listen", &listen, "--announce"])?;
    let addr = server.wait_listening()?.to_string();
    let sent = vm1.vmtool(&["tcp-send", "--to", &addr, "--bytes", "1000000"])?;
    assert_eq!(num(&sent, "bytes"), 1_000_000, "{sent}");
    assert_eq!(num(&server.finish_last()?, "bytes"), 1_000_000);
    // The VMs themselves do not forward.
    let fwd = vm1.run(&["sysctl", "-n", "net.ipv4.ip_forward"])?;
    assert_eq!(fwd.trim(), "0");
    Ok(())
}

/// Dropping a namespace kills what runs in it and removes it.
#[test]
fn drop_kills_processes_and_deletes_the_namespace() -> anyhow::Result<()> {
    require_tools()?;
    let ns = Netns::new("gone")?;
    let name = ns.name().to_string();
    let child = ns.command("sleep").arg("600").spawn()?;
    let pid = child.id();
    ferrinet_integration::poll("sleep inside the namespace", || {
        Ok(ns.pids().contains(&pid).then_some(()))
    })?;
    drop(ns);
    let mut child = child;
    // Reaped here: killed by the drop, so this returns at once.
    let status = child.wait()?;
    assert!(!status.success(), "{status}");
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()?;
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str())),
        "{list}"
    );
    Ok(())
}
