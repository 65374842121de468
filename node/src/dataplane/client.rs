//! The dpservice gRPC client, with both error layers of the API mapped to one typed error:
//! gRPC statuses (ABORTED "not initialized", INVALID_ARGUMENT, transport failures) and service
//! errors (`status.code` on gRPC OK, [`ServiceError`]). Every call is bounded in time and
//! measured (latency per RPC, errors per RPC and code). ferrinet-dataplane's own status service
//! is reached on the same connection ([`Dp::call_status`]).

use std::future::Future;
use std::time::{Duration, Instant};

use ferrinet_proto::dataplane_status::v1::status_client::StatusClient;
use ferrinet_proto::dpservice::v1::dpd_kironcore_client::DpdKironcoreClient;
use ferrinet_proto::dpservice_status::{Reply, ReplyError, ServiceError};
use tonic::transport::{Channel, Endpoint};

use crate::metrics::Metrics;

/// A dpservice call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    /// No answer within the call timeout.
    #[error("dpservice {rpc}: no answer within {after:?}")]
    Timeout {
        /// The RPC.
        rpc: &'static str,
        /// The limit.
        after: Duration,
    },
    /// dpservice answered ABORTED: it restarted and is not initialized (yet).
    #[error("dpservice {rpc}: not initialized")]
    NotInitialized {
        /// The RPC.
        rpc: &'static str,
    },
    /// The call failed at the gRPC layer (unreachable, refused request).
    #[error("dpservice {rpc} failed")]
    Grpc {
        /// The RPC.
        rpc: &'static str,
        /// gRPC status.
        #[source]
        status: Box<tonic::Status>,
    },
    /// dpservice answered with a service error code.
    #[error("dpservice {rpc}")]
    Service {
        /// The RPC.
        rpc: &'static str,
        /// The code and message.
        #[source]
        error: ReplyError,
    },
}

impl DpError {
    /// Whether this is service error `e`.
    pub fn is(&self, e: ServiceError) -> bool {
        matches!(self, Self::Service { error, .. } if error.is(e))
    }

    /// Whether this is one of `codes` (idempotency: "already exists", "not found" ...).
    pub fn is_any(&self, codes: &[ServiceError]) -> bool {
        codes.iter().any(|&c| self.is(c))
    }

    /// A short label for metrics: the service error name, `timeout`, `not_initialized` or the
    /// gRPC code.
    pub fn label(&self) -> String {
        match self {
            Self::Timeout { .. } => "timeout".into(),
            Self::NotInitialized { .. } => "not_initialized".into(),
            Self::Grpc { status, .. } => format!("grpc_{:?}", status.code()).to_lowercase(),
            Self::Service { error, .. } => match error.service_error() {
                Some(e) => e.name().to_string(),
                None => error
                    .code()
                    .map_or_else(|| "missing_status".into(), |c| format!("code_{c}")),
            },
        }
    }

    /// Whether the dataplane answered UNIMPLEMENTED: it does not serve this RPC (dpservice has
    /// no ferrinet status service).
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, Self::Grpc { status, .. } if status.code() == tonic::Code::Unimplemented)
    }

    /// Whether the dataplane looks restarted or gone (the DataplaneActor re-checks).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::NotInitialized { .. } | Self::Timeout { .. } => true,
            Self::Grpc { status, .. } => status.code() == tonic::Code::Unavailable,
            Self::Service { .. } => false,
        }
    }
}

/// A cheap-to-clone handle on the dpservice connection.
#[derive(Clone, Debug)]
pub struct Dp {
    client: DpdKironcoreClient<Channel>,
    status: StatusClient<Channel>,
    timeout: Duration,
    metrics: Metrics,
    address: String,
}

impl Dp {
    /// A client for `address` (`HOST:PORT`); connects lazily and reconnects by itself, so the
    /// node starts even while dpservice is down.
    pub fn new(
        address: &str,
        timeout: Duration,
        metrics: Metrics,
    ) -> Result<Self, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        Ok(Self {
            client: DpdKironcoreClient::new(channel.clone()),
            status: StatusClient::new(channel),
            timeout,
            metrics,
            address: address.to_string(),
        })
    }

    /// The address it talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs one RPC: `f` gets its own client clone. Maps both error layers and records the
    /// latency and the outcome.
    pub async fn call<Resp, F, Fut>(&self, rpc: &'static str, f: F) -> Result<Resp, DpError>
    where
        Resp: Reply,
        F: FnOnce(DpdKironcoreClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let start = Instant::now();
        let result = self
            .bounded(rpc, f(self.client.clone()))
            .await
            .and_then(|resp| {
                resp.into_result()
                    .map_err(|error| DpError::Service { rpc, error })
            });
        self.metrics
            .dp_call(rpc, start.elapsed(), result.as_ref().err());
        result
    }

    /// Runs one RPC of ferrinet-dataplane's status service (same connection; no service error
    /// layer), bounded and measured like [`Dp::call`]. A dpservice answers UNIMPLEMENTED
    /// ([`DpError::is_unimplemented`]).
    pub async fn call_status<Resp, F, Fut>(&self, rpc: &'static str, f: F) -> Result<Resp, DpError>
    where
        F: FnOnce(StatusClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let start = Instant::now();
        let result = self.bounded(rpc, f(self.status.clone())).await;
        self.metrics
            .dp_call(rpc, start.elapsed(), result.as_ref().err());
        result
    }

    /// The call timeout and the gRPC layer's errors.
    async fn bounded<Resp>(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    ) -> Result<Resp, DpError> {
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(DpError::Timeout {
                rpc,
                after: self.timeout,
            }),
            Ok(Err(status)) if status.code() == tonic::Code::Aborted => {
                Err(DpError::NotInitialized { rpc })
            }
            Ok(Err(status)) => Err(DpError::Grpc {
                rpc,
                status: Box::new(status),
            }),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        }
    }
}
