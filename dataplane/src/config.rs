//! Configuration of a dataplane instance.

use std::collections::HashSet;
use std::net::Ipv6Addr;

/// Default host underlay address (`--ipv6`): its /64 holds every generated underlay address.
pub const DEFAULT_UNDERLAY: Ipv6Addr = Ipv6Addr::new(0xfc00, 1, 0, 0, 0, 0, 0, 1);
/// Default number of VF ports, as on a typical dpservice host.
pub const DEFAULT_VF_COUNT: usize = 126;

/// A VF port an interface can be attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfPort {
    /// The dataplane's port name, the `device_name` of CreateInterface (e.g. `net_tap2`).
    pub name: String,
    /// The Linux netdev name answered as `vf.name` (e.g. `dtap2`).
    pub netdev: String,
}

impl VfPort {
    /// Parses `name` or `name=netdev`; a TAP port `net_tapN` gets the netdev `dtapN` like the
    /// real TAP setup, any other name is its own netdev.
    pub fn parse(spec: &str) -> Self {
        match spec.split_once('=') {
            Some((name, netdev)) => Self {
                name: name.to_string(),
                netdev: netdev.to_string(),
            },
            None => Self {
                name: spec.to_string(),
                netdev: spec
                    .strip_prefix("net_tap")
                    .map_or_else(|| spec.to_string(), |n| format!("dtap{n}")),
            },
        }
    }
}

/// Everything a dataplane instance needs to know at start.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Host underlay address; its /64 is the prefix of every generated underlay address.
    pub underlay_ipv6: Ipv6Addr,
    /// The PF ports; giving one as `device_name` is ALREADY_EXISTS, as on the real service.
    pub pf_ports: Vec<String>,
    /// The VF ports interfaces can use.
    pub vf_ports: Vec<VfPort>,
    /// Moving real packets (TAP ports, underlay sockets); `None`: API only.
    pub packets: Option<PacketConfig>,
}

/// The packet path's configuration (`--packets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketConfig {
    /// The Linux interface carrying the node's underlay, whose MTU bounds what can be
    /// encapsulated; without it (and without `underlay_mtu`) 1500 is assumed.
    pub underlay_interface: Option<String>,
    /// The underlay MTU, overriding the interface's.
    pub underlay_mtu: Option<u16>,
    /// MTU of the TAP devices when created.
    pub tap_mtu: u16,
    /// Open TAPs with virtio-net headers and offer the VM TCP segmentation and checksum
    /// offload: the dataplane reads whole TCP super-segments and cuts them itself, and
    /// writes bursts of one flow's segments merged (see `packet::offload`).
    pub tap_offload: bool,
    /// How long a packet loop keeps polling its empty queue before it sleeps (zero: sleeps at
    /// once). Spares the wakeup per burst and per hop of a round trip, for up to this much CPU
    /// time per wakeup of each loop. At most [`MAX_POLL_SPIN`].
    pub poll_spin: std::time::Duration,
    /// The packet loop never sleeps: it polls, yielding the CPU between empty polls, as
    /// dpservice's worker owns its core. Off: it polls for `poll_spin`, unless the CPU turns
    /// out busy, then sleeps. Worth a core where waking a halted CPU is dear (a VM).
    pub busy_poll: bool,
    /// Make the underlay /64 local (`ip -6 route replace local <prefix> dev lo`) so that the
    /// kernel hands every address of it to the dataplane; off when the operator routes it.
    pub make_prefix_local: bool,
    /// The forwarding engine's settings (its `underlay_mtu` is filled in at start).
    pub settings: crate::forward::Settings,
}

/// Default of [`PacketConfig::poll_spin`]: on the 2-core benchmark, 100 us took the 64-byte
/// rate from about 117k to 135k packets/s and the ping p50 from about 190 to 130 us.
pub const DEFAULT_POLL_SPIN: std::time::Duration = std::time::Duration::from_micros(100);
/// Longest [`PacketConfig::poll_spin`] accepted: beyond it a loop is simply busy.
pub const MAX_POLL_SPIN: std::time::Duration = std::time::Duration::from_millis(10);

impl Default for PacketConfig {
    fn default() -> Self {
        Self {
            underlay_interface: None,
            underlay_mtu: None,
            tap_mtu: 1500,
            tap_offload: true,
            poll_spin: DEFAULT_POLL_SPIN,
            busy_poll: false,
            make_prefix_local: true,
            settings: crate::forward::Settings::default(),
        }
    }
}

