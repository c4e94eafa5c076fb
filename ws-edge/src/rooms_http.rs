//! The room routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/rooms` | `[{id, members, online, last_seq, visibility}]` |
//! | `POST /api/rooms` `{"id","visibility":"public"\|"invite_only"}` | 201; 409 if it exists; the creator is its first member |
//! | `GET /api/rooms/{id}/members` | `[{room, user, online, joined_at}]` |
//! | `POST /api/rooms/{id}/invites` `{"user"}` | 202; members only |
//! | `GET /api/rooms/{id}/messages?since=SEQ&limit=N` | the messages after `SEQ`, in order (at most 500); 410 once no longer held |
//! | `WS /ws/rooms/{id}?since=SEQ&token=T` | a snapshot (members, the messages after `SEQ`), then deltas (see `rooms.rs`) |
//!
//! Who: `Authorization: Bearer <token>` (or `?token=` on the WebSocket,
//! which browsers cannot give headers). Anyone may read a public room; an
//! invite-only room only its members and invitees (403).
//!
//! On the WebSocket a client sends `{"type":"join"}`, `{"type":"leave"}`,
//! `{"type":"post","text":…,"client_msg_id":…}` or `{"type":"ping"}`, and
//! gets `{"type":"ack","op":…}` once the broker has the event (`pong` for a
//! ping), or an error frame: `unauthorized`, `not_member`, `not_invited`,
//! `invalid` (e.g. text over 4 KiB), `rate_limited` (over
//! [`POSTS_PER_SECOND`](crate::post::POSTS_PER_SECOND)), `bad_frame`,
//! `unavailable`. A refused event never reaches Kafka. An authenticated
//! connection counts as the user online in the room while it is open.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{SinkExt, StreamExt};
use schemas::{ChatKind, Visibility};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use warp::http::StatusCode;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Reply};

use crate::auth::AuthError;
use crate::post::{ChatInput, RateLimit, SendError};
use crate::rooms::Gone;
use crate::server::{CONNECTIONS, json_error};
use crate::views::{Views, error_frame};

