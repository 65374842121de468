//! The server on real loopback sockets, queried with hand-built messages.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

/// Only to keep a broken server from hanging the test run; no test depends on it.
const PATIENCE: Duration = Duration::from_secs(10);

fn zone() -> Zone {
    Zone::new("region1.ferrinet.internal").unwrap()
}

fn entry(host: &str, addrs: &[&str]) -> DnsEntry {
    DnsEntry {
        namespace: "ns".into(),
        network: "net".into(),
        hostname: host.into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fn host(h: &str) -> String {
    format!("{h}.net.ns.region1.ferrinet.internal.")
}

struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    handle: DnsHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DnsServeError>>,
}

async fn start(entries: &[DnsEntry]) -> Running {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let handle = DnsHandle::new(records(&zone(), entries));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(
        DnsListeners {
            udp: Some(udp),
            tcp: Some(tcp),
        },
        handle.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        udp: udp_addr,
        tcp: tcp_addr,
        handle,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

async fn udp_exchange(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(request, server).await.unwrap();
    let mut buf = vec![0; 65_535];
    let (n, _) = tokio::time::timeout(PATIENCE, s.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    buf
}

async fn udp(server: SocketAddr, m: &Message) -> Message {
    let reply = Message::from_vec(&udp_exchange(server, &m.to_vec().unwrap()).await).unwrap();
    assert_eq!(reply.metadata.id, m.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    reply
}

async fn tcp_send(s: &mut TcpStream, bytes: &[u8]) {
    // One write: a length prefix sent alone would wait for a delayed ACK (Nagle).
    let mut frame = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    s.write_all(&frame).await.unwrap();
}

async fn tcp_recv(s: &mut TcpStream) -> Message {
    let read = async {
        let mut len = [0; 2];
        s.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(PATIENCE, read).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

async fn tcp(server: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    tcp_send(&mut s, &m.to_vec().unwrap()).await;
    let reply = tcp_recv(&mut s).await;
    assert_eq!(reply.metadata.id, m.metadata.id);
    reply
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers.iter().filter_map(|r| r.data.ip_addr()).collect()
}

#[tokio::test]
async fn a_aaaa_and_ptr_over_udp_and_tcp() {
    let srv = start(&[entry("web", &["10.0.0.5", "fd00::5"])]).await;
    for via_tcp in [false, true] {
        let ask = |name: &str, t| {
            let m = query(name, t);
            let (u, t) = (srv.udp, srv.tcp);
            async move {
                if via_tcp {
                    tcp(t, &m).await
                } else {
                    udp(u, &m).await
                }
            }
        };
        let a = ask(&host("web"), RecordType::A).await;
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert!(a.metadata.authoritative);
        assert!(!a.metadata.recursion_available);
        assert_eq!(addresses(&a), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.answers[0].ttl, 30);
        assert_eq!(a.queries, query(&host("web"), RecordType::A).queries);

        let aaaa = ask(&host("web"), RecordType::AAAA).await;
        assert_eq!(addresses(&aaaa), ["fd00::5".parse::<IpAddr>().unwrap()]);

        let ptr = ask("5.0.0.10.in-addr.arpa.", RecordType::PTR).await;
        assert_eq!(ptr.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ptr.answers.len(), 1);
        assert_eq!(ptr.answers[0].data.to_string(), host("web"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn nxdomain_nodata_and_refused() {
    let srv = start(&[entry("web", &["10.0.0.5"])]).await;

    let nx = udp(srv.udp, &query(&host("db"), RecordType::A)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(nx.answers.is_empty());
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

    let nodata = udp(srv.udp, &query(&host("web"), RecordType::AAAA)).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

    for name in ["example.com.", "6.0.0.10.in-addr.arpa."] {
        let refused = udp(srv.udp, &query(name, RecordType::A)).await;
        assert_eq!(
            refused.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
        assert!(refused.answers.is_empty() && refused.authorities.is_empty());
    }
    let mut chaos = query("version.bind.", RecordType::TXT);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let refused = tcp(srv.tcp, &chaos).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    srv.stop().await;
}

#[tokio::test]
async fn replaced_records_are_seen_by_the_next_query() {
    let srv = start(&[entry("web", &["10.0.0.5"])]).await;
    let before = udp(srv.udp, &query(&host("db"), RecordType::A)).await;
    assert_eq!(before.metadata.response_code, ResponseCode::NXDomain);

    srv.handle.replace(records(
        &zone(),
        &[entry("web", &["10.0.0.6"]), entry("db", &["10.0.0.7"])],
    ));
    let db = udp(srv.udp, &query(&host("db"), RecordType::A)).await;
    assert_eq!(addresses(&db), ["10.0.0.7".parse::<IpAddr>().unwrap()]);
    let web = tcp(srv.tcp, &query(&host("web"), RecordType::A)).await;
    assert_eq!(addresses(&web), ["10.0.0.6".parse::<IpAddr>().unwrap()]);
    let old_ptr = udp(srv.udp, &query("5.0.0.10.in-addr.arpa.", RecordType::PTR)).await;
    assert_eq!(old_ptr.metadata.response_code, ResponseCode::Refused);

    // The SOA serial counts the versions.
    let soa = udp(
        srv.udp,
        &query("region1.ferrinet.internal.", RecordType::SOA),
    )
    .await;
    let hickory_server::proto::rr::RData::SOA(s) = &soa.answers[0].data else {
        panic!("not a SOA: {soa:?}")
    };
    assert_eq!(s.serial, 2);
    assert_eq!(srv.handle.current().len(), 4);
    assert_eq!(srv.handle.name_of(&entry("DB", &[])).unwrap(), host("db"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_mixes_two_versions() {
    let v1 = records(&zone(), &[entry("web", &["10.0.0.1", "fd00::1"])]);
    let v2 = records(&zone(), &[entry("web", &["10.0.0.2", "fd00::2"])]);
    let srv = start(&[]).await;
    srv.handle.replace(v1.clone());
    let flipper = {
        let handle = srv.handle.clone();
        tokio::spawn(async move {
            for i in 0..2000 {
                handle.replace(if i % 2 == 0 { v2.clone() } else { v1.clone() });
                tokio::task::yield_now().await;
            }
        })
    };
    let one: Vec<IpAddr> = ["10.0.0.1", "fd00::1"].map(|a| a.parse().unwrap()).into();
    let two: Vec<IpAddr> = ["10.0.0.2", "fd00::2"].map(|a| a.parse().unwrap()).into();
    let mut t = TcpStream::connect(srv.tcp).await.unwrap();
    for _ in 0..200 {
        tcp_send(
            &mut t,
            &query(&host("web"), RecordType::ANY).to_vec().unwrap(),
        )
        .await;
        let got = addresses(&tcp_recv(&mut t).await);
        assert!(got == one || got == two, "mixed answer: {got:?}");
    }
    flipper.await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let many: Vec<String> = (1..=40).map(|i| format!("fd00::{i:x}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let srv = start(&[entry("big", &many)]).await;
    let q = query(&host("big"), RecordType::AAAA);
    let small = udp(srv.udp, &q).await;
    assert!(small.metadata.truncation);
    assert!(small.answers.len() < 40);
    let whole = tcp(srv.tcp, &q).await;
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 40);
    // A client that offers a larger buffer gets it all in one datagram.
    let mut big = q.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    big.set_edns(edns);
    let whole = udp(srv.udp, &big).await;
    assert_eq!(whole.answers.len(), 40);
    assert!(whole.edns.is_some());
    srv.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_errors_not_answers() {
    let srv = start(&[entry("web", &["10.0.0.5"])]).await;
    let mut none = Message::query();
    none.metadata.recursion_desired = true;
    let r = udp(srv.udp, &none).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

    let mut update = query(&host("web"), RecordType::A);
    update.metadata.op_code = OpCode::Update;
    let r = udp(srv.udp, &update).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);

    let mut future = query(&host("web"), RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    future.set_edns(edns);
    let r = udp(srv.udp, &future).await;
    // BADVERS shares its code, 16, with BADSIG; hickory decodes 16 as the latter.
    assert_eq!(
        u16::from(r.metadata.response_code),
        u16::from(ResponseCode::BADVERS)
    );
    assert_eq!(r.edns.map(|e| e.version()), Some(0));
    srv.stop().await;
}

#[tokio::test]
async fn garbage_neither_crashes_nor_stops_the_server() {
    let srv = start(&[entry("web", &["10.0.0.5"])]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let valid = query(&host("web"), RecordType::A).to_vec().unwrap();
    let mut as_response = valid.clone();
    as_response[2] |= 0x80;
    // A header claiming 5 questions and then nothing, a name pointer loop, bytes cut short.
    let header_only = [0x12, 0x34, 0x01, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0];
    let mut looping = header_only.to_vec();
    looping[5] = 1;
    looping.extend([0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
    let mut noise = Vec::new();
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..700 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x.to_le_bytes()[0]);
    }
    let garbage: Vec<&[u8]> = vec![
        &[],
        &[0xff; 3],
        &header_only,
        &looping,
        &valid[..valid.len() - 3],
        &as_response,
        &noise,
        &noise[..12],
    ];
    for g in &garbage {
        sock.send_to(g, srv.udp).await.unwrap();
    }
    // Garbage over TCP too: a frame of noise, then a connection closed halfway into a frame.
    let mut t = TcpStream::connect(srv.tcp).await.unwrap();
    tcp_send(&mut t, &noise[..300]).await;
    drop(t);
    let mut t = TcpStream::connect(srv.tcp).await.unwrap();
    t.write_all(&[0x01, 0x00, 0xab]).await.unwrap();
    drop(t);

    // Still answering, on both transports.
    let a = udp(srv.udp, &query(&host("web"), RecordType::A)).await;
    assert_eq!(addresses(&a), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
    let a = tcp(srv.tcp, &query(&host("web"), RecordType::A)).await;
    assert_eq!(addresses(&a), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
    // Several queries on one TCP connection.
    let mut t = TcpStream::connect(srv.tcp).await.unwrap();
    for name in [host("web"), host("db")] {
        tcp_send(&mut t, &query(&name, RecordType::A).to_vec().unwrap()).await;
        let _ = tcp_recv(&mut t).await;
    }
    assert!(!srv.task.is_finished());
    srv.stop().await;
}

#[tokio::test]
async fn without_listeners_it_waits_for_shutdown() {
    let handle = DnsHandle::new(RecordSet::empty(zone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(DnsListeners::default(), handle, async {
        let _ = stopped.await;
    }));
    tokio::task::yield_now().await;
    assert!(!task.is_finished());
    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
