//! The route protocol session state machine, both roles, free of I/O.
//!
//! The I/O layer feeds [`Event`]s (a decoded frame, a keepalive tick, the hold timer firing)
//! into [`Session::handle`] and carries out the returned [`Output`]s: frames to send, messages
//! for the application, and the close reason. Every transition goes through the one `match` in
//! `handle` and is logged there.
//!
//! ```text
//!  client:  Start --send HELLO(offer)--> HelloSent --HELLO(server)/send KEEPALIVE--> HelloReceived
//!           HelloReceived --KEEPALIVE--> Established   (ticks send KEEPALIVE from HelloReceived on)
//!  server:  WaitHello --HELLO/answer HELLO(min interval, isServer, agreed)--> HelloReceived
//!           HelloReceived --KEEPALIVE/answer KEEPALIVE--> Established
//!           Established --KEEPALIVE/answer KEEPALIVE--> Established
//!  both:    any protocol error or hold timer expiry --> Closed
//! ```
//!
//! Extensions ([`Extensions`]) are negotiated in the HELLO exchange: the client offers a bit set,
//! the server answers with the offered bits it also supports. A v1 peer offers nothing and
//! answers nothing, so it always gets plain v1 behaviour, byte for byte.

use std::time::Duration;

use ferrinet_proto::frame::{Message, MessageType};
use ferrinet_proto::route::{EndOfSnapshot, Hello, Subscription, Update};
use smallvec::SmallVec;

/// Which end of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects, sends HELLO, drives keepalives.
    Client,
    /// Accepts, answers HELLO and every KEEPALIVE.
    Server,
}

/// Session states (metalbond's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Client: connected, HELLO not sent yet.
    Connecting,
    /// Client: HELLO sent, waiting for the server's HELLO.
    HelloSent,
    /// Server: waiting for the client's HELLO.
    WaitHello,
    /// HELLOs exchanged, waiting for the first KEEPALIVE.
    HelloReceived,
    /// Routes may flow.
    Established,
    /// Ended; the I/O layer closes the connection.
    Closed,
}

/// The ferrinet protocol extensions a session speaks, as the `ferrinetExtensions` bit set of
/// HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Extensions(u32);

impl Extensions {
    /// None: plain metalbond v1.
    pub const NONE: Self = Self(0);
    /// The server sends END_OF_SNAPSHOT after the routes that answer each SUBSCRIBE.
    pub const END_OF_SNAPSHOT: Self = Self(1);
    /// Every extension this implementation speaks.
    pub const ALL: Self = Self::END_OF_SNAPSHOT;

    /// From the wire bit set; unknown bits are kept (and never agreed to).
    pub fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The wire bit set.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in both.
    pub fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

/// Something that happened to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The transport is up (the client sends HELLO now).
    Start,
    /// A frame arrived.
    Received(Message),
    /// The keepalive interval elapsed (client: send a KEEPALIVE).
    KeepaliveTick,
    /// Nothing arrived for the hold time.
    HoldExpired,
}

/// A route message for the application (only in ESTABLISHED).
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// The peer subscribes to a VNI.
    Subscribe(u32),
    /// The peer unsubscribes from a VNI.
    Unsubscribe(u32),
    /// A route ADD or REMOVE, not yet validated.
    Update(Update),
    /// The server finished the snapshot of a VNI (negotiated extension; clients only).
    EndOfSnapshot(u32),
}

