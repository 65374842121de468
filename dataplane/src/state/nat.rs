//! Virtual IPs, local NATs with their port slices, and neighbour NATs.

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    /// CreateVip.
    pub fn create_vip(&mut self, req: pb::CreateVipRequest) -> Result<pb::CreateVipResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let ip = validate::ip_address("vip_ip", req.vip_ip.as_ref())?;
        let pref = preferred(&self.underlays, &req.preferred_underlay_route)?;
        let iface = self.iface(&id)?;
        let ip = ipv4_only(ip)?;
        if iface.vip.is_some() {
            return Err(ServiceError::SnatExists.into());
        }
        if self.dnat_taken(iface.vni, ip, true, true) {
            return Err(ServiceError::DnatExists.into());
        }
        let underlay = self.underlays.allocate(pref)?;
        self.iface_mut(&id)?.vip = Some((ip, underlay));
        Ok(pb::CreateVipResponse {
            status: None,
            underlay_route: text(underlay),
        })
    }

    /// GetVip.
    pub fn get_vip(&mut self, req: pb::GetVipRequest) -> Result<pb::GetVipResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let (ip, underlay) = self.iface(&id)?.vip.ok_or(ServiceError::SnatNoData)?;
        Ok(pb::GetVipResponse {
            status: None,
            vip_ip: Some(ip_msg(IpAddr::V4(ip))),
            underlay_route: text(underlay),
        })
    }

    /// DeleteVip.
    pub fn delete_vip(&mut self, req: pb::DeleteVipRequest) -> Result<pb::DeleteVipResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let (_, underlay) = self
            .iface_mut(&id)?
            .vip
            .take()
            .ok_or(ServiceError::SnatNoData)?;
        self.underlays.release(underlay);
        Ok(pb::DeleteVipResponse::default())
    }

    // ---- NAT ----

    /// CreateNat.
    pub fn create_nat(&mut self, req: pb::CreateNatRequest) -> Result<pb::CreateNatResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let ip = validate::ip_address("nat_ip", req.nat_ip.as_ref())?;
        let (min, max) = validate::port_slice(req.min_port, req.max_port)?;
        let pref = preferred(&self.underlays, &req.preferred_underlay_route)?;
        let iface = self.iface(&id)?;
        let ip = ipv4_only(ip)?;
        if iface.nat.is_some() {
            return Err(ServiceError::SnatExists.into());
        }
        if self.dnat_taken(iface.vni, ip, true, false) {
            return Err(ServiceError::DnatExists.into());
        }
        if self.nat_slice_taken(iface.vni, ip, (min, max)) {
            return Err(ServiceError::AlreadyExists.into());
        }
        let underlay = self.underlays.allocate(pref)?;
        self.iface_mut(&id)?.nat = Some(Nat {
            ip,
            min,
            max,
            underlay,
        });
        Ok(pb::CreateNatResponse {
            status: None,
            underlay_route: text(underlay),
        })
    }

    /// GetNat.
    pub fn get_nat(&mut self, req: pb::GetNatRequest) -> Result<pb::GetNatResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let nat = self.iface(&id)?.nat.ok_or(ServiceError::SnatNoData)?;
        Ok(pb::GetNatResponse {
            status: None,
            nat_ip: Some(ip_msg(IpAddr::V4(nat.ip))),
            min_port: u32::from(nat.min),
            max_port: u32::from(nat.max),
            underlay_route: text(nat.underlay),
        })
    }

    /// DeleteNat.
    pub fn delete_nat(&mut self, req: pb::DeleteNatRequest) -> Result<pb::DeleteNatResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let nat = self
            .iface_mut(&id)?
            .nat
            .take()
            .ok_or(ServiceError::SnatNoData)?;
        self.underlays.release(nat.underlay);
        Ok(pb::DeleteNatResponse::default())
    }

    fn nat_filter(field: &str, msg: Option<&pb::IpAddress>) -> Result<Option<Ipv4Addr>> {
        match validate::ip_address(field, msg)? {
            IpAddr::V4(a) if a.is_unspecified() => Ok(None),
            IpAddr::V4(a) => Ok(Some(a)),
            IpAddr::V6(_) => Err(ServiceError::BadIpver.into()),
        }
    }

    /// ListLocalNats (`0.0.0.0`: every NAT IP).
    pub fn list_local_nats(
        &mut self,
        req: pb::ListLocalNatsRequest,
    ) -> Result<pb::ListLocalNatsResponse> {
        let filter = Self::nat_filter("nat_ip", req.nat_ip.as_ref())?;
        let nat_entries = self
            .interfaces
            .values()
            .filter_map(|i| i.nat.map(|n| (i, n)))
            .filter(|(_, n)| filter.is_none_or(|f| f == n.ip))
            .map(|(i, n)| pb::NatEntry {
                nat_ip: Some(ip_msg(IpAddr::V4(i.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)))),
                min_port: u32::from(n.min),
                max_port: u32::from(n.max),
                underlay_route: text(n.underlay),
                vni: i.vni,
                actual_nat_ip: Some(ip_msg(IpAddr::V4(n.ip))),
            })
            .collect();
        Ok(pb::ListLocalNatsResponse {
            status: None,
            nat_entries,
        })
    }

    /// CreateNeighborNat: a slice of a NAT IP that lives on another hypervisor.
    pub fn create_neighbor_nat(
        &mut self,
        req: pb::CreateNeighborNatRequest,
    ) -> Result<pb::CreateNeighborNatResponse> {
        let ip = validate::ip_address("nat_ip", req.nat_ip.as_ref())?;
        let (min, max) = validate::port_slice(req.min_port, req.max_port)?;
        let underlay = validate::ipv6_text("underlay_route", &req.underlay_route)?;
        let ip = ipv4_only(ip)?;
        if self.nat_slice_taken(req.vni, ip, (min, max)) {
            return Err(ServiceError::AlreadyExists.into());
        }
        self.neighbor_nats.insert((ip, req.vni, min, max), underlay);
        Ok(pb::CreateNeighborNatResponse::default())
    }

    /// DeleteNeighborNat.
    pub fn delete_neighbor_nat(
        &mut self,
        req: pb::DeleteNeighborNatRequest,
    ) -> Result<pb::DeleteNeighborNatResponse> {
        let ip = validate::ip_address("nat_ip", req.nat_ip.as_ref())?;
        let (min, max) = validate::port_slice(req.min_port, req.max_port)?;
        let ip = ipv4_only(ip)?;
        self.neighbor_nats
            .remove(&(ip, req.vni, min, max))
            .ok_or(ServiceError::NotFound)?;
        Ok(pb::DeleteNeighborNatResponse::default())
    }

    /// ListNeighborNats (`0.0.0.0`: every NAT IP).
    pub fn list_neighbor_nats(
        &mut self,
        req: pb::ListNeighborNatsRequest,
    ) -> Result<pb::ListNeighborNatsResponse> {
        let filter = Self::nat_filter("nat_ip", req.nat_ip.as_ref())?;
        let nat_entries = self
            .neighbor_nats
            .iter()
            .filter(|((ip, ..), _)| filter.is_none_or(|f| f == *ip))
            .map(|(&(ip, vni, min, max), &ul)| pb::NatEntry {
                nat_ip: None,
                min_port: u32::from(min),
                max_port: u32::from(max),
                underlay_route: text(ul),
                vni,
                actual_nat_ip: Some(ip_msg(IpAddr::V4(ip))),
            })
            .collect();
        Ok(pb::ListNeighborNatsResponse {
            status: None,
            nat_entries,
        })
    }
}
