//! The names and labels of placed objects: a node object's name made from the region object's
//! key, and the label that leads back from a node object to the region object it came from.

use std::collections::HashMap;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;

use crate::resources::{ObjKey, kind_from_word, kind_word};

/// The label every placed object carries, with the value [`MANAGED_BY_REGION`]: the node
/// deletes region-managed objects a new snapshot lacks, and leaves its own alone.
pub const MANAGED_BY_LABEL: &str = "ferrinet.dev/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_REGION: &str = "region";
/// The label naming the region object a placed object came from:
/// `<kind word>.<namespace>.<name>` (see [`source_label`]).
pub const SOURCE_LABEL: &str = "ferrinet.dev/source";

/// The longest dpservice id.
const MAX_NAME_LEN: usize = 63;
/// `-` and 16 hex digits.
const HASH_TAIL_LEN: usize = 17;

/// The node object name of the region object `namespace/name`.
///
/// dpservice ids are 1 to 63 of `[A-Za-z0-9_-]`. Namespaces and names are DNS labels, which
/// have no `_`, so `<namespace>_<name>` is unambiguous. When that is longer than 63, or could be
/// mistaken for a shortened name, it is shortened: a prefix of it, `-` and 16 hex digits of the
/// FNV-1a 64 hash of `namespace/name`. Deterministic everywhere (no process-seeded hasher).
pub fn placed_name(namespace: &str, name: &str) -> String {
    placed_name_with_suffix(namespace, name, "")
}

/// [`placed_name`] with `suffix` (of `[A-Za-z0-9_-]`, containing a `_`) kept at the end, for a
/// second node object of one region object (a dual-stack load balancer's IPv6 side). The
/// suffix's `_` keeps these apart from every unsuffixed name.
pub(crate) fn placed_name_with_suffix(namespace: &str, name: &str, suffix: &str) -> String {
    let full = format!("{namespace}_{name}");
    if full.len() + suffix.len() <= MAX_NAME_LEN && !looks_shortened(&full, suffix) {
        return format!("{full}{suffix}");
    }
    let hash = fnv1a64(format!("{namespace}/{name}").as_bytes());
    let room = MAX_NAME_LEN.saturating_sub(HASH_TAIL_LEN + suffix.len());
    let head: String = full
        .chars()
        .take(room)
        .map(|c| if is_id_char(c) { c } else { '-' })
        .collect();
    format!("{head}-{hash:016x}{suffix}")
}

/// Whether a name that fits could equal a shortened one: exactly as long, and ending like the
/// hash tail. Such a name is shortened too, so the two forms never meet.
fn looks_shortened(full: &str, suffix: &str) -> bool {
    let bytes = full.as_bytes();
    full.len() + suffix.len() == MAX_NAME_LEN
        && bytes.len() >= HASH_TAIL_LEN
        && bytes[bytes.len() - HASH_TAIL_LEN] == b'-'
        && bytes[bytes.len() - HASH_TAIL_LEN + 1..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// FNV-1a, 64 bits: a fixed function, so names survive toolchain upgrades.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The value of [`SOURCE_LABEL`] for the region object `key` of `kind`:
/// `<kind word>.<namespace>.<name>`. DNS labels have no `.`, so it splits back unambiguously.
pub fn source_label(kind: pb::Kind, key: &ObjKey) -> String {
    format!("{}.{}.{}", kind_word(kind), key.namespace, key.name)
}

/// The region object a [`SOURCE_LABEL`] value names; `None` when it is not of that form.
pub fn parse_source(label: &str) -> Option<(pb::Kind, ObjKey)> {
    let mut parts = label.splitn(3, '.');
    let kind = kind_from_word(parts.next()?)?;
    let namespace = parts.next()?;
    let name = parts.next()?;
    if name.is_empty() || name.contains('.') {
        return None;
    }
    Some((kind, ObjKey::new(namespace, name)))
}

/// The metadata of a placed object: its name and the two labels.
pub(crate) fn placed_metadata(name: String, kind: pb::Kind, key: &ObjKey) -> node_pb::Metadata {
    let labels = HashMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_REGION.to_string()),
        (SOURCE_LABEL.to_string(), source_label(kind, key)),
    ]);
    node_pb::Metadata {
        name,
        labels,
        ..Default::default()
    }
}
