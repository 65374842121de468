//! The RegionSync actor: owns the placed set, the session and what was reported; its I/O runs in
//! the tasks of [`super::session`] and the local watch task here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrinet_proto::api::v1 as api;
use ferrinet_proto::node::v1 as pb;
use ferrinet_route_client::client::backoff::Backoff;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::apply::{self, Key, Step};
use super::session::{self, Client, Connector};
use super::{LinkState, RegionArgs, RegionError, RegionMsg, report};
use crate::api::{ApiError, ApiMsg};
use crate::reconcile::digest;

/// Bound of one call to the ApiActor (a change is answered once committed).
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Most objects in one ReportStatus; the rest go with the next flush.
const MAX_BATCH: usize = 500;
/// Pause before watching the node's objects again after that watch ended.
const LOCAL_REWATCH: Duration = Duration::from_millis(100);

/// Start arguments of the actor.
pub struct Start {
    args: RegionArgs,
    connector: Connector,
    state: watch::Sender<LinkState>,
}

impl Start {
    pub(super) fn new(
        args: RegionArgs,
        connector: Connector,
        state: watch::Sender<LinkState>,
    ) -> Self {
        Self {
            args,
            connector,
            state,
        }
    }
}

/// A placed object the node refused.
struct Refusal {
    message: String,
    since_ms: i64,
    /// The placed version refused for good (invalid): not tried again until it changes.
    held: Option<pb::Object>,
}

/// The actor's state.
pub struct RegionState {
    args: RegionArgs,
    connector: Connector,
    link: LinkState,
    state: watch::Sender<LinkState>,
    /// Number of the current session; messages of older ones are dropped.
    session: u64,
    session_tasks: Vec<JoinHandle<()>>,
    watch_task: Option<JoinHandle<()>>,
    /// Set while the session is registered.
    client: Option<Client>,
    reconnect: Backoff,
    reconnect_in: Duration,
    /// Desired node objects (see [`apply::desired`]).
    placed: BTreeMap<Key, pb::Object>,
    /// The region's snapshot is complete: managed objects it lacks are deleted.
    synced: bool,
    /// The last revision applied (meaningful once `synced`).
    revision: u64,
    apply_queued: bool,
    retry: Backoff,
    retry_token: u64,
    /// The last plan left something for later.
    waiting: bool,
    refused: BTreeMap<Key, Refusal>,
    /// The node's managed objects, from its watch.
    local: BTreeMap<Key, pb::Object>,
    local_rev: u64,
    /// Digest of what the region got last, per object.
    reported: HashMap<Key, u64>,
    dirty: BTreeSet<Key>,
    report_task: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The RegionSync actor.
#[derive(Debug)]
pub struct RegionSync;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Watches the node's objects from `from` (0: all of them first) and forwards every change.
async fn watch_local(api: ActorRef<ApiMsg>, from: u64, me: ActorRef<RegionMsg>) {
    let mut from = from;
    let mut rx = loop {
        match api
            .call(
                |p| ApiMsg::Watch(pb::Kind::Unspecified, from, p),
                Some(API_TIMEOUT),
            )
            .await
        {
            Ok(CallResult::Success(Ok(rx))) => break rx,
            Ok(CallResult::Success(Err(e))) if from > 0 => {
                tracing::debug!(error = %crate::error_chain(&e), "local watch: starting from the node's snapshot");
                if me.send_message(RegionMsg::LocalReset).is_err() {
                    return;
                }
                from = 0;
            }
            Ok(_) => {
                let _ = me.send_message(RegionMsg::LocalEnded);
                return;
            }
            // The ApiActor is gone: the node is stopping.
            Err(_) => return,
        }
    };
    while let Some(ev) = rx.recv().await {
        if me.send_message(RegionMsg::Local(ev)).is_err() {
            return;
        }
    }
    let _ = me.send_message(RegionMsg::LocalEnded);
}

impl Actor for RegionSync {
    type Msg = RegionMsg;
    type State = RegionState;
    type Arguments = Start;

