//! Failures of `ferrinetctl` and their exit status.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | bad command line or bad input file |
//! | 2 | the node refused the request |
//! | 3 | the node cannot be reached |
//! | 4 | not found, or already exists |

use std::error::Error as StdError;

/// Exit statuses.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Bad command line or bad input file.
    pub const USAGE: u8 = 1;
    /// The node refused the request.
    pub const REFUSED: u8 = 2;
    /// The node cannot be reached.
    pub const UNREACHABLE: u8 = 3;
    /// Not found, or already exists.
    pub const NOT_FOUND: u8 = 4;
}

/// The exit status table, as shown by `ferrinetctl --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  bad command line, or bad input file: the message names the file, the document (counted
     from 1) and the field, e.g. `ferrinetctl: a.yaml: document 2: spec.ips[0]: ...`; nothing
     is sent to the node when any document of any file is bad
  2  the node refused the request (INVALID_ARGUMENT, FAILED_PRECONDITION, ...):
     `ferrinetctl: KIND/NAME: MESSAGE`, MESSAGE being the node's
  3  the node cannot be reached (no socket, connection refused or lost, no answer within
     --timeout, UNAVAILABLE): `ferrinetctl: cannot reach the node at ADDR: CAUSE`; retrying
     later may help
  4  the object does not exist (NOT_FOUND), or `create` found it already there (ALREADY_EXISTS):
     `ferrinetctl: KIND/NAME: MESSAGE`
Commands with several objects stop at the first failure; the lines printed before it say
what was done. With --api the same statuses describe the region API instead of the node.";

/// Why a command failed; [`CtlError::exit_code`] is the process's exit status.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad command line or bad input file (exit 1); the message says where.
    #[error("{0}")]
    Input(String),
    /// The node refused the request (exit 2).
    #[error("{object}: {message}")]
    Refused {
        /// `kind/name` (or the command).
        object: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The node's message.
        message: String,
    },
    /// The node cannot be reached (exit 3).
    #[error("cannot reach the node at {node}: {cause}")]
    Unreachable {
        /// The address as given.
        node: String,
        /// What failed, with its causes.
        cause: String,
    },
    /// The region API (`--api`) cannot be reached (exit 3).
    #[error("cannot reach the region API at {api}: {cause}")]
    ApiUnreachable {
        /// The address as given.
        api: String,
        /// What failed, with its causes.
        cause: String,
    },
    /// The object does not exist (exit 4).
    #[error("{object}: {message}")]
    NotFound {
        /// `kind/name`.
        object: String,
        /// The node's message.
        message: String,
    },
    /// The object exists already (exit 4).
    #[error("{object}: {message}")]
    AlreadyExists {
        /// `kind/name`.
        object: String,
        /// The node's message.
        message: String,
    },
    /// Writing the output failed (exit 1; a closed pipe is not reported: see
    /// [`CtlError::is_broken_pipe`]).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CtlError {
    /// The exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Input(_) | CtlError::Output(_) => exit::USAGE,
            CtlError::Refused { .. } => exit::REFUSED,
            CtlError::Unreachable { .. } | CtlError::ApiUnreachable { .. } => exit::UNREACHABLE,
            CtlError::NotFound { .. } | CtlError::AlreadyExists { .. } => exit::NOT_FOUND,
        }
    }

    /// True if stdout was closed (`ferrinetctl watch ni | head -3`): the command ends quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Classifies a failed call about `object` (`kind/name`, or the command's name) to the node
    /// at `node`.
    ///
    /// A status made by the client itself (it carries a source error: connection refused or
    /// lost, timeout) means the node is unreachable whatever its code, and so does UNAVAILABLE
    /// from the node ("the node is shutting down"); any other status sent by the node is
    /// NOT_FOUND / ALREADY_EXISTS (exit 4) or a refusal (exit 2).
    pub fn from_status(status: &tonic::Status, object: &str, node: &str) -> CtlError {
        let local = status.source().is_some()
            || (status.code() == tonic::Code::Unknown
                && status.message().starts_with("Service was not ready"));
        if local || status.code() == tonic::Code::Unavailable {
            return CtlError::Unreachable {
                node: node.to_owned(),
                cause: status_cause(status),
            };
        }
        let message = if status.message().is_empty() {
            format!("{:?}: {}", status.code(), status.code().description())
        } else {
            status.message().to_owned()
        };
        let object = object.to_owned();
        match status.code() {
            tonic::Code::NotFound => CtlError::NotFound { object, message },
            tonic::Code::AlreadyExists => CtlError::AlreadyExists { object, message },
            code => CtlError::Refused {
                object,
                code,
                message,
            },
        }
    }

    /// The node at `node` cannot be reached because of `err`.
    pub fn unreachable(node: &str, err: &(dyn StdError + 'static)) -> CtlError {
        CtlError::Unreachable {
            node: node.to_owned(),
            cause: error_chain(err),
        }
    }
}

