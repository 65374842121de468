//! The region end to end with real binaries: `ferrinet-api` (embedded store, mutual TLS, DNS),
//! a route server and three `ferrinet-node`s that register with the API and program their own
//! software dataplanes. The seed-shaped manifest set of `api/examples/region.yaml` is applied
//! with `ferrinetctl --api`; every check reads the dataplanes through the dpservice API, or asks
//! the API's DNS server.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use ferrinet_integration::Pki;
use ferrinet_integration::api::{ADMIN, ApiProc};
use ferrinet_integration::cluster::{Check, Cluster, ClusterOpts};

/// The example manifests, with the cluster's node names.
fn manifests() -> String {
    let path = ferrinet_integration::workspace_root().join("api/examples/region.yaml");
    std::fs::read_to_string(path)
        .expect("api/examples/region.yaml")
        .replace("nodeName: node-1", "nodeName: a")
        .replace("nodeName: node-2", "nodeName: b")
}

/// Asks `server` (UDP) for the A record of `name`; the addresses answered.
fn resolve_a(server: &str, name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    // Header: id 0x4242, RD, one question.
    let mut q = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len())?);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, server)?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf)?;
    let answer = &buf[..n];
    anyhow::ensure!(
        answer.len() > q.len() && answer[3] & 0x0f == 0,
        "DNS error: {answer:?}"
    );
    let count = u16::from_be_bytes([answer[6], answer[7]]);
    // Answers follow the question; each is a name (labels or a pointer), type, class, TTL,
    // length, data.
    let mut at = q.len();
    let mut out = Vec::new();
    for _ in 0..count {
        loop {
            let len = *answer
                .get(at)
                .ok_or_else(|| anyhow::anyhow!("short answer"))?;
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        let rtype = u16::from_be_bytes([answer[at], answer[at + 1]]);
        let len = usize::from(u16::from_be_bytes([answer[at + 8], answer[at + 9]]));
        at += 10;
        if rtype == 1 && len == 4 {
            out.push(Ipv4Addr::new(
                answer[at],
                answer[at + 1],
                answer[at + 2],
                answer[at + 3],
            ));
        }
        at += len;
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_manifests_are_realized_in_the_nodes_dataplanes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::create(&dir.path().join("pki"), &[ADMIN, "a", "b", "c"])?;
    let api = ApiProc::start(
        dir.path(),
        &pki,
        &["a", "b", "c"],
        "[region]\nlb_replicas = 1",
    )?;
    let extra = format!(
        "region_api.address = {:?}\nregion_api.server_name = \"localhost\"\n\
         region_api.ca = {:?}\nregion_api.cert = \"{}/{{node}}.pem\"\nregion_api.key = \"{}/{{node}}.key\"\n\
         region_api.underlay_prefix = \"{{underlay}}\"\n\
         region_api.heartbeat_ms = 500\nregion_api.status_interval_ms = 100",
        api.addr,
        pki.ca(),
        pki.dir.display(),
        pki.dir.display(),
    );
    let cluster = Cluster::start(ClusterOpts {
        servers: 1,
        nodes: 3,
        extra_toml: extra,
        ..ClusterOpts::default()
    })
    .await?;
    let ctx = || format!("{}\n--- api log:\n{}", cluster.logs(), api.log());

    // Every node registers.
    cluster
        .until("three nodes registered", async || {
            let (code, out, err) = api.ctl(&["get", "nodes"], None)?;
            let ready = out.lines().filter(|l| l.contains("Ready")).count();
            Ok(Check::when(
                code == 0 && ready == 3,
                (),
                format!("{out}{err}"),
            ))
        })
        .await?;

    let (code, out, err) = api.ctl(&["apply", "-f", "-"], Some(&manifests()))?;
    assert_eq!(code, 0, "apply: {out}{err}\n{}", ctx());
    assert!(
        out.contains("networkinterface/team-a/web-1 created"),
        "{out}"
    );

    // Interfaces on their nodes, with VIP and NAT; the load balancers where they are placed.
    cluster
        .until("interfaces on a and b", async || {
            let v = cluster.views().await?;
            let ok = v[0].interfaces.contains("team-a_web-1")
                && v[0].interfaces.contains("team-b_app-1")
                && v[1].interfaces.contains("team-a_web-2")
                && v[1].interfaces.contains("team-a_db-1")
                && v[2].interfaces.is_empty();
            Ok(Check::when(ok, (), &v))
        })
        .await?;
    // b reaches web-1 on a, db-1's internal LB VIP and the public VIP through routes in VNI 100
    // (blue, the first VNI); a's green table (101) holds blue's routes by peering.
    let (ready, web_targets) = cluster
        .until("routes, peering and load balancer targets", async || {
            let v = cluster.views().await?;
            let blue_on_b = v[1].routes_of(100);
            let green_on_a = v[0].routes_of(101);
            let has = |t: &std::collections::BTreeSet<(String, String)>, p: &str| {
                t.iter().any(|(prefix, _)| prefix == p)
            };
            let web_lb = v[0]
                .lb_targets
                .get("team-a_web")
                .cloned()
                .unwrap_or_default();
            let ok = has(&blue_on_b, "10.1.0.10/32")
                && has(&green_on_a, "10.1.0.11/32")
                && has(&green_on_a, "10.1.0.50/32")
                && web_lb.len() == 2;
            Ok(Check::when(ok, (true, web_lb), &v))
        })
        .await?;
    assert!(ready);
    assert_eq!(web_targets.len(), 2, "web-1 and web-2 serve the public LB");

    // The region shows what the nodes report: every interface Available with its underlay.
    cluster
        .until("interfaces Available in the region", async || {
            let (_, out, _) = api.ctl(&["get", "ni", "-A"], None)?;
            let ok = out.lines().filter(|l| l.contains("Available")).count() == 4;
            Ok(Check::when(ok, (), out))
        })
        .await?;
    let (_, yaml, _) = api.ctl(&["get", "ni", "web-2", "-n", "team-a", "-o", "yaml"], None)?;
    assert!(
        yaml.contains("natIP: 203.0.113.") || yaml.contains("natIp: 203.0.113."),
        "NAT slice: {yaml}"
    );
    let (_, net, _) = api.ctl(
        &["get", "network", "blue", "-n", "team-a", "-o", "yaml"],
        None,
    )?;
    assert!(net.contains("Ready"), "peering Ready: {net}");

    // The policy's rules are on db-1 in b's dataplane.
    let rules = b_firewall_rules(&cluster, "team-a_db-1").await?;
    assert!(
        rules.iter().any(|r| r.contains("10.1.0.10/32")),
        "web-1 may reach db-1: {rules:?}"
    );
    assert!(
        rules.iter().any(|r| r.contains("10.2.0.0/25")),
        "ipBlock minus except: {rules:?}"
    );
    assert!(!rules.iter().any(|r| r.contains("10.2.0.128")), "{rules:?}");

    // DNS answers for the interfaces.
    let ips = resolve_a(&api.dns, "web-2.blue.team-a.test.ferrinet")?;
    assert_eq!(ips, vec![Ipv4Addr::new(10, 1, 0, 11)]);

    // Deleting through the API removes the interface from its node's dataplane.
    let (code, out, err) = api.ctl(&["delete", "ni", "web-2", "-n", "team-a"], None)?;
    assert_eq!(code, 0, "{out}{err}");
    cluster
        .until("web-2 gone from b", async || {
            let v = cluster.views().await?;
            Ok(Check::when(
                !v[1].interfaces.contains("team-a_web-2"),
                (),
                &v,
            ))
        })
        .await?;
    let _ = ctx;
    Ok(())
}

/// The firewall rules of `interface` on node b, `SOURCE -> DESTINATION` each.
async fn b_firewall_rules(cluster: &Cluster, interface: &str) -> anyhow::Result<Vec<String>> {
    use ferrinet_proto::dpservice::v1 as dp;
    let mut c = cluster.nodes[1].dataplane.client();
    let r = c
        .list_firewall_rules(dp::ListFirewallRulesRequest {
            interface_id: interface.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    let prefix = |p: &Option<dp::Prefix>| {
        p.as_ref()
            .map(|p| {
                let ip =
                    p.ip.as_ref()
                        .map(|a| String::from_utf8_lossy(&a.address).to_string());
                format!("{}/{}", ip.unwrap_or_default(), p.length)
            })
            .unwrap_or_default()
    };
    Ok(r.rules
        .iter()
        .map(|r| {
            format!(
                "{} -> {}",
                prefix(&r.source_prefix),
                prefix(&r.destination_prefix)
            )
        })
        .collect())
}
