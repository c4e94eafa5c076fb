//! Calculation tasks at the edge: submitting them, and the results view
//! rebuilt from `pace.results`.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /api/tasks` `{"expression", "id"?}` | 202 `{"id"}` once the broker has the task; the same id again is the same task |
//! | `GET /api/tasks/{id}` | `{id, expression, status, result, error, submitted_at, completed_at}`; `PENDING` until the result is in, on every edge (each follows `pace.calc` too); a result no longer held is read back from `pace.results` |
//! | `GET /api/tasks?status=S&limit=N` | the latest results (of the last [`RESULTS_HELD`]), newest first, at most 500 |
//! | `WS /ws/tasks/{id}` | `/ws` subscribed to the task: a snapshot (`result` null or pending), then the result (`PROTOCOL.md`) |
//!
//! A malformed body, a missing field, a wrong type, an unknown field or a
//! body over 16 KiB gets a 4xx with a JSON error, and nothing is enqueued.
//! The routes are in `http.rs`.

pub mod frames;
pub(crate) mod http;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use schemas::{CalcTask, TaskResult, TaskStatus, Topics};
use tokio::sync::broadcast;
use warp::Filter;

use self::frames::{TaskDelta, TaskSnapshot};
use crate::protocol::ViewKind;
use crate::protocol::{Frame, Refused};
use crate::views::live::{
    Change, Changelog, Context, First, Key, LiveView, Routes, Snapshot, Subscribed, ViewModule,
};

/// Results held per edge (older ones are in the changelog and the archive).
pub const RESULTS_HELD: usize = 10_000;
/// Tasks submitted (through any edge) and not yet answered, held at most.
pub const PENDING_HELD: usize = 10_000;
/// How old a task read from `pace.calc` may be and still count as
/// pending, milliseconds: an older one has its result (perhaps no longer
/// held here), or is lost.
pub const PENDING_FOR_MS: i64 = 10 * 60 * 1000;
/// Most results one `GET /api/tasks` returns.
pub const MAX_LIST: usize = 500;
/// Largest request body, bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// A task id's hash, for the index of results no longer held.
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The results this edge serves.
#[derive(Default)]
pub struct Tasks {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    results: BTreeMap<String, TaskResult>,
    /// Where each held result is in `pace.results` (partition, offset).
    places: HashMap<String, (i32, i64)>,
    /// Where each result no longer held is, by a hash of its task id: read
    /// back from the changelog when asked for (8 + 12 bytes a result).
    older: HashMap<u64, (i32, i64)>,
    order: VecDeque<String>,
    pending: BTreeMap<String, TaskResult>,
    pending_order: VecDeque<String>,
    /// A channel per task someone waits for: its result goes only to them.
    waiting: HashMap<String, broadcast::Sender<Change>>,
    /// The size of `waiting` at which channels nobody waits on any more
    /// are dropped (twice what was left the last time, so each subscribe
    /// costs O(1) amortised).
    prune_at: usize,
}

/// A task's snapshot frame: its result, pending entry, or nothing yet.
fn snapshot_frame(id: &str, result: Option<&TaskResult>) -> Frame {
    let done = result.is_some_and(|r| r.status != TaskStatus::Pending);
    crate::protocol::snapshot(&TaskSnapshot::Task {
        id,
        seq: u64::from(done),
        result,
    })
}

impl Tasks {
    /// Records a result from the changelog (a result read twice is kept
    /// once) and sends it to whoever waits for that task.
    pub fn apply(&self, result: TaskResult) {
        self.apply_at(result, None);
    }

    /// [`Tasks::apply`] of a result read at `place` (partition, offset) of
    /// `pace.results`: once it is no longer held, it is read from there.
    pub fn apply_at(&self, result: TaskResult, place: Option<(i32, i64)>) {
        let mut inner = self.inner.write().expect("tasks lock");
        inner.pending.remove(&result.id);
        if inner.results.contains_key(&result.id) {
            return;
        }
        if let Some(tx) = inner.waiting.remove(&result.id) {
            let frame = crate::protocol::delta(&TaskDelta::Task {
                id: &result.id,
                seq: 1,
                result: &result,
            });
            let _ = tx.send(Change {
                version: 1,
                seq: 1,
                frame,
                origin_ms: None,
            });
        }
        inner.order.push_back(result.id.clone());
        if let Some(place) = place {
            inner.places.insert(result.id.clone(), place);
        }
        inner.results.insert(result.id.clone(), result);
        if inner.order.len() > RESULTS_HELD
            && let Some(old) = inner.order.pop_front()
        {
            inner.results.remove(&old);
            if let Some(place) = inner.places.remove(&old) {
                inner.older.insert(id_hash(&old), place);
            }
        }
    }

