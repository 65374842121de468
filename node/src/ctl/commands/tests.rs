//! The commands against the in-memory fake node ([`super::fake`]) over a real Unix socket,
//! connected the way `ferrinetctl` connects.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tonic::transport::Channel;

use super::fake::{CREATED_MS, FakeNode};
use super::*;
use crate::ctl::client::{self, NodeAddr};
use crate::ctl::error::exit;
use crate::ctl::manifest::{self, Source};

const EXAMPLE: &str = include_str!("../../../examples/manifests.yaml");

struct Setup {
    fake: FakeNode,
    ctl: Ctl<Channel>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeNode::default();
    let path = fake.serve(dir.path());
    let addr = NodeAddr::Unix(path);
    let client = client::connect(&addr, Duration::from_secs(5))
        .await
        .unwrap();
    Setup {
        fake,
        ctl: Ctl::new(client, addr.to_string()),
        _dir: dir,
    }
}

fn files(text: &str) -> Vec<Vec<Entry>> {
    vec![
        manifest::parse(&Source {
            name: "f.yaml".into(),
            text: text.into(),
        })
        .unwrap(),
    ]
}

#[tokio::test]
async fn apply_creates_then_leaves_unchanged_then_configures() {
    let mut s = setup().await;
    let example = files(EXAMPLE);
    let mut out = Vec::new();
    s.ctl.apply(&example, &mut out).await.unwrap();
    // Networks, then load balancers, then interfaces.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\
network/frontend created
network/backend created
loadbalancer/web-lb created
networkinterface/web-1 created
networkinterface/db-1 created
"
    );
    let mut out = Vec::new();
    s.ctl.apply(&example, &mut out).await.unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .lines()
            .all(|l| l.ends_with(" unchanged"))
    );
    assert_eq!(s.fake.state.lock().unwrap().updates, 0);

    let changed = EXAMPLE.replace(
        "id: 1002\n  peeredIDs: [1001]",
        "id: 1002\n  peeredIDs: [1001, 1003]",
    );
    let mut out = Vec::new();
    s.ctl.apply(&files(&changed), &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("network/backend configured\n"), "{out}");
    assert_eq!(out.matches("unchanged").count(), 4, "{out}");
    let st = s.fake.state.lock().unwrap();
    assert_eq!((st.creates, st.updates), (5, 1));
}

#[tokio::test]
async fn create_of_an_existing_object_exits_4() {
    let mut s = setup().await;
    let mut out = Vec::new();
    s.ctl.create(&files(EXAMPLE), &mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 5);
    let mut out = Vec::new();
    let err = s.ctl.create(&files(EXAMPLE), &mut out).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    assert_eq!(
        err.to_string(),
        "network/frontend: \"frontend\" already exists"
    );
    assert!(out.is_empty());
}

#[tokio::test]
async fn refusals_exit_2_with_the_nodes_message() {
    let mut s = setup().await;
    let bad = "apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {name: zero}\nspec: {id: 0}\n";
    let err = s.ctl.apply(&files(bad), &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::REFUSED);
    assert_eq!(
        err.to_string(),
        "network/zero: spec.id: must be 1..16777215"
    );

    // update -f with a stale resourceVersion: FAILED_PRECONDITION.
    s.ctl
        .create(&files(EXAMPLE), &mut Vec::new())
        .await
        .unwrap();
    let stale = "apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {name: backend, resourceVersion: '1'}\nspec: {id: 1002}\n";
    let err = s
        .ctl
        .update(&files(stale), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::REFUSED);
    assert_eq!(
        err.to_string(),
        "network/backend: metadata.resource_version: 1 is not current (2)"
    );
    let current = stale.replace("'1'", "'2'");
    let mut out = Vec::new();
    s.ctl.update(&files(&current), &mut out).await.unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "network/backend configured\n"
    );
}

