//! HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (the dataplane answers and the
//! ApiActor runs), `/readyz` (the first full resync after start is done).

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ractor::ActorRef;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::ApiMsg;
use crate::dataplane::{DataplaneState, Health};
use crate::metrics::Metrics;

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    dataplane: watch::Receiver<DataplaneState>,
    synced: watch::Receiver<bool>,
    api: ActorRef<ApiMsg>,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    dataplane: watch::Receiver<DataplaneState>,
    synced: watch::Receiver<bool>,
    api: ActorRef<ApiMsg>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState {
            metrics,
            dataplane,
            synced,
            api,
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
    let dp = s.dataplane.borrow().clone();
    let api_alive = matches!(
        s.api.get_status(),
        ractor::ActorStatus::Running | ractor::ActorStatus::Upgrading
    );
    match (dp.health, api_alive) {
        (Health::Ready, true) => "ok\n".into_response(),
        (h, alive) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "dataplane {}, api {}\n",
                h.name(),
                if alive { "running" } else { "stopped" }
            ),
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<HttpState>) -> Response {
    if *s.synced.borrow() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "initial resync not done\n").into_response()
    }
}
