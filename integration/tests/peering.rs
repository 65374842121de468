//! VNI peering end to end: two real nodes with embedded dataplanes and one route server. Routes
//! of a VNI reach a peered VNI's table on another node (the cross-node case metalnet misses),
//! the export filter holds, this node's own routes are fanned out into peered tables, the
//! status shows each peering, and removing a peering removes exactly the routes it brought.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferrinet_integration::node::NodeProc;
use ferrinet_integration::{Env, RegionServer, ServerOpts, WAIT};
use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::node::v1 as pb;

const API: &str = "apiVersion: networking.metalnet.ironcore.dev/v1alpha1";

/// `blue` (VNI 7) exports only 10.7.0.0/24 into `red` (VNI 8); `red` exports everything.
fn networks(blue_peers: bool, red_peers: bool) -> String {
    let blue = if blue_peers {
        "spec: {id: 7, peeredIDs: [8], peeredPrefixes: [{id: 8, prefixes: [10.7.0.0/24]}]}"
    } else {
        "spec: {id: 7}"
    };
    let red = if red_peers {
        "spec: {id: 8, peeredIDs: [7]}"
    } else {
        "spec: {id: 8}"
    };
    format!(
        "{API}\nkind: Network\nmetadata: {{name: blue}}\n{blue}\n---\n{API}\nkind: Network\nmetadata: {{name: red}}\n{red}\n"
    )
}

fn interface(name: &str, network: &str, ip: &str) -> String {
    format!(
        "{API}\nkind: NetworkInterface\nmetadata: {{name: {name}}}\nspec: {{networkRef: {{name: {network}}}, ipFamilies: [IPv4], ips: [{ip}]}}\n"
    )
}

fn apply(node: &NodeProc, manifest: &str) -> anyhow::Result<()> {
    let (code, out, err) = node.ctl(&["apply", "-f", "-"], Some(manifest))?;
    anyhow::ensure!(code == 0, "apply failed: {out}{err}");
    Ok(())
}

/// A route of a table: (prefix, next-hop VNI, next hop).
type Entry = (String, u32, String);

async fn table(addr: &str, vni: u32) -> anyhow::Result<BTreeSet<Entry>> {
    let mut c =
        dp::dpd_kironcore_client::DpdKironcoreClient::connect(format!("http://{addr}")).await?;
    let r = c
        .list_routes(dp::ListRoutesRequest { vni })
        .await?
        .into_inner();
    let text = |a: Option<dp::IpAddress>| {
        a.map(|a| String::from_utf8_lossy(&a.address).to_string())
            .unwrap_or_default()
    };
    Ok(r.routes
        .into_iter()
        .map(|r| {
            let p = r.prefix.unwrap_or_default();
            (
                format!("{}/{}", text(p.ip), p.length),
                r.nexthop_vni,
                text(r.nexthop_address),
            )
        })
        .collect())
}

async fn underlay(node: &mut NodeProc, name: &str) -> anyhow::Result<String> {
    let mut c = node.client().await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let o = c
            .get(pb::GetRequest {
                r#ref: Some(pb::ObjectRef {
                    kind: pb::Kind::NetworkInterface.into(),
                    name: name.into(),
                }),
            })
            .await?
            .into_inner();
        if let Some(pb::object::Object::NetworkInterface(i)) = o.object
            && let Some(s) = i.status
            && s.phase == pb::Phase::Ready as i32
        {
            return Ok(s.underlay_ip);
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the table of `vni` at `addr`, apart from default routes, is exactly `want`.
async fn until_table(
    node: &NodeProc,
    addr: &str,
    vni: u32,
    want: &[(&str, u32, &str)],
) -> anyhow::Result<()> {
    let want: BTreeSet<Entry> = want
        .iter()
        .map(|(p, v, n)| (p.to_string(), *v, n.to_string()))
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let got: BTreeSet<Entry> = table(addr, vni)
            .await?
            .into_iter()
            .filter(|(p, _, _)| !p.ends_with("/0"))
            .collect();
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "table {vni} at {addr}: {got:?}, want {want:?}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn peering_state(node: &mut NodeProc, network: &str) -> anyhow::Result<Vec<(u32, String)>> {
    let mut c = node.client().await?;
    let o = c
        .get(pb::GetRequest {
            r#ref: Some(pb::ObjectRef {
                kind: pb::Kind::Network.into(),
                name: network.into(),
            }),
        })
        .await?
        .into_inner();
    match o.object {
        Some(pb::object::Object::Network(n)) => Ok(n
            .status
            .unwrap_or_default()
            .peerings
            .into_iter()
            .map(|p| (p.id, p.state))
            .collect()),
        other => anyhow::bail!("not a network: {other:?}"),
    }
}

