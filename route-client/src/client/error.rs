//! Errors of the route client, by origin, with their sources chained (no flattened strings).

use std::io;
use std::time::Duration;

use ferrinet_proto::frame::EncodeError;

use crate::conn::ConnError;
use crate::session::CloseReason;

/// A client that cannot start or a request it cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A configuration value is out of range.
    #[error("{field}: {problem}")]
    Invalid {
        /// Which field of [`super::ClientConfig`].
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A VNI above 24 bits.
    #[error("vni: {0} exceeds 24 bits")]
    VniOutOfRange(u32),
    /// The client has shut down.
    #[error("the route client has shut down")]
    Closed,
}

/// Where a session error came from, for logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorOrigin {
    /// The network or the local socket.
    Io,
    /// The TLS handshake.
    Tls,
    /// The server sent something invalid (bad frame, protocol violation) or went silent.
    Peer,
    /// This process (a frame it cannot encode, a task that failed).
    Local,
}

impl ErrorOrigin {
    /// Lowercase label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Tls => "tls",
            Self::Peer => "peer",
            Self::Local => "local",
        }
    }
}

/// Why a session with one server ended, or why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The server.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// TCP connect and TLS handshake together took longer than the connect timeout.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The server.
        addr: String,
        /// The limit.
        after: Duration,
    },
    /// The TLS handshake failed (certificate not trusted, name mismatch, refused by the server).
    #[error("TLS handshake with {addr} failed")]
    Tls {
        /// The server.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed, or the server sent bytes that are not frames.
    #[error("connection failed")]
    Conn(#[source] ConnError),
    /// The server closed the connection between frames.
    #[error("server closed the connection")]
    ServerClosed,
    /// The session state machine ended the session: the server broke the protocol or stayed
    /// silent for the hold time.
    #[error("session ended")]
    Session(#[source] CloseReason),
    /// A frame could not be encoded (a local bug: ours always fit).
    #[error("cannot encode a frame")]
    Encode(#[source] EncodeError),
    /// The connection's writer task ended on its own.
    #[error("writer task ended")]
    WriterEnded,
}

impl SessionError {
    /// Where it came from.
    pub fn origin(&self) -> ErrorOrigin {
        match self {
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::ServerClosed => {
                ErrorOrigin::Io
            }
            Self::Tls { .. } => ErrorOrigin::Tls,
            Self::Conn(ConnError::Io(_)) => ErrorOrigin::Io,
            Self::Conn(ConnError::Frame(_) | ConnError::Truncated(_)) | Self::Session(_) => {
                ErrorOrigin::Peer
            }
            Self::Conn(ConnError::Encode(_)) | Self::Encode(_) | Self::WriterEnded => {
                ErrorOrigin::Local
            }
        }
    }
}

/// `outer: inner: innermost`, for one log field that tells the whole story.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
