//! One server connection: connect (TCP, then TLS if configured), run the session state machine
//! over [`crate::conn`], report to the client actor, reconnect with back-off. Forever, until told
//! to stop.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::aggregate::ServerId;
use super::backoff::Backoff;
use super::{ServerConfig, TlsClient};
use crate::conn::{ConnError, FrameReader, Outbound, write_loop};
use crate::route::{Action, Route};
use crate::session::{Event, Inbound, Output, Role, Session};

/// Items queued towards the writer of one session. Bounded so that a server that stops reading
/// pushes back on this task rather than on memory.
const OUT_QUEUE: usize = 256;

/// What the actor tells a connection task.
#[derive(Debug)]
pub(super) enum PeerCmd {
    /// Send these encoded frames, if a session is established (otherwise the next
    /// establishment re-sends the whole desired state, so dropping them loses nothing).
    Frames(Bytes),
    /// Send these routes as UPDATEs, if a session is established.
    Routes(Action, Vec<Route>),
    /// Close the session and end the task.
    Stop,
}

/// What a connection task tells the actor. Each task's reports arrive in the order it sent them.
#[derive(Debug)]
pub(super) enum PeerEvent {
    /// A connection attempt starts.
    Connecting(ServerId),
    /// The session is ESTABLISHED: send it the desired state.
    Established(ServerId),
    /// Valid UPDATEs received in one read.
    Updates(ServerId, Vec<(Action, Route)>),
    /// The session or the connection attempt ended; the task waits `retry_in` before the next.
    Down {
        server: ServerId,
        was_established: bool,
        reason: String,
        retry_in: Duration,
    },
}

/// Settings shared by every connection task.
#[derive(Debug, Clone)]
pub(super) struct PeerSettings {
    pub keepalive: Duration,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Why one session ended, and whether it had been established.
struct Ended {
    reason: String,
    established: bool,
    stop: bool,
}

/// Runs the connection to server `id` until [`PeerCmd::Stop`] or the actor goes away.
pub(super) async fn run(
    id: ServerId,
    server: ServerConfig,
    settings: PeerSettings,
    mut cmds: mpsc::UnboundedReceiver<PeerCmd>,
    events: mpsc::Sender<PeerEvent>,
) {
    let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
    loop {
        if events.send(PeerEvent::Connecting(id)).await.is_err() {
            return;
        }
        let ended = match connect(&server, settings.connect_timeout).await {
            Ok(Stream::Plain(s)) => session(id, s, &settings, &mut cmds, &events).await,
            Ok(Stream::Tls(s)) => session(id, *s, &settings, &mut cmds, &events).await,
            Err(reason) => Ended {
                reason,
                established: false,
                stop: false,
            },
        };
        if ended.stop {
            return;
        }
        if ended.established {
            backoff.reset();
        }
        let retry_in = backoff.next_delay();
        tracing::info!(addr = %server.addr, reason = %ended.reason, ?retry_in, "session down");
        let down = PeerEvent::Down {
            server: id,
            was_established: ended.established,
            reason: ended.reason,
            retry_in,
        };
        if events.send(down).await.is_err() {
            return;
        }
        // Wait out the back-off, dropping route commands: the next session re-sends everything.
        let wake = Instant::now() + retry_in;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                cmd = cmds.recv() => match cmd {
                    None | Some(PeerCmd::Stop) => return,
                    Some(_) => {}
                },
            }
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn connect(server: &ServerConfig, timeout: Duration) -> Result<Stream, String> {
    let attempt = async {
        let tcp = TcpStream::connect(&server.addr)
            .await
            .map_err(|e| format!("connect to {}: {e}", server.addr))?;
        // Frames are small and batched by the writer already; do not let Nagle delay them.
        tcp.set_nodelay(true)
            .map_err(|e| format!("set TCP_NODELAY: {e}"))?;
        match &server.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(TlsClient {
                config,
                server_name,
            }) => tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(server_name.clone(), tcp)
                .await
                .map(|s| Stream::Tls(Box::new(s)))
                .map_err(|e| format!("tls handshake with {}: {e}", server.addr)),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "connect to {} timed out after {timeout:?}",
                server.addr
            ))
        })
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => pending().await,
    }
}

fn conn_reason(e: &ConnError) -> String {
    // The error chain carries the detail (which i/o error, which bad frame).
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}

