//! Network namespaces for tests that move real packets: a [`Netns`] per "VM" or node, a
//! [`Fabric`] (bridged IPv6 underlay) joining nodes, a [`Vm`] that takes over a TAP or veth
//! link and configures it statically or by DHCP, and `ferrinet-vmtool` to make and measure
//! traffic inside one. [`kernel_pair`] is the same topology routed by the kernel alone, the
//! benchmark's baseline.
//!
//! Everything runs as root through `ip` (iproute2). Every namespace is deleted, and every
//! process still in it killed, when its guard drops; namespaces that a killed test process
//! left behind are removed by the next test process that makes one.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::{ChildGuard, WAIT, workspace_bin};

mod baseline;
mod fabric;
mod vm;

pub use baseline::{KernelPair, kernel_pair};
pub use fabric::{Fabric, FabricNode};
pub use vm::{Lease, Vm};

/// Every namespace this kit makes is named `fn{pid}-{n}-{label}`: the pid tells whether the
/// process that made it is still alive.
const PREFIX: &str = "fn";

/// A named network namespace (`ip netns add`), deleted on drop with every process in it
/// killed. `lo` is up and IPv6 duplicate address detection is off, so that addresses are
/// usable as soon as they are added.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes `fn{pid}-{n}-{label}`. Keep `label` short: the name is typed in `ip` commands
    /// and shown in failures.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        static CLEANED: Once = Once::new();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        CLEANED.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{label}", std::process::id());
        output(
            Command::new("ip").args(["netns", "add", &name]),
            &format!("ip netns add {name}"),
        )?;
        // From here on the guard deletes the namespace if the set-up fails.
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.sysctl(&[
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip -n`, `ip netns exec`, `link set ... netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip netns exec NAME args...` to completion; its stdout, or an error with its
    /// stderr when it exits non-zero.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let (program, rest) = args.split_first().context("run: no program given")?;
        output(
            self.command(program).args(rest),
            &format!("[{}] {}", self.name, args.join(" ")),
        )
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `ip -n NAME args...` to completion: its stdout, or an error with its stderr.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        output(
            Command::new("ip").args(["-n", &self.name]).args(args),
            &format!("ip -n {} {}", self.name, args.join(" ")),
        )
    }

    /// Sets sysctls (`key=value`) inside the namespace (the `net.*` ones are per namespace).
    pub fn sysctl(&self, settings: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["sysctl", "-q", "-w"];
        args.extend_from_slice(settings);
        self.run(&args).map(drop)
    }

    /// A veth pair, `a_link` in `a` and `b_link` in `b`, both up.
    pub fn veth_pair(a: &Netns, a_link: &str, b: &Netns, b_link: &str) -> anyhow::Result<()> {
        a.ip(&[
            "link", "add", a_link, "type", "veth", "peer", "name", b_link, "netns", &b.name,
        ])?;
        a.ip(&["link", "set", a_link, "up"])?;
        b.ip(&["link", "set", b_link, "up"])?;
        Ok(())
    }

    /// Moves `link` out of this namespace into `to` (`None`: the test process's own). A TAP
    /// or veth left in a namespace is destroyed with it: move a dataplane's TAP back before
    /// the namespace drops if the dataplane should keep it.
    pub fn move_link(&self, link: &str, to: Option<&Netns>) -> anyhow::Result<()> {
        // A number names the namespace of that pid: ours, for the test process's namespace.
        let own = std::process::id().to_string();
        let target = to.map_or(own.as_str(), |n| n.name.as_str());
        self.ip(&["link", "set", link, "netns", target]).map(drop)
    }

    /// The pids of the processes inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        netns_pids(&self.name)
    }

    /// Runs `ferrinet-vmtool args...` inside the namespace to completion and returns the last
    /// JSON line it printed. Fails when it exits non-zero (its stderr in the message).
    pub fn vmtool(&self, args: &[&str]) -> anyhow::Result<Value> {
        self.vmtool_lines(args)?
            .pop()
            .with_context(|| format!("vmtool {}: printed nothing", args.join(" ")))
    }

    /// Like [`Netns::vmtool`], every JSON line (a `tcp-serve` prints one per connection).
    pub fn vmtool_lines(&self, args: &[&str]) -> anyhow::Result<Vec<Value>> {
        let what = format!("[{}] vmtool {}", self.name, args.join(" "));
        let out = output(self.command(vmtool_bin()).args(args), &what)?;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("{what}: not JSON: {l}")))
            .collect()
    }

    /// Starts `ferrinet-vmtool args...` inside the namespace (killed on drop) and reads its
    /// JSON lines as they come.
    pub fn spawn_vmtool(&self, args: &[&str]) -> anyhow::Result<ToolChild> {
        let what = format!("[{}] vmtool {}", self.name, args.join(" "));
        let mut child = self
            .command(vmtool_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("vmtool stdout")?;
        let stderr = child.stderr.take().context("vmtool stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            use std::io::Read as _;
            let mut s = String::new();
            let mut stderr = stderr;
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Ok(ToolChild {
            child: ChildGuard(child),
            lines,
            stderr: Some(stderr),
            what,
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// A `ferrinet-vmtool` running in a namespace, killed when dropped.
#[derive(Debug)]
pub struct ToolChild {
    /// The process (`ip netns exec` execs the tool, so this is the tool's pid).
    pub child: ChildGuard,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    what: String,
}

impl ToolChild {
    /// The next JSON line, waiting at most [`WAIT`] for it.
    pub fn next_json(&mut self) -> anyhow::Result<Value> {
        let line = match self.lines.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("{}: no output within {WAIT:?}", self.what)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait_exit().ok();
                let stderr = self.take_stderr();
                bail!(
                    "{}: exited ({status:?}) without another line; stderr: {stderr}",
                    self.what
                )
            }
        };
        serde_json::from_str(&line).with_context(|| format!("{}: not JSON: {line}", self.what))
    }

    /// Waits for the `{"listening":ADDR}` line of a tool started with `--announce`.
    pub fn wait_listening(&mut self) -> anyhow::Result<SocketAddr> {
        let v = self.next_json()?;
        let addr = v["listening"]
            .as_str()
            .with_context(|| format!("{}: expected a listening line, got {v}", self.what))?;
        addr.parse()
            .with_context(|| format!("{}: bad listening address {addr}", self.what))
    }

    /// Waits (at most [`WAIT`]) for the tool to exit successfully; every line not read yet.
    pub fn finish(mut self) -> anyhow::Result<Vec<Value>> {
        let status = self.child.wait_exit().with_context(|| self.what.clone())?;
        let stderr = self.take_stderr();
        ensure!(
            status.success(),
            "{}: {status}; stderr: {stderr}",
            self.what
        );
        // `iter`, not `try_iter`: the reader thread may not have passed on the last line yet;
        // it ends (and the channel with it) at the child's end of output.
        self.lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(&l).with_context(|| format!("{}: not JSON: {l}", self.what))
            })
            .collect()
    }

    /// Like [`ToolChild::finish`], the last line only (the result of a one-line command).
    pub fn finish_last(self) -> anyhow::Result<Value> {
        let what = self.what.clone();
        self.finish()?
            .pop()
            .with_context(|| format!("{what}: printed no result"))
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// The `ferrinet-vmtool` binary (`FERRINET_VMTOOL_BIN` overrides).
pub fn vmtool_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_bin(
            "FERRINET_VMTOOL_BIN",
            "ferrinet-integration",
            "ferrinet-vmtool",
            &[
                "Cargo.toml",
                "Cargo.lock",
                "integration/Cargo.toml",
                "integration/src/bin/vmtool",
            ],
        )
    })
}

/// Checks that the tools the kit runs are installed: `ip` (iproute2) and `udhcpc`.
pub fn require_tools() -> anyhow::Result<()> {
    ensure!(
        find_program("ip").is_some(),
        "ip not found: apt-get install iproute2"
    );
    vm::udhcpc_command()?;
    Ok(())
}

/// The first executable `name` on PATH or in the usual system directories (root's PATH may
/// lack the sbin ones).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd` to completion: stdout, or an error naming `what` with the exit status and
/// stderr.
pub(crate) fn output(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn netns_pids(name: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills whatever runs in `name` and deletes it. Errors are only reported: this runs in
/// `Drop`, possibly while a failed test unwinds.
fn delete(name: &str) {
    let pids = netns_pids(name);
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-9")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
    }
    if let Err(e) = output(
        Command::new("ip").args(["netns", "delete", name]),
        &format!("ip netns delete {name}"),
    ) {
        eprintln!("netns cleanup: {e:#}");
    }
    // The namespace (and its devices) goes away once its last process has exited; wait a
    // little for the killed ones, so that the next test does not meet their links.
    for _ in 0..100 {
        if pids.iter().all(|&p| !alive(p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` still runs: a zombie (a killed child its guard has not reaped yet) has
/// left its namespace already.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may itself hold spaces.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Deletes the namespaces of this kit whose test process is gone (killed before its guards
/// could drop).
fn remove_stale() {
    let Ok(list) = output(Command::new("ip").args(["netns", "list"]), "ip netns list") else {
        return;
    };
    for line in list.lines() {
        // Lines look like `NAME (id: 3)` or just `NAME`.
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(pid) = stale_owner(name)
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            delete(name);
        }
    }
}

/// The pid in a kit namespace name `fn{pid}-...`, if `name` is one.
fn stale_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kit_names_have_an_owner() {
        assert_eq!(stale_owner("fn1234-0-vm1"), Some(1234));
        assert_eq!(stale_owner("fn1234-0-a-b"), Some(1234));
        assert_eq!(stale_owner("fnord"), None);
        assert_eq!(stale_owner("blue"), None);
        assert_eq!(stale_owner("fn-1-x"), None);
    }
}
