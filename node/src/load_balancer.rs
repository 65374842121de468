//! The LoadBalancerActor: one per load balancer. dpservice cannot change a load balancer, so a
//! changed VNI, IP or port set means delete and create; the type only decides where its VIP is
//! announced (network VNI for internal, public VNI for public).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::Instant;

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_proto::node::v1 as pb;
use ferrinet_route_client::route::Route;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument as _;

use crate::api::{ApiMsg, StatusReport};
use crate::dataplane::client::{Dp, DpError};
use crate::reconcile::{Conditions, Ctx, Schedule};
use crate::spec::{self, LoadBalancerSpec, dpservice as req};

/// Messages of a LoadBalancerActor.
#[derive(Debug)]
pub enum LoadBalancerMsg {
    /// A new desired spec.
    Apply {
        /// The spec.
        spec: LoadBalancerSpec,
        /// Its generation.
        generation: u64,
        /// The VNI of its network, if the network exists.
        vni: Option<u32>,
    },
    /// The network's VNI changed (or the network appeared or went).
    Network(Option<u32>),
    /// dpservice restarted.
    Resync,
    /// Timer: run a pass if the token is current.
    Reconcile(u64),
    /// Remove it, then report [`ApiMsg::Gone`].
    Delete,
}

/// Start arguments.
#[derive(Debug)]
pub struct LoadBalancerArgs {
    pub name: String,
    pub spec: LoadBalancerSpec,
    pub generation: u64,
    pub vni: Option<u32>,
    pub deleting: bool,
    pub ctx: Ctx,
}

/// The actor's state.
pub struct LoadBalancerState {
    args: LoadBalancerArgs,
    underlay: Option<Ipv6Addr>,
    announced: BTreeSet<Route>,
    conditions: Conditions,
    schedule: Schedule,
    /// Digest of the last status reported.
    reported: Option<u64>,
}

