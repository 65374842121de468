//! `ferrinetctl`, the admin CLI of the node daemon, as a library.
//!
//! The binary (`src/bin/ferrinetctl.rs`) only defines the command line and dispatches; everything
//! it does lives here, so that it can be tested without a terminal and driven by other tests:
//!
//! - [`client`]: the `--node` address (`unix:PATH`, `/PATH`, `HOST:PORT`, `http://HOST:PORT`) and
//!   connecting to it;
//! - [`manifest`]: the manifest files (metalnet's `networking.metalnet.ironcore.dev/v1alpha1`
//!   shape, or `ferrinet.dev/v1`), parsed with the path of every bad field, and their conversion
//!   to and from the admin API's messages;
//! - [`flags`]: objects built from command-line flags (`create network NAME --vni 100`);
//! - [`output`]: tables, JSON, YAML, watch lines, the node status block, ages (pure functions);
//! - [`commands`]: the commands, over any `NodeAdminClient<T>` ([`commands::Ctl`]);
//! - [`error`]: [`CtlError`] and the exit status of each failure.

pub mod client;
pub mod commands;
pub mod error;
pub mod flags;
pub mod manifest;
pub mod output;
pub mod region;

pub use error::CtlError;

use ferrinet_proto::node::v1 as pb;

/// A kind of object, as named on the command line (singular, plural or short name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Kind {
    /// A virtual network (VNI); also `networks`, `net`.
    #[value(name = "network", aliases = ["networks", "net"])]
    Network,
    /// A VM's interface; also `networkinterfaces`, `interface`, `interfaces`, `ni`.
    #[value(
        name = "networkinterface",
        aliases = ["networkinterfaces", "interface", "interfaces", "ni"]
    )]
    NetworkInterface,
    /// A load balancer; also `loadbalancers`, `lb`.
    #[value(name = "loadbalancer", aliases = ["loadbalancers", "lb"])]
    LoadBalancer,
}

impl Kind {
    /// Every kind, in the order objects are created (networks first).
    pub const APPLY_ORDER: [Kind; 3] = [Kind::Network, Kind::LoadBalancer, Kind::NetworkInterface];

    /// Lower-case name used in messages: `network/NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::NetworkInterface => "networkinterface",
            Kind::LoadBalancer => "loadbalancer",
        }
    }

    /// The manifest's `kind`.
    pub fn manifest_kind(self) -> &'static str {
        match self {
            Kind::Network => "Network",
            Kind::NetworkInterface => "NetworkInterface",
            Kind::LoadBalancer => "LoadBalancer",
        }
    }

    /// Position in [`Kind::APPLY_ORDER`]; deletion goes the other way.
    pub fn apply_rank(self) -> usize {
        match self {
            Kind::Network => 0,
            Kind::LoadBalancer => 1,
            Kind::NetworkInterface => 2,
        }
    }

    /// The admin API's kind.
    pub fn proto(self) -> pb::Kind {
        match self {
            Kind::Network => pb::Kind::Network,
            Kind::NetworkInterface => pb::Kind::NetworkInterface,
            Kind::LoadBalancer => pb::Kind::LoadBalancer,
        }
    }

    /// `kind/name` for messages.
    pub fn object(self, name: &str) -> String {
        format!("{}/{name}", self.name())
    }
}

/// The kind and name of an admin API object (`None` if its `oneof` is empty).
pub fn kind_and_name(obj: &pb::Object) -> Option<(Kind, &str)> {
    use pb::object::Object as O;
    let (kind, meta) = match obj.object.as_ref()? {
        O::Network(o) => (Kind::Network, &o.metadata),
        O::NetworkInterface(o) => (Kind::NetworkInterface, &o.metadata),
        O::LoadBalancer(o) => (Kind::LoadBalancer, &o.metadata),
    };
    Some((kind, meta.as_ref().map_or("", |m| m.name.as_str())))
}

/// `kind/name` of an admin API object, for messages.
pub fn object_label(obj: &pb::Object) -> String {
    match kind_and_name(obj) {
        Some((kind, name)) => kind.object(name),
        None => "object/?".to_owned(),
    }
}

/// Output of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GetFormat {
    /// Aligned columns, like kubectl.
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    /// Metadata, spec and status as JSON (a list as an array).
    Json,
    /// Metadata, spec and status as YAML (a list as a sequence), accepted by `apply -f`.
    Yaml,
}

/// Output of `watch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WatchFormat {
    /// `ADDED network/NAME Ready rv=12`.
    #[default]
    Text,
    /// One JSON object per line: `{"type":"ADDED","revision":12,"object":{...}}`.
    Json,
}

/// Output of `status` and of `create ... -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DocFormat {
    /// Text: a readable block (`status`), one line per object (`create`).
    #[default]
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Output of `counters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CountersFormat {
    /// Tables per interface and per VNI, and the underlay.
    #[default]
    Table,
    /// The tables with drops by reason and firewall verdicts.
    Wide,
    /// The dataplane's answer as JSON (the proto's field names).
    Json,
}
