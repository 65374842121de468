//! Keys, values, revisions and the operations on them, shared by both backends, and the checks
//! that keep both backends accepting exactly the same input.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use super::StoreError;

/// A store-wide logical clock. Every write that changes something gets the next revision; all
/// changes of one transaction share theirs. Revisions only grow, and tell nothing about time.
pub type Revision = u64;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value, in bytes: below etcd's default request limit (1.5 MiB), so a value that the
/// embedded store takes is one etcd takes too.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// Most operations in one transaction, a fence counting as one: etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// Most operations of a fenced transaction.
pub const MAX_FENCED_TXN_OPS: usize = MAX_TXN_OPS - 1;

/// A stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value: opaque bytes (callers store prost-encoded messages).
    pub value: Vec<u8>,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the key's last change: what [`Expect::ModRevision`] compares.
    pub mod_revision: Revision,
}

/// The result of [`Store::list`](super::Store::list): a consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The store's revision at the snapshot: watch from `revision + 1` to see every later change.
    pub revision: Revision,
    /// The keys under the prefix, in byte order of the key.
    pub items: Vec<KeyValue>,
}

/// What a write requires of its key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Nothing: the write is unconditional.
    #[default]
    Any,
    /// The key must not exist (create).
    Absent,
    /// The key's mod revision must be this one (update of what was read). `ModRevision(0)` is
    /// the same as [`Expect::Absent`], as in etcd.
    ModRevision(Revision),
}

impl Expect {
    /// Whether a key whose mod revision is `actual` (0: absent) satisfies this.
    pub fn matches(self, actual: Revision) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => actual == 0,
            Expect::ModRevision(r) => actual == r,
        }
    }

    /// The mod revision to compare against, `None` for no compare.
    pub(crate) fn revision(self) -> Option<Revision> {
        match self {
            Expect::Any => None,
            Expect::Absent => Some(0),
            Expect::ModRevision(r) => Some(r),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.revision() {
            None => f.write_str("any state"),
            Some(0) => f.write_str("no such key"),
            Some(r) => write!(f, "mod revision {r}"),
        }
    }
}

/// What a committed transaction did, as both backends report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The store's revision after it.
    pub revision: Revision,
    /// Whether it changed anything (a delete of a missing key does not).
    pub changed: bool,
}

/// What a transaction does to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Put(Vec<u8>),
    Delete,
    /// Only the compare: guards the transaction on a key it does not change.
    Check,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnOp {
    pub key: String,
    pub expect: Expect,
    pub action: Action,
}

/// Several writes applied atomically at one revision: either every compare holds and every
/// change is made, or nothing is (and the first failing compare is the
/// [`StoreError::Conflict`]). Each key may appear once.
///
/// ```
/// use ferrinet_api::store::{Expect, Txn};
/// let txn = Txn::new()
///     .put("/ferrinet/v1/vnis/100", b"net-a".to_vec(), Expect::Absent)
///     .put("/ferrinet/v1/networks/ns/net-a", b"...".to_vec(), Expect::ModRevision(7))
///     .check("/ferrinet/v1/namespaces/ns", Expect::ModRevision(3));
/// assert_eq!(txn.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub(crate) ops: Vec<TxnOp>,
    pub(crate) fence: Option<Fence>,
}

/// Proof of leadership for writes: a transaction [`fenced`](Txn::fenced) with it is applied
/// only while its campaign still leads, checked by the store atomically with the write (and
/// fails with [`StoreError::Fenced`] otherwise). A leader that was paused past its lease, say,
/// cannot overwrite its successor's decisions. From [`Campaign::fence`](super::Campaign::fence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub(crate) election: String,
    pub(crate) kind: FenceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FenceKind {
    /// etcd: the leader's candidate key, unchanged since it was created at `revision` (it goes
    /// with the lease).
    Key { key: String, revision: Revision },
    /// Embedded: the in-process candidate that must still lead.
    Local { id: u64 },
}

impl Fence {
    /// The election this fence is of.
    pub fn election(&self) -> &str {
        &self.election
    }
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under `key` if `expect` holds.
    pub fn put(
        mut self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        expect: Expect,
    ) -> Self {
        self.ops.push(TxnOp {
            key: key.into(),
            expect,
            action: Action::Put(value.into()),
        });
        self
    }

    /// Removes `key` if `expect` holds (removing a key that does not exist changes nothing).
    pub fn delete(mut self, key: impl Into<String>, expect: Expect) -> Self {
        self.ops.push(TxnOp {
            key: key.into(),
            expect,
            action: Action::Delete,
        });
        self
    }

    /// Requires `expect` of `key` without changing it.
    pub fn check(mut self, key: impl Into<String>, expect: Expect) -> Self {
        self.ops.push(TxnOp {
            key: key.into(),
            expect,
            action: Action::Check,
        });
        self
    }

