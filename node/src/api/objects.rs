//! The ApiActor's object table: keys, entries, the parsed spec of each object, and the small
//! accessors on the protobuf objects it needs.

use std::fmt;

use ferrinet_proto::node::v1 as pb;
use ractor::ActorRef;

use super::error::ApiError;
use crate::interface::InterfaceMsg;
use crate::load_balancer::LoadBalancerMsg;
use crate::spec::{self, InterfaceSpec, LoadBalancerSpec, NetworkSpec};

/// `kind/name`, ordered with networks first (object actors need their network's VNI).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The kind.
    pub kind: pb::Kind,
    /// The name.
    pub name: String,
}

impl Key {
    pub fn new(kind: pb::Kind, name: &str) -> Self {
        Self {
            kind,
            name: name.to_string(),
        }
    }

    /// The key of an object, if it has a kind and a name.
    pub fn of(o: &pb::Object) -> Option<Self> {
        let kind = super::watch::kind_of(o);
        let name = metadata(o)?.name.clone();
        (kind != pb::Kind::Unspecified).then_some(Self { kind, name })
    }

    /// The store key.
    pub fn store_key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", kind_name(self.kind), self.name)
    }
}

/// Lowercase kind name for keys, errors and metrics.
pub fn kind_name(kind: pb::Kind) -> &'static str {
    match kind {
        pb::Kind::Network => "network",
        pb::Kind::NetworkInterface => "networkinterface",
        pb::Kind::LoadBalancer => "loadbalancer",
        pb::Kind::Unspecified => "object",
    }
}

/// The validated spec of an object.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Network(NetworkSpec),
    Interface(InterfaceSpec),
    LoadBalancer(LoadBalancerSpec),
}

impl Parsed {
    /// The network an interface or load balancer belongs to.
    pub fn network(&self) -> Option<&str> {
        match self {
            Self::Network(_) => None,
            Self::Interface(s) => Some(&s.network),
            Self::LoadBalancer(s) => Some(&s.network),
        }
    }
}

/// The actor that programs an object.
#[derive(Debug, Clone)]
pub enum ObjectActor {
    Interface(ActorRef<InterfaceMsg>),
    LoadBalancer(ActorRef<LoadBalancerMsg>),
}

impl ObjectActor {
    pub fn id(&self) -> ractor::ActorId {
        match self {
            Self::Interface(a) => a.get_id(),
            Self::LoadBalancer(a) => a.get_id(),
        }
    }
}

/// One object of the table.
#[derive(Debug)]
pub struct Entry {
    /// As the API shows it (metadata, spec, status).
    pub object: pb::Object,
    /// Its validated spec.
    pub parsed: Parsed,
    /// Its actor (none for networks).
    pub actor: Option<ObjectActor>,
    /// Delete accepted; the actor is cleaning up.
    pub deleting: bool,
}

impl Entry {
    pub fn new(object: pb::Object, parsed: Parsed) -> Self {
        Self {
            object,
            parsed,
            actor: None,
            deleting: false,
        }
    }
}

/// Validates an object against the API's rules; `node` is this node's name.
pub fn parse(o: &pb::Object, options: &spec::Options, node: &str) -> Result<Parsed, ApiError> {
    let _ = node;
    match &o.object {
        Some(pb::object::Object::Network(n)) => {
            Ok(Parsed::Network(spec::validate_network(n, options)?.1))
        }
        Some(pb::object::Object::NetworkInterface(i)) => {
            Ok(Parsed::Interface(spec::validate_interface(i, options)?.1))
        }
        Some(pb::object::Object::LoadBalancer(l)) => Ok(Parsed::LoadBalancer(
            spec::validate_load_balancer(l, options)?.1,
        )),
        None => Err(ApiError::BadRequest("object: missing".into())),
    }
}

/// The object's metadata.
pub fn metadata(o: &pb::Object) -> Option<&pb::Metadata> {
    match &o.object {
        Some(pb::object::Object::Network(n)) => n.metadata.as_ref(),
        Some(pb::object::Object::NetworkInterface(i)) => i.metadata.as_ref(),
        Some(pb::object::Object::LoadBalancer(l)) => l.metadata.as_ref(),
        None => None,
    }
}

/// The object's metadata, created if missing.
pub fn metadata_mut(o: &mut pb::Object) -> Option<&mut pb::Metadata> {
    match &mut o.object {
        Some(pb::object::Object::Network(n)) => {
            Some(n.metadata.get_or_insert_with(Default::default))
        }
        Some(pb::object::Object::NetworkInterface(i)) => {
            Some(i.metadata.get_or_insert_with(Default::default))
        }
        Some(pb::object::Object::LoadBalancer(l)) => {
            Some(l.metadata.get_or_insert_with(Default::default))
        }
        None => None,
    }
}

pub fn generation(o: &pb::Object) -> u64 {
    metadata(o).map_or(0, |m| m.generation)
}

pub fn version(o: &pb::Object) -> u64 {
    metadata(o).map_or(0, |m| m.resource_version)
}

pub fn set_version(o: &mut pb::Object, v: u64) {
    if let Some(m) = metadata_mut(o) {
        m.resource_version = v;
    }
}

