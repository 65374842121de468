//! One peer session: handshake, reader loop, writer task, hold timer.
//!
//! The reader decodes every frame of a read, drives the [`Session`] state machine, validates and
//! authorizes UPDATEs, and hands the table task one [`ToTable::Batch`] per read. Frames the
//! session must send (HELLO answer, KEEPALIVE answers) go through the same bounded queue the
//! table task fills, drained by the writer task; a full queue ends the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrinet_proto::frame::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::authz::Permission;
use super::metrics::Metrics;
use super::table_task::{Listener, Op, SessionInfo, ToTable};
use crate::conn::{ConnError, FrameReader, Outbound, write_loop};
use crate::route::{Action, Route};
use crate::session::{CloseReason, Event, Extensions, Inbound, Output, Role, Session};
use crate::table::SessionId;
use ferrinet_route_client::client::error_chain;

/// What every session needs from the server.
#[derive(Clone)]
pub(crate) struct PeerCtx {
    pub table: mpsc::Sender<ToTable>,
    pub metrics: Metrics,
    pub keepalive: Duration,
    pub queue_len: usize,
    pub shutdown: CancellationToken,
    pub shutdown_grace: Duration,
}

/// Why a session ended (logged once, when it ends).
#[derive(Debug, thiserror::Error)]
enum EndReason {
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("{0}")]
    Session(CloseReason),
    #[error("connection failed")]
    Conn(#[source] ConnError),
    #[error("send queue full (peer too slow)")]
    Overflow,
    #[error("server shutting down")]
    Shutdown,
    #[error("writer ended")]
    WriterEnded,
}

/// Refused UPDATEs logged per session and reason at warn level; the rest at debug, counted.
const REFUSALS_LOGGED: u64 = 10;

/// Runs one session over an established stream until it ends; never fails (the reason is logged).
pub(crate) async fn run<S>(
    stream: S,
    id: SessionId,
    listener: Listener,
    peer: SocketAddr,
    identity: Option<String>,
    permission: Arc<Permission>,
    ctx: PeerCtx,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let span = tracing::info_span!(
        "session",
        id,
        peer = %peer,
        identity = identity.as_deref().unwrap_or("-"),
        listener = listener.label()
    );
    run_inner(stream, id, listener, peer, identity, permission, ctx)
        .instrument(span)
        .await;
}

