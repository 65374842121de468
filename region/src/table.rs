//! The region's route table: which session owns which route, who subscribes to which VNI, and
//! the change each event must forward. Pure data, no I/O; owned by the server's one table task.
//!
//! Visibility rule: a subscriber X of VNI v sees route R of v iff R has an owner other than X
//! (the server never echoes a route to its announcer, and the reference client ignores routes it
//! announced itself). Every [`Change`] is computed so that the snapshot a subscriber gets from
//! [`RouteTable::subscribe`] plus the later changes addressed to it reproduce exactly that view,
//! with no duplicate ADD and no REMOVE of a route it does not have.

use std::hash::{BuildHasher, Hasher};

use hashbrown::hash_table::Entry as IndexEntry;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};
use smallvec::SmallVec;

use ipnet::IpNet;

use crate::route::{Action, Route};

mod page;
pub use page::{Cursor, CursorError, Page, SCAN_PER_ROUTE, StaleCursor};

/// Identifies a peer session inside the server.
pub type SessionId = u64;

/// Who gets a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// Every subscriber of the route's VNI except this session.
    AllExcept(SessionId),
    /// Only this session (it is subscribed to the VNI).
    Only(SessionId),
}

/// An UPDATE the server must forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// ADD or REMOVE.
    pub action: Action,
    /// The route.
    pub route: Route,
    /// Who must receive it.
    pub to: Recipients,
}

/// Index of a route in the slab.
type Slot = u32;
/// Dense internal number of a session: 4 bytes per stored owner instead of 8.
type Dense = u32;

/// `Entry::owner` value: the route has several owners, listed in `RouteTable::many`.
const MANY: Dense = u32::MAX;
/// `Entry::owner` value: the slot is free (its route is stale and not indexed).
const VACANT: Dense = u32::MAX - 1;

/// The slab is compacted when fewer than a quarter of its slots are live and it has at least
/// this many; tiny in tests so that the property test compacts all the time.
const COMPACT_MIN_SLOTS: usize = if cfg!(test) { 4 } else { 4096 };

/// One stored route. Kept to the route plus 4 bytes because this is the bulk of the memory:
/// one owner is the overwhelmingly common case, more go to a side table.
#[derive(Clone, Copy)]
struct Entry {
    route: Route,
    owner: Dense,
}

#[derive(Default)]
struct SessionState {
    id: SessionId,
    /// Slots this session owns, so session end and UNSUBSCRIBE need not scan the table.
    owned: HashSet<Slot>,
    /// Subscribed VNIs, sorted.
    subs: Vec<u32>,
}

#[derive(Default)]
struct VniState {
    /// Slots of this VNI's routes, for snapshots.
    routes: HashSet<Slot>,
    subscribers: HashSet<SessionId>,
}

/// Routes, their owners and the VNI subscriptions of every session.
///
/// Layout, for memory (about 90 bytes per route with one owner, see the `table_memory`
/// example): routes live once in a slab; the lookup index, the per-VNI sets and the
/// per-session sets hold 4-byte slot numbers only.
#[derive(Default)]
pub struct RouteTable {
    slab: Vec<Entry>,
    free_slots: Vec<Slot>,
    /// Slots keyed by the hash of their slab route, so the route is not stored twice.
    index: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    /// Owners of routes with more than one owner (`Entry::owner == MANY`).
    many: HashMap<Slot, SmallVec<[Dense; 4]>>,
    ids: HashMap<SessionId, Dense>,
    sessions: Vec<SessionState>,
    free_sessions: Vec<Dense>,
    vnis: HashMap<u32, VniState>,
    /// Compactions so far: slot numbers from another generation mean nothing (see [`Cursor`]).
    generation: u32,
}

