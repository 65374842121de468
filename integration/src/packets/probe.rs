//! What packet tests ask of VMs and nodes: pings, polling, and the dataplane's counters as
//! `ferrinetctl counters -o json` shows them.

use anyhow::Context as _;
use serde_json::Value;

use super::PacketNode;
use crate::netns::Vm;

/// `count` pings from `vm` to `to`, 50 ms apart, a second's wait for the last reply.
pub fn ping(vm: &Vm, to: impl std::fmt::Display, count: u32) -> anyhow::Result<Value> {
    vm.vmtool(&[
        "ping",
        "--to",
        &to.to_string(),
        "--count",
        &count.to_string(),
        "--interval-ms",
        "50",
        "--timeout-ms",
        "1000",
    ])
}

/// Echo replies a ping result counted.
pub fn received(v: &Value) -> u64 {
    v["received"].as_u64().unwrap_or(0)
}

/// Polls `f` until it holds, at most ~20 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    for _ in 0..80 {
        if f()? {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    anyhow::bail!("{what}: did not happen")
}

/// Pings until one reply comes (routes take a moment to spread), at most ~20 s.
pub fn ping_until_reply(vm: &Vm, to: &str) -> anyhow::Result<()> {
    eventually(&format!("an echo reply from {to}"), || {
        Ok(received(&ping(vm, to, 1)?) == 1)
    })
}

/// `ferrinetctl counters -o json` of `node`.
pub fn counters(node: &PacketNode) -> anyhow::Result<Value> {
    let out = node.ctl(&["counters", "-o", "json"], None)?;
    serde_json::from_str(&out).with_context(|| format!("counters: {out}"))
}

fn interface<'a>(c: &'a Value, id: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    c["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |i| i["interface_id"] == id)
}

/// Interface `id`'s drops for `reason` in a counters document.
pub fn drops(c: &Value, id: &str, reason: &str) -> u64 {
    interface(c, id)
        .flat_map(|i| i["traffic"]["drops"].as_array().into_iter().flatten())
        .filter(|d| d["reason"] == reason)
        .map(|d| d["packets"].as_u64().unwrap_or(0))
        .sum()
}

/// Interface `id`'s TAP offload counters: super-segments read from its VM, merged ones written
/// to it.
pub fn offload(c: &Value, id: &str) -> (u64, u64) {
    let field = |f: &str| {
        interface(c, id)
            .map(|i| i[f].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    (field("offload_reads"), field("offload_writes"))
}

/// Interface `id`'s firewall verdict counter `field` (accepted, dropped, would_drop) in
/// `direction`.
pub fn verdicts(c: &Value, id: &str, direction: &str, field: &str) -> u64 {
    interface(c, id)
        .flat_map(|i| i["firewall"].as_array().into_iter().flatten())
        .filter(|f| f["direction"] == direction)
        .map(|f| f[field].as_u64().unwrap_or(0))
        .sum()
}
