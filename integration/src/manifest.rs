//! Manifests in metalnet's shape, as `ferrinetctl apply -f` reads them, for tests that build
//! their objects from a few fields. Join documents with [`docs`].

const API: &str = "apiVersion: networking.metalnet.ironcore.dev/v1alpha1";

/// Documents joined into one multi-document manifest.
pub fn docs<S: AsRef<str>>(docs: &[S]) -> String {
    docs.iter()
        .map(|d| d.as_ref().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n"
}

/// A Network with VNI `vni`.
pub fn network(name: &str, vni: u32) -> String {
    format!("{API}\nkind: Network\nmetadata: {{name: {name}}}\nspec: {{id: {vni}}}\n")
}

/// A NetworkInterface; set the optional fields before [`Interface::yaml`].
#[derive(Debug, Clone, Default)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Network name.
    pub network: String,
    /// IPv4 address.
    pub ip: String,
    /// Public virtual IP.
    pub virtual_ip: Option<String>,
    /// Source NAT: IP and the port slice `[port, end_port)`.
    pub nat: Option<(String, u32, u32)>,
    /// Load-balancer VIPs (prefixes) this interface is a target of.
    pub lb_targets: Vec<String>,
}

impl Interface {
    /// An interface `name` in `network` with IPv4 address `ip`.
    pub fn new(name: &str, network: &str, ip: &str) -> Self {
        Self {
            name: name.into(),
            network: network.into(),
            ip: ip.into(),
            ..Self::default()
        }
    }

    /// With a public virtual IP.
    pub fn virtual_ip(mut self, vip: &str) -> Self {
        self.virtual_ip = Some(vip.into());
        self
    }

    /// With source NAT on `ip`, ports `[port, end_port)`.
    pub fn nat(mut self, ip: &str, port: u32, end_port: u32) -> Self {
        self.nat = Some((ip.into(), port, end_port));
        self
    }

    /// Target of the load balancer with VIP prefix `vip` (e.g. `10.0.0.100/32`).
    pub fn lb_target(mut self, vip: &str) -> Self {
        self.lb_targets.push(vip.into());
        self
    }

    /// The document.
    pub fn yaml(&self) -> String {
        let mut spec = format!(
            "  networkRef: {{name: {}}}\n  ipFamilies: [IPv4]\n  ips: [{}]\n",
            self.network, self.ip
        );
        if let Some(v) = &self.virtual_ip {
            spec += &format!("  virtualIP: {v}\n");
        }
        if let Some((ip, port, end)) = &self.nat {
            spec += &format!("  nat: {{ip: {ip}, port: {port}, endPort: {end}}}\n");
        }
        if !self.lb_targets.is_empty() {
            spec += &format!("  loadBalancerTargets: [{}]\n", self.lb_targets.join(", "));
        }
        format!(
            "{API}\nkind: NetworkInterface\nmetadata: {{name: {}}}\nspec:\n{spec}",
            self.name
        )
    }
}

/// An internal LoadBalancer `name` in `network` on `ip`, TCP port `port`.
pub fn internal_lb(name: &str, network: &str, ip: &str, port: u16) -> String {
    format!(
        "{API}\nkind: LoadBalancer\nmetadata: {{name: {name}}}\nspec:\n  networkRef: {{name: {network}}}\n  type: Internal\n  ipFamily: IPv4\n  ip: {ip}\n  ports: [{{protocol: TCP, port: {port}}}]\n"
    )
}
