//! The race routes.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/races` | `[{id, name, kind, participants, start}]` |
//! | `GET /api/races/{id}` | the race definition |
//! | `GET /api/races/{id}/standings` | rows by rank; `x-pace-seq` header |
//! | `GET /api/races/{id}/standings?gender=&category=&q=&from=&to=` | the rows of a gender and category, or found by name or bib, each with its `place` in the group; `x-pace-total`: how many the query keeps (`query.rs`) |
//! | `GET /api/races/{id}/groups` | `{genders: {F: n…}, categories: {…}}` |
//! | `GET /api/races/{id}/splits` | splits by split, then position; `x-pace-seq` |
//!
//! The WebSocket side (`WS /ws/races/{id}`) is the race view (`mod.rs`)
//! through `crate::socket`.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::transport::http::json_error;
use crate::views::race::Races;
use crate::views::race::query::StandingsQuery;

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
        .and(warp::query::<HashMap<String, String>>())
        .and(with.clone())
        .map(
            |id: String, params: HashMap<String, String>, races: Arc<Races>| {
                let query = match StandingsQuery::parse(&params) {
                    Ok(q) => q,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
                };
                match races.standings_where(&id, &query) {
                    Some((seq, rows, total)) => {
                        let reply = with_seq(&rows, seq);
                        warp::reply::with_header(reply, "x-pace-total", total.to_string())
                            .into_response()
                    }
                    None => no_race(&id),
                }
            },
        );
    let groups = warp::path!("api" / "races" / String / "groups")
        .and(warp::get())
        .and(with.clone())
        .map(|id: String, races: Arc<Races>| match races.groups(&id) {
            Some(g) => warp::reply::json(&g).into_response(),
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
        .or(groups)
        .unify()
}

fn no_race(id: &str) -> warp::reply::Response {
    json_error(StatusCode::NOT_FOUND, format!("no race {id:?}"))
}

/// `body` as JSON with the view's seq in `x-pace-seq`.
fn with_seq(body: &impl serde::Serialize, seq: u64) -> warp::reply::Response {
    warp::reply::with_header(warp::reply::json(body), "x-pace-seq", seq.to_string()).into_response()
}
