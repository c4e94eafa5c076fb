//! Calculation tasks at the edge: submitting them, and the results view
//! rebuilt from `pace.results`.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /api/tasks` `{"expression", "id"?}` | 202 `{"id"}` once the broker has the task; the same id again is the same task |
//! | `GET /api/tasks/{id}` | `{id, expression, status, result, error, submitted_at, completed_at}`; `PENDING` until the result is in |
//! | `GET /api/tasks?status=S&limit=N` | the latest results (of the last [`RESULTS_HELD`]), newest first, at most 500 |
//! | `WS /ws/tasks/{id}` | `/ws` subscribed to the task: a snapshot (`result` null or pending), then the result (`PROTOCOL.md`) |
//!
//! A malformed body, a missing field, a wrong type, an unknown field or a
//! body over 16 KiB gets a 4xx with a JSON error, and nothing is enqueued.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

use schemas::{CalcTask, TaskResult, TaskStatus, Timestamp};
use serde::Deserialize;
use tokio::sync::broadcast;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::listener::Peer;
use crate::post::{EdgeInput, SendError};
use crate::server::json_error;
use crate::socket::Shared;
use crate::views::{FRAME_BUFFER, Views};

/// Results held per edge (older ones are in the changelog and the archive).
pub const RESULTS_HELD: usize = 10_000;
/// Tasks submitted here and not yet answered, held at most.
pub const PENDING_HELD: usize = 10_000;
/// Most results one `GET /api/tasks` returns.
pub const MAX_LIST: usize = 500;
/// Largest request body, bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// The results this edge serves.
pub struct Tasks {
    inner: RwLock<Inner>,
    tx: broadcast::Sender<Arc<TaskResult>>,
}

#[derive(Default)]
struct Inner {
    results: BTreeMap<String, TaskResult>,
    order: VecDeque<String>,
    pending: BTreeMap<String, TaskResult>,
    pending_order: VecDeque<String>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            tx: broadcast::channel(FRAME_BUFFER).0,
        }
    }
}

impl Tasks {
    /// Records a result from the changelog (a result read twice is kept once).
    pub fn apply(&self, result: TaskResult) {
        let mut inner = self.inner.write().expect("tasks lock");
        inner.pending.remove(&result.id);
        if inner.results.contains_key(&result.id) {
            return;
        }
        inner.order.push_back(result.id.clone());
        inner.results.insert(result.id.clone(), result.clone());
        if inner.order.len() > RESULTS_HELD
            && let Some(old) = inner.order.pop_front()
        {
            inner.results.remove(&old);
        }
        let _ = self.tx.send(Arc::new(result));
    }

    /// Notes a task submitted through this edge, until its result arrives.
    pub fn submitted(&self, task: &CalcTask) {
        let mut inner = self.inner.write().expect("tasks lock");
        if inner.results.contains_key(&task.id) || inner.pending.contains_key(&task.id) {
            return;
        }
        inner.pending_order.push_back(task.id.clone());
        inner.pending.insert(
            task.id.clone(),
            TaskResult {
                id: task.id.clone(),
                expression: task.expression.clone(),
                status: TaskStatus::Pending,
                result: None,
                error: None,
                submitted_at: task.time,
                completed_at: None,
            },
        );
        while inner.pending_order.len() > PENDING_HELD {
            if let Some(old) = inner.pending_order.pop_front() {
                inner.pending.remove(&old);
            }
        }
    }

    /// A task's result, or its pending entry.
    pub fn get(&self, id: &str) -> Option<TaskResult> {
        let inner = self.inner.read().expect("tasks lock");
        inner
            .results
            .get(id)
            .or_else(|| inner.pending.get(id))
            .cloned()
    }

