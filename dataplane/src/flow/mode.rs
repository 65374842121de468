//! Whether firewall verdicts are enforced. `Enforce` drops what the flow table denies;
//! `Monitor` forwards everything, as dpservice does today, and counts what would have been
//! dropped, for operators migrating from dpservice who want to see the effect of their rules
//! first. Both count verdicts per interface and direction.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::table::FlowAction;
use super::{Direction, IfaceIndex};

/// How verdicts are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Drop denied packets.
    #[default]
    Enforce,
    /// Forward every packet; count the denied ones.
    Monitor,
}

/// A mode name that is neither `enforce` nor `monitor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown firewall mode {0:?}: must be enforce or monitor")]
pub struct ModeError(pub String);

impl FromStr for Mode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Self, ModeError> {
        match s {
            "enforce" => Ok(Self::Enforce),
            "monitor" => Ok(Self::Monitor),
            other => Err(ModeError(other.to_string())),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Monitor => "monitor",
        })
    }
}

/// Packets by verdict for one interface and direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictCounters {
    /// Forwarded because the flow was accepted.
    pub accepted: u64,
    /// Dropped because the flow was denied (enforce mode).
    pub dropped: u64,
    /// Denied but forwarded anyway (monitor mode).
    pub would_drop: u64,
}

/// Applies the mode to the flow table's actions and counts the verdicts.
#[derive(Debug, Default)]
pub struct Enforcement {
    mode: Mode,
    counters: HashMap<(IfaceIndex, Direction), VerdictCounters>,
}

impl Enforcement {
    /// Counters at zero.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            counters: HashMap::new(),
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Switches the mode; counters are kept.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// What to do with a packet of `iface` going `direction` that the flow table gave
    /// `action`: in monitor mode a drop becomes a forward, counted as `would_drop`.
    pub fn apply(
        &mut self,
        iface: IfaceIndex,
        direction: Direction,
        action: FlowAction,
    ) -> FlowAction {
        let c = self.counters.entry((iface, direction)).or_default();
        match (action, self.mode) {
            (FlowAction::Drop, Mode::Enforce) => {
                c.dropped += 1;
                FlowAction::Drop
            }
            (FlowAction::Drop, Mode::Monitor) => {
                c.would_drop += 1;
                FlowAction::Forward
            }
            (FlowAction::Forward, _) => {
                c.accepted += 1;
                action
            }
        }
    }

    /// The counters of `iface` in `direction` (zero if it never had a packet).
    pub fn counters(&self, iface: IfaceIndex, direction: Direction) -> VerdictCounters {
        self.counters
            .get(&(iface, direction))
            .copied()
            .unwrap_or_default()
    }

    /// Every interface and direction that has counters, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IfaceIndex, Direction, VerdictCounters)> + '_ {
        self.counters.iter().map(|(&(i, d), &c)| (i, d, c))
    }

    /// Forgets the counters of a deleted interface.
    pub fn remove_interface(&mut self, iface: IfaceIndex) {
        self.counters.retain(|&(i, _), _| i != iface);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ferrinet_proto::dpservice::v1 as pb;

    use super::*;
    use crate::flow::rules::tests::{rule, tcp};
    use crate::flow::{FlowKey, FlowTable, L4, RuleSets, TableConfig, TcpFlags};

    #[test]
    fn mode_names() {
        assert_eq!("monitor".parse(), Ok(Mode::Monitor));
        assert_eq!("enforce".parse(), Ok(Mode::Enforce));
        assert_eq!(Mode::default(), Mode::Enforce);
        assert_eq!(Mode::Monitor.to_string(), "monitor");
        assert_eq!(
            "off".parse::<Mode>().expect_err("must fail").to_string(),
            "unknown firewall mode \"off\": must be enforce or monitor"
        );
    }

    fn key(dst_port: u16) -> FlowKey {
        FlowKey {
            iface: IfaceIndex(3),
            vni: 7,
            src: "10.0.0.9".parse().expect("test value"),
            dst: "10.0.0.3".parse().expect("test value"),
            l4: L4::Tcp {
                src_port: 40000,
                dst_port,
            },
        }
    }

    /// Runs two allowed and three denied ingress packets through a table in `mode`.
    fn run(mode: Mode) -> (Enforcement, Vec<FlowAction>) {
        let mut sets = RuleSets::new();
        let iface = IfaceIndex(3);
        sets.update(
            iface,
            &[rule(
                "web",
                pb::TrafficDirection::Ingress,
                "0.0.0.0/0",
                "0.0.0.0/0",
                tcp(-1, -1, 80, 80),
            )],
        )
        .expect("test value");
        let mut table = FlowTable::new(TableConfig::default());
        let mut enforcement = Enforcement::new(mode);
        let now = Instant::now();
        let mut out = Vec::new();
        for port in [80, 80, 22, 22, 23] {
            let d = table.process(
                Direction::Ingress,
                &key(port),
                TcpFlags::SYN,
                sets.get(iface),
                now,
            );
            out.push(enforcement.apply(iface, Direction::Ingress, d.action));
        }
        (enforcement, out)
    }

    #[test]
    fn enforce_drops_and_counts() {
        let (e, out) = run(Mode::Enforce);
        use FlowAction::{Drop, Forward};
        assert_eq!(out, [Forward, Forward, Drop, Drop, Drop]);
        assert_eq!(
            e.counters(IfaceIndex(3), Direction::Ingress),
            VerdictCounters {
                accepted: 2,
                dropped: 3,
                would_drop: 0
            }
        );
        assert_eq!(
            e.counters(IfaceIndex(3), Direction::Egress),
            VerdictCounters::default()
        );
    }

    #[test]
    fn monitor_forwards_everything_and_counts_would_drop() {
        let (mut e, out) = run(Mode::Monitor);
        assert!(out.iter().all(|a| *a == FlowAction::Forward));
        assert_eq!(
            e.counters(IfaceIndex(3), Direction::Ingress),
            VerdictCounters {
                accepted: 2,
                dropped: 0,
                would_drop: 3
            }
        );
        assert_eq!(e.iter().count(), 1);
        e.set_mode(Mode::Enforce);
        assert_eq!(
            e.apply(IfaceIndex(3), Direction::Ingress, FlowAction::Drop),
            FlowAction::Drop
        );
        assert_eq!(e.counters(IfaceIndex(3), Direction::Ingress).dropped, 1);
        e.remove_interface(IfaceIndex(3));
        assert_eq!(e.iter().count(), 0);
    }
}
