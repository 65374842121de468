//! The pool of VFs and their claims, keyed by owner (an interface name).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::naming::Vf;

/// A claim cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every VF is claimed.
    #[error("no free VF: every VF of this node is claimed")]
    Exhausted,
}

/// Why a persisted claim was not restored by [`VfPool::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnrestoredReason {
    /// The VF was not discovered on this start.
    #[error("the VF no longer exists")]
    VfNotFound,
    /// An earlier claim took this VF.
    #[error("the VF is already claimed by {owner:?}")]
    VfClaimedBy {
        /// The owner that kept it.
        owner: String,
    },
    /// An earlier claim of this owner took another VF.
    #[error("the owner already holds VF {vf_id:?}")]
    OwnerHolds {
        /// The VF the owner kept.
        vf_id: String,
    },
}

/// A persisted claim [`VfPool::new`] could not restore: the caller marks the owner's interface
/// as failed (or claims anew), and forgets the claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim of VF {vf_id:?} by {owner:?} not restored: {reason}")]
pub struct UnrestoredClaim {
    /// The owner (interface name).
    pub owner: String,
    /// The VF id of the claim.
    pub vf_id: String,
    /// Why.
    pub reason: UnrestoredReason,
}

/// The VFs of this node and which owner holds which.
///
/// Positions follow the order of the VFs given to [`VfPool::new`] (discovery order); a new claim
/// gets the free VF at the lowest position, so results are deterministic.
#[derive(Clone)]
pub struct VfPool {
    vfs: Vec<Vf>,
    /// VF id -> position.
    positions: HashMap<String, usize>,
    /// Owner per position.
    holders: Vec<Option<String>>,
    /// Owner -> position.
    by_owner: BTreeMap<String, usize>,
    /// Free positions.
    free: BTreeSet<usize>,
}

impl fmt::Debug for VfPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfPool")
            .field("total", &self.total())
            .field("claimed", &self.claimed())
            .finish_non_exhaustive()
    }
}

impl VfPool {
    /// A pool of `vfs` with persisted `claims` (owner, VF id) restored.
    ///
    /// A VF listed twice (same id) is kept once, at its first position. Claims are restored in
    /// iteration order; the first claim of a VF and the first claim of an owner win. The claims
    /// that could not be restored are returned: VF not discovered any more, VF already claimed
    /// by another owner, or owner already holding another VF. Repeating an identical claim is
    /// harmless. A claim whose owner no longer exists is restored; the caller releases it.
    pub fn new(
        vfs: Vec<Vf>,
        claims: impl IntoIterator<Item = (String, String)>,
    ) -> (Self, Vec<UnrestoredClaim>) {
        let mut unique = Vec::with_capacity(vfs.len());
        let mut positions = HashMap::with_capacity(vfs.len());
        for vf in vfs {
            if positions.contains_key(vf.id()) {
                tracing::warn!(vf = %vf, "VF listed twice: kept once");
                continue;
            }
            positions.insert(vf.id().to_string(), unique.len());
            unique.push(vf);
        }
        let mut pool = Self {
            holders: vec![None; unique.len()],
            free: (0..unique.len()).collect(),
            vfs: unique,
            positions,
            by_owner: BTreeMap::new(),
        };
        let mut unrestored = Vec::new();
        for (owner, vf_id) in claims {
            if let Some(reason) = pool.restore(&owner, &vf_id) {
                let claim = UnrestoredClaim {
                    owner,
                    vf_id,
                    reason,
                };
                tracing::warn!(%claim, "VF claim not restored");
                unrestored.push(claim);
            }
        }
        (pool, unrestored)
    }

