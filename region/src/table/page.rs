//! Walking the stored routes in pages, for `/routes.json`: each page is a bounded piece of work
//! for the table task, however large the table, so that an operator listing the routes never
//! stalls route distribution.
//!
//! A [`Cursor`] is a slab position: routes are walked in slot order. A live route keeps its slot
//! until a compaction moves every route (which bumps the table's generation, so a cursor from
//! before it is refused as [`StaleCursor`] instead of silently skipping or repeating routes).
//! Hence a walk returns every route present from its first page to its last exactly once; a
//! route announced or withdrawn meanwhile may or may not appear (twice, if it was withdrawn and
//! announced again into a slot ahead of the cursor).

use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;

use super::{Dense, MANY, RouteTable, SessionId, Slot, VACANT};
use crate::route::Route;

/// Slab slots the all-VNIs walk may look at per route it may return. Compaction keeps at least a
/// quarter of the slab live, so a page is usually full; where withdrawals left a long vacant run
/// the page comes back short (even empty) with a cursor, rather than scanning without bound.
pub const SCAN_PER_ROUTE: usize = 8;

/// Where a walk resumes: the next slot to look at, in the slab layout of `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    generation: u32,
    slot: Slot,
}

/// Text form `GENERATION-SLOT` (decimal), opaque to clients: they pass back what `next` said.
impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.generation, self.slot)
    }
}

/// A cursor string that is not one this table hands out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a cursor: pass the `next` value of the previous page")]
pub struct CursorError(pub String);

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CursorError(s.to_string());
        let (generation, slot) = s.split_once('-').ok_or_else(bad)?;
        // `u32::from_str` takes a leading '+'; only plain digits are a cursor.
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(generation) || !digits(slot) {
            return Err(bad());
        }
        Ok(Self {
            generation: generation.parse().map_err(|_| bad())?,
            slot: slot.parse().map_err(|_| bad())?,
        })
    }
}

/// The cursor was handed out before the table was compacted: its slot numbers mean nothing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the route table was compacted since this cursor was handed out; walk again from the start"
)]
pub struct StaleCursor;

/// One page of routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Routes with their owners (both sorted; routes by VNI first).
    pub routes: Vec<(Route, Vec<SessionId>)>,
    /// Where the next page starts; `None` once the walk is complete.
    pub next: Option<Cursor>,
}

impl RouteTable {
    /// At most `limit` routes (at least 1 is assumed) of `vni`, or of every VNI, starting at
    /// `from` (`None`: the start of a walk).
    ///
    /// Work per page: all VNIs, at most `limit * SCAN_PER_ROUTE` slab slots; one VNI, a pass
    /// over that VNI's slot numbers (no route is touched but the returned ones).
    pub fn page(
        &self,
        vni: Option<u32>,
        from: Option<Cursor>,
        limit: usize,
    ) -> Result<Page, StaleCursor> {
        let start = match from {
            None => 0,
            Some(c) if c.generation == self.generation => c.slot,
            Some(_) => return Err(StaleCursor),
        };
        let limit = limit.max(1);
        let (slots, next) = match vni {
            None => self.slab_page(start, limit),
            Some(v) => self.vni_page(v, start, limit),
        };
        let mut routes: Vec<(Route, Vec<SessionId>)> = slots
            .into_iter()
            .map(|s| (self.slab[s as usize].route, self.owners(s)))
            .collect();
        routes.sort_unstable();
        Ok(Page {
            routes,
            next: next.map(|slot| Cursor {
                generation: self.generation,
                slot,
            }),
        })
    }

    /// Live slots from `start` in slab order; the next slot to look at, unless the end is reached.
    fn slab_page(&self, start: Slot, limit: usize) -> (Vec<Slot>, Option<Slot>) {
        let budget = limit.saturating_mul(SCAN_PER_ROUTE);
        let mut slots = Vec::with_capacity(limit.min(self.slab.len()));
        let mut pos = start as usize;
        let end = self.slab.len().min(pos.saturating_add(budget));
        while pos < end && slots.len() < limit {
            if self.slab[pos].owner != VACANT {
                // Below the slab length, which fits in a slot number.
                slots.push(pos as Slot);
            }
            pos += 1;
        }
        let next = (pos < self.slab.len()).then(|| Slot::try_from(pos).unwrap_or(Slot::MAX));
        (slots, next)
    }

