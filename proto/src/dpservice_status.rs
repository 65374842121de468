//! The outcome layer of the dpservice API (`ferrinet_proto::dpservice_status`): the service
//! error codes that travel in every reply's `status { code, message }`, and [`Reply`], which
//! reads that status from any reply message.
//!
//! dpservice reports a failure in two layers. A call that is refused outright (not
//! initialized, a request that does not parse) fails at the gRPC layer with a
//! [`tonic::Status`]. Every other failure answers gRPC OK with a non-zero `status.code`, whose
//! `status.message` is the symbolic name (`NO_VNI`, `ROUTE_EXISTS`, ...); success is
//! `0 "Success"`. This module is the second layer only. It lives here rather than in the
//! software dataplane so that a client of the real dpservice needs nothing but the API crate.
//!
//! Not to be confused with [`crate::dataplane_status`], ferrinet-dataplane's own status
//! service.
//!
//! ```
//! use ferrinet_proto::dpservice::v1 as pb;
//! use ferrinet_proto::dpservice_status::{Reply, ReplyError, ServiceError};
//!
//! let reply = pb::CreateRouteResponse {
//!     status: Some(ServiceError::NoVni.into()),
//! };
//! match reply.into_result() {
//!     Err(e) if e.is(ServiceError::NoVni) => {} // the VNI has no route table yet
//!     other => panic!("{other:?}"),
//! }
//! ```

use crate::dpservice::v1 as pb;

/// `status.code` of a successful call.
pub const SUCCESS_CODE: u32 = 0;
/// `status.message` of a successful call.
pub const SUCCESS_MESSAGE: &str = "Success";

/// The `status` of a successful call.
pub fn success_status() -> pb::Status {
    pb::Status {
        code: SUCCESS_CODE,
        message: SUCCESS_MESSAGE.to_string(),
    }
}

