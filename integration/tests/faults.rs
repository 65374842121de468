//! Two route servers and three nodes (a, b, c), each node the real `ferrinet-node` programming
//! its own software dataplane served by the test: what one node creates reaches the others'
//! dataplanes, and stays right through route-server failures, a `kill -9` of a node while the
//! region changes, and a restart of a dataplane under its running node. Every check reads the
//! dataplanes through the dpservice API.

use std::collections::BTreeSet;
use std::time::Duration;

use ferrinet_integration::cluster::{Check, Cluster, ClusterOpts};
use ferrinet_integration::dataplane::{self, DataplaneView, NeighborNat};
use ferrinet_integration::manifest::{Interface, docs, internal_lb, network};
use ferrinet_proto::node::v1 as pb;

const VNI: u32 = 4711;
const PUBLIC_VNI: u32 = 100;
const NAT_IP: &str = "203.0.113.50";
const VIP: &str = "203.0.113.10";

/// Routes as a dataplane lists them: `(prefix, next hop)`.
type Routes = BTreeSet<(String, String)>;

/// The route other nodes install for interface `ip` with `status`.
fn host_route(ip: &str, status: &pb::NetworkInterfaceStatus) -> (String, String) {
    (format!("{ip}/32"), status.underlay_ip.clone())
}

fn routes<const N: usize>(r: [(String, String); N]) -> Routes {
    r.into_iter().collect()
}

/// The neighbour NAT other nodes install for a1's NAT.
fn a1_nat(a1: &pb::NetworkInterfaceStatus) -> NeighborNat {
    NeighborNat {
        ip: NAT_IP.into(),
        vni: VNI,
        min_port: 1024,
        max_port: 2048,
        underlay: a1.nat_underlay.clone(),
    }
}

/// Creates network `blue` on every node and `iface` on node `node`; returns its status once
/// Ready.
async fn create(
    c: &mut Cluster,
    node: usize,
    iface: &Interface,
) -> anyhow::Result<pb::NetworkInterfaceStatus> {
    c.nodes[node].apply(&docs(&[network("blue", VNI), iface.yaml()]))?;
    c.nodes[node].until_ready(&iface.name).await
}

/// a1 on a (10.0.0.1, with a virtual IP and a NAT), b1 on b (10.0.0.2), c1 on c (10.0.0.3).
async fn base(c: &mut Cluster) -> anyhow::Result<[pb::NetworkInterfaceStatus; 3]> {
    let a1 = Interface::new("a1", "blue", "10.0.0.1")
        .virtual_ip(VIP)
        .nat(NAT_IP, 1024, 2048);
    let a1 = create(c, 0, &a1).await?;
    let b1 = create(c, 1, &Interface::new("b1", "blue", "10.0.0.2")).await?;
    let c1 = create(c, 2, &Interface::new("c1", "blue", "10.0.0.3")).await?;
    Ok([a1, b1, c1])
}

