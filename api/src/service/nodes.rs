//! Nodes in the region actor: registration and leases, the status nodes report for the
//! objects placed on them, and where load balancers go.
//!
//! A node holds a lease while it heartbeats; one whose lease runs out is `NotReady`: it keeps
//! what is placed on it (its dataplane goes on forwarding), but load balancers move to nodes
//! that are Ready, and nothing new is placed on it by the region (interfaces name their node,
//! so they stay).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::node::v1 as node_pb;

use crate::realize::{SOURCE_LABEL, parse_source};
use crate::resources::{self, ObjKey};

use super::ApiError;
use super::actor::{RegionState, unix_ms};

const READY: &str = "Ready";
const NOT_READY: &str = "NotReady";

impl RegionState {
    /// Registers (or re-registers) a node and gives it a lease.
    pub(super) async fn register(
        &mut self,
        req: pb::RegisterRequest,
    ) -> Result<pb::RegisterResponse, ApiError> {
        let node = pb::Node {
            metadata: Some(pb::ObjectMeta {
                name: req.name.clone(),
                labels: req.labels.clone(),
                ..Default::default()
            }),
            spec: Some(pb::NodeSpec {
                underlay_prefix: req.underlay_prefix.clone(),
                vf_capacity: req.vf_capacity,
            }),
            status: None,
        };
        let checked = resources::validate(&pb::Object {
            object: Some(pb::object::Object::Node(node)),
        })?;
        let Some(pb::object::Object::Node(mut node)) = checked.object else {
            return Err(ApiError::BadRequest("register: not a node".into()));
        };
        let key = ObjKey::new("", req.name.clone());
        let now = SystemTime::now();
        let expires = now + self.settings.lease_ttl;
        match self.inv.nodes.get(&req.name) {
            Some(old) => {
                let mut meta = old.metadata.clone().unwrap_or_default();
                meta.labels = req.labels.clone();
                if old.spec != node.spec {
                    meta.generation += 1;
                }
                node.metadata = Some(meta);
                node.status = old.status.clone();
            }
            None => {
                if let Some(m) = node.metadata.as_mut() {
                    m.uid = uuid::Uuid::new_v4().to_string();
                    m.generation = 1;
                    m.created_unix_ms = unix_ms(now);
                }
                tracing::info!(node = %req.name, underlay = %req.underlay_prefix, "node registered");
            }
        }
        let s = node.status.get_or_insert_default();
        s.state = READY.into();
        s.lease_expires_unix_ms = unix_ms(expires);
        self.inv.nodes.insert(req.name.clone(), node);
        self.leases.insert(req.name.clone(), expires);
        self.dirty.insert((pb::Kind::Node, key));
        self.replace_load_balancers();
        Ok(pb::RegisterResponse {
            lease_ttl_ms: lease_ms(self.settings.lease_ttl),
        })
    }

    /// Renews a node's lease; NOT_FOUND when it is not registered (register again).
    pub(super) async fn heartbeat(
        &mut self,
        name: &str,
    ) -> Result<pb::HeartbeatResponse, ApiError> {
        let Some(node) = self.inv.nodes.get_mut(name) else {
            return Err(ApiError::NotFound {
                kind: pb::Kind::Node,
                key: ObjKey::new("", name),
            });
        };
        let expires = SystemTime::now() + self.settings.lease_ttl;
        self.leases.insert(name.to_owned(), expires);
        let s = node.status.get_or_insert_default();
        if s.state != READY {
            // The lease is written only when the state changes, not on every heartbeat.
            s.state = READY.into();
            s.lease_expires_unix_ms = unix_ms(expires);
            tracing::info!(node = name, "node Ready again");
            self.dirty.insert((pb::Kind::Node, ObjKey::new("", name)));
            self.replace_load_balancers();
        }
        Ok(pb::HeartbeatResponse {
            lease_ttl_ms: lease_ms(self.settings.lease_ttl),
        })
    }

