//! Framed I/O of the route protocol over any byte stream (TLS or plain TCP), shared by the
//! server and the client.
//!
//! - [`FrameReader`] reads into one growing buffer and decodes every complete frame a read
//!   brought, so a burst of updates costs one syscall and one call per read, never a reset.
//! - [`write_loop`] drains a queue of [`Outbound`] items into one buffer and writes it with one
//!   `write_all` + `flush`, so many small frames cost few syscalls (and few TLS records).
//!
//! Split a stream with [`tokio::io::split`] and run the reader and the writer in separate tasks:
//! a slow peer then only ever blocks its own writer.
//!
//! ```no_run
//! # async fn demo(stream: tokio::net::TcpStream) -> Result<(), ferrinet_route_client::conn::ConnError> {
//! use ferrinet_route_client::conn::{FrameReader, Outbound, write_loop};
//! let (rd, wr) = tokio::io::split(stream);
//! let (tx, rx) = tokio::sync::mpsc::channel::<Outbound>(1024);
//! let writer = tokio::spawn(write_loop(wr, rx, |_bytes| {}));
//! tx.send(Outbound::message(&ferrinet_proto::frame::Message::Keepalive)?).await.ok();
//! let mut reader = FrameReader::new(rd);
//! let mut msgs = Vec::new();
//! while reader.read_batch(&mut msgs).await? > 0 {
//!     for m in msgs.drain(..) { /* session.handle(Event::Received(m)) */ }
//! }
//! drop(tx); // the writer flushes what is queued and shuts the stream down
//! # let _ = writer.await;
//! # Ok(()) }
//! ```

use std::io;

use bytes::{Bytes, BytesMut};
use ferrinet_proto::frame::{self, Decoder, EncodeError, FrameError, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::route::{Action, Route};

/// Bytes asked of the socket per read; also the size at which the writer stops coalescing queued
/// items and writes. 64 KiB holds about a thousand updates.
pub const CHUNK: usize = 64 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading or writing the socket failed.
    #[error("connection i/o failed")]
    Io(#[from] io::Error),
    /// The peer sent bytes that are not a valid frame (framing is lost).
    #[error("bad frame from peer")]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error("peer closed the connection inside a frame ({0} bytes pending)")]
    Truncated(usize),
    /// A message could not be encoded (a local bug: our messages always fit).
    #[error("cannot encode message")]
    Encode(#[from] EncodeError),
}

/// Reads frames from a byte stream, decoding everything each read brought.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    decoder: Decoder,
    /// A decode error found after some good frames of the same read; reported on the next call
    /// so the good frames before it are still handled in order.
    pending_error: Option<FrameError>,
    bytes_read: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `io`.
    pub fn new(io: R) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(CHUNK),
            decoder: Decoder::new(),
            pending_error: None,
            bytes_read: 0,
        }
    }

    /// Reads until at least one whole frame is there, then appends every complete frame to
    /// `out` and returns how many it appended.
    ///
    /// `Ok(0)` means the peer closed the stream cleanly between frames. An error ends the
    /// connection; frames decoded before a bad frame are returned first, the error on the next
    /// call. Cancel-safe at the `read` await: no decoded frame is ever lost.
    pub async fn read_batch(&mut self, out: &mut Vec<Message>) -> Result<usize, ConnError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e.into());
        }
        loop {
            let n = self.decode_into(out)?;
            if n > 0 {
                return Ok(n);
            }
            if self.buf.capacity() - self.buf.len() < CHUNK / 4 {
                self.buf.reserve(CHUNK);
            }
            let n = self.io.read_buf(&mut self.buf).await?;
            if n == 0 {
                return match self.buf.len() {
                    0 => Ok(0),
                    pending => Err(ConnError::Truncated(pending)),
                };
            }
            self.bytes_read += n as u64;
        }
    }

    fn decode_into(&mut self, out: &mut Vec<Message>) -> Result<usize, ConnError> {
        let mut n = 0;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(m)) => {
                    out.push(m);
                    n += 1;
                }
                Ok(None) => return Ok(n),
                Err(e) if n == 0 => return Err(e.into()),
                Err(e) => {
                    self.pending_error = Some(e);
                    return Ok(n);
                }
            }
        }
    }

    /// Bytes read from the stream so far (for counters).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.io
    }
}

/// One item of a connection's send queue. The queue bound counts items, so a whole table dump
/// is one item however many routes it holds.
#[derive(Debug)]
pub enum Outbound {
    /// One or more encoded frames.
    Frames(Bytes),
    /// Routes to send as UPDATEs with this action, encoded by the writer in [`CHUNK`]-sized
    /// pieces (a SUBSCRIBE's snapshot, a client's re-announcement).
    Routes(Action, Vec<Route>),
}

