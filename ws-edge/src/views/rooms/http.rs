//! The room routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/rooms` | `[{id, members, online, last_seq, visibility}]`: the rooms the caller may see |
//! | `GET /api/rooms/{id}` | `{id, members, online, last_seq, visibility}` |
//! | `POST /api/rooms` `{"id","visibility":"public"\|"invite_only"}` | 201 once the rooms job made the room this request's; 409 if it exists or another create won; 202 if the job has not decided within [`CREATE_WAIT`] |
//! | `GET /api/rooms/{id}/members` | `[{room, user, online, joined_at}]` |
//! | `POST /api/rooms/{id}/invites` `{"user"}` | 202; members only |
//! | `GET /api/rooms/{id}/messages?since=SEQ&limit=N` | the messages after `SEQ`, in order (at most 500): from those the edge holds, or read back from `pace.rooms` ([`history`]); 410 beyond the changelog's retention |
//! | `POST /api/conversations` `{"with"}` | the caller's direct conversation with that user: 201 `{id, with}` once the rooms job made it, 200 if it exists (either of the two opened it); 400 with oneself |
//! | `GET /api/conversations` | `[{id, with, last_seq}]`: the caller's direct conversations |
//! | `GET /api/me/rooms` | `[{id, visibility, with?, last_seq, read_seq, unread}]`: the rooms and conversations the caller is a member of, and how much of each they have not read (their read marker: a `read` frame on the WebSocket) |
//!
//! Who: `Authorization: Bearer <token>`. Anyone may read a public room; an
//! invite-only room exists only for its members and invitees: to anyone
//! else every route answers 404, as for a room that does not exist (but a
//! create of its name gets 409: room ids are one namespace). A direct
//! conversation is a room of two ([`schemas::direct_room`]): to anyone
//! else every route answers 403, whether it exists or not (its id is a
//! hash anyone can compute, so 404 against 403 would tell who talks to
//! whom); it takes no invite (403), and is opened only through
//! `/api/conversations`. Room
//! ids are [`schemas::validate::room_id`]s. Creates and invites take from
//! the caller's post budget. The WebSocket side (`WS /ws/rooms/{id}`,
//! joins, leaves and posts) is in `crate::socket` and `PROTOCOL.md`.

use std::sync::Arc;
use std::time::Duration;

use schemas::{ChatKind, Visibility};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::input::EdgeInput;
use crate::transport::http::{Callers, json_error, json_with, send_error};
use crate::views::rooms::{Gone, MAX_PAGE, Rooms, history};

