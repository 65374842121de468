//! The dataplane state and every API operation on it, as plain methods: each one validates its
//! whole request before it touches anything, so a rejected call leaves the state as it was.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ferrinet_proto::dpservice::v1 as pb;
use ipnet::IpNet;

use crate::config::DataplaneConfig;
use crate::error::{CallError, InvalidArgument, ServiceError};
use crate::flow::{IfaceIndex, RuleSets};
use crate::observe;
use crate::routes::{self, NextHop, RouteError, RouteTable};
use crate::underlay::Underlays;
use crate::validate;

mod firewall;
pub mod topology;

pub use topology::{PortInfo, Topology, Vnf, VnfKind};

type Result<T> = std::result::Result<T, CallError>;

/// Most ports a load balancer can have is one less than this, as on the real service.
pub const LB_MAX_PORTS: usize = 16;
/// Most targets per load balancer.
pub const LB_MAX_TARGETS: usize = 64;

/// Protocol version answered by GetVersion.
pub const SERVICE_PROTOCOL: &str = "dpdkironcore.v1";

#[derive(Debug)]
enum Device {
    Pf,
    Vf {
        netdev: String,
        used_by: Option<Arc<str>>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Nat {
    ip: Ipv4Addr,
    min: u16,
    max: u16,
    underlay: Ipv6Addr,
}

#[derive(Debug)]
struct Interface {
    id: Arc<str>,
    vni: u32,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    underlay: Ipv6Addr,
    device: String,
    metering: Option<pb::MeteringParams>,
    hostname: String,
    vip: Option<(Ipv4Addr, Ipv6Addr)>,
    nat: Option<Nat>,
    prefixes: BTreeMap<IpNet, Ipv6Addr>,
    lb_prefixes: BTreeMap<IpNet, Ipv6Addr>,
    /// Firewall rules in insertion order: the order dpservice matches them in.
    rules: Vec<pb::FirewallRule>,
    /// The packet path's index of this interface (flow keys, rule sets); never reused.
    index: IfaceIndex,
}

#[derive(Debug)]
struct LoadBalancer {
    vni: u32,
    ip: IpAddr,
    ports: Vec<pb::LbPort>,
    underlay: Ipv6Addr,
    targets: Vec<Ipv6Addr>,
}

#[derive(Debug)]
struct Vni {
    users: u32,
    routes: RouteTable,
}

/// Object counts per kind, for the status service and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Interfaces.
    pub interfaces: u64,
    /// VNIs with route tables.
    pub vnis: u64,
    /// External routes.
    pub routes: u64,
    /// Local routes (interface addresses and alias prefixes).
    pub local_routes: u64,
    /// Alias prefixes.
    pub prefixes: u64,
    /// Load-balancer prefixes.
    pub lb_prefixes: u64,
    /// Virtual IPs.
    pub vips: u64,
    /// Local NAT entries.
    pub nats: u64,
    /// Neighbour NAT entries.
    pub neighbor_nats: u64,
    /// Load balancers.
    pub loadbalancers: u64,
    /// Load-balancer targets.
    pub lb_targets: u64,
    /// Firewall rules.
    pub firewall_rules: u64,
    /// Underlay addresses in use.
    pub underlays: u64,
}

impl Counts {
    /// `(kind, count)` pairs in a fixed order.
    pub fn pairs(&self) -> [(&'static str, u64); 13] {
        [
            ("interfaces", self.interfaces),
            ("vnis", self.vnis),
            ("routes", self.routes),
            ("local_routes", self.local_routes),
            ("prefixes", self.prefixes),
            ("lb_prefixes", self.lb_prefixes),
            ("vips", self.vips),
            ("nats", self.nats),
            ("neighbor_nats", self.neighbor_nats),
            ("loadbalancers", self.loadbalancers),
            ("lb_targets", self.lb_targets),
            ("firewall_rules", self.firewall_rules),
            ("underlays", self.underlays),
        ]
    }
}

impl Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (k, v) in self.pairs() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// The in-memory dataplane.
#[derive(Debug)]
pub struct State {
    uuid: String,
    initialized: bool,
    underlays: Underlays,
    devices: HashMap<String, Device>,
    interfaces: BTreeMap<Arc<str>, Interface>,
    vnis: HashMap<u32, Vni>,
    loadbalancers: BTreeMap<String, LoadBalancer>,
    neighbor_nats: BTreeMap<(Ipv4Addr, u32, u16, u16), Ipv6Addr>,
    route_observer: Option<observe::Sender>,
    /// Compiled firewall rules per interface, for the packet path.
    rule_sets: RuleSets,
    /// Changes whenever something the packet path derives its tables from changes (interfaces,
    /// prefixes, VIPs, NATs, LBs); unique across restarts.
    topology_generation: u64,
}

fn text(x: impl Display) -> Vec<u8> {
    x.to_string().into_bytes()
}

fn ip_msg(ip: IpAddr) -> pb::IpAddress {
    pb::IpAddress {
        ipver: match ip {
            IpAddr::V4(_) => pb::IpVersion::Ipv4 as i32,
            IpAddr::V6(_) => pb::IpVersion::Ipv6 as i32,
        },
        address: text(ip),
    }
}

fn prefix_msg(net: IpNet, underlay: Option<Ipv6Addr>) -> pb::Prefix {
    pb::Prefix {
        ip: Some(ip_msg(net.addr())),
        length: u32::from(net.prefix_len()),
        underlay_route: underlay.map(text).unwrap_or_default(),
    }
}

/// The optional `preferred_underlay_route` of a create request (empty: none), checked
/// against the dataplane's own /64. One in use is refused later, by `Underlays::allocate`
/// (VNF_INSERT), which checks it before it takes anything.
fn preferred(
    underlays: &Underlays,
    raw: &[u8],
) -> std::result::Result<Option<Ipv6Addr>, InvalidArgument> {
    const FIELD: &str = "preferred_underlay_route";
    if raw.is_empty() {
        return Ok(None);
    }
    let addr = validate::ipv6_text(FIELD, raw)?;
    underlays.check_preferred(FIELD, addr).map(Some)
}

/// The address of a call that takes IPv4 only: BAD_IPVER otherwise.
fn ipv4_only(ip: IpAddr) -> std::result::Result<Ipv4Addr, ServiceError> {
    match ip {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(ServiceError::BadIpver),
    }
}

/// The address of a call that takes IPv6 only: BAD_IPVER otherwise.
fn ipv6_only(ip: IpAddr) -> std::result::Result<Ipv6Addr, ServiceError> {
    match ip {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(_) => Err(ServiceError::BadIpver),
    }
}

fn overlaps(a: (u16, u16), b: (u16, u16)) -> bool {
    // Half-open slices [min, max).
    a.0 < b.1 && b.0 < a.1
}

impl State {
    /// A fresh, uninitialized dataplane with a new UUID.
    pub fn new(config: &DataplaneConfig) -> Self {
        let mut devices = HashMap::new();
        for pf in &config.pf_ports {
            devices.insert(pf.clone(), Device::Pf);
        }
        for vf in &config.vf_ports {
            devices.insert(
                vf.name.clone(),
                Device::Vf {
                    netdev: vf.netdev.clone(),
                    used_by: None,
                },
            );
        }
        Self {
            uuid: uuid::Uuid::new_v4().to_string(),
            initialized: false,
            underlays: Underlays::new(config.underlay_ipv6, rand::random()),
            devices,
            interfaces: BTreeMap::new(),
            vnis: HashMap::new(),
            loadbalancers: BTreeMap::new(),
            neighbor_nats: BTreeMap::new(),
            route_observer: None,
            rule_sets: RuleSets::new(),
            topology_generation: topology::next_generation(),
        }
    }

