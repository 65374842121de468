//! The region's internal DNS: every NetworkInterface with a hostname is served as
//! `<hostname>.<network>.<namespace>.<zone>.` by an embedded, authoritative-only server
//! (hickory-server) on UDP and TCP.
//!
//! What is served:
//! - an A record per IPv4 and an AAAA per IPv6 address of the interface, and a PTR record at
//!   each address's reverse name (`in-addr.arpa.`, `ip6.arpa.`) pointing back at the name;
//!   interfaces sharing a name share it (all their addresses are served), and an address held
//!   by several names (networks may reuse addresses) has a PTR to each;
//! - the zone's SOA at its apex and, in the authority section of negative answers, so that
//!   resolvers cache absences no longer than the records' TTL (default 30 s).
//!
//! What is answered without records: a name in the zone with nothing there is NXDOMAIN; a name
//! that exists without the asked type (including `<network>.<namespace>.<zone>`, which exist
//! because names below them do) is NOERROR with an empty answer.
//!
//! What is refused (REFUSED): every name outside the zone, including reverse names of
//! addresses that no interface holds, classes other than IN, and zone transfers. The server is
//! nobody's resolver and does not forward: a resolver (or a forward zone in one) points the zone
//! and the region's reverse names at it. Answering for more would make it an open reflector;
//! answering for other reverse names would claim authority it does not have. Dynamic updates
//! and other opcodes are NOTIMP: records come from the region API only.
//!
//! The pieces: [`records`] computes the [`RecordSet`] of a set of [`DnsEntry`]s (pure,
//! deterministic, invalid entries reported as [`DnsProblem`]s rather than failing the set), the
//! pure `answer` module answers one question from a set, and [`serve`] runs the sockets while a
//! [`DnsHandle`] replaces the set atomically.

mod answer;
mod records;
mod server;
mod zone;

pub use records::{DnsEntry, DnsProblem, EntryError, RecordSet, dns_name, records};
pub use server::{DnsHandle, DnsListeners, DnsServeError, serve};
pub use zone::{DEFAULT_TTL, DnsConfigError, FieldProblem, MAX_TTL, Zone};

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod records_tests;
#[cfg(test)]
mod server_tests;
