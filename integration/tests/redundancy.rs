//! Two servers, one client on each side: killing one server withdraws nothing, because the other
//! still provides every route.

use ferrinet_integration::watch::Watched;
use ferrinet_integration::{Env, RegionServer, ServerOpts};
use ferrinet_region::route::{Action, Route};
use ferrinet_route_client::client::ServerConfig;

fn r(s: &str) -> Route {
    s.parse().expect("test route")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_killed_routes_stay() -> anyhow::Result<()> {
    let env = Env::new()?;
    let mut s1 = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let s2 = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let both = |node: &str| -> anyhow::Result<Watched> {
        Watched::start(vec![
            ServerConfig::tls(s1.tls.to_string(), env.pki.tls_client(node)?),
            ServerConfig::tls(s2.tls.to_string(), env.pki.tls_client(node)?),
        ])
    };
    let mut a = both("node-a")?;
    let mut b = both("node-b")?;
    let ra = r("42#10.42.0.1/32#fd00:a::42");
    let rb = r("42#10.42.0.2/32#fd00:b::42");
    a.subscribe(42)?;
    b.subscribe(42)?;
    a.handle.announce(ra)?;
    b.handle.announce(rb)?;
    a.until("b's route at a", |w| w.view.contains(&rb)).await?;
    b.until("a's route at b", |w| w.view.contains(&ra)).await?;
    a.all_up().await?;
    b.all_up().await?;
    // Only once both servers provide each route does losing one prove anything.
    a.provided_by(rb, 2).await?;
    b.provided_by(ra, 2).await?;

    s1.kill();
    a.until("a notices s1 is gone", |w| !w.up[0]).await?;
    b.until("b notices s1 is gone", |w| !w.up[0]).await?;
    assert!(a.view.contains(&rb), "a lost b's route");
    assert!(b.view.contains(&ra), "b lost a's route");
    assert!(!a.log.contains(&(Action::Remove, rb)));
    assert!(!b.log.contains(&(Action::Remove, ra)));

    // Routes still flow through the surviving server.
    let late = r("42#10.42.0.3/32#fd00:a::43");
    a.handle.announce(late)?;
    b.until("a late route via s2", |w| w.view.contains(&late))
        .await?;
    a.handle.withdraw(ra)?;
    b.until("a withdrawal via s2", |w| !w.view.contains(&ra))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resubscribe_and_reannounce_after_server_restart() -> anyhow::Result<()> {
    let env = Env::new()?;
    let mut server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let one = |node: &str| -> anyhow::Result<Watched> {
        Watched::start(vec![ServerConfig::tls(
            server.tls.to_string(),
            env.pki.tls_client(node)?,
        )])
    };
    let mut a = one("node-a")?;
    let mut b = one("node-b")?;
    let ra = r("11#10.11.0.1/32#fd00:a::11");
    a.handle.announce(ra)?;
    b.subscribe(11)?;
    b.until("route before the restart", |w| w.view.contains(&ra))
        .await?;

    server.restart()?;
    // The restarted server knows nothing: the route comes back only because a re-announces and
    // b re-subscribes on their new sessions.
    b.until("route gone with the old server", |w| !w.view.contains(&ra))
        .await?;
    b.until("route back after the restart", |w| w.view.contains(&ra))
        .await?;
    a.until("a reconnected", |w| w.up[0]).await?;
    assert!(a.handle.status().servers[0].sessions >= 2);
    assert!(b.handle.status().servers[0].sessions >= 2);
    Ok(())
}
