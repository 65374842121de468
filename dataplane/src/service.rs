//! The gRPC face of [`State`]: gate, tracing, and the mapping of errors onto the two layers
//! (gRPC status vs `status` field) that the real service uses.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ferrinet_proto::dataplane_status::v1 as status_pb;
use ferrinet_proto::dpservice::v1 as pb;
use ferrinet_proto::dpservice::v1::dpd_kironcore_server::DpdKironcore;
use ferrinet_proto::dpservice_status::success_status;
use tonic::{Request, Response, Status};

use crate::config::{ConfigError, DataplaneConfig};
use crate::error::CallError;
use crate::io::{Packets, PacketsError};
use crate::observe::{self, RouteChange};
use crate::state::{Counts, State};

/// The dpservice API served from an in-memory [`State`]; cheap to clone (shared state).
///
/// Every clone is the same dataplane: keep one when handing another to [`crate::serve_service`]
/// to inspect the served state or [`restart`](Self::restart) it in-process.
#[derive(Debug, Clone)]
pub struct DataplaneService {
    state: Arc<Mutex<State>>,
    // A restart rebuilds the state from the same configuration, as a restarted process would.
    config: Arc<DataplaneConfig>,
    // Made by the first observer; a restart hands it to the fresh state.
    route_observer: Arc<OnceLock<observe::Sender>>,
    // The packet path, once started.
    packets: Arc<OnceLock<Packets>>,
}

/// Replies are part of the API, so the trait lives in [`ferrinet_proto::dpservice_status`];
/// re-exported here for existing users.
pub use ferrinet_proto::dpservice_status::Reply;

impl DataplaneService {
    /// A dataplane with fresh state (uninitialized, new UUID).
    pub fn new(config: &DataplaneConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            state: Arc::new(Mutex::new(State::new(config))),
            config: Arc::new(config.clone()),
            route_observer: Arc::new(OnceLock::new()),
            packets: Arc::new(OnceLock::new()),
        })
    }

    /// Starts moving packets as the configuration's `packets` section says (a no-op without
    /// one, or if already started). Must run inside the tokio runtime.
    pub fn start_packets(&self) -> Result<(), PacketsError> {
        let Some(pc) = &self.config.packets else {
            return Ok(());
        };
        if self.packets.get().is_some() {
            return Ok(());
        }
        let p = Packets::start(self.state.clone(), &self.config, pc)?;
        let _ = self.packets.set(p);
        Ok(())
    }

    /// The packet path, if started.
    pub fn packets(&self) -> Option<&Packets> {
        self.packets.get()
    }

    /// Every external route change from now on ([`crate::observe`]), across restarts: a tool
    /// can time when a route lands here without polling ListRoutes.
    pub fn route_changes(&self) -> tokio::sync::broadcast::Receiver<RouteChange> {
        let tx = self.route_observer.get_or_init(observe::channel);
        // Subscribed before the state reports to the sender: no change is missed in between.
        let rx = tx.subscribe();
        self.lock().set_route_observer(tx.clone());
        rx
    }

    /// Simulates a restart of the dataplane process without touching the listener: the state
    /// is replaced by a fresh one built from the same configuration, so afterwards there is a
    /// new UUID, no objects at all (interfaces, routes, VNIs, NATs, LBs, ...), and every call
    /// but `Initialize` answers ABORTED until `Initialize` is called again, exactly as after a
    /// fresh start. Returns the new UUID.
    ///
    /// Calls are atomic with respect to the restart: each one sees either the old state or the
    /// new one. Unlike a real restart, open connections survive, so a client notices the
    /// restart only through ABORTED or a changed UUID, which is how dpservice clients are
    /// meant to detect it anyway.
    pub fn restart(&self) -> String {
        let mut fresh = State::new(&self.config);
        if let Some(tx) = self.route_observer.get() {
            fresh.set_route_observer(tx.clone());
        }
        let new_uuid = fresh.uuid().to_string();
        // The old state is dropped after the lock is released: freeing a large one takes a
        // while and calls need not wait for it.
        let old = std::mem::replace(&mut *self.lock(), fresh);
        tracing::info!(old_uuid = old.uuid(), new_uuid = %new_uuid, "dataplane restarted");
        new_uuid
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // State methods validate before they mutate and do not panic; should one ever panic,
        // the state it left is still consistent enough to keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Object counts per kind.
    pub fn counts(&self) -> Counts {
        self.lock().counts()
    }

    /// This instance's UUID (what Initialize answers).
    pub fn uuid(&self) -> String {
        self.lock().uuid().to_string()
    }

    /// Runs `f` on the state, for in-process inspection (tests, the packet path).
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }

    fn handle<Req: Debug, Resp: Reply + Default>(
        &self,
        rpc: &'static str,
        gated: bool,
        req: Req,
        f: fn(&mut State, Req) -> Result<Resp, CallError>,
    ) -> Result<Response<Resp>, Status> {
        tracing::debug!(rpc, request = ?req, "call");
        let result = {
            let mut st = self.lock();
            let r = if gated {
                st.gate().and_then(|()| f(&mut st, req))
            } else {
                f(&mut st, req)
            };
            if r.is_ok() && changes_topology(rpc) {
                st.touch_topology();
            }
            r
        };
        if result.is_ok()
            && rpc == "create_interface"
            && let Some(p) = self.packets.get()
        {
            // The VF is handed out now: its TAP exists before the caller sees the reply.
            p.reconcile();
        }
        match result {
            Ok(mut reply) => {
                tracing::debug!(rpc, code = 0, "reply");
                reply.set_status(success_status());
                Ok(Response::new(reply))
            }
            Err(CallError::Service(e)) => {
                tracing::debug!(rpc, code = e.code(), error = e.name(), "reply");
                let mut reply = Resp::default();
                reply.set_status(e.to_status());
                Ok(Response::new(reply))
            }
            Err(CallError::Invalid(e)) => {
                tracing::debug!(rpc, error = %e, "invalid argument");
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(CallError::NotInitialized) => {
                tracing::debug!(rpc, "not initialized");
                Err(Status::aborted("not initialized"))
            }
        }
    }
}

