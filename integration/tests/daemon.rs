//! The daemon around the route server, through the real `ferrinet-region serve` process: a slow
//! subscriber is disconnected and counted while everyone else carries on, SIGTERM is a clean
//! exit, `--check-config` accepts the shipped example and names bad keys, systemd hears READY=1
//! and watchdog pings, and the HTTP endpoints serve what they document.
//!
//! Everything listens on 127.0.0.1 with port 0; waits are bounded by [`WAIT`] and no duration
//! is asserted.

use std::collections::HashSet;
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{Context as _, ensure};
use ferrinet_integration::raw::{RawConn, encode_all, routes};
use ferrinet_integration::{
    Env, Launch, Pki, RegionServer, ServerOpts, WAIT, poll, region_bin, workspace_root,
};
use ferrinet_region::loadgen::http::metric_value;
use ferrinet_region::route::{Action, Route};

fn session_with_peer<'a>(
    list: &'a [serde_json::Value],
    peer: &str,
) -> Option<&'a serde_json::Value> {
    list.iter().find(|s| s["peer"] == peer)
}

/// The subscriber receives exactly `want`, as ADDs, each once.
async fn expect_adds(
    c: &mut RawConn,
    want: &[Route],
    seen: &mut HashSet<Route>,
) -> anyhow::Result<()> {
    for (a, r) in c.recv_updates(want.len()).await? {
        ensure!(a == Action::Add, "unexpected {a:?} {r}");
        ensure!(seen.insert(r), "route received twice: {r}");
    }
    Ok(())
}

