//! The ApiActor's side of the networks: one NetworkActor per VNI in use, the peerings that
//! feed each VNI's table, and the Network status built from the actors' reports.

use std::collections::{BTreeMap, BTreeSet};

use ferrinet_proto::node::v1 as pb;
use ractor::{Actor, ActorRef};

use super::objects::{self, Entry, Key, ObjectActor};
use super::{ApiMsg, ApiState, now_ms};
use crate::interface::InterfaceMsg;
use crate::load_balancer::LoadBalancerMsg;
use crate::network::status::{self, NetworkReport};
use crate::network::{Exports, NetworkActor, NetworkArgs, NetworkMsg};
use crate::spec::NetworkSpec;

/// For each VNI in `in_use`, the VNIs exporting into it: a network of VNI `X` that lists `P`
/// exports its routes into `P`, within its filter for `P`. Two networks of one VNI merge: an
/// unfiltered export wins, filters add up.
pub fn exports_into<'a>(
    networks: impl Iterator<Item = &'a NetworkSpec>,
    in_use: &BTreeSet<u32>,
) -> BTreeMap<u32, Exports> {
    let mut out: BTreeMap<u32, Exports> = BTreeMap::new();
    for n in networks {
        for (peer, filter) in &n.peerings {
            if !in_use.contains(peer) || *peer == n.vni {
                continue;
            }
            let e = out.entry(*peer).or_default();
            match (e.get_mut(&n.vni), filter) {
                (None, f) => {
                    e.insert(n.vni, f.clone());
                }
                (Some(cur), None) => *cur = None,
                (Some(Some(cur)), Some(f)) => {
                    cur.extend(f.iter().copied());
                    cur.sort();
                    cur.dedup();
                }
                (Some(None), Some(_)) => {}
            }
        }
    }
    out
}

impl ApiState {
    /// Tells the actors of `network`'s users its (new) VNI.
    pub(super) fn network_changed(&mut self, network: &str) {
        let vni = self.vni_of(network);
        for e in self.objects.values() {
            match (&e.parsed, &e.actor) {
                (objects::Parsed::Interface(s), Some(ObjectActor::Interface(a)))
                    if s.network == network =>
                {
                    let _ = a.send_message(InterfaceMsg::Network(vni));
                }
                (objects::Parsed::LoadBalancer(s), Some(ObjectActor::LoadBalancer(a)))
                    if s.network == network =>
                {
                    let _ = a.send_message(LoadBalancerMsg::Network(vni));
                }
                _ => {}
            }
        }
        self.refresh_network(network);
    }

