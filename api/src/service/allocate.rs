//! The allocations of each kind, made through the allocator actor and written into the
//! object's status: a network's VNI and subnets, an interface's addresses, virtual IP and NAT
//! slice, a virtual IP's and a load balancer's addresses, a NAT gateway's definition.
//!
//! A request the caller makes (`strict`: create, update) fails as a whole when a value it asks
//! for cannot be had (a fixed address taken, a pool empty). An object that waits for another
//! (an interface created before its network) is accepted and allocated when that one arrives
//! (`strict = false`), with the reason in its status meanwhile.
//!
//! Owners in the allocator are `<kind>/<namespace>/<name>`, networks `<namespace>/<name>`.

use std::net::IpAddr;

use ferrinet_proto::api::v1 as pb;
use ractor::RpcReplyPort;

use crate::allocator::{AllocError, AllocatorMsg, IpRequest, records::Allocation};
use crate::ipam::{IpFamily, PortsPerInterface};
use crate::resources::{self, ObjKey, ip_family, kind_word};

use super::ApiError;
use super::actor::RegionState;

/// The allocator owner of an object.
pub(super) fn owner(kind: pb::Kind, key: &ObjKey) -> String {
    match kind {
        pb::Kind::Network => key.to_string(),
        _ => format!("{}/{key}", kind_word(kind)),
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn family_of(s: &str) -> Option<IpFamily> {
    parse_ip(s).map(IpFamily::of)
}

/// What to ask for one family: the fixed address of that family, else the one held already
/// (the same again after a restart), else any.
fn request(family: IpFamily, fixed: &[String], held: &[String]) -> IpRequest {
    fixed
        .iter()
        .chain(held)
        .filter_map(|s| parse_ip(s))
        .find(|ip| IpFamily::of(*ip) == family)
        .map_or(IpRequest::Family(family), IpRequest::Fixed)
}

impl RegionState {
    /// Calls the allocator; `what` names the request in the error.
    pub(super) async fn ask<T: Send + 'static>(
        &self,
        what: impl FnOnce() -> String,
        msg: impl FnOnce(RpcReplyPort<Result<T, AllocError>>) -> AllocatorMsg,
    ) -> Result<T, ApiError> {
        match self.allocator.call(msg, None).await {
            Ok(ractor::rpc::CallResult::Success(Ok(v))) => Ok(v),
            Ok(ractor::rpc::CallResult::Success(Err(source))) => Err(ApiError::Allocation {
                what: what(),
                source,
            }),
            _ => Err(ApiError::Unavailable { leader: None }),
        }
    }

    /// Makes the allocations of one object. Without `strict`, failures go into its status
    /// message instead.
    pub(super) async fn allocate(
        &mut self,
        kind: pb::Kind,
        key: &ObjKey,
        strict: bool,
    ) -> Result<(), ApiError> {
        let r = match kind {
            pb::Kind::Network => self.allocate_network(key).await,
            pb::Kind::NetworkInterface => self.allocate_interface(key).await,
            pb::Kind::VirtualIp => self.allocate_virtual_ip(key).await,
            pb::Kind::NatGateway => self.allocate_nat_gateway(key).await,
            pb::Kind::LoadBalancer => self.allocate_load_balancer(key).await,
            _ => Ok(String::new()),
        };
        let message = match r {
            Ok(m) => m,
            Err(e) if strict => return Err(e),
            Err(e) => super::error::error_chain(&e),
        };
        if self.set_alloc_message(kind, key, message) {
            self.touch(kind, key);
        }
        Ok(())
    }

    async fn allocate_network(&mut self, key: &ObjKey) -> Result<String, ApiError> {
        let Some(net) = self.inv.networks.get(key).cloned() else {
            return Ok(String::new());
        };
        let spec = net.spec.clone().unwrap_or_default();
        let mut status = net.status.clone().unwrap_or_default();
        let owner = owner(pb::Kind::Network, key);
        let fixed = (spec.vni != 0).then_some(spec.vni);
        let vni = self
            .ask(
                || format!("networks {key}: VNI"),
                |r| AllocatorMsg::Vni(owner.clone(), fixed, r),
            )
            .await?;
        let subnets = resources::subnets(&spec)?;
        let misfits = self
            .ask(
                || format!("networks {key}: subnets"),
                |r| AllocatorMsg::Subnets(owner.clone(), subnets, r),
            )
            .await?;
        status.vni = vni;
        status.state = "Available".into();
        let uid = net.metadata.as_ref().map_or("", |m| m.uid.as_str());
        status.provider_id = format!("ferrinet://{}/{}/{vni}/{uid}", key.namespace, key.name);
        if net.status.as_ref() != Some(&status) {
            self.set_network_status(key, status);
        }
        if !misfits.is_empty() {
            let list: Vec<String> = misfits.iter().map(|(o, ip)| format!("{o} {ip}")).collect();
            return Ok(format!(
                "addresses outside the subnets stay with their owners until released: {}",
                list.join(", ")
            ));
        }
        // Objects of the network that waited for it.
        self.allocate_users(key).await;
        Ok(String::new())
    }

    /// Allocates again, leniently, every interface and load balancer of `network` (boxed: it
    /// is reached from [`Self::allocate`] itself).
    pub(super) fn allocate_users<'a>(
        &'a mut self,
        network: &'a ObjKey,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.allocate_users_now(network))
    }

    async fn allocate_users_now(&mut self, network: &ObjKey) {
        let users: Vec<(pb::Kind, ObjKey)> = self
            .inv
            .interfaces
            .keys()
            .map(|k| (pb::Kind::NetworkInterface, k.clone()))
            .chain(
                self.inv
                    .load_balancers
                    .keys()
                    .map(|k| (pb::Kind::LoadBalancer, k.clone())),
            )
            .filter(|(kind, k)| self.network_of(*kind, k).as_ref() == Some(network))
            .collect();
        for (kind, k) in users {
            let _ = self.allocate(kind, &k, false).await;
        }
    }

    /// The network of an object and its VNI, or why there is none yet.
    fn network_vni(&self, kind: pb::Kind, key: &ObjKey) -> Result<(ObjKey, u32), String> {
        let net = self
            .network_of(kind, key)
            .ok_or_else(|| "spec.networkRef: no network".to_string())?;
        match self.inv.networks.get(&net) {
            None => Err(format!("waiting for network {net}")),
            Some(n) => match n.status.as_ref().map_or(0, |s| s.vni) {
                0 => Err(format!("waiting for network {net} to get a VNI")),
                vni => Ok((net, vni)),
            },
        }
    }

    async fn allocate_interface(&mut self, key: &ObjKey) -> Result<String, ApiError> {
        let kind = pb::Kind::NetworkInterface;
        let Some(ni) = self.inv.interfaces.get(key).cloned() else {
            return Ok(String::new());
        };
        let (net, vni) = match self.network_vni(kind, key) {
            Ok(x) => x,
            Err(why) => return Ok(why),
        };
        let spec = ni.spec.clone().unwrap_or_default();
        let mut status = ni.status.clone().unwrap_or_default();
        let owner = owner(kind, key);
        let fixed: Vec<String> = spec.ips.iter().map(|v| v.value.clone()).collect();
        let mut ips = Vec::new();
        for family in spec.ip_families.iter().filter_map(|f| ip_family(f)) {
            let req = request(family, &fixed, &status.ips);
            let ip = self
                .ask(
                    || format!("networkinterfaces {key}: {family} address in {net}"),
                    |r| AllocatorMsg::Ip(net.to_string(), owner.clone(), req, r),
                )
                .await?;
            ips.push(ip.to_string());
        }
        status.ips = ips;
        status.vni = vni;
        status.virtual_ip = self.interface_virtual_ip(key, &spec, &status).await?;
        let has_v4 = status
            .ips
            .iter()
            .any(|s| family_of(s) == Some(IpFamily::V4));
        let gateway = self.nat_gateway_of(&net);
        match gateway {
            Some(gw) if status.virtual_ip.is_empty() && has_v4 => {
                let slice = self
                    .ask(
                        || format!("networkinterfaces {key}: NAT slice of {gw}"),
                        |r| AllocatorMsg::NatSlice(gw.to_string(), owner.clone(), r),
                    )
                    .await?;
                status.nat_ip = slice.ip.to_string();
                status.nat_port = u32::from(slice.port);
                status.nat_end_port = u32::from(slice.end_port);
            }
            _ => {
                if !status.nat_ip.is_empty() {
                    self.release_nat(&net, &owner).await;
                }
                status.nat_ip.clear();
                status.nat_port = 0;
                status.nat_end_port = 0;
            }
        }
        if ni.status.as_ref() != Some(&status) {
            if let Some(o) = self.inv.interfaces.get_mut(key) {
                o.status = Some(status);
            }
            self.touch(kind, key);
        }
        Ok(String::new())
    }

    /// An interface's virtual IP: its VirtualIP's address (bound to it), or its ephemeral one.
    async fn interface_virtual_ip(
        &mut self,
        key: &ObjKey,
        spec: &pb::NetworkInterfaceSpec,
        status: &pb::NetworkInterfaceStatus,
    ) -> Result<String, ApiError> {
        let Some(source) = &spec.virtual_ip else {
            // A PublicPrefix may give it one.
            return Ok(self.public_prefix_address(key).unwrap_or_default());
        };
        if let Some(r) = &source.virtual_ip_ref {
            let vip_key = ObjKey::resolve(r, &key.namespace);
            let me = key.to_ref();
            let Some(vip) = self.inv.virtual_ips.get_mut(&vip_key) else {
                return Err(ApiError::Refused(format!(
                    "spec.virtualIP.virtualIPRef: virtualips {vip_key} not found"
                )));
            };
            let vs = vip.status.get_or_insert_default();
            match &vs.bound_to {
                Some(b) if ObjKey::resolve(b, &vip_key.namespace) != *key => {
                    return Err(ApiError::Refused(format!(
                        "spec.virtualIP.virtualIPRef: virtualips {vip_key} is bound to {}",
                        ObjKey::resolve(b, &vip_key.namespace)
                    )));
                }
                Some(_) => {}
                None => {
                    vs.bound_to = Some(me);
                    let ip = vs.ip.clone();
                    self.dirty.insert((pb::Kind::VirtualIp, vip_key));
                    return Ok(ip);
                }
            }
            return Ok(vs.ip.clone());
        }
        let Some(family) = ip_family(&source.ephemeral_ip_family) else {
            return Ok(String::new());
        };
        let owner = owner(pb::Kind::NetworkInterface, key);
        let held = [status.virtual_ip.clone()];
        let req = request(family, &[], &held);
        let ip = self
            .ask(
                || format!("networkinterfaces {key}: ephemeral {family} virtual IP"),
                |r| AllocatorMsg::PublicIp(owner.clone(), req, r),
            )
            .await?;
        Ok(ip.to_string())
    }

    /// The NAT gateway serving `network`: the first (by name) of its namespace naming it.
    pub(super) fn nat_gateway_of(&self, network: &ObjKey) -> Option<ObjKey> {
        self.inv
            .nat_gateways
            .keys()
            .find(|k| self.network_of(pb::Kind::NatGateway, k).as_ref() == Some(network))
            .cloned()
    }

    async fn release_nat(&mut self, network: &ObjKey, owner: &str) {
        let gateways: Vec<ObjKey> = self
            .inv
            .nat_gateways
            .keys()
            .filter(|k| self.network_of(pb::Kind::NatGateway, k).as_ref() == Some(network))
            .cloned()
            .collect();
        for gw in gateways {
            let o = owner.to_owned();
            let _ = self
                .ask(
                    || format!("release the NAT slice of {o}"),
                    |r| AllocatorMsg::ReleaseNatSlice(gw.to_string(), o.clone(), r),
                )
                .await;
        }
    }

    async fn allocate_virtual_ip(&mut self, key: &ObjKey) -> Result<String, ApiError> {
        let Some(vip) = self.inv.virtual_ips.get(key).cloned() else {
            return Ok(String::new());
        };
        let spec = vip.spec.clone().unwrap_or_default();
        let mut status = vip.status.clone().unwrap_or_default();
        let family = ip_family(&spec.ip_family).unwrap_or(IpFamily::V4);
        let owner = owner(pb::Kind::VirtualIp, key);
        let req = request(family, &[], std::slice::from_ref(&status.ip));
        let ip = self
            .ask(
                || format!("virtualips {key}: {family} public address"),
                |r| AllocatorMsg::PublicIp(owner.clone(), req, r),
            )
            .await?;
        status.ip = ip.to_string();
        if vip.status.as_ref() != Some(&status) {
            if let Some(o) = self.inv.virtual_ips.get_mut(key) {
                o.status = Some(status);
            }
            self.touch(pb::Kind::VirtualIp, key);
        }
        Ok(String::new())
    }

    async fn allocate_nat_gateway(&mut self, key: &ObjKey) -> Result<String, ApiError> {
        let Some(gw) = self.inv.nat_gateways.get(key).cloned() else {
            return Ok(String::new());
        };
        let spec = gw.spec.unwrap_or_default();
        let size = PortsPerInterface::new(spec.ports_per_network_interface)
            .map_err(|e| ApiError::Refused(format!("spec.portsPerNetworkInterface: {e}")))?;
        self.ask(
            || format!("natgateways {key}"),
            |r| AllocatorMsg::NatGateway(key.to_string(), size, r),
        )
        .await?;
        if let Some(net) = self.network_of(pb::Kind::NatGateway, key) {
            self.allocate_users(&net).await;
        }
        Ok(String::new())
    }

    async fn allocate_load_balancer(&mut self, key: &ObjKey) -> Result<String, ApiError> {
        let kind = pb::Kind::LoadBalancer;
        let Some(lb) = self.inv.load_balancers.get(key).cloned() else {
            return Ok(String::new());
        };
        let (net, _) = match self.network_vni(kind, key) {
            Ok(x) => x,
            Err(why) => return Ok(why),
        };
        let spec = lb.spec.clone().unwrap_or_default();
        let mut status = lb.status.clone().unwrap_or_default();
        let owner = owner(kind, key);
        let public = spec.r#type == "Public";
        let fixed: Vec<String> = spec.ips.iter().map(|v| v.value.clone()).collect();
        let mut ips = Vec::new();
        for family in spec.ip_families.iter().filter_map(|f| ip_family(f)) {
            let req = request(family, &fixed, &status.ips);
            let what = || format!("loadbalancers {key}: {family} address");
            let ip = if public {
                self.ask(what, |r| AllocatorMsg::PublicIp(owner.clone(), req, r))
                    .await?
            } else {
                self.ask(what, |r| {
                    AllocatorMsg::Ip(net.to_string(), owner.clone(), req, r)
                })
                .await?
            };
            ips.push(ip.to_string());
        }
        status.ips = ips;
        if lb.status.as_ref() != Some(&status) {
            if let Some(o) = self.inv.load_balancers.get_mut(key) {
                o.status = Some(status);
            }
            self.touch(kind, key);
        }
        self.place_load_balancer(key);
        Ok(String::new())
    }

    /// Releases every allocation of an object (before it is deleted or allocated again). A
    /// release that fails leaves the value taken until the next start releases it as an orphan.
    pub(super) async fn release(&mut self, kind: pb::Kind, key: &ObjKey) {
        let owner = owner(kind, key);
        let net = self.network_of(kind, key);
        let what = || format!("release the allocations of {} {key}", kind_word(kind));
        let mut results: Vec<Result<(), ApiError>> = Vec::new();
        match kind {
            pb::Kind::Network => {
                let r = self
                    .ask(what, |r| AllocatorMsg::ReleaseVni(owner.clone(), r))
                    .await;
                results.push(r.map(drop));
            }
            pb::Kind::NetworkInterface | pb::Kind::LoadBalancer => {
                if kind == pb::Kind::NetworkInterface {
                    self.unbind_virtual_ip(key);
                }
                if let Some(net) = &net {
                    if kind == pb::Kind::NetworkInterface {
                        self.release_nat(net, &owner).await;
                    }
                    let r = self
                        .ask(what, |r| {
                            AllocatorMsg::ReleaseIps(net.to_string(), owner.clone(), r)
                        })
                        .await;
                    results.push(r.map(drop));
                }
                let r = self
                    .ask(what, |r| AllocatorMsg::ReleasePublicIps(owner.clone(), r))
                    .await;
                results.push(r.map(drop));
            }
            pb::Kind::VirtualIp => {
                let r = self
                    .ask(what, |r| AllocatorMsg::ReleasePublicIps(owner.clone(), r))
                    .await;
                results.push(r.map(drop));
            }
            pb::Kind::PublicPrefix => self.release_public_prefix(key).await,
            pb::Kind::NatGateway => {
                let r = self
                    .ask(what, |r| {
                        AllocatorMsg::ReleaseNatGateway(key.to_string(), r)
                    })
                    .await;
                results.push(r.map(drop));
                // Its interfaces lose their slices (another gateway may give them new ones).
                let users: Vec<ObjKey> = self
                    .inv
                    .interfaces
                    .keys()
                    .filter(|k| self.network_of(pb::Kind::NetworkInterface, k) == net)
                    .cloned()
                    .collect();
                for k in users {
                    if let Some(s) = self
                        .inv
                        .interfaces
                        .get_mut(&k)
                        .and_then(|o| o.status.as_mut())
                    {
                        s.nat_ip.clear();
                        s.nat_port = 0;
                        s.nat_end_port = 0;
                    }
                    self.touch(pb::Kind::NetworkInterface, &k);
                }
            }
            _ => {}
        }
        for r in results {
            if let Err(e) = r {
                tracing::warn!(%key, error = %super::error::error_chain(&e), "release failed: the value stays taken until the next start");
            }
        }
    }

    fn unbind_virtual_ip(&mut self, key: &ObjKey) {
        let me = key.clone();
        let bound: Vec<ObjKey> = self
            .inv
            .virtual_ips
            .iter()
            .filter(|(k, v)| {
                v.status
                    .as_ref()
                    .and_then(|s| s.bound_to.as_ref())
                    .is_some_and(|b| ObjKey::resolve(b, &k.namespace) == me)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in bound {
            if let Some(s) = self
                .inv
                .virtual_ips
                .get_mut(&k)
                .and_then(|v| v.status.as_mut())
            {
                s.bound_to = None;
            }
            self.dirty.insert((pb::Kind::VirtualIp, k));
        }
    }

    /// Forgets the allocations written into an object's status (they were released).
    pub(super) fn clear_allocations(&mut self, kind: pb::Kind, key: &ObjKey) {
        match kind {
            pb::Kind::NetworkInterface => {
                if let Some(s) = self
                    .inv
                    .interfaces
                    .get_mut(key)
                    .and_then(|o| o.status.as_mut())
                {
                    s.ips.clear();
                    s.virtual_ip.clear();
                    s.nat_ip.clear();
                    s.nat_port = 0;
                    s.nat_end_port = 0;
                }
            }
            pb::Kind::LoadBalancer => {
                if let Some(s) = self
                    .inv
                    .load_balancers
                    .get_mut(key)
                    .and_then(|o| o.status.as_mut())
                {
                    s.ips.clear();
                }
            }
            pb::Kind::VirtualIp => {
                if let Some(s) = self
                    .inv
                    .virtual_ips
                    .get_mut(key)
                    .and_then(|o| o.status.as_mut())
                {
                    s.ip.clear();
                }
            }
            _ => {}
        }
    }

    /// Refuses to delete an object others still use.
    pub(super) fn check_unused(&self, kind: pb::Kind, key: &ObjKey) -> Result<(), ApiError> {
        let mut users: Vec<String> = Vec::new();
        match kind {
            pb::Kind::Network => {
                let of = |k: pb::Kind, o: &ObjKey| self.network_of(k, o).as_ref() == Some(key);
                users.extend(
                    self.inv
                        .interfaces
                        .keys()
                        .filter(|o| of(pb::Kind::NetworkInterface, o))
                        .map(|o| format!("networkinterfaces {o}")),
                );
                users.extend(
                    self.inv
                        .load_balancers
                        .keys()
                        .filter(|o| of(pb::Kind::LoadBalancer, o))
                        .map(|o| format!("loadbalancers {o}")),
                );
                users.extend(
                    self.inv
                        .nat_gateways
                        .keys()
                        .filter(|o| of(pb::Kind::NatGateway, o))
                        .map(|o| format!("natgateways {o}")),
                );
                users.extend(
                    self.inv
                        .policies
                        .keys()
                        .filter(|o| of(pb::Kind::NetworkPolicy, o))
                        .map(|o| format!("networkpolicies {o}")),
                );
            }
            pb::Kind::VirtualIp => {
                if let Some(b) = self
                    .inv
                    .virtual_ips
                    .get(key)
                    .and_then(|v| v.status.as_ref())
                    .and_then(|s| s.bound_to.as_ref())
                {
                    users.push(format!(
                        "networkinterfaces {}",
                        ObjKey::resolve(b, &key.namespace)
                    ));
                }
            }
            pb::Kind::Node => {
                users.extend(
                    self.inv
                        .interfaces
                        .iter()
                        .filter(|(_, o)| o.spec.as_ref().is_some_and(|s| s.node_name == key.name))
                        .map(|(o, _)| format!("networkinterfaces {o}")),
                );
            }
            _ => {}
        }
        if users.is_empty() {
            return Ok(());
        }
        users.truncate(10);
        Err(ApiError::Refused(format!(
            "{} {key} is in use by {}: delete those first",
            kind_word(kind),
            users.join(", ")
        )))
    }

    /// At start: the allocator learns every network's subnets and every NAT gateway's slice
    /// size, so that it takes back what the store says is taken.
    pub(super) async fn define_allocator_state(&mut self) {
        let networks: Vec<ObjKey> = self.inv.networks.keys().cloned().collect();
        for key in networks {
            let spec = self
                .inv
                .networks
                .get(&key)
                .and_then(|n| n.spec.clone())
                .unwrap_or_default();
            let Ok(subnets) = resources::subnets(&spec) else {
                continue;
            };
            let owner = owner(pb::Kind::Network, &key);
            if let Err(e) = self
                .ask(
                    || format!("networks {key}: subnets"),
                    |r| AllocatorMsg::Subnets(owner, subnets, r),
                )
                .await
            {
                tracing::warn!(%key, error = %super::error::error_chain(&e), "stored network's subnets refused");
            }
        }
        let gateways: Vec<ObjKey> = self.inv.nat_gateways.keys().cloned().collect();
        for key in gateways {
            if let Err(e) = self.allocate_nat_gateway(&key).await {
                tracing::warn!(%key, error = %super::error::error_chain(&e), "stored NAT gateway refused");
            }
        }
    }

    /// Allocations whose owner is gone (a crash between allocating and writing the object).
    pub(super) async fn release_orphan_allocations(&mut self) {
        let all = match self.allocator.call(AllocatorMsg::List, None).await {
            Ok(ractor::rpc::CallResult::Success(v)) => v,
            _ => return,
        };
        let exists = |owner: &str| -> bool {
            let mut parts = owner.splitn(3, '/');
            let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
                return true;
            };
            match parts.next() {
                // "<namespace>/<name>": a network.
                None => self.inv.networks.contains_key(&ObjKey::new(a, b)),
                Some(name) => {
                    let key = ObjKey::new(b, name);
                    match resources::kind_from_word(a) {
                        Some(pb::Kind::NetworkInterface) => self.inv.interfaces.contains_key(&key),
                        Some(pb::Kind::LoadBalancer) => self.inv.load_balancers.contains_key(&key),
                        Some(pb::Kind::VirtualIp) => self.inv.virtual_ips.contains_key(&key),
                        Some(pb::Kind::NatGateway) => self.inv.nat_gateways.contains_key(&key),
                        Some(pb::Kind::PublicPrefix) => self.inv.public_prefixes.contains_key(&key),
                        _ => true,
                    }
                }
            }
        };
        let orphans: Vec<Allocation> = all
            .into_iter()
            .filter(|a| match a {
                Allocation::Vni { owner, .. }
                | Allocation::Ip { owner, .. }
                | Allocation::Public { owner, .. }
                | Allocation::Nat { owner, .. } => !exists(owner),
            })
            .collect();
        if !orphans.is_empty() {
            tracing::info!(
                count = orphans.len(),
                "releasing allocations whose objects are gone"
            );
        }
        let what = || "release an orphan allocation".to_string();
        for a in orphans {
            let r = match a {
                Allocation::Vni { owner, .. } => self
                    .ask(what, |r| AllocatorMsg::ReleaseVni(owner, r))
                    .await
                    .map(drop),
                Allocation::Ip { network, owner, .. } => self
                    .ask(what, |r| AllocatorMsg::ReleaseIps(network, owner, r))
                    .await
                    .map(drop),
                Allocation::Public { owner, .. } => match owner.strip_prefix("natgateways/") {
                    Some(gw) => self
                        .ask(what, |r| AllocatorMsg::ReleaseNatGateway(gw.to_owned(), r))
                        .await
                        .map(drop),
                    None => self
                        .ask(what, |r| AllocatorMsg::ReleasePublicIps(owner, r))
                        .await
                        .map(drop),
                },
                Allocation::Nat { gateway, owner, .. } => self
                    .ask(what, |r| AllocatorMsg::ReleaseNatSlice(gateway, owner, r))
                    .await
                    .map(drop),
            };
            if let Err(e) = r {
                tracing::warn!(error = %super::error::error_chain(&e), "orphan allocation kept");
            }
        }
    }

    /// At start: every object's allocations made (leniently).
    pub(super) async fn ensure_all_allocations(&mut self) {
        let order = [
            pb::Kind::Network,
            pb::Kind::VirtualIp,
            pb::Kind::NatGateway,
            pb::Kind::NetworkInterface,
            pb::Kind::LoadBalancer,
        ];
        for kind in order {
            let keys: Vec<ObjKey> = match kind {
                pb::Kind::Network => self.inv.networks.keys().cloned().collect(),
                pb::Kind::VirtualIp => self.inv.virtual_ips.keys().cloned().collect(),
                pb::Kind::NatGateway => self.inv.nat_gateways.keys().cloned().collect(),
                pb::Kind::NetworkInterface => self.inv.interfaces.keys().cloned().collect(),
                _ => self.inv.load_balancers.keys().cloned().collect(),
            };
            for k in keys {
                let _ = self.allocate(kind, &k, false).await;
            }
        }
    }
}

/// Refuses changes to what cannot change once allocated.
pub(super) fn check_immutable(old: &pb::Object, new: &pb::Object) -> Result<(), ApiError> {
    use pb::object::Object as O;
    if let (Some(O::Network(o)), Some(O::Network(n))) = (&old.object, &new.object) {
        let vni = o.status.as_ref().map_or(0, |s| s.vni);
        let want = n.spec.as_ref().map_or(0, |s| s.vni);
        if vni != 0 && want != 0 && want != vni {
            return Err(ApiError::Refused(format!(
                "spec.vni: the network has VNI {vni}; a VNI cannot change"
            )));
        }
    }
    Ok(())
}
