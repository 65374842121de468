//! Follows a client library instance's subscriptions and keeps the resulting route view, so that
//! tests wait for a state ("route r is present") instead of an exact sequence of events.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferrinet_region::route::{Action, Route};
use ferrinet_route_client::client::{
    self, ClientConfig, ClientHandle, ServerConfig, ServerState, Status, VniEvent,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::WAIT;

/// A started client library instance and the view its subscriptions describe.
#[derive(Debug)]
pub struct Watched {
    /// The client's handle.
    pub handle: ClientHandle,
    tx: mpsc::UnboundedSender<(u32, VniEvent)>,
    events: mpsc::UnboundedReceiver<(u32, VniEvent)>,
    status: watch::Receiver<Status>,
    /// One forwarding task per subscribed VNI; aborting it drops the subscription.
    subs: HashMap<u32, JoinHandle<()>>,
    /// Routes currently present according to the events.
    pub view: BTreeSet<Route>,
    /// Every route event so far, in order (a snapshot counts as the changes it implies).
    pub log: Vec<(Action, Route)>,
    /// VNIs whose initial set was reported complete.
    pub complete: BTreeSet<u32>,
    /// Established sessions per server index.
    pub up: Vec<bool>,
}

impl Watched {
    /// Starts a client for `servers` with test-friendly timings (fast reconnects).
    pub fn start(servers: Vec<ServerConfig>) -> anyhow::Result<Self> {
        let n = servers.len();
        let mut cfg = ClientConfig::new(servers);
        cfg.keepalive = Duration::from_secs(5);
        cfg.backoff_min = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_secs(1);
        cfg.subscription_buffer = 1 << 16;
        let handle = client::start(cfg)?;
        let (tx, events) = mpsc::unbounded_channel();
        Ok(Self {
            status: handle.watch_status(),
            handle,
            tx,
            events,
            subs: HashMap::new(),
            view: BTreeSet::new(),
            log: Vec::new(),
            complete: BTreeSet::new(),
            up: vec![false; n],
        })
    }

    /// Subscribes to `vni` (again: a second subscription of the same VNI in the client).
    pub fn subscribe(&mut self, vni: u32) -> anyhow::Result<()> {
        let mut sub = self.handle.subscribe(vni)?;
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            while let Some(e) = sub.next().await {
                if tx.send((vni, e)).is_err() {
                    return;
                }
            }
        });
        if let Some(old) = self.subs.insert(vni, task) {
            old.abort();
        }
        Ok(())
    }

    /// Ends the subscription of `vni`; its routes leave the view.
    pub fn unsubscribe(&mut self, vni: u32) {
        if let Some(t) = self.subs.remove(&vni) {
            t.abort();
        }
        self.view.retain(|r| r.vni != vni);
        self.complete.remove(&vni);
    }

    fn record(&mut self, action: Action, route: Route) -> anyhow::Result<()> {
        self.log.push((action, route));
        let changed = match action {
            Action::Add => self.view.insert(route),
            Action::Remove => self.view.remove(&route),
        };
        if !changed {
            bail!("inconsistent event {action:?} {route} for the view");
        }
        Ok(())
    }

    fn apply(&mut self, vni: u32, e: VniEvent) -> anyhow::Result<()> {
        // Events of a VNI unsubscribed meanwhile may still be queued.
        if !self.subs.contains_key(&vni) {
            return Ok(());
        }
        match e {
            VniEvent::Added(r) => self.record(Action::Add, r),
            VniEvent::Removed(r) => self.record(Action::Remove, r),
            VniEvent::Complete => {
                if !self.complete.insert(vni) {
                    bail!("vni {vni} reported complete twice");
                }
                Ok(())
            }
            // Every server gone: complete again once one is back.
            VniEvent::Incomplete => {
                self.complete.remove(&vni);
                Ok(())
            }
            VniEvent::Snapshot { routes, complete } => {
                let new: BTreeSet<Route> = routes.into_iter().collect();
                let old: Vec<Route> = self.view.iter().filter(|r| r.vni == vni).copied().collect();
                for r in old.into_iter().filter(|r| !new.contains(r)) {
                    self.record(Action::Remove, r)?;
                }
                for r in new {
                    if !self.view.contains(&r) {
                        self.record(Action::Add, r)?;
                    }
                }
                if complete {
                    self.complete.insert(vni);
                }
                Ok(())
            }
        }
    }

    fn read_status(&mut self) {
        let s = self.status.borrow_and_update();
        for (u, srv) in self.up.iter_mut().zip(&s.servers) {
            *u = srv.state == ServerState::Established;
        }
    }

    /// Processes events until `cond` holds (checked before each wait), or fails after [`WAIT`].
    pub async fn until(
        &mut self,
        what: &str,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.read_status();
            if cond(self) {
                return Ok(());
            }
            let timeout = || {
                format!(
                    "timed out waiting for {what} (view has {} routes, sessions up {:?})",
                    self.view.len(),
                    self.up
                )
            };
            tokio::select! {
                e = self.events.recv() => {
                    let (vni, e) = e.context("the client's subscriptions ended")?;
                    self.apply(vni, e)?;
                }
                c = self.status.changed() => c.context("the client stopped")?,
                () = tokio::time::sleep_until(deadline) => bail!(timeout()),
            }
        }
    }

    /// Waits until `servers` servers provide `route` (processing events meanwhile).
    pub async fn provided_by(&mut self, route: Route, servers: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.handle.providers(route).await?.len() >= servers {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{route} not provided by {servers} servers within {WAIT:?}");
            }
            self.settle(Duration::from_millis(50)).await?;
        }
    }

    /// Waits until every server's session is established.
    pub async fn all_up(&mut self) -> anyhow::Result<()> {
        self.until("all sessions established", |w| w.up.iter().all(|u| *u))
            .await
    }

    /// Takes every event that arrives within `quiet` of the previous one (to check that nothing
    /// unexpected happens).
    pub async fn settle(&mut self, quiet: Duration) -> anyhow::Result<()> {
        while let Ok(Some((vni, e))) = tokio::time::timeout(quiet, self.events.recv()).await {
            self.apply(vni, e)?;
        }
        self.read_status();
        Ok(())
    }

    /// Shuts the client down.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}
