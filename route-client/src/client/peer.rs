//! One server connection: connect (TCP, then TLS if configured), run the session state machine
//! over [`crate::conn`], report to the client actor, reconnect with back-off. Forever, until told
//! to stop.
//!
//! The task also knows when the server has finished the snapshot of a subscribed VNI: with the
//! END_OF_SNAPSHOT extension negotiated, at the server's marker; with a v1 server, once no
//! UPDATE of that VNI arrived for the quiet period after the SUBSCRIBE went out (a v1 server
//! sends the whole snapshot at once, right after the SUBSCRIBE, so silence means it is done).

use std::collections::HashMap;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrinet_proto::frame::{self, Message};
use ferrinet_proto::route::Subscription;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::backoff::Backoff;
use super::error::{SessionError, chain};
use super::servers::ServerId;
use super::{ServerConfig, TlsClient};
use crate::conn::{FrameReader, Outbound, write_loop};
use crate::route::{Action, Route};
use crate::session::{Event, Extensions, Inbound, Output, Role, Session};

/// Items queued towards the writer of one session. Bounded so that a server that stops reading
/// pushes back on this task rather than on memory.
const OUT_QUEUE: usize = 256;

/// What the actor tells a connection task. Route commands are dropped while no session is
/// established: the next establishment re-sends the whole desired state.
#[derive(Debug)]
pub(super) enum PeerCmd {
    /// Send SUBSCRIBEs for these VNIs.
    Subscribe(Vec<u32>),
    /// Send an UNSUBSCRIBE.
    Unsubscribe(u32),
    /// Send these routes as UPDATEs.
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
    Established(ServerId, Extensions),
    /// Valid UPDATEs received in one read.
    Updates(ServerId, Vec<(Action, Route)>),
    /// The server has sent the snapshot of this VNI (after the UPDATEs reported before).
    SnapshotDone(ServerId, u32),
    /// The session or the connection attempt ended; the task waits `retry_in` before the next.
    Down {
        server: ServerId,
        was_established: bool,
        error: SessionError,
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
    pub snapshot_quiet: Duration,
}

/// How one session ended.
enum Ended {
    /// Told to stop (or the actor is gone).
    Stop,
    /// Failed; reconnect.
    Down {
        error: SessionError,
        established: bool,
    },
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
            Err(error) => Ended::Down {
                error,
                established: false,
            },
        };
        let Ended::Down { error, established } = ended else {
            return;
        };
        if established {
            backoff.reset();
        }
        let retry_in = backoff.next_delay();
        tracing::info!(addr = %server.addr, error = %chain(&error), ?retry_in, "session down");
        let down = PeerEvent::Down {
            server: id,
            was_established: established,
            error,
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

async fn connect(server: &ServerConfig, timeout: Duration) -> Result<Stream, SessionError> {
    let addr = || server.addr.clone();
    let attempt = async {
        let tcp =
            TcpStream::connect(&server.addr)
                .await
                .map_err(|source| SessionError::Connect {
                    addr: addr(),
                    source,
                })?;
        // Frames are small and batched by the writer already; do not let Nagle delay them.
        tcp.set_nodelay(true)
            .map_err(|source| SessionError::Connect {
                addr: addr(),
                source,
            })?;
        match &server.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(TlsClient {
                config,
                server_name,
            }) => tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(server_name.clone(), tcp)
                .await
                .map(|s| Stream::Tls(Box::new(s)))
                .map_err(|source| SessionError::Tls {
                    addr: addr(),
                    source,
                }),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(SessionError::ConnectTimeout {
                addr: addr(),
                after: timeout,
            })
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

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => pending().await,
    }
}

/// The snapshots of one session that the server has not finished yet.
#[derive(Debug)]
struct Snapshots {
    /// END_OF_SNAPSHOT negotiated: wait for markers, not for silence.
    markers: bool,
    quiet: Duration,
    pending: HashMap<u32, PendingSnapshot>,
}

#[derive(Debug)]
struct PendingSnapshot {
    /// Markers still to come: one per SUBSCRIBE sent, so the marker of an earlier SUBSCRIBE of
    /// the same VNI (before an UNSUBSCRIBE) is not taken for the latest one's.
    markers: u32,
    /// Without markers: done when nothing of the VNI arrived until then.
    quiet_until: Instant,
}

impl Snapshots {
    fn new(extensions: Extensions, quiet: Duration) -> Self {
        Self {
            markers: extensions.contains(Extensions::END_OF_SNAPSHOT),
            quiet,
            pending: HashMap::new(),
        }
    }

    fn subscribed(&mut self, vni: u32, now: Instant) {
        let p = self.pending.entry(vni).or_insert(PendingSnapshot {
            markers: 0,
            quiet_until: now,
        });
        p.markers += 1;
        p.quiet_until = now + self.quiet;
    }

    fn unsubscribed(&mut self, vni: u32) {
        // With markers, the marker of that SUBSCRIBE still comes and is counted off.
        if !self.markers {
            self.pending.remove(&vni);
        }
    }

    fn update_seen(&mut self, vni: u32, now: Instant) {
        if !self.markers
            && let Some(p) = self.pending.get_mut(&vni)
        {
            p.quiet_until = now + self.quiet;
        }
    }

    /// A marker arrived; true if it completes the VNI's latest snapshot.
    fn marker(&mut self, vni: u32) -> bool {
        let Some(p) = self.pending.get_mut(&vni) else {
            return false;
        };
        p.markers = p.markers.saturating_sub(1);
        if p.markers > 0 {
            return false;
        }
        self.pending.remove(&vni);
        true
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.markers {
            return None;
        }
        self.pending.values().map(|p| p.quiet_until).min()
    }

    /// VNIs whose quiet period has passed, removed from the pending set.
    fn expired(&mut self, now: Instant) -> Vec<u32> {
        let done: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.quiet_until <= now)
            .map(|(&vni, _)| vni)
            .collect();
        for vni in &done {
            self.pending.remove(vni);
        }
        done
    }
}

fn subscribe_frames(vnis: &[u32]) -> Result<Outbound, SessionError> {
    let mut b = BytesMut::with_capacity(vnis.len() * 8);
    for &vni in vnis {
        frame::encode(&Message::Subscribe(Subscription { vni }), &mut b)
            .map_err(SessionError::Encode)?;
    }
    Ok(Outbound::Frames(b.freeze()))
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
    let mut sess = Session::new(Role::Client, settings.keepalive).with_extensions(Extensions::ALL);
    let mut ticker: Option<Interval> = None;
    let mut hold = Instant::now() + sess.hold_time();
    let mut msgs = Vec::new();
    let mut updates = Vec::new();
    let mut snapshots = Snapshots::new(Extensions::NONE, settings.snapshot_quiet);
    let mut established = false;

    let down = |error: SessionError, established: bool| Ended::Down { error, established };

    let mut outputs: Vec<Output> = sess.handle(Event::Start).into_iter().collect();
    let result: Ended = 'run: loop {
        // Carry out what the state machine asked for, in order: the UPDATEs before a marker are
        // reported before the completion, those after it after.
        for o in outputs.drain(..) {
            match o {
                Output::Send(m) => {
                    let item = match Outbound::message(&m) {
                        Ok(i) => i,
                        Err(e) => break 'run down(SessionError::Encode(e), established),
                    };
                    if out_tx.send(item).await.is_err() {
                        break 'run down(SessionError::WriterEnded, established);
                    }
                }
                Output::Established => {
                    established = true;
                    snapshots = Snapshots::new(sess.extensions(), settings.snapshot_quiet);
                    tracing::info!(
                        keepalive = ?sess.keepalive(),
                        end_of_snapshot = snapshots.markers,
                        "session established"
                    );
                    if events
                        .send(PeerEvent::Established(id, sess.extensions()))
                        .await
                        .is_err()
                    {
                        break 'run Ended::Stop;
                    }
                }
                Output::Deliver(Inbound::Update(u)) => match Route::from_update(&u) {
                    Ok(ar) => {
                        snapshots.update_seen(ar.1.vni, Instant::now());
                        updates.push(ar);
                    }
                    // One bad route is the sender's problem; keep the session and its other routes.
                    Err(e) => tracing::warn!(error = %e, "ignoring invalid update from server"),
                },
                Output::Deliver(Inbound::EndOfSnapshot(vni)) => {
                    if snapshots.marker(vni) {
                        if !updates.is_empty()
                            && events
                                .send(PeerEvent::Updates(id, std::mem::take(&mut updates)))
                                .await
                                .is_err()
                        {
                            break 'run Ended::Stop;
                        }
                        if events.send(PeerEvent::SnapshotDone(id, vni)).await.is_err() {
                            break 'run Ended::Stop;
                        }
                    }
                }
                Output::Deliver(other) => {
                    tracing::warn!(?other, "ignoring unexpected message from server");
                }
                Output::Close(reason) => {
                    break 'run down(SessionError::Session(reason), established);
                }
            }
        }
        if !updates.is_empty()
            && events
                .send(PeerEvent::Updates(id, std::mem::take(&mut updates)))
                .await
                .is_err()
        {
            break 'run Ended::Stop;
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
                Ok(0) => break 'run down(SessionError::ServerClosed, established),
                Ok(_) => {
                    hold = Instant::now() + sess.hold_time();
                    for m in msgs.drain(..) {
                        outputs.extend(sess.handle(Event::Received(m)));
                    }
                }
                Err(e) => break 'run down(SessionError::Conn(e), established),
            },
            () = tick(&mut ticker) => outputs.extend(sess.handle(Event::KeepaliveTick)),
            () = tokio::time::sleep_until(hold) => outputs.extend(sess.handle(Event::HoldExpired)),
            () = sleep_until_some(snapshots.next_deadline()) => {
                for vni in snapshots.expired(Instant::now()) {
                    if events.send(PeerEvent::SnapshotDone(id, vni)).await.is_err() {
                        break 'run Ended::Stop;
                    }
                }
            }
            cmd = cmds.recv() => {
                let item = match cmd {
                    None | Some(PeerCmd::Stop) => break 'run Ended::Stop,
                    Some(_) if !established => continue,
                    Some(PeerCmd::Subscribe(vnis)) => {
                        let now = Instant::now();
                        for &vni in &vnis {
                            snapshots.subscribed(vni, now);
                        }
                        match subscribe_frames(&vnis) {
                            Ok(i) => i,
                            Err(e) => break 'run down(e, established),
                        }
                    }
                    Some(PeerCmd::Unsubscribe(vni)) => {
                        snapshots.unsubscribed(vni);
                        match Outbound::message(&Message::Unsubscribe(Subscription { vni })) {
                            Ok(i) => i,
                            Err(e) => break 'run down(SessionError::Encode(e), established),
                        }
                    }
                    Some(PeerCmd::Routes(action, routes)) => Outbound::Routes(action, routes),
                };
                if out_tx.send(item).await.is_err() {
                    break 'run down(SessionError::WriterEnded, established);
                }
            }
            w = &mut writer => {
                let error = match w {
                    Ok(Err(e)) => SessionError::Conn(e),
                    Ok(Ok(())) | Err(_) => SessionError::WriterEnded,
                };
                break 'run down(error, established);
            }
        }
    };

    drop(out_tx);
    if matches!(result, Ended::Stop) {
        // A clean close: let the writer flush and shut the stream down, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    }
    writer.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_snapshots_count_every_subscribe() {
        let now = Instant::now();
        let mut s = Snapshots::new(Extensions::END_OF_SNAPSHOT, Duration::from_secs(1));
        s.subscribed(5, now);
        s.unsubscribed(5);
        s.subscribed(5, now);
        assert!(!s.marker(5), "the first SUBSCRIBE's marker");
        assert!(s.marker(5), "the latest SUBSCRIBE's marker");
        assert!(!s.marker(5), "no snapshot pending");
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn quiet_snapshots_complete_after_silence() {
        let now = Instant::now();
        let q = Duration::from_millis(100);
        let mut s = Snapshots::new(Extensions::NONE, q);
        s.subscribed(1, now);
        s.subscribed(2, now);
        s.update_seen(2, now + q);
        assert_eq!(s.next_deadline(), Some(now + q));
        assert_eq!(s.expired(now + q), vec![1]);
        assert_eq!(s.expired(now + q), Vec::<u32>::new());
        assert_eq!(s.expired(now + 2 * q), vec![2]);
        s.subscribed(3, now);
        s.unsubscribed(3);
        assert_eq!(s.next_deadline(), None);
    }
}
