//! The `ip` and `udhcpc` commands behind the VM manager: namespace names, taking a TAP into a
//! namespace and giving it back, configuring it by DHCP or statically.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};
use tokio::process::Command;

/// `ip netns` refuses longer names (NAME_MAX). Interface names are at most 63 characters, so
/// this only bounds the prefixed fall-backs.
const MAX_NETNS_NAME: usize = 255;
/// How many `NODE-NAME-k` suffixes are tried before giving up on a name.
const MAX_SUFFIX: usize = 9;
/// The gateway every dataplane answers for on a VM port.
const GATEWAY_V4: &str = "169.254.0.1";
const GATEWAY_V6: &str = "fe80::1";
/// Marker lines of the event script, so its output can be told from udhcpc's.
const LEASE_MARK: &str = "ferrinet-lease:";
const ERROR_MARK: &str = "ferrinet-error:";

/// The udhcpc event script (`DIR/udhcpc.script`). It never writes resolv.conf: under
/// `ip netns exec` that would be the host's.
pub(super) const EVENT_SCRIPT: &str = r#"#!/bin/sh
# Written by ferrinet-dev: applies a DHCP lease to a dev-mode VM's TAP.
run() { out=$("$@" 2>&1) || echo "ferrinet-error: $* : $out"; }
case "$1" in
deconfig)
    run ip -4 addr flush dev "$interface"
    run ip link set dev "$interface" up
    ;;
bound|renew)
    run ip addr replace "$ip/${mask:-32}" dev "$interface"
    [ -n "$mtu" ] && run ip link set dev "$interface" mtu "$mtu"
    if [ -n "$staticroutes" ]; then
        # RFC 3442: with classless routes the router option is ignored.
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            if [ "$2" = 0.0.0.0 ]; then
                run ip route replace "$1" dev "$interface"
            else
                run ip route replace "$1" via "$2" dev "$interface" onlink
            fi
            shift 2
        done
    elif [ -n "$router" ]; then
        set -- $router
        run ip route replace default via "$1" dev "$interface" onlink
    fi
    echo "ferrinet-lease: $ip/${mask:-32} mtu=${mtu:-none} routes=${staticroutes:-none} router=${router:-none}"
    ;;
esac
exit 0
"#;

/// How to run udhcpc, and the event script written for it.
#[derive(Debug, Clone)]
pub(super) struct Dhcp {
    command: Vec<OsString>,
    script: PathBuf,
}

/// udhcpc itself, else a busybox with the applet; `None` if neither is installed. Writes the
/// event script to `DIR/udhcpc.script` when there is one.
pub(super) fn find_dhcp(dir: &Path) -> anyhow::Result<Option<Dhcp>> {
    let command: Vec<OsString> = if let Some(p) = find_program("udhcpc") {
        vec![p.into()]
    } else if let Some(bb) = find_program("busybox").filter(|bb| busybox_has_udhcpc(bb)) {
        vec![bb.into(), "udhcpc".into()]
    } else {
        return Ok(None);
    };
    let script = dir.join("udhcpc.script");
    std::fs::write(&script, EVENT_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", script.display()))?;
    Ok(Some(Dhcp { command, script }))
}

fn busybox_has_udhcpc(bb: &Path) -> bool {
    std::process::Command::new(bb)
        .arg("--list")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "udhcpc")
        })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The namespace names to try for interface `name` of `node`, in order: the interface's own
/// name, then `NODE-NAME`, `NODE-NAME-2`, ... (interfaces of different nodes may share a name,
/// and a namespace of that name may exist already). Deterministic, so that the same objects
/// give the same names run after run.
pub(super) fn candidates(node: &str, name: &str) -> Vec<String> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let (node, name) = (clean(node), clean(name));
    let prefixed = format!("{node}-{name}");
    let mut out = vec![name, prefixed.clone()];
    out.extend((2..=MAX_SUFFIX).map(|k| format!("{prefixed}-{k}")));
    out.into_iter()
        .map(|mut n| {
            n.truncate(MAX_NETNS_NAME);
            n
        })
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect()
}

/// The names to try for node `node`'s parking namespace: `NODE-idle`, `NODE-idle-2`, ...
pub(super) fn park_candidates(node: &str) -> Vec<String> {
    let mut c = candidates(node, "idle");
    c.remove(0);
    c
}