    /// Applies the transaction only while the campaign `fence` came from leads.
    pub fn fenced(mut self, fence: &Fence) -> Self {
        self.fence = Some(fence.clone());
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there is no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Err(StoreError::Invalid("empty transaction".into()));
        }
        // A fence is one more compare on etcd, which limits compares as it limits operations.
        let counted = self.ops.len() + usize::from(self.fence.is_some());
        if counted > MAX_TXN_OPS {
            return Err(StoreError::Invalid(format!(
                "transaction of {counted} operations with its fence (at most {MAX_TXN_OPS})"
            )));
        }
        let mut seen = HashSet::with_capacity(self.ops.len());
        for op in &self.ops {
            validate_key(&op.key)?;
            if let Action::Put(v) = &op.action {
                validate_value(&op.key, v)?;
            }
            if !seen.insert(op.key.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "key {} appears twice in one transaction",
                    op.key
                )));
            }
        }
        Ok(())
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or replaced.
    Put,
    /// The key was removed.
    Delete,
}

/// One change seen by a [`Watch`](super::Watch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The revision of the change. Changes of one transaction share it and arrive together;
    /// resume from `revision + 1` once all of them were handled.
    pub revision: Revision,
    /// Put or delete.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The new value of a put; empty for a delete.
    pub value: Vec<u8>,
}

/// Checks a key: `/`-separated, absolute, no empty segment, no trailing `/`.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |why: &str| Err(StoreError::Invalid(format!("key {key:?}: {why}")));
    if !key.starts_with('/') || key.len() < 2 {
        return bad("must start with / and name something");
    }
    if key.ends_with('/') {
        return bad("must not end with / (that is a prefix)");
    }
    validate_common(key).or_else(bad)
}

/// Checks a prefix (of list and watch): `/`-separated, absolute, ends with `/` so that
/// `/a/net/` does not also match `/a/network/...`. `/` is every key.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let bad = |why: &str| Err(StoreError::Invalid(format!("prefix {prefix:?}: {why}")));
    if !prefix.starts_with('/') || !prefix.ends_with('/') {
        return bad("must start and end with /");
    }
    if prefix == "/" {
        return Ok(());
    }
    validate_common(prefix).or_else(bad)
}

fn validate_common(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_KEY_LEN {
        return Err("too long");
    }
    if s.contains("//") {
        return Err("empty segment");
    }
    if s.chars().any(char::is_control) {
        return Err("control character");
    }
    Ok(())
}

pub(crate) fn validate_value(key: &str, value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::Invalid(format!(
            "value of {key}: {} bytes (at most {MAX_VALUE_LEN})",
            value.len()
        )));
    }
    Ok(())
}

pub(crate) fn validate_campaign(
    election: &str,
    identity: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    validate_key(election)?;
    if identity.is_empty() || identity.len() > MAX_KEY_LEN {
        return Err(StoreError::Invalid(format!(
            "election {election}: identity must be 1 to {MAX_KEY_LEN} bytes"
        )));
    }
    // etcd counts lease TTLs in whole seconds.
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
        return Err(StoreError::Invalid(format!(
            "election {election}: TTL {ttl:?} out of range 1 s to 1 h"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_prefixes() {
        for ok in ["/a", "/ferrinet/v1/networks/ns/net-1", "/a/b.c:d"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "a/b",
            "/a/",
            "/a//b",
            "/a\n",
            &format!("/{}", "x".repeat(2000)),
        ] {
            assert!(
                matches!(validate_key(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
        for ok in ["/", "/a/", "/ferrinet/v1/networks/ns/"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "//", "/a//"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expect_matches_like_etcd_mod_revision_compares() {
        assert!(Expect::Any.matches(0) && Expect::Any.matches(9));
        assert!(Expect::Absent.matches(0) && !Expect::Absent.matches(1));
        assert!(Expect::ModRevision(0).matches(0));
        assert!(Expect::ModRevision(5).matches(5) && !Expect::ModRevision(5).matches(6));
    }

    #[test]
    fn txn_rejects_duplicates_empty_and_oversized() {
        assert!(Txn::new().validate().is_err());
        let dup = Txn::new()
            .put("/a", vec![], Expect::Any)
            .check("/a", Expect::Absent);
        assert!(dup.validate().is_err());
        let big = Txn::new().put("/a", vec![0; MAX_VALUE_LEN + 1], Expect::Any);
        assert!(big.validate().is_err());
        let many =
            (0..=MAX_TXN_OPS).fold(Txn::new(), |t, i| t.delete(format!("/k{i}"), Expect::Any));
        assert!(many.validate().is_err());
        // The fence is one more compare on etcd: a full transaction has no room for it.
        let full =
            (0..MAX_TXN_OPS).fold(Txn::new(), |t, i| t.delete(format!("/k{i}"), Expect::Any));
        assert!(full.validate().is_ok());
        let fence = Fence {
            election: "/e".into(),
            kind: FenceKind::Local { id: 1 },
        };
        assert!(full.fenced(&fence).validate().is_err());
        assert!(
            Txn::new()
                .put("/a", vec![1], Expect::Absent)
                .delete("/b", Expect::Any)
                .validate()
                .is_ok()
        );
    }
}
