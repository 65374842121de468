//! The client against minimal fake servers on loopback (the server half of the session state
//! machine, driven by the test). Against the real route server: `integration/tests/`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use ferrinet_proto::frame::{self, Message};
use ferrinet_proto::route::EndOfSnapshot;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

use super::*;
use crate::conn::FrameReader;
use crate::route::Action;
use crate::session::{Event, Inbound, Output, Role, Session};

/// One accepted connection of [`fake_server`]: what the client sent once established, and a
/// way to send it messages. Dropping `send` closes the connection.
struct FakeConn {
    inbound: mpsc::UnboundedReceiver<Inbound>,
    send: mpsc::UnboundedSender<Message>,
}

impl FakeConn {
    fn update(&self, action: Action, r: Route) {
        self.send
            .send(Message::Update(r.to_update(action)))
            .unwrap();
    }

    fn end_of_snapshot(&self, vni: u32) {
        self.send
            .send(Message::EndOfSnapshot(EndOfSnapshot { vni }))
            .unwrap();
    }
}

/// A minimal server on loopback speaking `extensions`.
async fn fake_server(extensions: Extensions) -> (String, mpsc::UnboundedReceiver<FakeConn>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
            let conn = FakeConn {
                inbound: in_rx,
                send: out_tx,
            };
            if tx.send(conn).is_err() {
                return;
            }
            tokio::spawn(async move {
                let (rd, mut wr) = tokio::io::split(sock);
                let mut rd = FrameReader::new(rd);
                let mut s =
                    Session::new(Role::Server, Duration::from_secs(1)).with_extensions(extensions);
                let mut msgs = Vec::new();
                loop {
                    let mut outs = Vec::new();
                    tokio::select! {
                        r = rd.read_batch(&mut msgs) => {
                            if !matches!(r, Ok(n) if n > 0) { return; }
                            for m in msgs.drain(..) { outs.extend(s.handle(Event::Received(m))); }
                        }
                        m = out_rx.recv() => match m {
                            Some(m) => outs.push(Output::Send(m)),
                            None => return,
                        },
                    }
                    for o in outs {
                        match o {
                            Output::Send(m) => {
                                let b = frame::encode_to_vec(&m).unwrap();
                                if wr.write_all(&b).await.is_err() {
                                    return;
                                }
                            }
                            Output::Deliver(i) => {
                                let _ = in_tx.send(i);
                            }
                            Output::Close(_) => return,
                            Output::Established => {}
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

const WAIT: Duration = Duration::from_secs(20);

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out")
        .expect("closed")
}

async fn next_event(s: &mut Subscription) -> VniEvent {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("timed out")
        .expect("client ended")
}

fn r(s: &str) -> Route {
    s.parse().unwrap()
}

fn config(addrs: &[&str]) -> ClientConfig {
    let mut cfg = ClientConfig::new(addrs.iter().map(|a| ServerConfig::plaintext(*a)).collect());
    cfg.keepalive = Duration::from_secs(1);
    cfg.backoff_min = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(100);
    cfg
}

/// Waits until `f` holds for the client's status.
async fn until(h: &ClientHandle, f: impl Fn(&Status) -> bool) {
    let mut w = h.watch_status();
    tokio::time::timeout(WAIT, w.wait_for(|s| f(s)))
        .await
        .expect("timed out")
        .unwrap();
}

/// Reads what a fresh session got: the subscription and the announcement, in any order.
async fn expect_state(c: &mut FakeConn, vni: u32, own: Route) {
    let mut got = [next(&mut c.inbound).await, next(&mut c.inbound).await];
    got.sort_by_key(|i| matches!(i, Inbound::Update(_)));
    assert_eq!(got[0], Inbound::Subscribe(vni));
    assert_eq!(got[1], Inbound::Update(own.to_update(Action::Add)));
}

#[tokio::test]
async fn merges_servers_and_resends_state_after_reconnect() {
    let (a_addr, mut a) = fake_server(Extensions::ALL).await;
    let (b_addr, mut b) = fake_server(Extensions::ALL).await;
    let h = start(config(&[&a_addr, &b_addr])).unwrap();
    let own = r("7#10.7.0.1/32#2001:db8::1");
    let mut sub = h.subscribe(7).unwrap();
    h.announce(own).unwrap();
    assert!(matches!(
        h.subscribe(1 << 24),
        Err(ClientError::VniOutOfRange(_))
    ));

    let mut a1 = next(&mut a).await;
    let mut b1 = next(&mut b).await;
    expect_state(&mut a1, 7, own).await;
    expect_state(&mut b1, 7, own).await;

    let x = r("7#10.7.0.2/32#2001:db8::2");
    let y = r("7#10.7.0.3/32#2001:db8::3");
    let hidden = r("7#10.7.0.1/32#2001:db8::9");
    for m in [x, y, hidden] {
        a1.update(Action::Add, m);
    }
    b1.update(Action::Add, x);
    let mut added = BTreeSet::new();
    while added.len() < 2 {
        match next_event(&mut sub).await {
            VniEvent::Added(route) => assert!(added.insert(route)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, BTreeSet::from([x, y]));

    // Server A goes away: only y, which B does not have, disappears.
    drop(a1);
    assert_eq!(next_event(&mut sub).await, VniEvent::Removed(y));
    let view = h.routes().await.unwrap();
    assert_eq!(view, vec![x]);
    assert_eq!(h.providers(x).await.unwrap(), vec![1]);

    // The client comes back to A and sends it everything again.
    let mut a2 = next(&mut a).await;
    expect_state(&mut a2, 7, own).await;
    until(&h, |s| s.servers[0].sessions == 2).await;
    let s = h.status();
    assert_eq!(s.subscriptions[0].vni, 7);
    assert_eq!(s.servers[1].extensions, Extensions::END_OF_SNAPSHOT);
    assert!(s.servers[0].last_error.is_some());

    // Withdraw and unsubscribe reach the established sessions.
    h.withdraw(own).unwrap();
    assert_eq!(
        next(&mut b1.inbound).await,
        Inbound::Update(own.to_update(Action::Remove))
    );
    drop(sub);
    assert_eq!(next(&mut b1.inbound).await, Inbound::Unsubscribe(7));
    h.shutdown().await;
    assert!(matches!(h.subscribe(7), Err(ClientError::Closed)));
}

#[tokio::test]
async fn subscriptions_are_per_vni_ordered_complete_and_counted() {
    let (addr, mut srv) = fake_server(Extensions::ALL).await;
    let h = start(config(&[&addr])).unwrap();
    let mut seven = h.subscribe(7).unwrap();
    let mut eight = h.subscribe(8).unwrap();
    let mut c = next(&mut srv).await;
    let mut subs = BTreeSet::new();
    for _ in 0..2 {
        match next(&mut c.inbound).await {
            Inbound::Subscribe(v) => assert!(subs.insert(v)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(subs, BTreeSet::from([7, 8]));

    let x = r("7#10.7.0.2/32#2001:db8::2");
    let y = r("7#10.7.0.3/32#2001:db8::3");
    let z = r("8#10.8.0.3/32#2001:db8::3");
    c.update(Action::Add, x);
    c.update(Action::Add, z);
    c.update(Action::Add, y);
    c.end_of_snapshot(7);
    c.update(Action::Remove, x);
    assert_eq!(next_event(&mut seven).await, VniEvent::Added(x));
    assert_eq!(next_event(&mut seven).await, VniEvent::Added(y));
    assert_eq!(next_event(&mut seven).await, VniEvent::Complete);
    assert_eq!(next_event(&mut seven).await, VniEvent::Removed(x));
    // VNI 8 sees only its own route, and no completion yet.
    assert_eq!(next_event(&mut eight).await, VniEvent::Added(z));
    c.end_of_snapshot(8);
    assert_eq!(next_event(&mut eight).await, VniEvent::Complete);

    // A second subscription of VNI 7 starts from the current, complete set; no wire SUBSCRIBE.
    let mut again = h.subscribe(7).unwrap();
    assert_eq!(
        next_event(&mut again).await,
        VniEvent::Snapshot {
            routes: vec![y],
            complete: true
        }
    );
    // The wire UNSUBSCRIBE goes out with the last subscription of the VNI only.
    drop(seven);
    drop(eight);
    assert_eq!(next(&mut c.inbound).await, Inbound::Unsubscribe(8));
    drop(again);
    assert_eq!(next(&mut c.inbound).await, Inbound::Unsubscribe(7));
    h.shutdown().await;
}

#[tokio::test]
async fn complete_waits_for_every_established_server() {
    let (a_addr, mut a) = fake_server(Extensions::ALL).await;
    let (b_addr, mut b) = fake_server(Extensions::ALL).await;
    let h = start(config(&[&a_addr, &b_addr])).unwrap();
    until(&h, |s| s.established() == 2).await;
    let mut sub = h.subscribe(3).unwrap();
    let mut a1 = next(&mut a).await;
    let mut b1 = next(&mut b).await;
    assert_eq!(next(&mut a1.inbound).await, Inbound::Subscribe(3));
    assert_eq!(next(&mut b1.inbound).await, Inbound::Subscribe(3));
    let x = r("3#10.3.0.1/32#2001:db8::1");
    let y = r("3#10.3.0.2/32#2001:db8::2");
    a1.end_of_snapshot(3);
    // Reports of one server arrive in order: x comes after A's marker was handled.
    a1.update(Action::Add, x);
    assert_eq!(next_event(&mut sub).await, VniEvent::Added(x));
    assert!(!h.status().subscriptions[0].complete);
    b1.update(Action::Add, y);
    b1.end_of_snapshot(3);
    assert_eq!(next_event(&mut sub).await, VniEvent::Added(y));
    assert_eq!(next_event(&mut sub).await, VniEvent::Complete);
    h.shutdown().await;
}

#[tokio::test]
async fn losing_the_last_server_says_incomplete_before_the_removals() {
    let (addr, mut srv) = fake_server(Extensions::ALL).await;
    let h = start(config(&[&addr])).unwrap();
    let mut sub = h.subscribe(5).unwrap();
    let mut c1 = next(&mut srv).await;
    assert_eq!(next(&mut c1.inbound).await, Inbound::Subscribe(5));
    let x = r("5#10.5.0.1/32#2001:db8::1");
    c1.update(Action::Add, x);
    c1.end_of_snapshot(5);
    assert_eq!(next_event(&mut sub).await, VniEvent::Added(x));
    assert_eq!(next_event(&mut sub).await, VniEvent::Complete);

    // The only server goes: the consumer learns first that the set is no longer vouched for.
    drop(c1);
    assert_eq!(next_event(&mut sub).await, VniEvent::Incomplete);
    assert_eq!(next_event(&mut sub).await, VniEvent::Removed(x));
    until(&h, |s| !s.subscriptions[0].complete).await;

    // Back, with the route: added again and complete again.
    let mut c2 = next(&mut srv).await;
    assert_eq!(next(&mut c2.inbound).await, Inbound::Subscribe(5));
    c2.update(Action::Add, x);
    c2.end_of_snapshot(5);
    assert_eq!(next_event(&mut sub).await, VniEvent::Added(x));
    assert_eq!(next_event(&mut sub).await, VniEvent::Complete);
    h.shutdown().await;
}

#[tokio::test]
async fn v1_server_completes_after_a_quiet_period() {
    let (addr, mut srv) = fake_server(Extensions::NONE).await;
    let mut cfg = config(&[&addr]);
    cfg.snapshot_quiet = Duration::from_millis(200);
    let h = start(cfg).unwrap();
    let mut sub = h.subscribe(5).unwrap();
    let mut c = next(&mut srv).await;
    assert_eq!(next(&mut c.inbound).await, Inbound::Subscribe(5));
    let routes: Vec<Route> = (1..=50)
        .map(|i| r(&format!("5#10.5.0.{i}/32#2001:db8::1")))
        .collect();
    for &x in &routes {
        c.update(Action::Add, x);
    }
    for &x in &routes {
        assert_eq!(next_event(&mut sub).await, VniEvent::Added(x));
    }
    assert_eq!(next_event(&mut sub).await, VniEvent::Complete);
    assert_eq!(h.status().servers[0].extensions, Extensions::NONE);
    h.shutdown().await;
}

#[tokio::test]
async fn announcements_are_counted() {
    let (addr, mut srv) = fake_server(Extensions::ALL).await;
    let h = start(config(&[&addr])).unwrap();
    let mut c = next(&mut srv).await;
    until(&h, |s| s.established() == 1).await;
    let own = r("9#10.9.0.1/32#2001:db8::1");
    let other = r("9#10.9.0.2/32#2001:db8::1");
    h.announce(own).unwrap();
    h.announce(own).unwrap();
    assert_eq!(
        next(&mut c.inbound).await,
        Inbound::Update(own.to_update(Action::Add))
    );
    h.withdraw(own).unwrap();
    // Still announced once: the next thing on the wire is `other`, not a REMOVE of `own`.
    h.announce(other).unwrap();
    assert_eq!(
        next(&mut c.inbound).await,
        Inbound::Update(other.to_update(Action::Add))
    );
    assert_eq!(h.status().announced, 2);
    h.withdraw(own).unwrap();
    assert_eq!(
        next(&mut c.inbound).await,
        Inbound::Update(own.to_update(Action::Remove))
    );
    // A withdrawal too many changes nothing.
    h.withdraw(own).unwrap();
    h.withdraw(other).unwrap();
    assert_eq!(
        next(&mut c.inbound).await,
        Inbound::Update(other.to_update(Action::Remove))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_stalled_consumer_does_not_delay_another_and_resyncs() {
    let (addr, mut srv) = fake_server(Extensions::ALL).await;
    let mut cfg = config(&[&addr]);
    cfg.subscription_buffer = 4;
    let h = start(cfg).unwrap();
    let mut stalled = h.subscribe(1).unwrap();
    let mut live = h.subscribe(2).unwrap();
    let c = next(&mut srv).await;
    until(&h, |s| s.established() == 1).await;
    let many: Vec<Route> = (0..500u32)
        .map(|i| r(&format!("1#10.1.{}.{}/32#2001:db8::1", i / 256, i % 256)))
        .collect();
    for &x in &many {
        c.update(Action::Add, x);
    }
    c.end_of_snapshot(1);
    let mine = r("2#10.2.0.1/32#2001:db8::1");
    c.update(Action::Add, mine);
    c.end_of_snapshot(2);
    // The other subscription gets its route although VNI 1's consumer reads nothing.
    assert_eq!(next_event(&mut live).await, VniEvent::Added(mine));
    assert_eq!(next_event(&mut live).await, VniEvent::Complete);
    until(&h, |s| s.subscriptions.iter().any(|v| v.lagged == 1)).await;

    // The stalled consumer catches up through a snapshot and ends with the exact set.
    let mut held = BTreeSet::new();
    let mut complete = false;
    let mut snapshots = 0;
    while !(complete && held.len() == many.len()) {
        match next_event(&mut stalled).await {
            VniEvent::Added(x) => assert!(held.insert(x)),
            VniEvent::Removed(x) => assert!(held.remove(&x)),
            VniEvent::Complete => complete = true,
            VniEvent::Incomplete => panic!("the server stayed up"),
            VniEvent::Snapshot {
                routes,
                complete: c,
            } => {
                snapshots += 1;
                held = routes.into_iter().collect();
                complete = c;
            }
        }
    }
    assert_eq!(snapshots, 1);
    assert_eq!(held, many.iter().copied().collect());
    h.shutdown().await;
}

#[test]
fn refuses_bad_config() {
    assert!(matches!(
        start(ClientConfig::new(vec![])),
        Err(ClientError::Invalid {
            field: "servers",
            ..
        })
    ));
    let mut cfg = ClientConfig::new(vec![ServerConfig::plaintext("127.0.0.1:1")]);
    cfg.subscription_buffer = 1;
    assert!(matches!(
        start(cfg),
        Err(ClientError::Invalid {
            field: "subscription_buffer",
            ..
        })
    ));
}