/// Routes per round; the fast subscriber receives each round before the next is sent.
const ROUND: usize = 2_000;
/// Upper bound on routes sent while waiting for the overflow. The slow subscriber's kernel
/// buffers must fill first: its receive buffer is tiny, but the server's send buffer grows up to
/// net.ipv4.tcp_wmem's maximum (4 MiB by default, about 110k routes here).
const MAX_ROUTES: u32 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_disconnected_and_counted_others_unaffected() -> anyhow::Result<()> {
    const VNI: u32 = 91;
    let env = Env::new()?;
    let mut cfg = ServerOpts::default().config(&env.pki);
    cfg.server.queue_len = 16;
    let d = RegionServer::start_config(&cfg, Launch::default())?;

    // The slow subscriber: a tiny receive buffer (which also stops the kernel from growing it),
    // subscribed, and then it never reads.
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(4096)?;
    let stream = sock.connect(d.compat).await?;
    let slow_addr = stream.local_addr()?.to_string();
    let mut slow = RawConn::from_tcp(stream)?;
    slow.establish(600).await?;
    slow.subscribe(VNI).await?;
    slow.ping().await?;

    let mut fast = RawConn::established_plain(d.compat).await?;
    fast.subscribe(VNI).await?;
    fast.ping().await?;
    let mut announcer = RawConn::established_plain(d.compat).await?;

    // Rounds of unpaced UPDATEs; the fast subscriber takes every round in full before the next
    // one is sent, so only a subscriber that does not read can fall behind by a queue's worth.
    let all = routes(VNI, MAX_ROUTES, "fd00:a::");
    let mut seen = HashSet::new();
    let mut sent = 0;
    let mut overflowed = false;
    for (i, round) in all.chunks(ROUND).enumerate() {
        announcer
            .send_bytes(&encode_all(Action::Add, round)?)
            .await?;
        expect_adds(&mut fast, round, &mut seen)
            .await
            .with_context(|| format!("fast subscriber, after {sent} routes"))?;
        sent += round.len();
        if i % 8 == 7 && d.metric("ferrinet_region_overflow_disconnects_total")? >= 1.0 {
            overflowed = true;
            break;
        }
    }
    ensure!(
        overflowed,
        "no overflow disconnect after {sent} routes to a subscriber that never reads:\n{}",
        d.log()
    );

    // The fast subscriber got every route exactly once, and nothing else is queued for it.
    ensure!(
        seen.len() == sent,
        "fast subscriber: {} of {sent} routes",
        seen.len()
    );
    ensure!(
        seen == all[..sent].iter().copied().collect::<HashSet<_>>(),
        "fast subscriber received other routes than the announced ones"
    );
    fast.sync().await?;
    announcer.ping().await?;
    poll("ferrinet_region_routes = routes announced", || {
        Ok((d.metric("ferrinet_region_routes")? == sent as f64).then_some(()))
    })?;

    // The slow session is gone from the server; the other two are still there.
    let list = d.sessions_until("slow session removed", |l| {
        session_with_peer(l, &slow_addr).is_none()
    })?;
    ensure!(
        list.len() == 2,
        "expected the fast subscriber and the announcer, got {list:?}"
    );
    ensure!(
        list.iter()
            .any(|s| s["subscriptions"] == serde_json::json!([VNI])),
        "fast subscriber not listed: {list:?}"
    );
    ensure!(
        list.iter().any(|s| s["routes_owned"] == sent),
        "announcer not listed: {list:?}"
    );

    // Once the slow subscriber reads, it finds the end of the connection after what was sent.
    slow.expect_closed()
        .await
        .context("slow subscriber: connection not closed")?;

    // Still serving the others.
    announcer
        .send_bytes(&encode_all(Action::Remove, &all[..ROUND])?)
        .await?;
    for (a, r) in fast.recv_updates(ROUND).await? {
        ensure!(a == Action::Remove, "unexpected {a:?} {r}");
    }
    fast.sync().await?;
    announcer.ping().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_removes_ready_file_and_closes_sessions() -> anyhow::Result<()> {
    let env = Env::new()?;
    let mut d = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut tls = RawConn::tls(d.tls, env.pki.client_config(Some("node-a"))?).await?;
    tls.establish(600).await?;
    tls.subscribe(5).await?;
    tls.ping().await?;
    let mut plain = RawConn::established_plain(d.compat).await?;
    plain.ping().await?;
    d.sessions_until("both sessions listed", |l| l.len() == 2)?;
    ensure!(d.ready_file().exists(), "ready file missing while running");

    d.sigterm()?;
    let status = d.wait_exit()?;
    ensure!(status.success(), "exit status {status}:\n{}", d.log());
    ensure!(
        !d.ready_file().exists(),
        "ready file still there after a clean exit"
    );
    for (what, c) in [("tls", &mut tls), ("plaintext", &mut plain)] {
        c.expect_closed()
            .await
            .with_context(|| format!("{what} session not closed"))?;
    }
    Ok(())
}

fn run_region(args: &[&std::ffi::OsStr]) -> anyhow::Result<Output> {
    Command::new(region_bin())
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .context("running ferrinet-region")
}

fn check_config(config: &Path, extra: &[&std::ffi::OsStr]) -> anyhow::Result<Output> {
    let mut args = vec![
        "serve".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--check-config".as_ref(),
    ];
    args.extend_from_slice(extra);
    run_region(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_accepts_the_shipped_example_and_names_bad_keys() -> anyhow::Result<()> {
    let example = workspace_root().join("config").join("region.toml");
    let dir = tempfile::tempdir()?;

    // The example as shipped, with development certificates standing in for [tls].
    let dev = dir.path().join("dev-pki");
    let out = check_config(&example, &["--dev-certs".as_ref(), dev.as_os_str()])?;
    ensure!(
        out.status.success() && text(&out.stdout).trim() == "config ok",
        "--dev-certs: {:?} {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );

    // The example next to a PKI where its relative [tls] paths point (../pki): its certificates
    // are loaded for real. Without the PKI the check fails, naming the missing file.
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc)?;
    let copy = etc.join("region.toml");
    std::fs::copy(&example, &copy)?;
    let out = check_config(&copy, &[])?;
    ensure!(
        !out.status.success() && text(&out.stderr).contains("server.pem"),
        "without certificates: {:?} {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Pki::create(&dir.path().join("pki"), &["node-a", "node-b"])?;
    let out = check_config(&copy, &[])?;
    ensure!(
        out.status.success() && text(&out.stdout).trim() == "config ok",
        "with certificates: {:?} {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );

    // Existing development certificates are loaded by the check too: a damaged one fails it
    // here rather than at the next start.
    let pki = dir.path().join("pki");
    let out = check_config(&example, &["--dev-certs".as_ref(), pki.as_os_str()])?;
    ensure!(
        out.status.success(),
        "existing dev pki: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    std::fs::write(pki.join("server.pem"), "not a certificate\n")?;
    let out = check_config(&example, &["--dev-certs".as_ref(), pki.as_os_str()])?;
    ensure!(
        !out.status.success() && text(&out.stderr).contains("server.pem"),
        "damaged dev pki accepted: {:?} {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );

    // Bad configs: non-zero exit, and stderr names the offending key.
    let bad = [
        ("[server]\nlisten_addr = \"127.0.0.1:1\"\n", "listen_addr"),
        ("[server]\nlisten = \"nonsense\"\n", "server.listen"),
        (
            "[server]\nlisten = \"\"\n[compat]\nlisten = \"127.0.0.1:0\"\nqueue_len = 5\n",
            "queue_len",
        ),
        (
            "[server]\nlisten = \"\"\nqueue_len = 1\n[compat]\nlisten = \"127.0.0.1:0\"\n",
            "server.queue_len",
        ),
        ("[http]\nlisten = \"localhost\"\n", "http.listen"),
    ];
    for (i, (toml, key)) in bad.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, toml)?;
        let out = check_config(&path, &[])?;
        let err = text(&out.stderr);
        ensure!(
            !out.status.success(),
            "{toml:?} accepted: {}",
            text(&out.stdout)
        );
        ensure!(
            err.contains(key),
            "{toml:?}: stderr does not name {key}: {err}"
        );
        ensure!(
            !text(&out.stdout).contains("config ok"),
            "{toml:?}: printed config ok"
        );
    }
    Ok(())
}

/// Receives datagrams on `sock`, appending their text to `seen`, until `seen` contains `want`.
fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut String) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        let left = WAIT
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .with_context(|| format!("no {want} within {WAIT:?}; received {seen:?}"))?;
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("receiving on the notify socket"),
        }
    }
    Ok(())
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() -> anyhow::Result<()> {
    let env = Env::new()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path)?;
    let mut d = RegionServer::start_config(
        &ServerOpts::default().config(&env.pki),
        Launch {
            env: vec![
                ("NOTIFY_SOCKET".into(), path.clone().into()),
                ("WATCHDOG_USEC".into(), "2000000".into()),
            ],
            watchdog_pid_self: true,
            ..Launch::default()
        },
    )?;

    let mut seen = String::new();
    recv_until(&sock, "READY=1", &mut seen)?;
    // READY=1 is sent only once every listener is bound and the ready file written.
    ensure!(d.ready_file().exists(), "READY=1 before the ready file");
    TcpStream::connect(d.tls).context("TLS port after READY=1")?;
    TcpStream::connect(d.compat).context("compat port after READY=1")?;

    seen.clear();
    recv_until(&sock, "WATCHDOG=1", &mut seen)?;
    seen.clear();
    recv_until(&sock, "WATCHDOG=1", &mut seen)?;

    d.sigterm()?;
    recv_until(&sock, "STOPPING=1", &mut seen)?;
    let status = d.wait_exit()?;
    ensure!(status.success(), "exit status {status}:\n{}", d.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_show_health_metrics_routes_and_sessions() -> anyhow::Result<()> {
    let env = Env::new()?;
    let d = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut a = RawConn::tls(d.tls, env.pki.client_config(Some("node-a"))?).await?;
    a.establish(600).await?;
    a.subscribe(42).await?;
    let route: Route = "42#10.42.0.1/32#fd00:a::1".parse()?;
    let nat: Route = "42#10.42.0.2/32#fd00:a::2#NAT#1024#2048".parse()?;
    a.update(Action::Add, &route).await?;
    a.update(Action::Add, &nat).await?;
    a.ping().await?;

    let h = d.get("/healthz")?;
    ensure!(h.status == 200 && h.body.trim() == "ok", "/healthz: {h:?}");

    let routes = poll("routes in /routes.json", || {
        let v = d.get_json("/routes.json")?;
        Ok((v["route_count"] == 2).then_some(v))
    })?;
    let vnis = routes["vnis"].as_array().context("vnis")?;
    ensure!(vnis.len() == 1 && vnis[0]["vni"] == 42, "{routes}");
    let rs = vnis[0]["routes"].as_array().context("routes")?;
    let find = |prefix: &str| rs.iter().find(|r| r["prefix"] == prefix);
    let r1 = find("10.42.0.1/32").with_context(|| format!("route missing: {routes}"))?;
    ensure!(r1["next_hop"] == "fd00:a::1" && r1["type"] == "STD", "{r1}");
    ensure!(
        r1["owners"]
            .as_array()
            .is_some_and(|o| o.len() == 1 && o[0]["peer"] == "node-a"),
        "owner of {r1}"
    );
    let r2 = find("10.42.0.2/32").with_context(|| format!("NAT route missing: {routes}"))?;
    ensure!(
        r2["type"] == "NAT" && r2["nat_ports"] == serde_json::json!([1024, 2048]),
        "{r2}"
    );
    let one = d.get_json("/routes.json?vni=42")?;
    ensure!(
        one["vnis"][0]["routes"].as_array().map(Vec::len) == Some(2),
        "{one}"
    );
    let none = d.get_json("/routes.json?vni=43")?;
    ensure!(none["vnis"] == serde_json::json!([]), "{none}");

    let list = d.sessions_until("node-a's session", |l| {
        l.iter()
            .any(|s| s["identity"] == "node-a" && s["routes_owned"] == 2)
    })?;
    ensure!(list.len() == 1, "{list:?}");
    let s = &list[0];
    ensure!(
        s["listener"] == "tls"
            && s["state"] == "established"
            && s["subscriptions"] == serde_json::json!([42])
            && s["updates_received"] == 2,
        "{s}"
    );

    let m = d.get("/metrics")?;
    ensure!(m.status == 200, "/metrics: {m:?}");
    ensure!(
        m.header("content-type").is_some_and(|t| t.contains("text")),
        "/metrics content type: {m:?}"
    );
    ensure!(
        metric_value(&m.body, "ferrinet_region_routes") == Some(2.0),
        "{}",
        m.body
    );
    for name in [
        "# TYPE ferrinet_region_routes gauge",
        "ferrinet_region_overflow_disconnects_total 0",
        "ferrinet_region_updates_received_total 2",
        "ferrinet_region_subscriptions 1",
    ] {
        ensure!(
            m.body.contains(name),
            "/metrics lacks {name:?}:\n{}",
            m.body
        );
    }

    let page = d.get("/")?;
    ensure!(page.status == 200, "/: {page:?}");
    ensure!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "/ content type: {page:?}"
    );
    ensure!(
        page.body.contains("<html") && page.body.contains("node-a"),
        "/: {}",
        page.body
    );
    ensure!(d.get("/nonexistent")?.status == 404, "unknown path not 404");
    Ok(())
}
