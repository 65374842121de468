//! Prometheus metrics of the route server (`/metrics`, OpenMetrics text).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A label set with one label.
pub type Label = [(&'static str, &'static str); 1];

/// Every metric of the server; cheap to clone (the metrics are shared handles).
#[derive(Clone)]
pub struct Metrics {
    /// Sessions open now, by listener (`tls`, `compat`).
    pub sessions: Family<Label, Gauge>,
    /// Sessions accepted since start, by listener.
    pub sessions_total: Family<Label, Counter>,
    /// Connections refused, by reason (`max_sessions`, `handshake`, `identity`, `unauthorized`).
    pub sessions_refused: Family<Label, Counter>,
    /// UPDATEs received (valid or not).
    pub updates_received: Counter,
    /// UPDATEs refused, by reason (`invalid`, `unauthorized`).
    pub updates_refused: Family<Label, Counter>,
    /// Distinct routes stored.
    pub routes: Gauge,
    /// VNI subscriptions over all sessions.
    pub subscriptions: Gauge,
    /// Subscribers disconnected because their send queue overflowed.
    pub overflow_disconnects: Counter,
    /// Sessions closed for a protocol error (bad frame, wrong message for the state).
    pub protocol_errors: Counter,
    /// Bytes written to peers.
    pub bytes_sent: Counter,
    /// Bytes read from peers.
    pub bytes_received: Counter,
}

impl Metrics {
    /// New metrics, registered in `registry` with the `ferrinet_region` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            sessions: Family::default(),
            sessions_total: Family::default(),
            sessions_refused: Family::default(),
            updates_received: Counter::default(),
            updates_refused: Family::default(),
            routes: Gauge::default(),
            subscriptions: Gauge::default(),
            overflow_disconnects: Counter::default(),
            protocol_errors: Counter::default(),
            bytes_sent: Counter::default(),
            bytes_received: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("ferrinet_region");
        r.register(
            "sessions",
            "Sessions open now, by listener",
            m.sessions.clone(),
        );
        r.register(
            "sessions_accepted",
            "Sessions accepted, by listener",
            m.sessions_total.clone(),
        );
        r.register(
            "sessions_refused",
            "Connections refused, by reason",
            m.sessions_refused.clone(),
        );
        r.register(
            "updates_received",
            "UPDATE messages received",
            m.updates_received.clone(),
        );
        r.register(
            "updates_refused",
            "UPDATE messages refused (not stored), by reason",
            m.updates_refused.clone(),
        );
        r.register("routes", "Distinct routes stored", m.routes.clone());
        r.register(
            "subscriptions",
            "VNI subscriptions over all sessions",
            m.subscriptions.clone(),
        );
        r.register(
            "overflow_disconnects",
            "Subscribers disconnected because their send queue overflowed",
            m.overflow_disconnects.clone(),
        );
        r.register(
            "protocol_errors",
            "Sessions closed for a protocol error",
            m.protocol_errors.clone(),
        );
        r.register("bytes_sent", "Bytes written to peers", m.bytes_sent.clone());
        r.register(
            "bytes_received",
            "Bytes read from peers",
            m.bytes_received.clone(),
        );
        m
    }
}