/// Waits until node `i`'s dataplane holds exactly `want` in the VNI and `nats` as neighbour
/// NATs.
async fn until_exactly(
    c: &Cluster,
    i: usize,
    want: &Routes,
    nats: &BTreeSet<NeighborNat>,
) -> anyhow::Result<DataplaneView> {
    let what = format!(
        "node {}: exactly {want:?} and NATs {nats:?}",
        c.nodes[i].name
    );
    c.until(&what, async || {
        let v = c.nodes[i].view().await?;
        let ok = v.routes_of(VNI) == *want && v.neighbor_nats == *nats;
        Ok(Check::when(ok, v.clone(), v))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_vip_nat_and_lb_targets_reach_the_other_nodes() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOpts::default()).await?;
    let [a1, b1, c1] = base(&mut c).await?;

    // Each node installs the others' interface routes, next hop the interface's underlay.
    let nat = BTreeSet::from([a1_nat(&a1)]);
    let a1_route = host_route("10.0.0.1", &a1);
    let b1_route = host_route("10.0.0.2", &b1);
    let c1_route = host_route("10.0.0.3", &c1);
    until_exactly(&c, 1, &routes([a1_route.clone(), c1_route.clone()]), &nat).await?;
    until_exactly(&c, 2, &routes([a1_route, b1_route.clone()]), &nat).await?;
    // a's own NAT is no neighbour of a.
    until_exactly(&c, 0, &routes([b1_route, c1_route]), &BTreeSet::new()).await?;

    // The virtual IP and the NAT IP in the public VNI at both route servers.
    let public = routes([
        (format!("{VIP}/32"), a1.virtual_ip_underlay.clone()),
        (format!("{NAT_IP}/32"), a1.nat_underlay.clone()),
    ]);
    for (i, s) in c.servers.iter().enumerate() {
        c.until(
            &format!("server {i}: VIP and NAT in VNI {PUBLIC_VNI}"),
            async || {
                let r = s.routes(PUBLIC_VNI)?;
                Ok(Check::when(r == public, (), r))
            },
        )
        .await?;
    }

    // Load balancer on c: a target on a created before it, one on b after it; c installs both,
    // next hops the underlays a and b gave the target prefixes.
    let vip = "10.0.0.100/32";
    let at = Interface::new("a-target", "blue", "10.0.0.11").lb_target(vip);
    create(&mut c, 0, &at).await?;
    c.nodes[2].apply(&internal_lb("lb1", "blue", "10.0.0.100", 80))?;
    let bt = Interface::new("b-target", "blue", "10.0.0.12").lb_target(vip);
    create(&mut c, 1, &bt).await?;
    let mut want = BTreeSet::new();
    for (node, iface) in [(0, "a-target"), (1, "b-target")] {
        let prefixes = dataplane::lb_prefixes(c.nodes[node].dataplane.client(), iface).await?;
        want.extend(prefixes.into_iter().map(|(_, underlay)| underlay));
    }
    assert_eq!(want.len(), 2, "one target prefix on each of a and b");
    c.until("c: both load-balancer targets", async || {
        let t = dataplane::lb_targets(c.nodes[2].dataplane.client(), "lb1").await?;
        Ok(Check::when(t == want, (), t))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_servers_down_and_back_lose_nothing_and_reconverge() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOpts::default()).await?;
    let [a1, b1, c1] = base(&mut c).await?;
    let b2 = create(&mut c, 1, &Interface::new("b2", "blue", "10.0.0.4")).await?;
    let nat = BTreeSet::from([a1_nat(&a1)]);
    let (ra1, rb1, rb2, rc1) = (
        host_route("10.0.0.1", &a1),
        host_route("10.0.0.2", &b1),
        host_route("10.0.0.4", &b2),
        host_route("10.0.0.3", &c1),
    );
    until_exactly(
        &c,
        0,
        &routes([rb1.clone(), rb2.clone(), rc1.clone()]),
        &BTreeSet::new(),
    )
    .await?;
    until_exactly(&c, 1, &routes([ra1.clone(), rc1.clone()]), &nat).await?;
    until_exactly(&c, 2, &routes([ra1.clone(), rb1.clone(), rb2]), &nat).await?;
    let before = c.views().await?;

    // One server gone: the other still provides every route, so no dataplane loses any.
    c.servers[0].kill();
    c.stays(
        "every dataplane unchanged with one route server down",
        Duration::from_millis(800),
        async || {
            let now = c.views().await?;
            Ok(Check::when(now == before, (), (&before, now)))
        },
    )
    .await?;

    // Both gone; meanwhile a gets an interface and b loses one. Once both servers are back
    // (empty, on the same ports) everything is announced again and the changes made while they
    // were down show everywhere.
    c.servers[1].kill();
    // With no server left nothing vouches for the routes, but nothing withdrew them either:
    // the dataplanes keep them (an outage of the route servers is no outage of the network).
    c.stays(
        "every dataplane unchanged with both route servers down",
        Duration::from_millis(800),
        async || {
            let now = c.views().await?;
            Ok(Check::when(now == before, (), (&before, now)))
        },
    )
    .await?;
    let a2 = create(&mut c, 0, &Interface::new("a2", "blue", "10.0.0.5")).await?;
    c.nodes[1].delete("interface", "b2")?;
    for s in &mut c.servers {
        s.restart()?;
    }
    let ra2 = host_route("10.0.0.5", &a2);
    until_exactly(&c, 0, &routes([rb1.clone(), rc1.clone()]), &BTreeSet::new()).await?;
    until_exactly(&c, 1, &routes([ra1.clone(), ra2.clone(), rc1]), &nat).await?;
    until_exactly(&c, 2, &routes([ra1, ra2, rb1]), &nat).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_while_routes_change_ends_with_exactly_the_right_routes() -> anyhow::Result<()>
{
    let mut c = Cluster::start(ClusterOpts::default()).await?;
    let [a1, b1, c1] = base(&mut c).await?;
    let a2 = create(&mut c, 0, &Interface::new("a2", "blue", "10.0.0.5")).await?;
    let nat = BTreeSet::from([a1_nat(&a1)]);
    let (ra1, ra2, rb1, rc1) = (
        host_route("10.0.0.1", &a1),
        host_route("10.0.0.5", &a2),
        host_route("10.0.0.2", &b1),
        host_route("10.0.0.3", &c1),
    );
    until_exactly(
        &c,
        1,
        &routes([ra1.clone(), ra2.clone(), rc1.clone()]),
        &nat,
    )
    .await?;

    // b dies; its dataplane keeps what b installed, the others drop b1's route with b's
    // sessions. While b is down a1 goes (its route and its NAT are stale in b's dataplane) and
    // a3 comes (missing there).
    c.nodes[1].proc.kill();
    c.nodes[0].delete("interface", "a1")?;
    let a3 = create(&mut c, 0, &Interface::new("a3", "blue", "10.0.0.6")).await?;
    let ra3 = host_route("10.0.0.6", &a3);
    let none = BTreeSet::new();
    until_exactly(&c, 2, &routes([ra2.clone(), ra3.clone()]), &none).await?;
    let stale = c.nodes[1].view().await?;
    assert!(
        stale.routes_of(VNI).contains(&ra1) && stale.neighbor_nats == nat,
        "b's dataplane should still hold a1's route and NAT: {stale:#?}"
    );

    // Back up over the same dataplane: the stale route and NAT removed, a3 added, its own
    // interface kept.
    c.nodes[1].proc.restart().await?;
    let v = until_exactly(&c, 1, &routes([ra2.clone(), ra3.clone(), rc1]), &none).await?;
    assert_eq!(v.interfaces, BTreeSet::from(["b1".to_string()]));
    until_exactly(&c, 2, &routes([ra2, ra3, rb1]), &none).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_restart_is_reprogrammed_without_restarting_the_node() -> anyhow::Result<()> {
    let mut c = Cluster::start(ClusterOpts::default()).await?;
    let [a1, b1, _] = base(&mut c).await?;
    let vip = "10.0.0.100/32";
    let bt = Interface::new("b-target", "blue", "10.0.0.12").lb_target(vip);
    let bt = create(&mut c, 1, &bt).await?;
    c.nodes[2].apply(&internal_lb("lb1", "blue", "10.0.0.100", 80))?;
    let nat = BTreeSet::from([a1_nat(&a1)]);
    let learned = routes([
        host_route("10.0.0.1", &a1),
        host_route("10.0.0.2", &b1),
        host_route("10.0.0.12", &bt),
    ]);
    let before = c
        .until(
            "c: learned routes, NAT and load-balancer target",
            async || {
                let v = c.nodes[2].view().await?;
                let ok = v.routes_of(VNI) == learned
                    && v.neighbor_nats == nat
                    && v.lb_targets.get("lb1").is_some_and(|t| t.len() == 1);
                Ok(Check::when(ok, v.clone(), v))
            },
        )
        .await?;
    let pid = c.nodes[2].proc.pid();
    let restarts = c.nodes[2].proc.status().await?.dataplane_restarts;

    // The restarted dataplane is empty with a new UUID; the running node puts everything back.
    c.nodes[2].dataplane.service.restart();
    c.until("c: dataplane reprogrammed as before", async || {
        let v = c.nodes[2].view().await?;
        Ok(Check::when(v == before, (), (&before, v)))
    })
    .await?;
    assert!(c.nodes[2].proc.running(), "c's node process exited");
    assert_eq!(c.nodes[2].proc.pid(), pid);
    let status = c.nodes[2].proc.status().await?;
    assert!(status.dataplane_restarts > restarts, "{status:?}");

    // c1 has a new underlay in the new dataplane: a and b follow it.
    let c1 = c.nodes[2].until_ready("c1").await?;
    let rc1 = host_route("10.0.0.3", &c1);
    for i in [0, 1] {
        c.until(&format!("node {i}: c1's new next hop"), async || {
            let got = c.nodes[i].view().await?.routes_of(VNI);
            Ok(Check::when(got.contains(&rc1), (), got))
        })
        .await?;
    }
    Ok(())
}
