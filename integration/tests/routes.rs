//! Route distribution through the real server: announce / subscribe / withdraw between clients,
//! withdrawal when a session ends, authorization of next hops, duplicate SUBSCRIBE, and the
//! plaintext listener driven by the CLI with metalbond's announce syntax.

use std::time::Duration;

use ferrinet_integration::raw::RawConn;
use ferrinet_integration::watch::Watched;
use ferrinet_integration::{Env, RegionServer, ServerOpts, run_cli_client, spawn_cli_client};
use ferrinet_region::route::{Action, Route};
use ferrinet_route_client::client::ServerConfig;

fn r(s: &str) -> Route {
    s.parse().expect("test route")
}

fn tls_client(env: &Env, server: &RegionServer, node: &str) -> anyhow::Result<Watched> {
    Watched::start(vec![ServerConfig::tls(
        server.tls.to_string(),
        env.pki.tls_client(node)?,
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_subscribe_withdraw_between_two_clients() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut a = tls_client(&env, &server, "node-a")?;
    let mut b = tls_client(&env, &server, "node-b")?;
    let ra = r("100#10.100.0.1/32#fd00:a::1");
    let rb = r("100#10.100.0.2/32#fd00:b::1#NAT#1024#2048");
    a.subscribe(100)?;
    b.subscribe(100)?;
    a.all_up().await?;
    b.all_up().await?;

    a.handle.announce(ra)?;
    b.until("a's route at b", |w| w.view.contains(&ra)).await?;
    b.handle.announce(rb)?;
    a.until("b's route at a", |w| w.view.contains(&rb)).await?;
    // Never back to the announcer.
    a.settle(Duration::from_millis(200)).await?;
    assert!(!a.view.contains(&ra));

    a.handle.withdraw(ra)?;
    b.until("a's route gone at b", |w| !w.view.contains(&ra))
        .await?;
    assert!(b.log.contains(&(Action::Remove, ra)));

    // Unsubscribing drops a's view of the VNI; a late subscriber gets the current routes.
    a.unsubscribe(100);
    a.until("unsubscribed view empty", |w| w.view.is_empty())
        .await?;
    let mut c = tls_client(&env, &server, "node-c")?;
    c.subscribe(100)?;
    c.until("dump to a new subscriber", |w| {
        w.view.contains(&rb) && w.view.len() == 1
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_end_withdraws_its_routes() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut b = tls_client(&env, &server, "node-b")?;
    b.subscribe(7)?;
    b.all_up().await?;

    // A clean shutdown of a library client.
    let x = r("7#10.7.0.1/32#fd00:a::7");
    let a = tls_client(&env, &server, "node-a")?;
    a.handle.announce(x)?;
    b.until("route present", |w| w.view.contains(&x)).await?;
    a.shutdown().await;
    b.until("route withdrawn after shutdown", |w| !w.view.contains(&x))
        .await?;

    // A CLI client killed without goodbye.
    let y = r("7#10.7.0.2/32#2001:db8::7");
    let compat = server.compat.to_string();
    let mut cli = spawn_cli_client(&[
        "--plaintext",
        "--server",
        &compat,
        "--announce",
        &y.to_string(),
    ])?;
    b.until("cli route present", |w| w.view.contains(&y))
        .await?;
    cli.kill();
    b.until("cli route withdrawn after kill", |w| !w.view.contains(&y))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_underlay_announcement_is_refused() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut b = tls_client(&env, &server, "node-b")?;
    b.subscribe(5)?;
    b.all_up().await?;
    let mut a = RawConn::tls(server.tls, env.pki.client_config(Some("node-a"))?).await?;
    a.establish(600).await?;
    // node-a may use fd00:a::/64 only. The server handles a session's updates in order, so once
    // the allowed route after it has arrived, the refused one would have arrived before it.
    let foreign = r("5#10.5.0.1/32#fd00:b::1");
    let allowed = r("5#10.5.0.2/32#fd00:a::1");
    a.update(Action::Add, &foreign).await?;
    a.update(Action::Add, &allowed).await?;
    b.until("allowed route", |w| w.view.contains(&allowed))
        .await?;
    assert!(!b.view.contains(&foreign) && !b.log.iter().any(|(_, x)| *x == foreign));
    // The refusal does not end the announcer's session.
    a.ping().await?;

    // An unlisted identity is read-only; so is the plaintext listener in read-only mode.
    let mut c = RawConn::tls(server.tls, env.pki.client_config(Some("node-c"))?).await?;
    c.establish(600).await?;
    c.update(Action::Add, &r("5#10.5.0.3/32#fd00:c::1")).await?;
    c.ping().await?;
    let marker = r("5#10.5.0.4/32#fd00:a::2");
    a.update(Action::Add, &marker).await?;
    b.until("marker route", |w| w.view.contains(&marker))
        .await?;
    assert_eq!(b.view.len(), 2, "{:?}", b.view);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscribe_is_harmless() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut a = RawConn::established_plain(server.compat).await?;
    let first = r("9#10.9.0.1/32#2001:db8::1");
    let second = r("9#10.9.0.2/32#2001:db8::2");
    a.update(Action::Add, &first).await?;
    a.ping().await?;

    let mut s = RawConn::established_plain(server.compat).await?;
    s.subscribe(9).await?;
    s.subscribe(9).await?;
    s.subscribe(9).await?;
    assert_eq!(s.recv_updates(1).await?, vec![(Action::Add, first)]);
    a.update(Action::Add, &second).await?;
    // The next update is the new route: no second dump of the first in between.
    assert_eq!(s.recv_updates(1).await?, vec![(Action::Add, second)]);
    s.ping().await?;
    a.ping().await?;
    Ok(())
}

#[test]
fn plaintext_listener_with_announce_syntax() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let compat = server.compat.to_string();
    let announced = [
        "23#10.0.23.0/24#2001:db8::1",
        "23#10.0.23.5#2001:db8::2#NAT#1024#2048",
        "23#fd00:23::/64#2001:db8::3#LB",
    ];
    let mut args = vec!["--plaintext", "--server", &compat, "--announce"];
    args.extend(announced);
    let _announcer = spawn_cli_client(&args)?;
    let (st, out, err) = run_cli_client(&[
        "--plaintext",
        "--server",
        &compat,
        "--subscribe",
        "23",
        "--count",
        "3",
        "--timeout",
        "60",
    ])?;
    assert!(st.success(), "subscriber failed: {err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        vec![
            "ADD 23#10.0.23.0/24#2001:db8::1#STD",
            "ADD 23#10.0.23.5/32#2001:db8::2#NAT#1024#2048",
            "ADD 23#fd00:23::/64#2001:db8::3#LB",
        ]
    );

    // JSON output for scripts.
    let (st, out, err) = run_cli_client(&[
        "--plaintext",
        "--server",
        &compat,
        "--subscribe",
        "23",
        "--count",
        "3",
        "--timeout",
        "60",
        "--json",
    ])?;
    assert!(st.success(), "json subscriber failed: {err}");
    let nat = out
        .lines()
        .map(serde_json::from_str::<serde_json::Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|v| v["type"] == "NAT")
        .ok_or_else(|| anyhow::anyhow!("no NAT route in {out}"))?;
    assert_eq!(nat["action"], "ADD");
    assert_eq!(nat["prefix"], "10.0.23.5/32");
    assert_eq!(nat["port_from"], 1024);
    Ok(())
}

#[test]
fn cli_refuses_bad_announce_naming_the_field() -> anyhow::Result<()> {
    let (st, _, err) = run_cli_client(&[
        "--plaintext",
        "--server",
        "127.0.0.1:9",
        "--announce",
        "23#10.0.23.0/24#10.0.0.1",
    ])?;
    assert!(!st.success());
    assert!(err.contains("nexthop"), "{err}");
    Ok(())
}
