//! The InterfaceActor: one per network interface. It owns the interface's desired spec, what it
//! believes dpservice holds, and the routes it announces; each pass brings dpservice and the
//! announcements to the spec (see [`crate::reconcile`] for the retry schedule).
//!
//! A pass, in the order dpservice needs: the interface itself (created on the interface's VF;
//! re-created on the same VF when its VNI, IPs, metering or hostname change), then the virtual
//! IP, NAT, prefixes, load-balancer target prefixes and firewall rules, each a condition of its
//! own so one failing feature never hides behind "Ready", and last the routes of whatever was
//! programmed. Deletion withdraws the routes first, then removes the sub-objects and the
//! interface.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::Instant;

use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_proto::node::v1 as pb;
use ferrinet_route_client::route::Route;
use ipnet::IpNet;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument as _;

use crate::api::{ApiMsg, StatusReport};
use crate::dataplane::client::{Dp, DpError};
use crate::reconcile::{Conditions, Ctx, Schedule};
use crate::spec::{self, InterfaceSpec};
use crate::vf::{Vf, VfLocation};

mod steps;
pub use steps::purge;

/// Messages of an InterfaceActor.
#[derive(Debug)]
pub enum InterfaceMsg {
    /// A new desired spec (update).
    Apply {
        /// The spec.
        spec: InterfaceSpec,
        /// Its generation.
        generation: u64,
        /// The VNI of its network, if the network exists.
        vni: Option<u32>,
    },
    /// The network's VNI changed (or the network appeared or went).
    Network(Option<u32>),
    /// dpservice restarted: forget what it held and apply everything again.
    Resync,
    /// Timer: run a pass if the token is current.
    Reconcile(u64),
    /// Remove the interface, then report [`ApiMsg::Gone`].
    Delete,
}

/// Start arguments.
#[derive(Debug)]
pub struct InterfaceArgs {
    pub name: String,
    pub spec: InterfaceSpec,
    pub generation: u64,
    pub vni: Option<u32>,
    /// Its claimed VF; `None` when the claim could not be restored.
    pub vf: Option<Vf>,
    /// The id of a claimed VF that is no longer discovered.
    pub lost_vf: Option<String>,
    pub deleting: bool,
    pub ctx: Ctx,
}

/// What the actor believes dpservice holds for its interface.
#[derive(Debug, Default, Clone)]
struct Programmed {
    /// The interface's underlay, once it exists with the current spec's VNI and IPs.
    underlay: Option<Ipv6Addr>,
    /// The spec and VNI it was created with (to tell a metering/hostname change).
    created_with: Option<(InterfaceSpec, u32)>,
    vip: Option<Ipv6Addr>,
    nat: Option<Ipv6Addr>,
    prefixes: BTreeMap<IpNet, Ipv6Addr>,
    lb_targets: BTreeMap<IpNet, Ipv6Addr>,
}

/// The actor's state.
pub struct InterfaceState {
    args: InterfaceArgs,
    programmed: Programmed,
    announced: BTreeSet<Route>,
    conditions: Conditions,
    schedule: Schedule,
    /// Digest of the last status reported (the status itself lives with the ApiActor).
    reported: Option<u64>,
}

/// The InterfaceActor.
#[derive(Debug)]
pub struct InterfaceActor;

