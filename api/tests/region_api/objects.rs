//! Create, get, update and delete through the API: validation, allocation, optimistic
//! concurrency, references, and what a restart keeps.

use ferrinet_proto::api::v1 as pb;
use pb::object::Object as O;
use tonic::Code;

use crate::kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_validated_allocated_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "");
    let mut api = Api::start(&s).await;

    // Bad input names the field and stores nothing.
    let bad = api
        .create(network("t1", "Bad_Name", "10.0.0.0/24"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("metadata.name"),
        "{}",
        bad.message()
    );
    let bad = api
        .create(network("t1", "net-a", "10.0.0.1/24"))
        .await
        .unwrap_err();
    assert!(
        bad.message().contains("spec.subnets[0]"),
        "{}",
        bad.message()
    );

    // An interface before its network waits, then gets its address when the network comes.
    api.create(interface("t1", "web-1", "net-a", "node-1", &[]))
        .await
        .unwrap();
    let early = api
        .get(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    assert!(status_of(&early).ips.is_empty());
    assert!(
        status_of(&early)
            .message
            .contains("waiting for network t1/net-a"),
        "{early:?}"
    );
    let net = api
        .create(network("t1", "net-a", "10.0.0.0/24"))
        .await
        .unwrap();
    let Some(O::Network(n)) = &net.object else {
        panic!()
    };
    let vni = n.status.as_ref().unwrap().vni;
    assert_eq!(vni, 100);
    let web1 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    assert_eq!(status_of(&web1).ips, vec!["10.0.0.1".to_string()]);
    assert_eq!(status_of(&web1).vni, vni);

    // Addresses are never handed out twice; a fixed one that is taken is refused.
    let web2 = api
        .create(interface("t1", "web-2", "net-a", "node-1", &[]))
        .await
        .unwrap();
    assert_eq!(status_of(&web2).ips, vec!["10.0.0.2".to_string()]);
    let mut taken = interface("t1", "web-3", "net-a", "node-1", &[]);
    if let O::NetworkInterface(ni) = &mut taken {
        ni.spec.as_mut().unwrap().ips = vec![pb::IpValue {
            value: "10.0.0.2".into(),
        }];
    }
    let e = api.create(taken).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let e = api
        .get(pb::Kind::NetworkInterface, "t1", "web-3")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "a refused create stores nothing");
    let again = api
        .create(interface("t1", "web-1", "net-a", "node-1", &[]))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);

    // A VirtualIP gets a public address; an interface that names it uses it, and it is bound.
    let vip = api
        .create(O::VirtualIp(pb::VirtualIp {
            metadata: meta("t1", "vip-1", &[]),
            spec: Some(pb::VirtualIpSpec {
                r#type: "Public".into(),
                ip_family: "IPv4".into(),
            }),
            status: None,
        }))
        .await
        .unwrap();
    let Some(O::VirtualIp(v)) = &vip.object else {
        panic!()
    };
    let vip_ip = v.status.as_ref().unwrap().ip.clone();
    assert!(vip_ip.starts_with("203.0.113."), "{vip_ip}");
    let mut with_vip = interface("t1", "web-4", "net-a", "node-1", &[]);
    if let O::NetworkInterface(ni) = &mut with_vip {
        ni.spec.as_mut().unwrap().virtual_ip = Some(pb::VirtualIpSource {
            virtual_ip_ref: net_ref("vip-1"),
            ephemeral_ip_family: String::new(),
        });
    }
    let web4 = api.create(with_vip).await.unwrap();
    assert_eq!(status_of(&web4).virtual_ip, vip_ip);
    let e = api
        .delete(pb::Kind::VirtualIp, "t1", "vip-1")
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "a bound VIP stays: {e:?}"
    );

    // Optimistic concurrency: an update naming an old version is refused.
    let mut old = web1.clone();
    if let Some(O::NetworkInterface(ni)) = &mut old.object {
        ni.metadata
            .as_mut()
            .unwrap()
            .labels
            .insert("app".into(), "web".into());
    }
    let updated = api
        .region
        .update(pb::UpdateRequest {
            object: Some(old.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let e = api
        .region
        .update(pb::UpdateRequest { object: Some(old) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        status_of(&updated).ips,
        vec!["10.0.0.1".to_string()],
        "a label change keeps the address"
    );

    // A network with interfaces cannot go.
    let e = api
        .delete(pb::Kind::Network, "t1", "net-a")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("networkinterfaces t1/web-1"),
        "{}",
        e.message()
    );

    // Delete releases: the next interface gets web-2's address back.
    api.delete(pb::Kind::NetworkInterface, "t1", "web-2")
        .await
        .unwrap();

    // Everything survives a restart, and released values are reusable.
    api.running.shutdown().await;
    let mut api = Api::start(&s).await;
    let web1 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    assert_eq!(status_of(&web1).ips, vec!["10.0.0.1".to_string()]);
    let web5 = api
        .create(interface("t1", "web-5", "net-a", "node-1", &[]))
        .await
        .unwrap();
    assert_eq!(status_of(&web5).ips, vec!["10.0.0.2".to_string()]);
    let list = api
        .region
        .list(pb::ListRequest {
            kind: pb::Kind::NetworkInterface as i32,
            namespace: "t1".into(),
            label_selector: "app=web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.objects.len(), 1, "selector filters: {list:?}");
    api.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_prefixes_give_selected_interfaces_public_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = Api::start(&settings(dir.path(), "")).await;
    api.create(network("t1", "net-a", "10.0.0.0/24"))
        .await
        .unwrap();
    api.create(interface(
        "t1",
        "web-1",
        "net-a",
        "node-1",
        &[("app", "web")],
    ))
    .await
    .unwrap();
    api.create(interface("t1", "db-1", "net-a", "node-1", &[("app", "db")]))
        .await
        .unwrap();
    let pp = api
        .create(O::PublicPrefix(pb::PublicPrefix {
            metadata: meta("t1", "web-public", &[]),
            spec: Some(pb::PublicPrefixSpec {
                kind: "NetworkInterface".into(),
                selector: Some(pb::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())]
                        .into_iter()
                        .collect(),
                    match_expressions: vec![],
                }),
                ip_family: "IPv4".into(),
            }),
            status: None,
        }))
        .await
        .unwrap();
    let Some(O::PublicPrefix(p)) = &pp.object else {
        panic!()
    };
    let prefixes = p.status.as_ref().unwrap().prefixes.clone();
    assert_eq!(prefixes.len(), 1, "{p:?}");
    let web1 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    assert_eq!(format!("{}/32", status_of(&web1).virtual_ip), prefixes[0]);
    let db1 = api
        .get(pb::Kind::NetworkInterface, "t1", "db-1")
        .await
        .unwrap();
    assert!(
        status_of(&db1).virtual_ip.is_empty(),
        "db-1 is not selected"
    );

    // A new interface with the label is selected too; relabelling web-1 takes its address away.
    api.create(interface(
        "t1",
        "web-2",
        "net-a",
        "node-1",
        &[("app", "web")],
    ))
    .await
    .unwrap();
    let web2 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-2")
        .await
        .unwrap();
    assert!(!status_of(&web2).virtual_ip.is_empty());
    let mut relabelled = web1.clone();
    if let Some(O::NetworkInterface(ni)) = &mut relabelled.object {
        ni.metadata
            .as_mut()
            .unwrap()
            .labels
            .insert("app".into(), "batch".into());
    }
    api.region
        .update(pb::UpdateRequest {
            object: Some(relabelled),
        })
        .await
        .unwrap();
    let web1 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-1")
        .await
        .unwrap();
    assert!(status_of(&web1).virtual_ip.is_empty(), "no longer selected");
    let pp = api
        .get(pb::Kind::PublicPrefix, "t1", "web-public")
        .await
        .unwrap();
    let Some(O::PublicPrefix(p)) = &pp.object else {
        panic!()
    };
    assert_eq!(p.status.as_ref().unwrap().targets.len(), 1);

    // Deleting the PublicPrefix takes its addresses back.
    api.delete(pb::Kind::PublicPrefix, "t1", "web-public")
        .await
        .unwrap();
    let web2 = api
        .get(pb::Kind::NetworkInterface, "t1", "web-2")
        .await
        .unwrap();
    assert!(status_of(&web2).virtual_ip.is_empty());
    api.running.shutdown().await;
}