/// The names in `ip netns list` output (`NAME` or `NAME (id: N)` per line).
pub(super) fn parse_netns_list(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The namespaces that exist now.
pub(super) async fn netns_list() -> anyhow::Result<BTreeSet<String>> {
    Ok(parse_netns_list(&ip(&["netns", "list"]).await?))
}

/// `ip netns add NS`.
pub(super) async fn add_netns(ns: &str) -> anyhow::Result<()> {
    ip(&["netns", "add", ns]).await.map(drop)
}

/// Moves `tap` from namespace `from` (`None`: this process's) into `to`.
pub(super) async fn move_tap(tap: &str, from: Option<&str>, to: &str) -> anyhow::Result<()> {
    match from {
        Some(f) => ip(&["-n", f, "link", "set", tap, "netns", to]).await,
        None => ip(&["link", "set", tap, "netns", to]).await,
    }
    .map(drop)
}

/// `lo` and `tap` up in `ns`.
pub(super) async fn bring_up(ns: &str, tap: &str) -> anyhow::Result<()> {
    ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
    ip(&["-n", ns, "link", "set", tap, "up"]).await.map(drop)
}

/// Configures `tap` in `ns`: IPv4 by DHCP (static if there is no udhcpc or no lease came),
/// IPv6 statically. Returns what was done, for the VM's line.
pub(super) async fn configure(
    ns: &str,
    tap: &str,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    dhcp: Option<&Dhcp>,
) -> anyhow::Result<String> {
    let mut done = Vec::new();
    if let Some(a) = v4 {
        let leased = match dhcp {
            Some(d) => match run_dhcp(ns, tap, d).await {
                Ok(lease) => Some(lease),
                Err(e) => {
                    println!("VM {ns}: DHCP failed, configuring {a} statically: {e:#}");
                    None
                }
            },
            None => None,
        };
        match leased {
            Some(lease) => done.push(format!("DHCP {lease}")),
            None => {
                static_v4(ns, tap, a).await?;
                done.push(format!("static {a}/32"));
            }
        }
    }
    if let Some(a) = v6 {
        let addr = format!("{a}/128");
        ip(&["-n", ns, "-6", "addr", "add", &addr, "dev", tap, "nodad"]).await?;
        ip(&[
            "-n", ns, "-6", "route", "replace", "default", "via", GATEWAY_V6, "dev", tap,
        ])
        .await?;
        done.push(format!("static {addr}"));
    }
    Ok(done.join(", "))
}

async fn static_v4(ns: &str, tap: &str, a: Ipv4Addr) -> anyhow::Result<()> {
    let addr = format!("{a}/32");
    ip(&["-n", ns, "addr", "replace", &addr, "dev", tap]).await?;
    ip(&["-n", ns, "route", "replace", GATEWAY_V4, "dev", tap]).await?;
    ip(&[
        "-n", ns, "route", "replace", "default", "via", GATEWAY_V4, "dev", tap, "onlink",
    ])
    .await?;
    Ok(())
}

/// One foreground udhcpc run (5 discovers, 2 s apart); the lease as the script applied it.
async fn run_dhcp(ns: &str, tap: &str, d: &Dhcp) -> anyhow::Result<String> {
    let (program, pre) = d.command.split_first().context("empty udhcpc command")?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(pre)
        .args(["-i", tap, "-n", "-q", "-f", "-t", "5", "-T", "2", "-s"])
        .arg(&d.script)
        // busybox asks for neither by default; the dataplane sends both anyway.
        .args(["-O", "mtu", "-O", "staticroutes"]);
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running udhcpc")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "udhcpc on {tap}: {} ({})",
            stderr.lines().last().unwrap_or("no lease").trim(),
            out.status
        );
    }
    lease_summary(&stdout).map_err(|e| anyhow::anyhow!("udhcpc on {tap}: {e}"))
}

/// The lease line of the event script's output, or what the script could not apply.
pub(super) fn lease_summary(stdout: &str) -> Result<String, String> {
    let errors: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(ERROR_MARK))
        .map(str::trim)
        .collect();
    if !errors.is_empty() {
        return Err(format!("applying the lease: {}", errors.join("; ")));
    }
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(LEASE_MARK))
        .map(|l| l.trim().to_string())
        .ok_or_else(|| "exited 0 but the event script saw no lease".into())
}

/// `ip netns del NS`.
pub(super) async fn delete(ns: &str) -> anyhow::Result<()> {
    ip(&["netns", "del", ns]).await.map(drop)
}

/// [`delete`] for `Drop` and the exit path, without a runtime; a failure is printed.
pub(super) fn delete_blocking(ns: &str) {
    match std::process::Command::new("ip")
        .args(["netns", "del", ns])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "ferrinet-dev: ip netns del {ns}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("ferrinet-dev: ip netns del {ns}: {e}"),
    }
}

/// Runs `ip ARGS`: its stdout, or an error with the command and its stderr.
async fn ip(args: &[&str]) -> anyhow::Result<String> {
    let what = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("{what}: cannot run ip (apt-get install iproute2)"))?;
    if !out.status.success() {
        bail!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_end_matches('.')
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
