//! The allocator over a real embedded store: decisions survive a restart (once synced),
//! concurrent requests never share a value, and the store refuses a value another writer took.

use std::collections::BTreeSet;

use ractor::{Actor, ActorRef};

use super::*;
use crate::ipam::{PoolEntry, PublicPoolSpec};
use crate::store::EmbeddedOptions;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("test prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

async fn start(store: &Store) -> ActorRef<AllocatorMsg> {
    let public = PublicRanges::new(&PublicPoolSpec {
        ranges: vec![PoolEntry::Cidr(net("203.0.113.0/30"))],
        excluded: vec![],
    })
    .expect("pool");
    let args = AllocatorArgs {
        store: store.clone(),
        vnis: VniRange::new(100, 199).expect("range"),
        public,
        fence: None,
    };
    let (a, _) = Actor::spawn(None, AllocatorActor, args)
        .await
        .expect("allocator starts");
    a
}

async fn call<T: Send + 'static>(
    a: &ActorRef<AllocatorMsg>,
    msg: impl FnOnce(RpcReplyPort<T>) -> AllocatorMsg,
) -> T {
    match a.call(msg, None).await.expect("allocator answers") {
        ractor::rpc::CallResult::Success(v) => v,
        _ => panic!("the allocator did not answer"),
    }
}

async fn store(dir: &tempfile::TempDir) -> Store {
    Store::open_embedded(dir.path().join("state.redb"), EmbeddedOptions::default())
        .await
        .expect("store opens")
}

#[tokio::test]
async fn decisions_survive_a_restart_and_are_not_handed_out_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    let a = start(&s).await;
    let blue = call(&a, |r| AllocatorMsg::Vni("t1/blue".into(), None, r))
        .await
        .expect("vni");
    let red = call(&a, |r| AllocatorMsg::Vni("t1/red".into(), Some(150), r))
        .await
        .expect("fixed vni");
    assert_eq!((blue, red), (100, 150));
    // Asking again answers the same VNI.
    let again = call(&a, |r| AllocatorMsg::Vni("t1/blue".into(), None, r)).await;
    assert_eq!(again.expect("same"), 100);
    let taken = call(&a, |r| AllocatorMsg::Vni("t2/x".into(), Some(150), r)).await;
    assert!(matches!(taken, Err(AllocError::Vni(_))), "{taken:?}");
    let subnets = vec![SubnetSpec::new(net("10.0.0.0/29"))];
    let misfits = call(&a, |r| {
        AllocatorMsg::Subnets("t1/blue".into(), subnets.clone(), r)
    })
    .await
    .expect("subnets");
    assert!(misfits.is_empty());
    let web = call(&a, |r| {
        AllocatorMsg::Ip(
            "t1/blue".into(),
            "t1/web".into(),
            IpRequest::Family(IpFamily::V4),
            r,
        )
    })
    .await
    .expect("address");
    assert_eq!(web, ip("10.0.0.1"), "network address is never handed out");
    let vip = call(&a, |r| {
        AllocatorMsg::PublicIp("t1/vip".into(), IpRequest::Family(IpFamily::V4), r)
    })
    .await
    .expect("public");
    call(&a, AllocatorMsg::Sync).await.expect("committed");
    a.stop(None);

    // A new allocator over the same store knows all of it.
    let b = start(&s).await;
    call(&b, |r| AllocatorMsg::Subnets("t1/blue".into(), subnets, r))
        .await
        .expect("subnets");
    let before: BTreeSet<String> = call(&b, AllocatorMsg::List)
        .await
        .iter()
        .map(|x| format!("{x:?}"))
        .collect();
    assert_eq!(before.len(), 4, "{before:?}");
    let next = call(&b, |r| AllocatorMsg::Vni("t1/green".into(), None, r))
        .await
        .expect("vni");
    assert_eq!(next, 101);
    let db = call(&b, |r| {
        AllocatorMsg::Ip(
            "t1/blue".into(),
            "t1/db".into(),
            IpRequest::Family(IpFamily::V4),
            r,
        )
    })
    .await
    .expect("address");
    assert_eq!(db, ip("10.0.0.2"));
    let vip2 = call(&b, |r| {
        AllocatorMsg::PublicIp("t1/vip2".into(), IpRequest::Family(IpFamily::V4), r)
    })
    .await
    .expect("public");
    assert_ne!(vip, vip2);

    // Released values are reusable, also after a restart.
    let released = call(&b, |r| {
        AllocatorMsg::ReleaseIps("t1/blue".into(), "t1/web".into(), r)
    })
    .await
    .expect("release");
    assert_eq!(released, vec![web]);
    let freed = call(&b, |r| AllocatorMsg::ReleaseVni("t1/blue".into(), r))
        .await
        .expect("release");
    assert_eq!(freed, Some(100));
    call(&b, AllocatorMsg::Sync).await.expect("committed");
    b.stop(None);
    let c = start(&s).await;
    let reused = call(&c, |r| AllocatorMsg::Vni("t3/new".into(), None, r))
        .await
        .expect("vni");
    assert_eq!(reused, 100);
}

