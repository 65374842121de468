//! A test "VM": a namespace that owns one link (a dataplane's TAP, or a veth), configured
//! statically the way a dataplane's DHCP and router advertisements would, or by a real DHCP
//! client (busybox `udhcpc`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::process::Command;

use anyhow::{Context as _, bail};
use ipnet::Ipv4Net;

use super::{Netns, find_program, output};

/// The gateway a dataplane answers for on every VM port: IPv4 link-local, IPv6 `fe80::1`.
const GATEWAY_V4: &str = "169.254.0.1";
const GATEWAY_V6: &str = "fe80::1";

/// Discover packets udhcpc sends, and the seconds between them: a lease has about ten
/// seconds to come, plenty for a dataplane on a loaded machine.
const DHCP_TRIES: &str = "5";
const DHCP_PAUSE_SECS: &str = "2";

/// A namespace owning one link.
#[derive(Debug)]
pub struct Vm {
    netns: Netns,
    link: String,
}

impl Deref for Vm {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Vm {
    /// A new namespace `label` taking over `link` from `from` (`None`: the test process's
    /// namespace), with the link and `lo` up.
    pub fn adopt(label: &str, link: &str, from: Option<&Netns>) -> anyhow::Result<Self> {
        let netns = Netns::new(label)?;
        let mut cmd = Command::new("ip");
        if let Some(f) = from {
            cmd.args(["-n", f.name()]);
        }
        output(
            cmd.args(["link", "set", link, "netns", netns.name()]),
            &format!("moving {link} into {}", netns.name()),
        )?;
        netns.ip(&["link", "set", link, "up"])?;
        Ok(Self {
            netns,
            link: link.to_string(),
        })
    }

    /// The namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The adopted link's name.
    pub fn link(&self) -> &str {
        &self.link
    }

    /// The link's MAC address.
    pub fn mac(&self) -> anyhow::Result<String> {
        let s = self
            .netns
            .run(&["cat", &format!("/sys/class/net/{}/address", self.link)])?;
        Ok(s.trim().to_string())
    }

    /// `addr/32` on the link, the gateway 169.254.0.1 on-link and the default route via it.
    pub fn configure_v4(&self, addr: Ipv4Addr) -> anyhow::Result<()> {
        let l = self.link.as_str();
        self.netns
            .ip(&["addr", "add", &format!("{addr}/32"), "dev", l])?;
        self.netns.ip(&["route", "add", GATEWAY_V4, "dev", l])?;
        self.netns.ip(&[
            "route", "add", "default", "via", GATEWAY_V4, "dev", l, "onlink",
        ])?;
        Ok(())
    }

    /// `addr/128` on the link (no DAD) and the default route via `fe80::1`.
    pub fn configure_v6(&self, addr: Ipv6Addr) -> anyhow::Result<()> {
        let l = self.link.as_str();
        self.netns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{addr}/128"),
            "dev",
            l,
            "nodad",
        ])?;
        // `replace`: a router advertisement may have installed the same default already.
        self.netns.ip(&[
            "-6", "route", "replace", "default", "via", GATEWAY_V6, "dev", l,
        ])?;
        Ok(())
    }

    /// Sets the link's MTU.
    pub fn set_mtu(&self, mtu: u32) -> anyhow::Result<()> {
        self.netns
            .ip(&["link", "set", &self.link, "mtu", &mtu.to_string()])
            .map(drop)
    }

    /// Gives the link back to `to` (`None`: the test process's namespace) and deletes the
    /// namespace: a TAP left in it would be destroyed with it.
    pub fn release(self, to: Option<&Netns>) -> anyhow::Result<()> {
        self.netns.move_link(&self.link, to)
    }

    /// Runs `udhcpc` once in the foreground on the link. Its event script applies the lease
    /// (address, MTU, option 121 routes or else the router) and records what it was given.
    pub fn dhcp(&self) -> anyhow::Result<Lease> {
        let udhcpc = udhcpc_command()?;
        let ip = find_program("ip").context("ip not found: apt-get install iproute2")?;
        let dir = tempfile::tempdir().context("tempdir for the DHCP script")?;
        let lease = dir.path().join("lease");
        let errors = dir.path().join("errors");
        let script = dir.path().join("event.sh");
        std::fs::write(&script, event_script(&ip, &lease, &errors))
            .context("writing the DHCP event script")?;
        make_executable(&script)?;

        let (program, pre) = udhcpc.split_first().context("empty udhcpc command")?;
        let mut cmd = self.netns.command(program);
        cmd.args(pre)
            // Foreground, quit once bound, quit if no lease after the tries.
            .args(["-f", "-q", "-n"])
            .args(["-t", DHCP_TRIES, "-T", DHCP_PAUSE_SECS])
            .args(["-i", &self.link])
            .arg("-s")
            .arg(&script)
            // Not requested by default by busybox: the MTU; option 121 is, but ask anyway.
            .args(["-O", "mtu", "-O", "staticroutes"]);
        let what = format!("udhcpc on {} in {}", self.link, self.netns.name());
        let run = output(&mut cmd, &what);
        let applied = std::fs::read_to_string(&errors).unwrap_or_default();
        if !applied.trim().is_empty() {
            bail!("{what}: applying the lease failed: {}", applied.trim());
        }
        run?;
        let text = std::fs::read_to_string(&lease)
            .with_context(|| format!("{what}: exited 0 but recorded no lease"))?;
        Lease::parse(&text).with_context(|| format!("{what}: lease {text:?}"))
    }
}

