//! Writing a change: realize the affected networks (pure), fold what follows into the
//! statuses of the objects concerned, and write those objects and the placed node objects that
//! changed, in transactions of at most [`MAX_FENCED_TXN_OPS`] operations (the fence is one more).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use ferrinet_proto::api::v1 as pb;
use prost::Message as _;

use crate::dns::{DnsEntry, records};
use crate::realize::{self, NetworkRealized};
use crate::resources::ObjKey;
use crate::store::{Expect, MAX_FENCED_TXN_OPS, Txn};

use super::actor::{Place, RegionState};
use super::{ApiError, keys};

/// One write of the store.
#[derive(Debug)]
pub(super) enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

impl RegionState {
    /// Realizes what changed and writes everything not written yet.
    pub(super) async fn write(&mut self) -> Result<(), ApiError> {
        self.realize_affected();
        self.update_nat_gateways().await;
        self.update_dns();
        let mut ops: Vec<Op> = Vec::new();
        for (kind, key) in std::mem::take(&mut self.deleted) {
            if self.object(kind, &key).is_none() {
                ops.push(Op::Delete(keys::object_key(kind, &key)));
            }
        }
        for (kind, key) in std::mem::take(&mut self.dirty) {
            if let Some(obj) = self.object(kind, &key) {
                ops.push(Op::Put(keys::object_key(kind, &key), obj.encode_to_vec()));
            }
        }
        ops.extend(std::mem::take(&mut self.placed_ops));
        for chunk in ops.chunks(MAX_FENCED_TXN_OPS) {
            let mut txn = match &self.fence {
                Some(f) => Txn::new().fenced(f),
                None => Txn::new(),
            };
            let mut written: Vec<(&str, bool)> = Vec::with_capacity(chunk.len());
            for op in chunk {
                let (key, put) = match op {
                    Op::Put(k, _) => (k.as_str(), true),
                    Op::Delete(k) => (k.as_str(), false),
                };
                let expect = match self.revisions.get(key) {
                    Some(r) => Expect::ModRevision(*r),
                    None => Expect::Absent,
                };
                txn = match op {
                    Op::Put(k, v) => txn.put(k.clone(), v.clone(), expect),
                    Op::Delete(k) => txn.delete(k.clone(), expect),
                };
                written.push((key, put));
            }
            let revision = self.store.txn(txn).await?;
            for (key, put) in written {
                if put {
                    self.revisions.insert(key.to_owned(), revision);
                } else {
                    self.revisions.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Peerings of every network, then the affected networks realized again.
    fn realize_affected(&mut self) {
        let now = SystemTime::now();
        let peerings = realize::realize_peerings(&self.inv, now, self.settings.peering_ttl);
        for (key, derived) in &peerings {
            if self.peerings.get(key) == Some(derived) {
                continue;
            }
            self.apply_peering(key, derived);
            self.affected.insert(key.clone());
        }
        for key in self.peerings.keys() {
            if !peerings.contains_key(key) {
                self.affected.insert(key.clone());
            }
        }
        self.peerings = peerings;
        if self.affected.is_empty() && !self.full_sweep {
            return;
        }
        // A network's nodes also hold its Ready peers' Network objects: realize the peers too.
        let mut todo: BTreeSet<ObjKey> = std::mem::take(&mut self.affected);
        for key in todo.clone() {
            if let Some(d) = self.peerings.get(&key) {
                for p in &d.peerings {
                    if let Some((ns, name)) = p.network.split_once('/') {
                        todo.insert(ObjKey::new(ns, name));
                    }
                }
                for r in &d.incoming {
                    todo.insert(ObjKey::resolve(r, &key.namespace));
                }
            }
        }
        for key in todo {
            let fresh = if self.inv.networks.contains_key(&key) {
                realize::realize_network(&self.inv, &self.peerings, &key)
            } else {
                NetworkRealized::default()
            };
            self.apply_derived(&fresh);
            let old = self.realized.remove(&key).unwrap_or_default();
            self.replace_contribution(&key, &old, &fresh);
            if self.inv.networks.contains_key(&key) {
                self.realized.insert(key, fresh);
            }
        }
        if std::mem::take(&mut self.full_sweep) {
            // Every network was realized: what none places is left over from before.
            self.sweep_unowned();
        }
    }

    /// Puts a network's peering states into its status; drops expired items from its spec.
    fn apply_peering(&mut self, key: &ObjKey, d: &realize::NetworkDerived) {
        let Some(n) = self.inv.networks.get_mut(key) else {
            return;
        };
        if !d.expired.is_empty() {
            if let Some(spec) = n.spec.as_mut() {
                spec.peerings.retain(|p| !d.expired.contains(&p.name));
            }
            if let Some(m) = n.metadata.as_mut() {
                m.generation += 1;
            }
            tracing::info!(network = %key, expired = ?d.expired, "unmatched peerings dropped after their TTL");
        }
        let s = n.status.get_or_insert_default();
        s.peerings = d.peerings.clone();
        s.incoming_peerings = d.incoming.clone();
        s.peering_unready_since_unix_ms = d
            .unready_since_unix_ms
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.dirty.insert((pb::Kind::Network, key.clone()));
    }

    /// Folds realize's verdicts into the statuses of interfaces, load balancers and policies.
    fn apply_derived(&mut self, r: &NetworkRealized) {
        for (key, d) in &r.interfaces {
            let alloc = self.alloc_message(pb::Kind::NetworkInterface, key);
            if let Some(s) = self
                .inv
                .interfaces
                .get_mut(key)
                .map(|o| o.status.get_or_insert_default())
            {
                let message = join_messages(&alloc, &d.message);
                if s.firewall_rules != d.firewall_rules || s.message != message {
                    s.firewall_rules = d.firewall_rules;
                    s.message = message;
                    self.dirty.insert((pb::Kind::NetworkInterface, key.clone()));
                }
            }
        }
        for (key, d) in &r.load_balancers {
            let alloc = self.alloc_message(pb::Kind::LoadBalancer, key);
            if let Some(s) = self
                .inv
                .load_balancers
                .get_mut(key)
                .map(|o| o.status.get_or_insert_default())
            {
                let message = join_messages(&alloc, &d.message);
                if s.targets != d.targets || s.message != message {
                    s.targets = d.targets.clone();
                    s.message = message;
                    self.dirty.insert((pb::Kind::LoadBalancer, key.clone()));
                }
            }
        }
        for (key, d) in &r.policies {
            if let Some(s) = self
                .inv
                .policies
                .get_mut(key)
                .map(|o| o.status.get_or_insert_default())
                && (s.selected_interfaces != d.selected_interfaces || s.message != d.message)
            {
                s.selected_interfaces = d.selected_interfaces;
                s.message = d.message.clone();
                self.dirty.insert((pb::Kind::NetworkPolicy, key.clone()));
            }
        }
    }

    /// Replaces what network `key` places (`old`) by `fresh`, and queues the store writes of
    /// the node objects that appear, change or lose their last contributor.
    fn replace_contribution(
        &mut self,
        key: &ObjKey,
        old: &NetworkRealized,
        fresh: &NetworkRealized,
    ) {
        let places = |r: &NetworkRealized| -> BTreeSet<Place> {
            r.placed
                .iter()
                .flat_map(|(node, objs)| objs.keys().map(move |k| (node.clone(), k.clone())))
                .collect()
        };
        let (before, after) = (places(old), places(fresh));
        for place in before.difference(&after) {
            let gone = match self.contributors.get_mut(place) {
                Some(set) => {
                    set.remove(key);
                    set.is_empty()
                }
                None => true,
            };
            if gone {
                self.contributors.remove(place);
                if self.placed.remove(place).is_some() {
                    self.placed_ops.push(Op::Delete(keys::placed_key(
                        &place.0,
                        place.1.kind,
                        &place.1.name,
                    )));
                }
            }
        }
        for (node, objs) in &fresh.placed {
            for (pk, obj) in objs {
                let place = (node.clone(), pk.clone());
                self.contributors
                    .entry(place.clone())
                    .or_default()
                    .insert(key.clone());
                if self.placed.get(&place) != Some(obj) {
                    self.placed_ops.push(Op::Put(
                        keys::placed_key(node, pk.kind, &pk.name),
                        obj.encode_to_vec(),
                    ));
                    self.placed.insert(place, obj.clone());
                }
            }
        }
    }

    /// Removes placed node objects that no network places any more.
    pub(super) fn sweep_unowned(&mut self) {
        let stale: Vec<Place> = self
            .placed
            .keys()
            .filter(|p| !self.contributors.contains_key(*p))
            .cloned()
            .collect();
        for place in stale {
            self.placed.remove(&place);
            self.placed_ops.push(Op::Delete(keys::placed_key(
                &place.0,
                place.1.kind,
                &place.1.name,
            )));
        }
    }

    /// A NAT gateway's status: its addresses in use and how full it is.
    async fn update_nat_gateways(&mut self) {
        let gateways: Vec<ObjKey> = self.inv.nat_gateways.keys().cloned().collect();
        for gw in gateways {
            let net = self.network_of(pb::Kind::NatGateway, &gw);
            let mut ips: BTreeSet<String> = BTreeSet::new();
            let mut used = 0u32;
            for (k, ni) in &self.inv.interfaces {
                let Some(s) = ni.status.as_ref() else {
                    continue;
                };
                if !s.nat_ip.is_empty() && self.network_of(pb::Kind::NetworkInterface, k) == net {
                    ips.insert(s.nat_ip.clone());
                    used += 1;
                }
            }
            let capacity = match self
                .allocator
                .call(
                    |r| crate::allocator::AllocatorMsg::NatStatus(gw.to_string(), r),
                    None,
                )
                .await
            {
                Ok(ractor::rpc::CallResult::Success(Some(st))) => {
                    u32::try_from(st.slices_total).unwrap_or(u32::MAX)
                }
                _ => 0,
            };
            let ips: Vec<pb::NatGatewayIp> = ips
                .into_iter()
                .enumerate()
                .map(|(i, ip)| pb::NatGatewayIp {
                    name: format!("ip{}", i + 1),
                    ip,
                })
                .collect();
            let alloc = self.alloc_message(pb::Kind::NatGateway, &gw);
            if let Some(s) = self
                .inv
                .nat_gateways
                .get_mut(&gw)
                .map(|o| o.status.get_or_insert_default())
                && (s.ips != ips
                    || s.used_slices != used
                    || s.capacity != capacity
                    || s.message != alloc)
            {
                s.ips = ips;
                s.used_slices = used;
                s.capacity = capacity;
                s.message = alloc;
                self.dirty.insert((pb::Kind::NatGateway, gw.clone()));
            }
        }
    }

    /// DNS: every interface's name into its status, and the record set replaced when names
    /// or addresses changed.
    fn update_dns(&mut self) {
        let Some((zone, handle)) = self.settings.dns.clone() else {
            return;
        };
        let changed = self
            .dirty
            .iter()
            .any(|(k, _)| *k == pb::Kind::NetworkInterface)
            || self
                .deleted
                .iter()
                .any(|(k, _)| *k == pb::Kind::NetworkInterface);
        if !changed {
            return;
        }
        let mut entries = Vec::new();
        let mut names: BTreeMap<ObjKey, String> = BTreeMap::new();
        for (key, ni) in &self.inv.interfaces {
            let Some(spec) = ni.spec.as_ref() else {
                continue;
            };
            if spec.hostname.is_empty() {
                names.insert(key.clone(), String::new());
                continue;
            }
            let network = spec
                .network_ref
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default();
            let entry = DnsEntry {
                namespace: key.namespace.clone(),
                network,
                hostname: spec.hostname.clone(),
                addresses: ni
                    .status
                    .as_ref()
                    .map(|s| s.ips.iter().filter_map(|a| a.parse().ok()).collect())
                    .unwrap_or_default(),
            };
            names.insert(key.clone(), handle.name_of(&entry).unwrap_or_default());
            entries.push(entry);
        }
        handle.replace(records(&zone, &entries));
        for (key, name) in names {
            if let Some(s) = self
                .inv
                .interfaces
                .get_mut(&key)
                .map(|o| o.status.get_or_insert_default())
                && s.dns_name != name
            {
                s.dns_name = name;
                self.dirty.insert((pb::Kind::NetworkInterface, key));
            }
        }
    }

    /// The message the last allocation of an object left.
    fn alloc_message(&self, kind: pb::Kind, key: &ObjKey) -> String {
        self.alloc_messages
            .get(&(kind, key.clone()))
            .cloned()
            .unwrap_or_default()
    }

    /// Remembers the message of an object's allocation; whether it changed.
    pub(super) fn set_alloc_message(
        &mut self,
        kind: pb::Kind,
        key: &ObjKey,
        message: String,
    ) -> bool {
        let k = (kind, key.clone());
        let old = self.alloc_messages.get(&k).cloned().unwrap_or_default();
        if message.is_empty() {
            self.alloc_messages.remove(&k);
        } else {
            self.alloc_messages.insert(k, message.clone());
        }
        if old != message {
            self.set_status_message(kind, key, &message);
        }
        old != message
    }

    fn set_status_message(&mut self, kind: pb::Kind, key: &ObjKey, message: &str) {
        match kind {
            pb::Kind::Network => {
                if let Some(s) = self
                    .inv
                    .networks
                    .get_mut(key)
                    .map(|o| o.status.get_or_insert_default())
                {
                    s.message = message.to_owned();
                }
            }
            pb::Kind::NetworkInterface => {
                if let Some(s) = self
                    .inv
                    .interfaces
                    .get_mut(key)
                    .map(|o| o.status.get_or_insert_default())
                {
                    s.message = message.to_owned();
                }
            }
            pb::Kind::LoadBalancer => {
                if let Some(s) = self
                    .inv
                    .load_balancers
                    .get_mut(key)
                    .map(|o| o.status.get_or_insert_default())
                {
                    s.message = message.to_owned();
                }
            }
            pb::Kind::NatGateway => {
                if let Some(s) = self
                    .inv
                    .nat_gateways
                    .get_mut(key)
                    .map(|o| o.status.get_or_insert_default())
                {
                    s.message = message.to_owned();
                }
            }
            _ => {}
        }
    }

    pub(super) fn set_network_status(&mut self, key: &ObjKey, status: pb::NetworkStatus) {
        if let Some(n) = self.inv.networks.get_mut(key) {
            n.status = Some(status);
        }
        self.touch(pb::Kind::Network, key);
    }
}

fn join_messages(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}; {b}"),
    }
}