#[tokio::test]
async fn concurrent_requests_never_share_an_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    let a = start(&s).await;
    call(&a, |r| {
        AllocatorMsg::Subnets("t/n".into(), vec![SubnetSpec::new(net("10.1.0.0/24"))], r)
    })
    .await
    .expect("subnets");
    let mut tasks = Vec::new();
    for i in 0..60 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            call(&a, |r| {
                AllocatorMsg::Ip(
                    "t/n".into(),
                    format!("t/i{i}"),
                    IpRequest::Family(IpFamily::V4),
                    r,
                )
            })
            .await
        }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        let address = t.await.expect("task").expect("address");
        assert!(got.insert(address), "{address} handed out twice");
    }
    assert_eq!(got.len(), 60);
    call(&a, AllocatorMsg::Sync).await.expect("committed");
    let stored = s.list(records::PREFIX).await.expect("list");
    assert_eq!(stored.items.len(), 60);
    // A network without subnets here: a clear error, nothing stored.
    let full = call(&a, |r| {
        AllocatorMsg::Ip(
            "t/other".into(),
            "t/x".into(),
            IpRequest::Family(IpFamily::V4),
            r,
        )
    })
    .await;
    assert!(
        matches!(full, Err(AllocError::UnknownNetwork(_))),
        "{full:?}"
    );
}

#[tokio::test]
async fn a_value_another_writer_took_is_refused_by_the_store_and_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    let a = start(&s).await;
    // Another replica (or an operator) holds VNI 100 behind this allocator's back.
    s.put(
        &records::vni_key(100),
        records::value("elsewhere"),
        Expect::Absent,
    )
    .await
    .expect("put");
    // The decision is answered, and its write fails: Sync says so, and a reload takes back
    // what the store holds.
    let r = call(&a, |r| AllocatorMsg::Vni("t/n".into(), None, r)).await;
    assert_eq!(r.expect("decided"), 100);
    let synced = call(&a, AllocatorMsg::Sync).await;
    assert!(
        matches!(synced, Err(AllocError::Store(StoreError::Conflict { .. }))),
        "{synced:?}"
    );
    call(&a, AllocatorMsg::Reload).await.expect("reloaded");
    let held: Vec<String> = call(&a, AllocatorMsg::List)
        .await
        .iter()
        .map(|x| format!("{x:?}"))
        .collect();
    assert_eq!(
        held,
        vec!["Vni { vni: 100, owner: \"elsewhere\" }".to_string()],
        "memory follows the store"
    );
    // A fixed request for a free VNI still works; after a restart 100 is known as taken.
    let v = call(&a, |r| AllocatorMsg::Vni("t/n".into(), Some(120), r))
        .await
        .expect("fixed");
    assert_eq!(v, 120);
    call(&a, AllocatorMsg::Sync).await.expect("committed");
    a.stop(None);
    let b = start(&s).await;
    let next = call(&b, |r| AllocatorMsg::Vni("t/m".into(), None, r))
        .await
        .expect("vni");
    assert_eq!(next, 101);
}

#[tokio::test]
async fn bad_subnets_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    let a = start(&s).await;
    let mut spec = SubnetSpec::new(net("10.0.0.0/24"));
    spec.gateway = Some(ip("10.9.0.1"));
    let r = call(&a, |r| AllocatorMsg::Subnets("t/n".into(), vec![spec], r)).await;
    let e = r.expect_err("gateway outside");
    assert!(e.to_string().contains("gateway"), "{e}");
}

#[tokio::test]
async fn nat_slices_take_public_addresses_as_needed_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(&dir).await;
    let a = start(&s).await;
    // 32768 ports per interface: one slice per address.
    let size = PortsPerInterface::new(32768).expect("size");
    let gw = "t1/gw".to_string();
    let undefined = call(&a, |r| AllocatorMsg::NatSlice(gw.clone(), "t1/a".into(), r)).await;
    assert!(matches!(undefined, Err(AllocError::UnknownNatGateway(_))));
    call(&a, |r| AllocatorMsg::NatGateway(gw.clone(), size, r))
        .await
        .expect("gateway");
    let first = call(&a, |r| AllocatorMsg::NatSlice(gw.clone(), "t1/a".into(), r))
        .await
        .expect("slice");
    let again = call(&a, |r| AllocatorMsg::NatSlice(gw.clone(), "t1/a".into(), r))
        .await
        .expect("same slice");
    assert_eq!(first, again);
    let second = call(&a, |r| AllocatorMsg::NatSlice(gw.clone(), "t1/b".into(), r))
        .await
        .expect("second slice on a second address");
    assert_ne!(first.ip, second.ip);
    let status = call(&a, |r| AllocatorMsg::NatStatus(gw.clone(), r))
        .await
        .expect("status");
    assert_eq!((status.public_ips, status.slices_used), (2, 2));
    call(&a, AllocatorMsg::Sync).await.expect("committed");
    a.stop(None);

    // After a restart the slices and the gateway's addresses are still taken.
    let b = start(&s).await;
    call(&b, |r| AllocatorMsg::NatGateway(gw.clone(), size, r))
        .await
        .expect("gateway");
    let kept = call(&b, |r| AllocatorMsg::NatSlice(gw.clone(), "t1/a".into(), r))
        .await
        .expect("kept");
    assert_eq!(kept, first);
    let other = call(&b, |r| {
        AllocatorMsg::PublicIp("t1/vip".into(), IpRequest::Family(IpFamily::V4), r)
    })
    .await
    .expect("a public address");
    let gateway_ips = [IpAddr::V4(first.ip), IpAddr::V4(second.ip)];
    assert!(!gateway_ips.contains(&other), "{other} is the gateway's");
    let released = call(&b, |r| {
        AllocatorMsg::ReleaseNatSlice(gw.clone(), "t1/b".into(), r)
    })
    .await
    .expect("release");
    assert_eq!(released, Some(second));
    let ips = call(&b, |r| AllocatorMsg::ReleaseNatGateway(gw.clone(), r))
        .await
        .expect("release gateway");
    assert_eq!(ips.len(), 2);
    let vip = call(&b, |r| {
        AllocatorMsg::PublicIp("t1/vip2".into(), IpRequest::Fixed(gateway_ips[0]), r)
    })
    .await;
    assert_eq!(vip.expect("back in the pool"), gateway_ips[0]);
}
