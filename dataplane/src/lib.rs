//! ferrinet-dataplane: a software dataplane that serves the dpservice gRPC API
//! (`dpdkironcore.v1.DPDKironcore`) with the real service's semantics and error contract,
//! holding all state in memory. The node daemon embeds it (see [`serve`]) for its dev mode and
//! tests; the `ferrinet-dataplane` binary runs it standalone.

pub mod config;
pub mod error;
pub mod flow;
pub mod forward;
pub mod io;
pub mod observe;
pub mod packet;
pub mod routes;
pub mod service;
pub mod state;
pub mod underlay;
pub mod validate;

use std::future::Future;

use ferrinet_proto::dataplane_status::v1::status_server::StatusServer;
use ferrinet_proto::dpservice::v1::dpd_kironcore_server::DpdKironcoreServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

pub use config::{DataplaneConfig, PacketConfig, VfPort};
pub use error::{CallError, InvalidArgument};
pub use ferrinet_proto::dpservice_status::{Reply, ReplyError, ServiceError};
pub use observe::RouteChange;
pub use service::{DataplaneService, StatusService};
pub use state::{Counts, State};

/// Name under which the health service reports the dpservice API.
pub const SERVICE_NAME: &str = "dpdkironcore.v1.DPDKironcore";

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves a fresh dataplane built from `config` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: DataplaneConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let dataplane = DataplaneService::new(&config)?;
    serve_service(listener, dataplane, shutdown).await
}

/// Serves `dataplane` (keep a clone to inspect it in-process) on `listener` until `shutdown`
/// completes; in-flight calls finish first.
pub async fn serve_service(
    listener: TcpListener,
    dataplane: DataplaneService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_serving::<DpdKironcoreServer<DataplaneService>>()
        .await;
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            // Small request/reply messages: Nagle would add a delay to every reply.
            let _ = stream.set_nodelay(true);
        }
        conn
    });
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(StatusServer::new(StatusService::new(dataplane.clone())))
        .add_service(DpdKironcoreServer::new(dataplane))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