/// What a DHCP server handed out, as udhcpc's event script saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address (`ip`).
    pub ip: Ipv4Addr,
    /// Prefix length of the subnet mask (`mask`, or counted from `subnet`).
    pub mask_len: u8,
    /// Option 3 (`router`).
    pub routers: Vec<Ipv4Addr>,
    /// Option 26 (`mtu`).
    pub mtu: Option<u32>,
    /// Option 6 (`dns`).
    pub dns: Vec<Ipv4Addr>,
    /// Option 12 (`hostname`).
    pub hostname: Option<String>,
    /// Option 15 (`domain`).
    pub domain: Option<String>,
    /// Option 121 (`staticroutes`): destination and gateway, 0.0.0.0 meaning on-link.
    pub static_routes: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Option 54 (`serverid`).
    pub server_id: Option<Ipv4Addr>,
    /// Option 51 (`lease`), seconds.
    pub lease_secs: Option<u32>,
    /// Every variable recorded, as udhcpc named them (also `event`: bound or renew).
    pub env: BTreeMap<String, String>,
}

impl Lease {
    /// Parses the `key=value` lines the event script writes.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let env: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let addrs = |k: &str| -> anyhow::Result<Vec<Ipv4Addr>> {
            get(k)
                .unwrap_or_default()
                .split_whitespace()
                .map(|a| a.parse().with_context(|| format!("{k}: bad address {a}")))
                .collect()
        };
        let one = |k: &str| -> anyhow::Result<Option<Ipv4Addr>> {
            get(k)
                .map(|a| a.parse().with_context(|| format!("{k}: bad address {a}")))
                .transpose()
        };
        let ip = one("ip")?.context("the lease names no ip")?;
        let mask_len = match (get("mask"), one("subnet")?) {
            (Some(m), _) => m.parse().with_context(|| format!("mask: bad length {m}"))?,
            (None, Some(s)) => ipnet::ipv4_mask_to_prefix(s).context("subnet: not a mask")?,
            (None, None) => bail!("the lease names neither mask nor subnet"),
        };
        let num = |k: &str| -> anyhow::Result<Option<u32>> {
            get(k)
                .map(|v| v.parse().with_context(|| format!("{k}: bad number {v}")))
                .transpose()
        };
        let words: Vec<&str> = get("staticroutes")
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if !words.len().is_multiple_of(2) {
            bail!("staticroutes: not pairs of destination and gateway: {words:?}");
        }
        let static_routes = words
            .chunks(2)
            .map(|p| -> anyhow::Result<(Ipv4Net, Ipv4Addr)> {
                let net = p[0]
                    .parse()
                    .with_context(|| format!("staticroutes: bad prefix {}", p[0]))?;
                let gw = p[1]
                    .parse()
                    .with_context(|| format!("staticroutes: bad gateway {}", p[1]))?;
                Ok((net, gw))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            ip,
            mask_len,
            routers: addrs("router")?,
            mtu: num("mtu")?,
            dns: addrs("dns")?,
            hostname: get("hostname").map(str::to_string),
            domain: get("domain").map(str::to_string),
            static_routes,
            server_id: one("serverid")?,
            lease_secs: num("lease")?,
            env,
        })
    }
}

