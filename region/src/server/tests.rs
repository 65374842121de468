//! In-process server tests on loopback: plain TCP and TLS peers speaking the real codec.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use ferrinet_proto::frame::{self, Message};
use ferrinet_proto::route::{Hello, Subscription};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::certs::Pki;
use crate::conn::FrameReader;
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

    /// A plain HTTP/1.0 GET, returning the body.
    async fn get(&self, path: &str) -> String {
        use tokio::io::AsyncReadExt;
        let mut s = TcpStream::connect(self.http).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out}"
        );
        out.split_once("\r\n\r\n").unwrap().1.to_string()
    }
}

struct Peer<S> {
    rd: FrameReader<ReadHalf<S>>,
    wr: WriteHalf<S>,
    inbox: std::collections::VecDeque<Message>,
}

impl<S: AsyncRead + AsyncWrite> Peer<S> {
    fn new(s: S) -> Self {
        let (rd, wr) = tokio::io::split(s);
        Self {
            rd: FrameReader::new(rd),
            wr,
            inbox: Default::default(),
        }
    }

    async fn send_all(&mut self, msgs: &[Message]) {
        let mut b = BytesMut::new();
        for m in msgs {
            frame::encode(m, &mut b).unwrap();
        }
        self.wr.write_all(&b).await.unwrap();
    }

    async fn send(&mut self, m: Message) {
        self.send_all(&[m]).await;
    }

    /// Next message; `None` when the server closed the connection.
    async fn next(&mut self) -> Option<Message> {
        if let Some(m) = self.inbox.pop_front() {
            return Some(m);
        }
        let mut v = Vec::new();
        match tokio::time::timeout(PATIENCE, self.rd.read_batch(&mut v))
            .await
            .expect("server did not answer")
        {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                self.inbox.extend(v);
                self.inbox.pop_front()
            }
        }
    }

    async fn expect(&mut self, m: Message) {
        assert_eq!(self.next().await, Some(m));
    }

    async fn establish(&mut self) {
        self.send(Message::Hello(Hello {
            keepalive_interval: 3,
            is_server: false,
            ferrinet_extensions: 0,
        }))
        .await;
        self.expect(Message::Hello(Hello {
            keepalive_interval: 3,
            is_server: true,
            ferrinet_extensions: 0,
        }))
        .await;
        self.send(Message::Keepalive).await;
        self.expect(Message::Keepalive).await;
    }

    /// A KEEPALIVE round trip: everything queued for this peer before it arrives first.
    async fn sync(&mut self) {
        self.send(Message::Keepalive).await;
        self.expect(Message::Keepalive).await;
    }

    async fn subscribe(&mut self, vni: u32) {
        self.send(Message::Subscribe(Subscription { vni })).await;
    }
}

async fn plain(addr: SocketAddr) -> Peer<TcpStream> {
    Peer::new(TcpStream::connect(addr).await.unwrap())
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
    bad.wr.write_all(&[1, 0xff, 0xff, 5]).await.unwrap();
    assert_eq!(bad.next().await, None);

    let mut junk = plain(addr).await;
    junk.wr.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
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
            let tcp = TcpStream::connect(addr).await.unwrap();
            let s = tokio_rustls::TlsConnector::from(client)
                .connect(crate::tls::server_name("localhost").unwrap(), tcp)
                .await
                .unwrap();
            Peer::new(s)
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
