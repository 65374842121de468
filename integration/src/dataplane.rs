//! Software dataplanes served from the test process, and reading any dataplane (in-process or a
//! node's embedded one) through the dpservice API, as a node or an operator would see it.
//!
//! A dataplane served here outlives a `kill -9` of the node that programs it, and
//! [`DataplaneService::restart`] on [`Dataplane::service`] restarts it without a new listener.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use anyhow::Context as _;
use ferrinet_dataplane::{DataplaneConfig, DataplaneService};
use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;
use ferrinet_proto::dpservice_status::{Reply as _, ServiceError};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

/// A dpservice client.
pub type Client = DpdKironcoreClient<Channel>;

/// A software dataplane on 127.0.0.1 (port chosen by the system), served by a task of the
/// current runtime until this is dropped.
#[derive(Debug)]
pub struct Dataplane {
    /// `127.0.0.1:PORT`, for the node's `[dataplane] address`.
    pub addr: String,
    /// The served instance: inspect it, observe its routes, restart it.
    pub service: DataplaneService,
    /// Host underlay address (`--ipv6` of dpservice); its /64 holds every underlay it hands out.
    pub underlay: Ipv6Addr,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Dataplane {
    /// Serves a TAP-style dataplane with `vf_count` VFs and host underlay `underlay`: give
    /// each node of a test its own /64, so that next hops tell which node a route came from.
    pub async fn start(underlay: Ipv6Addr, vf_count: usize) -> anyhow::Result<Self> {
        let cfg = DataplaneConfig::tap(underlay, vf_count);
        let service = DataplaneService::new(&cfg)?;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?.to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = service.clone();
        tokio::spawn(async move {
            // Stopped by a message only: a detached dataplane's dropped sender is no stop.
            let shutdown = async move {
                if stopped.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            if let Err(e) = ferrinet_dataplane::serve_service(l, served, shutdown).await {
                eprintln!("test dataplane stopped: {e}");
            }
        });
        Ok(Self {
            client: lazy_client(&addr)?,
            addr,
            service,
            underlay,
            stop: Some(stop),
        })
    }

    /// Keeps serving for as long as the runtime runs, without a guard: returns the address and
    /// the instance.
    pub fn detach(mut self) -> (String, DataplaneService) {
        drop(self.stop.take());
        (self.addr.clone(), self.service.clone())
    }

    /// A client on this dataplane's one shared connection.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// What it holds, as [`view`] reads it.
    pub async fn view(&self) -> anyhow::Result<DataplaneView> {
        view(self.client()).await
    }
}

/// A client for the dataplane at `addr` that connects on first use.
pub fn lazy_client(addr: &str) -> anyhow::Result<Client> {
    let e = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
    Ok(DpdKironcoreClient::new(e.connect_lazy()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn address(a: Option<dp::IpAddress>) -> String {
    a.map(|a| text(&a.address)).unwrap_or_default()
}

/// The interfaces a dataplane holds: `(id, vni, device)`, sorted.
pub async fn interfaces(mut c: Client) -> anyhow::Result<Vec<(String, u32, String)>> {
    let r = c
        .list_interfaces(dp::ListInterfacesRequest {})
        .await?
        .into_inner()
        .into_result()?;
    let mut v: Vec<_> = r
        .interfaces
        .into_iter()
        .map(|i| (text(&i.id), i.vni, i.pci_name))
        .collect();
    v.sort();
    Ok(v)
}

/// The external routes of `vni`: `(prefix, next hop)`; none while the VNI is not in use.
pub async fn routes(mut c: Client, vni: u32) -> anyhow::Result<BTreeSet<(String, String)>> {
    let r = c
        .list_routes(dp::ListRoutesRequest { vni })
        .await?
        .into_inner();
    let r = match r.into_result() {
        Ok(r) => r,
        Err(e) if e.is(ServiceError::NoVni) => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).context("ListRoutes"),
    };
    Ok(r.routes
        .into_iter()
        .map(|r| {
            let p = r.prefix.unwrap_or_default();
            (
                format!("{}/{}", address(p.ip), p.length),
                address(r.nexthop_address),
            )
        })
        .collect())
}

/// The target underlays of load balancer `id`.
pub async fn lb_targets(mut c: Client, id: &str) -> anyhow::Result<BTreeSet<String>> {
    let r = c
        .list_load_balancer_targets(dp::ListLoadBalancerTargetsRequest {
            loadbalancer_id: id.as_bytes().to_vec(),
        })
        .await?
        .into_inner()
        .into_result()
        .with_context(|| format!("ListLoadBalancerTargets {id}"))?;
    Ok(r.target_ips.into_iter().map(|a| text(&a.address)).collect())
}

/// The load-balancer target prefixes of interface `id`: `(prefix, underlay)`, the underlay
/// being what its node announces as the target's next hop.
pub async fn lb_prefixes(mut c: Client, id: &str) -> anyhow::Result<BTreeSet<(String, String)>> {
    let r = c
        .list_load_balancer_prefixes(dp::ListLoadBalancerPrefixesRequest {
            interface_id: id.as_bytes().to_vec(),
        })
        .await?
        .into_inner()
        .into_result()
        .with_context(|| format!("ListLoadBalancerPrefixes {id}"))?;
    Ok(r.prefixes
        .into_iter()
        .map(|p| {
            (
                format!("{}/{}", address(p.ip), p.length),
                text(&p.underlay_route),
            )
        })
        .collect())
}

/// A neighbour NAT entry: traffic to `ip` with destination ports `min..max` in `vni` goes to
/// `underlay`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeighborNat {
    /// The NAT IP.
    pub ip: String,
    /// The VNI.
    pub vni: u32,
    /// First port.
    pub min_port: u32,
    /// End of the port range.
    pub max_port: u32,
    /// Underlay next hop.
    pub underlay: String,
}

/// Every neighbour NAT entry.
pub async fn neighbor_nats(mut c: Client) -> anyhow::Result<BTreeSet<NeighborNat>> {
    let all = dp::IpAddress {
        ipver: dp::IpVersion::Ipv4 as i32,
        address: b"0.0.0.0".to_vec(),
    };
    let r = c
        .list_neighbor_nats(dp::ListNeighborNatsRequest { nat_ip: Some(all) })
        .await?
        .into_inner()
        .into_result()
        .context("ListNeighborNats")?;
    Ok(r.nat_entries
        .into_iter()
        .map(|e| NeighborNat {
            ip: address(e.actual_nat_ip.or(e.nat_ip)),
            vni: e.vni,
            min_port: e.min_port,
            max_port: e.max_port,
            underlay: text(&e.underlay_route),
        })
        .collect())
}

/// What a dataplane holds of what nodes learn from each other, comparable as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataplaneView {
    /// Interface ids.
    pub interfaces: BTreeSet<String>,
    /// External routes of every VNI: `(vni, prefix, next hop)`.
    pub routes: BTreeSet<(u32, String, String)>,
    /// Neighbour NAT entries.
    pub neighbor_nats: BTreeSet<NeighborNat>,
    /// Targets of each load balancer.
    pub lb_targets: BTreeMap<String, BTreeSet<String>>,
}

impl DataplaneView {
    /// The routes of one VNI: `(prefix, next hop)`.
    pub fn routes_of(&self, vni: u32) -> BTreeSet<(String, String)> {
        self.routes
            .iter()
            .filter(|(v, _, _)| *v == vni)
            .map(|(_, p, h)| (p.clone(), h.clone()))
            .collect()
    }
}

/// Reads interfaces, the routes of every VNI in use, neighbour NATs and load-balancer targets.
pub async fn view(mut c: Client) -> anyhow::Result<DataplaneView> {
    let mut v = DataplaneView::default();
    let mut vnis = BTreeSet::new();
    for (id, vni, _) in interfaces(c.clone()).await? {
        v.interfaces.insert(id);
        vnis.insert(vni);
    }
    let lbs = c
        .list_load_balancers(dp::ListLoadBalancersRequest {})
        .await?
        .into_inner()
        .into_result()
        .context("ListLoadBalancers")?;
    for lb in lbs.loadbalancers {
        vnis.insert(lb.vni);
        let id = text(&lb.id);
        let targets = lb_targets(c.clone(), &id).await?;
        v.lb_targets.insert(id, targets);
    }
    for vni in vnis {
        for (p, h) in routes(c.clone(), vni).await? {
            v.routes.insert((vni, p, h));
        }
    }
    v.neighbor_nats = neighbor_nats(c).await?;
    Ok(v)
}