/// How long a create waits for the rooms job's decision before it answers
/// 202 (the create is in Kafka and will be decided; `GET /api/rooms/{id}`
/// tells).
pub const CREATE_WAIT: Duration = Duration::from_secs(10);
/// Largest request body, bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// `?since=SEQ&limit=N` of the messages route.
#[derive(Debug, Deserialize)]
struct RoomQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    id: String,
    visibility: Visibility,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConversation {
    with: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvite {
    user: String,
}

/// 404 for a room the caller may not see, but 403 for a direct
/// conversation not theirs, whether it exists or not
/// ([`crate::views::rooms::unseen`]).
fn no_room(id: &str) -> warp::reply::Response {
    let refused = crate::views::rooms::unseen(id);
    let status = match refused.0 {
        crate::protocol::ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        _ => StatusCode::NOT_FOUND,
    };
    json_error(status, refused.1)
}

/// The rooms and who asks.
#[derive(Clone)]
struct Ctx {
    rooms: Arc<Rooms>,
    callers: Callers,
}

impl Ctx {
    /// What `read` finds of room `id` for the user `auth` names, as JSON;
    /// 404 when it finds nothing (no such room, or one the user may not see).
    fn visible<T: serde::Serialize>(
        &self,
        auth: Option<String>,
        id: &str,
        read: impl FnOnce(&Rooms, Option<&str>) -> Option<T>,
    ) -> warp::reply::Response {
        match self.callers.who(auth.as_deref()) {
            Ok(user) => match read(&self.rooms, user.as_deref()) {
                Some(v) => warp::reply::json(&v).into_response(),
                None => no_room(id),
            },
            Err(e) => e.reply(),
        }
    }
}

/// A fresh create id.
fn create_id() -> String {
    format!(
        "create-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// The room routes.
pub(crate) fn routes(
    rooms: Arc<Rooms>,
    callers: Callers,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let ctx = Ctx { rooms, callers };
    let ctx = warp::any().map(move || ctx.clone());
    let bearer = warp::header::optional::<String>("authorization");
    let list = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(bearer)
        .and(ctx.clone())
        .map(
            |auth: Option<String>, ctx: Ctx| match ctx.callers.who(auth.as_deref()) {
                Ok(user) => warp::reply::json(&ctx.rooms.list(user.as_deref())).into_response(),
                Err(e) => e.reply(),
            },
        );
    let one = warp::path!("api" / "rooms" / String)
        .and(warp::get())
        .and(bearer)
        .and(ctx.clone())
        .map(|id: String, auth: Option<String>, ctx: Ctx| {
            ctx.visible(auth, &id, |rooms, user| rooms.summary(&id, user))
        });
    let create = warp::path!("api" / "rooms")
        .and(warp::post())
        .and(bearer)
        .and(crate::protocol::body::json::<NewRoom>(MAX_BODY))
        .and(ctx.clone())
        .then(|auth: Option<String>, new: NewRoom, ctx: Ctx| async move {
            create(&ctx, auth, new).await
        });
    let members = warp::path!("api" / "rooms" / String / "members")
        .and(warp::get())
        .and(bearer)
        .and(ctx.clone())
        .map(|id: String, auth: Option<String>, ctx: Ctx| {
            ctx.visible(auth, &id, |rooms, user| rooms.members(&id, user))
        });
    let invite = warp::path!("api" / "rooms" / String / "invites")
        .and(warp::post())
        .and(bearer)
        .and(crate::protocol::body::json::<NewInvite>(MAX_BODY))
        .and(ctx.clone())
        .then(
            |id: String, auth: Option<String>, new: NewInvite, ctx: Ctx| async move {
                let user = match ctx.callers.user(auth.as_deref()) {
                    Ok(u) => u,
                    Err(e) => return e.reply(),
                };
                let rooms = &ctx.rooms;
                if !rooms.visible(&id, Some(&user)) {
                    return no_room(&id);
                }
                if !rooms.is_member(&id, &user) {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        format!("{user} is not a member of {id:?}"),
                    );
                }
                if rooms.is_direct(&id) {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        "a direct conversation is its two users' alone".to_owned(),
                    );
                }
                if let Err(e) = ctx.callers.spend(&user) {
                    return e.reply();
                }
                let event = schemas::ChatEvent {
                    invitee: Some(new.user),
                    ..EdgeInput::event(&id, &user, ChatKind::Invite)
                };
                match ctx.callers.input.send(&event).await {
                    Ok(()) => json_with(StatusCode::ACCEPTED, &serde_json::json!({})),
                    Err(e) => send_error(&e),
                }
            },
        );
    let messages = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::get())
        .and(warp::query::<RoomQuery>())
        .and(bearer)
        .and(ctx.clone())
        .then(
            |id: String, q: RoomQuery, auth: Option<String>, ctx: Ctx| async move {
                let user = match ctx.callers.who(auth.as_deref()) {
                    Ok(u) => u,
                    Err(e) => return e.reply(),
                };
                let limit = q.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
                let since = q.since.unwrap_or(0);
                match ctx.rooms.messages(&id, user.as_deref(), since, limit) {
                    Some(Ok(m)) => warp::reply::json(&m).into_response(),
                    Some(Err(Gone::InChangelog { partition, offset })) => {
                        let input = ctx.callers.input.clone();
                        let read = tokio::task::spawn_blocking(move || {
                            let topic = &input.topics().rooms;
                            history::read(
                                input.kafka(),
                                topic,
                                &id,
                                (partition, offset),
                                since,
                                limit,
                            )
                        });
                        match read.await {
                            Ok(Ok(m)) => warp::reply::json(&m).into_response(),
                            Ok(Err(e)) => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
                            Err(_) => json_error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "the read of the changelog failed".to_owned(),
                            ),
                        }
                    }
                    Some(Err(Gone::Before(seq))) => json_error(
                        StatusCode::GONE,
                        format!("messages up to seq {seq} are beyond the changelog's retention"),
                    ),
                    None => no_room(&id),
                }
            },
        );
    let open = warp::path!("api" / "conversations")
        .and(warp::post())
        .and(bearer)
        .and(crate::protocol::body::json::<NewConversation>(MAX_BODY))
        .and(ctx.clone())
        .then(
            |auth: Option<String>, new: NewConversation, ctx: Ctx| async move {
                conversation(&ctx, auth, new.with).await
            },
        );
    let conversations = warp::path!("api" / "conversations")
        .and(warp::get())
        .and(bearer)
        .and(ctx.clone())
        .map(
            |auth: Option<String>, ctx: Ctx| match ctx.callers.user(auth.as_deref()) {
                Ok(user) => warp::reply::json(&ctx.rooms.conversations(&user)).into_response(),
                Err(e) => e.reply(),
            },
        );
    let mine = warp::path!("api" / "me" / "rooms")
        .and(warp::get())
        .and(bearer)
        .and(ctx.clone())
        .map(
            |auth: Option<String>, ctx: Ctx| match ctx.callers.user(auth.as_deref()) {
                Ok(user) => warp::reply::json(&ctx.rooms.mine(&user)).into_response(),
                Err(e) => e.reply(),
            },
        );
    list.or(one)
        .unify()
        .or(mine)
        .unify()
        .or(create)
        .unify()
        .or(open)
        .unify()
        .or(conversations)
        .unify()
        .or(members)
        .unify()
        .or(invite)
        .unify()
        .or(messages)
        .unify()
}

