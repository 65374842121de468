//! The stateful flow table. The first packet of a flow is evaluated against its interface's
//! rules; the verdict then holds for the flow's later packets and for its replies (the reverse
//! key, the other direction) until the flow expires. A reply passes only because its request
//! was accepted: a denied flow is remembered under its own key only, so it never blocks the
//! other direction, whose packets are evaluated as flows of their own.
//!
//! - **Expiry** (dpservice's conntrack, fact sheet section 6): an established TCP flow (SYN,
//!   SYN-ACK, ACK) lives [`Timeouts::tcp_established`] after its last packet, a TCP flow after
//!   FIN or RST [`Timeouts::tcp_closing`], every other flow (TCP still opening, UDP, ICMP,
//!   other) its own short timeout. Expired flows are dropped when next looked up, and by
//!   [`FlowTable::expire`], which the caller runs periodically (dpservice scans every 5 s).
//! - **Bound**: at most [`TableConfig::max_flows`] flows; a new flow in a full table evicts the
//!   one with the oldest last packet (the tables keep a recency list, so this is O(1)).
//! - **Rule changes**: a flow remembers the generation of the rule set that judged it. When its
//!   interface's rules have another generation, the flow's original packet is evaluated again
//!   with the new rules on its next packet, so a removed rule stops an accepted flow and a new
//!   rule opens a denied one, and flows of other interfaces are untouched.
//!
//! Extension points, for VIP, NAT and load balancing:
//! - [`FlowAction`] is what the packet path does with a flow's packets; a translation becomes a
//!   new variant carrying its rewrite (new addresses and ports, target underlay), set by the
//!   stage that creates the flow after the firewall accepts it.
//! - [`Flow::reply_key`] is stored rather than derived, because after a translation the reply
//!   arrives with the translated addresses: that stage inserts the flow with the key the reply
//!   will carry (today always [`FlowKey::reverse`]).
//! - [`Seen`] tells the packet path whether a packet is original or reply, which selects the
//!   forward or the reverse rewrite.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::rules::{RuleSet, Verdict};
use super::{Direction, FlowKey, IfaceIndex, L4, TcpFlags};

/// How long a flow lives after its last packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP after the three-way handshake (dpservice: 86400 s).
    pub tcp_established: Duration,
    /// TCP before the handshake completed (dpservice: 30 s).
    pub tcp_opening: Duration,
    /// TCP after FIN or RST (dpservice: 30 s).
    pub tcp_closing: Duration,
    /// UDP (dpservice: 30 s).
    pub udp: Duration,
    /// ICMP and ICMPv6 (dpservice: 30 s).
    pub icmp: Duration,
    /// Any other protocol (dpservice: 30 s).
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let short = Duration::from_secs(30);
        Self {
            tcp_established: Duration::from_secs(86_400),
            tcp_opening: short,
            tcp_closing: short,
            udp: short,
            icmp: short,
            other: short,
        }
    }
}

/// Size and timeouts of a flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Most flows held at once; at least 1.
    pub max_flows: usize,
    /// Flow lifetimes.
    pub timeouts: Timeouts,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            // dpservice's conntrack holds 850 000 keys, two per flow.
            max_flows: 425_000,
            timeouts: Timeouts::default(),
        }
    }
}

/// What the packet path does with a flow's packets. Translations (VIP, NAT, load balancer)
/// will be further variants; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowAction {
    /// Pass the packet on unchanged.
    Forward,
    /// Discard it.
    Drop,
}

impl FlowAction {
    fn of(verdict: Verdict) -> Self {
        if verdict.is_accept() {
            Self::Forward
        } else {
            Self::Drop
        }
    }
}

/// Where a TCP flow is in its life, as far as its timeout cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    /// Not TCP, or TCP first seen without a SYN.
    None,
    /// The original side sent SYN.
    SynSent,
    /// The reply side answered SYN-ACK.
    SynAckSeen,
    /// The original side acknowledged: established.
    Established,
    /// FIN or RST seen.
    Closing,
}

impl TcpState {
    /// The state of a TCP flow from its first packet's flags.
    fn next_first(self, flags: TcpFlags) -> Self {
        if flags.contains(TcpFlags::RST) || flags.contains(TcpFlags::FIN) {
            Self::Closing
        } else if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
            Self::SynSent
        } else {
            self
        }
    }

    fn next(self, seen: Seen, flags: TcpFlags) -> Self {
        if flags.contains(TcpFlags::RST) || flags.contains(TcpFlags::FIN) {
            return Self::Closing;
        }
        let syn = flags.contains(TcpFlags::SYN);
        let ack = flags.contains(TcpFlags::ACK);
        match (self, seen) {
            (Self::Closing, _) => Self::Closing,
            (Self::SynSent, Seen::Reply) if syn && ack => Self::SynAckSeen,
            (Self::SynAckSeen, Seen::Original) if ack && !syn => Self::Established,
            (state, _) => state,
        }
    }
}

