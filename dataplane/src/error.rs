//! The two error layers of the dpservice API: request validation (gRPC INVALID_ARGUMENT) and
//! service errors (gRPC OK with a non-zero `status.code`).

use std::fmt;

/// A service error: travels as gRPC OK with `status { code, message }` where the message is the
/// symbolic name, exactly as the real dpservice answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[allow(missing_docs)]
pub enum ServiceError {
    #[error("BAD_REQUEST")]
    BadRequest,
    #[error("NOT_FOUND")]
    NotFound,
    #[error("ALREADY_EXISTS")]
    AlreadyExists,
    #[error("WRONG_TYPE")]
    WrongType,
    #[error("BAD_IPVER")]
    BadIpver,
    #[error("NO_VM")]
    NoVm,
    #[error("NO_VNI")]
    NoVni,
    #[error("ITERATOR")]
    Iterator,
    #[error("OUT_OF_MEMORY")]
    OutOfMemory,
    #[error("LIMIT_REACHED")]
    LimitReached,
    #[error("ALREADY_ACTIVE")]
    AlreadyActive,
    #[error("NOT_ACTIVE")]
    NotActive,
    #[error("ROLLBACK")]
    Rollback,
    #[error("RTE_RULE_ADD")]
    RteRuleAdd,
    #[error("RTE_RULE_DEL")]
    RteRuleDel,
    #[error("ROUTE_EXISTS")]
    RouteExists,
    #[error("ROUTE_NOT_FOUND")]
    RouteNotFound,
    #[error("ROUTE_INSERT")]
    RouteInsert,
    #[error("ROUTE_BAD_PORT")]
    RouteBadPort,
    #[error("ROUTE_RESET")]
    RouteReset,
    #[error("DNAT_NO_DATA")]
    DnatNoData,
    #[error("DNAT_CREATE")]
    DnatCreate,
    #[error("DNAT_EXISTS")]
    DnatExists,
    #[error("SNAT_NO_DATA")]
    SnatNoData,
    #[error("SNAT_CREATE")]
    SnatCreate,
    #[error("SNAT_EXISTS")]
    SnatExists,
    #[error("VNI_INIT4")]
    VniInit4,
    #[error("VNI_INIT6")]
    VniInit6,
    #[error("VNI_FREE4")]
    VniFree4,
    #[error("VNI_FREE6")]
    VniFree6,
    #[error("PORT_START")]
    PortStart,
    #[error("PORT_STOP")]
    PortStop,
    #[error("PORT_METER")]
    PortMeter,
    #[error("VNF_INSERT")]
    VnfInsert,
    #[error("VM_HANDLE")]
    VmHandle,
    #[error("VNF_DELETE")]
    VnfDelete,
    #[error("NO_BACKIP")]
    NoBackip,
    #[error("NO_LB")]
    NoLb,
    #[error("BACKIP_ADD")]
    BackipAdd,
    #[error("BACKIP_DEL")]
    BackipDel,
    #[error("NO_DROP_SUPPORT")]
    NoDropSupport,
}

impl ServiceError {
    /// Every service error, for tables and tests.
    pub const ALL: [ServiceError; 41] = [
        Self::BadRequest,
        Self::NotFound,
        Self::AlreadyExists,
        Self::WrongType,
        Self::BadIpver,
        Self::NoVm,
        Self::NoVni,
        Self::Iterator,
        Self::OutOfMemory,
        Self::LimitReached,
        Self::AlreadyActive,
        Self::NotActive,
        Self::Rollback,
        Self::RteRuleAdd,
        Self::RteRuleDel,
        Self::RouteExists,
        Self::RouteNotFound,
        Self::RouteInsert,
        Self::RouteBadPort,
        Self::RouteReset,
        Self::DnatNoData,
        Self::DnatCreate,
        Self::DnatExists,
        Self::SnatNoData,
        Self::SnatCreate,
        Self::SnatExists,
        Self::VniInit4,
        Self::VniInit6,
        Self::VniFree4,
        Self::VniFree6,
        Self::PortStart,
        Self::PortStop,
        Self::PortMeter,
        Self::VnfInsert,
        Self::VmHandle,
        Self::VnfDelete,
        Self::NoBackip,
        Self::NoLb,
        Self::BackipAdd,
        Self::BackipDel,
        Self::NoDropSupport,
    ];

