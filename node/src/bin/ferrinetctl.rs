//! `ferrinetctl`: the admin CLI of the node daemon (`ferrinet-node`).
//!
//! Only the command line and the dispatch are here; the logic is `ferrinet_node::ctl`. With
//! `--api ADDR` (or `FERRINET_API`) the region API's command line
//! (`ferrinet_node::ctl::region::cli`) is parsed instead of the node's.

use std::ffi::OsString;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use ferrinet_node::ctl::client::{self, DEFAULT_NODE, NodeAddr};
use ferrinet_node::ctl::commands::{self, Ctl};
use ferrinet_node::ctl::error::{EXIT_STATUS_HELP, exit};
use ferrinet_node::ctl::flags::{self, NatFlag, PortFlag};
use ferrinet_node::ctl::manifest::spec::LoadBalancerType;
use ferrinet_node::ctl::manifest::{self, Entry, Source};
use ferrinet_node::ctl::region;
use ferrinet_node::ctl::{CountersFormat, CtlError, DocFormat, GetFormat, Kind, WatchFormat};
use ipnet::IpNet;

const ABOUT: &str = "Admin CLI of the ferrinet node daemon: networks, interfaces and load \
balancers of one hypervisor (with --api ADDR: the region API, see --api ADDR --help)";

const LONG_ABOUT: &str = "\
Admin CLI of the ferrinet node daemon (ferrinet-node): create, inspect, change and watch the
networks, network interfaces and load balancers it programs into this hypervisor's dataplane.

Kinds: network (networks, net), networkinterface (networkinterfaces, interface, interfaces, ni),
loadbalancer (loadbalancers, lb).

Manifests (-f FILE, or - for stdin) are YAML or JSON, several documents per file (---), in
metalnet's shape: apiVersion networking.metalnet.ironcore.dev/v1alpha1 or ferrinet.dev/v1,
kind Network | NetworkInterface | LoadBalancer, metadata {name, labels}, spec. What
`get -o yaml` prints can be fed back to `apply -f`.

The node is reached over its Unix socket (--node unix:PATH, default unix:/run/ferrinet/node.sock)
or over TCP (--node HOST:PORT): with --ca/--cert/--key over mutual TLS (the region PKI, as the
node's admin.ca/cert/key), else in plaintext, which is for a trusted network only.

With --api ADDR (or FERRINET_API, unless --node is given) every command goes to the region API
(ferrinet-api) instead, with more kinds, namespaces (-n, -A), selectors (-l), describe and
whoami: see `ferrinetctl --api ADDR --help`.

Examples:
  ferrinetctl apply -f objects.yaml
  ferrinetctl get ni -o wide
  ferrinetctl get network net-a -o yaml > net-a.yaml    # edit, then: apply -f net-a.yaml
  ferrinetctl create network net-a --vni 100 --peer 200
  ferrinetctl create interface vm-1 --network net-a --ip 10.0.0.5 --nat 203.0.113.5:1024-2048
  ferrinetctl create lb web --network net-a --type internal --ip 10.0.0.100 --port tcp/443
  ferrinetctl create interface vm-2 --network net-a --ip 10.0.0.6 --dry-run -o yaml
  ferrinetctl delete ni vm-1
  ferrinetctl watch ni -o json
  ferrinetctl counters -o wide
  ferrinetctl --node 192.0.2.10:5005 status";

#[derive(Parser, Debug)]
#[command(
    name = "ferrinetctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_STATUS_HELP,
    propagate_version = true
)]
struct Cli {
    /// The node: unix:PATH or /PATH (Unix socket), HOST:PORT or http://HOST:PORT (TCP; with
    /// --ca/--cert/--key over mutual TLS, else plaintext).
    #[arg(long, global = true, env = client::NODE_ENV, default_value = DEFAULT_NODE, value_name = "ADDR",
          value_parser = parse_node, display_order = 900)]
    node: NodeAddr,
    /// Seconds to wait for the connection and for each answer.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs,
          display_order = 901)]
    timeout: f64,
    /// TCP with mutual TLS: the CA the node's certificate chains to (PEM).
    #[arg(long, global = true, env = "FERRINET_CA", value_name = "FILE", requires_all = ["cert", "key"], display_order = 902)]
    ca: Option<std::path::PathBuf>,
    /// TCP with mutual TLS: this client's certificate (PEM).
    #[arg(
        long,
        global = true,
        env = "FERRINET_CERT",
        value_name = "FILE",
        requires = "ca",
        display_order = 903
    )]
    cert: Option<std::path::PathBuf>,
    /// TCP with mutual TLS: this client's key (PEM).
    #[arg(
        long,
        global = true,
        env = "FERRINET_KEY",
        value_name = "FILE",
        requires = "ca",
        display_order = 904
    )]
    key: Option<std::path::PathBuf>,
    /// TCP with mutual TLS: the name the node's certificate carries (default: the host).
    #[arg(long, global = true, value_name = "NAME", display_order = 905)]
    server_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    fn tls(&self) -> Option<client::TlsFiles> {
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Some(client::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
                server_name: self.server_name.clone(),
            }),
            _ => None,
        }
    }
}

