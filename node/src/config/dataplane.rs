//! `[dataplane]`: where the dataplane is, and for the embedded one whether it moves packets.

use ferrinet_dataplane::PacketConfig;
use ferrinet_dataplane::flow::Mode;
use ipnet::Ipv6Net;
use serde::Deserialize;

use super::{ConfigError, DEFAULT_DATAPLANE, invalid};

/// `[dataplane]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneSection {
    /// `HOST:PORT` of dpservice, or `embedded` to run ferrinet's software dataplane in-process.
    pub address: String,
    /// Embedded only: the dataplane's underlay /64 (interfaces get addresses inside it).
    pub embedded_underlay: String,
    /// How often dpservice is checked for a restart (its UUID), milliseconds.
    pub check_interval_ms: u64,
    /// Bound of one dpservice call, milliseconds.
    pub call_timeout_ms: u64,
    /// Embedded only: move real packets (a TAP per VF port, the underlay over raw IPv6
    /// sockets). Needs root.
    pub packets: bool,
    /// Embedded with packets: the Linux interface carrying the underlay (its MTU bounds what
    /// can be encapsulated). Empty: MTU 1500.
    pub underlay_interface: String,
    /// Embedded with packets: `enforce` the firewall rules, or `monitor` (forward everything,
    /// count what would have been dropped).
    pub firewall_mode: String,
    /// Embedded with packets: DNS servers handed out by DHCP.
    pub dhcp_dns: Vec<String>,
    /// Embedded with packets: DNS servers handed out by DHCPv6.
    pub dhcpv6_dns: Vec<String>,
    /// Embedded with packets: TAPs with virtio-net headers, taking TCP super-segments from
    /// VMs and giving merged ones back (TSO/GRO); off: one frame per read and write.
    pub tap_offload: bool,
    /// Embedded with packets: microseconds a packet loop polls its empty queue before it
    /// sleeps (0: at once; at most 10000).
    pub poll_spin_us: u64,
    /// Embedded with packets: the packet loop never sleeps (it takes a CPU, as dpservice's
    /// worker does, and spares every wakeup); `poll_spin_us` then no longer applies to it.
    pub busy_poll: bool,
}

impl Default for DataplaneSection {
    fn default() -> Self {
        Self {
            address: DEFAULT_DATAPLANE.into(),
            embedded_underlay: "fc00:1::/64".into(),
            check_interval_ms: 100,
            call_timeout_ms: 5000,
            packets: false,
            underlay_interface: String::new(),
            firewall_mode: "enforce".into(),
            dhcp_dns: Vec::new(),
            dhcpv6_dns: Vec::new(),
            tap_offload: true,
            poll_spin_us: ferrinet_dataplane::config::DEFAULT_POLL_SPIN.as_micros() as u64,
            busy_poll: false,
        }
    }
}

/// Where the dataplane is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataplaneTarget {
    /// ferrinet's software dataplane, in this process.
    Embedded {
        /// Its underlay /64.
        underlay: Ipv6Net,
        /// Its packet path, if on.
        packets: Option<Box<PacketConfig>>,
    },
    /// A dpservice (or standalone ferrinet-dataplane) at this address.
    Remote(String),
}

impl DataplaneSection {
    /// Where the dataplane is, checked.
    pub fn target(&self) -> Result<DataplaneTarget, ConfigError> {
        let dataplane = match self.address.trim() {
            "embedded" => {
                let underlay: Ipv6Net = self.embedded_underlay.trim().parse().map_err(|_| {
                    invalid(
                        "dataplane.embedded_underlay",
                        format!("{:?} is not an IPv6 prefix", self.embedded_underlay),
                    )
                })?;
                if underlay.prefix_len() != 64 {
                    return Err(invalid(
                        "dataplane.embedded_underlay",
                        "must be a /64 (the dataplane generates addresses inside it)",
                    ));
                }
                DataplaneTarget::Embedded {
                    underlay: underlay.trunc(),
                    packets: self.packets()?.map(Box::new),
                }
            }
            "" => return Err(invalid("dataplane.address", "must not be empty")),
            a => {
                if !a.contains(':') {
                    return Err(invalid(
                        "dataplane.address",
                        format!("{a:?} is neither \"embedded\" nor HOST:PORT"),
                    ));
                }
                DataplaneTarget::Remote(a.to_string())
            }
        };
        if !(10..=60_000).contains(&self.check_interval_ms) {
            return Err(invalid(
                "dataplane.check_interval_ms",
                format!("{} is outside 10..=60000", self.check_interval_ms),
            ));
        }
        if !(100..=600_000).contains(&self.call_timeout_ms) {
            return Err(invalid(
                "dataplane.call_timeout_ms",
                format!("{} is outside 100..=600000", self.call_timeout_ms),
            ));
        }
        if self.packets && !matches!(dataplane, DataplaneTarget::Embedded { .. }) {
            return Err(invalid(
                "dataplane.packets",
                "only the embedded dataplane moves packets in-process; \
                 run ferrinet-dataplane --packets instead",
            ));
        }
        Ok(dataplane)
    }

