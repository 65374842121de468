//! The configured zone and the rules every label of a served name follows.
//!
//! Labels are the LDH labels of RFC 1123 (letters, digits, '-', 1 to 63 characters, no '-' at
//! either end), folded to lowercase: resolvers compare names case-insensitively, so `Web-1` and
//! `web-1` are one name and are served as one.

use std::fmt;
use std::time::Duration;

use hickory_server::proto::rr::Name;

/// The TTL of every served record unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// The longest TTL RFC 2181 §8 allows (a TTL is an unsigned 31-bit number).
pub const MAX_TTL: Duration = Duration::from_secs(0x7fff_ffff);

/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Longest name in presentation form without the trailing dot: 255 octets on the wire.
pub(crate) const MAX_NAME: usize = 253;

/// What is wrong with a label, a name or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// An empty label (also `a..b` inside a zone name).
    #[error("must not be empty")]
    Empty,
    /// A label over 63 characters.
    #[error("{len} characters, more than 63")]
    LabelTooLong {
        /// Its length.
        len: usize,
    },
    /// A character outside letters, digits and '-'.
    #[error("{ch:?} is not allowed: a DNS label has only letters, digits and '-'")]
    BadChar {
        /// The first such character.
        ch: char,
    },
    /// A label that starts or ends with '-'.
    #[error("must not start or end with '-'")]
    EdgeHyphen,
    /// The whole name would not fit into 255 octets on the wire.
    #[error("the name {name} is {len} characters, more than 253")]
    NameTooLong {
        /// The name, as far as it was built.
        name: String,
        /// Its length without the trailing dot.
        len: usize,
    },
    /// A zone inside `arpa.`: the reverse names are served from the records themselves.
    #[error("must not lie in arpa. (the reverse names are served from the interfaces' addresses)")]
    ReverseTree,
    /// The root or an empty zone.
    #[error("must name a zone below the root, e.g. region1.ferrinet.internal")]
    Root,
    /// An address no interface can be reached at.
    #[error(
        "{address} is not an interface address (unspecified, loopback, multicast or broadcast)"
    )]
    NotServable {
        /// The address.
        address: std::net::IpAddr,
    },
}

/// An invalid DNS configuration value, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsConfigError {
    /// `dns.zone`.
    #[error("dns.zone: {problem} (in {value:?})")]
    Zone {
        /// The value as configured.
        value: String,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// `dns.ttl`.
    #[error("dns.ttl: {secs} s is more than the largest TTL, 2147483647 s")]
    Ttl {
        /// The configured TTL in seconds.
        secs: u64,
    },
}

/// The zone the interfaces' names live in, validated, with the TTL of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: Name,
    text: String,
    ttl: u32,
}

impl Zone {
    /// The zone `name` (`region1.ferrinet.internal`, a trailing dot is optional), with the
    /// default TTL of 30 s. Errors name the key `dns.zone`.
    pub fn new(name: &str) -> Result<Self, DnsConfigError> {
        let err = |problem| DnsConfigError::Zone {
            value: name.to_owned(),
            problem,
        };
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if trimmed.is_empty() {
            return Err(err(FieldProblem::Root));
        }
        let labels = trimmed
            .split('.')
            .map(label)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        if trimmed.len() > MAX_NAME {
            return Err(err(FieldProblem::NameTooLong {
                name: trimmed.to_owned(),
                len: trimmed.len(),
            }));
        }
        if labels.last().is_some_and(|l| l == "arpa") {
            return Err(err(FieldProblem::ReverseTree));
        }
        let name = name_of_labels(&labels).map_err(err)?;
        Ok(Self {
            text: labels.join("."),
            name,
            ttl: secs(DEFAULT_TTL),
        })
    }

    /// The same zone with records served for `ttl` (whole seconds; 0 asks resolvers not to
    /// cache). Errors name the key `dns.ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self, DnsConfigError> {
        if ttl > MAX_TTL {
            return Err(DnsConfigError::Ttl {
                secs: ttl.as_secs(),
            });
        }
        self.ttl = secs(ttl);
        Ok(self)
    }

    /// The zone as an absolute DNS name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The TTL of its records.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl))
    }

    pub(crate) fn ttl_secs(&self) -> u32 {
        self.ttl
    }

    /// The zone in lowercase, without the trailing dot.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.text)
    }
}

fn secs(ttl: Duration) -> u32 {
    // Callers bound `ttl` by MAX_TTL, which fits.
    u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX >> 1)
}

/// `raw` checked as one LDH label and folded to lowercase.
pub(crate) fn label(raw: &str) -> Result<String, FieldProblem> {
    if raw.is_empty() {
        return Err(FieldProblem::Empty);
    }
    if let Some(ch) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(FieldProblem::BadChar { ch });
    }
    // All ASCII from here on, so bytes are characters.
    if raw.len() > MAX_LABEL {
        return Err(FieldProblem::LabelTooLong { len: raw.len() });
    }
    if raw.starts_with('-') || raw.ends_with('-') {
        return Err(FieldProblem::EdgeHyphen);
    }
    Ok(raw.to_ascii_lowercase())
}

/// The absolute name of already checked labels.
pub(crate) fn name_of_labels<S: AsRef<str>>(labels: &[S]) -> Result<Name, FieldProblem> {
    Name::from_labels(labels.iter().map(|l| l.as_ref().as_bytes())).map_err(|_| {
        // hickory refuses only over-long labels or names, which the callers checked already:
        // this is that check's fallback, not a separate rule.
        let text = labels
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(".");
        FieldProblem::NameTooLong {
            len: text.len(),
            name: text,
        }
    })
}