async fn dataplane_address(node: &mut NodeProc) -> anyhow::Result<String> {
    let mut c = node.client().await?;
    Ok(c.node_status(pb::NodeStatusRequest {})
        .await?
        .into_inner()
        .dataplane_address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peering_across_nodes_with_filters_fan_out_status_and_removal() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let dir = tempfile::tempdir()?;
    let compat = server.compat.to_string();
    let mut nodes = Vec::new();
    for (name, ul) in [("a", "fc00:a::/64"), ("b", "fc00:b::/64")] {
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!("[dataplane]\naddress = \"embedded\"\nembedded_underlay = \"{ul}\"\n"),
        )?;
        let cfg = cfg.display().to_string();
        let args = [
            "--config",
            &cfg,
            "--route-server",
            &compat,
            "--route-plaintext",
        ];
        let mut n = NodeProc::start(dir.path(), name, &args).await?;
        n.synced().await?;
        nodes.push(n);
    }
    let (mut a, mut b) = (nodes.remove(0), nodes.remove(0));
    let (dp_a, dp_b) = (
        dataplane_address(&mut a).await?,
        dataplane_address(&mut b).await?,
    );

    // Both networks are known on both nodes; blue is in use on a only, red on both.
    for n in [&a, &b] {
        apply(n, &networks(true, true))?;
    }
    apply(&a, &interface("a1", "blue", "10.7.0.1"))?;
    apply(&a, &interface("a2", "blue", "10.7.1.1"))?;
    apply(&a, &interface("a3", "red", "10.8.0.5"))?;
    apply(&b, &interface("b1", "red", "10.8.0.1"))?;
    let a1 = underlay(&mut a, "a1").await?;
    underlay(&mut a, "a2").await?;
    let a3 = underlay(&mut a, "a3").await?;
    let b1 = underlay(&mut b, "b1").await?;

    // b holds red only: blue's routes inside blue's filter come in through red's table there,
    // with next-hop VNI 7. 10.7.1.1 is outside the filter.
    until_table(
        &b,
        &dp_b,
        8,
        &[("10.7.0.1/32", 7, &a1), ("10.8.0.5/32", 8, &a3)],
    )
    .await?;
    // a: red's routes (b's, and a's own a3 fanned out locally) in blue's table; blue's a1 in
    // red's table; red's table also has b's b1.
    until_table(
        &a,
        &dp_a,
        7,
        &[("10.8.0.1/32", 8, &b1), ("10.8.0.5/32", 8, &a3)],
    )
    .await?;
    until_table(
        &a,
        &dp_a,
        8,
        &[("10.7.0.1/32", 7, &a1), ("10.8.0.1/32", 8, &b1)],
    )
    .await?;

    // Status: each peering Ready on both nodes, shown by ferrinetctl.
    let deadline = Instant::now() + WAIT;
    loop {
        let states = (
            peering_state(&mut a, "blue").await?,
            peering_state(&mut b, "red").await?,
        );
        if states == (vec![(8, "Ready".into())], vec![(7, "Ready".into())]) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "peering states {states:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out, err) = a.ctl(&["get", "networks", "-o", "wide"], None)?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("8:Ready"), "{out}");
    assert!(out.contains("Complete"), "{out}");

    // blue stops exporting into red: exactly blue's routes leave red's tables; red still
    // exports into blue.
    for n in [&a, &b] {
        apply(n, &networks(false, true))?;
    }
    until_table(&b, &dp_b, 8, &[("10.8.0.5/32", 8, &a3)]).await?;
    until_table(&a, &dp_a, 8, &[("10.8.0.1/32", 8, &b1)]).await?;
    until_table(
        &a,
        &dp_a,
        7,
        &[("10.8.0.1/32", 8, &b1), ("10.8.0.5/32", 8, &a3)],
    )
    .await?;
    // And red stops too: blue's table is back to blue's own routes (none from other nodes).
    for n in [&a, &b] {
        apply(n, &networks(false, false))?;
    }
    until_table(&a, &dp_a, 7, &[]).await?;
    until_table(&a, &dp_a, 8, &[("10.8.0.1/32", 8, &b1)]).await?;
    Ok(())
}
