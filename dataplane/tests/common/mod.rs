//! Test harness: a dataplane on a loopback port 0 and a tonic client talking to it.
#![allow(dead_code, clippy::unwrap_used)]

use ferrinet_dataplane::{DataplaneConfig, DataplaneService};
use ferrinet_proto::dpservice::v1 as pb;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use pb::*;

pub type Client = DpdKironcoreClient<Channel>;

pub struct Fixture {
    pub client: Client,
    pub channel: Channel,
    pub dp: DataplaneService,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<Result<(), ferrinet_dataplane::ServeError>>>,
}

impl Fixture {
    /// Stops the server and waits until it has shut down.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("serve");
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start_with(config: DataplaneConfig) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dp = DataplaneService::new(&config).expect("config");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(ferrinet_dataplane::serve_service(
        listener,
        dp.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    Fixture {
        client: DpdKironcoreClient::new(channel.clone()),
        channel,
        dp,
        addr,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A started, uninitialized dataplane with the default TAP ports.
pub async fn start() -> Fixture {
    start_with(DataplaneConfig::default()).await
}

/// A started and initialized dataplane.
pub async fn started() -> Fixture {
    let mut f = start().await;
    f.client
        .initialize(InitializeRequest {})
        .await
        .expect("initialize");
    f
}

pub fn code(s: &Option<pb::Status>) -> u32 {
    let s = s.as_ref().expect("status present");
    if s.code == 0 {
        assert_eq!(s.message, "Success");
    } else {
        let e = ferrinet_dataplane::ServiceError::from_code(s.code).expect("known code");
        assert_eq!(s.message, e.name());
    }
    s.code
}

/// The status code of any dpservice response, checked against its message (see [`code`]).
pub trait Coded {
    fn code(&self) -> u32;
}

impl<T: ferrinet_dataplane::Reply> Coded for T {
    fn code(&self) -> u32 {
        code(&self.status().cloned())
    }
}

/// The response message of a call that must succeed at the gRPC layer (its `status` may
/// still carry a dpservice error); panics with the gRPC status otherwise.
#[track_caller]
pub fn ok<T>(r: Result<tonic::Response<T>, tonic::Status>) -> T {
    match r {
        Ok(r) => r.into_inner(),
        Err(s) => panic!("gRPC call failed: {s:?}"),
    }
}

/// The dpservice status code of a call that must succeed at the gRPC layer.
#[track_caller]
pub fn svc<T: Coded>(r: Result<tonic::Response<T>, tonic::Status>) -> u32 {
    ok(r).code()
}

/// Asserts the gate's answer: ABORTED "not initialized".
#[track_caller]
pub fn assert_aborted<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) {
    match r {
        Err(s) if s.code() == tonic::Code::Aborted => assert_eq!(s.message(), "not initialized"),
        other => panic!("expected ABORTED, got {other:?}"),
    }
}

/// Asserts INVALID_ARGUMENT naming `field`.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
) {
    match r {
        Err(s) => {
            assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
            assert!(
                s.message().starts_with(&format!("{field}:")),
                "message {:?} does not name {field}",
                s.message()
            );
        }
        Ok(r) => panic!("expected INVALID_ARGUMENT for {field}, got {r:?}"),
    }
}

pub fn ip4(s: &str) -> IpAddress {
    IpAddress {
        ipver: IpVersion::Ipv4 as i32,
        address: s.as_bytes().to_vec(),
    }
}

pub fn ip6(s: &str) -> IpAddress {
    IpAddress {
        ipver: IpVersion::Ipv6 as i32,
        address: s.as_bytes().to_vec(),
    }
}

pub fn ip(s: &str) -> IpAddress {
    if s.contains(':') { ip6(s) } else { ip4(s) }
}

pub fn pfx(addr: &str, len: u32) -> Prefix {
    Prefix {
        ip: Some(ip(addr)),
        length: len,
        underlay_route: vec![],
    }
}

pub fn iface_req(id: &str, vni: u32, v4: &str, v6: &str, dev: &str) -> CreateInterfaceRequest {
    CreateInterfaceRequest {
        interface_type: InterfaceType::Virtual as i32,
        interface_id: id.into(),
        vni,
        ipv4_config: Some(IpConfig {
            primary_address: v4.into(),
        }),
        ipv6_config: Some(IpConfig {
            primary_address: v6.into(),
        }),
        device_name: dev.to_string(),
        ..Default::default()
    }
}

/// Builders of requests that name one object by id.
macro_rules! by_id {
    ($($f:ident: $t:ident.$field:ident;)*) => {
        $(pub fn $f(id: &str) -> $t {
            $t { $field: id.into() }
        })*
    };
}

by_id! {
    get_iface_req: GetInterfaceRequest.interface_id;
    del_iface_req: DeleteInterfaceRequest.interface_id;
    get_nat_req: GetNatRequest.interface_id;
    del_nat_req: DeleteNatRequest.interface_id;
    list_rules_req: ListFirewallRulesRequest.interface_id;
    get_lb_req: GetLoadBalancerRequest.loadbalancer_id;
    del_lb_req: DeleteLoadBalancerRequest.loadbalancer_id;
}

pub fn vip_req(id: &str, addr: &str) -> CreateVipRequest {
    CreateVipRequest {
        interface_id: id.into(),
        vip_ip: Some(ip(addr)),
        ..Default::default()
    }
}

pub fn nat_req(id: &str, addr: &str, min_port: u32, max_port: u32) -> CreateNatRequest {
    CreateNatRequest {
        interface_id: id.into(),
        nat_ip: Some(ip(addr)),
        min_port,
        max_port,
        ..Default::default()
    }
}

pub fn prefix_req(id: &str, addr: &str, len: u32) -> CreatePrefixRequest {
    CreatePrefixRequest {
        interface_id: id.into(),
        prefix: Some(pfx(addr, len)),
        ..Default::default()
    }
}

pub fn lb_prefix_req(id: &str, addr: &str, len: u32) -> CreateLoadBalancerPrefixRequest {
    CreateLoadBalancerPrefixRequest {
        interface_id: id.into(),
        prefix: Some(pfx(addr, len)),
        ..Default::default()
    }
}

pub async fn create_iface(
    c: &mut Client,
    id: &str,
    vni: u32,
    v4: &str,
    dev: &str,
) -> CreateInterfaceResponse {
    let r = ok(c.create_interface(iface_req(id, vni, v4, "::", dev)).await);
    assert_eq!(code(&r.status), 0, "create_interface {id}");
    r
}

pub fn route(addr: &str, len: u32, nh: &str, nh_vni: u32) -> Route {
    Route {
        prefix: Some(pfx(addr, len)),
        nexthop_vni: nh_vni,
        nexthop_address: Some(ip(nh)),
        weight: 0,
    }
}

pub async fn create_route(c: &mut Client, vni: u32, addr: &str, len: u32, nh: &str) -> u32 {
    svc(c
        .create_route(CreateRouteRequest {
            vni,
            route: Some(route(addr, len, nh, vni)),
        })
        .await)
}

pub async fn delete_route(c: &mut Client, vni: u32, addr: &str, len: u32) -> u32 {
    svc(c
        .delete_route(DeleteRouteRequest {
            vni,
            route: Some(route(addr, len, "::", 0)),
        })
        .await)
}

pub async fn list_routes(c: &mut Client, vni: u32) -> (u32, Vec<String>) {
    let r = ok(c.list_routes(ListRoutesRequest { vni }).await);
    let routes = r
        .routes
        .iter()
        .map(|rt| {
            let p = rt.prefix.as_ref().expect("prefix");
            format!(
                "{}/{} via {} vni {}",
                text(&p.ip.as_ref().expect("ip").address),
                p.length,
                text(&rt.nexthop_address.as_ref().expect("nh").address),
                rt.nexthop_vni
            )
        })
        .collect();
    (code(&r.status), routes)
}

pub async fn vni_in_use(c: &mut Client, vni: u32) -> bool {
    let r = ok(c
        .check_vni_in_use(CheckVniInUseRequest {
            vni,
            r#type: VniType::VniIpv4 as i32,
        })
        .await);
    assert_eq!(code(&r.status), 0);
    r.in_use
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf8")
}

pub fn underlay(b: &[u8]) -> std::net::Ipv6Addr {
    text(b).parse().expect("underlay is IPv6 text")
}
