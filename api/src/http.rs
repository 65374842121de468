//! HTTP endpoints of a replica: `/metrics` (OpenMetrics text), `/healthz` (the store answers),
//! `/readyz` (a leader is known, so writes can be served here or forwarded).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::store::Store;

/// Labels of a call counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    /// The RPC (`Create`, `Register`, ...).
    pub rpc: String,
    /// The gRPC code it ended with (`Ok`, `InvalidArgument`, ...).
    pub code: String,
}

/// The replica's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Calls refused by access control.
    pub denied: Counter,
    /// Writes by RPC and outcome (on the replica that received them).
    pub writes: Family<CallLabels, Counter>,
    /// Writes this follower forwarded to the leader.
    pub forwarded: Counter,
    /// 1 while this replica leads.
    pub leader: Gauge,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ferrinet_api");
        let denied = Counter::default();
        let writes = Family::<CallLabels, Counter>::default();
        let forwarded = Counter::default();
        let leader = Gauge::default();
        registry.register("denied", "Calls refused by access control", denied.clone());
        registry.register("writes", "Writes by RPC and gRPC code", writes.clone());
        registry.register(
            "forwarded",
            "Writes forwarded to the leader",
            forwarded.clone(),
        );
        registry.register("leader", "1 while this replica leads", leader.clone());
        Self {
            denied,
            writes,
            forwarded,
            leader,
            registry: Arc::new(registry),
        }
    }
}

impl Metrics {
    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one write.
    pub fn write(&self, rpc: &str, code: tonic::Code) {
        self.writes
            .get_or_create(&CallLabels {
                rpc: rpc.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
    }
}

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    store: Store,
    leader: watch::Receiver<Option<String>>,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    store: Store,
    leader: watch::Receiver<Option<String>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState {
            metrics,
            store,
            leader,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(s): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(s): State<HttpState>) -> Response {
    match s.store.revision().await {
        Ok(_) => "ok\n".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store: {}\n", crate::service::error::error_chain(&e)),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<HttpState>) -> Response {
    match s.leader.borrow().clone() {
        Some(l) => format!("ready (leader {l})\n").into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader yet\n").into_response(),
    }
}