    /// Restores one claim, or says why not.
    fn restore(&mut self, owner: &str, vf_id: &str) -> Option<UnrestoredReason> {
        let Some(&position) = self.positions.get(vf_id) else {
            return Some(UnrestoredReason::VfNotFound);
        };
        if let Some(&held) = self.by_owner.get(owner) {
            return (held != position).then(|| UnrestoredReason::OwnerHolds {
                vf_id: self.vfs[held].id().to_string(),
            });
        }
        if let Some(other) = &self.holders[position] {
            return Some(UnrestoredReason::VfClaimedBy {
                owner: other.clone(),
            });
        }
        self.assign(owner, position);
        None
    }

    fn assign(&mut self, owner: &str, position: usize) {
        self.free.remove(&position);
        self.holders[position] = Some(owner.to_string());
        self.by_owner.insert(owner.to_string(), position);
    }

    /// The VF of `owner`: the one it already holds, else the free VF at the lowest position.
    pub fn claim(&mut self, owner: &str) -> Result<Vf, PoolError> {
        if let Some(&position) = self.by_owner.get(owner) {
            return Ok(self.vfs[position].clone());
        }
        let position = self.free.first().copied().ok_or(PoolError::Exhausted)?;
        self.assign(owner, position);
        let vf = self.vfs[position].clone();
        tracing::debug!(owner, vf = %vf, "VF claimed");
        Ok(vf)
    }

    /// Frees the VF of `owner`, returning it; `None` if the owner holds none.
    pub fn release(&mut self, owner: &str) -> Option<Vf> {
        let position = self.by_owner.remove(owner)?;
        self.holders[position] = None;
        self.free.insert(position);
        let vf = self.vfs[position].clone();
        tracing::debug!(owner, vf = %vf, "VF released");
        Some(vf)
    }

    /// The VF `owner` holds.
    pub fn get(&self, owner: &str) -> Option<&Vf> {
        self.by_owner.get(owner).map(|&p| &self.vfs[p])
    }

    /// The owner holding VF `vf_id`.
    pub fn owner_of(&self, vf_id: &str) -> Option<&str> {
        let position = *self.positions.get(vf_id)?;
        self.holders[position].as_deref()
    }

    /// Number of VFs.
    pub fn total(&self) -> usize {
        self.vfs.len()
    }

    /// Number of claimed VFs.
    pub fn claimed(&self) -> usize {
        self.by_owner.len()
    }

    /// Number of free VFs (`total() - claimed()`).
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// The claims as (owner, VF id), ordered by owner: what the caller persists.
    pub fn claims(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.by_owner
            .iter()
            .map(|(owner, &p)| (owner.as_str(), self.vfs[p].id()))
    }

    /// The owners holding a VF, in order.
    pub fn owners(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_owner.keys().map(String::as_str)
    }

    /// Every VF in pool order with its owner, for status pages.
    pub fn iter(&self) -> impl Iterator<Item = (&Vf, Option<&str>)> + '_ {
        self.vfs
            .iter()
            .zip(self.holders.iter().map(Option::as_deref))
    }
}