    /// Reports every later external route change to `tx` ([`crate::observe`]).
    pub(crate) fn set_route_observer(&mut self, tx: observe::Sender) {
        self.route_observer = Some(tx);
    }

    /// Reports the removal of every external route of `vni`'s table (about to be cleared or
    /// dropped).
    fn report_external_removed(&self, vni: u32) {
        let Some(v) = self.vnis.get(&vni) else {
            return;
        };
        if self.route_observer.is_some() {
            for (net, _, _) in v.routes.external_routes() {
                observe::report(self.route_observer.as_ref(), vni, net, None);
            }
        }
    }

    /// Fails with ABORTED-to-be unless Initialize has run.
    pub fn gate(&self) -> Result<()> {
        if self.initialized {
            Ok(())
        } else {
            Err(CallError::NotInitialized)
        }
    }

    /// This instance's UUID.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Object counts per kind.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            interfaces: self.interfaces.len() as u64,
            vnis: self.vnis.len() as u64,
            neighbor_nats: self.neighbor_nats.len() as u64,
            loadbalancers: self.loadbalancers.len() as u64,
            underlays: self.underlays.len() as u64,
            ..Counts::default()
        };
        for v in self.vnis.values() {
            let ext = v.routes.external_len() as u64;
            c.routes += ext;
            c.local_routes += v.routes.len() as u64 - ext;
        }
        for i in self.interfaces.values() {
            c.prefixes += i.prefixes.len() as u64;
            c.lb_prefixes += i.lb_prefixes.len() as u64;
            c.vips += u64::from(i.vip.is_some());
            c.nats += u64::from(i.nat.is_some());
            c.firewall_rules += i.rules.len() as u64;
        }
        for lb in self.loadbalancers.values() {
            c.lb_targets += lb.targets.len() as u64;
        }
        c
    }

