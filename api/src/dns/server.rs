//! The running server: hickory-server's UDP and TCP loops in front of one request handler that
//! answers from the current [`RecordSet`], and the [`DnsHandle`] that swaps the set.
//!
//! The set is replaced whole: a request takes the current snapshot (an `Arc`) once and answers
//! from it alone, so no response mixes two versions, and an update is seen by every request that
//! starts after [`DnsHandle::replace`] returns.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use super::answer::{Answer, answer, soa_record};
use super::records::{DnsEntry, EntryError, RecordSet, dns_name};

/// A TCP connection that sends no request for this long is closed, so idle clients cannot
/// hold connections open.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Responses queued per TCP connection (hickory's own default).
const TCP_RESPONSE_BUFFER: usize = 32;

/// The EDNS version spoken (RFC 6891).
const EDNS_VERSION: u8 = 0;

/// Listening sockets, bound by the caller; `None` turns one off.
#[derive(Debug, Default)]
pub struct DnsListeners {
    /// UDP socket.
    pub udp: Option<UdpSocket>,
    /// TCP listener (for answers that do not fit a datagram, and for clients that prefer TCP).
    pub tcp: Option<TcpListener>,
}

/// The server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DnsServeError {
    /// A socket failed and its loop ended.
    #[error("the DNS server failed")]
    Net(#[source] NetError),
}

/// One published version of the records.
#[derive(Debug)]
struct Snapshot {
    set: Arc<RecordSet>,
    soa: Record,
    serial: u32,
}

/// Replaces the served records while the server runs. Cheap to clone; every clone controls
/// the same server.
#[derive(Debug, Clone)]
pub struct DnsHandle {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl DnsHandle {
    /// A handle serving `set` first.
    pub fn new(set: RecordSet) -> Self {
        let soa = soa_record(set.zone(), 1);
        Self {
            current: Arc::new(RwLock::new(Arc::new(Snapshot {
                set: Arc::new(set),
                soa,
                serial: 1,
            }))),
        }
    }

    /// Serves `set` from now on, instead of the previous set; requests that started before
    /// finish with the previous one. The SOA serial goes up by one.
    pub fn replace(&self, set: RecordSet) {
        // Nothing panics while the lock is held, so a poisoned lock still holds a whole snapshot.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let serial = current.serial.wrapping_add(1);
        tracing::debug!(
            zone = %set.zone(),
            records = set.len(),
            problems = set.problems().len(),
            serial,
            "dns records replaced"
        );
        *current = Arc::new(Snapshot {
            soa: soa_record(set.zone(), serial),
            set: Arc::new(set),
            serial,
        });
    }

    /// The set served now.
    pub fn current(&self) -> Arc<RecordSet> {
        self.snapshot().set.clone()
    }

    /// The name `entry` is served under in the current zone (see [`dns_name`]).
    pub fn name_of(&self, entry: &DnsEntry) -> Result<String, EntryError> {
        dns_name(self.snapshot().set.zone(), entry)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Answers every request from the handle's current snapshot.
struct Handler {
    handle: DnsHandle,
}

/// The EDNS of the response: present exactly when the request had one (RFC 6891 §6.1.1).
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(EDNS_VERSION);
        edns
    })
}

#[tonic::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let snapshot = self.handle.snapshot();
        let edns = response_edns(request);
        let ans = if request
            .edns
            .as_ref()
            .is_some_and(|e| e.version() > EDNS_VERSION)
        {
            Answer::error(ResponseCode::BADVERS)
        } else if request.metadata.op_code != OpCode::Query {
            // Updates, NOTIFY and the rest: the records come from the region API only.
            Answer::error(ResponseCode::NotImp)
        } else {
            match request.request_info() {
                Ok(info) => answer(
                    &snapshot.set,
                    &snapshot.soa,
                    info.query.name(),
                    info.query.query_type(),
                    info.query.query_class(),
                ),
                // Not exactly one question.
                Err(_) => Answer::error(ResponseCode::FormErr),
            }
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = ans.code;
        metadata.authoritative = ans.authoritative;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            ans.answers,
            std::iter::empty::<&Record>(),
            ans.soa,
            std::iter::empty::<&Record>(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(src = %request.src(), %error, "dns response not sent");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// Serves the records of `handle` on the listeners until `shutdown` completes, then stops
/// accepting and returns once every loop has ended. A socket loop that ends on its own (the
/// socket failed) ends the server with its error instead of leaving it half deaf.
pub async fn serve(
    listeners: DnsListeners,
    handle: DnsHandle,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DnsServeError> {
    let udp_addr = listeners.udp.as_ref().and_then(|s| s.local_addr().ok());
    let tcp_addr = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok());
    if listeners.udp.is_none() && listeners.tcp.is_none() {
        shutdown.await;
        return Ok(());
    }
    let mut server = Server::new(Handler { handle });
    if let Some(socket) = listeners.udp {
        server.register_socket(socket);
    }
    if let Some(listener) = listeners.tcp {
        server.register_listener(listener, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }
    tracing::info!(udp = ?udp_addr, tcp = ?tcp_addr, "dns listening");
    let token = server.shutdown_token().clone();
    let early = tokio::select! {
        () = shutdown => None,
        r = server.block_until_done() => Some(r),
    };
    if let Some(r) = early {
        tracing::warn!("dns server stopped before shutdown");
        token.cancel();
        return r.map_err(DnsServeError::Net);
    }
    token.cancel();
    server.block_until_done().await.map_err(DnsServeError::Net)
}