impl Actor for InterfaceActor {
    type Msg = InterfaceMsg;
    type State = InterfaceState;
    type Arguments = InterfaceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<InterfaceMsg>,
        args: InterfaceArgs,
    ) -> Result<InterfaceState, ActorProcessingErr> {
        let schedule = Schedule::new(&args.ctx);
        myself.send_message(if args.deleting {
            InterfaceMsg::Delete
        } else {
            InterfaceMsg::Reconcile(0)
        })?;
        Ok(InterfaceState {
            args,
            programmed: Programmed::default(),
            announced: BTreeSet::new(),
            conditions: Conditions::default(),
            schedule,
            reported: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<InterfaceMsg>,
        msg: InterfaceMsg,
        st: &mut InterfaceState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            InterfaceMsg::Apply {
                spec,
                generation,
                vni,
            } => {
                st.args.spec = spec;
                st.args.generation = generation;
                st.args.vni = vni;
                st.schedule.reset();
            }
            InterfaceMsg::Network(vni) => {
                st.args.vni = vni;
                st.schedule.reset();
            }
            InterfaceMsg::Resync => {
                st.programmed = Programmed::default();
                st.schedule.reset();
            }
            InterfaceMsg::Reconcile(token) => {
                if token != 0 && !st.schedule.is_current(token) {
                    return Ok(());
                }
            }
            InterfaceMsg::Delete => st.args.deleting = true,
        }
        let span = tracing::info_span!("interface", name = %st.args.name);
        // Boxed: the pass is a large state machine, and an idle actor should not hold its
        // space (the actor task is sized for its largest await point).
        Box::pin(st.pass(&myself).instrument(span)).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<InterfaceMsg>,
        st: &mut InterfaceState,
    ) -> Result<(), ActorProcessingErr> {
        // Stopped with the node: the routes end with the route client's sessions.
        let _ = st;
        Ok(())
    }
}

/// What dpservice holds under the interface's id.
enum Found {
    /// The interface with the desired VNI and IPs.
    Matches,
    /// An interface, but with another VNI, IPs, metering or hostname.
    Differs,
    /// Nothing.
    Missing,
}

/// Why one step of a pass failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Dp(#[from] DpError),
    #[error("dpservice answered something unreadable")]
    Reply(#[from] spec::ReplyError),
}

fn ignore(r: Result<(), DpError>, codes: &[Se]) -> Result<(), DpError> {
    match r {
        Err(e) if e.is_any(codes) => Ok(()),
        other => other,
    }
}

