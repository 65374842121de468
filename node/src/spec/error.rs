//! The two error types of the spec layer.
//!
//! - [`SpecError`]: an admin-API object that does not validate. It names the field by its path
//!   inside the object (`spec.ips[1]`, `spec.firewall_rules[2].protocol_match.icmp.icmp_type`)
//!   and says what is wrong; the node answers it as gRPC INVALID_ARGUMENT with the Display text,
//!   which starts with the path as `node.proto` promises.
//! - [`ReplyError`]: a dpservice reply carrying something the node cannot read back (an address
//!   that is not address text, a prefix longer than its family, a DROP rule). It is kept apart
//!   from [`SpecError`] on purpose: it is the dataplane's fault, not the caller's, and must never
//!   be turned into INVALID_ARGUMENT by accident.

/// An admin-API object that does not validate: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    /// Path of the bad field inside the object, e.g. `spec.nat.end_port`.
    pub field: String,
    /// What is wrong with it, lowercase.
    pub problem: String,
}

impl SpecError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A dpservice reply field the node cannot read back: `"{field}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ReplyError {
    /// Path of the field in the reply message, e.g. `prefixes[3].underlay_route`.
    pub field: String,
    /// What is wrong with it, lowercase.
    pub problem: String,
}

impl ReplyError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_field_colon_problem() {
        assert_eq!(
            SpecError::new("spec.ips[1]", "not an IP address").to_string(),
            "spec.ips[1]: not an IP address"
        );
        assert_eq!(
            ReplyError::new("underlay_route", "not an IPv6 address").to_string(),
            "underlay_route: not an IPv6 address"
        );
    }
}
