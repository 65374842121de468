//! In-process server tests on loopback: plain TCP and TLS peers speaking the real codec.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use ferrinet_proto::frame::Message;
use ferrinet_proto::route::{Hello, Subscription};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::certs::Pki;
use crate::loadgen::raw::{RawConn, Recv};
use crate::loadgen::{WAIT, encode_updates, http, routes};
use crate::route::{Action, Route};

/// Generous bound so a broken server fails the test instead of hanging it; never a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

struct TestServer {
    tls: Option<SocketAddr>,
    compat: Option<SocketAddr>,
    http: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

async fn start(cfg: ServerConfig, tls: bool, compat: bool) -> TestServer {
    let bind = || TcpListener::bind("127.0.0.1:0");
    let tls_l = if tls {
        Some(bind().await.unwrap())
    } else {
        None
    };
    let compat_l = if compat {
        Some(bind().await.unwrap())
    } else {
        None
    };
    let http_l = bind().await.unwrap();
    let addr = |l: &Option<TcpListener>| l.as_ref().map(|l| l.local_addr().unwrap());
    let (tls_a, compat_a, http_a) = (addr(&tls_l), addr(&compat_l), http_l.local_addr().unwrap());
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(
        Listeners {
            tls: tls_l,
            compat: compat_l,
            http: Some(http_l),
        },
        cfg,
        async {
            let _ = rx.await;
        },
    ));
    TestServer {
        tls: tls_a,
        compat: compat_a,
        http: http_a,
        stop,
        task,
    }
}

impl TestServer {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    /// GET `path`, whatever the status. The request blocks, so it runs off this runtime's
    /// thread, which must keep serving it.
    async fn fetch(&self, path: &str) -> http::Response {
        let (addr, path) = (self.http, path.to_string());
        tokio::task::spawn_blocking(move || http::get(addr, &path, WAIT))
            .await
            .unwrap()
            .unwrap()
    }

    /// GET `path`, which must succeed; the body.
    async fn get(&self, path: &str) -> String {
        let r = self.fetch(path).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }
}

/// The shared raw connection, with panicking calls: a failure is the test's failure.
struct Peer(RawConn);

impl Peer {
    async fn send_all(&mut self, msgs: &[Message]) {
        self.0.send_all(msgs).await.unwrap();
    }

    async fn send(&mut self, m: Message) {
        self.0.send(&m).await.unwrap();
    }

    async fn send_bytes(&mut self, b: &[u8]) {
        self.0.send_bytes(b).await.unwrap();
    }

    /// Next message; `None` when the server closed the connection.
    async fn next(&mut self) -> Option<Message> {
        match self.0.recv().await.expect("server did not answer") {
            Recv::Frame(m) => Some(m),
            Recv::Closed => None,
        }
    }

    async fn expect(&mut self, m: Message) {
        assert_eq!(self.next().await, Some(m));
    }

    async fn establish(&mut self) {
        let hello = self.0.establish(3).await.unwrap();
        assert_eq!(
            hello,
            Hello {
                keepalive_interval: 3,
                is_server: true,
                ferrinet_extensions: 0,
            }
        );
    }

    /// A KEEPALIVE round trip: everything queued for this peer before it arrives first.
    async fn sync(&mut self) {
        self.0.sync().await.unwrap();
    }

    async fn subscribe(&mut self, vni: u32) {
        self.send(Message::Subscribe(Subscription { vni })).await;
    }
}

async fn plain(addr: SocketAddr) -> Peer {
    Peer(RawConn::plain(addr).await.unwrap())
}

fn route(s: &str) -> Route {
    s.parse().unwrap()
}

fn update(action: Action, r: &str) -> Message {
    Message::Update(route(r).to_update(action))
}