/// A flow: its original packet's direction and key, the key its replies carry, and the
/// verdict and action that hold for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Direction of the flow's first packet.
    pub direction: Direction,
    /// Key of the flow's first packet.
    pub key: FlowKey,
    /// Key the replies carry (in the other direction).
    pub reply_key: FlowKey,
    /// The firewall's verdict on the first packet.
    pub verdict: Verdict,
    /// Generation of the rule set that gave the verdict.
    pub generation: u64,
    /// What to do with the flow's packets.
    pub action: FlowAction,
    /// TCP progress.
    pub tcp: TcpState,
    /// When the flow was created.
    pub created: Instant,
    /// When its last packet was seen.
    pub last_seen: Instant,
    /// Packets seen, both directions.
    pub packets: u64,
}

impl Flow {
    fn timeout(&self, t: &Timeouts) -> Duration {
        match self.key.l4 {
            L4::Tcp { .. } => match self.tcp {
                TcpState::Established => t.tcp_established,
                TcpState::Closing => t.tcp_closing,
                TcpState::None | TcpState::SynSent | TcpState::SynAckSeen => t.tcp_opening,
            },
            L4::Udp { .. } => t.udp,
            L4::Icmp { .. } => t.icmp,
            L4::Other(_) => t.other,
        }
    }

    fn expired(&self, now: Instant, t: &Timeouts) -> bool {
        now.saturating_duration_since(self.last_seen) >= self.timeout(t)
    }

    /// Whether replies are let through, i.e. indexed under the reply key.
    fn open_for_replies(&self) -> bool {
        self.action != FlowAction::Drop
    }
}

/// Whether a packet started its flow, belongs to it or answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first packet: the rules were evaluated.
    New,
    /// A later packet in the flow's original direction.
    Original,
    /// A packet in the reply direction.
    Reply,
}

/// What the table decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the packet.
    pub action: FlowAction,
    /// The verdict of the flow it belongs to.
    pub verdict: Verdict,
    /// How the packet relates to its flow.
    pub seen: Seen,
}

/// Counters of a flow table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Packets that found their flow.
    pub hits: u64,
    /// Packets that started a flow.
    pub misses: u64,
    /// Flows evicted to make room.
    pub evictions: u64,
    /// Flows that timed out.
    pub expired: u64,
    /// Flows evaluated again after their interface's rules changed.
    pub reevaluated: u64,
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node {
    flow: Flow,
    /// Towards more recent flows.
    newer: usize,
    /// Towards older flows.
    older: usize,
}

/// The flow table (see the module doc).
#[derive(Debug)]
pub struct FlowTable {
    config: TableConfig,
    index: HashMap<(Direction, FlowKey), usize>,
    nodes: Vec<Option<Node>>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    len: usize,
    stats: TableStats,
}

impl FlowTable {
    /// An empty table; a `max_flows` of 0 is taken as 1.
    pub fn new(config: TableConfig) -> Self {
        let config = TableConfig {
            max_flows: config.max_flows.max(1),
            ..config
        };
        Self {
            config,
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            len: 0,
            stats: TableStats::default(),
        }
    }

    /// Decides what to do with a packet going `direction` with `key` at `now`. `rules` are the
    /// rules of `key.iface` (what [`super::RuleSets::get`] answers for it).
    pub fn process(
        &mut self,
        direction: Direction,
        key: &FlowKey,
        flags: TcpFlags,
        rules: &RuleSet,
        now: Instant,
    ) -> Decision {
        if let Some(&slot) = self.index.get(&(direction, *key)) {
            let expired = self
                .flow(slot)
                .is_some_and(|f| f.expired(now, &self.config.timeouts));
            if expired {
                self.remove(slot);
                self.stats.expired += 1;
            } else if let Some(decision) = self.hit(slot, direction, flags, rules, now) {
                return decision;
            }
        }
        self.stats.misses += 1;
        let verdict = rules.evaluate(direction, key);
        let action = FlowAction::of(verdict);
        let tcp = match key.l4 {
            L4::Tcp { .. } => TcpState::None.next_first(flags),
            _ => TcpState::None,
        };
        self.insert(Flow {
            direction,
            key: *key,
            reply_key: key.reverse(),
            verdict,
            generation: rules.generation(),
            action,
            tcp,
            created: now,
            last_seen: now,
            packets: 1,
        });
        Decision {
            action,
            verdict,
            seen: Seen::New,
        }
    }

    fn hit(
        &mut self,
        slot: usize,
        direction: Direction,
        flags: TcpFlags,
        rules: &RuleSet,
        now: Instant,
    ) -> Option<Decision> {
        let flow = self.flow(slot)?;
        let seen = if flow.direction == direction {
            Seen::Original
        } else {
            Seen::Reply
        };
        if flow.generation != rules.generation() {
            let verdict = rules.evaluate(flow.direction, &flow.key);
            self.stats.reevaluated += 1;
            self.rejudge(slot, verdict, rules.generation());
            // A reply of a flow the new rules deny is no longer part of any flow.
            if seen == Seen::Reply && !verdict.is_accept() {
                return None;
            }
        }
        self.stats.hits += 1;
        self.touch(slot);
        let node = self.nodes.get_mut(slot)?.as_mut()?;
        let flow = &mut node.flow;
        flow.last_seen = now;
        flow.packets += 1;
        if matches!(flow.key.l4, L4::Tcp { .. }) {
            flow.tcp = flow.tcp.next(seen, flags);
        }
        Some(Decision {
            action: flow.action,
            verdict: flow.verdict,
            seen,
        })
    }

