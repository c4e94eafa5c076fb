//! The routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the spectator page |
//! | `GET /healthz` | `{"status":"ok"}` |
//! | `GET /metrics` | Prometheus text |
//! | `/api/…` of each view | its `views/*/http.rs` (the registry in `views/mod.rs` chains them) |
//! | `WS /ws?token=T` | subscriptions to any view, room actions (`PROTOCOL.md`) |
//! | `WS /ws/races/{id}?since=SEQ` | `/ws` subscribed to the race |
//! | `WS /ws/rooms/{id}?since=SEQ&token=T` | `/ws` subscribed to the room; room actions default to it |
//! | `WS /ws/tasks/{id}` | `/ws` subscribed to the task |
//! | `WS /ws/track?token=T` | GPS points from a participant's device (`input/track.rs`) |
//!
//! Errors are JSON `{"error": …}` with a 4xx/5xx status, or an error frame on
//! a WebSocket. Every response carries `x-request-id` (the client's, if it
//! sent a sane one), and every log line of a request or connection carries
//! it. A browser request whose `Origin` is neither this host nor one of
//! [`EdgeConfig::allowed_origins`] gets 403; requests without `Origin`
//! (devices, scripts) are not browsers' and pass.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ingest::KafkaConfig;
use serde::Deserialize;
use tracing::Instrument;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::EdgeError;
use crate::input::EdgeInput;
use crate::protocol::{ClientFrame, ViewKind};
use crate::socket::{Shared, Start};
use crate::transport::gossip::Budgets;
use crate::transport::http::{Limited, json_error};
use crate::transport::limits::EdgeLimits;
use crate::transport::listener::Table;
use crate::transport::upgrade::{NotWebSocket, Upgrade};
use crate::views::Views;
use crate::views::race::window::WindowSpec;

/// How the edge runs.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Brokers and topics to follow.
    pub kafka: KafkaConfig,
    /// The secret tokens are signed with (`pace token`); without one the
    /// edge serves reads only.
    pub token_secret: Option<String>,
    /// Origins (`https://example.org`) whose pages may use this edge besides
    /// its own; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Bounds on connections, queues and buffers.
    pub limits: EdgeLimits,
    /// An outside identity provider whose RS256/ES256 tokens are taken
    /// beside pace's own.
    pub issuer: Option<crate::issuer::IssuerConfig>,
}

impl EdgeConfig {
    /// An edge on `listen` following `kafka`, read-only, same-origin, with
    /// the default limits.
    pub fn new(listen: SocketAddr, kafka: KafkaConfig) -> Self {
        Self {
            listen,
            kafka,
            token_secret: None,
            allowed_origins: Vec::new(),
            limits: EdgeLimits::default(),
            issuer: None,
        }
    }
}

const PAGE: &str = include_str!("../static/index.html");

/// The page's scripts (`static/*.js`, loaded in this order by the page),
/// served at `/js/{name}`.
const SCRIPTS: [(&str, &str); 8] = [
    ("core.js", include_str!("../static/core.js")),
    ("account.js", include_str!("../static/account.js")),
    ("race.js", include_str!("../static/race.js")),
    ("map.js", include_str!("../static/map.js")),
    ("chat.js", include_str!("../static/chat.js")),
    ("tasks.js", include_str!("../static/tasks.js")),
    ("tournament.js", include_str!("../static/tournament.js")),
    ("main.js", include_str!("../static/main.js")),
];

/// One of the page's [`SCRIPTS`], or `None`.
fn script(name: &str) -> Option<warp::reply::Response> {
    let (_, body) = SCRIPTS.iter().find(|(n, _)| *n == name)?;
    let js = warp::reply::with_header(*body, "content-type", "text/javascript; charset=utf-8");
    Some(js.into_response())
}

/// `?since=SEQ&token=T` of the WebSocket routes (and `top=N`, a race's
/// top-N window).
#[derive(Debug, Default, Deserialize)]
struct WsQuery {
    since: Option<u64>,
    token: Option<String>,
    top: Option<u32>,
}

/// A request's origin was refused.
#[derive(Debug)]
struct OriginRefused(String);

impl warp::reject::Reject for OriginRefused {}

/// Whether a request from `origin` (its `Origin` header) to `host` (its
/// `Host` header) may be served.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true; // not a browser
    };
    let same_host = origin
        .split_once("://")
        .is_some_and(|(_, h)| host.is_some_and(|host| h.eq_ignore_ascii_case(host)));
    same_host
        || allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// A fresh request id: 16 hex digits.
fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The client's request id if it is short and plain, else a fresh one.
fn request_id(given: Option<String>) -> String {
    given
        .filter(|g| {
            !g.is_empty()
                && g.len() <= 64
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(new_request_id)
}

/// `GET /healthz`.
fn healthz() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
}

/// `GET /metrics`: every metric of this process.
fn metrics() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics").and(warp::get()).map(|| {
        warp::reply::with_header(
            observability::metrics().render(),
            "content-type",
            observability::CONTENT_TYPE,
        )
        .into_response()
    })
}

/// Serves only `GET /metrics` and `GET /healthz` on `listen`, for processes
/// without an edge (`pace pipeline`, `pace archive run`), until `shutdown`,
/// within the default [`EdgeLimits`].
pub async fn serve_metrics(
    listen: SocketAddr,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    let limits = EdgeLimits::default();
    let listener = listen_on(listen, &limits).map_err(|source| EdgeError::Bind {
        addr: listen,
        source,
    })?;
    bound(listener.local_addr().map_err(|source| EdgeError::Bind {
        addr: listen,
        source,
    })?);
    let table = Table::new(
        limits.connection_budget(crate::transport::listener::descriptor_limit()),
        limits.max_per_address,
    );
    let (stop_clients, _) = tokio::sync::watch::channel(false);
    let routes = metrics().or(healthz()).unify().recover(recover).unify();
    crate::transport::listener::serve(listener, routes, &limits, table, stop_clients, shutdown)
        .await;
    Ok(())
}

/// The routes of an edge.
pub(crate) fn routes(
    shared: Arc<Shared>,
    allowed_origins: Arc<Vec<String>>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let page = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(PAGE).into_response());
    let scripts = warp::path!("js" / String)
        .and(warp::get())
        .and_then(|name: String| async move { script(&name).ok_or_else(warp::reject::not_found) });
    let (healthz, metrics) = (healthz(), metrics());
    let context = crate::views::live::Context {
        callers: shared.callers(),
        limits: shared.limits.clone(),
    };
    let views = (shared.views.routes(&context).into_iter())
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("the registry has views");
    let with_shared = warp::any().map(move || shared.clone());
    let bearer = warp::header::optional::<String>("authorization");
    let ws_query = warp::query::<WsQuery>();
    let multiplexed = warp::path!("ws")
        .and(ws_query)
        .and(bearer)
        .and(crate::transport::upgrade::websocket())
        .and(with_shared.clone())
        .map(
            |q: WsQuery, auth: Option<String>, ws: Upgrade, shared: Arc<Shared>| {
                upgrade(&shared, ws, q.token.or(auth), None, None)
            },
        );
    let race_ws = warp::path!("ws" / "races" / String)
        .and(ws_query)
        .and(crate::transport::upgrade::websocket())
        .and(with_shared.clone())
        .map(|id: String, q: WsQuery, ws: Upgrade, shared: Arc<Shared>| {
            let first = ClientFrame::Subscribe {
                view: ViewKind::Race,
                id,
                participant: None,
                since: q.since,
                window: q.top.map(|n| WindowSpec {
                    top: Some(n),
                    from: None,
                    to: None,
                    around: None,
                    k: None,
                }),
            };
            upgrade(&shared, ws, q.token, Some(first), None)
        });
    let room_ws = warp::path!("ws" / "rooms" / String)
        .and(ws_query)
        .and(bearer)
        .and(crate::transport::upgrade::websocket())
        .and(with_shared.clone())
        .map(
            |id: String, q: WsQuery, auth: Option<String>, ws: Upgrade, shared: Arc<Shared>| {
                let first = ClientFrame::Subscribe {
                    view: ViewKind::Room,
                    id: id.clone(),
                    participant: None,
                    since: q.since,
                    window: None,
                };
                upgrade(&shared, ws, q.token.or(auth), Some(first), Some(id))
            },
        );
    let task_ws = warp::path!("ws" / "tasks" / String)
        .and(crate::transport::upgrade::websocket())
        .and(with_shared.clone())
        .map(|id: String, ws: Upgrade, shared: Arc<Shared>| {
            let first = ClientFrame::Subscribe {
                view: ViewKind::Task,
                id,
                participant: None,
                since: None,
                window: None,
            };
            upgrade(&shared, ws, None, Some(first), None)
        });
    let track_ws = warp::path!("ws" / "track")
        .and(ws_query)
        .and(bearer)
        .and(crate::transport::upgrade::websocket())
        .and(with_shared.clone())
        .map(
            |q: WsQuery, auth: Option<String>, ws: Upgrade, shared: Arc<Shared>| {
                let token = q.token.or(auth);
                let user = shared.chat.user(token.as_deref()).map(Some);
                let span = connection_span();
                let limits = shared.limits.clone();
                ws.on_upgrade(&limits, move |reading, writing| {
                    crate::input::track::run(reading, writing, shared, user).instrument(span)
                })
            },
        );
    let api = page
        .or(scripts)
        .unify()
        .or(healthz)
        .unify()
        .or(metrics)
        .unify()
        .or(views)
        .unify()
        .or(multiplexed)
        .unify()
        .or(race_ws)
        .unify()
        .or(room_ws)
        .unify()
        .or(task_ws)
        .unify()
        .or(track_ws)
        .unify();
    let origin = warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("host"))
        .and_then(move |origin: Option<String>, host: Option<String>| {
            let allowed = allowed_origins.clone();
            async move {
                if origin_allowed(origin.as_deref(), host.as_deref(), &allowed) {
                    Ok(())
                } else {
                    observability::metrics()
                        .edge_refused
                        .with_label_values(&["origin"])
                        .inc();
                    Err(warp::reject::custom(OriginRefused(
                        origin.unwrap_or_default(),
                    )))
                }
            }
        })
        .untuple_one();
    let guarded = origin.and(api).recover(recover).unify();
    warp::header::optional::<String>("x-request-id")
        .map(|given: Option<String>| {
            let id = request_id(given);
            tracing::Span::current().record("request_id", id.as_str());
            id
        })
        .and(guarded)
        .map(|id: String, reply: warp::reply::Response| {
            tracing::debug!(status = reply.status().as_u16(), "answered");
            warp::reply::with_header(reply, "x-request-id", id).into_response()
        })
        .with(warp::trace(|info| {
            tracing::info_span!(
                "request",
                method = %info.method(),
                path = %info.path(),
                request_id = tracing::field::Empty,
            )
        }))
}