#[tokio::test]
async fn plaintext_subscribe_announce_withdraw_round_trip() {
    let srv = start(ServerConfig::plaintext_trusted(), false, true).await;
    let addr = srv.compat.unwrap();
    let mut a = plain(addr).await;
    a.establish().await;
    let r1 = "7#10.0.0.1/32#2001:db8::1";
    let r2 = "7#10.0.0.2/32#2001:db8::1";
    a.send(update(Action::Add, r1)).await;
    a.sync().await;

    let mut b = plain(addr).await;
    b.establish().await;
    b.subscribe(7).await;
    b.expect(update(Action::Add, r1)).await; // the dump
    a.send(update(Action::Add, r2)).await;
    b.expect(update(Action::Add, r2)).await; // live
    // A duplicate SUBSCRIBE resends nothing.
    b.subscribe(7).await;
    b.sync().await;
    // The announcer never gets its own routes back.
    a.subscribe(7).await;
    a.sync().await;
    a.send(update(Action::Remove, r1)).await;
    b.expect(update(Action::Remove, r1)).await;

    let sessions = srv.get("/sessions.json").await;
    assert!(sessions.contains("\"established\""), "{sessions}");
    let routes = srv.get("/routes.json").await;
    assert!(routes.contains("10.0.0.2/32"), "{routes}");
    assert!(!routes.contains("10.0.0.1/32"), "{routes}");
    assert!(
        srv.get("/metrics")
            .await
            .contains("ferrinet_region_routes 1")
    );
    assert!(srv.get("/").await.contains("<table>"));
    assert_eq!(srv.get("/healthz").await, "ok\n");

    // The announcer's session ends: its remaining route is withdrawn.
    drop(a);
    b.expect(update(Action::Remove, r2)).await;
    srv.stop().await;
}

#[tokio::test]
async fn garbage_closes_only_that_session_and_bad_routes_are_refused() {
    let srv = start(ServerConfig::plaintext_trusted(), false, true).await;
    let addr = srv.compat.unwrap();
    let mut b = plain(addr).await;
    b.establish().await;
    b.subscribe(9).await;

    let mut bad = plain(addr).await;
    bad.establish().await;
    bad.send_bytes(&[1, 0xff, 0xff, 5]).await;
    assert_eq!(bad.next().await, None);

    let mut junk = plain(addr).await;
    junk.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(junk.next().await, None);

    // A decodable but invalid route (prefix length 40 for IPv4) is refused; the session lives.
    let mut a = plain(addr).await;
    a.establish().await;
    let mut u = route("9#10.0.0.0/8#2001:db8::1").to_update(Action::Add);
    u.destination.as_mut().unwrap().prefix_length = 40;
    a.send(Message::Update(u)).await;
    a.send(update(Action::Add, "9#10.9.0.0/16#2001:db8::1"))
        .await;
    a.sync().await;
    b.expect(update(Action::Add, "9#10.9.0.0/16#2001:db8::1"))
        .await;
    b.sync().await;
    let m = srv.get("/metrics").await;
    assert!(
        m.contains("ferrinet_region_updates_refused_total{reason=\"invalid\"} 1"),
        "{m}"
    );
    assert!(m.contains("ferrinet_region_protocol_errors_total 2"), "{m}");
    srv.stop().await;
}

#[tokio::test]
async fn read_only_compat_peers_cannot_announce() {
    let cfg = ServerConfig {
        compat_mode: CompatMode::ReadOnly,
        ..ServerConfig::plaintext_trusted()
    };
    let srv = start(cfg, false, true).await;
    let addr = srv.compat.unwrap();
    let mut a = plain(addr).await;
    a.establish().await;
    a.send(update(Action::Add, "5#10.0.0.0/8#2001:db8::1"))
        .await;
    a.sync().await; // still alive
    let mut b = plain(addr).await;
    b.establish().await;
    b.subscribe(5).await;
    b.sync().await; // an empty dump: the KEEPALIVE answer comes first
    assert!(
        srv.get("/metrics")
            .await
            .contains("ferrinet_region_updates_refused_total{reason=\"unauthorized\"} 1")
    );
    srv.stop().await;
}