    /// Longest-prefix match in a VNI's table: the packet path's view of the routes.
    pub fn lookup(&self, vni: u32, addr: IpAddr) -> Option<(IpNet, NextHop)> {
        self.vnis
            .get(&vni)
            .and_then(|v| v.routes.lookup(addr))
            .map(|(n, h)| (n, h.clone()))
    }

    fn vni_acquire(&mut self, vni: u32) {
        self.vnis
            .entry(vni)
            .or_insert_with(|| Vni {
                users: 0,
                routes: RouteTable::new(),
            })
            .users += 1;
    }

    fn vni_release(&mut self, vni: u32) {
        if let Some(v) = self.vnis.get_mut(&vni) {
            v.users = v.users.saturating_sub(1);
            if v.users == 0 {
                self.report_external_removed(vni);
                self.vnis.remove(&vni);
            }
        }
    }

    fn iface(&self, id: &str) -> std::result::Result<&Interface, ServiceError> {
        self.interfaces.get(id).ok_or(ServiceError::NoVm)
    }

    /// The route table of a VNI in use: NO_VNI otherwise.
    fn routes_mut(&mut self, vni: u32) -> std::result::Result<&mut RouteTable, ServiceError> {
        self.vnis
            .get_mut(&vni)
            .map(|v| &mut v.routes)
            .ok_or(ServiceError::NoVni)
    }

