//! Reads and writes: revisions, compare-and-swap, transactions, listing, input checks,
//! durability.

use ferrinet_api::store::{Expect, StoreError, Txn};

use crate::harness::{Fixture, conformance};

conformance!(
    crud_with_revisions,
    compare_conflicts,
    txn_is_all_or_nothing,
    list_by_prefix,
    list_is_one_snapshot_across_pages,
    invalid_input_is_refused,
    data_survives_reconnect,
    concurrent_writers_serialize_on_compares,
);

async fn crud_with_revisions(f: &mut Fixture) {
    let s = f.store();
    let key = "/ferrinet/v1/networks/ns/net-a";
    assert_eq!(s.get(key).await.unwrap(), None);

    let r1 = s.put(key, b"one".to_vec(), Expect::Any).await.unwrap();
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!((kv.key.as_str(), kv.value.as_slice()), (key, &b"one"[..]));
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r1));
    assert_eq!(s.revision().await.unwrap(), r1);

    let r2 = s.put(key, b"two".to_vec(), Expect::Any).await.unwrap();
    assert!(r2 > r1);
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!(kv.value, b"two");
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r2));

    let r3 = s.delete(key, Expect::Any).await.unwrap().unwrap();
    assert!(r3 > r2);
    assert_eq!(s.get(key).await.unwrap(), None);
    // Deleting what is not there changes nothing, not even the revision.
    assert_eq!(s.delete(key, Expect::Any).await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), r3);

    // A key created again starts a new life.
    let r4 = s.put(key, Vec::new(), Expect::Any).await.unwrap();
    let kv = s.get(key).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
    assert!(kv.value.is_empty());
}

async fn compare_conflicts(f: &mut Fixture) {
    let s = f.store();
    let key = "/cas/a";
    let r1 = s.put(key, b"1".to_vec(), Expect::Absent).await.unwrap();
    match s.put(key, b"x".to_vec(), Expect::Absent).await {
        Err(StoreError::Conflict {
            key: k,
            expected,
            actual,
        }) => assert_eq!((k.as_str(), expected, actual), (key, Expect::Absent, r1)),
        other => panic!("create of an existing key: {other:?}"),
    }

    let r2 = s
        .put(key, b"2".to_vec(), Expect::ModRevision(r1))
        .await
        .unwrap();
    match s.put(key, b"x".to_vec(), Expect::ModRevision(r1)).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, r2),
        other => panic!("update from a stale read: {other:?}"),
    }
    assert_eq!(s.get(key).await.unwrap().unwrap().value, b"2");
    assert_eq!(s.revision().await.unwrap(), r2, "a conflict writes nothing");

    match s.delete(key, Expect::ModRevision(r1)).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, r2),
        other => panic!("delete from a stale read: {other:?}"),
    }
    assert!(
        s.delete(key, Expect::ModRevision(r2))
            .await
            .unwrap()
            .is_some()
    );

    // A missing key's mod revision is 0: ModRevision(0) creates, anything else conflicts.
    match s.put(key, b"x".to_vec(), Expect::ModRevision(r2)).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 0),
        other => panic!("update of a missing key: {other:?}"),
    }
    s.put(key, b"3".to_vec(), Expect::ModRevision(0))
        .await
        .unwrap();
    assert!(matches!(
        s.delete("/cas/none", Expect::Absent).await,
        Ok(None)
    ));
}

async fn txn_is_all_or_nothing(f: &mut Fixture) {
    let s = f.store();
    let r1 = s.put("/t/a", b"a".to_vec(), Expect::Absent).await.unwrap();

    let r = s
        .txn(
            Txn::new()
                .put("/t/b", b"b".to_vec(), Expect::Absent)
                .put("/t/c", b"c".to_vec(), Expect::Absent)
                .delete("/t/a", Expect::ModRevision(r1)),
        )
        .await
        .unwrap();
    assert!(r > r1);
    assert_eq!(s.get("/t/a").await.unwrap(), None);
    for key in ["/t/b", "/t/c"] {
        let kv = s.get(key).await.unwrap().unwrap();
        assert_eq!(
            kv.mod_revision, r,
            "{key}: one revision for the whole transaction"
        );
    }

    // One failing compare: nothing of the transaction happens.
    let failed = s
        .txn(
            Txn::new()
                .put("/t/d", b"d".to_vec(), Expect::Absent)
                .delete("/t/c", Expect::Any)
                .put("/t/b", b"x".to_vec(), Expect::Absent),
        )
        .await;
    match failed {
        Err(StoreError::Conflict { key, actual, .. }) => {
            assert_eq!((key.as_str(), actual), ("/t/b", r));
        }
        other => panic!("conflicting transaction: {other:?}"),
    }
    assert_eq!(s.get("/t/d").await.unwrap(), None);
    assert!(s.get("/t/c").await.unwrap().is_some());
    assert_eq!(s.get("/t/b").await.unwrap().unwrap().value, b"b");
    assert_eq!(s.revision().await.unwrap(), r);

    // A check guards a transaction on a key it does not write.
    let guarded =
        Txn::new()
            .check("/t/c", Expect::ModRevision(r))
            .put("/t/e", b"e".to_vec(), Expect::Any);
    let r2 = s.txn(guarded.clone()).await.unwrap();
    assert!(r2 > r);
    s.put("/t/c", b"c2".to_vec(), Expect::Any).await.unwrap();
    assert!(matches!(
        s.txn(guarded).await,
        Err(StoreError::Conflict { key, .. }) if key == "/t/c"
    ));

    // A transaction that changes nothing keeps the revision.
    let now = s.revision().await.unwrap();
    let r3 = s
        .txn(
            Txn::new()
                .check("/t/c", Expect::Any)
                .delete("/t/none", Expect::Any),
        )
        .await
        .unwrap();
    assert_eq!(r3, now);
}

