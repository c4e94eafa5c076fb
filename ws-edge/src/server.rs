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
//! | `GET /api/rooms` | `[{id, members, online, last_seq}]` |
//! | `GET /api/rooms/{id}/members` | `[{room, user, online, joined_at}]` |
//! | `GET /api/rooms/{id}/messages?since=SEQ&limit=N` | messages after `SEQ` in order (at most 500); 410 if no longer held |
//! | `WS /ws/rooms/{id}?since=SEQ` | a snapshot (members, the messages after `SEQ`), then deltas; see `rooms.rs` |
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
}

const PAGE: &str = include_str!("../static/index.html");

fn json_error(status: StatusCode, message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}

/// The routes over `views`.
pub fn routes(
    views: Arc<Views>,
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
    let rooms = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(with_views.clone())
        .map(|views: Arc<Views>| warp::reply::json(&views.rooms.list()).into_response());
    let members = warp::path!("api" / "rooms" / String / "members")
        .and(warp::get())
        .and(with_views.clone())
        .map(
            |id: String, views: Arc<Views>| match views.rooms.members(&id) {
                Some(m) => warp::reply::json(&m).into_response(),
                None => json_error(StatusCode::NOT_FOUND, format!("no room {id:?}")),
            },
        );
    let messages = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::get())
        .and(warp::query::<RoomQuery>())
        .and(with_views.clone())
        .map(|id: String, q: RoomQuery, views: Arc<Views>| {
            let limit = q.limit.unwrap_or(crate::rooms::MAX_PAGE);
            match views.rooms.messages(&id, q.since.unwrap_or(0), limit) {
                Some(Ok(m)) => warp::reply::json(&m).into_response(),
                Some(Err(crate::rooms::Gone::Before(seq))) => json_error(
                    StatusCode::GONE,
                    format!("messages up to seq {seq} are no longer held here"),
                ),
                None => json_error(StatusCode::NOT_FOUND, format!("no room {id:?}")),
            }
        });
    let room_ws = warp::path!("ws" / "rooms" / String)
        .and(warp::query::<RoomQuery>())
        .and(warp::ws())
        .and(with_views.clone())
        .map(
            |id: String, q: RoomQuery, ws: warp::ws::Ws, views: Arc<Views>| {
                ws.on_upgrade(move |socket| room_socket(socket, id, q.since, views))
                    .into_response()
            },
        );
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
        .or(rooms)
        .unify()
        .or(members)
        .unify()
        .or(messages)
        .unify()
        .or(room_ws)
        .unify()
        .or(ws)
        .unify()
        .recover(|r: warp::Rejection| async move {
            let (status, msg) = if r.is_not_found() {
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

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

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

/// `?since=SEQ&limit=N` of the room routes.
#[derive(Debug, serde::Deserialize)]
struct RoomQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

/// A room subscriber: a snapshot with the messages after `since`, then every
/// change. One that falls behind gets a snapshot of exactly what it missed
/// (the messages after the last one it was sent), or an error frame if those
/// are no longer held.
async fn room_socket(socket: WebSocket, room: String, since: Option<u64>, views: Arc<Views>) {
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let m = observability::metrics();
    let (mut tx, mut rx) = socket.split();
    let (snapshot, mut frames) = match views.rooms.subscribe(&room, since) {
        Some(Ok(s)) => s,
        other => {
            let (code, message) = match other {
                None => ("unknown_room", format!("no room {room:?}")),
                _ => (
                    "since_gone",
                    "the messages after `since` are no longer held here; reconnect without since"
                        .to_owned(),
                ),
            };
            let _ = tx.send(Message::text(error_frame(code, &message))).await;
            let _ = tx.send(Message::close_with(1008u16, code)).await;
            return;
        }
    };
    m.edge_clients.inc();
    let mut last_seq = last_message_seq(&snapshot).or(since).unwrap_or(0);
    let mut ok = tx.send(Message::text(snapshot.to_string())).await.is_ok();
    m.edge_frames.with_label_values(&["snapshot"]).inc();
    while ok {
        tokio::select! {
            frame = frames.recv() => {
                let (frame, kind) = match frame {
                    Ok(f) => (f, "delta"),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(conn, room = %room, missed, "room subscriber behind; sending what it missed");
                        match views.rooms.snapshot(&room, last_seq) {
                            Some(Ok(s)) => (s, "snapshot"),
                            _ => {
                                let _ = tx.send(Message::text(error_frame("since_gone", "fell too far behind; reconnect without since"))).await;
                                break;
                            }
                        }
                    }
                    Err(RecvError::Closed) => break,
                };
                last_seq = last_message_seq(&frame).unwrap_or(last_seq);
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
}

/// The seq of the last message in a room frame, if it carries any.
fn last_message_seq(frame: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    v["messages"].as_array()?.last()?["seq"].as_u64()
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
    warp::serve(routes(views))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || follower.join()).await;
    Ok(())
}
