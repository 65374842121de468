//! The command line of `ferrinetctl --api ADDR` and its dispatch ([`run`]).
//!
//! The binary chooses this command line over the node's when [`selects_region_api`] says so:
//! `--api` anywhere before `--`, or `FERRINET_API` set while `--node` is not given.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, CommandFactory as _, Parser, Subcommand};

use super::RegionKind;
use super::client::{self, API_ENV, ApiAddr};
use super::commands::{RegionCtl, Scope};
use super::manifest::{self, Entry, NamespaceDefault};
use crate::ctl::client::TlsFiles;
use crate::ctl::error::EXIT_STATUS_HELP;
use crate::ctl::manifest::Source;
use crate::ctl::{CtlError, DocFormat, GetFormat, WatchFormat};

const ABOUT: &str = "ferrinetctl --api: the region API's networks, interfaces, virtual IPs, \
public prefixes, NAT gateways, load balancers, network policies and nodes";

const LONG_ABOUT: &str = "\
ferrinetctl with --api ADDR (or FERRINET_API) speaks to the region API (ferrinet-api) instead
of one node: the tenant-facing resources of the whole region.

Kinds: network (networks, net), networkinterface (networkinterfaces, interface, interfaces,
ni), virtualip (virtualips, vip), publicprefix (publicprefixes, pp), natgateway (natgateways,
nat, natgw), loadbalancer (loadbalancers, lb), networkpolicy (networkpolicies, netpol),
node (nodes; not namespaced). Any case.

Manifests (-f FILE, or - for stdin) are YAML or JSON, several documents per file (---), in the
resource model's shape: apiVersion networking.ferrinet.dev/v1alpha1 (also
networking.openkcm.dev/v1alpha1 and core.apinet.ironcore.dev/v1alpha1, the group in any case),
kind Network | NetworkInterface | VirtualIP | PublicPrefix | NATGateway | LoadBalancer |
NetworkPolicy | Node, metadata {name, namespace, labels}, spec. Unknown fields are errors;
status is ignored. What `get -o yaml` prints can be fed back to `apply -f`. A node's manifest
(networking.metalnet.ironcore.dev) is refused: drop --api for it.

The namespace is metadata.namespace, else -n, else default. ADDR is HOST:PORT (mutual TLS with
--ca/--cert/--key, else plaintext), http://HOST:PORT (plaintext) or https://HOST:PORT (TLS).

Examples:
  export FERRINET_API=https://api.region-1.example:7443
  ferrinetctl --ca ca.pem --cert me.pem --key me.key whoami
  ferrinetctl apply -f network.yaml -n tenant-a
  ferrinetctl get ni -A -o wide
  ferrinetctl get lb -l app=web
  ferrinetctl get network net-a -o yaml > net-a.yaml    # edit, then: apply -f net-a.yaml
  ferrinetctl describe ni web-1
  ferrinetctl delete vip vip-1
  ferrinetctl watch ni -A -o json";

/// `ferrinetctl --api ADDR ...`.
#[derive(Parser, Debug)]
#[command(
    name = "ferrinetctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_STATUS_HELP,
    propagate_version = true
)]
pub struct RegionCli {
    /// The region API: HOST:PORT, http://HOST:PORT or https://HOST:PORT.
    #[arg(long, global = true, env = API_ENV, value_name = "ADDR", value_parser = parse_api,
          display_order = 900)]
    pub api: Option<ApiAddr>,
    /// Seconds to wait for the connection and for each answer.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECS", value_parser = parse_secs,
          display_order = 901)]
    pub timeout: f64,
    /// Mutual TLS: the CA the API's certificate chains to (PEM).
    #[arg(long, global = true, env = "FERRINET_CA", value_name = "FILE", requires_all = ["cert", "key"],
          display_order = 902)]
    pub ca: Option<PathBuf>,
    /// Mutual TLS: this client's certificate (PEM).
    #[arg(
        long,
        global = true,
        env = "FERRINET_CERT",
        value_name = "FILE",
        requires = "ca",
        display_order = 903
    )]
    pub cert: Option<PathBuf>,
    /// Mutual TLS: this client's key (PEM).
    #[arg(
        long,
        global = true,
        env = "FERRINET_KEY",
        value_name = "FILE",
        requires = "ca",
        display_order = 904
    )]
    pub key: Option<PathBuf>,
    /// Mutual TLS: the name the API's certificate carries (default: the host).
    #[arg(long, global = true, value_name = "NAME", display_order = 905)]
    pub server_name: Option<String>,
    /// The namespace of namespaced kinds (default: default); a manifest naming another one is
    /// refused.
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NS",
        display_order = 906
    )]
    pub namespace: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: RegionCommand,
}