/// Hashes every field of the route in four wide writes; the derived `Hash` makes a dozen small
/// ones, and this raised announce throughput by about a third. Equal routes give equal words,
/// so this agrees with `Route`'s `Eq`.
fn route_hash(hasher: &DefaultHashBuilder, r: &Route) -> u64 {
    let (dst, family_len) = match r.destination {
        IpNet::V4(n) => (u128::from(n.addr().to_bits()), u64::from(n.prefix_len())),
        IpNet::V6(n) => (n.addr().to_bits(), 0x100 | u64::from(n.prefix_len())),
    };
    let nh = &r.next_hop;
    let mut h = hasher.build_hasher();
    h.write_u128(dst);
    h.write_u128(nh.address.to_bits());
    h.write_u64((u64::from(r.vni) << 32) | u64::from(nh.target_vni));
    h.write_u64(
        (family_len << 48)
            | ((nh.kind as u64) << 32)
            | (u64::from(nh.port_from) << 16)
            | u64::from(nh.port_to),
    );
    h.finish()
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Session `from` announces `route`. Returns the change to forward, if any.
    pub fn announce(&mut self, from: SessionId, route: Route) -> Option<Change> {
        let d = self.dense(from);
        let hash = route_hash(&self.hasher, &route);
        let (slab, hasher) = (&self.slab, &self.hasher);
        let found = self.index.entry(
            hash,
            |&s| slab[s as usize].route == route,
            |&s| route_hash(hasher, &slab[s as usize].route),
        );
        match found {
            IndexEntry::Vacant(v) => {
                let slot = match self.free_slots.pop() {
                    Some(slot) => {
                        self.slab[slot as usize] = Entry { route, owner: d };
                        slot
                    }
                    None => {
                        // More than 4 billion routes would not fit in memory long before.
                        let slot = Slot::try_from(self.slab.len()).unwrap_or(Slot::MAX);
                        self.slab.push(Entry { route, owner: d });
                        slot
                    }
                };
                v.insert(slot);
                self.sessions[d as usize].owned.insert(slot);
                self.vnis.entry(route.vni).or_default().routes.insert(slot);
                Some(Change {
                    action: Action::Add,
                    route,
                    to: Recipients::AllExcept(from),
                })
            }
            IndexEntry::Occupied(o) => {
                let slot = *o.get();
                let entry = &mut self.slab[slot as usize];
                let only = match entry.owner {
                    owner if owner == d => return None,
                    MANY => {
                        let owners = self.many.entry(slot).or_default();
                        if owners.contains(&d) {
                            return None;
                        }
                        owners.push(d);
                        None
                    }
                    // The sole owner did not see its own route; now another owner provides it.
                    x => {
                        entry.owner = MANY;
                        self.many.insert(slot, SmallVec::from_slice(&[x, d]));
                        Some(self.sessions[x as usize].id)
                    }
                };
                self.sessions[d as usize].owned.insert(slot);
                let x = only.filter(|&x| self.is_subscribed(x, route.vni))?;
                Some(Change {
                    action: Action::Add,
                    route,
                    to: Recipients::Only(x),
                })
            }
        }
    }

    /// Session `from` withdraws `route` (no-op -> None if it did not own it).
    pub fn withdraw(&mut self, from: SessionId, route: &Route) -> Option<Change> {
        let d = *self.ids.get(&from)?;
        let hash = route_hash(&self.hasher, route);
        let slab = &self.slab;
        let slot = *self
            .index
            .find(hash, |&s| slab[s as usize].route == *route)?;
        let change = self.withdraw_slot(from, d, slot, hash);
        self.release_if_idle(d);
        self.maybe_compact();
        change
    }

    /// Withdraws the route in `slot` for session `d` (`from`); `hash` is the route's hash.
    fn withdraw_slot(
        &mut self,
        from: SessionId,
        d: Dense,
        slot: Slot,
        hash: u64,
    ) -> Option<Change> {
        let entry = &mut self.slab[slot as usize];
        let route = entry.route;
        let only = match entry.owner {
            owner if owner == d => {
                entry.owner = VACANT;
                if let Ok(e) = self.index.find_entry(hash, |&s| s == slot) {
                    e.remove();
                }
                self.free_slots.push(slot);
                if let Some(v) = self.vnis.get_mut(&route.vni) {
                    v.routes.remove(&slot);
                    if v.routes.is_empty() && v.subscribers.is_empty() {
                        self.vnis.remove(&route.vni);
                    }
                }
                self.sessions[d as usize].owned.remove(&slot);
                return Some(Change {
                    action: Action::Remove,
                    route,
                    to: Recipients::AllExcept(from),
                });
            }
            MANY => {
                let owners = self.many.get_mut(&slot)?;
                let pos = owners.iter().position(|&o| o == d)?;
                owners.swap_remove(pos);
                match owners.as_slice() {
                    // The remaining owner saw the route only because `from` also provided it.
                    &[x] => {
                        entry.owner = x;
                        self.many.remove(&slot);
                        Some(self.sessions[x as usize].id)
                    }
                    _ => None,
                }
            }
            _ => return None,
        };
        self.sessions[d as usize].owned.remove(&slot);
        let x = only.filter(|&x| self.is_subscribed(x, route.vni))?;
        Some(Change {
            action: Action::Remove,
            route,
            to: Recipients::Only(x),
        })
    }

    /// Register `session` as subscriber of `vni` and return the snapshot it must be sent (every
    /// route of `vni` it should see), or None if it was already subscribed (a duplicate
    /// SUBSCRIBE is harmless: nothing is resent).
    ///
    /// Registering and taking the snapshot happen in this one call, so with the table owned by
    /// one task nothing is lost or duplicated between the snapshot and the live stream.
    pub fn subscribe(&mut self, session: SessionId, vni: u32) -> Option<Vec<Route>> {
        let d = self.dense(session);
        let state = self.vnis.entry(vni).or_default();
        if !state.subscribers.insert(session) {
            return None;
        }
        let subs = &mut self.sessions[d as usize].subs;
        if let Err(pos) = subs.binary_search(&vni) {
            subs.insert(pos, vni);
        }
        // A route with several owners always has one other than `session`.
        let snapshot = state
            .routes
            .iter()
            .map(|&s| &self.slab[s as usize])
            .filter(|e| e.owner != d)
            .map(|e| e.route)
            .collect();
        Some(snapshot)
    }

    /// Drop the subscription and withdraw every route `session` announced in `vni` (as the
    /// reference server does). Returns the changes to forward.
    pub fn unsubscribe(&mut self, session: SessionId, vni: u32) -> Vec<Change> {
        let Some(&d) = self.ids.get(&session) else {
            return Vec::new();
        };
        let subs = &mut self.sessions[d as usize].subs;
        if let Ok(pos) = subs.binary_search(&vni) {
            subs.remove(pos);
        }
        let Some(state) = self.vnis.get_mut(&vni) else {
            self.release_if_idle(d);
            return Vec::new();
        };
        state.subscribers.remove(&session);
        // Walk whichever set is smaller: the session's routes or the VNI's.
        let owned = &self.sessions[d as usize].owned;
        let mine: Vec<Slot> = if owned.len() <= state.routes.len() {
            owned
                .iter()
                .copied()
                .filter(|&s| self.slab[s as usize].route.vni == vni)
                .collect()
        } else {
            state
                .routes
                .iter()
                .copied()
                .filter(|s| owned.contains(s))
                .collect()
        };
        if state.routes.is_empty() && state.subscribers.is_empty() {
            self.vnis.remove(&vni);
        }
        let changes = self.withdraw_slots(session, d, &mine);
        self.release_if_idle(d);
        self.maybe_compact();
        changes
    }

    /// Session ended: withdraw everything it owned, drop its subscriptions.
    pub fn remove_session(&mut self, session: SessionId) -> Vec<Change> {
        let Some(&d) = self.ids.get(&session) else {
            return Vec::new();
        };
        let state = &mut self.sessions[d as usize];
        for vni in std::mem::take(&mut state.subs) {
            if let Some(v) = self.vnis.get_mut(&vni) {
                v.subscribers.remove(&session);
                if v.routes.is_empty() && v.subscribers.is_empty() {
                    self.vnis.remove(&vni);
                }
            }
        }
        // Taken, not copied: removing each slot from a set about to be dropped is wasted work.
        let mine: Vec<Slot> = std::mem::take(&mut state.owned).into_iter().collect();
        let changes = self.withdraw_slots(session, d, &mine);
        self.release_if_idle(d);
        self.maybe_compact();
        changes
    }

    fn withdraw_slots(&mut self, from: SessionId, d: Dense, slots: &[Slot]) -> Vec<Change> {
        slots
            .iter()
            .filter_map(|&slot| {
                let hash = route_hash(&self.hasher, &self.slab[slot as usize].route);
                self.withdraw_slot(from, d, slot, hash)
            })
            .collect()
    }

    /// Gives memory back after mass withdrawals (a big announcer went away): freed slots are
    /// reused by later announces, but without this the slab and the sets would stay at their
    /// peak size forever. Amortized: after compacting, the live routes fill half the slab, so
    /// the next compaction needs at least as many withdrawals as there are routes left.
    fn maybe_compact(&mut self) {
        let live = self.index.len();
        if self.slab.len() >= COMPACT_MIN_SLOTS && live < self.slab.len() / 4 {
            self.compact();
        }
    }

    /// Moves the live routes to the front of a new, right-sized slab and rebuilds every set of
    /// slot numbers (which also shrinks them).
    fn compact(&mut self) {
        let mut remap = vec![Slot::MAX; self.slab.len()];
        let mut slab = Vec::with_capacity(self.index.len() * 2);
        for (old, e) in self.slab.iter().enumerate() {
            if e.owner != VACANT {
                // Bounded by the old slab, whose slots fit in a u32.
                remap[old] = Slot::try_from(slab.len()).unwrap_or(Slot::MAX);
                slab.push(*e);
            }
        }
        let mut index = HashTable::with_capacity(slab.len());
        for (new, e) in slab.iter().enumerate() {
            let hash = route_hash(&self.hasher, &e.route);
            let slot = Slot::try_from(new).unwrap_or(Slot::MAX);
            index.insert_unique(hash, slot, |&s| {
                route_hash(&self.hasher, &slab[s as usize].route)
            });
        }
        let map = |set: &HashSet<Slot>| set.iter().map(|&s| remap[s as usize]).collect();
        for v in self.vnis.values_mut() {
            v.routes = map(&v.routes);
        }
        for st in &mut self.sessions {
            st.owned = map(&st.owned);
        }
        self.many = std::mem::take(&mut self.many)
            .into_iter()
            .map(|(s, o)| (remap[s as usize], o))
            .collect();
        self.slab = slab;
        self.index = index;
        self.free_slots = Vec::new();
        self.generation = self.generation.wrapping_add(1);
    }

    /// The dense number of `session`, allocated on first use.
    fn dense(&mut self, session: SessionId) -> Dense {
        if let Some(&d) = self.ids.get(&session) {
            return d;
        }
        let d = match self.free_sessions.pop() {
            Some(d) => d,
            None => {
                self.sessions.push(SessionState::default());
                // Sessions are bounded by open connections, far below u32::MAX - 1.
                Dense::try_from(self.sessions.len() - 1).unwrap_or(VACANT)
            }
        };
        self.sessions[d as usize].id = session;
        self.ids.insert(session, d);
        d
    }

    /// Frees the dense number of a session that owns nothing and subscribes nothing, so that
    /// short-lived sessions do not accumulate.
    fn release_if_idle(&mut self, d: Dense) {
        let state = &mut self.sessions[d as usize];
        if state.owned.is_empty() && state.subs.is_empty() {
            self.ids.remove(&state.id);
            // Drop the sets' memory too: a big session that ended leaves nothing behind.
            *state = SessionState::default();
            self.free_sessions.push(d);
        }
    }

    /// Subscribers of a VNI (for fan-out of [`Recipients::AllExcept`] changes).
    pub fn subscribers(&self, vni: u32) -> impl Iterator<Item = SessionId> + '_ {
        self.vnis
            .get(&vni)
            .into_iter()
            .flat_map(|v| v.subscribers.iter().copied())
    }

    /// Whether `session` subscribes to `vni`.
    pub fn is_subscribed(&self, session: SessionId, vni: u32) -> bool {
        self.vnis
            .get(&vni)
            .is_some_and(|v| v.subscribers.contains(&session))
    }

    /// The VNIs `session` subscribes to, sorted.
    pub fn subscriptions(&self, session: SessionId) -> Vec<u32> {
        self.ids
            .get(&session)
            .map(|&d| self.sessions[d as usize].subs.clone())
            .unwrap_or_default()
    }

    /// Number of distinct routes.
    pub fn route_count(&self) -> usize {
        self.index.len()
    }

    /// Number of routes `session` owns.
    pub fn owned_count(&self, session: SessionId) -> usize {
        self.ids
            .get(&session)
            .map_or(0, |&d| self.sessions[d as usize].owned.len())
    }

    /// The VNIs that have routes, sorted.
    pub fn vnis(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .vnis
            .iter()
            .filter(|(_, s)| !s.routes.is_empty())
            .map(|(&vni, _)| vni)
            .collect();
        v.sort_unstable();
        v
    }

    /// Route count of every VNI that has routes, sorted by VNI: the status page's summary,
    /// without materializing the routes.
    pub fn vni_route_counts(&self) -> Vec<(u32, usize)> {
        let mut v: Vec<(u32, usize)> = self
            .vnis
            .iter()
            .filter(|(_, s)| !s.routes.is_empty())
            .map(|(&vni, s)| (vni, s.routes.len()))
            .collect();
        v.sort_unstable();
        v
    }

    /// Routes of a VNI with their owners (both sorted): the whole VNI at once, for the tests'
    /// model; `/routes.json` uses [`RouteTable::page`].
    #[cfg(test)]
    fn routes_of(&self, vni: u32) -> Vec<(Route, Vec<SessionId>)> {
        let mut v: Vec<(Route, Vec<SessionId>)> = self
            .vnis
            .get(&vni)
            .into_iter()
            .flat_map(|v| v.routes.iter())
            .map(|&slot| (self.slab[slot as usize].route, self.owners(slot)))
            .collect();
        v.sort_unstable();
        v
    }

    /// Checks the internal bookkeeping against itself: every indexed slot is live and findable,
    /// free slots are vacant, owner lists are distinct and consistent with the sessions' sets,
    /// and nothing idle (VNI state, session number) is left behind.
    #[cfg(test)]
    fn check_invariants(&self) {
        let live: Vec<Slot> = self.index.iter().copied().collect();
        assert_eq!(live.len() + self.free_slots.len(), self.slab.len());
        let mut owned_total = 0;
        for &slot in &live {
            let e = &self.slab[slot as usize];
            assert_ne!(e.owner, VACANT);
            let hash = route_hash(&self.hasher, &e.route);
            assert_eq!(self.index.find(hash, |&s| s == slot), Some(&slot));
            assert!(self.vnis[&e.route.vni].routes.contains(&slot));
            let owners: &[Dense] = match e.owner {
                MANY => &self.many[&slot],
                _ => std::slice::from_ref(&e.owner),
            };
            let distinct: std::collections::BTreeSet<_> = owners.iter().collect();
            assert_eq!(distinct.len(), owners.len());
            assert!(e.owner != MANY || owners.len() >= 2);
            for &d in owners {
                assert!(self.sessions[d as usize].owned.contains(&slot));
            }
            owned_total += owners.len();
        }
        for &slot in &self.free_slots {
            assert_eq!(self.slab[slot as usize].owner, VACANT);
        }
        assert_eq!(
            self.many.len(),
            live.iter()
                .filter(|&&s| self.slab[s as usize].owner == MANY)
                .count()
        );
        let routes_in_vnis: usize = self.vnis.values().map(|v| v.routes.len()).sum();
        assert_eq!(routes_in_vnis, live.len());
        for v in self.vnis.values() {
            assert!(
                !v.routes.is_empty() || !v.subscribers.is_empty(),
                "idle vni state"
            );
        }
        assert_eq!(
            self.ids.len() + self.free_sessions.len(),
            self.sessions.len()
        );
        let mut sessions_owned = 0;
        for (&id, &d) in &self.ids {
            let st = &self.sessions[d as usize];
            assert_eq!(st.id, id);
            assert!(
                !st.owned.is_empty() || !st.subs.is_empty(),
                "idle session kept"
            );
            assert!(st.subs.windows(2).all(|w| w[0] < w[1]));
            for vni in &st.subs {
                assert!(self.vnis[vni].subscribers.contains(&id));
            }
            sessions_owned += st.owned.len();
        }
        assert_eq!(sessions_owned, owned_total);
        let subscriptions: usize = self.vnis.values().map(|v| v.subscribers.len()).sum();
        let subs_total: usize = self
            .ids
            .values()
            .map(|&d| self.sessions[d as usize].subs.len())
            .sum();
        assert_eq!(subscriptions, subs_total);
    }

    /// Approximate heap bytes held by the table, computed from capacities (for metrics and
    /// the memory test; the allocator's own overhead is not counted).
    pub fn heap_bytes(&self) -> usize {
        fn table<T>(capacity: usize) -> usize {
            if capacity == 0 {
                return 0;
            }
            // hashbrown keeps at most 7/8 of its buckets full; one control byte per bucket.
            let buckets = (capacity * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<T>() + 1)
        }
        let sessions: usize = self
            .sessions
            .iter()
            .map(|s| table::<Slot>(s.owned.capacity()) + s.subs.capacity() * 4)
            .sum();
        let vnis: usize = self
            .vnis
            .values()
            .map(|v| {
                table::<Slot>(v.routes.capacity()) + table::<SessionId>(v.subscribers.capacity())
            })
            .sum();
        self.slab.capacity() * std::mem::size_of::<Entry>()
            + self.free_slots.capacity() * std::mem::size_of::<Slot>()
            + table::<Slot>(self.index.capacity())
            + table::<(Slot, SmallVec<[Dense; 4]>)>(self.many.capacity())
            + table::<(SessionId, Dense)>(self.ids.capacity())
            + self.sessions.capacity() * std::mem::size_of::<SessionState>()
            + sessions
            + table::<(u32, VniState)>(self.vnis.capacity())
            + vnis
    }
}

#[cfg(test)]
mod tests;
