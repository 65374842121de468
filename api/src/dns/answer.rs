//! The answer to one question from one [`RecordSet`]: pure, so every response code is tested
//! without a socket.

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::SOA;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::records::RecordSet;
use super::zone::Zone;

/// Seconds a secondary would wait between SOA checks. Nothing transfers this zone (AXFR is
/// refused); these only have to be sane for tools that print the SOA.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;

/// What to send back: a response code and the records of the answer and authority sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer<'a> {
    pub code: ResponseCode,
    /// The AA bit: set for every name this server holds, clear when it refuses.
    pub authoritative: bool,
    pub answers: Vec<&'a Record>,
    /// The zone's SOA in the authority section of a negative answer inside the zone, so that
    /// resolvers cache the absence for its minimum TTL (RFC 2308).
    pub soa: Option<&'a Record>,
}

impl Answer<'_> {
    pub fn refused() -> Self {
        Self::error(ResponseCode::Refused)
    }

    pub fn error(code: ResponseCode) -> Self {
        Self {
            code,
            authoritative: false,
            answers: Vec::new(),
            soa: None,
        }
    }
}

/// The SOA of `zone` at `serial`. Its negative-caching TTL is the records' TTL, so a name that
/// appears is not hidden by a cached NXDOMAIN for longer than a changed address would be.
pub(crate) fn soa_record(zone: &Zone, serial: u32) -> Record {
    let hostmaster = Name::from_labels([&b"hostmaster"[..]])
        .and_then(|n| n.append_domain(zone.name()))
        // A zone leaves room for one more label only if it is short enough; the RNAME is
        // informational, so the zone itself stands in when it is not.
        .unwrap_or_else(|_| zone.name().clone());
    let soa = SOA::new(
        zone.name().clone(),
        hostmaster,
        serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        zone.ttl_secs(),
    );
    Record::from_rdata(zone.name().clone(), zone.ttl_secs(), RData::SOA(soa))
}

/// The answer to `name`/`qtype`/`qclass` from `set`, whose SOA is `soa`.
///
/// - a name of the zone or a reverse name of a held address: its records of that type
///   (NOERROR, AA), or none (NOERROR, AA, the SOA when in the zone);
/// - any other name in the zone: NXDOMAIN (AA, the SOA);
/// - anything else, a class other than IN, and zone transfers: REFUSED, since this server is
///   nobody's resolver and answering would only make it a reflector.
pub(crate) fn answer<'a>(
    set: &'a RecordSet,
    soa: &'a Record,
    name: &Name,
    qtype: RecordType,
    qclass: DNSClass,
) -> Answer<'a> {
    if qclass != DNSClass::IN || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Answer::refused();
    }
    let apex = set.zone().name();
    let in_zone = apex.zone_of(name);
    let Some(records) = set.node(name) else {
        if !in_zone {
            return Answer::refused();
        }
        return Answer {
            code: ResponseCode::NXDomain,
            authoritative: true,
            answers: Vec::new(),
            soa: Some(soa),
        };
    };
    let mut answers = Vec::new();
    if name == apex && matches!(qtype, RecordType::SOA | RecordType::ANY) {
        answers.push(soa);
    }
    answers.extend(
        records
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype),
    );
    let soa = (answers.is_empty() && in_zone).then_some(soa);
    Answer {
        code: ResponseCode::NoError,
        authoritative: true,
        answers,
        soa,
    }
}
