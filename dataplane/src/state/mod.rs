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

mod capture;
mod firewall;
mod interfaces;
mod load_balancer;
mod nat;
mod prefixes;
mod route_calls;
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
}