impl Outbound {
    /// One message, encoded.
    pub fn message(msg: &Message) -> Result<Self, EncodeError> {
        let mut b = BytesMut::new();
        frame::encode(msg, &mut b)?;
        Ok(Self::Frames(b.freeze()))
    }
}

/// Appends the UPDATE frame of `route` to `dst`.
pub fn encode_route(action: Action, route: &Route, dst: &mut BytesMut) -> Result<(), EncodeError> {
    frame::encode(&Message::Update(route.to_update(action)), dst)
}

/// Writes everything queued on `rx` to `io` until the queue closes, then flushes and shuts the
/// stream down. Each round takes every item already queued (up to about [`CHUNK`] bytes) into
/// one buffer and writes it at once. `on_write` is called with the byte count of each write
/// (for counters).
///
/// Abort the task (or drop the future) to stop at once without flushing.
pub async fn write_loop<W, F>(
    mut io: W,
    mut rx: mpsc::Receiver<Outbound>,
    mut on_write: F,
) -> Result<(), ConnError>
where
    W: AsyncWrite + Unpin,
    F: FnMut(usize),
{
    let mut buf = BytesMut::with_capacity(CHUNK);
    while let Some(first) = rx.recv().await {
        let mut item = Some(first);
        while let Some(it) = item.take() {
            match it {
                // A lone big buffer goes out as is, without a copy.
                Outbound::Frames(b) if buf.is_empty() && b.len() >= CHUNK => {
                    io.write_all(&b).await?;
                    on_write(b.len());
                }
                Outbound::Frames(b) => buf.extend_from_slice(&b),
                Outbound::Routes(action, routes) => {
                    for r in &routes {
                        encode_route(action, r, &mut buf)?;
                        if buf.len() >= CHUNK {
                            io.write_all(&buf).await?;
                            on_write(buf.len());
                            buf.clear();
                        }
                    }
                }
            }
            if buf.len() < CHUNK {
                item = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            io.write_all(&buf).await?;
            on_write(buf.len());
            buf.clear();
        }
        // TLS streams buffer records until flushed; plain TCP flush is free.
        io.flush().await?;
    }
    io.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ferrinet_proto::route::Subscription;

    #[tokio::test]
    async fn reads_frames_split_across_writes_and_batches_writes() {
        let (a, b) = tokio::io::duplex(256);
        let (tx, rx) = mpsc::channel(8);
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = written.clone();
        let writer = tokio::spawn(write_loop(a, rx, move |n| {
            w.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }));
        let routes: Vec<Route> = (0..3000u32)
            .map(|i| {
                format!("7#10.{}.{}.0/24#2001:db8::1", i / 256, i % 256)
                    .parse()
                    .unwrap()
            })
            .collect();
        tx.send(Outbound::message(&Message::Keepalive).unwrap())
            .await
            .unwrap();
        tx.send(Outbound::Routes(Action::Add, routes.clone()))
            .await
            .unwrap();
        tx.send(Outbound::message(&Message::Subscribe(Subscription { vni: 9 })).unwrap())
            .await
            .unwrap();
        drop(tx);
        let mut r = FrameReader::new(b);
        let mut got = Vec::new();
        while r.read_batch(&mut got).await.unwrap() > 0 {}
        writer.await.unwrap().unwrap();
        assert_eq!(got.len(), 3002);
        assert_eq!(got[0], Message::Keepalive);
        assert_eq!(got[3001], Message::Subscribe(Subscription { vni: 9 }));
        for (m, r) in got[1..3001].iter().zip(&routes) {
            assert_eq!(m, &Message::Update(r.to_update(Action::Add)));
        }
        assert!(written.load(std::sync::atomic::Ordering::Relaxed) > 3000 * 20);
    }

    #[tokio::test]
    async fn good_frames_before_garbage_come_first() {
        let mut wire = frame::encode_to_vec(&Message::Keepalive).unwrap();
        wire.extend_from_slice(&[1, 0xff, 0xff, 5]);
        let mut r = FrameReader::new(&wire[..]);
        let mut got = Vec::new();
        assert_eq!(r.read_batch(&mut got).await.unwrap(), 1);
        assert!(matches!(
            r.read_batch(&mut got).await,
            Err(ConnError::Frame(FrameError::TooLong(65535)))
        ));
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let wire = [1u8, 0, 2, 3, 8];
        let mut r = FrameReader::new(&wire[..]);
        assert!(matches!(
            r.read_batch(&mut Vec::new()).await,
            Err(ConnError::Truncated(5))
        ));
    }
}