fn parse_api(s: &str) -> Result<ApiAddr, String> {
    s.parse()
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && Duration::try_from_secs_f64(v).is_ok() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// The commands of the `--api` mode.
#[derive(Subcommand, Debug)]
pub enum RegionCommand {
    /// Print one object, or the objects of a kind.
    Get {
        /// The kind (singular, plural or short name).
        #[arg(hide_possible_values = true, ignore_case = true)]
        kind: RegionKind,
        /// The object; all objects of the kind without it.
        name: Option<String>,
        /// Every namespace the caller may see (adds a NAMESPACE column).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Label selector: `app=web,tier!=db,env in (a,b),!legacy`.
        #[arg(short = 'l', long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// table, wide (more columns), json or yaml (documents that `apply -f` accepts).
        #[arg(short, long, value_enum, default_value_t = GetFormat::Table)]
        output: GetFormat,
    },
    /// Print an object's spec, status and conditions as readable text.
    Describe {
        /// The kind.
        #[arg(hide_possible_values = true, ignore_case = true)]
        kind: RegionKind,
        /// The object.
        name: String,
    },
    /// Create or update the objects of manifest files; prints `KIND/NS/NAME
    /// created|configured|unchanged` per object.
    Apply(Files),
    /// Create the objects of manifest files (fails if one exists: exit 4).
    Create(Files),
    /// Delete objects by name, or those of manifest files (in the reverse order of apply).
    Delete(DeleteArgs),
    /// Print the current objects (as ADDED), then every change, until Ctrl-C (exit 0).
    Watch {
        /// The kind; every kind without it.
        #[arg(hide_possible_values = true, ignore_case = true)]
        kind: Option<RegionKind>,
        /// Every namespace the caller may see.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// text (`ADDED network/default/NAME Available rv=12`) or json (one event per line).
        #[arg(short, long, value_enum, default_value_t = WatchFormat::Text)]
        output: WatchFormat,
        /// Exit (status 0) after this many object events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print who the API takes this client for: identity, role, namespaces.
    Whoami {
        /// text, json or yaml.
        #[arg(short, long, value_enum, default_value_t = DocFormat::Text, hide_possible_values = true)]
        output: DocFormat,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `-f FILE...`.
#[derive(Args, Debug)]
pub struct Files {
    /// Manifest file (YAML or JSON), or - for stdin; repeat for several.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<String>,
}

/// `delete KIND NAME...` or `delete -f FILE...`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The kind.
    #[arg(
        hide_possible_values = true,
        ignore_case = true,
        required_unless_present = "files",
        conflicts_with = "files"
    )]
    pub kind: Option<RegionKind>,
    /// Names of the objects.
    #[arg(required_unless_present = "files")]
    pub names: Vec<String>,
    /// Delete the objects of this manifest file (or - for stdin); repeat for several.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,
    /// An object that does not exist is not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// True if `args` (the command line without the program name) or `env_api` (the value of
/// `FERRINET_API`) select the region API: `--api` before any `--`, or a non-empty
/// `FERRINET_API` unless `--node` is given.
pub fn selects_region_api(args: &[OsString], env_api: Option<&OsStr>) -> bool {
    let flags: Vec<&OsStr> = args
        .iter()
        .map(OsString::as_os_str)
        .take_while(|a| *a != "--")
        .collect();
    let has = |name: &str| {
        flags.iter().any(|a| {
            a.to_str()
                .is_some_and(|s| s == name || s.starts_with(&format!("{name}=")))
        })
    };
    if has("--api") {
        return true;
    }
    env_api.is_some_and(|v| !v.is_empty()) && !has("--node")
}

impl RegionCli {
    fn tls(&self) -> Option<TlsFiles> {
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
                server_name: self.server_name.clone(),
            }),
            _ => None,
        }
    }

    fn namespace_default(&self) -> Result<NamespaceDefault, CtlError> {
        if let Some(ns) = &self.namespace {
            manifest::dns_label("--namespace", ns).map_err(|e| CtlError::Input(e.to_string()))?;
        }
        Ok(NamespaceDefault::from_flag(self.namespace.as_deref()))
    }
}

