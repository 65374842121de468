//! VNIs: one per owner (a network), from a configured range of 24-bit values.

use std::fmt::{self, Display};

use super::Rejected;
use super::ledger::Ledger;

/// The largest VNI: VXLAN and Geneve carry 24 bits.
pub const MAX_VNI: u32 = 0xFF_FFFF;

/// The VNIs a region hands out, `first..=last`: `1 <= first <= last <=` [`MAX_VNI`]. VNI 0 is
/// left out because the node treats it as "no VNI".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VniRange {
    first: u32,
    last: u32,
}

/// Why a VNI range is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VniRangeError {
    /// `first` is 0.
    #[error("first: VNI 0 means no VNI; the range must start at 1 or above")]
    Zero,
    /// `last` needs more than 24 bits.
    #[error("last: {last} exceeds the 24-bit maximum {MAX_VNI}")]
    TooLarge {
        /// The configured last VNI.
        last: u32,
    },
    /// `last` is below `first`.
    #[error("last: {last} is below first {first}")]
    Reversed {
        /// The configured first VNI.
        first: u32,
        /// The configured last VNI.
        last: u32,
    },
}

impl VniRange {
    /// The range `first..=last`.
    pub fn new(first: u32, last: u32) -> Result<Self, VniRangeError> {
        if first == 0 {
            Err(VniRangeError::Zero)
        } else if last > MAX_VNI {
            Err(VniRangeError::TooLarge { last })
        } else if last < first {
            Err(VniRangeError::Reversed { first, last })
        } else {
            Ok(Self { first, last })
        }
    }

    /// The first VNI.
    pub fn first(&self) -> u32 {
        self.first
    }

    /// The last VNI, included.
    pub fn last(&self) -> u32 {
        self.last
    }

    /// Whether `vni` is in the range.
    pub fn contains(&self, vni: u32) -> bool {
        self.first <= vni && vni <= self.last
    }

    /// How many VNIs the range holds.
    pub fn len(&self) -> u32 {
        self.last - self.first + 1
    }

    /// Always false: a range holds at least one VNI.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Display for VniRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

/// Why a VNI cannot be allocated or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VniError {
    /// Every VNI of the range is taken.
    #[error("every VNI of {range} is taken")]
    Exhausted {
        /// The configured range.
        range: VniRange,
    },
    /// A fixed request outside the range.
    #[error("VNI {vni} is outside {range}")]
    OutOfRange {
        /// The requested VNI.
        vni: u32,
        /// The configured range.
        range: VniRange,
    },
    /// A VNI held by another owner (on allocation or release).
    #[error("VNI {vni} is held by {holder}")]
    Taken {
        /// The VNI.
        vni: u32,
        /// Its holder, as text.
        holder: String,
    },
    /// A fixed request by an owner holding a different VNI.
    #[error("{owner} holds VNI {vni} already")]
    OwnerHasVni {
        /// The owner, as text.
        owner: String,
        /// The VNI it holds.
        vni: u32,
    },
}

/// The VNI allocator: at most one VNI per owner, at most one owner per VNI.
#[derive(Debug, Clone)]
pub struct VniAllocator<O> {
    range: VniRange,
    ledger: Ledger<O>,
}

impl<O: Ord + Clone + Display> VniAllocator<O> {
    /// An allocator of `range` with nothing handed out.
    pub fn new(range: VniRange) -> Self {
        Self {
            range,
            ledger: Ledger::new([]),
        }
    }

    /// Rebuilds the state from stored assignments (after a restart, or with a changed range):
    /// each is taken back as a fixed request would be; those that fail are returned.
    pub fn restore(
        range: VniRange,
        assignments: impl IntoIterator<Item = (O, u32)>,
    ) -> (Self, Vec<Rejected<O, u32, VniError>>) {
        let mut allocator = Self::new(range);
        let mut rejected = Vec::new();
        for (owner, vni) in assignments {
            if let Err(error) = allocator.allocate_fixed(owner.clone(), vni) {
                rejected.push(Rejected {
                    owner,
                    value: vni,
                    error,
                });
            }
        }
        (allocator, rejected)
    }

    /// The configured range.
    pub fn range(&self) -> VniRange {
        self.range
    }

    /// The lowest free VNI for `owner`, or the one it holds already.
    pub fn allocate(&mut self, owner: O) -> Result<u32, VniError> {
        if let Some(vni) = self.vni_of(&owner) {
            return Ok(vni);
        }
        let vni = self
            .ledger
            .first_free_in(self.range.first.into(), self.range.last.into())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(VniError::Exhausted { range: self.range })?;
        self.ledger.take(vni.into(), owner);
        Ok(vni)
    }

    /// Gives `owner` exactly `vni`: in the range and not held by another owner, and `owner`
    /// holds no other VNI. Succeeds again if `owner` holds `vni` already.
    pub fn allocate_fixed(&mut self, owner: O, vni: u32) -> Result<(), VniError> {
        if !self.range.contains(vni) {
            return Err(VniError::OutOfRange {
                vni,
                range: self.range,
            });
        }
        match self.vni_of(&owner) {
            Some(held) if held == vni => return Ok(()),
            Some(held) => {
                return Err(VniError::OwnerHasVni {
                    owner: owner.to_string(),
                    vni: held,
                });
            }
            None => {}
        }
        if let Some(holder) = self.ledger.holder(vni.into()) {
            return Err(VniError::Taken {
                vni,
                holder: holder.to_string(),
            });
        }
        self.ledger.take(vni.into(), owner);
        Ok(())
    }

    /// Frees `vni` held by `owner`: `Ok(true)` when released, `Ok(false)` when nobody held it,
    /// an error when another owner holds it.
    pub fn release(&mut self, owner: &O, vni: u32) -> Result<bool, VniError> {
        match self.ledger.holder(vni.into()) {
            None => Ok(false),
            Some(holder) if holder == owner => {
                self.ledger.release(vni.into());
                Ok(true)
            }
            Some(holder) => Err(VniError::Taken {
                vni,
                holder: holder.to_string(),
            }),
        }
    }

    /// Frees the VNI `owner` holds, returning it.
    pub fn release_owner(&mut self, owner: &O) -> Option<u32> {
        let vni = self.vni_of(owner)?;
        self.ledger.release(vni.into());
        Some(vni)
    }

    /// The VNI `owner` holds.
    pub fn vni_of(&self, owner: &O) -> Option<u32> {
        self.ledger
            .values_of(owner)
            .next()
            .and_then(|v| u32::try_from(v).ok())
    }

    /// The holder of `vni`.
    pub fn holder(&self, vni: u32) -> Option<&O> {
        self.ledger.holder(vni.into())
    }

    /// Every held VNI with its owner, ascending by VNI: what to persist.
    pub fn assignments(&self) -> impl Iterator<Item = (&O, u32)> + '_ {
        self.ledger
            .iter()
            .filter_map(|(v, owner)| Some((owner, u32::try_from(v).ok()?)))
    }

    /// How many VNIs the range holds.
    pub fn capacity(&self) -> u32 {
        self.range.len()
    }

    /// How many VNIs are held.
    pub fn used(&self) -> u32 {
        // At most 2^24 values are ever held.
        u32::try_from(self.ledger.len()).unwrap_or(u32::MAX)
    }

    /// How many VNIs are free.
    pub fn free(&self) -> u32 {
        self.capacity().saturating_sub(self.used())
    }
}

#[cfg(test)]
#[path = "vni_tests.rs"]
mod tests;