    /// The `limit` lowest slots of `vni` from `start`; the slot after the last one, if the VNI
    /// has more.
    fn vni_page(&self, vni: u32, start: Slot, limit: usize) -> (Vec<Slot>, Option<Slot>) {
        let Some(v) = self.vnis.get(&vni) else {
            return (Vec::new(), None);
        };
        // A max-heap of the lowest slots seen: the set is unordered, and sorting all of it
        // would cost memory in proportion to the VNI, not to the page.
        let mut lowest = BinaryHeap::with_capacity(limit.min(v.routes.len()));
        let mut more = false;
        for &s in v.routes.iter().filter(|&&s| s >= start) {
            if lowest.len() < limit {
                lowest.push(s);
                continue;
            }
            more = true;
            if let Some(mut highest) = lowest.peek_mut()
                && s < *highest
            {
                *highest = s;
            }
        }
        let slots = lowest.into_sorted_vec();
        let next = match slots.last() {
            Some(&last) if more => Some(last.saturating_add(1)),
            _ => None,
        };
        (slots, next)
    }

    /// The owners of the route in `slot`, sorted.
    pub(super) fn owners(&self, slot: Slot) -> Vec<SessionId> {
        let e = &self.slab[slot as usize];
        let dense: &[Dense] = match e.owner {
            MANY => self.many.get(&slot).map_or(&[], |o| o.as_slice()),
            _ => std::slice::from_ref(&e.owner),
        };
        let mut owners: Vec<SessionId> = dense
            .iter()
            .map(|&d| self.sessions[d as usize].id)
            .collect();
        owners.sort_unstable();
        owners
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn route(vni: u32, i: u32) -> Route {
        crate::loadgen::route(vni, i, "fd00::".parse().unwrap())
    }

    /// Every page of a walk of a table that does not change, each checked against the limit.
    fn walk(t: &RouteTable, vni: Option<u32>, limit: usize) -> Vec<(Route, Vec<SessionId>)> {
        let (mut out, mut at) = (Vec::new(), None);
        for _ in 0..=t.slab.len() {
            let p = t.page(vni, at, limit).unwrap();
            assert!(p.routes.len() <= limit, "{} routes", p.routes.len());
            assert!(p.routes.iter().all(|(r, _)| vni.is_none_or(|v| r.vni == v)));
            out.extend(p.routes);
            match p.next {
                Some(c) => at = Some(c),
                None => {
                    out.sort_unstable();
                    return out;
                }
            }
        }
        panic!("the walk does not end");
    }

    #[test]
    fn page_walks_yield_every_route_once_with_its_owners() {
        let mut t = RouteTable::new();
        let mut want = BTreeMap::new();
        for i in 0..50 {
            let r = route(i % 3, i);
            t.announce(1, r);
            want.insert(r, vec![1]);
            if i % 7 == 0 {
                t.announce(2, r);
                want.insert(r, vec![1, 2]);
            }
        }
        // Holes in the slab: a withdrawn route is skipped; one with another owner stays.
        for i in (0..50).step_by(5) {
            let r = route(i % 3, i);
            t.withdraw(1, &r);
            if i % 7 == 0 {
                want.insert(r, vec![2]);
            } else {
                want.remove(&r);
            }
        }
        let want: Vec<_> = want.into_iter().collect();
        for limit in [1, 2, 3, 7, 100, usize::MAX] {
            assert_eq!(walk(&t, None, limit), want, "limit {limit}");
            for v in 0..3 {
                let of_v: Vec<_> = want.iter().filter(|(r, _)| r.vni == v).cloned().collect();
                assert_eq!(walk(&t, Some(v), limit), of_v, "vni {v}, limit {limit}");
            }
        }
        let none = Page {
            routes: vec![],
            next: None,
        };
        assert_eq!(t.page(Some(9), None, 5), Ok(none.clone()));
        assert_eq!(RouteTable::new().page(None, None, 5), Ok(none));
    }

    #[test]
    fn page_is_bounded_by_the_scan_budget_and_sorted() {
        let mut t = RouteTable::new();
        for i in 0..100 {
            t.announce(1, route(i % 2, 99 - i));
        }
        // 50 vacant slots in a row (not enough withdrawals for a compaction).
        for i in 10..60 {
            t.withdraw(1, &route(i % 2, 99 - i));
        }
        let first = t.page(None, None, 2).unwrap();
        assert_eq!(first.routes.len(), 2);
        assert!(first.routes.windows(2).all(|w| w[0] < w[1]), "sorted");
        let mut at = first.next;
        for _ in 0..4 {
            at = t.page(None, at, 2).unwrap().next;
        }
        // Slots 10..60 are vacant: with limit 2 a page looks at 16 slots, finds nothing and
        // still hands out where to go on.
        let empty = t.page(None, at, 2).unwrap();
        assert!(empty.routes.is_empty());
        assert_eq!(
            empty.next.map(|c| c.slot),
            Some(10 + 2 * SCAN_PER_ROUTE as Slot)
        );
    }

    #[test]
    fn cursor_text_round_trips_and_rejects_others() {
        let c = Cursor {
            generation: 3,
            slot: 4711,
        };
        assert_eq!(c.to_string(), "3-4711");
        assert_eq!("3-4711".parse(), Ok(c));
        for bad in [
            "",
            "3",
            "-1",
            "3-",
            "3-x",
            "+3-1",
            "3-+1",
            "3-1-2",
            "3 -1",
            "99999999999-1",
        ] {
            assert_eq!(
                bad.parse::<Cursor>(),
                Err(CursorError(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cursor_from_before_a_compaction_is_stale() {
        let mut t = RouteTable::new();
        for i in 0..40 {
            t.announce(1, route(1, i));
        }
        let next = t.page(None, None, 5).unwrap().next;
        assert!(next.is_some());
        let before = t.generation;
        for i in 0..35 {
            t.withdraw(1, &route(1, i));
        }
        assert_ne!(t.generation, before, "no compaction happened");
        assert_eq!(t.page(None, next, 5), Err(StaleCursor));
        assert_eq!(t.page(Some(1), next, 5), Err(StaleCursor));
        assert_eq!(walk(&t, None, 5).len(), 5);
    }

    /// A change to the table between two pages of a walk.
    #[derive(Debug, Clone)]
    enum Op {
        Announce(SessionId, Route),
        Withdraw(SessionId, Route),
        RemoveSession(SessionId),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let r = (0u32..3, 0u32..24).prop_map(|(v, i)| route(v, i));
        prop_oneof![
            4 => (0u64..3, r.clone()).prop_map(|(s, r)| Op::Announce(s, r)),
            3 => (0u64..3, r).prop_map(|(s, r)| Op::Withdraw(s, r)),
            // Often, and the bulk announcer too: a session leaving with its routes is what
            // makes the table compact.
            2 => prop_oneof![0u64..3, Just(BULK)].prop_map(Op::RemoveSession),
        ]
    }

    /// A session that announces many routes before any other: its leaving compacts the table
    /// and moves the later routes to lower slots, across the cursor of a walk.
    const BULK: SessionId = 9;

    type Owners = BTreeMap<Route, BTreeSet<SessionId>>;

    fn apply(t: &mut RouteTable, m: &mut Owners, op: &Op) {
        match *op {
            Op::Announce(s, r) => {
                t.announce(s, r);
                m.entry(r).or_default().insert(s);
            }
            Op::Withdraw(s, r) => {
                t.withdraw(s, &r);
                if let Some(o) = m.get_mut(&r) {
                    o.remove(&s);
                }
            }
            Op::RemoveSession(s) => {
                t.remove_session(s);
                m.values_mut().for_each(|o| {
                    o.remove(&s);
                });
            }
        }
        m.retain(|_, o| !o.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A walk while the table changes between pages: every route present from the first
        /// page to the last exactly once, each returned route with the owners it had when its
        /// page was made; or a stale cursor, only after a compaction.
        #[test]
        fn page_walk_under_changes(
            bulk in 0u32..80,
            setup in prop::collection::vec(arb_op(), 0..60),
            steps in prop::collection::vec(
                (prop::collection::vec(arb_op(), 0..6), 1usize..5), 1..30),
            vni in prop::option::of(0u32..3),
        ) {
            let mut t = RouteTable::new();
            let mut m = Owners::new();
            let bulk = (0..bulk).map(|i| Op::Announce(BULK, route(i % 3, 100 + i)));
            for op in &bulk.chain(setup).collect::<Vec<_>>() {
                apply(&mut t, &mut m, op);
            }
            let in_walk = |r: &Route| vni.is_none_or(|v| r.vni == v);
            let mut throughout: BTreeSet<Route> = m.keys().copied().filter(in_walk).collect();
            let generation = t.generation;
            let mut seen: BTreeMap<Route, usize> = BTreeMap::new();
            let mut at = None;
            let mut steps = steps.into_iter();
            for pages in 0.. {
                prop_assert!(pages < 1000, "the walk does not end");
                let (ops, limit) = steps.next().unwrap_or((Vec::new(), 3));
                let page = match t.page(vni, at, limit) {
                    Ok(p) => p,
                    Err(StaleCursor) => {
                        prop_assert_ne!(t.generation, generation);
                        return Ok(());
                    }
                };
                prop_assert!(page.routes.len() <= limit);
                for (r, owners) in &page.routes {
                    prop_assert!(in_walk(r), "{} outside the walk", r);
                    *seen.entry(*r).or_default() += 1;
                    let want: Vec<SessionId> = m[r].iter().copied().collect();
                    prop_assert_eq!(owners, &want);
                }
                let Some(next) = page.next else { break };
                at = Some(next);
                for op in &ops {
                    apply(&mut t, &mut m, op);
                    throughout.retain(|r| m.contains_key(r));
                }
            }
            for r in &throughout {
                prop_assert_eq!(seen.get(r), Some(&1), "{} present throughout", r);
            }
        }
    }
}