/// The JSON error for a request no route took.
async fn recover(r: warp::Rejection) -> Result<warp::reply::Response, std::convert::Infallible> {
    // Body and query errors first: a POST route's rejection may come with
    // the GET routes' "method not allowed" for the same path.
    let (status, msg) = if let Some(OriginRefused(o)) = r.find() {
        (
            StatusCode::FORBIDDEN,
            format!("pages from {o} may not use this edge"),
        )
    } else if let Some(Limited(why)) = r.find() {
        (StatusCode::TOO_MANY_REQUESTS, (*why).to_owned())
    } else if let Some(crate::protocol::body::TooLarge(max)) = r.find() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes"),
        )
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is too large".to_owned(),
        )
    } else if let Some(crate::protocol::body::Malformed(why)) = r.find() {
        (StatusCode::BAD_REQUEST, why.clone())
    } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = r.find::<warp::reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, format!("bad query: {e}"))
    } else if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON".to_owned(),
        )
    } else if let Some(NotWebSocket(why)) = r.find() {
        (StatusCode::UPGRADE_REQUIRED, (*why).to_owned())
    } else if r.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("{r:?}"))
    };
    Ok(json_error(status, msg))
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// A span for one connection, of its own: a child would keep the spans of
/// the request that opened it (and their fields) alive as long as the
/// socket, a kilobyte or two per idle connection.
fn connection_span() -> tracing::Span {
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    tracing::info_span!(parent: None, "ws", conn)
}

/// Upgrades to a spectator connection.
fn upgrade(
    shared: &Arc<Shared>,
    ws: Upgrade,
    token: Option<String>,
    first: Option<ClientFrame>,
    room: Option<String>,
) -> warp::reply::Response {
    let user = match &token {
        None => Ok(None),
        Some(t) => shared.chat.user(Some(t)).map(Some),
    };
    let span = connection_span();
    let shared = shared.clone();
    let limits = shared.limits.clone();
    ws.on_upgrade(&limits, move |reading, writing| {
        let start = Start {
            user,
            first,
            room,
            token,
        };
        crate::socket::run(reading, writing, shared, start).instrument(span)
    })
}

/// Serves the edge until `shutdown` resolves, then tells every client to
/// reconnect (elsewhere, or here after a restart) and waits up to
/// [`EdgeLimits::drain`] for them to go. Calls `bound` with the address
/// actually bound (useful with port 0) once it listens.
pub async fn serve(
    config: EdgeConfig,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    let views = Arc::new(Views::default());
    let stop = Arc::new(AtomicBool::new(false));
    let follower = crate::follow::follow(&config.kafka, &views, stop.clone())?;
    let budgets = Arc::new(Budgets::new(&config.limits));
    let producer = ingest::producer::AsyncProducer::new(&config.kafka)?;
    let gossip =
        crate::transport::gossip::start(&config.kafka, producer, budgets.clone(), stop.clone());
    let served = serve_with(config, views, budgets, bound, shutdown).await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || (follower.join(), gossip.join())).await;
    served
}

