//! The END_OF_SNAPSHOT extension against the real server: the client library's per-VNI
//! subscriptions complete exactly when the snapshot is in, a peer that asks for the extension
//! gets the marker after every SUBSCRIBE's dump, and a metalbond v1 peer (which does not ask)
//! gets exactly the v1 bytes it always got.

use std::collections::BTreeSet;

use ferrinet_integration::raw::{RawConn, routes};
use ferrinet_integration::watch::Watched;
use ferrinet_integration::{Env, RegionServer, ServerOpts, WAIT};
use ferrinet_proto::frame::{self, Message};
use ferrinet_region::route::Action;
use ferrinet_route_client::client::ServerConfig;
use ferrinet_route_client::session::Extensions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads one whole frame, as bytes.
async fn read_frame(s: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut f = vec![0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut f)).await??;
    let len = usize::from(u16::from_be_bytes([f[1], f[2]]));
    f.resize(4 + len, 0);
    tokio::time::timeout(WAIT, s.read_exact(&mut f[4..])).await??;
    Ok(f)
}

/// Sends a KEEPALIVE and returns every frame up to its answer (excluded).
async fn frames_until_keepalive(s: &mut TcpStream) -> anyhow::Result<Vec<Vec<u8>>> {
    s.write_all(&[0x01, 0x00, 0x00, 0x02]).await?;
    let mut out = Vec::new();
    loop {
        let f = read_frame(s).await?;
        if f == [0x01, 0x00, 0x00, 0x02] {
            return Ok(out);
        }
        out.push(f);
    }
}

/// A server holding two routes in VNI 23, announced by a trusted plaintext peer.
async fn server_with_routes(env: &Env) -> anyhow::Result<(RegionServer, RawConn, Vec<Vec<u8>>)> {
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut announcer = RawConn::established_plain(server.compat).await?;
    let held = routes(23, 2, "2001:db8::");
    for r in &held {
        announcer.update(Action::Add, r).await?;
    }
    announcer.ping().await?;
    let frames = held
        .iter()
        .map(|r| frame::encode_to_vec(&Message::Update(r.to_update(Action::Add))))
        .collect::<Result<_, _>>()?;
    Ok((server, announcer, frames))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_peer_gets_the_v1_bytes() -> anyhow::Result<()> {
    let env = Env::new()?;
    let (server, _announcer, updates) = server_with_routes(&env).await?;
    let mut s = TcpStream::connect(server.compat).await?;
    // HELLO keepalive 3 and the server's answer, as in the reference's byte examples.
    s.write_all(&[0x01, 0x00, 0x02, 0x01, 0x08, 0x03]).await?;
    assert_eq!(
        read_frame(&mut s).await?,
        [0x01, 0x00, 0x04, 0x01, 0x08, 0x03, 0x10, 0x01]
    );
    assert!(frames_until_keepalive(&mut s).await?.is_empty());
    // SUBSCRIBE 23: the dump, and nothing that is not v1 (no marker), before the KEEPALIVE.
    s.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x17]).await?;
    let got: BTreeSet<Vec<u8>> = frames_until_keepalive(&mut s).await?.into_iter().collect();
    assert_eq!(got, updates.into_iter().collect());
    // An empty VNI: nothing at all.
    s.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x18]).await?;
    assert!(frames_until_keepalive(&mut s).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_asks_gets_a_marker_after_each_dump() -> anyhow::Result<()> {
    let env = Env::new()?;
    let (server, _announcer, updates) = server_with_routes(&env).await?;
    let mut s = TcpStream::connect(server.compat).await?;
    // HELLO offering END_OF_SNAPSHOT (field 1000 = 1); the answer agrees.
    s.write_all(&[0x01, 0x00, 0x05, 0x01, 0x08, 0x03, 0xc0, 0x3e, 0x01])
        .await?;
    assert_eq!(
        read_frame(&mut s).await?,
        [
            0x01, 0x00, 0x07, 0x01, 0x08, 0x03, 0x10, 0x01, 0xc0, 0x3e, 0x01
        ]
    );
    assert!(frames_until_keepalive(&mut s).await?.is_empty());
    s.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x17]).await?;
    let mut got = frames_until_keepalive(&mut s).await?;
    // The marker (type 100, VNI 23) comes last, after both routes.
    assert_eq!(got.pop(), Some(vec![0x01, 0x00, 0x02, 0x64, 0x08, 0x17]));
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        updates.into_iter().collect()
    );
    // An empty VNI and a repeated SUBSCRIBE get their marker too.
    s.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x18]).await?;
    assert_eq!(
        frames_until_keepalive(&mut s).await?,
        [vec![0x01, 0x00, 0x02, 0x64, 0x08, 0x18]]
    );
    s.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x17]).await?;
    assert_eq!(
        frames_until_keepalive(&mut s).await?,
        [vec![0x01, 0x00, 0x02, 0x64, 0x08, 0x17]]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subscription_completes_with_the_whole_snapshot() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut announcer = RawConn::established_plain(server.compat).await?;
    let held = routes(77, 3000, "2001:db8::");
    for chunk in held.chunks(500) {
        let b = ferrinet_integration::raw::encode_all(Action::Add, chunk)?;
        announcer.send_bytes(&b).await?;
    }
    announcer.ping().await?;

    let mut w = Watched::start(vec![ServerConfig::tls(
        server.tls.to_string(),
        env.pki.tls_client("node-b")?,
    )])?;
    w.all_up().await?;
    w.subscribe(77)?;
    w.subscribe(78)?;
    w.until("vni 77 complete", |w| w.complete.contains(&77))
        .await?;
    // Complete means complete: every route of the snapshot is in, in order, before it.
    assert_eq!(w.view.len(), held.len());
    assert_eq!(w.view, held.iter().copied().collect());
    w.until("empty vni 78 complete", |w| w.complete.contains(&78))
        .await?;
    let st = w.handle.status();
    assert_eq!(st.servers[0].extensions, Extensions::END_OF_SNAPSHOT);
    assert!(st.subscriptions.iter().all(|s| s.complete));

    // Changes keep coming after completion.
    let late = routes(77, 3001, "2001:db8::")[3000];
    announcer.update(Action::Add, &late).await?;
    w.until("a change after completion", |w| w.view.contains(&late))
        .await?;
    w.shutdown().await;
    Ok(())
}
