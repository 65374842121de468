//! Mutual TLS on the route listener: a CA-signed client gets a session; a client certificate
//! from a foreign CA, or none at all, does not; none of that disturbs other sessions.

use ferrinet_integration::raw::{RawConn, Recv};
use ferrinet_integration::{Env, RegionServer, ServerOpts, run_cli_client};

/// A client that trusts the region CA (so it accepts the server) but presents `identity`.
fn client_with(
    env: &Env,
    identity: Option<(&ferrinet_integration::Pki, &str)>,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    use ferrinet_region::tls;
    let ca = tls::load_certs(&env.pki.ca())?;
    let id = match identity {
        Some((pki, node)) => Some((
            tls::load_certs(&pki.cert(node))?,
            tls::load_key(&pki.key(node))?,
        )),
        None => None,
    };
    Ok(tls::client_config(ca, id)?)
}

/// Tries to establish a session; `Ok(true)` if it got to ESTABLISHED.
async fn establishes(
    server: &RegionServer,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<bool> {
    // In TLS 1.3 the server checks the client certificate after the client considers the
    // handshake done, so a refusal may show up at connect or at the first read.
    let mut c = match RawConn::tls(server.tls, config).await {
        Ok(c) => c,
        Err(_) => return Ok(false),
    };
    Ok(c.establish(600).await.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_accepts_ca_signed_client() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    assert!(establishes(&server, env.pki.client_config(Some("node-a"))?).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_foreign_ca_and_missing_client_cert() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    // A session that is up before and must stay up after the refusals.
    let mut bystander = RawConn::tls(server.tls, env.pki.client_config(Some("node-b"))?).await?;
    bystander.establish(600).await?;

    let foreign = client_with(&env, Some((&env.foreign, "node-a")))?;
    assert!(!establishes(&server, foreign).await?, "foreign CA accepted");
    let anonymous = client_with(&env, None)?;
    assert!(
        !establishes(&server, anonymous).await?,
        "no client cert accepted"
    );
    // A client that does not trust the server's CA gives up on its own.
    let distrusting = env.foreign.client_config(Some("node-a"))?;
    assert!(RawConn::tls(server.tls, distrusting).await.is_err());

    bystander.ping().await?;
    assert!(establishes(&server, env.pki.client_config(Some("node-a"))?).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_on_the_tls_listener_is_closed() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut c = RawConn::plain(server.tls).await?;
    c.send(&ferrinet_proto::frame::Message::Hello(
        ferrinet_proto::route::Hello {
            keepalive_interval: 5,
            is_server: false,
            ferrinet_extensions: 0,
        },
    ))
    .await?;
    // Whatever comes back (a TLS alert is not a frame), the session never starts.
    assert_eq!(c.recv().await?, Recv::Closed);
    Ok(())
}

#[test]
fn cli_client_establishes_over_tls_and_not_with_a_foreign_cert() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let addr = server.tls.to_string();
    let ca = env.pki.ca();
    let (cert, key) = (env.pki.cert("node-a"), env.pki.key("node-a"));
    let (st, _, err) = cli_until_established(&addr, &ca, &cert, &key, "60")?;
    assert!(st.success(), "client failed: {err}");
    assert!(err.contains("established"), "{err}");

    let (fcert, fkey) = (env.foreign.cert("node-a"), env.foreign.key("node-a"));
    let (st, _, err) = cli_until_established(&addr, &ca, &fcert, &fkey, "3")?;
    assert!(!st.success(), "foreign cert established: {err}");
    assert!(err.contains("down"), "no failure reported: {err}");
    Ok(())
}

/// Runs the CLI client over TLS until its session is established or `timeout` seconds pass.
fn cli_until_established(
    addr: &str,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    timeout: &str,
) -> anyhow::Result<(std::process::ExitStatus, String, String)> {
    run_cli_client(&[
        "--server",
        addr,
        "--ca",
        ca.to_str().unwrap_or_default(),
        "--cert",
        cert.to_str().unwrap_or_default(),
        "--key",
        key.to_str().unwrap_or_default(),
        "--exit-on-established",
        "--timeout",
        timeout,
    ])
}
