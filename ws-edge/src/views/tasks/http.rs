//! The task routes: submitting a task, and reading results (see the table
//! in `mod.rs`).

use std::sync::Arc;

use schemas::{CalcTask, TaskResult, TaskStatus, Timestamp};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{MAX_BODY, Tasks};
use crate::input::EdgeInput;
use crate::transport::bucket::Keyed;
use crate::transport::http::{Limited, json_error, json_with, send_error};
use crate::transport::listener::{AddressKey, Peer};
use crate::views::live::Context;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTask {
    expression: String,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<TaskStatus>,
    limit: Option<usize>,
}

fn new_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("t-{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

/// The task routes. Submissions take from the client address's budget
/// ([`EdgeLimits::tasks`](crate::transport::limits::EdgeLimits::tasks)); past it, 429.
pub(crate) fn routes(
    tasks: Arc<Tasks>,
    context: &Context,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + use<> {
    let limits = &context.limits;
    let budget = Arc::new(Keyed::<AddressKey>::new(limits.tasks, limits.budget_keys));
    let input = context.callers.input.clone();
    let ctx = warp::any().map(move || (tasks.clone(), input.clone()));
    let submit = warp::path!("api" / "tasks")
        .and(warp::post())
        .and(warp::ext::optional::<Peer>())
        .and_then(move |peer: Option<Peer>| {
            let budget = budget.clone();
            async move {
                match peer {
                    Some(p) if !budget.take(&p.addr.ip().into()) => {
                        observability::metrics()
                            .edge_rate_limited
                            .with_label_values(&["task"])
                            .inc();
                        Err(warp::reject::custom(Limited(
                            "too many tasks from your address; slow down",
                        )))
                    }
                    _ => Ok(()),
                }
            }
        })
        .untuple_one()
        .and(crate::protocol::body::bytes(MAX_BODY))
        .and(ctx.clone())
        .then(
            |body: bytes::Bytes, (tasks, input): (Arc<Tasks>, Arc<EdgeInput>)| async move {
                let new: NewTask = match serde_json::from_slice(&body) {
                    Ok(t) => t,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad task: {e}")),
                };
                let task = CalcTask {
                    id: new.id.unwrap_or_else(new_id),
                    expression: new.expression,
                    time: Timestamp::now(),
                };
                if let Some(known) = tasks.get(&task.id) {
                    // The same id again: the same task.
                    return accepted(&known.id);
                }
                match input.submit(&task).await {
                    Ok(()) => {
                        tasks.submitted(&task);
                        accepted(&task.id)
                    }
                    Err(e) => send_error(&e),
                }
            },
        );
    let one = warp::path!("api" / "tasks" / String)
        .and(warp::get())
        .and(ctx.clone())
        .then(
            |id: String, (tasks, input): (Arc<Tasks>, Arc<EdgeInput>)| async move {
                if let Some(r) = tasks.get(&id) {
                    return warp::reply::json(&r).into_response();
                }
                let missing = || json_error(StatusCode::NOT_FOUND, format!("no task {id:?}"));
                let Some(place) = tasks.older(&id) else {
                    return missing();
                };
                // No longer held here: read back from the changelog.
                let read = tokio::task::spawn_blocking(move || {
                    let topic = &input.topics().results;
                    ingest::reader::read_one(input.kafka(), topic, place)
                })
                .await;
                match read {
                    Ok(Ok(Some(raw))) => match serde_json::from_slice::<TaskResult>(&raw.payload) {
                        Ok(r) if r.id == id => {
                            let mut reply = warp::reply::json(&r).into_response();
                            // Said, for whoever wonders why it took longer.
                            reply.headers_mut().insert(
                                "x-pace-from",
                                warp::http::HeaderValue::from_static("changelog"),
                            );
                            reply
                        }
                        _ => missing(),
                    },
                    Ok(Ok(None)) => missing(),
                    Ok(Err(e)) => json_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                    Err(_) => json_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the read of the changelog failed".to_owned(),
                    ),
                }
            },
        );
    let list = warp::path!("api" / "tasks")
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(ctx.clone())
        .map(|q: ListQuery, (tasks, _): (Arc<Tasks>, Arc<EdgeInput>)| {
            warp::reply::json(&tasks.list(q.status, q.limit.unwrap_or(100))).into_response()
        });
    submit.or(one).unify().or(list).unify()
}

fn accepted(id: &str) -> warp::reply::Response {
    json_with(StatusCode::ACCEPTED, &serde_json::json!({ "id": id }))
}
