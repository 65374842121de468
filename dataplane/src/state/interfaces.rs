//! CreateInterface, DeleteInterface, GetInterface, ListInterfaces: an interface, its VF port, its host routes and underlay address.

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    fn interface_msg(i: &Interface) -> pb::Interface {
        pb::Interface {
            id: i.id.as_bytes().to_vec(),
            vni: i.vni,
            primary_ipv4: text(i.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            primary_ipv6: text(i.ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
            underlay_route: text(i.underlay),
            pci_name: i.device.clone(),
            metering_params: i.metering,
            hostname: i.hostname.clone(),
        }
    }

    /// CreateInterface.
    pub fn create_interface(
        &mut self,
        req: pb::CreateInterfaceRequest,
    ) -> Result<pb::CreateInterfaceResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let _: pb::InterfaceType = validate::known_enum("interface_type", req.interface_type)?;
        let empty = pb::IpConfig::default();
        let v4 = validate::ipv4_text(
            "ipv4_config.primary_address",
            &req.ipv4_config.as_ref().unwrap_or(&empty).primary_address,
        )?;
        let v6 = validate::ipv6_text(
            "ipv6_config.primary_address",
            &req.ipv6_config.as_ref().unwrap_or(&empty).primary_address,
        )?;
        if v4.is_unspecified() && v6.is_unspecified() {
            return Err(InvalidArgument::new(
                "ipv4_config.primary_address",
                "ipv4 and ipv6 cannot both be unspecified",
            )
            .into());
        }
        if let Some(pxe) = req
            .pxe_config
            .as_ref()
            .filter(|p| !p.next_server.is_empty())
        {
            let field = "pxe_config.next_server";
            if v6.is_unspecified() {
                validate::ipv4_text(field, pxe.next_server.as_bytes())?;
            } else {
                validate::ipv6_text(field, pxe.next_server.as_bytes())?;
            }
            validate::required_text("pxe_config.boot_filename", &pxe.boot_filename)?;
        }
        validate::required_text("device_name", &req.device_name)?;
        let pref = preferred(&self.underlays, &req.preferred_underlay_route)?;

        if self.interfaces.contains_key(id.as_str()) {
            return Err(ServiceError::VmHandle.into());
        }
        let netdev = match self.devices.get(&req.device_name) {
            None => return Err(ServiceError::NotFound.into()),
            Some(Device::Pf)
            | Some(Device::Vf {
                used_by: Some(_), ..
            }) => {
                return Err(ServiceError::AlreadyExists.into());
            }
            Some(Device::Vf { netdev, .. }) => netdev.clone(),
        };
        if let Some(p) = pref {
            self.underlays.ensure_free(p)?;
        }
        let ipv4 = (!v4.is_unspecified()).then_some(v4);
        let ipv6 = (!v6.is_unspecified()).then_some(v6);
        let host_routes: Vec<IpNet> = ipv4
            .map(|a| IpNet::from(IpAddr::V4(a)))
            .into_iter()
            .chain(ipv6.map(|a| IpNet::from(IpAddr::V6(a))))
            .collect();
        let clash = self
            .vnis
            .get(&req.vni)
            .is_some_and(|v| host_routes.iter().any(|n| v.routes.get(*n).is_some()));
        if clash {
            return Err(ServiceError::RouteExists.into());
        }

        let underlay = self.underlays.allocate(pref)?;
        let id: Arc<str> = Arc::from(id);
        let index = topology::next_index();
        self.vni_acquire(req.vni);
        if let Some(v) = self.vnis.get_mut(&req.vni) {
            for n in &host_routes {
                // Cannot clash: checked above while nothing else could change the table.
                let _ = v.routes.insert(*n, NextHop::Local(id.clone()));
            }
        }
        if let Some(Device::Vf { used_by, .. }) = self.devices.get_mut(&req.device_name) {
            *used_by = Some(id.clone());
        }
        self.interfaces.insert(
            id.clone(),
            Interface {
                id,
                vni: req.vni,
                ipv4,
                ipv6,
                underlay,
                device: req.device_name,
                metering: req.metering_parameters,
                hostname: req.hostname,
                vip: None,
                nat: None,
                prefixes: BTreeMap::new(),
                lb_prefixes: BTreeMap::new(),
                rules: Vec::new(),
                index,
            },
        );
        Ok(pb::CreateInterfaceResponse {
            status: None,
            underlay_route: text(underlay),
            vf: Some(pb::VirtualFunction {
                name: netdev,
                ..Default::default()
            }),
        })
    }

    /// DeleteInterface: removes the interface with everything attached to it.
    pub fn delete_interface(
        &mut self,
        req: pb::DeleteInterfaceRequest,
    ) -> Result<pb::DeleteInterfaceResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let iface = self
            .interfaces
            .remove(id.as_str())
            .ok_or(ServiceError::NotFound)?;
        if let Some(v) = self.vnis.get_mut(&iface.vni) {
            let own = iface
                .ipv4
                .map(|a| IpNet::from(IpAddr::V4(a)))
                .into_iter()
                .chain(iface.ipv6.map(|a| IpNet::from(IpAddr::V6(a))))
                .chain(iface.prefixes.keys().copied());
            for n in own {
                if v.routes.get(n) == Some(&NextHop::Local(iface.id.clone())) {
                    let _ = v.routes.remove(n);
                }
            }
        }
        let underlays = std::iter::once(iface.underlay)
            .chain(iface.vip.map(|v| v.1))
            .chain(iface.nat.map(|n| n.underlay))
            .chain(iface.prefixes.values().copied())
            .chain(iface.lb_prefixes.values().copied());
        for u in underlays {
            self.underlays.release(u);
        }
        if let Some(Device::Vf { used_by, .. }) = self.devices.get_mut(&iface.device) {
            *used_by = None;
        }
        self.rule_sets.remove(iface.index);
        self.vni_release(iface.vni);
        Ok(pb::DeleteInterfaceResponse::default())
    }

    /// GetInterface.
    pub fn get_interface(
        &mut self,
        req: pb::GetInterfaceRequest,
    ) -> Result<pb::GetInterfaceResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let iface = self
            .interfaces
            .get(id.as_str())
            .ok_or(ServiceError::NotFound)?;
        Ok(pb::GetInterfaceResponse {
            status: None,
            interface: Some(Self::interface_msg(iface)),
        })
    }

    /// ListInterfaces.
    pub fn list_interfaces(
        &mut self,
        _req: pb::ListInterfacesRequest,
    ) -> Result<pb::ListInterfacesResponse> {
        Ok(pb::ListInterfacesResponse {
            status: None,
            interfaces: self.interfaces.values().map(Self::interface_msg).collect(),
        })
    }
}