#[tokio::test]
async fn update_and_get_of_a_missing_object_exit_4() {
    let mut s = setup().await;
    let doc = "apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata: {name: nope}\nspec: {id: 5}\n";
    let err = s
        .ctl
        .update(&files(doc), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    let err = s
        .ctl
        .get(
            Kind::LoadBalancer,
            Some("nope"),
            GetFormat::Table,
            0,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    assert!(err.to_string().starts_with("loadbalancer/nope: "), "{err}");
}

#[tokio::test]
async fn get_prints_tables_and_documents_that_apply_accepts() {
    let mut s = setup().await;
    s.ctl.apply(&files(EXAMPLE), &mut Vec::new()).await.unwrap();
    let now = CREATED_MS + 90_000;
    let mut out = Vec::new();
    let n = s
        .ctl
        .get(Kind::Network, None, GetFormat::Table, now, &mut out)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\
NAME       VNI    PEERINGS   PHASE   AGE
backend    1002   1001       Ready   90s
frontend   1001   1002       Ready   90s
"
    );
    let mut out = Vec::new();
    s.ctl
        .get(
            Kind::NetworkInterface,
            Some("db-1"),
            GetFormat::Wide,
            now,
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\
NAME   NETWORK   IPS          VIP      UNDERLAY    VF     PHASE     AGE   NAT                      PREFIXES   LBTARGETS   REASON
db-1   backend   10.20.5.21   <none>   fd00:a::1   tap0   Pending   90s   203.0.113.50:1024-2048   <none>     <none>      <none>
"
    );

    // Every kind as YAML, applied back: nothing changes.
    for kind in [Kind::Network, Kind::LoadBalancer, Kind::NetworkInterface] {
        for format in [GetFormat::Yaml, GetFormat::Json] {
            let mut out = Vec::new();
            s.ctl.get(kind, None, format, now, &mut out).await.unwrap();
            let text = String::from_utf8(out).unwrap();
            let mut applied = Vec::new();
            s.ctl.apply(&files(&text), &mut applied).await.unwrap();
            let applied = String::from_utf8(applied).unwrap();
            assert!(
                applied.lines().all(|l| l.ends_with(" unchanged")),
                "{applied}"
            );
        }
    }
    // One object: a document, not a list.
    let mut out = Vec::new();
    s.ctl
        .get(
            Kind::LoadBalancer,
            Some("web-lb"),
            GetFormat::Json,
            now,
            &mut out,
        )
        .await
        .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .starts_with("{\n  \"apiVersion\": \"ferrinet.dev/v1\",\n  \"kind\": \"LoadBalancer\"")
    );
    // An empty list prints nothing in a table, [] as JSON.
    s.ctl
        .delete(
            Kind::LoadBalancer,
            &["web-lb".into()],
            false,
            &mut Vec::new(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        s.ctl
            .get(Kind::LoadBalancer, None, GetFormat::Table, now, &mut out)
            .await
            .unwrap(),
        0
    );
    assert!(out.is_empty());
    s.ctl
        .get(Kind::LoadBalancer, None, GetFormat::Json, now, &mut out)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "[]\n");
}

#[tokio::test]
async fn delete_by_file_goes_in_reverse_order() {
    let mut s = setup().await;
    s.ctl.apply(&files(EXAMPLE), &mut Vec::new()).await.unwrap();
    let mut out = Vec::new();
    s.ctl
        .delete_files(&files(EXAMPLE), false, &mut out)
        .await
        .unwrap();
    let want = [
        "networkinterface/web-1",
        "networkinterface/db-1",
        "loadbalancer/web-lb",
        "network/frontend",
        "network/backend",
    ];
    assert_eq!(s.fake.state.lock().unwrap().deletes, want);
    let lines: Vec<String> = want.iter().map(|w| format!("{w} deleted")).collect();
    assert_eq!(String::from_utf8(out).unwrap(), lines.join("\n") + "\n");

    // Again: NOT_FOUND (exit 4), unless ignored.
    let err = s
        .ctl
        .delete_files(&files(EXAMPLE), false, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    let mut out = Vec::new();
    s.ctl
        .delete_files(&files(EXAMPLE), true, &mut out)
        .await
        .unwrap();
    s.ctl
        .delete(Kind::Network, &["x".into(), "y".into()], true, &mut out)
        .await
        .unwrap();
    assert!(out.is_empty());
}

#[tokio::test]
async fn node_name_of_another_node_is_refused_before_anything_is_sent() {
    let mut s = setup().await;
    let text = include_str!("../../../tests/data/metalnet-compat.yaml");
    let mut out = Vec::new();
    s.ctl.apply(&files(text), &mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);

    let other = text.replace("nodeName: node-a", "nodeName: node-b");
    let before = s.fake.state.lock().unwrap().revision;
    for r in [
        s.ctl.apply(&files(&other), &mut Vec::new()).await,
        s.ctl.create(&files(&other), &mut Vec::new()).await,
        s.ctl.update(&files(&other), &mut Vec::new()).await,
        s.ctl
            .delete_files(&files(&other), false, &mut Vec::new())
            .await,
    ] {
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), exit::USAGE);
        assert_eq!(
            err.to_string(),
            "f.yaml: document 1: items[1]: spec.nodeName \"node-b\" is not this node (\"node-a\")"
        );
    }
    assert_eq!(s.fake.state.lock().unwrap().revision, before);
}

