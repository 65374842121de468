//! Prometheus metrics of the node daemon (`/metrics`, OpenMetrics text).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::dataplane::client::DpError;

type Labels = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    // 100 µs .. ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric of the node; cheap to clone (the metrics are shared handles).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Objects by kind and phase.
    pub objects: Family<Labels, Gauge>,
    /// Duration of one reconcile pass, by kind.
    pub reconcile_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// dpservice call latency, by RPC.
    pub dp_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// dpservice calls that failed, by RPC and code.
    pub dp_errors: Family<Labels, Counter>,
    /// dpservice restarts detected and answered in-process.
    pub dataplane_restarts: Counter,
    /// Routes this node announces.
    pub routes_announced: Gauge,
    /// Learned routes written into dpservice, by kind (route, neighbor_nat, lb_target) and op.
    pub route_changes: Family<Labels, Counter>,
    /// Learned-route writes dpservice refused or did not answer, by kind, op and code.
    pub route_failures: Family<Labels, Counter>,
    registry: Arc<Registry>,
}

impl Metrics {
    /// New metrics in their own registry, with the `ferrinet_node` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let objects = Family::<Labels, Gauge>::default();
        let reconcile_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let dp_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let dp_errors = Family::<Labels, Counter>::default();
        let dataplane_restarts = Counter::default();
        let routes_announced = Gauge::default();
        let route_changes = Family::<Labels, Counter>::default();
        let route_failures = Family::<Labels, Counter>::default();
        let r = registry.sub_registry_with_prefix("ferrinet_node");
        r.register("objects", "Objects by kind and phase", objects.clone());
        r.register(
            "reconcile_seconds",
            "Duration of one reconcile pass, by kind",
            reconcile_seconds.clone(),
        );
        r.register(
            "dpservice_call_seconds",
            "dpservice call latency, by RPC",
            dp_seconds.clone(),
        );
        r.register(
            "dpservice_errors",
            "dpservice calls that failed, by RPC and code",
            dp_errors.clone(),
        );
        r.register(
            "dataplane_restarts",
            "dpservice restarts detected and answered in-process",
            dataplane_restarts.clone(),
        );
        r.register(
            "routes_announced",
            "Routes this node announces",
            routes_announced.clone(),
        );
        r.register(
            "route_changes",
            "Learned routes written into dpservice, by kind and op",
            route_changes.clone(),
        );
        r.register(
            "route_failures",
            "Learned-route writes that failed, by kind, op and dpservice code",
            route_failures.clone(),
        );
        Self {
            objects,
            reconcile_seconds,
            dp_seconds,
            dp_errors,
            dataplane_restarts,
            routes_announced,
            route_changes,
            route_failures,
            registry: Arc::new(registry),
        }
    }

    /// Records one dpservice call.
    pub fn dp_call(&self, rpc: &'static str, took: Duration, error: Option<&DpError>) {
        self.dp_seconds
            .get_or_create(&vec![("rpc", rpc.to_string())])
            .observe(took.as_secs_f64());
        if let Some(e) = error {
            self.dp_errors
                .get_or_create(&vec![("rpc", rpc.to_string()), ("code", e.label())])
                .inc();
        }
    }

    /// Records one write of a learned route: `kind` is route, neighbor_nat or lb_target, `op`
    /// create or delete.
    pub fn route_write(&self, kind: &'static str, op: &'static str, error: Option<&DpError>) {
        match error {
            None => self
                .route_changes
                .get_or_create(&vec![("kind", kind.to_string()), ("op", op.to_string())])
                .inc(),
            Some(e) => self
                .route_failures
                .get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("op", op.to_string()),
                    ("code", e.label()),
                ])
                .inc(),
        };
    }

    /// Records one reconcile pass.
    pub fn reconciled(&self, kind: &'static str, took: Duration) {
        self.reconcile_seconds
            .get_or_create(&vec![("kind", kind.to_string())])
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