/// How a peer broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// HELLO with a keepalive interval below one second.
    #[error("hello with keepalive interval 0")]
    ZeroKeepalive,
    /// A client's HELLO claimed to come from a server.
    #[error("hello from a peer claiming to be a server")]
    HelloFromServer,
    /// The server's HELLO answer lacked the server flag.
    #[error("hello answer without the server flag")]
    HelloWithoutServerFlag,
    /// A message that the peer's role never sends (a server's SUBSCRIBE, a client's marker).
    #[error("{} from a {} peer", .kind.name(), if matches!(.from, Role::Server) { "server" } else { "client" })]
    WrongRole {
        /// The message.
        kind: MessageType,
        /// The role of the peer that sent it.
        from: Role,
    },
    /// A message in a state where it has no meaning (HELLO twice, UPDATE before ESTABLISHED).
    #[error("{} in state {state:?}", .kind.name())]
    UnexpectedMessage {
        /// The message.
        kind: MessageType,
        /// The state it arrived in.
        state: State,
    },
    /// END_OF_SNAPSHOT from a server that did not agree to send it.
    #[error("end-of-snapshot marker without the extension negotiated")]
    NotNegotiated,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The peer broke the protocol.
    #[error("protocol error")]
    Protocol(#[source] ProtocolError),
    /// No frame within the hold time.
    #[error("hold timer expired after {0:?}")]
    HoldExpired(Duration),
}

/// What the I/O layer must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write this frame.
    Send(Message),
    /// The session became ESTABLISHED.
    Established,
    /// Hand this to the application.
    Deliver(Inbound),
    /// End the session; the reason has been logged.
    Close(CloseReason),
}

/// Outputs of one event (rarely more than two).
pub type Outputs = SmallVec<[Output; 2]>;

/// One session's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    role: Role,
    state: State,
    keepalive: Duration,
    /// Client: offered in HELLO; server: supported. Narrowed to the agreed set by the HELLO
    /// exchange.
    extensions: Extensions,
}

/// Hold time is 2.5 keepalive intervals.
pub fn hold_time(keepalive: Duration) -> Duration {
    keepalive * 5 / 2
}

impl Session {
    /// A session that proposes (client) or allows at most (server) `keepalive`, speaking plain
    /// v1. A zero interval is raised to one second, the protocol minimum.
    pub fn new(role: Role, keepalive: Duration) -> Self {
        Self {
            role,
            state: match role {
                Role::Client => State::Connecting,
                Role::Server => State::WaitHello,
            },
            keepalive: keepalive.max(Duration::from_secs(1)),
            extensions: Extensions::NONE,
        }
    }

    /// The extensions a client offers or a server supports (before the HELLO exchange).
    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The role of this end.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Negotiated keepalive interval (the proposed one until HELLOs are exchanged).
    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// The extensions both ends agreed to (meaningful once HELLOs are exchanged).
    pub fn extensions(&self) -> Extensions {
        self.extensions
    }

    /// How long the peer may stay silent before the session is dead.
    pub fn hold_time(&self) -> Duration {
        hold_time(self.keepalive)
    }

    /// Whether the I/O layer should run the keepalive ticker (clients, once HELLOs are done).
    pub fn sends_keepalives(&self) -> bool {
        self.role == Role::Client && matches!(self.state, State::HelloReceived | State::Established)
    }

    fn hello_interval(&self) -> u32 {
        u32::try_from(self.keepalive.as_secs()).unwrap_or(u32::MAX)
    }

    fn agree(&mut self, h: &Hello) {
        self.keepalive = self
            .keepalive
            .min(Duration::from_secs(u64::from(h.keepalive_interval)));
        self.extensions = self
            .extensions
            .intersect(Extensions::from_bits(h.ferrinet_extensions));
    }

