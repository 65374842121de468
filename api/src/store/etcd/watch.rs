//! etcd watches. Each [`Watch`] is a task holding one etcd watch stream; when the stream breaks
//! (etcd restarted, member gone, connection lost) the task opens a new one from the revision
//! after the last event it delivered, so the consumer sees every change exactly once across
//! reconnections, or [`StoreError::Compacted`] if etcd compacted that history meanwhile.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::pb::mvccpb::event::EventType;
use super::{Backoff, Etcd, prefix_end, rpc, to_etcd, to_revision, utf8};
use crate::store::watch::WATCH_BUFFER;
use crate::store::{EventKind, Revision, StoreError, Watch, WatchEvent};

pub(super) fn spawn(etcd: Etcd, prefix: String, from: Revision) -> Watch {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let task = tokio::spawn(run(etcd, prefix, from, tx));
    Watch::new(rx, task.abort_handle())
}

/// Why a stream ended.
enum End {
    /// The consumer dropped the watch, or the watch failed for good (the error was sent).
    Done,
    /// The stream broke; open another.
    Broken(String),
}

async fn run(
    etcd: Etcd,
    prefix: String,
    mut next: Revision,
    tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
) {
    let mut backoff = Backoff::new();
    loop {
        match stream(&etcd, &prefix, &mut next, &tx, &mut backoff).await {
            End::Done => return,
            End::Broken(why) => {
                tracing::debug!(prefix, next, why, "etcd watch broke, resuming");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = tx.closed() => return,
        }
    }
}

/// Runs one watch stream from `next` on, advancing `next` past every delivered event.
async fn stream(
    etcd: &Etcd,
    prefix: &str,
    next: &mut Revision,
    tx: &mpsc::Sender<Result<WatchEvent, StoreError>>,
    backoff: &mut Backoff,
) -> End {
    let ctx = etcd.context(&format!("watch {prefix} in"));
    // etcd ends the stream when the client closes its side: `requests` stays open as long as
    // the stream is read.
    let (requests, rx) = mpsc::channel(1);
    let create = rpc::WatchRequest {
        request_union: Some(rpc::watch_request::RequestUnion::CreateRequest(
            rpc::WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix),
                start_revision: to_etcd(*next),
                ..Default::default()
            },
        )),
    };
    if requests.send(create).await.is_err() {
        return End::Broken("request stream closed".into());
    }
    let mut responses = match etcd.watch.clone().watch(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return End::Broken(s.to_string()),
    };
    loop {
        let resp = tokio::select! {
            r = responses.message() => r,
            () = tx.closed() => return End::Done,
        };
        let resp = match resp {
            Ok(Some(r)) => r,
            Ok(None) => return End::Broken("etcd closed the stream".into()),
            Err(s) => return End::Broken(s.to_string()),
        };
        if resp.compact_revision > 0 {
            let _ = tx
                .send(Err(StoreError::Compacted {
                    requested: *next,
                    compact_revision: to_revision(resp.compact_revision),
                }))
                .await;
            return End::Done;
        }
        if resp.canceled {
            let _ = tx
                .send(Err(StoreError::protocol(
                    ctx,
                    format!("etcd cancelled the watch: {}", resp.cancel_reason),
                )))
                .await;
            return End::Done;
        }
        if resp.created {
            backoff.reset();
            // A watch "from now" is pinned to the revision etcd started it at, so that a
            // reconnection resumes there instead of skipping what happened in between.
            if *next == 0 {
                *next = to_revision(resp.header.as_ref().map_or(0, |h| h.revision)) + 1;
            }
        }
        for event in resp.events {
            let Some(kv) = event.kv else { continue };
            let revision = to_revision(kv.mod_revision);
            let key = match utf8(kv.key, &ctx) {
                Ok(k) => k,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return End::Done;
                }
            };
            let kind = if event.r#type == EventType::Delete as i32 {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            let event = WatchEvent {
                revision,
                kind,
                key,
                value: if kind == EventKind::Put {
                    kv.value
                } else {
                    Vec::new()
                },
            };
            if tx.send(Ok(event)).await.is_err() {
                return End::Done;
            }
            *next = revision + 1;
        }
    }
}
