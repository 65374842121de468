//! A raw route-protocol connection for tests that need to misbehave or to control every byte:
//! garbage, bad lengths, duplicate SUBSCRIBEs, unpaced floods of pre-encoded updates.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use ferrinet_proto::frame::{self, Decoder, Message};
use ferrinet_proto::route::{Hello, Subscription};
use ferrinet_region::route::{Action, Route};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::WAIT;

/// A byte stream: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection speaking frames directly.
pub struct RawConn {
    io: Pin<Box<dyn Io>>,
    buf: BytesMut,
    decoder: Decoder,
}

impl std::fmt::Debug for RawConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConn").finish_non_exhaustive()
    }
}

/// What [`RawConn::recv`] found.
#[derive(Debug, PartialEq)]
pub enum Recv {
    /// A frame.
    Frame(Message),
    /// The server closed the connection (or reset it, or sent bytes that are not a frame).
    Closed,
}

impl RawConn {
    /// Plain TCP to `addr`.
    pub async fn plain(addr: SocketAddr) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr).await.context("connect")?;
        s.set_nodelay(true)?;
        Ok(Self::from_io(s))
    }

    /// TLS to `addr` with `config`, expecting the server name 127.0.0.1.
    pub async fn tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr).await.context("connect")?;
        s.set_nodelay(true)?;
        let name = ferrinet_region::tls::server_name("127.0.0.1")?;
        let tls = tokio::time::timeout(
            WAIT,
            tokio_rustls::TlsConnector::from(config).connect(name, s),
        )
        .await
        .context("tls handshake timed out")?
        .context("tls handshake")?;
        Ok(Self::from_io(tls))
    }

    /// Over an already connected TCP stream (e.g. one made with `tokio::net::TcpSocket` to set
    /// buffer sizes before connecting).
    pub fn from_tcp(s: TcpStream) -> anyhow::Result<Self> {
        s.set_nodelay(true)?;
        Ok(Self::from_io(s))
    }

    fn from_io(io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) -> Self {
        Self {
            io: Box::pin(io),
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: Decoder::new(),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        let b = frame::encode_to_vec(m)?;
        self.send_bytes(&b).await
    }

    /// Sends bytes as they are.
    pub async fn send_bytes(&mut self, b: &[u8]) -> anyhow::Result<()> {
        self.io.write_all(b).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The next frame, or [`Recv::Closed`]; fails only if nothing happens within [`WAIT`].
    pub async fn recv(&mut self) -> anyhow::Result<Recv> {
        self.recv_within(WAIT)
            .await?
            .context("no frame and no close within the wait time")
    }

    /// As [`RawConn::recv`], `None` if nothing arrived within `t`.
    pub async fn recv_within(&mut self, t: Duration) -> anyhow::Result<Option<Recv>> {
        let fut = async {
            loop {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(m)) => return Recv::Frame(m),
                    Ok(None) => {}
                    Err(_) => return Recv::Closed,
                }
                if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                    self.buf.reserve(64 * 1024);
                }
                match self.io.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return Recv::Closed,
                    Ok(_) => {}
                }
            }
        };
        Ok(tokio::time::timeout(t, fut).await.ok())
    }

    /// The next frame that is not a KEEPALIVE.
    pub async fn recv_message(&mut self) -> anyhow::Result<Message> {
        loop {
            match self.recv().await? {
                Recv::Frame(Message::Keepalive) => {}
                Recv::Frame(m) => return Ok(m),
                Recv::Closed => bail!("connection closed while waiting for a message"),
            }
        }
    }

    /// HELLO (proposing `keepalive` seconds), the server's HELLO, KEEPALIVE, the answering
    /// KEEPALIVE: the session is ESTABLISHED.
    pub async fn establish(&mut self, keepalive: u32) -> anyhow::Result<()> {
        self.send(&Message::Hello(Hello {
            keepalive_interval: keepalive,
            is_server: false,
            ferrinet_extensions: 0,
        }))
        .await?;
        match self.recv().await? {
            Recv::Frame(Message::Hello(h)) if h.is_server => {}
            other => bail!("expected the server's hello, got {other:?}"),
        }
        self.send(&Message::Keepalive).await?;
        match self.recv().await? {
            Recv::Frame(Message::Keepalive) => Ok(()),
            other => bail!("expected a keepalive, got {other:?}"),
        }
    }

    /// Establishes a session with a long keepalive (so that a test that sends none survives).
    pub async fn established_plain(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut c = Self::plain(addr).await?;
        c.establish(600).await?;
        Ok(c)
    }

    /// Sends SUBSCRIBE `vni`.
    pub async fn subscribe(&mut self, vni: u32) -> anyhow::Result<()> {
        self.send(&Message::Subscribe(Subscription { vni })).await
    }

    /// Sends one UPDATE.
    pub async fn update(&mut self, action: Action, r: &Route) -> anyhow::Result<()> {
        self.send(&Message::Update(r.to_update(action))).await
    }

    /// Waits until the server closes the connection, skipping frames it sends before that.
    pub async fn expect_closed(&mut self) -> anyhow::Result<()> {
        loop {
            if self.recv().await? == Recv::Closed {
                return Ok(());
            }
        }
    }

    /// Reads `n` UPDATEs (skipping KEEPALIVEs), validated. Fails on anything else.
    pub async fn recv_updates(&mut self, n: usize) -> anyhow::Result<Vec<(Action, Route)>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.recv().await? {
                Recv::Frame(Message::Keepalive) => {}
                Recv::Frame(Message::Update(u)) => out.push(Route::from_update(&u)?),
                Recv::Frame(m) => bail!("expected an update, got {m:?}"),
                Recv::Closed => bail!("closed after {} of {n} updates", out.len()),
            }
        }
        Ok(out)
    }

    /// Answers nothing: a KEEPALIVE to show the session is alive and waits for the answer,
    /// skipping UPDATEs in between. Proves the server still serves this session.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.send(&Message::Keepalive).await?;
        loop {
            match self.recv().await? {
                Recv::Frame(Message::Keepalive) => return Ok(()),
                Recv::Frame(_) => {}
                Recv::Closed => bail!("closed instead of answering a keepalive"),
            }
        }
    }
}

/// `n` distinct routes in `vni` with next hops in `underlay` (an IPv6 /64 prefix like
/// "fd00:a::"), pre-encodable in bulk.
pub fn routes(vni: u32, n: u32, underlay: &str) -> Vec<Route> {
    let base: std::net::Ipv6Addr = underlay.parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST);
    (0..n)
        .map(|i| {
            let dest = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let hop = std::net::Ipv6Addr::from(u128::from(base) + u128::from(i % 1024) + 1);
            Route {
                vni,
                destination: ipnet::IpNet::from(std::net::IpAddr::V4(dest)),
                next_hop: ferrinet_region::route::NextHop {
                    address: hop,
                    target_vni: 0,
                    kind: ferrinet_region::route::NextHopType::Standard,
                    port_from: 0,
                    port_to: 0,
                },
            }
        })
        .collect()
}

/// All of `routes` as UPDATE frames with `action`, in one buffer.
pub fn encode_all(action: Action, routes: &[Route]) -> anyhow::Result<BytesMut> {
    let mut b = BytesMut::with_capacity(routes.len() * 48);
    for r in routes {
        frame::encode(&Message::Update(r.to_update(action)), &mut b)?;
    }
    Ok(b)
}