async fn list_by_prefix(f: &mut Fixture) {
    let s = f.store();
    for key in ["/l/a/2", "/l/a/1", "/l/ab/1", "/l/b/1", "/l/a/sub/3"] {
        s.put(key, key.as_bytes().to_vec(), Expect::Absent)
            .await
            .unwrap();
    }
    let listing = s.list("/l/a/").await.unwrap();
    let keys: Vec<_> = listing.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/l/a/1", "/l/a/2", "/l/a/sub/3"]);
    assert!(listing.items.iter().all(|kv| kv.value == kv.key.as_bytes()));
    assert_eq!(listing.revision, s.revision().await.unwrap());

    let all = s.list("/").await.unwrap();
    assert_eq!(all.items.len(), 5);
    let empty = s.list("/l/none/").await.unwrap();
    assert!(empty.items.is_empty());
    assert_eq!(empty.revision, listing.revision);
}

async fn list_is_one_snapshot_across_pages(f: &mut Fixture) {
    let s = f.store();
    // More keys than one page of an etcd range (1000).
    for batch in 0..12 {
        let txn = (0..100).fold(Txn::new(), |t, i| {
            t.put(
                format!("/many/k{:05}", batch * 100 + i),
                vec![1],
                Expect::Absent,
            )
        });
        s.txn(txn).await.unwrap();
    }
    let listing = s.list("/many/").await.unwrap();
    assert_eq!(listing.items.len(), 1200);
    assert!(listing.items.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(listing.revision, s.revision().await.unwrap());
}

async fn invalid_input_is_refused(f: &mut Fixture) {
    let s = f.store();
    let before = s.revision().await.unwrap();
    assert!(invalid(s.put("relative", vec![], Expect::Any).await));
    assert!(invalid(s.put("/dir/", vec![], Expect::Any).await));
    assert!(invalid(s.get("/a//b").await));
    assert!(invalid(s.list("/no-slash").await));
    assert!(invalid(s.watch("/no-slash", 0).await));
    let big = vec![0; ferrinet_api::store::MAX_VALUE_LEN + 1];
    assert!(invalid(s.put("/big", big, Expect::Any).await));
    assert!(invalid(s.txn(Txn::new()).await));
    let dup = Txn::new()
        .put("/d", vec![], Expect::Any)
        .delete("/d", Expect::Any);
    assert!(invalid(s.txn(dup).await));
    assert_eq!(s.revision().await.unwrap(), before);
}

fn invalid<T>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Invalid(_)))
}

async fn data_survives_reconnect(f: &mut Fixture) {
    let r1 = f
        .store()
        .put("/keep/a", b"a".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let r2 = f
        .store()
        .txn(Txn::new().put("/keep/b", b"b".to_vec(), Expect::Absent))
        .await
        .unwrap();
    f.reconnect().await;
    let s = f.store();
    assert_eq!(s.revision().await.unwrap(), r2);
    let a = s.get("/keep/a").await.unwrap().unwrap();
    assert_eq!((a.value.as_slice(), a.mod_revision), (&b"a"[..], r1));
    let r3 = s.put("/keep/c", vec![], Expect::Absent).await.unwrap();
    assert!(r3 > r2);
}

async fn concurrent_writers_serialize_on_compares(f: &mut Fixture) {
    // Many creates of one key at once: exactly one wins.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32u8 {
        let s = f.store().clone();
        tasks.spawn(async move { s.put("/race/k", vec![i], Expect::Absent).await });
    }
    let (mut won, mut lost) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { .. }) => lost += 1,
            Err(e) => panic!("concurrent create: {e}"),
        }
    }
    assert_eq!((won, lost), (1, 31));

    // Read-modify-write loops that retry on conflict lose no update.
    const WORKERS: u64 = 8;
    const INCREMENTS: u64 = 10;
    f.store()
        .put("/race/counter", 0u64.to_be_bytes().to_vec(), Expect::Absent)
        .await
        .unwrap();
    for _ in 0..WORKERS {
        let s = f.store().clone();
        tasks.spawn(async move {
            for _ in 0..INCREMENTS {
                loop {
                    let kv = s.get("/race/counter").await.unwrap().unwrap();
                    let n = u64::from_be_bytes(kv.value.try_into().unwrap());
                    let next = (n + 1).to_be_bytes().to_vec();
                    match s
                        .put("/race/counter", next, Expect::ModRevision(kv.mod_revision))
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("increment: {e}"),
                    }
                }
            }
            Ok(0)
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let kv = f.store().get("/race/counter").await.unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(kv.value.try_into().unwrap()),
        WORKERS * INCREMENTS
    );
}
