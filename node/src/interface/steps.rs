//! The steps of an interface's reconcile pass, one per dpservice feature, and [`purge`], which
//! removes an interface with everything it holds. Each step reads what dpservice has (unless the
//! interface was just created, when there is nothing) and applies the difference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use ferrinet_proto::dpservice::v1 as dp;
use ferrinet_proto::dpservice_status::ServiceError as Se;
use ipnet::IpNet;

use super::{Found, InterfaceState, Programmed, StepError, id, ignore};
use crate::dataplane::client::{Dp, DpError};
use crate::spec::{self, dpservice as req};
use crate::vf::Vf;

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
    /// Makes sure the interface exists as specified; true if it was just created (so its
    /// sub-objects are known to be empty).
    pub(super) async fn ensure_interface(&mut self, vni: u32, vf: &Vf) -> Result<bool, StepError> {
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
    pub(super) async fn verify_interface(&mut self, vni: u32) -> Result<Found, StepError> {
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

    pub(super) async fn ensure_vip(&mut self, fresh: bool) -> Result<(), StepError> {
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

    pub(super) async fn ensure_nat(&mut self, fresh: bool) -> Result<(), StepError> {
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
    pub(super) async fn ensure_prefixes(&mut self, fresh: bool, lb: bool) -> Result<(), StepError> {
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

    pub(super) async fn ensure_firewall(&mut self, fresh: bool) -> Result<(), StepError> {
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
}