/// `err` and its sources, joined by `: `, leaving out a source whose text the chain already
/// contains (tonic and hyper often repeat their cause in their own message).
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !s.is_empty() && !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        next = e.source();
    }
    text
}

fn status_cause(status: &tonic::Status) -> String {
    let mut text = if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    };
    if status.code() == tonic::Code::Cancelled && text == "Timeout expired" {
        text = "no answer within the timeout (--timeout)".to_owned();
    }
    if let Some(source) = status.source() {
        let chain = error_chain(source);
        if !text.contains(&chain) && !chain.contains("Timeout expired") {
            text.push_str(": ");
            text.push_str(&chain);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_statuses_map_to_exit_codes() {
        let node = "unix:/run/ferrinet/node.sock";
        let cases = [
            (tonic::Code::InvalidArgument, exit::REFUSED),
            (tonic::Code::FailedPrecondition, exit::REFUSED),
            (tonic::Code::OutOfRange, exit::REFUSED),
            (tonic::Code::Internal, exit::REFUSED),
            (tonic::Code::NotFound, exit::NOT_FOUND),
            (tonic::Code::AlreadyExists, exit::NOT_FOUND),
        ];
        for (code, want) in cases {
            let e =
                CtlError::from_status(&tonic::Status::new(code, "spec.id: bad"), "network/a", node);
            assert_eq!(e.exit_code(), want, "{code:?}");
            assert_eq!(e.to_string(), "network/a: spec.id: bad");
        }
    }

    #[test]
    fn local_statuses_are_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = tonic::Status::from_error(Box::new(io));
        let e = CtlError::from_status(&status, "network/a", "10.0.0.1:5000");
        assert_eq!(e.exit_code(), exit::UNREACHABLE, "{e}");
        assert!(
            e.to_string()
                .starts_with("cannot reach the node at 10.0.0.1:5000: "),
            "{e}"
        );
        assert!(e.to_string().contains("connection refused"), "{e}");

        let not_ready = tonic::Status::unknown("Service was not ready: transport error");
        let e = CtlError::from_status(&not_ready, "status", "x:1");
        assert_eq!(e.exit_code(), exit::UNREACHABLE);

        let stopping = tonic::Status::unavailable("the node is shutting down");
        let e = CtlError::from_status(&stopping, "network/a", "x:1");
        assert_eq!(
            e.to_string(),
            "cannot reach the node at x:1: the node is shutting down"
        );
    }

    #[test]
    fn empty_messages_name_the_code() {
        let e = CtlError::from_status(&tonic::Status::new(tonic::Code::Internal, ""), "lb", "n");
        assert_eq!(e.to_string(), "lb: Internal: Internal error");
    }

    #[test]
    fn error_chain_skips_repeated_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "connect failed: {}", self.0)
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("no such file"));
        assert_eq!(error_chain(&e), "connect failed: no such file");
    }

    #[test]
    fn help_documents_every_exit_status() {
        for code in [
            exit::OK,
            exit::USAGE,
            exit::REFUSED,
            exit::UNREACHABLE,
            exit::NOT_FOUND,
        ] {
            assert!(
                EXIT_STATUS_HELP.contains(&format!("\n  {code}  ")),
                "{code}"
            );
        }
    }
}