    /// Gives a flow a new verdict, indexing or unindexing its reply key to match.
    fn rejudge(&mut self, slot: usize, verdict: Verdict, generation: u64) {
        let Some(node) = self.nodes.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let flow = &mut node.flow;
        let was_open = flow.open_for_replies();
        flow.verdict = verdict;
        flow.generation = generation;
        flow.action = FlowAction::of(verdict);
        let now_open = flow.open_for_replies();
        let reply = (flow.direction.reverse(), flow.reply_key);
        match (was_open, now_open) {
            (true, false) => {
                self.index.remove(&reply);
            }
            (false, true) => self.index_reply(slot, reply),
            _ => {}
        }
    }

    fn index_reply(&mut self, slot: usize, reply: (Direction, FlowKey)) {
        // The reply key can be the key of a denied flow (the VM now opens what was refused
        // inbound) or, with translations, of any flow: the newer, accepted flow wins.
        if let Some(&other) = self.index.get(&reply)
            && other != slot
        {
            self.remove(other);
        }
        self.index.insert(reply, slot);
    }

    fn insert(&mut self, flow: Flow) {
        if self.len >= self.config.max_flows && self.oldest != NIL {
            self.remove(self.oldest);
            self.stats.evictions += 1;
        }
        let original = (flow.direction, flow.key);
        let reply = (flow.direction.reverse(), flow.reply_key);
        let open = flow.open_for_replies();
        let node = Node {
            flow,
            newer: NIL,
            older: self.newest,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot] = Some(node);
                slot
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.link_newest(slot);
        self.len += 1;
        if let Some(&stale) = self.index.get(&original) {
            self.remove(stale);
        }
        self.index.insert(original, slot);
        if open {
            self.index_reply(slot, reply);
        }
    }

    fn link_newest(&mut self, slot: usize) {
        let old_newest = self.newest;
        if let Some(n) = self.nodes.get_mut(slot).and_then(Option::as_mut) {
            n.newer = NIL;
            n.older = old_newest;
        }
        if let Some(n) = self.nodes.get_mut(old_newest).and_then(Option::as_mut) {
            n.newer = slot;
        }
        self.newest = slot;
        if self.oldest == NIL {
            self.oldest = slot;
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Some((newer, older)) = self
            .nodes
            .get(slot)
            .and_then(Option::as_ref)
            .map(|n| (n.newer, n.older))
        else {
            return;
        };
        match self.nodes.get_mut(newer).and_then(Option::as_mut) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.nodes.get_mut(older).and_then(Option::as_mut) {
            Some(n) => n.newer = newer,
            None => self.oldest = newer,
        }
    }

    fn touch(&mut self, slot: usize) {
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn remove(&mut self, slot: usize) {
        self.unlink(slot);
        let Some(node) = self.nodes.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let flow = node.flow;
        self.index.remove(&(flow.direction, flow.key));
        let reply = (flow.direction.reverse(), flow.reply_key);
        if self.index.get(&reply) == Some(&slot) {
            self.index.remove(&reply);
        }
        self.free.push(slot);
        self.len -= 1;
    }

    fn flow(&self, slot: usize) -> Option<&Flow> {
        self.nodes.get(slot)?.as_ref().map(|n| &n.flow)
    }

    /// Drops every flow expired at `now`; returns how many. A scan of the whole table, meant
    /// to run every few seconds.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeouts = self.config.timeouts;
        let n = self.remove_where(|f| f.expired(now, &timeouts));
        self.stats.expired += n as u64;
        n
    }

    /// Drops the flows of `iface` (the interface was deleted); returns how many.
    pub fn remove_interface(&mut self, iface: IfaceIndex) -> usize {
        self.remove_where(|f| f.key.iface == iface)
    }

    fn remove_where(&mut self, mut doomed: impl FnMut(&Flow) -> bool) -> usize {
        let mut removed = 0;
        for slot in 0..self.nodes.len() {
            if self.flow(slot).is_some_and(&mut doomed) {
                self.remove(slot);
                removed += 1;
            }
        }
        removed
    }

    /// The flow a packet going `direction` with `key` belongs to, if any (expired or not).
    pub fn get(&self, direction: Direction, key: &FlowKey) -> Option<&Flow> {
        self.index
            .get(&(direction, *key))
            .and_then(|&slot| self.flow(slot))
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no flows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table's configuration.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Counters since the table was made.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Flows from the oldest last packet to the newest.
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = &Flow> {
        let mut slot = self.oldest;
        std::iter::from_fn(move || {
            let node = self.nodes.get(slot)?.as_ref()?;
            slot = node.newer;
            Some(&node.flow)
        })
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
