//! The etcd store: etcd's v3 gRPC API (KV, Watch, Lease) through clients generated from the
//! subset of its protos in `api/proto/etcd/`, so it builds without `protoc` and links no etcd
//! client crate.
//!
//! Every replica of `ferrinet-api` talks to the same etcd cluster; etcd's revisions,
//! compare-and-swap transactions and watches are the store's model as they are. The
//! connection is one HTTP/2 channel that reconnects by itself, trying the endpoints in turn;
//! watches and campaigns resume on the new connection (see [`watch`] and [`election`]).

mod connect;
mod election;
mod watch;

use std::time::Duration;

use tonic::transport::Channel;

pub use connect::{EtcdConfig, EtcdTls};

use super::types::{Action, FenceKind, Outcome};
use super::{Campaign, Fence, KeyValue, Listing, Revision, StoreError, Txn, Watch};

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod pb {
    pub(crate) mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub(crate) mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

use pb::etcdserverpb as rpc;
use pb::etcdserverpb::kv_client::KvClient;
use pb::etcdserverpb::lease_client::LeaseClient;
use pb::etcdserverpb::watch_client::WatchClient;

/// Keys per page of a list: pages are read at the revision of the first, so the listing is
/// one snapshot however large.
const LIST_PAGE: i64 = 1000;

#[derive(Clone)]
pub(crate) struct Etcd {
    endpoints: String,
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
}

impl Etcd {
    /// Sets up the channel and checks that etcd answers.
    pub(crate) async fn connect(config: &EtcdConfig) -> Result<Self, StoreError> {
        let channel = connect::channel(config)?;
        let etcd = Self {
            endpoints: config.endpoints.join(","),
            kv: KvClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
            watch: WatchClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
            lease: LeaseClient::new(channel),
        };
        match tokio::time::timeout(config.connect_timeout, etcd.revision()).await {
            Ok(Ok(_)) => Ok(etcd),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::grpc(
                etcd.context("connect to"),
                tonic::Status::deadline_exceeded(format!(
                    "no answer within {:?}",
                    config.connect_timeout
                )),
            )),
        }
    }

    fn context(&self, what: &str) -> String {
        format!("{what} etcd at {}", self.endpoints)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .kv
            .clone()
            .range(rpc::RangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })
            .await
            .map_err(|s| StoreError::grpc(self.context(&format!("get {key} from")), s))?
            .into_inner();
        resp.kvs
            .into_iter()
            .next()
            .map(|kv| key_value(kv, &self.context("read")))
            .transpose()
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let ctx = self.context(&format!("list {prefix} in"));
        let range_end = prefix_end(prefix);
        let mut key = prefix.as_bytes().to_vec();
        let (mut revision, mut items) = (0i64, Vec::new());
        loop {
            let resp = self
                .kv
                .clone()
                .range(rpc::RangeRequest {
                    key,
                    range_end: range_end.clone(),
                    limit: LIST_PAGE,
                    revision,
                    ..Default::default()
                })
                .await
                .map_err(|s| StoreError::grpc(&ctx, s))?
                .into_inner();
            if revision == 0 {
                revision = header_revision(resp.header.as_ref());
            }
            let last = resp.kvs.last().map(|kv| kv.key.clone());
            for kv in resp.kvs {
                items.push(key_value(kv, &ctx)?);
            }
            match last {
                Some(mut last) if resp.more => {
                    // The smallest key after the last one.
                    last.push(0);
                    key = last;
                }
                _ => break,
            }
        }
        Ok(Listing {
            revision: to_revision(revision),
            items,
        })
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<Outcome, StoreError> {
        let ctx = self.context("write to");
        let Txn { ops, fence } = txn;
        let mut compare = Vec::new();
        let (mut success, mut failure) = (Vec::new(), Vec::new());
        // Every compare is on a key's mod revision; on failure the branch reads each compared
        // key back (in compare order), to tell which one did not match.
        let mut compare_mod = |key: &str, expected: Revision| {
            compare.push(rpc::Compare {
                result: rpc::compare::CompareResult::Equal.into(),
                target: rpc::compare::CompareTarget::Mod.into(),
                key: key.as_bytes().to_vec(),
                target_union: Some(rpc::compare::TargetUnion::ModRevision(to_etcd(expected))),
                range_end: Vec::new(),
            });
            failure.push(request(rpc::request_op::Request::RequestRange(
                rpc::RangeRequest {
                    key: key.as_bytes().to_vec(),
                    keys_only: true,
                    ..Default::default()
                },
            )));
        };
        let fence_key = match &fence {
            Some(Fence {
                kind: FenceKind::Key { key, revision },
                ..
            }) => {
                compare_mod(key, *revision);
                Some((key.clone(), *revision))
            }
            Some(f) => {
                return Err(StoreError::Invalid(format!(
                    "a fence of election {} from another store",
                    f.election
                )));
            }
            None => None,
        };
        for op in &ops {
            if let Some(expected) = op.expect.revision() {
                compare_mod(&op.key, expected);
            }
        }
        for op in &ops {
            let key = op.key.as_bytes().to_vec();
            match &op.action {
                Action::Put(value) => success.push(request(rpc::request_op::Request::RequestPut(
                    rpc::PutRequest {
                        key,
                        value: value.clone(),
                        ..Default::default()
                    },
                ))),
                Action::Delete => success.push(request(
                    rpc::request_op::Request::RequestDeleteRange(rpc::DeleteRangeRequest {
                        key,
                        ..Default::default()
                    }),
                )),
                Action::Check => {}
            }
        }
        let resp = self
            .kv
            .clone()
            .txn(rpc::TxnRequest {
                compare,
                success,
                failure,
            })
            .await
            .map_err(|s| StoreError::grpc(&ctx, s))?
            .into_inner();
        let revision = to_revision(header_revision(resp.header.as_ref()));
        if resp.succeeded {
            let changed = resp.responses.iter().any(|r| match &r.response {
                Some(rpc::response_op::Response::ResponsePut(_)) => true,
                Some(rpc::response_op::Response::ResponseDeleteRange(d)) => d.deleted > 0,
                _ => false,
            });
            return Ok(Outcome { revision, changed });
        }
        let actual = |r: &rpc::ResponseOp| match &r.response {
            Some(rpc::response_op::Response::ResponseRange(range)) => range
                .kvs
                .first()
                .map_or(0, |kv| to_revision(kv.mod_revision)),
            _ => 0,
        };
        let mut read_back = resp.responses.iter();
        if let Some((_, revision)) = fence_key
            && read_back.next().is_none_or(|r| actual(r) != revision)
        {
            return Err(StoreError::Fenced {
                election: fence.map(|f| f.election).unwrap_or_default(),
            });
        }
        let compared = ops.iter().filter(|op| op.expect.revision().is_some());
        for (op, r) in compared.zip(read_back) {
            let actual = actual(r);
            if !op.expect.matches(actual) {
                return Err(StoreError::Conflict {
                    key: op.key.clone(),
                    expected: op.expect,
                    actual,
                });
            }
        }
        // Every compare held when read back: only a change between the compare and the read
        // (impossible within one etcd transaction) could get here.
        Err(StoreError::protocol(
            ctx,
            "transaction failed although its compares hold",
        ))
    }

    pub(crate) async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let result = self
            .kv
            .clone()
            .compact(rpc::CompactionRequest {
                revision: to_etcd(revision),
                physical: true,
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // etcd names these only in the message ("mvcc: required revision has been
            // compacted" / "... is a future revision").
            Err(s) if s.code() == tonic::Code::OutOfRange && s.message().contains("compacted") => {
                Err(StoreError::Compacted {
                    requested: revision,
                    compact_revision: revision,
                })
            }
            Err(s) if s.code() == tonic::Code::OutOfRange => Err(StoreError::Invalid(format!(
                "compaction to revision {revision}: {}",
                s.message()
            ))),
            Err(s) => Err(StoreError::grpc(self.context("compact"), s)),
        }
    }

    pub(crate) async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch, StoreError> {
        // "From now" is fixed before returning, as on the embedded store: etcd would fix it
        // only once the stream is created, after writes confirmed in between.
        let from = match from {
            0 => self.revision().await? + 1,
            from => from,
        };
        Ok(watch::spawn(self.clone(), prefix.to_owned(), from))
    }

    /// The current revision of the store.
    pub(crate) async fn revision(&self) -> Result<Revision, StoreError> {
        let resp = self
            .kv
            .clone()
            .range(rpc::RangeRequest {
                key: b"/".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .map_err(|s| StoreError::grpc(self.context("read the revision of"), s))?
            .into_inner();
        Ok(to_revision(header_revision(resp.header.as_ref())))
    }

    pub(crate) fn campaign(&self, election: &str, identity: &str, ttl: Duration) -> Campaign {
        election::spawn(self.clone(), election, identity, ttl)
    }

    pub(crate) async fn leader(&self, election: &str) -> Result<Option<String>, StoreError> {
        let ctx = self.context(&format!("read election {election} in"));
        let prefix = format!("{election}/");
        let resp = self
            .kv
            .clone()
            .range(oldest_candidate(&prefix))
            .await
            .map_err(|s| StoreError::grpc(&ctx, s))?
            .into_inner();
        resp.kvs
            .into_iter()
            .next()
            .map(|kv| utf8(kv.value, &ctx))
            .transpose()
    }
}

/// The range request for the oldest key under `prefix`: the leader of an election.
fn oldest_candidate(prefix: &str) -> rpc::RangeRequest {
    rpc::RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: rpc::range_request::SortOrder::Ascend.into(),
        sort_target: rpc::range_request::SortTarget::Create.into(),
        ..Default::default()
    }
}

fn request(r: rpc::request_op::Request) -> rpc::RequestOp {
    rpc::RequestOp { request: Some(r) }
}

/// The end of the key range of `prefix` (exclusive): the prefix with its last byte incremented.
/// Prefixes end with `/`, so the last byte never overflows.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn header_revision(header: Option<&rpc::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

fn to_revision(r: i64) -> Revision {
    Revision::try_from(r).unwrap_or(0)
}

fn to_etcd(r: Revision) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

fn utf8(bytes: Vec<u8>, ctx: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes)
        .map_err(|e| StoreError::protocol(ctx, format!("not UTF-8: {:?}", e.as_bytes())))
}

fn key_value(kv: pb::mvccpb::KeyValue, ctx: &str) -> Result<KeyValue, StoreError> {
    Ok(KeyValue {
        key: utf8(kv.key, ctx)?,
        value: kv.value,
        create_revision: to_revision(kv.create_revision),
        mod_revision: to_revision(kv.mod_revision),
    })
}

/// Exponential back-off between reconnection attempts of watches and campaigns.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}