    async fn pre_start(
        &self,
        myself: ActorRef<RegionMsg>,
        start: Start,
    ) -> Result<RegionState, ActorProcessingErr> {
        let Start {
            args,
            connector,
            state,
        } = start;
        let (min, max) = args.backoff;
        let mut synced = args.node_synced.clone();
        let me = myself.clone();
        let ready = tokio::spawn(async move {
            if synced.wait_for(|v| *v).await.is_ok() {
                let _ = me.send_message(RegionMsg::NodeReady);
            }
        });
        let local = tokio::spawn(watch_local(args.api.clone(), 0, myself.clone()));
        let flush = myself.send_interval(args.config.status_interval, || RegionMsg::Flush);
        Ok(RegionState {
            args,
            connector,
            link: LinkState::Idle,
            state,
            session: 0,
            session_tasks: Vec::new(),
            watch_task: None,
            client: None,
            reconnect: Backoff::new(min, max),
            reconnect_in: Duration::ZERO,
            placed: BTreeMap::new(),
            synced: false,
            revision: 0,
            apply_queued: false,
            retry: Backoff::new(min, max),
            retry_token: 0,
            waiting: false,
            refused: BTreeMap::new(),
            local: BTreeMap::new(),
            local_rev: 0,
            reported: HashMap::new(),
            dirty: BTreeSet::new(),
            report_task: None,
            tasks: vec![ready, local, flush],
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegionMsg>,
        msg: RegionMsg,
        st: &mut RegionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegionMsg::NodeReady => st.connect(&myself),
            RegionMsg::Connect(s) if s == st.session => st.connect(&myself),
            RegionMsg::Connected(s) if s == st.session => st.set_link(LinkState::Connected),
            RegionMsg::Registered(s, client, lease) if s == st.session => {
                st.registered(&myself, client, lease)
            }
            RegionMsg::HeartbeatOk(s) if s == st.session => st.reconnect.reset(),
            RegionMsg::Placed(s, ev) if s == st.session => st.placed_event(&myself, ev),
            RegionMsg::Lost(s, e) if s == st.session => st.lost(&myself, e),
            RegionMsg::Apply => {
                st.apply_queued = false;
                st.apply(&myself).await;
            }
            RegionMsg::Retry(token) if token == st.retry_token => st.apply(&myself).await,
            RegionMsg::Local(ev) => st.local_event(&myself, ev),
            RegionMsg::LocalReset => {
                // The snapshot that follows brings back what still exists.
                st.local.clear();
                st.local_rev = 0;
            }
            RegionMsg::LocalEnded => {
                let (api, from, me) = (st.args.api.clone(), st.local_rev, myself.clone());
                st.tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(LOCAL_REWATCH).await;
                    watch_local(api, from, me).await;
                }));
                st.tasks.retain(|t| !t.is_finished());
            }
            RegionMsg::Flush => st.flush(&myself),
            RegionMsg::Reported(sent, result) => {
                st.report_task = None;
                match result {
                    Ok(()) => st.reported.extend(sent),
                    Err(e) => {
                        tracing::info!(error = %crate::error_chain(&e), objects = sent.len(), "region API: status report failed; sent again later");
                        st.dirty.extend(sent.into_iter().map(|(k, _)| k));
                    }
                }
            }
            // A message of a session given up, or a superseded timer.
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RegionMsg>,
        st: &mut RegionState,
    ) -> Result<(), ActorProcessingErr> {
        st.end_session();
        let report = st.report_task.take();
        for t in st.tasks.drain(..).chain(report) {
            t.abort();
        }
        Ok(())
    }
}

impl RegionState {
    /// The one place that logs where the sync stands.
    fn set_link(&mut self, new: LinkState) {
        if self.link == new {
            return;
        }
        let address = &self.args.config.address;
        match &new {
            LinkState::Idle => {}
            LinkState::Connecting => tracing::debug!(%address, "region API: connecting"),
            LinkState::Connected => tracing::info!(%address, "region API: connected"),
            LinkState::Registered => {
                tracing::info!(%address, node = %self.args.node_name, "region API: registered")
            }
            LinkState::Synced => tracing::info!(
                %address,
                revision = self.revision,
                placed = self.placed.len(),
                "region API: synced at revision {}",
                self.revision
            ),
            LinkState::Lost(error) => {
                tracing::warn!(%address, %error, retry_in = ?self.reconnect_in, "region API: session lost")
            }
        }
        self.link = new.clone();
        let _ = self.state.send(new);
    }

    fn end_session(&mut self) {
        for t in self.session_tasks.drain(..).chain(self.watch_task.take()) {
            t.abort();
        }
        self.client = None;
    }

    fn connect(&mut self, myself: &ActorRef<RegionMsg>) {
        self.end_session();
        self.session += 1;
        self.set_link(LinkState::Connecting);
        let cfg = &self.args.config;
        let request = api::RegisterRequest {
            name: self.args.node_name.clone(),
            underlay_prefix: cfg.underlay_prefix.to_string(),
            vf_capacity: self.args.vf_capacity,
            labels: cfg.labels.clone().into_iter().collect(),
        };
        self.session_tasks.push(tokio::spawn(session::open(
            self.connector.clone(),
            request,
            myself.clone(),
            self.session,
        )));
    }

