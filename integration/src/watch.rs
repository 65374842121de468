//! Follows a client library's event stream and keeps the resulting route view, so that tests wait
//! for a state ("route r is present") instead of an exact sequence of events.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ferrinet_region::route::{Action, Route};
use ferrinet_route_client::client::{self, ClientConfig, ClientEvent, ClientHandle, ServerConfig};
use tokio::sync::mpsc;

use crate::WAIT;

/// A started client library instance and the view its events describe.
#[derive(Debug)]
pub struct Watched {
    /// The client's handle.
    pub handle: ClientHandle,
    events: mpsc::Receiver<ClientEvent>,
    /// Routes currently present according to the events.
    pub view: BTreeSet<Route>,
    /// Every route event so far, in order.
    pub log: Vec<(Action, Route)>,
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
        cfg.event_buffer = 1 << 16;
        let (handle, events) = client::start(cfg)?;
        Ok(Self {
            handle,
            events,
            view: BTreeSet::new(),
            log: Vec::new(),
            up: vec![false; n],
        })
    }

    fn apply(&mut self, e: ClientEvent) -> anyhow::Result<()> {
        match e {
            ClientEvent::Route(e) => {
                self.log.push((e.action, e.route));
                let changed = match e.action {
                    Action::Add => self.view.insert(e.route),
                    Action::Remove => self.view.remove(&e.route),
                };
                if !changed {
                    bail!("inconsistent event {:?} {} for the view", e.action, e.route);
                }
            }
            ClientEvent::ServerUp { server, .. } => {
                if let Some(u) = self.up.get_mut(server) {
                    *u = true;
                }
            }
            ClientEvent::ServerDown { server, .. } => {
                if let Some(u) = self.up.get_mut(server) {
                    *u = false;
                }
            }
        }
        Ok(())
    }

    /// Processes events until `cond` holds (checked before each wait), or fails after [`WAIT`].
    pub async fn until(
        &mut self,
        what: &str,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if cond(self) {
                return Ok(());
            }
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .with_context(|| {
                    format!(
                        "timed out waiting for {what} (view has {} routes, sessions up {:?})",
                        self.view.len(),
                        self.up
                    )
                })?
                .context("the client's event stream ended")?;
            self.apply(e)?;
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
        while let Ok(Some(e)) = tokio::time::timeout(quiet, self.events.recv()).await {
            self.apply(e)?;
        }
        Ok(())
    }

    /// Shuts the client down.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}
