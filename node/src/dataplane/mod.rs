//! The dataplane: the dpservice client ([`client::Dp`]), the DataplaneActor that owns the
//! connection's lifecycle, the packet counters of ferrinet-dataplane ([`counters`]) and the
//! embedded software dataplane.
//!
//! The DataplaneActor initializes dpservice at start and checks it every interval: dpservice
//! answers ABORTED after a restart until it is initialized again, and its UUID changes. The
//! actor then initializes it and publishes the restart; the ApiActor has every object actor
//! re-apply its state, in-process (metalnet needs a process restart for this).
//!
//! ```text
//!  DataplaneActor --Check (send_after: interval)--> itself
//!        |  CheckInitialized / Initialize (Dp)
//!        v
//!  watch::Sender<DataplaneState> --> forwarder task --ApiMsg::DataplaneRestarted--> ApiActor
//!                                --> NodeStatus, /healthz
//! ```

pub mod client;
pub mod counters;
pub mod embedded;

use std::sync::Arc;
use std::time::Duration;

use ferrinet_proto::dpservice::v1 as dp;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use crate::metrics::Metrics;
use client::{Dp, DpError};

/// Where the dataplane stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not reached yet.
    Initializing,
    /// Initialized, answering.
    Ready,
    /// Not answering (the last check failed).
    Unreachable,
}

impl Health {
    /// Lowercase name for status output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Ready => "ready",
            Self::Unreachable => "unreachable",
        }
    }
}

/// What the DataplaneActor publishes.
#[derive(Debug, Clone)]
pub struct DataplaneState {
    /// The UUID of the running dpservice, once known.
    pub uuid: Option<String>,
    /// Where it stands.
    pub health: Health,
    /// Restarts detected since the node started.
    pub restarts: u64,
    /// Why the last check failed.
    pub last_error: Option<Arc<DpError>>,
}

impl Default for DataplaneState {
    fn default() -> Self {
        Self {
            uuid: None,
            health: Health::Initializing,
            restarts: 0,
            last_error: None,
        }
    }
}

/// Messages of the DataplaneActor.
#[derive(Debug)]
pub enum DataplaneMsg {
    /// Check the dataplane now (and schedule the next check).
    Check,
}

/// Start arguments.
#[derive(Debug)]
pub struct DataplaneArgs {
    /// The client.
    pub dp: Dp,
    /// Check interval.
    pub interval: Duration,
    /// Where the state is published.
    pub state: watch::Sender<DataplaneState>,
    /// Metrics.
    pub metrics: Metrics,
}

/// Owns the dpservice connection's lifecycle.
#[derive(Debug)]
pub struct DataplaneActor;

impl Actor for DataplaneActor {
    type Msg = DataplaneMsg;
    type State = DataplaneArgs;
    type Arguments = DataplaneArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DataplaneArgs,
    ) -> Result<DataplaneArgs, ActorProcessingErr> {
        myself.send_message(DataplaneMsg::Check)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: DataplaneMsg,
        st: &mut DataplaneArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DataplaneMsg::Check => {
                check(st).await;
                myself.send_after(st.interval, || DataplaneMsg::Check);
            }
        }
        Ok(())
    }
}

async fn initialize(dp: &Dp) -> Result<String, DpError> {
    dp.call("Initialize", |mut c| async move {
        c.initialize(dp::InitializeRequest {}).await
    })
    .await
    .map(|r| r.uuid)
}

async fn check(st: &mut DataplaneArgs) {
    let checked = st
        .dp
        .call("CheckInitialized", |mut c| async move {
            c.check_initialized(dp::CheckInitializedRequest {}).await
        })
        .await;
    let uuid = match checked {
        Ok(r) => Ok(r.uuid),
        Err(DpError::NotInitialized { .. }) => initialize(&st.dp).await,
        Err(e) => Err(e),
    };
    let known = st.state.borrow().uuid.clone();
    match uuid {
        Ok(uuid) => {
            let restarted = known.as_ref().is_some_and(|k| *k != uuid);
            if restarted {
                tracing::warn!(old_uuid = ?known, new_uuid = %uuid, "dataplane restarted: re-initialized, re-applying every object");
                st.metrics.dataplane_restarts.inc();
            } else if known.is_none() {
                tracing::info!(%uuid, address = st.dp.address(), "dataplane initialized");
            }
            st.state.send_if_modified(|s| {
                let changed = s.uuid.as_deref() != Some(uuid.as_str()) || s.health != Health::Ready;
                if restarted {
                    s.restarts += 1;
                }
                s.uuid = Some(uuid);
                s.health = Health::Ready;
                s.last_error = None;
                changed
            });
        }
        Err(e) => {
            if st.state.borrow().health != Health::Unreachable {
                tracing::warn!(error = %crate::error_chain(&e), "dataplane not answering");
            }
            st.state.send_modify(|s| {
                s.health = Health::Unreachable;
                s.last_error = Some(Arc::new(e));
            });
        }
    }
}