#[cfg(test)]
mod tests {
    use super::super::naming::tap_vfs;
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(o, v)| (o.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn claim_lowest_free_and_idempotent() {
        let (mut pool, unrestored) = VfPool::new(tap_vfs(3), Vec::new());
        assert!(unrestored.is_empty());
        assert_eq!(
            pool.claim("a").map(|v| v.id().to_string()),
            Ok("dtapvf_0".into())
        );
        assert_eq!(
            pool.claim("b").map(|v| v.id().to_string()),
            Ok("dtapvf_1".into())
        );
        assert_eq!(
            pool.claim("a").map(|v| v.id().to_string()),
            Ok("dtapvf_0".into())
        );
        assert_eq!(
            pool.release("a").map(|v| v.id().to_string()),
            Some("dtapvf_0".into())
        );
        assert_eq!(pool.release("a"), None);
        assert_eq!(
            pool.claim("c").map(|v| v.id().to_string()),
            Ok("dtapvf_0".into())
        );
        assert_eq!(
            pool.claim("d").map(|v| v.device_name().to_string()),
            Ok("net_tap4".into())
        );
        assert_eq!(pool.claim("e"), Err(PoolError::Exhausted));
        assert_eq!(
            pool.claim("b").map(|v| v.id().to_string()),
            Ok("dtapvf_1".into())
        );
        assert_eq!((pool.total(), pool.claimed(), pool.free()), (3, 3, 0));
        assert_eq!(
            pool.claims().collect::<Vec<_>>(),
            [("b", "dtapvf_1"), ("c", "dtapvf_0"), ("d", "dtapvf_2")]
        );
        assert_eq!(pool.owners().collect::<Vec<_>>(), ["b", "c", "d"]);
        assert_eq!(pool.get("c").map(Vf::id), Some("dtapvf_0"));
        assert_eq!(pool.get("a"), None);
        assert_eq!(pool.owner_of("dtapvf_2"), Some("d"));
        assert_eq!(pool.owner_of("dtapvf_9"), None);
    }

    #[test]
    fn restore_keeps_claims_and_reports_the_rest() {
        let (mut pool, unrestored) = VfPool::new(
            tap_vfs(4),
            claims(&[
                ("if-a", "dtapvf_2"),
                ("if-gone-vf", "dtapvf_99"),
                ("if-b", "dtapvf_2"),
                ("if-a", "dtapvf_3"),
                ("if-a", "dtapvf_2"),
                ("if-c", "dtapvf_0"),
            ]),
        );
        let reasons: Vec<_> = unrestored
            .iter()
            .map(|u| (u.owner.as_str(), &u.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("if-gone-vf", &UnrestoredReason::VfNotFound),
                (
                    "if-b",
                    &UnrestoredReason::VfClaimedBy {
                        owner: "if-a".into()
                    }
                ),
                (
                    "if-a",
                    &UnrestoredReason::OwnerHolds {
                        vf_id: "dtapvf_2".into()
                    }
                ),
            ]
        );
        assert_eq!(
            unrestored[0].to_string(),
            "claim of VF \"dtapvf_99\" by \"if-gone-vf\" not restored: the VF no longer exists"
        );
        assert_eq!(pool.claimed(), 2);
        // a restored owner keeps its VF; new claims take the lowest free one
        assert_eq!(
            pool.claim("if-a").map(|v| v.id().to_string()),
            Ok("dtapvf_2".into())
        );
        assert_eq!(
            pool.claim("if-b").map(|v| v.id().to_string()),
            Ok("dtapvf_1".into())
        );
        let owners: Vec<_> = pool.iter().map(|(vf, o)| (vf.id(), o)).collect();
        assert_eq!(
            owners,
            [
                ("dtapvf_0", Some("if-c")),
                ("dtapvf_1", Some("if-b")),
                ("dtapvf_2", Some("if-a")),
                ("dtapvf_3", None),
            ]
        );
    }

    #[test]
    fn duplicate_vfs_are_kept_once() {
        let mut vfs = tap_vfs(2);
        vfs.insert(0, vfs[1].clone());
        let (mut pool, _) = VfPool::new(vfs, Vec::new());
        assert_eq!(pool.total(), 2);
        assert_eq!(
            pool.claim("a").map(|v| v.id().to_string()),
            Ok("dtapvf_1".into())
        );
        assert_eq!(
            pool.claim("b").map(|v| v.id().to_string()),
            Ok("dtapvf_0".into())
        );
        assert_eq!(pool.claim("c"), Err(PoolError::Exhausted));
    }

    #[test]
    fn empty_pool_is_exhausted() {
        let (mut pool, unrestored) = VfPool::new(Vec::new(), claims(&[("a", "dtapvf_0")]));
        assert_eq!(unrestored.len(), 1);
        assert_eq!(pool.claim("a"), Err(PoolError::Exhausted));
        assert_eq!(format!("{pool:?}"), "VfPool { total: 0, claimed: 0, .. }");
    }
}