/// Serves `views`, kept up to date by someone else (tests, embedders), as
/// [`serve`] does, with budgets of its own (it tells no other edge). Input
/// still goes to `config.kafka`.
pub async fn serve_views(
    config: EdgeConfig,
    views: Arc<Views>,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    let budgets = Arc::new(Budgets::new(&config.limits));
    serve_with(config, views, budgets, bound, shutdown).await
}

async fn serve_with(
    config: EdgeConfig,
    views: Arc<Views>,
    budgets: Arc<Budgets>,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    let issuer = match config.issuer.clone() {
        Some(issuer) => Some(
            crate::issuer::Issuer::start(issuer)
                .await
                .map_err(EdgeError::Issuer)?,
        ),
        None => None,
    };
    let chat =
        Arc::new(EdgeInput::new(&config.kafka, config.token_secret.clone())?.with_issuer(issuer));
    let listener = listen_on(config.listen, &config.limits).map_err(|source| EdgeError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| EdgeError::Bind {
        addr: config.listen,
        source,
    })?;
    let descriptors = crate::transport::listener::descriptor_limit();
    let budget = config.limits.connection_budget(descriptors);
    tracing::info!(%addr, connections = budget, descriptors = ?descriptors, "edge listening");
    bound(addr);
    let (stop_clients, stopping) = tokio::sync::watch::channel(false);
    let table = Table::new(budget, config.limits.max_per_address);
    let shared = Arc::new(Shared::new(
        views,
        chat,
        config.limits.clone(),
        stopping,
        budgets,
    ));
    let origins = Arc::new(config.allowed_origins.clone());
    tokio::spawn(renew_leases(shared.clone()));
    crate::transport::listener::serve(
        listener,
        routes(shared, origins),
        &config.limits,
        table,
        stop_clients,
        shutdown,
    )
    .await;
    Ok(())
}

/// Renews this edge's leases on the rooms (see [`crate::input::presence`])
/// every [`crate::input::presence::RENEW_EVERY`] until the edge stops.
async fn renew_leases(shared: Arc<Shared>) {
    use futures_util::StreamExt;
    let mut stopping = shared.shutdown.clone();
    let mut every = tokio::time::interval(crate::input::presence::RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopping.changed() => return,
        }
        let online = shared
            .views
            .get::<crate::views::rooms::Rooms>()
            .online_rooms();
        let leases = shared.chat.presence().leases(online);
        futures_util::stream::iter(leases)
            .for_each_concurrent(64, |lease| {
                let chat = shared.chat.clone();
                async move {
                    if let Err(e) = chat.send(&lease).await {
                        tracing::warn!(room = %lease.room, error = %e, "lease not sent");
                    }
                }
            })
            .await;
    }
}

/// The listening socket. Accepted connections inherit its send buffer
/// size, which bounds the kernel memory a slow client can hold.
fn listen_on(listen: SocketAddr, limits: &EdgeLimits) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(bytes) = limits.socket_send_buffer {
        socket.set_send_buffer_size(u32::try_from(bytes).unwrap_or(u32::MAX))?;
    }
    socket.bind(listen)?;
    socket.listen(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://race.example".to_owned()];
        let ok = |o, h| origin_allowed(o, h, &allowed);
        assert!(ok(None, Some("edge:8080")), "no Origin: not a browser");
        assert!(ok(Some("http://edge:8080"), Some("edge:8080")), "same host");
        assert!(ok(Some("https://race.example"), Some("edge:8080")));
        assert!(!ok(Some("https://evil.example"), Some("edge:8080")));
        assert!(!ok(Some("http://edge:8080"), Some("other:8080")));
        assert!(origin_allowed(Some("https://x"), None, &["*".to_owned()]));
    }

    #[test]
    fn the_page_loads_every_script_served_in_order_and_only_those() {
        let loaded: Vec<&str> = (PAGE.split("<script src=\"/js/").skip(1))
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        let served: Vec<&str> = SCRIPTS.iter().map(|s| s.0).collect();
        assert_eq!(loaded, served);
        let core = script("core.js").unwrap();
        assert_eq!(
            core.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(script("nope.js").is_none());
        assert!(script("../index.html").is_none());
        for (name, body) in SCRIPTS {
            assert!(body.contains("\"use strict\";"), "{name}");
        }
    }

    #[test]
    fn request_ids() {
        assert_eq!(request_id(Some("abc-1".into())), "abc-1");
        assert_eq!(request_id(None).len(), 16);
        assert_eq!(request_id(Some("no spaces".into())).len(), 16);
        assert_eq!(request_id(Some("x".repeat(65))).len(), 16);
    }
}
