//! Objects built from command-line flags (`create network NAME --vni 100 --peer 200`), and the
//! parsers of the flags' values (usable as clap `value_parser`s).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrinet_proto::node::v1 as pb;
use ipnet::IpNet;
use pb::object::Object as O;

use super::manifest::spec::{LoadBalancerType, Protocol};

/// `--label KEY=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

/// `--nat IP:PORT-END`: the NAT address and its source-port slice `[PORT, END)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatFlag {
    /// NAT address.
    pub ip: IpAddr,
    /// First port.
    pub port: u32,
    /// End of the slice (excluded).
    pub end_port: u32,
}

/// Parses `--nat IP:PORT-END` (`10.0.0.5:1024-2048`).
pub fn parse_nat(s: &str) -> Result<NatFlag, String> {
    let bad = || format!("{s:?}: expected IP:PORT-END, like 203.0.113.5:1024-2048");
    let (ip, range) = s.rsplit_once(':').ok_or_else(bad)?;
    let (port, end) = range.split_once('-').ok_or_else(bad)?;
    Ok(NatFlag {
        ip: ip.trim_matches(['[', ']']).parse().map_err(|_| bad())?,
        port: port.parse().map_err(|_| bad())?,
        end_port: end.parse().map_err(|_| bad())?,
    })
}

/// `--port PROTOCOL/PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortFlag {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port.
    pub port: u32,
}

/// Parses `--port tcp/443` (also `udp/53`; the protocol in any case).
pub fn parse_port(s: &str) -> Result<PortFlag, String> {
    let bad = || format!("{s:?}: expected tcp/PORT or udp/PORT");
    let (proto, port) = s.split_once('/').ok_or_else(bad)?;
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(bad()),
    };
    Ok(PortFlag {
        protocol,
        port: port.parse().map_err(|_| bad())?,
    })
}

/// Parses `--lb-target`: an address or a prefix, returned in canonical text.
pub fn parse_target(s: &str) -> Result<String, String> {
    super::manifest::convert::ip_or_prefix("--lb-target", s).map_err(|e| e.message)
}

fn metadata(name: &str, labels: &[(String, String)]) -> Option<pb::Metadata> {
    let labels: BTreeMap<String, String> = labels.iter().cloned().collect();
    Some(pb::Metadata {
        name: name.to_owned(),
        labels: labels.into_iter().collect(),
        ..pb::Metadata::default()
    })
}

/// `create network NAME --vni N [--peer VNI]...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFlags {
    /// Name.
    pub name: String,
    /// `--vni`.
    pub vni: u32,
    /// `--peer`.
    pub peers: Vec<u32>,
    /// `--label`.
    pub labels: Vec<(String, String)>,
}

impl NetworkFlags {
    /// The object to create.
    pub fn object(&self) -> pb::Object {
        pb::Object {
            object: Some(O::Network(pb::Network {
                metadata: metadata(&self.name, &self.labels),
                spec: Some(pb::NetworkSpec {
                    id: self.vni,
                    peered_ids: self.peers.clone(),
                    peered_prefixes: Vec::new(),
                }),
                status: None,
            })),
        }
    }
}

/// `create interface NAME --network NET --ip IP [--ip IP] [--vip IP] [--nat IP:PORT-END]
/// [--prefix P]... [--lb-target P]... [--hostname H]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceFlags {
    /// Name.
    pub name: String,
    /// `--network`.
    pub network: String,
    /// `--ip`.
    pub ips: Vec<IpAddr>,
    /// `--vip`.
    pub vip: Option<IpAddr>,
    /// `--nat`.
    pub nat: Option<NatFlag>,
    /// `--prefix`.
    pub prefixes: Vec<IpNet>,
    /// `--lb-target` (canonical text, from [`parse_target`]).
    pub lb_targets: Vec<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--label`.
    pub labels: Vec<(String, String)>,
}

impl InterfaceFlags {
    /// The object to create.
    pub fn object(&self) -> pb::Object {
        pb::Object {
            object: Some(O::NetworkInterface(pb::NetworkInterface {
                metadata: metadata(&self.name, &self.labels),
                spec: Some(pb::NetworkInterfaceSpec {
                    network: self.network.clone(),
                    ips: self.ips.iter().map(IpAddr::to_string).collect(),
                    virtual_ip: self.vip.map(|v| v.to_string()).unwrap_or_default(),
                    nat: self.nat.as_ref().map(|n| pb::NatSpec {
                        ip: n.ip.to_string(),
                        port: n.port,
                        end_port: n.end_port,
                    }),
                    prefixes: self.prefixes.iter().map(IpNet::to_string).collect(),
                    load_balancer_targets: self.lb_targets.clone(),
                    firewall_rules: Vec::new(),
                    metering_rate: None,
                    hostname: self.hostname.clone().unwrap_or_default(),
                }),
                status: None,
            })),
        }
    }
}

/// `create loadbalancer NAME --network NET --type internal|public --ip IP --port tcp/443...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerFlags {
    /// Name.
    pub name: String,
    /// `--network`.
    pub network: String,
    /// `--type`.
    pub lb_type: LoadBalancerType,
    /// `--ip`.
    pub ip: IpAddr,
    /// `--port`.
    pub ports: Vec<PortFlag>,
    /// `--label`.
    pub labels: Vec<(String, String)>,
}

