//! `ferrinet-packet-bench`: what the software dataplane's packet path moves, beside plain kernel
//! routing between the same kind of namespaces. Two nodes on a bridge, one VM each (the kit of
//! `ferrinet_integration::packets`), then: TCP throughput VM -> VM, small-packet forwarding rate
//! (UDP, 64-byte frames, counted at the receiver) and ping round trips. Needs root. Prints a
//! table and one JSON line; asserts nothing.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use clap::Parser;
use ferrinet_integration::netns::{Vm, kernel_pair};
use ferrinet_integration::packets::probe::{counters, offload};
use ferrinet_integration::packets::{PacketOpts, PacketRegion};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "ferrinet-packet-bench")]
struct Args {
    /// Seconds per UDP flood.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Bytes per TCP transfer (three transfers, the median is reported).
    #[arg(long, default_value_t = 1_000_000_000)]
    tcp_bytes: u64,
    /// Underlay MTU (the VMs keep 1500).
    #[arg(long, default_value_t = 1600)]
    mtu: u32,
    /// The nodes' `dataplane.poll_spin_us` (default: theirs).
    #[arg(long)]
    poll_spin_us: Option<u64>,
    /// The nodes' packet loops never sleep (`dataplane.busy_poll = true`).
    #[arg(long)]
    busy_poll: bool,
    /// Only ferrinet, no kernel baseline.
    #[arg(long)]
    skip_kernel: bool,
    /// Echo requests for the round-trip figures.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..))]
    ping_count: u16,
    /// Milliseconds between echo requests. The default is longer than the nodes' default poll
    /// spin, so that each request finds the packet threads asleep, as sparse traffic does.
    #[arg(long, default_value_t = 10)]
    ping_interval_ms: u64,
}

const RULES: &str = "  firewallRules:\n    - firewallRuleID: all-v4\n      direction: Ingress\n      action: Accept\n      ipFamily: IPv4\n";

fn manifest(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: Network\nmetadata:\n  name: net\nspec:\n  id: 1001\n---\napiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata:\n  name: {name}\nspec:\n  networkRef:\n    name: net\n  ipFamilies: [IPv4]\n  ips: [{ip}]\n{RULES}"
    )
}

/// What the dataplanes counted so far (ferrinet only).
#[derive(Debug, Clone, Copy)]
struct Counted {
    /// Underlay packets sent by the first node.
    node1_tx: u64,
    /// Underlay packets received by the second node.
    node2_rx: u64,
    /// TCP super-segments the first node read from its VM.
    node1_super_reads: u64,
    /// Merged frames the second node wrote to its VM.
    node2_merged_writes: u64,
}

type UnderlayProbe<'a> = &'a dyn Fn() -> anyhow::Result<Counted>;

/// How much `what` grew between two readings (ferrinet only).
fn growth(
    before: Option<Counted>,
    after: Option<Counted>,
    what: fn(Counted) -> u64,
) -> Option<f64> {
    Some(what(after?).saturating_sub(what(before?)) as f64)
}

/// `n / d` as JSON; null when either is missing or `d` is 0.
fn per(n: Option<f64>, d: Option<f64>) -> Value {
    match (n, d) {
        (Some(n), Some(d)) if d > 0.0 => json!(n / d),
        _ => Value::Null,
    }
}

