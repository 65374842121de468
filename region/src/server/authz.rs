//! Authorization: which next hops a peer may announce.
//!
//! A TLS client is known by its certificate identity; the config maps identities to underlay
//! prefixes. An UPDATE whose next hop lies outside them is refused (logged, counted, not stored)
//! and the session goes on, so one misconfigured route does not cut a node off.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Arc;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

/// What one peer may announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Permission {
    /// Nothing: subscriptions only.
    #[default]
    ReadOnly,
    /// Any next hop (trusted plaintext peers).
    Any,
    /// Next hops inside these prefixes.
    NextHops(Vec<Ipv6Net>),
}

impl Permission {
    /// Whether a route with this next hop may be announced (or withdrawn).
    pub fn allows(&self, next_hop: Ipv6Addr) -> bool {
        match self {
            Self::ReadOnly => false,
            Self::Any => true,
            Self::NextHops(nets) => nets.iter().any(|n| n.contains(&next_hop)),
        }
    }

    /// Whether any announcement at all is allowed (for logs and `/sessions.json`).
    pub fn describe(&self) -> String {
        match self {
            Self::ReadOnly => "read-only".into(),
            Self::Any => "any next hop".into(),
            Self::NextHops(nets) => {
                let v: Vec<String> = nets.iter().map(ToString::to_string).collect();
                format!("next hops in {}", v.join(", "))
            }
        }
    }
}

/// What a TLS client without an entry may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unlisted {
    /// Connect and subscribe; announcements are refused.
    #[default]
    ReadOnly,
    /// The connection is closed right after the handshake.
    Reject,
}

/// Identity -> permission table of TLS clients.
#[derive(Debug, Clone, Default)]
pub struct Authz {
    nodes: HashMap<String, Arc<Permission>>,
    unlisted: Unlisted,
    read_only: Arc<Permission>,
}

impl Authz {
    /// A table from validated entries.
    pub fn new(nodes: HashMap<String, Permission>, unlisted: Unlisted) -> Self {
        Self {
            nodes: nodes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            unlisted,
            read_only: Arc::new(Permission::ReadOnly),
        }
    }

    /// The permission of a TLS client; `None` means it must be disconnected.
    pub fn permission(&self, identity: &str) -> Option<Arc<Permission>> {
        match (self.nodes.get(identity), self.unlisted) {
            (Some(p), _) => Some(p.clone()),
            (None, Unlisted::ReadOnly) => Some(self.read_only.clone()),
            (None, Unlisted::Reject) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn matches_prefixes() {
        let mut m = HashMap::new();
        m.insert(
            "node-a".to_string(),
            Permission::NextHops(vec![
                "fd00:1::/64".parse().unwrap(),
                "fd00:9::7/128".parse().unwrap(),
            ]),
        );
        m.insert("all".to_string(), Permission::Any);
        let a = Authz::new(m.clone(), Unlisted::ReadOnly);
        let p = a.permission("node-a").unwrap();
        assert!(p.allows("fd00:1::1".parse().unwrap()));
        assert!(p.allows("fd00:1::ffff:1".parse().unwrap()));
        assert!(!p.allows("fd00:2::1".parse().unwrap()));
        assert!(p.allows("fd00:9::7".parse().unwrap()));
        assert!(!p.allows("fd00:9::8".parse().unwrap()));
        assert!(a.permission("all").unwrap().allows("::1".parse().unwrap()));
        let unknown = a.permission("node-z").unwrap();
        assert_eq!(*unknown, Permission::ReadOnly);
        assert!(!unknown.allows("fd00:1::1".parse().unwrap()));
        let strict = Authz::new(m, Unlisted::Reject);
        assert!(strict.permission("node-z").is_none());
        assert!(strict.permission("node-a").is_some());
    }

    #[test]
    fn empty_prefix_list_allows_nothing() {
        assert!(!Permission::NextHops(vec![]).allows("::1".parse().unwrap()));
    }
}
