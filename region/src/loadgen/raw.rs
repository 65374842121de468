//! A raw route-protocol connection for tools and tests that need to misbehave or to control every
//! byte: garbage, bad lengths, duplicate SUBSCRIBEs, unpaced floods of pre-encoded updates, and
//! counting a flood of UPDATEs by their headers alone, so that the load side costs far less CPU
//! than the server it measures.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BytesMut};
use ferrinet_proto::frame::{self, Decoder, HEADER_LEN, Message, MessageType};
use ferrinet_proto::route::{Hello, Subscription};
use rustls_pki_types::ServerName;
use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

use super::WAIT;
use crate::route::{Action, Route};

/// A byte stream: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Stream = Pin<Box<dyn Io>>;

/// One connection speaking frames directly.
pub struct RawConn {
    rd: ReadHalf<Stream>,
    /// Shared with the keepalive task, if one runs.
    wr: Arc<Mutex<WriteHalf<Stream>>>,
    /// Bytes read and not yet taken as frames.
    buf: BytesMut,
    decoder: Decoder,
    keepalive: Option<AbortHandle>,
}

impl Drop for RawConn {
    fn drop(&mut self) {
        if let Some(k) = &self.keepalive {
            k.abort();
        }
    }
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
        Self::from_tcp(s)
    }

    /// TLS to `addr` with `config`, expecting the server name 127.0.0.1.
    pub async fn tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let name = crate::tls::server_name("127.0.0.1")?;
        Self::tls_named(addr, config, name).await
    }

    /// TLS to `addr` with `config`, expecting the server's certificate to name `name`.
    pub async fn tls_named(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr).await.context("connect")?;
        s.set_nodelay(true)?;
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
        // Small frames must leave at once, or a test's request waits on Nagle's algorithm.
        s.set_nodelay(true)?;
        Ok(Self::from_io(s))
    }

    fn from_io(io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) -> Self {
        let (rd, wr) = tokio::io::split(Box::pin(io) as Stream);
        Self {
            rd,
            wr: Arc::new(Mutex::new(wr)),
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: Decoder::new(),
            keepalive: None,
        }
    }

    /// Sends a KEEPALIVE every `every` from a task of its own until the connection is dropped,
    /// so that a server with a short keepalive keeps a session that is idle between the phases
    /// of a long run. The server's answers arrive as KEEPALIVE frames.
    pub fn keep_alive(&mut self, every: Duration) -> anyhow::Result<()> {
        let frame = frame::encode_to_vec(&Message::Keepalive)?;
        let wr = self.wr.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let mut w = wr.lock().await;
                if w.write_all(&frame).await.is_err() || w.flush().await.is_err() {
                    return;
                }
            }
        });
        if let Some(old) = self.keepalive.replace(task.abort_handle()) {
            old.abort();
        }
        Ok(())
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        self.send_all(std::slice::from_ref(m)).await
    }

    /// Sends messages in one write.
    pub async fn send_all(&mut self, msgs: &[Message]) -> anyhow::Result<()> {
        let mut b = BytesMut::new();
        for m in msgs {
            frame::encode(m, &mut b)?;
        }
        self.send_bytes(&b).await
    }

    /// Sends bytes as they are.
    pub async fn send_bytes(&mut self, b: &[u8]) -> anyhow::Result<()> {
        let mut w = self.wr.lock().await;
        w.write_all(b).await?;
        w.flush().await?;
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
                match self.rd.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return Recv::Closed,
                    Ok(_) => {}
                }
            }
        };
        Ok(tokio::time::timeout(t, fut).await.ok())
    }

    /// The next frame is exactly `want`.
    pub async fn expect(&mut self, want: &Message) -> anyhow::Result<()> {
        match self.recv().await? {
            Recv::Frame(m) if m == *want => Ok(()),
            other => bail!("expected {want:?}, got {other:?}"),
        }
    }

    /// HELLO (proposing `keepalive` seconds), the server's HELLO, KEEPALIVE, the answering
    /// KEEPALIVE: the session is ESTABLISHED. Returns the server's HELLO.
    pub async fn establish(&mut self, keepalive: u32) -> anyhow::Result<Hello> {
        self.send(&Message::Hello(Hello {
            keepalive_interval: keepalive,
            is_server: false,
            ferrinet_extensions: 0,
        }))
        .await?;
        let hello = match self.recv().await? {
            Recv::Frame(Message::Hello(h)) if h.is_server => h,
            other => bail!("expected the server's hello, got {other:?}"),
        };
        self.send(&Message::Keepalive).await?;
        match self.recv().await? {
            Recv::Frame(Message::Keepalive) => Ok(hello),
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

    /// A KEEPALIVE and its answer, skipping UPDATEs in between: proves the server still serves
    /// this session.
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

    /// A KEEPALIVE whose answer is the very next frame: everything queued for this session
    /// before the KEEPALIVE arrived has been received, and nothing else was queued.
    pub async fn sync(&mut self) -> anyhow::Result<()> {
        self.send(&Message::Keepalive).await?;
        match self.recv().await? {
            Recv::Frame(Message::Keepalive) => Ok(()),
            Recv::Frame(m) => bail!("unexpected frame {m:?}"),
            Recv::Closed => bail!("closed instead of answering a keepalive"),
        }
    }

    /// Reads until `n` more UPDATEs have arrived, counting frames by their headers without
    /// decoding them; the frames after the `n`-th stay for the next read. Not bounded in time:
    /// the caller bounds the whole count.
    pub async fn count_updates(&mut self, n: u64) -> anyhow::Result<()> {
        let mut c = FrameCounter::new(n);
        let taken = c.feed(&self.buf)?;
        self.buf.advance(taken);
        while !c.done() {
            self.buf.reserve(256 * 1024);
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!(
                    "server closed the session after {} of {n} updates",
                    c.updates
                );
            }
            let taken = c.feed(&self.buf)?;
            self.buf.advance(taken);
        }
        Ok(())
    }
}