    /// The numeric code carried in `status.code`.
    pub fn code(self) -> u32 {
        match self {
            Self::BadRequest => 101,
            Self::NotFound => 201,
            Self::AlreadyExists => 202,
            Self::WrongType => 203,
            Self::BadIpver => 204,
            Self::NoVm => 205,
            Self::NoVni => 206,
            Self::Iterator => 207,
            Self::OutOfMemory => 208,
            Self::LimitReached => 209,
            Self::AlreadyActive => 210,
            Self::NotActive => 211,
            Self::Rollback => 212,
            Self::RteRuleAdd => 213,
            Self::RteRuleDel => 214,
            Self::RouteExists => 301,
            Self::RouteNotFound => 302,
            Self::RouteInsert => 303,
            Self::RouteBadPort => 304,
            Self::RouteReset => 305,
            Self::DnatNoData => 321,
            Self::DnatCreate => 322,
            Self::DnatExists => 323,
            Self::SnatNoData => 341,
            Self::SnatCreate => 342,
            Self::SnatExists => 343,
            Self::VniInit4 => 361,
            Self::VniInit6 => 362,
            Self::VniFree4 => 363,
            Self::VniFree6 => 364,
            Self::PortStart => 381,
            Self::PortStop => 382,
            Self::PortMeter => 383,
            Self::VnfInsert => 401,
            Self::VmHandle => 402,
            Self::VnfDelete => 403,
            Self::NoBackip => 421,
            Self::NoLb => 422,
            Self::BackipAdd => 423,
            Self::BackipDel => 424,
            Self::NoDropSupport => 441,
        }
    }

    /// The symbolic name carried in `status.message`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::WrongType => "WRONG_TYPE",
            Self::BadIpver => "BAD_IPVER",
            Self::NoVm => "NO_VM",
            Self::NoVni => "NO_VNI",
            Self::Iterator => "ITERATOR",
            Self::OutOfMemory => "OUT_OF_MEMORY",
            Self::LimitReached => "LIMIT_REACHED",
            Self::AlreadyActive => "ALREADY_ACTIVE",
            Self::NotActive => "NOT_ACTIVE",
            Self::Rollback => "ROLLBACK",
            Self::RteRuleAdd => "RTE_RULE_ADD",
            Self::RteRuleDel => "RTE_RULE_DEL",
            Self::RouteExists => "ROUTE_EXISTS",
            Self::RouteNotFound => "ROUTE_NOT_FOUND",
            Self::RouteInsert => "ROUTE_INSERT",
            Self::RouteBadPort => "ROUTE_BAD_PORT",
            Self::RouteReset => "ROUTE_RESET",
            Self::DnatNoData => "DNAT_NO_DATA",
            Self::DnatCreate => "DNAT_CREATE",
            Self::DnatExists => "DNAT_EXISTS",
            Self::SnatNoData => "SNAT_NO_DATA",
            Self::SnatCreate => "SNAT_CREATE",
            Self::SnatExists => "SNAT_EXISTS",
            Self::VniInit4 => "VNI_INIT4",
            Self::VniInit6 => "VNI_INIT6",
            Self::VniFree4 => "VNI_FREE4",
            Self::VniFree6 => "VNI_FREE6",
            Self::PortStart => "PORT_START",
            Self::PortStop => "PORT_STOP",
            Self::PortMeter => "PORT_METER",
            Self::VnfInsert => "VNF_INSERT",
            Self::VmHandle => "VM_HANDLE",
            Self::VnfDelete => "VNF_DELETE",
            Self::NoBackip => "NO_BACKIP",
            Self::NoLb => "NO_LB",
            Self::BackipAdd => "BACKIP_ADD",
            Self::BackipDel => "BACKIP_DEL",
            Self::NoDropSupport => "NO_DROP_SUPPORT",
        }
    }

    /// The service error with this code, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.code() == code)
    }
}

/// A request that does not parse: answered with gRPC INVALID_ARGUMENT, the message naming the
/// field so a client can tell which part of its request is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArgument {
    /// Field path in the request, e.g. `route.prefix.length`.
    pub field: String,
    /// What is wrong with it, lowercase.
    pub reason: String,
}

impl InvalidArgument {
    /// An invalid-argument error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidArgument {}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The dataplane has not been initialized (gRPC ABORTED).
    #[error("not initialized")]
    NotInitialized,
    /// The request does not parse (gRPC INVALID_ARGUMENT).
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    /// The request parses but cannot be carried out (gRPC OK, non-zero status code).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let codes: HashSet<u32> = ServiceError::ALL.iter().map(|e| e.code()).collect();
        let names: HashSet<&str> = ServiceError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(codes.len(), ServiceError::ALL.len());
        assert_eq!(names.len(), ServiceError::ALL.len());
        for e in ServiceError::ALL {
            assert_eq!(ServiceError::from_code(e.code()), Some(e));
            assert_eq!(e.to_string(), e.name());
        }
    }
}
