//! The tournament routes: each action is sent to `pace.tournament` and
//! answered with the job's decision (see the table in `mod.rs`).

use std::sync::Arc;

use schemas::Timestamp;
use schemas::tournament::{Outcome, Refusal, TournamentAction, TournamentEvent};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{DECIDE_WAIT, MAX_BODY, Tournaments};
use crate::transport::http::{Callers, HttpError, json_error, json_with, send_error};

/// The HTTP status a refusal is answered with.
fn status(r: Refusal) -> StatusCode {
    match r {
        Refusal::UnknownTournament => StatusCode::NOT_FOUND,
        Refusal::NotAPlayer | Refusal::NotOrganiser => StatusCode::FORBIDDEN,
        Refusal::Exists
        | Refusal::Full
        | Refusal::AlreadyJoined
        | Refusal::TeamTaken
        | Refusal::StaleVersion
        | Refusal::Drawn => StatusCode::CONFLICT,
    }
}

#[derive(Clone)]
struct Ctx {
    tournaments: Arc<Tournaments>,
    callers: Callers,
}

/// A request id of the edge's own, for a body without `client_msg_id`.
fn request_id() -> String {
    format!(
        "req-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A request body that must be a JSON object.
fn object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, HttpError> {
    serde_json::from_slice(body)
        .map_err(|e| HttpError(StatusCode::BAD_REQUEST, format!("bad body: {e}")))
}

/// Reads an action from `fields` (a body's: the action's fields and an
/// optional `client_msg_id`) for the action named `kind`.
fn action(
    kind: &str,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> Result<(TournamentAction, Option<String>), HttpError> {
    let bad = |m: String| HttpError(StatusCode::BAD_REQUEST, m);
    let client_msg_id = match fields.remove("client_msg_id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err(bad("client_msg_id must be a string".to_owned())),
    };
    if fields.contains_key("kind") {
        return Err(bad("unknown field `kind`".to_owned()));
    }
    fields.insert("kind".to_owned(), kind.into());
    let action =
        serde_json::from_value(fields.into()).map_err(|e| bad(format!("bad {kind}: {e}")))?;
    Ok((action, client_msg_id))
}

impl Ctx {
    /// Sends `user`'s `action` on `id` and answers with its outcome.
    async fn act(
        &self,
        auth: Option<String>,
        id: String,
        action: TournamentAction,
        client_msg_id: Option<String>,
    ) -> warp::reply::Response {
        let user = match self.callers.user(auth.as_deref()) {
            Ok(u) => u,
            Err(e) => return e.reply(),
        };
        let create = matches!(action, TournamentAction::Create { .. });
        if create && self.tournaments.exists(&id) {
            return refused(Refusal::Exists);
        }
        if !create && !self.tournaments.exists(&id) {
            return refused(Refusal::UnknownTournament);
        }
        if let Err(e) = self.callers.spend(&user) {
            return e.reply();
        }
        let client_msg_id = client_msg_id.unwrap_or_else(request_id);
        let event = TournamentEvent {
            tournament: id.clone(),
            user: user.clone(),
            action,
            client_msg_id: Some(client_msg_id.clone()),
            time: Timestamp::now(),
        };
        let input = &self.callers.input;
        let topic = &input.topics().tournament;
        let send = input.produce(topic, &id, &event);
        let decided = crate::input::decision::produce_then_await(send, DECIDE_WAIT, || {
            self.tournaments.decided(&id, &user, &client_msg_id)
        })
        .await;
        match decided {
            Err(e) => send_error(&e),
            Ok(Some(Outcome {
                refused: Some(r), ..
            })) => refused(r),
            Ok(Some(o)) => json_with(
                if create {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &serde_json::json!({"id": id, "outcome": o}),
            ),
            Ok(None) => json_with(
                StatusCode::ACCEPTED,
                &serde_json::json!({
                    "id": id,
                    "client_msg_id": client_msg_id,
                    "status": "pending",
                    "message": "queued and not decided yet; the tournament's view shows the outcome",
                }),
            ),
        }
    }
}

fn refused(r: Refusal) -> warp::reply::Response {
    json_with(
        status(r),
        &serde_json::json!({"error": r.message(), "code": r}),
    )
}

/// The join link of `id` on `host`, as a QR code (SVG).
fn qr(host: &str, scheme: &str, id: &str) -> warp::reply::Response {
    let link = format!("{scheme}://{host}/?tournament={id}");
    match qrcode::QrCode::new(link.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // The link is this request's host: no shared cache may keep it
            // for another.
            let mut r =
                warp::reply::with_header(svg, "content-type", "image/svg+xml").into_response();
            let h = r.headers_mut();
            h.insert(
                "cache-control",
                warp::http::HeaderValue::from_static("private, no-store"),
            );
            h.insert(
                "vary",
                warp::http::HeaderValue::from_static("host, x-forwarded-proto"),
            );
            r
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, format!("no QR code: {e}")),
    }
}

/// The tournament routes.
pub(crate) fn routes(
    tournaments: Arc<Tournaments>,
    callers: Callers,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let ctx = Ctx {
        tournaments,
        callers,
    };
    let ctx = warp::any().map(move || ctx.clone());
    let bearer = warp::header::optional::<String>("authorization");
    let list = warp::path!("api" / "tournaments")
        .and(warp::get())
        .and(ctx.clone())
        .map(|ctx: Ctx| warp::reply::json(&ctx.tournaments.list()).into_response());
    let one = warp::path!("api" / "tournaments" / String)
        .and(warp::get())
        .and(ctx.clone())
        .map(|id: String, ctx: Ctx| match ctx.tournaments.get(&id) {
            Some(v) => warp::reply::json(&v).into_response(),
            None => refused(Refusal::UnknownTournament),
        });
    let code = warp::path!("api" / "tournaments" / String / "qr.svg")
        .and(warp::get())
        .and(warp::host::optional())
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(ctx.clone())
        .map(
            |id: String, host: Option<warp::host::Authority>, proto: Option<String>, ctx: Ctx| {
                if !ctx.tournaments.exists(&id) {
                    return refused(Refusal::UnknownTournament);
                }
                let scheme = match proto.as_deref() {
                    Some("https") => "https",
                    _ => "http",
                };
                let host = host.map_or_else(|| "localhost".to_owned(), |h| h.to_string());
                qr(&host, scheme, &id)
            },
        );
    let create = warp::path!("api" / "tournaments")
        .and(warp::post())
        .and(bearer)
        .and(crate::protocol::body::bytes(MAX_BODY))
        .and(ctx.clone())
        .then(
            |auth: Option<String>, body: bytes::Bytes, ctx: Ctx| async move {
                // The id is the body's; the rest is the create.
                let mut fields = match object(&body) {
                    Ok(f) => f,
                    Err(e) => return e.reply(),
                };
                let Some(serde_json::Value::String(id)) = fields.remove("id") else {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "a tournament needs a string `id`".to_owned(),
                    );
                };
                match action("create", fields) {
                    Ok((a, client_msg_id)) => ctx.act(auth, id, a, client_msg_id).await,
                    Err(e) => e.reply(),
                }
            },
        );
    let act = warp::path!("api" / "tournaments" / String / String)
        .and(warp::post())
        .and(bearer)
        .and(crate::protocol::body::bytes(MAX_BODY))
        .and(ctx)
        .then(
            |id: String, kind: String, auth: Option<String>, body: bytes::Bytes, ctx: Ctx| async move {
                if !matches!(kind.as_str(), "join" | "choose" | "rename" | "close") {
                    return json_error(StatusCode::NOT_FOUND, "not found".to_owned());
                }
                match object(&body).and_then(|fields| action(&kind, fields)) {
                    Ok((a, client_msg_id)) => ctx.act(auth, id, a, client_msg_id).await,
                    Err(e) => e.reply(),
                }
            },
        );
    list.or(one)
        .unify()
        .or(code)
        .unify()
        .or(create)
        .unify()
        .or(act)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_read_as_the_named_action() {
        let (a, id) = action(
            "choose",
            object(br#"{"team":"Ajax","client_msg_id":"c1"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            a,
            TournamentAction::Choose {
                team: "Ajax".into()
            }
        );
        assert_eq!(id.as_deref(), Some("c1"));
        assert!(
            action(
                "choose",
                object(br#"{"team":"Ajax","kind":"close"}"#).unwrap()
            )
            .is_err()
        );
        assert!(action("choose", object(br#"{"team":"Ajax","x":1}"#).unwrap()).is_err());
        assert!(object(b"[1]").is_err(), "a body is an object");
        assert!(
            action("rename", object(br#"{"name":"New"}"#).unwrap()).is_err(),
            "needs the version"
        );
        assert!(matches!(
            action("close", object(b"{}").unwrap()).unwrap().0,
            TournamentAction::Close {}
        ));
    }
}
