//! The gRPC face of [`State`]: gate, tracing, and the mapping of errors onto the two layers
//! (gRPC status vs `status` field) that the real service uses.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrinet_proto::dataplane_status::v1 as status_pb;
use ferrinet_proto::dpservice::v1 as pb;
use ferrinet_proto::dpservice::v1::dpd_kironcore_server::DpdKironcore;
use tonic::{Request, Response, Status};

use crate::config::{ConfigError, DataplaneConfig};
use crate::error::CallError;
use crate::state::{Counts, State};

/// The dpservice API served from an in-memory [`State`]; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct DataplaneService {
    state: Arc<Mutex<State>>,
}

/// A dpservice reply: every one carries the call's outcome in its `status` field. Public so
/// that clients (the node daemon, the conformance tests) can read any reply's outcome alike.
pub trait Reply: Default {
    /// The outcome; `None` only in a malformed reply.
    fn status(&self) -> Option<&pb::Status>;
    /// Sets the outcome.
    fn set_status(&mut self, status: pb::Status);
}

macro_rules! replies {
    ($($t:ident),* $(,)?) => {
        $(impl Reply for pb::$t {
            fn status(&self) -> Option<&pb::Status> {
                self.status.as_ref()
            }
            fn set_status(&mut self, status: pb::Status) {
                self.status = Some(status);
            }
        })*
    };
}

replies!(
    CheckInitializedResponse,
    InitializeResponse,
    GetVersionResponse,
    ListInterfacesResponse,
    GetInterfaceResponse,
    CreateInterfaceResponse,
    DeleteInterfaceResponse,
    ListPrefixesResponse,
    CreatePrefixResponse,
    DeletePrefixResponse,
    ListLoadBalancerPrefixesResponse,
    CreateLoadBalancerPrefixResponse,
    DeleteLoadBalancerPrefixResponse,
    CreateVipResponse,
    GetVipResponse,
    DeleteVipResponse,
    CreateLoadBalancerResponse,
    GetLoadBalancerResponse,
    DeleteLoadBalancerResponse,
    ListLoadBalancersResponse,
    CreateLoadBalancerTargetResponse,
    ListLoadBalancerTargetsResponse,
    DeleteLoadBalancerTargetResponse,
    CreateNatResponse,
    GetNatResponse,
    DeleteNatResponse,
    ListLocalNatsResponse,
    CreateNeighborNatResponse,
    DeleteNeighborNatResponse,
    ListNeighborNatsResponse,
    ListRoutesResponse,
    CreateRouteResponse,
    DeleteRouteResponse,
    CheckVniInUseResponse,
    ResetVniResponse,
    ListFirewallRulesResponse,
    CreateFirewallRuleResponse,
    GetFirewallRuleResponse,
    DeleteFirewallRuleResponse,
    CaptureStartResponse,
    CaptureStopResponse,
    CaptureStatusResponse,
);

impl DataplaneService {
    /// A dataplane with fresh state (uninitialized, new UUID).
    pub fn new(config: &DataplaneConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            state: Arc::new(Mutex::new(State::new(config))),
        })
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

    fn handle<Req: Debug, Resp: Reply>(
        &self,
        rpc: &'static str,
        gated: bool,
        req: Req,
        f: fn(&mut State, Req) -> Result<Resp, CallError>,
    ) -> Result<Response<Resp>, Status> {
        tracing::debug!(rpc, request = ?req, "call");
        let result = {
            let mut st = self.lock();
            if gated {
                st.gate().and_then(|()| f(&mut st, req))
            } else {
                f(&mut st, req)
            }
        };
        match result {
            Ok(mut reply) => {
                tracing::debug!(rpc, code = 0, "reply");
                reply.set_status(pb::Status {
                    code: 0,
                    message: "Success".to_string(),
                });
                Ok(Response::new(reply))
            }
            Err(CallError::Service(e)) => {
                tracing::debug!(rpc, code = e.code(), error = e.name(), "reply");
                let mut reply = Resp::default();
                reply.set_status(pb::Status {
                    code: e.code(),
                    message: e.name().to_string(),
                });
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
}