/// Runs one session over an established transport.
async fn session<S>(
    id: ServerId,
    stream: S,
    settings: &PeerSettings,
    cmds: &mut mpsc::UnboundedReceiver<PeerCmd>,
    events: &mpsc::Sender<PeerEvent>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (out_tx, out_rx) = mpsc::channel::<Outbound>(OUT_QUEUE);
    let mut writer = tokio::spawn(write_loop(wr, out_rx, |_| {}));
    let mut reader = FrameReader::new(rd);
    let mut sess = Session::new(Role::Client, settings.keepalive);
    let mut ticker: Option<Interval> = None;
    let mut hold = Instant::now() + sess.hold_time();
    let mut msgs = Vec::new();
    let mut pending_events = Vec::new();
    let mut established = false;

    let ended = |reason: String, stop: bool, established: bool| Ended {
        reason,
        established,
        stop,
    };

    let mut outputs: Vec<Output> = sess.handle(Event::Start).into_iter().collect();
    let result: Ended = 'run: loop {
        // Carry out what the state machine asked for.
        for o in outputs.drain(..) {
            match o {
                Output::Send(m) => {
                    let item = match Outbound::message(&m) {
                        Ok(i) => i,
                        Err(e) => {
                            break 'run ended(
                                format!("encode {}: {e}", m.message_type().name()),
                                false,
                                established,
                            );
                        }
                    };
                    if out_tx.send(item).await.is_err() {
                        break 'run ended("writer ended".into(), false, established);
                    }
                }
                Output::Established => {
                    established = true;
                    if events.send(PeerEvent::Established(id)).await.is_err() {
                        break 'run ended("client stopped".into(), true, established);
                    }
                }
                Output::Deliver(Inbound::Update(u)) => match Route::from_update(&u) {
                    Ok(ar) => pending_events.push(ar),
                    // One bad route is the sender's problem; keep the session and its other routes.
                    Err(e) => tracing::warn!(error = %e, "ignoring invalid update from server"),
                },
                Output::Deliver(other) => {
                    tracing::warn!(?other, "ignoring unexpected message from server");
                }
                Output::Close(reason) => break 'run ended(reason.to_string(), false, established),
            }
        }
        if !pending_events.is_empty() {
            let batch = std::mem::take(&mut pending_events);
            if events.send(PeerEvent::Updates(id, batch)).await.is_err() {
                break 'run ended("client stopped".into(), true, established);
            }
        }
        if ticker.is_none() && sess.sends_keepalives() {
            // The session sent its first KEEPALIVE with the HELLO answer; tick from then on.
            let period = sess.keepalive();
            let mut t = tokio::time::interval_at(Instant::now() + period, period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticker = Some(t);
        }

        tokio::select! {
            r = reader.read_batch(&mut msgs) => match r {
                Ok(0) => break 'run ended("server closed the connection".into(), false, established),
                Ok(_) => {
                    hold = Instant::now() + sess.hold_time();
                    for m in msgs.drain(..) {
                        outputs.extend(sess.handle(Event::Received(m)));
                    }
                }
                Err(e) => break 'run ended(conn_reason(&e), false, established),
            },
            () = tick(&mut ticker) => outputs.extend(sess.handle(Event::KeepaliveTick)),
            () = tokio::time::sleep_until(hold) => outputs.extend(sess.handle(Event::HoldExpired)),
            cmd = cmds.recv() => match cmd {
                None | Some(PeerCmd::Stop) => break 'run ended("client stopped".into(), true, established),
                Some(_) if !established => {}
                Some(PeerCmd::Frames(b)) => {
                    if out_tx.send(Outbound::Frames(b)).await.is_err() {
                        break 'run ended("writer ended".into(), false, established);
                    }
                }
                Some(PeerCmd::Routes(action, routes)) => {
                    if out_tx.send(Outbound::Routes(action, routes)).await.is_err() {
                        break 'run ended("writer ended".into(), false, established);
                    }
                }
            },
            w = &mut writer => {
                let reason = match w {
                    Ok(Ok(())) => "writer ended".to_string(),
                    Ok(Err(e)) => conn_reason(&e),
                    Err(e) => format!("writer task failed: {e}"),
                };
                break 'run ended(reason, false, established);
            }
        }
    };

    drop(out_tx);
    if result.stop {
        // A clean close: let the writer flush and shut the stream down, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    }
    writer.abort();
    result
}
