//! `ferrinet-api` replicas on an [`EtcdCluster`](super::EtcdCluster): plaintext, each on a
//! fixed loopback port (so that a restarted replica keeps the address the others know it by),
//! all campaigning for one election; and [`Writer`], a client that survives a failover by
//! retrying a write that found no leader (or no process) against the other replicas.
//!
//! Which replica leads is read from its log (the daemon's "leading: starting the allocator"
//! and "not leading any more" lines): a write cannot tell, since a follower forwards it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use tonic::transport::Channel;

use super::{EtcdCluster, free_ports};
use crate::WAIT;
use crate::api::{ApiOpts, ApiProc};

/// What the daemon logs when a replica takes the lead.
const LEADING: &str = "leading: starting the allocator";
/// What the daemon logs when a replica loses it.
const NOT_LEADING: &str = "not leading any more";
/// Times a replica is started on a fresh port when its probed port was taken meanwhile.
const START_ATTEMPTS: usize = 5;

/// How to run the replicas.
#[derive(Debug, Clone)]
pub struct RegionOpts {
    /// Replicas.
    pub replicas: usize,
    /// `store.lease_s`: how long a dead leader blocks writes.
    pub lease_s: u64,
    /// TOML appended to every replica's configuration.
    pub extra: String,
}

impl Default for RegionOpts {
    fn default() -> Self {
        Self {
            replicas: 2,
            lease_s: 2,
            extra: String::new(),
        }
    }
}

/// An etcd cluster and the `ferrinet-api` replicas on it; everything is killed on drop.
#[derive(Debug)]
pub struct EtcdRegion {
    /// The replicas (fields first: they are dropped before the cluster they use).
    pub replicas: Vec<ApiProc>,
    /// The etcd cluster.
    pub etcd: EtcdCluster,
    dirs: Vec<tempfile::TempDir>,
}

impl EtcdRegion {
    /// Starts `opts.replicas` replicas on `etcd` (every member as an endpoint) and returns once
    /// each serves; none needs to lead yet ([`EtcdRegion::wait_leader`]).
    pub fn start(etcd: EtcdCluster, opts: &RegionOpts) -> anyhow::Result<Self> {
        let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let store = format!(
            "backend = \"etcd\"\nendpoints = [{}]\nlease_s = {}",
            endpoints.join(", "),
            opts.lease_s
        );
        let mut replicas = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..opts.replicas {
            let dir = tempfile::tempdir().context("tempdir")?;
            let mut last = None;
            for _ in 0..START_ATTEMPTS {
                let port = free_ports(1)?[0];
                let api = ApiOpts {
                    listen: Some(format!("127.0.0.1:{port}")),
                    store: Some(store.clone()),
                    extra: opts.extra.clone(),
                };
                match ApiProc::start_plain(dir.path(), &api) {
                    Ok(p) => {
                        replicas.push(p);
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e.context(format!("replica {i} did not start")));
            }
            dirs.push(dir);
        }
        Ok(Self {
            replicas,
            etcd,
            dirs,
        })
    }

    /// The replicas' gRPC addresses (`HOST:PORT`), in replica order.
    pub fn addrs(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.addr.clone()).collect()
    }

    /// Whether replica `i` leads now, as its log (of the current process) says.
    pub fn leads(&self, i: usize) -> bool {
        leads(&self.replicas[i].log_since_start())
    }