/// How to run udhcpc: `udhcpc` itself, else the applet of a busybox that has it.
pub(super) fn udhcpc_command() -> anyhow::Result<Vec<OsString>> {
    if let Some(p) = find_program("udhcpc") {
        return Ok(vec![p.into()]);
    }
    if let Some(bb) = find_program("busybox") {
        let applets = Command::new(&bb).arg("--list").output();
        if applets.is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "udhcpc")
        }) {
            return Ok(vec![bb.into(), "udhcpc".into()]);
        }
    }
    bail!("udhcpc not found: apt-get install udhcpc (scripts/test installs it)")
}

/// A path as a single-quoted shell word.
fn sh_quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The udhcpc event script. It never touches resolv.conf: `ip netns exec` would let it write
/// the host's.
fn event_script(ip: &std::path::Path, lease: &std::path::Path, errors: &std::path::Path) -> String {
    format!(
        r#"#!/bin/sh
# udhcpc event script of the ferrinet netns test kit.
IP={ip}
LEASE={lease}
ERRORS={errors}
EVENT="$1"
run() {{ "$@" 2>>"$ERRORS" || echo "failed: $*" >>"$ERRORS"; }}
case "$EVENT" in
deconfig)
    run "$IP" -4 addr flush dev "$interface"
    run "$IP" link set dev "$interface" up
    ;;
bound|renew)
    run "$IP" addr replace "$ip/${{mask:-32}}" dev "$interface"
    [ -n "$mtu" ] && run "$IP" link set dev "$interface" mtu "$mtu"
    if [ -n "$staticroutes" ]; then
        # RFC 3442: with classless routes the router option is ignored.
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            if [ "$2" = 0.0.0.0 ]; then
                run "$IP" route replace "$1" dev "$interface"
            else
                run "$IP" route replace "$1" via "$2" dev "$interface" onlink
            fi
            shift 2
        done
    elif [ -n "$router" ]; then
        set -- $router
        run "$IP" route replace default via "$1" dev "$interface" onlink
    fi
    {{
        for k in ip subnet mask router dns hostname domain mtu staticroutes serverid lease broadcast; do
            eval "v=\${{$k}}"
            [ -n "$v" ] && printf '%s=%s\n' "$k" "$v"
        done
        printf 'event=%s\n' "$EVENT"
    }} >"$LEASE.tmp" && mv "$LEASE.tmp" "$LEASE"
    ;;
esac
exit 0
"#,
        ip = sh_quote(ip),
        lease = sh_quote(lease),
        errors = sh_quote(errors),
    )
}

fn make_executable(p: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_with_classless_routes_parses() {
        let l = Lease::parse(
            "ip=10.0.0.7\nsubnet=255.255.255.255\nmask=32\nrouter=169.254.0.1\n\
             dns=10.0.0.53 10.0.0.54\nhostname=vm-1\nmtu=1450\n\
             staticroutes=0.0.0.0/0 169.254.0.1 169.254.0.1/32 0.0.0.0\n\
             serverid=169.254.0.1\nlease=3600\nevent=bound\n",
        )
        .expect("parses");
        assert_eq!(l.ip, Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(
            (l.mask_len, l.mtu, l.lease_secs),
            (32, Some(1450), Some(3600))
        );
        assert_eq!(l.dns.len(), 2);
        assert_eq!(l.hostname.as_deref(), Some("vm-1"));
        assert_eq!(
            l.static_routes,
            vec![
                (
                    "0.0.0.0/0".parse().expect("net"),
                    Ipv4Addr::new(169, 254, 0, 1)
                ),
                (
                    "169.254.0.1/32".parse().expect("net"),
                    Ipv4Addr::UNSPECIFIED
                ),
            ]
        );
        assert_eq!(l.server_id, Some(Ipv4Addr::new(169, 254, 0, 1)));
    }

    #[test]
    fn mask_comes_from_subnet_when_missing_and_odd_routes_fail() {
        let l = Lease::parse("ip=10.1.2.3\nsubnet=255.255.255.0\n").expect("parses");
        assert_eq!((l.mask_len, l.mtu, l.static_routes.len()), (24, None, 0));
        assert!(Lease::parse("ip=10.1.2.3\nmask=24\nstaticroutes=10.0.0.0/8\n").is_err());
        assert!(Lease::parse("subnet=255.255.255.0\n").is_err());
    }
}