    fn registered(&mut self, myself: &ActorRef<RegionMsg>, client: Client, lease: Duration) {
        self.client = Some(client.clone());
        self.set_link(LinkState::Registered);
        let mut interval = self.args.config.heartbeat;
        if !lease.is_zero() && interval > lease / 3 {
            tracing::warn!(lease = ?lease, heartbeat = ?interval, "region API: the lease is short for region_api.heartbeat_ms; renewing every third of it");
            interval = lease / 3;
        }
        self.session_tasks.push(tokio::spawn(session::heartbeat(
            client,
            self.args.node_name.clone(),
            interval,
            myself.clone(),
            self.session,
        )));
        self.start_watch(myself);
        // A new session gets every status once.
        self.reported.clear();
        self.dirty.extend(self.local.keys().cloned());
        self.dirty.extend(self.refused.keys().cloned());
    }

    /// Watches from the revision after the last one applied, or from 0 (a new snapshot)
    /// before the first SYNCED.
    fn start_watch(&mut self, myself: &ActorRef<RegionMsg>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let from = if self.synced {
            self.revision + 1
        } else {
            self.placed.clear();
            0
        };
        if let Some(t) = self.watch_task.take() {
            t.abort();
        }
        self.watch_task = Some(tokio::spawn(session::watch(
            client,
            self.args.node_name.clone(),
            from,
            myself.clone(),
            self.session,
        )));
        if from > 0 {
            // The placed set is complete as of the revision the watch resumes after.
            self.set_link(LinkState::Synced);
        }
    }

    fn lost(&mut self, myself: &ActorRef<RegionMsg>, e: RegionError) {
        let watch_out_of_range = matches!(&e, RegionError::Rpc { rpc: "WatchPlaced", source }
            if source.code() == tonic::Code::OutOfRange);
        // Only a resumed watch can be out of range; from 0 it would be the region's fault, and
        // the reconnect back-off keeps that from spinning.
        if watch_out_of_range && self.synced && self.client.is_some() {
            tracing::info!(
                revision = self.revision,
                "region API: that revision is compacted; watching from a new snapshot"
            );
            self.synced = false;
            self.revision = 0;
            self.start_watch(myself);
            return;
        }
        self.end_session();
        self.reconnect_in = self.reconnect.next_delay();
        self.set_link(LinkState::Lost(crate::error_chain(&e)));
        let session = self.session;
        myself.send_after(self.reconnect_in, move || RegionMsg::Connect(session));
    }

    fn queue_apply(&mut self, myself: &ActorRef<RegionMsg>) {
        if !self.apply_queued {
            self.apply_queued = true;
            let _ = myself.send_message(RegionMsg::Apply);
        }
    }

    fn placed_event(&mut self, myself: &ActorRef<RegionMsg>, ev: api::PlacedEvent) {
        self.reconnect.reset();
        let ty = api::EventType::try_from(ev.r#type).unwrap_or(api::EventType::Unspecified);
        match ty {
            api::EventType::Added | api::EventType::Modified => {
                match ev.object.as_ref().and_then(apply::desired) {
                    Some((k, o)) => {
                        if let Some(r) = self.refused.get_mut(&k)
                            && r.held.as_ref() != Some(&o)
                        {
                            r.held = None;
                        }
                        self.placed.insert(k, o);
                    }
                    None => tracing::warn!(
                        revision = ev.revision,
                        "region API: placed object without kind or name: ignored"
                    ),
                }
            }
            api::EventType::Deleted => {
                if let Some(k) = ev.object.as_ref().and_then(Key::of) {
                    self.placed.remove(&k);
                }
            }
            api::EventType::Synced => self.synced = true,
            api::EventType::Unspecified => tracing::warn!(
                r#type = ev.r#type,
                revision = ev.revision,
                "region API: event of unknown type: ignored"
            ),
        }
        if self.synced {
            self.revision = self.revision.max(ev.revision);
        }
        if ty == api::EventType::Synced {
            self.set_link(LinkState::Synced);
        }
        self.queue_apply(myself);
    }

    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> ApiMsg,
    ) -> Option<T> {
        match self.args.api.call(msg, Some(API_TIMEOUT)).await {
            Ok(CallResult::Success(v)) => Some(v),
            _ => None,
        }
    }

    fn refuse(&mut self, key: &Key, message: String, held: Option<pb::Object>) {
        match self.refused.get_mut(key) {
            Some(r) if r.message == message => r.held = held,
            _ => {
                tracing::warn!(object = %key, error = %message, "region API: the node refused a placed object");
                self.refused.insert(
                    key.clone(),
                    Refusal {
                        message,
                        since_ms: now_ms(),
                        held,
                    },
                );
                self.dirty.insert(key.clone());
            }
        }
    }

