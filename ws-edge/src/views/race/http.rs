//! The race routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/races` | `[{id, name, kind, participants, start}]` |
//! | `GET /api/races/{id}` | the race definition |
//! | `GET /api/races/{id}/standings` | rows by rank; `x-pace-seq` header |
//! | `GET /api/races/{id}/splits` | splits by split, then position; `x-pace-seq` |
//!
//! The WebSocket side (`WS /ws/races/{id}`) is the race view (`mod.rs`)
//! through `crate::socket`.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::transport::http::json_error;
use crate::views::race::Races;

/// The race routes.
pub(crate) fn routes(
    races: Arc<Races>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || races.clone());
    let list = warp::path!("api" / "races")
        .and(warp::get())
        .and(with.clone())
        .map(|races: Arc<Races>| warp::reply::json(&races.races()).into_response());
    let one = warp::path!("api" / "races" / String)
        .and(warp::get())
        .and(with.clone())
        .map(
            |id: String, races: Arc<Races>| match races.definition(&id) {
                Some(d) => warp::reply::json(&d).into_response(),
                None => no_race(&id),
            },
        );
    let standings = warp::path!("api" / "races" / String / "standings")
        .and(warp::get())
        .and(with.clone())
        .map(|id: String, races: Arc<Races>| match races.standings(&id) {
            Some((seq, rows)) => with_seq(&rows, seq),
            None => no_race(&id),
        });
    let splits = warp::path!("api" / "races" / String / "splits")
        .and(warp::get())
        .and(with)
        .map(|id: String, races: Arc<Races>| match races.splits(&id) {
            Some((seq, splits)) => with_seq(&splits, seq),
            None => no_race(&id),
        });
    list.or(one)
        .unify()
        .or(standings)
        .unify()
        .or(splits)
        .unify()
}

fn no_race(id: &str) -> warp::reply::Response {
    json_error(StatusCode::NOT_FOUND, format!("no race {id:?}"))
}

/// `body` as JSON with the view's seq in `x-pace-seq`.
fn with_seq(body: &impl serde::Serialize, seq: u64) -> warp::reply::Response {
    warp::reply::with_header(warp::reply::json(body), "x-pace-seq", seq.to_string()).into_response()
}