impl PacketConfig {
    /// Checks the values a user gives, naming the option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, why: String| Err(ConfigError::Packets(format!("{field}: {why}")));
        if self.poll_spin > MAX_POLL_SPIN {
            return bad(
                "poll_spin",
                format!(
                    "at most {} us, got {} us",
                    MAX_POLL_SPIN.as_micros(),
                    self.poll_spin.as_micros()
                ),
            );
        }
        let s = &self.settings;
        if !(68..=1500).contains(&s.dhcp_mtu) {
            return bad(
                "dhcp_mtu",
                format!("must be 68 to 1500, got {}", s.dhcp_mtu),
            );
        }
        if s.dhcp_dns.len() > 63 {
            return bad(
                "dhcp_dns",
                format!("at most 63 servers, got {}", s.dhcp_dns.len()),
            );
        }
        if let Some(m) = self.underlay_mtu
            && m < 1280
        {
            return bad("underlay_mtu", format!("must be at least 1280, got {m}"));
        }
        if !(68..=9000).contains(&self.tap_mtu) {
            return bad(
                "tap_mtu",
                format!("must be 68 to 9000, got {}", self.tap_mtu),
            );
        }
        if s.flows.max_flows == 0 {
            return bad("max_flows", "must be at least 1".to_string());
        }
        Ok(())
    }
}

/// The configuration is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A port name appears twice (as PF or VF).
    #[error("duplicate port name {0:?}")]
    DuplicatePort(String),
    /// A port name is empty or too long for a device name.
    #[error("invalid port name {0:?}: must be 1 to 255 bytes")]
    BadPortName(String),
    /// A packet-path setting is out of range.
    #[error("packets: {0}")]
    Packets(String),
}

impl DataplaneConfig {
    /// A TAP-style setup like dpservice's test environment: PFs `net_tap0` and `net_tap1`,
    /// VFs `net_tap2` .. `net_tap{vf_count+1}` with netdevs `dtapN`.
    pub fn tap(underlay_ipv6: Ipv6Addr, vf_count: usize) -> Self {
        Self {
            underlay_ipv6,
            pf_ports: vec!["net_tap0".to_string(), "net_tap1".to_string()],
            vf_ports: (0..vf_count)
                .map(|i| VfPort::parse(&format!("net_tap{}", i + 2)))
                .collect(),
            packets: None,
        }
    }

    /// Checks that port names are unique and usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = &self.packets {
            p.validate()?;
        }
        let mut seen = HashSet::new();
        let names = self
            .pf_ports
            .iter()
            .map(String::as_str)
            .chain(self.vf_ports.iter().map(|v| v.name.as_str()));
        for name in names {
            if name.is_empty() || name.len() > crate::validate::MAX_TEXT_LEN {
                return Err(ConfigError::BadPortName(name.to_string()));
            }
            if !seen.insert(name) {
                return Err(ConfigError::DuplicatePort(name.to_string()));
            }
        }
        Ok(())
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self::tap(DEFAULT_UNDERLAY, DEFAULT_VF_COUNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_defaults() {
        let c = DataplaneConfig::default();
        assert_eq!(c.vf_ports.len(), 126);
        assert_eq!(c.vf_ports[0], VfPort::parse("net_tap2"));
        assert_eq!(c.vf_ports[0].netdev, "dtap2");
        assert_eq!(c.vf_ports[125].name, "net_tap127");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn explicit_names() {
        let r = VfPort::parse("0000:3b:00.0_representor_vf2=enp59s0f0v2");
        assert_eq!(r.name, "0000:3b:00.0_representor_vf2");
        assert_eq!(r.netdev, "enp59s0f0v2");
        let mut c = DataplaneConfig::tap(DEFAULT_UNDERLAY, 1);
        c.vf_ports.push(VfPort::parse("net_tap0"));
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicatePort("net_tap0".to_string()))
        );
    }

    #[test]
    fn poll_spin_is_bounded() {
        let mut p = PacketConfig::default();
        assert_eq!(p.poll_spin, DEFAULT_POLL_SPIN);
        assert!(p.validate().is_ok());
        p.poll_spin = MAX_POLL_SPIN;
        assert!(p.validate().is_ok());
        p.poll_spin = MAX_POLL_SPIN + std::time::Duration::from_micros(1);
        let e = p
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("poll_spin") && e.contains("10000"), "{e}");
    }
}
