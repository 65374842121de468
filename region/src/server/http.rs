//! HTTP endpoints: `/` (status page), `/routes.json`, `/sessions.json`, `/metrics`
//! (OpenMetrics text), `/healthz`.
//!
//! Handlers ask the table task over its inbox with a oneshot reply, so the table stays owned by
//! one task; a table that does not answer within a second makes `/healthz` fail.
//!
//! `/routes.json` is paged, so that listing a table of millions of routes is many short pieces
//! of work for the table task rather than one that stalls route distribution:
//!
//! - `vni=N`: only VNI `N` (default: every VNI);
//! - `limit=N`: at most `N` routes in the page, 1 to 10000 (default 1000);
//! - `cursor=C`: continue a walk where the previous page ended: `C` is that page's `next`.
//!
//! The answer is `{"route_count": ..., "vnis": [{"vni": ..., "routes": [...]}], "next": ...}`;
//! `next` is `null` on the last page, and a page may hold fewer routes than `limit` (even none)
//! while `next` is not. A walk returns every route that exists throughout it exactly once. A bad
//! parameter is a 400 naming it; a cursor from before the table compacted itself (after mass
//! withdrawals) is a 409: walk again from the start.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::table_task::{RoutesView, SessionView, ToTable};
use crate::route::MAX_VNI;
use crate::table::{Cursor, CursorError};

/// How long a handler waits for the table task.
const TABLE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct HttpState {
    table: mpsc::Sender<ToTable>,
    registry: Arc<Registry>,
    started: Instant,
}

/// Serves HTTP on `listener` until `shutdown` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    table: mpsc::Sender<ToTable>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = HttpState {
        table,
        registry,
        started: Instant::now(),
    };
    let app = Router::new()
        .route("/", get(status_page))
        .route("/routes.json", get(routes_json))
        .route("/sessions.json", get(sessions_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "route table not answering\n",
    )
        .into_response()
}

async fn ask<T>(
    table: &mpsc::Sender<ToTable>,
    make: impl FnOnce(oneshot::Sender<T>) -> ToTable,
    timeout: Duration,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    table.send(make(tx)).await.ok()?;
    tokio::time::timeout(timeout, rx).await.ok()?.ok()
}

/// Routes in a `/routes.json` page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;
/// Largest `limit`: bounds the table task's work (and the answer) per request.
const MAX_LIMIT: usize = 10_000;

/// The parameters of `/routes.json`, checked.
#[derive(Debug, PartialEq, Eq)]
struct RoutesQuery {
    vni: Option<u32>,
    cursor: Option<Cursor>,
    limit: usize,
}

impl RoutesQuery {
    /// Every value checked; the error names the parameter. Unknown parameters are errors too,
    /// so that a misspelt `limit` does not silently give the default.
    fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut q = Self {
            vni: None,
            cursor: None,
            limit: DEFAULT_LIMIT,
        };
        let mut seen = Vec::new();
        for (k, v) in pairs {
            if seen.contains(&k) {
                return Err(format!("{k}: given more than once"));
            }
            seen.push(k);
            match k.as_str() {
                "vni" => {
                    let vni = v.parse().ok().filter(|&n| n <= MAX_VNI);
                    q.vni = Some(vni.ok_or_else(|| {
                        format!("vni: {v:?} is not a VNI (a number from 0 to {MAX_VNI})")
                    })?);
                }
                "limit" => {
                    let limit = v.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n));
                    q.limit = limit.ok_or_else(|| {
                        format!("limit: {v:?} is not a number from 1 to {MAX_LIMIT}")
                    })?;
                }
                "cursor" => {
                    q.cursor = Some(v.parse().map_err(|e: CursorError| format!("cursor: {e}"))?);
                }
                _ => {
                    return Err(format!(
                        "{k}: unknown parameter (known: vni, limit, cursor)"
                    ));
                }
            }
        }
        Ok(q)
    }
}

async fn routes_json(
    State(s): State<HttpState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let q = match RoutesQuery::parse(&pairs) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let make = |reply| ToTable::Routes {
        vni: q.vni,
        cursor: q.cursor,
        limit: q.limit,
        reply,
    };
    match ask(&s.table, make, TABLE_TIMEOUT).await {
        Some(Ok(v)) => Json::<RoutesView>(v).into_response(),
        Some(Err(e)) => (StatusCode::CONFLICT, format!("cursor: {e}\n")).into_response(),
        None => unavailable(),
    }
}

async fn sessions_json(State(s): State<HttpState>) -> Response {
    match ask(&s.table, ToTable::Sessions, TABLE_TIMEOUT).await {
        Some(v) => Json::<Vec<SessionView>>(v).into_response(),
        None => unavailable(),
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

async fn healthz(State(s): State<HttpState>) -> Response {
    match ask(&s.table, ToTable::Sessions, Duration::from_secs(1)).await {
        Some(_) => "ok\n".into_response(),
        None => unavailable(),
    }
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

async fn status_page(State(s): State<HttpState>) -> Response {
    let sessions = ask(&s.table, ToTable::Sessions, TABLE_TIMEOUT).await;
    let routes = ask(&s.table, ToTable::VniCounts, TABLE_TIMEOUT).await;
    let (Some(sessions), Some(routes)) = (sessions, routes) else {
        return unavailable();
    };
    let mut h = String::new();
    // `write!` to a String cannot fail.
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ferrinet region</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style></head><body>\
         <h1>ferrinet region route server</h1>\
         <p>up {}s &middot; {} sessions &middot; {} routes in {} VNIs &middot; \
         <a href=\"/routes.json\">routes.json</a> &middot; <a href=\"/sessions.json\">sessions.json</a> \
         &middot; <a href=\"/metrics\">metrics</a></p><h2>Sessions</h2><table><tr><th>id</th>\
         <th>listener</th><th>peer</th><th>identity</th><th>state</th><th>subscriptions</th>\
         <th>routes owned</th><th>updates in</th><th>refused</th><th>bytes out</th></tr>",
        s.started.elapsed().as_secs(),
        sessions.len(),
        routes.route_count,
        routes.vnis.len(),
    );
    for x in &sessions {
        let subs: Vec<String> = x.subscriptions.iter().map(u32::to_string).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            x.id,
            x.listener_label(),
            esc(&x.peer),
            esc(x.identity.as_deref().unwrap_or("-")),
            x.state,
            esc(&subs.join(", ")),
            x.routes_owned,
            x.updates_received,
            x.updates_refused,
            x.bytes_sent
        );
    }
    h.push_str("</table><h2>VNIs</h2><table><tr><th>VNI</th><th>routes</th></tr>");
    for (vni, count) in &routes.vnis {
        let _ = write!(
            h,
            "<tr><td><a href=\"/routes.json?vni={vni}\">{vni}</a></td><td>{count}</td></tr>"
        );
    }
    h.push_str("</table></body></html>\n");
    Html(h).into_response()
}

impl SessionView {
    fn listener_label(&self) -> &'static str {
        match self.listener {
            super::table_task::Listener::Tls => "tls",
            super::table_task::Listener::Compat => "compat",
        }
    }
}
