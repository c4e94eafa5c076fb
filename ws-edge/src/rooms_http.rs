//! The room routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/rooms` | `[{id, members, online, last_seq, visibility}]` |
//! | `POST /api/rooms` `{"id","visibility":"public"\|"invite_only"}` | 201; 409 if it exists; the creator is its first member |
//! | `GET /api/rooms/{id}/members` | `[{room, user, online, joined_at}]` |
//! | `POST /api/rooms/{id}/invites` `{"user"}` | 202; members only |
//! | `GET /api/rooms/{id}/messages?since=SEQ&limit=N` | the messages after `SEQ`, in order (at most 500); 410 once no longer held |
//!
//! Who: `Authorization: Bearer <token>`. Anyone may read a public room; an
//! invite-only room only its members and invitees (403). The WebSocket side
//! (`WS /ws/rooms/{id}`, joins, leaves and posts) is in `socket.rs` and
//! `PROTOCOL.md`.

use std::sync::Arc;

use schemas::{ChatKind, Visibility};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::auth::AuthError;
use crate::post::{EdgeInput, SendError};
use crate::rooms::Gone;
use crate::server::json_error;
use crate::views::Views;

/// `?since=SEQ&limit=N&token=T` of the room routes.
#[derive(Debug, Deserialize)]
struct RoomQuery {
    since: Option<u64>,
    limit: Option<usize>,
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
fn who(chat: &EdgeInput, header: Option<&str>) -> Result<Option<String>, AuthError> {
    match header {
        None => Ok(None),
        Some(h) => chat.user(Some(h)).map(Some),
    }
}

/// The room routes over `views`, posting through `chat`.
pub fn routes(
    views: Arc<Views>,
    chat: Arc<EdgeInput>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let ctx = warp::any().map(move || (views.clone(), chat.clone()));
    let bearer = warp::header::optional::<String>("authorization");
    let list = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(ctx.clone())
        .map(|(views, _): (Arc<Views>, Arc<EdgeInput>)| {
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
                 (views, chat): (Arc<Views>, Arc<EdgeInput>)| async move {
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
                        .send(&EdgeInput::create(&new.id, &user, new.visibility))
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
            |id: String, auth: Option<String>, (views, chat): (Arc<Views>, Arc<EdgeInput>)| {
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
             (views, chat): (Arc<Views>, Arc<EdgeInput>)| async move {
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
                    ..EdgeInput::event(&id, &user, ChatKind::Invite)
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
             (views, chat): (Arc<Views>, Arc<EdgeInput>)| {
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
    list.or(create)
        .unify()
        .or(members)
        .unify()
        .or(invite)
        .unify()
        .or(messages)
        .unify()
}
