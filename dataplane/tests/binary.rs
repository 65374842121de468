//! The `ferrinet-dataplane` binary: starts from its options, serves, and exits cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use ferrinet_proto::dpservice::v1 as pb;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn binary_serves_and_stops_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrinet-dataplane"))
        .args([
            "--grpc-port",
            &port.to_string(),
            "--ipv6",
            "fc00:9::1",
            "--vf-names",
            "net_tap2,net_tap3=custom0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferrinet-dataplane");

    // The process needs a moment to bind; retry the connection instead of sleeping blindly.
    let mut client = None;
    for _ in 0..100 {
        match DpdKironcoreClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut client = client.expect("binary is serving");
    client
        .initialize(pb::InitializeRequest {})
        .await
        .expect("initialize");
    let r = client
        .create_interface(pb::CreateInterfaceRequest {
            interface_id: b"vm1".to_vec(),
            vni: 7,
            ipv4_config: Some(pb::IpConfig {
                primary_address: b"10.0.0.1".to_vec(),
            }),
            ipv6_config: Some(pb::IpConfig {
                primary_address: b"::".to_vec(),
            }),
            device_name: "net_tap3".to_string(),
            ..Default::default()
        })
        .await
        .expect("create_interface")
        .into_inner();
    assert_eq!(r.status.map(|s| s.code), Some(0));
    assert_eq!(r.vf.map(|v| v.name).as_deref(), Some("custom0"));
    let ul: std::net::Ipv6Addr = String::from_utf8(r.underlay_route)
        .expect("utf8")
        .parse()
        .expect("ipv6");
    assert_eq!(
        ul.segments()[..4],
        [0xfc00, 9, 0, 0],
        "underlay in the --ipv6 /64"
    );

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("ferrinet-dataplane did not stop on SIGTERM");
    };
    assert!(status.success(), "exit status {status:?}");
}