    /// The latest results with `status` (any if `None`), newest first.
    pub fn list(&self, status: Option<TaskStatus>, limit: usize) -> Vec<TaskResult> {
        let inner = self.inner.read().expect("tasks lock");
        let pending = inner
            .pending_order
            .iter()
            .rev()
            .filter_map(|id| inner.pending.get(id));
        let done = inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.results.get(id));
        pending
            .chain(done)
            .filter(|r| status.is_none_or(|s| r.status == s))
            .take(limit.min(MAX_LIST))
            .cloned()
            .collect()
    }

    /// The result if ready, and a subscription to results after it.
    pub(crate) fn watch(
        &self,
        id: &str,
    ) -> (Option<TaskResult>, broadcast::Receiver<Arc<TaskResult>>) {
        let inner = self.inner.read().expect("tasks lock");
        (inner.results.get(id).cloned(), self.tx.subscribe())
    }
}

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
/// ([`EdgeLimits::tasks`](crate::limits::EdgeLimits::tasks)); past it, 429.
pub(crate) fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let budget = shared.clone();
    let ctx = warp::any().map(move || (shared.views.clone(), shared.chat.clone()));
    let submit = warp::path!("api" / "tasks")
        .and(warp::post())
        .and(warp::ext::optional::<Peer>())
        .and_then(move |peer: Option<Peer>| {
            let budget = budget.clone();
            async move {
                match peer {
                    Some(p) if !budget.tasks.take(&p.addr.ip().into()) => {
                        observability::metrics()
                            .edge_rate_limited
                            .with_label_values(&["task"])
                            .inc();
                        Err(warp::reject::custom(crate::server::Limited(
                            "too many tasks from your address; slow down",
                        )))
                    }
                    _ => Ok(()),
                }
            }
        })
        .untuple_one()
        .and(crate::body::bytes(MAX_BODY))
        .and(ctx.clone())
        .then(
            |body: bytes::Bytes, (views, input): (Arc<Views>, Arc<EdgeInput>)| async move {
                let new: NewTask = match serde_json::from_slice(&body) {
                    Ok(t) => t,
                    Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("bad task: {e}")),
                };
                let task = CalcTask {
                    id: new.id.unwrap_or_else(new_id),
                    expression: new.expression,
                    time: Timestamp::now(),
                };
                if let Some(known) = views.tasks.get(&task.id) {
                    // The same id again: the same task.
                    return accepted(&known.id);
                }
                match input.submit(&task).await {
                    Ok(()) => {
                        views.tasks.submitted(&task);
                        accepted(&task.id)
                    }
                    Err(SendError::Invalid(m)) => json_error(StatusCode::BAD_REQUEST, m),
                    Err(SendError::Unavailable(m)) => {
                        json_error(StatusCode::SERVICE_UNAVAILABLE, m)
                    }
                }
            },
        );
    let one = warp::path!("api" / "tasks" / String)
        .and(warp::get())
        .and(ctx.clone())
        .map(
            |id: String, (views, _): (Arc<Views>, Arc<EdgeInput>)| match views.tasks.get(&id) {
                Some(r) => warp::reply::json(&r).into_response(),
                None => json_error(StatusCode::NOT_FOUND, format!("no task {id:?}")),
            },
        );
    let list = warp::path!("api" / "tasks")
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(ctx.clone())
        .map(|q: ListQuery, (views, _): (Arc<Views>, Arc<EdgeInput>)| {
            warp::reply::json(&views.tasks.list(q.status, q.limit.unwrap_or(100))).into_response()
        });
    submit.or(one).unify().or(list).unify()
}

fn accepted(id: &str) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "id": id })),
        StatusCode::ACCEPTED,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str) -> TaskResult {
        TaskResult {
            id: id.into(),
            expression: "1+1".into(),
            status: TaskStatus::Successful,
            result: Some("2".into()),
            error: None,
            submitted_at: Timestamp(1_780_000_000_000),
            completed_at: Some(Timestamp(1_780_000_000_000)),
        }
    }

    #[test]
    fn pending_until_the_result_then_bounded() {
        let tasks = Tasks::default();
        let task = CalcTask {
            id: "a".into(),
            expression: "1+1".into(),
            time: Timestamp(1_780_000_000_000),
        };
        tasks.submitted(&task);
        assert_eq!(tasks.get("a").unwrap().status, TaskStatus::Pending);
        tasks.apply(result("a"));
        tasks.apply(result("a"));
        assert_eq!(tasks.get("a").unwrap().status, TaskStatus::Successful);
        assert_eq!(tasks.list(None, 10).len(), 1);
        for i in 0..RESULTS_HELD + 5 {
            tasks.apply(result(&format!("r{i}")));
        }
        assert!(tasks.get("a").is_none(), "the oldest are dropped");
        assert_eq!(
            tasks.list(Some(TaskStatus::Successful), 1000).len(),
            MAX_LIST
        );
    }
}
