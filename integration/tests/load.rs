//! Bursts the reference implementation cannot take: 100,000 updates written without pacing,
//! a 100,000-route dump to a new subscriber, a mass withdrawal. No session may be reset.
//! (No timing is asserted; `ferrinet-region bench` measures speed.)

use std::collections::HashSet;

use ferrinet_integration::raw::{RawConn, encode_all, routes};
use ferrinet_integration::{Env, RegionServer, ServerOpts};
use ferrinet_region::route::{Action, Route};

const N: u32 = 100_000;
const VNI: u32 = 77;

async fn expect_all(c: &mut RawConn, action: Action, want: &[Route]) -> anyhow::Result<()> {
    let got = c.recv_updates(want.len()).await?;
    let mut seen = HashSet::with_capacity(got.len());
    for (a, r) in got {
        anyhow::ensure!(a == action, "unexpected {a:?} {r}");
        anyhow::ensure!(seen.insert(r), "duplicate {r}");
    }
    let want: HashSet<Route> = want.iter().copied().collect();
    anyhow::ensure!(
        seen == want,
        "received routes differ from the announced ones"
    );
    Ok(())
}

/// `connect` opens an established session as the announcer (`true`) or a subscriber.
async fn flood_dump_withdraw<F, Fut>(connect: F) -> anyhow::Result<()>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<RawConn>>,
{
    let all = routes(VNI, N, "fd00:a::");
    let mut live = connect(false).await?;
    live.subscribe(VNI).await?;
    live.ping().await?;

    let mut announcer = connect(true).await?;
    announcer
        .send_bytes(&encode_all(Action::Add, &all)?)
        .await?;
    expect_all(&mut live, Action::Add, &all).await?;
    announcer.ping().await?;

    let mut late = connect(false).await?;
    late.subscribe(VNI).await?;
    expect_all(&mut late, Action::Add, &all).await?;
    late.ping().await?;

    announcer
        .send_bytes(&encode_all(Action::Remove, &all)?)
        .await?;
    expect_all(&mut live, Action::Remove, &all).await?;
    expect_all(&mut late, Action::Remove, &all).await?;
    for c in [&mut announcer, &mut live, &mut late] {
        c.ping().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_updates_and_dump_over_tls() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    flood_dump_withdraw(|announcer| {
        let node = if announcer { "node-a" } else { "node-b" };
        let config = env.pki.client_config(Some(node));
        let addr = server.tls;
        async move {
            let mut c = RawConn::tls(addr, config?).await?;
            c.establish(600).await?;
            Ok(c)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_updates_and_dump_over_plaintext() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    flood_dump_withdraw(|_| RawConn::established_plain(server.compat)).await
}
