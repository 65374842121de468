//! Validation errors of the IPAM specs (subnets, public pools), each naming the field by its
//! path in the user's object, e.g. `subnets[1].allocationRanges[0].end`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::family::IpFamily;
use super::subnet::Reservation;

/// One invalid field: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field's path, e.g. `subnets[1].allocationRanges[0].end`.
    pub field: String,
    /// What is wrong with it.
    pub problem: SpecProblem,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, problem: SpecProblem) -> Self {
        Self {
            field: field.into(),
            problem,
        }
    }
}

/// What is wrong with a field. Where another field is involved it is named by its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    /// A CIDR with bits set after its prefix.
    #[error("{cidr} has host bits set (the network is {network})")]
    HostBitsSet {
        /// The CIDR as given.
        cidr: IpNet,
        /// The same CIDR without host bits.
        network: IpNet,
    },
    /// A subnet so small that nothing is left once its network (and broadcast) address is
    /// taken out.
    #[error("{cidr} leaves no address to hand out: the prefix must be at most /{max}")]
    PrefixTooLong {
        /// The CIDR.
        cidr: IpNet,
        /// The longest prefix allowed in its family.
        max: u8,
    },
    /// A value of the other family than the subnet or range it belongs to.
    #[error("{value} is not {expected}")]
    WrongFamily {
        /// The value, as text (an address or a CIDR).
        value: String,
        /// The family it must have.
        expected: IpFamily,
    },
    /// An address outside the CIDR it must lie in.
    #[error("{address} is outside {cidr}")]
    OutsideCidr {
        /// The address.
        address: IpAddr,
        /// The CIDR.
        cidr: IpNet,
    },
    /// A range whose end comes before its start.
    #[error("{end} is before the start {start}")]
    EndBeforeStart {
        /// The range's start.
        start: IpAddr,
        /// The range's end.
        end: IpAddr,
    },
    /// Two ranges or CIDRs sharing addresses.
    #[error("overlaps {other}")]
    Overlaps {
        /// The path of the earlier field it overlaps.
        other: String,
    },
    /// The same value listed twice.
    #[error("{value} is listed already at {other}")]
    Duplicate {
        /// The value, as text.
        value: String,
        /// The path of the earlier field with the same value.
        other: String,
    },
    /// An address that cannot serve in this field because the subnet reserves it.
    #[error("{address} is {reservation}")]
    Reserved {
        /// The address.
        address: IpAddr,
        /// Why it is reserved.
        reservation: Reservation,
    },
    /// An excluded address that is not in any range of a public pool.
    #[error("{address} is in none of the pool's ranges")]
    OutsidePool {
        /// The address.
        address: IpAddr,
    },
}

/// Every invalid field of a spec, in the order of the spec; never empty when returned as an
/// error. Displayed as the field errors joined by `"; "`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<FieldError>);

impl SpecErrors {
    /// The field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when no error was collected.
    pub(crate) fn or_ok<T>(self, value: T) -> Result<T, SpecErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// The same errors with `prefix` in front of every field path.
    pub(crate) fn prefixed(self, prefix: &str) -> Self {
        Self(
            self.0
                .into_iter()
                .map(|e| FieldError::new(format!("{prefix}{}", e.field), e.problem))
                .collect(),
        )
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