/// Counts UPDATE frames in a byte stream by their headers alone, up to a target.
#[derive(Debug)]
struct FrameCounter {
    header: [u8; HEADER_LEN],
    have: usize,
    skip: usize,
    updates: u64,
    target: u64,
}

impl FrameCounter {
    fn new(target: u64) -> Self {
        Self {
            header: [0; HEADER_LEN],
            have: 0,
            skip: 0,
            updates: 0,
            target,
        }
    }

    /// The target is counted and its last frame fully consumed.
    fn done(&self) -> bool {
        self.updates >= self.target && self.skip == 0 && self.have == 0
    }

    /// Takes bytes until done; returns how many it took.
    fn feed(&mut self, b: &[u8]) -> anyhow::Result<usize> {
        let mut at = 0;
        while at < b.len() && !self.done() {
            if self.skip > 0 {
                let n = self.skip.min(b.len() - at);
                self.skip -= n;
                at += n;
                continue;
            }
            let n = (HEADER_LEN - self.have).min(b.len() - at);
            self.header[self.have..self.have + n].copy_from_slice(&b[at..at + n]);
            self.have += n;
            at += n;
            if self.have == HEADER_LEN {
                let h = self.header;
                if h[0] != frame::VERSION {
                    bail!("bad frame from the server: header {h:?}");
                }
                self.skip = usize::from(u16::from_be_bytes([h[1], h[2]]));
                if h[3] == MessageType::Update as u8 {
                    self.updates += 1;
                }
                self.have = 0;
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::loadgen::{encode_updates, routes};

    #[test]
    fn counts_updates_in_any_chunking_and_stops_after_the_target() {
        let mut wire = frame::encode_to_vec(&Message::Keepalive).unwrap();
        let rs = routes(7, 50, "fd00::".parse().unwrap());
        wire.extend_from_slice(&encode_updates(Action::Add, &rs).unwrap());
        for chunk in [1, 3, 4, 7, 64, 4096] {
            let mut c = FrameCounter::new(40);
            let mut taken = 0;
            for piece in wire.chunks(chunk) {
                taken += c.feed(piece).unwrap();
            }
            assert_eq!(c.updates, 40, "chunk {chunk}");
            assert!(c.done());
            // What is left is exactly the last 10 frames.
            let rest = encode_updates(Action::Add, &rs[40..]).unwrap();
            assert_eq!(&wire[taken..], &rest[..], "chunk {chunk}");
        }
        assert!(FrameCounter::new(1).feed(&[2, 0, 0, 2]).is_err());
    }
}
