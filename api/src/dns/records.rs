//! The records of a set of interfaces: pure and deterministic (the same entries in any order
//! give the same set), so the region API can recompute the whole set on every change and the
//! server can swap it in at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::rdata::{A, AAAA, PTR};
use hickory_server::proto::rr::{Name, RData, Record};

use super::zone::{FieldProblem, MAX_NAME, Zone, label, name_of_labels};

/// One interface's DNS entry, as the region API knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsEntry {
    /// The interface's namespace.
    pub namespace: String,
    /// Its network's name.
    pub network: String,
    /// Its hostname.
    pub hostname: String,
    /// Its addresses: an A record for each IPv4, an AAAA for each IPv6 one.
    pub addresses: Vec<IpAddr>,
}

/// A field of one entry that cannot be served: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EntryError {
    /// `hostname`, `network`, `namespace` or `addresses[i]`.
    pub field: String,
    /// What is wrong with it.
    pub problem: FieldProblem,
}

/// An entry, or one of its addresses, left out of a [`RecordSet`]:
/// `"entries[{index}].{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entries[{index}].{error}")]
pub struct DnsProblem {
    /// The entry's index in the slice given to [`records`].
    pub index: usize,
    /// What is wrong.
    pub error: EntryError,
}

/// The served name of `entry`, `<hostname>.<network>.<namespace>.<zone>.` in lowercase with
/// the trailing dot, or the field that makes it unservable.
pub fn dns_name(zone: &Zone, entry: &DnsEntry) -> Result<String, EntryError> {
    entry_name(zone, entry).map(|(text, _)| text)
}

fn entry_name(zone: &Zone, entry: &DnsEntry) -> Result<(String, Name), EntryError> {
    let field_label = |field: &str, raw: &str| {
        label(raw).map_err(|problem| EntryError {
            field: field.to_owned(),
            problem,
        })
    };
    let labels = [
        field_label("hostname", &entry.hostname)?,
        field_label("network", &entry.network)?,
        field_label("namespace", &entry.namespace)?,
    ];
    let text = format!("{}.{}", labels.join("."), zone.text());
    let too_long = |text: String| EntryError {
        // The hostname is the part a user picks freely, so that is the field to shorten.
        field: "hostname".to_owned(),
        problem: FieldProblem::NameTooLong {
            len: text.len(),
            name: text,
        },
    };
    if text.len() > MAX_NAME {
        return Err(too_long(text));
    }
    let name =
        name_of_labels(&text.split('.').collect::<Vec<_>>()).map_err(|problem| EntryError {
            field: "hostname".to_owned(),
            problem,
        })?;
    Ok((format!("{text}."), name))
}

/// What one owner name holds, in the order it is served.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(Name),
}

/// The records of a zone, ready to serve: A and AAAA records of the interfaces' names, PTR
/// records of their reverse names, and the names in between (`<network>.<namespace>.<zone>`),
/// which exist without records of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    zone: Zone,
    /// Owner name -> its records sorted by type then data; empty for names in between.
    nodes: BTreeMap<Name, Vec<Record>>,
    records: usize,
    problems: Vec<DnsProblem>,
}

impl RecordSet {
    /// A zone without records (only the zone's own name exists).
    pub fn empty(zone: Zone) -> Self {
        records(&zone, &[])
    }

    /// The zone served.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The entries and addresses left out, by entry index, in entry order.
    pub fn problems(&self) -> &[DnsProblem] {
        &self.problems
    }

    /// Every record, sorted by owner name (canonical DNS order), type and data.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.nodes.values().flatten()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The records of `name` (any case), `None` if the name does not exist here. A name in
    /// between (the zone itself, `<network>.<namespace>.<zone>`) exists with no records.
    pub fn node(&self, name: &Name) -> Option<&[Record]> {
        self.nodes.get(name).map(Vec::as_slice)
    }
}

/// Whether a host can be reached at `address`: anything else has no place in DNS.
fn servable(address: IpAddr) -> bool {
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address == IpAddr::V4(Ipv4Addr::BROADCAST))
}

/// The records of `entries` under `zone`. Entries with an invalid label or too long a name are
/// left out, and so are addresses nothing can be reached at; each is reported in
/// [`RecordSet::problems`]. Entries with the same name share it: all their addresses are
/// served, and an address held by several names has a PTR to each.
pub fn records(zone: &Zone, entries: &[DnsEntry]) -> RecordSet {
    let mut data: BTreeMap<Name, BTreeSet<Data>> = BTreeMap::new();
    let mut problems = Vec::new();
    data.insert(zone.name().clone(), BTreeSet::new());
    for (index, entry) in entries.iter().enumerate() {
        let name = match entry_name(zone, entry) {
            Ok((_, name)) => name,
            Err(error) => {
                problems.push(DnsProblem { index, error });
                continue;
            }
        };
        let mut served = Vec::with_capacity(entry.addresses.len());
        for (i, &address) in entry.addresses.iter().enumerate() {
            if servable(address) {
                served.push(address);
            } else {
                problems.push(DnsProblem {
                    index,
                    error: EntryError {
                        field: format!("addresses[{i}]"),
                        problem: FieldProblem::NotServable { address },
                    },
                });
            }
        }
        if served.is_empty() {
            // A name without records does not exist, and neither do the names above it.
            continue;
        }
        let mut parent = name.base_name();
        while parent.num_labels() > zone.name().num_labels() {
            data.entry(parent.clone()).or_default();
            parent = parent.base_name();
        }
        for address in served {
            let forward = match address {
                IpAddr::V4(a) => Data::A(a),
                IpAddr::V6(a) => Data::Aaaa(a),
            };
            data.entry(name.clone()).or_default().insert(forward);
            data.entry(Name::from(address))
                .or_default()
                .insert(Data::Ptr(name.clone()));
        }
    }
    let ttl = zone.ttl_secs();
    let mut count = 0;
    let nodes = data
        .into_iter()
        .map(|(owner, set)| {
            count += set.len();
            let records = set
                .into_iter()
                .map(|d| {
                    let rdata = match d {
                        Data::A(a) => RData::A(A(a)),
                        Data::Aaaa(a) => RData::AAAA(AAAA(a)),
                        Data::Ptr(n) => RData::PTR(PTR(n)),
                    };
                    Record::from_rdata(owner.clone(), ttl, rdata)
                })
                .collect();
            (owner, records)
        })
        .collect();
    RecordSet {
        zone: zone.clone(),
        nodes,
        records: count,
        problems,
    }
}
