//! The routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the spectator page |
//! | `GET /healthz` | `{"status":"ok"}` |
//! | `GET /metrics` | Prometheus text |
//! | `GET /api/races` | `[{id, name, kind, participants, start}]` |
//! | `GET /api/races/{id}` | the race definition |
//! | `GET /api/races/{id}/standings` | rows in rank order; `X-Pace-Seq` header |
//! | `GET /api/races/{id}/splits` | `[{participant, split, time, position}]` by split, then position; `X-Pace-Seq` header |
//! | `/api/rooms…`, `WS /ws/rooms/{id}` | see `rooms_http.rs` |
//! | `/api/tasks…`, `WS /ws/tasks/{id}` | see `tasks.rs` |
//! | `WS /ws/races/{id}` | `{"type":"snapshot","seq":N,"rows":[…],"splits":[…]}`, then `{"type":"delta","seq":N+1,…}`, … |
//!
//! Errors are JSON `{"error": …}` with a 4xx status, or an error frame on a
//! WebSocket.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use ingest::KafkaConfig;
use tokio::sync::broadcast::error::RecvError;
use warp::http::StatusCode;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Reply};

use crate::EdgeError;
use crate::views::{Views, error_frame};

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
}

const PAGE: &str = include_str!("../static/index.html");

pub(crate) fn json_error(status: StatusCode, message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}

/// The routes over `views`.
pub fn routes(
    views: Arc<Views>,
    chat: Arc<crate::post::ChatInput>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with_views = {
        let views = views.clone();
        warp::any().map(move || views.clone())
    };
    let page = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(PAGE).into_response());
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let metrics = warp::path!("metrics").and(warp::get()).map(|| {
        warp::reply::with_header(
            observability::metrics().render(),
            "content-type",
            observability::CONTENT_TYPE,
        )
        .into_response()
    });
    let races = warp::path!("api" / "races")
        .and(warp::get())
        .and(with_views.clone())
        .map(|views: Arc<Views>| warp::reply::json(&views.races()).into_response());
    let race = warp::path!("api" / "races" / String)
        .and(warp::get())
        .and(with_views.clone())
        .map(
            |id: String, views: Arc<Views>| match views.definition(&id) {
                Some(d) => warp::reply::json(&d).into_response(),
                None => json_error(StatusCode::NOT_FOUND, format!("no race {id:?}")),
            },
        );
    let standings = warp::path!("api" / "races" / String / "standings")
        .and(warp::get())
        .and(with_views.clone())
        .map(|id: String, views: Arc<Views>| match views.standings(&id) {
            Some((seq, rows)) => {
                warp::reply::with_header(warp::reply::json(&rows), "x-pace-seq", seq.to_string())
                    .into_response()
            }
            None => json_error(StatusCode::NOT_FOUND, format!("no race {id:?}")),
        });
    let splits = warp::path!("api" / "races" / String / "splits")
        .and(warp::get())
        .and(with_views.clone())
        .map(|id: String, views: Arc<Views>| match views.splits(&id) {
            Some((seq, splits)) => {
                warp::reply::with_header(warp::reply::json(&splits), "x-pace-seq", seq.to_string())
                    .into_response()
            }
            None => json_error(StatusCode::NOT_FOUND, format!("no race {id:?}")),
        });
    let ws = warp::path!("ws" / "races" / String)
        .and(warp::ws())
        .and(with_views)
        .map(|id: String, ws: warp::ws::Ws, views: Arc<Views>| {
            ws.on_upgrade(move |socket| race_socket(socket, id, views))
                .into_response()
        });
    page.or(healthz)
        .unify()
        .or(metrics)
        .unify()
        .or(races)
        .unify()
        .or(race)
        .unify()
        .or(standings)
        .unify()
        .or(splits)
        .unify()
        .or(crate::rooms_http::routes(views.clone(), chat.clone()))
        .unify()
        .or(crate::tasks::routes(views.clone(), chat))
        .unify()
        .or(ws)
        .unify()
        .recover(|r: warp::Rejection| async move {
            // Body errors first: a POST route's rejection may come with the
            // GET routes' "method not allowed" for the same path.
            let (status, msg) = if r.find::<warp::reject::PayloadTooLarge>().is_some() {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is too large".to_owned(),
                )
            } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
                (StatusCode::BAD_REQUEST, e.to_string())
            } else if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
                (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON".to_owned(),
                )
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
            Ok::<_, warp::Rejection>(json_error(status, msg))
        })
        .unify()
}

pub(crate) static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// One spectator of one race: a snapshot, then every delta in order. A
/// spectator that falls behind gets a fresh snapshot, never a silent gap.
async fn race_socket(socket: WebSocket, race: String, views: Arc<Views>) {
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let m = observability::metrics();
    let (mut tx, mut rx) = socket.split();
    let Some((snapshot, mut frames)) = views.subscribe(&race) else {
        tracing::info!(conn, race = %race, "subscribe to unknown race");
        let _ = tx
            .send(Message::text(error_frame(
                "unknown_race",
                &format!("no race {race:?}"),
            )))
            .await;
        let _ = tx.send(Message::close_with(1008u16, "unknown race")).await;
        return;
    };
    m.edge_clients.inc();
    tracing::debug!(conn, race = %race, "spectator connected");
    let mut ok = tx.send(Message::text(snapshot.to_string())).await.is_ok();
    m.edge_frames.with_label_values(&["snapshot"]).inc();
    while ok {
        tokio::select! {
            frame = frames.recv() => {
                let (frame, kind) = match frame {
                    Ok(f) => (f, "delta"),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(conn, race = %race, missed, "spectator behind; sending snapshot");
                        match views.snapshot(&race) { Some(s) => (s, "snapshot"), None => break }
                    }
                    Err(RecvError::Closed) => break,
                };
                ok = tx.send(Message::text(frame.to_string())).await.is_ok();
                m.edge_frames.with_label_values(&[kind]).inc();
            }
            incoming = rx.next() => match incoming {
                Some(Ok(msg)) if msg.is_close() => break,
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    m.edge_clients.dec();
    tracing::debug!(conn, race = %race, "spectator gone");
}

/// Serves the edge until `shutdown` resolves. Calls `bound` with the address
/// actually bound (useful with port 0) once it listens.
pub async fn serve(
    config: EdgeConfig,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    let views = Arc::new(Views::default());
    let stop = Arc::new(AtomicBool::new(false));
    let follower = crate::follow::follow(&config.kafka, views.clone(), stop.clone())?;
    let chat = Arc::new(crate::post::ChatInput::new(
        &config.kafka,
        config.token_secret.clone(),
    )?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EdgeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EdgeError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, "edge listening");
    bound(addr);
    warp::serve(routes(views, chat))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || follower.join()).await;
    Ok(())
}