async fn run_inner<S>(
    stream: S,
    id: SessionId,
    listener: Listener,
    peer: SocketAddr,
    identity: Option<String>,
    permission: Arc<Permission>,
    ctx: PeerCtx,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let info = Arc::new(SessionInfo::new(id, listener, peer, identity, permission));
    let (tx, rx) = mpsc::channel(ctx.queue_len);
    let kill = CancellationToken::new();
    let label = [("listener", listener.label())];
    if ctx
        .table
        .send(ToTable::Register {
            info: info.clone(),
            tx: tx.clone(),
            kill: kill.clone(),
        })
        .await
        .is_err()
    {
        return; // the server is stopping
    }
    ctx.metrics.sessions.get_or_create(&label).inc();
    ctx.metrics.sessions_total.get_or_create(&label).inc();
    tracing::info!(permission = %info.permission.describe(), "session opened");

    let (rd, wr) = tokio::io::split(stream);
    let winfo = info.clone();
    let wmetrics = ctx.metrics.clone();
    let mut writer = tokio::spawn(
        write_loop(wr, rx, move |n| {
            winfo.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            wmetrics.bytes_sent.inc_by(n as u64);
        })
        .in_current_span(),
    );

    let mut reader = Reader {
        frames: FrameReader::new(rd),
        session: Session::new(Role::Server, ctx.keepalive).with_extensions(Extensions::ALL),
        info: info.clone(),
        tx,
        ctx: ctx.clone(),
        msgs: Vec::with_capacity(256),
        ops: Vec::new(),
    };
    let mut hold = Instant::now() + reader.session.hold_time();
    let reason = loop {
        tokio::select! {
            biased;
            () = kill.cancelled() => break EndReason::Overflow,
            () = ctx.shutdown.cancelled() => break EndReason::Shutdown,
            res = &mut writer => {
                break match res {
                    Ok(Err(e)) => EndReason::Conn(e),
                    _ => EndReason::WriterEnded,
                };
            }
            () = sleep_until(hold) => {
                if let Err(r) = reader.event(Event::HoldExpired) {
                    break r;
                }
            }
            res = reader.read() => match res {
                Ok(true) => hold = Instant::now() + reader.session.hold_time(),
                Ok(false) => break EndReason::PeerClosed,
                Err(r) => break r,
            },
        }
        if !reader.ops.is_empty() {
            let ops = std::mem::take(&mut reader.ops);
            // Awaiting here is the backpressure on a fast announcer: it waits for the table,
            // which never waits for anyone.
            if ctx.table.send(ToTable::Batch(id, ops)).await.is_err() {
                break EndReason::Shutdown;
            }
        }
    };

    // Operations of the last read before an error are still applied, in order.
    if !reader.ops.is_empty() {
        let ops = std::mem::take(&mut reader.ops);
        let _ = ctx.table.send(ToTable::Batch(id, ops)).await;
    }
    let _ = ctx.table.send(ToTable::Closed(id)).await;
    drop(reader);
    match reason {
        // Let queued frames (a final KEEPALIVE, changes) reach a peer that is still reading.
        EndReason::Shutdown | EndReason::Session(_) if !writer.is_finished() => {
            if tokio::time::timeout(ctx.shutdown_grace, &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        }
        _ => writer.abort(),
    }
    if matches!(
        reason,
        EndReason::Session(CloseReason::Protocol(_))
            | EndReason::Conn(ConnError::Frame(_) | ConnError::Truncated(_))
    ) {
        ctx.metrics.protocol_errors.inc();
    }
    ctx.metrics.sessions.get_or_create(&label).dec();
    tracing::info!(
        reason = %error_chain(&reason),
        updates_received = info.updates_received.load(Ordering::Relaxed),
        updates_refused = info.updates_refused.load(Ordering::Relaxed),
        bytes_sent = info.bytes_sent.load(Ordering::Relaxed),
        bytes_received = info.bytes_received.load(Ordering::Relaxed),
        "session closed"
    );
}

struct Reader<R> {
    frames: FrameReader<R>,
    session: Session,
    info: Arc<SessionInfo>,
    tx: mpsc::Sender<Outbound>,
    ctx: PeerCtx,
    msgs: Vec<Message>,
    ops: Vec<Op>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// One read: `Ok(true)` frames were handled, `Ok(false)` clean end of stream.
    async fn read(&mut self) -> Result<bool, EndReason> {
        let before = self.frames.bytes_read();
        let res = self.frames.read_batch(&mut self.msgs).await;
        let n = self.frames.bytes_read() - before;
        self.info.bytes_received.fetch_add(n, Ordering::Relaxed);
        self.ctx.metrics.bytes_received.inc_by(n);
        match res {
            Ok(0) => Ok(false),
            Ok(_) => {
                let mut msgs = std::mem::take(&mut self.msgs);
                let mut result = Ok(true);
                for m in msgs.drain(..) {
                    if let Err(r) = self.event(Event::Received(m)) {
                        result = Err(r);
                        break;
                    }
                }
                self.msgs = msgs;
                self.msgs.clear();
                result
            }
            Err(e) => Err(EndReason::Conn(e)),
        }
    }

    /// Feeds one event to the state machine and carries out its outputs.
    fn event(&mut self, ev: Event) -> Result<(), EndReason> {
        for out in self.session.handle(ev) {
            match out {
                Output::Send(m) => {
                    let item = Outbound::message(&m).map_err(|e| EndReason::Conn(e.into()))?;
                    match self.tx.try_send(item) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            self.ctx.metrics.overflow_disconnects.inc();
                            return Err(EndReason::Overflow);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            return Err(EndReason::WriterEnded);
                        }
                    }
                }
                Output::Established => {
                    self.info.established.store(true, Ordering::Relaxed);
                    tracing::info!(keepalive = ?self.session.keepalive(), "session established");
                }
                Output::Deliver(Inbound::Subscribe(vni)) => self.ops.push(Op::Subscribe {
                    vni,
                    end_marker: self
                        .session
                        .extensions()
                        .contains(Extensions::END_OF_SNAPSHOT),
                }),
                Output::Deliver(Inbound::Unsubscribe(vni)) => {
                    self.ops.push(Op::Unsubscribe(vni));
                }
                Output::Deliver(Inbound::Update(u)) => {
                    self.info.updates_received.fetch_add(1, Ordering::Relaxed);
                    self.ctx.metrics.updates_received.inc();
                    match Route::from_update(&u) {
                        Ok((action, route)) => {
                            if self.info.permission.allows(route.next_hop.address) {
                                self.ops.push(match action {
                                    Action::Add => Op::Announce(route),
                                    Action::Remove => Op::Withdraw(route),
                                });
                            } else {
                                self.refuse("unauthorized", || {
                                    format!(
                                        "next hop {} is outside what this peer may announce ({}): {route}",
                                        route.next_hop.address,
                                        self.info.permission.describe()
                                    )
                                });
                            }
                        }
                        Err(e) => self.refuse("invalid", || e.to_string()),
                    }
                }
                // The state machine only delivers this to clients.
                Output::Deliver(Inbound::EndOfSnapshot(_)) => {}
                Output::Close(r) => return Err(EndReason::Session(r)),
            }
        }
        Ok(())
    }

    /// Counts and logs a refused UPDATE; the session goes on.
    fn refuse(&self, reason: &'static str, detail: impl FnOnce() -> String) {
        self.ctx
            .metrics
            .updates_refused
            .get_or_create(&[("reason", reason)])
            .inc();
        let n = self.info.updates_refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= REFUSALS_LOGGED {
            tracing::warn!(reason, detail = detail(), "update refused");
            if n == REFUSALS_LOGGED {
                tracing::warn!("further refused updates of this session are logged at debug level");
            }
        } else if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(reason, detail = detail(), "update refused");
        }
    }
}
