//! Alias prefixes (routed to an interface) and load-balancer target prefixes of an interface.

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    /// CreatePrefix: an alias prefix routed to the interface.
    pub fn create_prefix(
        &mut self,
        req: pb::CreatePrefixRequest,
    ) -> Result<pb::CreatePrefixResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let (addr, len) = validate::route_prefix("prefix", req.prefix.as_ref())?;
        let pref = preferred(&self.underlays, &req.preferred_underlay_route)?;
        let iface = self.iface(&id)?;
        let net = routes::normalize(addr, len).map_err(|_| ServiceError::RouteInsert)?;
        let vni = iface.vni;
        let owner = iface.id.clone();
        let table = &self.vnis.get(&vni).ok_or(ServiceError::NoVni)?.routes;
        if table.get(net).is_some() {
            return Err(ServiceError::RouteExists.into());
        }
        let underlay = self.underlays.allocate(pref)?;
        if let Some(v) = self.vnis.get_mut(&vni) {
            let _ = v.routes.insert(net, NextHop::Local(owner));
        }
        self.iface_mut(&id)?.prefixes.insert(net, underlay);
        Ok(pb::CreatePrefixResponse {
            status: None,
            underlay_route: text(underlay),
        })
    }

    /// DeletePrefix.
    pub fn delete_prefix(
        &mut self,
        req: pb::DeletePrefixRequest,
    ) -> Result<pb::DeletePrefixResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let (addr, len) = validate::route_prefix("prefix", req.prefix.as_ref())?;
        let iface = self.iface(&id)?;
        let net = routes::normalize(addr, len).map_err(|_| ServiceError::RouteNotFound)?;
        let vni = iface.vni;
        if !iface.prefixes.contains_key(&net) {
            let exists = self
                .vnis
                .get(&vni)
                .is_some_and(|v| v.routes.get(net).is_some());
            return Err(if exists {
                ServiceError::RouteBadPort
            } else {
                ServiceError::RouteNotFound
            }
            .into());
        }
        if let Some(v) = self.vnis.get_mut(&vni) {
            let _ = v.routes.remove(net);
        }
        if let Some(u) = self.iface_mut(&id)?.prefixes.remove(&net) {
            self.underlays.release(u);
        }
        Ok(pb::DeletePrefixResponse::default())
    }

    fn list_iface_prefixes(
        &self,
        raw_id: &[u8],
        pick: fn(&Interface) -> &BTreeMap<IpNet, Ipv6Addr>,
    ) -> Result<Vec<pb::Prefix>> {
        let id = validate::id_or_all("interface_id", raw_id)?;
        let msgs = |i: &Interface| {
            pick(i)
                .iter()
                .map(|(n, u)| prefix_msg(*n, Some(*u)))
                .collect::<Vec<_>>()
        };
        Ok(match id {
            Some(id) => msgs(self.iface(&id)?),
            None => self.interfaces.values().flat_map(msgs).collect(),
        })
    }

    /// ListPrefixes (empty interface id: all interfaces).
    pub fn list_prefixes(
        &mut self,
        req: pb::ListPrefixesRequest,
    ) -> Result<pb::ListPrefixesResponse> {
        Ok(pb::ListPrefixesResponse {
            status: None,
            prefixes: self.list_iface_prefixes(&req.interface_id, |i| &i.prefixes)?,
        })
    }

    // ---- load-balancer prefixes ----

    /// CreateLoadBalancerPrefix.
    pub fn create_load_balancer_prefix(
        &mut self,
        req: pb::CreateLoadBalancerPrefixRequest,
    ) -> Result<pb::CreateLoadBalancerPrefixResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let (addr, len) = validate::route_prefix("prefix", req.prefix.as_ref())?;
        let pref = preferred(&self.underlays, &req.preferred_underlay_route)?;
        let iface = self.iface(&id)?;
        let net = routes::normalize(addr, len).map_err(|_| ServiceError::RouteInsert)?;
        if iface.lb_prefixes.contains_key(&net) {
            return Err(ServiceError::AlreadyExists.into());
        }
        let underlay = self.underlays.allocate(pref)?;
        self.iface_mut(&id)?.lb_prefixes.insert(net, underlay);
        Ok(pb::CreateLoadBalancerPrefixResponse {
            status: None,
            underlay_route: text(underlay),
        })
    }

    /// DeleteLoadBalancerPrefix.
    pub fn delete_load_balancer_prefix(
        &mut self,
        req: pb::DeleteLoadBalancerPrefixRequest,
    ) -> Result<pb::DeleteLoadBalancerPrefixResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let (addr, len) = validate::route_prefix("prefix", req.prefix.as_ref())?;
        let iface = self.iface_mut(&id)?;
        let net = routes::normalize(addr, len).map_err(|_| ServiceError::NotFound)?;
        let u = iface
            .lb_prefixes
            .remove(&net)
            .ok_or(ServiceError::NotFound)?;
        self.underlays.release(u);
        Ok(pb::DeleteLoadBalancerPrefixResponse::default())
    }

    /// ListLoadBalancerPrefixes (empty interface id: all interfaces).
    pub fn list_load_balancer_prefixes(
        &mut self,
        req: pb::ListLoadBalancerPrefixesRequest,
    ) -> Result<pb::ListLoadBalancerPrefixesResponse> {
        Ok(pb::ListLoadBalancerPrefixesResponse {
            status: None,
            prefixes: self.list_iface_prefixes(&req.interface_id, |i| &i.lb_prefixes)?,
        })
    }
}
