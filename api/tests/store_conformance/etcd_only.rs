//! What only the etcd store can show: leases that cannot be kept alive, a crashed replica, an
//! etcd restart under a watch, mutual TLS.

use std::path::Path;
use std::time::Duration;

use ferrinet_api::store::{EtcdConfig, EtcdTls, Expect, Store};

use crate::election::{ELECTION, TTL, follows, leads, wait};
use crate::harness::{EtcdProcess, Fixture, PATIENCE, TlsFiles, next_event, wait_answers};

/// Polls until `f` holds, within [`PATIENCE`].
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {what} within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_while_etcd_is_gone() {
    let mut f = Fixture::etcd().await;
    let b_store = f.other_replica().await;
    let mut a = f.store().campaign(ELECTION, "a", TTL).await.unwrap();
    wait(&mut a, "leader", leads).await;
    let mut b = b_store.campaign(ELECTION, "b", TTL).await.unwrap();
    wait(&mut b, "following a", follows("a")).await;

    tokio::task::block_in_place(|| f.etcd_process().stop());
    // Its lease cannot be kept alive: a steps down (before etcd could let it expire), and b
    // cannot take over without etcd.
    wait(&mut a, "stepped down", |s| !s.is_leader).await;
    assert!(!b.is_leader());

    tokio::task::block_in_place(|| f.etcd_process().restart());
    wait_answers(f.store()).await;
    eventually("one leader followed by the other", || {
        let (a, b) = (a.state(), b.state());
        (a.is_leader && !b.is_leader && b.leader.as_deref() == Some("a"))
            || (b.is_leader && !a.is_leader && a.leader.as_deref() == Some("b"))
    })
    .await;
    drop((a, b));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_when_the_leaders_lease_expires() {
    let f = Fixture::etcd().await;
    let (leading_tx, leading_rx) = tokio::sync::oneshot::channel();
    let (crash_tx, crash_rx) = tokio::sync::oneshot::channel::<()>();
    let crashed = {
        let etcd_config = f.etcd_config();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let store = Store::connect_etcd(etcd_config).await.unwrap();
                let mut a = store.campaign(ELECTION, "a", TTL).await.unwrap();
                wait(&mut a, "leader", leads).await;
                leading_tx.send(()).unwrap();
                let _ = crash_rx.await;
                // Never resigns: the replica "crashes" with the runtime below, so its lease
                // is neither kept alive nor revoked.
                std::mem::forget(a);
            });
            drop(rt);
        })
    };
    leading_rx.await.unwrap();
    let mut b = f.store().campaign(ELECTION, "b", TTL).await.unwrap();
    wait(&mut b, "following a", follows("a")).await;
    crash_tx.send(()).unwrap();
    tokio::task::block_in_place(|| crashed.join().unwrap());
    wait(&mut b, "leader after a's lease expired", leads).await;
    drop(b);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_leader_key_hands_leadership_on() {
    let f = Fixture::etcd().await;
    let b_store = f.other_replica().await;
    let mut a = f.store().campaign(ELECTION, "a", TTL).await.unwrap();
    wait(&mut a, "leader", leads).await;
    let mut b = b_store.campaign(ELECTION, "b", TTL).await.unwrap();
    wait(&mut b, "following a", follows("a")).await;

    // An operator forcing a new election: a's key goes, a queues again behind b.
    let candidates = f.store().list(&format!("{ELECTION}/")).await.unwrap();
    let oldest = candidates
        .items
        .iter()
        .min_by_key(|kv| kv.create_revision)
        .unwrap();
    assert_eq!(oldest.value, b"a");
    f.store().delete(&oldest.key, Expect::Any).await.unwrap();
    wait(&mut b, "leader", leads).await;
    wait(&mut a, "following b", follows("b")).await;
    drop((a, b));
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_an_etcd_restart() {
    let mut f = Fixture::etcd().await;
    let mut w = f.store().watch("/s/", 0).await.unwrap();
    f.store()
        .put("/s/a", b"a".to_vec(), Expect::Any)
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.key, "/s/a");

    f.reconnect().await;
    let rb = f
        .store()
        .put("/s/b", b"b".to_vec(), Expect::Any)
        .await
        .unwrap();
    let e = next_event(&mut w).await;
    assert_eq!((e.key.as_str(), e.revision), ("/s/b", rb));
    let rc = f
        .store()
        .put("/s/c", b"c".to_vec(), Expect::Any)
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.revision, rc);
    drop(w);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_a_transient_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = EtcdConfig::new([format!("http://127.0.0.1:{port}")]);
    config.connect_timeout = Duration::from_secs(2);
    let e = Store::connect_etcd(config).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
}

fn write_pki(dir: &Path) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let issue = |name: &str, sans: Vec<String>, eku| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let (cert, key) = issue("etcd", sans, ExtendedKeyUsagePurpose::ServerAuth);
    let client = issue(
        "client",
        vec!["ferrinet-api".to_owned()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    TlsFiles {
        ca: ca_path.clone(),
        cert,
        key,
        client: EtcdTls {
            ca: ca_path,
            identity: Some(client),
            server_name: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = write_pki(dir.path());
    let etcd = tokio::task::block_in_place(|| EtcdProcess::start(dir.path(), Some(tls)));
    let store = etcd.connect().await;
    let r = store
        .put("/tls/a", b"a".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(store.get("/tls/a").await.unwrap().unwrap().mod_revision, r);

    // etcd requires a client certificate.
    let mut anonymous = etcd.config();
    if let Some(tls) = anonymous.tls.as_mut() {
        tls.identity = None;
    }
    anonymous.connect_timeout = Duration::from_secs(5);
    assert!(Store::connect_etcd(anonymous).await.is_err());
}