/// What became of a create this edge sent.
enum Made {
    /// The rooms job made the room this create's.
    Ours,
    /// Another create won.
    Theirs,
    /// Not decided within [`CREATE_WAIT`].
    Pending,
}

/// Sends `user`'s create of room `id` (with `invitee`, for a direct
/// conversation) with an id of its own, and waits for what the rooms job
/// decided, in Kafka order.
async fn make(
    ctx: &Ctx,
    user: &str,
    id: &str,
    visibility: Visibility,
    invitee: Option<String>,
) -> Result<Made, warp::reply::Response> {
    if let Err(e) = ctx.callers.spend(user) {
        return Err(e.reply());
    }
    let create_id = create_id();
    let event = schemas::ChatEvent {
        client_msg_id: Some(create_id.clone()),
        invitee,
        ..EdgeInput::create(id, user, visibility)
    };
    let send = ctx.callers.input.send(&event);
    let rooms = &ctx.rooms;
    match crate::input::decision::produce_then_await(send, CREATE_WAIT, || rooms.created(id)).await
    {
        Err(e) => Err(send_error(&e)),
        Ok(Some(c)) if c.create_id.as_deref() == Some(create_id.as_str()) => Ok(Made::Ours),
        Ok(Some(_)) => Ok(Made::Theirs),
        Ok(None) => Ok(Made::Pending),
    }
}

fn pending(id: &str) -> warp::reply::Response {
    json_with(
        StatusCode::ACCEPTED,
        &serde_json::json!({
            "id": id,
            "status": "pending",
            "message": "the create is queued and not decided yet; GET /api/rooms/{id} tells",
        }),
    )
}

/// `POST /api/rooms`: the create goes to Kafka with an id of its own, and
/// the answer is what the rooms job decided, in Kafka order.
async fn create(ctx: &Ctx, auth: Option<String>, new: NewRoom) -> warp::reply::Response {
    let user = match ctx.callers.user(auth.as_deref()) {
        Ok(u) => u,
        Err(e) => return e.reply(),
    };
    if let Err(e) = schemas::validate::room_id("id", &new.id) {
        return json_error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if new.visibility == Visibility::Direct || new.id.starts_with(schemas::records::DIRECT_PREFIX) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a direct conversation is opened with POST /api/conversations".to_owned(),
        );
    }
    let exists = || json_error(StatusCode::CONFLICT, format!("room {:?} exists", new.id));
    if ctx.rooms.exists(&new.id) {
        return exists();
    }
    match make(ctx, &user, &new.id, new.visibility, None).await {
        Ok(Made::Ours) => json_with(StatusCode::CREATED, &serde_json::json!({"id": new.id})),
        Ok(Made::Theirs) => exists(),
        Ok(Made::Pending) => pending(&new.id),
        Err(reply) => reply,
    }
}

/// `POST /api/conversations`: the caller's direct conversation with
/// `with`, made if it is not yet.
async fn conversation(ctx: &Ctx, auth: Option<String>, with: String) -> warp::reply::Response {
    let user = match ctx.callers.user(auth.as_deref()) {
        Ok(u) => u,
        Err(e) => return e.reply(),
    };
    if let Err(e) = schemas::validate::id("with", &with) {
        return json_error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if with == user {
        return json_error(
            StatusCode::BAD_REQUEST,
            "a conversation takes two users".to_owned(),
        );
    }
    let id = schemas::direct_room(&user, &with);
    let answer = |status| json_with(status, &serde_json::json!({"id": id, "with": with}));
    if ctx.rooms.exists(&id) {
        return answer(StatusCode::OK);
    }
    match make(ctx, &user, &id, Visibility::Direct, Some(with.clone())).await {
        Ok(Made::Ours) => answer(StatusCode::CREATED),
        Ok(Made::Theirs) => answer(StatusCode::OK),
        Ok(Made::Pending) => pending(&id),
        Err(reply) => reply,
    }
}
