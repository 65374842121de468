//! External routes per VNI, and the VNI calls (CheckVniInUse, ResetVni).

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    /// CreateRoute: an external route in a VNI's table.
    pub fn create_route(&mut self, req: pb::CreateRouteRequest) -> Result<pb::CreateRouteResponse> {
        let route = validate::present("route", req.route.as_ref())?;
        let (addr, len) = validate::route_prefix("route.prefix", route.prefix.as_ref())?;
        let nh = validate::ip_address("route.nexthop_address", route.nexthop_address.as_ref())?;
        let table = self.routes_mut(req.vni)?;
        let underlay = ipv6_only(nh)?;
        let net = routes::normalize(addr, len).map_err(|_| ServiceError::RouteInsert)?;
        table
            .insert(
                net,
                NextHop::External {
                    vni: route.nexthop_vni,
                    underlay,
                },
            )
            .map_err(|e| match e {
                RouteError::Exists => ServiceError::RouteExists,
                RouteError::BadLength | RouteError::NotFound => ServiceError::RouteInsert,
            })?;
        observe::report(self.route_observer.as_ref(), req.vni, net, Some(underlay));
        Ok(pb::CreateRouteResponse::default())
    }

    /// DeleteRoute.
    pub fn delete_route(&mut self, req: pb::DeleteRouteRequest) -> Result<pb::DeleteRouteResponse> {
        let route = validate::present("route", req.route.as_ref())?;
        let (addr, len) = validate::route_prefix("route.prefix", route.prefix.as_ref())?;
        let table = self.routes_mut(req.vni)?;
        let net = routes::normalize(addr, len).map_err(|_| ServiceError::RouteNotFound)?;
        match table.get(net) {
            None => Err(ServiceError::RouteNotFound.into()),
            Some(NextHop::Local(_)) => Err(ServiceError::RouteBadPort.into()),
            Some(NextHop::External { .. }) => {
                let _ = table.remove(net);
                observe::report(self.route_observer.as_ref(), req.vni, net, None);
                Ok(pb::DeleteRouteResponse::default())
            }
        }
    }

    /// ListRoutes (VNI 0: every VNI): external routes, IPv4 and IPv6.
    pub fn list_routes(&mut self, req: pb::ListRoutesRequest) -> Result<pb::ListRoutesResponse> {
        let mut vnis: Vec<u32> = if req.vni == 0 {
            self.vnis.keys().copied().collect()
        } else if self.vnis.contains_key(&req.vni) {
            vec![req.vni]
        } else {
            return Err(ServiceError::NoVni.into());
        };
        vnis.sort_unstable();
        let mut routes = Vec::new();
        for vni in vnis {
            let Some(v) = self.vnis.get(&vni) else {
                continue;
            };
            routes.extend(
                v.routes
                    .external_routes()
                    .into_iter()
                    .map(|(net, nh_vni, ul)| pb::Route {
                        prefix: Some(prefix_msg(net, None)),
                        nexthop_vni: nh_vni,
                        nexthop_address: Some(ip_msg(IpAddr::V6(ul))),
                        weight: 0,
                    }),
            );
        }
        Ok(pb::ListRoutesResponse {
            status: None,
            routes,
        })
    }

    // ---- VNI ----

    /// CheckVniInUse: VNI_IPV4 or VNI_IPV6.
    pub fn check_vni_in_use(
        &mut self,
        req: pb::CheckVniInUseRequest,
    ) -> Result<pb::CheckVniInUseResponse> {
        let t: pb::VniType = validate::known_enum("type", req.r#type)?;
        if t == pb::VniType::VniBoth {
            return Err(ServiceError::WrongType.into());
        }
        Ok(pb::CheckVniInUseResponse {
            status: None,
            in_use: self.vnis.contains_key(&req.vni),
        })
    }

    /// ResetVni: VNI_BOTH only; drops the VNI's external routes.
    pub fn reset_vni(&mut self, req: pb::ResetVniRequest) -> Result<pb::ResetVniResponse> {
        let t: pb::VniType = validate::known_enum("type", req.r#type)?;
        if t != pb::VniType::VniBoth {
            return Err(ServiceError::WrongType.into());
        }
        self.routes_mut(req.vni)?;
        self.report_external_removed(req.vni);
        self.routes_mut(req.vni)?.clear_external();
        Ok(pb::ResetVniResponse::default())
    }
}