    pub(super) fn users(&self, network: &str) -> Vec<String> {
        self.objects
            .iter()
            .filter(|(_, e)| e.parsed.network() == Some(network))
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// Recomputes a Network's status (users, routes, peerings) and publishes a change.
    pub(super) fn refresh_network(&mut self, network: &str) {
        let users = u32::try_from(self.users(network).len()).unwrap_or(u32::MAX);
        let key = Key::new(pb::Kind::Network, network);
        let (routes, peerings) = match self.objects.get(&key) {
            Some(Entry {
                parsed: objects::Parsed::Network(spec),
                ..
            }) => (
                self.reports
                    .get(&spec.vni)
                    .map_or_else(status::not_in_use, NetworkReport::to_pb),
                spec.peerings
                    .keys()
                    .map(|&peer| status::peering(spec.vni, peer, &self.reports))
                    .collect(),
            ),
            _ => return,
        };
        let changed = match self.objects.get_mut(&key) {
            Some(e) => objects::set_network_status(
                &mut e.object,
                objects::NetworkStatusParts {
                    users,
                    routes,
                    peerings,
                },
                now_ms(),
            ),
            None => false,
        };
        if changed {
            self.bump_status(&key);
        }
    }

    /// Refreshes every Network's status: a report of one VNI shows in the peerings of others.
    fn refresh_networks(&mut self) {
        for name in self.names(pb::Kind::Network) {
            self.refresh_network(&name);
        }
    }

    /// A NetworkActor's new report.
    pub(super) fn network_report(&mut self, vni: u32, report: NetworkReport) {
        if !self.networks.contains_key(&vni) {
            return;
        }
        self.reports.insert(vni, report);
        self.refresh_networks();
    }

    /// The default router: learned from the public VNI, else the configured one.
    pub(super) fn router(&self) -> Option<std::net::Ipv6Addr> {
        self.learned_router.or(self.ctx.router)
    }

    /// The VNIs in use: those of the networks of every interface and load balancer.
    fn vnis_in_use(&self) -> std::collections::BTreeSet<u32> {
        self.objects
            .values()
            .filter_map(|e| e.parsed.network())
            .filter_map(|n| self.vni_of(n))
            .collect()
    }

    /// Starts a NetworkActor for every VNI that came into use, stops those of VNIs no longer
    /// used (their subscriptions end with them).
    pub(super) async fn sync_networks(&mut self, myself: &ActorRef<ApiMsg>) {
        let in_use = self.vnis_in_use();
        let gone: Vec<u32> = self
            .networks
            .keys()
            .filter(|v| !in_use.contains(v))
            .copied()
            .collect();
        for vni in gone {
            if let Some(a) = self.networks.remove(&vni) {
                tracing::info!(vni, "VNI no longer in use");
                a.stop(None);
            }
        }
        for vni in in_use {
            if self.networks.contains_key(&vni) {
                continue;
            }
            let args = NetworkArgs {
                vni,
                router: self.router(),
                ipv6: self.ctx.ipv6,
                ctx: self.ctx.clone(),
            };
            match Actor::spawn_linked(None, NetworkActor, args, myself.get_cell()).await {
                Ok((a, _)) => {
                    tracing::info!(vni, "VNI in use");
                    self.networks.insert(vni, a);
                }
                Err(e) => tracing::error!(vni, error = %e, "cannot start network actor"),
            }
        }
        // Each VNI's actor installs the targets of the load balancers of this node in it.
        let mut lbs: BTreeMap<u32, BTreeMap<std::net::IpAddr, String>> = BTreeMap::new();
        for (k, e) in &self.objects {
            if let objects::Parsed::LoadBalancer(spec) = &e.parsed
                && !e.deleting
                && let Some(vni) = self.vni_of(&spec.network)
            {
                lbs.entry(vni).or_default().insert(spec.ip, k.name.clone());
            }
        }
        let mut exports = exports_into(
            self.objects.values().filter_map(|e| match &e.parsed {
                objects::Parsed::Network(n) if !e.deleting => Some(n),
                _ => None,
            }),
            &self.networks.keys().copied().collect(),
        );
        for (vni, a) in &self.networks {
            let _ = a.send_message(NetworkMsg::LoadBalancers(
                lbs.remove(vni).unwrap_or_default(),
            ));
            let _ = a.send_message(NetworkMsg::Exports(exports.remove(vni).unwrap_or_default()));
        }
        let before = self.reports.len();
        let networks = &self.networks;
        self.reports.retain(|vni, _| networks.contains_key(vni));
        if self.reports.len() != before {
            self.refresh_networks();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(vni: u32, peers: &[(u32, Option<&[&str]>)]) -> NetworkSpec {
        NetworkSpec {
            vni,
            peerings: peers
                .iter()
                .map(|(p, f)| {
                    (
                        *p,
                        f.map(|f| f.iter().map(|s| s.parse().expect("prefix")).collect()),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn exports_go_into_tables_in_use_and_merge() {
        let nets = [
            net(7, &[(8, Some(&["10.7.0.0/24"])), (9, None)]),
            net(7, &[(8, Some(&["10.7.1.0/24"]))]),
            net(8, &[(7, None)]),
        ];
        let in_use: BTreeSet<u32> = [7, 8].into();
        let e = exports_into(nets.iter(), &in_use);
        let filter = e[&8][&7].clone().expect("filtered");
        assert_eq!(
            filter,
            vec![
                "10.7.0.0/24".parse::<ipnet::IpNet>().expect("prefix"),
                "10.7.1.0/24".parse().expect("prefix")
            ]
        );
        assert_eq!(e[&7][&8], None);
        assert!(!e.contains_key(&9), "9 is not in use");
        let nets = [net(7, &[(8, Some(&["10.7.0.0/24"]))]), net(7, &[(8, None)])];
        assert_eq!(exports_into(nets.iter(), &in_use)[&8][&7], None);
    }
}