/// Whether a successful call of `rpc` may change what the packet path derives from the state
/// (interfaces, prefixes, VIPs, NATs, load balancers); routes and rules are looked up live.
fn changes_topology(rpc: &str) -> bool {
    let mutates = rpc.starts_with("create_") || rpc.starts_with("delete_") || rpc == "reset_vni";
    mutates && !rpc.ends_with("_route") && !rpc.ends_with("_firewall_rule")
}

macro_rules! rpcs {
    ($( $name:ident($req:ident) -> $resp:ident $(, gate = $gate:expr)?; )*) => {
        #[tonic::async_trait]
        impl DpdKironcore for DataplaneService {
            $(
                async fn $name(
                    &self,
                    request: Request<pb::$req>,
                ) -> Result<Response<pb::$resp>, Status> {
                    #[allow(unused_mut, unused_assignments)]
                    let mut gated = true;
                    $(gated = $gate;)?
                    self.handle(stringify!($name), gated, request.into_inner(), State::$name)
                }
            )*
        }
    };
}

rpcs! {
    check_initialized(CheckInitializedRequest) -> CheckInitializedResponse;
    initialize(InitializeRequest) -> InitializeResponse, gate = false;
    get_version(GetVersionRequest) -> GetVersionResponse;
    list_interfaces(ListInterfacesRequest) -> ListInterfacesResponse;
    get_interface(GetInterfaceRequest) -> GetInterfaceResponse;
    create_interface(CreateInterfaceRequest) -> CreateInterfaceResponse;
    delete_interface(DeleteInterfaceRequest) -> DeleteInterfaceResponse;
    list_prefixes(ListPrefixesRequest) -> ListPrefixesResponse;
    create_prefix(CreatePrefixRequest) -> CreatePrefixResponse;
    delete_prefix(DeletePrefixRequest) -> DeletePrefixResponse;
    list_load_balancer_prefixes(ListLoadBalancerPrefixesRequest) -> ListLoadBalancerPrefixesResponse;
    create_load_balancer_prefix(CreateLoadBalancerPrefixRequest) -> CreateLoadBalancerPrefixResponse;
    delete_load_balancer_prefix(DeleteLoadBalancerPrefixRequest) -> DeleteLoadBalancerPrefixResponse;
    create_vip(CreateVipRequest) -> CreateVipResponse;
    get_vip(GetVipRequest) -> GetVipResponse;
    delete_vip(DeleteVipRequest) -> DeleteVipResponse;
    create_load_balancer(CreateLoadBalancerRequest) -> CreateLoadBalancerResponse;
    get_load_balancer(GetLoadBalancerRequest) -> GetLoadBalancerResponse;
    delete_load_balancer(DeleteLoadBalancerRequest) -> DeleteLoadBalancerResponse;
    list_load_balancers(ListLoadBalancersRequest) -> ListLoadBalancersResponse;
    create_load_balancer_target(CreateLoadBalancerTargetRequest) -> CreateLoadBalancerTargetResponse;
    list_load_balancer_targets(ListLoadBalancerTargetsRequest) -> ListLoadBalancerTargetsResponse;
    delete_load_balancer_target(DeleteLoadBalancerTargetRequest) -> DeleteLoadBalancerTargetResponse;
    create_nat(CreateNatRequest) -> CreateNatResponse;
    get_nat(GetNatRequest) -> GetNatResponse;
    delete_nat(DeleteNatRequest) -> DeleteNatResponse;
    list_local_nats(ListLocalNatsRequest) -> ListLocalNatsResponse;
    create_neighbor_nat(CreateNeighborNatRequest) -> CreateNeighborNatResponse;
    delete_neighbor_nat(DeleteNeighborNatRequest) -> DeleteNeighborNatResponse;
    list_neighbor_nats(ListNeighborNatsRequest) -> ListNeighborNatsResponse;
    list_routes(ListRoutesRequest) -> ListRoutesResponse;
    create_route(CreateRouteRequest) -> CreateRouteResponse;
    delete_route(DeleteRouteRequest) -> DeleteRouteResponse;
    check_vni_in_use(CheckVniInUseRequest) -> CheckVniInUseResponse;
    reset_vni(ResetVniRequest) -> ResetVniResponse;
    list_firewall_rules(ListFirewallRulesRequest) -> ListFirewallRulesResponse;
    create_firewall_rule(CreateFirewallRuleRequest) -> CreateFirewallRuleResponse;
    get_firewall_rule(GetFirewallRuleRequest) -> GetFirewallRuleResponse;
    delete_firewall_rule(DeleteFirewallRuleRequest) -> DeleteFirewallRuleResponse;
    capture_start(CaptureStartRequest) -> CaptureStartResponse;
    capture_stop(CaptureStopRequest) -> CaptureStopResponse;
    capture_status(CaptureStatusRequest) -> CaptureStatusResponse;
}

