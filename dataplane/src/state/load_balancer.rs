//! Load balancers and their targets.

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    /// CreateLoadBalancer.
    pub fn create_load_balancer(
        &mut self,
        req: pb::CreateLoadBalancerRequest,
    ) -> Result<pb::CreateLoadBalancerResponse> {
        let id = validate::id("loadbalancer_id", &req.loadbalancer_id)?;
        let ip = validate::ip_address("loadbalanced_ip", req.loadbalanced_ip.as_ref())?;
        if req.loadbalanced_ports.len() >= LB_MAX_PORTS {
            return Err(InvalidArgument::new(
                "loadbalanced_ports",
                format!("must hold fewer than {LB_MAX_PORTS} entries"),
            )
            .into());
        }
        let mut ports: Vec<pb::LbPort> = Vec::with_capacity(req.loadbalanced_ports.len());
        for p in &req.loadbalanced_ports {
            let port = validate::port("loadbalanced_ports.port", p.port)?;
            let proto = match pb::Protocol::try_from(p.protocol) {
                Ok(pr @ (pb::Protocol::Tcp | pb::Protocol::Udp)) => pr,
                _ => {
                    return Err(InvalidArgument::new(
                        "loadbalanced_ports.protocol",
                        "must be TCP or UDP",
                    )
                    .into());
                }
            };
            let entry = pb::LbPort {
                port: u32::from(port),
                protocol: proto as i32,
            };
            if ports.contains(&entry) {
                return Err(InvalidArgument::new(
                    "loadbalanced_ports",
                    format!("duplicate entry {port}/{}", proto.as_str_name()),
                )
                .into());
            }
            ports.push(entry);
        }
        let pref = preferred(&self.underlays, &req.preferred_underlay_route)?;
        if self.loadbalancers.contains_key(&id)
            || self
                .loadbalancers
                .values()
                .any(|lb| lb.vni == req.vni && lb.ip == ip)
        {
            return Err(ServiceError::AlreadyExists.into());
        }
        let underlay = self.underlays.allocate(pref)?;
        self.vni_acquire(req.vni);
        self.loadbalancers.insert(
            id,
            LoadBalancer {
                vni: req.vni,
                ip,
                ports,
                underlay,
                targets: Vec::new(),
            },
        );
        Ok(pb::CreateLoadBalancerResponse {
            status: None,
            underlay_route: text(underlay),
        })
    }

    /// GetLoadBalancer.
    pub fn get_load_balancer(
        &mut self,
        req: pb::GetLoadBalancerRequest,
    ) -> Result<pb::GetLoadBalancerResponse> {
        let id = validate::id("loadbalancer_id", &req.loadbalancer_id)?;
        let lb = self.loadbalancers.get(&id).ok_or(ServiceError::NotFound)?;
        Ok(pb::GetLoadBalancerResponse {
            status: None,
            loadbalanced_ip: Some(ip_msg(lb.ip)),
            vni: lb.vni,
            loadbalanced_ports: lb.ports.clone(),
            underlay_route: text(lb.underlay),
        })
    }

    /// DeleteLoadBalancer (with its targets).
    pub fn delete_load_balancer(
        &mut self,
        req: pb::DeleteLoadBalancerRequest,
    ) -> Result<pb::DeleteLoadBalancerResponse> {
        let id = validate::id("loadbalancer_id", &req.loadbalancer_id)?;
        let lb = self
            .loadbalancers
            .remove(&id)
            .ok_or(ServiceError::NotFound)?;
        self.underlays.release(lb.underlay);
        self.vni_release(lb.vni);
        Ok(pb::DeleteLoadBalancerResponse::default())
    }

    /// ListLoadBalancers.
    pub fn list_load_balancers(
        &mut self,
        _req: pb::ListLoadBalancersRequest,
    ) -> Result<pb::ListLoadBalancersResponse> {
        Ok(pb::ListLoadBalancersResponse {
            status: None,
            loadbalancers: self
                .loadbalancers
                .iter()
                .map(|(id, lb)| pb::Loadbalancer {
                    id: id.as_bytes().to_vec(),
                    vni: lb.vni,
                    ip: Some(ip_msg(lb.ip)),
                    ports: lb.ports.clone(),
                    underlay_route: text(lb.underlay),
                })
                .collect(),
        })
    }

    /// CreateLoadBalancerTarget: an IPv6 underlay address.
    pub fn create_load_balancer_target(
        &mut self,
        req: pb::CreateLoadBalancerTargetRequest,
    ) -> Result<pb::CreateLoadBalancerTargetResponse> {
        let id = validate::id("loadbalancer_id", &req.loadbalancer_id)?;
        let ip = validate::ip_address("target_ip", req.target_ip.as_ref())?;
        let lb = self.loadbalancers.get_mut(&id).ok_or(ServiceError::NoLb)?;
        let ip = ipv6_only(ip)?;
        if lb.targets.contains(&ip) {
            return Err(ServiceError::AlreadyExists.into());
        }
        if lb.targets.len() >= LB_MAX_TARGETS {
            return Err(ServiceError::LimitReached.into());
        }
        lb.targets.push(ip);
        Ok(pb::CreateLoadBalancerTargetResponse::default())
    }

    /// DeleteLoadBalancerTarget.
    pub fn delete_load_balancer_target(
        &mut self,
        req: pb::DeleteLoadBalancerTargetRequest,
    ) -> Result<pb::DeleteLoadBalancerTargetResponse> {
        let id = validate::id("loadbalancer_id", &req.loadbalancer_id)?;
        let ip = validate::ip_address("target_ip", req.target_ip.as_ref())?;
        let lb = self.loadbalancers.get_mut(&id).ok_or(ServiceError::NoLb)?;
        let ip = ipv6_only(ip)?;
        let pos = lb
            .targets
            .iter()
            .position(|t| *t == ip)
            .ok_or(ServiceError::NoBackip)?;
        lb.targets.remove(pos);
        Ok(pb::DeleteLoadBalancerTargetResponse::default())
    }

    /// ListLoadBalancerTargets (empty id: every load balancer).
    pub fn list_load_balancer_targets(
        &mut self,
        req: pb::ListLoadBalancerTargetsRequest,
    ) -> Result<pb::ListLoadBalancerTargetsResponse> {
        let id = validate::id_or_all("loadbalancer_id", &req.loadbalancer_id)?;
        let msgs = |lb: &LoadBalancer| {
            lb.targets
                .iter()
                .map(|t| ip_msg(IpAddr::V6(*t)))
                .collect::<Vec<_>>()
        };
        let target_ips = match id {
            Some(id) => msgs(self.loadbalancers.get(&id).ok_or(ServiceError::NoLb)?),
            None => self.loadbalancers.values().flat_map(msgs).collect(),
        };
        Ok(pb::ListLoadBalancerTargetsResponse {
            status: None,
            target_ips,
        })
    }
}