/// `?since=SEQ&limit=N&token=T` of the room routes.
#[derive(Debug, Deserialize)]
struct RoomQuery {
    since: Option<u64>,
    limit: Option<usize>,
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NewRoom {
    id: String,
    visibility: Visibility,
}

#[derive(Debug, Deserialize)]
struct NewInvite {
    user: String,
}

/// What a client sends on a room's WebSocket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum In {
    Join,
    Leave,
    Post {
        text: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Ping,
}

fn auth_error(e: &AuthError) -> warp::reply::Response {
    json_error(StatusCode::UNAUTHORIZED, e.to_string())
}

fn send_error(e: &SendError) -> warp::reply::Response {
    match e {
        SendError::Invalid(m) => json_error(StatusCode::BAD_REQUEST, m.clone()),
        SendError::Unavailable(m) => json_error(StatusCode::SERVICE_UNAVAILABLE, m.clone()),
    }
}

/// The user a request presents, if any (`Err` for a bad token).
fn who(chat: &ChatInput, header: Option<&str>) -> Result<Option<String>, AuthError> {
    match header {
        None => Ok(None),
        Some(h) => chat.user(Some(h)).map(Some),
    }
}

/// The room routes over `views`, posting through `chat`.
pub fn routes(
    views: Arc<Views>,
    chat: Arc<ChatInput>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let ctx = warp::any().map(move || (views.clone(), chat.clone()));
    let bearer = warp::header::optional::<String>("authorization");
    let list = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(ctx.clone())
        .map(|(views, _): (Arc<Views>, Arc<ChatInput>)| {
            warp::reply::json(&views.rooms.list()).into_response()
        });
    let create =
        warp::path!("api" / "rooms")
            .and(warp::post())
            .and(bearer)
            .and(warp::body::content_length_limit(16 * 1024))
            .and(warp::body::json::<NewRoom>())
            .and(ctx.clone())
            .then(
                |auth: Option<String>,
                 new: NewRoom,
                 (views, chat): (Arc<Views>, Arc<ChatInput>)| async move {
                    let user = match chat.user(auth.as_deref()) {
                        Ok(u) => u,
                        Err(e) => return auth_error(&e),
                    };
                    if views.rooms.exists(&new.id) {
                        return json_error(
                            StatusCode::CONFLICT,
                            format!("room {:?} exists", new.id),
                        );
                    }
                    match chat
                        .send(&ChatInput::create(&new.id, &user, new.visibility))
                        .await
                    {
                        Ok(()) => warp::reply::with_status(
                            warp::reply::json(&serde_json::json!({"id": new.id})),
                            StatusCode::CREATED,
                        )
                        .into_response(),
                        Err(e) => send_error(&e),
                    }
                },
            );
    let members = warp::path!("api" / "rooms" / String / "members")
        .and(warp::get())
        .and(bearer)
        .and(ctx.clone())
        .map(
            |id: String, auth: Option<String>, (views, chat): (Arc<Views>, Arc<ChatInput>)| {
                let user = match who(&chat, auth.as_deref()) {
                    Ok(u) => u,
                    Err(e) => return auth_error(&e),
                };
                match views.rooms.may_read(&id, user.as_deref()) {
                    None => json_error(StatusCode::NOT_FOUND, format!("no room {id:?}")),
                    Some(false) => {
                        json_error(StatusCode::FORBIDDEN, format!("room {id:?} is invite-only"))
                    }
                    Some(true) => warp::reply::json(&views.rooms.members(&id).unwrap_or_default())
                        .into_response(),
                }
            },
        );
    let invite = warp::path!("api" / "rooms" / String / "invites")
        .and(warp::post())
        .and(bearer)
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::json::<NewInvite>())
        .and(ctx.clone())
        .then(
            |id: String,
             auth: Option<String>,
             new: NewInvite,
             (views, chat): (Arc<Views>, Arc<ChatInput>)| async move {
                let user = match chat.user(auth.as_deref()) {
                    Ok(u) => u,
                    Err(e) => return auth_error(&e),
                };
                if !views.rooms.is_member(&id, &user) {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        format!("{user} is not a member of {id:?}"),
                    );
                }
                let event = schemas::ChatEvent {
                    invitee: Some(new.user),
                    ..ChatInput::event(&id, &user, ChatKind::Invite)
                };
                match chat.send(&event).await {
                    Ok(()) => warp::reply::with_status(
                        warp::reply::json(&serde_json::json!({})),
                        StatusCode::ACCEPTED,
                    )
                    .into_response(),
                    Err(e) => send_error(&e),
                }
            },
        );
    let messages = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::get())
        .and(warp::query::<RoomQuery>())
        .and(bearer)
        .and(ctx.clone())
        .map(
            |id: String,
             q: RoomQuery,
             auth: Option<String>,
             (views, chat): (Arc<Views>, Arc<ChatInput>)| {
                let user = match who(&chat, auth.as_deref()) {
                    Ok(u) => u,
                    Err(e) => return auth_error(&e),
                };
                if views.rooms.may_read(&id, user.as_deref()) == Some(false) {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        format!("room {id:?} is invite-only"),
                    );
                }
                let limit = q.limit.unwrap_or(crate::rooms::MAX_PAGE);
                match views.rooms.messages(&id, q.since.unwrap_or(0), limit) {
                    Some(Ok(m)) => warp::reply::json(&m).into_response(),
                    Some(Err(Gone::Before(seq))) => json_error(
                        StatusCode::GONE,
                        format!("messages up to seq {seq} are no longer held here"),
                    ),
                    None => json_error(StatusCode::NOT_FOUND, format!("no room {id:?}")),
                }
            },
        );
    let socket = warp::path!("ws" / "rooms" / String)
        .and(warp::query::<RoomQuery>())
        .and(bearer)
        .and(warp::ws())
        .and(ctx)
        .map(
            |id: String,
             q: RoomQuery,
             auth: Option<String>,
             ws: warp::ws::Ws,
             (views, chat): (Arc<Views>, Arc<ChatInput>)| {
                let token = q.token.or(auth);
                let user = who(&chat, token.as_deref());
                ws.on_upgrade(move |socket| room_socket(socket, id, q.since, user, views, chat))
                    .into_response()
            },
        );
    list.or(create)
        .unify()
        .or(members)
        .unify()
        .or(invite)
        .unify()
        .or(messages)
        .unify()
        .or(socket)
        .unify()
}

