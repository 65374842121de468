//! The node daemon end to end: the real `ferrinet-node` binary announcing its objects' routes to
//! the real route server, `ferrinetctl` driving it, and `kill -9` in the middle of a burst of
//! creates losing nothing that was confirmed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferrinet_integration::node::{
    NodeProc, dataplane, dataplane_interfaces, dataplane_routes, until_ready,
};
use ferrinet_integration::{Env, RegionServer, ServerOpts, WAIT};
use ferrinet_proto::node::v1 as pb;

const MANIFEST: &str = r#"
apiVersion: networking.metalnet.ironcore.dev/v1alpha1
kind: Network
metadata: {name: blue}
spec: {id: 4711}
---
apiVersion: networking.metalnet.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {name: web-0}
spec:
  networkRef: {name: blue}
  ipFamilies: [IPv4]
  ips: [192.168.30.5]
  virtualIP: 203.0.113.20
  prefixes: [192.168.31.0/28]
---
apiVersion: networking.metalnet.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata: {name: web-lb}
spec:
  networkRef: {name: blue}
  type: Internal
  ip: 192.168.30.100
  ports: [{protocol: TCP, port: 443}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_announces_its_objects_routes_to_the_region() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let dir = tempfile::tempdir()?;
    let compat = server.compat.to_string();
    let mut node = NodeProc::start(
        dir.path(),
        "n1",
        &[
            "--dataplane",
            "embedded",
            "--route-server",
            &compat,
            "--route-plaintext",
        ],
    )
    .await?;
    node.synced().await?;
    let (code, out, err) = node.ctl(&["apply", "-f", "-"], Some(MANIFEST))?;
    assert_eq!(code, 0, "apply: {out}{err}");
    let web = until_ready(&mut node, "web-0").await?;
    assert!(!web.underlay_ip.is_empty());

    // The interface IP and its prefix in the network VNI, the VIP in the public VNI (100), the
    // internal load balancer's IP in the network VNI; each with the underlay dpservice gave it.
    let deadline = Instant::now() + WAIT;
    loop {
        let blue = server.routes(4711)?;
        let public = server.routes(100)?;
        let ok = blue.contains(&("192.168.30.5/32".into(), web.underlay_ip.clone()))
            && blue.iter().any(|(p, _)| p == "192.168.31.0/28")
            && blue.iter().any(|(p, _)| p == "192.168.30.100/32")
            && public.contains(&("203.0.113.20/32".into(), web.virtual_ip_underlay.clone()));
        if ok {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "routes at the region: {blue:?} {public:?}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deleting the interface withdraws its routes; the load balancer's stays.
    let (code, out, err) = node.ctl(&["delete", "interface", "web-0"], None)?;
    assert_eq!(code, 0, "delete: {out}{err}");
    let deadline = Instant::now() + WAIT;
    loop {
        let blue = server.routes(4711)?;
        let public = server.routes(100)?;
        if blue.iter().all(|(p, _)| p == "192.168.30.100/32")
            && blue.len() == 1
            && public.is_empty()
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "routes left: {blue:?} {public:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_of_creates_loses_nothing_confirmed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (dp_addr, _dp) = dataplane().await?;
    let mut node = NodeProc::start(
        dir.path(),
        "n1",
        &["--dataplane", &dp_addr, "--vf-mode", "tap"],
    )
    .await?;
    node.synced().await?;
    let mut c = node.client().await?;
    c.create(pb::CreateRequest {
        object: Some(pb::Object {
            object: Some(pb::object::Object::Network(pb::Network {
                metadata: Some(pb::Metadata {
                    name: "blue".into(),
                    ..Default::default()
                }),
                spec: Some(pb::NetworkSpec {
                    id: 10,
                    ..Default::default()
                }),
                status: None,
            })),
        }),
    })
    .await?;
    // 100 creates, 16 at a time; the node is killed while they run.
    let (tx, mut rx) = tokio::sync::mpsc::channel(128);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let burst = tokio::spawn(async move {
        for i in 0..100u32 {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                return;
            };
            let mut c = c.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let name = format!("if-{i}");
                let r = c
                    .create(pb::CreateRequest {
                        object: Some(pb::Object {
                            object: Some(pb::object::Object::NetworkInterface(
                                pb::NetworkInterface {
                                    metadata: Some(pb::Metadata {
                                        name: name.clone(),
                                        ..Default::default()
                                    }),
                                    spec: Some(pb::NetworkInterfaceSpec {
                                        network: "blue".into(),
                                        ips: vec![format!("10.0.{}.{}", i / 200, i % 200 + 1)],
                                        ..Default::default()
                                    }),
                                    status: None,
                                },
                            )),
                        }),
                    })
                    .await;
                drop(permit);
                let _ = tx.send((name, r.is_ok())).await;
            });
        }
    });
    // Kill once some creates are confirmed, so some are in flight.
    let mut confirmed = BTreeSet::new();
    while confirmed.len() < 30 {
        let (name, ok) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .context("creates stalled")?
            .context("burst ended early")?;
        if ok {
            confirmed.insert(name);
        }
    }
    node.kill_and_restart().await?;
    burst.abort();
    while let Ok(Some((name, ok))) =
        tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
    {
        if ok {
            confirmed.insert(name);
        }
    }
    node.synced().await?;
    let mut c = node.client().await?;
    let listed = c
        .list(pb::ListRequest {
            kind: pb::Kind::NetworkInterface.into(),
        })
        .await?
        .into_inner();
    let stored: BTreeSet<String> = listed
        .objects
        .iter()
        .filter_map(|o| match &o.object {
            Some(pb::object::Object::NetworkInterface(i)) => {
                i.metadata.as_ref().map(|m| m.name.clone())
            }
            _ => None,
        })
        .collect();
    let lost: Vec<&String> = confirmed.difference(&stored).collect();
    assert!(lost.is_empty(), "confirmed but lost: {lost:?}");
    // The dataplane ends with exactly the stored interfaces (orphans of unconfirmed creates
    // removed, missing ones re-created), each on a distinct VF.
    let deadline = Instant::now() + WAIT;
    loop {
        let in_dp = dataplane_interfaces(&dp_addr).await?;
        let names: BTreeSet<String> = in_dp.iter().map(|(n, _, _)| n.clone()).collect();
        let devices: BTreeSet<&String> = in_dp.iter().map(|(_, _, d)| d).collect();
        if names == stored && devices.len() == in_dp.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "dataplane {names:?} vs stored {stored:?}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrinetctl_exit_codes_and_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = NodeProc::start(dir.path(), "n1", &["--dataplane", "embedded"]).await?;
    node.synced().await?;
    // Applying twice: created, then unchanged.
    let (code, out, err) = node.ctl(&["apply", "-f", "-"], Some(MANIFEST))?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("networkinterface/web-0 created"), "{out}");
    let (code, out, _) = node.ctl(&["apply", "-f", "-"], Some(MANIFEST))?;
    assert_eq!(code, 0);
    assert!(out.contains("networkinterface/web-0 unchanged"), "{out}");
    until_ready(&mut node, "web-0").await?;
    // What get -o yaml prints applies back unchanged.
    let (code, yaml, err) = node.ctl(&["get", "interface", "web-0", "-o", "yaml"], None)?;
    assert_eq!(code, 0, "{err}");
    assert!(yaml.contains("192.168.30.5"), "{yaml}");
    let (code, out, err) = node.ctl(&["apply", "-f", "-"], Some(&yaml))?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("unchanged"), "{out}");
    // The table lists it with its VF.
    let (code, out, _) = node.ctl(&["get", "interfaces"], None)?;
    assert_eq!(code, 0);
    assert!(
        out.contains("web-0") && out.contains("dtapvf_0") && out.contains("Ready"),
        "{out}"
    );
    // 1: a bad input file names the document and field.
    let (code, _, err) = node.ctl(
        &["apply", "-f", "-"],
        Some("apiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: Network\nmetadata: {name: x}\nspec: {id: 1, bogus: 2}\n"),
    )?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bogus"), "{err}");
    // 2: refused by the node (invalid value), naming the field.
    let (code, _, err) = node.ctl(
        &[
            "create",
            "interface",
            "bad",
            "--network",
            "blue",
            "--ip",
            "10.0.0.1",
            "--ip",
            "10.0.0.2",
        ],
        None,
    )?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("spec.ips[1]"), "{err}");
    // 4: not found, already exists.
    let (code, _, _) = node.ctl(&["get", "interface", "nope"], None)?;
    assert_eq!(code, 4);
    let (code, _, _) = node.ctl(&["create", "network", "blue", "--vni", "4711"], None)?;
    assert_eq!(code, 4);
    // 3: unreachable.
    let (code, _, err) = ferrinet_integration::node::ctl(
        &format!("unix:{}", dir.path().join("nothing.sock").display()),
        &["status"],
        None,
    )?;
    assert_eq!(code, 3, "{err}");
    // Nothing of the refused requests was stored.
    let (code, out, _) = node.ctl(&["get", "interfaces", "-o", "json"], None)?;
    assert_eq!(code, 0);
    assert!(!out.contains("\"bad\""), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_over_tcp_requires_a_region_certificate() -> anyhow::Result<()> {
    let env = Env::new()?;
    let dir = tempfile::tempdir()?;
    let pki = env.pki.ca();
    let pki_dir = pki.parent().context("pki dir")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
            env.pki.ca(),
            pki_dir.join("server.pem"),
            pki_dir.join("server.key"),
        ),
    )?;
    let config = config.display().to_string();
    let mut node = NodeProc::start(
        dir.path(),
        "n1",
        &["--config", &config, "--dataplane", "embedded"],
    )
    .await?;
    node.synced().await?;
    let tcp = format!("127.0.0.1:{port}");
    let with = |node: &str| -> Vec<String> {
        vec![
            "--ca".into(),
            env.pki.ca().display().to_string(),
            "--cert".into(),
            env.pki.cert(node).display().to_string(),
            "--key".into(),
            env.pki.key(node).display().to_string(),
            "status".into(),
        ]
    };
    let args = with("node-a");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ferrinet_integration::node::ctl(&tcp, &args, None)?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("n1"), "{out}");
    // Without a certificate, or with one of another CA: refused at the handshake.
    let (code, _, _) = ferrinet_integration::node::ctl(&tcp, &["status"], None)?;
    assert_eq!(code, 3);
    let foreign = [
        "--ca".to_string(),
        env.pki.ca().display().to_string(),
        "--cert".into(),
        env.foreign.cert("node-a").display().to_string(),
        "--key".into(),
        env.foreign.key("node-a").display().to_string(),
        "status".into(),
    ];
    let foreign: Vec<&str> = foreign.iter().map(String::as_str).collect();
    let (code, _, err) = ferrinet_integration::node::ctl(&tcp, &foreign, None)?;
    assert_eq!(code, 3, "{err}");
    // The Unix socket is still there.
    let (code, _, _) = node.ctl(&["status"], None)?;
    assert_eq!(code, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_install_each_others_routes() -> anyhow::Result<()> {
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
        let mut n = NodeProc::start(
            dir.path(),
            name,
            &[
                "--config",
                &cfg,
                "--route-server",
                &compat,
                "--route-plaintext",
            ],
        )
        .await?;
        n.synced().await?;
        nodes.push(n);
    }
    let blue = "apiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: Network\nmetadata: {name: blue}\nspec: {id: 4711}\n";
    let iface = |name: &str, ip: &str| {
        format!(
            "{blue}---\napiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata: {{name: {name}}}\nspec: {{networkRef: {{name: blue}}, ipFamilies: [IPv4], ips: [{ip}]}}\n"
        )
    };
    let (code, out, err) = nodes[0].ctl(&["apply", "-f", "-"], Some(&iface("a1", "10.0.0.1")))?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = nodes[1].ctl(&["apply", "-f", "-"], Some(&iface("b1", "10.0.0.2")))?;
    assert_eq!(code, 0, "{out}{err}");
    let a1 = until_ready(&mut nodes[0], "a1").await?;
    let b1 = until_ready(&mut nodes[1], "b1").await?;
    let mut dps = Vec::new();
    for n in &mut nodes {
        let mut c = n.client().await?;
        dps.push(
            c.node_status(pb::NodeStatusRequest {})
                .await?
                .into_inner()
                .dataplane_address,
        );
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let at_a = dataplane_routes(&dps[0], 4711).await?;
        let at_b = dataplane_routes(&dps[1], 4711).await?;
        if at_b.contains(&("10.0.0.1/32".into(), a1.underlay_ip.clone()))
            && at_a.contains(&("10.0.0.2/32".into(), b1.underlay_ip.clone()))
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "routes at a {at_a:?}, at b {at_b:?}\n{}",
            nodes[1].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A load-balancer target announced by b before a has the load balancer: installed once the
    // load balancer appears on a.
    let target = format!(
        "{blue}---\napiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata: {{name: b2}}\nspec: {{networkRef: {{name: blue}}, ipFamilies: [IPv4], ips: [10.0.0.3], loadBalancerTargets: [10.0.0.100/32]}}\n"
    );
    let (code, out, err) = nodes[1].ctl(&["apply", "-f", "-"], Some(&target))?;
    assert_eq!(code, 0, "{out}{err}");
    until_ready(&mut nodes[1], "b2").await?;
    let (code, out, err) = nodes[0].ctl(
        &[
            "create",
            "lb",
            "lb",
            "--network",
            "blue",
            "--type",
            "internal",
            "--ip",
            "10.0.0.100",
            "--port",
            "tcp/80",
        ],
        None,
    )?;
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + WAIT;
    loop {
        use ferrinet_proto::dpservice::v1 as dp;
        let mut c =
            dp::dpd_kironcore_client::DpdKironcoreClient::connect(format!("http://{}", dps[0]))
                .await?;
        let targets: Vec<String> = c
            .list_load_balancer_targets(dp::ListLoadBalancerTargetsRequest {
                loadbalancer_id: b"lb".to_vec(),
            })
            .await?
            .into_inner()
            .target_ips
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a.address).to_string())
            .collect();
        if targets.len() == 1 && targets[0].starts_with("fc00:b:") {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "load balancer targets at a: {targets:?}\n{}",
            nodes[0].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deleted on a: gone at b.
    let (code, _, err) = nodes[0].ctl(&["delete", "interface", "a1"], None)?;
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + WAIT;
    while dataplane_routes(&dps[1], 4711)
        .await?
        .iter()
        .any(|(p, _)| p == "10.0.0.1/32")
    {
        anyhow::ensure!(Instant::now() < deadline, "a1's route stays at b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_router_learned_from_the_public_vni_with_fallback() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let dir = tempfile::tempdir()?;
    let compat = server.compat.to_string();
    let cfg = dir.path().join("n.toml");
    std::fs::write(
        &cfg,
        "[dataplane]\naddress = \"embedded\"\n[routes]\nrouter_address = \"fc00:ff::1\"\n",
    )?;
    let cfg = cfg.display().to_string();
    let mut node = NodeProc::start(
        dir.path(),
        "n1",
        &[
            "--config",
            &cfg,
            "--route-server",
            &compat,
            "--route-plaintext",
        ],
    )
    .await?;
    node.synced().await?;
    let (code, out, err) = node.ctl(
        &["apply", "-f", "-"],
        Some("apiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: Network\nmetadata: {name: blue}\nspec: {id: 4711}\n---\napiVersion: networking.metalnet.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata: {name: a1}\nspec: {networkRef: {name: blue}, ipFamilies: [IPv4], ips: [10.0.0.1]}\n"),
    )?;
    assert_eq!(code, 0, "{out}{err}");
    until_ready(&mut node, "a1").await?;
    let dp = {
        let mut c = node.client().await?;
        c.node_status(pb::NodeStatusRequest {})
            .await?
            .into_inner()
            .dataplane_address
    };
    let default = |hop: &str| ("0.0.0.0/0".to_string(), hop.to_string());
    let until_default = |want: (String, String)| {
        let dp = dp.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                let routes = dataplane_routes(&dp, 4711).await?;
                if routes.contains(&want)
                    && routes.iter().filter(|(p, _)| p == "0.0.0.0/0").count() == 1
                {
                    return anyhow::Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "routes {routes:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The configured fallback first; a router announced in the public VNI (100) takes over;
    // when it is withdrawn the fallback is back.
    until_default(default("fc00:ff::1")).await?;
    let mut router = ferrinet_integration::raw::RawConn::established_plain(server.compat).await?;
    let announced: ferrinet_region::route::Route = "100#0.0.0.0/0#fc00:ee::1".parse()?;
    router
        .update(ferrinet_region::route::Action::Add, &announced)
        .await?;
    if let Err(e) = until_default(default("fc00:ee::1")).await {
        anyhow::bail!(
            "{e}\nregion: {}\nsessions: {}\n{}",
            server.get_json("/routes.json?vni=100")?,
            server.get_json("/sessions.json")?,
            node.log()
        );
    }
    router
        .update(ferrinet_region::route::Action::Remove, &announced)
        .await?;
    until_default(default("fc00:ff::1")).await?;
    Ok(())
}
