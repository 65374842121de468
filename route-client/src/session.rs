//! The route protocol session state machine, both roles, free of I/O.
//!
//! The I/O layer feeds [`Event`]s (a decoded frame, a keepalive tick, the hold timer firing)
//! into [`Session::handle`] and carries out the returned [`Output`]s: frames to send, messages
//! for the application, and the close reason. Every transition goes through the one `match` in
//! `handle` and is logged there.
//!
//! ```text
//!  client:  Start --send HELLO--> HelloSent --HELLO(server)/send KEEPALIVE--> HelloReceived
//!           HelloReceived --KEEPALIVE--> Established   (ticks send KEEPALIVE from HelloReceived on)
//!  server:  WaitHello --HELLO/answer HELLO(min interval, isServer)--> HelloReceived
//!           HelloReceived --KEEPALIVE/answer KEEPALIVE--> Established
//!           Established --KEEPALIVE/answer KEEPALIVE--> Established
//!  both:    any protocol error or hold timer expiry --> Closed
//! ```

use std::time::Duration;

use ferrinet_proto::frame::Message;
use ferrinet_proto::route::{Hello, Subscription, Update};
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
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
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
}

/// Hold time is 2.5 keepalive intervals.
pub fn hold_time(keepalive: Duration) -> Duration {
    keepalive * 5 / 2
}

impl Session {
    /// A session that proposes (client) or allows at most (server) `keepalive`.
    /// A zero interval is raised to one second, the protocol minimum.
    pub fn new(role: Role, keepalive: Duration) -> Self {
        Self {
            role,
            state: match role {
                Role::Client => State::Connecting,
                Role::Server => State::WaitHello,
            },
            keepalive: keepalive.max(Duration::from_secs(1)),
        }
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

    /// Feeds one event and returns what to do. After [`Output::Close`] the session stays
    /// [`State::Closed`] and ignores further events.
    pub fn handle(&mut self, event: Event) -> Outputs {
        use Event as E;
        use Message as M;
        use Role::{Client, Server};
        use State as S;

        let before = self.state;
        let mut out = Outputs::new();
        let protocol = |why: String| Output::Close(CloseReason::Protocol(why));
        let next = match (self.role, self.state, event) {
            (_, S::Closed, _) => S::Closed,

            (Client, S::Connecting, E::Start) => {
                out.push(Output::Send(M::Hello(Hello {
                    keepalive_interval: self.hello_interval(),
                    is_server: false,
                })));
                S::HelloSent
            }
            (Server, S::WaitHello, E::Start) => S::WaitHello,
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
                out.push(protocol("hello with keepalive interval 0".into()));
                S::Closed
            }
            (Server, S::WaitHello, E::Received(M::Hello(h))) => {
                if h.is_server {
                    out.push(protocol("hello from a peer claiming to be a server".into()));
                    S::Closed
                } else {
                    self.keepalive = self
                        .keepalive
                        .min(Duration::from_secs(u64::from(h.keepalive_interval)));
                    out.push(Output::Send(M::Hello(Hello {
                        keepalive_interval: self.hello_interval(),
                        is_server: true,
                    })));
                    S::HelloReceived
                }
            }
            (Client, S::HelloSent, E::Received(M::Hello(h))) => {
                if !h.is_server {
                    out.push(protocol("hello answer without the server flag".into()));
                    S::Closed
                } else {
                    self.keepalive = self
                        .keepalive
                        .min(Duration::from_secs(u64::from(h.keepalive_interval)));
                    out.push(Output::Send(M::Keepalive));
                    S::HelloReceived
                }
            }
            (_, s, E::Received(M::Hello(_))) => {
                out.push(protocol(format!("hello in state {s:?}")));
                S::Closed
            }

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
            (_, s, E::Received(M::Keepalive)) => {
                out.push(protocol(format!("keepalive in state {s:?}")));
                S::Closed
            }

            (Server, S::Established, E::Received(M::Subscribe(Subscription { vni }))) => {
                out.push(Output::Deliver(Inbound::Subscribe(vni)));
                S::Established
            }
            (Server, S::Established, E::Received(M::Unsubscribe(Subscription { vni }))) => {
                out.push(Output::Deliver(Inbound::Unsubscribe(vni)));
                S::Established
            }
            (Client, s, E::Received(M::Subscribe(_) | M::Unsubscribe(_))) => {
                out.push(protocol(format!(
                    "subscription message from a server in state {s:?}"
                )));
                S::Closed
            }
            (_, S::Established, E::Received(M::Update(u))) => {
                out.push(Output::Deliver(Inbound::Update(u)));
                S::Established
            }
            (_, s, E::Received(m)) => {
                out.push(protocol(format!(
                    "{} before the session is established (state {s:?})",
                    m.message_type().name()
                )));
                S::Closed
            }
        };
        self.state = next;
        if before != next {
            match out.iter().find_map(|o| match o {
                Output::Close(r) => Some(r),
                _ => None,
            }) {
                Some(reason) => {
                    tracing::info!(role = ?self.role, from = ?before, to = ?next, %reason, "session state")
                }
                None => {
                    tracing::debug!(role = ?self.role, from = ?before, to = ?next, keepalive = ?self.keepalive, "session state")
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
                is_server: true
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
}