/// Declares [`ServiceError`] from one table, so that variant, code and name cannot drift apart.
macro_rules! service_errors {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $name:literal;)*) => {
        /// A dpservice service error: a non-zero `status.code` whose `status.message` is the
        /// symbolic name ([`ServiceError::name`], also its `Display`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
        pub enum ServiceError {
            $($(#[$doc])* #[error($name)] $variant,)*
        }

        impl ServiceError {
            /// Every service error, in code order.
            pub const ALL: &'static [ServiceError] = &[$(Self::$variant,)*];

            /// The numeric code carried in `status.code`.
            pub const fn code(self) -> u32 {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The symbolic name carried in `status.message`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The service error with this code; `None` for 0 (success) and for codes this
            /// crate does not know.
            pub const fn from_code(code: u32) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

service_errors! {
    /// Unknown request type.
    BadRequest = 101, "BAD_REQUEST";
    /// Interface, load balancer, rule, neighbour NAT or device not found.
    NotFound = 201, "NOT_FOUND";
    /// Device already in use (or a PF), or a duplicate id / target / prefix / neighbour NAT.
    AlreadyExists = 202, "ALREADY_EXISTS";
    /// VNI type not accepted by the call (CheckVniInUse, ResetVni).
    WrongType = 203, "WRONG_TYPE";
    /// IP version not accepted by the call.
    BadIpver = 204, "BAD_IPVER";
    /// Unknown interface id.
    NoVm = 205, "NO_VM";
    /// The VNI has no route table (no interface or load balancer uses it).
    NoVni = 206, "NO_VNI";
    Iterator = 207, "ITERATOR";
    OutOfMemory = 208, "OUT_OF_MEMORY";
    /// A per-object limit (e.g. load balancer targets) is reached.
    LimitReached = 209, "LIMIT_REACHED";
    /// Capture already running.
    AlreadyActive = 210, "ALREADY_ACTIVE";
    /// Capture not running, or offload disabled.
    NotActive = 211, "NOT_ACTIVE";
    Rollback = 212, "ROLLBACK";
    RteRuleAdd = 213, "RTE_RULE_ADD";
    RteRuleDel = 214, "RTE_RULE_DEL";
    /// The prefix is already in the VNI's table.
    RouteExists = 301, "ROUTE_EXISTS";
    /// No such route.
    RouteNotFound = 302, "ROUTE_NOT_FOUND";
    /// The route cannot be inserted (e.g. prefix length out of range).
    RouteInsert = 303, "ROUTE_INSERT";
    /// The route belongs to an interface (a local route), not to the caller.
    RouteBadPort = 304, "ROUTE_BAD_PORT";
    RouteReset = 305, "ROUTE_RESET";
    /// No DNAT entry (VIP) to act on.
    DnatNoData = 321, "DNAT_NO_DATA";
    DnatCreate = 322, "DNAT_CREATE";
    /// A DNAT entry (VIP) with this address exists.
    DnatExists = 323, "DNAT_EXISTS";
    /// No SNAT entry (VIP or NAT) to act on.
    SnatNoData = 341, "SNAT_NO_DATA";
    SnatCreate = 342, "SNAT_CREATE";
    /// The interface already has a VIP or NAT.
    SnatExists = 343, "SNAT_EXISTS";
    VniInit4 = 361, "VNI_INIT4";
    VniInit6 = 362, "VNI_INIT6";
    VniFree4 = 363, "VNI_FREE4";
    VniFree6 = 364, "VNI_FREE6";
    PortStart = 381, "PORT_START";
    PortStop = 382, "PORT_STOP";
    PortMeter = 383, "PORT_METER";
    /// The underlay address collides with one in use.
    VnfInsert = 401, "VNF_INSERT";
    /// The interface id is already in use.
    VmHandle = 402, "VM_HANDLE";
    VnfDelete = 403, "VNF_DELETE";
    NoBackip = 421, "NO_BACKIP";
    /// Unknown load balancer.
    NoLb = 422, "NO_LB";
    BackipAdd = 423, "BACKIP_ADD";
    BackipDel = 424, "BACKIP_DEL";
    NoDropSupport = 441, "NO_DROP_SUPPORT";
}

impl ServiceError {
    /// The service error with this symbolic name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.name() == name)
    }

    /// The `status` that carries this error, as the real service sends it.
    pub fn to_status(self) -> pb::Status {
        pb::Status {
            code: self.code(),
            message: self.name().to_string(),
        }
    }
}

impl From<ServiceError> for pb::Status {
    fn from(e: ServiceError) -> Self {
        e.to_status()
    }
}

/// Why a dpservice reply is not a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A non-zero `status.code`.
    #[error("{}", service_text(*.code, *.error, .message))]
    Service {
        /// The code as received.
        code: u32,
        /// The code's service error; `None` for a code this crate does not know (e.g. from a
        /// newer dpservice), which a client should treat as a failure all the same.
        error: Option<ServiceError>,
        /// `status.message` as received (the symbolic name, from a conforming service).
        message: String,
    },
    /// The reply carries no `status` at all, which no conforming service sends.
    #[error("dpservice reply without a status")]
    MissingStatus,
}

fn service_text(code: u32, error: Option<ServiceError>, message: &str) -> String {
    // The name alone says it all when the service followed the contract; anything else it
    // sent is kept, since that is what an operator will need.
    match error {
        Some(e) if message == e.name() || message.is_empty() => {
            format!("dpservice error {code} {}", e.name())
        }
        Some(e) => format!("dpservice error {code} {}: {message}", e.name()),
        None if message.is_empty() => format!("dpservice error {code} (unknown code)"),
        None => format!("dpservice error {code} (unknown code): {message}"),
    }
}

impl ReplyError {
    /// The error a received `status` stands for; `None` if it is a success.
    pub fn from_status(status: &pb::Status) -> Option<Self> {
        (status.code != SUCCESS_CODE).then(|| Self::Service {
            code: status.code,
            error: ServiceError::from_code(status.code),
            message: status.message.clone(),
        })
    }

    /// The numeric code; `None` for a reply without status.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Service { code, .. } => Some(*code),
            Self::MissingStatus => None,
        }
    }

    /// The known service error, if this is one.
    pub fn service_error(&self) -> Option<ServiceError> {
        match self {
            Self::Service { error, .. } => *error,
            Self::MissingStatus => None,
        }
    }

    /// Whether this is the service error `e`.
    pub fn is(&self, e: ServiceError) -> bool {
        self.service_error() == Some(e)
    }
}

impl From<ServiceError> for ReplyError {
    fn from(e: ServiceError) -> Self {
        Self::Service {
            code: e.code(),
            error: Some(e),
            message: e.name().to_string(),
        }
    }
}

/// A dpservice reply message: every one carries the call's outcome in its `status` field.
/// Implemented for every `…Response` of [`crate::dpservice::v1`], so that clients (and
/// servers) handle any reply's outcome alike.
pub trait Reply: Sized {
    /// The outcome; `None` only in a malformed reply.
    fn status(&self) -> Option<&pb::Status>;

    /// Sets the outcome (for servers and fakes of the API).
    fn set_status(&mut self, status: pb::Status);

    /// `Ok(())` for a successful reply, the error otherwise.
    fn check(&self) -> Result<(), ReplyError> {
        match self.status() {
            None => Err(ReplyError::MissingStatus),
            Some(s) => ReplyError::from_status(s).map_or(Ok(()), Err),
        }
    }

    /// The reply itself if it is a success, the error otherwise.
    fn into_result(self) -> Result<Self, ReplyError> {
        self.check().map(|()| self)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_variant_round_trips_through_its_code_and_name() {
        for &e in ServiceError::ALL {
            assert_eq!(ServiceError::from_code(e.code()), Some(e), "{e:?}");
            assert_eq!(ServiceError::from_name(e.name()), Some(e), "{e:?}");
            assert_eq!(e.to_string(), e.name(), "Display is the symbolic name");
            let status = pb::Status::from(e);
            assert_eq!((status.code, status.message.as_str()), (e.code(), e.name()));
        }
    }

    #[test]
    fn the_table_matches_the_api() {
        // Spot checks against the fact sheet (shared/interop/dpservice-api.md), one per block.
        let expected = [
            (ServiceError::BadRequest, 101, "BAD_REQUEST"),
            (ServiceError::NotFound, 201, "NOT_FOUND"),
            (ServiceError::NoVni, 206, "NO_VNI"),
            (ServiceError::RteRuleDel, 214, "RTE_RULE_DEL"),
            (ServiceError::RouteExists, 301, "ROUTE_EXISTS"),
            (ServiceError::DnatExists, 323, "DNAT_EXISTS"),
            (ServiceError::SnatNoData, 341, "SNAT_NO_DATA"),
            (ServiceError::VniFree6, 364, "VNI_FREE6"),
            (ServiceError::PortMeter, 383, "PORT_METER"),
            (ServiceError::VnfInsert, 401, "VNF_INSERT"),
            (ServiceError::NoLb, 422, "NO_LB"),
            (ServiceError::NoDropSupport, 441, "NO_DROP_SUPPORT"),
        ];
        for (e, code, name) in expected {
            assert_eq!((e.code(), e.name()), (code, name));
        }
        assert_eq!(ServiceError::ALL.len(), 41);
    }

    #[test]
    fn codes_and_names_are_unique_and_in_order() {
        let codes: HashSet<u32> = ServiceError::ALL.iter().map(|e| e.code()).collect();
        let names: HashSet<&str> = ServiceError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(codes.len(), ServiceError::ALL.len());
        assert_eq!(names.len(), ServiceError::ALL.len());
        assert!(
            ServiceError::ALL
                .windows(2)
                .all(|w| w[0].code() < w[1].code())
        );
    }

    #[test]
    fn unknown_codes_and_names_map_to_none() {
        let known: HashSet<u32> = ServiceError::ALL.iter().map(|e| e.code()).collect();
        for code in (0..1000).chain([u32::MAX]) {
            assert_eq!(
                ServiceError::from_code(code).is_some(),
                known.contains(&code),
                "code {code}"
            );
        }
        assert_eq!(ServiceError::from_code(SUCCESS_CODE), None);
        assert_eq!(ServiceError::from_name("Success"), None);
        assert_eq!(ServiceError::from_name("no_vni"), None);
        assert_eq!(ServiceError::from_name(""), None);
    }

    #[test]
    fn a_reply_turns_into_a_result() {
        let ok = pb::CreateRouteResponse {
            status: Some(success_status()),
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(ok.clone().into_result(), Ok(ok));

        let known = pb::CreateRouteResponse {
            status: Some(ServiceError::RouteExists.into()),
        };
        let err = known.into_result().expect_err("ROUTE_EXISTS");
        assert_eq!(err, ReplyError::from(ServiceError::RouteExists));
        assert!(err.is(ServiceError::RouteExists));
        assert_eq!(err.code(), Some(301));
        assert_eq!(err.to_string(), "dpservice error 301 ROUTE_EXISTS");

        let unknown = pb::DeleteRouteResponse {
            status: Some(pb::Status {
                code: 999,
                message: "SOMETHING_NEW".into(),
            }),
        };
        let err = unknown.check().expect_err("code 999");
        assert_eq!(err.service_error(), None);
        assert_eq!(err.code(), Some(999));
        assert_eq!(
            err.to_string(),
            "dpservice error 999 (unknown code): SOMETHING_NEW"
        );

        let odd_message = pb::Status {
            code: 206,
            message: "vni 7 has no table".into(),
        };
        let err = ReplyError::from_status(&odd_message).expect("code 206");
        assert!(err.is(ServiceError::NoVni));
        assert_eq!(
            err.to_string(),
            "dpservice error 206 NO_VNI: vni 7 has no table"
        );

        let missing = pb::InitializeResponse::default();
        assert_eq!(missing.check(), Err(ReplyError::MissingStatus));
        assert_eq!(ReplyError::MissingStatus.code(), None);
    }

    #[test]
    fn set_status_is_what_status_reads() {
        let mut r = pb::ListRoutesResponse::default();
        assert!(r.status().is_none());
        r.set_status(ServiceError::NoVni.into());
        assert_eq!(r.status(), Some(&ServiceError::NoVni.to_status()));
    }
}
