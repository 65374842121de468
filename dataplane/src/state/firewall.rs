//! Firewall rules: stored per interface in insertion order (the order dpservice matches them
//! in) and compiled for the packet path on every change.

use ferrinet_proto::dpservice::v1 as pb;

use super::{Result, State, prefix_msg};
use crate::error::{InvalidArgument, ServiceError};
use crate::flow::{IfaceIndex, RuleSet};
use crate::validate;

fn validate_filter(
    filter: Option<&pb::ProtocolFilter>,
) -> std::result::Result<(), InvalidArgument> {
    use pb::protocol_filter::Filter;
    match filter.and_then(|f| f.filter.as_ref()) {
        None => Ok(()),
        Some(Filter::Tcp(t)) => {
            validate::fw_port_range(
                "rule.protocol_filter.tcp",
                "src",
                t.src_port_lower,
                t.src_port_upper,
            )?;
            validate::fw_port_range(
                "rule.protocol_filter.tcp",
                "dst",
                t.dst_port_lower,
                t.dst_port_upper,
            )
        }
        Some(Filter::Udp(u)) => {
            validate::fw_port_range(
                "rule.protocol_filter.udp",
                "src",
                u.src_port_lower,
                u.src_port_upper,
            )?;
            validate::fw_port_range(
                "rule.protocol_filter.udp",
                "dst",
                u.dst_port_lower,
                u.dst_port_upper,
            )
        }
        Some(Filter::Icmp(i)) => {
            validate::icmp_value("rule.protocol_filter.icmp.icmp_type", i.icmp_type)?;
            validate::icmp_value("rule.protocol_filter.icmp.icmp_code", i.icmp_code).map(|_| ())
        }
    }
}

impl State {
    /// CreateFirewallRule: ACCEPT rules only; answers the id the client sent.
    pub fn create_firewall_rule(
        &mut self,
        req: pb::CreateFirewallRuleRequest,
    ) -> Result<pb::CreateFirewallRuleResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let rule = validate::present("rule", req.rule)?;
        let rule_id = validate::id("rule.id", &rule.id)?;
        let src = validate::strict_prefix("rule.source_prefix", rule.source_prefix.as_ref())?;
        let dst =
            validate::strict_prefix("rule.destination_prefix", rule.destination_prefix.as_ref())?;
        let _: pb::TrafficDirection = validate::known_enum("rule.direction", rule.direction)?;
        let action: pb::FirewallAction = validate::known_enum("rule.action", rule.action)?;
        if rule.priority > u32::from(u16::MAX) {
            return Err(InvalidArgument::new("rule.priority", "must be at most 65535").into());
        }
        validate_filter(rule.protocol_filter.as_ref())?;
        let iface = self.iface(&id)?;
        if action == pb::FirewallAction::Drop {
            return Err(ServiceError::NoDropSupport.into());
        }
        if iface.rules.iter().any(|r| r.id == rule_id.as_bytes()) {
            return Err(ServiceError::AlreadyExists.into());
        }
        // Stored with canonical address text so Get/List answer what the table holds.
        let stored = pb::FirewallRule {
            source_prefix: Some(prefix_msg(src, None)),
            destination_prefix: Some(prefix_msg(dst, None)),
            ..rule
        };
        let iface = self.iface_mut(&id)?;
        iface.rules.push(stored);
        let index = iface.index;
        self.recompile_rules(&id, index);
        Ok(pb::CreateFirewallRuleResponse {
            status: None,
            rule_id: rule_id.into_bytes(),
        })
    }

    /// GetFirewallRule.
    pub fn get_firewall_rule(
        &mut self,
        req: pb::GetFirewallRuleRequest,
    ) -> Result<pb::GetFirewallRuleResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let rule_id = validate::id("rule_id", &req.rule_id)?;
        let rule = self
            .iface(&id)?
            .rules
            .iter()
            .find(|r| r.id == rule_id.as_bytes())
            .ok_or(ServiceError::NotFound)?;
        Ok(pb::GetFirewallRuleResponse {
            status: None,
            rule: Some(rule.clone()),
        })
    }

    /// DeleteFirewallRule.
    pub fn delete_firewall_rule(
        &mut self,
        req: pb::DeleteFirewallRuleRequest,
    ) -> Result<pb::DeleteFirewallRuleResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        let rule_id = validate::id("rule_id", &req.rule_id)?;
        let iface = self.iface_mut(&id)?;
        let at = iface
            .rules
            .iter()
            .position(|r| r.id == rule_id.as_bytes())
            .ok_or(ServiceError::NotFound)?;
        iface.rules.remove(at);
        let index = iface.index;
        self.recompile_rules(&id, index);
        Ok(pb::DeleteFirewallRuleResponse::default())
    }

    /// ListFirewallRules.
    pub fn list_firewall_rules(
        &mut self,
        req: pb::ListFirewallRulesRequest,
    ) -> Result<pb::ListFirewallRulesResponse> {
        let id = validate::id("interface_id", &req.interface_id)?;
        Ok(pb::ListFirewallRulesResponse {
            status: None,
            rules: self.iface(&id)?.rules.clone(),
        })
    }

    /// Recompiles the rules of interface `id` after a change. Every rule was validated when it
    /// was stored, so compiling cannot fail; should it, the interface keeps no rules (ingress
    /// closed, egress open) and the error is logged rather than served half-compiled.
    fn recompile_rules(&mut self, id: &str, index: IfaceIndex) {
        let Ok(iface) = self.iface(id) else {
            return;
        };
        match RuleSet::compile(&iface.rules) {
            Ok(set) => {
                self.rule_sets.install(index, set);
            }
            Err(e) => {
                tracing::error!(interface = id, error = %e, "firewall rules do not compile");
                self.rule_sets.install(index, RuleSet::default());
            }
        }
    }

    /// The compiled rules of the interface with packet-path index `index`.
    pub fn rule_set(&self, index: IfaceIndex) -> &RuleSet {
        self.rule_sets.get(index)
    }
}