    /// Feeds one event and returns what to do. After [`Output::Close`] the session stays
    /// [`State::Closed`] and ignores further events.
    pub fn handle(&mut self, event: Event) -> Outputs {
        use Event as E;
        use Message as M;
        use Role::{Client, Server};
        use State as S;

        let before = self.state;
        let mut out = Outputs::new();
        let mut protocol = |e: ProtocolError| {
            out.push(Output::Close(CloseReason::Protocol(e)));
            S::Closed
        };
        let next = match (self.role, self.state, event) {
            (_, S::Closed, _) => S::Closed,

            (Client, S::Connecting, E::Start) => {
                out.push(Output::Send(M::Hello(Hello {
                    keepalive_interval: self.hello_interval(),
                    is_server: false,
                    ferrinet_extensions: self.extensions.bits(),
                })));
                S::HelloSent
            }
            (_, s, E::Start) => s,

            (_, _, E::HoldExpired) => {
                out.push(Output::Close(CloseReason::HoldExpired(self.hold_time())));
                S::Closed
            }

            (Client, S::HelloReceived | S::Established, E::KeepaliveTick) => {
                out.push(Output::Send(M::Keepalive));
                self.state
            }
            (_, s, E::KeepaliveTick) => s,

            (_, _, E::Received(M::Hello(h))) if h.keepalive_interval < 1 => {
                protocol(ProtocolError::ZeroKeepalive)
            }
            (Server, S::WaitHello, E::Received(M::Hello(h))) => {
                if h.is_server {
                    protocol(ProtocolError::HelloFromServer)
                } else {
                    self.agree(&h);
                    out.push(Output::Send(M::Hello(Hello {
                        keepalive_interval: self.hello_interval(),
                        is_server: true,
                        // Zero for a v1 client: the field is then omitted, as v1 expects.
                        ferrinet_extensions: self.extensions.bits(),
                    })));
                    S::HelloReceived
                }
            }
            (Client, S::HelloSent, E::Received(M::Hello(h))) => {
                if !h.is_server {
                    protocol(ProtocolError::HelloWithoutServerFlag)
                } else {
                    self.agree(&h);
                    out.push(Output::Send(M::Keepalive));
                    S::HelloReceived
                }
            }
            (_, state, E::Received(M::Hello(_))) => protocol(ProtocolError::UnexpectedMessage {
                kind: MessageType::Hello,
                state,
            }),

            (Server, S::HelloReceived | S::Established, E::Received(M::Keepalive)) => {
                // Answer every KEEPALIVE, the very first included, or reference clients stall.
                out.push(Output::Send(M::Keepalive));
                if self.state == S::HelloReceived {
                    out.push(Output::Established);
                }
                S::Established
            }
            (Client, S::HelloReceived, E::Received(M::Keepalive)) => {
                out.push(Output::Established);
                S::Established
            }
            (Client, S::Established, E::Received(M::Keepalive)) => S::Established,
            (_, state, E::Received(M::Keepalive)) => protocol(ProtocolError::UnexpectedMessage {
                kind: MessageType::Keepalive,
                state,
            }),

            (Server, S::Established, E::Received(M::Subscribe(Subscription { vni }))) => {
                out.push(Output::Deliver(Inbound::Subscribe(vni)));
                S::Established
            }
            (Server, S::Established, E::Received(M::Unsubscribe(Subscription { vni }))) => {
                out.push(Output::Deliver(Inbound::Unsubscribe(vni)));
                S::Established
            }
            (Client, _, E::Received(m @ (M::Subscribe(_) | M::Unsubscribe(_)))) => {
                protocol(ProtocolError::WrongRole {
                    kind: m.message_type(),
                    from: Server,
                })
            }
            (Server, _, E::Received(M::EndOfSnapshot(_))) => protocol(ProtocolError::WrongRole {
                kind: MessageType::EndOfSnapshot,
                from: Client,
            }),
            (Client, S::Established, E::Received(M::EndOfSnapshot(EndOfSnapshot { vni }))) => {
                if self.extensions.contains(Extensions::END_OF_SNAPSHOT) {
                    out.push(Output::Deliver(Inbound::EndOfSnapshot(vni)));
                    S::Established
                } else {
                    protocol(ProtocolError::NotNegotiated)
                }
            }
            (_, S::Established, E::Received(M::Update(u))) => {
                out.push(Output::Deliver(Inbound::Update(u)));
                S::Established
            }
            (_, state, E::Received(m)) => protocol(ProtocolError::UnexpectedMessage {
                kind: m.message_type(),
                state,
            }),
        };
        self.state = next;
        if before != next {
            match out.iter().find_map(|o| match o {
                Output::Close(r) => Some(r),
                _ => None,
            }) {
                Some(CloseReason::Protocol(e)) => {
                    tracing::info!(role = ?self.role, from = ?before, to = ?next, reason = %e, "session state: protocol error")
                }
                Some(reason) => {
                    tracing::info!(role = ?self.role, from = ?before, to = ?next, %reason, "session state")
                }
                None => {
                    tracing::debug!(role = ?self.role, from = ?before, to = ?next, keepalive = ?self.keepalive, extensions = self.extensions.bits(), "session state")
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(k: u32, server: bool) -> Event {
        Event::Received(Message::Hello(Hello {
            keepalive_interval: k,
            is_server: server,
            ferrinet_extensions: 0,
        }))
    }

    fn sends(out: &Outputs) -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn closes(out: &Outputs) -> bool {
        out.iter().any(|o| matches!(o, Output::Close(_)))
    }

    /// Drives a client and a server against each other, as the wire would.
    #[test]
    fn client_and_server_establish() {
        let mut c = Session::new(Role::Client, Duration::from_secs(5));
        let mut s = Session::new(Role::Server, Duration::from_secs(3));
        let mut to_server = sends(&c.handle(Event::Start));
        let mut established = (false, false);
        for _ in 0..4 {
            let mut to_client = Vec::new();
            for m in to_server.drain(..) {
                let out = s.handle(Event::Received(m));
                established.1 |= out.contains(&Output::Established);
                to_client.extend(sends(&out));
            }
            for m in to_client {
                let out = c.handle(Event::Received(m));
                established.0 |= out.contains(&Output::Established);
                to_server.extend(sends(&out));
            }
        }
        assert_eq!(established, (true, true));
        assert_eq!(
            (c.state(), s.state()),
            (State::Established, State::Established)
        );
        assert_eq!(c.keepalive(), Duration::from_secs(3));
        assert_eq!(s.keepalive(), Duration::from_secs(3));
        assert_eq!(s.hold_time(), Duration::from_millis(7500));
        assert!(c.sends_keepalives() && !s.sends_keepalives());
    }

    #[test]
    fn server_answers_with_lower_interval_and_first_keepalive() {
        let mut s = Session::new(Role::Server, Duration::from_secs(10));
        assert_eq!(
            sends(&s.handle(hello(3, false))),
            vec![Message::Hello(Hello {
                keepalive_interval: 3,
                is_server: true,
                ferrinet_extensions: 0,
            })]
        );
        let out = s.handle(Event::Received(Message::Keepalive));
        assert_eq!(sends(&out), vec![Message::Keepalive]);
        assert!(out.contains(&Output::Established));
        let out = s.handle(Event::Received(Message::Keepalive));
        assert_eq!(sends(&out), vec![Message::Keepalive]);
        assert!(!out.contains(&Output::Established));
    }

    #[test]
    fn protocol_errors_close() {
        let cases: Vec<(Role, Vec<Event>)> = vec![
            (Role::Server, vec![hello(0, false)]),
            (Role::Server, vec![hello(3, true)]),
            (Role::Server, vec![Event::Received(Message::Keepalive)]),
            (Role::Server, vec![hello(3, false), hello(3, false)]),
            (
                Role::Server,
                vec![
                    hello(3, false),
                    Event::Received(Message::Subscribe(Subscription { vni: 1 })),
                ],
            ),
            (Role::Client, vec![Event::Start, hello(3, false)]),
            (
                Role::Client,
                vec![Event::Start, Event::Received(Message::Keepalive)],
            ),
            (Role::Server, vec![Event::HoldExpired]),
        ];
        for (role, events) in cases {
            let mut s = Session::new(role, Duration::from_secs(5));
            let n = events.len();
            for (i, e) in events.into_iter().enumerate() {
                let out = s.handle(e.clone());
                assert_eq!(closes(&out), i + 1 == n, "{role:?} {e:?}");
            }
            assert_eq!(s.state(), State::Closed);
            assert!(s.handle(Event::KeepaliveTick).is_empty());
        }
    }

    #[test]
    fn established_server_delivers() {
        let mut s = Session::new(Role::Server, Duration::from_secs(5));
        s.handle(hello(5, false));
        s.handle(Event::Received(Message::Keepalive));
        let out = s.handle(Event::Received(Message::Subscribe(Subscription { vni: 7 })));
        assert_eq!(out.as_slice(), &[Output::Deliver(Inbound::Subscribe(7))]);
        let out = s.handle(Event::Received(Message::Update(Update::default())));
        assert_eq!(
            out.as_slice(),
            &[Output::Deliver(Inbound::Update(Update::default()))]
        );
    }

    fn run_pair(mut c: Session, mut s: Session) -> (Session, Session) {
        let mut to_server = sends(&c.handle(Event::Start));
        for _ in 0..4 {
            let mut to_client = Vec::new();
            for m in to_server.drain(..) {
                to_client.extend(sends(&s.handle(Event::Received(m))));
            }
            for m in to_client {
                to_server.extend(sends(&c.handle(Event::Received(m))));
            }
        }
        assert_eq!(
            (c.state(), s.state()),
            (State::Established, State::Established)
        );
        (c, s)
    }

    #[test]
    fn extensions_are_agreed_only_when_both_speak_them() {
        let k = Duration::from_secs(5);
        let client = || Session::new(Role::Client, k).with_extensions(Extensions::ALL);
        let server = || Session::new(Role::Server, k).with_extensions(Extensions::ALL);
        let (c, s) = run_pair(client(), server());
        assert_eq!(c.extensions(), Extensions::END_OF_SNAPSHOT);
        assert_eq!(s.extensions(), Extensions::END_OF_SNAPSHOT);
        // A v1 server: the client falls back to plain v1.
        let (c, _) = run_pair(client(), Session::new(Role::Server, k));
        assert_eq!(c.extensions(), Extensions::NONE);
        // A v1 client gets a HELLO answer without the field: the v1 bytes.
        let mut s = server();
        assert_eq!(
            sends(&s.handle(hello(5, false))),
            vec![Message::Hello(Hello {
                keepalive_interval: 5,
                is_server: true,
                ferrinet_extensions: 0,
            })]
        );
        assert_eq!(s.extensions(), Extensions::NONE);
        // Unknown bits offered by a newer client are not agreed to.
        let mut s = server();
        let out = s.handle(Event::Received(Message::Hello(Hello {
            keepalive_interval: 5,
            is_server: false,
            ferrinet_extensions: 0b110,
        })));
        assert_eq!(s.extensions(), Extensions::NONE);
        assert!(!closes(&out));
    }

    #[test]
    fn end_of_snapshot_needs_the_extension() {
        let k = Duration::from_secs(5);
        let eos = || Event::Received(Message::EndOfSnapshot(EndOfSnapshot { vni: 4 }));
        let (mut c, mut s) = run_pair(
            Session::new(Role::Client, k).with_extensions(Extensions::ALL),
            Session::new(Role::Server, k).with_extensions(Extensions::ALL),
        );
        assert_eq!(
            c.handle(eos()).as_slice(),
            &[Output::Deliver(Inbound::EndOfSnapshot(4))]
        );
        // A client never sends it.
        assert!(closes(&s.handle(eos())));
        // Not negotiated: a protocol error.
        let (mut c, _) = run_pair(
            Session::new(Role::Client, k),
            Session::new(Role::Server, k).with_extensions(Extensions::ALL),
        );
        assert_eq!(
            c.handle(eos()).as_slice(),
            &[Output::Close(CloseReason::Protocol(
                ProtocolError::NotNegotiated
            ))]
        );
    }
}