#[tokio::test]
async fn burst_of_updates_reaches_subscriber_without_reset() {
    let srv = start(ServerConfig::plaintext_trusted(), false, true).await;
    let addr = srv.compat.unwrap();
    let mut b = plain(addr).await;
    b.establish().await;
    b.subscribe(3).await;
    b.sync().await;
    let mut a = plain(addr).await;
    a.establish().await;
    const N: u32 = 20_000;
    let msgs: Vec<Message> = (0..N)
        .map(|i| {
            update(
                Action::Add,
                &format!("3#10.{}.{}.0/24#2001:db8::1", i / 256, i % 256),
            )
        })
        .collect();
    a.send_all(&msgs).await; // one unpaced write of ~1 MB
    let mut got = 0;
    while got < N {
        match b.next().await {
            Some(Message::Update(_)) => got += 1,
            other => panic!("after {got} updates: {other:?}"),
        }
    }
    // A late subscriber gets the whole table as a dump.
    let mut c = plain(addr).await;
    c.establish().await;
    c.subscribe(3).await;
    let mut seen = HashMap::new();
    for _ in 0..N {
        match c.next().await {
            Some(Message::Update(u)) => *seen.entry(u).or_insert(0) += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen.len(), N as usize);
    c.sync().await;
    a.sync().await;
    srv.stop().await;
}

#[tokio::test]
async fn tls_mutual_auth_and_next_hop_authorization() {
    let pki = Pki::generate(&[], &["node-a".into(), "node-b".into()]).unwrap();
    let ca = crate::tls::certs_from_pem(&pki.ca_cert_pem).unwrap();
    let server_tls = crate::tls::server_config(
        crate::tls::certs_from_pem(&pki.server.cert_pem).unwrap(),
        crate::tls::key_from_pem(&pki.server.key_pem).unwrap(),
        ca.clone(),
    )
    .unwrap();
    let mut nodes = std::collections::HashMap::new();
    nodes.insert(
        "node-a".to_string(),
        Permission::NextHops(vec!["fd00:a::/64".parse().unwrap()]),
    );
    let cfg = ServerConfig {
        tls: Some(server_tls),
        authz: Authz::new(nodes, authz::Unlisted::ReadOnly),
        ..ServerConfig::plaintext_trusted()
    };
    let srv = start(cfg, true, false).await;
    let addr = srv.tls.unwrap();
    let connect = |i: usize| {
        let n = &pki.nodes[i];
        let client = crate::tls::client_config(
            ca.clone(),
            Some((
                crate::tls::certs_from_pem(&n.cert_pem).unwrap(),
                crate::tls::key_from_pem(&n.key_pem).unwrap(),
            )),
        )
        .unwrap();
        async move {
            let name = crate::tls::server_name("localhost").unwrap();
            Peer(RawConn::tls_named(addr, client, name).await.unwrap())
        }
    };
    let mut a = connect(0).await;
    a.establish().await;
    a.send(update(Action::Add, "4#10.0.0.0/24#fd00:b::1")).await; // outside fd00:a::/64
    a.send(update(Action::Add, "4#10.0.1.0/24#fd00:a::1")).await;
    a.sync().await;
    let mut b = connect(1).await; // unlisted: read-only
    b.establish().await;
    b.send(update(Action::Add, "4#10.0.2.0/24#fd00:a::1")).await;
    b.subscribe(4).await;
    b.expect(update(Action::Add, "4#10.0.1.0/24#fd00:a::1"))
        .await;
    b.sync().await;
    let sessions = srv.get("/sessions.json").await;
    assert!(sessions.contains("\"identity\":\"node-a\""), "{sessions}");

    // Without a client certificate the handshake fails.
    let anon = crate::tls::client_config(ca.clone(), None).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let res = async {
        let mut s = tokio_rustls::TlsConnector::from(anon)
            .connect(crate::tls::server_name("localhost").unwrap(), tcp)
            .await?;
        // TLS 1.3: the server's refusal arrives after the client's handshake completes.
        s.write_all(&[1, 0, 2, 1, 8, 3]).await?;
        let mut buf = [0u8; 16];
        tokio::io::AsyncReadExt::read(&mut s, &mut buf).await
    }
    .await;
    assert!(matches!(res, Err(_) | Ok(0)), "{res:?}");
    srv.stop().await;
}

#[tokio::test]
async fn session_limit_refuses_extra_connections() {
    let cfg = ServerConfig {
        max_sessions: 1,
        ..ServerConfig::plaintext_trusted()
    };
    let srv = start(cfg, false, true).await;
    let addr = srv.compat.unwrap();
    let mut a = plain(addr).await;
    a.establish().await;
    let mut b = plain(addr).await;
    b.send(Message::Hello(Hello {
        keepalive_interval: 3,
        is_server: false,
        ferrinet_extensions: 0,
    }))
    .await;
    assert_eq!(b.next().await, None);
    a.sync().await;
    srv.stop().await;
}

#[tokio::test]
async fn tls_listener_without_certificates_is_an_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = run(
        Listeners {
            tls: Some(l),
            ..Default::default()
        },
        ServerConfig::plaintext_trusted(),
        async {},
    )
    .await;
    assert!(matches!(r, Err(ServerError::NoTls)));
}

/// The routes of one `/routes.json` page in the route syntax (`VNI#PREFIX#NEXTHOP#TYPE`, which
/// is all there is to the generated routes), and its `next`.
fn page_routes(body: &str) -> (Vec<String>, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut out = Vec::new();
    for vni in v["vnis"].as_array().unwrap() {
        for r in vni["routes"].as_array().unwrap() {
            out.push(format!(
                "{}#{}#{}#{}",
                vni["vni"],
                r["prefix"].as_str().unwrap(),
                r["next_hop"].as_str().unwrap(),
                r["type"].as_str().unwrap()
            ));
        }
    }
    (out, v["next"].as_str().map(String::from))
}

