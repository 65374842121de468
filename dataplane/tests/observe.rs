//! Route-change observer (`DataplaneService::route_changes`): what an in-process observer is
//! told, in order, for each way an external route comes or goes.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ferrinet_dataplane::RouteChange;
use tokio::sync::broadcast::Receiver;

fn next(rx: &mut Receiver<RouteChange>) -> (u32, String, Option<String>) {
    let c = rx.try_recv().unwrap();
    (
        c.vni,
        c.prefix.to_string(),
        c.next_hop.map(|h| h.to_string()),
    )
}

fn change(vni: u32, prefix: &str, hop: Option<&str>) -> (u32, String, Option<String>) {
    (vni, prefix.to_string(), hop.map(str::to_string))
}

#[tokio::test]
async fn installs_and_removals_are_reported_across_a_restart() {
    let mut f = started().await;
    let mut rx = f.dp.route_changes();
    let c = &mut f.client;
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    // Host bits are cleared, as the table stores the prefix.
    assert_eq!(create_route(c, 100, "10.9.1.0", 16, "fc00:2::1").await, 0);
    assert_eq!(next(&mut rx), change(100, "10.9.0.0/16", Some("fc00:2::1")));
    assert_eq!(delete_route(c, 100, "10.9.0.0", 16).await, 0);
    assert_eq!(next(&mut rx), change(100, "10.9.0.0/16", None));
    // A refused call changes nothing and reports nothing.
    assert_ne!(delete_route(c, 100, "10.9.0.0", 16).await, 0);
    assert!(rx.try_recv().is_err());

    // The VNI's table goes with its last interface, routes included.
    assert_eq!(create_route(c, 100, "10.8.0.0", 16, "fc00:2::2").await, 0);
    let _ = next(&mut rx);
    assert_eq!(svc(c.delete_interface(del_iface_req("vm1")).await), 0);
    assert_eq!(next(&mut rx), change(100, "10.8.0.0/16", None));

    // A restart is not reported route by route, but the observer keeps observing.
    f.dp.restart();
    ok(c.initialize(InitializeRequest {}).await);
    create_iface(c, "vm1", 100, "10.0.0.1", "net_tap2").await;
    assert_eq!(create_route(c, 100, "10.7.0.0", 16, "fc00:2::3").await, 0);
    assert_eq!(next(&mut rx), change(100, "10.7.0.0/16", Some("fc00:2::3")));
    assert!(rx.try_recv().is_err());
}