fn parse_node(s: &str) -> Result<NodeAddr, String> {
    s.parse()
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && Duration::try_from_secs_f64(v).is_ok() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print one object, or every object of a kind.
    Get {
        /// network | networkinterface | loadbalancer (or a plural or short name).
        #[arg(hide_possible_values = true)]
        kind: Kind,
        /// The object; all objects of the kind without it.
        name: Option<String>,
        /// table, wide (more columns), json or yaml (documents that `apply -f` accepts).
        #[arg(short, long, value_enum, default_value_t = GetFormat::Table)]
        output: GetFormat,
    },
    /// Create or update the objects of manifest files (networks, then load balancers, then
    /// interfaces); prints `KIND/NAME created|configured|unchanged` per object.
    Apply(Files),
    /// Create objects from manifest files (fails if one exists: exit 4), or one from flags.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Create(CreateArgs),
    /// Replace the specs of existing objects (NOT_FOUND: exit 4); a metadata.resourceVersion in
    /// the file must be current.
    Update(Files),
    /// Delete objects by name, or those of manifest files (interfaces, then load balancers,
    /// then networks).
    Delete(DeleteArgs),
    /// Print the current objects (as ADDED), then every change, until Ctrl-C (exit 0).
    Watch {
        /// network | networkinterface | loadbalancer; every kind without it.
        #[arg(hide_possible_values = true)]
        kind: Option<Kind>,
        /// text (`ADDED network/NAME Ready rv=12`) or json (one object per line).
        #[arg(short, long, value_enum, default_value_t = WatchFormat::Text)]
        output: WatchFormat,
        /// Exit (status 0) after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print the node's status: dataplane, route servers, VFs, object counts.
    Status {
        /// text (a readable block), json or yaml.
        #[arg(short, long, value_enum, default_value_t = DocFormat::Text, hide_possible_values = true)]
        output: DocFormat,
    },
    /// Print the routes the dataplane holds in one VNI's table: routes of other nodes, of
    /// peered VNIs (with their VNI as next-hop VNI) and the default routes.
    Routes {
        /// The VNI (a Network's spec.id).
        vni: u32,
        /// text (a table) , json or yaml.
        #[arg(short, long, value_enum, default_value_t = DocFormat::Text, hide_possible_values = true)]
        output: DocFormat,
    },
    /// Print the dataplane's packet counters (ferrinet-dataplane with packets on): per
    /// interface, per VNI and of the underlay. A dpservice has none (exit 2).
    Counters {
        /// table, wide (drops by reason, firewall verdicts) or json.
        #[arg(short, long, value_enum, default_value_t = CountersFormat::Table, hide_possible_values = true)]
        output: CountersFormat,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
struct Files {
    /// Manifest file (YAML or JSON), or - for stdin; repeat for several.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Manifest file (YAML or JSON), or - for stdin; repeat for several.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Check the files and print what would be created without contacting the node
    /// (spec.nodeName is not checked).
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: text (`KIND/NAME created (dry run)`), or the objects as json or yaml.
    #[arg(short, long, value_enum, default_value_t = DocFormat::Text, requires = "dry_run",
          hide_possible_values = true)]
    output: DocFormat,
    #[command(subcommand)]
    what: Option<CreateWhat>,
}

#[derive(Args, Debug)]
struct CreateOutput {
    /// Check and print what would be created without contacting the node.
    #[arg(long)]
    dry_run: bool,
    /// text (`KIND/NAME created`), or the object as json or yaml (as the node returned it, or
    /// with --dry-run as it would be sent).
    #[arg(short, long, value_enum, default_value_t = DocFormat::Text, hide_possible_values = true)]
    output: DocFormat,
    /// Label KEY=VALUE; repeat for several.
    #[arg(short, long = "label", value_name = "KEY=VALUE", value_parser = flags::parse_label)]
    labels: Vec<(String, String)>,
}

#[derive(Subcommand, Debug)]
enum CreateWhat {
    /// A network: `create network NAME --vni N [--peer VNI]...`.
    #[command(visible_alias = "net")]
    Network {
        /// The network's name.
        name: String,
        /// The VNI.
        #[arg(long, value_name = "N")]
        vni: u32,
        /// VNI of a peered network; repeat for several.
        #[arg(long = "peer", value_name = "VNI")]
        peers: Vec<u32>,
        #[command(flatten)]
        out: CreateOutput,
    },
    /// An interface: `create interface NAME --network NET --ip IP [--ip IP] ...`.
    #[command(visible_aliases = ["networkinterface", "ni"])]
    Interface {
        /// The interface's name (its id in dpservice).
        name: String,
        /// The network's name.
        #[arg(long, value_name = "NET")]
        network: String,
        /// Address (one IPv4 and/or one IPv6).
        #[arg(long = "ip", value_name = "IP", required = true)]
        ips: Vec<IpAddr>,
        /// Virtual (public) IPv4 address.
        #[arg(long, value_name = "IP")]
        vip: Option<IpAddr>,
        /// Source NAT: address and port slice [PORT, END), e.g. 203.0.113.5:1024-2048.
        #[arg(long, value_name = "IP:PORT-END", value_parser = flags::parse_nat)]
        nat: Option<NatFlag>,
        /// Routed prefix behind the interface; repeat for several.
        #[arg(long = "prefix", value_name = "P")]
        prefixes: Vec<IpNet>,
        /// Load-balancer IP or prefix this interface serves; repeat for several.
        #[arg(long = "lb-target", value_name = "P", value_parser = flags::parse_target)]
        lb_targets: Vec<String>,
        /// DHCP host name.
        #[arg(long, value_name = "H")]
        hostname: Option<String>,
        #[command(flatten)]
        out: CreateOutput,
    },
    /// A load balancer: `create loadbalancer NAME --network NET --type internal --ip IP
    /// --port tcp/443...`.
    #[command(visible_alias = "lb")]
    Loadbalancer {
        /// The load balancer's name (its id in dpservice).
        name: String,
        /// The network's name.
        #[arg(long, value_name = "NET")]
        network: String,
        /// internal (VIP in the network's VNI) or public.
        #[arg(long = "type", value_enum)]
        lb_type: LoadBalancerType,
        /// The load balancer's IP.
        #[arg(long, value_name = "IP")]
        ip: IpAddr,
        /// PROTOCOL/PORT (tcp/443, udp/53); repeat for several.
        #[arg(long = "port", value_name = "PROTO/PORT", required = true, value_parser = flags::parse_port)]
        ports: Vec<PortFlag>,
        #[command(flatten)]
        out: CreateOutput,
    },
}

#[derive(Args, Debug)]
struct DeleteArgs {
    /// network | networkinterface | loadbalancer (or a plural or short name).
    #[arg(
        hide_possible_values = true,
        required_unless_present = "files",
        conflicts_with = "files"
    )]
    kind: Option<Kind>,
    /// Names of the objects.
    #[arg(required_unless_present = "files")]
    names: Vec<String>,
    /// Delete the objects of this manifest file (or - for stdin); repeat for several.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    files: Vec<String>,
    /// An object that does not exist is not an error.
    #[arg(long)]
    ignore_not_found: bool,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let api_env = std::env::var_os(region::client::API_ENV);
    if region::cli::selects_region_api(args.get(1..).unwrap_or_default(), api_env.as_deref()) {
        return match region::cli::RegionCli::try_parse_from(&args) {
            Ok(cli) => execute(region::cli::run(cli)),
            Err(e) => usage_error(&e),
        };
    }
    match Cli::try_parse_from(&args) {
        Ok(cli) => execute(run(cli)),
        Err(e) => usage_error(&e),
    }
}

fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(if e.use_stderr() {
        exit::USAGE
    } else {
        exit::OK
    })
}

fn execute(command: impl Future<Output = Result<(), CtlError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrinetctl: cannot start: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrinetctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn load(files: &[String]) -> Result<Vec<Vec<Entry>>, CtlError> {
    files
        .iter()
        .map(|f| manifest::parse(&Source::read(f)?))
        .collect()
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    let tls = cli.tls();
    let mut out = std::io::stdout();
    // What needs no node.
    let command = match cli.command {
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ferrinetctl", &mut out);
            return Ok(());
        }
        Command::Create(CreateArgs {
            files,
            dry_run: true,
            output,
            what: None,
        }) => {
            let loaded = load(&files)?;
            let objects: Vec<_> = loaded
                .iter()
                .flat_map(|f| commands::apply_order(f))
                .map(|e| &e.object)
                .collect();
            return commands::dry_run(&objects, output, &mut out);
        }
        Command::Create(CreateArgs {
            what: Some(what), ..
        }) => {
            let (object, o) = flag_object(what);
            if o.dry_run {
                return commands::dry_run(&[&object], o.output, &mut out);
            }
            let mut ctl = connect(&cli.node, cli.timeout, tls.clone()).await?;
            return ctl.create_object(object, o.output, &mut out).await;
        }
        command => command,
    };
    // Manifests are read and checked before the node is contacted.
    let loaded = match &command {
        Command::Apply(f) | Command::Update(f) => load(&f.files)?,
        Command::Create(c) => load(&c.files)?,
        Command::Delete(d) => load(&d.files)?,
        _ => Vec::new(),
    };
    let mut ctl = connect(&cli.node, cli.timeout, tls.clone()).await?;
    let result = match command {
        Command::Get { kind, name, output } => {
            let n = ctl
                .get(kind, name.as_deref(), output, now_unix_ms(), &mut out)
                .await?;
            if n == 0 && matches!(output, GetFormat::Table | GetFormat::Wide) {
                eprintln!("No resources found.");
            }
            Ok(())
        }
        Command::Apply(_) => ctl.apply(&loaded, &mut out).await,
        Command::Create(_) => ctl.create(&loaded, &mut out).await,
        Command::Update(_) => ctl.update(&loaded, &mut out).await,
        Command::Delete(d) if !d.files.is_empty() => {
            ctl.delete_files(&loaded, d.ignore_not_found, &mut out)
                .await
        }
        Command::Delete(d) => match d.kind {
            Some(kind) => {
                ctl.delete(kind, &d.names, d.ignore_not_found, &mut out)
                    .await
            }
            None => Err(CtlError::Input("delete: KIND NAME... or -f FILE".into())),
        },
        Command::Watch {
            kind,
            output,
            count,
        } => {
            let stop = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            ctl.watch(kind, output, count, stop, &mut out).await
        }
        Command::Status { output } => ctl.status(output, &mut out).await,
        Command::Routes { vni, output } => ctl.routes(vni, output, &mut out).await,
        Command::Counters { output } => ctl.counters(output, &mut out).await,
        Command::Completion { .. } => Ok(()),
    };
    result?;
    out.flush()?;
    Ok(())
}

