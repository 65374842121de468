//! Bad input closes only the session that sent it: garbage bytes, a length over the maximum,
//! a frame before HELLO. The server and every other session carry on.

use ferrinet_integration::raw::RawConn;
use ferrinet_integration::watch::Watched;
use ferrinet_integration::{Env, RegionServer, ServerOpts};
use ferrinet_region::route::Route;
use ferrinet_route_client::client::ServerConfig;

fn r(s: &str) -> Route {
    s.parse().expect("test route")
}

/// A library client subscribed to VNI 3, and a route announced by another one, to check after
/// each attack that routes still flow.
struct Bystanders {
    sub: Watched,
    pub_: Watched,
    n: u32,
}

impl Bystanders {
    async fn new(server: &RegionServer) -> anyhow::Result<Self> {
        let plain = || vec![ServerConfig::plaintext(server.compat.to_string())];
        let mut sub = Watched::start(plain())?;
        let mut pub_ = Watched::start(plain())?;
        sub.subscribe(3)?;
        sub.all_up().await?;
        pub_.all_up().await?;
        Ok(Self { sub, pub_, n: 0 })
    }

    /// A new route makes it from one bystander to the other, over sessions never reset.
    async fn still_fine(&mut self) -> anyhow::Result<()> {
        self.n += 1;
        let x = r(&format!("3#10.3.0.{}/32#2001:db8::3", self.n));
        self.pub_.handle.announce(x)?;
        self.sub
            .until("route between bystanders", |w| w.view.contains(&x))
            .await?;
        for s in [&self.sub, &self.pub_] {
            anyhow::ensure!(
                s.handle.status().servers[0].sessions == 1,
                "a bystander session was reset"
            );
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_bad_lengths_close_only_that_session() -> anyhow::Result<()> {
    let env = Env::new()?;
    let server = RegionServer::start(&env.pki, &ServerOpts::default())?;
    let mut by = Bystanders::new(&server).await?;
    let mut other = RawConn::established_plain(server.compat).await?;

    let attacks: [(&str, bool, &[u8]); 5] = [
        (
            "http request before hello",
            false,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("bad length before hello", false, &[1, 0xff, 0xff, 1]),
        (
            "bad length after establishment",
            true,
            &[1, 0xff, 0xff, 5, 0, 0, 0, 0],
        ),
        ("length just over the maximum", true, &[1, 0x04, 0xa5, 5]),
        ("undecodable update", true, &[1, 0, 3, 5, 0x1a, 0x05, 0xff]),
    ];
    for (what, establish, bytes) in attacks {
        let mut c = if establish {
            RawConn::established_plain(server.compat).await?
        } else {
            RawConn::plain(server.compat).await?
        };
        c.send_bytes(bytes).await?;
        c.expect_closed().await.map_err(|e| e.context(what))?;
        by.still_fine().await.map_err(|e| e.context(what))?;
        other.ping().await.map_err(|e| e.context(what))?;
    }

    // Garbage on the TLS listener (not even a TLS record).
    let mut c = RawConn::plain(server.tls).await?;
    c.send_bytes(&[0xff; 64]).await?;
    c.expect_closed().await?;
    by.still_fine().await?;
    Ok(())
}