/// The status service (`ferrinet.dataplane.v1.Status`): object counts on request. Not gated by
/// Initialize, so operators can look at an idle dataplane.
#[derive(Debug, Clone)]
pub struct StatusService {
    dataplane: DataplaneService,
}

impl StatusService {
    /// Reports on `dataplane`.
    pub fn new(dataplane: DataplaneService) -> Self {
        Self { dataplane }
    }
}

#[tonic::async_trait]
impl status_pb::status_server::Status for StatusService {
    async fn counts(
        &self,
        _request: Request<status_pb::CountsRequest>,
    ) -> Result<Response<status_pb::CountsResponse>, Status> {
        let counts = self.dataplane.counts();
        tracing::debug!(%counts, "object counts");
        Ok(Response::new(status_pb::CountsResponse {
            counts: counts
                .pairs()
                .iter()
                .map(|(kind, count)| status_pb::ObjectCount {
                    kind: (*kind).to_string(),
                    count: *count,
                })
                .collect(),
        }))
    }

    async fn packet_counters(
        &self,
        _request: Request<status_pb::PacketCountersRequest>,
    ) -> Result<Response<status_pb::PacketCountersResponse>, Status> {
        Ok(Response::new(match self.dataplane.packets() {
            Some(p) => p.counters(),
            None => status_pb::PacketCountersResponse::default(),
        }))
    }
}
