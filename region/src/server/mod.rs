//! The region route server: tasks around the pure [`RouteTable`](crate::table::RouteTable) and
//! [`Session`](crate::session::Session).
//!
//! ```text
//!  TLS listener --accept--+                                 +--> /routes.json /sessions.json
//!  compat listener -------+--> per session:                 |    /metrics /healthz /  (http)
//!                         |    reader task ---Batch(ops)--+ |         |
//!                         |      (decode, session state,  | |     Routes/Sessions (oneshot)
//!                         |       validate, authorize)    v v         v
//!                         |                          +---------------------+
//!                         |                          |     table task      |  owns RouteTable
//!                         |                          | (one message at a   |  + session handles
//!                         |                          |  time, never awaits)|
//!                         |                          +---------------------+
//!                         |                             | try_send, one item per recipient
//!                         |    writer task <--bounded queue (frames / dumps)--+
//!                         |      (coalesced writes)     full => disconnect, overflow counted
//! ```
//!
//! The caller binds the listeners (so tests can bind port 0 and a daemon can report readiness
//! as soon as they are bound) and passes a shutdown future; [`run`] returns once every session
//! has been closed.

pub mod authz;
mod http;
pub mod metrics;
mod peer;
pub mod table_task;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use self::authz::{Authz, Permission};
use self::metrics::Metrics;
use self::peer::PeerCtx;
use self::table_task::Listener;
use crate::tls::{self, TlsError};

/// Listening sockets, bound by the caller; `None` turns a listener off.
#[derive(Debug, Default)]
pub struct Listeners {
    /// TLS route listener.
    pub tls: Option<TcpListener>,
    /// Plaintext route listener (metalbond v1 peers).
    pub compat: Option<TcpListener>,
    /// HTTP status listener.
    pub http: Option<TcpListener>,
}

/// What a plaintext peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompatMode {
    /// Subscribe only; every UPDATE is refused and counted.
    #[default]
    ReadOnly,
    /// Announce any route (metalbond's behaviour): only for networks you trust.
    Trusted,
}

/// Everything the running server needs, validated and loaded. The defaults are the documented
/// defaults of the config file (`config::ServerSection` derives its defaults from these).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TLS setup; required when a TLS listener is given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest keepalive interval accepted.
    pub keepalive: Duration,
    /// Sessions over both listeners.
    pub max_sessions: usize,
    /// Send queue items per session.
    pub queue_len: usize,
    /// TLS handshake limit.
    pub handshake_timeout: Duration,
    /// Flush time at shutdown.
    pub shutdown_grace: Duration,
    /// What plaintext peers may do.
    pub compat_mode: CompatMode,
    /// What TLS identities may do.
    pub authz: Authz,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            tls: None,
            keepalive: Duration::from_secs(5),
            max_sessions: 10_000,
            queue_len: 4096,
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(2),
            compat_mode: CompatMode::ReadOnly,
            authz: Authz::default(),
        }
    }
}

impl ServerConfig {
    /// The defaults without TLS and with plaintext peers trusted: for tests and embedding.
    pub fn plaintext_trusted() -> Self {
        Self {
            compat_mode: CompatMode::Trusted,
            ..Self::default()
        }
    }
}

