//! The embedded software dataplane: ferrinet-dataplane served in-process on a loopback port, so
//! the node is useful without dpservice (development, tests). Its TAP-style ports `net_tap2..`
//! match the node's TAP VF mode (`dtapvf_N` -> `net_tapN+2`).

use std::net::{Ipv6Addr, SocketAddr};

use ferrinet_dataplane::{DataplaneConfig, DataplaneService, PacketConfig};
use ipnet::Ipv6Net;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running embedded dataplane. Dropping it stops it.
#[derive(Debug)]
pub struct Embedded {
    /// Its gRPC address (127.0.0.1, a free port).
    pub address: SocketAddr,
    /// The service, for in-process inspection and restarts (tests).
    pub service: DataplaneService,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// The embedded dataplane cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Binding the loopback port failed.
    #[error("cannot bind the embedded dataplane's port")]
    Bind(#[source] std::io::Error),
    /// The dataplane refused its configuration.
    #[error("embedded dataplane configuration")]
    Config(#[source] ferrinet_dataplane::config::ConfigError),
    /// The packet path could not start.
    #[error("embedded dataplane packet path")]
    Packets(#[source] ferrinet_dataplane::io::PacketsError),
}

/// Starts a software dataplane with `vf_count` TAP-style VF ports and underlay `underlay`.
/// With `packets`, it also moves real packets (a TAP per VF port handed out).
pub async fn start(
    underlay: Ipv6Net,
    vf_count: usize,
    packets: Option<PacketConfig>,
) -> Result<Embedded, EmbeddedError> {
    let host = Ipv6Addr::from(u128::from(underlay.network()) + 1);
    let mut config = DataplaneConfig::tap(host, vf_count);
    // The TAPs are named as dpservice's TAP mode names them and as the node reports them
    // (`dtapvf_N` for port `net_tap{N+2}`), so the node's tap_device is the real device.
    for (i, port) in config.vf_ports.iter_mut().enumerate() {
        port.netdev = format!("{}{i}", crate::vf::naming::TAP_NAME_PREFIX);
    }
    config.packets = packets;
    let service = DataplaneService::new(&config).map_err(EmbeddedError::Config)?;
    service.start_packets().map_err(EmbeddedError::Packets)?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(EmbeddedError::Bind)?;
    let address = listener.local_addr().map_err(EmbeddedError::Bind)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let served = service.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = ferrinet_dataplane::serve_service(listener, served, shutdown).await {
            tracing::error!(error = %crate::error_chain(&e), "embedded dataplane failed");
        }
    });
    tracing::info!(%address, %underlay, vf_count, "embedded dataplane started");
    Ok(Embedded {
        address,
        service,
        stop: Some(stop),
        task,
    })
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}
