//! The admin gRPC service (`ferrinet.node.v1.NodeAdmin`): every request is a call to the
//! ApiActor. Served on a Unix socket and/or TCP (mutual TLS with the region CA, or plaintext
//! when no certificates are configured); the caller binds the listeners.

pub mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use ferrinet_proto::dataplane_status::v1::PacketCountersResponse;
use ferrinet_proto::node::v1 as pb;
use ferrinet_proto::node::v1::node_admin_server::{NodeAdmin, NodeAdminServer};
use futures::Stream;
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status};

use crate::api::ApiMsg;
use crate::dataplane::client::Dp;

/// The service.
#[derive(Debug, Clone)]
pub struct AdminService {
    api: ActorRef<ApiMsg>,
    dp: Dp,
}

impl AdminService {
    /// A service in front of `api`; dataplane reads go to `dp` directly.
    pub fn new(api: ActorRef<ApiMsg>, dp: Dp) -> Self {
        Self { api, dp }
    }

    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> ApiMsg,
    ) -> Result<T, Status> {
        match self.api.call(msg, None).await {
            Ok(CallResult::Success(v)) => Ok(v),
            _ => Err(Status::unavailable("the node is shutting down")),
        }
    }
}

fn kind(k: i32, field: &str) -> Result<pb::Kind, Status> {
    pb::Kind::try_from(k)
        .map_err(|_| Status::invalid_argument(format!("{field}: unknown kind {k}")))
}

fn object_ref(r: Option<pb::ObjectRef>) -> Result<(pb::Kind, String), Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("ref: missing"))?;
    let k = kind(r.kind, "ref.kind")?;
    if k == pb::Kind::Unspecified {
        return Err(Status::invalid_argument("ref.kind: must be set"));
    }
    Ok((k, r.name))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAdmin for AdminService {
    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let o = req
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("object: missing"))?;
        let r = self.ask(|p| ApiMsg::Create(o, p)).await?;
        r.map(Response::new).map_err(Status::from)
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let (k, name) = object_ref(req.into_inner().r#ref)?;
        let r = self.ask(|p| ApiMsg::Get(k, name, p)).await?;
        r.map(Response::new).map_err(Status::from)
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let k = kind(req.into_inner().kind, "kind")?;
        let (objects, revision) = self.ask(|p| ApiMsg::List(k, p)).await?;
        Ok(Response::new(pb::ListResponse { objects, revision }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::Object>, Status> {
        let o = req
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("object: missing"))?;
        let r = self.ask(|p| ApiMsg::Update(o, p)).await?;
        r.map(Response::new).map_err(Status::from)
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = req.into_inner();
        let (k, name) = object_ref(req.r#ref)?;
        let r = self
            .ask(|p| ApiMsg::Delete(k, name, req.resource_version, p))
            .await?;
        r.map(|o| Response::new(pb::DeleteResponse { object: Some(o) }))
            .map_err(Status::from)
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let req = req.into_inner();
        let k = kind(req.kind, "kind")?;
        let rx = self
            .ask(|p| ApiMsg::Watch(k, req.from_revision, p))
            .await?
            .map_err(Status::from)?;
        let s = ReceiverStream::new(rx).map(Ok::<_, Status>);
        Ok(Response::new(Box::pin(s)))
    }

    async fn node_status(
        &self,
        _req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        Ok(Response::new(self.ask(ApiMsg::NodeStatus).await?))
    }

    async fn dataplane_routes(
        &self,
        req: Request<pb::DataplaneRoutesRequest>,
    ) -> Result<Response<pb::DataplaneRoutesResponse>, Status> {
        let vni = req.into_inner().vni;
        if vni == 0 || vni > 0x00ff_ffff {
            return Err(Status::invalid_argument(format!(
                "vni: {vni} is not a VNI (1..16777215)"
            )));
        }
        let table = crate::network::list_routes(&self.dp, vni)
            .await
            .map_err(|e| {
                if e.is(ferrinet_proto::dpservice_status::ServiceError::NoVni) {
                    Status::not_found(format!("vni: {vni} has no table in the dataplane"))
                } else {
                    Status::unavailable(crate::error_chain(&e))
                }
            })?;
        let routes = table
            .into_iter()
            .map(|(prefix, (nexthop_vni, nexthop))| pb::DataplaneRoute {
                prefix: prefix.to_string(),
                nexthop_vni,
                nexthop: nexthop.to_string(),
            })
            .collect();
        Ok(Response::new(pb::DataplaneRoutesResponse { routes }))
    }

    async fn get_packet_counters(
        &self,
        _req: Request<pb::GetPacketCountersRequest>,
    ) -> Result<Response<PacketCountersResponse>, Status> {
        crate::dataplane::counters::packet_counters(&self.dp)
            .await
            .map(Response::new)
            .map_err(|e| {
                if e.is_unimplemented() {
                    Status::failed_precondition(
                        "the dataplane does not report packet counters (dpservice)",
                    )
                } else {
                    Status::unavailable(format!(
                        "the dataplane at {} does not answer: {}",
                        self.dp.address(),
                        crate::error_chain(&e)
                    ))
                }
            })
    }
}

/// The admin listeners, bound by the caller.
#[derive(Debug, Default)]
pub struct AdminListeners {
    /// Unix socket and its path (removed when the server ends).
    pub unix: Option<(UnixListener, PathBuf)>,
    /// TCP, with the TLS configuration when mutual TLS is on.
    pub tcp: Option<(TcpListener, Option<std::sync::Arc<rustls::ServerConfig>>)>,
}

/// Binds the Unix socket at `path`, replacing a stale socket file, creating its directory.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

/// Serves the admin API on every listener until `shutdown` completes.
pub async fn serve(
    listeners: AdminListeners,
    api: ActorRef<ApiMsg>,
    dp: Dp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let svc = NodeAdminServer::new(AdminService::new(api, dp));
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    if let Some((l, path)) = listeners.unix {
        let svc = svc.clone();
        let mut stop = stop_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(UnixListenerStream::new(l), async move {
                    let _ = stop.recv().await;
                })
                .await;
            let _ = std::fs::remove_file(&path);
            r
        }));
    }
    if let Some((l, tls_config)) = listeners.tcp {
        let mut stop = stop_tx.subscribe();
        let server = tonic::transport::Server::builder().add_service(svc);
        let until_stopped = async move {
            let _ = stop.recv().await;
        };
        tasks.push(match tls_config {
            Some(config) => {
                let incoming = ReceiverStream::new(tls::incoming(l, config));
                tokio::spawn(server.serve_with_incoming_shutdown(incoming, until_stopped))
            }
            None => {
                let incoming = TcpListenerStream::new(l).map(|c| {
                    if let Ok(s) = &c {
                        let _ = s.set_nodelay(true);
                    }
                    c
                });
                tokio::spawn(server.serve_with_incoming_shutdown(incoming, until_stopped))
            }
        });
    }
    shutdown.await;
    let _ = stop_tx.send(());
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            return Err(e);
        }
    }
    Ok(())
}