    /// The replicas that lead now, as their logs say (more than one only for the moment
    /// between a lost lease and the old leader noticing).
    pub fn leaders(&mut self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].running() && self.leads(i))
            .collect()
    }

    /// Waits until exactly one running replica leads; returns it.
    pub async fn wait_leader(&mut self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let [one] = self.leaders()[..] {
                return Ok(one);
            }
            if Instant::now() > deadline {
                bail!(
                    "no single leader within {WAIT:?} (leading: {:?})\n{}",
                    self.leaders(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The tail of every replica's and member's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.replicas.iter().enumerate() {
            out += &format!("--- replica {i} log (tail):\n{}\n", tail(&r.log(), 40));
        }
        out + &self.etcd.logs()
    }

    /// Where replica `i` keeps its files.
    pub fn dir(&self, i: usize) -> PathBuf {
        self.dirs[i].path().to_owned()
    }
}

/// Whether a replica's log says it leads: it took the lead and did not lose it since.
pub fn leads(log: &str) -> bool {
    match (log.rfind(LEADING), log.rfind(NOT_LEADING)) {
        (Some(took), Some(lost)) => took > lost,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether a failed call may succeed at another replica or a moment later: no leader (or the
/// leader's store fenced off), the replica gone (a transport error) or not answering in time.
/// Everything else is the call's own outcome.
pub fn retryable(s: &tonic::Status) -> bool {
    use tonic::Code;
    match s.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => true,
        // A connection reset under a call surfaces as an HTTP/2 error.
        Code::Internal => s.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

/// How [`Writer`] retries.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Pause after a failed attempt.
    pub pause: Duration,
    /// Bound on one call.
    pub call_timeout: Duration,
}

impl Default for Retry {
    /// Enough for a failover with a lease of a few seconds on a loaded machine: 600 attempts
    /// 50 ms apart.
    fn default() -> Self {
        Self {
            attempts: 600,
            pause: Duration::from_millis(50),
            call_timeout: Duration::from_secs(20),
        }
    }
}

/// The outcome of a create that did not fail.
#[derive(Debug, Clone)]
pub enum Created {
    /// This call created it: the object as answered.
    New(Box<pb::Object>),
    /// A retry found it there: an earlier attempt whose answer was lost created it.
    Existed,
}

/// A successful write and how many attempts it took.
#[derive(Debug, Clone)]
pub struct Done<T> {
    /// The outcome.
    pub value: T,
    /// Attempts made (1: no retry).
    pub attempts: u32,
}

/// A client of every replica that moves on to the next replica when a write finds no leader.
#[derive(Debug, Clone)]
pub struct Writer {
    clients: Vec<RegionApiClient<Channel>>,
    retry: Retry,
}

impl Writer {
    /// Lazily connecting clients of `addrs` (`HOST:PORT`); a replica that is down is
    /// reconnected to when it is back. Must be called inside a tokio runtime.
    pub fn new(addrs: &[String], retry: Retry) -> anyhow::Result<Self> {
        if addrs.is_empty() {
            bail!("a writer needs at least one replica");
        }
        let clients = addrs
            .iter()
            .map(|a| {
                let ch = Channel::from_shared(format!("http://{a}"))
                    .with_context(|| format!("replica address {a:?}"))?
                    .connect_timeout(Duration::from_secs(2))
                    .connect_lazy();
                Ok(RegionApiClient::new(ch))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { clients, retry })
    }

    /// The client of replica `i`, for reads.
    pub fn client(&self, i: usize) -> RegionApiClient<Channel> {
        self.clients[i % self.clients.len()].clone()
    }

    /// Replicas.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are none (never: [`Writer::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Creates `object`, first through replica `first`, then, after each retryable failure
    /// ([`retryable`]), through the next one. ALREADY_EXISTS after a failed attempt counts as
    /// done (that attempt created it); on the first attempt it is the caller's error.
    pub async fn create(
        &self,
        object: pb::Object,
        first: usize,
    ) -> Result<Done<Created>, tonic::Status> {
        let mut attempt = 0;
        loop {
            let mut c = self.client(first + attempt as usize);
            attempt += 1;
            let mut req = tonic::Request::new(pb::CreateRequest {
                object: Some(object.clone()),
            });
            req.set_timeout(self.retry.call_timeout);
            let status = match c.create(req).await {
                Ok(r) => {
                    return Ok(Done {
                        value: Created::New(Box::new(r.into_inner())),
                        attempts: attempt,
                    });
                }
                Err(s) if s.code() == tonic::Code::AlreadyExists && attempt > 1 => {
                    return Ok(Done {
                        value: Created::Existed,
                        attempts: attempt,
                    });
                }
                Err(s) => s,
            };
            if !retryable(&status) || attempt >= self.retry.attempts {
                return Err(status);
            }
            tokio::time::sleep(self.retry.pause).await;
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_leadership_line_counts() {
        assert!(!leads(""));
        assert!(leads(
            "x\nINFO leading: starting the allocator and the region actor\n"
        ));
        assert!(!leads(
            "leading: starting the allocator\nWARN not leading any more: region actor stopped"
        ));
        assert!(leads(
            "leading: starting the allocator\nnot leading any more\nleading: starting the allocator"
        ));
    }

    #[test]
    fn only_leaderless_and_transport_failures_are_retried() {
        assert!(retryable(&tonic::Status::unavailable("no leader")));
        assert!(retryable(&tonic::Status::unknown("transport error")));
        assert!(retryable(&tonic::Status::internal(
            "h2 protocol error: reset"
        )));
        assert!(!retryable(&tonic::Status::internal("bug")));
        assert!(!retryable(&tonic::Status::already_exists("there")));
        assert!(!retryable(&tonic::Status::invalid_argument(
            "spec.ips[0]: bad"
        )));
        assert!(!retryable(&tonic::Status::aborted("conflict")));
    }
}
