//! PublicPrefixes (OEP-1): a PublicPrefix selects interfaces of its namespace by labels, and
//! each selected interface that has no virtual IP of its own gets a public host address from the
//! region's pools, used as its virtual IP (dpservice's 1:1 NAT of a public address to the
//! interface). The addresses belong to the PublicPrefix in the allocator; its status lists which
//! interface has which. Selection follows labels as interfaces come, go and change.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrinet_proto::api::v1 as pb;

use crate::allocator::{AllocatorMsg, IpRequest};
use crate::ipam::IpFamily;
use crate::resources::{self, ObjKey, ip_family};
use crate::selector::Labels;

use super::ApiError;
use super::actor::RegionState;
use super::allocate::owner;

impl RegionState {
    /// The address a PublicPrefix gives `interface`, if any.
    pub(super) fn public_prefix_address(&self, interface: &ObjKey) -> Option<String> {
        self.inv
            .public_prefixes
            .iter()
            .filter(|(k, _)| k.namespace == interface.namespace)
            .flat_map(|(_, p)| p.status.iter().flat_map(|s| s.targets.iter()))
            .find(|t| {
                t.network_interface
                    .as_ref()
                    .is_some_and(|r| ObjKey::resolve(r, &interface.namespace) == *interface)
            })
            .and_then(|t| t.prefix.split('/').next().map(str::to_owned))
    }

    /// Brings every PublicPrefix of `namespace` in line with the interfaces it selects now.
    pub(super) async fn reconcile_public_prefixes(&mut self, namespace: &str) {
        let keys: Vec<ObjKey> = self
            .inv
            .public_prefixes
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for key in keys {
            let message = match self.reconcile_public_prefix(&key).await {
                Ok(()) => String::new(),
                Err(e) => super::error::error_chain(&e),
            };
            if let Some(s) = self
                .inv
                .public_prefixes
                .get_mut(&key)
                .map(|p| p.status.get_or_insert_default())
                && s.message != message
            {
                s.message = message;
                self.dirty.insert((pb::Kind::PublicPrefix, key));
            }
        }
    }

