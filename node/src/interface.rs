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

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice_status::ServiceError as Se;
use ferrinet_proto::node::v1 as pb;
use ferrinet_route_client::route::Route;
use ipnet::IpNet;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument as _;

use crate::api::{ApiMsg, StatusReport};
use crate::dataplane::client::{Dp, DpError};
use crate::reconcile::{Conditions, Ctx, Schedule};
use crate::spec::{self, InterfaceSpec, dpservice as req};
use crate::vf::{Vf, VfLocation};

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

/// Removes every sub-object of interface `name`, then the interface; what is already gone is
/// fine. Used for deletion, re-creation and orphans.
pub async fn purge(dp: &Dp, name: &str) -> Result<(), DpError> {
    let n = name.to_string();
    match dp
        .call("ListPrefixes", |mut c| async move {
            c.list_prefixes(dp::ListPrefixesRequest {
                interface_id: id(&n),
            })
            .await
        })
        .await
    {
        Ok(r) => {
            for p in r.prefixes {
                let n = name.to_string();
                let r = dp
                    .call("DeletePrefix", |mut c| async move {
                        c.delete_prefix(dp::DeletePrefixRequest {
                            interface_id: id(&n),
                            prefix: Some(p),
                        })
                        .await
                    })
                    .await
                    .map(|_| ());
                ignore(r, &[Se::NotFound, Se::NoVm, Se::RouteNotFound])?;
            }
        }
        Err(e) if e.is_any(&[Se::NoVm, Se::NotFound]) => return Ok(()),
        Err(e) => return Err(e),
    }
    let n = name.to_string();
    let lbs = dp
        .call("ListLoadBalancerPrefixes", |mut c| async move {
            c.list_load_balancer_prefixes(dp::ListLoadBalancerPrefixesRequest {
                interface_id: id(&n),
            })
            .await
        })
        .await?;
    for p in lbs.prefixes {
        let n = name.to_string();
        let r = dp
            .call("DeleteLoadBalancerPrefix", |mut c| async move {
                c.delete_load_balancer_prefix(dp::DeleteLoadBalancerPrefixRequest {
                    interface_id: id(&n),
                    prefix: Some(p),
                })
                .await
            })
            .await
            .map(|_| ());
        ignore(r, &[Se::NotFound, Se::NoVm, Se::RouteNotFound])?;
    }
    let n = name.to_string();
    let rules = dp
        .call("ListFirewallRules", |mut c| async move {
            c.list_firewall_rules(dp::ListFirewallRulesRequest {
                interface_id: id(&n),
            })
            .await
        })
        .await?;
    for rule in rules.rules {
        let n = name.to_string();
        let r = dp
            .call("DeleteFirewallRule", |mut c| async move {
                c.delete_firewall_rule(dp::DeleteFirewallRuleRequest {
                    interface_id: id(&n),
                    rule_id: rule.id,
                })
                .await
            })
            .await
            .map(|_| ());
        ignore(r, &[Se::NotFound, Se::NoVm])?;
    }
    let n = name.to_string();
    let r = dp
        .call("DeleteNat", |mut c| async move {
            c.delete_nat(dp::DeleteNatRequest {
                interface_id: id(&n),
            })
            .await
        })
        .await
        .map(|_| ());
    ignore(r, &[Se::SnatNoData, Se::NoVm, Se::NotFound])?;
    let n = name.to_string();
    let r = dp
        .call("DeleteVip", |mut c| async move {
            c.delete_vip(dp::DeleteVipRequest {
                interface_id: id(&n),
            })
            .await
        })
        .await
        .map(|_| ());
    ignore(r, &[Se::SnatNoData, Se::NoVm, Se::NotFound])?;
    let n = name.to_string();
    let r = dp
        .call("DeleteInterface", |mut c| async move {
            c.delete_interface(dp::DeleteInterfaceRequest {
                interface_id: id(&n),
            })
            .await
        })
        .await
        .map(|_| ());
    ignore(r, &[Se::NotFound, Se::NoVm])
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

    /// Makes sure the interface exists as specified; true if it was just created (so its
    /// sub-objects are known to be empty).
    async fn ensure_interface(&mut self, vni: u32, vf: &Vf) -> Result<bool, StepError> {
        let spec = self.args.spec.clone();
        let changed = self
            .programmed
            .created_with
            .as_ref()
            .is_some_and(|(old, old_vni)| spec::needs_recreate(old, &spec, *old_vni, vni));
        let found = if changed {
            Found::Differs
        } else {
            self.verify_interface(vni).await?
        };
        match found {
            Found::Matches => {
                self.programmed.created_with = Some((spec, vni));
                return Ok(false);
            }
            // Sub-objects cannot exist without their interface: nothing to remove.
            Found::Missing => {}
            Found::Differs => {
                tracing::info!(vni, "re-creating the interface on its VF with the new spec");
                self.update_routes(BTreeSet::new());
                purge(self.dp(), &self.args.name).await?;
            }
        }
        self.update_routes(BTreeSet::new());
        self.programmed = Programmed::default();
        let request = req::create_interface_request(&self.args.name, &spec, vni, vf.device_name());
        let resp = self
            .dp()
            .call("CreateInterface", |mut c| async move {
                c.create_interface(request).await
            })
            .await?;
        let underlay = req::parse_underlay("underlay_route", &resp.underlay_route)?;
        self.programmed.underlay = Some(underlay);
        self.programmed.created_with = Some((spec, vni));
        tracing::debug!(%underlay, device = vf.device_name(), "interface created");
        Ok(true)
    }

    /// Reads the interface from dpservice: whether it exists with the spec's VNI and IPs.
    async fn verify_interface(&mut self, vni: u32) -> Result<Found, StepError> {
        let n = self.name();
        let got = self
            .dp()
            .call("GetInterface", |mut c| async move {
                c.get_interface(dp::GetInterfaceRequest {
                    interface_id: id(&n),
                })
                .await
            })
            .await;
        match got {
            Ok(r) => {
                let Some(i) = r.interface.as_ref() else {
                    return Ok(Found::Missing);
                };
                let i = req::parse_interface(i)?;
                if i.matches(&self.args.spec, vni) {
                    self.programmed.underlay = Some(i.underlay);
                    Ok(Found::Matches)
                } else {
                    Ok(Found::Differs)
                }
            }
            Err(e) if e.is_any(&[Se::NotFound, Se::NoVm]) => Ok(Found::Missing),
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_vip(&mut self, fresh: bool) -> Result<(), StepError> {
        let want = self.args.spec.virtual_ip;
        let have = if fresh {
            None
        } else {
            let n = self.name();
            match self
                .dp()
                .call("GetVip", |mut c| async move {
                    c.get_vip(dp::GetVipRequest {
                        interface_id: id(&n),
                    })
                    .await
                })
                .await
            {
                Ok(r) => Some(req::parse_vip(&r)?),
                Err(e) if e.is_any(&[Se::SnatNoData, Se::NoVm]) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if let (Some(w), Some((ip, ul))) = (want, have)
            && w == ip
        {
            self.programmed.vip = Some(ul);
            return Ok(());
        }
        self.programmed.vip = None;
        if have.is_some() {
            let n = self.name();
            let r = self
                .dp()
                .call("DeleteVip", |mut c| async move {
                    c.delete_vip(dp::DeleteVipRequest {
                        interface_id: id(&n),
                    })
                    .await
                })
                .await
                .map(|_| ());
            ignore(r, &[Se::SnatNoData])?;
        }
        if let Some(w) = want {
            let request = req::create_vip_request(&self.args.name, w);
            let r = self
                .dp()
                .call(
                    "CreateVip",
                    |mut c| async move { c.create_vip(request).await },
                )
                .await?;
            self.programmed.vip = Some(req::parse_underlay("underlay_route", &r.underlay_route)?);
        }
        Ok(())
    }

    async fn ensure_nat(&mut self, fresh: bool) -> Result<(), StepError> {
        let want = self.args.spec.nat;
        let have = if fresh {
            None
        } else {
            let n = self.name();
            match self
                .dp()
                .call("GetNat", |mut c| async move {
                    c.get_nat(dp::GetNatRequest {
                        interface_id: id(&n),
                    })
                    .await
                })
                .await
            {
                Ok(r) => Some(req::parse_nat(&r)?),
                Err(e) if e.is_any(&[Se::SnatNoData, Se::NoVm]) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if let (Some(w), Some((nat, ul))) = (want, have)
            && w == nat
        {
            self.programmed.nat = Some(ul);
            return Ok(());
        }
        self.programmed.nat = None;
        if have.is_some() {
            let n = self.name();
            let r = self
                .dp()
                .call("DeleteNat", |mut c| async move {
                    c.delete_nat(dp::DeleteNatRequest {
                        interface_id: id(&n),
                    })
                    .await
                })
                .await
                .map(|_| ());
            ignore(r, &[Se::SnatNoData])?;
        }
        if let Some(w) = want {
            let request = req::create_nat_request(&self.args.name, &w);
            let r = self
                .dp()
                .call(
                    "CreateNat",
                    |mut c| async move { c.create_nat(request).await },
                )
                .await?;
            self.programmed.nat = Some(req::parse_underlay("underlay_route", &r.underlay_route)?);
        }
        Ok(())
    }

    /// Routed prefixes, or (with `lb`) load-balancer target prefixes.
    async fn ensure_prefixes(&mut self, fresh: bool, lb: bool) -> Result<(), StepError> {
        let want = if lb {
            self.args.spec.lb_targets.clone()
        } else {
            self.args.spec.prefixes.clone()
        };
        let have: BTreeMap<IpNet, Ipv6Addr> = if fresh {
            BTreeMap::new()
        } else {
            let n = self.name();
            let listed = if lb {
                self.dp()
                    .call("ListLoadBalancerPrefixes", |mut c| async move {
                        c.list_load_balancer_prefixes(dp::ListLoadBalancerPrefixesRequest {
                            interface_id: id(&n),
                        })
                        .await
                    })
                    .await
                    .map(|r| r.prefixes)
            } else {
                self.dp()
                    .call("ListPrefixes", |mut c| async move {
                        c.list_prefixes(dp::ListPrefixesRequest {
                            interface_id: id(&n),
                        })
                        .await
                    })
                    .await
                    .map(|r| r.prefixes)
            }?;
            req::parse_prefixes(&listed)?
        };
        let d = spec::diff_keys(&want, &have);
        let mut now = have;
        let mut first_error = None;
        for p in &d.remove {
            let name = self.name();
            let net = *p;
            let r = if lb {
                let request = req::delete_lb_prefix_request(&name, net);
                self.dp()
                    .call("DeleteLoadBalancerPrefix", |mut c| async move {
                        c.delete_load_balancer_prefix(request).await
                    })
                    .await
                    .map(|_| ())
            } else {
                let request = req::delete_prefix_request(&name, net);
                self.dp()
                    .call("DeletePrefix", |mut c| async move {
                        c.delete_prefix(request).await
                    })
                    .await
                    .map(|_| ())
            };
            match ignore(r, &[Se::NotFound, Se::RouteNotFound]) {
                Ok(()) => {
                    now.remove(p);
                }
                Err(e) => {
                    first_error.get_or_insert(StepError::from(e));
                }
            }
        }
        for p in &d.add {
            let name = self.name();
            let net = *p;
            let r = if lb {
                let request = req::create_lb_prefix_request(&name, net);
                self.dp()
                    .call("CreateLoadBalancerPrefix", |mut c| async move {
                        c.create_load_balancer_prefix(request).await
                    })
                    .await
                    .map(|r| r.underlay_route)
            } else {
                let request = req::create_prefix_request(&name, net);
                self.dp()
                    .call("CreatePrefix", |mut c| async move {
                        c.create_prefix(request).await
                    })
                    .await
                    .map(|r| r.underlay_route)
            };
            match r {
                Ok(ul) => match req::parse_underlay("underlay_route", &ul) {
                    Ok(ul) => {
                        now.insert(net, ul);
                    }
                    Err(e) => {
                        first_error.get_or_insert(StepError::from(e));
                    }
                },
                Err(e) => {
                    first_error.get_or_insert(StepError::from(e));
                }
            }
        }
        if lb {
            self.programmed.lb_targets = now;
        } else {
            self.programmed.prefixes = now;
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn ensure_firewall(&mut self, fresh: bool) -> Result<(), StepError> {
        let listed = if fresh {
            req::ListedRules::default()
        } else {
            let n = self.name();
            let r = self
                .dp()
                .call("ListFirewallRules", |mut c| async move {
                    c.list_firewall_rules(dp::ListFirewallRulesRequest {
                        interface_id: id(&n),
                    })
                    .await
                })
                .await?;
            req::parse_firewall_rules(&r.rules)
        };
        let d = listed.diff(&self.args.spec.firewall);
        let mut first_error = None;
        for rule_id in &d.delete {
            let request = req::delete_firewall_rule_request(&self.args.name, rule_id);
            let r = self
                .dp()
                .call("DeleteFirewallRule", |mut c| async move {
                    c.delete_firewall_rule(request).await
                })
                .await
                .map(|_| ());
            if let Err(e) = ignore(r, &[Se::NotFound]) {
                first_error.get_or_insert(StepError::from(e));
            }
        }
        for (rule_id, rule) in &d.create {
            let request = req::create_firewall_rule_request(&self.args.name, rule_id, rule);
            let r = self
                .dp()
                .call("CreateFirewallRule", |mut c| async move {
                    c.create_firewall_rule(request).await
                })
                .await
                .map(|_| ());
            if let Err(e) = r {
                first_error.get_or_insert(StepError::from(e));
            }
        }
        first_error.map_or(Ok(()), Err)
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