/// Every page of a walk of `/routes.json?{query}`, each checked against `limit`.
async fn walk_routes(srv: &TestServer, query: &str, limit: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut path = format!("/routes.json?{query}limit={limit}");
    for _ in 0..10_000 {
        let (page, next) = page_routes(&srv.get(&path).await);
        assert!(page.len() <= limit, "{} routes in a page", page.len());
        all.extend(page);
        match next {
            Some(c) => path = format!("/routes.json?{query}limit={limit}&cursor={c}"),
            None => return all,
        }
    }
    panic!("the walk does not end");
}

/// A server holding `counts[i]` generated routes in VNI `i + 1`, announced by the returned
/// session; the second one subscribed to every VNI and has received them all, so every one of
/// them is stored.
async fn server_with_routes(counts: &[u32]) -> (TestServer, Peer, Peer, Vec<Route>) {
    let srv = start(ServerConfig::plaintext_trusted(), false, true).await;
    let addr = srv.compat.unwrap();
    let mut watcher = plain(addr).await;
    watcher.establish().await;
    let mut all = Vec::new();
    for (vni, &n) in (1..).zip(counts) {
        watcher.subscribe(vni).await;
        all.extend(routes(vni, n, "fd00::".parse().unwrap()));
    }
    watcher.sync().await;
    let mut a = plain(addr).await;
    a.establish().await;
    a.send_bytes(&encode_updates(Action::Add, &all).unwrap())
        .await;
    watcher.0.count_updates(all.len() as u64).await.unwrap();
    (srv, a, watcher, all)
}

#[tokio::test]
async fn routes_json_pages_walk_every_route_exactly_once() {
    let (srv, _a, _watcher, all) = server_with_routes(&[1200, 1000, 301]).await;
    let want: BTreeSet<String> = all.iter().map(Route::to_string).collect();
    assert_eq!(want.len(), 2501);

    // Without parameters: the first page of at most 1000 routes, and where to go on.
    let (first, next) = page_routes(&srv.get("/routes.json").await);
    assert_eq!(first.len(), 1000);
    assert!(next.is_some());

    for limit in [1000, 700, 10_000] {
        let walked = walk_routes(&srv, "", limit).await;
        let distinct: BTreeSet<String> = walked.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            walked.len(),
            "a route twice with limit {limit}"
        );
        assert_eq!(distinct, want, "limit {limit}");
    }
    // One VNI, in pages too.
    let walked = walk_routes(&srv, "vni=2&", 300).await;
    let distinct: BTreeSet<String> = walked.iter().cloned().collect();
    assert_eq!(distinct.len(), walked.len());
    let of_2: BTreeSet<String> = want
        .iter()
        .filter(|r| r.starts_with("2#"))
        .cloned()
        .collect();
    assert_eq!(distinct, of_2);
    let (none, next) = page_routes(&srv.get("/routes.json?vni=4").await);
    assert!(none.is_empty() && next.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn routes_json_refuses_bad_parameters_naming_them() {
    let (srv, _a, _watcher, _) = server_with_routes(&[10]).await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("cursor=bogus", "cursor"),
        ("cursor=0-", "cursor"),
        ("cursor=0-1-2", "cursor"),
        ("vni=x", "vni"),
        ("vni=16777216", "vni"),
        ("vni=1&vni=2", "vni"),
        ("limt=5", "limt"),
    ] {
        let r = srv.fetch(&format!("/routes.json?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(
            r.body.starts_with(&format!("{param}: ")),
            "{query}: {}",
            r.body
        );
    }
    assert_eq!(srv.fetch("/routes.json?limit=10000").await.status, 200);
    assert_eq!(
        srv.fetch("/routes.json?vni=16777215&limit=1").await.status,
        200
    );
    srv.stop().await;
}

#[tokio::test]
async fn routes_json_cursor_from_before_a_compaction_is_a_conflict() {
    let (srv, mut a, mut watcher, all) = server_with_routes(&[40]).await;
    let (_, next) = page_routes(&srv.get("/routes.json?limit=5").await);
    let cursor = next.unwrap();
    // Withdrawing most routes makes the table compact itself (tests compact small tables).
    a.send_bytes(&encode_updates(Action::Remove, &all[..35]).unwrap())
        .await;
    watcher.0.count_updates(35).await.unwrap();
    let r = srv
        .fetch(&format!("/routes.json?limit=5&cursor={cursor}"))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.starts_with("cursor: "), "{}", r.body);
    assert_eq!(walk_routes(&srv, "", 2).await.len(), 5);
    srv.stop().await;
}