    /// Folds the status a node reports for its placed objects into the region objects.
    pub(super) fn report(
        &mut self,
        node: &str,
        objects: Vec<node_pb::Object>,
    ) -> Result<(), ApiError> {
        use node_pb::object::Object as O;
        for obj in objects {
            let (meta, phase, conditions, placed) = match &obj.object {
                Some(O::NetworkInterface(o)) => {
                    let s = o.status.clone().unwrap_or_default();
                    (
                        o.metadata.clone(),
                        s.phase,
                        s.conditions.clone(),
                        Placement::Interface(Box::new(s)),
                    )
                }
                Some(O::LoadBalancer(o)) => {
                    let s = o.status.clone().unwrap_or_default();
                    (
                        o.metadata.clone(),
                        s.phase,
                        s.conditions.clone(),
                        Placement::LoadBalancer,
                    )
                }
                _ => continue,
            };
            let Some((kind, key)) = meta
                .as_ref()
                .and_then(|m| m.labels.get(SOURCE_LABEL))
                .and_then(|l| parse_source(l))
            else {
                continue;
            };
            let state = state_of(phase);
            let conditions: Vec<pb::Condition> = conditions
                .into_iter()
                .map(|c| pb::Condition {
                    r#type: c.r#type,
                    ok: c.ok,
                    reason: c.reason,
                    message: c.message,
                })
                .collect();
            match (kind, placed) {
                (pb::Kind::NetworkInterface, Placement::Interface(ns)) => {
                    let Some(ni) = self.inv.interfaces.get_mut(&key) else {
                        continue;
                    };
                    if ni.spec.as_ref().is_none_or(|s| s.node_name != node) {
                        continue;
                    }
                    let s = ni.status.get_or_insert_default();
                    let pci = ns
                        .pci_address
                        .as_ref()
                        .map(|p| format!("{}:{}:{}.{}", p.domain, p.bus, p.slot, p.function))
                        .unwrap_or_default();
                    let new = (
                        ns.underlay_ip.clone(),
                        pci,
                        ns.tap_device.clone(),
                        state.to_owned(),
                        conditions,
                    );
                    let old = (
                        s.underlay_ip.clone(),
                        s.pci_address.clone(),
                        s.tap_device.clone(),
                        s.state.clone(),
                        s.conditions.clone(),
                    );
                    if new != old {
                        (
                            s.underlay_ip,
                            s.pci_address,
                            s.tap_device,
                            s.state,
                            s.conditions,
                        ) = new;
                        self.dirty.insert((kind, key));
                    }
                }
                (pb::Kind::LoadBalancer, Placement::LoadBalancer) => {
                    let Some(lb) = self.inv.load_balancers.get_mut(&key) else {
                        continue;
                    };
                    let s = lb.status.get_or_insert_default();
                    // One node's view: the balancer is Available when it is on any node.
                    let st = if state == "Available" || s.state == "Available" {
                        "Available"
                    } else {
                        state
                    };
                    if s.state != st {
                        s.state = st.to_owned();
                        self.dirty.insert((kind, key));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every second: nodes whose lease ran out are NotReady, and their load balancers move.
    pub(super) async fn tick(&mut self) {
        let now = SystemTime::now();
        let expired: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let mut changed = false;
        for name in expired {
            self.leases.remove(&name);
            if let Some(s) = self
                .inv
                .nodes
                .get_mut(&name)
                .map(|n| n.status.get_or_insert_default())
                && s.state != NOT_READY
            {
                s.state = NOT_READY.into();
                tracing::warn!(node = %name, "node lease expired: NotReady");
                self.dirty.insert((pb::Kind::Node, ObjKey::new("", name)));
                changed = true;
            }
        }
        if changed {
            self.replace_load_balancers();
        }
        // Peering TTLs: every write computes the peerings again, the one after this tick too.
    }

    fn ready_nodes(&self) -> Vec<String> {
        self.inv
            .nodes
            .iter()
            .filter(|(_, n)| n.status.as_ref().is_some_and(|s| s.state == READY))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Places a load balancer: keeps its Ready nodes and fills up to its replica count with the
    /// Ready nodes that carry the fewest load balancers (then by name).
    pub(super) fn place_load_balancer(&mut self, key: &ObjKey) {
        let ready = self.ready_nodes();
        let mut load: BTreeMap<String, usize> = ready.iter().map(|n| (n.clone(), 0)).collect();
        for (k, lb) in &self.inv.load_balancers {
            if k == key {
                continue;
            }
            for n in lb
                .status
                .as_ref()
                .map(|s| s.nodes.as_slice())
                .unwrap_or_default()
            {
                if let Some(c) = load.get_mut(n) {
                    *c += 1;
                }
            }
        }
        let default_replicas = self.settings.lb_replicas;
        let Some(lb) = self.inv.load_balancers.get_mut(key) else {
            return;
        };
        let want = match lb.spec.as_ref().map_or(0, |s| s.replicas) {
            0 => default_replicas,
            n => n,
        } as usize;
        let s = lb.status.get_or_insert_default();
        let mut nodes: Vec<String> = s
            .nodes
            .iter()
            .filter(|n| load.contains_key(*n))
            .cloned()
            .collect();
        let mut candidates: Vec<(usize, String)> = load
            .into_iter()
            .filter(|(n, _)| !nodes.contains(n))
            .map(|(n, c)| (c, n))
            .collect();
        candidates.sort();
        nodes.extend(
            candidates
                .into_iter()
                .map(|(_, n)| n)
                .take(want.saturating_sub(nodes.len())),
        );
        nodes.truncate(want.max(1));
        nodes.sort();
        if s.nodes != nodes {
            tracing::info!(load_balancer = %key, nodes = ?nodes, "load balancer placed");
            s.nodes = nodes;
            self.touch(pb::Kind::LoadBalancer, key);
        }
    }

    /// Places every load balancer again (a node came or went).
    fn replace_load_balancers(&mut self) {
        let keys: Vec<ObjKey> = self.inv.load_balancers.keys().cloned().collect();
        for k in keys {
            self.place_load_balancer(&k);
        }
    }
}

/// What a node reported an object as.
enum Placement {
    Interface(Box<node_pb::NetworkInterfaceStatus>),
    LoadBalancer,
}

fn state_of(phase: i32) -> &'static str {
    match node_pb::Phase::try_from(phase) {
        Ok(node_pb::Phase::Ready) => "Available",
        Ok(node_pb::Phase::Error) => "Error",
        _ => "Pending",
    }
}

fn lease_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