/// The three figures between `a` and `b` (at `b_ip`); with `underlay`, also how many packets
/// each dataplane moved per second during the UDP flood.
fn measure(
    a: &Vm,
    b: &Vm,
    b_ip: Ipv4Addr,
    args: &Args,
    underlay: Option<UnderlayProbe<'_>>,
) -> anyhow::Result<Value> {
    // Warm up: neighbours, flows.
    a.vmtool(&[
        "ping",
        "--to",
        &b_ip.to_string(),
        "--count",
        "3",
        "--interval-ms",
        "20",
    ])?;
    let mut gbits = Vec::new();
    let tcp_before = underlay.map(|u| u()).transpose()?;
    for port in [5101, 5102, 5103] {
        let addr = format!("{b_ip}:{port}");
        let mut srv = b.spawn_vmtool(&["tcp-serve", "--listen", &addr, "--announce"])?;
        srv.wait_listening()?;
        let r = a.vmtool(&[
            "tcp-send",
            "--to",
            &addr,
            "--bytes",
            &args.tcp_bytes.to_string(),
        ])?;
        srv.finish_last()?;
        gbits.push(r["gbit_per_s"].as_f64().context("tcp-send gave no rate")?);
    }
    gbits.sort_by(f64::total_cmp);
    let tcp_after = underlay.map(|u| u()).transpose()?;
    // How well the offloads worked: wire packets per TAP read at the sender's node and per
    // TAP write at the receiver's.
    let (tb, ta) = (tcp_before, tcp_after);
    let per_read = per(
        growth(tb, ta, |c| c.node1_tx),
        growth(tb, ta, |c| c.node1_super_reads),
    );
    let per_write = per(
        growth(tb, ta, |c| c.node2_rx),
        growth(tb, ta, |c| c.node2_merged_writes),
    );
    let secs = args.seconds.to_string();
    let sink_addr = format!("{b_ip}:5200");
    let mut sink = b.spawn_vmtool(&[
        "udp-sink",
        "--listen",
        &sink_addr,
        "--seconds",
        &(args.seconds + 2).to_string(),
        "--announce",
    ])?;
    sink.wait_listening()?;
    let before = underlay.map(|u| u()).transpose()?;
    let flood = a.vmtool(&[
        "udp-flood",
        "--to",
        &sink_addr,
        "--seconds",
        &secs,
        "--size",
        "18",
    ])?;
    // Read before the sink's extra seconds pass: the rates are over the flood's own time.
    let after = underlay.map(|u| u()).transpose()?;
    let sunk = sink.finish_last()?;
    let received = sunk["packets"].as_f64().unwrap_or(0.0);
    let flood_secs = Some(args.seconds as f64);
    let node1_tx = per(growth(before, after, |c| c.node1_tx), flood_secs);
    let node2_rx = per(growth(before, after, |c| c.node2_rx), flood_secs);
    let ping = a.vmtool(&[
        "ping",
        "--to",
        &b_ip.to_string(),
        "--count",
        &args.ping_count.to_string(),
        "--interval-ms",
        &args.ping_interval_ms.to_string(),
    ])?;
    Ok(json!({
        "tcp_gbit_per_s": gbits[1],
        "tcp_node1_underlay_packets_per_super_read": per_read,
        "tcp_node2_underlay_packets_per_merged_write": per_write,
        "udp_sent_pps": flood["pps"],
        "udp_received_pps": received / args.seconds as f64,
        "udp_node1_underlay_tx_pps": node1_tx,
        "udp_node2_underlay_rx_pps": node2_rx,
        "rtt_p50_us": ping["rtt_us"]["p50"],
        "rtt_p99_us": ping["rtt_us"]["p99"],
    }))
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eprintln!(
        "binaries: {} (profile of this tool)",
        ferrinet_integration::node_bin().display()
    );
    let opts = PacketOpts {
        underlay_mtu: args.mtu,
        extra_toml: args
            .poll_spin_us
            .map(|us| format!("dataplane.poll_spin_us = {us}\n"))
            .into_iter()
            .chain(
                args.busy_poll
                    .then(|| "dataplane.busy_poll = true\n".to_string()),
            )
            .collect(),
        ..PacketOpts::default()
    };
    let mut r = PacketRegion::start(opts).await?;
    r.nodes[0].apply(&manifest("vma", "10.0.0.1"))?;
    r.nodes[1].apply(&manifest("vmb", "10.0.0.2"))?;
    let (a, _) = r.vm(0, "vma").await?;
    let (b, _) = r.vm(1, "vmb").await?;
    a.configure_v4(Ipv4Addr::new(10, 0, 0, 1))?;
    b.configure_v4(Ipv4Addr::new(10, 0, 0, 2))?;
    let probe = || -> anyhow::Result<Counted> {
        let (c1, c2) = (counters(&r.nodes[0])?, counters(&r.nodes[1])?);
        let underlay = |c: &Value, f: &str| c["underlay"][f].as_u64().unwrap_or(0);
        Ok(Counted {
            node1_tx: underlay(&c1, "tx_packets"),
            node2_rx: underlay(&c2, "rx_packets"),
            node1_super_reads: offload(&c1, "vma").0,
            node2_merged_writes: offload(&c2, "vmb").1,
        })
    };
    let ferrinet = measure(&a, &b, Ipv4Addr::new(10, 0, 0, 2), &args, Some(&probe))
        .with_context(|| r.logs())?;
    drop((a, b, r));
    let kernel = if args.skip_kernel {
        Value::Null
    } else {
        let k = kernel_pair(args.mtu)?;
        measure(k.vm(1), k.vm(2), k.v4(2), &args, None)?
    };
    println!("| measure (target) | ferrinet | kernel routing |");
    println!("|---|---|---|");
    println!(
        "| TCP VM -> VM, Gbit/s (>= 2) | {:.2} | {:.2} |",
        num(&ferrinet, "tcp_gbit_per_s"),
        num(&kernel, "tcp_gbit_per_s")
    );
    println!(
        "| TCP, underlay packets per TAP read at node 1 / per TAP write at node 2 | {:.1} / {:.1} | |",
        num(&ferrinet, "tcp_node1_underlay_packets_per_super_read"),
        num(&ferrinet, "tcp_node2_underlay_packets_per_merged_write")
    );
    println!(
        "| UDP 64-byte frames received, packets/s (>= 300k) | {:.0} | {:.0} |",
        num(&ferrinet, "udp_received_pps"),
        num(&kernel, "udp_received_pps")
    );
    // What the sending VM handed its stack: beyond what the path takes, the excess is dropped
    // at the TAP (or, in kernel routing, never leaves the sender's thread any faster).
    println!(
        "| UDP 64-byte, sent by the VM, packets/s | {:.0} | {:.0} |",
        num(&ferrinet, "udp_sent_pps"),
        num(&kernel, "udp_sent_pps")
    );
    println!(
        "| UDP 64-byte, forwarded by node 1 / received by node 2, packets/s | {:.0} / {:.0} | |",
        num(&ferrinet, "udp_node1_underlay_tx_pps"),
        num(&ferrinet, "udp_node2_underlay_rx_pps")
    );
    println!(
        "| ping RTT p50 / p99, us | {:.0} / {:.0} | {:.0} / {:.0} |",
        num(&ferrinet, "rtt_p50_us"),
        num(&ferrinet, "rtt_p99_us"),
        num(&kernel, "rtt_p50_us"),
        num(&kernel, "rtt_p99_us")
    );
    println!(
        "| added round trip (p50), us (<= 100) | {:.0} | |",
        num(&ferrinet, "rtt_p50_us") - num(&kernel, "rtt_p50_us")
    );
    println!(
        "{}",
        json!({ "ferrinet": ferrinet, "kernel": kernel, "mtu": args.mtu })
    );
    Ok(())
}
