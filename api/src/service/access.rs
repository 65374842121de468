//! Access control: a caller is known by its certificate identity (the first DNS or URI SAN of
//! its client certificate, as with the route servers), and the configuration gives each identity
//! a role:
//!
//! - **admin**: everything;
//! - **tenant** of some namespaces: the namespaced objects of those namespaces (read and write)
//!   and reading Nodes (to choose where an interface goes); nothing of other namespaces is
//!   visible, not even in lists and watches;
//! - **node**: only the node sync service, and only as itself: it reads what is placed on it
//!   and writes its own registration and status.
//!
//! Identities are matched exactly or, with a trailing `*`, by prefix (`node-*`). An identity
//! with no role is refused. Without TLS there are no identities: every caller is an admin, which
//! is for tests and development only (the server logs it as a warning).

use std::collections::BTreeSet;

use ferrinet_proto::api::v1 as pb;

/// What a caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// The objects of these namespaces.
    Tenant(BTreeSet<String>),
    /// The node sync service as this node.
    Node(String),
}

impl Role {
    /// The role's name, as WhoAmI reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Tenant(_) => "tenant",
            Role::Node(_) => "node",
        }
    }
}

/// An identity pattern: exact, or a prefix with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// The pattern `text`; `None` when empty.
    pub fn new(text: &str) -> Option<Self> {
        (!text.is_empty()).then(|| Self(text.to_owned()))
    }

    fn matches(&self, identity: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => identity.starts_with(prefix),
            None => self.0 == identity,
        }
    }
}

/// The access configuration.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Admin identities.
    pub admins: Vec<Pattern>,
    /// Tenant identities and their namespaces.
    pub tenants: Vec<(Pattern, BTreeSet<String>)>,
    /// Node identities: a node's identity is its name.
    pub nodes: Vec<Pattern>,
}

/// What a call wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// Read objects of a kind in a namespace ("" for Nodes; for lists of every namespace the
    /// caller's view is filtered with [`Role::sees`] instead).
    Read(pb::Kind, &'a str),
    /// Create, change or delete an object of a kind in a namespace.
    Write(pb::Kind, &'a str),
    /// The node sync service for this node.
    NodeSync(&'a str),
}

/// A refusal, with what was refused and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{identity} ({role}) may not {what}")]
pub struct Denied {
    /// The caller.
    pub identity: String,
    /// Its role, or "no role".
    pub role: String,
    /// What it tried.
    pub what: String,
}

impl Access {
    /// The role of `identity`: admin first, then tenant (the namespaces of every matching
    /// entry), then node. `None` without TLS means admin.
    pub fn role(&self, identity: Option<&str>) -> Option<Role> {
        let Some(id) = identity else {
            return Some(Role::Admin);
        };
        if self.admins.iter().any(|p| p.matches(id)) {
            return Some(Role::Admin);
        }
        let namespaces: BTreeSet<String> = self
            .tenants
            .iter()
            .filter(|(p, _)| p.matches(id))
            .flat_map(|(_, ns)| ns.iter().cloned())
            .collect();
        if self.tenants.iter().any(|(p, _)| p.matches(id)) {
            return Some(Role::Tenant(namespaces));
        }
        if self.nodes.iter().any(|p| p.matches(id)) {
            return Some(Role::Node(id.to_owned()));
        }
        None
    }
}

impl Role {
    /// Whether the role sees objects of `kind` in `namespace`.
    pub fn sees(&self, kind: pb::Kind, namespace: &str) -> bool {
        match self {
            Role::Admin => true,
            Role::Tenant(ns) => kind == pb::Kind::Node || ns.contains(namespace),
            Role::Node(_) => false,
        }
    }

    /// Whether the role may do `op`.
    pub fn allows(&self, op: Operation<'_>) -> bool {
        match (self, op) {
            (Role::Admin, _) => true,
            (Role::Tenant(_), Operation::Read(kind, ns)) => self.sees(kind, ns),
            (Role::Tenant(ns), Operation::Write(kind, namespace)) => {
                kind != pb::Kind::Node && ns.contains(namespace)
            }
            (Role::Tenant(_), Operation::NodeSync(_)) => false,
            (Role::Node(name), Operation::NodeSync(node)) => name == node,
            (Role::Node(_), Operation::Read(..) | Operation::Write(..)) => false,
        }
    }
}

/// Checks `op` for `identity`; the refusal names the caller, its role and the operation.
pub fn authorize(
    access: &Access,
    identity: Option<&str>,
    op: Operation<'_>,
) -> Result<Role, Denied> {
    let role = access.role(identity);
    match &role {
        Some(r) if r.allows(op) => Ok(role.unwrap_or(Role::Admin)),
        _ => Err(Denied {
            identity: identity.unwrap_or("anonymous").to_owned(),
            role: role.as_ref().map_or("no role", Role::name).to_owned(),
            what: describe(op),
        }),
    }
}

fn describe(op: Operation<'_>) -> String {
    let kind = |k: pb::Kind| crate::resources::kind_word(k);
    match op {
        Operation::Read(k, "") => format!("read {}", kind(k)),
        Operation::Read(k, ns) => format!("read {} in namespace {ns}", kind(k)),
        Operation::Write(k, "") => format!("change {}", kind(k)),
        Operation::Write(k, ns) => format!("change {} in namespace {ns}", kind(k)),
        Operation::NodeSync(n) => format!("sync as node {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            admins: vec![Pattern::new("ops").expect("pattern")],
            tenants: vec![(
                Pattern::new("alice").expect("pattern"),
                ["t1".to_string()].into_iter().collect(),
            )],
            nodes: vec![Pattern::new("node-*").expect("pattern")],
        }
    }

    #[test]
    fn each_role_gets_exactly_its_share() {
        let a = access();
        let ni = pb::Kind::NetworkInterface;
        assert!(authorize(&a, Some("ops"), Operation::Write(pb::Kind::Node, "")).is_ok());
        assert!(authorize(&a, None, Operation::Write(ni, "t9")).is_ok());
        assert!(authorize(&a, Some("alice"), Operation::Write(ni, "t1")).is_ok());
        assert!(authorize(&a, Some("alice"), Operation::Read(pb::Kind::Node, "")).is_ok());
        let e = authorize(&a, Some("alice"), Operation::Write(ni, "t2")).expect_err("other ns");
        assert_eq!(
            e.to_string(),
            "alice (tenant) may not change networkinterfaces in namespace t2"
        );
        assert!(authorize(&a, Some("alice"), Operation::Write(pb::Kind::Node, "")).is_err());
        assert!(authorize(&a, Some("alice"), Operation::NodeSync("node-1")).is_err());
        assert!(authorize(&a, Some("node-1"), Operation::NodeSync("node-1")).is_ok());
        let e = authorize(&a, Some("node-1"), Operation::NodeSync("node-2")).expect_err("other");
        assert_eq!(e.to_string(), "node-1 (node) may not sync as node node-2");
        assert!(authorize(&a, Some("node-1"), Operation::Read(ni, "t1")).is_err());
        let e = authorize(&a, Some("mallory"), Operation::Read(ni, "t1")).expect_err("nobody");
        assert_eq!(
            e.to_string(),
            "mallory (no role) may not read networkinterfaces in namespace t1"
        );
    }

    #[test]
    fn tenants_see_only_their_namespaces() {
        let role = access().role(Some("alice")).expect("role");
        assert!(role.sees(pb::Kind::Network, "t1"));
        assert!(!role.sees(pb::Kind::Network, "t2"));
        assert!(role.sees(pb::Kind::Node, ""));
        assert_eq!(role.name(), "tenant");
    }
}