fn id(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

impl InterfaceState {
    /// Deletes, or runs one pass and schedules the next.
    async fn pass(&mut self, myself: &ActorRef<InterfaceMsg>) {
        if self.args.deleting {
            match self.delete().await {
                Ok(()) => {
                    let _ = self.args.ctx.api.send_message(ApiMsg::Gone(
                        pb::Kind::NetworkInterface,
                        self.args.name.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "delete failed: retrying");
                    let (delay, _) = self.schedule.next(false);
                    myself.send_after(delay, || InterfaceMsg::Delete);
                }
            }
            return;
        }
        let started = Instant::now();
        let ok = self.reconcile().await;
        self.args
            .ctx
            .metrics
            .reconciled("interface", started.elapsed());
        self.report();
        let (delay, token) = self.schedule.next(ok);
        myself.send_after(delay, move || InterfaceMsg::Reconcile(token));
    }

    fn dp(&self) -> &Dp {
        &self.args.ctx.dp
    }

    fn name(&self) -> String {
        self.args.name.clone()
    }

    /// One pass; true if everything is as desired.
    async fn reconcile(&mut self) -> bool {
        let Some(vni) = self.args.vni else {
            self.conditions.clear();
            self.conditions.set(
                "Interface",
                false,
                "NetworkNotFound",
                format!("network {:?} does not exist", self.args.spec.network),
            );
            self.update_routes(BTreeSet::new());
            return false;
        };
        let Some(vf) = self.args.vf.clone() else {
            self.conditions.set(
                "Interface",
                false,
                "NoVirtualFunction",
                match &self.args.lost_vf {
                    Some(v) => format!("its VF {v} is no longer present on this host"),
                    None => "no VF claimed".into(),
                },
            );
            self.update_routes(BTreeSet::new());
            return false;
        };
        let fresh = match self.ensure_interface(vni, &vf).await {
            Ok(fresh) => {
                self.conditions.set("Interface", true, "Programmed", "");
                fresh
            }
            Err(e) => {
                self.conditions
                    .set("Interface", false, "DataplaneError", crate::error_chain(&e));
                for c in [
                    "VirtualIP",
                    "NAT",
                    "Prefixes",
                    "LoadBalancerTargets",
                    "Firewall",
                ] {
                    self.conditions.set(
                        c,
                        false,
                        "InterfaceNotReady",
                        "the interface is not programmed",
                    );
                }
                self.update_routes(BTreeSet::new());
                return false;
            }
        };
        let r = self.ensure_vip(fresh).await;
        self.conditions.outcome("VirtualIP", &r);
        let r = self.ensure_nat(fresh).await;
        self.conditions.outcome("NAT", &r);
        let r = self.ensure_prefixes(fresh, false).await;
        self.conditions.outcome("Prefixes", &r);
        let r = self.ensure_prefixes(fresh, true).await;
        self.conditions.outcome("LoadBalancerTargets", &r);
        let r = self.ensure_firewall(fresh).await;
        self.conditions.outcome("Firewall", &r);
        let routes = self.desired_routes(vni);
        self.update_routes(routes);
        self.conditions.all_ok()
    }

    fn desired_routes(&self, vni: u32) -> BTreeSet<Route> {
        let p = &self.programmed;
        let underlays = spec::InterfaceUnderlays {
            interface: p.underlay,
            vip: p.vip,
            nat: p.nat,
            prefixes: p.prefixes.clone(),
            lb_targets: p.lb_targets.clone(),
        };
        spec::interface_routes(&self.args.spec, vni, self.args.ctx.public_vni, &underlays)
    }

    /// Announces what is new, withdraws what went away.
    fn update_routes(&mut self, desired: BTreeSet<Route>) {
        let d = spec::diff(&desired, &self.announced);
        for r in &d.remove {
            self.args.ctx.announcer.withdraw(*r);
        }
        for r in &d.add {
            self.args.ctx.announcer.announce(*r);
        }
        self.announced = desired;
        if self.args.ctx.announcer.has_servers() {
            self.conditions
                .set("RoutesAnnounced", true, "Announced", "");
        } else {
            self.conditions.set(
                "RoutesAnnounced",
                true,
                "NoRouteServers",
                "no route servers are configured; routes are announced once they are",
            );
        }
    }

    /// Withdraws the routes, then removes everything from dpservice.
    async fn delete(&mut self) -> Result<(), StepError> {
        self.update_routes(BTreeSet::new());
        purge(self.dp(), &self.args.name).await?;
        self.programmed = Programmed::default();
        Ok(())
    }

    fn status(&self) -> pb::NetworkInterfaceStatus {
        let phase = if self.conditions.all_ok() {
            pb::Phase::Ready
        } else {
            pb::Phase::Error
        };
        let (pci_address, tap_device) = match self.args.vf.as_ref().map(Vf::location) {
            Some(VfLocation::Pci(a)) => {
                let p = a.parts();
                (
                    Some(pb::PciAddress {
                        domain: p.domain,
                        bus: p.bus,
                        slot: p.slot,
                        function: p.function,
                    }),
                    String::new(),
                )
            }
            Some(VfLocation::Tap(t)) => (None, t.clone()),
            None => (None, String::new()),
        };
        let text = |a: Option<Ipv6Addr>| a.map(|a| a.to_string()).unwrap_or_default();
        pb::NetworkInterfaceStatus {
            phase: phase.into(),
            conditions: self.conditions.to_vec(),
            vni: self.args.vni.unwrap_or(0),
            underlay_ip: text(self.programmed.underlay),
            pci_address,
            tap_device,
            device_name: self
                .args
                .vf
                .as_ref()
                .map(|v| v.device_name().to_string())
                .unwrap_or_default(),
            virtual_ip_underlay: text(self.programmed.vip),
            nat_underlay: text(self.programmed.nat),
            observed_generation: self.args.generation,
        }
    }

    fn report(&mut self) {
        let status = self.status();
        let digest = crate::reconcile::digest(&status);
        if self.reported == Some(digest) {
            return;
        }
        self.reported = Some(digest);
        let _ = self
            .args
            .ctx
            .api
            .send_message(ApiMsg::Status(StatusReport::Interface(self.name(), status)));
    }
}
