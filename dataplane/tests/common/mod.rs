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

pub async fn create_iface(
    c: &mut Client,
    id: &str,
    vni: u32,
    v4: &str,
    dev: &str,
) -> CreateInterfaceResponse {
    let r = c
        .create_interface(iface_req(id, vni, v4, "::", dev))
        .await
        .expect("create_interface")
        .into_inner();
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
    let r = c
        .create_route(CreateRouteRequest {
            vni,
            route: Some(route(addr, len, nh, vni)),
        })
        .await
        .expect("create_route")
        .into_inner();
    code(&r.status)
}

pub async fn delete_route(c: &mut Client, vni: u32, addr: &str, len: u32) -> u32 {
    let r = c
        .delete_route(DeleteRouteRequest {
            vni,
            route: Some(route(addr, len, "::", 0)),
        })
        .await
        .expect("delete_route")
        .into_inner();
    code(&r.status)
}

pub async fn list_routes(c: &mut Client, vni: u32) -> (u32, Vec<String>) {
    let r = c
        .list_routes(ListRoutesRequest { vni })
        .await
        .expect("list_routes")
        .into_inner();
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
    let r = c
        .check_vni_in_use(CheckVniInUseRequest {
            vni,
            r#type: VniType::VniIpv4 as i32,
        })
        .await
        .expect("check_vni_in_use")
        .into_inner();
    assert_eq!(code(&r.status), 0);
    r.in_use
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf8")
}

pub fn underlay(b: &[u8]) -> std::net::Ipv6Addr {
    text(b).parse().expect("underlay is IPv6 text")
}