    fn packets(&self) -> Result<Option<PacketConfig>, ConfigError> {
        if !self.packets {
            return Ok(None);
        }
        let firewall: Mode = self.firewall_mode.trim().parse().map_err(
            |e: ferrinet_dataplane::flow::ModeError| invalid("dataplane.firewall_mode", e.0),
        )?;
        let dhcp_dns = addresses("dataplane.dhcp_dns", &self.dhcp_dns, "IPv4")?;
        let dhcpv6_dns = addresses("dataplane.dhcpv6_dns", &self.dhcpv6_dns, "IPv6")?;
        let spin = std::time::Duration::from_micros(self.poll_spin_us);
        let max = ferrinet_dataplane::config::MAX_POLL_SPIN;
        if spin > max {
            return Err(invalid(
                "dataplane.poll_spin_us",
                format!("at most {}, got {}", max.as_micros(), self.poll_spin_us),
            ));
        }
        let interface = self.underlay_interface.trim();
        let pc = PacketConfig {
            underlay_interface: (!interface.is_empty()).then(|| interface.to_string()),
            tap_offload: self.tap_offload,
            poll_spin: spin,
            busy_poll: self.busy_poll,
            settings: ferrinet_dataplane::forward::Settings {
                firewall,
                dhcp_dns,
                dhcpv6_dns,
                ..Default::default()
            },
            ..PacketConfig::default()
        };
        pc.validate()
            .map_err(|e| invalid("dataplane.packets", e.to_string()))?;
        Ok(Some(pc))
    }
}

fn addresses<T: std::str::FromStr>(
    key: &str,
    texts: &[String],
    family: &str,
) -> Result<Vec<T>, ConfigError> {
    texts
        .iter()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| invalid(key, format!("{s:?} is not an {family} address")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::{bad_key, parse};
    use super::*;

    #[test]
    fn packets_on_the_embedded_dataplane() {
        let s = parse(
            "[dataplane]\naddress = \"embedded\"\npackets = true\nfirewall_mode = \"monitor\"\n\
             underlay_interface = \"ul0\"\ndhcp_dns = [\"192.0.2.53\"]\npoll_spin_us = 0\nbusy_poll = true",
        )
        .unwrap();
        let DataplaneTarget::Embedded {
            packets: Some(p), ..
        } = s.dataplane
        else {
            panic!("packets expected: {:?}", s.dataplane);
        };
        assert_eq!(p.settings.firewall, Mode::Monitor);
        assert_eq!(p.underlay_interface.as_deref(), Some("ul0"));
        assert_eq!(p.poll_spin, std::time::Duration::ZERO);
        assert!(p.busy_poll);
        assert_eq!(
            p.settings.dhcp_dns,
            vec!["192.0.2.53".parse::<std::net::Ipv4Addr>().unwrap()]
        );
    }

    #[test]
    fn packet_settings_are_checked() {
        assert_eq!(
            bad_key(
                "[dataplane]\naddress = \"embedded\"\npackets = true\nfirewall_mode = \"loose\""
            ),
            "dataplane.firewall_mode"
        );
        assert_eq!(
            bad_key("[dataplane]\naddress = \"embedded\"\npackets = true\ndhcp_dns = [\"x\"]"),
            "dataplane.dhcp_dns"
        );
        assert_eq!(
            bad_key("[dataplane]\naddress = \"embedded\"\npackets = true\npoll_spin_us = 10001"),
            "dataplane.poll_spin_us"
        );
        assert_eq!(
            bad_key("[dataplane]\naddress = \"127.0.0.1:1337\"\npackets = true"),
            "dataplane.packets"
        );
    }
}