fn load(files: &[String], ns: &NamespaceDefault) -> Result<Vec<Vec<Entry>>, CtlError> {
    files
        .iter()
        .map(|f| manifest::parse(&Source::read(f)?, ns))
        .collect()
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the command of `cli`, writing to stdout.
pub async fn run(cli: RegionCli) -> Result<(), CtlError> {
    let mut out = std::io::stdout();
    if let RegionCommand::Completion { shell } = cli.command {
        clap_complete::generate(shell, &mut RegionCli::command(), "ferrinetctl", &mut out);
        return Ok(());
    }
    let ns = cli.namespace_default()?;
    // Manifests are read and checked before the API is contacted.
    let loaded = match &cli.command {
        RegionCommand::Apply(f) | RegionCommand::Create(f) => load(&f.files, &ns)?,
        RegionCommand::Delete(d) => load(&d.files, &ns)?,
        _ => Vec::new(),
    };
    let Some(api) = cli.api.clone() else {
        return Err(CtlError::Input(format!(
            "the region API's address is missing: give --api ADDR or set {API_ENV}"
        )));
    };
    let tls = cli.tls();
    let timeout = Duration::from_secs_f64(cli.timeout);
    let c = client::connect(&api, timeout, tls.as_ref()).await?;
    let mut ctl = RegionCtl::new(c, api.to_string());
    let scope = |all: bool| Scope {
        namespace: ns.namespace.clone(),
        all,
    };
    match cli.command {
        RegionCommand::Get {
            kind,
            name,
            all_namespaces,
            selector,
            output,
        } => {
            let n = ctl
                .get(
                    kind,
                    name.as_deref(),
                    &scope(all_namespaces),
                    selector.as_deref(),
                    output,
                    now_unix_ms(),
                    &mut out,
                )
                .await?;
            if n == 0 && matches!(output, GetFormat::Table | GetFormat::Wide) {
                if all_namespaces || !kind.namespaced() {
                    eprintln!("No resources found.");
                } else {
                    eprintln!("No resources found in namespace {}.", ns.namespace);
                }
            }
        }
        RegionCommand::Describe { kind, name } => {
            ctl.describe(kind, &ns.namespace, &name, now_unix_ms(), &mut out)
                .await?;
        }
        RegionCommand::Apply(_) => ctl.apply(&loaded, &mut out).await?,
        RegionCommand::Create(_) => ctl.create(&loaded, &mut out).await?,
        RegionCommand::Delete(d) if !d.files.is_empty() => {
            ctl.delete_files(&loaded, d.ignore_not_found, &mut out)
                .await?;
        }
        RegionCommand::Delete(d) => match d.kind {
            Some(kind) => {
                ctl.delete(kind, &ns.namespace, &d.names, d.ignore_not_found, &mut out)
                    .await?;
            }
            None => return Err(CtlError::Input("delete: KIND NAME... or -f FILE".into())),
        },
        RegionCommand::Watch {
            kind,
            all_namespaces,
            output,
            count,
        } => {
            let stop = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let namespace = match kind {
                Some(k) => scope(all_namespaces).namespace_for(k).to_owned(),
                None if all_namespaces => String::new(),
                None => ns.namespace.clone(),
            };
            ctl.watch(kind, &namespace, output, count, stop, &mut out)
                .await?;
        }
        RegionCommand::Whoami { output } => ctl.whoami(output, &mut out).await?,
        RegionCommand::Completion { .. } => {}
    }
    out.flush()?;
    Ok(())
}