    async fn reconcile_public_prefix(&mut self, key: &ObjKey) -> Result<(), ApiError> {
        let Some(pp) = self.inv.public_prefixes.get(key).cloned() else {
            return Ok(());
        };
        let spec = pp.spec.unwrap_or_default();
        let family = ip_family(&spec.ip_family).unwrap_or(IpFamily::V4);
        let selector =
            resources::selector(&spec.selector.clone().unwrap_or_default(), "spec.selector")?;
        let selected: Vec<ObjKey> = self
            .inv
            .interfaces
            .iter()
            .filter(|(k, ni)| {
                let labels: Labels = ni
                    .metadata
                    .as_ref()
                    .map(|m| {
                        m.labels
                            .iter()
                            .map(|(a, b)| (a.clone(), b.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                k.namespace == key.namespace
                    && ni.spec.as_ref().is_some_and(|s| s.virtual_ip.is_none())
                    && selector.matches(&labels)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut have: BTreeMap<ObjKey, String> = pp
            .status
            .iter()
            .flat_map(|s| s.targets.iter())
            .filter_map(|t| {
                let ni = ObjKey::resolve(t.network_interface.as_ref()?, &key.namespace);
                Some((ni, t.prefix.clone()))
            })
            .collect();
        let owner = owner(pb::Kind::PublicPrefix, key);
        let mut changed: Vec<ObjKey> = Vec::new();
        // Interfaces no longer selected give their address back.
        let gone: Vec<ObjKey> = have
            .keys()
            .filter(|k| !selected.contains(k))
            .cloned()
            .collect();
        for ni in gone {
            if let Some(prefix) = have.remove(&ni)
                && let Some(ip) = prefix
                    .split('/')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
            {
                let o = owner.clone();
                self.ask_release_one(o, ip).await;
            }
            changed.push(ni);
        }
        let mut result = Ok(());
        for ni in selected {
            if have.contains_key(&ni) {
                continue;
            }
            let o = owner.clone();
            let what = || format!("publicprefixes {key}: a public address for {ni}");
            match self.ask_public(what, o, IpRequest::Family(family)).await {
                Ok(ip) => {
                    let len = if ip.is_ipv4() { 32 } else { 128 };
                    have.insert(ni.clone(), format!("{ip}/{len}"));
                    changed.push(ni);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let targets: Vec<pb::PublicPrefixTarget> = have
            .iter()
            .map(|(ni, prefix)| pb::PublicPrefixTarget {
                network_interface: Some(ni.to_ref()),
                prefix: prefix.clone(),
            })
            .collect();
        if let Some(s) = self
            .inv
            .public_prefixes
            .get_mut(key)
            .map(|p| p.status.get_or_insert_default())
            && s.targets != targets
        {
            s.prefixes = targets.iter().map(|t| t.prefix.clone()).collect();
            s.targets = targets;
            self.dirty.insert((pb::Kind::PublicPrefix, key.clone()));
        }
        for ni in changed {
            let vip = self.public_prefix_address(&ni).unwrap_or_default();
            if let Some(s) = self
                .inv
                .interfaces
                .get_mut(&ni)
                .map(|o| o.status.get_or_insert_default())
                && s.virtual_ip != vip
            {
                s.virtual_ip = vip;
            }
            // Its NAT slice (if any) follows from the virtual IP.
            let _ = self.allocate(pb::Kind::NetworkInterface, &ni, false).await;
            self.touch(pb::Kind::NetworkInterface, &ni);
        }
        result
    }

    /// Releases every address of a PublicPrefix and takes them from its interfaces.
    pub(super) async fn release_public_prefix(&mut self, key: &ObjKey) {
        let targets: Vec<ObjKey> = self
            .inv
            .public_prefixes
            .get(key)
            .into_iter()
            .flat_map(|p| p.status.iter().flat_map(|s| s.targets.iter()))
            .filter_map(|t| {
                Some(ObjKey::resolve(
                    t.network_interface.as_ref()?,
                    &key.namespace,
                ))
            })
            .collect();
        let o = owner(pb::Kind::PublicPrefix, key);
        let what = || format!("release the addresses of publicprefixes {key}");
        if let Err(e) = self
            .ask(what, |r| AllocatorMsg::ReleasePublicIps(o, r))
            .await
        {
            tracing::warn!(%key, error = %super::error::error_chain(&e), "release failed: addresses stay taken until the next start");
        }
        if let Some(s) = self
            .inv
            .public_prefixes
            .get_mut(key)
            .and_then(|p| p.status.as_mut())
        {
            s.targets.clear();
            s.prefixes.clear();
        }
        for ni in targets {
            if let Some(s) = self
                .inv
                .interfaces
                .get_mut(&ni)
                .and_then(|o| o.status.as_mut())
            {
                s.virtual_ip.clear();
            }
            let _ = self.allocate(pb::Kind::NetworkInterface, &ni, false).await;
            self.touch(pb::Kind::NetworkInterface, &ni);
        }
    }

    async fn ask_public(
        &self,
        what: impl FnOnce() -> String,
        owner: String,
        req: IpRequest,
    ) -> Result<IpAddr, ApiError> {
        self.ask(what, |r| AllocatorMsg::PublicIp(owner, req, r))
            .await
    }

    async fn ask_release_one(&self, owner: String, ip: IpAddr) {
        let what = || format!("release {ip} of {owner}");
        let o = owner.clone();
        if let Err(e) = self
            .ask(what, |r| AllocatorMsg::ReleasePublicIp(o, ip, r))
            .await
        {
            tracing::warn!(%owner, %ip, error = %super::error::error_chain(&e), "release failed: the address stays taken until the next start");
        }
    }
}
