//! What the node managers share: the namespaces made (VMs, and one per node parking the TAPs
//! of deleted interfaces), where each TAP is, and each node's dataplane to ask whose a TAP is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use ferrinet_dataplane::DataplaneService;

use super::setup;

/// A namespace made by the managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owned {
    /// Node index.
    pub node: usize,
    /// Parks the node's idle TAPs (else a VM).
    pub park: bool,
    /// The TAPs in it.
    pub taps: BTreeSet<String>,
}

/// Where node `me`'s TAP of some name is, as far as taking it goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// Here, in this process's namespace: this node's dataplane has it open and no other
    /// dataplane's same-named TAP is here.
    Mine,
    /// In this node's parking namespace.
    Parked(String),
    /// This node's dataplane has not opened it.
    NotOpen,
    /// Node `.0`'s dataplane has a TAP of that name open that is still here.
    Other(usize),
}

/// `open(i)`: node i's dataplane has the TAP open; `away(i)`: node i's is in a namespace of
/// ours. A name is unique within one namespace, so at most one open TAP is not away.
pub(super) fn owner(
    me: usize,
    nodes: usize,
    open: impl Fn(usize) -> bool,
    away: impl Fn(usize) -> bool,
) -> Owner {
    if !open(me) {
        return Owner::NotOpen;
    }
    match (0..nodes).find(|&i| i != me && open(i) && !away(i)) {
        Some(i) => Owner::Other(i),
        None => Owner::Mine,
    }
}

/// Shared by every manager.
pub(super) struct Shared {
    /// `DIR/vms.list`: the names made, for the next run if this one is killed.
    pub list_file: PathBuf,
    pub dhcp: Option<setup::Dhcp>,
    /// Each node's name and dataplane, by node index.
    pub names: Vec<String>,
    pub dataplanes: Vec<Option<DataplaneService>>,
    taken: Mutex<BTreeMap<String, Owned>>,
    /// Held from deciding whose a TAP is until it has moved.
    pub moving: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn new(
        list_file: PathBuf,
        dhcp: Option<setup::Dhcp>,
        names: Vec<String>,
        dataplanes: Vec<Option<DataplaneService>>,
    ) -> Self {
        Self {
            list_file,
            dhcp,
            names,
            dataplanes,
            taken: Mutex::new(BTreeMap::new()),
            moving: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Owned>> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where node `me`'s TAP `tap` (dataplane port `device`) is. Ports are named alike on
    /// every node (`net_tapN` for `dtapvf_{N-2}`), so `device` names it on the others too.
    pub fn owner(&self, me: usize, device: &str, tap: &str) -> Owner {
        let taken = self.lock();
        let holder = |i: usize| {
            taken
                .iter()
                .find(|(_, o)| o.node == i && o.taps.contains(tap))
                .map(|(ns, o)| (ns.clone(), o.park))
        };
        if let Some((ns, true)) = holder(me) {
            return Owner::Parked(ns);
        }
        let open = |i: usize| {
            self.dataplanes
                .get(i)
                .and_then(|d| d.as_ref()?.packets()?.tap_name(device))
                .is_some_and(|t| t == tap)
        };
        owner(me, self.dataplanes.len(), open, |i| holder(i).is_some())
    }

    /// Asks node `me`'s dataplane to open the TAPs it could not (their name was busy).
    pub fn reopen(&self, me: usize) {
        if let Some(p) = self.dataplanes.get(me).and_then(|d| d.as_ref()?.packets()) {
            p.reconcile();
        }
    }

    /// Takes the first of `candidates` that is neither taken nor in `existing`, before the
    /// namespace is made, so that clean-up knows it from the start.
    pub fn claim(
        &self,
        candidates: &[String],
        existing: &BTreeSet<String>,
        node: usize,
        park: bool,
    ) -> Option<String> {
        let mut taken = self.lock();
        let ns = candidates
            .iter()
            .find(|n| !taken.contains_key(*n) && !existing.contains(*n))?
            .clone();
        let owned = Owned {
            node,
            park,
            taps: BTreeSet::new(),
        };
        taken.insert(ns.clone(), owned);
        self.persist(&taken);
        Some(ns)
    }

    /// Node `node`'s parking namespace, if made.
    pub fn park_of(&self, node: usize) -> Option<String> {
        self.lock()
            .iter()
            .find(|(_, o)| o.node == node && o.park)
            .map(|(ns, _)| ns.clone())
    }

    /// Records that `tap` moved from `from` (`None`: this process's namespace) to `to`.
    pub fn moved(&self, tap: &str, from: Option<&str>, to: &str) {
        let mut taken = self.lock();
        if let Some(o) = from.and_then(|f| taken.get_mut(f)) {
            o.taps.remove(tap);
        }
        if let Some(o) = taken.get_mut(to) {
            o.taps.insert(tap.to_string());
        }
    }

    /// Forgets `ns` (deleted).
    pub fn release(&self, ns: &str) {
        let mut taken = self.lock();
        taken.remove(ns);
        self.persist(&taken);
    }

    fn persist(&self, taken: &BTreeMap<String, Owned>) {
        let text: String = taken.keys().map(|n| format!("{n}\n")).collect();
        if let Err(e) = std::fs::write(&self.list_file, text) {
            tracing::warn!(file = %self.list_file.display(), error = %e, "cannot record the VM namespaces");
        }
    }

    /// Deletes every namespace. The TAPs in them die too: giving them back would clash
    /// (every node has a `dtapvf_0`), and their dataplanes are stopping.
    pub fn remove_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        for ns in all.keys() {
            setup::delete_blocking(ns);
        }
        if !all.is_empty() {
            println!(
                "deleted namespaces {}",
                Vec::from_iter(all.keys().cloned()).join(" ")
            );
            let _ = std::fs::remove_file(&self.list_file);
        }
    }
}