#[tokio::test]
async fn watch_prints_events_until_count_or_stop() {
    let mut s = setup().await;
    s.ctl.apply(&files(EXAMPLE), &mut Vec::new()).await.unwrap();
    let mut out = Vec::new();
    let never = std::future::pending::<()>();
    s.ctl
        .watch(
            Some(Kind::Network),
            WatchFormat::Text,
            Some(2),
            never,
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "ADDED network/backend Ready rv=2\nADDED network/frontend Ready rv=1\n"
    );

    // The stream stays open: `stop` ends the watch (Ctrl-C in the binary).
    let mut out = Vec::new();
    let stop = tokio::time::sleep(Duration::from_millis(200));
    s.ctl
        .watch(None, WatchFormat::Json, None, stop, &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 5, "{out}");
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["apiVersion"], "ferrinet.dev/v1");
    }

    // The node ending the stream: exit 3.
    s.fake.state.lock().unwrap().end_watch = true;
    let err = s
        .ctl
        .watch(
            Some(Kind::LoadBalancer),
            WatchFormat::Text,
            None,
            std::future::pending(),
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    assert!(
        err.to_string().ends_with(": the node ended the watch"),
        "{err}"
    );
}

#[tokio::test]
async fn status_as_text_and_json() {
    let mut s = setup().await;
    s.ctl.apply(&files(EXAMPLE), &mut Vec::new()).await.unwrap();
    let mut out = Vec::new();
    s.ctl.status(DocFormat::Text, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("Node:          node-a\nSynced:        yes\nRevision:      5\n"),
        "{text}"
    );
    let mut out = Vec::new();
    s.ctl.status(DocFormat::Json, &mut out).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["objects"]["networkInterfaces"], 2);
}

#[tokio::test]
async fn routes_as_a_table_and_json_and_an_unknown_vni() {
    let mut s = setup().await;
    let mut out = Vec::new();
    s.ctl.routes(7, DocFormat::Text, &mut out).await.unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\
PREFIX        NEXTHOP-VNI   NEXTHOP
0.0.0.0/0     7             fc00:ff::1
10.8.0.1/32   8             fc00:b::1:0:1
"
    );
    let mut out = Vec::new();
    s.ctl.routes(7, DocFormat::Json, &mut out).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[1]["nexthopVni"], 8);
    let err = s
        .ctl
        .routes(9, DocFormat::Text, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
}

#[tokio::test]
async fn counters_as_tables_and_json_and_from_a_dpservice() {
    use ferrinet_proto::dataplane_status::v1 as status_pb;
    let mut s = setup().await;
    // The fake answers as the node does in front of dpservice.
    let err = s
        .ctl
        .counters(CountersFormat::Table, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::REFUSED, "{err}");
    assert_eq!(
        err.to_string(),
        "counters: the dataplane does not report packet counters (dpservice)"
    );

    s.fake.state.lock().unwrap().packet_counters = Some(status_pb::PacketCountersResponse {
        enabled: true,
        firewall_mode: "enforce".into(),
        interfaces: vec![status_pb::InterfacePackets {
            interface_id: "vm-1".into(),
            vni: 7,
            device: "net_tap2".into(),
            tap: "dtapvf_0".into(),
            traffic: Some(status_pb::TrafficCounters {
                rx_packets: 3,
                rx_bytes: 300,
                drops: vec![status_pb::DropCount {
                    reason: "no_route".into(),
                    packets: 1,
                }],
                ..Default::default()
            }),
            firewall: Vec::new(),
            ..Default::default()
        }],
        flows: 1,
        ..Default::default()
    });
    let mut out = Vec::new();
    s.ctl
        .counters(CountersFormat::Table, &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\
Packets:  enabled, firewall mode enforce, 1 flows

INTERFACE   VNI   TAP        RX-PKTS   RX-BYTES   TX-PKTS   TX-BYTES   DROPS
vm-1        7     dtapvf_0   3         300        0         0          1

No VNIs.

Underlay: rx 0 packets / 0 bytes, tx 0 packets / 0 bytes, 0 dropped
"
    );
    let mut out = Vec::new();
    s.ctl
        .counters(CountersFormat::Json, &mut out)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["interfaces"][0]["traffic"]["drops"][0]["reason"],
        "no_route"
    );
    assert_eq!(v["underlay"]["rx_packets"], 0);
}