/// A room's WebSocket: a snapshot with the messages after `since`, then every
/// change; and the client's joins, leaves and posts. One that falls behind
/// gets a snapshot of exactly what it missed (the messages after the last it
/// was sent), or an error frame if those are no longer held.
async fn room_socket(
    socket: WebSocket,
    room: String,
    since: Option<u64>,
    user: Result<Option<String>, AuthError>,
    views: Arc<Views>,
    chat: Arc<ChatInput>,
) {
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let m = observability::metrics();
    let (mut tx, mut rx) = socket.split();
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            let _ = tx
                .send(Message::text(error_frame("unauthorized", &e.to_string())))
                .await;
            let _ = tx.send(Message::close_with(1008u16, "unauthorized")).await;
            return;
        }
    };
    let subscribed = match views.rooms.may_read(&room, user.as_deref()) {
        Some(false) => Err(("forbidden", format!("room {room:?} is invite-only"))),
        _ => match views.rooms.subscribe(&room, since) {
            Some(Ok(s)) => Ok(s),
            None => Err(("unknown_room", format!("no room {room:?}"))),
            Some(Err(_)) => Err((
                "since_gone",
                "the messages after `since` are no longer held here; reconnect without since"
                    .to_owned(),
            )),
        },
    };
    let (snapshot, mut frames) = match subscribed {
        Ok(s) => s,
        Err((code, message)) => {
            let _ = tx.send(Message::text(error_frame(code, &message))).await;
            let _ = tx.send(Message::close_with(1008u16, code)).await;
            return;
        }
    };
    m.edge_clients.inc();
    if let Some(u) = &user {
        let _ = chat
            .send(&ChatInput::event(&room, u, ChatKind::Connect))
            .await;
    }
    let mut last_seq = last_message_seq(&snapshot).or(since).unwrap_or(0);
    let mut ok = tx.send(Message::text(snapshot.to_string())).await.is_ok();
    m.edge_frames.with_label_values(&["snapshot"]).inc();
    let mut limit = RateLimit::default();
    let mut joined_here = false;
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
                Some(Ok(msg)) if msg.is_text() => {
                    let reply = handle(&msg, &room, user.as_deref(), &views, &chat, &mut limit, &mut joined_here).await;
                    ok = tx.send(Message::text(reply)).await.is_ok();
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    if let Some(u) = &user {
        let _ = chat
            .send(&ChatInput::event(&room, u, ChatKind::Disconnect))
            .await;
    }
    m.edge_clients.dec();
}

/// One client frame: what to answer.
async fn handle(
    msg: &Message,
    room: &str,
    user: Option<&str>,
    views: &Views,
    chat: &ChatInput,
    limit: &mut RateLimit,
    joined_here: &mut bool,
) -> String {
    let text = msg.to_str().unwrap_or_default();
    let frame: In = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return error_frame("bad_frame", &e.to_string()),
    };
    if let In::Ping = frame {
        return serde_json::json!({"type": "pong"}).to_string();
    }
    let Some(user) = user else {
        return error_frame("unauthorized", &AuthError::Missing.to_string());
    };
    let (op, event, client_msg_id) = match frame {
        In::Ping => unreachable!("answered above"),
        In::Join => {
            if !views.rooms.may_join(room, user) {
                return error_frame("not_invited", &format!("{room:?} is invite-only"));
            }
            ("join", ChatInput::event(room, user, ChatKind::Join), None)
        }
        In::Leave => ("leave", ChatInput::event(room, user, ChatKind::Leave), None),
        In::Post {
            text,
            client_msg_id,
        } => {
            if !(*joined_here || views.rooms.is_member(room, user)) {
                return error_frame(
                    "not_member",
                    &format!("{user} is not a member of {room:?}; join first"),
                );
            }
            if !limit.take() {
                return error_frame("rate_limited", "too many posts; slow down");
            }
            let event = schemas::ChatEvent {
                text: Some(text),
                client_msg_id: client_msg_id.clone(),
                ..ChatInput::event(room, user, ChatKind::Message)
            };
            ("post", event, client_msg_id)
        }
    };
    match chat.send(&event).await {
        Ok(()) => {
            // The join is in the room's partition before any later post, so
            // the job will have it first: this connection may post now.
            match op {
                "join" => *joined_here = true,
                "leave" => *joined_here = false,
                _ => {}
            }
            serde_json::json!({"type": "ack", "op": op, "client_msg_id": client_msg_id}).to_string()
        }
        Err(SendError::Invalid(m)) => error_frame("invalid", &m),
        Err(SendError::Unavailable(m)) => error_frame("unavailable", &m),
    }
}

/// The seq of the last message in a room frame, if it carries any.
fn last_message_seq(frame: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    v["messages"].as_array()?.last()?["seq"].as_u64()
}