/// The object's phase (as the enum's number).
pub fn phase(o: &pb::Object) -> i32 {
    match &o.object {
        Some(pb::object::Object::Network(n)) => n.status.as_ref().map_or(0, |s| s.phase),
        Some(pb::object::Object::NetworkInterface(i)) => i.status.as_ref().map_or(0, |s| s.phase),
        Some(pb::object::Object::LoadBalancer(l)) => l.status.as_ref().map_or(0, |s| s.phase),
        None => 0,
    }
}

/// Sets the phase, keeping the rest of the status.
pub fn set_phase(o: &mut pb::Object, phase: pb::Phase) {
    match &mut o.object {
        Some(pb::object::Object::Network(n)) => {
            n.status.get_or_insert_with(Default::default).phase = phase.into();
        }
        Some(pb::object::Object::NetworkInterface(i)) => {
            i.status.get_or_insert_with(Default::default).phase = phase.into();
        }
        Some(pb::object::Object::LoadBalancer(l)) => {
            l.status.get_or_insert_with(Default::default).phase = phase.into();
        }
        None => {}
    }
}

/// A fresh `Pending` status (what the store never holds).
pub fn reset_status(o: &mut pb::Object) {
    match &mut o.object {
        Some(pb::object::Object::Network(n)) => n.status = None,
        Some(pb::object::Object::NetworkInterface(i)) => i.status = None,
        Some(pb::object::Object::LoadBalancer(l)) => l.status = None,
        None => {}
    }
    set_phase(o, pb::Phase::Pending);
}

/// The object as stored: status cleared.
pub fn for_store(o: &pb::Object) -> pb::Object {
    let mut s = o.clone();
    match &mut s.object {
        Some(pb::object::Object::Network(n)) => n.status = None,
        Some(pb::object::Object::NetworkInterface(i)) => i.status = None,
        Some(pb::object::Object::LoadBalancer(l)) => l.status = None,
        None => {}
    }
    s
}

/// Whether two objects have the same spec and labels (an update that changes nothing).
pub fn same_spec(a: &pb::Object, b: &pb::Object) -> bool {
    let labels = |o: &pb::Object| metadata(o).map(|m| m.labels.clone());
    labels(a) == labels(b)
        && match (&a.object, &b.object) {
            (Some(pb::object::Object::Network(x)), Some(pb::object::Object::Network(y))) => {
                x.spec == y.spec
            }
            (
                Some(pb::object::Object::NetworkInterface(x)),
                Some(pb::object::Object::NetworkInterface(y)),
            ) => x.spec == y.spec,
            (
                Some(pb::object::Object::LoadBalancer(x)),
                Some(pb::object::Object::LoadBalancer(y)),
            ) => x.spec == y.spec,
            _ => false,
        }
}

/// A network's status: valid networks are Ready; `users` counts its interfaces and load
/// balancers on this node. Returns whether it changed.
pub fn set_network_status(o: &mut pb::Object, parts: NetworkStatusParts, now_ms: i64) -> bool {
    let Some(pb::object::Object::Network(n)) = &mut o.object else {
        return false;
    };
    let generation = n.metadata.as_ref().map_or(0, |m| m.generation);
    let status = n.status.get_or_insert_with(Default::default);
    let before = status.clone();
    status.phase = pb::Phase::Ready.into();
    status.users = parts.users;
    status.observed_generation = generation;
    let routes_ok = parts.routes.last_error.is_empty() && parts.routes.subscription != "Waiting";
    let (reason, message) = match parts.routes.subscription.as_str() {
        "NotInUse" => (
            "NotInUse",
            "no interface or load balancer of the VNI here".into(),
        ),
        _ if !parts.routes.last_error.is_empty() => {
            ("DataplaneError", parts.routes.last_error.clone())
        }
        "Waiting" => (
            "Waiting",
            "waiting for the route servers' initial set".into(),
        ),
        _ => {
            let c = |r: &Option<pb::RouteCounts>| r.unwrap_or_default();
            let (s, p) = (c(&parts.routes.standard), c(&parts.routes.peered));
            (
                "Installed",
                format!(
                    "{}/{} routes of other nodes, {}/{} peered routes installed",
                    s.installed, s.learned, p.installed, p.learned
                ),
            )
        }
    };
    set_condition(&mut status.conditions, "Network", true, "Valid", "", now_ms);
    set_condition(
        &mut status.conditions,
        "Routes",
        routes_ok,
        reason,
        &message,
        now_ms,
    );
    status.routes = Some(parts.routes);
    status.peerings = parts.peerings;
    *status != before
}

/// What a Network's status is made of, apart from its generation.
#[derive(Debug, Clone, Default)]
pub struct NetworkStatusParts {
    /// Interfaces and load balancers of this node in it.
    pub users: u32,
    /// Its table's routes.
    pub routes: pb::NetworkRoutes,
    /// One per peered VNI of its spec.
    pub peerings: Vec<pb::PeeringStatus>,
}

/// Sets condition `kind`, keeping its transition time unless `ok` changes.
fn set_condition(
    conditions: &mut Vec<pb::Condition>,
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now_ms: i64,
) {
    match conditions.iter_mut().find(|c| c.r#type == kind) {
        Some(c) => {
            if c.ok != ok {
                c.last_transition_unix_ms = now_ms;
            }
            c.ok = ok;
            c.reason = reason.into();
            c.message = message.into();
        }
        None => conditions.push(pb::Condition {
            r#type: kind.into(),
            ok,
            reason: reason.into(),
            message: message.into(),
            last_transition_unix_ms: now_ms,
        }),
    }
}