async fn connect(
    node: &NodeAddr,
    timeout: f64,
    tls: Option<client::TlsFiles>,
) -> Result<Ctl<tonic::transport::Channel>, CtlError> {
    let timeout = Duration::from_secs_f64(timeout);
    let c = match &tls {
        Some(t) => client::connect_tls(node, timeout, t).await?,
        None => client::connect(node, timeout).await?,
    };
    Ok(Ctl::new(c, node.to_string()))
}

fn flag_object(what: CreateWhat) -> (ferrinet_proto::node::v1::Object, CreateOutput) {
    match what {
        CreateWhat::Network {
            name,
            vni,
            peers,
            out,
        } => {
            let f = flags::NetworkFlags {
                name,
                vni,
                peers,
                labels: out.labels.clone(),
            };
            (f.object(), out)
        }
        CreateWhat::Interface {
            name,
            network,
            ips,
            vip,
            nat,
            prefixes,
            lb_targets,
            hostname,
            out,
        } => {
            let f = flags::InterfaceFlags {
                name,
                network,
                ips,
                vip,
                nat,
                prefixes,
                lb_targets,
                hostname,
                labels: out.labels.clone(),
            };
            (f.object(), out)
        }
        CreateWhat::Loadbalancer {
            name,
            network,
            lb_type,
            ip,
            ports,
            out,
        } => {
            let f = flags::LoadBalancerFlags {
                name,
                network,
                lb_type,
                ip,
                ports,
                labels: out.labels.clone(),
            };
            (f.object(), out)
        }
    }
}

#[cfg(test)]
mod cli_ctl {
    use super::*;

    /// clap's own consistency checks of the command line (`cargo test ctl::` runs this too).
    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
        region::cli::RegionCli::command().debug_assert();
    }
}