    fn iface_mut(&mut self, id: &str) -> std::result::Result<&mut Interface, ServiceError> {
        self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)
    }

    /// Whether `ip` is a VIP or NAT IP of some interface in `vni` (one DNAT table per VNI).
    fn dnat_taken(&self, vni: u32, ip: Ipv4Addr, check_vips: bool, check_nats: bool) -> bool {
        self.interfaces.values().any(|i| {
            i.vni == vni
                && ((check_vips && i.vip.is_some_and(|(v, _)| v == ip))
                    || (check_nats && i.nat.is_some_and(|n| n.ip == ip)))
        })
    }

    /// Whether a NAT slice of `ip` in `vni` overlaps any local or neighbour NAT slice.
    fn nat_slice_taken(&self, vni: u32, ip: Ipv4Addr, slice: (u16, u16)) -> bool {
        let local = self.interfaces.values().any(|i| {
            i.vni == vni
                && i.nat
                    .is_some_and(|n| n.ip == ip && overlaps((n.min, n.max), slice))
        });
        let neigh = self
            .neighbor_nats
            .range((ip, vni, 0, 0)..=(ip, vni, u16::MAX, u16::MAX))
            .any(|(&(_, _, lo, hi), _)| overlaps((lo, hi), slice));
        local || neigh
    }

    // ---- init, version ----

    /// Initialize: idempotent, answers the UUID.
    pub fn initialize(&mut self, _req: pb::InitializeRequest) -> Result<pb::InitializeResponse> {
        self.initialized = true;
        Ok(pb::InitializeResponse {
            status: None,
            uuid: self.uuid.clone(),
        })
    }

    /// CheckInitialized: answers the UUID (the gate runs before this).
    pub fn check_initialized(
        &mut self,
        _req: pb::CheckInitializedRequest,
    ) -> Result<pb::CheckInitializedResponse> {
        Ok(pb::CheckInitializedResponse {
            status: None,
            uuid: self.uuid.clone(),
        })
    }

    /// GetVersion.
    pub fn get_version(&mut self, req: pb::GetVersionRequest) -> Result<pb::GetVersionResponse> {
        validate::required_text("client_protocol", &req.client_protocol)?;
        validate::required_text("client_name", &req.client_name)?;
        validate::required_text("client_version", &req.client_version)?;
        Ok(pb::GetVersionResponse {
            status: None,
            service_protocol: SERVICE_PROTOCOL.to_string(),
            service_version: concat!("ferrinet-dataplane ", env!("CARGO_PKG_VERSION")).to_string(),
        })
    }

    // ---- interfaces ----

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

    // ---- alias prefixes ----

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

    // ---- VIP ----

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

    // ---- routes ----

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

    // ---- load balancers ----

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

    // ---- capture ----

    /// CaptureStart: validated like the real service, then NOT_ACTIVE because a software
    /// dataplane has no packet capture (the real service answers the same with offload off).
    pub fn capture_start(
        &mut self,
        req: pb::CaptureStartRequest,
    ) -> Result<pb::CaptureStartResponse> {
        let cfg = req.capture_config.unwrap_or_default();
        validate::port("capture_config.udp_src_port", cfg.udp_src_port)?;
        validate::port("capture_config.udp_dst_port", cfg.udp_dst_port)?;
        let sink = cfg.sink_node_ip.unwrap_or_default();
        validate::ipv6_text("capture_config.sink_node_ip", &sink.address)?;
        for iface in &cfg.interfaces {
            let _: pb::CaptureInterfaceType = validate::known_enum(
                "capture_config.interfaces.interface_type",
                iface.interface_type,
            )?;
            match &iface.spec {
                Some(pb::captured_interface::Spec::VfName(name)) => {
                    validate::id("capture_config.interfaces.vf_name", name)?;
                }
                Some(pb::captured_interface::Spec::PfIndex(i)) => {
                    if *i > u32::from(u8::MAX) {
                        return Err(InvalidArgument::new(
                            "capture_config.interfaces.pf_index",
                            "must be at most 255",
                        )
                        .into());
                    }
                }
                None => {
                    return Err(
                        InvalidArgument::new("capture_config.interfaces.spec", "missing").into(),
                    );
                }
            }
        }
        Err(ServiceError::NotActive.into())
    }

    /// CaptureStop: nothing is ever capturing.
    pub fn capture_stop(
        &mut self,
        _req: pb::CaptureStopRequest,
    ) -> Result<pb::CaptureStopResponse> {
        Err(ServiceError::NotActive.into())
    }

    /// CaptureStatus: never active.
    pub fn capture_status(
        &mut self,
        _req: pb::CaptureStatusRequest,
    ) -> Result<pb::CaptureStatusResponse> {
        Ok(pb::CaptureStatusResponse {
            status: None,
            is_active: false,
            capture_config: None,
        })
    }
}
