//! The VM manager of `--packets`: every interface that is Ready with a TAP gets a network
//! namespace that plays its VM. The TAP is moved in and configured by DHCP (udhcpc, served by
//! the dataplane) or statically, so that `ip netns exec NAME ping ...` sends real packets
//! through the dataplanes.
//!
//! ```text
//!  run() --Vms::start--> one manager task per node
//!                          every 500 ms: ApiMsg::List(interfaces) --> the node's ApiActor
//!                          new Ready interface: ip netns add NAME, TAP in, udhcpc or static
//!                          interface gone or changed: TAP to NODE-idle, ip netns del NAME
//!                          --claim / moved / release--> Shared (namespaces made, where each
//!                                                       TAP is; names also in DIR/vms.list)
//!  run() --Vms::shutdown, or drop--> stops the tasks, deletes every namespace in Shared
//! ```
//!
//! All dataplanes run in this process's namespace and name their TAPs alike (`dtapvf_0` on
//! every node), so a TAP name is unique only while at most one of them is here. A TAP that
//! arrives here is taken only when its own dataplane has it open and no other dataplane's
//! same-named TAP is still here; a dataplane that could not open its TAP because the name was
//! busy is asked again (`Packets::reconcile`) once the other one has moved. A VF port's TAP
//! outlives its interfaces, so the TAP of a deleted interface never comes back here: it waits
//! in the node's parking namespace `NODE-idle` for the port's next interface.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferrinet_node::api::ApiMsg;
use ferrinet_node::daemon::Node;
use ferrinet_proto::node::v1 as pb;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

mod setup;
mod shared;
#[cfg(test)]
mod tests;

use shared::{Owner, Shared};

/// How often each node's interfaces are listed.
const POLL: Duration = Duration::from_millis(500);
/// How long a VM whose set-up failed waits before the next try.
const RETRY: Duration = Duration::from_secs(5);

/// The running managers; their namespaces are deleted on [`Vms::shutdown`] or on drop.
pub struct Vms {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Vms {
    /// Starts one manager per node. Removes the namespaces an earlier run listed in
    /// `DIR/vms.list` and did not delete (it was killed), and writes `DIR/udhcpc.script`.
    pub fn start(dir: &Path, nodes: &[(String, Node)]) -> anyhow::Result<Self> {
        let list_file = dir.join("vms.list");
        remove_stale(&list_file);
        let dhcp = setup::find_dhcp(dir)?;
        if dhcp.is_none() {
            println!("udhcpc not found (apt-get install udhcpc): VMs configured statically");
        }
        let shared = Arc::new(Shared::new(
            list_file,
            dhcp,
            nodes.iter().map(|(n, _)| n.clone()).collect(),
            nodes
                .iter()
                .map(|(_, n)| n.embedded.as_ref().map(|e| e.service.clone()))
                .collect(),
        ));
        let (stop, stopped) = watch::channel(false);
        let tasks = nodes
            .iter()
            .enumerate()
            .map(|(index, (name, node))| {
                let m = Manager {
                    shared: shared.clone(),
                    index,
                    node: name.clone(),
                    api: node.api.clone(),
                    vms: BTreeMap::new(),
                    waiting: BTreeMap::new(),
                    retry: BTreeMap::new(),
                };
                tokio::spawn(m.run(stopped.clone()))
            })
            .collect();
        Ok(Self {
            shared,
            stop,
            tasks,
        })
    }

    /// Stops the managers, then deletes every namespace.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.remove_all()).await;
    }
}

impl Drop for Vms {
    /// The error path. A manager aborted in the middle of `ip netns add` may still finish it
    /// after this; its name is in `DIR/vms.list`, for the next run to remove.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.remove_all();
    }
}

/// Removes the namespaces listed in `file` (left by a killed run) that still exist.
fn remove_stale(file: &Path) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let existing = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| setup::parse_netns_list(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default();
    for ns in text
        .lines()
        .map(str::trim)
        .filter(|n| existing.contains(*n))
    {
        println!("deleting namespace {ns}, left behind by an earlier ferrinet-dev");
        setup::delete_blocking(ns);
    }
    let _ = std::fs::remove_file(file);
}