/// The LoadBalancerActor.
#[derive(Debug)]
pub struct LoadBalancerActor;

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Dp(#[from] DpError),
    #[error("dpservice answered something unreadable")]
    Reply(#[from] spec::ReplyError),
}

fn id(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// Deletes load balancer `name` from dpservice; already gone is fine.
pub async fn purge(dp: &Dp, name: &str) -> Result<(), DpError> {
    let n = name.to_string();
    match dp
        .call("DeleteLoadBalancer", |mut c| async move {
            c.delete_load_balancer(dp::DeleteLoadBalancerRequest {
                loadbalancer_id: id(&n),
            })
            .await
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_any(&[Se::NotFound, Se::NoLb]) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Actor for LoadBalancerActor {
    type Msg = LoadBalancerMsg;
    type State = LoadBalancerState;
    type Arguments = LoadBalancerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LoadBalancerMsg>,
        args: LoadBalancerArgs,
    ) -> Result<LoadBalancerState, ActorProcessingErr> {
        let schedule = Schedule::new(&args.ctx);
        myself.send_message(if args.deleting {
            LoadBalancerMsg::Delete
        } else {
            LoadBalancerMsg::Reconcile(0)
        })?;
        Ok(LoadBalancerState {
            args,
            underlay: None,
            announced: BTreeSet::new(),
            conditions: Conditions::default(),
            schedule,
            reported: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LoadBalancerMsg>,
        msg: LoadBalancerMsg,
        st: &mut LoadBalancerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LoadBalancerMsg::Apply {
                spec,
                generation,
                vni,
            } => {
                st.args.spec = spec;
                st.args.generation = generation;
                st.args.vni = vni;
                st.schedule.reset();
            }
            LoadBalancerMsg::Network(vni) => {
                st.args.vni = vni;
                st.schedule.reset();
            }
            LoadBalancerMsg::Resync => {
                st.underlay = None;
                st.schedule.reset();
            }
            LoadBalancerMsg::Reconcile(token) => {
                if token != 0 && !st.schedule.is_current(token) {
                    return Ok(());
                }
            }
            LoadBalancerMsg::Delete => st.args.deleting = true,
        }
        let span = tracing::info_span!("loadbalancer", name = %st.args.name);
        // Boxed: the pass is a large state machine, and an idle actor should not hold its
        // space (the actor task is sized for its largest await point).
        Box::pin(st.pass(&myself).instrument(span)).await;
        Ok(())
    }
}

impl LoadBalancerState {
    /// Deletes, or runs one pass and schedules the next.
    async fn pass(&mut self, myself: &ActorRef<LoadBalancerMsg>) {
        if self.args.deleting {
            self.update_routes(BTreeSet::new());
            match purge(&self.args.ctx.dp, &self.args.name).await {
                Ok(()) => {
                    let _ = self
                        .args
                        .ctx
                        .api
                        .send_message(ApiMsg::Gone(pb::Kind::LoadBalancer, self.args.name.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "delete failed: retrying");
                    let (delay, _) = self.schedule.next(false);
                    myself.send_after(delay, || LoadBalancerMsg::Delete);
                }
            }
            return;
        }
        let started = Instant::now();
        let ok = self.reconcile().await;
        self.args
            .ctx
            .metrics
            .reconciled("loadbalancer", started.elapsed());
        self.report();
        let (delay, token) = self.schedule.next(ok);
        myself.send_after(delay, move || LoadBalancerMsg::Reconcile(token));
    }

    async fn reconcile(&mut self) -> bool {
        let Some(vni) = self.args.vni else {
            self.conditions.set(
                "LoadBalancer",
                false,
                "NetworkNotFound",
                format!("network {:?} does not exist", self.args.spec.network),
            );
            self.underlay = None;
            self.update_routes(BTreeSet::new());
            return false;
        };
        match self.ensure(vni).await {
            Ok(ul) => {
                self.underlay = Some(ul);
                self.conditions.set("LoadBalancer", true, "Programmed", "");
            }
            Err(e) => {
                self.underlay = None;
                self.conditions.set(
                    "LoadBalancer",
                    false,
                    "DataplaneError",
                    crate::error_chain(&e),
                );
            }
        }
        let routes = spec::load_balancer_routes(
            &self.args.spec,
            vni,
            self.args.ctx.public_vni,
            self.underlay,
        );
        self.update_routes(routes);
        self.conditions.all_ok()
    }

    /// Makes sure dpservice has the load balancer as specified; returns its underlay.
    async fn ensure(&mut self, vni: u32) -> Result<Ipv6Addr, StepError> {
        let dp = self.args.ctx.dp.clone();
        let n = self.args.name.clone();
        match dp
            .call("GetLoadBalancer", |mut c| async move {
                c.get_load_balancer(dp::GetLoadBalancerRequest {
                    loadbalancer_id: id(&n),
                })
                .await
            })
            .await
        {
            Ok(r) => {
                let have = req::parse_load_balancer(&r)?;
                if have.matches(&self.args.spec, vni) {
                    return Ok(have.underlay);
                }
                tracing::info!(vni, "re-creating the load balancer with the new spec");
                self.update_routes(BTreeSet::new());
                purge(&dp, &self.args.name).await?;
            }
            Err(e) if e.is_any(&[Se::NotFound, Se::NoLb]) => {}
            Err(e) => return Err(e.into()),
        }
        let request = req::create_load_balancer_request(&self.args.name, &self.args.spec, vni);
        let r = dp
            .call("CreateLoadBalancer", |mut c| async move {
                c.create_load_balancer(request).await
            })
            .await?;
        Ok(req::parse_underlay("underlay_route", &r.underlay_route)?)
    }

    fn update_routes(&mut self, desired: BTreeSet<Route>) {
        let d = spec::diff(&desired, &self.announced);
        for r in &d.remove {
            self.args.ctx.announcer.withdraw(*r);
        }
        for r in &d.add {
            self.args.ctx.announcer.announce(*r);
        }
        self.announced = desired;
        let (reason, msg) = if self.args.ctx.announcer.has_servers() {
            ("Announced", "")
        } else {
            (
                "NoRouteServers",
                "no route servers are configured; routes are announced once they are",
            )
        };
        self.conditions.set("RoutesAnnounced", true, reason, msg);
    }

    fn report(&mut self) {
        let status = pb::LoadBalancerStatus {
            phase: if self.conditions.all_ok() {
                pb::Phase::Ready
            } else {
                pb::Phase::Error
            }
            .into(),
            conditions: self.conditions.to_vec(),
            vni: self.args.vni.unwrap_or(0),
            underlay_ip: self.underlay.map(|u| u.to_string()).unwrap_or_default(),
            targets: Vec::new(),
            observed_generation: self.args.generation,
        };
        let digest = crate::reconcile::digest(&status);
        if self.reported == Some(digest) {
            return;
        }
        self.reported = Some(digest);
        let _ = self
            .args
            .ctx
            .api
            .send_message(ApiMsg::Status(StatusReport::LoadBalancer(
                self.args.name.clone(),
                status,
            )));
    }
}
