//! In-process restart (`DataplaneService::restart`): what a client of the served dataplane sees
//! on the same connection when the dataplane "process" restarts under it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ferrinet_proto::dataplane_status::v1::{CountsRequest, status_client::StatusClient};
use ferrinet_proto::dpservice_status::{Reply, ServiceError};

#[tokio::test]
async fn restart_wipes_state_changes_uuid_and_closes_the_gate() {
    let mut f = start().await;
    let mut status = StatusClient::new(f.channel.clone());
    let c = &mut f.client;

    let first = ok(c.initialize(InitializeRequest {}).await)
        .into_result()
        .unwrap();
    assert_eq!(first.uuid, f.dp.uuid());
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(create_route(c, 100, "10.9.0.0", 16, "fc00:2::1").await, 0);
    assert!(vni_in_use(c, 100).await);

    let new_uuid = f.dp.restart();
    assert_ne!(new_uuid, first.uuid);
    assert_eq!(f.dp.uuid(), new_uuid);

    // The same client on the same connection: uninitialized again, as after a fresh start.
    assert_aborted(c.check_initialized(CheckInitializedRequest {}).await);
    assert_aborted(c.list_interfaces(ListInterfacesRequest {}).await);
    assert_aborted(c.get_interface(get_iface_req("vm1")).await);
    assert_aborted(
        c.create_route(CreateRouteRequest {
            vni: 100,
            route: Some(route("10.8.0.0", 16, "fc00:2::1", 100)),
        })
        .await,
    );
    assert_aborted(
        c.create_interface(iface_req("vm2", 100, "10.0.0.2", "::", "net_tap3"))
            .await,
    );
    // The status service is not gated and reads the served state: it is empty already.
    let counts = ok(status.counts(CountsRequest {}).await);
    assert!(
        counts.counts.iter().all(|c| c.count == 0),
        "{:?}",
        counts.counts
    );

    let second = ok(c.initialize(InitializeRequest {}).await)
        .into_result()
        .unwrap();
    assert_eq!(second.uuid, new_uuid);
    assert_ne!(second.uuid, first.uuid);
    let check = ok(c.check_initialized(CheckInitializedRequest {}).await)
        .into_result()
        .unwrap();
    assert_eq!(check.uuid, new_uuid);

    let list = ok(c.list_interfaces(ListInterfacesRequest {}).await)
        .into_result()
        .unwrap();
    assert!(list.interfaces.is_empty(), "{:?}", list.interfaces);
    let gone = ok(c.get_interface(get_iface_req("vm1")).await).check();
    assert!(gone.unwrap_err().is(ServiceError::NotFound));
    // The VNI's tables went with the interface that held them.
    assert!(!vni_in_use(c, 100).await);
    let no_vni = ok(c.list_routes(ListRoutesRequest { vni: 100 }).await).check();
    assert!(no_vni.unwrap_err().is(ServiceError::NoVni));
    // The device and the id are free again, so the daemon can rebuild what it had.
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(list_routes(c, 100).await, (0, vec![]));

    f.shutdown().await;
}

#[tokio::test]
async fn restart_before_initialize_only_changes_the_uuid() {
    let mut f = start().await;
    let before = f.dp.uuid();
    let after = f.dp.restart();
    assert_ne!(after, before);
    assert_aborted(f.client.check_initialized(CheckInitializedRequest {}).await);
    let init = ok(f.client.initialize(InitializeRequest {}).await);
    assert_eq!(init.uuid, after);
    f.shutdown().await;
}