/// What a VM was made for: a change means a new VM.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    tap: String,
    created: i64,
    ips: Vec<String>,
}

/// What the VM of an interface depends on. An interface that is briefly not Ready (being
/// re-programmed) keeps its VM; one whose TAP, addresses or creation changed gets a new one.
fn key(ni: &pb::NetworkInterface) -> Key {
    Key {
        tap: ni
            .status
            .as_ref()
            .map(|s| s.tap_device.clone())
            .unwrap_or_default(),
        created: ni.metadata.as_ref().map_or(0, |m| m.created_unix_ms),
        ips: ni.spec.as_ref().map(|s| s.ips.clone()).unwrap_or_default(),
    }
}

/// Whether an interface without a VM should get one: Ready, with a TAP.
fn wants_vm(ni: &pb::NetworkInterface) -> bool {
    ni.status
        .as_ref()
        .is_some_and(|s| s.phase == pb::Phase::Ready as i32 && !s.tap_device.is_empty())
}

struct Vm {
    ns: String,
    key: Key,
}

/// One node's VMs.
struct Manager {
    shared: Arc<Shared>,
    index: usize,
    node: String,
    api: ActorRef<ApiMsg>,
    /// By interface name.
    vms: BTreeMap<String, Vm>,
    /// The last "waiting" line printed per interface, so that each is printed once.
    waiting: BTreeMap<String, String>,
    retry: BTreeMap<String, Instant>,
}