    /// Notes a task submitted (through this edge, or read from `pace.calc`),
    /// until its result arrives.
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

    /// Where the result of task `id` is in `pace.results`, if it is no
    /// longer held here (by a hash of the id: check the record's id).
    pub fn older(&self, id: &str) -> Option<(i32, i64)> {
        let inner = self.inner.read().expect("tasks lock");
        inner.older.get(&id_hash(id)).copied()
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
}

impl LiveView for Tasks {
    /// A snapshot (the result, the pending entry, or `null`); unless the
    /// result is in, the result follows once it is.
    fn subscribe(
        &self,
        key: &Key,
        _user: Option<&str>,
        _since: Option<u64>,
    ) -> Result<Subscribed, Refused> {
        let mut inner = self.inner.write().expect("tasks lock");
        if let Some(r) = inner.results.get(&key.id) {
            return Ok(Subscribed {
                first: First::Snapshot(snapshot_frame(&key.id, Some(r))),
                version: 1,
                seq: 1,
                changes: None, // a task has no other change
            });
        }
        let first = First::Snapshot(snapshot_frame(&key.id, inner.pending.get(&key.id)));
        // Channels nobody waits on any more go as the map grows.
        if inner.waiting.len() >= inner.prune_at.max(PENDING_HELD) {
            inner.waiting.retain(|_, tx| tx.receiver_count() > 0);
            inner.prune_at = 2 * inner.waiting.len();
        }
        let changes = inner
            .waiting
            .entry(key.id.clone())
            .or_insert_with(|| broadcast::channel(1).0)
            .subscribe();
        Ok(Subscribed {
            first,
            version: 0,
            seq: 0,
            changes: Some(changes),
        })
    }

    /// A task changes once, so a subscriber can only miss that change: the
    /// result is its snapshot.
    fn resnapshot(&self, key: &Key, _seq: u64) -> Option<Snapshot> {
        let inner = self.inner.read().expect("tasks lock");
        let r = inner.results.get(&key.id)?;
        Some((1, 1, snapshot_frame(&key.id, Some(r))))
    }
}

impl ViewModule for Tasks {
    fn kinds(&self) -> &'static [ViewKind] {
        &[ViewKind::Task]
    }

    /// The results, and the tasks themselves: a task submitted through
    /// any edge is pending on every edge until its result is in.
    fn changelogs(self: Arc<Self>, topics: &Topics) -> Vec<Changelog> {
        let tasks = self.clone();
        vec![
            Changelog::json_at(&topics.results, "task result", move |r, _, place| {
                self.apply_at(r, Some(place));
            }),
            Changelog::json(&topics.calc, "task", move |t: CalcTask, _| {
                if t.time.0 > schemas::Timestamp::now().0 - PENDING_FOR_MS {
                    tasks.submitted(&t);
                }
            }),
        ]
    }

    fn routes(self: Arc<Self>, context: &Context) -> Routes {
        http::routes(self, context).boxed()
    }
}

#[cfg(test)]
mod tests {
    use schemas::Timestamp;

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
    fn a_snapshot_frame_carries_its_type_then_its_view() {
        assert_eq!(
            snapshot_frame("t", None).as_str(),
            r#"{"type":"snapshot","view":"task","id":"t","seq":0,"result":null}"#
        );
    }

    #[test]
    fn a_result_goes_to_its_waiters_and_unwatched_channels_do_not_pile_up() {
        let tasks = Tasks::default();
        let key = |id: &str| Key {
            view: crate::protocol::ViewKind::Task,
            id: id.into(),
            participant: None,
            window: None,
        };
        let mut s = tasks.subscribe(&key("a"), None, None).unwrap();
        tasks.apply(result("b"));
        assert!(
            s.changes.as_mut().unwrap().try_recv().is_err(),
            "b is not a's"
        );
        tasks.apply(result("a"));
        let c = s.changes.as_mut().unwrap().try_recv().unwrap();
        assert!(
            c.frame
                .starts_with(r#"{"type":"delta","view":"task","id":"a","seq":1"#)
        );
        let done = tasks.subscribe(&key("a"), None, None).unwrap();
        assert!(
            done.changes.is_none(),
            "a finished task does not change again"
        );
        for i in 0..3 * PENDING_HELD {
            drop(tasks.subscribe(&key(&format!("t{i}")), None, None).unwrap());
        }
        let held = tasks.inner.read().unwrap().waiting.len();
        assert!(held <= PENDING_HELD, "{held} channels held");
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