/// The server cannot start or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A TLS listener was given without certificates.
    #[error(
        "the TLS listener needs certificates: set tls.cert, tls.key and tls.client_ca (create them with `ferrinet-region certs --out pki --node NAME`), or start with `serve --dev-certs pki`"
    )]
    NoTls,
    /// The TLS setup cannot be built.
    #[error("cannot set up TLS")]
    Tls(#[from] TlsError),
    /// The HTTP server failed.
    #[error("http server failed")]
    Http(#[source] std::io::Error),
}

struct Shared {
    ctx: PeerCtx,
    sessions: Arc<Semaphore>,
    next_id: AtomicU64,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    compat: Arc<Permission>,
    authz: Authz,
}

/// Runs the server until `shutdown` completes, then closes every session and returns.
pub async fn run(
    listeners: Listeners,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    if listeners.tls.is_some() && cfg.tls.is_none() {
        return Err(ServerError::NoTls);
    }
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let registry = Arc::new(registry);
    let token = CancellationToken::new();
    // The inbox bound is the backpressure on announcers; reads carry up to ~1000 updates each.
    let (table_tx, table_rx) = mpsc::channel(256);
    let table = tokio::spawn(table_task::run(table_rx, metrics.clone()));

    let max_sessions = u32::try_from(cfg.max_sessions).unwrap_or(u32::MAX >> 3);
    let shared = Arc::new(Shared {
        ctx: PeerCtx {
            table: table_tx.clone(),
            metrics,
            keepalive: cfg.keepalive,
            queue_len: cfg.queue_len,
            shutdown: token.clone(),
            shutdown_grace: cfg.shutdown_grace,
        },
        sessions: Arc::new(Semaphore::new(max_sessions as usize)),
        next_id: AtomicU64::new(1),
        tls: cfg.tls.clone().map(TlsAcceptor::from),
        handshake_timeout: cfg.handshake_timeout,
        compat: Arc::new(match cfg.compat_mode {
            CompatMode::ReadOnly => Permission::ReadOnly,
            CompatMode::Trusted => Permission::Any,
        }),
        authz: cfg.authz.clone(),
    });

    let mut accepts = Vec::new();
    if let Some(l) = listeners.tls {
        accepts.push(tokio::spawn(accept_loop(l, Listener::Tls, shared.clone())));
    }
    if let Some(l) = listeners.compat {
        accepts.push(tokio::spawn(accept_loop(
            l,
            Listener::Compat,
            shared.clone(),
        )));
    }
    let mut http = listeners.http.map(|l| {
        tokio::spawn(http::serve(
            l,
            table_tx.clone(),
            registry.clone(),
            token.clone(),
        ))
    });
    drop(table_tx);

    // An HTTP server that dies early ends the server, rather than running without status.
    let http_early = tokio::select! {
        () = shutdown => None,
        r = async {
            match &mut http {
                Some(h) => h.await,
                None => std::future::pending().await,
            }
        } => Some(r),
    };
    tracing::info!("shutting down: closing listeners and sessions");
    token.cancel();
    for a in accepts {
        let _ = a.await;
    }
    // Every session holds a permit until its task is done.
    let wait = shared.ctx.shutdown_grace + Duration::from_secs(2);
    if tokio::time::timeout(wait, shared.sessions.acquire_many(max_sessions))
        .await
        .is_err()
    {
        tracing::warn!("sessions still closing after {wait:?}; exiting anyway");
    }
    drop(shared);
    let http_result = match (http_early, http) {
        (Some(r), _) => Some(r),
        (None, Some(h)) => Some(h.await),
        (None, None) => None,
    };
    let http_err = match http_result {
        Some(Ok(Ok(()))) | None => None,
        Some(Ok(Err(e))) => Some(e),
        Some(Err(e)) => Some(std::io::Error::other(e)),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), table).await;
    match http_err {
        Some(e) => Err(ServerError::Http(e)),
        None => {
            tracing::info!("shutdown complete");
            Ok(())
        }
    }
}

async fn accept_loop(listener: TcpListener, kind: Listener, shared: Arc<Shared>) {
    let token = shared.ctx.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            () = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(listener = kind.label(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = shared.sessions.clone().try_acquire_owned() else {
            shared
                .ctx
                .metrics
                .sessions_refused
                .get_or_create(&[("reason", "max_sessions")])
                .inc();
            tracing::warn!(%peer, listener = kind.label(), "session limit reached: connection refused");
            continue;
        };
        // Writes are batched by the writer, so Nagle would only delay keepalive answers.
        let _ = tcp.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match kind {
                Listener::Compat => {
                    let perm = shared.compat.clone();
                    peer::run(tcp, id, kind, peer, None, perm, shared.ctx.clone()).await;
                }
                Listener::Tls => tls_session(tcp, id, peer, &shared).await,
            }
        });
    }
}

async fn tls_session(tcp: TcpStream, id: u64, peer: std::net::SocketAddr, shared: &Shared) {
    let Some(acceptor) = shared.tls.clone() else {
        return;
    };
    let refuse = |reason: &'static str| {
        shared
            .ctx
            .metrics
            .sessions_refused
            .get_or_create(&[("reason", reason)])
            .inc();
    };
    let stream = tokio::select! {
        () = shared.ctx.shutdown.cancelled() => return,
        r = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(tcp)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                refuse("handshake");
                tracing::info!(session = id, %peer, error = %e, "tls handshake failed");
                return;
            }
            Err(_) => {
                refuse("handshake");
                tracing::info!(session = id, %peer, "tls handshake timed out after {:?}", shared.handshake_timeout);
                return;
            }
        },
    };
    let identity = match tls::peer_identity(stream.get_ref().1.peer_certificates()) {
        Ok(i) => i,
        Err(e) => {
            refuse("identity");
            tracing::info!(session = id, %peer, error = %e, "client certificate without identity: connection refused");
            return;
        }
    };
    let Some(perm) = shared.authz.permission(&identity) else {
        refuse("unauthorized");
        tracing::info!(session = id, %peer, %identity, "identity not listed in [authorization] and unlisted = \"reject\": connection refused");
        return;
    };
    peer::run(
        stream,
        id,
        Listener::Tls,
        peer,
        Some(identity),
        perm,
        shared.ctx.clone(),
    )
    .await;
}

#[cfg(test)]
mod tests;