impl Manager {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(POLL);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = every.tick() => {}
            }
            // A set-up in progress is cut short too: its namespace is in Shared already.
            tokio::select! {
                _ = stop.changed() => return,
                () = self.tick() => {}
            }
        }
    }

    async fn tick(&mut self) {
        let listed = match self
            .api
            .call(
                |p| ApiMsg::List(pb::Kind::NetworkInterface, p),
                Some(POLL * 4),
            )
            .await
        {
            Ok(CallResult::Success((objects, _))) => objects,
            _ => return,
        };
        let current: BTreeMap<String, pb::NetworkInterface> = listed
            .into_iter()
            .filter_map(|o| match o.object {
                Some(pb::object::Object::NetworkInterface(ni)) => {
                    Some((ni.metadata.as_ref()?.name.clone(), ni))
                }
                _ => None,
            })
            .collect();
        let stale: Vec<String> = self
            .vms
            .iter()
            .filter(|(name, vm)| current.get(*name).map(key).as_ref() != Some(&vm.key))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(vm) = self.vms.remove(&name) {
                self.remove(&name, vm).await;
            }
        }
        self.waiting.retain(|name, _| current.contains_key(name));
        self.retry.retain(|name, _| current.contains_key(name));
        for (name, ni) in &current {
            let later = self.retry.get(name).is_some_and(|t| Instant::now() < *t);
            if !wants_vm(ni) || self.vms.contains_key(name) || later {
                continue;
            }
            let k = key(ni);
            match self.make(name, ni, &k).await {
                Ok(Some(ns)) => {
                    self.waiting.remove(name);
                    self.vms.insert(name.clone(), Vm { ns, key: k });
                }
                Ok(None) => {}
                Err(e) => {
                    let secs = RETRY.as_secs();
                    println!("VM for {} {name}: {e:#} (again in {secs}s)", self.node);
                    self.retry.insert(name.clone(), Instant::now() + RETRY);
                }
            }
        }
    }

    /// Prints `why` once per interface and reason.
    fn wait(&mut self, name: &str, why: String) {
        if self.waiting.get(name) != Some(&why) {
            println!("VM for {} {name}: {why}", self.node);
            self.waiting.insert(name.to_string(), why);
        }
    }

    /// Makes the VM of interface `name`; `Ok(None)` while its TAP cannot be taken yet.
    async fn make(
        &mut self,
        name: &str,
        ni: &pb::NetworkInterface,
        k: &Key,
    ) -> anyhow::Result<Option<String>> {
        let device = ni
            .status
            .as_ref()
            .map(|s| s.device_name.clone())
            .unwrap_or_default();
        let tap = k.tap.as_str();
        let shared = self.shared.clone();
        let moving = shared.moving.lock().await;
        let mut who = shared.owner(self.index, &device, tap);
        if who == Owner::NotOpen {
            shared.reopen(self.index);
            who = shared.owner(self.index, &device, tap);
        }
        let from = match who {
            Owner::Mine => None,
            Owner::Parked(park) => Some(park),
            Owner::NotOpen => {
                self.wait(name, format!("waiting for the dataplane to open {tap}"));
                return Ok(None);
            }
            Owner::Other(i) => {
                let other = shared.names.get(i).map_or("another node", String::as_str);
                self.wait(name, format!("waiting: {other}'s {tap} is still here"));
                return Ok(None);
            }
        };
        let existing = setup::netns_list().await?;
        let candidates = setup::candidates(&self.node, name);
        let ns = shared
            .claim(&candidates, &existing, self.index, false)
            .context("no free namespace name")?;
        let adopted = async {
            setup::add_netns(&ns).await?;
            setup::move_tap(tap, from.as_deref(), &ns).await
        };
        if let Err(e) = adopted.await {
            let _ = setup::delete(&ns).await;
            shared.release(&ns);
            return Err(e.context(format!("namespace {ns}")));
        }
        shared.moved(tap, from.as_deref(), &ns);
        drop(moving);

        let spec = ni.spec.clone().unwrap_or_default();
        let v4 = spec.ips.iter().find_map(|a| a.parse::<Ipv4Addr>().ok());
        let v6 = spec.ips.iter().find_map(|a| a.parse::<Ipv6Addr>().ok());
        let configured = async {
            setup::bring_up(&ns, tap).await?;
            setup::configure(&ns, tap, v4, v6, shared.dhcp.as_ref()).await
        };
        match configured.await {
            Ok(done) => {
                let node = &self.node;
                println!("VM {ns}: ip netns exec {ns} ping <ip>   ({node} {name}, {tap}: {done})");
                Ok(Some(ns))
            }
            Err(e) => {
                let vm = Vm {
                    ns: ns.clone(),
                    key: k.clone(),
                };
                self.remove(name, vm).await;
                Err(e.context(format!("configuring {tap} in {ns}")))
            }
        }
    }

    /// Parks the VM's TAP (its dataplane keeps it for the port's next interface) and deletes
    /// the VM's namespace.
    async fn remove(&self, name: &str, vm: Vm) {
        let tap = vm.key.tap.as_str();
        match self.park().await {
            Ok(park) => match setup::move_tap(tap, Some(&vm.ns), &park).await {
                Ok(()) => self.shared.moved(tap, Some(&vm.ns), &park),
                Err(e) => println!("VM {}: {e:#}", vm.ns),
            },
            Err(e) => println!("VM {}: {e:#}", vm.ns),
        }
        match setup::delete(&vm.ns).await {
            Ok(()) => println!(
                "VM {}: namespace deleted ({} {name} gone or changed)",
                vm.ns, self.node
            ),
            Err(e) => println!("VM {}: {e:#}", vm.ns),
        }
        self.shared.release(&vm.ns);
    }

    /// This node's parking namespace, made on first use.
    async fn park(&self) -> anyhow::Result<String> {
        if let Some(p) = self.shared.park_of(self.index) {
            return Ok(p);
        }
        let existing = setup::netns_list().await?;
        let candidates = setup::park_candidates(&self.node);
        let park = self
            .shared
            .claim(&candidates, &existing, self.index, true)
            .context("no free name for the parking namespace")?;
        if let Err(e) = setup::add_netns(&park).await {
            self.shared.release(&park);
            return Err(e);
        }
        println!(
            "{}: TAPs of deleted interfaces wait in namespace {park} for their port's next interface",
            self.node
        );
        Ok(park)
    }
}