    /// Plans and makes the difference between the placed set and the node's objects.
    async fn apply(&mut self, myself: &ActorRef<RegionMsg>) {
        let Some((objects, _)) = self.ask(|p| ApiMsg::List(pb::Kind::Unspecified, p)).await else {
            self.schedule_retry(myself);
            return;
        };
        let stale: Vec<Key> = self
            .refused
            .keys()
            .filter(|k| !self.placed.contains_key(*k))
            .cloned()
            .collect();
        for k in stale {
            self.refused.remove(&k);
            self.dirty.insert(k);
        }
        let hold: BTreeSet<Key> = self
            .refused
            .iter()
            .filter(|(k, r)| r.held.is_some() && r.held.as_ref() == self.placed.get(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let plan = apply::plan(&self.placed, &objects, self.synced, &hold);
        let mut again = !plan.waiting.is_empty();
        for k in &plan.foreign {
            self.refuse(
                k,
                format!("{k} exists on the node and is not managed by the region: left alone"),
                None,
            );
        }
        for step in plan.steps {
            let Some(key) = step.key() else { continue };
            let delete = matches!(step, Step::Delete(..));
            let result = match step {
                Step::Create(o) => self.ask(|p| ApiMsg::Create(o, p)).await,
                Step::Update(o) => self.ask(|p| ApiMsg::Update(o, p)).await,
                Step::Delete(k, v) => self.ask(|p| ApiMsg::Delete(k.kind, k.name, v, p)).await,
            };
            match result {
                None => {
                    again = true;
                    break;
                }
                Some(Ok(_)) | Some(Err(ApiError::NotFound { .. })) if delete => {
                    tracing::debug!(object = %key, "region API: deleted");
                }
                Some(Ok(_)) => {
                    tracing::debug!(object = %key, "region API: applied");
                    if self.refused.remove(&key).is_some() {
                        self.dirty.insert(key);
                    }
                }
                Some(Err(e)) if delete => {
                    tracing::info!(object = %key, error = %crate::error_chain(&e), "region API: delete refused; retried");
                    again = true;
                }
                Some(Err(e)) => {
                    let invalid = matches!(e, ApiError::Invalid(_) | ApiError::BadRequest(_));
                    let held = invalid.then(|| self.placed.get(&key).cloned()).flatten();
                    again |= !invalid;
                    self.refuse(&key, crate::error_chain(&e), held);
                }
            }
        }
        self.waiting = again;
        if again {
            self.schedule_retry(myself);
        } else {
            self.retry.reset();
            self.retry_token += 1;
        }
    }

    fn schedule_retry(&mut self, myself: &ActorRef<RegionMsg>) {
        self.retry_token += 1;
        let token = self.retry_token;
        myself.send_after(self.retry.next_delay(), move || RegionMsg::Retry(token));
    }

    fn local_event(&mut self, myself: &ActorRef<RegionMsg>, ev: pb::WatchEvent) {
        self.local_rev = self.local_rev.max(ev.revision);
        let Some(o) = ev.object else { return };
        let Some(k) = Key::of(&o) else { return };
        if ev.r#type == pb::EventType::Deleted as i32 || !apply::is_managed(&o) {
            self.local.remove(&k);
            self.reported.remove(&k);
            self.dirty.remove(&k);
            if ev.r#type == pb::EventType::Deleted as i32
                && (self.placed.contains_key(&k) || self.waiting)
            {
                self.queue_apply(myself);
            }
            return;
        }
        // Someone changed a placed object on the node: the region's version wins.
        let held = self.refused.get(&k).is_some_and(|r| r.held.is_some());
        if !held && self.placed.get(&k).is_some_and(|w| !apply::same(&o, w)) {
            self.queue_apply(myself);
        }
        self.local.insert(k.clone(), o);
        self.dirty.insert(k);
    }

    /// Sends the statuses that changed since they were last reported, in one batch.
    fn flush(&mut self, myself: &ActorRef<RegionMsg>) {
        let Some(client) = &self.client else { return };
        if self.report_task.is_some() || self.dirty.is_empty() {
            return;
        }
        let (mut objects, mut sent) = (Vec::new(), Vec::new());
        while objects.len() < MAX_BATCH {
            let Some(k) = self.dirty.pop_first() else {
                break;
            };
            let o = match (self.refused.get(&k), self.local.get(&k)) {
                (Some(r), local) => match local.or(self.placed.get(&k)) {
                    Some(base) => report::refused(base, &r.message, r.since_ms),
                    None => continue,
                },
                (None, Some(local)) => report::status_of(local),
                (None, None) => continue,
            };
            let d = digest(&o);
            if self.reported.get(&k) != Some(&d) {
                sent.push((k, d));
                objects.push(o);
            }
        }
        if objects.is_empty() {
            return;
        }
        let request = api::ReportStatusRequest {
            name: self.args.node_name.clone(),
            objects,
        };
        self.report_task = Some(tokio::spawn(session::report(
            client.clone(),
            request,
            sent,
            myself.clone(),
        )));
    }
}