impl LoadBalancerFlags {
    /// The object to create.
    pub fn object(&self) -> pb::Object {
        let r#type = match self.lb_type {
            LoadBalancerType::Internal => pb::LoadBalancerType::Internal,
            LoadBalancerType::Public => pb::LoadBalancerType::Public,
        };
        let ports = self
            .ports
            .iter()
            .map(|p| pb::LoadBalancerPort {
                protocol: match p.protocol {
                    Protocol::Tcp => pb::Protocol::Tcp,
                    Protocol::Udp => pb::Protocol::Udp,
                    Protocol::Icmp => pb::Protocol::Icmp,
                } as i32,
                port: p.port,
            })
            .collect();
        pb::Object {
            object: Some(O::LoadBalancer(pb::LoadBalancer {
                metadata: metadata(&self.name, &self.labels),
                spec: Some(pb::LoadBalancerSpec {
                    network: self.network.clone(),
                    r#type: r#type as i32,
                    ip: self.ip.to_string(),
                    ports,
                }),
                status: None,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ctl::manifest::{self, Source};

    #[test]
    fn parses_flag_values() {
        assert_eq!(parse_label("app=web"), Ok(("app".into(), "web".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_label("=x").is_err() && parse_label("x").is_err());
        assert_eq!(
            parse_nat("203.0.113.5:1024-2048"),
            Ok(NatFlag {
                ip: "203.0.113.5".parse().unwrap(),
                port: 1024,
                end_port: 2048
            })
        );
        for bad in ["203.0.113.5", "203.0.113.5:1024", "x:1-2", "1.2.3.4:a-2"] {
            assert!(parse_nat(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_port("TCP/443"),
            Ok(PortFlag {
                protocol: Protocol::Tcp,
                port: 443
            })
        );
        assert_eq!(parse_port("udp/53").unwrap().protocol, Protocol::Udp);
        assert!(parse_port("icmp/1").is_err() && parse_port("443").is_err());
        assert_eq!(parse_target("10.0.0.100"), Ok("10.0.0.100".into()));
        assert_eq!(parse_target("fd00:0::1/128"), Ok("fd00::1/128".into()));
        assert!(parse_target("10.0.0.300").is_err());
    }

    /// An object built from flags equals the one from the equivalent manifest.
    #[test]
    fn flags_build_what_manifests_build() {
        let text = "\
apiVersion: ferrinet.dev/v1
kind: Network
metadata: {name: net-a, labels: {team: x}}
spec: {id: 100, peeredIDs: [200]}
---
apiVersion: ferrinet.dev/v1
kind: NetworkInterface
metadata: {name: vm-1}
spec:
  networkRef: {name: net-a}
  ips: [10.0.0.5, 'fd00::5']
  virtualIP: 203.0.113.10
  nat: {ip: 203.0.113.5, port: 1024, endPort: 2048}
  prefixes: [10.1.0.0/24]
  loadBalancerTargets: [10.0.0.100/32]
  hostname: vm-1
---
apiVersion: ferrinet.dev/v1
kind: LoadBalancer
metadata: {name: lb-1}
spec:
  networkRef: {name: net-a}
  type: Internal
  ip: 10.0.0.100
  ports: [{protocol: TCP, port: 443}, {protocol: UDP, port: 53}]
";
        let entries = manifest::parse(&Source {
            name: "t".into(),
            text: text.into(),
        })
        .unwrap();
        let net = NetworkFlags {
            name: "net-a".into(),
            vni: 100,
            peers: vec![200],
            labels: vec![("team".into(), "x".into())],
        };
        let ni = InterfaceFlags {
            name: "vm-1".into(),
            network: "net-a".into(),
            ips: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            vip: Some("203.0.113.10".parse().unwrap()),
            nat: Some(parse_nat("203.0.113.5:1024-2048").unwrap()),
            prefixes: vec!["10.1.0.0/24".parse().unwrap()],
            lb_targets: vec![parse_target("10.0.0.100/32").unwrap()],
            hostname: Some("vm-1".into()),
            labels: vec![],
        };
        let lb = LoadBalancerFlags {
            name: "lb-1".into(),
            network: "net-a".into(),
            lb_type: LoadBalancerType::Internal,
            ip: "10.0.0.100".parse().unwrap(),
            ports: vec![
                parse_port("tcp/443").unwrap(),
                parse_port("udp/53").unwrap(),
            ],
            labels: vec![],
        };
        assert_eq!(entries[0].object, net.object());
        assert_eq!(entries[1].object, ni.object());
        assert_eq!(entries[2].object, lb.object());
    }
}
