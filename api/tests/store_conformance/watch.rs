//! Watches: from a revision, from now, resumed after a reconnection, and refused once the
//! history they need is compacted.

use ferrinet_api::store::{EmbeddedOptions, EventKind, Expect, StoreError, Txn, WatchEvent};

use crate::harness::{Fixture, PATIENCE, conformance, next_event};

conformance!(
    watch_from_revision,
    watch_from_now,
    watch_resumes_after_reconnect,
    watch_from_compacted_revision_fails,
);

fn summary(e: &WatchEvent) -> (u64, EventKind, &str, &[u8]) {
    (e.revision, e.kind, e.key.as_str(), e.value.as_slice())
}

async fn watch_from_revision(f: &mut Fixture) {
    let s = f.store();
    let r1 = s.put("/w/a", b"a".to_vec(), Expect::Any).await.unwrap();
    let r2 = s.put("/w/b", b"b".to_vec(), Expect::Any).await.unwrap();
    s.put("/other/x", b"x".to_vec(), Expect::Any).await.unwrap();
    let r3 = s.delete("/w/a", Expect::Any).await.unwrap().unwrap();
    let r4 = s
        .txn(Txn::new().put("/w/c", b"c".to_vec(), Expect::Absent).put(
            "/w/d",
            b"d".to_vec(),
            Expect::Absent,
        ))
        .await
        .unwrap();
    assert!(r1 < r2 && r2 < r3 && r3 < r4);

    let mut w = s.watch("/w/", r2).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut w).await);
    }
    let seen: Vec<_> = seen.iter().map(summary).collect();
    assert_eq!(
        seen,
        [
            (r2, EventKind::Put, "/w/b", &b"b"[..]),
            (r3, EventKind::Delete, "/w/a", &b""[..]),
            (r4, EventKind::Put, "/w/c", &b"c"[..]),
            (r4, EventKind::Put, "/w/d", &b"d"[..]),
        ]
    );
    // And it goes on with what comes next.
    let r5 = s.put("/w/e", b"e".to_vec(), Expect::Any).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(summary(&e), (r5, EventKind::Put, "/w/e", &b"e"[..]));
}

async fn watch_from_now(f: &mut Fixture) {
    let s = f.store();
    s.put("/now/before", vec![], Expect::Any).await.unwrap();
    let mut w = s.watch("/now/", 0).await.unwrap();
    // Confirmed after `watch` returned, before the watch task got going: still seen.
    let r = s
        .put("/now/after", b"1".to_vec(), Expect::Any)
        .await
        .unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(summary(&e), (r, EventKind::Put, "/now/after", &b"1"[..]));
}

async fn watch_resumes_after_reconnect(f: &mut Fixture) {
    let listing = f.store().list("/r/").await.unwrap();
    let mut w = f.store().watch("/r/", listing.revision + 1).await.unwrap();
    f.store()
        .put("/r/a", b"a".to_vec(), Expect::Any)
        .await
        .unwrap();
    let r2 = f
        .store()
        .put("/r/b", b"b".to_vec(), Expect::Any)
        .await
        .unwrap();
    next_event(&mut w).await;
    let last = next_event(&mut w).await;
    assert_eq!(last.revision, r2);
    drop(w);

    f.reconnect().await;
    let s = f.store();
    let r3 = s.put("/r/c", b"c".to_vec(), Expect::Any).await.unwrap();
    let r4 = s.delete("/r/a", Expect::Any).await.unwrap().unwrap();
    let mut w = s.watch("/r/", last.revision + 1).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(summary(&e), (r3, EventKind::Put, "/r/c", &b"c"[..]));
    let e = next_event(&mut w).await;
    assert_eq!(summary(&e), (r4, EventKind::Delete, "/r/a", &b""[..]));
    // Nothing twice, nothing extra: the next event is the next write.
    let r5 = s.put("/r/sentinel", vec![], Expect::Any).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision, r5);
}

async fn watch_from_compacted_revision_fails(f: &mut Fixture) {
    let s = f.store();
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(s.put("/c/k", vec![i], Expect::Any).await.unwrap());
    }
    let (r1, r3) = (revisions[0], revisions[2]);
    s.compact(r3).await.unwrap();

    let mut w = s.watch("/c/", r1).await.unwrap();
    match tokio::time::timeout(PATIENCE, w.next()).await.unwrap() {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => assert_eq!((requested, compact_revision), (r1, r3)),
        other => panic!("watch from a compacted revision: {other:?}"),
    }
    assert!(matches!(w.next().await, Err(StoreError::Closed)));

    // From the compaction revision on, history is there.
    let mut w = s.watch("/c/", r3).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision, r3);
    assert_eq!(next_event(&mut w).await.value, [3]);

    assert!(matches!(
        s.compact(revisions[1]).await,
        Err(StoreError::Compacted { .. })
    ));
    let future = s.revision().await.unwrap() + 10;
    assert!(matches!(
        s.compact(future).await,
        Err(StoreError::Invalid(_))
    ));
}

/// The embedded store keeps a bounded history by itself (etcd's is its operator's to set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_history_is_bounded() {
    let f = Fixture::embedded_with(EmbeddedOptions { history: 5 }).await;
    let s = f.store();
    let first = s.put("/h/k", vec![0], Expect::Any).await.unwrap();
    let mut last = first;
    for i in 1..10 {
        last = s.put("/h/k", vec![i], Expect::Any).await.unwrap();
    }
    let mut w = s.watch("/h/", first).await.unwrap();
    match w.next().await {
        Err(StoreError::Compacted {
            compact_revision, ..
        }) => assert_eq!(compact_revision, last - 4),
        other => panic!("watch beyond the kept history: {other:?}"),
    }
    let mut w = s.watch("/h/", last - 4).await.unwrap();
    assert_eq!(next_event(&mut w).await.value, [5]);
    f.finish().await;
}