#[tokio::test]
async fn create_from_flags_and_dry_run() {
    let mut s = setup().await;
    let net = crate::ctl::flags::NetworkFlags {
        name: "n1".into(),
        vni: 11,
        peers: vec![12],
        labels: vec![],
    };
    let mut out = Vec::new();
    dry_run(&[&net.object()], DocFormat::Yaml, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "apiVersion: ferrinet.dev/v1\nkind: Network\nmetadata:\n  name: n1\nspec:\n  id: 11\n  peeredIDs:\n  - 12\n"
    );
    let mut out = Vec::new();
    dry_run(&[&net.object(), &net.object()], DocFormat::Text, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "network/n1 created (dry run)\n".repeat(2)
    );
    assert_eq!(s.fake.state.lock().unwrap().creates, 0);

    let mut out = Vec::new();
    s.ctl
        .create_object(net.object(), DocFormat::Text, &mut out)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "network/n1 created\n");
    let mut out = Vec::new();
    let again = s
        .ctl
        .create_object(net.object(), DocFormat::Json, &mut out)
        .await
        .unwrap_err();
    assert_eq!(again.exit_code(), exit::NOT_FOUND);
    let net2 = crate::ctl::flags::NetworkFlags {
        name: "n2".into(),
        ..net
    };
    s.ctl
        .create_object(net2.object(), DocFormat::Json, &mut out)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["metadata"]["resourceVersion"], "2");
}

#[tokio::test]
async fn a_node_that_goes_away_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // A server that accepts the connection and then drops it at once.
    let path = dir.path().join("node.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let addr = NodeAddr::Unix(path);
    match client::connect(&addr, Duration::from_secs(2)).await {
        Err(e) => assert_eq!(e.exit_code(), exit::UNREACHABLE, "{e}"),
        Ok(c) => {
            let mut ctl = Ctl::new(c, addr.to_string());
            let err = ctl
                .status(DocFormat::Text, &mut Vec::new())
                .await
                .unwrap_err();
            assert_eq!(err.exit_code(), exit::UNREACHABLE, "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("cannot reach the node at {addr}: ")),
                "{err}"
            );
        }
    }
}

/// `Ctl` over another transport: the server's service itself, in process, no socket (what an
/// end-to-end test of the daemon's API can do).
#[tokio::test]
async fn commands_run_over_an_in_process_service() {
    use ferrinet_proto::node::v1::node_admin_server::NodeAdminServer;
    let fake = FakeNode::default();
    let client = NodeAdminClient::new(NodeAdminServer::new(fake.clone()));
    let mut ctl = Ctl::new(client, "in-process");
    let mut out = Vec::new();
    ctl.apply(&files(EXAMPLE), &mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 5);
    let err = ctl.fetch(Kind::Network, "nope").await.unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    assert_eq!(fake.state.lock().unwrap().creates, 5);
}

#[test]
fn apply_and_delete_orders() {
    let entries = manifest::parse(&Source {
        name: "x".into(),
        text: EXAMPLE.into(),
    })
    .unwrap();
    let names = |v: Vec<&Entry>| {
        v.iter()
            .map(|e| e.doc.name().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(apply_order(&entries)),
        ["frontend", "backend", "web-lb", "web-1", "db-1"]
    );
    assert_eq!(
        names(delete_order(&entries)),
        ["web-1", "db-1", "web-lb", "frontend", "backend"]
    );
}
