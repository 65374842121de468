//! The dataplane's packet counters: ferrinet-dataplane's `Status/PacketCounters` on the
//! dpservice connection, asked live by the admin API and polled into the node's metrics.
//!
//! A dpservice has no such service (UNIMPLEMENTED) and a ferrinet-dataplane started without
//! packets answers `enabled = false`; the poller then stops for good (a dataplane restarted
//! with other settings is not noticed: restart the node).

use std::future::Future;
use std::time::Duration;

use ferrinet_proto::dataplane_status::v1 as status_pb;

use super::client::{Dp, DpError};
use crate::metrics::Metrics;

/// How often the poller reads the counters.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Asks the dataplane for its packet counters (one call, bounded by the call timeout).
pub async fn packet_counters(dp: &Dp) -> Result<status_pb::PacketCountersResponse, DpError> {
    dp.call_status("PacketCounters", |mut c| async move {
        c.packet_counters(status_pb::PacketCountersRequest {}).await
    })
    .await
}

/// What one poll found.
#[derive(Debug)]
pub enum Polled {
    /// The counters are in the metrics.
    Recorded,
    /// The dataplane does not count packets; there is nothing to poll.
    Unsupported(&'static str),
    /// No counters this time (the dataplane is down, or refused); the last values stay.
    Failed(DpError),
}

/// Reads the counters once into `metrics`.
pub async fn poll_once(dp: &Dp, metrics: &Metrics) -> Polled {
    match packet_counters(dp).await {
        Ok(c) if !c.enabled => {
            metrics.packets.clear();
            Polled::Unsupported("the dataplane moves no packets (started without packets)")
        }
        Ok(c) => {
            metrics.packets.record(&c);
            Polled::Recorded
        }
        Err(e) if e.is_unimplemented() => {
            metrics.packets.clear();
            Polled::Unsupported("the dataplane does not report packet counters (dpservice)")
        }
        Err(e) => Polled::Failed(e),
    }
}

/// Polls every `interval` until `shutdown` completes or the dataplane turns out not to count
/// packets.
pub async fn poll(
    dp: Dp,
    metrics: Metrics,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match poll_once(&dp, &metrics).await {
            Polled::Recorded => {
                if failing {
                    tracing::info!("dataplane packet counters readable again");
                }
                failing = false;
            }
            Polled::Unsupported(why) => {
                tracing::info!(reason = why, "not polling the dataplane's packet counters");
                return;
            }
            Polled::Failed(e) => {
                // The DataplaneActor already reports an unreachable dataplane.
                if !failing && !e.is_unavailable() {
                    tracing::warn!(error = %crate::error_chain(&e), "cannot read the dataplane's packet counters");
                } else {
                    tracing::debug!(error = %crate::error_chain(&e), "cannot read the dataplane's packet counters");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use ferrinet_dataplane::{DataplaneConfig, DataplaneService};
    use ferrinet_proto::dpservice::v1::dpd_kironcore_server::DpdKironcoreServer;
    use tokio::net::TcpListener;

    use super::*;

    fn dp(addr: SocketAddr, metrics: &Metrics) -> Dp {
        Dp::new(&addr.to_string(), Duration::from_secs(5), metrics.clone())
            .expect("a loopback address is a valid endpoint")
    }

    /// A software dataplane serving the dpservice API only, as dpservice does (no status
    /// service).
    async fn dpservice_like() -> SocketAddr {
        let cfg = DataplaneConfig::tap("fc00:9::1".parse().expect("an IPv6 address"), 4);
        let svc = DataplaneService::new(&cfg).expect("a valid dataplane configuration");
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = l.local_addr().expect("local address");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(DpdKironcoreServer::new(svc))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
        );
        addr
    }

    #[tokio::test]
    async fn dpservice_is_unsupported() {
        let metrics = Metrics::new();
        let dp = dp(dpservice_like().await, &metrics);
        let e = packet_counters(&dp).await.expect_err("no status service");
        assert!(e.is_unimplemented(), "{e:?}");
        assert!(matches!(
            poll_once(&dp, &metrics).await,
            Polled::Unsupported(why) if why.contains("dpservice")
        ));
        // The poller ends by itself.
        tokio::time::timeout(
            Duration::from_secs(30),
            poll(
                dp,
                metrics,
                Duration::from_millis(10),
                std::future::pending(),
            ),
        )
        .await
        .expect("the poller stops on UNIMPLEMENTED");
    }

    #[tokio::test]
    async fn dataplane_without_packets_is_unsupported() {
        let metrics = Metrics::new();
        let e = super::super::embedded::start("fc00:9::/64".parse().expect("a prefix"), 4, None)
            .await
            .expect("the embedded dataplane starts");
        let dp = dp(e.address, &metrics);
        let c = packet_counters(&dp)
            .await
            .expect("the status service answers");
        assert!(!c.enabled);
        assert!(matches!(
            poll_once(&dp, &metrics).await,
            Polled::Unsupported(why) if why.contains("without packets")
        ));
        assert!(!metrics.encode().contains("dataplane_flows{"));
    }

    #[tokio::test]
    async fn an_unreachable_dataplane_is_a_failure_not_the_end() {
        let metrics = Metrics::new();
        // Bind and drop to find a port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let dp = dp(addr, &metrics);
        match poll_once(&dp, &metrics).await {
            Polled::Failed(e) => assert!(e.is_unavailable(), "{e:?}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// Counters documents for the tests of what renders them (metrics, ferrinetctl).
#[cfg(test)]
pub(crate) mod fixtures {
    use ferrinet_proto::dataplane_status::v1 as status_pb;

    /// Traffic with `rx` and `tx` as (packets, bytes) and `drops` as (reason, packets).
    pub(crate) fn traffic(
        rx: (u64, u64),
        tx: (u64, u64),
        drops: &[(&str, u64)],
    ) -> status_pb::TrafficCounters {
        status_pb::TrafficCounters {
            rx_packets: rx.0,
            rx_bytes: rx.1,
            tx_packets: tx.0,
            tx_bytes: tx.1,
            drops: drops
                .iter()
                .map(|(reason, packets)| status_pb::DropCount {
                    reason: (*reason).to_string(),
                    packets: *packets,
                })
                .collect(),
        }
    }
}
