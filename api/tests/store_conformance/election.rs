//! Leader election: one leader at a time, the oldest candidate first, followers know who leads,
//! and the next takes over when the leader resigns or goes away.

use std::time::Duration;

use ferrinet_api::store::{Campaign, Expect, LeaderState, StoreError, Txn};

use crate::harness::{Fixture, PATIENCE, conformance};

conformance!(
    one_leader_then_takeover_on_resign,
    takeover_when_leader_is_dropped,
    fenced_writes_apply_only_while_leading,
);

pub const ELECTION: &str = "/ferrinet/v1/elections/allocator";
pub const TTL: Duration = Duration::from_secs(1);

/// Waits until `c`'s state satisfies `f`, within [`PATIENCE`].
pub async fn wait(
    c: &mut Campaign,
    what: &str,
    f: impl FnMut(&LeaderState) -> bool,
) -> LeaderState {
    match tokio::time::timeout(PATIENCE, c.wait_for(f)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => panic!("{}: campaign ended waiting for {what}: {e}", c.identity()),
        Err(_) => panic!(
            "{}: not {what} within {PATIENCE:?}: {:?}",
            c.identity(),
            c.state()
        ),
    }
}

pub fn leads(s: &LeaderState) -> bool {
    s.is_leader
}

pub fn follows(leader: &'static str) -> impl FnMut(&LeaderState) -> bool {
    move |s| !s.is_leader && s.leader.as_deref() == Some(leader)
}

async fn one_leader_then_takeover_on_resign(f: &mut Fixture) {
    let a_store = f.store().clone();
    let b_store = f.other_replica().await;
    let c_store = f.other_replica().await;
    assert_eq!(a_store.leader(ELECTION).await.unwrap(), None);

    let mut a = a_store.campaign(ELECTION, "a", TTL).await.unwrap();
    let s = wait(&mut a, "leader", leads).await;
    assert_eq!(s.leader.as_deref(), Some("a"));

    let mut b = b_store.campaign(ELECTION, "b", TTL).await.unwrap();
    wait(&mut b, "following a", follows("a")).await;
    let mut c = c_store.campaign(ELECTION, "c", TTL).await.unwrap();
    wait(&mut c, "following a", follows("a")).await;
    assert!(a.is_leader(), "a newer candidate does not take over");
    assert_eq!(
        c_store.leader(ELECTION).await.unwrap().as_deref(),
        Some("a")
    );

    // The oldest remaining candidate is next.
    a.resign().await;
    wait(&mut b, "leader", leads).await;
    wait(&mut c, "following b", follows("b")).await;
    assert_eq!(b.leader().as_deref(), Some("b"));
    assert_eq!(
        c_store.leader(ELECTION).await.unwrap().as_deref(),
        Some("b")
    );

    b.resign().await;
    wait(&mut c, "leader", leads).await;
    c.resign().await;
}

async fn takeover_when_leader_is_dropped(f: &mut Fixture) {
    let b_store = f.other_replica().await;
    let mut a = f.store().campaign(ELECTION, "a", TTL).await.unwrap();
    wait(&mut a, "leader", leads).await;
    let mut b = b_store.campaign(ELECTION, "b", TTL).await.unwrap();
    wait(&mut b, "following a", follows("a")).await;

    drop(a);
    wait(&mut b, "leader", leads).await;
    // Another election is independent.
    let mut other = f
        .store()
        .campaign("/ferrinet/v1/elections/other", "x", TTL)
        .await
        .unwrap();
    wait(&mut other, "leader", leads).await;
    assert!(b.is_leader());
}

async fn fenced_writes_apply_only_while_leading(f: &mut Fixture) {
    let s = f.store().clone();
    let b_store = f.other_replica().await;
    let mut a = s.campaign(ELECTION, "a", TTL).await.unwrap();
    wait(&mut a, "leader", leads).await;
    let fence = a.fence().expect("a leader has a fence");
    assert_eq!(fence.election(), ELECTION);
    let write = |key: &str| Txn::new().put(key, b"v".to_vec(), Expect::Absent);
    s.txn(write("/alloc/1").fenced(&fence)).await.unwrap();

    let mut b = b_store.campaign(ELECTION, "b", TTL).await.unwrap();
    wait(&mut b, "following a", follows("a")).await;
    assert_eq!(b.fence(), None);

    a.resign().await;
    wait(&mut b, "leader", leads).await;
    // The old leader's fence no longer holds, whatever the rest of the transaction.
    match s.txn(write("/alloc/2").fenced(&fence)).await {
        Err(StoreError::Fenced { election }) => assert_eq!(election, ELECTION),
        other => panic!("write with a stale fence: {other:?}"),
    }
    assert_eq!(s.get("/alloc/2").await.unwrap(), None);
    let b_fence = b.fence().expect("b leads");
    b_store
        .txn(write("/alloc/2").fenced(&b_fence))
        .await
        .unwrap();
    // A fenced transaction still checks its own compares.
    assert!(matches!(
        b_store.txn(write("/alloc/2").fenced(&b_fence)).await,
        Err(StoreError::Conflict { .. })
    ));
}
